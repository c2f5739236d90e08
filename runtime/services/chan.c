/* SPDX-License-Identifier: MIT */
/*
 * chan.c - channels of fixed-size elements between the tasks of one runtime.
 *
 * A waiting sender or receiver parks on a waiter record on its own stack holding a pointer to its
 * element; the task that meets it copies directly from or into that element and wakes it. A woken
 * task touches only its record, never the channel, so a channel can be freed while tasks it just
 * woke have not yet run.
 */
#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#include "sched/sched.h"
#include "sched/waitq.h"

struct urt_chan {
    size_t              elem_size, cap;
    size_t              head, count;   /* the ring buffer of buffered elements */
    bool                closed;
    struct urt__wqueue  senders, receivers;
    char               *buf;
};

urt_chan *urt_chan_new(size_t elem_size, size_t capacity)
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
    if (capacity && !(c->buf = urt__sched_calloc(rt, capacity, elem_size))) {
        urt__sched_free(rt, c);
        return NULL;
    }
    return c;
}

static inline char *slot(urt_chan *c, size_t i)
{
    return c->buf + ((c->head + i) % c->cap) * c->elem_size;
}

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

static int check(urt_chan *c, const void *elem)
{
    if (!urt__self())
        return -EPERM;
    if (!c || !elem)
        return -EINVAL;
    return urt__check_blocking(urt__self());
}

int urt_chan_send(urt_chan *c, const void *elem)
{
    int err = check(c, elem);
    if (err)
        return err;
    err = send_now(urt__rt, c, elem);
    if (err != -EAGAIN)
        return err;
    struct urt__waiter w = { .elem = (void *)elem, .what = "chan_send", .obj = c };
    return urt__wq_wait(urt__rt, &c->senders, &w, true);
}

int urt_chan_recv(urt_chan *c, void *elem)
{
    int err = check(c, elem);
    if (err)
        return err;
    err = recv_now(urt__rt, c, elem);
    if (err != -EAGAIN)
        return err;
    struct urt__waiter w = { .elem = elem, .what = "chan_recv", .obj = c };
    return urt__wq_wait(urt__rt, &c->receivers, &w, true);
}

int urt_chan_try_send(urt_chan *c, const void *elem)
{
    int err = check(c, elem);
    return err ? err : send_now(urt__rt, c, elem);
}

int urt_chan_try_recv(urt_chan *c, void *elem)
{
    int err = check(c, elem);
    return err ? err : recv_now(urt__rt, c, elem);
}

void urt_chan_close(urt_chan *c)
{
    struct urt_runtime *rt = urt__rt;
    if (!c || c->closed)
        return;
    c->closed = true;
    urt__wq_wake_all(rt, &c->senders, -EPIPE);
    urt__wq_wake_all(rt, &c->receivers, -EPIPE);
}

void urt_chan_free(urt_chan *c)
{
    if (!c)
        return;
    urt_chan_close(c);
    struct urt_runtime *rt = urt__rt;
    urt__sched_free(rt, c->buf);
    urt__sched_free(rt, c);
}
