/*
 * test_scale.c - many tasks at once (docs/architecture.md, "Stacks"): stacks carved from arenas so the
 * number of memory mappings stays flat, what an idle task costs, stack reuse without growth,
 * and overflows caught and named while tasks that stay within their stacks never are.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "urt.h"
#include "urt_test.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* ---- 100,000 live tasks; mappings flat between 1,000 and 100,000 ---- */

struct live_res {
    long   maps_1k, maps_100k;
    long   rss_before, rss_100k, flt_before, flt_100k;
    int    started, woke, wait_status;
    size_t stack_size;
};

static struct live_res LR;

static int sleeper(void *arg)
{
    (void)arg;
    LR.started++;
    int err = urt_sleep(URT_SEC(3600));   /* until the group is cancelled */
    if (err == -ECANCELED)
        LR.woke++;
    return 0;
}

static int live_main(void *arg)
{
    (void)arg;
    urt_group *g = urt_group_new();
    EXPECT(g != NULL);
    struct urt_spawn_opts o = { .stack_size = LR.stack_size };
    LR.rss_before = ut_rss_kib();
    LR.flt_before = minflt();
    for (int i = 0; i < 100000; i++) {
        EXPECT_EQ(urt_group_spawn_ex(g, sleeper, NULL, &o), 0);
        if (i == 999) {
            urt_yield();   /* the first thousand run and go to sleep */
            LR.maps_1k = ut_count_maps();
        }
    }
    while (LR.started < 100000)   /* rounds: the rest start and go to sleep too */
        urt_yield();
    LR.maps_100k = ut_count_maps();
    LR.rss_100k = ut_rss_kib();
    LR.flt_100k = minflt();
    urt_group_cancel(g);
    LR.wait_status = urt_group_wait(g);
    urt_group_free(g);
    return 0;
}

static void run_live(size_t stack_size, double max_bytes, double max_faults)
{
    memset(&LR, 0, sizeof LR);
    LR.stack_size = stack_size;
    EXPECT_EQ(urt_run(live_main, NULL, NULL), 0);
    double bytes = (double)(LR.rss_100k - LR.rss_before) * 1024.0 / 100000.0;
    double faults = (double)(LR.flt_100k - LR.flt_before) / 100000.0;
    UT_NOTE("  stack %zu: mappings %ld at 1,000 live tasks, %ld at 100,000; %.0f bytes and %.3f "
            "page faults per idle task\n", stack_size, LR.maps_1k, LR.maps_100k, bytes, faults);
    EXPECT_EQ(LR.wait_status, 0);   /* a deliberate urt_group_cancel is not an error */
    EXPECT_EQ(LR.woke, 100000);
    /* An arena is 32 MiB: 100,000 default stacks take ~200 arenas, which the kernel may merge,
       but never one mapping per stack. */
    EXPECT(LR.maps_100k - LR.maps_1k < 250);
    if (!SANITIZED) {
        EXPECT(bytes <= max_bytes);
        EXPECT(faults <= max_faults);
    }
}

UT_TEST_T(hundred_thousand_live_tasks_default_stacks, 60)
{
    run_live(0, 4.3 * 1024, 1.05);
}

UT_TEST_T(hundred_thousand_live_tasks_compact_stacks, 60)
{
    run_live(2048, 2.5 * 1024, 0.55);
}

/* ---- stacks are reused: a million spawn/join cycles stay within the pool ---- */

static int empty(void *arg)
{
    (void)arg;
    return 0;
}

struct reuse_res {
    long rss_warm, rss_end;
    uint64_t mapped_warm, mapped_end;
};

static int reuse_main(void *arg)
{
    struct reuse_res *r = arg;
    urt_task *t[100];
    int cycles = SANITIZED ? 200000 : 1000000;
    for (int round = 0; round < cycles / 100; round++) {
        for (int i = 0; i < 100; i++)
            t[i] = urt_spawn(empty, NULL);
        for (int i = 0; i < 100; i++)
            EXPECT_EQ(urt_join(t[i]), 0);
        if (round == 100) {
            struct urt_stats st;
            urt_stats(&st);
            r->rss_warm = ut_rss_kib();
            r->mapped_warm = st.stacks_mapped;
        }
    }
    struct urt_stats st;
    urt_stats(&st);
    r->rss_end = ut_rss_kib();
    r->mapped_end = st.stacks_mapped;
    return 0;
}

UT_TEST_T(million_spawn_join_cycles_reuse_stacks, 90)
{
    struct reuse_res r;
    memset(&r, 0, sizeof r);
    EXPECT_EQ(urt_run(reuse_main, &r, NULL), 0);
    UT_NOTE("  after 10,000 cycles: %llu stacks, %ld KiB resident; at the end: %llu stacks, "
            "%ld KiB\n", (unsigned long long)r.mapped_warm, r.rss_warm,
            (unsigned long long)r.mapped_end, r.rss_end);
    EXPECT(r.mapped_end == r.mapped_warm);
    /* 101 in use, and at most one batch carved ahead of demand (16, or a quarter of those
       carved when more) */
    EXPECT(r.mapped_end <= 101 + 32);
    EXPECT(r.rss_end - r.rss_warm < 1024);   /* nothing grows with the number of cycles */
}

/* ---- overflows are caught and named; staying within the stack is never reported ---- */

static int overflow_main(void *arg)
{
    struct urt_spawn_opts o = { .name = "runaway", .stack_size = (size_t)(uintptr_t)arg };
    urt_task *t = urt_spawn_ex(ut_runaway_task, NULL, &o);
    urt_join(t);
    return 0;
}

/* Runs an overflowing task in a child; returns what it wrote on stderr, and its status. */
static void overflow_child(size_t stack_size, char *text, size_t cap, int *status)
{
    *status = ut_run_crashing(overflow_main, (void *)(uintptr_t)stack_size, NULL, text, cap);
}

UT_TEST(compact_stack_overflow_is_named)
{
    if (SANITIZED)
        return;   /* compact requests get ordinary stacks there, and ASan reports faults itself */
    char text[4096];
    int status;
    overflow_child(2048, text, sizeof text, &status);
    UT_NOTE("  %s", text);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    EXPECT(strstr(text, "'runaway'") != NULL);
    EXPECT(strstr(text, "overflowed") != NULL);
}

UT_TEST(large_stack_overflow_is_named)
{
    if (SANITIZED)
        return;
    char text[4096];
    int status;
    overflow_child(256 * 1024, text, sizeof text, &status);
    UT_NOTE("  %s", text);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    EXPECT(strstr(text, "'runaway'") != NULL);
    EXPECT(strstr(text, "262144-byte") != NULL || strstr(text, "stack") != NULL);
}

/* Tasks that use most of their stack, switching all the while, are never reported. */
static int use_most(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    volatile char *p = __builtin_alloca(n);
    for (size_t i = 0; i < n; i += 64)
        p[i] = (char)i;
    int err = urt_yield();   /* the canary is checked at every switch */
    for (size_t i = 0; i < n; i += 64)
        if (p[i] != (char)i)
            return -1;
    return err;
}

static int within_main(void *arg)
{
    (void)arg;
    struct urt_spawn_opts big = { .stack_size = 64 * 1024 };
    struct urt_spawn_opts compact = { .stack_size = 2048 };
    urt_task *t[200];
    for (int i = 0; i < 200; i++)
        t[i] = i % 2 ? urt_spawn_ex(use_most, (void *)(uintptr_t)(48 * 1024), &big)
                     : urt_spawn_ex(use_most, (void *)(uintptr_t)1024, &compact);
    for (int i = 0; i < 200; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    return 0;
}

UT_TEST(tasks_within_their_stacks_are_never_reported)
{
    EXPECT_EQ(urt_run(within_main, NULL, NULL), 0);
}

/* ---- many sleepers: cancel one among 20,000, and they wake in deadline order ----
   The order can only be asked of sleepers that were all armed before the first wake-up time: the
   main task reads the clock once every sleeper has armed. Where the earliest target had already
   passed (a slow or loaded machine: 20,000 first runs under ASan take a while), the attempt
   proves nothing about the order, and runs again with a head start four times what the arming
   took. Every attempt checks the rest (no error, no early wake, the victim's cancel). */

#define ORDER_SLEEPERS 20000
#define ORDER_ATTEMPTS 4

static int order_n, order_armed, order_woken;
static int order_bad, order_inversions;
static uint64_t order_base, order_head, order_last;

static int order_sleeper(void *arg)
{
    int i = (int)(intptr_t)arg;
    /* deadlines in a shuffled order: the out-of-order ones go through the heap */
    uint64_t at = order_base + order_head + (uint64_t)((i * 7919) % 1000) * URT_USEC(20);
    order_armed++;   /* no other task runs before the sleep below has armed its timer */
    int err = urt_sleep_until(at);
    if (err || urt_now() < at)
        order_bad++;
    if (at < order_last)
        order_inversions++;
    order_last = at;
    order_woken++;
    return 0;
}

static int long_sleep(void *arg)
{
    (void)arg;
    return urt_sleep(URT_SEC(60));
}

static int cancel_one_main(void *arg)
{
    int *conclusive = arg;
    order_head = URT_MSEC(200);
    for (int attempt = 1; attempt <= ORDER_ATTEMPTS && !*conclusive; attempt++) {
        order_armed = order_woken = order_inversions = 0;
        order_last = 0;
        urt_group *g = urt_group_new();
        for (int i = 0; i < ORDER_SLEEPERS; i++)
            EXPECT_EQ(urt_group_spawn(g, order_sleeper, (void *)(intptr_t)i), 0);
        order_base = urt_now();   /* read by the sleepers when they first run, after this yields */
        urt_task *victim = urt_spawn(long_sleep, NULL);
        urt_yield();
        while (order_armed < ORDER_SLEEPERS && order_woken == 0)
            urt_yield();
        uint64_t all_armed = urt_now();
        int armed_in_time = order_armed == ORDER_SLEEPERS && order_woken == 0 &&
                            all_armed < order_base + order_head;
        uint64_t t0 = urt_now();
        urt_cancel(victim);
        EXPECT_EQ(urt_join(victim), -ECANCELED);
        EXPECT(urt_now() - t0 < URT_SEC(30));   /* it did not wait for its sleep to end */
        EXPECT_EQ(urt_group_wait(g), 0);
        urt_group_free(g);
        if (armed_in_time) {
            *conclusive = 1;
            EXPECT_EQ(order_inversions, 0);
        } else {
            uint64_t took = all_armed - order_base;
            printf("  attempt %d: arming took %llu ms, head start %llu ms: again\n", attempt,
                   (unsigned long long)took / 1000000, (unsigned long long)order_head / 1000000);
            fflush(stdout);
            order_head = 4 * took > 2 * order_head ? 4 * took : 2 * order_head;
        }
    }
    struct urt_stats st;
    urt_stats(&st);
    EXPECT_EQ(st.timers_armed, 0);
    order_n = 1;
    return 0;
}

UT_TEST(cancel_one_sleeper_among_many)
{
    int conclusive = 0;
    order_bad = 0;
    EXPECT_EQ(urt_run(cancel_one_main, &conclusive, NULL), 0);
    EXPECT_EQ(order_n, 1);
    EXPECT_EQ(order_bad, 0);
    EXPECT_EQ(conclusive, 1);   /* some attempt armed every sleeper before the first target */
}

/* The measurement mode urt_config.kernel_timers keeps the same promises. */
static int kt_sleeper(void *arg)
{
    (void)arg;
    return urt_sleep(URT_SEC(30));
}

static int kernel_timers_main(void *arg)
{
    (void)arg;
    uint64_t t0 = urt_now();
    EXPECT_EQ(urt_sleep(URT_MSEC(20)), 0);
    EXPECT(urt_now() - t0 >= URT_MSEC(20));
    urt_deadline(urt_now() + URT_MSEC(10));
    EXPECT_EQ(urt_sleep(URT_SEC(5)), -ETIMEDOUT);
    urt_deadline(0);
    urt_task *t = urt_spawn(kt_sleeper, NULL);
    urt_yield();
    urt_cancel(t);
    EXPECT_EQ(urt_join(t), -ECANCELED);
    return 0;
}

UT_TEST(kernel_timers_mode_keeps_the_promises)
{
    struct urt_config c = { .kernel_timers = 1 };
    EXPECT_EQ(urt_run(kernel_timers_main, NULL, &c), 0);
    struct urt_stats st;
    urt_stats(&st);
    EXPECT_EQ(st.ops_inflight, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hundred_thousand_live_tasks_default_stacks),
        cmocka_unit_test(hundred_thousand_live_tasks_compact_stacks),
        cmocka_unit_test(million_spawn_join_cycles_reuse_stacks),
        cmocka_unit_test(compact_stack_overflow_is_named),
        cmocka_unit_test(large_stack_overflow_is_named),
        cmocka_unit_test(tasks_within_their_stacks_are_never_reported),
        cmocka_unit_test(cancel_one_sleeper_among_many),
        cmocka_unit_test(kernel_timers_mode_keeps_the_promises),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
