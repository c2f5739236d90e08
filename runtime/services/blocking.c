/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - running blocking functions on helper threads (like trio's to_thread.run_sync).
 *
 * A job goes to a small pool of threads owned by the runtime; the calling task parks. A helper
 * never touches the ring (the ring has a single issuer): it files the finished job on a locked list
 * and writes an eventfd, whose read the runtime keeps in flight while jobs are outstanding; that
 * completion wakes the scheduler, which hands each finished job back to its task.
 *
 * Jobs live on the heap, so that a cancellable call (urt_getaddrinfo) can leave before its job
 * ends: the job is then abandoned, and its cleanup runs when it finishes.
 *
 * The pool is a service (sched/service.h) made on first use: its post-reap hook keeps the eventfd
 * read armed, and the runtime's end stops the threads. Starting a thread, and every allocation,
 * runs on the scheduler's stack: pthread_create alone needs more than a compact task's stack.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/fault.h"
#include "sched/sched.h"
#include "sched/service.h"
#include "sched/waitq.h"

#define DEFAULT_THREADS 4

struct job {
    urt_fn              fn;
    void               *arg;
    int                 result;
    struct urt__waiter *waiter;          /* NULL once the caller left (abandoned)          */
    void              (*cleanup)(void *arg, int result);
    struct job         *next;
};

struct pool {
    struct urt__service base;
    pthread_mutex_t  lock;
    pthread_cond_t   work;
    struct job      *todo_head, *todo_tail;
    struct job      *done;
    unsigned         nthreads, idle;
    bool             stop;
    pthread_t        threads[URT_BLOCKING_THREADS_MAX];
    /* runtime side only */
    int              efd;
    uint64_t         efd_value;
    struct urt__op   op;
    bool             armed;
    uint64_t         outstanding;
};

static void *worker(void *p)
{
    struct pool *b = p;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->todo_head && !b->stop) {
            b->idle++;
            pthread_cond_wait(&b->work, &b->lock);
            b->idle--;
        }
        if (!b->todo_head)
            break;
        struct job *j = b->todo_head;
        b->todo_head = j->next;
        if (!b->todo_head)
            b->todo_tail = NULL;
        pthread_mutex_unlock(&b->lock);
        j->result = j->fn(j->arg);
        pthread_mutex_lock(&b->lock);
        j->next = b->done;
        b->done = j;
        pthread_mutex_unlock(&b->lock);
        eventfd_write(b->efd, 1);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Hands finished jobs back: wakes their tasks, or cleans up after abandoned ones. */
static void collect(struct urt_runtime *rt, struct pool *b)
{
    pthread_mutex_lock(&b->lock);
    struct job *j = b->done;
    b->done = NULL;
    pthread_mutex_unlock(&b->lock);
    while (j) {
        struct job *next = j->next;
        b->outstanding--;
        if (j->waiter) {
            urt__wq_wake(rt, j->waiter, 0);
        } else {
            if (j->cleanup)
                j->cleanup(j->arg, j->result);
            free(j);
        }
        j = next;
    }
}

static void on_eventfd(void *ctx, struct urt__op *op, int res, unsigned flags)
{
    (void)flags;
    (void)res;
    struct pool *b = urt__container_of(op, struct pool, op);
    b->armed = false;
    collect(ctx, b);
}

/* Keeps one eventfd read in flight while jobs are outstanding (after the reap: it may flush). */
static void rearm(struct urt_runtime *rt, struct pool *b)
{
    if (b->armed || !b->outstanding)
        return;
    b->armed = true;
    b->op = (struct urt__op){ .on_complete = on_eventfd, .kind = URT__OP_READ, .fd = b->efd,
                              .buf = &b->efd_value, .len = sizeof b->efd_value };
    urt__backend_submit(rt->backend, &b->op);
}

static void post_reap(struct urt_runtime *rt, struct urt__service *s)
{
    rearm(rt, (struct pool *)s);
}

static void runtime_end(struct urt_runtime *rt, struct urt__service *s);

static const struct urt__service_ops pool_ops = {
    .name = "blocking",
    .post_reap = post_reap,
    .runtime_end = runtime_end,
};

/* The pool, made on first use; NULL with *err = -errno (-ENOMEM, -EMFILE, -ENFILE). */
static struct pool *pool(struct urt_runtime *rt, int *err)
{
    struct pool *b = (struct pool *)urt__service_find(rt->services, &pool_ops);
    if (b)
        return b;
    b = urt__calloc(1, sizeof *b);
    if (!b) {
        *err = -ENOMEM;
        return NULL;
    }
    b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->efd < 0) {
        *err = -errno;
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->work, NULL);
    urt__service_add(rt, &b->base, &pool_ops);
    return b;
}

/* Queues a job; starts a thread when none is idle and the pool may grow. */
static int submit(struct urt_runtime *rt, struct pool *b, struct job *j)
{
    int err = 0;
    pthread_mutex_lock(&b->lock);
    unsigned max = rt->cfg.blocking_threads ? rt->cfg.blocking_threads : DEFAULT_THREADS;
    if (b->idle == 0 && b->nthreads < max) {
        /* The job runs on that thread's stack, not the task's: the usual 8 MiB is not needed. */
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        /* Signals stay with the program's threads - but not the ones a fault raises, which the
           overflow report needs (and which cannot be held off anyway). */
        sigset_t all, old;
        sigfillset(&all);
        sigdelset(&all, SIGSEGV);
        sigdelset(&all, SIGBUS);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int e = pthread_create(&b->threads[b->nthreads], &attr, worker, b);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (e == 0)
            b->nthreads++;
        else if (b->nthreads == 0)
            err = -e;
    }
    if (!err) {
        j->next = NULL;
        if (b->todo_tail)
            b->todo_tail->next = j;
        else
            b->todo_head = j;
        b->todo_tail = j;
        pthread_cond_signal(&b->work);
        b->outstanding++;
    }
    pthread_mutex_unlock(&b->lock);
    return err;
}

/* The part of a call that may need stack: the pool, the job, a new thread (scheduler's stack). */
struct start {
    struct job *j;
    int         err;
};

static void start_job(struct urt_runtime *rt, void *arg)
{
    struct start *st = arg;
    struct pool *b = pool(rt, &st->err);
    if (!b)
        return;
    st->err = submit(rt, b, st->j);
    if (!st->err)
        rearm(rt, b);
}

/* cleanup(arg, -1) for a job that never started, on the scheduler's stack (it frees). */
struct cleanup_call {
    void (*fn)(void *, int);
    void  *arg;
};

static void cleanup_here(struct urt_runtime *rt, void *p)
{
    (void)rt;
    struct cleanup_call *c = p;
    c->fn(c->arg, -1);
}

static void run_cleanup(struct urt_runtime *rt, void (*fn)(void *, int), void *arg)
{
    struct cleanup_call c = { fn, arg };
    if (rt)
        urt__on_sched_stack(rt, cleanup_here, &c);
    else
        fn(arg, -1);
}

/*
 * Runs fn(arg) on a helper thread. cancellable: the caller may leave on cancel or deadline, and
 * cleanup(arg, result) then runs when the job ends; otherwise the caller waits it out. When the
 * call fails (returns nonzero), cleanup(arg, -1) has run or will run: arg is no longer the
 * caller's. On success *result is fn's and arg is the caller's again.
 */
static int urt__blocking_call(urt_fn fn, void *arg, void (*cleanup)(void *, int), bool cancellable,
                       int *result)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *self = urt__self();
    int err = !self ? -EPERM : !fn ? -EINVAL : urt__check_blocking(self);
    struct job *j = NULL;
    if (!err) {
        j = urt__sched_calloc(rt, 1, sizeof *j);
        if (!j)
            err = -ENOMEM;
    }
    if (err) {
        if (cleanup)
            run_cleanup(rt, cleanup, arg);
        return err;
    }
    struct urt__waiter w = { .what = "blocking", .obj = (void *)fn };
    j->fn = fn;
    j->arg = arg;
    j->cleanup = cleanup;
    j->waiter = &w;
    struct start st = { j, 0 };
    urt__on_sched_stack(rt, start_job, &st);
    if (st.err) {
        urt__sched_free(rt, j);
        if (cleanup)
            run_cleanup(rt, cleanup, arg);
        return st.err;
    }
    /* 0 only from collect(): the job is finished. Otherwise the caller was cancelled or timed out
       first, and the job finishes on its own. */
    err = urt__wq_wait(rt, NULL, &w, cancellable);
    if (err) {
        j->waiter = NULL;
        return err;
    }
    *result = j->result;
    urt__sched_free(rt, j);
    return 0;
}

int urt_blocking(urt_fn fn, void *arg)
{
    int result = 0;
    int err = urt__blocking_call(fn, arg, NULL, false, &result);
    return err ? err : result;
}

static void runtime_end(struct urt_runtime *rt, struct urt__service *s)
{
    struct pool *b = (struct pool *)s;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->lock);
    for (unsigned i = 0; i < b->nthreads; i++)
        pthread_join(b->threads[i], NULL);
    collect(rt, b);
    if (b->armed) {   /* nobody will write the eventfd again: end its read */
        urt__backend_cancel(rt->backend, &b->op, NULL);
        urt__sched_drain(rt, &b->armed);
        if (rt->fatal)
            return;   /* the kernel may still write b->efd_value: b stays */
    }
    close(b->efd);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->work);
    free(b);
}

/* ---- urt_getaddrinfo: getaddrinfo on a helper thread ---- */

struct gai_job {
    char            *node, *service;
    struct addrinfo  hints;
    bool             has_hints;
    struct addrinfo *res;
    int              saved_errno;
};

static int run_gai(void *p)
{
    struct gai_job *g = p;
    int r = getaddrinfo(g->node, g->service, g->has_hints ? &g->hints : NULL, &g->res);
    g->saved_errno = errno;
    return r;
}

static void free_gai(void *p, int result)
{
    struct gai_job *g = p;
    if (result == 0 && g->res)
        freeaddrinfo(g->res);
    free(g->node);
    free(g->service);
    free(g);
}

struct gai_args {
    const char            *node, *service;
    const struct addrinfo *hints;
    struct gai_job        *g;
};

static void make_gai(struct urt_runtime *rt, void *arg)
{
    (void)rt;
    struct gai_args *a = arg;
    struct gai_job *g = calloc(1, sizeof *g);
    if (!g)
        return;
    g->node = a->node ? strdup(a->node) : NULL;
    g->service = a->service ? strdup(a->service) : NULL;
    if ((a->node && !g->node) || (a->service && !g->service)) {
        free_gai(g, -1);
        return;
    }
    if (a->hints) {
        g->hints = *a->hints;
        g->hints.ai_addr = NULL;
        g->hints.ai_canonname = NULL;
        g->hints.ai_next = NULL;
        g->has_hints = true;
    }
    a->g = g;
}

static void free_gai_here(struct urt_runtime *rt, void *g)
{
    (void)rt;
    free_gai(g, -1);
}

int urt_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res)
{
    if (!res || (!node && !service))
        return EAI_NONAME;
    /* The job owns copies of its strings: an abandoned job outlives the caller's frame. */
    struct gai_args a = { node, service, hints, NULL };
    if (urt__rt)
        urt__on_sched_stack(urt__rt, make_gai, &a);   /* malloc: not on a compact stack */
    else
        make_gai(NULL, &a);
    struct gai_job *g = a.g;
    if (!g)
        return EAI_MEMORY;
    int result;
    int err = urt__blocking_call(run_gai, g, free_gai, true, &result);
    if (err) {
        errno = -err;
        return EAI_SYSTEM;   /* g is freed now, or when the abandoned lookup ends */
    }
    *res = g->res;
    if (result == EAI_SYSTEM)
        errno = g->saved_errno;
    g->res = NULL;
    urt__on_sched_stack(urt__rt, free_gai_here, g);
    return result;
}
