/* SPDX-License-Identifier: MIT */
/* waitq.h - queues of parked tasks (join, channels, groups, listeners), FIFO, interruptible. */
#ifndef URT_SCHED_WAITQ_H
#define URT_SCHED_WAITQ_H

#include <stdbool.h>

#include "base/list.h"

struct urt_runtime;
struct urt_task;
struct urt__wqueue;

/* A parked task in a waiter queue. Lives on the waiting task's stack. */
struct urt__waiter {
    struct urt_task    *task;
    struct urt__link    link;
    struct urt__wqueue *queue;   /* NULL once woken or unlinked                                 */
    void               *elem;    /* channels: where to copy from or to                          */
    const char         *what;    /* for urt_dump: "join", "chan_send"...                        */
    const void         *obj;     /* for urt_dump: the task, channel or group waited on          */
    int                 result;
    bool                done;
    /* A select's waits, one per case, of which one only may be served: a waker first claims
       *claim (from -1 to claim_as), and a waiter whose claim fails is skipped as gone. The
       task parks on master, which a served waiter's wake-up marks done. */
    int                *claim;
    int                 claim_as;
    struct urt__waiter *master;
};

/* Claims a select's waiter for its waker: true, or false when another case was served first. */
static inline bool urt__claim(int *claim, int as)
{
    int none = -1;
    return !claim || __atomic_compare_exchange_n(claim, &none, as, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE);
}

struct urt__wqueue {
    struct urt__list list;
};

void urt__wq_push(struct urt__wqueue *q, struct urt__waiter *w);
void urt__wq_remove(struct urt__waiter *w);
/* The oldest waiter, claimed (a select's that lost its claim are dropped), or NULL. */
struct urt__waiter *urt__wq_pop(struct urt__wqueue *q);
/* Takes w off its queue (if still on one), hands it result and readies its task. */
void urt__wq_wake(struct urt_runtime *rt, struct urt__waiter *w, int result);
void urt__wq_wake_all(struct urt_runtime *rt, struct urt__wqueue *q, int result);
/*
 * Parks the current task on q (NULL: on no queue, for a waker that holds w itself) until
 * urt__wq_wake or, if interruptible, its cancellation or deadline. Returns the waker's result,
 * or -ECANCELED / -ETIMEDOUT / -ENOMEM (w is then off the queue).
 */
int  urt__wq_wait(struct urt_runtime *rt, struct urt__wqueue *q, struct urt__waiter *w,
                  bool interruptible);

#endif
