/* SPDX-License-Identifier: MIT */
/*
 * group.c - structured concurrency, after trio's nursery: a group owns its tasks, its first
 * failure cancels the rest, and nothing in it outlives urt_group_wait or urt_group_free.
 *
 * A deliberate urt_group_cancel is not a failure: the -ECANCELED its members return because of
 * it is dropped, as a cancelled trio nursery exits cleanly, and urt_group_cancelled reports it.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "base/fault.h"
#include "sched/sched.h"
#include "sched/waitq.h"

/* Where a member spawned by urt_group_spawn_status leaves its status: its task's owner points
   here instead of at the group. Slots come from the group's chunks and go back to its free list,
   so a member's end costs a few stores and no free(). */
struct status_slot {
    urt_group          *g;
    int                *status;
    struct status_slot *next_free;
};

struct slot_chunk {
    struct slot_chunk  *next;
    struct status_slot  slot[];
};

struct urt_group {
    struct urt_task    *members;   /* running tasks, linked through owner_prev/owner_next    */
    uint64_t            count;
    int                 status;    /* the first status a member returned on its own, or the
                                      waiter's -ECANCELED/-ETIMEDOUT while it drains          */
    bool                cancelling; /* urt_group_cancel (or free) called, wait not yet back:
                                      spawns refused, members' -ECANCELED is no failure      */
    bool                cancelled; /* urt_group_cancelled's answer, until a spawn succeeds   */
    struct urt__wqueue  waiters;   /* tasks in urt_group_wait / urt_group_free               */
    struct urt_runtime *rt;        /* its runtime: another's calls on it get -EXDEV          */
    struct status_slot *free_slots;
    struct slot_chunk  *chunks;
    size_t              nslots;    /* slots in all chunks                                    */
};

urt_group *urt_group_new(void)
{
    if (!urt__self()) {
        errno = EPERM;
        return NULL;
    }
    urt_group *g = urt__sched_calloc(urt__rt, 1, sizeof(struct urt_group));
    if (g)
        g->rt = urt__rt;
    return g;
}

/* A free slot of g, or NULL (ENOMEM). Chunks double, up to 4096 slots, so that 100,000 members
   with a status cost 30-odd allocations over the group's life. */
static struct status_slot *slot_get(struct urt_runtime *rt, urt_group *g)
{
    if (!g->free_slots) {
        size_t n = g->nslots < 16 ? 16 : g->nslots > 4096 ? 4096 : g->nslots;
        struct slot_chunk *c =
            urt__sched_calloc(rt, 1, sizeof(struct slot_chunk) + n * sizeof(struct status_slot));
        if (!c)
            return NULL;
        c->next = g->chunks;
        g->chunks = c;
        g->nslots += n;
        for (size_t i = 0; i < n; i++) {
            c->slot[i].next_free = g->free_slots;
            g->free_slots = &c->slot[i];
        }
    }
    struct status_slot *s = g->free_slots;
    g->free_slots = s->next_free;
    return s;
}

static void slot_put(urt_group *g, struct status_slot *s)
{
    s->g = NULL;
    s->status = NULL;
    s->next_free = g->free_slots;
    g->free_slots = s;
}

static void member_done(struct urt_runtime *rt, struct urt_task *t);
static void status_member_done(struct urt_runtime *rt, struct urt_task *t);

int urt_group_spawn_status(urt_group *g, urt_fn fn, void *arg, const struct urt_spawn_opts *opts,
                           int *status)
{
    struct urt_runtime *rt = urt__rt;
    if (!urt__self() || rt->stopping)
        return -EPERM;
    if (!g || !fn)
        return -EINVAL;
    if (g->rt != rt)
        return -EXDEV;
    if (g->status || g->cancelling)
        return -ECANCELED;
    struct status_slot *s = NULL;
    if (status && !(s = slot_get(rt, g)))
        return -ENOMEM;
    struct urt_task *t = urt__task_new(rt, fn, arg, opts);
    if (!t) {
        int err = -errno;
        if (s)
            slot_put(g, s);
        return err;
    }
    t->flags |= URT__IN_GROUP;
    if (s) {
        s->g = g;
        s->status = status;
        t->owner = s;
        t->on_exit = status_member_done;
    } else {
        t->owner = g;
        t->on_exit = member_done;
    }
    t->owner_next = g->members;
    if (g->members)
        g->members->owner_prev = t;
    g->members = t;
    g->count++;
    g->cancelled = false;   /* a new round: what urt_group_cancelled said was about the last */
    return 0;
}

int urt_group_spawn_ex(urt_group *g, urt_fn fn, void *arg, const struct urt_spawn_opts *opts)
{
    return urt_group_spawn_status(g, fn, arg, opts, NULL);
}

int urt_group_spawn(urt_group *g, urt_fn fn, void *arg)
{
    return urt_group_spawn_status(g, fn, arg, NULL, NULL);
}

static void cancel_members(urt_group *g)
{
    for (struct urt_task *t = g->members; t; t = t->owner_next)
        urt__cancel(urt__rt, t);
}

/* A member of g returned: take its status; the group's task releases it (task.c). On the
   member's own stack, before its last switch: a few stores, nothing that blocks. */
static void group_member_done(struct urt_runtime *rt, urt_group *g, struct urt_task *t)
{
    if (t->owner_prev)
        t->owner_prev->owner_next = t->owner_next;
    else
        g->members = t->owner_next;
    if (t->owner_next)
        t->owner_next->owner_prev = t->owner_prev;
    g->count--;
    /* The -ECANCELED of a member that urt_group_cancel ended is the cancel doing its job, not a
       failure. (Every member alive during a cancel was cancelled by it: spawns are refused.) */
    bool own_failure = t->status != 0 && !(g->cancelling && t->status == -ECANCELED);
    if (own_failure && g->status == 0) {
        g->status = t->status;
        cancel_members(g);
    }
    if (g->count == 0)
        urt__wq_wake_all(rt, &g->waiters, 0);
}

static void member_done(struct urt_runtime *rt, struct urt_task *t)
{
    group_member_done(rt, t->owner, t);
}

static void status_member_done(struct urt_runtime *rt, struct urt_task *t)
{
    struct status_slot *s = t->owner;
    urt_group *g = s->g;
    *s->status = t->status;
    slot_put(g, s);
    group_member_done(rt, g, t);
}

/* Waits, immune to cancellation, until every member has ended. */
static void drain(struct urt_runtime *rt, urt_group *g)
{
    while (g->count) {
        struct urt__waiter w = { .what = "group_drain", .obj = g };
        if (urt__wq_wait(rt, &g->waiters, &w, false) == -EDEADLK)
            return;
    }
}

int urt_group_wait(urt_group *g)
{
    struct urt_runtime *rt = urt__rt;
    if (!urt__self())
        return -EPERM;
    if (!g)
        return -EINVAL;
    if (g->rt != rt)
        return -EXDEV;
    while (g->count) {
        struct urt__waiter w = { .what = "group_wait", .obj = g };
        int err = urt__wq_wait(rt, &g->waiters, &w, true);
        if (err == -ECANCELED || err == -ETIMEDOUT) {
            /* The waiter's cancel scope covers its group: cancel the members, then let them end. */
            if (!g->status)
                g->status = err;
            cancel_members(g);
            drain(rt, g);
            g->status = 0;
            g->cancelling = false;
            return err;
        }
        if (err)
            return err;
    }
    int status = g->status;
    g->status = 0;
    g->cancelling = false;
    return status;
}

void urt_group_cancel(urt_group *g)
{
    if (!g || !urt__self() || g->rt != urt__rt)
        return;
    g->cancelling = true;
    g->cancelled = true;
    cancel_members(g);
}

int urt_group_cancelled(urt_group *g)
{
    if (!urt__self())
        return -EPERM;
    if (!g)
        return -EINVAL;
    if (g->rt != urt__rt)
        return -EXDEV;
    return g->cancelled;
}

void urt_group_free(urt_group *g)
{
    struct urt_runtime *rt = urt__rt;
    if (!g || !urt__self() || g->rt != rt)
        return;   /* (another runtime's group is not ours to free) */
    if (g->count) {
        g->cancelling = true;
        cancel_members(g);
        drain(rt, g);
    }
    /* Members can outlive drain only when it ended in -EDEADLK (say, a member freeing its own
       group): they become detached, so that none of them reaches the freed group (or its status
       slots) at its end. */
    for (struct urt_task *t = g->members; t; t = t->owner_next) {
        t->flags = (uint16_t)((t->flags & ~URT__IN_GROUP) | URT__DETACHED);
        t->owner = NULL;
        t->on_exit = NULL;
    }
    while (g->chunks) {
        struct slot_chunk *c = g->chunks;
        g->chunks = c->next;
        urt__sched_free(rt, c);
    }
    urt__sched_free(rt, g);
}
