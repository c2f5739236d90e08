/* SPDX-License-Identifier: MIT */
/*
 * sched.c - the run queue, parking and waking, and the scheduler loop.
 *
 * A task that parks or yields switches straight to the next ready task of the current round. A
 * round is the tasks that were ready when it began (at most 256); at its end, or when nothing is
 * ready, the task switches to the scheduler's own context (urt_run's stack, Go's g0), which
 * submits the queued operations and reaps completions in one io_uring_enter (blocking only when
 * nothing is ready), fires expired timers and starts the next round. So tasks that keep yielding
 * cannot starve I/O, operations queued during a round go in one batch, and all of the
 * scheduler's own work - reaping, completion handlers, services' hooks, giving stacks back - runs
 * on its stack, never on a task's: a 1 KiB task survives any amount of I/O.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#include "sched/inbox.h"
#include "sched/sched.h"
#include "sched/service.h"
#include "sched/timer.h"
#include "sched/waitq.h"

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
#if defined(__SANITIZE_THREAD__)
#define URT_TSAN 1
#include <sanitizer/tsan_interface.h>
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
    bool timers = urt__timers_armed(&rt->timers) != 0 && !rt->fatal;
    if (polled || timers)
        rt->clock = urt_now();
    if (timers)
        urt__timers_expire(rt, rt->clock);
    rt->turn_left = round_length(rt);
}

/*
 * Whether the kernel has work of ours that a poll would reap. The inbox's armed eventfd read
 * does not count: what it announces is on the inbox's list, which a plain load sees (and a
 * message to the ring only repeats it), so a runtime woken by other threads alone makes no
 * system call between its rounds.
 */
static inline bool kernel_busy(const struct urt_runtime *rt)
{
    uint64_t idle = rt->inbox && rt->inbox->efd_armed;
    return rt->st.ops_inflight > idle;
}

/* Between rounds (on the scheduler's stack): submit, reap and fire timers without blocking. */
static void end_of_round(struct urt_runtime *rt)
{
    bool busy = kernel_busy(rt);
    if (unlikely(rt->freed != NULL))
        urt__task_release_deferred(rt);
    if (busy)
        urt__sched_poll(rt, false, 0);
    else if (rt->inbox)
        urt__inbox_spin_check(rt, rt->inbox);
    if (unlikely(rt->spawn_backlog != NULL))
        urt__set_backlog(rt);
    start_round(rt, busy);
}

/* ---- switching, with the sanitizer told about each change of stack ---- */

static inline void asan_start(struct urt_runtime *rt, void **fake_save, struct urt_task *to)
{
#ifdef URT_TSAN
    /* ThreadSanitizer follows each task as a fiber of its own. */
    __tsan_switch_to_fiber(to ? to->tsan_fiber : rt->sched_tsan_fiber, 0);
#endif
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

/* After any switch lands: free the stack of a detached task that just ended (its stack goes back
   to the pool in a few stores; anything more is left to the scheduler, see urt__task_release). */
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

/* For a task that parks: the next task of this round, or NULL to go to the scheduler (the round
   is over, or nothing is ready). */
static inline struct urt_task *next_in_round(struct urt_runtime *rt)
{
    if (unlikely(rt->turn_left == 0)) {
        /* With nothing in flight there is nothing to reap and nothing to submit: the next round
           starts here (the clock and due timers: list and heap work, no call into libc), and
           tasks that only yield to each other never leave their stacks. */
        if (!rt->runq_head || rt->st.ops_inflight || rt->freed || rt->spawn_backlog)
            return NULL;
        start_round(rt, false);
    }
    struct urt_task *t = runq_pop(rt);
    if (t)
        rt->turn_left--;
    return t;
}

/* For the scheduler: the same, ending the round first when it is over. */
static inline struct urt_task *sched_next(struct urt_runtime *rt)
{
    if (rt->turn_left == 0 && rt->runq_head) {
        end_of_round(rt);
        if (unlikely(rt->fatal))
            return NULL;
    }
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
    if (unlikely(t->scope) && t->wait_kind != URT__WAIT_QUEUE_NOINTR &&
        !(t->wait_kind == URT__WAIT_SHARED && ((struct urt__io_wait *)t->wait)->nointr) &&
        (t->flags & (URT__CANCELLED | URT__TIMED_OUT)))
        urt__scope_blame(t, (t->flags & URT__CANCELLED) ? -ECANCELED : -ETIMEDOUT);
    switch (t->wait_kind) {
    case URT__WAIT_IO:
    case URT__WAIT_SHARED: {
        /* The operation's buffers live on t's stack: its own interrupt asks the kernel to end
           it and keeps t parked until the operation's completion arrives. */
        struct urt__io_wait *w = t->wait;
        w->interrupt(rt, t);
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

/* ---- the scheduler's own stack ---- */

void urt__on_sched_stack(struct urt_runtime *rt, void (*fn)(struct urt_runtime *rt, void *arg),
                         void *arg)
{
    struct urt_task *self = rt->current;
    if (!self) {
        fn(rt, arg);
        return;
    }
    if (unlikely(!self->stack.guard) &&
        unlikely(*urt__stack_canary(&self->stack) != URT__CANARY))
        urt__overflow_report(self, NULL);
    rt->call_fn = fn;
    rt->call_arg = arg;
    rt->call_from = self;
    rt->st.sched_calls++;
    /* Not a switch between tasks: self stays the running task, and resumes right after. */
    asan_start(rt, &self->asan_fake_stack, NULL);
    rt->current = NULL;
    urt__ctx_switch(&self->sp, rt->sched_sp);
    asan_finish(rt, self->asan_fake_stack);
    after_switch(rt);
}

struct alloc_request {
    size_t n, size;
    void  *p;
};

static void calloc_here(struct urt_runtime *rt, void *arg)
{
    (void)rt;
    struct alloc_request *a = arg;
    a->p = urt__calloc(a->n, a->size);
}

static void free_here(struct urt_runtime *rt, void *p)
{
    (void)rt;
    free(p);
}

void *urt__sched_calloc(struct urt_runtime *rt, size_t n, size_t size)
{
    struct alloc_request a = { n, size, NULL };
    if (!rt)
        return urt__calloc(n, size);
    urt__on_sched_stack(rt, calloc_here, &a);
    if (!a.p)
        errno = ENOMEM;
    return a.p;
}

void urt__sched_free(struct urt_runtime *rt, void *p)
{
    if (!rt)
        free(p);
    else if (p)
        urt__on_sched_stack(rt, free_here, p);
}

/* Runs t until it switches to the scheduler, then what it asked the scheduler to run for it,
   resuming it after each such call. */
static void run_task(struct urt_runtime *rt, struct urt_task *t)
{
    t->state = URT__RUNNING;
    rt->st.switches++;
    for (;;) {
        rt->current = t;
        asan_start(rt, &rt->sched_asan_fake, t);
        urt__ctx_switch(&rt->sched_sp, t->sp);
        asan_finish(rt, rt->sched_asan_fake);
        after_switch(rt);
        if (likely(!rt->call_fn))
            return;
        void (*fn)(struct urt_runtime *, void *) = rt->call_fn;
        rt->call_fn = NULL;
        t = rt->call_from;
        fn(rt, rt->call_arg);
        if (unlikely(rt->fatal))
            return;   /* the ring is gone: the loop ends, t is abandoned (urt_run says so) */
    }
}

void urt__sched_poll(struct urt_runtime *rt, bool wait, uint64_t timeout_ns)
{
    if (unlikely(rt->spawn_open != NULL))
        urt__set_flush(rt);   /* their wake-ups go in this enter */
    int err = urt__backend_poll(rt->backend, wait, timeout_ns);
    if (unlikely(err) && !rt->fatal) {
        rt->fatal = err;
        fprintf(stderr, "urt: io_uring_enter failed: %s; this runtime cannot go on and urt_run "
                        "returns it (a forked child using its parent's runtime?)\n",
                strerror(-err));
    }
    for (struct urt__service *s = rt->services; s; s = s->next)
        if (s->ops->post_reap)
            s->ops->post_reap(rt, s);
}

void urt__sched_drain(struct urt_runtime *rt, const bool *flag)
{
    while (*flag && !rt->fatal)
        urt__sched_poll(rt, true, UINT64_MAX);
}

/* The backend's queue is full while an operation is being queued (cfg.flush). */
static void flush_here(struct urt_runtime *rt, void *arg)
{
    (void)arg;
    rt->flushing++;
    urt__sched_poll(rt, false, 0);
    rt->flushing--;
}

void urt__sched_flush(void *ctx)
{
    urt__on_sched_stack(ctx, flush_here, NULL);
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

/* Operations in flight that can wake no task (the services say which). */
static uint64_t idle_ops(const struct urt_runtime *rt)
{
    uint64_t n = 0;
    for (const struct urt__service *s = rt->services; s; s = s->next)
        if (s->ops->idle_ops)
            n += s->ops->idle_ops(rt, s);
    return n;
}

/*
 * Tasks wait for another thread (a shared channel): a wake-up from it costs that thread an
 * inter-processor interrupt and this one a sleep and a wake in the kernel, tens of microseconds
 * on a virtual machine. Polling without blocking for a little while first catches a prompt
 * answer (a ping-pong, a request handed on) at the price of that while's CPU, as Go's idle
 * processors spin before they sleep.
 */
#define SPIN_NS 50000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void spin_for_others(struct urt_runtime *rt)
{
    struct urt__inbox *in = rt->inbox;
    if (!in)
        return;
    urt__inbox_spin_begin(in);
    uint64_t end = urt_now() + SPIN_NS;
    for (unsigned i = 1; !rt->runq_head && !rt->fatal; i++) {
        if (urt__inbox_spin_check(rt, in))
            break;
        if (i % 64 == 0) {
            if (kernel_busy(rt))
                urt__sched_poll(rt, false, 0);   /* the kernel's completions too, now and then */
            if (urt_now() >= end)
                break;
        }
        cpu_relax();
    }
    urt__inbox_spin_end(rt, in);
}

void urt__sched_loop(struct urt_runtime *rt)
{
    while (likely(!rt->fatal)) {
        struct urt_task *t = sched_next(rt);
        if (t) {
            run_task(rt, t);
            continue;
        }
        if (rt->st.tasks_live == 0 || unlikely(rt->fatal))
            break;
        /* Work from other threads that is not a task yet - posts a flush left for later,
           received spawns - is work, not a deadlock: run it first. */
        if (unlikely(rt->inbox_due || rt->spawn_backlog != NULL)) {
            if (rt->inbox_due)
                urt__inbox_run_due(rt);
            if (rt->spawn_backlog)
                urt__set_backlog(rt);
            start_round(rt, false);
            continue;
        }
        /* Nothing ready: give back pages of stacks freed beyond the pool's mark, then block
           until a completion or the earliest timer. */
        if (rt->freed)
            urt__task_release_deferred(rt);
        urt__stack_trim(&rt->stacks);
        struct urt_task *first = urt__timer_first(&rt->timers);
        if (!first && rt->st.ops_inflight <= idle_ops(rt)) {
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
        if (timeout && rt->shared_waiters)
            spin_for_others(rt);
        if (timeout && !rt->runq_head)
            urt__sched_poll(rt, true, timeout);
        else if (kernel_busy(rt))
            urt__sched_poll(rt, false, 0);
        if (unlikely(rt->spawn_backlog != NULL))
            urt__set_backlog(rt);
        start_round(rt, true);
    }
}
