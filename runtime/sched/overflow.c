/* SPDX-License-Identifier: MIT */
/*
 * overflow.c - naming the task that overflowed its stack.
 *
 * A guarded stack overflows into its guard page and faults. The SIGSEGV handler, on an alternate
 * signal stack (the faulting stack has no room left), tells a guard-page hit of the running task
 * from any other fault: a hit is reported with the task's id, name and stack size, then the
 * process aborts; any other fault gets the handler that was there before us, as if we were not.
 * Unguarded stacks (compact ones) are checked by their canary on every switch instead.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "sched/sched.h"

#define ALTSTACK_SIZE (64 * 1024)
/* A stack pointer this close to the bottom of an unguarded stack at a fault means overflow. */
#define EDGE 256

static struct sigaction previous;
static pthread_once_t installed = PTHREAD_ONCE_INIT;

/* Async-signal-safe formatting: the report may be written from the SIGSEGV handler. */
static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, uint64_t v, unsigned base)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n && at < cap)
        buf[at++] = tmp[--n];
    return at;
}

void urt__overflow_report(const struct urt_task *t, const void *fault)
{
    char msg[256];
    size_t n = 0, cap = sizeof msg;
    n = put_str(msg, n, cap, "urt: task ");
    n = put_num(msg, n, cap, t->id, 10);
    n = put_str(msg, n, cap, " '");
    n = put_str(msg, n, cap, t->name);
    n = put_str(msg, n, cap, "' overflowed its ");
    n = put_num(msg, n, cap, (uint64_t)((const char *)t - (t->stack.base + t->stack.guard)), 10);
    n = put_str(msg, n, cap, "-byte stack");
    if (fault) {
        n = put_str(msg, n, cap, " (fault at 0x");
        n = put_num(msg, n, cap, (uint64_t)(uintptr_t)fault, 16);
        n = put_str(msg, n, cap, " in its guard page)");
    } else {
        n = put_str(msg, n, cap, " (it has no guard page; found by its canary or stack pointer)");
    }
    n = put_str(msg, n, cap, "\n");
    ssize_t w = write(STDERR_FILENO, msg, n);
    (void)w;
    abort();
}

/* The stack pointer at the fault, or 0 where we do not know how to read it. */
static uintptr_t fault_sp(void *uc)
{
#if defined(__x86_64__)
    return (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)((ucontext_t *)uc)->uc_mcontext.sp;
#else
    return 0;
#endif
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct urt_runtime *rt = urt__rt;
    struct urt_task *t = rt ? rt->current : NULL;
    if (t && urt__stack_in_guard(&t->stack, si->si_addr))
        urt__overflow_report(t, si->si_addr);
    /* An unguarded stack ran on into something unmapped: its canary is gone, the stack pointer
       is below the stack or within a frame of its bottom (a frame can step over the canary
       word, and a call at the edge faults before the pointer moves), or the fault lies just
       under the stack. */
    if (t && !t->stack.guard) {
        uintptr_t sp = fault_sp(uc), lo = (uintptr_t)urt__stack_canary(&t->stack);
        uintptr_t addr = (uintptr_t)si->si_addr;
        if (*urt__stack_canary(&t->stack) != URT__CANARY || (sp && sp < lo + EDGE && sp + (1u << 20) > lo) ||
            (addr < lo && lo - addr < (1u << 20)))
            urt__overflow_report(t, NULL);
    }
    /* Not ours: put the old disposition back; returning re-runs the faulting instruction. */
    sigaction(SIGSEGV, &previous, NULL);
    (void)sig; (void)uc;
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    if (sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO))
        if (sigaction(SIGSEGV, &sa, &previous) != 0)
            memset(&previous, 0, sizeof previous);
}

int urt__overflow_init(struct urt_runtime *rt)
{
    /* Only where nobody else handles SIGSEGV (a sanitizer, a debugger's runtime, the program). */
    pthread_once(&installed, install);
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0;   /* the thread has its own alternate stack: use it */
    stack_t ss = { .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
    ss.ss_sp = malloc(ALTSTACK_SIZE);
    if (!ss.ss_sp)
        return -ENOMEM;
    if (sigaltstack(&ss, NULL) != 0) {
        free(ss.ss_sp);
        return 0;
    }
    rt->altstack = ss.ss_sp;
    return 0;
}

void urt__overflow_exit(struct urt_runtime *rt)
{
    if (!rt->altstack)
        return;
    stack_t ss = { .ss_flags = SS_DISABLE };
    sigaltstack(&ss, NULL);
    free(rt->altstack);
    rt->altstack = NULL;
}
