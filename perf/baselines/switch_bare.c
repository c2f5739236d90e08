/* SPDX-License-Identifier: MIT */
/*
 * switch_bare.c - the bare two-context ping-pong: the floor for perf/switch.
 *
 * It uses urt__ctx_make and urt__ctx_switch from runtime/ (the same object code the scheduler
 * runs, taken from liburt.a: hidden visibility keeps the names out of the shared library's
 * exports, not out of a static link) and nothing else: no run queue, no task records, no
 * counters. Context A switches to B, B straight back to A, and so on; each switch counts once.
 *
 * Both contexts run the same loop, so every switch leaves from, and resumes at, the same call
 * instruction, and the CPU's return-stack predictor gets each `ret` of the switch right. (Two
 * different loops, one per context, make every return a misprediction and the "floor" several
 * times slower than it is: switch_bare_split_ns measures that, for information.) urt's
 * scheduler switches tasks from one call site too.
 */
#include <stdlib.h>

#include "context.h"
#include "switch_bare.h"
#include "../bench.h"

#if defined(__SANITIZE_ADDRESS__)
#define BARE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BARE_ASAN 1
#endif
#endif
#ifdef BARE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define BARE_STACK (64 * 1024)

struct bare_ctx {
    void            *sp;
    struct bare_ctx *peer;
    const void      *stack;   /* lowest address; for AddressSanitizer builds only */
    size_t           size;
    void            *fake;
};

static uint64_t rounds;       /* each context switches this many times: 2 * rounds in all */
static struct bare_ctx main_ctx;

/*
 * One switch. Built with AddressSanitizer (the project's URT_SANITIZE), it tells the sanitizer
 * about the change of stack, as urt's scheduler does; otherwise it is the bare call.
 */
static inline void bare_switch(struct bare_ctx *from, struct bare_ctx *to)
{
#ifdef BARE_ASAN
    __sanitizer_start_switch_fiber(&from->fake, to->stack, to->size);
    urt__ctx_switch(&from->sp, to->sp);
    __sanitizer_finish_switch_fiber(from->fake, NULL, NULL);
#else
    urt__ctx_switch(&from->sp, to->sp);
#endif
}

/* First code of a fresh context: finish the switch that entered it (ASan builds). */
static inline void bare_started(void)
{
#ifdef BARE_ASAN
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
    if (!main_ctx.stack) {   /* entered from the measuring code: learn its stack */
        main_ctx.stack = bottom;
        main_ctx.size = size;
    }
#endif
}

static void ctx_loop(void *arg)
{
    struct bare_ctx *self = arg;
    bare_started();
    for (uint64_t i = 0; i < rounds; i++)
        bare_switch(self, self->peer);
    /* Only A gets here (B is left parked on its last switch): back to the measuring code. */
    bare_switch(self, &main_ctx);
    abort();   /* nothing resumes a context after that */
}

/* The same ping-pong with one loop per context: two call sites, every return mispredicted. */
static void ctx_a(void *arg)
{
    struct bare_ctx *self = arg;
    bare_started();
    for (uint64_t i = 0; i < rounds; i++)
        bare_switch(self, self->peer);
    bare_switch(self, &main_ctx);
    abort();
}

static void ctx_b(void *arg)
{
    struct bare_ctx *self = arg;
    bare_started();
    for (;;)
        bare_switch(self, self->peer);
}

static double ping_pong(uint64_t switches, void (*fa)(void *), void (*fb)(void *))
{
    char *sa = aligned_alloc(64, BARE_STACK);
    char *sb = aligned_alloc(64, BARE_STACK);
    if (!sa || !sb) {
        free(sa);
        free(sb);
        return -1;
    }
    struct bare_ctx a = { .stack = sa, .size = BARE_STACK };
    struct bare_ctx b = { .stack = sb, .size = BARE_STACK };
    rounds = switches / 2;
    a.peer = &b;
    b.peer = &a;
    a.sp = urt__ctx_make(sa + BARE_STACK, fa, &a);
    b.sp = urt__ctx_make(sb + BARE_STACK, fb, &b);

    uint64_t t0 = bench_now();
    bare_switch(&main_ctx, &a);   /* returns when A has made its `rounds` switches */
    uint64_t t1 = bench_now();

    /* B stays suspended inside its loop; its stack is simply dropped. */
    free(sa);
    free(sb);
    return rounds ? (double)(t1 - t0) / (double)(rounds * 2) : 0;
}

double switch_bare_ns(uint64_t switches)
{
    return ping_pong(switches, ctx_loop, ctx_loop);
}

double switch_bare_split_ns(uint64_t switches)
{
    return ping_pong(switches, ctx_a, ctx_b);
}
