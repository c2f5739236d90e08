/* SPDX-License-Identifier: MIT */
/*
 * echo_coro - the floor of the stackful design: the echo server with one coroutine per
 * connection, as urt's, but with nothing of urt around the context switch.
 *
 * Same ring as echo_uring (same flags, multishot accept, one submit_and_wait per loop). Each
 * connection's code is blocking-style, like examples/echo_server's: recv into a 4 KiB buffer on
 * its own 64 KiB stack, send it back, again. An operation puts its SQE in the ring with the
 * coroutine as user_data and switches to the loop (urt__ctx_switch, urt's own routine, taken
 * from liburt.a as perf/switch's bare baseline does); the loop, for each completion, stores the
 * result and switches straight into its coroutine, which runs until its next operation. No run
 * queue, no task states, no deadlines, no counters, no cancellation: what a runtime built on
 * coroutines cannot do with less. perf/echo_bench.sh --servers "... coro" sets it beside urt:
 * the difference between this and the callback server is the price of the design, the
 * difference between urt and this is the price of urt.
 */
#include <liburing.h>

#include "context.h"
#include "echo_common.h"

#define RING_ENTRIES 4096
#define CORO_STACK (64 * 1024)
#define CORO_BUF 4096

struct coro {                 /* at the top of its stack */
    void *sp;                 /* saved stack pointer while suspended                           */
    int   res;                /* the completion's result, for the operation that waits         */
    int   fd;
    char *stack;              /* the allocation, freed when it ends                           */
};

static struct io_uring ring;
static int listen_fd;
static int multishot = 1;
static int linked;            /* ECHO_LINK=1 */
static int accept_tag;        /* user_data of the accept: its address                          */
static void *loop_sp;         /* the loop's saved stack pointer while a coroutine runs         */
static struct coro *finished; /* a coroutine that ended: its stack is freed by the loop        */
static unsigned spawned;

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring)))
        io_uring_submit(&ring);
    return sqe;
}

/* The SQE is prepared; park until its completion and return its result. */
static int coro_wait(struct coro *self, struct io_uring_sqe *sqe)
{
    io_uring_sqe_set_data(sqe, self);
    urt__ctx_switch(&self->sp, loop_sp);
    return self->res;
}

static struct io_uring_sqe *recv_sqe(struct coro *self, char *buf)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv(sqe, self->fd, buf, CORO_BUF, 0);
    return sqe;
}

/* ECHO_LINK=1: each echo linked to the next recv (as urt_send_recv does), one resume per
   message. The send's user_data is the coroutine | 1: it completes only when it fails (or comes
   back short), the kernel then drops the recv, and the loop resumes the coroutine with an error. */
static void serve_linked(struct coro *self, char *buf)
{
    int n = 0;
    for (;;) {
        if (n > 0) {
            if (io_uring_sq_space_left(&ring) < 2)
                io_uring_submit(&ring);   /* both in one submission */
            struct io_uring_sqe *s = io_uring_get_sqe(&ring);
            io_uring_prep_send(s, self->fd, buf, (unsigned)n, MSG_NOSIGNAL | MSG_WAITALL);
            s->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data(s, (char *)self + 1);
        }
        n = coro_wait(self, recv_sqe(self, buf));
        if (n <= 0)
            return;
    }
}

static void serve(void *arg)
{
    struct coro *self = arg;
    char buf[CORO_BUF];
    if (linked) {
        serve_linked(self, buf);
        goto done;
    }
    for (;;) {
        struct io_uring_sqe *sqe = sqe_get();
        io_uring_prep_recv(sqe, self->fd, buf, CORO_BUF, 0);
        int n = coro_wait(self, sqe);
        if (n <= 0)
            break;
        for (int off = 0, w; off < n; off += w) {
            sqe = sqe_get();
            io_uring_prep_send(sqe, self->fd, buf + off, (unsigned)(n - off), MSG_NOSIGNAL);
            w = coro_wait(self, sqe);
            if (w <= 0)
                goto done;
        }
    }
done:
    close(self->fd);
    finished = self;
    urt__ctx_switch(&self->sp, loop_sp);
    abort();   /* never resumed */
}

static void resume(struct coro *c)
{
    urt__ctx_switch(&loop_sp, c->sp);
    if (finished) {
        struct coro *f = finished;
        finished = NULL;
        free(f->stack);
    }
}

static void spawn(int fd)
{
    char *stack = aligned_alloc(4096, CORO_STACK);
    if (!stack) {
        close(fd);
        return;
    }
    /* The header at the top, at one of 16 cache-line colours as urt places its task headers. */
    size_t colour = (size_t)(spawned++ & 15) * 64;
    struct coro *c = (struct coro *)(stack + CORO_STACK - colour) - 1;
    c->fd = fd;
    c->stack = stack;
    c->sp = urt__ctx_make(c, serve, c);
    resume(c);   /* runs until its first recv is queued */
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = sqe_get();
    if (multishot)
        io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &accept_tag);
}

static void on_accept(int res, unsigned flags)
{
    if (res >= 0) {
        echo_tune(res);
        spawn(res);
    } else if (res == -EINVAL && multishot) {
        multishot = 0;
    } else if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN) {
        fprintf(stderr, "echo_coro: accept: %s\n", strerror(-res));
        if (res == -EMFILE || res == -ENFILE)
            usleep(1000);
    }
    if (!multishot || !(flags & IORING_CQE_F_MORE))
        arm_accept();
}

int main(int argc, char **argv)
{
    listen_fd = echo_listen(argc, argv,
                            "The floor of the stackful design: one coroutine per connection on\n"
                            "urt's context switch, resumed straight from the completion loop; no\n"
                            "scheduler, deadlines or cancellation.",
                            0);
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
    int r = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (r < 0) {
        fprintf(stderr, "echo_coro: io_uring_queue_init (single issuer, deferred task run): %s\n",
                strerror(-r));
        return 1;
    }
    io_uring_register_ring_fd(&ring);
    const char *link = getenv("ECHO_LINK");
    linked = link && *link == '1';
    arm_accept();
    for (;;) {
        r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
            fprintf(stderr, "echo_coro: io_uring_submit_and_wait: %s\n", strerror(-r));
            return 1;
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            void *data = io_uring_cqe_get_data(cqe);
            if (data == &accept_tag) {
                on_accept(cqe->res, cqe->flags);
            } else if ((uintptr_t)data & 1) {   /* a linked send failed */
                struct coro *c = (struct coro *)((char *)data - 1);
                c->res = cqe->res < 0 ? cqe->res : -EPIPE;
                resume(c);
            } else {
                struct coro *c = data;
                c->res = cqe->res;
                resume(c);
            }
            n++;
        }
        io_uring_cq_advance(&ring, n);
    }
}
