/*
 * bufring.c - receiving into the runtime's own buffers (an io_uring provided-buffer ring).
 *
 * With urt_recv, every connection keeps a buffer of its own, on its stack, for the kernel to
 * write into: a thousand connections are a thousand pages in play. urt_recv_buf lets the kernel
 * pick a buffer from one shared ring when data arrives, so a waiting connection holds none and
 * the few buffers in use stay hot in the caches. liburing 2.3 has no io_uring_setup_buf_ring: the
 * ring's memory is mapped and registered here by hand.
 */
#include <sys/mman.h>

#include "fault.h"
#include "runtime.h"
#include "ring.h"

#define BGID        0
#define NBUFS       1024          /* a power of two */
#define BUF_SIZE    4096

struct urt__bufring {
    struct io_uring_buf_ring *br;
    size_t                    br_len;
    char                     *mem;
    struct urt__wqueue        waiters;   /* tasks that found the ring empty */
};

static int setup(struct urt_runtime *rt)
{
    struct urt__bufring *b = urt__calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->br_len = NBUFS * sizeof(struct io_uring_buf);
    b->br = mmap(NULL, b->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b->mem = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->br == MAP_FAILED || b->mem == MAP_FAILED)
        goto fail;
    io_uring_buf_ring_init(b->br);
    struct io_uring_buf_reg reg = { .ring_addr = (uint64_t)(uintptr_t)b->br,
                                    .ring_entries = NBUFS, .bgid = BGID };
    int err = io_uring_register_buf_ring(&rt->ring, &reg, 0);
    if (err)
        goto fail_err;
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(b->br, b->mem + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              NBUFS - 1, (int)i);
    io_uring_buf_ring_advance(b->br, NBUFS);
    rt->bufring = b;
    return 0;
fail:
    err = -ENOMEM;
fail_err:
    if (b->br != MAP_FAILED && b->br)
        munmap(b->br, b->br_len);
    if (b->mem != MAP_FAILED && b->mem)
        munmap(b->mem, (size_t)NBUFS * BUF_SIZE);
    free(b);
    return err;
}

ssize_t urt_recv_buf(int fd, void **data, int flags)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = urt__self();
    if (!self)
        return -EPERM;
    if (!data)
        return -EFAULT;
    *data = NULL;
    if (!rt->bufring) {
        int err = setup(rt);
        if (err)
            return err;
    }
    struct urt__bufring *b = rt->bufring;
    for (;;) {
        struct urt__op op;
        int err;
        struct io_uring_sqe *sqe = urt__op_begin(&op, &err);
        if (!sqe)
            return err;
        io_uring_prep_recv(sqe, fd, NULL, BUF_SIZE, flags);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID;
        op.opcode = sqe->opcode;
        op.fd = fd;
        int res = urt__op_wait(&op);
        if (op.cflags & IORING_CQE_F_BUFFER) {
            unsigned bid = op.cflags >> IORING_CQE_BUFFER_SHIFT;
            *data = b->mem + (size_t)bid * BUF_SIZE;
            if (res <= 0) {   /* a buffer came back with no data: return it at once */
                urt_buf_release(*data);
                *data = NULL;
            }
            return res;
        }
        if (res != -ENOBUFS)
            return res;
        /* Every buffer is held by a task: wait for one to come back, then try again. */
        struct urt__waiter w = { .what = "recv_buf", .obj = b };
        err = urt__wq_wait(rt, &b->waiters, &w, true);
        if (err)
            return err;
    }
}

void urt_buf_release(void *data)
{
    struct urt_runtime *rt = urt__rt;
    struct urt__bufring *b = rt ? rt->bufring : NULL;
    if (!b || !data)
        return;
    size_t off = (size_t)((char *)data - b->mem);
    if ((char *)data < b->mem || off >= (size_t)NBUFS * BUF_SIZE)
        return;   /* not one of ours */
    unsigned bid = (unsigned)(off / BUF_SIZE);
    io_uring_buf_ring_add(b->br, b->mem + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          NBUFS - 1, 0);
    io_uring_buf_ring_advance(b->br, 1);
    struct urt__waiter *w = urt__wq_pop(&b->waiters);
    if (w)
        urt__wq_wake(rt, w, 0);
}

void urt__bufring_exit(struct urt_runtime *rt)
{
    struct urt__bufring *b = rt->bufring;
    if (!b)
        return;
    io_uring_unregister_buf_ring(&rt->ring, BGID);
    munmap(b->br, b->br_len);
    munmap(b->mem, (size_t)NBUFS * BUF_SIZE);
    free(b);
    rt->bufring = NULL;
}
