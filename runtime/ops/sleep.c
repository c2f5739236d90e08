/* SPDX-License-Identifier: MIT */
/* sleep.c - urt_sleep and urt_sleep_until: a wake-up time in the scheduler's timers, or (for
   comparison, urt_config.kernel_timers) one kernel timeout each. */
#include "ops/op.h"

/*
 * A sleep until `wake` (already the earlier of its end and the deadline) as one kernel timeout:
 * the design urt measured its userland timers against (perf/timers).
 */
static int sleep_kernel(uint64_t wake)
{
    struct urt__task_op o;
    uint64_t scratch[2];   /* the backend's timespec, read when the batch is submitted */
    int err = urt__op_begin(&o);
    if (err)
        return err;
    urt__op_prepare(&o, URT__OP_TIMEOUT, -1, scratch, 0, 0, wake);
    int res = urt__op_wait(&o);
    /* -ETIME: the timeout expired; the sleep is over, or the deadline came. */
    if (res == -ETIME)
        res = o.task->deadline && wake >= o.task->deadline ? -ETIMEDOUT : 0;
    return res;
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
    if (unlikely(rt->cfg.kernel_timers))
        return sleep_kernel(wake);
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

