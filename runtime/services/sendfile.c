/* SPDX-License-Identifier: MIT */
/*
 * sendfile.c - urt_sendfile: a file's bytes to a socket without passing through user memory.
 *
 * io_uring has no sendfile; it has splice, and splice needs a pipe on one side. So each call
 * borrows a pipe from the runtime's pool, splices a pipeful of the file into it, splices the
 * pipe into the socket until it is empty, and repeats. The pages go from the page cache to the
 * socket by reference: the only copy is the one TCP makes anyway, if any.
 *
 * A pipe goes back to the pool only empty. One that may still hold bytes - the send failed, or
 * the call was cancelled or timed out between the two splices - is closed instead: its bytes
 * belong to no one, and the next borrower must not send them.
 *
 * The kernel runs every splice on one of io_uring's worker threads. Into a blocking socket
 * whose peer does not read, the splice waits there, holding the worker; into a non-blocking one
 * (O_NONBLOCK) it comes back with what fitted, or -EAGAIN, and the call waits for room with
 * urt_poll instead, holding nothing but its task. The pool keeps as many pipes as
 * have been lent at once, up to POOL_MAX (each is two fds, and a pipe's buffer pages only while
 * full): a server sending a hundred files at a time makes a hundred pipes once, not one per
 * file. Past POOL_MAX a sender makes its own and closes it after. A service of its own, so that
 * the runtime's end closes the pool's pipes.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/fault.h"
#include "sched/sched.h"
#include "sched/service.h"
#include "urt.h"

#define POOL_MAX 256   /* each pipe counts 16 pages against the user's pipe-user-pages-soft */
/* A pipe holds 16 pages by default: the most one splice into it moves. */
#define PIPE_BYTES (64 * 1024)

struct pipes {
    struct urt__service base;
    int                 n, cap;
    int               (*fds)[2];
};

static void runtime_end(struct urt_runtime *rt, struct urt__service *s)
{
    (void)rt;
    struct pipes *p = (struct pipes *)s;
    while (p->n > 0) {
        p->n--;
        close(p->fds[p->n][0]);
        close(p->fds[p->n][1]);
    }
    free(p->fds);
    free(p);
}

static const struct urt__service_ops pipes_ops = {
    .name = "sendfile",
    .runtime_end = runtime_end,
};

struct borrow {
    struct pipes *pool;
    int           fds[2];
    int           err;
};

/* On the scheduler's stack (libc, and possibly a calloc): a pipe from the pool or a new one. */
static void take(struct urt_runtime *rt, void *arg)
{
    struct borrow *b = arg;
    struct pipes *p = (struct pipes *)urt__service_find(rt->services, &pipes_ops);
    if (!p && (p = urt__calloc(1, sizeof *p)) != NULL)
        urt__service_add(rt, &p->base, &pipes_ops);
    b->pool = p;
    if (p && p->n > 0) {
        p->n--;
        b->fds[0] = p->fds[p->n][0];
        b->fds[1] = p->fds[p->n][1];
        b->err = 0;
        return;
    }
    b->err = pipe2(b->fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

static void give_back(struct urt_runtime *rt, void *arg)
{
    (void)rt;
    struct borrow *b = arg;
    struct pipes *p = b->pool;
    if (p && p->n == p->cap && p->cap < POOL_MAX) {
        int cap = p->cap ? p->cap * 2 : 16;
        void *fds = urt__realloc(p->fds, (size_t)cap * sizeof *p->fds);
        if (fds) {
            p->fds = fds;
            p->cap = cap;
        }
    }
    if (p && p->n < p->cap) {
        p->fds[p->n][0] = b->fds[0];
        p->fds[p->n][1] = b->fds[1];
        p->n++;
        return;
    }
    close(b->fds[0]);
    close(b->fds[1]);
}

static void drop(struct urt_runtime *rt, void *arg)
{
    struct borrow *b = arg;
    b->pool = NULL;
    give_back(rt, b);
}

ssize_t urt_sendfile(int out_fd, int in_fd, int64_t *offset, size_t count)
{
    struct urt_runtime *rt = urt__rt;
    if (!rt || !urt__self())
        return -EPERM;
    if (!offset || *offset < 0)
        return -EINVAL;
    if (count == 0)
        return 0;
    struct borrow b;
    urt__on_sched_stack(rt, take, &b);
    if (b.err)
        return b.err;
    size_t sent = 0;
    ssize_t err = 0;
    bool clean = true;   /* the pipe is empty */
    while (sent < count) {
        size_t want = count - sent < PIPE_BYTES ? count - sent : PIPE_BYTES;
        ssize_t in = urt_splice(in_fd, offset, b.fds[1], NULL, want, SPLICE_F_MOVE);
        if (in <= 0) {
            err = in;   /* 0: the file ended */
            break;
        }
        clean = false;
        bool more = sent + (size_t)in < count;   /* more to come: let TCP fill its segments */
        while (in > 0) {
            ssize_t out = urt_splice(b.fds[0], NULL, out_fd, NULL, (size_t)in,
                                     SPLICE_F_MOVE | (more ? SPLICE_F_MORE : 0));
            if (out == -EAGAIN) {
                /* A non-blocking out_fd is full: wait for room here, not in a kernel worker. */
                int ready = urt_poll(out_fd, POLLOUT);
                if (ready >= 0)
                    continue;
                out = ready;
            }
            if (out <= 0) {
                err = out ? out : -EPIPE;   /* a pipe with bytes in it never reads as empty */
                break;
            }
            in -= out;
            sent += (size_t)out;
        }
        if (in > 0) {
            /* Read from the file but not sent: *offset must say what the socket got. */
            *offset -= in;
            break;
        }
        clean = true;
    }
    urt__on_sched_stack(rt, clean ? give_back : drop, &b);
    return err < 0 ? err : (ssize_t)sent;
}
