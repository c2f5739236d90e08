/* SPDX-License-Identifier: MIT */
/*
 * threads.c - a set of runtimes, one per thread (urt_run_threads), and what crosses between
 * them: spawn requests and stop requests, posted to the target's inbox (inbox.h).
 *
 * The set owns the inboxes and outlives every runtime in it, so a post racing with its target's
 * end meets a closed inbox (-ESHUTDOWN), never freed memory.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "base/fault.h"
#include "sched/inbox.h"
#include "sched/sched.h"

struct slot {
    struct urt__inbox *inbox;     /* the set's reference; wakers may hold it a little longer  */
    struct urt__set  *set;
    int               index;
    int               cpu;        /* -1: not pinned                                          */
    int               status;     /* main's status, or -errno when it could not start        */
    bool              started;    /* its runtime took its first post (under set->lock)      */
    bool              stop_posted;
    bool              made;       /* its thread was created                                  */
    pthread_t         thread;
    struct urt__post  stop;       /* cancels the runtime's first task                        */
};

struct urt__set {
    pthread_mutex_t   lock;
    int               n;
    int               start_error;   /* the first runtime that could not start: -errno      */
    urt_fn            fn;
    void             *arg;
    struct urt_config cfg;
    struct slot       slots[];
};

/* ---- stopping ---- */

static void run_stop(struct urt_runtime *rt, struct urt__post *p)
{
    (void)p;
    struct urt_task *m = rt->main_task;
    if (m && m->state != URT__DONE)
        urt__cancel(rt, m);
}

/* Every runtime of the set cancels its first task (a runtime could not start). */
static void stop_all(struct urt__set *set)
{
    for (int i = 0; i < set->n; i++) {
        struct slot *s = &set->slots[i];
        pthread_mutex_lock(&set->lock);
        bool post = !s->stop_posted;
        s->stop_posted = true;
        pthread_mutex_unlock(&set->lock);
        if (post)
            urt__inbox_post(s->inbox, &s->stop);   /* -ESHUTDOWN: it has ended already */
    }
}

void urt__set_started(struct urt_runtime *rt)
{
    struct urt__set *set = rt->set;
    struct slot *s = &set->slots[rt->index];
    pthread_mutex_lock(&set->lock);
    s->started = true;
    pthread_mutex_unlock(&set->lock);
    urt__inbox_open(rt, s->inbox);
}

void urt__set_stopping(struct urt_runtime *rt)
{
    urt__inbox_close(rt->set->slots[rt->index].inbox);
}

/* ---- the threads ---- */

static void *thread_main(void *p)
{
    struct slot *s = p;
    struct urt__set *set = s->set;
    if (s->cpu >= 0) {
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        CPU_SET(s->cpu, &cpus);
        pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);   /* best effort */
    }
    s->status = urt__run(set->fn, set->arg, &set->cfg, set, s->index);
    pthread_mutex_lock(&set->lock);
    bool failed = !s->started;
    if (failed && !set->start_error)
        set->start_error = s->status < 0 ? s->status : -ENOMEM;
    pthread_mutex_unlock(&set->lock);
    urt__inbox_close(s->inbox);
    if (failed)
        stop_all(set);
    return NULL;
}

/* The CPUs of the caller's affinity mask, in order; their count, or -errno. */
static int allowed_cpus(int *cpus, int max)
{
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0)
        return -errno;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, &mask))
            cpus[n++] = c;
    return n;
}

int urt_run_threads(int nthreads, urt_fn main_fn, void *arg, const struct urt_config *cfg)
{
    if (!main_fn || nthreads < 0 || nthreads > URT_THREADS_MAX)
        return -EINVAL;
    if (urt__rt)
        return -EBUSY;
    static int cpus[CPU_SETSIZE];
    int ncpus = allowed_cpus(cpus, CPU_SETSIZE);
    if (ncpus <= 0)
        ncpus = 0;
    if (nthreads == 0)
        nthreads = ncpus > 0 ? ncpus : 1;
    struct urt__set *set = calloc(1, sizeof *set + (size_t)nthreads * sizeof set->slots[0]);
    if (!set)
        return -ENOMEM;
    pthread_mutex_init(&set->lock, NULL);
    set->n = nthreads;
    set->fn = main_fn;
    set->arg = arg;
    if (cfg)
        set->cfg = *cfg;
    int err = 0, made = 0;
    for (int i = 0; i < nthreads && !err; i++) {
        struct slot *s = &set->slots[i];
        s->set = set;
        s->index = i;
        s->cpu = set->cfg.no_pinning || ncpus == 0 ? -1 : cpus[i % ncpus];
        s->stop = (struct urt__post){ .run = run_stop };
        s->inbox = urt__inbox_new(&err);
        if (s->inbox)
            made++;
    }
    for (int i = 0; i < made && !err; i++) {
        struct slot *s = &set->slots[i];
        /* A runtime's thread runs tasks on their own stacks: its own needs little. */
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 1024 * 1024);
        int e = pthread_create(&s->thread, &attr, thread_main, s);
        pthread_attr_destroy(&attr);
        if (e) {
            err = -e;
            break;
        }
        s->made = true;
    }
    if (err) {
        pthread_mutex_lock(&set->lock);
        if (!set->start_error)
            set->start_error = err;
        pthread_mutex_unlock(&set->lock);
        stop_all(set);
    }
    for (int i = 0; i < nthreads; i++)
        if (set->slots[i].made)
            pthread_join(set->slots[i].thread, NULL);
    int ret = set->start_error;
    for (int i = 0; i < nthreads && !ret; i++)
        if (set->slots[i].status != 0)
            ret = set->slots[i].status;
    for (int i = 0; i < made; i++)
        urt__inbox_release(set->slots[i].inbox);   /* the last holder frees it */
    pthread_mutex_destroy(&set->lock);
    free(set);
    return ret;
}

int urt_thread_index(void)
{
    struct urt_runtime *rt = urt__rt;
    return rt ? rt->index : -EPERM;
}

int urt_thread_count(void)
{
    struct urt_runtime *rt = urt__rt;
    return !rt ? -EPERM : rt->set ? rt->set->n : 1;
}

/* ---- spawning on another runtime ----
 *
 * Requests to one target collect in a batch of this runtime's (a few stores each), which goes to
 * the target's inbox when it is full or at the end of this runtime's round (urt__set_flush, from
 * the scheduler's poll): many spawns in one round cost one post and one wake-up.
 */

#define BATCH 254

struct spawn_batch {
    struct urt__post    post;
    struct spawn_batch *next_open;   /* the sender's open batches                             */
    int                 target;
    uint32_t            n;
    uint32_t            done;            /* at the target: requests started                      */
    struct { urt_fn fn; void *arg; } req[BATCH];
};

/*
 * Runs a batch's requests while the run queue is short; the rest wait in the backlog for the next
 * rounds. So a sender faster than this runtime does not make it start thousands of tasks at once,
 * each on a fresh stack: tasks start as earlier ones end and give their (warm) stacks back.
 */
#define READY_MAX 512

static void start_some(struct urt_runtime *rt)
{
    struct spawn_batch *b;
    while ((b = rt->spawn_backlog) && rt->runq_len < READY_MAX) {
        while (b->done < b->n && rt->runq_len < READY_MAX && !rt->stopping) {
            struct urt_task *t = urt__task_new(rt, b->req[b->done].fn, b->req[b->done].arg, NULL);
            if (t)
                t->flags |= URT__DETACHED;   /* (no memory for a stack: the request is lost) */
            b->done++;
        }
        if (b->done < b->n && !rt->stopping)
            return;
        rt->spawn_backlog = b->next_open;
        free(b);
    }
}

void urt__set_backlog(struct urt_runtime *rt)
{
    start_some(rt);
}

void urt__set_end(struct urt_runtime *rt)
{
    urt__set_flush(rt);
    free(rt->spawn_batch);
    rt->spawn_batch = NULL;
    while (rt->spawn_backlog) {   /* received, never started: the runtime ended */
        struct spawn_batch *b = rt->spawn_backlog;
        rt->spawn_backlog = b->next_open;
        free(b);
    }
}

static void run_batch(struct urt_runtime *rt, struct urt__post *p)
{
    struct spawn_batch *b = (struct spawn_batch *)p;
    b->done = 0;
    b->next_open = NULL;
    if (rt->spawn_backlog)
        rt->spawn_backlog_tail->next_open = b;
    else
        rt->spawn_backlog = b;
    rt->spawn_backlog_tail = b;
    start_some(rt);
}

static void drop_batch(struct urt__post *p)
{
    free(p);
}

/* Posts b; -ESHUTDOWN (b freed) when its target has ended. */
static int send_batch(struct urt_runtime *rt, struct spawn_batch *b)
{
    int err = urt__inbox_post(rt->set->slots[b->target].inbox, &b->post);
    if (err)
        free(b);
    return err;
}

void urt__set_flush(struct urt_runtime *rt)
{
    struct spawn_batch *b = rt->spawn_open;
    rt->spawn_open = NULL;
    while (b) {
        struct spawn_batch *next = b->next_open;
        rt->spawn_batch[b->target] = NULL;
        send_batch(rt, b);   /* (a target that ended meanwhile drops its requests) */
        b = next;
    }
}

static void new_batch(struct urt_runtime *rt, void *arg)
{
    int index = *(int *)arg;
    if (!rt->spawn_batch) {
        rt->spawn_batch = calloc((size_t)rt->set->n, sizeof *rt->spawn_batch);
        if (!rt->spawn_batch)
            return;
    }
    struct spawn_batch *b = urt__malloc(sizeof *b);
    if (!b)
        return;
    b->post = (struct urt__post){ .run = run_batch, .drop = drop_batch };
    b->target = index;
    b->n = 0;
    b->next_open = rt->spawn_open;
    rt->spawn_open = b;
    rt->spawn_batch[index] = b;
}

int urt_spawn_on(int index, urt_fn fn, void *arg)
{
    struct urt_runtime *rt = urt__rt;
    if (!rt || !rt->current)
        return -EPERM;
    if (!fn || index < 0 || index >= (rt->set ? rt->set->n : 1))
        return -EINVAL;
    if (index == rt->index) {
        if (rt->stopping)
            return -ESHUTDOWN;
        struct urt_task *t = urt__task_new(rt, fn, arg, NULL);
        if (!t)
            return -errno;
        t->flags |= URT__DETACHED;
        return 0;
    }
    struct urt__inbox *in = rt->set->slots[index].inbox;
    if (__atomic_load_n(&in->closed, __ATOMIC_ACQUIRE))
        return -ESHUTDOWN;   /* (one closing right now takes the request and drops it) */
    struct spawn_batch *b = rt->spawn_batch ? rt->spawn_batch[index] : NULL;
    if (unlikely(!b)) {
        urt__on_sched_stack(rt, new_batch, &index);
        b = rt->spawn_batch ? rt->spawn_batch[index] : NULL;
        if (!b)
            return -ENOMEM;
    }
    b->req[b->n].fn = fn;
    b->req[b->n].arg = arg;
    if (++b->n == BATCH) {
        /* Full: it goes now. Taken off the open list first. */
        struct spawn_batch **pp = &rt->spawn_open;
        while (*pp != b)
            pp = &(*pp)->next_open;
        *pp = b->next_open;
        rt->spawn_batch[index] = NULL;
        return send_batch(rt, b) == -ESHUTDOWN ? -ESHUTDOWN : 0;
    }
    return 0;
}
