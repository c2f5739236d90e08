/* SPDX-License-Identifier: MIT */
/*
 * io.c - the blocking-style I/O calls: each is begin, prepare, wait, finish (ops/op.h).
 */
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ops/op.h"
#include "sched/service.h"

/* The kernel caps one read or write at this many bytes anyway (MAX_RW_COUNT). */
#define MAX_RW 0x7ffff000u

static inline uint32_t rw_len(size_t len)
{
    return len > MAX_RW ? MAX_RW : (uint32_t)len;
}

static void defined_iov(const struct iovec *iov, int iovcnt, size_t n)
{
    for (int i = 0; i < iovcnt && n; i++) {
        size_t k = iov[i].iov_len < n ? iov[i].iov_len : n;
        urt__defined(iov[i].iov_base, k);
        n -= k;
    }
}

/* A write that met a reader that has gone raised SIGPIPE in this thread, where urt_run blocks it:
   take it back (run.c). Sends never raise one: they carry MSG_NOSIGNAL. */
static inline ssize_t no_sigpipe(int res)
{
    if (unlikely(res == -EPIPE))
        urt__sigpipe_consume(urt__rt);
    return res;
}

/* The calls whose only finish is "return the result". */
static int simple(enum urt__op_kind kind, int fd, const void *buf, uint32_t len, int flags,
                  uint64_t off)
{
    struct urt__task_op o;
    int err = urt__op_begin(&o);
    if (err)
        return err;
    urt__op_prepare(&o, kind, fd, (void *)buf, len, flags, off);
    return urt__op_wait(&o);
}

ssize_t urt_read(int fd, void *buf, size_t len, int64_t offset)
{
    struct urt__task_op o;
    int err = urt__op_begin(&o);
    if (err)
        return err;
    urt__op_prepare(&o, URT__OP_READ, fd, buf, rw_len(len), 0, (uint64_t)offset);
    int res = urt__op_wait(&o);
    if (res > 0)
        urt__defined(buf, (size_t)res);
    return res;
}

ssize_t urt_write(int fd, const void *buf, size_t len, int64_t offset)
{
    return no_sigpipe(simple(URT__OP_WRITE, fd, buf, rw_len(len), 0, (uint64_t)offset));
}

ssize_t urt_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    struct urt__task_op o;
    int err = urt__op_begin(&o);
    if (err)
        return err;
    urt__op_prepare(&o, URT__OP_READV, fd, (void *)iov, (uint32_t)iovcnt, 0, (uint64_t)offset);
    int res = urt__op_wait(&o);
    if (res > 0)
        defined_iov(iov, iovcnt, (size_t)res);
    return res;
}

ssize_t urt_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    return no_sigpipe(simple(URT__OP_WRITEV, fd, iov, (uint32_t)iovcnt, 0, (uint64_t)offset));
}

ssize_t urt_recv(int fd, void *buf, size_t len, int flags)
{
    struct urt__task_op o;
    int err = urt__op_begin(&o);
    if (err)
        return err;
    urt__op_prepare(&o, URT__OP_RECV, fd, buf, rw_len(len), flags, 0);
    int res = urt__op_wait(&o);
    if (res > 0)
        urt__defined(buf, (size_t)res);
    return res;
}

ssize_t urt_send(int fd, const void *buf, size_t len, int flags)
{
    return simple(URT__OP_SEND, fd, buf, rw_len(len), flags | MSG_NOSIGNAL, 0);
}

ssize_t urt_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!msg)
        return -EFAULT;
    struct urt__task_op o;
    int err = urt__op_begin(&o);
    if (err)
        return err;
    urt__op_prepare(&o, URT__OP_RECVMSG, fd, msg, 1, flags, 0);
    int res = urt__op_wait(&o);
    if (res >= 0) {
        defined_iov(msg->msg_iov, (int)msg->msg_iovlen, (size_t)res);
        urt__defined(msg, sizeof *msg);
        if (msg->msg_name)
            urt__defined(msg->msg_name, msg->msg_namelen);
        if (msg->msg_control)
            urt__defined(msg->msg_control, msg->msg_controllen);
    }
    return res;
}

ssize_t urt_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!msg)
        return -EFAULT;
    return simple(URT__OP_SENDMSG, fd, msg, 1, flags | MSG_NOSIGNAL, 0);
}

int urt_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    if (addr && !addrlen)
        return -EFAULT;
    struct urt__task_op o;
    int err = urt__op_begin(&o);
    if (err)
        return err;
    urt__op_prepare(&o, URT__OP_ACCEPT, fd, addr, 0, flags, (uint64_t)(uintptr_t)addrlen);
    int res = urt__op_wait(&o);
    if (res >= 0 && addr) {
        urt__defined(addrlen, sizeof *addrlen);
        urt__defined(addr, *addrlen);
    }
    return res;
}

int urt_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    if (!addr)
        return -EFAULT;
    return simple(URT__OP_CONNECT, fd, addr, addrlen, 0, 0);
}

int urt_socket(int domain, int type, int protocol)
{
    return simple(URT__OP_SOCKET, domain, NULL, (uint32_t)protocol, type, 0);
}

int urt_open(const char *path, int flags, mode_t mode)
{
    if (!path)
        return -EFAULT;
    return simple(URT__OP_OPEN, -1, path, 0, flags, mode);
}

int urt_fsync(int fd, int datasync)
{
    return simple(URT__OP_FSYNC, fd, NULL, 0, datasync != 0, 0);
}

ssize_t urt_splice(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len,
                   unsigned flags)
{
    if ((off_in && *off_in < 0) || (off_out && *off_out < 0))
        return -EINVAL;
    struct urt__task_op o;
    int err = urt__op_begin(&o);
    if (err)
        return err;
    struct urt__splice_in in = { .fd = fd_in, .off = off_in ? *off_in : -1 };
    urt__op_prepare(&o, URT__OP_SPLICE, fd_out, &in, rw_len(len), (int)flags,
                    off_out ? (uint64_t)*off_out : UINT64_MAX);
    int res = no_sigpipe(urt__op_wait(&o));
    /* The kernel runs a splice on a worker thread, and a cancel interrupts it there with a
       signal whose restart codes (ERESTARTSYS to ERESTART_RESTARTBLOCK, 512 to 516) io_uring
       passes on as they are, unlike for reads and writes: they mean what a cancel means (ours,
       the deadline, or urt_close's: -EBADF). */
    if (unlikely(res <= -512 && res >= -516))
        res = urt__op_result(o.task, -ECANCELED);
    if (res > 0) {
        if (off_in)
            *off_in += res;
        if (off_out)
            *off_out += res;
    }
    return res;
}

int urt_shutdown(int fd, int how)
{
    return simple(URT__OP_SHUTDOWN, fd, NULL, 0, how, 0);
}

int urt_poll(int fd, short events)
{
    return simple(URT__OP_POLL, fd, NULL, 0, (unsigned short)events, 0);
}

int urt_close(int fd)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = urt__self();
    if (!self)
        return -EPERM;
    if (fd < 0)
        return -EBADF;
    for (struct urt__service *s = rt->services; s; s = s->next)
        if (s->ops->fd_closed)
            s->ops->fd_closed(rt, s, fd);
    /*
     * One batch, three requests, each run whatever the one before returned (hard links): cancel
     * every operation of ours on fd, shut a socket down (so that an operation queued on it in the
     * same instant cannot hang either), then close. The kernel's operations hold their own
     * reference to the file, which is why closing alone would not end them. Only the close
     * reports back.
     */
    struct urt__op cancel = { .kind = URT__OP_CANCEL_FD, .fd = fd, .link = URT__LINK_HARD,
                              .urgent = 1 };
    struct urt__op shut = { .kind = URT__OP_SHUTDOWN, .fd = fd, .flags = SHUT_RDWR,
                            .link = URT__LINK_HARD, .urgent = 1 };
    struct urt__task_op o = { .op = { .on_complete = urt__op_complete, .kind = URT__OP_CLOSE,
                                      .fd = fd, .urgent = 1 },
                              .task = self };
    struct urt__op *chain[] = { &cancel, &shut, &o.op };
    urt__backend_submit_chain(rt->backend, chain, 3);
    /* Not a cancellation point: wait_kind NONE makes urt_cancel and deadlines pass it by. */
    self->wait_kind = URT__WAIT_NONE;
    self->wait = &o.wait;
    while (!o.done)
        urt__park(rt);
    self->wait = NULL;
    return o.result;
}
