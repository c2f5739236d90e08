/* SPDX-License-Identifier: MIT */
/* context.h - making and switching execution contexts (the assembly lives in arch/). */
#ifndef URT_CONTEXT_H
#define URT_CONTEXT_H

#include <stddef.h>

/*
 * Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp,
 * loads new_sp and resumes the context saved there. Returns when something switches back to
 * *save_sp. No signal mask, no floating-point control words: tasks share the thread's.
 */
void urt__ctx_switch(void **save_sp, void *new_sp);

/*
 * Lays out a fresh context at the top of a stack, below stack_top, such that the first switch to
 * the returned stack pointer calls entry(arg) on that stack. entry must never return.
 */
void *urt__ctx_make(void *stack_top, void (*entry)(void *), void *arg);

#endif
