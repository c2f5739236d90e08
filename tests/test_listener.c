/*
 * test_listener.c - urt_listener: one multishot accept for many connections, the queue of
 * connections accepted before anyone takes them, cancellation, deadlines, freeing with takers
 * and queued connections, urt_close of the listening fd, bad input, and urt_run's end.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "urt_test.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

/* 1 when fd is readable within ms and read(fd) returns 0 (EOF); 0 otherwise (never blocks). */
static int eof_within(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char b;
    return poll(&p, 1, ms) == 1 && read(fd, &b, 1) == 0;
}

/* (T) Waits until the listener's multishot accept has posted n more completions than `before`
   (urt_stats' cqes_more, one per connection accepted with more to follow), for up to 10 s: the
   event itself, not a guess at how long the kernel takes. 1 when it came. */
static int wait_accepted(uint64_t before, uint64_t n)
{
    struct urt_stats st;
    uint64_t give_up = urt_now() + URT_SEC(10);
    for (;;) {
        urt_stats(&st);
        if (st.cqes_more - before >= n)
            return 1;
        if (urt_now() > give_up)
            return 0;
        urt_sleep(URT_MSEC(1));
    }
}

/* ---- many connections, one SQE; order; queued before taken -------------------------------- */

#define N 8

struct many {
    int accepted, in_order, echoed, eof_after_free;
    uint64_t sqes_for_accepts;
    uint64_t inflight_after;
};

static int many_main(void *arg)
{
    struct many *r = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(64, &addr);
    urt_listener *l = urt_listener_new(lfd, SOCK_CLOEXEC);
    EXPECT(l != NULL);
    if (!l)
        return -1;

    /* Nothing is accepted before the first take: these wait in the kernel's backlog. */
    int c[N + 4];
    for (int i = 0; i < N; i++) {
        c[i] = ut_tcp_connect(&addr);
        EXPECT(c[i] >= 0);
        /* each client says which it is */
        char b = (char)('a' + i);
        EXPECT_EQ(write(c[i], &b, 1), 1);
    }
    struct urt_stats st0, st1;
    urt_stats(&st0);
    r->in_order = 1;
    for (int i = 0; i < N; i++) {
        int fd = urt_listener_accept(l);
        EXPECT(fd >= 0);
        if (fd < 0)
            continue;
        r->accepted++;
        char b = 0;
        EXPECT_EQ(urt_recv(fd, &b, 1, 0), 1);
        if (b != 'a' + i)
            r->in_order = 0;
        if (urt_send(fd, &b, 1, 0) == 1)
            r->echoed++;
        urt_close(fd);
    }
    urt_stats(&st1);
    /* one multishot accept plus each connection's recv, send and 3-SQE close */
    r->sqes_for_accepts = st1.sqes_submitted - st0.sqes_submitted - (uint64_t)N * 5;
    for (int i = 0; i < N; i++) {
        char b = 0;
        struct pollfd p = { .fd = c[i], .events = POLLIN };
        EXPECT_EQ(poll(&p, 1, 5000), 1);
        EXPECT_EQ(read(c[i], &b, 1), 1);
        EXPECT_EQ(b, 'a' + i);
        close(c[i]);
    }

    /* Connections arriving with nobody taking them are accepted anyway (the multishot accept is
       armed); freeing the listener closes them: their clients read EOF. */
    struct urt_stats before;
    urt_stats(&before);
    for (int i = 0; i < 4; i++)
        c[i] = ut_tcp_connect(&addr);
    EXPECT(wait_accepted(before.cqes_more, 4));   /* the kernel has accepted all four */
    EXPECT_EQ(urt_listener_free(l), 0);
    for (int i = 0; i < 4; i++) {
        if (c[i] >= 0 && eof_within(c[i], 5000))
            r->eof_after_free++;
        close(c[i]);
    }
    struct urt_stats st;
    urt_stats(&st);
    r->inflight_after = st.ops_inflight;
    urt_close(lfd);
    return 0;
}

UT_TEST(many_connections_one_request_in_order)
{
    int fds = ut_count_fds();
    struct many r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(many_main, &r, NULL), 0);
    assert_int_equal(r.accepted, N);
    assert_int_equal(r.in_order, 1);
    assert_int_equal(r.echoed, N);
    assert_int_equal(r.sqes_for_accepts, 1);
    assert_int_equal(r.eof_after_free, 4);
    assert_int_equal(r.inflight_after, 0);
    assert_int_equal(ut_count_fds(), fds);
}

/* ---- cancellation, deadlines, freeing under a taker, urt_close of the listening fd ---------- */

struct interrupts {
    int timed_out, cancelled, after, freed_under, closed_under;
};

struct taker {
    urt_listener *l;
    int result;
};

static int take(void *arg)
{
    struct taker *t = arg;
    t->result = urt_listener_accept(t->l);
    return 0;
}

static int interrupts_main(void *arg)
{
    struct interrupts *r = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(64, &addr);
    urt_listener *l = urt_listener_new(lfd, 0);
    EXPECT(l != NULL);
    if (!l)
        return -1;

    urt_deadline(urt_now() + URT_MSEC(20));
    r->timed_out = urt_listener_accept(l);
    urt_deadline(0);

    struct taker t = { l, 0 };
    urt_task *tk = urt_spawn(take, &t);
    urt_sleep(URT_MSEC(10));
    urt_cancel(tk);
    urt_join(tk);
    r->cancelled = t.result;

    /* Still works: a connection made now is the next one taken. */
    int c = ut_tcp_connect(&addr);
    int fd = urt_listener_accept(l);
    r->after = fd >= 0;
    if (fd >= 0)
        urt_close(fd);
    close(c);

    /* Freed while a task waits in it. */
    t.result = 0;
    tk = urt_spawn(take, &t);
    urt_sleep(URT_MSEC(10));
    EXPECT_EQ(urt_listener_free(l), 0);
    urt_join(tk);
    r->freed_under = t.result;

    /* urt_close of the listening fd ends the multishot accept: the taker sees the closed fd. */
    l = urt_listener_new(lfd, 0);
    EXPECT(l != NULL);
    t.l = l;
    t.result = 0;
    tk = urt_spawn(take, &t);
    urt_sleep(URT_MSEC(10));
    urt_close(lfd);
    urt_join(tk);
    r->closed_under = t.result;
    EXPECT_EQ(urt_listener_free(l), 0);
    return 0;
}

UT_TEST(cancel_deadline_free_and_close_under_a_taker)
{
    int fds = ut_count_fds();
    struct interrupts r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(interrupts_main, &r, NULL), 0);
    assert_int_equal(r.timed_out, -ETIMEDOUT);
    assert_int_equal(r.cancelled, -ECANCELED);
    assert_int_equal(r.after, 1);
    assert_int_equal(r.freed_under, -EBADF);
    assert_int_equal(r.closed_under, -EBADF);
    assert_int_equal(ut_count_fds(), fds);
}

/* ---- bad input ----------------------------------------------------------------------------- */

struct bad {
    int null_accept, null_free, neg_fd_errno, flags_errno, not_listening;
};

static int bad_main(void *arg)
{
    struct bad *r = arg;
    r->null_accept = urt_listener_accept(NULL);
    r->null_free = urt_listener_free(NULL);
    errno = 0;
    EXPECT(urt_listener_new(-1, 0) == NULL);
    r->neg_fd_errno = errno;
    errno = 0;
    EXPECT(urt_listener_new(0, 0x4) == NULL);
    r->flags_errno = errno;
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    urt_listener *l = urt_listener_new(sv[0], 0);
    EXPECT(l != NULL);
    if (l) {
        r->not_listening = urt_listener_accept(l);
        EXPECT_EQ(urt_listener_free(l), 0);
    }
    close(sv[0]);
    close(sv[1]);
    return 0;
}

UT_TEST(bad_input_is_an_error)
{
    struct bad r;
    memset(&r, 0, sizeof r);
    errno = 0;
    assert_null(urt_listener_new(0, 0));
    assert_int_equal(errno, EPERM);
    assert_int_equal(urt_listener_accept(NULL), -EPERM);
    assert_int_equal(urt_listener_free(NULL), -EPERM);
    assert_int_equal(urt_run(bad_main, &r, NULL), 0);
    assert_int_equal(r.null_accept, -EINVAL);
    assert_int_equal(r.null_free, -EINVAL);
    assert_int_equal(r.neg_fd_errno, EBADF);
    assert_int_equal(r.flags_errno, EINVAL);
    assert_int_equal(r.not_listening, -EINVAL);
}

/* ---- a listener left to urt_run's end ------------------------------------------------------ */

struct left {
    int lfd, clients[3];
};

static int left_main(void *arg)
{
    struct left *r = arg;
    struct sockaddr_in addr;
    r->lfd = ut_tcp_listener(64, &addr);
    urt_listener *l = urt_listener_new(r->lfd, 0);
    EXPECT(l != NULL);
    int c = ut_tcp_connect(&addr);
    int fd = l ? urt_listener_accept(l) : -1;   /* arms it */
    EXPECT(fd >= 0);
    if (fd >= 0)
        urt_close(fd);
    close(c);
    struct urt_stats before;
    urt_stats(&before);
    for (int i = 0; i < 3; i++)
        r->clients[i] = ut_tcp_connect(&addr);
    EXPECT(wait_accepted(before.cqes_more, 3));   /* accepted by the kernel, queued, never taken */
    return 0;                  /* no urt_listener_free: urt_run must end it */
}

UT_TEST(listener_left_armed_ends_with_urt_run)
{
    int fds = ut_count_fds();
    struct left r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(left_main, &r, NULL), 0);
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_true(st.cqes_more >= 1);   /* the connections accepted before the last one */
    assert_int_equal(st.cqes_reaped, st.sqes_submitted + st.cqes_more);
    for (int i = 0; i < 3; i++) {   /* their server side was closed: EOF */
        assert_true(r.clients[i] >= 0);
        assert_true(eof_within(r.clients[i], 5000));
        close(r.clients[i]);
    }
    close(r.lfd);
    assert_int_equal(ut_count_fds(), fds);
}

/* ---- every taker hears of urt_close; free waits for takers on their way out; -EDEADLK; dump -- */

struct more {
    int closed[2], closed_after, freed_cancelled, deadlock, dumped;
};

static int stuck(void *arg)
{
    int v;
    return urt_chan_recv(arg, &v);   /* nobody ever sends */
}

static int more_main(void *arg)
{
    struct more *r = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(64, &addr);
    urt_listener *l = urt_listener_new(lfd, 0);
    EXPECT(l != NULL);
    if (!l)
        return -1;

    /* Two tasks wait; urt_close of the listening fd reaches both, and the listener stays dead. */
    struct taker t[2] = { { l, 0 }, { l, 0 } };
    urt_task *tk[2] = { urt_spawn(take, &t[0]), urt_spawn(take, &t[1]) };
    urt_sleep(URT_MSEC(10));
    /* While they wait, the dump names what they wait on. */
    FILE *f = tmpfile();
    if (f) {
        urt_dump(f);
        rewind(f);
        char line[256];
        while (fgets(line, sizeof line, f))
            r->dumped += strstr(line, "listener_accept") != NULL;
        fclose(f);
    }
    urt_close(lfd);
    for (int i = 0; i < 2; i++) {
        urt_join(tk[i]);
        r->closed[i] = t[i].result;
    }
    r->closed_after = urt_listener_accept(l);
    EXPECT_EQ(urt_listener_free(l), 0);

    /* A taker cancelled but not yet run when the free begins: the free waits for it to leave. */
    lfd = ut_tcp_listener(64, &addr);
    l = urt_listener_new(lfd, 0);
    struct taker c = { l, 0 };
    urt_task *ct = urt_spawn(take, &c);
    urt_sleep(URT_MSEC(10));
    urt_cancel(ct);
    EXPECT_EQ(urt_listener_free(l), 0);
    urt_join(ct);
    r->freed_cancelled = c.result;

    /* An armed listener nobody waits on is no reason to wait forever: -EDEADLK. */
    l = urt_listener_new(lfd, 0);
    int cl = ut_tcp_connect(&addr);
    int fd = urt_listener_accept(l);   /* arms it */
    EXPECT(fd >= 0);
    urt_chan *ch = urt_chan_new(sizeof(int), 0);
    urt_task *s = urt_spawn(stuck, ch);
    r->deadlock = urt_join(s);
    urt_chan_free(ch);
    if (fd >= 0)
        urt_close(fd);
    close(cl);
    EXPECT_EQ(urt_listener_free(l), 0);
    urt_close(lfd);
    return 0;
}

/* ---- a connection handed to a task cancelled before it runs is not lost; urt_close before any
   accept still kills the listener ------------------------------------------------------------ */

struct race {
    int got, b_result, dead_after_close;
};

static int race_main(void *arg)
{
    struct race *r = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(64, &addr);
    urt_listener *l = urt_listener_new(lfd, 0);
    struct taker a = { l, 0 }, b = { l, 0 };
    urt_task *ta = urt_spawn(take, &a);
    urt_task *tb = urt_spawn(take, &b);
    urt_sleep(URT_MSEC(10));             /* both wait, a first */
    int c = ut_tcp_connect(&addr);
    /* Yield until the completion readies a (main runs first in that round), then cancel it
       before it runs: it must still take the connection, or pass it on to b. */
    for (int i = 0; i < 100000 && a.result == 0; i++) {
        urt_yield();
        urt_cancel(ta);
    }
    urt_join(ta);
    if (a.result >= 0) {
        r->got++;
        urt_close(a.result);
        urt_cancel(tb);
    }
    urt_join(tb);
    if (b.result >= 0) {
        r->got++;
        urt_close(b.result);
    }
    r->b_result = b.result;
    close(c);
    EXPECT_EQ(urt_listener_free(l), 0);

    /* urt_close before the listener ever armed: a new socket that reuses the fd number must not
       feed it. */
    l = urt_listener_new(lfd, 0);
    urt_close(lfd);
    int lfd2 = ut_tcp_listener(64, &addr);      /* most likely the same number */
    int c2 = ut_tcp_connect(&addr);
    r->dead_after_close = urt_listener_accept(l);
    if (r->dead_after_close >= 0)
        urt_close(r->dead_after_close);
    EXPECT_EQ(urt_listener_free(l), 0);
    close(c2);
    urt_close(lfd2);
    return 0;
}

UT_TEST(connection_survives_cancel_race_and_close_kills_unarmed)
{
    int fds = ut_count_fds();
    struct race r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(race_main, &r, NULL), 0);
    assert_int_equal(r.got, 1);   /* the one connection reached a task, once */
    assert_true(r.b_result >= 0 || r.b_result == -ECANCELED);
    assert_int_equal(r.dead_after_close, -EBADF);
    assert_int_equal(ut_count_fds(), fds);
}

/* ---- fd exhaustion with two takers: each hears of it, neither is stranded, then recovery ---- */

#define EM_CLIENTS 10

struct em_taker {
    urt_listener *l;
    int fds[EM_CLIENTS], nfds, err;
};

static int take_until_error(void *arg)
{
    struct em_taker *t = arg;
    urt_deadline(urt_now() + URT_SEC(5));   /* no EMFILE would fail the test, not hang it */
    for (;;) {
        int fd = urt_listener_accept(t->l);
        if (fd < 0) {
            t->err = fd;
            return 0;
        }
        t->fds[t->nfds++] = fd;
    }
}

struct em {
    int accepted_low, emfile_takers, accepted_after;
};

static int em_main(void *arg)
{
    struct em *r = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(64, &addr);
    urt_listener *l = urt_listener_new(lfd, 0);
    int c[EM_CLIENTS];
    for (int i = 0; i < EM_CLIENTS; i++)
        c[i] = ut_tcp_connect(&addr);
    /* Room for three more fds only: a low limit, filled with dups but for three slots. */
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = 256;
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    static int dups[256];
    int n = 0, d;
    while (n < 256 && (d = dup(0)) >= 0)
        dups[n++] = d;
    for (int i = 0; i < 3 && n > 0; i++)
        close(dups[--n]);

    struct em_taker t[2] = { { .l = l }, { .l = l } };
    urt_task *tk[2] = { urt_spawn(take_until_error, &t[0]), urt_spawn(take_until_error, &t[1]) };
    for (int i = 0; i < 2; i++)
        urt_join(tk[i]);
    while (n > 0)
        close(dups[--n]);
    setrlimit(RLIMIT_NOFILE, &old);
    for (int i = 0; i < 2; i++) {
        r->accepted_low += t[i].nfds;
        r->emfile_takers += t[i].err == -EMFILE;
        for (int k = 0; k < t[i].nfds; k++)
            urt_close(t[i].fds[k]);
    }
    /* Room again: the rest come (the listener re-arms), until the deadline says none is left. */
    urt_deadline(urt_now() + URT_MSEC(300));
    int fd;
    while ((fd = urt_listener_accept(l)) >= 0) {
        r->accepted_after++;
        urt_close(fd);
    }
    urt_deadline(0);
    EXPECT_EQ(fd, -ETIMEDOUT);
    EXPECT_EQ(urt_listener_free(l), 0);
    for (int i = 0; i < EM_CLIENTS; i++)
        close(c[i]);
    urt_close(lfd);
    return 0;
}

UT_TEST(emfile_reaches_both_takers_then_recovers)
{
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
    /* Valgrind emulates the fd limit for the program's own calls, but the kernel's accept knows
       only the real one: running out of fds there says nothing about urt. */
    if (RUNNING_ON_VALGRIND) {
        UT_NOTE("  skipped under Valgrind\n");
        return;
    }
#endif
#endif
    int fds = ut_count_fds();
    struct em r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(em_main, &r, NULL), 0);
    assert_int_equal(r.accepted_low, 3);
    assert_int_equal(r.emfile_takers, 2);
    assert_int_equal(r.accepted_low + r.accepted_after, EM_CLIENTS);
    assert_int_equal(ut_count_fds(), fds);
}

UT_TEST(close_reaches_every_taker_free_waits_deadlock_dump)
{
    int fds = ut_count_fds();
    struct more r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(more_main, &r, NULL), 0);
    assert_int_equal(r.closed[0], -EBADF);
    assert_int_equal(r.closed[1], -EBADF);
    assert_int_equal(r.closed_after, -EBADF);
    assert_int_equal(r.freed_cancelled, -ECANCELED);
    assert_int_equal(r.deadlock, -EDEADLK);
    assert_int_equal(r.dumped, 2);
    assert_int_equal(ut_count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_connections_one_request_in_order),
        cmocka_unit_test(cancel_deadline_free_and_close_under_a_taker),
        cmocka_unit_test(bad_input_is_an_error),
        cmocka_unit_test(listener_left_armed_ends_with_urt_run),
        cmocka_unit_test(close_reaches_every_taker_free_waits_deadlock_dump),
        cmocka_unit_test(connection_survives_cancel_race_and_close_kills_unarmed),
        cmocka_unit_test(emfile_reaches_both_takers_then_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
