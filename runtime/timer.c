/*
 * timer.c - sleeps and deadlines.
 *
 * Every parked task with a wake-up time (the end of a sleep, or its deadline) sits in a binary
 * min-heap; the scheduler's blocking io_uring_enter waits no longer than the earliest of them.
 * A sleep thus costs no SQE at all, and arming or cancelling one is O(log n).
 */
#include <stdlib.h>
#include <time.h>

#include "timer.h"

static inline void place(struct urt__timer_heap *h, uint32_t i, struct urt_task *t)
{
    h->items[i] = t;
    t->heap_index = i + 1;
}

static void sift_up(struct urt__timer_heap *h, uint32_t i)
{
    struct urt_task *t = h->items[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->items[parent]->wake_at <= t->wake_at)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(struct urt__timer_heap *h, uint32_t i)
{
    struct urt_task *t = h->items[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && h->items[c + 1]->wake_at < h->items[c]->wake_at)
            c++;
        if (t->wake_at <= h->items[c]->wake_at)
            break;
        place(h, i, h->items[c]);
        i = c;
    }
    place(h, i, t);
}

int urt__timer_arm(struct urt__timer_heap *h, struct urt_task *t, uint64_t at)
{
    if (t->heap_index) {
        uint64_t old = t->wake_at;
        t->wake_at = at;
        if (at < old)
            sift_up(h, t->heap_index - 1);
        else
            sift_down(h, t->heap_index - 1);
        return 0;
    }
    if (h->len == h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : 256;
        struct urt_task **items = realloc(h->items, (size_t)ncap * sizeof *items);
        if (!items)
            return -ENOMEM;
        h->items = items;
        h->cap = ncap;
    }
    t->wake_at = at;
    h->items[h->len] = t;
    sift_up(h, h->len++);
    return 0;
}

void urt__timer_disarm(struct urt__timer_heap *h, struct urt_task *t)
{
    if (!t->heap_index)
        return;
    uint32_t i = t->heap_index - 1;
    t->heap_index = 0;
    struct urt_task *last = h->items[--h->len];
    if (i == h->len)
        return;
    place(h, i, last);
    if (i > 0 && h->items[(i - 1) / 2]->wake_at > last->wake_at)
        sift_up(h, i);
    else
        sift_down(h, i);
}

void urt__timer_heap_free(struct urt__timer_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->len = h->cap = 0;
}

void urt__timers_expire(struct urt_runtime *rt, uint64_t now)
{
    struct urt_task *t;
    while ((t = urt__timer_first(&rt->timers)) && t->wake_at <= now) {
        urt__timer_disarm(&rt->timers, t);
        /* The deadline has passed, or the sleep is over; a sleep that ends exactly at the
           deadline counts as timed out. */
        if (t->deadline && t->wake_at >= t->deadline)
            t->flags |= URT__TIMED_OUT;
        urt__interrupt(rt, t);
    }
}

/* ---- the public calls ---- */

uint64_t urt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int urt_sleep_until(uint64_t abs_ns)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = urt__self();
    if (!self)
        return -EPERM;
    int err = urt__check_blocking(self);
    if (err)
        return err;
    uint64_t wake = abs_ns;
    if (self->deadline && self->deadline < wake)
        wake = self->deadline;
    if (wake <= urt_now())
        return urt_yield();
    if (urt__timer_arm(&rt->timers, self, wake) < 0)
        return -ENOMEM;
    self->flags &= ~URT__TIMED_OUT;
    self->wait_kind = URT__WAIT_SLEEP;
    self->wait = NULL;
    urt__park(rt);
    self->wait_kind = URT__WAIT_NONE;
    urt__timer_disarm(&rt->timers, self);
    return urt__wait_status(self);
}

int urt_sleep(uint64_t ns)
{
    if (ns == 0)
        return urt_yield();
    uint64_t now = urt_now();
    return urt_sleep_until(ns > UINT64_MAX - now ? UINT64_MAX : now + ns);
}

uint64_t urt_deadline(uint64_t abs_ns)
{
    struct urt_task *self = urt__self();
    if (!self)
        return 0;
    uint64_t old = self->deadline;
    self->deadline = abs_ns;
    return old;
}
