/* SPDX-License-Identifier: MIT */
/*
 * uring.c - the io_uring backend: the only file that knows io_uring.
 *
 * Operations only queue SQEs; all submission happens in the scheduler's one io_uring_enter per
 * turn. A full SQ is flushed at once (the kernel takes every SQE of a non-SQPOLL ring in the
 * enter), so an operation never fails for want of a slot. Each SQE's user_data is its operation
 * record's address; the reap hands the completion to the record's own handler and knows no kind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <liburing.h>

#include "base/compiler.h"
#include "base/fault.h"
#include "backend/backend.h"

/* user_data of requests whose completion nobody wants. */
#define UDATA_IGNORE 0ull
/* The user_data of a message from another ring (records are 8-byte aligned: never 1). */
#define UDATA_MESSAGE 1ull

struct urt__backend {
    struct io_uring   ring;
    unsigned          setup_flags;  /* IORING_SETUP_* it runs with                      */
    unsigned          sq_reserve;   /* SQ slots kept free for urgent requests (cancels)  */
    struct urt_stats *st;
    void             *ctx;
    void            (*flush)(void *ctx);
    void            (*message)(void *ctx);
    bool              dead;         /* an enter failed for good: nothing reaches the kernel   */
    bool              msg_ring;     /* the kernel has IORING_OP_MSG_RING                      */
    struct io_uring_sqe scratch;    /* where operations queued on a dead ring are written     */
};

static const char *enomem_hint =
    "urt: io_uring_setup: out of memory for the ring (raise the locked-memory limit, ulimit -l, "
    "or lower urt_config.ring_entries)\n";

int urt__backend_open(struct urt__backend **out, const struct urt__backend_config *cfg)
{
    /* Best first: one issuer, task work run only when we enter, and a registered ring fd. Older
       kernels refuse flags they do not know with -EINVAL: drop them one step at a time. */
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    struct urt__backend *b = urt__calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->st = cfg->stats;
    b->ctx = cfg->ctx;
    b->flush = cfg->flush;
    b->message = cfg->message;
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        /* A generous CQ: completions of every queued SQE plus cancels fit, and the kernel's
           NODROP overflow list covers anything beyond. */
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = cfg->entries * 8;
        ret = io_uring_queue_init_params(cfg->entries, &b->ring, &p);
        if (ret == 0) {
            b->setup_flags = tries[i];
            if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
                /* Pre-5.11 kernels: waits with a timeout would need an extra SQE; not worth it. */
                io_uring_queue_exit(&b->ring);
                ret = -ENOSYS;
                break;
            }
            io_uring_register_ring_fd(&b->ring); /* optional: saves an fd lookup per enter */
            struct io_uring_probe *probe = io_uring_get_probe_ring(&b->ring);
            b->msg_ring = probe && io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
            if (probe)
                io_uring_free_probe(probe);
            b->sq_reserve = b->ring.sq.ring_entries >= 16 ? 4 : 1;
            *out = b;
            return 0;
        }
        if (ret != -EINVAL)
            break;
    }
    free(b);
    if (!cfg->quiet) {
        if (ret == -ENOSYS)
            fprintf(stderr, "urt: io_uring is not available in this kernel (5.11 or later needed)\n");
        else if (ret == -EPERM)
            fprintf(stderr, "urt: io_uring is disabled here (sysctl kernel.io_uring_disabled, "
                            "or a seccomp filter)\n");
        else if (ret == -ENOMEM)
            fputs(enomem_hint, stderr);
        else
            fprintf(stderr, "urt: io_uring_setup failed: %s\n", strerror(-ret));
    }
    return ret;
}

void urt__backend_close(struct urt__backend *b)
{
    io_uring_queue_exit(&b->ring);
    free(b);
}

unsigned urt__backend_flags(const struct urt__backend *b)
{
    return b->setup_flags;
}

int urt__backend_ring_fd(const struct urt__backend *b)
{
    return b->ring.ring_fd;
}

bool urt__backend_can_message(const struct urt__backend *b)
{
    return b->msg_ring;
}

/* ---- queueing ---- */

/* The kernel's opcode of each kind that maps onto a plain read/write-style SQE: fd, addr = buf,
   len, off, and flags in the shared rw_flags/msg_flags field. */
static const uint8_t plain_opcode[URT__OP_SENDMSG + 1] = {
    [URT__OP_NOP] = IORING_OP_NOP,         [URT__OP_READ] = IORING_OP_READ,
    [URT__OP_WRITE] = IORING_OP_WRITE,     [URT__OP_READV] = IORING_OP_READV,
    [URT__OP_WRITEV] = IORING_OP_WRITEV,   [URT__OP_RECV] = IORING_OP_RECV,
    [URT__OP_SEND] = IORING_OP_SEND,       [URT__OP_RECVMSG] = IORING_OP_RECVMSG,
    [URT__OP_SENDMSG] = IORING_OP_SENDMSG,
};

/* The kinds that need their own preparation. */
static void prep_special(struct io_uring_sqe *sqe, const struct urt__op *op)
{
    switch (op->kind) {
    case URT__OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->buf, (socklen_t *)(uintptr_t)op->off, op->flags);
        break;
    case URT__OP_ACCEPT_MULTI:
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, op->flags);
        break;
    case URT__OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->buf, op->len);
        break;
    case URT__OP_SOCKET:
        io_uring_prep_socket(sqe, op->fd, op->flags, (int)op->len, 0);
        break;
    case URT__OP_OPEN:
        io_uring_prep_openat(sqe, AT_FDCWD, op->buf, op->flags, (mode_t)op->off);
        break;
    case URT__OP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case URT__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, op->flags ? IORING_FSYNC_DATASYNC : 0);
        break;
    case URT__OP_SHUTDOWN:
        io_uring_prep_shutdown(sqe, op->fd, op->flags);
        break;
    case URT__OP_POLL:
        io_uring_prep_poll_add(sqe, op->fd, (unsigned)(unsigned short)op->flags);
        break;
    case URT__OP_TIMEOUT: {
        /* The kernel reads the timespec when the SQE is submitted, not here: it lives in the
           operation record's buffer, which outlives the submission. */
        struct __kernel_timespec *ts = op->buf;
        ts->tv_sec = (long long)(op->off / 1000000000ull);
        ts->tv_nsec = (long long)(op->off % 1000000000ull);
        io_uring_prep_timeout(sqe, ts, 0, IORING_TIMEOUT_ABS);
        break;
    }
    case URT__OP_CANCEL:
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op->buf, 0);
        break;
    case URT__OP_CANCEL_FD:
        io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
        break;
    case URT__OP_SPLICE: {
        const struct urt__splice_in *in = op->buf;
        io_uring_prep_splice(sqe, in->fd, in->off, op->fd, (int64_t)op->off, op->len,
                             (unsigned)op->flags);
        break;
    }
    default:
        io_uring_prep_nop(sqe);
        break;
    }
}

static const uint8_t link_flags[] = {
    [URT__LINK_NONE] = 0, [URT__LINK_SOFT] = IOSQE_IO_LINK, [URT__LINK_HARD] = IOSQE_IO_HARDLINK,
};

/* The one place an operation becomes an SQE. The plain kinds - every request of a server's
   steady state - are written field by field here, each field once (what io_uring_prep_rw and
   io_uring_prep_recv would store, less the stores they repeat). */
static inline __attribute__((always_inline))
void prep(struct io_uring_sqe *sqe, const struct urt__op *op, uint64_t user_data)
{
    if (likely(op->kind <= URT__OP_SENDMSG)) {
        sqe->opcode = plain_opcode[op->kind];
        sqe->flags = link_flags[op->link];
        sqe->ioprio = 0;
        sqe->fd = op->fd;
        sqe->off = op->off;
        sqe->addr = (uint64_t)(uintptr_t)op->buf;
        sqe->len = op->len;
        sqe->rw_flags = op->flags;
        sqe->buf_index = 0;
        sqe->personality = 0;
        sqe->file_index = 0;
        sqe->addr3 = 0;
        sqe->__pad2[0] = 0;
    } else {
        prep_special(sqe, op);
        sqe->flags |= link_flags[op->link];
    }
    sqe->user_data = user_data;
}

static inline uint64_t udata(const struct urt__op *op)
{
    return op->on_complete ? (uint64_t)(uintptr_t)op : UDATA_IGNORE;
}

static void full(struct urt__backend *b)
{
    b->st->sq_full++;
    b->flush(b->ctx);
}

/* Free SQ slots. The ring has no SQPOLL and no 128-byte SQEs (we set it up): the kernel moves
   the head only inside our own enter. */
static inline unsigned space(const struct urt__backend *b)
{
    return b->ring.sq.ring_entries - (b->ring.sq.sqe_tail - *b->ring.sq.khead);
}

/* The next SQE; the caller has made sure there is room. */
static inline struct io_uring_sqe *take(struct urt__backend *b)
{
    struct io_uring_sq *sq = &b->ring.sq;
    return &sq->sqes[sq->sqe_tail++ & sq->ring_mask];
}

/* Makes room for n SQEs beyond reserve; false when the ring is dead (a flush cannot help). */
static inline bool room(struct urt__backend *b, unsigned n, unsigned reserve)
{
    /* (The injected "full" spares urgent requests: urt_close's chain relies on the room made
       for it, and a real full queue cannot happen inside it.) */
    while (unlikely(space(b) < n + reserve) ||
           (reserve && unlikely(urt__fault(URT__FAULT_SQ_FULL)))) {
        if (unlikely(b->dead))
            return false;
        full(b);   /* full: hand the queue to the kernel now rather than fail the caller */
    }
    return true;
}

static struct io_uring_sqe *get_sqe(struct urt__backend *b, unsigned reserve)
{
    if (unlikely(!room(b, 1, reserve)))
        return &b->scratch;   /* the runtime is ending: what is queued now never runs */
    b->st->ops_inflight++;
    return take(b);
}

void urt__backend_submit(struct urt__backend *b, struct urt__op *op)
{
    if (unlikely(op->urgent))
        b->st->cancels++;
    prep(get_sqe(b, op->urgent ? 0 : b->sq_reserve), op, udata(op));
}

void urt__backend_submit_chain(struct urt__backend *b, struct urt__op *const *ops, unsigned n)
{
    /* A flush between two linked SQEs would cut the link: make room for all of them first. */
    bool ok = room(b, n, ops[0]->urgent ? 0 : b->sq_reserve);
    if (likely(ok))
        b->st->ops_inflight += n;
    for (unsigned i = 0; i < n; i++) {
        if (unlikely(ops[i]->urgent))
            b->st->cancels++;
        prep(likely(ok) ? take(b) : &b->scratch, ops[i], udata(ops[i]));
    }
}

void urt__backend_cancel(struct urt__backend *b, struct urt__op *target, struct urt__op *report)
{
    struct urt__op c = { .kind = URT__OP_CANCEL, .urgent = 1, .buf = target };
    b->st->cancels++;
    prep(get_sqe(b, 0), &c, report ? udata(report) : UDATA_IGNORE);
}

void urt__backend_message(struct urt__backend *b, int ring_fd, struct urt__op *report)
{
    struct io_uring_sqe *sqe = get_sqe(b, b->sq_reserve);
    io_uring_prep_msg_ring(sqe, ring_fd, 0, UDATA_MESSAGE, 0);
    /* the sender's own completion */
    io_uring_sqe_set_data64(sqe, report ? (uint64_t)(uintptr_t)report : UDATA_IGNORE);
}

/* ---- submitting and reaping ---- */

static void reap(struct urt__backend *b)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0, more = 0;
    unsigned messages = 0;
    io_uring_for_each_cqe(&b->ring, head, cqe) {
        n++;
        if (cqe->user_data == UDATA_IGNORE || cqe->user_data == LIBURING_UDATA_TIMEOUT)
            continue;
        if (unlikely(cqe->user_data == UDATA_MESSAGE)) {
            messages++;
            if (b->message)
                b->message(b->ctx);
            continue;
        }
        struct urt__op *op = (struct urt__op *)(uintptr_t)cqe->user_data;
        unsigned flags = 0;
        /* A multishot request stays in flight while the kernel says more will follow. */
        if (unlikely(cqe->flags & IORING_CQE_F_MORE)) {
            more++;
            flags = URT__OP_MORE;
        }
        op->on_complete(b->ctx, op, cqe->res, flags);
    }
    if (n) {
        io_uring_cq_advance(&b->ring, n);
        b->st->cqes_reaped += n;
        b->st->ops_inflight -= n - more - messages;
        b->st->cqes_more += more;
        b->st->messages_in += messages;
    }
}

/* One io_uring_enter. The errors that mean "reap, then go on" are absorbed; any other means the
   ring cannot be used from here (a forked child, a ring fd closed under us) and is returned. */
static int enter(struct urt__backend *b, bool wait, uint64_t timeout_ns)
{
    unsigned queued = io_uring_sq_ready(&b->ring);
    int ret;
    b->st->enter_calls++;
    if (urt__fault(URT__FAULT_ENTER_BUSY) || urt__fault(URT__FAULT_ENTER_AGAIN) ||
        urt__fault(URT__FAULT_ENTER_INTR))
        return 0;   /* as if the kernel had said -EBUSY, -EAGAIN or -EINTR: nothing was done */
    if (!wait) {
        ret = io_uring_submit_and_get_events(&b->ring);
    } else if (timeout_ns == UINT64_MAX) {
        ret = io_uring_submit_and_wait(&b->ring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = (long long)(timeout_ns / 1000000000ull),
            .tv_nsec = (long long)(timeout_ns % 1000000000ull),
        };
        struct io_uring_cqe *cqe;
        ret = io_uring_submit_and_wait_timeout(&b->ring, &cqe, 1, &ts, NULL);
    }
    unsigned left = io_uring_sq_ready(&b->ring);
    b->st->sqes_submitted += queued - left;
    /* -EBUSY/-EAGAIN: the kernel holds back until we reap; -EINTR, -ETIME: nothing lost. */
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME)
        return ret;
    return 0;
}

int urt__backend_poll(struct urt__backend *b, bool wait, uint64_t timeout_ns)
{
    if (unlikely(b->dead))
        return -EBADFD;
    int err = enter(b, wait, timeout_ns);
    if (unlikely(err))
        b->dead = true;
    reap(b);
    return err;
}
