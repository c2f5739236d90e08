/*
 * ring.c - the runtime's io_uring.
 *
 * All submission happens here, in the scheduler's one io_uring_enter per turn: operations only
 * queue SQEs. A full SQ is flushed at once (the kernel takes every SQE of a non-SQPOLL ring in the
 * enter), so an operation never fails for want of a slot.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fault.h"
#include "ring.h"

int urt__ring_init(struct urt_runtime *rt, unsigned entries, bool quiet)
{
    /* Best first: one issuer, task work run only when we enter, and a registered ring fd. Older
       kernels refuse flags they do not know with -EINVAL: drop them one step at a time. */
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        /* A generous CQ: completions of every queued SQE plus cancels fit, and the kernel's
           NODROP overflow list covers anything beyond. */
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = entries * 8;
        ret = io_uring_queue_init_params(entries, &rt->ring, &p);
        if (ret == 0) {
            rt->ring_flags = tries[i];
            if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
                /* Pre-5.11 kernels: waits with a timeout would need an extra SQE; not worth it. */
                io_uring_queue_exit(&rt->ring);
                ret = -ENOSYS;
                break;
            }
            io_uring_register_ring_fd(&rt->ring); /* optional: saves an fd lookup per enter */
            rt->sq_reserve = rt->ring.sq.ring_entries >= 16 ? 4 : 1;
            return 0;
        }
        if (ret != -EINVAL)
            break;
    }
    if (!quiet) {
        if (ret == -ENOSYS)
            fprintf(stderr, "urt: io_uring is not available in this kernel (5.11 or later needed)\n");
        else if (ret == -EPERM)
            fprintf(stderr, "urt: io_uring is disabled here (sysctl kernel.io_uring_disabled, "
                            "or a seccomp filter)\n");
        else if (ret != -ENOMEM)
            fprintf(stderr, "urt: io_uring_setup failed: %s\n", strerror(-ret));
    }
    return ret;
}

void urt__ring_exit(struct urt_runtime *rt)
{
    io_uring_queue_exit(&rt->ring);
}

/*
 * urt_send_recv's cancels. The half in flight is not always one a cancel can find: the kernel
 * queues the linked recv only once the send's completion is flushed (at the end of the batch, or
 * as task work run after the next submission), or a worker thread runs it right after the send.
 * So each round of cancels reports to the task (pair_cancel_done), a round in which none found
 * anything is sent again after the reap (no SQE may be queued while reaping), and so is one whose
 * send completed anyway (a send a worker finished despite the cancel).
 */
static void recancel_push(struct urt_runtime *rt, struct urt_task *t)
{
    if (t->on_recancel)
        return;
    t->on_recancel = 1;
    t->recancel_next = rt->recancel;
    rt->recancel = t;
}

static void pair_cancel_done(struct urt_runtime *rt, struct urt__iop *iop, int res, unsigned flags)
{
    (void)flags;
    struct urt_task *t = (struct urt_task *)((char *)iop - offsetof(struct urt_task, pair_cancel));
    if (res != -ENOENT)
        t->pair_cancel_hit = 1;
    if (--t->pair_cancels != 0)
        return;
    /* The task is still in urt_send_recv: it leaves only once no cancel of its is in flight. */
    struct urt__op *op = t->wait;
    if (op->halves != 0 && !t->pair_cancel_hit)
        recancel_push(rt, t);
    else if (op->done && t->state == URT__PARKED)
        urt__ready(rt, t);
}

void urt__pair_cancel(struct urt_runtime *rt, struct urt_task *t)
{
    struct urt__op *op = t->wait;
    t->pair_cancel.fn = pair_cancel_done;
    t->pair_cancel_hit = 0;
    t->pair_cancels += 2;
    uint64_t ud = (uint64_t)(uintptr_t)&t->pair_cancel | URT__UDATA_INTERNAL;
    /* The send first: cancelling it fails the recv behind it too. */
    struct io_uring_sqe *sqe = urt__sqe_cancel(rt);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | URT__UDATA_LINKED, 0);
    io_uring_sqe_set_data64(sqe, ud);
    sqe = urt__sqe_cancel(rt);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(sqe, ud);
}

static void recancel_flush(struct urt_runtime *rt)
{
    while (rt->recancel) {
        struct urt_task *t = rt->recancel;
        rt->recancel = t->recancel_next;
        t->recancel_next = NULL;
        t->on_recancel = 0;
        struct urt__op *op = t->wait;
        if (t->state == URT__PARKED && t->wait_kind == URT__WAIT_IO && op && op->halves != 0)
            urt__pair_cancel(rt, t);
    }
}

static void reap(struct urt_runtime *rt)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0, more = 0;
    io_uring_for_each_cqe(&rt->ring, head, cqe) {
        n++;
        if (cqe->user_data == URT__UDATA_IGNORE || cqe->user_data == LIBURING_UDATA_TIMEOUT)
            continue;
        if (cqe->user_data & URT__UDATA_INTERNAL) {
            struct urt__iop *iop = (struct urt__iop *)(uintptr_t)(cqe->user_data & ~URT__UDATA_INTERNAL);
            /* A multishot request (a listener's accept) stays in flight while the kernel says
               more completions will follow. */
            if (cqe->flags & IORING_CQE_F_MORE)
                more++;
            iop->fn(rt, iop, cqe->res, cqe->flags);
            continue;
        }
        struct urt__op *op = (struct urt__op *)(uintptr_t)(cqe->user_data & ~URT__UDATA_LINKED);
        if (unlikely(op->halves != 0)) {
            /* urt_send_recv: the send's completion or the recv's, in either order. */
            if (cqe->user_data & URT__UDATA_LINKED) {
                op->send_result = cqe->res;
                if (op->halves == 2 && cqe->res >= 0 && (op->task->flags & URT__KILL_SENT))
                    recancel_push(rt, op->task);   /* completed despite a cancel */
            } else {
                op->result = cqe->res;
            }
            if (--op->halves != 0)
                continue;
        } else {
            op->result = cqe->res;
        }
        op->done = 1;
        struct urt_task *t = op->task;
        if (t->state == URT__PARKED && t->wait == op) {
            urt__ready(rt, t);
            /* It runs later in this round: start loading the registers it will resume from. */
            __builtin_prefetch(t->sp);
            __builtin_prefetch((char *)t->sp + 64);
        }
    }
    if (n) {
        io_uring_cq_advance(&rt->ring, n);
        rt->st.cqes_reaped += n;
        rt->st.ops_inflight -= n - more;
        rt->st.cqes_more += more;
    }
}

/* One io_uring_enter; the errors that mean "reap, then go on" are absorbed here. */
static void enter(struct urt_runtime *rt, bool wait, uint64_t timeout_ns)
{
    unsigned queued = io_uring_sq_ready(&rt->ring);
    int ret;
    rt->st.enter_calls++;
    if (urt__fault(URT__FAULT_ENTER_BUSY) || urt__fault(URT__FAULT_ENTER_AGAIN) ||
        urt__fault(URT__FAULT_ENTER_INTR))
        return;   /* as if the kernel had said -EBUSY, -EAGAIN or -EINTR: nothing was done */
    if (!wait) {
        ret = io_uring_submit_and_get_events(&rt->ring);
    } else if (timeout_ns == UINT64_MAX) {
        ret = io_uring_submit_and_wait(&rt->ring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = (long long)(timeout_ns / 1000000000ull),
            .tv_nsec = (long long)(timeout_ns % 1000000000ull),
        };
        struct io_uring_cqe *cqe;
        ret = io_uring_submit_and_wait_timeout(&rt->ring, &cqe, 1, &ts, NULL);
    }
    /* -EBUSY/-EAGAIN: the kernel holds back until we reap; -EINTR, -ETIME: nothing lost. */
    (void)ret;
    unsigned left = io_uring_sq_ready(&rt->ring);
    rt->st.sqes_submitted += queued - left;
}

void urt__ring_poll(struct urt_runtime *rt, bool wait, uint64_t timeout_ns)
{
    enter(rt, wait, timeout_ns);
    reap(rt);
    if (unlikely(rt->recancel != NULL))
        recancel_flush(rt);
    if (unlikely(rt->blocking != NULL))
        urt__blocking_rearm(rt);   /* completion handlers may not queue SQEs while reaping */
}

static struct io_uring_sqe *get_sqe(struct urt_runtime *rt, unsigned reserve)
{
    for (;;) {
        /* (The injected "full" spares cancel requests: urt_close's linked chain relies on the
           room urt__sq_room made for it, and a real full queue cannot happen inside it.) */
        if (io_uring_sq_space_left(&rt->ring) > reserve &&
            !(reserve && urt__fault(URT__FAULT_SQ_FULL))) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&rt->ring);
            if (likely(sqe != NULL)) {
                rt->st.ops_inflight++;
                return sqe;
            }
        }
        /* Full: hand the queue to the kernel now rather than fail the caller. */
        rt->st.sq_full++;
        urt__ring_poll(rt, false, 0);
    }
}

void urt__sq_room(struct urt_runtime *rt, unsigned n)
{
    while (io_uring_sq_space_left(&rt->ring) < n) {
        rt->st.sq_full++;
        urt__ring_poll(rt, false, 0);
    }
}

struct io_uring_sqe *urt__sqe(struct urt_runtime *rt)
{
    return get_sqe(rt, rt->sq_reserve);
}

struct io_uring_sqe *urt__sqe_cancel(struct urt_runtime *rt)
{
    rt->st.cancels++;
    return get_sqe(rt, 0);
}
