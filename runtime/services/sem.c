/* SPDX-License-Identifier: MIT */
/*
 * sem.c - urt_sem: a counting semaphore. A release with tasks waiting hands its unit to the
 * oldest of them (FIFO: a stream of try_acquires cannot starve a waiter).
 */
#include <errno.h>
#include <limits.h>

#include "sched/sched.h"
#include "services/sync.h"

struct urt_sem {
    struct urt__sync s;
    unsigned         value;
};

/* Under the semaphore's lock (or on its own runtime); urt_sem_value reads without it. */
static inline void set_value(urt_sem *m, unsigned v)
{
    __atomic_store_n(&m->value, v, __ATOMIC_RELAXED);
}

urt_sem *urt_sem_new(unsigned value)
{
    urt_sem *m = (urt_sem *)(void *)urt__sync_new(sizeof *m);
    if (!m)
        return NULL;
    m->value = value;
    return m;
}

int urt_sem_acquire(urt_sem *m)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (!m)
        return -EINVAL;
    int err = urt__check_blocking(self);
    if (!err)
        err = urt__sync_enter(&m->s, rt);
    if (err)
        return err;
    if (m->value) {   /* (waiters only while it is 0) */
        set_value(m, m->value - 1);
        urt__sync_leave(&m->s);
        return 0;
    }
    return urt__sync_wait(rt, &m->s, true, "sem_acquire", m);
}

int urt_sem_try_acquire(urt_sem *m)
{
    if (!m)
        return -EINVAL;
    int err = urt__sync_enter(&m->s, urt__rt);
    if (err)
        return err;
    err = m->value ? 0 : -EAGAIN;
    if (!err)
        set_value(m, m->value - 1);
    urt__sync_leave(&m->s);
    return err;
}

int urt_sem_release(urt_sem *m)
{
    if (!m)
        return -EINVAL;
    struct urt_runtime *rt = urt__rt;
    int err = urt__sync_enter(&m->s, rt);
    if (err)
        return err;
    if (!urt__sync_wake_one(rt, &m->s, 0)) {
        if (m->value == UINT_MAX)
            err = -EOVERFLOW;
        else
            set_value(m, m->value + 1);
    }
    urt__sync_leave(&m->s);
    return err;
}

int urt_sem_value(urt_sem *m)
{
    if (!m)
        return -EINVAL;
    unsigned v = __atomic_load_n(&m->value, __ATOMIC_RELAXED);
    return v > INT_MAX ? INT_MAX : (int)v;
}

int urt_sem_free(urt_sem *m)
{
    return m ? urt__sync_free(&m->s, NULL) : 0;
}
