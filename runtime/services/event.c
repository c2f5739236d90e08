/* SPDX-License-Identifier: MIT */
/* event.c - urt_event: set once, and every task waiting for it, then or later, goes on. */
#include <errno.h>

#include "sched/sched.h"
#include "services/sync.h"

struct urt_event {
    struct urt__sync s;
    int              set;   /* atomic: read without the lock by urt_event_is_set and waits */
};

urt_event *urt_event_new(void)
{
    urt_event *e = (urt_event *)(void *)urt__sync_new(sizeof *e);
    if (!e)
        return NULL;
    return e;
}

int urt_event_set(urt_event *e)
{
    if (!e)
        return -EINVAL;
    struct urt_runtime *rt = urt__rt;
    int err = urt__sync_enter(&e->s, rt);
    if (err)
        return err;
    if (!e->set) {
        __atomic_store_n(&e->set, 1, __ATOMIC_RELEASE);
        urt__sync_wake_all(rt, &e->s, 0);
    }
    urt__sync_leave(&e->s);
    return 0;
}

int urt_event_wait(urt_event *e)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (!e)
        return -EINVAL;
    int err = urt__check_blocking(self);
    if (err)
        return err;
    /* Set already: no lock to take (another runtime's local event still gets -EXDEV). */
    if ((e->s.shared || e->s.owner == rt) && __atomic_load_n(&e->set, __ATOMIC_ACQUIRE))
        return 0;
    err = urt__sync_enter(&e->s, rt);
    if (err)
        return err;
    if (e->set) {
        urt__sync_leave(&e->s);
        return 0;
    }
    return urt__sync_wait(rt, &e->s, true, "event_wait", e);
}

int urt_event_is_set(urt_event *e)
{
    if (!e)
        return -EINVAL;
    return __atomic_load_n(&e->set, __ATOMIC_ACQUIRE);
}

int urt_event_free(urt_event *e)
{
    return e ? urt__sync_free(&e->s, NULL) : 0;
}
