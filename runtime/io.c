/*
 * io.c - the blocking-style I/O calls.
 *
 * Each call keeps its operation record on the task's stack, queues one SQE pointing at it and
 * parks until that operation's completion arrives - also when it is cancelled or times out, since
 * the kernel may still be writing into the caller's buffers until then.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>

#include "fault.h"
#include "runtime.h"
#include "ring.h"
#include "timer.h"

/* The kernel caps one read or write at this many bytes anyway (MAX_RW_COUNT). */
#define MAX_RW 0x7ffff000u

static inline unsigned rw_len(size_t len)
{
    return len > MAX_RW ? MAX_RW : (unsigned)len;
}

/* Checks that a blocking call may start, arms the deadline and hands out the SQE for op. */
static struct io_uring_sqe *op_begin(struct urt__op *op, int *err)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = urt__self();
    if (unlikely(!self)) {
        *err = -EPERM;
        return NULL;
    }
    *err = urt__check_blocking(self);
    if (unlikely(*err))
        return NULL;
    /* The deadline's timer stays armed from one operation to the next (see op_wait), and even
       when the deadline moves later (urt__deadline_arm): a server that pushes its idle timeout
       back on every message touches no timer structure for it. */
    if (self->deadline && urt__deadline_arm(&rt->timers, self) < 0) {
        *err = -ENOMEM;
        return NULL;
    }
    op->task = self;
    op->done = 0;
    op->halves = 0;
    struct io_uring_sqe *sqe = urt__sqe(rt);
    io_uring_sqe_set_data(sqe, op);
    return sqe;
}

static int op_result(struct urt_task *self, int res);

/* Parks until op's completion; maps a cancellation to the reason for it. */
static int op_wait(struct urt__op *op)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = op->task;
    self->flags &= ~(URT__TIMED_OUT | URT__KILL_SENT);
    self->wait_kind = URT__WAIT_IO;
    self->wait = op;
    /* urt_send_recv also waits for its cancels, which report to the task (ring.c); pair_cancels,
       in a colder line, can be nonzero only after a cancel was sent. */
    while (!op->done || ((self->flags & URT__KILL_SENT) && self->pair_cancels))
        urt__park(rt);
    self->wait_kind = URT__WAIT_NONE;
    self->wait = NULL;
    /* The deadline's timer is left armed for the next call. Should it fire while this task is
       not waiting, nothing happens but its removal: the next call finds the deadline passed. */
    return op_result(self, op->result);
}

/* A completion's result as the caller sees it: a cancellation becomes its reason. */
static int op_result(struct urt_task *self, int res)
{
    if (unlikely(res == -ECANCELED || res == -EINTR)) {
        if (self->flags & URT__CANCELLED)
            return -ECANCELED;
        if (self->flags & URT__TIMED_OUT)
            return -ETIMEDOUT;
        if (res == -ECANCELED)
            return -EBADF;   /* nobody cancelled this task: urt_close ended its fd */
    }
    return res;
}

/* The body of every call: begin (or return the error), prepare the SQE, wait; `after` may look at
   the result, res, before it is returned. */
#define URT_OP_THEN(prep, after)                         \
    do {                                                 \
        struct urt__op op;                               \
        int err;                                         \
        struct io_uring_sqe *sqe = op_begin(&op, &err);  \
        if (!sqe)                                        \
            return err;                                  \
        prep;                                            \
        op.opcode = sqe->opcode;                         \
        op.fd = sqe->fd;                                 \
        int res = op_wait(&op);                          \
        after;                                           \
        return res;                                      \
    } while (0)

#define URT_OP(prep) URT_OP_THEN(prep, (void)0)

/*
 * Memcheck cannot see the kernel write into a buffer through the ring (it sees no system call
 * naming it): say so, or every byte received looks uninitialised to it. Free when not under
 * Valgrind, and absent where its header is.
 */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define DEFINED(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#endif
#endif
#ifndef DEFINED
#define DEFINED(p, n) ((void)(p), (void)(n))
#endif

static void defined_iov(const struct iovec *iov, int iovcnt, size_t n)
{
    for (int i = 0; i < iovcnt && n; i++) {
        size_t k = iov[i].iov_len < n ? iov[i].iov_len : n;
        DEFINED(iov[i].iov_base, k);
        n -= k;
    }
}

ssize_t urt_read(int fd, void *buf, size_t len, int64_t offset)
{
    URT_OP_THEN(io_uring_prep_read(sqe, fd, buf, rw_len(len), (uint64_t)offset),
                if (res > 0) DEFINED(buf, (size_t)res));
}

ssize_t urt_write(int fd, const void *buf, size_t len, int64_t offset)
{
    URT_OP(io_uring_prep_write(sqe, fd, buf, rw_len(len), (uint64_t)offset));
}

ssize_t urt_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    URT_OP_THEN(io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)offset),
                if (res > 0) defined_iov(iov, iovcnt, (size_t)res));
}

ssize_t urt_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    URT_OP(io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, (uint64_t)offset));
}

ssize_t urt_recv(int fd, void *buf, size_t len, int flags)
{
    URT_OP_THEN(io_uring_prep_recv(sqe, fd, buf, rw_len(len), flags),
                if (res > 0) DEFINED(buf, (size_t)res));
}

ssize_t urt_send(int fd, const void *buf, size_t len, int flags)
{
    URT_OP(io_uring_prep_send(sqe, fd, buf, rw_len(len), flags));
}

/*
 * The send and the recv as one linked pair in one submission: the kernel starts the recv when the
 * send is done, and the task parks once and resumes once instead of twice. The send carries
 * MSG_WAITALL: the kernel itself retries a partial send on a stream socket, and a send that still
 * comes back short (an error after part of it) fails the link, so the recv never starts while
 * bytes of the send are left; it then completes with -ECANCELED. Both halves post a completion
 * (op->halves counts them; the task is woken by the last), whatever happens: also should the
 * kernel, short of memory, submit the two apart. (Skipping the send's completion on success,
 * IOSQE_CQE_SKIP_SUCCESS, would save one completion per exchange, but then a split pair would
 * post one completion too many, into a stack frame long gone.)
 * A cancel must reach whichever half is in the kernel: see urt__interrupt and the reap.
 */

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

/* How many times urt_close(fd) was called in this runtime (for urt_send_recv). */
static uint32_t fd_closes(const struct urt_runtime *rt, int fd)
{
    return (size_t)fd < rt->fd_closes_len ? rt->fd_closes[fd] : 0;
}

static void count_close(struct urt_runtime *rt, int fd)
{
    if ((size_t)fd >= rt->fd_closes_len) {
        size_t len = rt->fd_closes_len ? rt->fd_closes_len : 64;
        while (len <= (size_t)fd)
            len *= 2;
        uint32_t *a = urt__realloc(rt->fd_closes, len * sizeof *a);
        if (!a) {
            rt->fd_closes_lost = true;
            return;
        }
        memset(a + rt->fd_closes_len, 0, (len - rt->fd_closes_len) * sizeof *a);
        rt->fd_closes = a;
        rt->fd_closes_len = len;
    }
    rt->fd_closes[fd]++;
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
    /* Both halves in one submission: a flush between them would cut the link. */
    urt__sq_room(rt, rt->sq_reserve + 2);
    struct urt__op op;
    int err;
    struct io_uring_sqe *sqe = op_begin(&op, &err);
    if (!sqe)
        return err;
    io_uring_prep_send(sqe, fd, out, (unsigned)out_len, flags | MSG_WAITALL);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)&op | URT__UDATA_LINKED);
    sqe->flags |= IOSQE_IO_LINK;
    sqe = io_uring_get_sqe(&rt->ring);   /* the room was made above */
    rt->st.ops_inflight++;
    io_uring_prep_recv(sqe, fd, in, rw_len(in_len), flags);
    io_uring_sqe_set_data(sqe, &op);
    uint32_t closes = fd_closes(rt, fd);
    op.opcode = IORING_OP_RECV;
    op.fd = fd;
    op.halves = 2;
    op.send_result = 0;
    int res = op_wait(&op);   /* the recv's result */
    struct urt_task *self = op.task;
    int sres = op.send_result;
    if (likely(sres == (int)out_len)) {
        *sent = out_len;
        if (res > 0)
            DEFINED(in, (size_t)res);
        return res;
    }
    /* The send failed (the recv then says -ECANCELED, which means nothing here), or the kernel
       refused the recv as it was submitted (its own error; the send then says -ECANCELED). */
    if (sres == -ECANCELED && op.result < 0 && op.result != -ECANCELED)
        return op.result;
    if (sres < 0)
        return op_result(self, sres);
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
    if (fd_closes(rt, fd) != closes || (rt->fd_closes_lost && fcntl(fd, F_GETFD) < 0))
        return -EBADF;
    return send_rest_then_recv(fd, out, (size_t)sres, out_len, in, in_len, flags, sent);
}

ssize_t urt_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!msg)
        return -EFAULT;
    URT_OP_THEN(io_uring_prep_recvmsg(sqe, fd, msg, (unsigned)flags),
                if (res >= 0) {
                    defined_iov(msg->msg_iov, (int)msg->msg_iovlen, (size_t)res);
                    DEFINED(msg, sizeof *msg);
                    if (msg->msg_name)
                        DEFINED(msg->msg_name, msg->msg_namelen);
                    if (msg->msg_control)
                        DEFINED(msg->msg_control, msg->msg_controllen);
                });
}

ssize_t urt_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!msg)
        return -EFAULT;
    URT_OP(io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags));
}

int urt_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    if (addr && !addrlen)
        return -EFAULT;
    URT_OP_THEN(io_uring_prep_accept(sqe, fd, addr, addrlen, flags),
                if (res >= 0 && addr) {
                    DEFINED(addrlen, sizeof *addrlen);
                    DEFINED(addr, *addrlen);
                });
}

int urt_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    if (!addr)
        return -EFAULT;
    URT_OP(io_uring_prep_connect(sqe, fd, addr, addrlen));
}

int urt_socket(int domain, int type, int protocol)
{
    URT_OP(io_uring_prep_socket(sqe, domain, type, protocol, 0));
}

int urt_open(const char *path, int flags, mode_t mode)
{
    if (!path)
        return -EFAULT;
    URT_OP(io_uring_prep_openat(sqe, AT_FDCWD, path, flags, mode));
}

int urt_fsync(int fd, int datasync)
{
    URT_OP(io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0));
}

int urt_shutdown(int fd, int how)
{
    URT_OP(io_uring_prep_shutdown(sqe, fd, how));
}

int urt_poll(int fd, short events)
{
    URT_OP(io_uring_prep_poll_add(sqe, fd, (unsigned)(unsigned short)events));
}

/*
 * A sleep until `wake` (already the earlier of its end and the deadline) as one IORING_OP_TIMEOUT,
 * for urt_config.kernel_timers: the design urt measured its userland timers against
 * (perf/timers). The timespec lives on this stack until the completion.
 */
int urt__sleep_kernel(uint64_t wake)
{
    struct urt_task *self = urt__self();
    struct __kernel_timespec ts = { .tv_sec = (long long)(wake / 1000000000ull),
                                    .tv_nsec = (long long)(wake % 1000000000ull) };
    /* -ETIME: the timeout expired; the sleep is over, or the deadline came. */
    URT_OP_THEN(io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_ABS),
                if (res == -ETIME)
                    res = self->deadline && wake >= self->deadline ? -ETIMEDOUT : 0);
}

int urt_close(int fd)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = urt__self();
    if (!self)
        return -EPERM;
    if (fd < 0)
        return -EBADF;
    count_close(rt, fd);
    if (unlikely(rt->listeners != NULL))
        urt__listeners_fd_closed(rt, fd);   /* never to arm on this fd number again */
    /*
     * One batch, three requests, each run whatever the one before returned (hard links): cancel
     * every operation of ours on fd, shut a socket down (so that an operation queued on it in the
     * same instant cannot hang either), then close. The kernel's operations hold their own
     * reference to the file, which is why closing alone would not end them.
     */
    struct urt__op op = { .task = self, .fd = fd, .opcode = IORING_OP_CLOSE };
    urt__sq_room(rt, 3);
    struct io_uring_sqe *sqe = urt__sqe_cancel(rt);
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, URT__UDATA_IGNORE);
    sqe->flags |= IOSQE_IO_HARDLINK;
    sqe = urt__sqe_cancel(rt);
    io_uring_prep_shutdown(sqe, fd, SHUT_RDWR);
    io_uring_sqe_set_data64(sqe, URT__UDATA_IGNORE);
    sqe->flags |= IOSQE_IO_HARDLINK;
    sqe = urt__sqe_cancel(rt);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data(sqe, &op);
    /* Not a cancellation point: wait_kind NONE makes urt_cancel and deadlines pass it by. */
    self->wait_kind = URT__WAIT_NONE;
    self->wait = &op;
    while (!op.done)
        urt__park(rt);
    self->wait = NULL;
    return op.result;
}
