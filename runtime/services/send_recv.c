/* SPDX-License-Identifier: MIT */
/*
 * send_recv.c - urt_send_recv: the send and the recv as one linked pair in one submission.
 *
 * The kernel starts the recv when the send is done, and the task parks once and resumes once
 * instead of twice. The send carries MSG_WAITALL: the kernel itself retries a partial send on a
 * stream socket, and a send that still comes back short (an error after part of it) fails the
 * link, so the recv never starts while bytes of the send are left; it then completes with
 * -ECANCELED. Both halves post a completion (halves counts them; the task is woken by the last),
 * whatever happens: also should the kernel, short of memory, submit the two apart. (Skipping the
 * send's completion on success would save one completion per exchange, but then a split pair
 * would post one completion too many, into a stack frame long gone.)
 *
 * A cancel must reach whichever half is in the kernel, and that half is not always one a cancel
 * can find: the kernel queues the linked recv only once the send's completion is flushed (at the
 * end of the batch, or as task work run after the next submission), or a worker thread runs it
 * right after the send. So each round of cancels reports back (on_cancel_done), a round in which
 * none found anything is sent again after the reap (the post-reap hook: no operation may be
 * queued while reaping), and so is one whose send completed anyway; the call returns only once
 * none of its cancels is in flight.
 *
 * A service of its own: it keeps that re-send list, and counts urt_close calls per fd (the
 * fd-closed hook), so that a pair cut short can tell a close of its fd from other errors.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "base/fault.h"
#include "ops/op.h"
#include "sched/service.h"

#define MAX_RW 0x7ffff000u

struct pair {
    struct urt__task_op recv;           /* the task waits on this one                        */
    struct urt__op      send;           /* linked before it                                  */
    struct urt__op      cancel_report;  /* where the pair's cancels report                   */
    int32_t             send_result;
    uint8_t             halves;         /* completions still to come (2, then 1, then 0)     */
    uint8_t             cancel_hit;     /* a cancel of this round found its request          */
    uint8_t             on_recancel;    /* in the service's re-send list                     */
    struct pair        *recancel_next;
    struct pairs       *svc;
};

/* The service's state. */
struct pairs {
    struct urt__service base;
    struct pair        *recancel;   /* pairs whose cancels go again after the reap             */
    uint32_t           *closes;     /* urt_close calls per fd number, for fds pairs ran on     */
    size_t              len, max;   /* max: beyond the process's fd limits no fd can be open   */
    bool                lost;       /* a count could not be kept: counts are unsure            */
};

static void finish(struct urt_runtime *rt, struct pair *p)
{
    struct urt_task *t = p->recv.task;
    if (p->recv.done && !p->recv.hold && t->state == URT__PARKED && t->wait == &p->recv.wait)
        urt__ready(rt, t);
}

static void recancel_push(struct pair *p)
{
    if (p->on_recancel)
        return;
    p->on_recancel = 1;
    p->recancel_next = p->svc->recancel;
    p->svc->recancel = p;
}

static void cancel_both(struct urt_runtime *rt, struct pair *p)
{
    p->cancel_hit = 0;
    p->recv.hold += 2;
    /* The send first: cancelling it fails the recv behind it too. */
    urt__backend_cancel(rt->backend, &p->send, &p->cancel_report);
    urt__backend_cancel(rt->backend, &p->recv.op, &p->cancel_report);
}

static void on_cancel_done(void *ctx, struct urt__op *op, int res, unsigned flags)
{
    (void)flags;
    struct pair *p = urt__container_of(op, struct pair, cancel_report);
    if (res != -ENOENT)
        p->cancel_hit = 1;
    if (--p->recv.hold != 0)
        return;
    if (p->halves != 0 && !p->cancel_hit)
        recancel_push(p);
    else
        finish(ctx, p);
}

static void half_done(struct urt_runtime *rt, struct pair *p)
{
    if (--p->halves != 0)
        return;
    p->recv.done = 1;
    finish(rt, p);
}

static void on_send(void *ctx, struct urt__op *op, int res, unsigned flags)
{
    (void)flags;
    struct pair *p = urt__container_of(op, struct pair, send);
    p->send_result = res;
    if (p->halves == 2 && res >= 0 && (p->recv.task->flags & URT__KILL_SENT))
        recancel_push(p);   /* completed despite a cancel: the recv behind it needs one */
    half_done(ctx, p);
}

static void on_recv(void *ctx, struct urt__op *op, int res, unsigned flags)
{
    (void)flags;
    struct pair *p = (struct pair *)(void *)op;   /* recv.op is the pair's first member */
    p->recv.result = res;
    half_done(ctx, p);
}

static void interrupt(struct urt_runtime *rt, struct urt_task *t)
{
    struct pair *p = urt__container_of(t->wait, struct pair, recv.wait);
    if (p->recv.done || (t->flags & URT__KILL_SENT))
        return;
    t->flags |= URT__KILL_SENT;
    cancel_both(rt, p);
}

/* ---- the service ---- */

static void post_reap(struct urt_runtime *rt, struct urt__service *s)
{
    struct pairs *svc = (struct pairs *)s;
    while (svc->recancel) {
        struct pair *p = svc->recancel;
        svc->recancel = p->recancel_next;
        p->recancel_next = NULL;
        p->on_recancel = 0;
        struct urt_task *t = p->recv.task;
        if (t->state == URT__PARKED && t->wait == &p->recv.wait && p->halves != 0)
            cancel_both(rt, p);
    }
}

static void fd_closed(struct urt_runtime *rt, struct urt__service *s, int fd)
{
    (void)rt;
    struct pairs *svc = (struct pairs *)s;
    if ((size_t)fd < svc->len)   /* else no pair ever ran on fd */
        svc->closes[fd]++;
}

static void runtime_end(struct urt_runtime *rt, struct urt__service *s)
{
    (void)rt;
    struct pairs *svc = (struct pairs *)s;
    free(svc->closes);
    free(svc);
}

static const struct urt__service_ops pairs_ops = {
    .name = "send_recv",
    .post_reap = post_reap,
    .fd_closed = fd_closed,
    .runtime_end = runtime_end,
};

static void create(struct urt_runtime *rt, void *arg)
{
    struct pairs *svc = urt__calloc(1, sizeof *svc);
    *(struct pairs **)arg = svc;
    if (!svc)
        return;
    struct rlimit rl;
    svc->max = 1u << 24;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < svc->max)
        svc->max = rl.rlim_max;
    urt__service_add(rt, &svc->base, &pairs_ops);
}

/* Grows the counts to cover fd (on the scheduler's stack: realloc). */
static void cover(struct urt_runtime *rt, void *arg)
{
    (void)rt;
    struct pairs *svc = ((void **)arg)[0];
    size_t fd = *(size_t *)((void **)arg)[1];
    size_t len = svc->len ? svc->len : 64;
    while (len <= fd)
        len *= 2;
    uint32_t *a = urt__realloc(svc->closes, len * sizeof *a);
    if (!a) {
        svc->lost = true;
        return;
    }
    memset(a + svc->len, 0, (len - svc->len) * sizeof *a);
    svc->closes = a;
    svc->len = len;
}

/* How many times urt_close(fd) was called in this runtime; counted from now on. */
static uint32_t closes_of(struct urt_runtime *rt, struct pairs *svc, int fd)
{
    size_t f = (size_t)fd;
    if (likely(f < svc->len))
        return svc->closes[f];
    if (f >= svc->max) {
        svc->lost = true;   /* no such fd can be open: the kernel will say -EBADF */
        return 0;
    }
    void *arg[2] = { svc, &f };
    urt__on_sched_stack(rt, cover, arg);
    return 0;
}

/* ---- the call ---- */

/* urt_send_recv one call after the other, from byte off of out on. */
static ssize_t send_rest_then_recv(int fd, const void *out, size_t off, size_t out_len, void *in,
                                   size_t in_len, int flags, size_t *sent)
{
    while (off < out_len) {
        ssize_t w = urt_send(fd, (const char *)out + off, out_len - off, flags);
        if (w < 0) {
            *sent = off;
            return w;
        }
        off += (size_t)w;
    }
    *sent = off;
    return urt_recv(fd, in, in_len, flags);
}

ssize_t urt_send_recv(int fd, const void *out, size_t out_len, void *in, size_t in_len, int flags,
                      size_t *sent)
{
    struct urt_runtime *rt = urt__rt;
    size_t ignored;
    if (!sent)
        sent = &ignored;
    *sent = 0;
    if (unlikely(!rt || out_len == 0 || out_len > MAX_RW))
        return send_rest_then_recv(fd, out, 0, out_len, in, in_len, flags, sent);
    struct pair p;
    int err = urt__op_begin(&p.recv);
    if (err)
        return err;
    struct pairs *svc = (struct pairs *)urt__service_find(rt->services, &pairs_ops);
    if (unlikely(!svc)) {
        urt__on_sched_stack(rt, create, &svc);
        if (!svc)
            return -ENOMEM;
    }
    uint32_t closes = closes_of(rt, svc, fd);
    urt__op_prepare(&p.recv, URT__OP_RECV, fd, in, in_len > MAX_RW ? MAX_RW : (uint32_t)in_len,
                    flags, 0);
    p.recv.op.on_complete = on_recv;
    p.recv.wait.interrupt = interrupt;
    p.send = (struct urt__op){ .on_complete = on_send, .kind = URT__OP_SEND,
                               .link = URT__LINK_SOFT, .fd = fd, .buf = (void *)out,
                               .len = (uint32_t)out_len,
                               .flags = flags | MSG_WAITALL | MSG_NOSIGNAL };
    p.cancel_report.on_complete = on_cancel_done;
    p.send_result = 0;
    p.halves = 2;
    p.on_recancel = 0;
    p.recancel_next = NULL;
    p.svc = svc;
    struct urt__op *chain[] = { &p.send, &p.recv.op };
    urt__backend_submit_chain(rt->backend, chain, 2);
    int res = urt__op_park(&p.recv);   /* the recv's result */
    struct urt_task *self = p.recv.task;
    int sres = p.send_result;
    if (likely(sres == (int)out_len)) {
        *sent = out_len;
        if (res > 0)
            urt__defined(in, (size_t)res);
        return res;
    }
    /* The send failed (the recv then says -ECANCELED, which means nothing here), or the kernel
       refused the recv as it was submitted (its own error; the send then says -ECANCELED). */
    if (sres == -ECANCELED && p.recv.result < 0 && p.recv.result != -ECANCELED)
        return p.recv.result;
    if (sres < 0)
        return urt__op_result(self, sres);
    /*
     * A short send: the kernel hit an error after part of it (a failing connection, a cancel, a
     * failed allocation) and reports the part. The caller asked for all of it: go on with the
     * rest, as a send loop would, and meet the error itself (or not, if it was passing) - unless
     * this task was cancelled or timed out, or urt_close(fd) came meanwhile, whose cancel cuts a
     * send short too (the fd number may be anyone's by now).
     */
    *sent = (size_t)sres;
    if (self->flags & URT__CANCELLED)
        return -ECANCELED;
    if (self->flags & URT__TIMED_OUT)
        return -ETIMEDOUT;
    if (closes_of(rt, svc, fd) != closes || (svc->lost && fcntl(fd, F_GETFD) < 0))
        return -EBADF;
    return send_rest_then_recv(fd, out, (size_t)sres, out_len, in, in_len, flags, sent);
}
