/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c - urt_run_threads: one runtime per thread, their indexes and statuses, and work
 * crossing between them (urt_spawn_on). Waits are on eventfds written by the tasks themselves.
 */
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "urt_test.h"

/* ---- indexes, counts, statuses ---- */

struct who {
    atomic_int seen[8];
    atomic_int count_ok;
};

static int report(void *arg)
{
    struct who *w = arg;
    int i = urt_thread_index();
    if (i >= 0 && i < 8)
        atomic_fetch_add(&w->seen[i], 1);
    if (urt_thread_count() == 4)
        atomic_fetch_add(&w->count_ok, 1);
    return 0;
}

UT_TEST(each_thread_runs_its_own_runtime)
{
    struct who w;
    memset(&w, 0, sizeof w);
    assert_int_equal(urt_run_threads(4, report, &w, NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&w.seen[i]), 1);
    assert_int_equal(atomic_load(&w.count_ok), 4);
    assert_int_equal(urt_thread_index(), -EPERM);
    assert_int_equal(urt_thread_count(), -EPERM);
}

static int status_by_index(void *arg)
{
    (void)arg;
    int i = urt_thread_index();
    return i == 1 ? 7 : i == 2 ? 9 : 0;
}

UT_TEST(first_nonzero_status_in_thread_order)
{
    assert_int_equal(urt_run_threads(3, status_by_index, NULL, NULL), 7);
    struct urt_config nopin = { .no_pinning = 1 };
    assert_int_equal(urt_run_threads(1, status_by_index, NULL, &nopin), 0);
    assert_int_equal(urt_run_threads(-1, status_by_index, NULL, NULL), -EINVAL);
    assert_int_equal(urt_run_threads(2, NULL, NULL, NULL), -EINVAL);
}

static int nested(void *arg)
{
    (void)arg;
    return urt_run_threads(2, status_by_index, NULL, NULL);
}

UT_TEST(not_inside_a_runtime)
{
    assert_int_equal(urt_run(nested, NULL, NULL), -EBUSY);
}

static int count_is_one(void *arg)
{
    (void)arg;
    EXPECT_EQ(urt_thread_index(), 0);
    EXPECT_EQ(urt_thread_count(), 1);
    return 0;
}

UT_TEST(plain_run_is_a_set_of_one)
{
    assert_int_equal(urt_run(count_is_one, NULL, NULL), 0);
}

/* ---- urt_spawn_on ---- */

enum { RUNTIMES = 3, PER_TARGET = 1000 };

struct spawn_test {
    int        arrived;     /* eventfd: one per task that ran, counted by its runtime       */
    int        finish;      /* eventfd (semaphore): lets the other runtimes' first tasks end */
    atomic_int ran_on[RUNTIMES];
    int        bad_index, self_ok, null_fn;
};

static struct spawn_test *st_;

static int spawned(void *arg)
{
    int target = (int)(intptr_t)arg;
    if (urt_thread_index() == target)
        atomic_fetch_add(&st_->ran_on[target], 1);
    uint64_t one = 1;
    urt_write(st_->arrived, &one, sizeof one, -1);
    return 0;
}

static int spawn_main(void *arg)
{
    struct spawn_test *s = arg;
    if (urt_thread_index() != 0) {
        uint64_t v;   /* wait until runtime 0 has seen everything arrive */
        urt_read(s->finish, &v, sizeof v, -1);
        return 0;
    }
    s->bad_index = urt_spawn_on(RUNTIMES, spawned, NULL);
    s->null_fn = urt_spawn_on(1, NULL, NULL);
    for (int k = 0; k < PER_TARGET; k++)
        for (int i = 0; i < RUNTIMES; i++)
            EXPECT_EQ(urt_spawn_on(i, spawned, (void *)(intptr_t)i), 0);
    uint64_t total = 0;
    while (total < (uint64_t)RUNTIMES * PER_TARGET) {
        uint64_t v = 0;
        if (urt_read(s->arrived, &v, sizeof v, -1) != sizeof v)
            break;
        total += v;
    }
    EXPECT_EQ(total, RUNTIMES * PER_TARGET);
    uint64_t others = RUNTIMES - 1;
    EXPECT_EQ(urt_write(s->finish, &others, sizeof others, -1), sizeof others);
    return 0;
}

UT_TEST(spawn_on_every_runtime)
{
    struct spawn_test s;
    memset(&s, 0, sizeof s);
    st_ = &s;
    s.arrived = eventfd(0, EFD_CLOEXEC);
    s.finish = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
    assert_int_equal(urt_run_threads(RUNTIMES, spawn_main, &s, NULL), 0);
    close(s.arrived);
    close(s.finish);
    assert_int_equal(s.bad_index, -EINVAL);
    assert_int_equal(s.null_fn, -EINVAL);
    for (int i = 0; i < RUNTIMES; i++)
        assert_int_equal(atomic_load(&s.ran_on[i]), PER_TARGET);
}

static int nop(void *arg)
{
    (void)arg;
    return 0;
}

struct ended {
    int gone;   /* eventfd: runtime 1's first task is about to return */
    int result, tries;
};

static int ended_main(void *arg)
{
    struct ended *e = arg;
    if (urt_thread_index() == 1) {
        uint64_t one = 1;
        urt_write(e->gone, &one, sizeof one, -1);
        return 0;
    }
    uint64_t v;
    urt_read(e->gone, &v, sizeof v, -1);
    /* Runtime 1 returns right after its write; until its inbox closes, a request may still go
       in (and run, or be dropped at its end): ask until it is refused. */
    int r;
    while ((r = urt_spawn_on(1, nop, NULL)) == 0 && e->tries < 1000000) {
        e->tries++;
        urt_yield();
    }
    e->result = r;
    return 0;
}

UT_TEST(spawn_on_an_ended_runtime_is_eshutdown)
{
    struct ended e = { .gone = eventfd(0, EFD_CLOEXEC) };
    assert_int_equal(urt_run_threads(2, ended_main, &e, NULL), 0);
    close(e.gone);
    assert_int_equal(e.result, -ESHUTDOWN);
}

static int spawn_alone(void *arg)
{
    (void)arg;
    EXPECT_EQ(urt_spawn_on(0, nop, NULL), 0);
    EXPECT_EQ(urt_spawn_on(1, nop, NULL), -EINVAL);
    return 0;
}

UT_TEST(spawn_on_inside_urt_run)
{
    assert_int_equal(urt_run(spawn_alone, NULL, NULL), 0);
    assert_int_equal(urt_spawn_on(0, nop, NULL), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_thread_runs_its_own_runtime),
        cmocka_unit_test(first_nonzero_status_in_thread_order),
        cmocka_unit_test(not_inside_a_runtime),
        cmocka_unit_test(plain_run_is_a_set_of_one),
        cmocka_unit_test(spawn_on_every_runtime),
        cmocka_unit_test(spawn_on_an_ended_runtime_is_eshutdown),
        cmocka_unit_test(spawn_on_inside_urt_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
