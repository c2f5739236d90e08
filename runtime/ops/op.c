/* SPDX-License-Identifier: MIT */
/* op.c - beginning, waiting for and interrupting a task's kernel operation (see op.h). */
#include "ops/op.h"

void urt__op_complete(void *ctx, struct urt__op *op, int res, unsigned flags)
{
    (void)flags;
    struct urt__task_op *o = (struct urt__task_op *)op;
    o->result = res;
    o->done = 1;
    struct urt_task *t = o->task;
    if (t->state == URT__PARKED && t->wait == &o->wait) {
        urt__ready(ctx, t);
        /* It runs later in this round: start loading the registers it will resume from. */
        __builtin_prefetch(t->sp);
        __builtin_prefetch((char *)t->sp + 64);
    }
}

void urt__op_interrupt(struct urt_runtime *rt, struct urt_task *t)
{
    struct urt__task_op *o = urt__container_of(t->wait, struct urt__task_op, wait);
    if (o->done || (t->flags & URT__KILL_SENT))
        return;
    t->flags |= URT__KILL_SENT;
    urt__backend_cancel(rt->backend, &o->op, NULL);
}

int urt__op_begin(struct urt__task_op *o)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = urt__self();
    if (unlikely(!self))
        return -EPERM;
    int err = urt__check_blocking(self);
    if (unlikely(err))
        return err;
    /* The deadline's timer stays armed from one operation to the next (see urt__op_park), and
       even when the deadline moves later (urt__deadline_arm): a server that pushes its idle
       timeout back on every message touches no timer structure for it. */
    if (self->deadline && urt__deadline_arm(&rt->timers, self) < 0)
        return -ENOMEM;
    o->op.on_complete = urt__op_complete;
    o->op.link = URT__LINK_NONE;
    o->op.urgent = 0;
    o->wait.interrupt = urt__op_interrupt;
    o->task = self;
    o->done = 0;
    o->hold = 0;
    return 0;
}

int urt__op_park(struct urt__task_op *o)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = o->task;
    self->flags &= ~(URT__TIMED_OUT | URT__KILL_SENT);
    self->wait_kind = URT__WAIT_IO;
    self->wait = &o->wait;
    while (!o->done || o->hold)
        urt__park(rt);
    self->wait_kind = URT__WAIT_NONE;
    self->wait = NULL;
    /* The deadline's timer is left armed for the next call. Should it fire while this task is
       not waiting, nothing happens but its removal: the next call finds the deadline passed. */
    return urt__op_result(self, o->result);
}
