/* SPDX-License-Identifier: MIT */
/*
 * xwait.h - tasks parked on something that other threads can end (a shared channel): the queue
 * lives under the primitive's own lock; a waker on another thread hands over the result and posts
 * a wake-up to the waiting task's runtime (inbox.h), which readies the task if it still waits
 * there. Such a task is never taken for deadlocked: another thread may still wake it.
 */
#ifndef URT_SCHED_XWAIT_H
#define URT_SCHED_XWAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/lock.h"
#include "base/list.h"
#include "sched/task.h"

struct urt_runtime;
struct urt__inbox;

struct urt__xqueue {
    struct urt__list list;
};

/* Lives on the waiting task's stack. A waker reads what it needs, then sets done last: from that
   moment the record may be gone. */
struct urt__xwaiter {
    struct urt__io_wait  hook;     /* how a cancel or deadline ends the wait; hook.nointr, set
                                      by the caller: they leave it waiting                    */
    struct urt__link     link;
    struct urt__xqueue  *queue;    /* NULL once woken or unlinked                             */
    urt__lock           *lock;     /* the primitive's lock, which guards queue and done       */
    void                *elem;     /* channels: where to copy from or to                      */
    struct urt_runtime  *rt;       /* the waiting task's runtime                              */
    struct urt__inbox   *inbox;    /* and its inbox, where wake-ups from other threads go     */
    struct urt_task     *task;
    uint64_t             id;       /* the task's id and its wait's sequence number: a wake-up  */
    uint32_t             seq;      /* that arrives late finds them changed and does nothing   */
    int                  result;
    int                  done;     /* atomic                                                  */
    const char          *what;     /* for urt_dump                                            */
    const void          *obj;
    int                 *claim;    /* a select's: as in waitq.h                               */
    int                  claim_as;
};

/* Under the primitive's lock. xq_pop claims as urt__wq_pop does. */
void urt__xq_push(struct urt__xqueue *q, struct urt__xwaiter *w);
struct urt__xwaiter *urt__xq_pop(struct urt__xqueue *q);
/* Hands w its result and gets its task going (on its own runtime, or through that runtime's
   inbox). Under the primitive's lock, from any thread. w is not touched afterwards. */
void urt__xwake(struct urt__xwaiter *w, int result);

/*
 * Parks the current task on q, whose lock (held by the caller) is `lock`, until urt__xwake, its
 * cancellation or its deadline (unless w->hook.nointr: a wait that must end only by its waker, such
 * as taking back a mutex in a condition wait). Releases the lock while it waits and returns
 * without it. Returns the waker's result, or -ECANCELED / -ETIMEDOUT / -ENOMEM (w is then off
 * the queue).
 */
int urt__xwait(struct urt_runtime *rt, struct urt__xqueue *q, urt__lock *lock,
               struct urt__xwaiter *w);

/* The runtime ends: frees the wake-up posts it kept for reuse. */
void urt__xwait_end(struct urt_runtime *rt);

#endif
