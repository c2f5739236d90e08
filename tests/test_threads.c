/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c - urt_run_threads: one runtime per thread, their indexes and statuses, and work
 * crossing between them (urt_spawn_on). Waits are on eventfds written by the tasks themselves.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>

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

UT_TEST(stats_add_sums_and_takes_the_max_lateness)
{
    struct urt_stats a = { .tasks_spawned = 3, .switches = 10, .timer_late_max_ns = 5 };
    struct urt_stats b = { .tasks_spawned = 4, .switches = 1, .timer_late_max_ns = 9,
                           .messages_in = 2 };
    urt_stats_add(&a, &b);
    assert_int_equal(a.tasks_spawned, 7);
    assert_int_equal(a.switches, 11);
    assert_int_equal(a.messages_in, 2);
    assert_int_equal(a.timer_late_max_ns, 9);
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

/* ---- shared channels ---- */

enum { MESSAGES = 1000000 };

struct stream {
    urt_chan *c;         /* shared, buffered: runtime 0 sends, runtime 1 receives        */
    urt_chan *ping, *pong;   /* shared rendezvous: round trips between the two           */
    long      received, out_of_order, round_trips;
};

static int stream_main(void *arg)
{
    struct stream *s = arg;
    if (urt_thread_index() == 0) {
        for (long i = 0; i < MESSAGES; i++)
            if (urt_chan_send(s->c, &i) != 0)
                break;
        for (int k = 0; k < 10000; k++) {
            int v = k, back = -1;
            if (urt_chan_send(s->ping, &v) != 0 || urt_chan_recv(s->pong, &back) != 0 || back != k + 1)
                break;
            s->round_trips++;
        }
        urt_chan_close(s->ping);
        return 0;
    }
    for (long want = 0; want < MESSAGES; want++) {
        long v;
        if (urt_chan_recv(s->c, &v) != 0)
            break;
        if (v != want)
            s->out_of_order++;
        s->received++;
    }
    int v;
    while (urt_chan_recv(s->ping, &v) == 0) {
        v++;
        if (urt_chan_send(s->pong, &v) != 0)
            break;
    }
    return 0;
}

UT_TEST_T(a_million_messages_across_two_runtimes, 120)
{
    struct stream s;
    memset(&s, 0, sizeof s);
    s.c = urt_chan_new_shared(sizeof(long), 128);
    s.ping = urt_chan_new_shared(sizeof(int), 0);
    s.pong = urt_chan_new_shared(sizeof(int), 0);
    assert_non_null(s.c);
    assert_int_equal(urt_run_threads(2, stream_main, &s, NULL), 0);
    urt_chan_free(s.c);
    urt_chan_free(s.ping);
    urt_chan_free(s.pong);
    assert_int_equal(s.received, MESSAGES);
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(s.round_trips, 10000);
}

/* A thread urt does not run wakes a task through try_send. */
struct foreign {
    urt_chan *c;
    int       got[3];
    int       tries_failed;
};

static void *foreign_thread(void *arg)
{
    struct foreign *f = arg;
    for (int k = 0; k < 3; k++) {
        int v = 100 + k;
        /* a rendezvous: it goes once the task waits in urt_chan_recv */
        while (urt_chan_try_send(f->c, &v) == -EAGAIN)
            sched_yield();
    }
    return NULL;
}

static int foreign_main(void *arg)
{
    struct foreign *f = arg;
    for (int k = 0; k < 3; k++)
        if (urt_chan_recv(f->c, &f->got[k]) != 0)
            f->tries_failed++;
    return 0;
}

UT_TEST(a_foreign_thread_wakes_a_task)
{
    struct foreign f;
    memset(&f, 0, sizeof f);
    f.c = urt_chan_new_shared(sizeof(int), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, foreign_thread, &f), 0);
    assert_int_equal(urt_run(foreign_main, &f, NULL), 0);
    pthread_join(th, NULL);
    urt_chan_free(f.c);
    assert_int_equal(f.tries_failed, 0);
    for (int k = 0; k < 3; k++)
        assert_int_equal(f.got[k], 100 + k);
}

/* ---- another runtime's local handles: -EXDEV ---- */

struct misuse {
    int       ready, done;   /* eventfds */
    urt_task *task;
    urt_chan *local;
    urt_group *group;
    int       join, detach, send, try_send, recv, gspawn, gwait, foreign_try;
    int       finished;   /* runtime 1 is done with the handles (release/acquire, see above) */
};

static int sleeper(void *arg)
{
    (void)arg;
    urt_sleep(URT_SEC(60));
    return 0;
}

static int misuse_main(void *arg)
{
    struct misuse *m = arg;
    uint64_t one = 1, v;
    if (urt_thread_index() == 0) {
        /* Published with release stores: the eventfd below orders them too, but through the
           kernel, which ThreadSanitizer cannot see. */
        __atomic_store_n(&m->task, urt_spawn(sleeper, NULL), __ATOMIC_RELEASE);
        __atomic_store_n(&m->local, urt_chan_new(sizeof(int), 1), __ATOMIC_RELEASE);
        __atomic_store_n(&m->group, urt_group_new(), __ATOMIC_RELEASE);
        urt_write(m->ready, &one, sizeof one, -1);
        urt_read(m->done, &v, sizeof v, -1);
        while (!__atomic_load_n(&m->finished, __ATOMIC_ACQUIRE))
            ;   /* already set: this only tells ThreadSanitizer about the order */
        urt_cancel(m->task);
        EXPECT_EQ(urt_join(m->task), 0);
        int x = 1;
        EXPECT_EQ(urt_chan_try_send(m->local, &x), 0);   /* still intact */
        urt_chan_free(m->local);
        urt_group_free(m->group);
        return 0;
    }
    urt_read(m->ready, &v, sizeof v, -1);
    int x = 5;
    urt_task *task = __atomic_load_n(&m->task, __ATOMIC_ACQUIRE);
    urt_chan *local = __atomic_load_n(&m->local, __ATOMIC_ACQUIRE);
    urt_group *group = __atomic_load_n(&m->group, __ATOMIC_ACQUIRE);
    m->join = urt_join(task);
    m->detach = urt_detach_checked(task);
    urt_cancel(task);                /* ignored: not this runtime's */
    m->send = urt_chan_send(local, &x);
    m->try_send = urt_chan_try_send(local, &x);
    m->recv = urt_chan_recv(local, &x);
    m->gspawn = urt_group_spawn(group, sleeper, NULL);
    m->gwait = urt_group_wait(group);
    urt_chan_close(local);           /* ignored */
    urt_chan_free(local);            /* ignored */
    __atomic_store_n(&m->finished, 1, __ATOMIC_RELEASE);
    urt_write(m->done, &one, sizeof one, -1);
    return 0;
}

UT_TEST(another_runtimes_handles_are_exdev)
{
    struct misuse m;
    memset(&m, 0, sizeof m);
    m.ready = eventfd(0, EFD_CLOEXEC);
    m.done = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(urt_run_threads(2, misuse_main, &m, NULL), 0);
    close(m.ready);
    close(m.done);
    assert_int_equal(m.join, -EXDEV);
    assert_int_equal(m.detach, -EXDEV);
    assert_int_equal(m.send, -EXDEV);
    assert_int_equal(m.try_send, -EXDEV);
    assert_int_equal(m.recv, -EXDEV);
    assert_int_equal(m.gspawn, -EXDEV);
    assert_int_equal(m.gwait, -EXDEV);
}

/* A handle of a task whose runtime has ended (its stacks unmapped): an error, never a read of
   unmapped memory. */
struct gone {
    urt_chan *handoff;   /* shared: runtime 0 sends a task handle, then ends */
    int       join, detach;
};

static int gone_main(void *arg)
{
    struct gone *g = arg;
    if (urt_thread_index() == 0) {
        urt_task *t = urt_spawn(nop, NULL);
        urt_chan_send(g->handoff, &t);
        urt_join(t);
        return 0;   /* this runtime ends; its arenas go */
    }
    urt_task *t = NULL;
    urt_chan_recv(g->handoff, &t);
    /* wait until runtime 0 has ended: its inbox refuses work then */
    while (urt_spawn_on(0, nop, NULL) == 0)
        urt_yield();
    g->join = urt_join(t);
    g->detach = urt_detach_checked(t);
    urt_cancel(t);
    return 0;
}

UT_TEST(handle_of_an_ended_runtime_is_exdev)
{
    struct gone g = { .handoff = urt_chan_new_shared(sizeof(urt_task *), 1) };
    assert_int_equal(urt_run_threads(2, gone_main, &g, NULL), 0);
    urt_chan_free(g.handoff);
    /* -EXDEV; or -EINVAL when this runtime has since mapped an arena where the ended one's was
       (the address is then this runtime's memory, and holds no such task). Never a crash. */
    assert_true(g.join == -EXDEV || g.join == -EINVAL);
    assert_true(g.detach == -EXDEV || g.detach == -EINVAL);
}

/* ---- runtimes ending with posts and messages in flight ---- */

static int ending_main(void *arg)
{
    urt_chan *c = arg;
    if (urt_thread_index() == 1) {
        /* receives a little, then ends while the other keeps sending and spawning here */
        int v;
        for (int k = 0; k < 1000; k++)
            urt_chan_recv(c, &v);
        return 0;
    }
    int v = 0, refused = 0;
    for (int k = 0; k < 200000 && refused < 1000; k++) {
        if (urt_spawn_on(1, nop, NULL) == -ESHUTDOWN)
            refused++;
        if (urt_chan_try_send(c, &v) == -EPIPE)
            break;
        if (k % 64 == 0)
            urt_yield();
    }
    urt_chan_close(c);
    return 0;
}

UT_TEST_T(runtimes_end_with_work_in_flight, 60)
{
    for (int run = 0; run < 5; run++) {
        urt_chan *c = urt_chan_new_shared(sizeof(int), 16);
        assert_int_equal(urt_run_threads(2, ending_main, c, NULL), 0);
        urt_chan_free(c);
    }
}

/* ---- many tasks on each runtime ---- */

static int tiny(void *arg)
{
    (void)arg;
    return urt_sleep(URT_USEC(100)) == 0 ? 0 : 1;
}

#if defined(__SANITIZE_THREAD__)
enum { MANY = 2000 };     /* ThreadSanitizer follows at most 8,128 threads and fibers */
#else
enum { MANY = 100000 };
#endif

static int many_main(void *arg)
{
    atomic_long *ok = arg;
    enum { N = MANY };
    urt_group *g = urt_group_new();
    struct urt_spawn_opts o = { .stack_size = 2048 };
    long made = 0;
    for (int i = 0; i < N; i++)
        if (urt_group_spawn_ex(g, tiny, NULL, &o) == 0)
            made++;
    if (urt_group_wait(g) == 0)
        atomic_fetch_add(ok, made);
    urt_group_free(g);
    return 0;
}

UT_TEST_T(hundred_thousand_tasks_on_each_runtime, 120)
{
    atomic_long ok = 0;
    assert_int_equal(urt_run_threads(2, many_main, &ok, NULL), 0);
    assert_int_equal(atomic_load(&ok), 2 * MANY);
}

/* ---- a runtime that cannot start ---- */

/* Free descriptors below the soft limit `lim`, counted by taking them all. */
static int free_fds_below(rlim_t lim)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = lim;
    setrlimit(RLIMIT_NOFILE, &rl);
    int fds[64], n = 0;
    while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    rl.rlim_cur = old;
    setrlimit(RLIMIT_NOFILE, &rl);
    return n;
}

/* Leaves exactly `n` descriptors free to this process (a child of the test's own): the limit. */
static rlim_t leave_free_fds(int n)
{
    rlim_t lim = 1;
    while (free_fds_below(lim) < n)
        lim++;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = lim;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    return lim;
}

struct doomed {
    atomic_int started, cancelled;
};

/* Waits for what only a stop can end. */
static int wait_for_stop(void *arg)
{
    struct doomed *d = arg;
    atomic_fetch_add(&d->started, 1);
    int r = urt_sleep(URT_SEC(3600));
    if (r == -ECANCELED)
        atomic_fetch_add(&d->cancelled, 1);
    return r;
}

/* Four runtimes, descriptors for the set's four inboxes and two rings only: two runtimes start
   and wait, the others fail to make their ring. The set stops the ones that run (their first
   tasks are cancelled), ends and returns the start's error. (A stopped runtime closes its ring
   before a slow sibling tries to make one: then three start, and the third is stopped too.) */
UT_TEST(a_runtime_that_cannot_start_stops_the_others)
{
    struct doomed d;
    memset(&d, 0, sizeof d);
    rlim_t lim = leave_free_fds(4 + 2);
    int r = urt_run_threads(4, wait_for_stop, &d, NULL);
    assert_int_equal(r, -EMFILE);
    int started = atomic_load(&d.started);
    /* (a sanitizer's own thread may hold a descriptor for a moment: then only one starts) */
    assert_in_range(started, 1, 3);
    assert_int_equal(atomic_load(&d.cancelled), started);
    assert_int_equal(free_fds_below(lim), 4 + 2);   /* every descriptor of the set closed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stats_add_sums_and_takes_the_max_lateness),
        cmocka_unit_test(each_thread_runs_its_own_runtime),
        cmocka_unit_test(first_nonzero_status_in_thread_order),
        cmocka_unit_test(not_inside_a_runtime),
        cmocka_unit_test(plain_run_is_a_set_of_one),
        cmocka_unit_test(spawn_on_every_runtime),
        cmocka_unit_test(spawn_on_an_ended_runtime_is_eshutdown),
        cmocka_unit_test(spawn_on_inside_urt_run),
        cmocka_unit_test(a_million_messages_across_two_runtimes),
        cmocka_unit_test(a_foreign_thread_wakes_a_task),
        cmocka_unit_test(another_runtimes_handles_are_exdev),
        cmocka_unit_test(handle_of_an_ended_runtime_is_exdev),
        cmocka_unit_test(runtimes_end_with_work_in_flight),
        cmocka_unit_test(hundred_thousand_tasks_on_each_runtime),
        cmocka_unit_test(a_runtime_that_cannot_start_stops_the_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
