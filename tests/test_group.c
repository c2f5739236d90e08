/*
 * test_group.c - structured concurrency: urt_group_new/spawn/wait/cancel/free.
 */
#include "urt_test.h"

/* A member's script: sleep `sleep_ms` (0: none), then return `status`; records how its sleep
   ended and that it finished. */
struct member {
    int sleep_ms;
    int status;
    long sleep_res;
    int finished;
    int started;
};

static int member_fn(void *arg)
{
    struct member *m = arg;
    m->started = 1;
    m->sleep_res = m->sleep_ms ? urt_sleep(URT_MSEC(m->sleep_ms)) : 0;
    m->finished = 1;
    /* a member cancelled before its own status came reports the cancellation */
    return m->sleep_res ? (int)m->sleep_res : m->status;
}

static void members_init(struct member *m, int n, int sleep_ms, int status)
{
    for (int i = 0; i < n; i++)
        m[i] = (struct member){ sleep_ms, status, 99, 0, 0 };
}

/* ---- all succeed ---------------------------------------------------------------------------- */

struct all_ok {
    struct member m[50];
    int wait_res, empty_wait, all_finished_at_return;
};

static int all_ok_main(void *arg)
{
    struct all_ok *a = arg;
    urt_group *g = urt_group_new();
    a->empty_wait = urt_group_wait(g);
    for (int i = 0; i < 50; i++) {
        a->m[i].sleep_ms = i % 5;
        EXPECT_EQ(urt_group_spawn(g, member_fn, &a->m[i]), 0);
    }
    a->wait_res = urt_group_wait(g);
    a->all_finished_at_return = 1;
    for (int i = 0; i < 50; i++)
        if (!a->m[i].finished)
            a->all_finished_at_return = 0;
    urt_group_free(g);
    return 0;
}

UT_TEST(wait_all_ok_returns_0)
{
    struct all_ok a;
    memset(&a, 0, sizeof a);
    members_init(a.m, 50, 0, 0);
    assert_int_equal(urt_run(all_ok_main, &a, NULL), 0);
    assert_int_equal(a.empty_wait, 0);
    assert_int_equal(a.wait_res, 0);
    assert_int_equal(a.all_finished_at_return, 1);
    for (int i = 0; i < 50; i++)
        assert_int_equal(a.m[i].sleep_res, 0);
}

/* ---- the first error cancels the others and is returned ------------------------------------ */

struct first_err {
    struct member fail_early, fail_later, slow[5];
    int wait_res;
    uint64_t ns;
    int all_finished;
};

static int first_err_main(void *arg)
{
    struct first_err *f = arg;
    urt_group *g = urt_group_new();
    uint64_t t0 = urt_now();
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(urt_group_spawn(g, member_fn, &f->slow[i]), 0);
    EXPECT_EQ(urt_group_spawn(g, member_fn, &f->fail_later), 0);
    EXPECT_EQ(urt_group_spawn(g, member_fn, &f->fail_early), 0);
    f->wait_res = urt_group_wait(g);
    f->ns = urt_now() - t0;
    f->all_finished = f->fail_later.finished;
    for (int i = 0; i < 5; i++)
        f->all_finished &= f->slow[i].finished;
    urt_group_free(g);
    return 0;
}

UT_TEST(first_error_cancels_others_and_is_returned)
{
    struct first_err f;
    memset(&f, 0, sizeof f);
    members_init(f.slow, 5, 10000, 0);
    members_init(&f.fail_early, 1, 5, 42);
    members_init(&f.fail_later, 1, 20, 43);
    assert_int_equal(urt_run(first_err_main, &f, NULL), 0);
    assert_int_equal(f.wait_res, 42);
    assert_true(f.ns < URT_SEC(5));
    assert_int_equal(f.all_finished, 1);
    assert_int_equal(f.fail_early.sleep_res, 0);
    assert_int_equal(f.fail_later.sleep_res, -ECANCELED);
    for (int i = 0; i < 5; i++)
        assert_int_equal(f.slow[i].sleep_res, -ECANCELED);
}

/* An error from a member that needs no time at all: the others never get to run long. */
struct instant_err {
    struct member bad, others[3];
    int wait_res, spawn_after_fail, spawn_after_wait, reuse_wait;
    struct member reuse;
};

static int instant_err_main(void *arg)
{
    struct instant_err *e = arg;
    urt_group *g = urt_group_new();
    EXPECT_EQ(urt_group_spawn(g, member_fn, &e->bad), 0);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(urt_group_spawn(g, member_fn, &e->others[i]), 0);
    urt_yield();   /* bad has failed now; the group is failed */
    e->spawn_after_fail = urt_group_spawn(g, member_fn, &e->reuse);
    e->wait_res = urt_group_wait(g);
    /* after urt_group_wait returns the group can be used again */
    e->spawn_after_wait = urt_group_spawn(g, member_fn, &e->reuse);
    e->reuse_wait = urt_group_wait(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(spawn_into_failed_group_ecanceled_then_reuse)
{
    struct instant_err e;
    memset(&e, 0, sizeof e);
    members_init(&e.bad, 1, 0, -5);
    members_init(e.others, 3, 10000, 0);
    members_init(&e.reuse, 1, 1, 0);
    assert_int_equal(urt_run(instant_err_main, &e, NULL), 0);
    assert_int_equal(e.spawn_after_fail, -ECANCELED);
    assert_int_equal(e.wait_res, -5);
    for (int i = 0; i < 3; i++)
        assert_int_equal(e.others[i].sleep_res, -ECANCELED);
    assert_int_equal(e.spawn_after_wait, 0);
    assert_int_equal(e.reuse_wait, 0);
    assert_int_equal(e.reuse.finished, 1);
    assert_int_equal(e.reuse.sleep_res, 0);
}

/* ---- groups inside groups -------------------------------------------------------------------- */

struct nested {
    struct member inner_ok, inner_bad, inner_slow;
    struct member outer_slow;
    int inner_wait;
    int outer_wait;
};

static int inner_owner(void *arg)
{
    struct nested *n = arg;
    urt_group *g = urt_group_new();
    urt_group_spawn(g, member_fn, &n->inner_ok);
    urt_group_spawn(g, member_fn, &n->inner_bad);
    urt_group_spawn(g, member_fn, &n->inner_slow);
    n->inner_wait = urt_group_wait(g);
    urt_group_free(g);
    return n->inner_wait;
}

static int nested_main(void *arg)
{
    struct nested *n = arg;
    urt_group *g = urt_group_new();
    EXPECT_EQ(urt_group_spawn(g, inner_owner, n), 0);
    EXPECT_EQ(urt_group_spawn(g, member_fn, &n->outer_slow), 0);
    n->outer_wait = urt_group_wait(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(group_inside_group_error_propagates)
{
    struct nested n;
    memset(&n, 0, sizeof n);
    members_init(&n.inner_ok, 1, 1, 0);
    members_init(&n.inner_bad, 1, 5, 17);
    members_init(&n.inner_slow, 1, 10000, 0);
    members_init(&n.outer_slow, 1, 10000, 0);
    assert_int_equal(urt_run(nested_main, &n, NULL), 0);
    assert_int_equal(n.inner_wait, 17);
    assert_int_equal(n.outer_wait, 17);
    assert_int_equal(n.inner_ok.sleep_res, 0);
    assert_int_equal(n.inner_slow.sleep_res, -ECANCELED);
    assert_int_equal(n.outer_slow.sleep_res, -ECANCELED);
    assert_int_equal(n.inner_slow.finished, 1);
    assert_int_equal(n.outer_slow.finished, 1);
}

/* Cancelling the outer group reaches the members of the inner one. */
struct nested_cancel {
    struct member inner[3];
    int inner_wait, outer_wait, outer_cancelled;
};

static int inner_owner2(void *arg)
{
    struct nested_cancel *n = arg;
    urt_group *g = urt_group_new();
    for (int i = 0; i < 3; i++)
        urt_group_spawn(g, member_fn, &n->inner[i]);
    n->inner_wait = urt_group_wait(g);
    urt_group_free(g);
    return n->inner_wait;
}

static int nested_cancel_main(void *arg)
{
    struct nested_cancel *n = arg;
    urt_group *g = urt_group_new();
    EXPECT_EQ(urt_group_spawn(g, inner_owner2, n), 0);
    urt_sleep(URT_MSEC(5));
    urt_group_cancel(g);
    n->outer_wait = urt_group_wait(g);
    n->outer_cancelled = urt_group_cancelled(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(cancel_outer_group_cancels_inner_members)
{
    struct nested_cancel n;
    memset(&n, 0, sizeof n);
    members_init(n.inner, 3, 10000, 0);
    assert_int_equal(urt_run(nested_cancel_main, &n, NULL), 0);
    /* the inner waiter was cancelled (-ECANCELED); it returned that because the outer group
       cancelled it, so the outer group, cancelled on purpose, has no failure */
    assert_int_equal(n.inner_wait, -ECANCELED);
    assert_int_equal(n.outer_wait, 0);
    assert_int_equal(n.outer_cancelled, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(n.inner[i].sleep_res, -ECANCELED);
        assert_int_equal(n.inner[i].finished, 1);
    }
}

/* ---- cancelling the waiter, or its deadline ---------------------------------------------------- */

struct waiter_res {
    struct member m[4];
    int wait_res;
    int all_finished_at_return;
    int use_deadline;
};

static int group_waiter(void *arg)
{
    struct waiter_res *w = arg;
    urt_group *g = urt_group_new();
    for (int i = 0; i < 4; i++)
        urt_group_spawn(g, member_fn, &w->m[i]);
    if (w->use_deadline)
        urt_deadline(urt_now() + URT_MSEC(10));
    w->wait_res = urt_group_wait(g);
    w->all_finished_at_return = 1;
    for (int i = 0; i < 4; i++)
        w->all_finished_at_return &= w->m[i].finished;
    urt_deadline(0);
    urt_group_free(g);
    return 0;
}

static int waiter_main(void *arg)
{
    struct waiter_res *w = arg;
    for (int mode = 0; mode < 2; mode++) {
        w[mode].use_deadline = mode;
        urt_task *t = urt_spawn(group_waiter, &w[mode]);
        if (mode == 0) {
            urt_sleep(URT_MSEC(5));
            urt_cancel(t);
        }
        EXPECT_EQ(urt_join(t), 0);
    }
    return 0;
}

UT_TEST(cancelling_or_timing_out_the_waiter_cancels_members)
{
    struct waiter_res w[2];
    memset(w, 0, sizeof w);
    members_init(w[0].m, 4, 10000, 0);
    members_init(w[1].m, 4, 10000, 0);
    assert_int_equal(urt_run(waiter_main, w, NULL), 0);
    assert_int_equal(w[0].wait_res, -ECANCELED);
    assert_int_equal(w[1].wait_res, -ETIMEDOUT);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(w[k].all_finished_at_return, 1);
        for (int i = 0; i < 4; i++)
            assert_int_equal(w[k].m[i].sleep_res, -ECANCELED);
    }
}

/* ---- urt_group_cancel, urt_group_free ------------------------------------------------------- */

struct cancel_free {
    struct member c[3], f[3];
    int cancel_wait, spawn_after_cancel;
    int finished_after_free;
};

static int cancel_free_main(void *arg)
{
    struct cancel_free *s = arg;
    urt_group *g = urt_group_new();
    for (int i = 0; i < 3; i++)
        urt_group_spawn(g, member_fn, &s->c[i]);
    urt_yield();
    urt_group_cancel(g);
    s->spawn_after_cancel = urt_group_spawn(g, member_fn, &s->c[0]);
    s->cancel_wait = urt_group_wait(g);
    urt_group_free(g);

    /* free without waiting: running members are cancelled and have ended when it returns */
    g = urt_group_new();
    for (int i = 0; i < 3; i++)
        urt_group_spawn(g, member_fn, &s->f[i]);
    urt_sleep(URT_MSEC(5));
    urt_group_free(g);
    s->finished_after_free = s->f[0].finished && s->f[1].finished && s->f[2].finished;
    return 0;
}

UT_TEST(group_cancel_and_group_free)
{
    struct cancel_free s;
    memset(&s, 0, sizeof s);
    members_init(s.c, 3, 10000, 0);
    members_init(s.f, 3, 10000, 0);
    assert_int_equal(urt_run(cancel_free_main, &s, NULL), 0);
    assert_int_equal(s.spawn_after_cancel, -ECANCELED);
    assert_int_equal(s.cancel_wait, 0);   /* a deliberate cancel is no failure */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.c[i].sleep_res, -ECANCELED);
        assert_int_equal(s.f[i].sleep_res, -ECANCELED);
    }
    assert_int_equal(s.finished_after_free, 1);
}

/* A member that returns 0 after its group was cancelled does not undo the cancellation: the
   group still reports it after urt_group_wait. */
static int ignore_cancel(void *arg)
{
    (void)arg;
    urt_sleep(URT_SEC(10));
    return 0;
}

static int cancel_status_main(void *arg)
{
    int *res = arg;
    urt_group *g = urt_group_new();
    urt_group_spawn(g, ignore_cancel, NULL);
    urt_yield();
    urt_group_cancel(g);
    res[0] = urt_group_wait(g);
    res[1] = urt_group_cancelled(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(group_cancel_reported_after_wait)
{
    int res[2] = { 1, 0 };
    assert_int_equal(urt_run(cancel_status_main, res, NULL), 0);
    assert_int_equal(res[0], 0);
    assert_int_equal(res[1], 1);
}

/* ---- members, handles, names, bad arguments -------------------------------------------------- */

struct member_info {
    urt_task *self;
    char name[32];
};

static int report_self(void *arg)
{
    struct member_info *mi = arg;
    mi->self = urt_self();
    snprintf(mi->name, sizeof mi->name, "%s", urt_task_name(NULL));
    return 0;
}

struct grow {
    int depth;
    int *count;
    urt_group *g;
};

static int grower(void *arg)
{
    struct grow *gr = arg;
    (*gr->count)++;
    if (gr->depth > 0) {
        static struct grow kids[64];
        static int nk;
        struct grow *k = &kids[nk++];
        *k = (struct grow){ gr->depth - 1, gr->count, gr->g };
        urt_sleep(URT_MSEC(1));
        return urt_group_spawn(gr->g, grower, k);   /* a member spawns into its own group */
    }
    return 0;
}

struct misc {
    int null_spawn, null_fn, null_wait;
    char name[32];
    int grown;
    int grow_wait;
};

static int misc_main(void *arg)
{
    struct misc *m = arg;
    urt_group *g = urt_group_new();
    struct member_info mi;
    memset(&mi, 0, sizeof mi);
    struct urt_spawn_opts o = { .name = "grp-member" };
    EXPECT_EQ(urt_group_spawn_ex(g, report_self, &mi, &o), 0);
    EXPECT_EQ(urt_group_wait(g), 0);
    EXPECT(mi.self != NULL);
    snprintf(m->name, sizeof m->name, "%s", mi.name);

    m->null_spawn = urt_group_spawn(NULL, report_self, &mi);
    m->null_fn = urt_group_spawn(g, NULL, NULL);
    m->null_wait = urt_group_wait(NULL);
    urt_group_cancel(NULL);
    urt_group_free(NULL);

    /* members that spawn into their own group while it is being waited for */
    struct grow root = { 5, &m->grown, g };
    EXPECT_EQ(urt_group_spawn(g, grower, &root), 0);
    m->grow_wait = urt_group_wait(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(members_names_and_bad_arguments)
{
    struct misc m;
    memset(&m, 0, sizeof m);
    assert_int_equal(urt_run(misc_main, &m, NULL), 0);
    assert_string_equal(m.name, "grp-member");
    assert_int_equal(m.null_spawn, -EINVAL);
    assert_int_equal(m.null_fn, -EINVAL);
    assert_int_equal(m.null_wait, -EINVAL);
    assert_int_equal(m.grown, 6);
    assert_int_equal(m.grow_wait, 0);
}

/* Joining or detaching a running member of a group is refused with -EINVAL. */
struct member_handle {
    urt_task *self;
    int release;
};

static int hold_handle(void *arg)
{
    struct member_handle *h = arg;
    h->self = urt_self();
    while (!h->release)
        if (urt_sleep(URT_MSEC(1)) != 0)
            break;
    return 0;
}

struct handle_res {
    int join, detach, wait;
};

static int handle_main(void *arg)
{
    struct handle_res *r = arg;
    urt_group *g = urt_group_new();
    struct member_handle h = { NULL, 0 };
    EXPECT_EQ(urt_group_spawn(g, hold_handle, &h), 0);
    urt_yield();
    EXPECT(h.self != NULL);
    r->join = urt_join(h.self);
    r->detach = urt_detach_checked(h.self);
    h.release = 1;
    r->wait = urt_group_wait(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(member_handle_not_joinable)
{
    struct handle_res r = { 0, 0, 1 };
    assert_int_equal(urt_run(handle_main, &r, NULL), 0);
    assert_int_equal(r.join, -EINVAL);
    assert_int_equal(r.detach, -EINVAL);
    assert_int_equal(r.wait, 0);
}

/* When urt_run's first task returns, group members still running are cancelled too. */
static int leave_group_running(void *arg)
{
    struct member *m = arg;
    urt_group *g = urt_group_new();
    urt_group_spawn(g, member_fn, m);
    urt_sleep(URT_MSEC(5));
    /* the waiter task owns the group: it waits and frees it even when cancelled */
    int r = urt_group_wait(g);
    urt_group_free(g);
    return r;
}

static int shutdown_main(void *arg)
{
    urt_detach(urt_spawn(leave_group_running, arg));
    urt_sleep(URT_MSEC(10));
    return 7;
}

UT_TEST(run_end_cancels_group_members)
{
    struct member m;
    members_init(&m, 1, 10000, 0);
    uint64_t t0 = urt_now();
    assert_int_equal(urt_run(shutdown_main, &m, NULL), 7);
    assert_true(urt_now() - t0 < URT_SEC(5));
    assert_int_equal(m.sleep_res, -ECANCELED);
    assert_int_equal(m.finished, 1);
}

/* A member that frees its own group can never see the group empty: the deadlock breaker ends its
   wait with -EDEADLK, and the group must not be freed under the member that is still in it (found
   by review: a use-after-free at the member's exit, which ASan reports). */
static urt_group *own_group;
static int free_own_group(void *arg)
{
    (void)arg;
    urt_group_free(own_group);
    return 0;
}

static int free_own_main(void *arg)
{
    (void)arg;
    own_group = urt_group_new();
    EXPECT_EQ(urt_group_spawn(own_group, free_own_group, NULL), 0);
    EXPECT_EQ(urt_sleep(URT_MSEC(5)), 0);
    return 0;
}

UT_TEST(member_freeing_its_own_group)
{
    EXPECT_EQ(urt_run(free_own_main, NULL, NULL), 0);
    struct urt_stats st;
    urt_stats(&st);
    EXPECT_EQ(st.tasks_live, 0);
    EXPECT_EQ(st.ops_inflight, 0);
}

/* ---- a deliberate urt_group_cancel against a member's own -ECANCELED ------------------------- */

static int return_ecanceled(void *arg)
{
    (void)arg;
    return -ECANCELED;   /* on its own: nobody cancelled it */
}

static int return_eio_when_cancelled(void *arg)
{
    (void)arg;
    int e = urt_sleep(URT_SEC(10));
    return e == -ECANCELED ? -EIO : e;   /* its cleanup failed after the cancel */
}

/* For each case: what urt_group_wait returned and what urt_group_cancelled said after it. */
struct cancel_kinds {
    int own_wait, own_cancelled;             /* a member returns -ECANCELED, no group cancel   */
    int own_first_wait, own_first_cancelled; /* the member's -ECANCELED, then urt_group_cancel */
    int cancel_first_wait, cancel_first_cancelled, cancel_first_st[3];
                                             /* urt_group_cancel, members end with -ECANCELED  */
    int later_err_wait;                      /* urt_group_cancel, a member then returns -EIO   */
    struct member m[3];
};

static int cancel_kinds_main(void *arg)
{
    struct cancel_kinds *k = arg;
    urt_group *g = urt_group_new();

    EXPECT_EQ(urt_group_cancelled(g), 0);
    EXPECT_EQ(urt_group_spawn(g, return_ecanceled, NULL), 0);
    EXPECT_EQ(urt_group_spawn(g, member_fn, &k->m[0]), 0);
    k->own_wait = urt_group_wait(g);
    k->own_cancelled = urt_group_cancelled(g);

    EXPECT_EQ(urt_group_spawn(g, return_ecanceled, NULL), 0);
    EXPECT_EQ(urt_group_spawn(g, member_fn, &k->m[1]), 0);
    urt_yield();   /* return_ecanceled has ended: the group failed with its -ECANCELED */
    urt_group_cancel(g);
    k->own_first_wait = urt_group_wait(g);
    k->own_first_cancelled = urt_group_cancelled(g);

    for (int i = 0; i < 3; i++)
        EXPECT_EQ(urt_group_spawn_status(g, member_fn, &k->m[2], NULL, &k->cancel_first_st[i]), 0);
    urt_yield();
    urt_group_cancel(g);
    k->cancel_first_wait = urt_group_wait(g);
    k->cancel_first_cancelled = urt_group_cancelled(g);

    EXPECT_EQ(urt_group_spawn(g, return_eio_when_cancelled, NULL), 0);
    EXPECT_EQ(urt_group_spawn(g, ignore_cancel, NULL), 0);
    urt_yield();
    urt_group_cancel(g);
    k->later_err_wait = urt_group_wait(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(deliberate_cancel_vs_member_returning_ecanceled)
{
    struct cancel_kinds k;
    memset(&k, 0, sizeof k);
    members_init(k.m, 3, 10000, 0);
    for (int i = 0; i < 3; i++)
        k.cancel_first_st[i] = 12345;
    assert_int_equal(urt_run(cancel_kinds_main, &k, NULL), 0);
    assert_int_equal(k.own_wait, -ECANCELED);       /* a failure, and nobody cancelled */
    assert_int_equal(k.own_cancelled, 0);
    assert_int_equal(k.m[0].sleep_res, -ECANCELED); /* its sibling was cancelled by it */
    assert_int_equal(k.own_first_wait, -ECANCELED); /* the failure came first: it stays */
    assert_int_equal(k.own_first_cancelled, 1);
    assert_int_equal(k.cancel_first_wait, 0);       /* the cancel came first: no failure */
    assert_int_equal(k.cancel_first_cancelled, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(k.cancel_first_st[i], -ECANCELED);
    assert_int_equal(k.later_err_wait, -EIO);       /* not -ECANCELED: still a failure */
}

/* ---- every member's status ---------------------------------------------------------------- */

static int return_index(void *arg)
{
    return (int)(intptr_t)arg;
}

static int sleep_then_return_index(void *arg)
{
    int i = (int)(intptr_t)arg;
    int e = urt_sleep(URT_MSEC((i * 37) % 10));
    return e ? e : i + 1000;
}

struct collect {
    int st[100], st2[100], st3[100];
    int wait1, wait2, wait3, cancelled3;
};

static int collect_main(void *arg)
{
    struct collect *c = arg;
    urt_group *g = urt_group_new();
    /* 100 members return i at once: the first to run with a nonzero status (1: the run queue is
       FIFO) is the group's, and every member's own status is collected */
    for (int i = 0; i < 100; i++)
        EXPECT_EQ(urt_group_spawn_status(g, return_index, (void *)(intptr_t)i, NULL, &c->st[i]),
                  0);
    c->wait1 = urt_group_wait(g);

    /* reused, with the slots of the first round: members end in a shuffled order after sleeps;
       the first to end fails the group, and the rest are cancelled in their sleeps */
    for (int i = 0; i < 100; i++)
        EXPECT_EQ(urt_group_spawn_status(g, sleep_then_return_index, (void *)(intptr_t)i, NULL,
                                         &c->st2[i]),
                  0);
    c->wait2 = urt_group_wait(g);

    /* mixed with members whose status nobody asked for, and a deliberate cancel */
    struct urt_spawn_opts o = { .name = "collected" };
    for (int i = 0; i < 100; i++) {
        if (i % 2)
            EXPECT_EQ(urt_group_spawn_status(g, ignore_cancel, NULL, &o, &c->st3[i]), 0);
        else
            EXPECT_EQ(urt_group_spawn_status(g, ignore_cancel, NULL, NULL, NULL), 0);
    }
    urt_yield();
    urt_group_cancel(g);
    c->wait3 = urt_group_wait(g);
    c->cancelled3 = urt_group_cancelled(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(every_member_status_collected)
{
    struct collect c;
    for (int i = 0; i < 100; i++)
        c.st[i] = c.st2[i] = c.st3[i] = 12345;
    assert_int_equal(urt_run(collect_main, &c, NULL), 0);
    assert_int_equal(c.wait1, 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(c.st[i], i);   /* untouched by the later rounds' reuse of the slots */
    /* member 0 and those with (i * 37) % 10 == 0 sleep 0 ms: the first of them to end is 1000 */
    assert_int_equal(c.wait2, 1000);
    int ended = 0, cancelled = 0;
    for (int i = 0; i < 100; i++) {
        if (c.st2[i] == i + 1000)
            ended++;
        else if (c.st2[i] == -ECANCELED)
            cancelled++;
        else
            fail_msg("member %d: status %d", i, c.st2[i]);
    }
    assert_int_equal(ended + cancelled, 100);
    assert_true(ended >= 1 && cancelled >= 80);   /* those asleep for 1 ms or more */
    assert_int_equal(c.wait3, 0);
    assert_int_equal(c.cancelled3, 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(c.st3[i], i % 2 ? 0 : 12345);   /* ignore_cancel returns 0 */
}

/* A failing member cancels its siblings; its status is returned, theirs are collected. */
struct fail_collect {
    struct member bad, slow[5], quick[3];
    int st_bad, st_slow[5], st_quick[3];
    int wait_res, cancelled;
};

static int fail_collect_main(void *arg)
{
    struct fail_collect *f = arg;
    urt_group *g = urt_group_new();
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(urt_group_spawn_status(g, member_fn, &f->slow[i], NULL, &f->st_slow[i]), 0);
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(urt_group_spawn_status(g, member_fn, &f->quick[i], NULL, &f->st_quick[i]), 0);
    EXPECT_EQ(urt_group_spawn_status(g, member_fn, &f->bad, NULL, &f->st_bad), 0);
    f->wait_res = urt_group_wait(g);
    f->cancelled = urt_group_cancelled(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(failing_member_status_returned_siblings_collected)
{
    struct fail_collect f;
    memset(&f, 0, sizeof f);
    members_init(&f.bad, 1, 5, 42);
    members_init(f.slow, 5, 10000, 0);
    members_init(f.quick, 3, 1, 0);
    assert_int_equal(urt_run(fail_collect_main, &f, NULL), 0);
    assert_int_equal(f.wait_res, 42);
    assert_int_equal(f.cancelled, 0);   /* a failure is not urt_group_cancel */
    assert_int_equal(f.st_bad, 42);
    for (int i = 0; i < 5; i++)
        assert_int_equal(f.st_slow[i], -ECANCELED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f.st_quick[i], 0);
}

/* Statuses are collected on the waiter's deadline and by urt_group_free as well. */
struct free_collect {
    struct member m[4];
    int st_wait[2], st_free[2];
    int wait_res;
};

static int free_collect_main(void *arg)
{
    struct free_collect *f = arg;
    urt_group *g = urt_group_new();
    for (int i = 0; i < 2; i++)
        EXPECT_EQ(urt_group_spawn_status(g, member_fn, &f->m[i], NULL, &f->st_wait[i]), 0);
    urt_deadline(urt_now() + URT_MSEC(5));
    f->wait_res = urt_group_wait(g);
    urt_deadline(0);
    for (int i = 0; i < 2; i++)
        EXPECT_EQ(urt_group_spawn_status(g, member_fn, &f->m[2 + i], NULL, &f->st_free[i]), 0);
    urt_yield();
    urt_group_free(g);
    return 0;
}

UT_TEST(statuses_collected_on_deadline_and_free)
{
    struct free_collect f;
    memset(&f, 0, sizeof f);
    members_init(f.m, 4, 10000, 0);
    assert_int_equal(urt_run(free_collect_main, &f, NULL), 0);
    assert_int_equal(f.wait_res, -ETIMEDOUT);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f.st_wait[i], -ECANCELED);
        assert_int_equal(f.st_free[i], -ECANCELED);
    }
}

/* Spawns refused while cancelled; the round after urt_group_wait starts clean. */
struct reuse {
    struct member m;
    int spawn_cancelled, wait_cancelled, cancelled_before_spawn, spawn_after, cancelled_after;
    int wait_after, st_after;
    int idle_cancel_wait, idle_cancelled;
    int null_cancelled, null_spawn, null_fn;
};

static int reuse_main(void *arg)
{
    struct reuse *r = arg;
    urt_group *g = urt_group_new();
    EXPECT_EQ(urt_group_spawn(g, ignore_cancel, NULL), 0);
    urt_group_cancel(g);
    r->spawn_cancelled = urt_group_spawn_status(g, member_fn, &r->m, NULL, &r->st_after);
    r->wait_cancelled = urt_group_wait(g);
    r->cancelled_before_spawn = urt_group_cancelled(g);
    r->spawn_after = urt_group_spawn_status(g, member_fn, &r->m, NULL, &r->st_after);
    r->cancelled_after = urt_group_cancelled(g);
    r->wait_after = urt_group_wait(g);
    /* a cancel of an empty group: wait returns 0 at once, and the cancel is reported */
    urt_group_cancel(g);
    r->idle_cancel_wait = urt_group_wait(g);
    r->idle_cancelled = urt_group_cancelled(g);
    r->null_cancelled = urt_group_cancelled(NULL);
    r->null_spawn = urt_group_spawn_status(NULL, member_fn, &r->m, NULL, &r->st_after);
    r->null_fn = urt_group_spawn_status(g, NULL, NULL, NULL, &r->st_after);
    urt_group_free(g);
    return 0;
}

UT_TEST(group_reuse_after_cancel_and_bad_arguments)
{
    struct reuse r;
    memset(&r, 0, sizeof r);
    members_init(&r.m, 1, 1, 7);
    r.st_after = 12345;
    assert_int_equal(urt_run(reuse_main, &r, NULL), 0);
    assert_int_equal(r.spawn_cancelled, -ECANCELED);
    assert_int_equal(r.wait_cancelled, 0);
    assert_int_equal(r.cancelled_before_spawn, 1);
    assert_int_equal(r.spawn_after, 0);
    assert_int_equal(r.cancelled_after, 0);
    assert_int_equal(r.wait_after, 7);
    assert_int_equal(r.st_after, 7);   /* written once, by the member that was spawned */
    assert_int_equal(r.idle_cancel_wait, 0);
    assert_int_equal(r.idle_cancelled, 1);
    assert_int_equal(r.null_cancelled, -EINVAL);
    assert_int_equal(r.null_spawn, -EINVAL);
    assert_int_equal(r.null_fn, -EINVAL);
    /* outside a task */
    assert_int_equal(urt_group_cancelled(NULL), -EPERM);
    assert_int_equal(urt_group_spawn_status(NULL, member_fn, NULL, NULL, NULL), -EPERM);
}

/* A member with a status slot that frees its own group: it is detached, and its status is never
   written into the freed group's slot (ASan would report it) nor into *status. */
static int own_group_status = 12345;

static int free_own_status_main(void *arg)
{
    (void)arg;
    own_group = urt_group_new();
    EXPECT_EQ(urt_group_spawn_status(own_group, free_own_group, NULL, NULL, &own_group_status),
              0);
    EXPECT_EQ(urt_sleep(URT_MSEC(5)), 0);
    return 0;
}

UT_TEST(status_member_freeing_its_own_group)
{
    EXPECT_EQ(urt_run(free_own_status_main, NULL, NULL), 0);
    EXPECT_EQ(own_group_status, 12345);
    struct urt_stats st;
    urt_stats(&st);
    EXPECT_EQ(st.tasks_live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(member_freeing_its_own_group),
        cmocka_unit_test(wait_all_ok_returns_0),
        cmocka_unit_test(first_error_cancels_others_and_is_returned),
        cmocka_unit_test(spawn_into_failed_group_ecanceled_then_reuse),
        cmocka_unit_test(group_inside_group_error_propagates),
        cmocka_unit_test(cancel_outer_group_cancels_inner_members),
        cmocka_unit_test(cancelling_or_timing_out_the_waiter_cancels_members),
        cmocka_unit_test(group_cancel_and_group_free),
        cmocka_unit_test(group_cancel_reported_after_wait),
        cmocka_unit_test(members_names_and_bad_arguments),
        cmocka_unit_test(member_handle_not_joinable),
        cmocka_unit_test(run_end_cancels_group_members),
        cmocka_unit_test(deliberate_cancel_vs_member_returning_ecanceled),
        cmocka_unit_test(every_member_status_collected),
        cmocka_unit_test(failing_member_status_returned_siblings_collected),
        cmocka_unit_test(statuses_collected_on_deadline_and_free),
        cmocka_unit_test(group_reuse_after_cancel_and_bad_arguments),
        cmocka_unit_test(status_member_freeing_its_own_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
