/* SPDX-License-Identifier: MIT */
/* xwait.c - waits that other threads can end (see xwait.h). */
#include <stdlib.h>

#include "base/fault.h"
#include "sched/inbox.h"
#include "sched/waitq.h"
#include "sched/sched.h"
#include "sched/xwait.h"

void urt__xq_push(struct urt__xqueue *q, struct urt__xwaiter *w)
{
    w->queue = q;
    urt__list_push(&q->list, &w->link);
}

static void xq_remove(struct urt__xwaiter *w)
{
    urt__list_remove(&w->queue->list, &w->link);
    w->queue = NULL;
}

struct urt__xwaiter *urt__xq_pop(struct urt__xqueue *q)
{
    struct urt__link *l;
    while ((l = urt__list_pop(&q->list))) {
        struct urt__xwaiter *w = urt__container_of(l, struct urt__xwaiter, link);
        w->queue = NULL;
        if (likely(!w->claim) || urt__claim(w->claim, w->claim_as))
            return w;
    }
    return NULL;
}

/* ---- waking ---- */

struct wake_post {
    struct urt__post post;
    struct urt_task *task;
    uint64_t         id;
    uint32_t         seq;
};

/* The task still waits where the wake-up was meant for: ready it. */
static void wake_if_waiting(struct urt_runtime *rt, struct urt_task *t, uint64_t id, uint32_t seq)
{
    /* (A select parks as a queue wait, on its master waiter; the sequence number tells.) */
    if (t->magic == URT__TASK_MAGIC && t->id == id && t->wait_seq == seq &&
        t->state == URT__PARKED &&
        (t->wait_kind == URT__WAIT_SHARED || t->wait_kind == URT__WAIT_QUEUE))
        urt__ready(rt, t);
}

/* (A task's memory stays mapped while its runtime lives, and a wake-up reaches only a live
   runtime: reading a since-reused header is safe, and the id tells.) */
/* Wake-up posts are kept for reuse by the runtime that ran them: in a conversation between two
   runtimes each then sends its wake-ups in the posts the other sent it, with no allocation. */
#define WAKE_CACHE_MAX 256

__attribute__((no_sanitize_address))
static void run_wake(struct urt_runtime *rt, struct urt__post *p)
{
    struct wake_post *wp = (struct wake_post *)p;
    wake_if_waiting(rt, wp->task, wp->id, wp->seq);
    if (rt->wake_cached < WAKE_CACHE_MAX) {
        wp->post.next = rt->wake_cache;
        rt->wake_cache = &wp->post;
        rt->wake_cached++;
    } else {
        free(wp);
    }
}

void urt__xwait_end(struct urt_runtime *rt)
{
    while (rt->wake_cache) {
        struct urt__post *p = rt->wake_cache;
        rt->wake_cache = p->next;
        free(p);
    }
    rt->wake_cached = 0;
}

static void drop_wake(struct urt__post *p)
{
    free(p);
}

static void alloc_post(struct urt_runtime *rt, void *arg)
{
    (void)rt;
    *(struct wake_post **)arg = malloc(sizeof(struct wake_post));
}

void urt__xwake(struct urt__xwaiter *w, int result)
{
    struct urt_runtime *target = w->rt, *here = urt__rt;
    struct urt_task *t = w->task;
    uint64_t id = w->id;
    uint32_t seq = w->seq;
    /* While w waits, its runtime and inbox live; once done is set they may not: take what is
       needed first, and hold the inbox (the runtime itself is not touched again). */
    struct urt__inbox *inbox = w->inbox;
    if (target != here)
        urt__inbox_hold(inbox);
    if (w->queue)
        xq_remove(w);
    w->result = result;
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);   /* w may be gone from here on */
    if (target == here) {
        wake_if_waiting(here, t, id, seq);
        return;
    }
    /* (target is compared, never dereferenced, from here on) */
    struct wake_post *wp = NULL;
    if (here && here->wake_cache) {   /* a few loads and stores: fine on any stack */
        wp = (struct wake_post *)here->wake_cache;
        here->wake_cache = wp->post.next;
        here->wake_cached--;
    } else if (here) {
        urt__on_sched_stack(here, alloc_post, &wp);
    } else {
        wp = malloc(sizeof *wp);
    }
    if (wp) {
        *wp = (struct wake_post){ .post = { .run = run_wake, .drop = drop_wake },
                                  .task = t, .id = id, .seq = seq };
        if (urt__inbox_post(inbox, &wp->post) != 0)
            free(wp);   /* its runtime is ending: the task is being cancelled anyway */
    }
    /* (No memory for the wake-up: the task sees its result when anything else wakes it, its
       deadline or a cancel. Rare enough to accept rather than to block here.) */
    urt__inbox_release(inbox);
}

/* ---- waiting ---- */

static void ignore(struct urt_runtime *rt, struct urt_task *t)
{
    (void)rt;
    (void)t;
}

static void interrupt(struct urt_runtime *rt, struct urt_task *t)
{
    struct urt__xwaiter *w = urt__container_of(t->wait, struct urt__xwaiter, hook);
    urt__lock_take(w->lock);
    if (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) {
        if (w->queue)
            xq_remove(w);
        w->result = urt__wait_status(t);
        __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    }
    urt__lock_give(w->lock);
    urt__ready(rt, t);   /* a wake-up from the waker, should one come too, finds seq changed */
}

int urt__xwait(struct urt_runtime *rt, struct urt__xqueue *q, urt__lock *lock,
               struct urt__xwaiter *w)
{
    struct urt_task *self = rt->current;
    int err = w->hook.nointr ? 0 : urt__check_blocking(self);
    if (!err && !w->hook.nointr && self->deadline && urt__deadline_arm(&rt->timers, self) < 0)
        err = -ENOMEM;
    /* (Made under the primitive's lock: allocating on the scheduler's stack runs no task.) */
    struct urt__inbox *inbox = err ? NULL : urt__inbox_of(rt);
    if (!err && !inbox)
        err = -ENOMEM;
    if (err) {
        urt__lock_give(lock);
        return err;
    }
    w->hook.interrupt = w->hook.nointr ? ignore : interrupt;
    w->lock = lock;
    w->rt = rt;
    w->inbox = inbox;
    w->task = self;
    w->id = self->id;
    w->seq = ++self->wait_seq;
    w->result = 0;
    w->done = 0;
    urt__xq_push(q, w);
    self->flags &= ~URT__TIMED_OUT;
    self->wait_kind = URT__WAIT_SHARED;
    self->wait = &w->hook;
    rt->shared_waiters++;
    urt__lock_give(lock);
    while (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
        urt__park(rt);
    rt->shared_waiters--;
    self->wait_seq++;
    self->wait_kind = URT__WAIT_NONE;
    self->wait = NULL;
    urt__timer_disarm(&rt->timers, self);
    return w->result;
}
