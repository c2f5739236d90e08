/* SPDX-License-Identifier: MIT */
/* run.c - starting and ending a runtime on the calling thread; its counters. */
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
