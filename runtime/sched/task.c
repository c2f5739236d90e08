/* SPDX-License-Identifier: MIT */
/* task.c - spawning, finishing, joining, detaching and cancelling tasks. */
#include <stdlib.h>
#include <string.h>

#include "sched/sched.h"
#include "sched/timer.h"
#include "sched/waitq.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define TSAN_FIBER_NEW() __tsan_create_fiber(0)
#define TSAN_FIBER_FREE(f) __tsan_destroy_fiber(f)
#else
#define TSAN_FIBER_NEW() NULL
#define TSAN_FIBER_FREE(f) ((void)(f))
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define URT_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define URT_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The header takes the top of the stack mapping, cache-line aligned. */
#define TASK_HDR ((sizeof(struct urt_task) + 63) & ~(size_t)63)

struct stack_request {
    size_t             len;
    struct urt__stack *out;
    int                err;
};

static void get_stack(struct urt_runtime *rt, void *arg)
{
    struct stack_request *req = arg;
    req->err = urt__stack_get(&rt->stacks, req->len, req->out);
}

/*
 * Zeroes the header up to and including its name's first byte. A memset of that constant length
 * compiles to `rep stos`, whose start-up alone cost more than half of a spawn's time in
 * urt__task_new (perf annotate): sixteen-byte stores instead, unrolled so that the compiler
 * cannot turn the loop back into a memset. The header is 64-byte aligned.
 */
static inline void zero_header(struct urt_task *t)
{
    typedef char v16 __attribute__((vector_size(16)));
    enum { N = (offsetof(struct urt_task, name) + 1 + 15) / 16 };
    _Static_assert(N * 16 <= sizeof(struct urt_task), "the stores stay inside the header");
    v16 *p = (v16 *)(void *)t;
#pragma GCC unroll 16
    for (int i = 0; i < N; i++)
        p[i] = (v16){ 0 };
}

struct urt_task *urt__task_new(struct urt_runtime *rt, urt_fn fn, void *arg,
                               const struct urt_spawn_opts *opts)
{
    size_t len = opts && opts->stack_size ? urt__stack_round(opts->stack_size) : rt->default_slot;
    if (unlikely(!len)) {
        errno = EINVAL;
        return NULL;
    }
    struct urt__stack s;
    int err = urt__stack_get_fast(&rt->stacks, len, &s);
    if (err > 0) {
        /* A new slot: a new arena maybe, a guard page, lists to grow - the scheduler's work. */
        struct stack_request req = { len, &s, 0 };
        urt__on_sched_stack(rt, get_stack, &req);
        err = req.err;
    }
    if (err) {
        errno = -err;
        return NULL;
    }
    /*
     * Headers at one offset in every page would all fall in the same few cache sets, and a
     * thousand tasks spawned together would evict each other: place them at one of 16 cache-line
     * "colours" below the top (compact stacks have too little room to spare).
     */
    size_t colour = s.len >= 16384 ? (size_t)(rt->next_id & 15) * 64 : 0;
    struct urt_task *t = (struct urt_task *)(s.base + s.len - TASK_HDR - colour);
    /* A reused stack may carry the poison of frames that never returned (a task's first frame). */
    URT_ASAN_UNPOISON(s.base + s.guard, s.len - s.guard);
    zero_header(t);
    t->magic = URT__TASK_MAGIC;
    t->fn = fn;
    t->arg = arg;
    t->id = ++rt->next_id;
    t->stack = s;
    if (opts && opts->name) {
        strncpy(t->name, opts->name, sizeof t->name - 1);
        t->name[sizeof t->name - 1] = '\0';
    }
    t->sp = urt__ctx_make(t, (void (*)(void *))urt__task_main, t);
    t->tsan_fiber = TSAN_FIBER_NEW();
    t->all_next = rt->all_tasks;
    if (rt->all_tasks)
        rt->all_tasks->all_prev = t;
    rt->all_tasks = t;
    rt->st.tasks_live++;
    rt->st.tasks_spawned++;
    urt__ready(rt, t);
    return t;
}

void urt__task_release(struct urt_runtime *rt, struct urt_task *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        rt->all_tasks = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
    t->magic = 0;
    TSAN_FIBER_FREE(t->tsan_fiber);
    /* This may run on any task's stack (a join, the switch after a detached task ended): a stack
       goes back to the pool here only when that takes a few stores; else the scheduler does it
       on its own stack (urt__task_release_deferred), since it may allocate or give pages back. */
    if (!urt__stack_put_fast(&rt->stacks, &t->stack)) {
        t->next = rt->freed;
        rt->freed = t;
    }
}

void urt__task_release_deferred(struct urt_runtime *rt)
{
    while (rt->freed) {
        struct urt_task *t = rt->freed;
        rt->freed = t->next;
        struct urt__stack s = t->stack;
        urt__stack_put(&rt->stacks, &s);
    }
}

/*
 * Handles. A task's memory is reused by later tasks, so a handle kept after urt_join would reach
 * whichever task lives there now. The handle given out is therefore the header's address with
 * 22 bits of the task's id in bits the address does not use: the low 6 (headers are 64-byte
 * aligned) and the top 16 (user addresses have 47 bits). A stale handle fails the comparison,
 * unless the same slot has since served a task whose id agrees in those 22 bits.
 */
#define HANDLE_ADDR 0x0000ffffffffffc0ull

static inline urt_task *handle_of(struct urt_task *t)
{
    uint64_t id = t->id;
    return (urt_task *)((uintptr_t)t | (uintptr_t)(id & 63) | (uintptr_t)((id >> 6) & 0xffff) << 48);
}

/* A stale handle's address may by now lie inside another task's stack frames (headers move with
   their colour): reading it is deliberate, and the memory stays mapped for the runtime's life.
   Memory outside this runtime's arenas is never read: it may be another runtime's, changing
   under its thread or unmapped when that runtime ended. */
__attribute__((no_sanitize_address))
struct urt_task *urt__task_of(struct urt_runtime *rt, const urt_task *h, bool *foreign)
{
    struct urt_task *t = (struct urt_task *)((uintptr_t)h & HANDLE_ADDR);
    *foreign = false;
    if (!t)
        return NULL;
    if (!urt__stack_pool_owns(&rt->stacks, t)) {
        *foreign = true;
        return NULL;
    }
    if (t->magic != URT__TASK_MAGIC || handle_of(t) != h)
        return NULL;
    return t;
}

urt_task *urt__handle(struct urt_task *t)
{
    return t ? handle_of(t) : NULL;
}

/* Cancels every task still running: the first task returned, or a group is being torn down. */
static void cancel_all(struct urt_runtime *rt)
{
    for (struct urt_task *t = rt->all_tasks; t; t = t->all_next)
        if (t->state != URT__DONE && t != rt->current)
            urt__cancel(rt, t);
}

void urt__task_main(struct urt_task *t)
{
    struct urt_runtime *rt = urt__rt;
    urt__task_started(rt);
    t->status = t->fn(t->arg);

    urt__timer_disarm(&rt->timers, t);
    rt->st.tasks_live--;
    if (t == rt->main_task) {
        /* urt_run's first task returned: nothing new may start, and the rest are cancelled. */
        rt->stopping = true;
        rt->main_status = t->status;
        if (rt->set)
            urt__set_stopping(rt);   /* other threads' posts are refused from now on */
        cancel_all(rt);
    }
    if (t->on_exit) {
        t->on_exit(rt, t);   /* its owner (a group) takes the status */
        rt->zombie = t;
    } else if (t->flags & URT__DETACHED) {
        rt->zombie = t;   /* its stack is still under our feet: freed after the switch */
    } else if (t->joiner) {
        urt__wq_wake(rt, t->joiner, 0);
    }
    /* Only now: switching to the scheduler (a flush while cancelling) must find it alive. */
    t->state = URT__DONE;
    urt__exit_switch(rt);
}

urt_task *urt_spawn_ex(urt_fn fn, void *arg, const struct urt_spawn_opts *opts)
{
    struct urt_runtime *rt = urt__rt;
    if (!urt__self() || rt->stopping) {
        errno = EPERM;
        return NULL;
    }
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    return urt__handle(urt__task_new(rt, fn, arg, opts));
}

urt_task *urt_spawn(urt_fn fn, void *arg)
{
    return urt_spawn_ex(fn, arg, NULL);
}

/* The task h names if the calling task may join or detach it, else NULL with *err: -EPERM
   outside a task, -EXDEV for another runtime's, -EINVAL for none or one not joinable. */
static struct urt_task *joinable(const urt_task *h, int *err)
{
    struct urt_runtime *rt = urt__rt;
    if (!urt__self()) {
        *err = -EPERM;
        return NULL;
    }
    bool foreign;
    struct urt_task *t = urt__task_of(rt, h, &foreign);
    if (foreign && rt->set) {
        *err = -EXDEV;   /* not this runtime's memory: another runtime's task, or no task */
        return NULL;
    }
    if (!t || (t->flags & (URT__DETACHED | URT__JOINED | URT__IN_GROUP))) {
        *err = -EINVAL;
        return NULL;
    }
    return t;
}

int urt_join(urt_task *h)
{
    struct urt_runtime *rt = urt__rt;
    int err;
    struct urt_task *t = joinable(h, &err);
    if (!t)
        return err;
    struct urt_task *self = rt->current;
    if (t == self)
        return -EDEADLK;
    if (t->state != URT__DONE) {
        struct urt__waiter w = { .what = "join", .obj = t };
        t->flags |= URT__JOINED;
        t->joiner = &w;
        err = urt__wq_wait(rt, NULL, &w, true);
        t->joiner = NULL;
        t->flags &= ~URT__JOINED;
        if (err && t->state != URT__DONE)
            return err;
    }
    int status = t->status;
    urt__task_release(rt, t);
    return status;
}

int urt_detach_checked(urt_task *h)
{
    struct urt_runtime *rt = urt__rt;
    int err;
    struct urt_task *t = joinable(h, &err);
    if (!t)
        return err;
    if (t->state == URT__DONE)
        urt__task_release(rt, t);
    else
        t->flags |= URT__DETACHED;
    return 0;
}

void urt_detach(urt_task *t)
{
    (void)urt_detach_checked(t);
}

void urt__cancel(struct urt_runtime *rt, struct urt_task *t)
{
    if (t->state == URT__DONE)
        return;
    t->flags |= URT__CANCEL_CALLED;
    if (unlikely(t->scope != NULL)) {
        urt__scope_update(rt, t);   /* a shield may hold it off until it exits */
        if (!(t->flags & URT__CANCELLED))
            return;
    }
    t->flags |= URT__CANCELLED;
    urt__interrupt(rt, t);
}

void urt_cancel(urt_task *h)
{
    bool foreign;
    struct urt_task *t = urt__self() ? urt__task_of(urt__rt, h, &foreign) : NULL;
    if (t)   /* (another runtime's task is not ours to touch: t is NULL then) */
        urt__cancel(urt__rt, t);
}

urt_task *urt_self(void)
{
    return urt__handle(urt__self());
}

/* The task a handle names, NULL meaning the caller; NULL when there is none. */
static struct urt_task *task_or_self(const urt_task *h)
{
    bool foreign;
    if (!h)
        return urt__self();
    return urt__rt ? urt__task_of(urt__rt, h, &foreign) : NULL;
}

uint64_t urt_task_id(const urt_task *h)
{
    struct urt_task *t = task_or_self(h);
    return t ? t->id : 0;
}

const char *urt_task_name(const urt_task *h)
{
    struct urt_task *t = task_or_self(h);
    return t ? t->name : "";
}

int urt_cancelled(void)
{
    struct urt_task *self = urt__self();
    return self && (self->flags & URT__CANCELLED);
}
