/* SPDX-License-Identifier: MIT */
/* sync.c - the waiting that the coordination primitives share (see sync.h). */
#include <errno.h>

#include "sched/sched.h"
#include "services/sync.h"

struct urt__sync *urt__sync_new(size_t size)
{
    struct urt_runtime *rt = urt__rt;
    struct urt__sync *s = urt__sched_calloc(rt, 1, size);
    if (!s)
        return NULL;
    s->shared = rt && urt_thread_count() > 1;
    s->owner = rt;
    s->lock = (urt__lock)URT__LOCK_INIT;
    return s;
}

int urt__sync_wait(struct urt_runtime *rt, struct urt__sync *s, bool intr, const char *what,
                   const void *obj)
{
    if (!s->shared) {
        struct urt__waiter w = { .what = what, .obj = obj };
        return urt__wq_wait(rt, &s->wq, &w, intr);
    }
    struct urt__xwaiter w = { .hook.nointr = !intr, .what = what, .obj = obj };
    return urt__xwait(rt, &s->xq, &s->lock, &w);
}

struct urt_task *urt__sync_wake_one(struct urt_runtime *rt, struct urt__sync *s, int result)
{
    if (!s->shared) {
        struct urt__waiter *w = urt__wq_pop(&s->wq);
        if (!w)
            return NULL;
        struct urt_task *t = w->task;
        urt__wq_wake(rt, w, result);
        return t;
    }
    struct urt__xwaiter *w = urt__xq_pop(&s->xq);
    if (!w)
        return NULL;
    struct urt_task *t = w->task;
    urt__xwake(w, result);
    return t;
}

void urt__sync_wake_all(struct urt_runtime *rt, struct urt__sync *s, int result)
{
    while (urt__sync_wake_one(rt, s, result))
        ;
}

bool urt__sync_waiting(const struct urt__sync *s)
{
    return s->shared ? s->xq.list.head != NULL : s->wq.list.head != NULL;
}

int urt__sync_free(struct urt__sync *s, struct urt_task *const *holder)
{
    struct urt_runtime *rt = urt__rt;
    if (!s->shared && rt && s->owner && rt != s->owner)
        return -EXDEV;   /* (from a thread that runs none: its runtime has ended) */
    if (s->shared)
        urt__lock_take(&s->lock);
    bool busy = urt__sync_waiting(s) || (holder && *holder);
    urt__sync_leave(s);
    if (busy)
        return -EBUSY;
    urt__sched_free(rt, s);
    return 0;
}
