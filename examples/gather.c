/* SPDX-License-Identifier: MIT */
/*
 * gather - asyncio's wait_for and gather, told with urt.
 *
 * The Python it mirrors:
 *
 *     async def fetch(i, ms):
 *         await asyncio.sleep(ms / 1000)
 *         return i * i
 *
 *     await asyncio.wait_for(fetch(6, 30), timeout=0.1)          # 36
 *     await asyncio.wait_for(fetch(7, 500), timeout=0.1)         # TimeoutError after 0.1 s
 *     await asyncio.gather(*(fetch(i, (5 - i) * 20) for i in range(5)))   # [0, 1, 4, 9, 16]
 *     await asyncio.wait_for(asyncio.gather(...), timeout=0.05)  # TimeoutError; the rest cancelled
 *
 * wait_for is a plain call inside a cancel scope with a deadline (urt_scope_enter): every
 * blocking call in it fails with -ETIMEDOUT once the deadline passes, and urt_scope_exit
 * returning 1 says that the deadline is what ended it - reported as a timeout. gather spawns one
 * task per call and joins them in order: the results come back in the order of the calls, though
 * the tasks finish in the reverse order, and the whole takes as long as the slowest call, not the
 * sum. The last part bounds a gather with a deadline: the joins stop at it, the tasks not yet
 * finished are cancelled (urt_cancel) and joined, and the results of those that finished in time
 * are kept.
 *
 * Only the times in brackets change from run to run. It exits 0 when every result is as above.
 *
 *     build/examples/gather
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urt.h"

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--help]\n"
            "\n"
            "asyncio's wait_for and gather, with urt: a call under a cancel scope's deadline\n"
            "(a timeout is reported as such), then N tasks spawned and joined with their results\n"
            "collected in order, then the same gather bounded by a deadline. Exits 0 when every\n"
            "result is the one expected.\n"
            "\n"
            "  --help   print this help and exit\n",
            prog);
}

#define N 5

static uint64_t part_start;

/* One line, prefixed with the milliseconds since the part began. */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  [%4llu ms] ", (unsigned long long)((urt_now() - part_start) / 1000000));
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void part(const char *title)
{
    printf("\n%s\n", title);
    part_start = urt_now();
}

static const char *errname(int err)
{
    switch (err) {
    case -ECANCELED:  return "-ECANCELED";
    case -ETIMEDOUT:  return "-ETIMEDOUT";
    default:          return strerror(-err);
    }
}

/* The coroutine: waits ms, then its result is i * i. Returns 0 or the sleep's error. */
struct fetch {
    int      i;
    unsigned ms;
    int      result;
};

static int fetch(void *arg)
{
    struct fetch *f = arg;
    int err = urt_sleep(URT_MSEC(f->ms));   /* any blocking call: a recv, a connect... */
    if (err)
        return err;
    f->result = f->i * f->i;
    say("fetch(%d) done after %u ms", f->i, f->ms);
    return 0;
}

/* asyncio.wait_for(fn(arg), timeout): fn runs in the calling task, inside a scope whose deadline
   is timeout_ms away. -ETIMEDOUT when that deadline ended it, else fn's return value. */
static int wait_for(urt_fn fn, void *arg, unsigned timeout_ms)
{
    urt_scope s;
    urt_scope_enter(&s, urt_now() + URT_MSEC(timeout_ms), 0);
    int r = fn(arg);
    if (urt_scope_exit(&s) == 1)
        return -ETIMEDOUT;   /* our deadline, not one further out or the task's own */
    return r;
}

static int show_wait_for(int i, unsigned ms, unsigned timeout_ms, int want)
{
    struct fetch f = { .i = i, .ms = ms, .result = -1 };
    part_start = urt_now();
    int r = wait_for(fetch, &f, timeout_ms);
    if (r == -ETIMEDOUT)
        say("wait_for(fetch(%d) taking %u ms, timeout %u ms): TimeoutError", i, ms, timeout_ms);
    else if (r == 0)
        say("wait_for(fetch(%d) taking %u ms, timeout %u ms) = %d", i, ms, timeout_ms, f.result);
    else
        say("wait_for(fetch(%d)): failed: %s", i, errname(r));
    return r == want && (r != 0 || f.result == i * i) ? 0 : 1;
}

/* Spawns fetch(i, (N - i) * 20 ms) for i in 0..N-1: the last call finishes first. */
static int spawn_all(struct fetch *f, urt_task **t)
{
    for (int i = 0; i < N; i++) {
        f[i] = (struct fetch){ .i = i, .ms = (unsigned)(N - i) * 20, .result = -1 };
        t[i] = urt_spawn(fetch, &f[i]);
        if (!t[i]) {
            fprintf(stderr, "gather: urt_spawn: %s\n", strerror(errno));
            for (int j = 0; j < i; j++) {
                urt_cancel(t[j]);
                urt_join(t[j]);
            }
            return -1;
        }
    }
    return 0;
}

static int main_task(void *arg)
{
    (void)arg;
    int bad = 0;
    printf("gather: asyncio's wait_for and gather, told with urt\n");

    part("1. wait_for: a call under a cancel scope's deadline");
    bad |= show_wait_for(6, 30, 100, 0);
    bad |= show_wait_for(7, 500, 100, -ETIMEDOUT);

    part("2. gather: one task per call, joined in order");
    struct fetch f[N];
    urt_task *t[N];
    if (spawn_all(f, t))
        return 1;
    say("spawned fetch(0..%d), taking %u down to %u ms", N - 1, N * 20, 20);
    int st[N];
    for (int i = 0; i < N; i++)
        st[i] = urt_join(t[i]);
    uint64_t took = (urt_now() - part_start) / 1000000;
    printf("  gather = [");
    for (int i = 0; i < N; i++) {
        printf(i ? ", %d" : "%d", st[i] ? st[i] : f[i].result);
        if (st[i] != 0 || f[i].result != i * i)
            bad = 1;
    }
    printf("]  (results in call order)\n");
    printf("  took %llu ms: the slowest call (%u ms), not the sum (%u ms)\n",
           (unsigned long long)took, N * 20, 20 * N * (N + 1) / 2);

    part("3. wait_for(gather(...), 50 ms): the joins stop at the deadline");
    if (spawn_all(f, t))
        return 1;
    urt_scope s;
    urt_scope_enter(&s, urt_now() + URT_MSEC(50), 0);
    int joined = 0;
    for (; joined < N; joined++) {
        st[joined] = urt_join(t[joined]);
        if (st[joined] == -ETIMEDOUT)
            break;   /* the deadline ended the join (fetch never returns -ETIMEDOUT itself
                        here): t[joined] is not released, it is joined below */
    }
    int timed_out = urt_scope_exit(&s) == 1;
    if (timed_out)
        say("TimeoutError: cancelling the calls not joined yet");
    for (int i = joined; i < N; i++)
        urt_cancel(t[i]);
    for (int i = joined; i < N; i++)
        st[i] = urt_join(t[i]);
    for (int i = 0; i < N; i++) {
        if (st[i] == 0)
            printf("  fetch(%d) = %d (finished in time)\n", i, f[i].result);
        else
            printf("  fetch(%d): %s\n", i, errname(st[i]));
        /* the calls of 20 and 40 ms finish before 50 ms, the others are cancelled */
        int in_time = (N - i) * 20 < 50;
        if (in_time ? st[i] != 0 || f[i].result != i * i : st[i] != -ECANCELED)
            bad = 1;
    }
    if (!timed_out)
        bad = 1;

    printf("\n%s\n", bad ? "FAILED: a result was not the one expected"
                         : "every result as expected");
    return bad;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr, argv[0]);
        return 2;
    }

    /* Each line as soon as it is printed, also into a pipe, so the order shows. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    int ret = urt_run(main_task, NULL, NULL);
    if (ret < 0) {
        fprintf(stderr, "gather: urt_run: %s\n", strerror(-ret));
        return 1;
    }
    return ret;
}
