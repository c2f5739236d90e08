/* SPDX-License-Identifier: MIT */
/*
 * cond.c - urt_cond: a condition variable over a urt_mutex.
 *
 * A signal goes to the oldest waiter. One that was signalled but cancelled (or timed out)
 * before it ran passes its signal on to the next waiter, as asyncio's Condition does: a signal
 * meant to let one task go is never swallowed by a task that returns an error instead.
 */
#include <errno.h>

#include "sched/sched.h"
#include "services/mutex.h"

struct urt_cond {
    struct urt__sync s;
};

urt_cond *urt_cond_new(void)
{
    urt_cond *c = (urt_cond *)(void *)urt__sync_new(sizeof *c);
    if (!c)
        return NULL;
    return c;
}

int urt_cond_signal(urt_cond *c)
{
    if (!c)
        return -EINVAL;
    struct urt_runtime *rt = urt__rt;
    int err = urt__sync_enter(&c->s, rt);
    if (err)
        return err;
    (void)urt__sync_wake_one(rt, &c->s, 0);
    urt__sync_leave(&c->s);
    return 0;
}

int urt_cond_broadcast(urt_cond *c)
{
    if (!c)
        return -EINVAL;
    struct urt_runtime *rt = urt__rt;
    int err = urt__sync_enter(&c->s, rt);
    if (err)
        return err;
    urt__sync_wake_all(rt, &c->s, 0);
    urt__sync_leave(&c->s);
    return 0;
}

int urt_cond_wait(urt_cond *c, urt_mutex *m)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (!c || !m)
        return -EINVAL;
    int err = urt__sync_enter(&c->s, rt);
    if (err)
        return err;
    /* The mutex goes while the condition is held: a signal cannot fall between the two. */
    err = urt__sync_enter(&m->s, rt);
    if (err) {
        urt__sync_leave(&c->s);
        return err;
    }
    err = m->holder != self ? -EPERM : urt__check_blocking(self);
    if (err) {
        urt__sync_leave(&m->s);
        urt__sync_leave(&c->s);
        return err;
    }
    urt__mutex_release(rt, m);
    urt__sync_leave(&m->s);
    err = urt__sync_wait(rt, &c->s, true, "cond_wait", c);
    if (err == 0 && (err = urt__check_blocking(self)) != 0)
        (void)urt_cond_signal(c);   /* signalled, then cancelled: the signal goes on */
    int retake = urt__mutex_retake(rt, m);
    return retake ? retake : err;
}

int urt_cond_free(urt_cond *c)
{
    return c ? urt__sync_free(&c->s, NULL) : 0;
}
