/* SPDX-License-Identifier: MIT */
/*
 * lock.h - the lock of state that runtimes on several threads share (inboxes, shared channels,
 * the waits on them).
 *
 * Its holders keep it for a few dozen instructions and never block while holding it, while the
 * other side often spins on the state it guards. A mutex would send a waiter to sleep in the
 * kernel (a futex wait, then a wake-up system call for the holder) for a wait of nanoseconds;
 * this lock spins instead, and yields the processor only when the holder seems not to run.
 */
#ifndef URT_BASE_LOCK_H
#define URT_BASE_LOCK_H

#include <sched.h>

typedef struct urt__lock { int held; } urt__lock;

#define URT__LOCK_INIT { 0 }

static inline void urt__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline void urt__lock_take(urt__lock *l)
{
    for (unsigned spins = 0;; spins++) {
        if (!__atomic_load_n(&l->held, __ATOMIC_RELAXED) &&
            !__atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE))
            return;
        if (spins < 256)
            urt__cpu_relax();
        else
            sched_yield();   /* the holder was preempted: let it run */
    }
}

static inline void urt__lock_give(urt__lock *l)
{
    __atomic_store_n(&l->held, 0, __ATOMIC_RELEASE);
}

#endif
