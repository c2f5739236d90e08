/*
 * test_stacks.c - how new stacks are made ready, in each of the ways the pool has
 * (runtime/switch/stack.c), forced one at a time through URT_STACK_PREPARE:
 *   batch     process_madvise: one call installs a batch's guards, one populates its first pages
 *   ranges    one madvise per stack (a kernel that refuses process_madvise)
 *   touch     guards by madvise, first pages made present by writing to them (no
 *             MADV_POPULATE_WRITE)
 *   mprotect  guards by mprotect, pages by writing (a kernel before 6.13)
 * In each: 100,000 live tasks keep the mapping count flat, an overflow still hits a guard page
 * and is named, the memory of ended tasks goes back down to the pool's, and every mapping is
 * gone when the runtime ends.
 */
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define NLIVE 100000

struct live {
    long maps_1k, maps_all, rss_before, rss_all, rss_after;
    int  started, woke, wait_status;
    uint64_t pooled;
};

static struct live L;

static int sleeper(void *arg)
{
    (void)arg;
    L.started++;
    if (urt_sleep(URT_SEC(3600)) == -ECANCELED)   /* until the group is cancelled */
        L.woke++;
    return 0;
}

static int live_main(void *arg)
{
    (void)arg;
    urt_group *g = urt_group_new();
    EXPECT(g != NULL);
    L.rss_before = ut_rss_kib();
    for (int i = 0; i < NLIVE; i++) {
        EXPECT_EQ(urt_group_spawn(g, sleeper, NULL), 0);
        if (i == 999) {
            urt_yield();
            L.maps_1k = ut_count_maps();
        }
    }
    while (L.started < NLIVE)
        urt_yield();
    L.maps_all = ut_count_maps();
    L.rss_all = ut_rss_kib();
    urt_group_cancel(g);
    L.wait_status = urt_group_wait(g);
    urt_group_free(g);
    /* Ended tasks' stacks beyond the pool's warm limit have their pages given back at the
       scheduler's next rounds: yield until they have. */
    for (int i = 0; i < 64; i++)
        urt_yield();
    struct urt_stats st;
    urt_stats(&st);
    L.pooled = st.stacks_pooled;
    L.rss_after = ut_rss_kib();
    return 0;
}

static void live_in(const char *mode)
{
    EXPECT_EQ(setenv("URT_STACK_PREPARE", mode, 1), 0);
    memset(&L, 0, sizeof L);
    long maps_before = ut_count_maps();
    struct urt_config cfg = { .stack_pool_max = 1024 };
    EXPECT_EQ(urt_run(live_main, NULL, &cfg), 0);
    long maps_end = ut_count_maps();
    UT_NOTE("  %s: mappings %ld at 1,000 live tasks, %ld at 100,000, %ld before and %ld after "
            "the runtime; RSS %ld KiB before, %ld with 100,000 alive, %ld after they ended\n",
            mode, L.maps_1k, L.maps_all, maps_before, maps_end, L.rss_before, L.rss_all,
            L.rss_after);
    EXPECT_EQ(L.woke, NLIVE);
    EXPECT_EQ(L.wait_status, 0);
    /* Arenas of 32 MiB, merged where the kernel can: never a mapping per stack. Guards by
       mprotect split them, two mappings a guard, up to the pool's budget of 12,000 guards
       (well under the default vm.max_map_count of 65,530); stacks past it rely on their
       canary. */
    bool mprotect = strcmp(mode, "mprotect") == 0;
    EXPECT(L.maps_all - L.maps_1k < 250 + (mprotect ? 2 * 12000 : 0));
    if (!SANITIZED) {
        /* (ASan's allocator keeps mappings of its own: counted only without it) */
        EXPECT(maps_end - maps_before < 8);   /* every arena unmapped */
        /* Each live task holds at least its top page; once they end, what stays is the pool's
           warm stacks (1,024 here) and at most one batch carved ahead (1,024): 8 MiB, plus the
           rest of the process's small change. */
        EXPECT(L.rss_all - L.rss_before >= NLIVE * 4L);
        /* A guarded stack costs its top page; an unguarded one also the page of its canary. */
        EXPECT(L.rss_all - L.rss_before <= NLIVE * (mprotect ? 8L : 4L) + 16384);
        EXPECT(L.rss_after - L.rss_before <= 2048L * 4 + 4096);
    }
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int overflow_main(void *arg)
{
    (void)arg;
    /* Tasks alive at once first, so the runaway's stack comes from the second batch carved. */
    urt_task *t40[40];
    for (int i = 0; i < 40; i++)
        t40[i] = urt_spawn(nothing, NULL);
    for (int i = 0; i < 40; i++)
        urt_join(t40[i]);
    struct urt_spawn_opts o = { .name = "runaway" };
    urt_task *t = urt_spawn_ex(ut_runaway_task, NULL, &o);
    urt_join(t);
    return 0;
}

static void overflow_in(const char *mode)
{
    if (SANITIZED)
        return;   /* ASan reports the fault itself */
    EXPECT_EQ(setenv("URT_STACK_PREPARE", mode, 1), 0);
    char text[4096];
    int status = ut_run_crashing(overflow_main, NULL, NULL, text, sizeof text);
    UT_NOTE("  %s: %s", mode, text);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    EXPECT(strstr(text, "'runaway'") != NULL);
    EXPECT(strstr(text, "in its guard page") != NULL);
}

#define MODE_TESTS(mode)                                                             \
    UT_TEST_T(mode##_hundred_thousand_live_tasks, 120) { live_in(#mode); }           \
    UT_TEST(mode##_overflow_hits_a_guard) { overflow_in(#mode); }

MODE_TESTS(batch)
MODE_TESTS(ranges)
MODE_TESTS(touch)
MODE_TESTS(mprotect)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_hundred_thousand_live_tasks),
        cmocka_unit_test(batch_overflow_hits_a_guard),
        cmocka_unit_test(ranges_hundred_thousand_live_tasks),
        cmocka_unit_test(ranges_overflow_hits_a_guard),
        cmocka_unit_test(touch_hundred_thousand_live_tasks),
        cmocka_unit_test(touch_overflow_hits_a_guard),
        cmocka_unit_test(mprotect_hundred_thousand_live_tasks),
        cmocka_unit_test(mprotect_overflow_hits_a_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
