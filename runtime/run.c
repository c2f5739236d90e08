/* run.c - starting and ending a runtime on the calling thread; its counters. */
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "runtime.h"
#include "ring.h"
#include "timer.h"

static __thread struct urt_stats last_stats;

#define DEFAULT_RING_ENTRIES 256
#define DEFAULT_STACK_SIZE   (64 * 1024)
#define DEFAULT_POOL_MAX     4096

int urt_run(urt_fn main_fn, void *arg, const struct urt_config *cfg)
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
    if (c.ring_entries > 32768 || !urt__stack_round(c.stack_size))
        return -EINVAL;
    /* Room for a linked close (3 SQEs) and for cancels beside ordinary operations. */
    if (c.ring_entries < 8)
        c.ring_entries = 8;

    urt__fault_init();
    struct urt_runtime *rt = urt__calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->default_slot = urt__stack_round(c.stack_size);
    rt->stacks.warm_max = c.stack_pool_max;
    rt->blocking_threads = c.blocking_threads;
    rt->kernel_timers = c.kernel_timers != 0;
    rt->coarse_slack = urt__coarse_slack();
    int ret = urt__ring_init(rt, c.ring_entries, c.quiet);
    if (ret) {
        free(rt);
        return ret;
    }
    if (urt__overflow_init(rt) < 0) {
        urt__ring_exit(rt);
        free(rt);
        return -ENOMEM;
    }
    urt__rt = rt;
    /* The first task is where programs do their setup (printf, getaddrinfo...): never compact. */
    struct urt_spawn_opts mo = { .name = "main",
                                 .stack_size = c.stack_size < DEFAULT_STACK_SIZE ? DEFAULT_STACK_SIZE
                                                                                 : c.stack_size };
    if (!urt__task_new(rt, main_fn, arg, &mo)) {
        ret = -errno;
    } else {
        urt__sched_loop(rt);
        ret = rt->main_status;
    }
    urt__blocking_exit(rt);
    urt__listeners_exit(rt);
    /* Every task has ended; only requests nobody waits for (cancels) can still be in flight. */
    while (rt->st.ops_inflight)
        urt__ring_poll(rt, true, UINT64_MAX);
    while (rt->all_tasks)
        urt__task_release(rt, rt->all_tasks);
    rt->st.stacks_pooled = rt->stacks.pooled;
    rt->st.stacks_mapped = rt->stacks.mapped;
    urt__stack_pool_destroy(&rt->stacks);
    urt__timer_heap_free(&rt->timers);
    free(rt->fd_closes);
    urt__ring_exit(rt);
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
    return urt__rt ? urt__rt->ring_flags : 0;
}
