/*
 * test_scope.c - cancel scopes (urt_scope_enter/exit/cancel, DESIGN.md section 8): nesting and
 * the earliest deadline, urt_deadline as the outermost scope, shields (deadlines, urt_cancel and
 * scope cancels held off, then applied from the shield's exit on), urt_scope_cancel from another
 * task, no leak of a cancel past its scope's exit, out-of-order exits, bad calls, and no timer
 * work for a scope that nothing blocks in.
 *
 * Checks inside tasks are EXPECTs (they record); a task that must block waits on a long sleep or
 * a channel, and the task that interrupts it first waits (yields) until it has blocked: no test
 * sleeps to wait for an event. Time bounds are lower bounds plus a generous upper one.
 */
#include "urt_test.h"

/* A shared flag between tasks of one runtime: set just before a call that blocks, so that the
   task that sees it set knows the other one is parked (nothing runs between the two). */
static void wait_flag(const int *flag)
{
    while (!*flag)
        urt_yield();
}

/* ---- nesting: the earliest deadline wins ------------------------------------------------- */

static int earliest_main(void *arg)
{
    (void)arg;
    urt_scope outer, inner;

    /* The example: a caller's 50 ms around a library's 1 s around a 200 ms sleep. The
       sleep can end with -ETIMEDOUT only by a deadline before its own end, which only the outer
       scope has: the inner, later one does not extend it. */
    uint64_t t0 = urt_now();
    urt_scope_enter(&outer, t0 + URT_MSEC(50), 0);
    urt_scope_enter(&inner, urt_now() + URT_SEC(1), 0);
    int r = urt_sleep(URT_MSEC(200));
    uint64_t el = urt_now() - t0;
    EXPECT_EQ(r, -ETIMEDOUT);
    EXPECT(el >= URT_MSEC(50));
    EXPECT(el < URT_SEC(1));
    UT_NOTE("  50 ms scope around 1 s scope around 200 ms sleep: -ETIMEDOUT after %.1f ms\n",
            (double)el / 1e6);
    EXPECT_EQ(urt_scope_exit(&inner), 0);   /* not the inner's deadline */
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);      /* the outer one still applies */
    EXPECT_EQ(urt_scope_exit(&outer), 1);
    EXPECT_EQ(urt_yield(), 0);               /* and ends with it */

    /* The inner one earlier: it fires, and the outer one (later) does not. */
    t0 = urt_now();
    urt_scope_enter(&outer, t0 + URT_SEC(10), 0);
    urt_scope_enter(&inner, t0 + URT_MSEC(20), 0);
    EXPECT_EQ(urt_sleep(URT_SEC(5)), -ETIMEDOUT);
    el = urt_now() - t0;
    EXPECT(el >= URT_MSEC(20));
    EXPECT(el < URT_SEC(5));
    EXPECT_EQ(urt_scope_exit(&inner), 1);
    EXPECT_EQ(urt_sleep(URT_MSEC(1)), 0);
    EXPECT_EQ(urt_scope_exit(&outer), 0);

    /* Three deep, the middle one earliest. */
    urt_scope a, b, c;
    t0 = urt_now();
    urt_scope_enter(&a, t0 + URT_SEC(10), 0);
    urt_scope_enter(&b, t0 + URT_MSEC(20), 0);
    urt_scope_enter(&c, 0, 0);   /* no deadline of its own */
    EXPECT_EQ(urt_sleep(URT_SEC(5)), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(20));
    EXPECT_EQ(urt_scope_exit(&c), 0);
    EXPECT_EQ(urt_scope_exit(&b), 1);
    EXPECT_EQ(urt_scope_exit(&a), 0);

    /* A deadline passed already at entry: the first call inside is refused. */
    urt_scope_enter(&outer, urt_now(), 0);
    urt_scope_enter(&inner, 0, 0);
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);
    EXPECT_EQ(urt_scope_exit(&inner), 0);
    EXPECT_EQ(urt_scope_exit(&outer), 1);

    /* A scope nothing blocked or was refused in returns 0 even though its deadline passed. */
    urt_scope_enter(&outer, urt_now() + URT_MSEC(1), 0);
    uint64_t until = urt_now() + URT_MSEC(3);
    while (urt_now() < until)
        ;
    EXPECT_EQ(urt_scope_exit(&outer), 0);
    return 0;
}

UT_TEST(nested_scopes_earliest_deadline_wins)
{
    assert_int_equal(urt_run(earliest_main, NULL, NULL), 0);
}

/* A scope's deadline ends a blocking channel wait and an I/O call the same way. */
struct io_res {
    int fds[2];
    urt_chan *c;
    int blocking;
};

static int late_sender(void *arg)
{
    struct io_res *r = arg;
    urt_sleep(URT_MSEC(150));
    int v = 7;
    return urt_chan_send(r->c, &v);
}

static int io_scope_main(void *arg)
{
    struct io_res *r = arg;
    char buf[8];
    urt_scope s, o;
    struct urt_stats st0, st;
    r->c = urt_chan_new(sizeof(int), 0);   /* (a local channel is made by its runtime) */
    urt_stats(&st0);

    uint64_t t0 = urt_now();
    urt_scope_enter(&s, t0 + URT_MSEC(20), 0);
    EXPECT_EQ(urt_recv(r->fds[0], buf, sizeof buf, 0), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(20));
    EXPECT_EQ(urt_scope_exit(&s), 1);
    /* the socket still works */
    EXPECT_EQ(write(r->fds[1], "x", 1), 1);
    EXPECT_EQ(urt_recv(r->fds[0], buf, sizeof buf, 0), 1);

    urt_scope_enter(&s, urt_now() + URT_MSEC(20), 0);
    int v;
    EXPECT_EQ(urt_chan_recv(r->c, &v), -ETIMEDOUT);
    EXPECT_EQ(urt_scope_exit(&s), 1);

    /* An I/O call inside a scope that completes at once leaves the scope's timer armed for the
       next call (as urt_deadline's); leaving the scope, with no deadline outside it, disarms it. */
    urt_scope_enter(&s, urt_now() + URT_SEC(10), 0);
    EXPECT_EQ(write(r->fds[1], "y", 1), 1);
    EXPECT_EQ(urt_recv(r->fds[0], buf, sizeof buf, 0), 1);
    EXPECT_EQ(urt_scope_exit(&s), 0);
    urt_stats(&st);
    EXPECT_EQ(st.timers_armed, st0.timers_armed);

    /* An inner scope's timer left armed after its exit, under a later outer deadline, follows
       the outer one when it fires: it must not end a wait that goes on past the inner deadline. */
    t0 = urt_now();
    urt_scope_enter(&o, t0 + URT_SEC(10), 0);
    urt_scope_enter(&s, t0 + URT_MSEC(50), 0);
    EXPECT_EQ(write(r->fds[1], "z", 1), 1);
    EXPECT_EQ(urt_recv(r->fds[0], buf, sizeof buf, 0), 1);
    EXPECT_EQ(urt_scope_exit(&s), 0);
    urt_task *t = urt_spawn(late_sender, r);
    EXPECT_EQ(urt_chan_recv(r->c, &v), 0);   /* ~150 ms: past the inner's 50 ms */
    EXPECT(urt_now() - t0 >= URT_MSEC(150));
    EXPECT_EQ(v, 7);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(urt_scope_exit(&o), 0);
    urt_stats(&st);
    EXPECT_EQ(st.timers_armed, st0.timers_armed);
    urt_chan_free(r->c);
    return 0;
}

UT_TEST(scope_deadline_ends_io_and_channel_waits)
{
    struct io_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r.fds), 0);
    assert_int_equal(urt_run(io_scope_main, &r, NULL), 0);
    close(r.fds[0]);
    close(r.fds[1]);
}

/* ---- urt_deadline: the task's outermost scope --------------------------------------------- */

static int task_deadline_main(void *arg)
{
    (void)arg;
    urt_scope s;
    uint64_t t0 = urt_now();

    /* the task's deadline earlier than a scope's: it wins; the scope's exit says 0 */
    EXPECT_EQ(urt_deadline(t0 + URT_MSEC(50)), 0);
    urt_scope_enter(&s, t0 + URT_SEC(1), 0);
    EXPECT_EQ(urt_sleep(URT_MSEC(200)), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(50));
    EXPECT_EQ(urt_scope_exit(&s), 0);
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);   /* the task's deadline outlives the scope */
    EXPECT_EQ(urt_deadline(0), t0 + URT_MSEC(50));
    EXPECT_EQ(urt_yield(), 0);

    /* a scope's deadline earlier than the task's: the scope fires, the task's stays */
    t0 = urt_now();
    urt_deadline(t0 + URT_SEC(10));
    urt_scope_enter(&s, t0 + URT_MSEC(20), 0);
    EXPECT_EQ(urt_sleep(URT_SEC(5)), -ETIMEDOUT);
    EXPECT_EQ(urt_scope_exit(&s), 1);
    EXPECT_EQ(urt_sleep(URT_MSEC(1)), 0);
    EXPECT_EQ(urt_deadline(0), t0 + URT_SEC(10));

    /* urt_deadline set inside a scope is still the outermost: earlier, it applies... */
    t0 = urt_now();
    urt_scope_enter(&s, t0 + URT_SEC(10), 0);
    uint64_t old = urt_deadline(t0 + URT_MSEC(20));
    EXPECT_EQ(old, 0);
    EXPECT_EQ(urt_sleep(URT_SEC(5)), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(20));
    urt_deadline(old);
    EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_scope_exit(&s), 0);

    /* ... later, it does not extend the scope's */
    t0 = urt_now();
    urt_scope_enter(&s, t0 + URT_MSEC(20), 0);
    urt_deadline(t0 + URT_SEC(10));
    EXPECT_EQ(urt_sleep(URT_SEC(5)), -ETIMEDOUT);
    EXPECT(urt_now() - t0 < URT_SEC(5));
    EXPECT_EQ(urt_scope_exit(&s), 1);
    EXPECT_EQ(urt_sleep(URT_MSEC(1)), 0);
    urt_deadline(0);
    return 0;
}

UT_TEST(task_deadline_is_the_outermost_scope)
{
    assert_int_equal(urt_run(task_deadline_main, NULL, NULL), 0);
}

/* ---- shields ----------------------------------------------------------------------------- */

static int shield_deadline_main(void *arg)
{
    (void)arg;
    urt_scope outer, sh, in;

    /* An outer deadline passes while a shielded sleep runs: the sleep finishes with 0, and the
       deadline hits right after the shield exits. */
    uint64_t t0 = urt_now();
    urt_scope_enter(&outer, t0 + URT_MSEC(30), 0);
    urt_scope_enter(&sh, 0, URT_SHIELD);
    EXPECT_EQ(urt_sleep(URT_MSEC(100)), 0);
    EXPECT(urt_now() - t0 >= URT_MSEC(100));
    /* a plain scope inside the shield is as deaf as the shield */
    urt_scope_enter(&in, 0, 0);
    EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_scope_exit(&in), 0);
    EXPECT_EQ(urt_scope_exit(&sh), 0);
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);
    EXPECT_EQ(urt_sleep(URT_MSEC(1)), -ETIMEDOUT);
    EXPECT_EQ(urt_scope_exit(&outer), 1);
    EXPECT_EQ(urt_yield(), 0);

    /* The same with the task's own deadline outside the shield. */
    t0 = urt_now();
    urt_deadline(t0 + URT_MSEC(30));
    urt_scope_enter(&sh, 0, URT_SHIELD);
    EXPECT_EQ(urt_sleep(URT_MSEC(100)), 0);
    EXPECT_EQ(urt_scope_exit(&sh), 0);
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);
    urt_deadline(0);
    EXPECT_EQ(urt_yield(), 0);

    /* A deadline already passed when the shield is entered is held off too. */
    urt_scope_enter(&outer, urt_now(), 0);
    urt_scope_enter(&sh, 0, URT_SHIELD);
    EXPECT_EQ(urt_sleep(URT_MSEC(1)), 0);
    EXPECT_EQ(urt_scope_exit(&sh), 0);
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);
    EXPECT_EQ(urt_scope_exit(&outer), 1);

    /* The shield's own deadline applies (later than the outer one, which it hides). */
    t0 = urt_now();
    urt_scope_enter(&outer, t0 + URT_MSEC(20), 0);
    urt_scope_enter(&sh, t0 + URT_MSEC(60), URT_SHIELD);
    EXPECT_EQ(urt_sleep(URT_SEC(5)), -ETIMEDOUT);
    EXPECT(urt_now() - t0 >= URT_MSEC(60));
    EXPECT_EQ(urt_scope_exit(&sh), 1);
    EXPECT_EQ(urt_scope_exit(&outer), 0);   /* nothing was ended or refused by its deadline */
    return 0;
}

UT_TEST(shield_holds_off_outer_deadlines_until_it_exits)
{
    assert_int_equal(urt_run(shield_deadline_main, NULL, NULL), 0);
}

/* A goodbye after a cancel: a shielded channel send and urt_send succeed after
   urt_cancel(urt_self()), and the cancel applies again once the shield exits. */
struct goodbye {
    urt_chan *c;
    int fds[2];
    int got, sent;
    int blocking, cancelled_by_other;
    urt_task *sleeper;
};

static int goodbye_task(void *arg)
{
    struct goodbye *g = arg;
    int v = 41;
    urt_cancel(urt_self());
    EXPECT(urt_cancelled());
    EXPECT_EQ(urt_chan_send(g->c, &v), -ECANCELED);
    EXPECT_EQ(urt_send(g->fds[0], "x", 1, 0), -ECANCELED);
    urt_scope sh;
    urt_scope_enter(&sh, 0, URT_SHIELD);
    v = 42;
    EXPECT_EQ(urt_chan_send(g->c, &v), 0);   /* a rendezvous: it waits for the receiver */
    EXPECT_EQ(urt_send(g->fds[0], "bye", 3, 0), 3);
    EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_scope_exit(&sh), 0);       /* urt_cancel is no scope's */
    EXPECT_EQ(urt_chan_send(g->c, &v), -ECANCELED);
    EXPECT_EQ(urt_send(g->fds[0], "x", 1, 0), -ECANCELED);
    EXPECT_EQ(urt_yield(), -ECANCELED);
    EXPECT(urt_cancelled());
    g->sent = 1;
    return 0;
}

/* urt_cancel from another task while a shielded call waits: the call goes on to its end. */
static int shielded_sleeper(void *arg)
{
    struct goodbye *g = arg;
    urt_scope sh;
    urt_scope_enter(&sh, 0, URT_SHIELD);
    g->blocking = 1;
    uint64_t t0 = urt_now();
    EXPECT_EQ(urt_sleep(URT_MSEC(30)), 0);
    EXPECT(urt_now() - t0 >= URT_MSEC(30));
    EXPECT_EQ(g->cancelled_by_other, 1);
    int v;
    g->blocking = 2;
    EXPECT_EQ(urt_chan_recv(g->c, &v), 0);   /* a wait that the cancel also leaves alone */
    EXPECT_EQ(v, 43);
    EXPECT_EQ(urt_scope_exit(&sh), 0);
    EXPECT_EQ(urt_yield(), -ECANCELED);
    return 0;
}

static int goodbye_main(void *arg)
{
    struct goodbye *g = arg;
    g->c = urt_chan_new(sizeof(int), 0);
    urt_task *t = urt_spawn(goodbye_task, g);
    for (int i = 0; i < 5; i++)
        urt_yield();   /* the task waits in its shielded send */
    EXPECT_EQ(urt_chan_recv(g->c, &g->got), 0);
    char buf[8];
    EXPECT_EQ(urt_recv(g->fds[1], buf, sizeof buf, 0), 3);
    EXPECT(memcmp(buf, "bye", 3) == 0);
    EXPECT_EQ(urt_join(t), 0);
    int v;
    EXPECT_EQ(urt_chan_try_recv(g->c, &v), -EAGAIN);   /* nothing after the goodbye */

    t = urt_spawn(shielded_sleeper, g);
    wait_flag(&g->blocking);
    urt_cancel(t);
    g->cancelled_by_other = 1;
    while (g->blocking != 2)
        urt_yield();
    v = 43;
    EXPECT_EQ(urt_chan_send(g->c, &v), 0);
    EXPECT_EQ(urt_join(t), 0);
    urt_chan_free(g->c);
    return 0;
}

UT_TEST(shield_lets_a_goodbye_through_after_cancel)
{
    struct goodbye g;
    memset(&g, 0, sizeof g);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g.fds), 0);
    assert_int_equal(urt_run(goodbye_main, &g, NULL), 0);
    assert_int_equal(g.sent, 1);
    assert_int_equal(g.got, 42);
    close(g.fds[0]);
    close(g.fds[1]);
}

/* ---- urt_scope_cancel ---------------------------------------------------------------------- */

struct sc {
    urt_scope *outer, *inner;
    int blocking, closed, go_on, cancelled;
    int phase;
};

/* Cancelled through the enclosing scope while an inner (plain) one blocks. */
static int sc_victim(void *arg)
{
    struct sc *r = arg;
    urt_scope outer, inner;
    urt_scope_enter(&outer, 0, 0);
    urt_scope_enter(&inner, 0, 0);
    r->outer = &outer;
    r->inner = &inner;
    r->blocking = 1;
    EXPECT_EQ(urt_sleep(URT_SEC(3600)), -ECANCELED);
    EXPECT_EQ(urt_yield(), -ECANCELED);
    EXPECT_EQ(urt_scope_exit(&inner), 0);
    EXPECT_EQ(urt_yield(), -ECANCELED);   /* still inside the cancelled one */
    EXPECT_EQ(urt_scope_exit(&outer), 1);
    EXPECT(!urt_cancelled());
    /* it does not leak: calls work again, also after a cancel of the closed scope */
    EXPECT_EQ(urt_yield(), 0);
    r->closed = 1;
    while (!r->go_on)
        EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_sleep(URT_MSEC(1)), 0);
    /* a new scope in the same memory starts uncancelled */
    urt_scope_enter(&outer, 0, 0);
    EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_scope_exit(&outer), 0);
    return 0;
}

/* Cancelled through a scope outside a shield: nothing until the shield exits. */
static int sc_shielded_victim(void *arg)
{
    struct sc *r = arg;
    urt_scope outer, sh, inner;
    urt_scope_enter(&outer, 0, 0);
    urt_scope_enter(&sh, 0, URT_SHIELD);
    urt_scope_enter(&inner, 0, 0);
    r->outer = &outer;
    r->blocking = 1;
    EXPECT_EQ(urt_sleep(URT_MSEC(30)), 0);
    EXPECT_EQ(r->cancelled, 1);
    EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_scope_exit(&inner), 0);
    EXPECT_EQ(urt_scope_exit(&sh), 0);
    EXPECT_EQ(urt_yield(), -ECANCELED);
    EXPECT_EQ(urt_scope_exit(&outer), 1);
    EXPECT_EQ(urt_yield(), 0);
    return 0;
}

/* Cancelling only the inner scope: the outer one's calls work once it exits. urt_cancel, by
   contrast, is no scope's: an open scope says 0 at its exit. */
static int sc_inner_victim(void *arg)
{
    struct sc *r = arg;
    urt_scope outer, inner;
    urt_scope_enter(&outer, 0, 0);
    urt_scope_enter(&inner, 0, 0);
    r->inner = &inner;
    r->blocking = 1;
    EXPECT_EQ(urt_sleep(URT_SEC(3600)), -ECANCELED);
    EXPECT_EQ(urt_scope_exit(&inner), 1);
    EXPECT_EQ(urt_yield(), 0);
    r->blocking = 2;
    EXPECT_EQ(urt_sleep(URT_SEC(3600)), -ECANCELED);   /* urt_cancel this time */
    EXPECT_EQ(urt_scope_exit(&outer), 0);
    EXPECT_EQ(urt_yield(), -ECANCELED);                 /* sticky */
    return 0;
}

static int scope_cancel_main(void *arg)
{
    (void)arg;
    struct sc r;
    memset(&r, 0, sizeof r);
    urt_task *t = urt_spawn(sc_victim, &r);
    wait_flag(&r.blocking);
    urt_scope_cancel(r.outer);
    urt_scope_cancel(r.outer);   /* idempotent */
    wait_flag(&r.closed);
    urt_scope_cancel(r.outer);   /* closed: nothing */
    urt_scope_cancel(r.inner);
    r.go_on = 1;
    EXPECT_EQ(urt_join(t), 0);

    memset(&r, 0, sizeof r);
    t = urt_spawn(sc_shielded_victim, &r);
    wait_flag(&r.blocking);
    urt_scope_cancel(r.outer);
    r.cancelled = 1;
    EXPECT_EQ(urt_join(t), 0);

    memset(&r, 0, sizeof r);
    t = urt_spawn(sc_inner_victim, &r);
    wait_flag(&r.blocking);
    urt_scope_cancel(r.inner);
    while (r.blocking != 2)
        urt_yield();
    urt_cancel(t);
    EXPECT_EQ(urt_join(t), 0);

    /* A task cancels its own scope: the next call is refused; with no call, exit says 0. */
    urt_scope s, in;
    urt_scope_enter(&s, 0, 0);
    urt_scope_cancel(&s);
    EXPECT_EQ(urt_scope_exit(&s), 0);
    EXPECT_EQ(urt_yield(), 0);
    urt_scope_enter(&s, 0, 0);
    urt_scope_enter(&in, 0, 0);
    urt_scope_cancel(&s);
    EXPECT_EQ(urt_yield(), -ECANCELED);
    EXPECT_EQ(urt_scope_exit(&in), 0);
    EXPECT_EQ(urt_scope_exit(&s), 1);
    EXPECT_EQ(urt_yield(), 0);
    /* a shield's own cancel applies inside it */
    urt_scope_enter(&s, 0, URT_SHIELD);
    urt_scope_cancel(&s);
    EXPECT_EQ(urt_yield(), -ECANCELED);
    EXPECT_EQ(urt_scope_exit(&s), 1);
    EXPECT_EQ(urt_yield(), 0);
    return 0;
}

UT_TEST(scope_cancel_from_another_task)
{
    assert_int_equal(urt_run(scope_cancel_main, NULL, NULL), 0);
}

/* ---- leaving scopes out of order; bad calls ------------------------------------------------ */

static int order_main(void *arg)
{
    (void)arg;
    urt_scope a, b, c, d;

    /* Leaving a, with b and c open inside it: -EINVAL, and b and c close too. b's passed
       deadline no longer applies afterwards. */
    urt_scope_enter(&a, 0, 0);
    urt_scope_enter(&b, urt_now(), 0);
    urt_scope_enter(&c, 0, 0);
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);
    EXPECT_EQ(urt_scope_exit(&a), -EINVAL);
    EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_scope_exit(&b), -EINVAL);   /* not open any more: nothing changes */
    EXPECT_EQ(urt_scope_exit(&c), -EINVAL);
    EXPECT_EQ(urt_scope_exit(&a), -EINVAL);   /* nor a: closed twice */

    /* Leaving a scope that is not open leaves the open ones alone. */
    urt_scope_enter(&d, urt_now(), 0);
    EXPECT_EQ(urt_scope_exit(&c), -EINVAL);
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);         /* d is still open */
    EXPECT_EQ(urt_scope_exit(&d), 1);
    EXPECT_EQ(urt_yield(), 0);

    /* Out of order through a shield: the outer deadline the shield hid applies again. */
    urt_scope_enter(&a, urt_now(), 0);
    urt_scope_enter(&b, 0, URT_SHIELD);
    urt_scope_enter(&c, 0, 0);
    EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_scope_exit(&b), -EINVAL);     /* closes c and b */
    EXPECT_EQ(urt_yield(), -ETIMEDOUT);
    EXPECT_EQ(urt_scope_exit(&a), 1);
    EXPECT_EQ(urt_yield(), 0);

    /* Out of order with a cancelled inner scope: its cancel ends with it. */
    urt_scope_enter(&a, 0, 0);
    urt_scope_enter(&b, 0, 0);
    urt_scope_cancel(&b);
    EXPECT_EQ(urt_yield(), -ECANCELED);
    EXPECT_EQ(urt_scope_exit(&a), -EINVAL);
    EXPECT_EQ(urt_yield(), 0);

    /* Scopes never entered. */
    urt_scope z;
    memset(&z, 0, sizeof z);
    EXPECT_EQ(urt_scope_exit(&z), -EINVAL);
    memset(&z, 0xa5, sizeof z);
    EXPECT_EQ(urt_scope_exit(&z), -EINVAL);
    memset(&z, 0, sizeof z);
    urt_scope_cancel(&z);   /* nothing */
    EXPECT_EQ(urt_yield(), 0);

    /* NULL */
    urt_scope_enter(NULL, urt_now(), 0);
    EXPECT_EQ(urt_yield(), 0);
    EXPECT_EQ(urt_scope_exit(NULL), -EINVAL);
    urt_scope_cancel(NULL);
    return 0;
}

UT_TEST(scopes_left_out_of_order_and_never_entered)
{
    assert_int_equal(urt_run(order_main, NULL, NULL), 0);
}

UT_TEST(scope_calls_outside_a_task)
{
    urt_scope s;
    memset(&s, 0, sizeof s);
    urt_scope_enter(&s, urt_now() + URT_SEC(1), 0);   /* does nothing */
    assert_int_equal(urt_scope_exit(&s), -EPERM);
    urt_scope_cancel(&s);
    urt_scope_enter(&s, 0, URT_SHIELD);
    assert_int_equal(urt_scope_exit(&s), -EPERM);
    assert_int_equal(urt_scope_exit(NULL), -EPERM);
    urt_scope_enter(NULL, 0, 0);
    urt_scope_cancel(NULL);
}

/* ---- no timer work for a scope nothing blocks in ------------------------------------------ */

struct timer_res {
    urt_chan *c;
    int blocking;
    uint64_t armed_while_blocked;
};

static int timed_receiver(void *arg)
{
    struct timer_res *r = arg;
    urt_scope s;
    urt_scope_enter(&s, urt_now() + URT_SEC(30), 0);
    int v;
    r->blocking = 1;
    EXPECT_EQ(urt_chan_recv(r->c, &v), 0);
    EXPECT_EQ(urt_scope_exit(&s), 0);
    return 0;
}

static int no_timer_main(void *arg)
{
    struct timer_res *r = arg;
    struct urt_stats a, b;
    r->c = urt_chan_new(sizeof(int), 0);
    urt_stats(&a);
    urt_scope s, t, u;
    for (int i = 0; i < 1000; i++) {
        urt_scope_enter(&s, urt_now() + URT_SEC(10), 0);
        urt_scope_enter(&t, urt_now() + URT_SEC(5), URT_SHIELD);
        urt_scope_enter(&u, urt_now() + URT_SEC(1), 0);
        EXPECT_EQ(urt_yield(), 0);
        int v = 1;
        EXPECT_EQ(urt_chan_try_send(r->c, &v), -EAGAIN);
        urt_stats(&b);
        EXPECT_EQ(b.timers_armed, a.timers_armed);
        EXPECT_EQ(urt_scope_exit(&u), 0);
        EXPECT_EQ(urt_scope_exit(&t), 0);
        EXPECT_EQ(urt_scope_exit(&s), 0);
    }
    urt_stats(&b);
    EXPECT_EQ(b.timers_armed, a.timers_armed);

    /* a call that blocks in a scope arms its deadline; it goes when the call ends */
    urt_task *rt = urt_spawn(timed_receiver, r);
    wait_flag(&r->blocking);
    urt_stats(&b);
    r->armed_while_blocked = b.timers_armed - a.timers_armed;
    int v = 5;
    EXPECT_EQ(urt_chan_send(r->c, &v), 0);
    EXPECT_EQ(urt_join(rt), 0);
    urt_stats(&b);
    EXPECT_EQ(b.timers_armed, a.timers_armed);
    urt_chan_free(r->c);
    return 0;
}

UT_TEST(scope_without_blocking_costs_no_timer)
{
    struct timer_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(no_timer_main, &r, NULL), 0);
    assert_int_equal(r.armed_while_blocked, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nested_scopes_earliest_deadline_wins),
        cmocka_unit_test(scope_deadline_ends_io_and_channel_waits),
        cmocka_unit_test(task_deadline_is_the_outermost_scope),
        cmocka_unit_test(shield_holds_off_outer_deadlines_until_it_exits),
        cmocka_unit_test(shield_lets_a_goodbye_through_after_cancel),
        cmocka_unit_test(scope_cancel_from_another_task),
        cmocka_unit_test(scopes_left_out_of_order_and_never_entered),
        cmocka_unit_test(scope_calls_outside_a_task),
        cmocka_unit_test(scope_without_blocking_costs_no_timer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
