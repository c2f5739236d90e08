/* SPDX-License-Identifier: MIT */
/*
 * mutex.c - urt_mutex: a lock held by a task across its blocking calls.
 *
 * An unlock with tasks waiting hands the mutex to the oldest of them rather than letting
 * whoever runs next grab it: FIFO, no starvation, and two tasks trading it switch once a
 * handoff.
 */
#include <errno.h>

#include "base/compiler.h"
#include "sched/sched.h"
#include "services/mutex.h"

urt_mutex *urt_mutex_new(void)
{
    urt_mutex *m = (urt_mutex *)(void *)urt__sync_new(sizeof *m);
    if (!m)
        return NULL;
    return m;
}

/* With m taken (sync): the caller gets m now, or waits for an unlock to hand it over. */
static int take(struct urt_runtime *rt, struct urt_task *self, urt_mutex *m, bool intr)
{
    if (!m->holder) {
        m->holder = self;
        urt__sync_leave(&m->s);
        return 0;
    }
    if (m->holder == self) {
        urt__sync_leave(&m->s);
        return -EDEADLK;
    }
    return urt__sync_wait(rt, &m->s, intr, "mutex_lock", m);
}

/* Everything but the same-thread path: kept out of line so that path saves no registers. */
static __attribute__((noinline)) int lock_slow(struct urt_runtime *rt, struct urt_task *self,
                                               urt_mutex *m)
{
    if (!self)
        return -EPERM;
    if (!m)
        return -EINVAL;
    int err = urt__check_blocking(self);
    if (err)
        return err;
    err = urt__sync_enter(&m->s, rt);
    return err ? err : take(rt, self, m, true);
}

int urt_mutex_lock(urt_mutex *m)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    /* The same-thread path, for a free mutex and a task with no cancel or deadline to check
       (the checks urt__check_blocking would make): loads and one store. */
    if (likely(self && m && !m->s.shared && rt == m->s.owner && !m->holder &&
               !(self->flags & URT__CANCELLED) && !self->deadline)) {
        m->holder = self;
        return 0;
    }
    return lock_slow(rt, self, m);
}

int urt__mutex_retake(struct urt_runtime *rt, struct urt_mutex *m)
{
    int err = urt__sync_enter(&m->s, rt);
    return err ? err : take(rt, rt->current, m, false);
}

int urt_mutex_try_lock(urt_mutex *m)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (!m)
        return -EINVAL;
    int err = urt__sync_enter(&m->s, rt);
    if (err)
        return err;
    err = m->holder == self ? -EDEADLK : m->holder ? -EBUSY : 0;
    if (!err)
        m->holder = self;
    urt__sync_leave(&m->s);
    return err;
}

void urt__mutex_release(struct urt_runtime *rt, struct urt_mutex *m)
{
    m->holder = urt__sync_wake_one(rt, &m->s, 0);
}

static __attribute__((noinline)) int unlock_slow(struct urt_runtime *rt, struct urt_task *self,
                                                 urt_mutex *m)
{
    if (!self)
        return -EPERM;
    if (!m)
        return -EINVAL;
    int err = urt__sync_enter(&m->s, rt);
    if (err)
        return err;
    if (m->holder != self)
        err = -EPERM;
    else
        urt__mutex_release(rt, m);
    urt__sync_leave(&m->s);
    return err;
}

int urt_mutex_unlock(urt_mutex *m)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (likely(self && m && !m->s.shared && rt == m->s.owner && m->holder == self &&
               !m->s.wq.list.head)) {
        m->holder = NULL;
        return 0;
    }
    return unlock_slow(rt, self, m);
}

int urt_mutex_free(urt_mutex *m)
{
    return m ? urt__sync_free(&m->s, &m->holder) : 0;
}
