/* SPDX-License-Identifier: MIT */
/* task.h - the task record: what the scheduler, the timers and the waits know of a task. */
#ifndef URT_SCHED_TASK_H
#define URT_SCHED_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "urt.h"
#include "switch/stack.h"

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
    URT__WAIT_IO,      /* a kernel operation: t->wait is a struct urt__io_wait                  */
    URT__WAIT_SLEEP,   /* only its timer                                                        */
    URT__WAIT_QUEUE,   /* a waiter queue (join, channel, group): interrupt = unlink and wake    */
    URT__WAIT_QUEUE_NOINTR, /* a waiter queue that cancel and deadline leave alone (cleanup)     */
    URT__WAIT_SHARED,  /* something other threads can end: t->wait is a struct urt__io_wait     */
};

enum urt__task_flags {
    URT__CANCELLED   = 1u << 0,  /* blocking calls fail: urt_cancel or a scope's cancel,
                                    unless a shield holds them off (scope.c keeps it)       */
    URT__DETACHED    = 1u << 1,  /* releases itself at exit                                 */
    URT__JOINED      = 1u << 2,  /* a joiner holds it; a second join is an error            */
    URT__TIMED_OUT   = 1u << 3,  /* its deadline fired during the current blocking call     */
    URT__KILL_SENT   = 1u << 4,  /* its current operation has been asked to end             */
    URT__IN_GROUP    = 1u << 5,  /* belongs to a group, which collects its status           */
    URT__CANCEL_CALLED = 1u << 6, /* urt_cancel was called (sticky; shields hide it)         */
};

struct urt_task;
struct urt_runtime;
struct urt__waiter;
struct urt__scope;

/*
 * A wait on a kernel operation, as the scheduler sees it (the operation itself is the ops
 * layer's): how a cancel or a deadline ends it. interrupt must leave the task parked until the
 * operation's completion has come - the kernel may write into the task's stack until then.
 */
struct urt__io_wait {
    void (*interrupt)(struct urt_runtime *rt, struct urt_task *t);
    bool  nointr;   /* a wait no cancel or deadline ends: it fires no scope either */
};

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
    void                *wait;        /* struct urt__io_wait * or struct urt__waiter *          */
    uint64_t             deadline;    /* absolute ns, 0 = none: the earliest that applies, of
                                         base_deadline and the open scopes' (scope.c)         */
    uint64_t             wake_at;     /* key in the timer heap while armed                     */
    uint64_t             parked_at;   /* the scheduler's clock when it last parked (urt_dump)  */
    struct urt__stack    stack;       /* its guard is read at every switch away                */
    /* The rest: spawn, exit, join, timers, owners, dumps. */
    uint64_t             magic;
    int                  status;      /* return value once DONE                                */
    uint32_t             wait_seq;    /* counts its waits on shared primitives (xwait.h)     */
    urt_fn               fn;
    void                *arg;
    uint64_t             id;
    struct urt_task     *timer_prev, *timer_next;   /* the in-order list                       */
    struct urt__waiter  *joiner;      /* the task waiting in urt_join                          */
    /* Who collects its status instead of a joiner (a group): told when the task returns, on
       the task's own stack, before its last switch; it must not block. */
    void               (*on_exit)(struct urt_runtime *rt, struct urt_task *t);
    void                *owner;
    struct urt_task     *owner_prev, *owner_next;   /* the owner's list of its tasks           */
    struct urt_task     *all_prev, *all_next;   /* every live task, for shutdown and dumps     */
    void                *asan_fake_stack;
    void                *tsan_fiber;  /* ThreadSanitizer builds: the task's fiber             */
    struct urt__scope   *scope;       /* the innermost open cancel scope, NULL for none        */
    uint64_t             base_deadline;   /* urt_deadline's, the outermost scope               */
    char                 name[32];
};

#endif
