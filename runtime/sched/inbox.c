/* SPDX-License-Identifier: MIT */
/*
 * inbox.c - posts from other threads to a runtime (see inbox.h).
 *
 * A poster appends under the inbox's lock and, if no wake-up is on its way since the owner last
 * drained, sends one: a message to the owner's ring (IORING_OP_MSG_RING) when the poster is
 * itself a runtime whose kernel has them, else a write to the inbox's eventfd, whose read the
 * owner keeps armed. So many posts to one runtime within one of its rounds cost one wake-up. The
 * owner drains on its scheduler's stack, in the completion of either, and runs the posts in order.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sched/inbox.h"
#include "sched/sched.h"

struct urt__inbox *urt__inbox_new(int *err)
{
    struct urt__inbox *in = calloc(1, sizeof *in);
    if (!in) {
        *err = -ENOMEM;
        return NULL;
    }
    in->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (in->efd < 0) {
        *err = -errno;
        free(in);
        return NULL;
    }
    in->lock = (urt__lock)URT__LOCK_INIT;
    in->ring_fd = -1;
    in->refs = 1;
    return in;
}

static void destroy(struct urt__inbox *in)
{
    urt__inbox_close(in);
    close(in->efd);
    free(in);
}

/* Takes every post, in order, and lets the next poster signal again. */
static struct urt__post *take(struct urt__inbox *in)
{
    urt__lock_take(&in->lock);
    struct urt__post *p = in->head;
    __atomic_store_n(&in->head, NULL, __ATOMIC_RELAXED);   /* (read unlocked by the spin) */
    in->tail = NULL;
    in->signalled = false;
    urt__lock_give(&in->lock);
    return p;
}

static void drain(struct urt_runtime *rt, struct urt__inbox *in)
{
    struct urt__post *p = take(in);
    while (p) {
        struct urt__post *next = p->next;
        p->run(rt, p);
        p = next;
    }
}

/*
 * A wake-up came (a message, or the eventfd's read): the posts are run after the reap, by the
 * post-reap hook - but not in a poll that flushes a full queue for someone queueing (that one may
 * hold a primitive's lock a post's work takes, say a stop cancelling a task parked on it): they
 * wait for the next poll of the scheduler's own.
 */
void urt__inbox_message(void *ctx)
{
    struct urt_runtime *rt = ctx;
    rt->inbox_due = true;   /* (a late message finds the inbox empty, or gone: nothing to do) */
}

static void on_eventfd(void *ctx, struct urt__op *op, int res, unsigned flags)
{
    (void)res;
    (void)flags;
    struct urt__inbox *in = urt__container_of(op, struct urt__inbox, efd_op);
    in->efd_armed = false;
    ((struct urt_runtime *)ctx)->inbox_due = true;
}

void urt__inbox_run_due(struct urt_runtime *rt)
{
    rt->inbox_due = false;
    if (rt->inbox)
        drain(rt, rt->inbox);
}

static void rearm(struct urt_runtime *rt, struct urt__service *s)
{
    struct urt__inbox *in = urt__container_of(s, struct urt__inbox, base);
    if (rt->inbox_due && !rt->flushing)
        urt__inbox_run_due(rt);
    if (in->efd_armed || in->closed)
        return;
    in->efd_armed = true;
    in->efd_op = (struct urt__op){ .on_complete = on_eventfd, .kind = URT__OP_READ, .fd = in->efd,
                                   .buf = &in->efd_value, .len = sizeof in->efd_value };
    urt__backend_submit(rt->backend, &in->efd_op);
}

/* The armed read wakes a task only if some task waits on something another thread can end. */
static uint64_t idle_ops(const struct urt_runtime *rt, const struct urt__service *s)
{
    const struct urt__inbox *in = urt__container_of(s, struct urt__inbox, base);
    return in->efd_armed && rt->shared_waiters == 0;
}

static void runtime_end(struct urt_runtime *rt, struct urt__service *s)
{
    struct urt__inbox *in = urt__container_of(s, struct urt__inbox, base);
    urt__inbox_close(in);
    if (in->efd_armed) {
        urt__backend_cancel(rt->backend, &in->efd_op, NULL);
        urt__sched_drain(rt, &in->efd_armed);
        if (rt->fatal)
            return;   /* the read may still complete into it: leave it */
    }
    urt__lock_take(&in->lock);
    in->ring_fd = -1;   /* the ring is about to go: messages would find another file */
    urt__lock_give(&in->lock);
    rt->inbox = NULL;
    if (in->own)
        urt__inbox_release(in);
}

static const struct urt__service_ops inbox_ops = {
    .name = "inbox",
    .post_reap = rearm,
    .idle_ops = idle_ops,
    .runtime_end = runtime_end,
};

void urt__inbox_open(struct urt_runtime *rt, struct urt__inbox *in)
{
    urt__lock_take(&in->lock);
    in->ring_fd = urt__backend_can_message(rt->backend) ? urt__backend_ring_fd(rt->backend) : -1;
    urt__lock_give(&in->lock);
    urt__service_add(rt, &in->base, &inbox_ops);
    rt->inbox = in;
    rearm(rt, &in->base);
    drain(rt, in);   /* what came before the runtime ran */
}

void urt__inbox_close(struct urt__inbox *in)
{
    urt__lock_take(&in->lock);
    __atomic_store_n(&in->closed, true, __ATOMIC_RELEASE);   /* (read unlocked by spawn_on) */
    struct urt__post *p = in->head;
    __atomic_store_n(&in->head, NULL, __ATOMIC_RELAXED);
    in->tail = NULL;
    urt__lock_give(&in->lock);
    while (p) {
        struct urt__post *next = p->next;
        if (p->drop)
            p->drop(p);
        p = next;
    }
}

static void wake_by_eventfd(struct urt__inbox *in)
{
    uint64_t one = 1;
    ssize_t w = write(in->efd, &one, sizeof one);
    (void)w;   /* EAGAIN: the counter is full, the owner has a wake-up pending anyway */
}

/* A message on its way to an owner's ring, until the sender's own completion says how it went. */
struct sent {
    struct urt__op     op;   /* first: the completion finds the record */
    struct urt__inbox *in;   /* held until then                        */
};

static void on_sent(void *ctx, struct urt__op *op, int res, unsigned flags)
{
    (void)ctx;
    (void)flags;
    struct sent *m = (struct sent *)(void *)op;
    /* It did not arrive (the owner's CQ overflowed, no memory; or its ring has gone, and then
       its inbox is closed and the eventfd wakes nobody): the wake-up goes the other way, or
       signalled would stay set and later posters would send none. */
    if (res < 0)
        wake_by_eventfd(m->in);
    urt__inbox_release(m->in);
    free(m);   /* (a completion handler: on the scheduler's stack) */
}

/* Queues a message to the owner's ring (it reaches the kernel at this runtime's next enter):
   true, or false when there was no memory for its record (then wake by the eventfd). */
static bool send_message(struct urt_runtime *rt, struct urt__inbox *in, int ring_fd)
{
    struct sent *m = urt__sched_calloc(rt, 1, sizeof *m);
    if (!m)
        return false;
    m->op.on_complete = on_sent;
    m->in = in;
    urt__inbox_hold(in);
    urt__backend_message(rt->backend, ring_fd, &m->op);
    if (unlikely(rt->fatal)) {
        /* The ring died while queueing: the message will never go (m and its hold leak with
           the rest of a dead runtime) - wake the owner the other way. */
        return false;
    }
    return true;
}

int urt__inbox_post(struct urt__inbox *in, struct urt__post *p)
{
    p->next = NULL;
    urt__lock_take(&in->lock);
    if (in->closed) {
        urt__lock_give(&in->lock);
        return -ESHUTDOWN;
    }
    if (in->tail)
        in->tail->next = p;
    else
        __atomic_store_n(&in->head, p, __ATOMIC_RELEASE);
    in->tail = p;
    /* The owner may be polling the list itself: then it needs no wake-up. Against the owner's
       urt__inbox_spin_end (store spinning, then load posted), this increment and the load of
       spinning, all sequentially consistent, make sure one of the two sees the other. */
    __atomic_fetch_add(&in->posted, 1, __ATOMIC_SEQ_CST);
    bool signal = !in->signalled && !__atomic_load_n(&in->spinning, __ATOMIC_SEQ_CST);
    if (signal)
        in->signalled = true;
    int ring_fd = in->ring_fd;
    urt__lock_give(&in->lock);
    struct urt_runtime *rt = urt__rt;
    if (signal && ring_fd >= 0 && rt && !rt->fatal && urt__backend_can_message(rt->backend))
        signal = !send_message(rt, in, ring_fd);
    if (signal)
        wake_by_eventfd(in);
    return 0;
}

void urt__inbox_hold(struct urt__inbox *in)
{
    __atomic_add_fetch(&in->refs, 1, __ATOMIC_RELAXED);
}

void urt__inbox_release(struct urt__inbox *in)
{
    if (__atomic_sub_fetch(&in->refs, 1, __ATOMIC_ACQ_REL) == 0)
        destroy(in);
}

static void make_own(struct urt_runtime *rt, void *arg)
{
    int err;
    struct urt__inbox *in = urt__inbox_new(&err);   /* the reference is its runtime's */
    if (in) {
        in->own = true;
        urt__inbox_open(rt, in);
    }
    *(struct urt__inbox **)arg = in;
}

struct urt__inbox *urt__inbox_of(struct urt_runtime *rt)
{
    if (likely(rt->inbox != NULL))
        return rt->inbox;
    struct urt__inbox *in = NULL;
    urt__on_sched_stack(rt, make_own, &in);
    return in;
}

void urt__inbox_spin_begin(struct urt__inbox *in)
{
    __atomic_store_n(&in->spinning, 1, __ATOMIC_SEQ_CST);
}

/* A look at the list without the lock (a hint), then a drain if anything is there. */
bool urt__inbox_spin_check(struct urt_runtime *rt, struct urt__inbox *in)
{
    if (!__atomic_load_n(&in->head, __ATOMIC_ACQUIRE))
        return false;
    drain(rt, in);
    return true;
}

void urt__inbox_spin_end(struct urt_runtime *rt, struct urt__inbox *in)
{
    __atomic_store_n(&in->spinning, 0, __ATOMIC_SEQ_CST);
    (void)__atomic_load_n(&in->posted, __ATOMIC_SEQ_CST);
    urt__inbox_spin_check(rt, in);   /* a post that saw us spinning sent no wake-up */
}
