/* SPDX-License-Identifier: MIT */
/* dump.c - what every task of the runtime is doing, for debugging hangs (like Go's SIGQUIT dump). */
#include <string.h>

#include "ops/op.h"
#include "sched/sched.h"
#include "sched/timer.h"
#include "sched/waitq.h"
#include "sched/xwait.h"

static const char *state_name(const struct urt_task *t)
{
    switch (t->state) {
    case URT__READY:   return "ready";
    case URT__RUNNING: return "running";
    case URT__PARKED:  return "parked";
    default:           return "done";
    }
}

static const char *op_name(unsigned kind)
{
    static const char *const names[URT__OP_KINDS] = {
        [URT__OP_READ] = "read",       [URT__OP_WRITE] = "write",     [URT__OP_READV] = "readv",
        [URT__OP_WRITEV] = "writev",   [URT__OP_RECV] = "recv",       [URT__OP_SEND] = "send",
        [URT__OP_RECVMSG] = "recvmsg", [URT__OP_SENDMSG] = "sendmsg", [URT__OP_ACCEPT] = "accept",
        [URT__OP_CONNECT] = "connect", [URT__OP_SOCKET] = "socket",   [URT__OP_OPEN] = "open",
        [URT__OP_FSYNC] = "fsync",     [URT__OP_SHUTDOWN] = "shutdown", [URT__OP_POLL] = "poll",
        [URT__OP_CLOSE] = "close",     [URT__OP_TIMEOUT] = "sleep",   [URT__OP_SPLICE] = "splice",
    };
    return kind < URT__OP_KINDS && names[kind] ? names[kind] : "op";
}

static void describe_wait(const struct urt_task *t, char *buf, size_t len)
{
    if (t->state != URT__PARKED) {
        snprintf(buf, len, "-");
        return;
    }
    switch (t->wait_kind) {
    case URT__WAIT_IO: {
        const struct urt__task_op *o = urt__container_of(t->wait, struct urt__task_op, wait);
        /* Linked operations (urt_send_recv) name the one the task waits on, the last. */
        snprintf(buf, len, "%s%s(fd %d)%s", o->wait.interrupt == urt__op_interrupt ? "" : "linked ",
                 op_name(o->op.kind), o->op.fd, (t->flags & URT__KILL_SENT) ? " cancelling" : "");
        return;
    }
    case URT__WAIT_SLEEP:
        snprintf(buf, len, "sleep");
        return;
    case URT__WAIT_SHARED: {
        const struct urt__xwaiter *w = urt__container_of(t->wait, struct urt__xwaiter, hook);
        snprintf(buf, len, "%s(shared %p)", w->what ? w->what : "shared", w->obj);
        return;
    }
    case URT__WAIT_QUEUE:
    case URT__WAIT_QUEUE_NOINTR: {
        const struct urt__waiter *w = t->wait;
        if (w->what && !strcmp(w->what, "join"))
            snprintf(buf, len, "join(task %llu)",
                     (unsigned long long)((const struct urt_task *)w->obj)->id);
        else
            snprintf(buf, len, "%s(%p)", w->what ? w->what : "queue", w->obj);
        return;
    }
    default: {
        if (t->wait) {   /* urt_close's own wait */
            const struct urt__task_op *o = urt__container_of(t->wait, struct urt__task_op, wait);
            snprintf(buf, len, "%s(fd %d)", op_name(o->op.kind), o->op.fd);
        } else
            snprintf(buf, len, "-");
        return;
    }
    }
}

static void ms(char *buf, size_t len, int64_t ns)
{
    snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
}

void urt_dump(FILE *out)
{
    struct urt_runtime *rt = urt__rt;
    if (!out)
        return;
    if (!rt) {
        fprintf(out, "urt: no runtime on this thread\n");
        return;
    }
    uint64_t now = urt_now();
    fprintf(out, "urt: runtime %d of %d: %llu live tasks, %llu operations in flight, %llu timers\n",
            rt->index, urt_thread_count(), (unsigned long long)rt->st.tasks_live,
            (unsigned long long)rt->st.ops_inflight,
            (unsigned long long)urt__timers_armed(&rt->timers));
    fprintf(out, "%8s  %-16s %-8s %-28s %-10s %-12s %s\n", "id", "name", "state", "waiting on",
            "for", "deadline", "stack used/size");
    for (const struct urt_task *t = rt->all_tasks; t; t = t->all_next) {
        char wait[64], since[24] = "", dl[24] = "none";
        describe_wait(t, wait, sizeof wait);
        if (t->state == URT__PARKED && t->parked_at && now >= t->parked_at)
            ms(since, sizeof since, (int64_t)(now - t->parked_at));
        if (t->deadline)
            ms(dl, sizeof dl, (int64_t)(t->deadline - now));
        const char *top = (const char *)t;
        size_t size = (size_t)(top - (t->stack.base + t->stack.guard));
        /* A running task's stack pointer is live, not saved: its use is unknown here. */
        size_t used = t->state == URT__RUNNING || t->state == URT__DONE ? 0
                                                                        : (size_t)(top - (const char *)t->sp);
        fprintf(out, "%8llu  %-16s %-8s %-28s %-10s %-12s %zu/%zu%s\n", (unsigned long long)t->id,
                t->name[0] ? t->name : "-", state_name(t), wait, since, dl, used, size,
                (t->flags & URT__CANCELLED) ? "  cancelled" : "");
    }
}

static int dump_on_signal(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, (int)(intptr_t)arg);
    while (urt_signal_wait(&set) > 0)
        urt_dump(stderr);
    return 0;
}

int urt_dump_on_signal(int signo)
{
    if (!urt__self())
        return -EPERM;
    if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
        return -EINVAL;
    /* Its own stack size, whatever the configured default (a compact one could not dump). */
    struct urt_spawn_opts o = { .name = "urt-dump", .stack_size = 64 * 1024 };
    urt_task *t = urt_spawn_ex(dump_on_signal, (void *)(intptr_t)signo, &o);
    if (!t)
        return -errno;
    urt_detach(t);
    return 0;
}
