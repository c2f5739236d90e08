/*
 * test_sync.c - mutexes, semaphores, events and condition variables (DESIGN.md section 8): FIFO
 * wake-ups, the error codes of misuse, waits ended by cancels, scopes and deadlines without
 * losing a handoff or a signal, _free refusing while a task waits, one switch per mutex handoff,
 * and the shared forms made inside urt_run_threads: across runtimes, from a plain thread, and
 * -EXDEV for a local primitive used from elsewhere.
 *
 * Most single-runtime bodies run twice (run_both): under urt_run, where the primitives are local
 * (no lock), and on runtime 0 of urt_run_threads(2), where they are shared (a spinning lock and
 * waits other threads can end): the same promises hold for both.
 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>

#include "urt_test.h"

static void wait_count(const int *n, int want)
{
    while (*n < want)
        urt_yield();
}

/* Runs fn(arg) as urt_run's first task, then as the first task of runtime 0 of a set of two
   (runtime 1 returns at once); *shared tells the body which. */
static urt_fn both_fn;
static int both_shared;

static int first_of_two(void *arg)
{
    return urt_thread_index() == 0 ? both_fn(arg) : 0;
}

static void run_both(urt_fn fn, void *arg)
{
    both_shared = 0;
    assert_int_equal(urt_run(fn, arg, NULL), 0);
    UT_NOT_UNDER_VALGRIND();
    both_shared = 1;
    both_fn = fn;
    assert_int_equal(urt_run_threads(2, first_of_two, arg, NULL), 0);
}

/* ---- mutex: 100,000 tasks, FIFO, exact count ---------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define NCONT 5000     /* TSan makes each task a fiber and holds at most 8,128 at once */
#else
#define NCONT 100000
#endif

struct fifo {
    urt_mutex *m;
    int called[NCONT], ncalled;
    int acquired[NCONT], nacquired;
    long count;
    int inside, overlap, errors;
};

static struct fifo F;

static int contender(void *arg)
{
    int idx = (int)(intptr_t)arg;
    F.called[F.ncalled++] = idx;
    int r = urt_mutex_lock(F.m);
    if (r) {
        F.errors++;
        return r;
    }
    if (F.inside)
        F.overlap++;
    F.inside = 1;
    F.acquired[F.nacquired++] = idx;
    F.count++;
    if (idx % 7 == 0)
        urt_yield();   /* held across a switch: the others queue behind it */
    F.inside = 0;
    if (urt_mutex_unlock(F.m))
        F.errors++;
    return 0;
}

static int fifo_main(void *arg)
{
    (void)arg;
    F.m = urt_mutex_new();
    EXPECT(F.m != NULL);
    urt_group *g = urt_group_new();
    for (int i = 0; i < NCONT; i++)
        EXPECT_EQ(urt_group_spawn(g, contender, (void *)(intptr_t)i), 0);
    EXPECT_EQ(urt_group_wait(g), 0);
    urt_group_free(g);
    EXPECT_EQ(urt_mutex_free(F.m), 0);
    return 0;
}

static void check_fifo(void)
{
    assert_int_equal(F.errors, 0);
    assert_int_equal(F.overlap, 0);
    assert_int_equal(F.count, NCONT);
    assert_int_equal(F.ncalled, NCONT);
    assert_int_equal(F.nacquired, NCONT);
    /* With direct handoff, the order of acquisition is the order of the lock calls. */
    assert_memory_equal(F.called, F.acquired, sizeof F.called);
}

UT_TEST_T(mutex_100k_contenders_fifo_exact_count, 120)
{
    memset(&F, 0, sizeof F);
    assert_int_equal(urt_run(fifo_main, NULL, NULL), 0);
    check_fifo();
    UT_NOT_UNDER_VALGRIND();
    memset(&F, 0, sizeof F);
    both_fn = fifo_main;
    assert_int_equal(urt_run_threads(2, first_of_two, NULL, NULL), 0);
    check_fifo();
}

/* ---- mutex: misuse, try_lock, cancel, deadline, free ---------------------------------------- */

struct mx {
    urt_mutex *m;
    int order[8], norder;
    int called;
    int released;
    urt_scope *scope;
};

static int other_misuse(void *arg)
{
    struct mx *x = arg;
    EXPECT_EQ(urt_mutex_try_lock(x->m), -EBUSY);
    EXPECT_EQ(urt_mutex_unlock(x->m), -EPERM);   /* not the holder */
    return 0;
}

static int locker(void *arg)
{
    struct mx *x = arg;
    int id = x->called++;
    int r = urt_mutex_lock(x->m);
    if (r)
        return r;
    x->order[x->norder++] = id;
    EXPECT_EQ(urt_mutex_unlock(x->m), 0);
    return 0;
}

static int scoped_locker(void *arg)
{
    struct mx *x = arg;
    urt_scope s;
    urt_scope_enter(&s, 0, 0);
    x->scope = &s;
    x->called++;
    EXPECT_EQ(urt_mutex_lock(x->m), -ECANCELED);
    EXPECT_EQ(urt_scope_exit(&s), 1);
    EXPECT_EQ(urt_mutex_unlock(x->m), -EPERM);
    return 0;
}

static int timed_locker(void *arg)
{
    struct mx *x = arg;
    urt_scope s;
    uint64_t t0 = urt_now();
    urt_scope_enter(&s, t0 + URT_MSEC(20), 0);
    x->called++;
    EXPECT_EQ(urt_mutex_lock(x->m), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(20));
    EXPECT_EQ(urt_scope_exit(&s), 1);
    EXPECT_EQ(urt_mutex_unlock(x->m), -EPERM);   /* it does not hold it */
    /* urt_deadline too */
    t0 = urt_now();
    urt_deadline(t0 + URT_MSEC(20));
    EXPECT_EQ(urt_mutex_lock(x->m), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(20));
    urt_deadline(0);
    x->released = 1;
    return 0;
}

/* Handed the mutex by an unlock, then cancelled before it runs: it either holds the mutex (0)
   or not (-ECANCELED); never is the mutex lost. */
static int handed_then_cancelled(void *arg)
{
    struct mx *x = arg;
    x->called++;
    int r = urt_mutex_lock(x->m);
    EXPECT(r == 0 || r == -ECANCELED);
    if (r == 0) {
        EXPECT_EQ(urt_mutex_try_lock(x->m), -EDEADLK);
        EXPECT_EQ(urt_mutex_unlock(x->m), 0);
    } else {
        EXPECT_EQ(urt_mutex_unlock(x->m), -EPERM);
    }
    EXPECT_EQ(urt_mutex_lock(x->m), -ECANCELED);   /* cancelled: even where it need not wait */
    return 0;
}

static int mutex_misc_main(void *arg)
{
    struct mx *x = arg;
    memset(x, 0, sizeof *x);
    x->m = urt_mutex_new();
    urt_mutex *m = x->m;

    /* the holder */
    EXPECT_EQ(urt_mutex_try_lock(m), 0);
    EXPECT_EQ(urt_mutex_try_lock(m), -EDEADLK);
    EXPECT_EQ(urt_mutex_lock(m), -EDEADLK);
    urt_task *t = urt_spawn(other_misuse, x);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(urt_mutex_free(m), -EBUSY);   /* held */
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    EXPECT_EQ(urt_mutex_unlock(m), -EPERM);  /* nobody holds it */
    EXPECT_EQ(urt_mutex_lock(m), 0);
    EXPECT_EQ(urt_mutex_unlock(m), 0);

    /* a waiter cancelled: -ECANCELED, and the handoff skips it */
    EXPECT_EQ(urt_mutex_lock(m), 0);
    urt_task *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = urt_spawn(locker, x);
    wait_count(&x->called, 3);
    urt_cancel(w[1]);
    EXPECT_EQ(urt_join(w[1]), -ECANCELED);
    EXPECT_EQ(urt_mutex_free(m), -EBUSY);   /* w[0] and w[2] wait */
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    EXPECT_EQ(urt_join(w[0]), 0);
    EXPECT_EQ(urt_join(w[2]), 0);
    EXPECT_EQ(x->norder, 2);
    EXPECT_EQ(x->order[0], 0);
    EXPECT_EQ(x->order[1], 2);

    /* a waiter's scope cancelled */
    EXPECT_EQ(urt_mutex_lock(m), 0);
    x->called = 0;
    x->scope = NULL;
    t = urt_spawn(scoped_locker, x);
    wait_count(&x->called, 1);
    urt_scope_cancel(x->scope);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(urt_mutex_unlock(m), 0);

    /* deadlines: a scope's and the task's */
    EXPECT_EQ(urt_mutex_lock(m), 0);
    t = urt_spawn(timed_locker, x);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(x->released, 1);
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    EXPECT_EQ(urt_mutex_try_lock(m), 0);   /* still works */
    EXPECT_EQ(urt_mutex_unlock(m), 0);

    /* handed over, then cancelled before it ran */
    EXPECT_EQ(urt_mutex_lock(m), 0);
    x->called = 0;
    t = urt_spawn(handed_then_cancelled, x);
    wait_count(&x->called, 1);
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    urt_cancel(t);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(urt_mutex_lock(m), 0);
    EXPECT_EQ(urt_mutex_unlock(m), 0);

    /* free while a task waits: -EBUSY and nothing freed; 0 once nobody waits or holds it */
    EXPECT_EQ(urt_mutex_lock(m), 0);
    x->called = 0;
    x->norder = 0;
    t = urt_spawn(locker, x);
    wait_count(&x->called, 1);
    EXPECT_EQ(urt_mutex_free(m), -EBUSY);
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(x->norder, 1);
    EXPECT_EQ(urt_mutex_free(m), 0);

    /* a cancelled task */
    m = urt_mutex_new();
    urt_cancel(urt_self());
    EXPECT_EQ(urt_mutex_lock(m), -ECANCELED);
    urt_scope sh;
    urt_scope_enter(&sh, 0, URT_SHIELD);
    EXPECT_EQ(urt_mutex_lock(m), 0);
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    EXPECT_EQ(urt_scope_exit(&sh), 0);
    EXPECT_EQ(urt_mutex_free(m), 0);

    /* NULL */
    EXPECT_EQ(urt_mutex_lock(NULL), -EINVAL);
    EXPECT_EQ(urt_mutex_try_lock(NULL), -EINVAL);
    EXPECT_EQ(urt_mutex_unlock(NULL), -EINVAL);
    EXPECT_EQ(urt_mutex_free(NULL), 0);
    return 0;
}

UT_TEST(mutex_misuse_cancel_deadline_free)
{
    struct mx x;
    run_both(mutex_misc_main, &x);
}

UT_TEST(sync_calls_outside_a_task)
{
    urt_mutex *m = urt_mutex_new();
    urt_sem *s = urt_sem_new(1);
    urt_event *e = urt_event_new();
    urt_cond *c = urt_cond_new();
    assert_non_null(m);
    assert_non_null(s);
    assert_non_null(e);
    assert_non_null(c);
    assert_int_equal(urt_mutex_lock(m), -EPERM);
    assert_int_equal(urt_mutex_try_lock(m), -EPERM);
    assert_int_equal(urt_mutex_unlock(m), -EPERM);
    assert_int_equal(urt_sem_acquire(s), -EPERM);
    assert_int_equal(urt_event_wait(e), -EPERM);
    assert_int_equal(urt_cond_wait(c, m), -EPERM);
    assert_int_equal(urt_mutex_lock(NULL), -EPERM);
    assert_int_equal(urt_event_is_set(e), 0);
    assert_int_equal(urt_mutex_free(m), 0);
    assert_int_equal(urt_sem_free(s), 0);
    assert_int_equal(urt_event_free(e), 0);
    assert_int_equal(urt_cond_free(c), 0);
    assert_int_equal(urt_sem_free(NULL), 0);
    assert_int_equal(urt_event_free(NULL), 0);
    assert_int_equal(urt_cond_free(NULL), 0);
}

/* ---- mutex: two tasks trading it switch once per handoff ------------------------------------ */

#define NTRADE 20000

struct trade {
    urt_mutex *m;
    int last, started;
    long handoffs;
};

static int trader(void *arg)
{
    struct trade *tr = arg;
    int me = tr->started++;
    for (int i = 0; i < NTRADE; i++) {
        EXPECT_EQ(urt_mutex_lock(tr->m), 0);
        if (tr->last != me)
            tr->handoffs++;
        tr->last = me;
        if (i == 0 && me == 0)
            urt_yield();   /* once: the other one comes to wait */
        EXPECT_EQ(urt_mutex_unlock(tr->m), 0);
    }
    return 0;
}

static int trade_main(void *arg)
{
    double *ratio = arg;
    struct trade tr = { urt_mutex_new(), -1, 0, 0 };
    struct urt_stats a, b;
    urt_task *t0 = urt_spawn(trader, &tr), *t1 = urt_spawn(trader, &tr);
    urt_stats(&a);
    EXPECT_EQ(urt_join(t0), 0);
    EXPECT_EQ(urt_join(t1), 0);
    urt_stats(&b);
    uint64_t sw = b.switches - a.switches;
    UT_NOTE("  %s: %ld handoffs, %llu switches, %llu io_uring_enter calls\n",
            both_shared ? "shared" : "local", tr.handoffs, (unsigned long long)sw,
            (unsigned long long)(b.enter_calls - a.enter_calls));
    EXPECT(tr.handoffs >= NTRADE);   /* they did trade it, about every time */
    /* Local: one switch per handoff, plus a few to start and end. Shared (inside
       urt_run_threads), the runtime has its inbox's wait in flight, so a round that ends goes
       through the scheduler: two switches per handoff. */
    EXPECT(sw <= (uint64_t)tr.handoffs * (both_shared ? 2 : 1) + 10);
    *ratio = (double)sw / (double)tr.handoffs;
    EXPECT_EQ(urt_mutex_free(tr.m), 0);
    return 0;
}

UT_TEST(mutex_handoff_one_switch)
{
    double ratio = 0;
    run_both(trade_main, &ratio);
}

/* ---- semaphores --------------------------------------------------------------------------- */

struct sm {
    urt_sem *s;
    int order[8], norder, called;
};

static int acquirer(void *arg)
{
    struct sm *x = arg;
    int id = x->called++;
    int r = urt_sem_acquire(x->s);
    if (r)
        return r;
    x->order[x->norder++] = id;
    return 0;
}

static int timed_acquirer(void *arg)
{
    struct sm *x = arg;
    urt_scope s;
    uint64_t t0 = urt_now();
    urt_scope_enter(&s, t0 + URT_MSEC(20), 0);
    EXPECT_EQ(urt_sem_acquire(x->s), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(20));
    EXPECT_EQ(urt_scope_exit(&s), 1);
    return 0;
}

static int sem_main(void *arg)
{
    struct sm *x = arg;
    memset(x, 0, sizeof *x);
    urt_sem *s = x->s = urt_sem_new(2);
    EXPECT_EQ(urt_sem_value(s), 2);
    EXPECT_EQ(urt_sem_acquire(s), 0);
    EXPECT_EQ(urt_sem_try_acquire(s), 0);
    EXPECT_EQ(urt_sem_value(s), 0);
    EXPECT_EQ(urt_sem_try_acquire(s), -EAGAIN);

    /* FIFO, and a release goes to the oldest waiter: a try_acquire cannot take it first */
    urt_task *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = urt_spawn(acquirer, x);
    wait_count(&x->called, 3);
    EXPECT_EQ(urt_sem_free(s), -EBUSY);
    EXPECT_EQ(urt_sem_release(s), 0);
    EXPECT_EQ(urt_sem_value(s), 0);
    EXPECT_EQ(urt_sem_try_acquire(s), -EAGAIN);
    EXPECT_EQ(urt_sem_release(s), 0);
    EXPECT_EQ(urt_sem_release(s), 0);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(urt_join(w[i]), 0);
    EXPECT_EQ(x->norder, 3);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(x->order[i], i);
    EXPECT_EQ(urt_sem_value(s), 0);

    /* a cancelled waiter is skipped */
    x->called = x->norder = 0;
    for (int i = 0; i < 3; i++)
        w[i] = urt_spawn(acquirer, x);
    wait_count(&x->called, 3);
    urt_cancel(w[1]);
    EXPECT_EQ(urt_join(w[1]), -ECANCELED);
    EXPECT_EQ(urt_sem_release(s), 0);
    EXPECT_EQ(urt_sem_release(s), 0);
    EXPECT_EQ(urt_join(w[0]), 0);
    EXPECT_EQ(urt_join(w[2]), 0);
    EXPECT_EQ(x->norder, 2);
    EXPECT_EQ(x->order[0], 0);
    EXPECT_EQ(x->order[1], 2);
    EXPECT_EQ(urt_sem_value(s), 0);

    /* a deadline */
    urt_task *t = urt_spawn(timed_acquirer, x);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(urt_sem_release(s), 0);
    EXPECT_EQ(urt_sem_value(s), 1);   /* nobody waits: the unit is kept */

    /* counts up, and the top */
    EXPECT_EQ(urt_sem_release(s), 0);
    EXPECT_EQ(urt_sem_value(s), 2);
    EXPECT_EQ(urt_sem_acquire(s), 0);
    EXPECT_EQ(urt_sem_acquire(s), 0);
    EXPECT_EQ(urt_sem_try_acquire(s), -EAGAIN);
    EXPECT_EQ(urt_sem_free(s), 0);
    s = urt_sem_new(UINT_MAX);
    EXPECT_EQ(urt_sem_release(s), -EOVERFLOW);
    EXPECT_EQ(urt_sem_value(s), INT_MAX);
    EXPECT_EQ(urt_sem_try_acquire(s), 0);
    EXPECT_EQ(urt_sem_release(s), 0);
    EXPECT_EQ(urt_sem_free(s), 0);

    /* a cancelled task is refused, even with units free */
    s = urt_sem_new(1);
    urt_cancel(urt_self());
    EXPECT_EQ(urt_sem_acquire(s), -ECANCELED);
    EXPECT_EQ(urt_sem_value(s), 1);
    EXPECT_EQ(urt_sem_free(s), 0);

    EXPECT_EQ(urt_sem_acquire(NULL), -EINVAL);
    EXPECT_EQ(urt_sem_try_acquire(NULL), -EINVAL);
    EXPECT_EQ(urt_sem_release(NULL), -EINVAL);
    EXPECT_EQ(urt_sem_value(NULL), -EINVAL);
    return 0;
}

UT_TEST(sem_counts_fifo_try_cancel_deadline)
{
    struct sm x;
    run_both(sem_main, &x);
}

/* A plain pthread (no runtime) releases a shared semaphore and wakes a task, many times over. */
#define NPING 2000

struct ping {
    urt_sem *a, *b;   /* a: thread -> task, b: task -> thread */
    int ready;        /* atomic */
    int thread_errors;
};

static void *ping_thread(void *arg)
{
    struct ping *p = arg;
    while (!__atomic_load_n(&p->ready, __ATOMIC_ACQUIRE))
        sched_yield();
    for (int i = 0; i < NPING; i++) {
        if (urt_sem_release(p->a) != 0)
            p->thread_errors++;
        int r;
        while ((r = urt_sem_try_acquire(p->b)) == -EAGAIN)
            sched_yield();
        if (r != 0)
            p->thread_errors++;
    }
    return NULL;
}

static int ping_main(void *arg)
{
    struct ping *p = arg;
    if (urt_thread_index() != 0)
        return 0;
    p->a = urt_sem_new(0);
    p->b = urt_sem_new(0);
    EXPECT(p->a && p->b);
    __atomic_store_n(&p->ready, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < NPING; i++) {
        EXPECT_EQ(urt_sem_acquire(p->a), 0);
        EXPECT_EQ(urt_sem_release(p->b), 0);
    }
    return 0;
}

UT_TEST(sem_release_from_a_plain_thread_wakes_a_task)
{
    UT_NOT_UNDER_VALGRIND();
    struct ping p;
    memset(&p, 0, sizeof p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ping_thread, &p), 0);
    assert_int_equal(urt_run_threads(2, ping_main, &p, NULL), 0);
    pthread_join(th, NULL);
    assert_int_equal(p.thread_errors, 0);
    /* (freed from a thread that runs no runtime, once nobody uses them) */
    assert_int_equal(urt_sem_free(p.a), 0);
    assert_int_equal(urt_sem_free(p.b), 0);
}

/* ---- events ------------------------------------------------------------------------------- */

struct ev {
    urt_event *e;
    int called, woke;
};

static int ev_waiter(void *arg)
{
    struct ev *x = arg;
    x->called++;
    int r = urt_event_wait(x->e);
    if (r == 0)
        x->woke++;
    return r;
}

static int ev_timed(void *arg)
{
    struct ev *x = arg;
    urt_scope s;
    urt_scope_enter(&s, urt_now() + URT_MSEC(20), 0);
    EXPECT_EQ(urt_event_wait(x->e), -ETIMEDOUT);
    EXPECT_EQ(urt_scope_exit(&s), 1);
    return 0;
}

static int event_main(void *arg)
{
    struct ev *x = arg;
    memset(x, 0, sizeof *x);
    urt_event *e = x->e = urt_event_new();
    EXPECT_EQ(urt_event_is_set(e), 0);

    urt_task *t = urt_spawn(ev_timed, x);
    EXPECT_EQ(urt_join(t), 0);

    enum { N = 20 };
    urt_task *w[N];
    for (int i = 0; i < N; i++)
        w[i] = urt_spawn(ev_waiter, x);
    wait_count(&x->called, N);
    EXPECT_EQ(urt_event_free(e), -EBUSY);
    urt_cancel(w[3]);
    EXPECT_EQ(urt_join(w[3]), -ECANCELED);
    EXPECT_EQ(x->woke, 0);
    EXPECT_EQ(urt_event_is_set(e), 0);
    EXPECT_EQ(urt_event_set(e), 0);
    EXPECT_EQ(urt_event_is_set(e), 1);
    EXPECT_EQ(urt_event_set(e), 0);   /* twice: nothing more */
    EXPECT_EQ(urt_event_is_set(e), 1);
    for (int i = 0; i < N; i++)
        if (i != 3)
            EXPECT_EQ(urt_join(w[i]), 0);
    EXPECT_EQ(x->woke, N - 1);

    /* after it is set: at once, also for tasks that come later */
    EXPECT_EQ(urt_event_wait(e), 0);
    t = urt_spawn(ev_waiter, x);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(x->woke, N);
    urt_cancel(urt_self());
    EXPECT_EQ(urt_event_wait(e), -ECANCELED);   /* cancelled: even where it need not wait */
    EXPECT_EQ(urt_event_free(e), 0);

    EXPECT_EQ(urt_event_wait(NULL), -EINVAL);
    EXPECT_EQ(urt_event_set(NULL), -EINVAL);
    EXPECT_EQ(urt_event_is_set(NULL), -EINVAL);
    return 0;
}

UT_TEST(event_wait_before_and_after_set)
{
    struct ev x;
    run_both(event_main, &x);
}

/* ---- condition variables ------------------------------------------------------------------ */

struct cv {
    urt_mutex *m;
    urt_cond *c;
    int waiting, woke, order[8], norder;
    int held_after;   /* waiters that returned holding the mutex */
    int released;
    int results[8];
};

/* Waits once; records its result and whether it holds the mutex on return. */
static int cv_waiter(void *arg)
{
    struct cv *x = arg;
    EXPECT_EQ(urt_mutex_lock(x->m), 0);
    int id = x->waiting++;
    int r = urt_cond_wait(x->c, x->m);
    x->results[id] = r;
    if (urt_mutex_try_lock(x->m) == -EDEADLK)
        x->held_after++;
    x->order[x->norder++] = id;
    if (r == 0)
        x->woke++;
    EXPECT_EQ(urt_mutex_unlock(x->m), 0);
    return r;
}

static int cv_no_mutex(void *arg)
{
    struct cv *x = arg;
    EXPECT_EQ(urt_cond_wait(x->c, x->m), -EPERM);   /* held by main, not by this task */
    return 0;
}

/* A timed-out waiter takes the mutex back before it returns, however long that takes. */
static int cv_timed(void *arg)
{
    struct cv *x = arg;
    EXPECT_EQ(urt_mutex_lock(x->m), 0);
    urt_scope s;
    uint64_t t0 = urt_now();
    urt_scope_enter(&s, t0 + URT_MSEC(20), 0);
    x->waiting++;
    EXPECT_EQ(urt_cond_wait(x->c, x->m), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(20));
    EXPECT_EQ(x->released, 1);   /* main held the mutex past the deadline */
    EXPECT_EQ(urt_mutex_try_lock(x->m), -EDEADLK);
    EXPECT_EQ(urt_scope_exit(&s), 1);
    EXPECT_EQ(urt_mutex_unlock(x->m), 0);
    return 0;
}

static int cond_main(void *arg)
{
    struct cv *x = arg;
    memset(x, 0, sizeof *x);
    urt_mutex *m = x->m = urt_mutex_new();
    urt_cond *c = x->c = urt_cond_new();

    /* misuse */
    EXPECT_EQ(urt_cond_wait(c, m), -EPERM);   /* not holding it */
    EXPECT_EQ(urt_mutex_lock(m), 0);
    urt_task *t = urt_spawn(cv_no_mutex, x);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(urt_cond_wait(NULL, m), -EINVAL);
    EXPECT_EQ(urt_cond_wait(c, NULL), -EINVAL);
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    EXPECT_EQ(urt_cond_signal(NULL), -EINVAL);
    EXPECT_EQ(urt_cond_broadcast(NULL), -EINVAL);

    /* a signal with nobody waiting is not kept */
    EXPECT_EQ(urt_cond_signal(c), 0);
    EXPECT_EQ(urt_cond_broadcast(c), 0);
    EXPECT_EQ(urt_mutex_lock(m), 0);
    urt_scope s;
    urt_scope_enter(&s, urt_now() + URT_MSEC(10), 0);
    EXPECT_EQ(urt_cond_wait(c, m), -ETIMEDOUT);
    EXPECT_EQ(urt_mutex_try_lock(m), -EDEADLK);   /* holding it on error too */
    EXPECT_EQ(urt_scope_exit(&s), 1);
    EXPECT_EQ(urt_mutex_unlock(m), 0);

    /* signal wakes the oldest waiter only; broadcast the rest */
    urt_task *w[4];
    for (int i = 0; i < 4; i++)
        w[i] = urt_spawn(cv_waiter, x);
    wait_count(&x->waiting, 4);
    EXPECT_EQ(urt_cond_free(c), -EBUSY);
    EXPECT_EQ(urt_cond_signal(c), 0);
    EXPECT_EQ(urt_join(w[0]), 0);
    for (int i = 0; i < 5; i++)
        urt_yield();
    EXPECT_EQ(x->woke, 1);
    EXPECT_EQ(urt_cond_broadcast(c), 0);
    for (int i = 1; i < 4; i++)
        EXPECT_EQ(urt_join(w[i]), 0);
    EXPECT_EQ(x->woke, 4);
    EXPECT_EQ(x->held_after, 4);
    for (int i = 0; i < 4; i++)
        EXPECT_EQ(x->order[i], i);

    /* signalled, then cancelled before it runs: A returns -ECANCELED holding the mutex, and
       the signal passes on to B, which wakes with 0 */
    x->waiting = x->woke = x->norder = x->held_after = 0;
    urt_task *a = urt_spawn(cv_waiter, x), *b = urt_spawn(cv_waiter, x);
    wait_count(&x->waiting, 2);
    EXPECT_EQ(urt_cond_signal(c), 0);
    urt_cancel(a);
    EXPECT_EQ(urt_join(a), -ECANCELED);
    urt_scope_enter(&s, urt_now() + URT_SEC(10), 0);   /* a lost signal fails, not hangs */
    int rb = urt_join(b);
    EXPECT_EQ(rb, 0);
    EXPECT_EQ(urt_scope_exit(&s), 0);
    if (rb != 0) {
        urt_cancel(b);
        urt_join(b);
    }
    EXPECT_EQ(x->results[0], -ECANCELED);
    EXPECT_EQ(x->results[1], 0);
    EXPECT_EQ(x->held_after, 2);

    /* a waiter cancelled while it waits returns holding the mutex */
    x->waiting = x->held_after = x->norder = 0;
    a = urt_spawn(cv_waiter, x);
    wait_count(&x->waiting, 1);
    urt_cancel(a);
    EXPECT_EQ(urt_join(a), -ECANCELED);
    EXPECT_EQ(x->held_after, 1);

    /* a waiter whose deadline passes while another task holds the mutex waits for it */
    x->waiting = 0;
    t = urt_spawn(cv_timed, x);
    wait_count(&x->waiting, 1);
    EXPECT_EQ(urt_mutex_lock(m), 0);   /* (cv_timed let it go in its wait) */
    EXPECT_EQ(urt_sleep(URT_MSEC(60)), 0);
    x->released = 1;
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    EXPECT_EQ(urt_join(t), 0);

    /* a cancelled task: refused, still holding */
    EXPECT_EQ(urt_mutex_lock(m), 0);
    urt_cancel(urt_self());
    EXPECT_EQ(urt_cond_wait(c, m), -ECANCELED);
    EXPECT_EQ(urt_mutex_try_lock(m), -EDEADLK);
    EXPECT_EQ(urt_mutex_unlock(m), 0);

    EXPECT_EQ(urt_cond_free(c), 0);
    EXPECT_EQ(urt_mutex_free(m), 0);
    return 0;
}

UT_TEST(cond_signal_broadcast_errors_and_no_lost_signal)
{
    struct cv x;
    run_both(cond_main, &x);
}

/* ---- across runtimes ---------------------------------------------------------------------- */

/* A mutex held by a task of runtime 0 blocks a task of runtime 1; an event, a semaphore and a
   condition made on runtime 0 wake tasks of runtime 1. */
struct cross {
    urt_chan *to1, *to0;   /* shared channels of pointers and acks */
    urt_mutex *m;
    urt_sem *s;
    urt_event *e;
    urt_cond *c;
    int released;          /* atomic */
    int pred;              /* under m */
};

static int cross_main(void *arg)
{
    struct cross *x = arg;
    int ack = 0;
    if (urt_thread_index() == 0) {
        x->m = urt_mutex_new();
        x->s = urt_sem_new(0);
        x->e = urt_event_new();
        x->c = urt_cond_new();
        EXPECT_EQ(urt_mutex_lock(x->m), 0);
        void *p = x;
        EXPECT_EQ(urt_chan_send(x->to1, &p), 0);
        EXPECT_EQ(urt_chan_recv(x->to0, &ack), 0);   /* runtime 1 is about to lock */
        EXPECT_EQ(urt_sleep(URT_MSEC(20)), 0);       /* a window for a wrong lock */
        __atomic_store_n(&x->released, 1, __ATOMIC_RELEASE);
        EXPECT_EQ(urt_mutex_unlock(x->m), 0);
        EXPECT_EQ(urt_chan_recv(x->to0, &ack), 0);   /* it got it; it waits on the event */
        EXPECT_EQ(urt_event_set(x->e), 0);
        EXPECT_EQ(urt_sem_release(x->s), 0);
        EXPECT_EQ(urt_mutex_lock(x->m), 0);
        x->pred = 1;
        EXPECT_EQ(urt_cond_signal(x->c), 0);
        EXPECT_EQ(urt_mutex_unlock(x->m), 0);
        EXPECT_EQ(urt_chan_recv(x->to0, &ack), 0);   /* done */
        EXPECT_EQ(urt_mutex_free(x->m), 0);
        EXPECT_EQ(urt_sem_free(x->s), 0);
        EXPECT_EQ(urt_event_free(x->e), 0);
        EXPECT_EQ(urt_cond_free(x->c), 0);
        return 0;
    }
    void *p;
    EXPECT_EQ(urt_chan_recv(x->to1, &p), 0);
    EXPECT_EQ(urt_mutex_try_lock(x->m), -EBUSY);
    EXPECT_EQ(urt_mutex_unlock(x->m), -EPERM);
    EXPECT_EQ(urt_mutex_free(x->m), -EBUSY);
    EXPECT_EQ(urt_chan_send(x->to0, &ack), 0);
    EXPECT_EQ(urt_mutex_lock(x->m), 0);
    EXPECT_EQ(__atomic_load_n(&x->released, __ATOMIC_ACQUIRE), 1);
    EXPECT_EQ(urt_mutex_unlock(x->m), 0);
    EXPECT_EQ(urt_chan_send(x->to0, &ack), 0);
    EXPECT_EQ(urt_event_wait(x->e), 0);
    EXPECT_EQ(urt_sem_acquire(x->s), 0);
    EXPECT_EQ(urt_mutex_lock(x->m), 0);
    while (!x->pred)
        EXPECT_EQ(urt_cond_wait(x->c, x->m), 0);
    EXPECT_EQ(urt_mutex_unlock(x->m), 0);
    EXPECT_EQ(urt_chan_send(x->to0, &ack), 0);
    return 0;
}

UT_TEST(mutex_held_on_one_runtime_blocks_another)
{
    UT_NOT_UNDER_VALGRIND();
    struct cross x;
    memset(&x, 0, sizeof x);
    x.to1 = urt_chan_new_shared(sizeof(void *), 1);
    x.to0 = urt_chan_new_shared(sizeof(int), 1);
    assert_non_null(x.to1);
    assert_non_null(x.to0);
    assert_int_equal(urt_run_threads(2, cross_main, &x, NULL), 0);
    urt_chan_free(x.to1);
    urt_chan_free(x.to0);
}

/* 2 runtimes x NTASK tasks, each adding to a plain counter under one shared mutex. */
#define NTASK 100
#define NADD  200

struct counter {
    urt_chan *to1;
    urt_mutex *m;
    long count;
    int inside, overlap;
};

static int adder(void *arg)
{
    struct counter *k = arg;
    for (int i = 0; i < NADD; i++) {
        if (urt_mutex_lock(k->m))
            return -1;
        if (k->inside)
            k->overlap++;
        k->inside = 1;
        long v = k->count;
        if (i % 16 == 0)
            urt_yield();   /* held across a switch: others, here and there, queue */
        k->count = v + 1;
        k->inside = 0;
        if (urt_mutex_unlock(k->m))
            return -1;
    }
    return 0;
}

static int counter_main(void *arg)
{
    struct counter *k = arg;
    if (urt_thread_index() == 0) {
        k->m = urt_mutex_new();
        EXPECT(k->m != NULL);
        void *p = k->m;
        EXPECT_EQ(urt_chan_send(k->to1, &p), 0);
    } else {
        void *p;
        EXPECT_EQ(urt_chan_recv(k->to1, &p), 0);
        EXPECT(p == k->m);
    }
    urt_group *g = urt_group_new();
    for (int i = 0; i < NTASK; i++)
        EXPECT_EQ(urt_group_spawn(g, adder, k), 0);
    EXPECT_EQ(urt_group_wait(g), 0);
    urt_group_free(g);
    return 0;
}

UT_TEST(two_runtimes_count_exactly_under_one_mutex)
{
    UT_NOT_UNDER_VALGRIND();
    struct counter k;
    memset(&k, 0, sizeof k);
    k.to1 = urt_chan_new_shared(sizeof(void *), 1);
    assert_int_equal(urt_run_threads(2, counter_main, &k, NULL), 0);
    assert_int_equal(k.overlap, 0);
    assert_int_equal(k.count, 2L * NTASK * NADD);
    assert_int_equal(urt_mutex_free(k.m), 0);
    urt_chan_free(k.to1);
}

/* A local primitive (made inside urt_run) used from another thread: -EXDEV from a plain thread
   (-EPERM for the calls only tasks may make) and from another runtime's task. */
struct local {
    urt_mutex *m;
    urt_sem *s;
    urt_event *e, *set;   /* set: already set, which must not let another runtime through */
    urt_cond *c;
    int checked;
};

static void *plain_thread(void *arg)
{
    struct local *l = arg;
    EXPECT_EQ(urt_sem_try_acquire(l->s), -EXDEV);
    EXPECT_EQ(urt_sem_release(l->s), -EXDEV);
    EXPECT_EQ(urt_event_set(l->e), -EXDEV);
    EXPECT_EQ(urt_cond_signal(l->c), -EXDEV);
    EXPECT_EQ(urt_cond_broadcast(l->c), -EXDEV);
    EXPECT_EQ(urt_mutex_lock(l->m), -EPERM);
    EXPECT_EQ(urt_sem_acquire(l->s), -EPERM);
    EXPECT_EQ(urt_event_wait(l->e), -EPERM);
    EXPECT_EQ(urt_event_is_set(l->e), 0);   /* any thread */
    l->checked++;
    return NULL;
}

static int other_runtime_main(void *arg)
{
    struct local *l = arg;
    EXPECT_EQ(urt_mutex_lock(l->m), -EXDEV);
    EXPECT_EQ(urt_mutex_try_lock(l->m), -EXDEV);
    EXPECT_EQ(urt_mutex_unlock(l->m), -EXDEV);
    EXPECT_EQ(urt_sem_acquire(l->s), -EXDEV);
    EXPECT_EQ(urt_sem_try_acquire(l->s), -EXDEV);
    EXPECT_EQ(urt_sem_release(l->s), -EXDEV);
    EXPECT_EQ(urt_event_wait(l->e), -EXDEV);
    EXPECT_EQ(urt_event_wait(l->set), -EXDEV);
    EXPECT_EQ(urt_event_set(l->e), -EXDEV);
    EXPECT_EQ(urt_cond_signal(l->c), -EXDEV);
    EXPECT_EQ(urt_cond_broadcast(l->c), -EXDEV);
    urt_mutex *mine = urt_mutex_new();
    EXPECT_EQ(urt_mutex_lock(mine), 0);
    EXPECT_EQ(urt_cond_wait(l->c, mine), -EXDEV);
    EXPECT_EQ(urt_mutex_unlock(mine), 0);
    EXPECT_EQ(urt_mutex_free(mine), 0);
    EXPECT_EQ(urt_mutex_free(l->m), -EXDEV);
    EXPECT_EQ(urt_sem_free(l->s), -EXDEV);
    EXPECT_EQ(urt_event_free(l->e), -EXDEV);
    EXPECT_EQ(urt_cond_free(l->c), -EXDEV);
    l->checked++;
    return 0;
}

static void *runtime_thread(void *arg)
{
    EXPECT_EQ(urt_run(other_runtime_main, arg, NULL), 0);
    return NULL;
}

static int local_main(void *arg)
{
    struct local *l = arg;
    l->m = urt_mutex_new();
    l->s = urt_sem_new(1);
    l->e = urt_event_new();
    l->set = urt_event_new();
    EXPECT_EQ(urt_event_set(l->set), 0);
    l->c = urt_cond_new();
    pthread_t th;
    /* (the runtime's thread blocks in pthread_join: nothing else runs here meanwhile) */
    EXPECT_EQ(pthread_create(&th, NULL, plain_thread, l), 0);
    pthread_join(th, NULL);
    EXPECT_EQ(pthread_create(&th, NULL, runtime_thread, l), 0);
    pthread_join(th, NULL);
    /* untouched, and still working here */
    EXPECT_EQ(urt_sem_value(l->s), 1);
    EXPECT_EQ(urt_event_is_set(l->e), 0);
    EXPECT_EQ(urt_mutex_lock(l->m), 0);
    EXPECT_EQ(urt_mutex_unlock(l->m), 0);
    EXPECT_EQ(urt_sem_acquire(l->s), 0);
    EXPECT_EQ(urt_mutex_free(l->m), 0);
    EXPECT_EQ(urt_sem_free(l->s), 0);
    EXPECT_EQ(urt_event_free(l->e), 0);
    EXPECT_EQ(urt_event_free(l->set), 0);
    EXPECT_EQ(urt_cond_free(l->c), 0);
    return 0;
}

/* Made before any runtime runs: the first runtime to use it adopts it. */
static int adopted_main(void *arg)
{
    urt_mutex *m = arg;
    EXPECT_EQ(urt_mutex_lock(m), 0);
    EXPECT_EQ(urt_mutex_try_lock(m), -EDEADLK);
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    EXPECT_EQ(urt_mutex_lock(m), 0);
    EXPECT_EQ(urt_mutex_free(m), -EBUSY);   /* held */
    EXPECT_EQ(urt_mutex_unlock(m), 0);
    return 0;
}

UT_TEST(primitive_made_outside_a_runtime_is_adopted)
{
    urt_mutex *m = urt_mutex_new();
    assert_non_null(m);
    assert_int_equal(urt_run(adopted_main, m, NULL), 0);
    assert_int_equal(urt_mutex_free(m), 0);
}

UT_TEST(local_primitive_from_another_thread_exdev)
{
    UT_NOT_UNDER_VALGRIND();
    struct local l;
    memset(&l, 0, sizeof l);
    assert_int_equal(urt_run(local_main, &l, NULL), 0);
    assert_int_equal(l.checked, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutex_100k_contenders_fifo_exact_count),
        cmocka_unit_test(mutex_misuse_cancel_deadline_free),
        cmocka_unit_test(sync_calls_outside_a_task),
        cmocka_unit_test(mutex_handoff_one_switch),
        cmocka_unit_test(sem_counts_fifo_try_cancel_deadline),
        cmocka_unit_test(sem_release_from_a_plain_thread_wakes_a_task),
        cmocka_unit_test(event_wait_before_and_after_set),
        cmocka_unit_test(cond_signal_broadcast_errors_and_no_lost_signal),
        cmocka_unit_test(mutex_held_on_one_runtime_blocks_another),
        cmocka_unit_test(two_runtimes_count_exactly_under_one_mutex),
        cmocka_unit_test(primitive_made_outside_a_runtime_is_adopted),
        cmocka_unit_test(local_primitive_from_another_thread_exdev),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
