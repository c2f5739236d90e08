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
 * New stacks are carved in batches that grow with demand (a burst of spawns gets bigger ones),
 * and handed out ready: the batch's guards installed and the pages a new task touches first (the
 * top page, with the task's header and first frames) populated, each in one system call for the
 * whole batch - process_madvise over the calling process (Linux 6.13 accepts any advice there) -
 * or, where that is refused, one madvise per range, and where MADV_POPULATE_WRITE (5.14) is
 * refused, a write to each page. On a virtual machine a first touch costs microseconds, a page of
 * a batched populate a fraction of that, and urt_spawn then takes no page fault at all. The
 * batch's unused stacks wait in the pool: at most one batch of memory ahead of demand.
 *
 * Freed stacks go to a pool per slot size; beyond `warm_max` of a size their pages go back to the
 * kernel (MADV_DONTNEED, which keeps guards) but the slot stays mapped, so a stale task handle
 * reads zeros instead of faulting. Arenas are unmapped when the runtime ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

#define BATCH_MIN 16
#define BATCH_MAX 1024   /* UIO_MAXIOV: ranges one process_madvise takes */

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

/* ---- carving a batch ---- */

/* A pidfd of this process, for process_madvise; reopened in a forked child, whose inherited one
   names the parent. */
static int self_pidfd(struct urt__stack_pool *p)
{
    pid_t pid = getpid();
    if (p->pidfd_pid == pid)
        return p->pidfd;
    if (p->pidfd_pid)
        close(p->pidfd);
    p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    p->pidfd_pid = pid;
    return p->pidfd;
}

/*
 * Gives every range of iov the advice: in one process_madvise where the kernel takes it for this
 * process, else one madvise per range. 0, or -1 when a range was refused.
 */
static int advise(struct urt__stack_pool *p, struct iovec *iov, uint32_t n, int advice)
{
    uint32_t done = 0;
    if (p->prep == URT__PREP_BATCH && p->process_madvise >= 0) {
        int fd = self_pidfd(p);
        ssize_t r = fd >= 0 ? syscall(SYS_process_madvise, fd, iov, (size_t)n, advice, 0u) : -1;
        if (r >= 0) {
            p->process_madvise = 1;
            /* It may stop early (a range it could not do): the rest goes one by one. */
            for (size_t bytes = (size_t)r; done < n && bytes >= iov[done].iov_len; done++)
                bytes -= iov[done].iov_len;
        } else if (p->process_madvise == 0) {
            p->process_madvise = -1;   /* an older kernel: not for this advice, or not at all */
        }
    }
    for (; done < n; done++)
        if (madvise(iov[done].iov_base, iov[done].iov_len, advice) != 0)
            return -1;
    return 0;
}

/* The batch's guard pages: at the base of each of its n slots. Returns the guard size given to
   them all (0: none could be had; they rely on the canary). */
static uint32_t guard_batch(struct urt__stack_pool *p, char *first, uint32_t n, size_t len,
                            uint32_t *guards)
{
    if (p->prep == URT__PREP_MPROTECT)
        p->guard_madvise = -1;   /* as on a kernel before 6.13 */
    if (p->guard_madvise >= 0) {
        struct iovec iov[BATCH_MAX];
        for (uint32_t i = 0; i < n; i++)
            iov[i] = (struct iovec){ first + (size_t)i * len, PAGE };
        if (advise(p, iov, n, MADV_GUARD_INSTALL) == 0) {
            p->guard_madvise = 1;
            for (uint32_t i = 0; i < n; i++)
                guards[i] = PAGE;
            return PAGE;
        }
        if (p->guard_madvise == 0)
            p->guard_madvise = -1;   /* before Linux 6.13 */
    }
    uint32_t any = 0;
    for (uint32_t i = 0; i < n; i++)
        any |= guards[i] = guard(p, first + (size_t)i * len);
    return any;
}

/* The pages of the batch its tasks touch first, made present now. */
static void populate_batch(struct urt__stack_pool *p, char *first, uint32_t n, size_t len)
{
    struct iovec iov[BATCH_MAX];
    uint32_t k = 0;
    if (len < 2 * PAGE) {
        /* Compact slots share pages: every page of the batch will be touched. */
        uintptr_t lo = (uintptr_t)first & ~(uintptr_t)(PAGE - 1);
        uintptr_t hi = ((uintptr_t)first + (size_t)n * len + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
        iov[k++] = (struct iovec){ (void *)lo, hi - lo };
    } else {
        for (uint32_t i = 0; i < n; i++)
            iov[k++] = (struct iovec){ first + (size_t)(i + 1) * len - PAGE, PAGE };
    }
    if (p->prep <= URT__PREP_RANGES && p->populate_madvise >= 0) {
        if (advise(p, iov, k, MADV_POPULATE_WRITE) == 0) {
            p->populate_madvise = 1;
            p->populated += k;
            return;
        }
        if (p->populate_madvise == 0)
            p->populate_madvise = -1;   /* before Linux 5.14 */
    }
    /* Touching: a write per page, each a fault taken here rather than in the task. */
    for (uint32_t i = 0; i < k; i++)
        for (size_t off = 0; off < iov[i].iov_len; off += PAGE)
            *(volatile char *)((char *)iov[i].iov_base + off) = 0;
    p->touched += k;
}

/* How many stacks to carve now: a quarter of those carved so far, so a burst of spawns gets
   ever bigger batches, within [BATCH_MIN, BATCH_MAX]. */
static uint32_t batch_size(const struct urt__stack_class *c)
{
    uint32_t n = c->carved / 4;
    return n < BATCH_MIN ? BATCH_MIN : n > BATCH_MAX ? BATCH_MAX : n;
}

static bool reserve(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    while (*cap < need)
        if (!grow(arr, cap, *cap, elem))
            return false;
    return true;
}

/* New stacks of slot length len, ready to run: *out and the rest of a batch, pooled. */
static int carve(struct urt__stack_pool *p, struct urt__stack_class *c, size_t len,
                 struct urt__stack *out)
{
    if ((size_t)(c->carve_end - c->carve) < len) {
        int err = new_arena(p, c);
        if (err)
            return err;
    }
    uint32_t n = batch_size(c);
    size_t room = (size_t)(c->carve_end - c->carve) / len;
    if (n > room)
        n = (uint32_t)room;
    /* The batch's spares go to the warm list while it has room, else to the cold one. */
    uint32_t warm_room = (p->warm_max < c->cap_warm ? p->warm_max : c->cap_warm) - c->nwarm;
    if (p->warm_max <= c->nwarm || c->cap_warm <= c->nwarm)
        warm_room = 0;
    uint32_t to_warm = n - 1 < warm_room ? n - 1 : warm_room;
    uint32_t to_cold = n - 1 - to_warm;
    if (to_cold && !reserve((void **)&c->cold, &c->cap_cold, c->ncold + to_cold, sizeof *c->cold))
        n = 1 + to_warm, to_cold = 0;
    char *first = c->carve;
    c->carve += (size_t)n * len;
    c->carved += n;
    p->mapped += n;
    uint32_t guards[BATCH_MAX] = { 0 };
    if (len >= 2 * PAGE)
        guard_batch(p, first, n, len, guards);
    populate_batch(p, first, n, len);
    for (uint32_t i = 0; i < n; i++) {
        struct urt__stack s = { .base = first + (size_t)i * len, .len = (uint32_t)len,
                                .guard = guards[i] };
#ifdef URT_VALGRIND
        s.vg_id = VALGRIND_STACK_REGISTER(s.base + s.guard, s.base + len);
#endif
        if (i == 0)
            *out = s;
        else if (i <= to_warm)
            c->warm[c->nwarm++] = s;
        else
            c->cold[c->ncold++] = s;
    }
    p->pooled += n - 1;
    return 0;
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
    uint32_t want = c->carved + batch_size(c);
    if (want > p->warm_max)
        want = p->warm_max;
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
    int err = carve(p, c, len, out);
    if (err)
        return err;
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
    if (p->pidfd_pid == getpid())
        close(p->pidfd);
    memset(p, 0, sizeof *p);
}

int urt__stack_prep_from_env(void)
{
    const char *v = getenv("URT_STACK_PREPARE");
    if (!v)
        return URT__PREP_BATCH;
    if (!strcmp(v, "ranges"))
        return URT__PREP_RANGES;
    if (!strcmp(v, "touch"))
        return URT__PREP_TOUCH;
    if (!strcmp(v, "mprotect"))
        return URT__PREP_MPROTECT;
    return URT__PREP_BATCH;
}
