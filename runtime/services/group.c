/* SPDX-License-Identifier: MIT */
/*
 * group.c - structured concurrency, after trio's nursery: a group owns its tasks, its first
 * failure cancels the rest, and nothing in it outlives urt_group_wait or urt_group_free.
 */
#include <stdlib.h>

#include "base/fault.h"
#include "sched/sched.h"
#include "sched/waitq.h"

struct urt_group {
    struct urt_task    *members;   /* running tasks, linked through owner_prev/owner_next    */
    uint64_t            count;
    int                 status;    /* the first nonzero status, or -ECANCELED from cancel   */
    struct urt__wqueue  waiters;   /* tasks in urt_group_wait / urt_group_free               */
    struct urt_runtime *rt;        /* its runtime: another's calls on it get -EXDEV          */
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

static void member_done(struct urt_runtime *rt, struct urt_task *t);

int urt_group_spawn_ex(urt_group *g, urt_fn fn, void *arg, const struct urt_spawn_opts *opts)
{
    struct urt_runtime *rt = urt__rt;
    if (!urt__self() || rt->stopping)
        return -EPERM;
    if (!g || !fn)
        return -EINVAL;
    if (g->rt != rt)
        return -EXDEV;
    if (g->status)
        return -ECANCELED;
    struct urt_task *t = urt__task_new(rt, fn, arg, opts);
    if (!t)
        return -errno;
    t->flags |= URT__IN_GROUP;
    t->owner = g;
    t->on_exit = member_done;
    t->owner_next = g->members;
    if (g->members)
        g->members->owner_prev = t;
    g->members = t;
    g->count++;
    return 0;
}

int urt_group_spawn(urt_group *g, urt_fn fn, void *arg)
{
    return urt_group_spawn_ex(g, fn, arg, NULL);
}

static void cancel_members(urt_group *g)
{
    for (struct urt_task *t = g->members; t; t = t->owner_next)
        urt__cancel(urt__rt, t);
}

/* A member returned: take its status; the group's task releases it (task.c). */
static void member_done(struct urt_runtime *rt, struct urt_task *t)
{
    urt_group *g = t->owner;
    if (t->owner_prev)
        t->owner_prev->owner_next = t->owner_next;
    else
        g->members = t->owner_next;
    if (t->owner_next)
        t->owner_next->owner_prev = t->owner_prev;
    g->count--;
    if (t->status != 0 && g->status == 0) {
        g->status = t->status;
        cancel_members(g);
    }
    if (g->count == 0)
        urt__wq_wake_all(rt, &g->waiters, 0);
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
            return err;
        }
        if (err)
            return err;
    }
    int status = g->status;
    g->status = 0;
    return status;
}

void urt_group_cancel(urt_group *g)
{
    if (!g || !urt__self() || g->rt != urt__rt)
        return;
    if (!g->status)
        g->status = -ECANCELED;
    cancel_members(g);
}

void urt_group_free(urt_group *g)
{
    struct urt_runtime *rt = urt__rt;
    if (!g || !urt__self() || g->rt != rt)
        return;   /* (another runtime's group is not ours to free) */
    if (g->count) {
        if (!g->status)
            g->status = -ECANCELED;
        cancel_members(g);
        drain(rt, g);
    }
    /* Members can outlive drain only when it ended in -EDEADLK (say, a member freeing its own
       group): they become detached, so that none of them reaches the freed group at its end. */
    for (struct urt_task *t = g->members; t; t = t->owner_next) {
        t->flags = (uint16_t)((t->flags & ~URT__IN_GROUP) | URT__DETACHED);
        t->owner = NULL;
        t->on_exit = NULL;
    }
    urt__sched_free(rt, g);
}
