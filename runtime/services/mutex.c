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
    urt_mutex *m = urt__sched_calloc(urt__rt, 1, sizeof *m);
    if (!m)
        return NULL;
    urt__sync_init(&m->s);
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

int urt_mutex_lock(urt_mutex *m)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (unlikely(!self))
        return -EPERM;
    if (unlikely(!m))
        return -EINVAL;
    int err = urt__check_blocking(self);
    if (unlikely(err))
        return err;
    if (likely(!m->s.shared && rt == m->s.owner && !m->holder)) {
        m->holder = self;   /* the same-thread path: two loads and a store */
        return 0;
    }
    err = urt__sync_enter(&m->s, rt);
    return err ? err : take(rt, self, m, true);
}

void urt__mutex_retake(struct urt_runtime *rt, struct urt_mutex *m)
{
    if (urt__sync_enter(&m->s, rt) == 0)
        (void)take(rt, rt->current, m, false);
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

int urt_mutex_unlock(urt_mutex *m)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (unlikely(!self))
        return -EPERM;
    if (unlikely(!m))
        return -EINVAL;
    if (likely(!m->s.shared && rt == m->s.owner && m->holder == self && !m->s.wq.list.head)) {
        m->holder = NULL;
        return 0;
    }
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

int urt_mutex_free(urt_mutex *m)
{
    if (!m)
        return 0;
    struct urt_runtime *rt = urt__rt;
    int err = urt__sync_check_free(&m->s, &m->holder);
    if (err)
        return err;
    urt__sched_free(rt, m);
    return 0;
}
