/* SPDX-License-Identifier: MIT */
/*
 * echo_uring - the baseline echo server done by hand with raw liburing: what urt's echo server
 * is measured against (perf/echo_bench.sh).
 *
 * One thread, one ring, set up with the best flags the kernel takes (SINGLE_ISSUER |
 * DEFER_TASKRUN, else COOP_TASKRUN, else none; the ring fd registered). Every SQE carries a
 * pointer to an object whose first member is its completion callback. The loop is one
 * io_uring_submit_and_wait(ring, 1) per iteration - it submits every SQE the callbacks queued
 * and waits - then runs the callback of every completion. A multishot accept (re-armed when the
 * kernel ends it; a plain accept re-armed per connection where multishot is refused) feeds the
 * connections; each connection alternates one recv (up to ECHO_BUF bytes) with one send of what
 * it got, re-sending the rest after a short send.
 *
 * ECHO_LINK=1 in the environment: the send and the next recv go to the kernel as one linked pair
 * instead (the send with MSG_WAITALL and IOSQE_CQE_SKIP_SUCCESS, so one completion per message),
 * the same thing urt_send_recv does, by hand: for comparing like with like. A send that fails or
 * comes back short then closes the connection.
 */
#include <liburing.h>
#include <stddef.h>

#include "echo_common.h"

#define RING_ENTRIES 4096

struct op;
typedef void (*op_cb)(struct op *op, int res, unsigned flags);
struct op {
    op_cb cb;
};

struct conn {
    struct op op;
    struct op send_failed;    /* ECHO_LINK: the linked send's completion (only on failure)      */
    int fd;
    int sending;              /* 0: a recv is in flight; 1: a send                             */
    unsigned len, off;        /* bytes in buf, bytes of them sent                              */
    unsigned char buf[ECHO_BUF];
};

static struct io_uring ring;
static int listen_fd;
static int multishot = 1;
static int linked;            /* ECHO_LINK=1 */
static struct op accept_op;

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring)))
        io_uring_submit(&ring); /* the queue is full: hand it over and retry */
    return sqe;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = sqe_get();
    if (multishot)
        io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &accept_op);
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv(sqe, c->fd, c->buf, sizeof c->buf, 0);
    io_uring_sqe_set_data(sqe, &c->op);
    c->sending = 0;
}

/* The echo and the next recv as one linked pair: the completion is the recv's, or the send's
   when that fails (the kernel then drops the recv). */
static void arm_send_recv(struct conn *c)
{
    struct io_uring_sqe *sqe;
    if (io_uring_sq_space_left(&ring) < 2)
        io_uring_submit(&ring);   /* both in one submission, or the link is cut */
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_send(sqe, c->fd, c->buf, c->len, MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data(sqe, &c->send_failed);
    sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv(sqe, c->fd, c->buf, sizeof c->buf, 0);
    io_uring_sqe_set_data(sqe, &c->op);
    c->sending = 2;
}

static void arm_send(struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, &c->op);
    c->sending = 1;
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c);
}

static void on_send_failed(struct op *op, int res, unsigned flags)
{
    (void)res;
    (void)flags;
    conn_close((struct conn *)((char *)op - offsetof(struct conn, send_failed)));
}

static void on_conn(struct op *op, int res, unsigned flags)
{
    struct conn *c = (struct conn *)op;
    (void)flags;
    if (res <= 0) { /* EOF or error (a send of a non-empty buffer never returns 0) */
        conn_close(c);
        return;
    }
    if (c->sending != 1) {
        c->len = (unsigned)res;
        c->off = 0;
        if (linked)
            arm_send_recv(c);
        else
            arm_send(c);
        return;
    }
    c->off += (unsigned)res;
    if (c->off < c->len)
        arm_send(c); /* short send: the rest */
    else
        arm_recv(c);
}

static void on_accept(struct op *op, int res, unsigned flags)
{
    (void)op;
    if (res >= 0) {
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(res);
        } else {
            c->op.cb = on_conn;
            c->send_failed.cb = on_send_failed;
            c->fd = res;
            echo_tune(res);
            arm_recv(c);
        }
    } else if (res == -EINVAL && multishot) {
        multishot = 0; /* this kernel has no multishot accept */
    } else if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN) {
        fprintf(stderr, "echo_uring: accept: %s\n", strerror(-res));
        if (res == -EMFILE || res == -ENFILE)
            usleep(1000);
    }
    if (!multishot || !(flags & IORING_CQE_F_MORE))
        arm_accept();
}

static unsigned ring_setup(void)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    for (unsigned i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_SUBMIT_ALL;
        int r = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
        if (r == -EINVAL) { /* perhaps SUBMIT_ALL: try without */
            memset(&p, 0, sizeof p);
            p.flags = tries[i];
            r = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
        }
        if (r == 0) {
            io_uring_register_ring_fd(&ring); /* optional */
            return p.flags;
        }
        if (r != -EINVAL) {
            fprintf(stderr, "echo_uring: io_uring_queue_init: %s\n", strerror(-r));
            exit(1);
        }
    }
    fprintf(stderr, "echo_uring: no ring setup the kernel accepts\n");
    exit(1);
}

int main(int argc, char **argv)
{
    listen_fd = echo_listen(argc, argv,
                            "The raw liburing echo server baseline: completion callbacks, one\n"
                            "io_uring_submit_and_wait per loop, multishot accept, one recv then\n"
                            "one send per connection.",
                            0);
    unsigned flags = ring_setup();
    fprintf(stderr, "echo_uring: ring flags 0x%x%s%s\n", flags,
            (flags & IORING_SETUP_DEFER_TASKRUN) ? " (single issuer, deferred task run)" : "",
            (flags & IORING_SETUP_COOP_TASKRUN) ? " (cooperative task run)" : "");

    /* ECHO_SINGLE_ACCEPT=1: one plain accept per connection, to measure what multishot saves. */
    const char *single = getenv("ECHO_SINGLE_ACCEPT");
    if (single && *single == '1')
        multishot = 0;
    const char *link = getenv("ECHO_LINK");
    if (link && *link == '1')
        linked = 1;
    accept_op.cb = on_accept;
    arm_accept();
    for (;;) {
        int r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
            fprintf(stderr, "echo_uring: io_uring_submit_and_wait: %s\n", strerror(-r));
            return 1;
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            struct op *op = io_uring_cqe_get_data(cqe);
            op->cb(op, cqe->res, cqe->flags);
            n++;
        }
        io_uring_cq_advance(&ring, n);
    }
}
