/*
 * test_timer.c - urt_now, urt_sleep, urt_sleep_until and deadlines. Timing is checked only
 * loosely (a sleep lasts at least its time and ends within seconds): the machine is noisy.
 */
#include "urt_test.h"

UT_TEST(now_is_monotonic_anywhere)
{
    uint64_t a = urt_now();
    uint64_t b = urt_now();
    assert_true(a > 0);
    assert_true(b >= a);
    usleep(2000);
    assert_true(urt_now() - a >= URT_MSEC(1));
    assert_int_equal(URT_USEC(3), 3000);
    assert_int_equal(URT_MSEC(3), 3000000);
    assert_int_equal(URT_SEC(3), 3000000000ull);
}

/* The coarse clock never runs ahead of urt_now() and trails it by a few ticks at most (the bound
   here is loose: a preempted test may see more than a tick). */
UT_TEST(now_coarse_trails_now)
{
    for (int i = 0; i < 100000; i++) {
        uint64_t before = urt_now();
        uint64_t coarse = urt_now_coarse();
        uint64_t after = urt_now();
        if (coarse > after)
            fail_msg("urt_now_coarse %llu is ahead of urt_now %llu", (unsigned long long)coarse,
                     (unsigned long long)after);
        if (before > coarse + URT_MSEC(100))
            fail_msg("urt_now_coarse trails urt_now by %llu us",
                     (unsigned long long)(before - coarse) / 1000);
    }
}

/* Deadlines are checked by the coarse clock only when they are far: one passed a moment ago
   (microseconds, well within a tick) still fails the next call at once, before anything is
   submitted. */
struct fresh_deadline_res {
    long near_read, far_read, after_read;
    uint64_t submitted_near;
};

static int fresh_deadline_main(void *arg)
{
    struct fresh_deadline_res *r = arg;
    int p[2];
    if (pipe(p) != 0)
        return -1;
    if (write(p[1], "ab", 2) != 2)
        return -1;
    char c;
    struct urt_stats before, after;
    uint64_t dl = urt_now() + URT_USEC(200);
    urt_deadline(dl);
    while (urt_now() < dl) {
    }
    urt_stats(&before);
    r->near_read = urt_read(p[0], &c, 1, -1);   /* data is there: only the deadline stops it */
    urt_stats(&after);
    r->submitted_near = after.sqes_submitted - before.sqes_submitted;
    urt_deadline(urt_now() + URT_SEC(10));
    r->far_read = urt_read(p[0], &c, 1, -1);
    urt_deadline(0);
    r->after_read = urt_read(p[0], &c, 1, -1);
    close(p[0]);
    close(p[1]);
    return 0;
}

UT_TEST(deadline_passed_moments_ago)
{
    struct fresh_deadline_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(fresh_deadline_main, &r, NULL), 0);
    assert_int_equal(r.near_read, -ETIMEDOUT);
    assert_int_equal(r.submitted_near, 0);
    assert_int_equal(r.far_read, 1);     /* the first byte: the timed-out read took nothing */
    assert_int_equal(r.after_read, 1);
}

struct sleep_res {
    long r50, r_until, r_past, r_zero;
    uint64_t ns50, until_target, until_woke, past_ns;
};

static int sleep_main(void *arg)
{
    struct sleep_res *r = arg;
    uint64_t t0 = urt_now();
    r->r50 = urt_sleep(URT_MSEC(50));
    r->ns50 = urt_now() - t0;
    r->until_target = urt_now() + URT_MSEC(30);
    r->r_until = urt_sleep_until(r->until_target);
    r->until_woke = urt_now();
    t0 = urt_now();
    r->r_past = urt_sleep_until(t0 - URT_MSEC(1));
    r->past_ns = urt_now() - t0;
    r->r_zero = urt_sleep(0);
    return 0;
}

UT_TEST(sleep_lasts_at_least_its_time)
{
    struct sleep_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(sleep_main, &r, NULL), 0);
    assert_int_equal(r.r50, 0);
    assert_true(r.ns50 >= URT_MSEC(49));
    assert_true(r.ns50 < URT_SEC(5));
    assert_int_equal(r.r_until, 0);
    assert_true(r.until_woke >= r.until_target);
    assert_true(r.until_woke - r.until_target < URT_SEC(5));
    assert_int_equal(r.r_past, 0);
    assert_true(r.past_ns < URT_SEC(1));
    assert_int_equal(r.r_zero, 0);
    /* how late the timers fired: something, and not seconds */
    struct urt_stats st;
    urt_stats(&st);
    assert_true(st.timer_late_max_ns > 0);
    assert_true(st.timer_late_max_ns < URT_SEC(5));
}

/* urt_sleep(0) is a yield: the other ready tasks run before it returns. */
static int set_flag(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

struct zero_res {
    int flag_seen;
    int zero_res;
};

static int sleep_zero_main(void *arg)
{
    struct zero_res *r = arg;
    int flag = 0;
    urt_task *t = urt_spawn(set_flag, &flag);
    r->zero_res = urt_sleep(0);
    r->flag_seen = flag;
    EXPECT_EQ(urt_join(t), 0);
    return 0;
}

UT_TEST(sleep_zero_yields)
{
    struct zero_res r = { 0, 1 };
    assert_int_equal(urt_run(sleep_zero_main, &r, NULL), 0);
    assert_int_equal(r.zero_res, 0);
    assert_int_equal(r.flag_seen, 1);
}

/* Sleepers wake in the order of their wake-up times, whatever the order they went to sleep.
   The order can only be asked of sleepers that were all armed before the first wake-up time: the
   main task waits (yielding) until every sleeper has armed, then reads the clock. On a machine
   slow enough (Valgrind, load) that the earliest target had already passed by then, the attempt
   proves nothing about the order: it is run again with a head start four times what the arming
   took (a few attempts; the clock is read, never assumed). */
#define NSLEEPERS 200
#define WAKE_ORDER_ATTEMPTS 6

struct wake_log {
    uint64_t target[NSLEEPERS];
    int order[NSLEEPERS];
    int n, armed;
    int early, bad;
    int attempts, conclusive;
    uint64_t head_start, arming_ns;
};

struct sleeper_arg {
    struct wake_log *log;
    int i;
};

static int timed_sleeper(void *arg)
{
    struct sleeper_arg *a = arg;
    a->log->armed++;   /* no other task runs before the sleep below has armed its timer */
    int r = urt_sleep_until(a->log->target[a->i]);
    if (r != 0)
        a->log->bad++;
    if (urt_now() < a->log->target[a->i])
        a->log->early++;
    a->log->order[a->log->n++] = a->i;
    return 0;
}

static int wake_order_main(void *arg)
{
    struct wake_log *log = arg;
    static struct sleeper_arg args[NSLEEPERS];
    urt_task *t[NSLEEPERS];
    uint64_t head_start = URT_MSEC(20);
    for (int attempt = 1; attempt <= WAKE_ORDER_ATTEMPTS; attempt++) {
        log->n = log->armed = 0;
        log->attempts = attempt;
        log->head_start = head_start;
        uint64_t t0 = urt_now();
        uint64_t base = t0 + head_start;
        for (int i = 0; i < NSLEEPERS; i++) {
            /* distinct targets 100 us apart, in a shuffled order */
            log->target[i] = base + (uint64_t)((i * 7919) % NSLEEPERS) * URT_USEC(100);
            args[i] = (struct sleeper_arg){ log, i };
            t[i] = urt_spawn(timed_sleeper, &args[i]);
        }
        while (log->armed < NSLEEPERS && log->n == 0)
            urt_yield();
        uint64_t all_armed = urt_now();
        log->arming_ns = all_armed - t0;
        log->conclusive = log->armed == NSLEEPERS && log->n == 0 && all_armed < base;
        for (int i = 0; i < NSLEEPERS; i++)
            EXPECT_EQ(urt_join(t[i]), 0);
        if (log->conclusive)
            break;
        head_start = 4 * log->arming_ns > 2 * head_start ? 4 * log->arming_ns : 2 * head_start;
    }
    return 0;
}

UT_TEST(sleepers_wake_in_deadline_order)
{
    static struct wake_log log;
    memset(&log, 0, sizeof log);
    assert_int_equal(urt_run(wake_order_main, &log, NULL), 0);
    if (log.attempts > 1)
        UT_NOTE("  %d attempts: the last with a head start of %llu ms (arming took %llu ms)\n",
                log.attempts, (unsigned long long)log.head_start / 1000000,
                (unsigned long long)log.arming_ns / 1000000);
    assert_int_equal(log.n, NSLEEPERS);
    assert_int_equal(log.bad, 0);
    assert_int_equal(log.early, 0);
    if (!log.conclusive)
        fail_msg("no attempt armed all %d sleepers before the first target (the last took "
                 "%llu ms against a head start of %llu ms)", NSLEEPERS,
                 (unsigned long long)log.arming_ns / 1000000,
                 (unsigned long long)log.head_start / 1000000);
    for (int k = 1; k < NSLEEPERS; k++)
        if (log.target[log.order[k]] < log.target[log.order[k - 1]])
            fail_msg("wake #%d (target +%llu us) came after a later target (+%llu us)", k,
                     (unsigned long long)(log.target[log.order[k]] - log.target[0]) / 1000,
                     (unsigned long long)(log.target[log.order[k - 1]] - log.target[0]) / 1000);
}

/* urt_deadline returns the previous deadline; each task has its own, starting at 0. */
struct dl_res {
    uint64_t first, second, third, after_zero, child_initial, set_val;
};

static int child_deadline(void *arg)
{
    *(uint64_t *)arg = urt_deadline(0);
    return 0;
}

static int deadline_prev_main(void *arg)
{
    struct dl_res *r = arg;
    r->set_val = urt_now() + URT_SEC(100);
    r->first = urt_deadline(r->set_val);
    r->second = urt_deadline(r->set_val + 1);
    urt_task *t = urt_spawn(child_deadline, &r->child_initial);
    EXPECT_EQ(urt_join(t), 0);
    r->third = urt_deadline(0);
    r->after_zero = urt_deadline(0);
    return 0;
}

UT_TEST(deadline_returns_previous)
{
    struct dl_res r;
    memset(&r, 0xff, sizeof r);
    assert_int_equal(urt_run(deadline_prev_main, &r, NULL), 0);
    assert_int_equal(r.first, 0);
    assert_int_equal(r.second, r.set_val);
    assert_int_equal(r.third, r.set_val + 1);
    assert_int_equal(r.after_zero, 0);
    assert_int_equal(r.child_initial, 0);
    assert_int_equal(urt_deadline(123), 0);   /* outside a task */
}

/* A sleep longer than the deadline ends at the deadline with -ETIMEDOUT; a shorter one is not
   disturbed; once the deadline has passed every blocking call fails until it is removed. (The
   short sleep ends 5 ms after a clock read, well before the 30 ms deadline - unless the test was
   preempted for 25 ms in between: which answer is right is judged by its actual end.) */
struct sleep_dl {
    long long_sleep, short_sleep, after_yield, after_sleep, removed_sleep, until_res;
    uint64_t long_ns, dl, short_start;
};

static int sleep_deadline_main(void *arg)
{
    struct sleep_dl *r = arg;
    uint64_t t0 = urt_now();
    r->dl = t0 + URT_MSEC(30);
    urt_deadline(r->dl);
    r->short_start = urt_now();
    r->short_sleep = urt_sleep_until(r->short_start + URT_MSEC(5));
    r->long_sleep = urt_sleep(URT_SEC(10));
    r->long_ns = urt_now() - t0;
    r->after_yield = urt_yield();
    r->after_sleep = urt_sleep(URT_MSEC(1));
    urt_deadline(0);
    r->removed_sleep = urt_sleep(URT_MSEC(1));
    urt_deadline(urt_now() + URT_MSEC(5));
    r->until_res = urt_sleep_until(urt_now() + URT_SEC(10));
    urt_deadline(0);
    return 0;
}

UT_TEST(sleep_versus_deadline)
{
    struct sleep_dl r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(sleep_deadline_main, &r, NULL), 0);
    if (r.short_start + URT_MSEC(5) < r.dl)
        assert_int_equal(r.short_sleep, 0);
    else
        assert_true(r.short_sleep == 0 || r.short_sleep == -ETIMEDOUT);
    assert_int_equal(r.long_sleep, -ETIMEDOUT);
    assert_true(r.long_ns >= URT_MSEC(29));
    assert_true(r.long_ns < URT_SEC(5));
    assert_int_equal(r.after_yield, -ETIMEDOUT);
    assert_int_equal(r.after_sleep, -ETIMEDOUT);
    assert_int_equal(r.removed_sleep, 0);
    assert_int_equal(r.until_res, -ETIMEDOUT);
}

/* Cancelling a sleeper wakes it at once with -ECANCELED, even from an endless sleep. */
struct cancel_sleep {
    long res[3];
    uint64_t woke_after;
};

static int long_sleeper(void *arg)
{
    long *res = arg;
    *res = urt_sleep(UINT64_MAX);   /* forever: the wake-up time must not overflow */
    return 0;
}

static int until_sleeper(void *arg)
{
    long *res = arg;
    *res = urt_sleep_until(urt_now() + URT_SEC(60));
    return 0;
}

static int deadline_sleeper(void *arg)
{
    long *res = arg;
    urt_deadline(urt_now() + URT_SEC(50));
    *res = urt_sleep(URT_SEC(60));
    return 0;
}

static int cancel_sleep_main(void *arg)
{
    struct cancel_sleep *c = arg;
    urt_task *t[3];
    t[0] = urt_spawn(long_sleeper, &c->res[0]);
    t[1] = urt_spawn(until_sleeper, &c->res[1]);
    t[2] = urt_spawn(deadline_sleeper, &c->res[2]);
    urt_sleep(URT_MSEC(10));
    uint64_t t0 = urt_now();
    for (int i = 0; i < 3; i++)
        urt_cancel(t[i]);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    c->woke_after = urt_now() - t0;
    return 0;
}

UT_TEST(cancel_sleeper)
{
    struct cancel_sleep c;
    memset(&c, 0, sizeof c);
    assert_int_equal(urt_run(cancel_sleep_main, &c, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.res[i], -ECANCELED);
    assert_true(c.woke_after < URT_SEC(5));
}

/* Many tasks with random sleeps and deadlines: each sleep ends the way its times say. */
#define NRANDOM 1000

struct rnd {
    uint64_t sleep_ns[NRANDOM], dl_ns[NRANDOM];
    long res[NRANDOM];
    uint64_t start[NRANDOM], end[NRANDOM];
};

struct rnd_arg {
    struct rnd *r;
    int i;
};

static int random_sleeper(void *arg)
{
    struct rnd_arg *a = arg;
    struct rnd *r = a->r;
    int i = a->i;
    r->start[i] = urt_now();
    if (r->dl_ns[i])
        urt_deadline(r->start[i] + r->dl_ns[i]);
    r->res[i] = urt_sleep(r->sleep_ns[i]);
    r->end[i] = urt_now();
    return 0;
}

static int random_main(void *arg)
{
    struct rnd *r = arg;
    static struct rnd_arg args[NRANDOM];
    urt_task *t[NRANDOM];
    for (int i = 0; i < NRANDOM; i++) {
        r->sleep_ns[i] = URT_USEC(500) + (ut_rand() % 40) * URT_MSEC(1);
        /* a third without deadline; the others well before or well after the sleep's end */
        uint32_t k = ut_rand() % 3;
        r->dl_ns[i] = k == 0 ? 0 : k == 1 ? r->sleep_ns[i] / 2 : r->sleep_ns[i] + URT_SEC(5);
        args[i] = (struct rnd_arg){ r, i };
        t[i] = urt_spawn(random_sleeper, &args[i]);
    }
    for (int i = 0; i < NRANDOM; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    return 0;
}

UT_TEST(random_sleeps_and_deadlines)
{
    static struct rnd r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(random_main, &r, NULL), 0);
    for (int i = 0; i < NRANDOM; i++) {
        uint64_t took = r.end[i] - r.start[i];
        int times_out = r.dl_ns[i] && r.dl_ns[i] < r.sleep_ns[i];
        long want = times_out ? -ETIMEDOUT : 0;
        uint64_t min = times_out ? r.dl_ns[i] : r.sleep_ns[i];
        if (r.res[i] != want || took < min || took > URT_SEC(10))
            fail_msg("task %d: sleep %llu us, deadline %llu us: returned %ld after %llu us", i,
                     (unsigned long long)r.sleep_ns[i] / 1000,
                     (unsigned long long)r.dl_ns[i] / 1000, r.res[i],
                     (unsigned long long)took / 1000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(now_is_monotonic_anywhere),
        cmocka_unit_test(now_coarse_trails_now),
        cmocka_unit_test(deadline_passed_moments_ago),
        cmocka_unit_test(sleep_lasts_at_least_its_time),
        cmocka_unit_test(sleep_zero_yields),
        cmocka_unit_test(sleepers_wake_in_deadline_order),
        cmocka_unit_test(deadline_returns_previous),
        cmocka_unit_test(sleep_versus_deadline),
        cmocka_unit_test(cancel_sleeper),
        cmocka_unit_test(random_sleeps_and_deadlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
