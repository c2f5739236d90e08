/*
 * stack.c - task stacks.
 *
 * Each stack is one private anonymous mapping whose lowest page is a guard. Freed stacks go to a
 * pool keyed by size, so that spawning usually costs no system call; beyond `warm_max` per size
 * the pages of a freed stack go back to the kernel (MADV_DONTNEED) while the mapping, and so its
 * guard, stays. Mappings are only unmapped when the runtime ends.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stack.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102   /* Linux 6.13; Debian 12's headers predate it */
#endif

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

size_t urt__stack_round(size_t usable)
{
    size_t ps = page_size();
    if (usable < 16 * 1024)
        usable = 16 * 1024;
    if (usable > ((size_t)1 << 40))
        return 0;
    usable = (usable + ps - 1) & ~(ps - 1);
    return usable + ps;   /* + the guard page */
}

/* The class for len; with create, claims a free slot for it. NULL: no class (and none free). */
static struct urt__stack_class *class_for(struct urt__stack_pool *p, size_t len, bool create)
{
    for (int i = 0; i < URT__STACK_CLASSES; i++)
        if (p->cls[i].len == len)
            return &p->cls[i];
    if (!create)
        return NULL;
    for (int i = 0; i < URT__STACK_CLASSES; i++)
        if (p->cls[i].len == 0) {
            p->cls[i].len = len;
            return &p->cls[i];
        }
    return NULL;
}

static int guard(struct urt__stack_pool *p, char *base)
{
    /* A guard installed by madvise does not split the mapping: one mapping per stack, not two. */
    if (p->guard_madvise >= 0) {
        if (madvise(base, page_size(), MADV_GUARD_INSTALL) == 0) {
            p->guard_madvise = 1;
            return 0;
        }
        if (p->guard_madvise == 1)
            return -errno;
        p->guard_madvise = -1;
    }
    return mprotect(base, page_size(), PROT_NONE) == 0 ? 0 : -errno;
}

int urt__stack_get(struct urt__stack_pool *p, size_t len, struct urt__stack *out)
{
    struct urt__stack_class *c = class_for(p, len, false);
    if (c && c->nwarm) {
        *out = c->warm[--c->nwarm];
        p->pooled--;
        return 0;
    }
    if (c && c->ncold) {
        *out = c->cold[--c->ncold];
        p->pooled--;
        return 0;
    }
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return -ENOMEM;
    /* A huge page would make each stack cost 2 MiB where THP is set to "always". */
    madvise(base, len, MADV_NOHUGEPAGE);
    int err = guard(p, base);
    if (err) {
        munmap(base, len);
        return err == -EAGAIN ? -ENOMEM : err;
    }
    out->base = base;
    out->len = len;
    p->mapped++;
    return 0;
}

static bool push(struct urt__stack **arr, uint32_t *n, uint32_t *cap, const struct urt__stack *s)
{
    if (*n == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 64;
        struct urt__stack *a = realloc(*arr, ncap * sizeof **arr);
        if (!a)
            return false;
        *arr = a;
        *cap = ncap;
    }
    (*arr)[(*n)++] = *s;
    return true;
}

void urt__stack_put(struct urt__stack_pool *p, const struct urt__stack *s)
{
    struct urt__stack_class *c = class_for(p, s->len, true);
    if (c && c->nwarm < p->warm_max && push(&c->warm, &c->nwarm, &c->cap_warm, s)) {
        p->pooled++;
        return;
    }
    if (c) {
        /* Keep the mapping (a stale task handle then reads zeros, not a fault); drop the pages. */
        madvise(s->base + page_size(), s->len - page_size(), MADV_DONTNEED);
        if (push(&c->cold, &c->ncold, &c->cap_cold, s)) {
            p->pooled++;
            return;
        }
    }
    munmap(s->base, s->len);
    p->mapped--;
}

void urt__stack_pool_destroy(struct urt__stack_pool *p)
{
    for (int i = 0; i < URT__STACK_CLASSES; i++) {
        struct urt__stack_class *c = &p->cls[i];
        for (uint32_t j = 0; j < c->nwarm; j++)
            munmap(c->warm[j].base, c->warm[j].len);
        for (uint32_t j = 0; j < c->ncold; j++)
            munmap(c->cold[j].base, c->cold[j].len);
        p->mapped -= c->nwarm + c->ncold;
        free(c->warm);
        free(c->cold);
    }
    memset(p->cls, 0, sizeof p->cls);
    p->pooled = 0;
}
