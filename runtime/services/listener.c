/* SPDX-License-Identifier: MIT */
/*
 * listener.c - accepting connections with one multishot accept per listening socket.
 *
 * urt_accept costs one SQE per connection. A listener arms a single multishot accept instead: the
 * kernel accepts each connection as it arrives and posts its fd, and the fds wait in the
 * listener's queue (in order, with any accept error in its place) until tasks take them. No task
 * owns the kernel request: the listener holds its operation record and what the kernel reports.
 * The runtime's listeners are a service (sched/service.h): urt_close of their fd makes them dead,
 * an armed accept nobody waits on does not count against the deadlock check, and the runtime's
 * end ends them.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/fault.h"
#include "sched/sched.h"
#include "sched/service.h"
#include "sched/waitq.h"

/* The runtime's live listeners. */
struct listeners {
    struct urt__service  base;
    struct urt_listener *head;
};

struct urt_listener {
    struct urt__op       op;           /* the multishot accept                                   */
    struct urt_runtime  *rt;
    struct listeners    *svc;
    int                  fd, flags;
    bool                 armed;        /* the multishot accept is in the kernel                 */
    bool                 closing;      /* urt_listener_free (or urt_run's end) has begun        */
    bool                 dead;         /* its fd was closed by urt_close: nothing more comes    */
    uint32_t             inside;       /* tasks in urt_listener_accept                          */
    int                 *q;            /* accepted fds, or -errno where an accept failed: a ring */
    uint32_t             qfirst, qlen, qcap;
    struct urt__wqueue   takers;       /* tasks in urt_listener_accept, waiting                 */
    struct urt__wqueue   drained;      /* urt_listener_free, until nothing uses the listener    */
    struct urt_listener *prev, *next;  /* the runtime's live listeners                         */
};

#define QUEUE_FIRST 16   /* allocated with the listener: the first completions need no memory */


static bool queue_push(struct urt_listener *l, int v)
{
    if (l->qlen == l->qcap) {
        uint32_t ncap = l->qcap * 2;
        int *q = urt__malloc((size_t)ncap * sizeof *q);
        if (!q)
            return false;
        for (uint32_t i = 0; i < l->qlen; i++)   /* unwrapped, in order */
            q[i] = l->q[(l->qfirst + i) & (l->qcap - 1)];
        free(l->q);
        l->q = q;
        l->qcap = ncap;
        l->qfirst = 0;
    }
    l->q[(l->qfirst + l->qlen) & (l->qcap - 1)] = v;
    l->qlen++;
    return true;
}

static int queue_pop(struct urt_listener *l)
{
    int v = l->q[l->qfirst];
    l->qfirst = (l->qfirst + 1) & (l->qcap - 1);
    l->qlen--;
    return v;
}

/* A completion of the multishot accept (runs while reaping: it may not queue operations). */
static void on_accept(void *ctx, struct urt__op *op, int res, unsigned flags)
{
    struct urt_runtime *rt = ctx;
    struct urt_listener *l = (struct urt_listener *)(void *)op;
    bool last = !(flags & URT__OP_MORE);
    if (last)
        l->armed = false;   /* ended: by an error, a cancel, or the kernel */
    if (l->closing) {
        if (res >= 0)
            close(res);     /* accepted as the listener closed: nobody will take it */
        if (last)
            urt__wq_wake_all(rt, &l->drained, 0);
        return;
    }
    if (res == -EBADF && last) {
        /* The fd is closed (urt_close marks its listeners dead before it cancels them): its
           number may soon be another file's, so never arm on it again. */
        l->dead = true;
    } else if (res == -ECANCELED && last) {
        /* Cancelled: by urt_close (then already dead), or ended by the kernel itself (some kernels
           end a multishot accept that way when the CQ is full). Nothing to hand out - a taker
           would take it for its own cancellation: the takers woken below arm it again. */
    } else if (!queue_push(l, res) && res >= 0) {
        close(res);         /* no memory to keep it: the client sees the connection close */
    }
    if (last) {
        /* Every waiting task looks again: one takes what came, the others arm the accept anew
           (or, the listener dead, get -EBADF) - none may sleep with nothing armed. */
        urt__wq_wake_all(rt, &l->takers, 0);
    } else {
        struct urt__waiter *w = urt__wq_pop(&l->takers);
        if (w)
            urt__wq_wake(rt, w, 0);
    }
}

static void arm(struct urt_runtime *rt, struct urt_listener *l)
{
    l->op = (struct urt__op){ .on_complete = on_accept, .kind = URT__OP_ACCEPT_MULTI,
                              .fd = l->fd, .flags = l->flags };
    urt__backend_submit(rt->backend, &l->op);
    l->armed = true;
}

static uint64_t idle_ops(const struct urt_runtime *rt, const struct urt__service *s)
{
    (void)rt;
    uint64_t idle = 0;
    for (const struct urt_listener *l = ((const struct listeners *)s)->head; l; l = l->next)
        if (l->armed && !l->inside && !l->closing)   /* a closing one wakes its freer */
            idle++;
    return idle;
}

static void fd_closed(struct urt_runtime *rt, struct urt__service *s, int fd)
{
    (void)rt;
    for (struct urt_listener *l = ((struct listeners *)s)->head; l; l = l->next)
        if (l->fd == fd)
            l->dead = true;   /* never to arm on this fd number again */
}

static void destroy(struct urt_runtime *rt, struct urt_listener *l, bool in_task);

static void runtime_end(struct urt_runtime *rt, struct urt__service *s)
{
    struct listeners *svc = (struct listeners *)s;
    while (svc->head) {
        destroy(rt, svc->head, false);
        if (rt->fatal)
            return;   /* the kernel may still hold the accept's record: leave it all */
    }
    free(svc);
}

static const struct urt__service_ops listeners_ops = {
    .name = "listeners",
    .fd_closed = fd_closed,
    .idle_ops = idle_ops,
    .runtime_end = runtime_end,
};

/* The listener's allocations, on the scheduler's stack. */
struct new_args {
    struct urt_listener *l;
};

static void alloc_listener(struct urt_runtime *rt, void *arg)
{
    struct new_args *a = arg;
    struct listeners *svc = (struct listeners *)urt__service_find(rt->services, &listeners_ops);
    if (!svc) {
        svc = urt__calloc(1, sizeof *svc);
        if (!svc)
            return;
        urt__service_add(rt, &svc->base, &listeners_ops);
    }
    struct urt_listener *l = urt__calloc(1, sizeof *l);
    int *q = l ? urt__malloc(QUEUE_FIRST * sizeof *q) : NULL;
    if (!q) {
        free(l);
        return;
    }
    l->q = q;
    l->qcap = QUEUE_FIRST;
    l->svc = svc;
    a->l = l;
}

urt_listener *urt_listener_new(int fd, int flags)
{
    struct urt_runtime *rt = urt__rt;
    if (!urt__self()) {
        errno = EPERM;
        return NULL;
    }
    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    if (flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK)) {
        errno = EINVAL;
        return NULL;
    }
    struct new_args a = { NULL };
    urt__on_sched_stack(rt, alloc_listener, &a);
    struct urt_listener *l = a.l;
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    l->rt = rt;
    l->fd = fd;
    l->flags = flags;
    l->next = l->svc->head;
    if (l->svc->head)
        l->svc->head->prev = l;
    l->svc->head = l;
    return l;
}

int urt_listener_accept(urt_listener *l)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = urt__self();
    if (!self)
        return -EPERM;
    if (!l || l->rt != rt)
        return -EINVAL;
    if (l->closing)
        return -EBADF;
    int ret = urt__check_blocking(self);   /* cancellation is sticky, queued fd or not */
    if (ret)
        return ret;
    l->inside++;
    for (;;) {
        if (l->closing) {
            ret = -EBADF;   /* urt_listener_free has begun: it waits for us to leave */
            break;
        }
        if (l->qlen) {      /* also right after a wake-up that a cancel followed: the fd wins */
            ret = queue_pop(l);
            break;
        }
        if (l->dead) {
            ret = -EBADF;
            break;
        }
        if (!l->armed)
            arm(rt, l);
        struct urt__waiter w = { .what = "listener_accept", .obj = l };
        ret = urt__wq_wait(rt, &l->takers, &w, true);   /* checks cancel and deadline first */
        if (ret)
            break;          /* -ECANCELED, -ETIMEDOUT, -ENOMEM (no room for the deadline) */
    }
    if (ret < 0 && l->qlen && !l->closing) {
        /* Leaving without taking: a wake-up meant for this task may have come too. Pass it on,
           or a connection could wait while another task sleeps. */
        struct urt__waiter *next = urt__wq_pop(&l->takers);
        if (next)
            urt__wq_wake(rt, next, 0);
    }
    if (--l->inside == 0 && l->closing)
        urt__wq_wake_all(rt, &l->drained, 0);   /* urt_listener_free may go on */
    return ret;
}

static void free_listener(struct urt_runtime *rt, void *arg)
{
    (void)rt;
    struct urt_listener *l = arg;
    free(l->q);
    free(l);
}

/* Ends the kernel request and waits until neither it nor any task uses l; then frees l and what
   it holds. Outside a task (urt_run's end) no task can be inside. */
static void destroy(struct urt_runtime *rt, struct urt_listener *l, bool in_task)
{
    l->closing = true;
    urt__wq_wake_all(rt, &l->takers, 0);   /* they see closing and leave with -EBADF */
    if (l->armed)
        urt__backend_cancel(rt->backend, &l->op, NULL);
    while (l->armed || l->inside) {
        if (in_task) {
            struct urt__waiter w = { .what = "listener_free", .obj = l };
            urt__wq_wait(rt, &l->drained, &w, false);
        } else {
            urt__sched_drain(rt, &l->armed);
            if (rt->fatal)
                return;
        }
    }
    while (l->qlen) {
        int v = queue_pop(l);
        if (v >= 0)
            close(v);
    }
    if (l->prev)
        l->prev->next = l->next;
    else
        l->svc->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    urt__on_sched_stack(rt, free_listener, l);
}

int urt_listener_free(urt_listener *l)
{
    struct urt_runtime *rt = urt__rt;
    if (!urt__self())
        return -EPERM;
    if (!l || l->rt != rt || l->closing)
        return -EINVAL;
    destroy(rt, l, true);
    return 0;
}
