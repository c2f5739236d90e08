/* SPDX-License-Identifier: MIT */
/*
 * test_compact.c - compact (1-4 KiB) tasks survive anything the runtime does on their behalf:
 * reaping, completion handlers, stack carving and trimming, helper-thread starts and frees all
 * run on the scheduler's own stack, never on the parked task's. Each test here crashed before
 * that (an overflow of the compact stack, caught by its canary or its fault).
 *
 * In sanitizer builds compact requests get ordinary stacks: the tests then check the same
 * behaviour without the size pressure (and ASan checks the memory).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <netdb.h>
#include <poll.h>
#include <sys/resource.h>

#include "urt_test.h"

#define COMPACT_1K 1024
#define COMPACT_2K 2048

/* ---- 1. a 1 KiB task joins thousands of default-stack tasks: their stacks are trimmed ---- */

static int nothing(void *arg)
{
    return (int)(intptr_t)arg;
}

struct joiner_res {
    int joined, sum;
};

static int join_many(void *arg)
{
    struct joiner_res *r = arg;
    /* Beyond the pool's mark (stack_pool_max below): the freed stacks' pages go back to the
       kernel in batches, with qsort and madvise - which must not run here. */
    enum { N = 4400 };
    static urt_task *t[N];
    struct urt_spawn_opts big = { .stack_size = 64 * 1024 };
    for (int i = 0; i < N; i++)
        t[i] = urt_spawn_ex(nothing, (void *)(intptr_t)(i & 1), &big);
    for (int i = 0; i < N; i++) {
        if (!t[i])
            continue;
        int s = urt_join(t[i]);
        if (s >= 0) {
            r->joined++;
            r->sum += s;
        }
    }
    return 0;
}

static int joiner_main(void *arg)
{
    struct urt_spawn_opts o = { .name = "compact-joiner", .stack_size = COMPACT_1K };
    urt_task *t = urt_spawn_ex(join_many, arg, &o);
    EXPECT(t != NULL);
    EXPECT_EQ(urt_join(t), 0);
    return 0;
}

UT_TEST_T(compact_task_joins_thousands_of_big_ones, 60)
{
    struct joiner_res r = { 0, 0 };
    struct urt_config cfg = { .stack_pool_max = 1024 };
    assert_int_equal(urt_run(joiner_main, &r, &cfg), 0);
    assert_int_equal(r.joined, 4400);
    assert_int_equal(r.sum, 2200);
}

/* ---- 3. compact tasks start helper threads; 2. a server on 2 KiB stacks accepts a burst
   while abandoned lookups are cleaned up ---- */

/* The first helper thread of the runtime, started from a compact 4 KiB task. */
static int first_blocking_call(void *arg)
{
    (void)arg;
    return urt_blocking(nothing, (void *)(intptr_t)5);
}

/* The same for a lookup, whose job is allocated and freed for the caller. */
static int first_lookup(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    int rc = urt_getaddrinfo("localhost", "80", NULL, &res);
    if (rc == 0)
        freeaddrinfo(res);
    return rc;
}

static int first_helper_main(void *arg)
{
    urt_fn fn = (urt_fn)arg;
    struct urt_spawn_opts small = { .name = "first-helper", .stack_size = 4000 };
    urt_task *t = urt_spawn_ex(fn, NULL, &small);
    EXPECT(t != NULL);
    return urt_join(t);
}

UT_TEST(first_helper_thread_from_a_compact_task)
{
    assert_int_equal(urt_run(first_helper_main, (void *)first_blocking_call, NULL), 5);
    assert_int_equal(urt_run(first_helper_main, (void *)first_lookup, NULL), 0);
}

enum { CLIENTS = 500 };

struct burst {
    urt_listener *l;
    int           port;
    int           accepted, clients_ok, lookups_abandoned, lookups_done;
    urt_chan     *done;
};

static int lookup_abandoned(void *arg)
{
    struct burst *b = arg;
    for (int i = 0; i < 20; i++) {
        struct addrinfo *res = NULL;
        /* A deadline already close: most lookups are left to finish (and be freed) later. */
        urt_deadline(urt_now() + URT_USEC(50));
        int rc = urt_getaddrinfo("localhost", "80", NULL, &res);
        urt_deadline(0);
        if (rc == 0) {
            freeaddrinfo(res);   /* (a 2 KiB task may free: free is shallow) */
            b->lookups_done++;
        } else {
            b->lookups_abandoned++;
        }
    }
    return 0;
}

static int serve_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    ssize_t n = urt_recv(fd, &c, 1, 0);
    if (n == 1)
        n = urt_send(fd, &c, 1, MSG_NOSIGNAL);
    urt_close(fd);
    return n == 1 ? 0 : -1;
}

static int acceptor(void *arg)
{
    struct burst *b = arg;
    struct urt_spawn_opts o = { .name = "conn", .stack_size = COMPACT_2K };
    urt_group *g = urt_group_new();
    for (int i = 0; i < CLIENTS; i++) {
        int fd = urt_listener_accept(b->l);
        if (fd < 0)
            break;
        b->accepted++;
        if (urt_group_spawn_ex(g, serve_one, (void *)(intptr_t)fd, &o) != 0)
            close(fd);
    }
    EXPECT_EQ(urt_group_wait(g), 0);
    urt_group_free(g);
    return 0;
}

static int client(void *arg)
{
    struct burst *b = arg;
    int fd = urt_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)b->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int rc = urt_connect(fd, (struct sockaddr *)&a, sizeof a);
    char c = 'x';
    if (rc == 0 && urt_send(fd, &c, 1, MSG_NOSIGNAL) == 1 && urt_recv(fd, &c, 1, 0) == 1 && c == 'x')
        b->clients_ok++;
    urt_close(fd);
    return 0;
}

static int burst_main(void *arg)
{
    struct burst *b = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(1024, &addr);
    EXPECT(lfd >= 0);
    b->port = ntohs(addr.sin_port);
    b->l = urt_listener_new(lfd, SOCK_CLOEXEC);
    EXPECT(b->l != NULL);
    struct urt_spawn_opts o = { .stack_size = COMPACT_2K };
    urt_task *acc = urt_spawn_ex(acceptor, b, &o);
    urt_task *res = urt_spawn_ex(lookup_abandoned, b, &o);
    urt_group *clients = urt_group_new();
    for (int i = 0; i < CLIENTS; i++)
        EXPECT_EQ(urt_group_spawn_ex(clients, client, b, &o), 0);
    EXPECT_EQ(urt_group_wait(clients), 0);
    urt_group_free(clients);
    EXPECT_EQ(urt_join(acc), 0);
    EXPECT_EQ(urt_join(res), 0);
    EXPECT_EQ(urt_listener_free(b->l), 0);
    urt_close(lfd);
    return 0;
}

UT_TEST_T(compact_server_accepts_a_burst_beside_abandoned_lookups, 60)
{
    for (int run = 0; run < 10; run++) {
        struct burst b;
        memset(&b, 0, sizeof b);
        struct urt_config cfg = { .stack_size = COMPACT_2K };
        assert_int_equal(urt_run(burst_main, &b, &cfg), 0);
        assert_int_equal(b.accepted, CLIENTS);
        assert_int_equal(b.clients_ok, CLIENTS);
        assert_int_equal(b.lookups_done + b.lookups_abandoned, 20);
    }
}

/* ---- 4. the dump task gets a stack that fits its work, whatever the default ---- */

struct dump_res {
    int  pipe_r;
    char text[4096];
    int  len;
};

static int dump_main(void *arg)
{
    struct dump_res *r = arg;
    EXPECT_EQ(urt_dump_on_signal(SIGUSR1), 0);
    EXPECT_EQ(urt_yield(), 0);   /* the dump task now waits on its signalfd */
    kill(getpid(), SIGUSR1);
    /* Wait for the dump itself: its first line on the pipe (stderr). */
    while (r->len < (int)sizeof r->text - 1 && !strstr(r->text, "live tasks")) {
        ssize_t n = urt_read(r->pipe_r, r->text + r->len, sizeof r->text - 1 - (size_t)r->len, -1);
        if (n <= 0)
            break;
        r->len += (int)n;
    }
    return 0;
}

UT_TEST(dump_task_fits_with_compact_default)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved = dup(2);
    dup2(p[1], 2);
    struct dump_res r;
    memset(&r, 0, sizeof r);
    r.pipe_r = p[0];
    struct urt_config cfg = { .stack_size = COMPACT_1K };
    int rc = urt_run(dump_main, &r, &cfg);
    dup2(saved, 2);
    close(saved);
    close(p[0]);
    close(p[1]);
    assert_int_equal(rc, 0);
    UT_NOTE("  %.200s", r.text);
    assert_non_null(strstr(r.text, "live tasks"));
    assert_non_null(strstr(r.text, "urt-dump"));
}

/* ---- 8. an overflow that faults with the stack pointer at the bottom edge is reported ---- */

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
/* The first compact task of a runtime gets the lowest slot of a fresh arena: nothing is mapped
   under it. With the stack pointer a few words above the slot's bottom (the canary untouched), a
   leaf function's red zone reaches under it: the fault must still name the task. */
static int edge_fault(void *arg)
{
    (void)arg;
    uintptr_t hdr = (uintptr_t)urt_self() & 0x0000ffffffffffc0ull;
    uintptr_t lo = hdr & ~(uintptr_t)(COMPACT_1K - 1);
    __asm__ volatile("mov %0, %%rsp\n\tmovb $1, -256(%%rsp)" : : "r"(lo + 64) : "memory");
    return 0;
}

static int edge_main(void *arg)
{
    (void)arg;
    struct urt_spawn_opts o = { .name = "edge-of-stack", .stack_size = COMPACT_1K };
    urt_join(urt_spawn_ex(edge_fault, NULL, &o));
    return 0;
}

UT_TEST(compact_overflow_at_the_edge_is_reported)
{
    char text[1024];
    int status = ut_run_crashing(edge_main, NULL, NULL, text, sizeof text);
    UT_NOTE("  %s", text);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(text, "edge-of-stack"));
    assert_non_null(strstr(text, "overflowed"));
}
#endif

/* ---- 10,000 compact tasks: socket I/O, sleeps, channels, urt_close, deadlines, cancels,
   ending in waves (so that stacks are trimmed) ---- */

enum { WAVES = 10, PER_WAVE = 1000, KINDS = 5 };

struct mix {
    urt_chan *chan;
    int       silent;        /* a socket nobody writes to                                    */
    int       io_ok, slept, sent, received, timed_out, cancelled, closed_ok, joined_big;
};

struct mix_task {
    struct mix *m;
    int         k;
    int         sv[2];
};

static int big_child(void *arg)
{
    (void)arg;
    return urt_sleep(URT_USEC(10)) == 0 ? 1 : 0;
}

static int mix_body(void *arg)
{
    struct mix_task *mt = arg;
    struct mix *m = mt->m;
    switch (mt->k % KINDS) {
    case 0: {   /* a round trip through a socket pair, then both ends closed by urt_close */
        char out[16], in[16];
        for (int i = 0; i < 16; i++)
            out[i] = (char)(mt->k + i);
        if (urt_send(mt->sv[0], out, sizeof out, 0) == 16 &&
            urt_recv(mt->sv[1], in, sizeof in, MSG_WAITALL) == 16 && !memcmp(in, out, 16))
            m->io_ok++;
        if (urt_close(mt->sv[0]) == 0 && urt_close(mt->sv[1]) == 0)
            m->closed_ok++;
        return 0;
    }
    case 1:     /* a sleep; every fiftieth also spawns and joins default-stack tasks */
        if (urt_sleep(URT_USEC((unsigned)(mt->k % 7) * 100)) == 0)
            m->slept++;
        if (mt->k % 50 == 1) {
            struct urt_spawn_opts big = { .stack_size = 64 * 1024 };
            urt_task *t[8];
            for (int i = 0; i < 8; i++)
                t[i] = urt_spawn_ex(big_child, NULL, &big);
            for (int i = 0; i < 8; i++)
                if (t[i])
                    m->joined_big += urt_join(t[i]);
        }
        return 0;
    case 2: {   /* a channel send, met by a case-3 task */
        int v = mt->k;
        if (urt_chan_send(m->chan, &v) == 0)
            m->sent++;
        return 0;
    }
    case 3: {
        int v;
        if (urt_chan_recv(m->chan, &v) == 0 && v % KINDS == 2)
            m->received++;
        return 0;
    }
    default: {  /* blocked on a silent socket: a deadline ends half, a cancel the other half */
        char c;
        bool by_deadline = (mt->k / KINDS) % 2 == 0;
        urt_deadline(urt_now() + (by_deadline ? URT_MSEC(2) : URT_SEC(60)));
        ssize_t n = urt_recv(m->silent, &c, 1, 0);
        urt_deadline(0);
        if (by_deadline && n == -ETIMEDOUT)
            m->timed_out++;
        else if (!by_deadline && n == -ECANCELED)
            m->cancelled++;
        return 0;
    }
    }
}

static int mix_main(void *arg)
{
    struct mix *m = arg;
    int silent[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, silent), 0);
    m->silent = silent[0];
    m->chan = urt_chan_new(sizeof(int), 4);
    static struct mix_task mt[PER_WAVE];
    static urt_task *t[PER_WAVE];
    struct urt_spawn_opts o = { .name = "compact", .stack_size = COMPACT_1K };
    for (int wave = 0; wave < WAVES; wave++) {
        for (int i = 0; i < PER_WAVE; i++) {
            mt[i] = (struct mix_task){ .m = m, .k = wave * PER_WAVE + i, .sv = { -1, -1 } };
            if (i % KINDS == 0)
                EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, mt[i].sv), 0);
            t[i] = urt_spawn_ex(mix_body, &mt[i], &o);
            EXPECT(t[i] != NULL);
        }
        /* Let every task reach its wait, then cancel the half that waits for no deadline. */
        EXPECT_EQ(urt_yield(), 0);
        for (int i = 0; i < PER_WAVE; i++)
            if (i % KINDS == 4 && ((wave * PER_WAVE + i) / KINDS) % 2 == 1)
                urt_cancel(t[i]);
        for (int i = 0; i < PER_WAVE; i++)
            EXPECT_EQ(urt_join(t[i]), 0);
    }
    urt_chan_free(m->chan);
    close(silent[0]);
    close(silent[1]);
    return 0;
}

UT_TEST_T(ten_thousand_compact_tasks_do_everything, 120)
{
    struct mix m;
    memset(&m, 0, sizeof m);
    /* A small pool mark: the default-stack children's stacks are trimmed wave after wave. */
    struct urt_config cfg = { .stack_size = COMPACT_1K, .stack_pool_max = 16 };
    assert_int_equal(urt_run(mix_main, &m, &cfg), 0);
    int each = WAVES * PER_WAVE / KINDS;
    UT_NOTE("  io %d, closed %d, slept %d, sent %d, received %d, timed out %d, cancelled %d\n",
            m.io_ok, m.closed_ok, m.slept, m.sent, m.received, m.timed_out, m.cancelled);
    assert_int_equal(m.io_ok, each);
    assert_int_equal(m.closed_ok, each);
    assert_int_equal(m.slept, each);
    assert_int_equal(m.joined_big, (each / 10) * 8);
    assert_int_equal(m.sent, each);
    assert_int_equal(m.received, each);
    assert_int_equal(m.timed_out, each / 2);
    assert_int_equal(m.cancelled, each / 2);
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted + st.cqes_more);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compact_task_joins_thousands_of_big_ones),
        cmocka_unit_test(first_helper_thread_from_a_compact_task),
        cmocka_unit_test(compact_server_accepts_a_burst_beside_abandoned_lookups),
        cmocka_unit_test(dump_task_fits_with_compact_default),
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
        cmocka_unit_test(compact_overflow_at_the_edge_is_reported),
#endif
        cmocka_unit_test(ten_thousand_compact_tasks_do_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
