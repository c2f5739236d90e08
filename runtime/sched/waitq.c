/* SPDX-License-Identifier: MIT */
/* waitq.c - queues of parked tasks: join, channels, groups, listeners, helper jobs. */
#include "sched/sched.h"
#include "sched/waitq.h"


void urt__wq_push(struct urt__wqueue *q, struct urt__waiter *w)
{
    w->queue = q;
    urt__list_push(&q->list, &w->link);
}

void urt__wq_remove(struct urt__waiter *w)
{
    urt__list_remove(&w->queue->list, &w->link);
    w->queue = NULL;
}

struct urt__waiter *urt__wq_pop(struct urt__wqueue *q)
{
    struct urt__link *l;
    while ((l = urt__list_pop(&q->list))) {
        struct urt__waiter *w = urt__container_of(l, struct urt__waiter, link);
        w->queue = NULL;
        if (likely(!w->claim) || urt__claim(w->claim, w->claim_as))
            return w;
    }
    return NULL;
}

void urt__wq_wake(struct urt_runtime *rt, struct urt__waiter *w, int result)
{
    if (w->queue)
        urt__wq_remove(w);
    w->result = result;
    w->done = true;
    struct urt__waiter *m = w->master ? w->master : w;
    m->done = true;
    if (w->task->state == URT__PARKED && w->task->wait == m)
        urt__ready(rt, w->task);
}

void urt__wq_wake_all(struct urt_runtime *rt, struct urt__wqueue *q, int result)
{
    struct urt__waiter *w;
    while ((w = urt__wq_pop(q)))
        urt__wq_wake(rt, w, result);
}

/*
 * Parks the current task on q until urt__wq_wake, its cancellation or its deadline. Returns the
 * waker's result, or -ECANCELED / -ETIMEDOUT (w is then off the queue).
 */
int urt__wq_wait(struct urt_runtime *rt, struct urt__wqueue *q, struct urt__waiter *w,
                 bool interruptible)
{
    struct urt_task *self = rt->current;
    int err = interruptible ? urt__check_blocking(self) : 0;
    if (err)
        return err;
    w->task = self;
    w->done = false;
    w->result = 0;
    if (q)
        urt__wq_push(q, w);
    else
        w->queue = NULL;
    if (interruptible && self->deadline &&
        urt__deadline_arm(&rt->timers, self) < 0) {
        if (w->queue)
            urt__wq_remove(w);
        return -ENOMEM;
    }
    self->flags &= ~URT__TIMED_OUT;
    self->wait_kind = interruptible ? URT__WAIT_QUEUE : URT__WAIT_QUEUE_NOINTR;
    self->wait = w;
    while (!w->done)
        urt__park(rt);
    self->wait_kind = URT__WAIT_NONE;
    self->wait = NULL;
    urt__timer_disarm(&rt->timers, self);
    return w->result;
}
