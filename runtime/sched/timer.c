/* SPDX-License-Identifier: MIT */
/*
 * timer.c - wake-up times: sleeps and deadlines.
 *
 * Every parked task with a wake-up time (the end of a sleep, or its deadline) sits either in a
 * list of wake-ups armed in increasing order or, out of order, in a 4-ary min-heap with its key
 * inline; the scheduler's blocking io_uring_enter waits no longer than the earliest of them. A sleep
 * thus costs no SQE at all; arming or cancelling one is O(1) in the list and O(log n) in the heap.
 */
#include <stdlib.h>
#include <time.h>

#include "base/fault.h"
#include "sched/sched.h"
#include "sched/timer.h"

/* A 4-ary heap: half the depth of a binary one, and a node's children share a cache line. */
#define ARITY 4

static inline void place(struct urt__timer_heap *h, uint32_t i, struct urt__timer_entry e)
{
    h->items[i] = e;
    e.task->heap_index = i + 1;
}

static void sift_up(struct urt__timer_heap *h, uint32_t i)
{
    struct urt__timer_entry e = h->items[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / ARITY;
        if (h->items[parent].at <= e.at)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, e);
}

static void sift_down(struct urt__timer_heap *h, uint32_t i)
{
    struct urt__timer_entry e = h->items[i];
    for (;;) {
        uint32_t first = ARITY * i + 1;
        if (first >= h->len)
            break;
        uint32_t last = first + ARITY < h->len ? first + ARITY : h->len;
        uint32_t c = first;
        for (uint32_t k = first + 1; k < last; k++)
            if (h->items[k].at < h->items[c].at)
                c = k;
        if (e.at <= h->items[c].at)
            break;
        place(h, i, h->items[c]);
        i = c;
    }
    place(h, i, e);
}

static void fifo_unlink(struct urt__timer_heap *h, struct urt_task *t)
{
    if (t->timer_prev)
        t->timer_prev->timer_next = t->timer_next;
    else
        h->fifo_head = t->timer_next;
    if (t->timer_next)
        t->timer_next->timer_prev = t->timer_prev;
    else
        h->fifo_tail = t->timer_prev;
    h->fifo_len--;
    t->heap_index = 0;
}

static void grow_here(struct urt_runtime *rt, void *p)
{
    (void)rt;
    struct urt__timer_heap *h = p;
    uint32_t ncap = h->cap ? h->cap * 2 : 256;
    struct urt__timer_entry *items = urt__realloc(h->items, (size_t)ncap * sizeof *items);
    if (!items)
        return;
    h->items = items;
    h->cap = ncap;
}

/* realloc may need more stack than a compact task has: it runs on the scheduler's. */
static int grow(struct urt__timer_heap *h)
{
    uint32_t cap = h->cap;
    urt__on_sched_stack(urt__rt, grow_here, h);
    return h->cap > cap ? 0 : -ENOMEM;
}

int urt__timer_arm(struct urt__timer_heap *h, struct urt_task *t, uint64_t at)
{
    if (t->heap_index && t->wake_at == at)
        return 0;
    if (t->heap_index == URT__IN_FIFO)
        fifo_unlink(h, t);
    /*
     * Most wake-ups are armed in increasing order (everyone sleeps a second, every request gets
     * thirty): those go to the tail of a list, O(1) both ways and no cache misses, and only the
     * out-of-order rest pays for the heap.
     */
    if (!t->heap_index) {
        /* Room in the heap for every armed timer, in the list or not: moving one from the list to
           the heap (urt__timers_expire following a deadline) then never allocates, so never fails. */
        if (h->len + h->fifo_len >= h->cap && grow(h) < 0)
            return -ENOMEM;
    }
    if (!t->heap_index && (!h->fifo_tail || at >= h->fifo_tail->wake_at)) {
        t->wake_at = at;
        t->heap_index = URT__IN_FIFO;
        t->timer_next = NULL;
        t->timer_prev = h->fifo_tail;
        if (h->fifo_tail)
            h->fifo_tail->timer_next = t;
        else
            h->fifo_head = t;
        h->fifo_tail = t;
        h->fifo_len++;
        return 0;
    }
    if (t->heap_index) {
        uint32_t i = t->heap_index - 1;
        uint64_t old = h->items[i].at;
        h->items[i].at = at;
        t->wake_at = at;
        if (at < old)
            sift_up(h, i);
        else
            sift_down(h, i);
        return 0;
    }
    t->wake_at = at;
    h->items[h->len] = (struct urt__timer_entry){ at, t };
    sift_up(h, h->len++);
    return 0;
}

void urt__timer_disarm(struct urt__timer_heap *h, struct urt_task *t)
{
    if (!t->heap_index)
        return;
    if (t->heap_index == URT__IN_FIFO) {
        fifo_unlink(h, t);
        return;
    }
    uint32_t i = t->heap_index - 1;
    t->heap_index = 0;
    struct urt__timer_entry last = h->items[--h->len];
    if (i == h->len)
        return;
    place(h, i, last);
    if (i > 0 && h->items[(i - 1) / ARITY].at > last.at)
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
        uint64_t due = t->wake_at;
        bool fire = t->state == URT__PARKED && t->wait_kind == URT__WAIT_SLEEP;
        if (fire) {
            /* The sleep is over; one that ends exactly at the deadline counts as timed out. */
            if (t->deadline && t->wake_at >= t->deadline)
                t->flags |= URT__TIMED_OUT;
        } else if (t->deadline > now) {
            /* A deadline's timer, armed before the deadline was pushed later (urt_deadline
               leaves it where it was, so that a server re-arming its idle timeout on every
               message does no timer work): follow the deadline. Cannot fail (see
               urt__timer_arm). */
            urt__timer_arm(&rt->timers, t, t->deadline);
            continue;
        } else if (t->deadline) {
            t->flags |= URT__TIMED_OUT;
            due = t->deadline;
            fire = true;
        }
        urt__timer_disarm(&rt->timers, t);
        if (now - due > rt->st.timer_late_max_ns)
            rt->st.timer_late_max_ns = now - due;
        if (fire)
            urt__interrupt(rt, t);
    }
}

/* ---- the public calls ---- */

uint64_t urt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return urt__ns(&ts);
}

uint64_t urt_now_coarse(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        return urt_now();
    return urt__ns(&ts);
}

/*
 * The coarse clock is the monotonic one as of the last whole tick the kernel folded in: under two
 * ticks behind (README gives the lag measured), more while timekeeping stalls - until a CPU whose
 * tick runs forces an update after 5 stalled ticks (Linux 5.19 on), and not even then on
 * nohz_full CPUs.
 * Eight ticks and a millisecond leave room; without a coarse clock the precise one decides.
 */
uint64_t urt__coarse_slack(void)
{
    struct timespec res, ts;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0 || res.tv_sec != 0 ||
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        return UINT64_MAX;
    return 8 * (uint64_t)res.tv_nsec + 1000000ull;
}

uint64_t urt_deadline(uint64_t abs_ns)
{
    struct urt_task *self = urt__self();
    if (!self)
        return 0;
    uint64_t old = self->base_deadline;
    self->base_deadline = abs_ns;
    if (unlikely(self->scope != NULL)) {
        urt__scope_update(urt__rt, self);   /* the outermost scope: the earliest still wins */
        return old;
    }
    self->deadline = abs_ns;
    /* A timer left armed by an earlier call stays when the deadline moves later: it will follow
       the deadline when it fires (urt__timers_expire). Earlier, or none: it must go. */
    if (self->heap_index && (abs_ns == 0 || abs_ns < self->wake_at))
        urt__timer_disarm(&urt__rt->timers, self);
    return old;
}
