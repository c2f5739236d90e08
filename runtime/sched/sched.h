/* SPDX-License-Identifier: MIT */
/*
 * sched.h - the runtime record of a thread and the scheduler's calls: readying, parking,
 * interrupting, and running work on the scheduler's own stack.
 */
#ifndef URT_SCHED_H
#define URT_SCHED_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "urt.h"
#include "base/compiler.h"
#include "backend/backend.h"
#include "switch/context.h"
#include "switch/stack.h"
#include "sched/scope.h"
#include "sched/task.h"
#include "sched/timer.h"

struct urt__service;
struct urt__inbox;
struct urt__set;
struct spawn_batch;
struct urt__post;

struct urt_runtime {
    struct urt__backend    *backend;
    struct urt_task        *current;           /* NULL while the scheduler runs                */
    void                   *sched_sp;          /* the scheduler's context (urt_run's stack)    */
    struct urt_task        *runq_head, *runq_tail;
    uint64_t                runq_len;
    uint64_t                turn_left;         /* tasks left in this round before polling I/O */
    struct urt_task        *all_tasks;         /* list of live tasks                           */
    struct urt_task        *zombie;            /* a detached task whose stack frees after the
                                                  switch away from it                          */
    struct urt_task        *freed;             /* released tasks whose stacks the scheduler
                                                  returns to the pool (via next)               */
    /* A call a task asked to run on the scheduler's stack (urt__on_sched_stack). */
    void                  (*call_fn)(struct urt_runtime *rt, void *arg);
    void                   *call_arg;
    struct urt_task        *call_from;
    struct urt__timer_heap  timers;
    struct urt__stack_pool  stacks;
    size_t                  default_slot;      /* the default stack size's slot length       */
    uint64_t                next_id;
    bool                    stopping;          /* main returned: spawning is refused          */
    int                     main_status;
    int                     fatal;             /* the backend failed for good: -errno         */
    struct urt_stats        st;
    uint64_t                clock;             /* urt_now() as of the last scheduler poll     */
    uint64_t                coarse_slack;      /* how far urt_now_coarse() may lag urt_now()  */
    void                   *sched_asan_bottom; /* the scheduler stack, for ASan fibers         */
    size_t                  sched_asan_size;
    void                   *sched_asan_fake;
    void                   *sched_tsan_fiber;  /* ThreadSanitizer: the scheduler's fiber      */
    void                   *altstack;          /* ours, if the thread had none             */
    struct urt__service    *services;          /* registered on first use (service.h)         */
    struct urt__inbox      *inbox;             /* posts from other threads (urt_run_threads)  */
    struct urt__set        *set;               /* the set this runtime belongs to, or NULL    */
    int                     index;             /* its index in the set (0 alone)              */
    uint64_t                shared_waiters;    /* tasks parked on what another thread can end */
    struct urt_task        *main_task;         /* the first task                             */
    struct spawn_batch     *spawn_open;        /* urt_spawn_on's batches not yet posted       */
    struct spawn_batch    **spawn_batch;       /* the open batch per target index             */
    struct spawn_batch     *spawn_backlog;     /* received requests not yet started, in order */
    struct spawn_batch     *spawn_backlog_tail;
    struct urt__post       *wake_cache;        /* wake-up posts kept for reuse (xwait.c)      */
    bool                    inbox_due;         /* a wake-up came: run the inbox's posts       */
    unsigned                flushing;          /* inside a poll that flushes a full queue     */
    unsigned                wake_cached;
    struct urt_config       cfg;               /* as urt_run was given it, defaults filled in */
};

extern __thread struct urt_runtime *urt__rt;

/* The current task, or NULL (with errno-style failure up to the caller) outside one. */
static inline struct urt_task *urt__self(void)
{
    struct urt_runtime *rt = urt__rt;
    return rt ? rt->current : NULL;
}

/* Appends t to the run queue. */
static inline void urt__ready(struct urt_runtime *rt, struct urt_task *t)
{
    t->state = URT__READY;
    t->next = NULL;
    if (rt->runq_tail)
        rt->runq_tail->next = t;
    else
        rt->runq_head = t;
    rt->runq_tail = t;
    rt->runq_len++;
}

/* A clock reading in nanoseconds, as urt_now and urt_now_coarse give it. */
static inline uint64_t urt__ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

/*
 * True once urt_now() >= deadline. Every blocking call under a deadline asks, so the coarse clock
 * (a quarter of the precise one's cost) settles the usual case, a deadline seconds away, and the
 * precise clock decides within coarse_slack of it. The coarse clock trails by under two ticks,
 * more only while the kernel's timekeeping stalls (a preempted vCPU, nohz_full); should it trail
 * by more than the slack, a call made just after its deadline may start: the deadline's timer,
 * already due, then ends it at the next scheduler round with -ETIMEDOUT, unless it completes at
 * once (a channel or yield that need not wait succeeds).
 */
static inline bool urt__passed(const struct urt_runtime *rt, uint64_t deadline)
{
    if (likely(rt->coarse_slack != UINT64_MAX)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);   /* works: urt__coarse_slack tried it */
        uint64_t coarse = urt__ns(&ts);
        if (deadline > coarse && deadline - coarse > rt->coarse_slack)
            return false;
    }
    return urt_now() >= deadline;
}

/* -ECANCELED or -ETIMEDOUT when a blocking call may not start, else 0. */
static inline int urt__check_blocking(struct urt_task *t)
{
    int err = 0;
    if (unlikely(t->flags & URT__CANCELLED))
        err = -ECANCELED;
    else if (unlikely(t->deadline != 0) && urt__passed(urt__rt, t->deadline))
        err = -ETIMEDOUT;
    if (unlikely(err && t->scope))
        urt__scope_blame(t, err);
    return err;
}

/* The current task waits until someone readies it (and anything that was ready runs). */
void urt__park(struct urt_runtime *rt);
/* A cancel or deadline hit t: end its wait the way its kind of wait allows. */
void urt__interrupt(struct urt_runtime *rt, struct urt_task *t);
/* -ECANCELED / -ETIMEDOUT / 0 after a wait was interrupted, by the task's flags. */
int  urt__wait_status(struct urt_task *t);

/*
 * Runs fn(rt, arg) on the scheduler's stack and returns: directly when already there, else by a
 * switch to the scheduler and back. For what may need more stack than a compact task has: libc
 * (malloc, pthread_create, qsort), reaping and completion handlers.
 */
void urt__on_sched_stack(struct urt_runtime *rt, void (*fn)(struct urt_runtime *rt, void *arg),
                         void *arg);

/* calloc and free for the runtime's records made and freed by tasks (groups, channels): on the
   scheduler's stack, since libc's allocator may need more than a compact task has. The calloc
   fails (NULL) under fault injection like the runtime's own. */
void *urt__sched_calloc(struct urt_runtime *rt, size_t n, size_t size);
void  urt__sched_free(struct urt_runtime *rt, void *p);

/* Submits, reaps and runs the services' post-reap hooks; records a fatal backend error. Only on
   the scheduler's stack. */
void urt__sched_poll(struct urt_runtime *rt, bool wait, uint64_t timeout_ns);
/* The backend's flush callback (urt__backend_config.flush): a poll, on the scheduler's stack. */
void urt__sched_flush(void *rt);
/* On the scheduler's stack, outside the loop (urt_run's end, services' runtime_end): polls until
   *flag is false or the backend fails. */
void urt__sched_drain(struct urt_runtime *rt, const bool *flag);

/* run.c: runs a runtime on the calling thread (urt_run; each thread of urt_run_threads, with its
   set and index). */
int urt__run(urt_fn main_fn, void *arg, const struct urt_config *cfg, struct urt__set *set,
             int index);
/* run.c: SIGPIPE. urt__run blocks it in its thread, where the kernel sends the one a write to a
   reader that has gone raises. After such an -EPIPE, urt__sigpipe_consume takes it (on the
   scheduler's stack), unless one was pending when urt_run began (the caller's) or a task asked
   for SIGPIPE through urt_signal_wait (urt__sigpipe_wanted: then it is left for that call). */
void urt__sigpipe_consume(struct urt_runtime *rt);
void urt__sigpipe_wanted(void);

/* threads.c: what a runtime of a set does when it starts and when its first task returns. */
void urt__set_started(struct urt_runtime *rt);
void urt__set_stopping(struct urt_runtime *rt);
/* Posts urt_spawn_on's open batches (the scheduler, before each poll; and at the end). */
void urt__set_flush(struct urt_runtime *rt);
/* Starts received spawn requests while the run queue is short (the scheduler, each round). */
void urt__set_backlog(struct urt_runtime *rt);
/* Every task has ended: open requests go (ended targets drop them), received ones are freed. */
void urt__set_end(struct urt_runtime *rt);

/* sched.c: the loop, entered by urt_run; returns once no task is left or the backend failed. */
void urt__sched_loop(struct urt_runtime *rt);
void urt__task_started(struct urt_runtime *rt);
void urt__exit_switch(struct urt_runtime *rt) __attribute__((noreturn));

/* task.c */
struct urt_task *urt__task_new(struct urt_runtime *rt, urt_fn fn, void *arg,
                               const struct urt_spawn_opts *opts);
void urt__task_release(struct urt_runtime *rt, struct urt_task *t);
/* Returns the stacks urt__task_release left to the scheduler (on its stack). */
void urt__task_release_deferred(struct urt_runtime *rt);
/* The live task a handle names, NULL if none; *foreign: the handle points outside this runtime's
   stack arenas (another runtime's task, or garbage), which is never read. */
struct urt_task *urt__task_of(struct urt_runtime *rt, const urt_task *handle, bool *foreign);
urt_task *urt__handle(struct urt_task *t);
void urt__cancel(struct urt_runtime *rt, struct urt_task *t);
void urt__task_main(struct urt_task *t) __attribute__((noreturn));

/* timer.c: how far behind urt_now() urt_now_coarse() can be (generously); UINT64_MAX when there
   is no coarse clock. */
uint64_t urt__coarse_slack(void);

/* overflow.c */
int  urt__overflow_init(struct urt_runtime *rt);     /* SIGSEGV handler, alternate signal stack */
void urt__overflow_exit(struct urt_runtime *rt);
void urt__overflow_report(const struct urt_task *t, const void *fault) __attribute__((noreturn));

#endif
