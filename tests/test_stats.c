/*
 * test_stats.c - what urt_stats counts, and the invariants it lets us measure: no completion
 * lost, submission batched, stacks reused, nothing left behind by urt_run.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "urt_test.h"

/* A fresh thread that never ran a runtime sees zeros, and NULL is ignored. */
static void *stats_in_fresh_thread(void *arg)
{
    urt_stats(arg);
    urt_stats(NULL);
    return NULL;
}

UT_TEST(stats_zero_before_any_runtime)
{
    struct urt_stats st;
    memset(&st, 0x55, sizeof st);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stats_in_fresh_thread, &st), 0);
    pthread_join(th, NULL);
    struct urt_stats zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&st, &zero, sizeof st);
}

/* ---- no completion lost: every SQE's completion is reaped, nothing in flight at the end ------ */

#define IO_TASKS 300

struct io_counts {
    int zero_fd, null_fd;
    long ok;
    struct urt_stats inside;
    unsigned ring_flags;
};

static int io_worker(void *arg)
{
    struct io_counts *c = arg;
    char buf[64];
    int p[2];
    if (pipe(p))
        return -1;
    int good = urt_read(c->zero_fd, buf, sizeof buf, -1) == sizeof buf &&
               urt_write(c->null_fd, buf, sizeof buf, -1) == sizeof buf &&
               urt_write(p[1], "ab", 2, -1) == 2 && urt_read(p[0], buf, 2, -1) == 2 &&
               urt_close(p[0]) == 0 && urt_close(p[1]) == 0;
    if (good)
        c->ok++;
    return 0;
}

static int io_counts_main(void *arg)
{
    struct io_counts *c = arg;
    c->ring_flags = urt_ring_flags();
    c->zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    c->null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    urt_task *t[IO_TASKS];
    for (int i = 0; i < IO_TASKS; i++)
        t[i] = urt_spawn(io_worker, c);
    for (int i = 0; i < IO_TASKS; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    close(c->zero_fd);
    close(c->null_fd);
    urt_stats(&c->inside);
    return 0;
}

UT_TEST(no_completion_lost)
{
    struct io_counts c;
    memset(&c, 0, sizeof c);
    assert_int_equal(urt_run(io_counts_main, &c, NULL), 0);
    assert_int_equal(c.ok, IO_TASKS);
    /* the ring's setup flags are one of the documented kinds (some flag at least on Linux 6) */
    assert_int_not_equal(c.ring_flags, 0);
    assert_int_equal(urt_ring_flags(), 0);   /* outside a runtime */

    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(st.tasks_spawned, IO_TASKS + 1);
    /* per task: read, write, write, read, and two closes (each close: cancel, shutdown, close
       in the current design; at least the close itself) */
    assert_true(st.sqes_submitted >= 6u * IO_TASKS);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted);
    assert_true(st.enter_calls > 0);
    assert_true(st.switches >= 2u * IO_TASKS);
    assert_int_equal(st.timers_armed, 0);
    /* the counters seen from inside match the final ones where nothing happened in between */
    assert_true(c.inside.tasks_spawned == st.tasks_spawned);
    assert_true(c.inside.tasks_live == 1);
    assert_true(c.inside.sqes_submitted <= st.sqes_submitted);
}

/* Counters seen while tasks are alive: tasks_live, timers_armed, cancels. */
struct live_counts {
    uint64_t live_before, live_during, live_after;
    uint64_t timers_during, timers_after;
    uint64_t cancels_before, cancels_after;
    uint64_t spawned_before, spawned_after;
};

static int nap(void *arg)
{
    (void)arg;
    urt_sleep(URT_SEC(10));
    return 0;
}

static int blocked_reader(void *arg)
{
    int fd = *(int *)arg;
    char c;
    return urt_read(fd, &c, 1, -1) == -ECANCELED ? 0 : -1;
}

static int live_main(void *arg)
{
    struct live_counts *l = arg;
    struct urt_stats st;
    urt_stats(&st);
    l->live_before = st.tasks_live;
    l->spawned_before = st.tasks_spawned;
    urt_task *t[10];
    for (int i = 0; i < 10; i++)
        t[i] = urt_spawn(nap, NULL);
    urt_yield();
    urt_stats(&st);
    l->live_during = st.tasks_live;
    l->timers_during = st.timers_armed;
    for (int i = 0; i < 10; i++)
        urt_cancel(t[i]);
    for (int i = 0; i < 10; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    urt_stats(&st);
    l->live_after = st.tasks_live;
    l->timers_after = st.timers_armed;
    l->spawned_after = st.tasks_spawned;

    int p[2];
    if (pipe(p))
        return -1;
    urt_stats(&st);
    l->cancels_before = st.cancels;
    urt_task *r = urt_spawn(blocked_reader, &p[0]);
    urt_sleep(URT_MSEC(2));
    urt_cancel(r);
    EXPECT_EQ(urt_join(r), 0);
    urt_stats(&st);
    l->cancels_after = st.cancels;
    close(p[0]);
    close(p[1]);
    return 0;
}

UT_TEST(live_counters)
{
    struct live_counts l;
    memset(&l, 0, sizeof l);
    assert_int_equal(urt_run(live_main, &l, NULL), 0);
    assert_int_equal(l.live_before, 1);
    assert_int_equal(l.spawned_before, 1);
    assert_int_equal(l.live_during, 11);
    assert_int_equal(l.timers_during, 10);
    assert_int_equal(l.live_after, 1);
    assert_int_equal(l.timers_after, 0);
    assert_int_equal(l.spawned_after, 11);
    assert_true(l.cancels_after > l.cancels_before);
}

/* ---- batching ---------------------------------------------------------------------------- */

#define SLEEPERS 2000

/* A gap between two sleepers' starts of 100 us, and 20 times the median one, is the test being
   preempted (or interrupted), not the first runs, which take about a microsecond each (several
   under ASan). */
#define PREEMPTION_GAP URT_USEC(100)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct batch {
    uint64_t enters_sleep, enters_sleep_until, sqes_sleep;
    uint64_t enters_io, sqes_io;
    uint64_t start[SLEEPERS];
    int nstart, start_gaps;
    long bad;
};

static struct batch *batch_log;

/* Sleeps 50 ms from when it starts; the start is logged. */
static int sleep_50ms(void *arg)
{
    (void)arg;
    batch_log->start[batch_log->nstart++] = urt_now();
    return urt_sleep(URT_MSEC(50));
}

static int sleep_until_arg(void *arg)
{
    return urt_sleep_until(*(uint64_t *)arg);
}

struct io_arg {
    int fd;
};

static int one_write(void *arg)
{
    struct io_arg *a = arg;
    char buf[16] = { 0 };
    return urt_write(a->fd, buf, sizeof buf, -1) == sizeof buf ? 0 : -1;
}

static int batch_main(void *arg)
{
    struct batch *b = arg;
    static urt_task *t[SLEEPERS];
    struct urt_stats s0, s1;

    /* 2000 tasks each sleeping 50 ms from when it starts. Their wake-ups are as spread out as
       their starts: where the test was preempted while starting them, the wake-ups have a gap
       too, and the scheduler rightly waits (one enter) for the sleepers after it. Those gaps are
       counted (the starts are in run order, which is spawn order). */
    batch_log = b;
    urt_stats(&s0);
    for (int i = 0; i < SLEEPERS; i++)
        t[i] = urt_spawn(sleep_50ms, NULL);
    for (int i = 0; i < SLEEPERS; i++)
        if (urt_join(t[i]) != 0)
            b->bad++;
    urt_stats(&s1);
    b->enters_sleep = s1.enter_calls - s0.enter_calls;
    b->sqes_sleep = s1.sqes_submitted - s0.sqes_submitted;
    static uint64_t gaps[SLEEPERS];
    for (int i = 1; i < b->nstart; i++)
        gaps[i - 1] = b->start[i] - b->start[i - 1];
    if (b->nstart > 1) {
        qsort(gaps, (size_t)b->nstart - 1, sizeof gaps[0], cmp_u64);
        uint64_t min_gap = 20 * gaps[(b->nstart - 1) / 2];
        if (min_gap < PREEMPTION_GAP)
            min_gap = PREEMPTION_GAP;
        for (int i = 1; i < b->nstart; i++)
            b->start_gaps += b->start[i] - b->start[i - 1] > min_gap;
    }

    /* the same, all to one instant */
    uint64_t at = urt_now() + URT_MSEC(50);
    urt_stats(&s0);
    for (int i = 0; i < SLEEPERS; i++)
        t[i] = urt_spawn(sleep_until_arg, &at);
    for (int i = 0; i < SLEEPERS; i++)
        if (urt_join(t[i]) != 0)
            b->bad++;
    urt_stats(&s1);
    b->enters_sleep_until = s1.enter_calls - s0.enter_calls;

    /* 2000 writes queued in one round */
    struct io_arg a = { open("/dev/null", O_WRONLY | O_CLOEXEC) };
    urt_stats(&s0);
    for (int i = 0; i < SLEEPERS; i++)
        t[i] = urt_spawn(one_write, &a);
    for (int i = 0; i < SLEEPERS; i++)
        if (urt_join(t[i]) != 0)
            b->bad++;
    urt_stats(&s1);
    b->enters_io = s1.enter_calls - s0.enter_calls;
    b->sqes_io = s1.sqes_submitted - s0.sqes_submitted;
    close(a.fd);
    return 0;
}

UT_TEST(batching_enters_per_operation)
{
    struct batch b;
    memset(&b, 0, sizeof b);
    assert_int_equal(urt_run(batch_main, &b, NULL), 0);
    UT_NOTE("  2000 sleeps: %llu enters (%d preemption gaps in their starts; %llu with one "
            "common wake-up time, %llu SQEs); 2000 writes: %llu enters for %llu SQEs\n",
           (unsigned long long)b.enters_sleep, b.start_gaps, (unsigned long long)b.enters_sleep_until,
           (unsigned long long)b.sqes_sleep, (unsigned long long)b.enters_io,
           (unsigned long long)b.sqes_io);
    assert_int_equal(b.bad, 0);
    assert_int_equal(b.nstart, SLEEPERS);
    /* a sleep costs no SQE */
    assert_int_equal(b.sqes_sleep, 0);
    /* at most one io_uring_enter per 100 sleeps, plus one per gap the test's preemption made in
       their wake-up times (none on an idle machine; one enter a sleep would be 2000) */
    assert_true(b.enters_sleep <= SLEEPERS / 100 + (uint64_t)b.start_gaps);
    assert_true(b.enters_sleep_until <= SLEEPERS / 100);
    /* writes go in batches: the default 256-entry ring takes ~250 a time */
    assert_int_equal(b.sqes_io, SLEEPERS);
    assert_true(b.enters_io <= SLEEPERS / 100);
}

/* ---- stacks -------------------------------------------------------------------------------- */

struct stack_counts {
    uint64_t mapped_seq, pooled_seq, spawned;
    long bad;
};

static int trivial(void *arg)
{
    return (int)(intptr_t)arg;
}

static int stacks_seq_main(void *arg)
{
    struct stack_counts *s = arg;
    for (int i = 0; i < 10000; i++) {
        urt_task *t = urt_spawn(trivial, (void *)(intptr_t)(i & 0xff));
        if (!t || urt_join(t) != (i & 0xff))
            s->bad++;
    }
    struct urt_stats st;
    urt_stats(&st);
    s->mapped_seq = st.stacks_mapped;
    s->pooled_seq = st.stacks_pooled;
    s->spawned = st.tasks_spawned;
    return 0;
}

UT_TEST(stacks_reused_sequential_spawn_join)
{
    struct stack_counts s;
    memset(&s, 0, sizeof s);
    assert_int_equal(urt_run(stacks_seq_main, &s, NULL), 0);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.spawned, 10001);
    /* one stack reused for every task: never more than main's and the first batch carved
       (stacks come ready in batches of at least 16) */
    assert_true(s.mapped_seq <= 1 + 16);
    assert_true(s.pooled_seq >= 1);
}

/* Beyond stack_pool_max, freed stacks give their pages back. The address of a frame of each
   task tells which page to ask mincore() about. */
#define POOL_TASKS 600

struct pool_arg {
    void *frame;
    volatile int *release;
};

static int touch_and_wait(void *arg)
{
    struct pool_arg *a = arg;
    volatile char big[40 * 1024];
    for (size_t i = 0; i < sizeof big; i += 1024)
        big[i] = 1;
    a->frame = (void *)&big[1024];
    while (!*a->release)
        urt_yield();
    return big[0];
}

struct pool_res {
    struct pool_arg args[POOL_TASKS];
    int resident_before, resident_after;
    uint64_t pooled;
};

static int page_resident(void *addr)
{
    unsigned char vec = 0;
    void *page = (void *)((uintptr_t)addr & ~(uintptr_t)4095);
    if (mincore(page, 4096, &vec))
        return -1;
    return vec & 1;
}

static int pool_main(void *arg)
{
    struct pool_res *r = arg;
    volatile int release = 0;
    urt_task *t[POOL_TASKS];
    for (int i = 0; i < POOL_TASKS; i++) {
        r->args[i].release = &release;
        t[i] = urt_spawn(touch_and_wait, &r->args[i]);
    }
    urt_yield();
    for (int i = 0; i < POOL_TASKS; i++)
        r->resident_before += page_resident(r->args[i].frame) == 1;
    release = 1;
    for (int i = 0; i < POOL_TASKS; i++)
        EXPECT_EQ(urt_join(t[i]), 1);
    /* let a batched give-back happen, if the runtime batches it */
    urt_sleep(URT_MSEC(1));
    for (int i = 0; i < POOL_TASKS; i++)
        r->resident_after += page_resident(r->args[i].frame) == 1;
    struct urt_stats st;
    urt_stats(&st);
    r->pooled = st.stacks_pooled;
    return 0;
}

UT_TEST(stack_pool_max_gives_pages_back)
{
    static struct pool_res r;
    memset(&r, 0, sizeof r);
    struct urt_config cfg = { .stack_size = 64 * 1024, .stack_pool_max = 4 };
    assert_int_equal(urt_run(pool_main, &r, &cfg), 0);
    UT_NOTE("  stack pages resident: %d of %d while running, %d after (pool max 4)\n",
           r.resident_before, POOL_TASKS, r.resident_after);
    assert_int_equal(r.resident_before, POOL_TASKS);
    assert_true(r.pooled >= 4);
    assert_true(r.resident_after <= 4 + 1);
}

/* ---- urt_run leaves nothing behind: fds, memory (LSan), mappings ---------------------------- */

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, ch;
    while (f && (ch = fgetc(f)) != EOF)
        n += ch == '\n';
    if (f)
        fclose(f);
    return n;
}

static int busy_main(void *arg)
{
    (void)arg;
    urt_group *g = urt_group_new();
    for (int i = 0; i < 200; i++)
        urt_group_spawn(g, nap, NULL);
    int p[2];
    if (pipe(p))
        return -1;
    urt_task *r = urt_spawn(blocked_reader, &p[0]);
    urt_detach(r);
    urt_chan *c = urt_chan_new(8, 8);
    uint64_t v = 1;
    urt_chan_send(c, &v);
    urt_sleep(URT_MSEC(2));
    urt_group_cancel(g);
    urt_group_wait(g);
    urt_group_free(g);
    urt_chan_free(c);
    close(p[1]);
    urt_sleep(URT_MSEC(2));
    close(p[0]);
    return 0;
}

UT_TEST(run_leaves_nothing_behind)
{
    /* warm up libc/liburing once, then compare */
    assert_int_equal(urt_run(busy_main, NULL, NULL), 0);
    int fds = ut_count_fds();
    int maps = count_maps();
    for (int i = 0; i < 5; i++)
        assert_int_equal(urt_run(busy_main, NULL, NULL), 0);
    assert_int_equal(ut_count_fds(), fds);
    /* no mapping accumulates from run to run (a little slack for libc's own) */
    assert_true(count_maps() <= maps + 2);
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.tasks_live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stats_zero_before_any_runtime),
        cmocka_unit_test(no_completion_lost),
        cmocka_unit_test(live_counters),
        cmocka_unit_test(batching_enters_per_operation),
        cmocka_unit_test(stacks_reused_sequential_spawn_join),
        cmocka_unit_test(stack_pool_max_gives_pages_back),
        cmocka_unit_test(run_leaves_nothing_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
