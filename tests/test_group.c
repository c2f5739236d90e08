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
    int inner_wait, outer_wait;
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
    urt_group_free(g);
    return 0;
}

UT_TEST(cancel_outer_group_cancels_inner_members)
{
    struct nested_cancel n;
    memset(&n, 0, sizeof n);
    members_init(n.inner, 3, 10000, 0);
    assert_int_equal(urt_run(nested_cancel_main, &n, NULL), 0);
    assert_int_equal(n.inner_wait, -ECANCELED);
    assert_int_equal(n.outer_wait, -ECANCELED);
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
    assert_int_equal(s.cancel_wait, -ECANCELED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.c[i].sleep_res, -ECANCELED);
        assert_int_equal(s.f[i].sleep_res, -ECANCELED);
    }
    assert_int_equal(s.finished_after_free, 1);
}

/* A member that returns 0 after its group was cancelled does not undo the cancellation. */
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
    *res = urt_group_wait(g);
    urt_group_free(g);
    return 0;
}

UT_TEST(group_cancel_status_sticks)
{
    int res = 1;
    assert_int_equal(urt_run(cancel_status_main, &res, NULL), 0);
    assert_int_equal(res, -ECANCELED);
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
        cmocka_unit_test(group_cancel_status_sticks),
        cmocka_unit_test(members_names_and_bad_arguments),
        cmocka_unit_test(member_handle_not_joinable),
        cmocka_unit_test(run_end_cancels_group_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
