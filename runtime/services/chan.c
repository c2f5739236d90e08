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
#include "sched/inbox.h"
#include "sched/sched.h"
#include "sched/timer.h"
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

/* ---- select ---- */

/* A select picks among its ready cases at random (xorshift, per thread): each is as likely as
   the others, as in Go. */
static __thread uint64_t select_rng;

/* A random number below n. */
static unsigned random_below(unsigned n)
{
    uint64_t x = select_rng;
    if (unlikely(!x))
        x = urt_now() | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    select_rng = x;
    return (unsigned)(((x >> 32) * n) >> 32);
}

/* Whether a case looks ready (locks held): a waiter it would meet may turn out to be another
   select's, already served, and then the case is not ready after all. */
static bool looks_ready(const struct urt_case *k)
{
    const urt_chan *c = k->chan;
    if (c->closed)
        return true;
    if (k->op == URT_RECV)
        return c->count || (c->shared ? c->xsenders.list.head : c->senders.list.head);
    return c->count < c->cap || (c->shared ? c->xreceivers.list.head : c->receivers.list.head);
}

/* A case's wait: on a local channel's queue, or on a shared one's. */
union case_wait {
    struct urt__waiter  local;
    struct urt__xwaiter shared;
};

/* The shared channels of a select, each once, in address order: they are locked in that order
   by every select, so that two selects over the same channels cannot deadlock. */
static int lock_order(const struct urt_case *cases, int n, urt_chan **out)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        urt_chan *c = cases[i].chan;
        if (!c->shared)
            continue;
        int j = m;
        while (j > 0 && out[j - 1] > c)
            j--;
        if (j > 0 && out[j - 1] == c)
            continue;
        memmove(&out[j + 1], &out[j], (size_t)(m - j) * sizeof *out);
        out[j] = c;
        m++;
    }
    return m;
}

static void lock_all(urt_chan **locks, int m)
{
    for (int i = 0; i < m; i++)
        urt__lock_take(&locks[i]->lock);
}

static void unlock_all(urt_chan **locks, int m)
{
    for (int i = m; i-- > 0;)
        urt__lock_give(&locks[i]->lock);
}

/* Case i tried without waiting: 0, -EPIPE, or -EAGAIN when it would wait. Locks held. */
static int try_case(struct urt_runtime *rt, const struct urt_case *k)
{
    urt_chan *c = k->chan;
    if (k->op == URT_RECV)
        return c->shared ? recv_now_shared(c, k->elem) : recv_now(rt, c, k->elem);
    return c->shared ? send_now_shared(c, k->elem) : send_now(rt, c, k->elem);
}

/* Waits on every case at once; the locks are held on entry and on return. */
static int select_wait(struct urt_runtime *rt, struct urt_task *self, struct urt_case *cases,
                       int n, bool shared, urt_chan **locks, int nlocks, union case_wait *ws)
{
    int claim = -1;
    struct urt__waiter master = { .task = self, .what = "select", .obj = cases[0].chan };
    struct urt__inbox *inbox = shared ? urt__inbox_of(rt) : NULL;
    if (shared && !inbox)
        return -ENOMEM;
    if (self->deadline && urt__deadline_arm(&rt->timers, self) < 0)
        return -ENOMEM;
    uint32_t seq = ++self->wait_seq;
    /* Once woken, a local case's channel is touched only while this select's waiter is still
       linked on it: one that served or closed it may have freed it since (as for any woken
       waiter). So each case's kind is kept here, not read from its channel again. */
    bool on_shared[URT_SELECT_MAX];
    for (int i = 0; i < n; i++) {
        urt_chan *c = cases[i].chan;
        bool recv = cases[i].op == URT_RECV;
        on_shared[i] = c->shared;
        if (c->shared) {
            ws[i].shared = (struct urt__xwaiter){
                .lock = &c->lock, .elem = cases[i].elem, .rt = rt, .inbox = inbox, .task = self,
                .id = self->id, .seq = seq, .what = "select", .obj = c, .claim = &claim,
                .claim_as = i };
            urt__xq_push(recv ? &c->xreceivers : &c->xsenders, &ws[i].shared);
        } else {
            ws[i].local = (struct urt__waiter){ .task = self, .elem = cases[i].elem,
                                                .what = "select", .obj = c, .claim = &claim,
                                                .claim_as = i, .master = &master };
            urt__wq_push(recv ? &c->receivers : &c->senders, &ws[i].local);
        }
    }
    self->flags &= ~URT__TIMED_OUT;
    self->wait_kind = URT__WAIT_QUEUE;   /* a cancel, deadline or deadlock ends it on master */
    self->wait = &master;
    if (shared)
        rt->shared_waiters++;
    unlock_all(locks, nlocks);
    for (;;) {
        bool done = master.done;
        for (int i = 0; i < n && !done; i++)
            done = on_shared[i] && __atomic_load_n(&ws[i].shared.done, __ATOMIC_ACQUIRE);
        if (done)
            break;
        urt__park(rt);
    }
    if (shared)
        rt->shared_waiters--;
    self->wait_seq++;   /* a wake-up still on its way finds it changed */
    self->wait_kind = URT__WAIT_NONE;
    self->wait = NULL;
    urt__timer_disarm(&rt->timers, self);
    /* Served, or ended otherwise; with the locks held no waker is halfway through a case. */
    lock_all(locks, nlocks);
    int none = -1;
    __atomic_compare_exchange_n(&claim, &none, -2, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    int fired = __atomic_load_n(&claim, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++) {
        if (on_shared[i]) {
            if (ws[i].shared.queue)
                urt__list_remove(&ws[i].shared.queue->list, &ws[i].shared.link);
        } else if (ws[i].local.queue) {
            urt__wq_remove(&ws[i].local);
        }
    }
    if (fired >= 0) {
        cases[fired].result = on_shared[fired] ? ws[fired].shared.result : ws[fired].local.result;
        return fired;
    }
    return master.result ? master.result : -ECANCELED;
}

/* A select that may wait, or has a shared channel among its cases (checked by urt_select). */
static __attribute__((noinline)) int select_slow(struct urt_runtime *rt, struct urt_task *self,
                                                 struct urt_case *cases, int n, bool shared)
{
    int err = urt__check_blocking(self);
    if (err)
        return err;
    urt_chan *locks[URT_SELECT_MAX];
    int nlocks = shared ? lock_order(cases, n, locks) : 0;
    lock_all(locks, nlocks);
    /* One of the ready cases, at random; should it not be ready after all, each in turn. */
    unsigned char ready[URT_SELECT_MAX];
    int nready = 0;
    for (int i = 0; i < n; i++)
        if (looks_ready(&cases[i]))
            ready[nready++] = (unsigned char)i;
    if (nready) {
        int k = ready[random_below((unsigned)nready)];
        int r = try_case(rt, &cases[k]);
        for (int i = 0; r == -EAGAIN && i < n; i++)
            r = try_case(rt, &cases[k = i]);
        if (r != -EAGAIN) {
            unlock_all(locks, nlocks);
            cases[k].result = r;
            return k;
        }
    }
    /* None ready: a wait per case - on the stack for a few, else from the heap (a compact
       task's stack has no room for 64). */
    union case_wait few[4], *ws = few;
    if (n > 4) {
        unlock_all(locks, nlocks);   /* (allocating switches to the scheduler: no lock held) */
        ws = urt__sched_calloc(rt, (size_t)n, sizeof *ws);
        if (!ws)
            return -ENOMEM;
        /* Something may have become ready meanwhile: try again before waiting. */
        lock_all(locks, nlocks);
        for (int k = 0; k < n; k++) {
            int r = try_case(rt, &cases[k]);
            if (r != -EAGAIN) {
                unlock_all(locks, nlocks);
                urt__sched_free(rt, ws);
                cases[k].result = r;
                return k;
            }
        }
    }
    int ret = select_wait(rt, self, cases, n, shared, locks, nlocks, ws);
    unlock_all(locks, nlocks);
    if (ws != few)
        urt__sched_free(rt, ws);
    return ret;
}

int urt_select(struct urt_case *cases, int n)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = rt ? rt->current : NULL;
    if (!self)
        return -EPERM;
    if (!cases || n < 1 || n > URT_SELECT_MAX)
        return -EINVAL;
    /* One pass checks the cases and, for local channels (no locks to take), finds the ready. */
    bool shared = false, foreign = false;
    unsigned char ready[URT_SELECT_MAX];
    int nready = 0;
    for (int i = 0; i < n; i++) {
        const struct urt_case *k = &cases[i];
        if (!k->chan || !k->elem || (k->op != URT_RECV && k->op != URT_SEND))
            return -EINVAL;
        if (k->chan->shared)
            shared = true;
        else if (k->chan->owner != rt)
            foreign = true;   /* -EXDEV, once every case is known to be well formed */
        else if (looks_ready(k))
            ready[nready++] = (unsigned char)i;
    }
    if (foreign)
        return -EXDEV;
    /* The same-thread path: a ready case of a task with no cancel or deadline to check. */
    if (likely(!shared && nready && !(self->flags & URT__CANCELLED) && !self->deadline)) {
        int k = nready == 1 ? ready[0] : ready[random_below((unsigned)nready)];
        int r = try_case(rt, &cases[k]);
        if (likely(r != -EAGAIN)) {
            cases[k].result = r;
            return k;
        }
    }
    return select_slow(rt, self, cases, n, shared);
}
