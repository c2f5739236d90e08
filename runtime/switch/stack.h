/* SPDX-License-Identifier: MIT */
/*
 * stack.h - task stacks, carved from large arenas so that the number of memory mappings does not
 * grow with the number of tasks, each guarded below, pooled for reuse.
 */
#ifndef URT_SWITCH_STACK_H
#define URT_SWITCH_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stacks below this size are "compact": several share a page, no guard page, canary only. */
#define URT__COMPACT_MAX   4095
#define URT__COMPACT_MIN   1024
#define URT__CANARY        0x5afe57ac6b0770aaull

struct urt__stack {
    char     *base;    /* lowest address of the stack's slot                           */
    uint32_t  len;     /* the slot, guard included                                      */
    uint32_t  guard;   /* bytes of guard page at base (0: canary only)                 */
    uint32_t  vg_id;   /* Valgrind's id for it, where built with Valgrind's header      */
};

/* The lowest usable word, which holds the canary on a stack without a guard page. */
static inline uint64_t *urt__stack_canary(const struct urt__stack *s)
{
    return (uint64_t *)(s->base + s->guard);
}

/* Freed stacks of one slot size, and the arena that new ones are carved from. */
struct urt__stack_class {
    uint32_t           len;
    char              *carve, *carve_end;  /* the unused rest of the newest arena          */
    struct urt__stack *warm, *cold;        /* warm: pages kept; cold: pages given back     */
    uint32_t           nwarm, ncold, cap_warm, cap_cold;
    uint32_t           carved;             /* slots ever carved for this size                */
};

struct urt__arena {
    char   *base;
    size_t  len;
};

#define URT__TRIM_BATCH 256

struct urt__stack_pool {
    struct urt__stack_class **cls;         /* one per slot size in use                      */
    uint32_t                ncls, cap_cls;
    struct urt__stack_class *last;         /* the class used last: nearly always the one    */
    struct urt__stack       trim[URT__TRIM_BATCH]; /* freed beyond warm_max, pages not yet given
                                                      back: done in one batch of madvise calls */
    uint32_t                ntrim;
    struct urt__arena      *arenas;
    uint32_t                narenas, cap_arenas;
    uint32_t                owns_hint;     /* the arena urt__stack_pool_owns found last        */
    unsigned                warm_max;      /* warm stacks kept per class before pages go back  */
    uint64_t                mapped;        /* stacks carved (in use + pooled)                  */
    uint64_t                pooled;
    uint64_t                mprotect_guards; /* guards that split a mapping (fallback path)   */
    int                     guard_madvise; /* 1: MADV_GUARD_INSTALL works, -1: it does not     */
    int                     populate_madvise; /* the same for MADV_POPULATE_WRITE             */
    int                     process_madvise;  /* the same for process_madvise on ourselves    */
    int                     prep;          /* enum urt__stack_prep: how new stacks are readied */
    int                     pidfd;         /* this process's, for process_madvise            */
    int                     pidfd_pid;     /* the process it was opened in (0: none yet)      */
    uint64_t                populated;     /* ranges made present by madvise (for tests)      */
    uint64_t                touched;       /* ranges made present by writing to them         */
};

/* How a batch of new stacks is readied: the best the kernel allows, or a fallback forced (by
   URT_STACK_PREPARE, for tests and odd kernels). */
enum urt__stack_prep {
    URT__PREP_BATCH,     /* process_madvise: one call for the batch's guards, one to populate */
    URT__PREP_RANGES,    /* one madvise per range                                             */
    URT__PREP_TOUCH,     /* guards by madvise; pages made present by writing to them          */
    URT__PREP_MPROTECT,  /* guards by mprotect (kernels before 6.13), pages by writing        */
};
/* The mode named by URT_STACK_PREPARE ("batch", "ranges", "touch", "mprotect"); batch if unset
   or unknown. */
int urt__stack_prep_from_env(void);

/* A slot length for a requested usable size (0: impossible size). */
size_t urt__stack_round(size_t usable);
int    urt__stack_get(struct urt__stack_pool *p, size_t len, struct urt__stack *out);
/* The same when a warm stack is at hand (a few loads and stores, safe on any stack): 0; else 1
   and nothing done (call urt__stack_get where there is stack to spare); -ENOMEM injected. */
int    urt__stack_get_fast(struct urt__stack_pool *p, size_t len, struct urt__stack *out);
void   urt__stack_put(struct urt__stack_pool *p, const struct urt__stack *s);
/* The same when it takes a few stores and no call (a warm slot with room): true. Else false,
   and nothing done. Safe on any stack, a 1 KiB one too. */
bool   urt__stack_put_fast(struct urt__stack_pool *p, const struct urt__stack *s);
/* Gives back the pages of stacks freed beyond the pool's mark (done in batches; the scheduler
   also calls it before it waits). */
void   urt__stack_trim(struct urt__stack_pool *p);
void   urt__stack_pool_destroy(struct urt__stack_pool *p);
/* Whether addr lies in one of p's arenas (memory that stays mapped while p lives). */
bool   urt__stack_pool_owns(struct urt__stack_pool *p, const void *addr);
/* Whether addr lies in s's guard page. */
bool   urt__stack_in_guard(const struct urt__stack *s, const void *addr);

#endif
