/* SPDX-License-Identifier: MIT */
/*
 * op.h - a task's kernel operation, in four visible steps:
 *
 *     struct urt__task_op o;
 *     int err = urt__op_begin(&o);                    begin: may this task block? arm its deadline
 *     if (err)
 *         return err;
 *     urt__op_prepare(&o, URT__OP_RECV, fd, buf, len, flags, 0);      prepare: describe it
 *     int res = urt__op_wait(&o);                     wait: queue it, park until its completion
 *     if (res > 0)                                    finish: whatever the call does with res
 *         urt__defined(buf, res);
 *
 * The record lives on the task's stack, and the task never leaves urt__op_wait before the
 * operation's completion has arrived - also when it is cancelled or times out, since the kernel
 * may write into the task's buffers until then.
 */
#ifndef URT_OPS_OP_H
#define URT_OPS_OP_H

#include <stdint.h>

#include "backend/op.h"
#include "sched/sched.h"

struct urt__task_op {
    struct urt__op      op;      /* what the backend reads; first, so the completion finds us */
    struct urt__io_wait wait;    /* how a cancel or deadline ends the wait                     */
    struct urt_task    *task;
    int32_t             result;
    uint8_t             done;    /* the completion the task waits for has come                 */
    uint8_t             hold;    /* other completions to come first (urt_send_recv's cancels)  */
};

/* Completion and interrupt handlers of an ordinary operation (begin installs them). */
urt__op_complete_fn urt__op_complete;
void urt__op_interrupt(struct urt_runtime *rt, struct urt_task *t);

/* -EPERM outside a task; -ECANCELED or -ETIMEDOUT when the task may not block; -ENOMEM when its
   deadline cannot be armed; else 0 and o is ready to be prepared. */
int urt__op_begin(struct urt__task_op *o);

static inline void urt__op_prepare(struct urt__task_op *o, enum urt__op_kind kind, int fd,
                                   void *buf, uint32_t len, int flags, uint64_t off)
{
    o->op.kind = (uint8_t)kind;
    o->op.fd = fd;
    o->op.buf = buf;
    o->op.len = len;
    o->op.flags = flags;
    o->op.off = off;
}

/* Parks until o's completion (already queued, e.g. in a chain); returns its result, a
   cancellation mapped to its reason (urt__op_result). */
int urt__op_park(struct urt__task_op *o);

/* Queues o and parks until its completion. */
static inline int urt__op_wait(struct urt__task_op *o)
{
    urt__backend_submit(urt__rt->backend, &o->op);
    return urt__op_park(o);
}

/* A completion's result as the caller sees it: -ECANCELED or -EINTR become -ECANCELED (the task
   was cancelled), -ETIMEDOUT (its deadline), or -EBADF (nobody cancelled it: urt_close ended
   its fd). */
static inline int urt__op_result(const struct urt_task *self, int res)
{
    if (unlikely(res == -ECANCELED || res == -EINTR)) {
        if (self->flags & URT__CANCELLED)
            return -ECANCELED;
        if (self->flags & URT__TIMED_OUT)
            return -ETIMEDOUT;
        if (res == -ECANCELED)
            return -EBADF;
    }
    return res;
}

/*
 * Memcheck cannot see the kernel write into a buffer through the ring (it sees no system call
 * naming it): say so, or every byte received looks uninitialised to it. Free when not under
 * Valgrind, and absent where its header is.
 */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define urt__defined(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#endif
#endif
#ifndef urt__defined
#define urt__defined(p, n) ((void)(p), (void)(n))
#endif

#endif
