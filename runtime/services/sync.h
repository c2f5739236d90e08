/* SPDX-License-Identifier: MIT */
/*
 * sync.h - what the coordination primitives (mutex, semaphore, event, condition) share: a FIFO
 * of waiting tasks and, for a primitive other threads may use, the lock that guards it.
 *
 * A primitive made inside urt_run_threads with more than one runtime is shared: its state is
 * kept under a spinning lock and its waiters can be woken from any thread (xwait.h). Any other
 * is local to its runtime: no lock, no atomic operation, local waits that deadlock detection
 * sees; other runtimes' tasks and other threads get -EXDEV.
 */
#ifndef URT_SERVICES_SYNC_H
#define URT_SERVICES_SYNC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/lock.h"
#include "sched/waitq.h"
#include "sched/xwait.h"

struct urt_runtime;
struct urt_task;

struct urt__sync {
    bool                shared;
    struct urt_runtime *owner;   /* a local primitive's runtime                                 */
    urt__lock           lock;    /* shared: guards the primitive's state and xq                 */
    struct urt__wqueue  wq;      /* local waiters                                               */
    struct urt__xqueue  xq;      /* shared waiters                                              */
};

/* A new primitive of size bytes, zeroed, whose first member is the struct urt__sync it returns,
   set up for the caller (a task, or any thread for a local one). NULL without memory. */
struct urt__sync *urt__sync_new(size_t size);

/* Takes s for the caller: 0, or -EXDEV (a local primitive of another runtime, or from a thread
   that runs none; then s is not taken). */
static inline int urt__sync_enter(struct urt__sync *s, struct urt_runtime *rt)
{
    if (!s->shared) {
        if (!s->owner && rt)
            s->owner = rt;   /* made outside any runtime: the first to use it owns it */
        return rt == s->owner && rt ? 0 : -EXDEV;
    }
    urt__lock_take(&s->lock);
    return 0;
}

static inline void urt__sync_leave(struct urt__sync *s)
{
    if (s->shared)
        urt__lock_give(&s->lock);
}

/* Parks the calling task on s (taken) until a wake-up, or its cancel or deadline if intr;
   leaves s. The waker's result, or -ECANCELED / -ETIMEDOUT / -ENOMEM. */
int urt__sync_wait(struct urt_runtime *rt, struct urt__sync *s, bool intr, const char *what,
                   const void *obj);

/* With s taken: wakes the oldest waiter with result and returns its task, or NULL if none. */
struct urt_task *urt__sync_wake_one(struct urt_runtime *rt, struct urt__sync *s, int result);
void urt__sync_wake_all(struct urt_runtime *rt, struct urt__sync *s, int result);
bool urt__sync_waiting(const struct urt__sync *s);

/* Frees the primitive s is the first member of, when the caller may: 0; else nothing is freed
   and -EXDEV (a local one of another runtime) or -EBUSY (a task waits on it, or holds it:
   *holder, when given, is not NULL). */
int urt__sync_free(struct urt__sync *s, struct urt_task *const *holder);

#endif
