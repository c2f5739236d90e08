/* SPDX-License-Identifier: MIT */
/* timer.h - wake-up times of parked tasks: one min-heap per runtime, one kernel wait over it. */
#ifndef URT_SCHED_TIMER_H
#define URT_SCHED_TIMER_H

#include <stdint.h>

#include "sched/task.h"

struct urt_runtime;

struct urt__timer_entry {
    uint64_t         at;     /* copied from the task: comparisons touch only the heap's array */
    struct urt_task *task;
};

struct urt__timer_heap {
    struct urt__timer_entry *items;
    uint32_t                 len, cap;
    struct urt_task         *fifo_head, *fifo_tail;  /* wake-ups armed in increasing order  */
    uint64_t                 fifo_len;
};

/* Arms t to wake at `at` (replacing an earlier time). -ENOMEM if the heap cannot grow. */
int  urt__timer_arm(struct urt__timer_heap *h, struct urt_task *t, uint64_t at);
void urt__timer_disarm(struct urt__timer_heap *h, struct urt_task *t);
/* The earliest armed task, or NULL. */
static inline struct urt_task *urt__timer_first(const struct urt__timer_heap *h)
{
    struct urt_task *a = h->len ? h->items[0].task : NULL, *b = h->fifo_head;
    if (!a)
        return b;
    if (!b)
        return a;
    return h->items[0].at <= b->wake_at ? a : b;
}

/* Arms t's deadline for the wait it is about to start. A timer still armed no later than the
   deadline is enough: urt__timers_expire moves it on to the deadline when it fires. */
static inline int urt__deadline_arm(struct urt__timer_heap *h, struct urt_task *t)
{
    if (t->heap_index && t->wake_at <= t->deadline)
        return 0;
    return urt__timer_arm(h, t, t->deadline);
}

static inline uint64_t urt__timers_armed(const struct urt__timer_heap *h)
{
    return h->len + h->fifo_len;
}
void urt__timer_heap_free(struct urt__timer_heap *h);

/* Interrupts every task whose time has come (sched.c does the interrupting). */
void urt__timers_expire(struct urt_runtime *rt, uint64_t now);

#endif
