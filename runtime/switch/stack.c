/* SPDX-License-Identifier: MIT */
/*
 * stack.c - task stacks.
 *
 * Stacks are carved from arenas: large private anonymous mappings, MAP_NORESERVE (only touched
 * pages cost memory) and MADV_NOHUGEPAGE (a huge page would make every idle task cost 2 MiB where
 * THP is "always"). So a million tasks need about a thousand mappings, not a million: the default
 * vm.max_map_count of 65530 would stop one-mapping-per-stack near 32k tasks.
 *
 * Each ordinary stack's lowest page is a guard. MADV_GUARD_INSTALL (Linux 6.13) guards a page
 * without splitting the mapping; where it is refused, mprotect guards while the mapping budget
 * allows (each splits the arena's mapping in two more), and beyond that only the canary, a word at
 * the lowest usable address checked on every switch, catches an overflow.
 *
 * Compact stacks (under a page) share pages and rely on the canary alone, as do ordinary stacks
 * that got no guard.
 *
 * Freed stacks go to a pool per slot size; beyond `warm_max` of a size their pages go back to the
 * kernel (MADV_DONTNEED, which keeps guards) but the slot stays mapped, so a stale task handle
 * reads zeros instead of faulting. Arenas are unmapped when the runtime ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/fault.h"
#include "switch/stack.h"

/* Valgrind must be told which memory is a stack, or every switch looks like a wild write. The
   client requests cost a few instructions when not running under Valgrind. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#include <valgrind/memcheck.h>
#define URT_VALGRIND 1
#endif
#endif

#include "base/compiler.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102   /* Linux 6.13; Debian 12's headers predate it */
#endif

#define PAGE            4096u
#define ARENA_BYTES     ((size_t)32 << 20)   /* 512 default stacks, 16384 compact ones */
#define MPROTECT_BUDGET 12000                /* guards by mprotect: 2 mappings each     */

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1   /* instrumented frames are several times larger: no compact stacks */
#else
#define SANITIZED 0
#endif

size_t urt__stack_round(size_t usable)
{
    if (usable > ((size_t)1 << 30))
        return 0;
    if (usable <= URT__COMPACT_MAX && !SANITIZED) {
        if (usable < URT__COMPACT_MIN)
            usable = URT__COMPACT_MIN;
        /* A size that divides the page, so no stack straddles two pages' worth of neighbours. */
        size_t slot = URT__COMPACT_MIN;
        while (slot < usable)
            slot *= 2;
        return slot;
    }
    if (usable < 16 * 1024)
        usable = 16 * 1024;
    usable = (usable + PAGE - 1) & ~(size_t)(PAGE - 1);
    return usable + PAGE;   /* + the guard page */
}

static bool grow(void **arr, uint32_t *cap, uint32_t n, size_t elem);

static struct urt__stack_class *class_for(struct urt__stack_pool *p, size_t len, bool create)
{
    if (likely(p->last && p->last->len == len))
        return p->last;
    for (uint32_t i = 0; i < p->ncls; i++)
        if (p->cls[i]->len == len)
            return p->last = p->cls[i];
    if (!create || !grow((void **)&p->cls, &p->cap_cls, p->ncls, sizeof *p->cls))
        return NULL;
    struct urt__stack_class *c = urt__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->len = (uint32_t)len;
    p->cls[p->ncls++] = c;
    return p->last = c;
}

static bool grow(void **arr, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n < *cap)
        return true;
    uint32_t ncap = *cap ? *cap * 2 : 64;
    void *a = urt__realloc(*arr, (size_t)ncap * elem);
    if (!a)
        return false;
    *arr = a;
    *cap = ncap;
    return true;
}

static int new_arena(struct urt__stack_pool *p, struct urt__stack_class *c)
{
    if (!grow((void **)&p->arenas, &p->cap_arenas, p->narenas, sizeof *p->arenas))
        return -ENOMEM;
    size_t len = ARENA_BYTES;
    if (len < (size_t)c->len * 16)
        len = (size_t)c->len * 16;   /* large stacks: still several per mapping */
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return -ENOMEM;
    madvise(base, len, MADV_NOHUGEPAGE);
    /* Kept in address order, for urt__stack_pool_owns. */
    uint32_t i = p->narenas++;
    while (i > 0 && p->arenas[i - 1].base > base) {
        p->arenas[i] = p->arenas[i - 1];
        i--;
    }
    p->arenas[i] = (struct urt__arena){ base, len };
    c->carve = base;
    c->carve_end = base + len;
    return 0;
}

static uint32_t guard(struct urt__stack_pool *p, char *base)
{
    if (p->guard_madvise >= 0) {
        if (madvise(base, PAGE, MADV_GUARD_INSTALL) == 0) {
            p->guard_madvise = 1;
            return PAGE;
        }
        if (p->guard_madvise == 1)   /* it worked before: a real failure (ENOMEM) */
            return 0;
        p->guard_madvise = -1;
    }
    if (p->mprotect_guards < MPROTECT_BUDGET && mprotect(base, PAGE, PROT_NONE) == 0) {
        p->mprotect_guards++;
        return PAGE;
    }
    return 0;
}

/* A slot back in service: its canary, and Valgrind told its memory is fresh. */
static void reissue(struct urt__stack *out)
{
#ifdef URT_VALGRIND
    /* Memcheck marked the frames the slot's last task popped as gone; the new task's header and
       first frames may lie there (headers move with their colour). */
    VALGRIND_MAKE_MEM_UNDEFINED(out->base + out->guard, out->len - out->guard);
#endif
    /* Only unguarded stacks carry a canary: on a guarded one it would cost a page per task. */
    if (!out->guard)
        *urt__stack_canary(out) = URT__CANARY;
}

int urt__stack_get_fast(struct urt__stack_pool *p, size_t len, struct urt__stack *out)
{
    if (urt__fault(URT__FAULT_STACK))
        return -ENOMEM;
    struct urt__stack_class *c = likely(p->last && p->last->len == len) ? p->last
                                                                        : class_for(p, len, false);
    if (!c || !c->nwarm)
        return 1;
    *out = c->warm[--c->nwarm];
    p->pooled--;
    reissue(out);
    return 0;
}

int urt__stack_get(struct urt__stack_pool *p, size_t len, struct urt__stack *out)
{
    struct urt__stack_class *c = urt__fault(URT__FAULT_STACK) ? NULL : class_for(p, len, true);
    if (!c)
        return -ENOMEM;
    /* Room in the warm list for every stack of the class (up to the pool's mark): a stack then
       always goes back with urt__stack_put_fast, which cannot grow it. */
    uint32_t want = c->carved + 1 < p->warm_max ? c->carved + 1 : p->warm_max;
    if (c->cap_warm < want) {
        uint32_t cap = c->cap_warm ? c->cap_warm : 64;
        while (cap < want)
            cap *= 2;
        struct urt__stack *w = urt__realloc(c->warm, (size_t)cap * sizeof *w);
        if (w) {
            c->warm = w;
            c->cap_warm = cap;
        }
    }
    if (c->nwarm) {
        *out = c->warm[--c->nwarm];
        p->pooled--;
        goto canary;
    }
    if (c->ncold) {
        *out = c->cold[--c->ncold];
        p->pooled--;
        goto canary;
    }
    for (uint32_t i = p->ntrim; i-- > 0;)
        if (p->trim[i].len == len) {
            *out = p->trim[i];
            p->trim[i] = p->trim[--p->ntrim];
            p->pooled--;
            goto canary;
        }
    if ((size_t)(c->carve_end - c->carve) < len) {
        int err = new_arena(p, c);
        if (err)
            return err;
    }
    out->base = c->carve;
    out->len = (uint32_t)len;
    out->guard = 0;
    c->carve += len;
    c->carved++;
    if (len >= 2 * PAGE)
        out->guard = guard(p, out->base);
#ifdef URT_VALGRIND
    out->vg_id = VALGRIND_STACK_REGISTER(out->base + out->guard, out->base + len);
#endif
    p->mapped++;
canary:
    reissue(out);
    return 0;
}

static int by_address(const void *a, const void *b)
{
    const struct urt__stack *x = a, *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

/* Gives back the pages of the batch, adjacent slots merged into one madvise each (guards stay:
   MADV_DONTNEED leaves both guard markers and PROT_NONE alone), and files the slots as cold. */
static void trim_flush(struct urt__stack_pool *p)
{
    qsort(p->trim, p->ntrim, sizeof p->trim[0], by_address);
    for (uint32_t i = 0; i < p->ntrim;) {
        char *start = p->trim[i].base;
        char *end = start + p->trim[i].len;
        uint32_t j = i + 1;
        while (j < p->ntrim && p->trim[j].base == end)
            end += p->trim[j++].len;
        madvise(start, (size_t)(end - start), MADV_DONTNEED);
        i = j;
    }
    for (uint32_t i = 0; i < p->ntrim; i++) {
        struct urt__stack_class *c = class_for(p, p->trim[i].len, false);
        if (grow((void **)&c->cold, &c->cap_cold, c->ncold, sizeof *c->cold))
            c->cold[c->ncold++] = p->trim[i];
        else
            p->pooled--, p->mapped--;   /* no memory for the list: the slot is lost until exit */
    }
    p->ntrim = 0;
}

bool urt__stack_put_fast(struct urt__stack_pool *p, const struct urt__stack *s)
{
    struct urt__stack_class *c = class_for(p, s->len, false);
    if (c->nwarm >= p->warm_max || c->nwarm >= c->cap_warm)
        return false;
    c->warm[c->nwarm++] = *s;
    p->pooled++;
    return true;
}

void urt__stack_put(struct urt__stack_pool *p, const struct urt__stack *s)
{
    struct urt__stack_class *c = class_for(p, s->len, false);
    p->pooled++;
    if (c->nwarm < p->warm_max &&
        grow((void **)&c->warm, &c->cap_warm, c->nwarm, sizeof *c->warm)) {
        c->warm[c->nwarm++] = *s;
        return;
    }
    /* Compact stacks share pages with live neighbours: only whole-page slots give pages back. */
    if (s->len < 2 * PAGE) {
        if (grow((void **)&c->cold, &c->cap_cold, c->ncold, sizeof *c->cold))
            c->cold[c->ncold++] = *s;
        else
            p->pooled--, p->mapped--;
        return;
    }
    p->trim[p->ntrim++] = *s;
    if (p->ntrim == URT__TRIM_BATCH)
        trim_flush(p);
}

void urt__stack_trim(struct urt__stack_pool *p)
{
    if (p->ntrim)
        trim_flush(p);
}

bool urt__stack_pool_owns(struct urt__stack_pool *p, const void *addr)
{
    const char *a = addr;
    if (likely(p->owns_hint < p->narenas)) {   /* the arena of the last answer: usually it */
        const struct urt__arena *h = &p->arenas[p->owns_hint];
        if (a >= h->base && a < h->base + h->len)
            return true;
    }
    uint32_t lo = 0, hi = p->narenas;
    while (lo < hi) {   /* the last arena starting at or below a */
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->arenas[mid].base <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || a >= p->arenas[lo - 1].base + p->arenas[lo - 1].len)
        return false;
    p->owns_hint = lo - 1;
    return true;
}

bool urt__stack_in_guard(const struct urt__stack *s, const void *addr)
{
    const char *a = addr;
    return s->guard && a >= s->base && a < s->base + s->guard;
}

static void deregister(struct urt__stack *s, uint32_t n)
{
#ifdef URT_VALGRIND
    for (uint32_t i = 0; i < n; i++)
        VALGRIND_STACK_DEREGISTER(s[i].vg_id);
#else
    (void)s; (void)n;
#endif
}

void urt__stack_pool_destroy(struct urt__stack_pool *p)
{
    /* Every stack is back in the pool by now: the runtime has released every task. */
    for (uint32_t i = 0; i < p->ncls; i++) {
        deregister(p->cls[i]->warm, p->cls[i]->nwarm);
        deregister(p->cls[i]->cold, p->cls[i]->ncold);
    }
    deregister(p->trim, p->ntrim);
    for (uint32_t i = 0; i < p->narenas; i++)
        munmap(p->arenas[i].base, p->arenas[i].len);
    free(p->arenas);
    for (uint32_t i = 0; i < p->ncls; i++) {
        free(p->cls[i]->warm);
        free(p->cls[i]->cold);
        free(p->cls[i]);
    }
    free(p->cls);
    memset(p, 0, sizeof *p);
}
