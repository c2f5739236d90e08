/* SPDX-License-Identifier: MIT */
/* context.c - the first frame of a new context; the switch itself is arch/switch_<arch>.S. */
#include <stdint.h>
#include "context.h"

/* arch/switch_*.S: moves the argument into place and calls the entry; never returns. */
extern void urt__ctx_entry(void);

void *urt__ctx_make(void *stack_top, void (*entry)(void *), void *arg)
{
#if defined(__x86_64__)
    /*
     * The frame urt__ctx_switch pops: r15 r14 r13 r12 rbx rbp, then the return address. It is
     * placed so that urt__ctx_entry starts with a 16-byte aligned stack pointer, as the ABI
     * requires before its call instruction.
     */
    uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 72);
    sp[0] = 0;                          /* r15 */
    sp[1] = 0;                          /* r14 */
    sp[2] = (uint64_t)(uintptr_t)entry; /* r13: called by urt__ctx_entry */
    sp[3] = (uint64_t)(uintptr_t)arg;   /* r12: its argument */
    sp[4] = 0;                          /* rbx */
    sp[5] = 0;                          /* rbp: ends frame-pointer walks */
    sp[6] = (uint64_t)(uintptr_t)urt__ctx_entry;
    sp[7] = 0;                          /* a null return address for unwinders */
    return sp;
#elif defined(__aarch64__)
    /* The frame arch/switch_aarch64.S pops: x19-x28, x29 (fp), x30 (lr), d8-d15. */
    uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 176);
    for (int i = 0; i < 22; i++)
        sp[i] = 0;
    sp[0] = (uint64_t)(uintptr_t)arg;   /* x19 */
    sp[1] = (uint64_t)(uintptr_t)entry; /* x20 */
    sp[11] = (uint64_t)(uintptr_t)urt__ctx_entry; /* x30 */
    return sp;
#else
#error "urt: no context switch for this architecture"
#endif
}
