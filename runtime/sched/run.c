/* SPDX-License-Identifier: MIT */
/* run.c - starting and ending a runtime on the calling thread; its counters. */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif
#include "sched/inbox.h"
#include "sched/sched.h"
#include "sched/service.h"
#include "sched/timer.h"
#include "sched/xwait.h"

static __thread struct urt_stats last_stats;

#define DEFAULT_RING_ENTRIES 256
#define DEFAULT_STACK_SIZE   (64 * 1024)
#define DEFAULT_POOL_MAX     4096

/*
 * SIGPIPE. A write to a pipe or socket whose reader has gone raises it in the thread that ran the
 * write: for a request on the ring, the thread that submitted it (or an io-wq worker, which
 * blocks every signal). Its default action ends the process, so while a runtime runs SIGPIPE is
 * blocked in its thread; the one a urt call caused is taken back after the -EPIPE it came with
 * (urt__sigpipe_consume), anything left (a task's own write(2)) when urt_run ends, and then the
 * thread's SIGPIPE goes back to blocked or not as the caller had it. Sends carry MSG_NOSIGNAL.
 * sigtimedwait takes the thread's own pending SIGPIPE before the process's: a kill(2) can only be
 * taken instead when every thread blocks SIGPIPE and no write of ours left one.
 */
static __thread bool sigpipe_keep;      /* consume none: the caller's is pending, or a task
                                           receives SIGPIPE through urt_signal_wait          */
static __thread bool sigpipe_unblock;   /* the caller had SIGPIPE unblocked                   */

static void sigpipe_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGPIPE);
}

static void sigpipe_begin(void)
{
    sigset_t set, old, pending;
    sigpipe_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    sigpipe_unblock = !sigismember(&old, SIGPIPE);
    sigpipe_keep = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
}

static void consume_here(struct urt_runtime *rt, void *arg)
{
    (void)rt;
    (void)arg;
    sigset_t set;
    sigpipe_set(&set);
    struct timespec zero = { 0, 0 };
    int saved = errno;
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
        ;
    errno = saved;
}

void urt__sigpipe_consume(struct urt_runtime *rt)
{
    if (!sigpipe_keep)
        urt__on_sched_stack(rt, consume_here, NULL);   /* libc: not on a compact stack */
}

void urt__sigpipe_wanted(void)
{
    sigpipe_keep = true;
    sigpipe_unblock = false;   /* urt_signal_wait: blocked "from then on" */
}

static void sigpipe_end(void)
{
    if (!sigpipe_keep)
        consume_here(NULL, NULL);
    if (sigpipe_unblock) {
        sigset_t set;
        sigpipe_set(&set);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
}

int urt_run(urt_fn main_fn, void *arg, const struct urt_config *cfg)
{
    return urt__run(main_fn, arg, cfg, NULL, 0);
}

int urt__run(urt_fn main_fn, void *arg, const struct urt_config *cfg, struct urt__set *set,
             int index)
{
    if (!main_fn)
        return -EINVAL;
    if (urt__rt)
        return -EBUSY;
    struct urt_config c = {0};
    if (cfg)
        c = *cfg;
    if (!c.ring_entries)
        c.ring_entries = DEFAULT_RING_ENTRIES;
    if (!c.stack_size)
        c.stack_size = DEFAULT_STACK_SIZE;
    if (!c.stack_pool_max)
        c.stack_pool_max = DEFAULT_POOL_MAX;
    if (c.ring_entries > 32768 || !urt__stack_round(c.stack_size) ||
        c.blocking_threads > URT_BLOCKING_THREADS_MAX)
        return -EINVAL;
    /* Room for a linked close (3 SQEs) and for cancels beside ordinary operations. */
    if (c.ring_entries < 8)
        c.ring_entries = 8;

    urt__fault_init();
    struct urt_runtime *rt = urt__calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->cfg = c;
    rt->default_slot = urt__stack_round(c.stack_size);
    rt->stacks.warm_max = c.stack_pool_max;
    rt->stacks.prep = urt__stack_prep_from_env();
    rt->coarse_slack = urt__coarse_slack();
    struct urt__backend_config bc = {
        .entries = c.ring_entries, .quiet = c.quiet != 0, .stats = &rt->st, .ctx = rt,
        .flush = urt__sched_flush, .message = urt__inbox_message,
    };
    int ret = urt__backend_open(&rt->backend, &bc);
    if (ret) {
        free(rt);
        return ret;
    }
    if (urt__overflow_init(rt) < 0) {
        urt__backend_close(rt->backend);
        free(rt);
        return -ENOMEM;
    }
    sigpipe_begin();
    urt__rt = rt;
#if defined(__SANITIZE_THREAD__)
    rt->sched_tsan_fiber = __tsan_get_current_fiber();
#endif
    rt->set = set;
    rt->index = index;
    /* The first task is where programs do their setup (printf, getaddrinfo...): never compact. */
    struct urt_spawn_opts mo = { .name = "main",
                                 .stack_size = c.stack_size < DEFAULT_STACK_SIZE ? DEFAULT_STACK_SIZE
                                                                                 : c.stack_size };
    rt->main_task = urt__task_new(rt, main_fn, arg, &mo);
    if (!rt->main_task) {
        ret = -errno;
    } else {
        if (set)
            urt__set_started(rt);   /* takes posts from now on */
        urt__sched_loop(rt);
        ret = rt->main_status;
    }
    if (rt->set)
        urt__set_end(rt);
    urt__xwait_end(rt);
    if (!rt->fatal) {
        /* Every task has ended. The services end their own requests; then only requests nobody
           waits for (cancels) can still be in flight. */
        while (rt->services) {
            struct urt__service *s = rt->services;
            rt->services = s->next;
            if (s->ops->runtime_end)
                s->ops->runtime_end(rt, s);
        }
        while (rt->st.ops_inflight && !rt->fatal)
            urt__sched_poll(rt, true, UINT64_MAX);
    }
    if (rt->fatal) {
        /*
         * The ring cannot be used: what its operations hold (tasks' stacks with their buffers,
         * the services' records) may still be written by the kernel, so none of it is freed or
         * unmapped. The leak is the price of never handing the kernel reused memory.
         */
        ret = rt->fatal;
        last_stats = rt->st;
        urt__backend_close(rt->backend);
        urt__overflow_exit(rt);
        urt__rt = NULL;
        sigpipe_end();
        return ret;
    }
    while (rt->all_tasks)
        urt__task_release(rt, rt->all_tasks);
    urt__task_release_deferred(rt);
    rt->st.stacks_pooled = rt->stacks.pooled;
    rt->st.stacks_mapped = rt->stacks.mapped;
    urt__stack_pool_destroy(&rt->stacks);
    urt__timer_heap_free(&rt->timers);
    urt__backend_close(rt->backend);
    urt__overflow_exit(rt);
    last_stats = rt->st;
    urt__rt = NULL;
    free(rt);
    sigpipe_end();
    return ret;
}

void urt_stats(struct urt_stats *out)
{
    if (!out)
        return;
    struct urt_runtime *rt = urt__rt;
    if (!rt) {
        *out = last_stats;
        return;
    }
    *out = rt->st;
    out->stacks_pooled = rt->stacks.pooled;
    out->stacks_mapped = rt->stacks.mapped;
    out->timers_armed = urt__timers_armed(&rt->timers);
}

unsigned urt_ring_flags(void)
{
    return urt__rt ? urt__backend_flags(urt__rt->backend) : 0;
}

void urt_stats_add(struct urt_stats *sum, const struct urt_stats *one)
{
    if (!sum || !one)
        return;
    /* Every field is a uint64_t counter (timer_late_max_ns is a maximum). */
    uint64_t *a = (uint64_t *)sum;
    const uint64_t *b = (const uint64_t *)one;
    size_t n = sizeof *sum / sizeof(uint64_t);
    size_t late = offsetof(struct urt_stats, timer_late_max_ns) / sizeof(uint64_t);
    for (size_t i = 0; i < n; i++)
        a[i] = i == late ? (a[i] > b[i] ? a[i] : b[i]) : a[i] + b[i];
}
