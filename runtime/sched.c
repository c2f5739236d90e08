/*
 * sched.c - the run queue, parking and waking, and the scheduler loop.
 *
 * A task that parks or yields switches straight to the next ready task; the scheduler's own
 * context (urt_run's stack) is entered only when nothing is ready, to block in io_uring_enter.
 * A round of the run queue is the tasks that were ready when it began (at most 256); after each
 * round the queued SQEs are submitted and completions reaped (one enter, none if no I/O is in
 * flight) and expired timers fire, so tasks that keep yielding cannot starve I/O, and SQEs queued
 * during a round go in one batch.
 */
#include <stdio.h>
#include <stdlib.h>

#include "runtime.h"
#include "ring.h"
#include "timer.h"

#if defined(__SANITIZE_ADDRESS__)
#define URT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define URT_ASAN 1
#endif
#endif

#ifdef URT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

__thread struct urt_runtime *urt__rt;

static inline struct urt_task *runq_pop(struct urt_runtime *rt)
{
    struct urt_task *t = rt->runq_head;
    if (t) {
        struct urt_task *n = t->next;
        rt->runq_head = n;
        if (!n) {
            rt->runq_tail = NULL;
        } else if (rt->runq_len > 16) {
            /* With many tasks, what the next ones resume from is cold: two stages ahead, the
               header (the header of n was asked for one pop ago, so reading it here is cheap);
               one stage ahead, n's saved registers and the frames above them, at n->sp, and the
               top of its stack, just below the header. (With a few tasks all of it is in the
               cache already and the prefetches would only cost instructions.) */
            if (n->next)
                __builtin_prefetch(n->next, 1);
            const char *sp = (const char *)n->sp, *top = (const char *)n;
            __builtin_prefetch(sp, 1);
            __builtin_prefetch(sp + 64, 1);
            __builtin_prefetch(sp + 128, 1);
            __builtin_prefetch(sp + 192, 1);
            __builtin_prefetch(top - 64, 1);
            __builtin_prefetch(top - 128, 1);
        }
        rt->runq_len--;
    }
    return t;
}

/*
 * A round is the tasks ready when it starts, at most ROUND_MAX of them: with a million ready tasks
 * a whole-queue round would leave completions and expired timers waiting for a second or more.
 */
#define ROUND_MAX 256

static inline uint64_t round_length(const struct urt_runtime *rt)
{
    return rt->runq_len < ROUND_MAX ? rt->runq_len : ROUND_MAX;
}

/* After a poll of the ring (or none): the clock, the timers that expired, the next round. Tasks
   that only yield to each other make no system call here, not even for the clock. */
static void start_round(struct urt_runtime *rt, bool polled)
{
    bool timers = urt__timers_armed(&rt->timers) != 0;
    if (polled || timers)
        rt->clock = urt_now();
    if (timers)
        urt__timers_expire(rt, rt->clock);
    rt->turn_left = round_length(rt);
}

/* Between rounds: submit, reap and fire timers without blocking. */
static void end_of_round(struct urt_runtime *rt)
{
    bool busy = urt__ring_busy(rt);
    if (busy)
        urt__ring_poll(rt, false, 0);
    start_round(rt, busy);
}

/* ---- switching, with the sanitizer told about each change of stack ---- */

static inline void asan_start(struct urt_runtime *rt, void **fake_save, struct urt_task *to)
{
#ifdef URT_ASAN
    if (to)
        __sanitizer_start_switch_fiber(fake_save, to->stack.base + to->stack.guard,
                                       (size_t)((char *)to - (to->stack.base + to->stack.guard)));
    else
        __sanitizer_start_switch_fiber(fake_save, rt->sched_asan_bottom, rt->sched_asan_size);
#else
    (void)rt; (void)fake_save; (void)to;
#endif
}

static inline void asan_finish(struct urt_runtime *rt, void *fake)
{
#ifdef URT_ASAN
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(fake, &bottom, &size);
    if (!rt->sched_asan_bottom) {
        rt->sched_asan_bottom = (void *)bottom;
        rt->sched_asan_size = size;
    }
#else
    (void)rt; (void)fake;
#endif
}

/* After any switch lands: free the stack of a detached task that just ended. */
static inline void after_switch(struct urt_runtime *rt)
{
    if (unlikely(rt->zombie != NULL)) {
        struct urt_task *z = rt->zombie;
        rt->zombie = NULL;
        urt__task_release(rt, z);
    }
}

/* Leaves the current task (which has already been queued, parked or finished) for `to`, or for
   the scheduler when to is NULL. Returns when the task is resumed. */
static inline __attribute__((always_inline))
void switch_from(struct urt_runtime *rt, struct urt_task *self, struct urt_task *to)
{
    if (unlikely(!self->stack.guard) &&
        unlikely(*urt__stack_canary(&self->stack) != URT__CANARY))
        urt__overflow_report(self, NULL);
    rt->st.switches++;
    void **fake = self->state == URT__DONE ? NULL : &self->asan_fake_stack;
    asan_start(rt, fake, to);
    if (to) {
        to->state = URT__RUNNING;
        rt->current = to;
        urt__ctx_switch(&self->sp, to->sp);
    } else {
        rt->current = NULL;
        urt__ctx_switch(&self->sp, rt->sched_sp);
    }
    asan_finish(rt, self->asan_fake_stack);
    after_switch(rt);
}

/* The next task of this round, or NULL to go to the scheduler (nothing ready). */
static inline struct urt_task *next_in_round(struct urt_runtime *rt)
{
    if (rt->turn_left == 0 && rt->runq_head)
        end_of_round(rt);
    struct urt_task *t = runq_pop(rt);
    if (t && rt->turn_left)
        rt->turn_left--;
    return t;
}

/* First code of every task, on its own stack: finish the switch that started it. */
void urt__task_started(struct urt_runtime *rt)
{
    asan_finish(rt, NULL);
    after_switch(rt);
}

void urt__park(struct urt_runtime *rt)
{
    struct urt_task *self = rt->current;
    if (self->state == URT__RUNNING) {
        self->state = URT__PARKED;
        self->parked_at = rt->clock;
    }
    switch_from(rt, self, next_in_round(rt));
}

/* The last switch away from a finished task (the caller never returns). */
void urt__exit_switch(struct urt_runtime *rt) __attribute__((noreturn));
void urt__exit_switch(struct urt_runtime *rt)
{
    struct urt_task *self = rt->current;
    switch_from(rt, self, next_in_round(rt));
    abort(); /* unreachable: nothing resumes a finished task */
}

int urt_yield(void)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (unlikely(!self))
        return -EPERM;
    int err = urt__check_blocking(self);
    if (err)
        return err;
    urt__ready(rt, self);
    struct urt_task *next = next_in_round(rt);
    if (next == self) {  /* alone in the queue: nothing to switch to */
        self->state = URT__RUNNING;
        return 0;
    }
    switch_from(rt, self, next);
    return 0;
}

int urt__wait_status(struct urt_task *t)
{
    if (t->flags & URT__CANCELLED)
        return -ECANCELED;
    if (t->flags & URT__TIMED_OUT)
        return -ETIMEDOUT;
    return 0;
}

/* Cancel or deadline for a parked task: end its wait the way its kind of wait allows. */
void urt__interrupt(struct urt_runtime *rt, struct urt_task *t)
{
    if (t->state != URT__PARKED)
        return;
    switch (t->wait_kind) {
    case URT__WAIT_IO: {
        /* The operation's buffers live on t's stack: ask the kernel to cancel it and keep t
           parked until the operation's own completion arrives. */
        struct urt__op *op = t->wait;
        if (op->done || (t->flags & URT__KILL_SENT))
            return;
        t->flags |= URT__KILL_SENT;
        if (op->halves != 0) {
            urt__pair_cancel(rt, t);   /* urt_send_recv: either half may be in the kernel */
            return;
        }
        struct io_uring_sqe *sqe = urt__sqe_cancel(rt);
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
        io_uring_sqe_set_data64(sqe, URT__UDATA_IGNORE);
        return;
    }
    case URT__WAIT_SLEEP:
        urt__ready(rt, t);
        return;
    case URT__WAIT_QUEUE: {
        struct urt__waiter *w = t->wait;
        if (w->queue)
            urt__wq_remove(w);
        w->result = urt__wait_status(t);
        w->done = true;
        urt__ready(rt, t);
        return;
    }
    default:
        return;
    }
}

/* ---- waiter queues: join, channels, groups ---- */

void urt__wq_push(struct urt__wqueue *q, struct urt__waiter *w)
{
    w->queue = q;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}

void urt__wq_remove(struct urt__waiter *w)
{
    struct urt__wqueue *q = w->queue;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->queue = NULL;
    w->prev = w->next = NULL;
}

struct urt__waiter *urt__wq_pop(struct urt__wqueue *q)
{
    struct urt__waiter *w = q->head;
    if (w)
        urt__wq_remove(w);
    return w;
}

void urt__wq_wake(struct urt_runtime *rt, struct urt__waiter *w, int result)
{
    if (w->queue)
        urt__wq_remove(w);
    w->result = result;
    w->done = true;
    if (w->task->state == URT__PARKED && w->task->wait == w)
        urt__ready(rt, w->task);
}

void urt__wq_wake_all(struct urt_runtime *rt, struct urt__wqueue *q, int result)
{
    struct urt__waiter *w;
    while ((w = urt__wq_pop(q)))
        urt__wq_wake(rt, w, result);
}

/*
 * Parks the current task on q until urt__wq_wake, its cancellation or its deadline. Returns the
 * waker's result, or -ECANCELED / -ETIMEDOUT (w is then off the queue).
 */
int urt__wq_wait(struct urt_runtime *rt, struct urt__wqueue *q, struct urt__waiter *w,
                 bool interruptible)
{
    struct urt_task *self = rt->current;
    int err = interruptible ? urt__check_blocking(self) : 0;
    if (err)
        return err;
    w->task = self;
    w->done = false;
    w->result = 0;
    if (q)
        urt__wq_push(q, w);
    else
        w->queue = NULL;
    if (interruptible && self->deadline &&
        urt__deadline_arm(&rt->timers, self) < 0) {
        if (w->queue)
            urt__wq_remove(w);
        return -ENOMEM;
    }
    self->flags &= ~URT__TIMED_OUT;
    self->wait_kind = interruptible ? URT__WAIT_QUEUE : URT__WAIT_QUEUE_NOINTR;
    self->wait = w;
    while (!w->done)
        urt__park(rt);
    self->wait_kind = URT__WAIT_NONE;
    self->wait = NULL;
    urt__timer_disarm(&rt->timers, self);
    return w->result;
}

/* ---- the scheduler ---- */

/* Every live task is parked on something nothing can complete: wake them all with -EDEADLK
   rather than block forever. */
static void break_deadlock(struct urt_runtime *rt)
{
    for (struct urt_task *t = rt->all_tasks; t; t = t->all_next) {
        if (t->state != URT__PARKED ||
            (t->wait_kind != URT__WAIT_QUEUE && t->wait_kind != URT__WAIT_QUEUE_NOINTR))
            continue;
        struct urt__waiter *w = t->wait;
        urt__wq_wake(rt, w, -EDEADLK);
    }
}

void urt__sched_loop(struct urt_runtime *rt)
{
    for (;;) {
        struct urt_task *t = next_in_round(rt);
        if (t) {
            rt->st.switches++;
            t->state = URT__RUNNING;
            rt->current = t;
            asan_start(rt, &rt->sched_asan_fake, t);
            urt__ctx_switch(&rt->sched_sp, t->sp);
            asan_finish(rt, rt->sched_asan_fake);
            after_switch(rt);
            continue;
        }
        if (rt->st.tasks_live == 0)
            break;
        /* Nothing ready: give back pages of stacks freed beyond the pool's mark, then block
           until a completion or the earliest timer. */
        urt__stack_trim(&rt->stacks);
        struct urt_task *first = urt__timer_first(&rt->timers);
        if (!first && (!urt__ring_busy(rt) ||
                       (unlikely(rt->listeners != NULL) && urt__listeners_only_idle(rt)))) {
            break_deadlock(rt);
            if (!rt->runq_head) {
                fprintf(stderr, "urt: every task waits and nothing can wake them\n");
                abort();
            }
            continue;
        }
        uint64_t timeout = UINT64_MAX;
        if (first) {
            uint64_t now = urt_now();
            timeout = first->wake_at > now ? first->wake_at - now : 0;
        }
        if (timeout)
            urt__ring_poll(rt, true, timeout);
        else if (urt__ring_busy(rt))
            urt__ring_poll(rt, false, 0);
        start_round(rt, true);
    }
}
