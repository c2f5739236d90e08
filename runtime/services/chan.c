/* SPDX-License-Identifier: MIT */
/*
 * chan.c - channels of fixed-size elements.
 *
 * A waiting sender or receiver parks on a waiter record on its own stack holding a pointer to its
 * element; the task that meets it copies directly from or into that element and wakes it. A woken
 * task touches only its record, never the channel, so a channel can be freed while tasks it just
 * woke have not yet run.
 *
 * A local channel (urt_chan_new) belongs to one runtime and takes no lock and no atomic
 * operation; another runtime's use of it is refused with -EXDEV. A shared one
 * (urt_chan_new_shared) does the same under its mutex, with waiters that tasks of any runtime,
 * or any thread, can wake (sched/xwait.h).
 */
#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#include "sched/sched.h"
#include "sched/waitq.h"
#include "sched/xwait.h"

struct urt_chan {
    size_t              elem_size, cap;
    size_t              head, count;   /* the ring buffer of buffered elements                  */
    bool                closed;
    bool                shared;
    struct urt_runtime *owner;         /* a local channel's runtime                            */
    struct urt__wqueue  senders, receivers;     /* local                                        */
    urt__lock           lock;                   /* shared: guards everything here              */
    struct urt__xqueue  xsenders, xreceivers;   /* shared                                       */
    char               *buf;
};

static urt_chan *chan_new(size_t elem_size, size_t capacity, bool shared)
{
    if (elem_size == 0 || (capacity && elem_size > SIZE_MAX / capacity)) {
        errno = EINVAL;
        return NULL;
    }
    struct urt_runtime *rt = urt__rt;
    urt_chan *c = urt__sched_calloc(rt, 1, sizeof *c);
    if (!c)
        return NULL;
    c->elem_size = elem_size;
    c->cap = capacity;
    c->shared = shared;
    c->owner = shared ? NULL : rt;
    if (capacity && !(c->buf = urt__sched_calloc(rt, capacity, elem_size))) {
        urt__sched_free(rt, c);
        return NULL;
    }
    if (shared)
        c->lock = (urt__lock)URT__LOCK_INIT;
    return c;
}

urt_chan *urt_chan_new(size_t elem_size, size_t capacity)
{
    return chan_new(elem_size, capacity, false);
}

urt_chan *urt_chan_new_shared(size_t elem_size, size_t capacity)
{
    return chan_new(elem_size, capacity, true);
}

static inline char *slot(urt_chan *c, size_t i)
{
    return c->buf + ((c->head + i) % c->cap) * c->elem_size;
}

/* ---- local channels ---- */

/* 0 when done without waiting, -EAGAIN when the caller would have to wait, or an error. */
static int send_now(struct urt_runtime *rt, urt_chan *c, const void *elem)
{
    if (c->closed)
        return -EPIPE;
    struct urt__waiter *r = urt__wq_pop(&c->receivers);
    if (r) {
        memcpy(r->elem, elem, c->elem_size);
        urt__wq_wake(rt, r, 0);
        return 0;
    }
    if (c->count < c->cap) {
        memcpy(slot(c, c->count++), elem, c->elem_size);
        return 0;
    }
    return -EAGAIN;
}

static int recv_now(struct urt_runtime *rt, urt_chan *c, void *elem)
{
    if (c->count) {
        memcpy(elem, slot(c, 0), c->elem_size);
        c->head = (c->head + 1) % c->cap;
        c->count--;
        /* Room again: the oldest waiting sender's element takes it, keeping FIFO order. */
        struct urt__waiter *s = urt__wq_pop(&c->senders);
        if (s) {
            memcpy(slot(c, c->count++), s->elem, c->elem_size);
            urt__wq_wake(rt, s, 0);
        }
        return 0;
    }
    struct urt__waiter *s = urt__wq_pop(&c->senders);
    if (s) {
        memcpy(elem, s->elem, c->elem_size);
        urt__wq_wake(rt, s, 0);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

/* ---- shared channels: the same under the lock, with waiters any thread can wake ---- */

static int send_now_shared(urt_chan *c, const void *elem)
{
    if (c->closed)
        return -EPIPE;
    struct urt__xwaiter *r = urt__xq_pop(&c->xreceivers);
    if (r) {
        memcpy(r->elem, elem, c->elem_size);
        urt__xwake(r, 0);
        return 0;
    }
    if (c->count < c->cap) {
        memcpy(slot(c, c->count++), elem, c->elem_size);
        return 0;
    }
    return -EAGAIN;
}

static int recv_now_shared(urt_chan *c, void *elem)
{
    if (c->count) {
        memcpy(elem, slot(c, 0), c->elem_size);
        c->head = (c->head + 1) % c->cap;
        c->count--;
        struct urt__xwaiter *s = urt__xq_pop(&c->xsenders);
        if (s) {
            memcpy(slot(c, c->count++), s->elem, c->elem_size);
            urt__xwake(s, 0);
        }
        return 0;
    }
    struct urt__xwaiter *s = urt__xq_pop(&c->xsenders);
    if (s) {
        memcpy(elem, s->elem, c->elem_size);
        urt__xwake(s, 0);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

/* ---- the calls ---- */

/* The shared half of urt_chan_send and urt_chan_recv (self: the calling task). */
static int send_shared(struct urt_runtime *rt, struct urt_task *self, urt_chan *c,
                       const void *elem)
{
    int err = urt__check_blocking(self);
    if (err)
        return err;
    urt__lock_take(&c->lock);
    err = send_now_shared(c, elem);
    if (err != -EAGAIN) {
        urt__lock_give(&c->lock);
        return err;
    }
    struct urt__xwaiter w = { .elem = (void *)elem, .what = "chan_send", .obj = c };
    return urt__xwait(rt, &c->xsenders, &c->lock, &w);
}

static int recv_shared(struct urt_runtime *rt, struct urt_task *self, urt_chan *c, void *elem)
{
    int err = urt__check_blocking(self);
    if (err)
        return err;
    urt__lock_take(&c->lock);
    err = recv_now_shared(c, elem);
    if (err != -EAGAIN) {
        urt__lock_give(&c->lock);
        return err;
    }
    struct urt__xwaiter w = { .elem = elem, .what = "chan_recv", .obj = c };
    return urt__xwait(rt, &c->xreceivers, &c->lock, &w);
}

/*
 * The local path first, with one test more than before sharing existed: a shared channel has
 * no owner, so "not this runtime's" covers it, and only then is it told from another runtime's
 * local channel (-EXDEV).
 */
int urt_chan_send(urt_chan *c, const void *elem)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (unlikely(!self))
        return -EPERM;
    if (unlikely(!c || !elem))
        return -EINVAL;
    if (unlikely(c->owner != rt))
        return c->shared ? send_shared(rt, self, c, elem) : -EXDEV;
    int err = urt__check_blocking(self);
    if (err)
        return err;
    err = send_now(rt, c, elem);
    if (err != -EAGAIN)
        return err;
    struct urt__waiter w = { .elem = (void *)elem, .what = "chan_send", .obj = c };
    return urt__wq_wait(rt, &c->senders, &w, true);
}

int urt_chan_recv(urt_chan *c, void *elem)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (unlikely(!self))
        return -EPERM;
    if (unlikely(!c || !elem))
        return -EINVAL;
    if (unlikely(c->owner != rt))
        return c->shared ? recv_shared(rt, self, c, elem) : -EXDEV;
    int err = urt__check_blocking(self);
    if (err)
        return err;
    err = recv_now(rt, c, elem);
    if (err != -EAGAIN)
        return err;
    struct urt__waiter w = { .elem = elem, .what = "chan_recv", .obj = c };
    return urt__wq_wait(rt, &c->receivers, &w, true);
}

/* For try_send/try_recv: a shared channel may be used from any thread; a local one only by its
   runtime's tasks. */
static int check_try(urt_chan *c, const void *elem)
{
    if (!c || !elem)
        return -EINVAL;
    struct urt_task *self = urt__self();
    if (!c->shared) {
        if (!self)
            return urt__rt || !c->owner ? -EPERM : -EXDEV;
        if (c->owner != urt__rt)
            return -EXDEV;
    }
    /* From a task, cancellation and the deadline hold as for any call (as before sharing). */
    return self ? urt__check_blocking(self) : 0;
}

int urt_chan_try_send(urt_chan *c, const void *elem)
{
    int err = check_try(c, elem);
    if (err)
        return err;
    if (!c->shared)
        return send_now(urt__rt, c, elem);
    urt__lock_take(&c->lock);
    err = send_now_shared(c, elem);
    urt__lock_give(&c->lock);
    return err;
}

int urt_chan_try_recv(urt_chan *c, void *elem)
{
    int err = check_try(c, elem);
    if (err)
        return err;
    if (!c->shared)
        return recv_now(urt__rt, c, elem);
    urt__lock_take(&c->lock);
    err = recv_now_shared(c, elem);
    urt__lock_give(&c->lock);
    return err;
}

void urt_chan_close(urt_chan *c)
{
    if (!c)
        return;
    if (c->shared) {
        urt__lock_take(&c->lock);
        c->closed = true;
        struct urt__xwaiter *w;
        while ((w = urt__xq_pop(&c->xsenders)))
            urt__xwake(w, -EPIPE);
        while ((w = urt__xq_pop(&c->xreceivers)))
            urt__xwake(w, -EPIPE);
        urt__lock_give(&c->lock);
        return;
    }
    struct urt_runtime *rt = urt__rt;
    /* Another runtime's channel is not ours to touch (not even to read); outside any runtime,
       a local channel can only be one whose runtime has ended. */
    if ((rt && c->owner != rt) || c->closed)
        return;
    c->closed = true;
    urt__wq_wake_all(rt, &c->senders, -EPIPE);
    urt__wq_wake_all(rt, &c->receivers, -EPIPE);
}

void urt_chan_free(urt_chan *c)
{
    if (!c)
        return;
    struct urt_runtime *rt = urt__rt;
    if (!c->shared && rt && c->owner != rt)
        return;   /* another runtime's channel: not ours to free */
    urt_chan_close(c);
    urt__sched_free(rt, c->buf);
    urt__sched_free(rt, c);
}
