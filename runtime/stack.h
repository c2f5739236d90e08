/* stack.h - task stacks: mapped with a guard page below, pooled for reuse. */
#ifndef URT_STACK_H
#define URT_STACK_H

#include <stddef.h>
#include <stdint.h>

struct urt__stack {
    char   *base;   /* start of the mapping; the guard page is its first page  */
    size_t  len;    /* whole mapping, guard included                           */
};

/* Freed stacks of one size. Warm ones keep their pages; cold ones gave them back. */
struct urt__stack_class {
    size_t             len;
    struct urt__stack *warm, *cold;
    uint32_t           nwarm, ncold, cap_warm, cap_cold;
};

#define URT__STACK_CLASSES 8

struct urt__stack_pool {
    struct urt__stack_class cls[URT__STACK_CLASSES];
    unsigned                warm_max;   /* warm stacks kept per class before pages go back      */
    uint64_t                mapped;     /* stacks mapped now (in use + pooled)                  */
    uint64_t                pooled;
    int                     guard_madvise; /* 1: MADV_GUARD_INSTALL works, 0: mprotect, -1: ?  */
};

size_t urt__stack_round(size_t usable);            /* a mapping length for a usable size      */
int    urt__stack_get(struct urt__stack_pool *p, size_t len, struct urt__stack *out);
void   urt__stack_put(struct urt__stack_pool *p, const struct urt__stack *s);
void   urt__stack_pool_destroy(struct urt__stack_pool *p);

#endif
