/* SPDX-License-Identifier: MIT */
/*
 * op.h - one kernel operation, described without naming the backend that runs it.
 *
 * The record is the caller's (usually on a task's stack) and must stay put until its completion
 * has been handed to on_complete: the backend identifies the operation by the record's address.
 * Everything the kernel needs is read from it when the operation is queued.
 */
#ifndef URT_BACKEND_OP_H
#define URT_BACKEND_OP_H

#include <stdint.h>

enum urt__op_kind {
    URT__OP_NOP,           /* (NOP to SENDMSG: plain kinds, the backend's fast path)        */
    URT__OP_READ,          /* fd, buf, len, off                                             */
    URT__OP_WRITE,
    URT__OP_READV,         /* fd, buf = iovec array, len = count, off                       */
    URT__OP_WRITEV,
    URT__OP_RECV,          /* fd, buf, len, flags = MSG_*                                   */
    URT__OP_SEND,
    URT__OP_RECVMSG,       /* fd, buf = msghdr, len = 1, flags                              */
    URT__OP_SENDMSG,
    URT__OP_ACCEPT,        /* fd, buf = sockaddr, off = (socklen_t *), flags = SOCK_*        */
    URT__OP_ACCEPT_MULTI,  /* fd, flags: one request, a completion per connection           */
    URT__OP_CONNECT,       /* fd, buf = sockaddr, len = socklen                              */
    URT__OP_SOCKET,        /* fd = domain, flags = type, len = protocol                      */
    URT__OP_OPEN,          /* buf = path, flags, off = mode (relative to the cwd)           */
    URT__OP_CLOSE,         /* fd                                                             */
    URT__OP_FSYNC,         /* fd, flags = 1 for datasync                                     */
    URT__OP_SHUTDOWN,      /* fd, flags = SHUT_*                                             */
    URT__OP_POLL,          /* fd, flags = poll events                                        */
    URT__OP_TIMEOUT,       /* off = absolute CLOCK_MONOTONIC ns; buf = 16 bytes the backend
                              may use until the completion                                  */
    URT__OP_CANCEL,        /* buf = the struct urt__op to cancel                             */
    URT__OP_CANCEL_FD,     /* fd: every operation on it                                      */
    URT__OP_SPLICE,        /* fd = fd_out, off = off_out, buf = struct urt__splice_in, len,
                              flags = SPLICE_F_*; an offset of -1: the fd's own position      */
    URT__OP_KINDS,
};

/* Where a splice reads from (the record names its fd and offset only once). */
struct urt__splice_in {
    int32_t fd;
    int64_t off;
};

/* Passed to on_complete: more completions of this operation will follow (a multishot one). */
#define URT__OP_MORE 1u

struct urt__op;
/* Called from the reaping loop, on the scheduler's stack, once per completion. It may make tasks
   ready, but must not queue operations itself (services do that from their post-reap hook). */
typedef void urt__op_complete_fn(void *ctx, struct urt__op *op, int res, unsigned flags);

/* How an operation is tied to the next one queued in the same chain (urt__backend_submit_chain). */
enum urt__op_link {
    URT__LINK_NONE,
    URT__LINK_SOFT,   /* the next starts only if this one succeeds (else it fails -ECANCELED) */
    URT__LINK_HARD,   /* the next starts once this one ends, whatever its result            */
};

struct urt__op {
    urt__op_complete_fn *on_complete;  /* NULL: nobody wants the completion                 */
    uint8_t              kind;         /* enum urt__op_kind                                 */
    uint8_t              link;         /* enum urt__op_link                                 */
    uint8_t              urgent;       /* may take the slots kept free for cancels          */
    uint8_t              pad_;
    int32_t              fd;
    int32_t              flags;
    uint32_t             len;
    void                *buf;
    uint64_t             off;
};

#endif
