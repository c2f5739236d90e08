/* runtime.h - the runtime and task records shared by the files of runtime/. Not installed. */
#ifndef URT_RUNTIME_H
#define URT_RUNTIME_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <liburing.h>

#include "urt.h"
#include "context.h"
#include "stack.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define URT__IN_FIFO UINT32_MAX
#define URT__TASK_MAGIC 0x7572745f7461736bull /* "urt_task": tells a live handle from garbage */

enum urt__state {
    URT__READY,    /* in the run queue                                   */
    URT__RUNNING,  /* the current task                                   */
    URT__PARKED,   /* waiting; t->wait_kind says on what                 */
    URT__DONE,     /* returned; waits to be joined or released           */
};

/* What a parked task waits on: tells urt_cancel and the timers how to interrupt it. */
enum urt__wait_kind {
    URT__WAIT_NONE,
    URT__WAIT_IO,      /* a kernel operation: interrupt = submit an async cancel, keep waiting   */
    URT__WAIT_SLEEP,   /* only its timer                                                        */
    URT__WAIT_QUEUE,   /* a waiter queue (join, channel, group): interrupt = unlink and wake    */
    URT__WAIT_QUEUE_NOINTR, /* a waiter queue that cancel and deadline leave alone (cleanup)     */
};

enum urt__task_flags {
    URT__CANCELLED   = 1u << 0,  /* urt_cancel was called: blocking calls fail            */
    URT__DETACHED    = 1u << 1,  /* releases itself at exit                                 */
    URT__JOINED      = 1u << 2,  /* a joiner holds it; a second join is an error            */
    URT__TIMED_OUT   = 1u << 3,  /* its deadline fired during the current blocking call     */
    URT__KILL_SENT   = 1u << 4,  /* an async cancel is in flight for its current operation  */
    URT__IN_GROUP    = 1u << 5,  /* belongs to a group, which collects its status           */
};

struct urt__op;
struct urt__waiter;
struct urt_group;
struct urt_runtime;
struct urt__blocking;

/* A request the runtime itself owns: user_data is its address | URT__UDATA_INTERNAL, and its
   completion calls fn instead of waking a task. */
struct urt__iop {
    void (*fn)(struct urt_runtime *rt, struct urt__iop *iop, int res, unsigned cqe_flags);
};
#define URT__UDATA_INTERNAL 1ull

/*
 * A task. It lives at the top of its own stack mapping, so that an idle task costs its touched
 * stack pages and nothing else, and spawning needs no allocation beyond the stack.
 */
struct urt_task {
    /* What every switch, park and wake-up touches: the first cache line. */
    void                *sp;          /* saved stack pointer while not running; first for asm  */
    struct urt_task     *next;        /* run queue link                                        */
    uint8_t              state;
    uint8_t              wait_kind;
    uint16_t             flags;
    uint32_t             heap_index;  /* position in the timer heap + 1; 0 = not armed;
                                         URT__IN_FIFO = in the timers' in-order list           */
    void                *wait;        /* struct urt__op * or struct urt__waiter *               */
    uint64_t             deadline;    /* absolute ns, 0 = none                                 */
    uint64_t             wake_at;     /* key in the timer heap while armed                     */
    uint64_t             parked_at;   /* the scheduler's clock when it last parked (urt_dump)  */
    struct urt__stack    stack;       /* its guard is read at every switch away                */
    /* The rest: spawn, exit, join, timers, groups, dumps. */
    uint64_t             magic;
    int                  status;      /* return value once DONE                                */
    uint32_t             pad_;
    urt_fn               fn;
    void                *arg;
    uint64_t             id;
    struct urt_task     *timer_prev, *timer_next;   /* the in-order list                       */
    struct urt__waiter  *joiner;      /* the task waiting in urt_join                          */
    struct urt_group    *group;       /* owning group, with URT__IN_GROUP                      */
    struct urt_task     *all_prev, *all_next;   /* every live task, for shutdown and dumps     */
    struct urt_task     *group_prev, *group_next;
    /* urt_send_recv's cancels: their completions come to pair_cancel (internal), so that a
       round in which every cancel missed (the half in flight not yet cancelable) is sent again;
       the call returns only once none is in flight. */
    struct urt__iop      pair_cancel;
    uint8_t              pair_cancels;    /* in flight                                       */
    uint8_t              pair_cancel_hit; /* one of them found its request                   */
    uint8_t              on_recancel;     /* in rt->recancel                                 */
    struct urt_task     *recancel_next;
    void                *asan_fake_stack;
    char                 name[32];
};

/* An operation in the kernel. It lives on its task's stack; user_data points at it. */
struct urt__op {
    struct urt_task *task;
    int32_t          result;
    uint32_t         done;
    int32_t          fd;       /* for urt_dump */
    uint8_t          opcode;
    uint8_t          halves;   /* urt_send_recv: completions still to come (2, then 1, then 0);
                                  0 for every other operation                                 */
    int32_t          send_result;  /* urt_send_recv: the send's (user_data op | URT__UDATA_LINKED) */
};


/* A parked task in a waiter queue (join, channel, group). Lives on the waiting task's stack. */
struct urt__waiter {
    struct urt_task    *task;
    struct urt__waiter *prev, *next;
    struct urt__wqueue *queue;   /* NULL once woken or unlinked                                 */
    void               *elem;    /* channels: where to copy from or to                          */
    const char         *what;    /* for urt_dump: "join", "chan_send"...                        */
    const void         *obj;     /* for urt_dump: the task, channel or group waited on          */
    int                 result;
    bool                done;
};

struct urt__wqueue {
    struct urt__waiter *head, *tail;
};

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

struct urt_runtime {
    struct io_uring         ring;
    unsigned                ring_flags;        /* IORING_SETUP_* it runs with                  */
    unsigned                sq_reserve;        /* SQ slots kept free for cancel requests      */
    uint32_t               *fd_closes;         /* urt_close calls per fd number (urt_send_recv) */
    size_t                  fd_closes_len;
    bool                    fd_closes_lost;    /* a count could not grow: counts are unsure    */
    struct urt_task        *recancel;          /* tasks whose send_recv needs its cancels sent
                                                  again (after the reap), via recancel_next    */
    struct urt_task        *current;           /* NULL while the scheduler runs                */
    void                   *sched_sp;          /* the scheduler's context (urt_run's stack)    */
    struct urt_task        *runq_head, *runq_tail;
    uint64_t                runq_len;
    uint64_t                turn_left;         /* tasks left in this round before polling I/O */
    struct urt_task        *all_tasks;         /* list of live tasks                           */
    struct urt_task        *zombie;            /* a detached task whose stack frees after the
                                                  switch away from it                          */
    struct urt__timer_heap  timers;
    struct urt__stack_pool  stacks;
    size_t                  default_slot;      /* the default stack size's slot length       */
    uint64_t                next_id;
    bool                    stopping;          /* main returned: spawning is refused          */
    int                     main_status;
    struct urt_stats        st;
    uint64_t                clock;             /* urt_now() as of the last scheduler poll     */
    uint64_t                coarse_slack;      /* how far urt_now_coarse() may lag urt_now()  */
    void                   *sched_asan_bottom; /* the scheduler stack, for ASan fibers         */
    size_t                  sched_asan_size;
    void                   *sched_asan_fake;
    void                   *altstack;          /* ours, if the thread had none             */
    struct urt__blocking   *blocking;          /* helper threads, started on first use     */
    struct urt_listener    *listeners;         /* live urt_listeners (multishot accepts)      */
    unsigned                blocking_threads;  /* at most this many                        */
    bool                    kernel_timers;     /* sleeps as IORING_OP_TIMEOUT (measurement)   */
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
    if (unlikely(t->flags & URT__CANCELLED))
        return -ECANCELED;
    if (unlikely(t->deadline != 0) && urt__passed(urt__rt, t->deadline))
        return -ETIMEDOUT;
    return 0;
}

/* sched.c */
void urt__park(struct urt_runtime *rt);                 /* current task waits; someone readies it */
void urt__interrupt(struct urt_runtime *rt, struct urt_task *t); /* cancel/deadline hit t's wait */
int  urt__wait_status(struct urt_task *t);              /* same, after a wait was interrupted  */
void urt__sched_loop(struct urt_runtime *rt);
void urt__task_started(struct urt_runtime *rt);
void urt__exit_switch(struct urt_runtime *rt) __attribute__((noreturn));

/* task.c */
struct urt_task *urt__task_new(struct urt_runtime *rt, urt_fn fn, void *arg,
                               const struct urt_spawn_opts *opts);
void urt__task_release(struct urt_runtime *rt, struct urt_task *t);
struct urt_task *urt__task_of(const urt_task *handle);   /* NULL: not a live task's handle */
urt_task *urt__handle(struct urt_task *t);
void urt__cancel(struct urt_runtime *rt, struct urt_task *t);
void urt__task_main(struct urt_task *t) __attribute__((noreturn));

/* waiter queues (sched.c) */
void urt__wq_push(struct urt__wqueue *q, struct urt__waiter *w);
void urt__wq_remove(struct urt__waiter *w);
struct urt__waiter *urt__wq_pop(struct urt__wqueue *q);
void urt__wq_wake(struct urt_runtime *rt, struct urt__waiter *w, int result);
void urt__wq_wake_all(struct urt_runtime *rt, struct urt__wqueue *q, int result);
int  urt__wq_wait(struct urt_runtime *rt, struct urt__wqueue *q, struct urt__waiter *w,
                  bool interruptible);

/* timer.c: how far behind urt_now() urt_now_coarse() can be (generously); UINT64_MAX when there
   is no coarse clock. */
uint64_t urt__coarse_slack(void);

/* overflow.c */
int  urt__overflow_init(struct urt_runtime *rt);     /* SIGSEGV handler, alternate signal stack */
void urt__overflow_exit(struct urt_runtime *rt);
void urt__overflow_report(const struct urt_task *t, const void *fault) __attribute__((noreturn));

/* io.c */
int urt__sleep_kernel(uint64_t wake);

/* blocking.c */
void urt__blocking_exit(struct urt_runtime *rt);
void urt__blocking_rearm(struct urt_runtime *rt);

/* listener.c: ends every listener's multishot accept and frees them (urt_run's end). */
void urt__listeners_exit(struct urt_runtime *rt);
/* True when all that is in flight is listeners' multishot accepts that no task waits on: what
   they accept would wake nobody, so the deadlock check must not count them. */
bool urt__listeners_only_idle(const struct urt_runtime *rt);
/* urt_close(fd) is closing fd: listeners on it are dead. */
void urt__listeners_fd_closed(struct urt_runtime *rt, int fd);
int  urt__blocking_call(urt_fn fn, void *arg, void (*cleanup)(void *, int), bool cancellable,
                        int *result);

/* group.c */
void urt__group_task_done(struct urt_runtime *rt, struct urt_task *t);

#endif
