/* SPDX-License-Identifier: MIT */
/*
 * switch_x86_64.S - the context switch, System V x86-64.
 *
 * Only the callee-saved registers travel: everything else the C caller already assumes clobbered.
 * Resuming with `ret` keeps the return-stack predictor in step, since every switch returns to
 * the instruction after a call to urt__ctx_switch.
 */
#if defined(__x86_64__)
    .text

    /* void urt__ctx_switch(void **save_sp, void *new_sp) */
    .globl  urt__ctx_switch
    .hidden urt__ctx_switch
    .type   urt__ctx_switch, @function
    .p2align 4
urt__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   urt__ctx_switch, .-urt__ctx_switch

    /* First code of a new context: entry(arg) with r13 = entry, r12 = arg (see context.c). */
    .globl  urt__ctx_entry
    .hidden urt__ctx_entry
    .type   urt__ctx_entry, @function
    .p2align 4
urt__ctx_entry:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   urt__ctx_entry, .-urt__ctx_entry
#endif
    .section .note.GNU-stack,"",@progbits
