/* SPDX-License-Identifier: MIT */
/*
 * echo_uring_multishot - the raw liburing echo server again, with a multishot recv per
 * connection into a ring of provided buffers: what those two io_uring features save by hand,
 * measured against echo_uring (perf/echo_bench.sh --servers "uring multishot urt").
 *
 * Same ring setup and loop as echo_uring (one io_uring_submit_and_wait per iteration, callbacks
 * by kind). Each connection has one multishot recv armed for its whole life: the kernel picks a
 * buffer from the ring for every chunk that arrives, and the chunk is sent back from that buffer,
 * which returns to the ring when its send completes. A connection sends one chunk at a time (two
 * sends in flight on one socket could complete out of order), queueing the others. When the ring
 * runs dry the recv ends with -ENOBUFS and is re-armed once a buffer comes back.
 */
#include <liburing.h>

#include "echo_common.h"

#define RING_ENTRIES 4096
#define NBUF         4096          /* provided buffers (a power of two)            */
#define BUF_SIZE     4096
#define BGID         1             /* the buffer group                             */
#define NO_BUF       0xffffu

enum kind { ACCEPT, RECV, SEND };

struct conn {
    int fd;
    unsigned sends;                /* 1 while a send is in flight                  */
    unsigned off;                  /* bytes of the head chunk already sent         */
    uint16_t head, tail;           /* chunks waiting to be sent (linked by next[]) */
    int recv_live;                 /* the multishot recv is armed                  */
    int closing;                   /* EOF or error seen: close once all is over    */
    int starved;                   /* recv ended for want of buffers               */
    struct conn *starved_next;
};

static struct io_uring ring;
static struct io_uring_buf_ring *bufring;
static unsigned char *bufs;
static unsigned buf_len[NBUF];     /* bytes a buffer holds                        */
static uint16_t next[NBUF];        /* the chunk after it on its connection's queue */
static int listen_fd;
static struct conn *starved;       /* connections waiting for a buffer            */

/* user_data: the kind in the low 2 bits of the (4-byte aligned) connection pointer */
static uint64_t tag(enum kind k, struct conn *c)
{
    return (uint64_t)(uintptr_t)c | (uint64_t)k;
}

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring)))
        io_uring_submit(&ring);
    return sqe;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, tag(ACCEPT, NULL));
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, tag(RECV, c));
    c->recv_live = 1;
}

static void conn_maybe_close(struct conn *c);

static void buf_return(unsigned bid)
{
    io_uring_buf_ring_add(bufring, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUF), 0);
    io_uring_buf_ring_advance(bufring, 1);
    if (starved) {                 /* a buffer again: that connection may receive */
        struct conn *c = starved;
        starved = c->starved_next;
        c->starved = 0;
        if (c->closing)
            conn_maybe_close(c);
        else
            arm_recv(c);
    }
}

static void send_head(struct conn *c)
{
    unsigned bid = c->head;
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, c->fd, bufs + (size_t)bid * BUF_SIZE + c->off, buf_len[bid] - c->off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(SEND, c));
    c->sends = 1;
}

static void conn_maybe_close(struct conn *c)
{
    if (c->closing && !c->sends && !c->recv_live && !c->starved) {
        while (c->head != NO_BUF) {
            unsigned bid = c->head;
            c->head = next[bid];
            buf_return(bid);
        }
        close(c->fd);
        free(c);
    }
}

static void on_recv(struct conn *c, int res, unsigned flags)
{
    if (res > 0) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        buf_len[bid] = (unsigned)res;
        next[bid] = NO_BUF;
        if (c->head == NO_BUF) {
            c->head = c->tail = (uint16_t)bid;
            c->off = 0;
            send_head(c);
        } else {
            next[c->tail] = (uint16_t)bid;
            c->tail = (uint16_t)bid;
        }
    }
    if (flags & IORING_CQE_F_MORE)
        return;
    c->recv_live = 0;
    if (c->closing) {
        conn_maybe_close(c);
    } else if (res == -ENOBUFS) {
        c->starved = 1;
        c->starved_next = starved;
        starved = c;
    } else if (res > 0) {
        arm_recv(c);               /* the kernel ended it (e.g. CQ overflow): again */
    } else {
        c->closing = 1;            /* EOF or an error */
        conn_maybe_close(c);
    }
}

static void on_send(struct conn *c, int res)
{
    unsigned bid = c->head;
    c->sends = 0;
    if (res <= 0) {                /* the peer is gone: drop what is queued */
        c->closing = 1;
        shutdown(c->fd, SHUT_RDWR); /* ends the multishot recv, if armed, too */
        conn_maybe_close(c);
        return;
    }
    c->off += (unsigned)res;
    if (c->off < buf_len[bid]) {
        send_head(c);              /* short send: the rest */
        return;
    }
    c->head = next[bid];
    c->off = 0;
    buf_return(bid);
    if (c->head != NO_BUF)
        send_head(c);
    else
        conn_maybe_close(c);
}

static void on_accept(int res, unsigned flags)
{
    if (res >= 0) {
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(res);
        } else {
            c->fd = res;
            c->head = c->tail = NO_BUF;
            echo_tune(res);
            arm_recv(c);
        }
    } else if (res == -EMFILE || res == -ENFILE) {
        usleep(1000);
    }
    if (!(flags & IORING_CQE_F_MORE))
        arm_accept();
}

int main(int argc, char **argv)
{
    listen_fd = echo_listen(argc, argv,
                            "The raw liburing echo server with a multishot recv per connection\n"
                            "into provided buffers (kernel 6.0 or later).",
                            0);
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
    int r = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (r < 0) {
        fprintf(stderr, "echo_uring_multishot: io_uring_queue_init: %s\n", strerror(-r));
        return 1;
    }
    io_uring_register_ring_fd(&ring);

    /* The buffer ring: page-aligned, registered by hand (liburing 2.3 has no
       io_uring_setup_buf_ring). */
    bufs = malloc((size_t)NBUF * BUF_SIZE);
    if (!bufs || posix_memalign((void **)&bufring, 4096, NBUF * sizeof(struct io_uring_buf))) {
        fprintf(stderr, "echo_uring_multishot: out of memory\n");
        return 1;
    }
    io_uring_buf_ring_init(bufring);
    struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)bufring, .ring_entries = NBUF,
                                    .bgid = BGID };
    r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0) {
        fprintf(stderr, "echo_uring_multishot: io_uring_register_buf_ring: %s\n", strerror(-r));
        return 1;
    }
    for (unsigned i = 0; i < NBUF; i++)
        io_uring_buf_ring_add(bufring, bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(NBUF), (int)i);
    io_uring_buf_ring_advance(bufring, NBUF);

    arm_accept();
    for (;;) {
        r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
            fprintf(stderr, "echo_uring_multishot: io_uring_submit_and_wait: %s\n", strerror(-r));
            return 1;
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            struct conn *c = (struct conn *)(uintptr_t)(cqe->user_data & ~(uint64_t)3);
            switch ((enum kind)(cqe->user_data & 3)) {
            case ACCEPT: on_accept(cqe->res, cqe->flags); break;
            case RECV:   on_recv(c, cqe->res, cqe->flags); break;
            case SEND:   on_send(c, cqe->res); break;
            }
            n++;
        }
        io_uring_cq_advance(&ring, n);
    }
}
