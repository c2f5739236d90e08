/*
 * test_sendfile.c - urt_splice and urt_sendfile: a file's bytes reach a socket exactly, from the
 * offset asked and no further than the file; *offset says what the peer got also when the peer
 * vanishes, the deadline passes or the task is cancelled mid-file; and the runtime's pooled pipes
 * never carry a failed call's leftovers into the next one.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

#include "urt_test.h"

#define FILE_SIZE (3 * 1024 * 1024 + 123)   /* many pipefuls, and not a whole one at the end */

static unsigned char data[FILE_SIZE];

static int make_file(void)
{
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 131 + i / 4093);
    char path[] = "/tmp/urt-sendfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    for (size_t off = 0; off < sizeof data;) {
        ssize_t w = write(fd, data + off, sizeof data - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    return fd;
}

/* A task that reads everything from fd until EOF into got (capacity FILE_SIZE + 1). */
struct drain {
    int            fd;
    unsigned char *got;
    size_t         len;
};

static int drain_task(void *arg)
{
    struct drain *d = arg;
    for (;;) {
        ssize_t n = urt_recv(d->fd, d->got + d->len, FILE_SIZE + 1 - d->len, 0);
        if (n <= 0)
            return n < 0 ? (int)n : 0;
        d->len += (size_t)n;
    }
}

struct result {
    int     file;
    ssize_t sent[4];
    int64_t off[4];
    size_t  got[4];
    int     same[4];
    ssize_t errs[8];
    int     sigpipe_pending;
};

static unsigned char got[FILE_SIZE + 1];

/* Sends [from, from + count) over a new socket pair, read by a task; records what arrived.
   i == 0 sends to a non-blocking socket: the call then waits for room by polling. */
static void send_range(struct result *r, int i, int64_t from, size_t count)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    if (i == 0)
        assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    struct drain d = { .fd = sv[1], .got = got };
    urt_task *t = urt_spawn(drain_task, &d);
    assert_non_null(t);
    r->off[i] = from;
    r->sent[i] = urt_sendfile(sv[0], r->file, &r->off[i], count);
    urt_close(sv[0]);
    assert_int_equal(urt_join(t), 0);
    urt_close(sv[1]);
    r->got[i] = d.len;
    r->same[i] = d.len <= FILE_SIZE - (size_t)from && memcmp(got, data + from, d.len) == 0;
}

static int whole_main(void *arg)
{
    struct result *r = arg;
    send_range(r, 0, 0, FILE_SIZE);               /* all of it, to a non-blocking socket */
    send_range(r, 1, 70000, 100000);              /* a middle part, across pipefuls */
    send_range(r, 2, FILE_SIZE - 10, 1000);       /* past the end: what there is */
    send_range(r, 3, FILE_SIZE, 5);               /* at the end: nothing */
    int64_t off = 0, neg = -1;
    r->errs[0] = urt_sendfile(1, r->file, NULL, 10);
    r->errs[1] = urt_sendfile(1, r->file, &neg, 10);
    r->errs[2] = urt_sendfile(-1, r->file, &off, 10);
    r->errs[3] = urt_sendfile(1, -1, &off, 10);
    r->errs[4] = urt_sendfile(1, r->file, &off, 0);
    r->errs[5] = off;
    /* urt_splice, the call beneath: file -> pipe at an offset, then pipe -> pipe */
    int p[2], q[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(pipe2(q, O_CLOEXEC), 0);
    int64_t in_off = 5;
    r->errs[6] = urt_splice(r->file, &in_off, p[1], NULL, 100, 0);
    unsigned char buf[100];
    ssize_t moved = urt_splice(p[0], NULL, q[1], NULL, 100, 0);
    r->errs[7] = moved == 100 && in_off == 105 && read(q[0], buf, 100) == 100 &&
                 memcmp(buf, data + 5, 100) == 0;
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
    return 0;
}

UT_TEST(sendfile_sends_exactly_the_range)
{
    struct result r = { .file = make_file() };
    assert_int_equal(urt_run(whole_main, &r, NULL), 0);
    assert_int_equal(r.sent[0], FILE_SIZE);
    assert_int_equal(r.off[0], FILE_SIZE);
    assert_int_equal(r.got[0], FILE_SIZE);
    assert_true(r.same[0]);
    assert_int_equal(r.sent[1], 100000);
    assert_int_equal(r.off[1], 170000);
    assert_int_equal(r.got[1], 100000);
    assert_true(r.same[1]);
    assert_int_equal(r.sent[2], 10);
    assert_int_equal(r.off[2], FILE_SIZE);
    assert_true(r.same[2]);
    assert_int_equal(r.sent[3], 0);
    assert_int_equal(r.got[3], 0);
    assert_int_equal(r.errs[0], -EINVAL);
    assert_int_equal(r.errs[1], -EINVAL);
    assert_int_equal(r.errs[2], -EBADF);
    assert_int_equal(r.errs[3], -EBADF);
    assert_int_equal(r.errs[4], 0);
    assert_int_equal(r.errs[5], 0);
    assert_int_equal(r.errs[6], 100);
    assert_int_equal(r.errs[7], 1);
    int64_t off = 0;
    assert_int_equal(urt_sendfile(1, r.file, &off, 10), -EPERM);   /* outside a task */
    close(r.file);
}

/* ---- failures in the middle ---------------------------------------------------------------- */

/* The peer reads n bytes, then closes. */
struct reads_then_closes {
    int    fd;
    size_t n, len;
};

static int read_some_then_close(void *arg)
{
    struct reads_then_closes *c = arg;
    while (c->len < c->n) {
        ssize_t k = urt_recv(c->fd, got + c->len, c->n - c->len, 0);
        if (k <= 0)
            break;
        c->len += (size_t)k;
    }
    urt_close(c->fd);
    return 0;
}

static int canceller(void *arg)
{
    urt_task *victim = arg;
    urt_cancel(victim);   /* it has started, and blocks on the full socket until this */
    return 0;
}

struct cut_result {
    int     file;
    ssize_t res[3];
    int64_t off[3];
    size_t  peer_got[3];
    int     peer_same[3];
    int     after_ok;
    int     sigpipe_pending;
};

static int sendfile_task(void *arg)
{
    void **a = arg;
    return (int)urt_sendfile(*(int *)a[0], *(int *)a[1], (int64_t *)a[2], FILE_SIZE);
}

static int cut_main(void *arg)
{
    struct cut_result *r = arg;
    /* 1. the peer goes after 200,000 bytes: -EPIPE or -ECONNRESET, never a SIGPIPE */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct reads_then_closes peer = { .fd = sv[1], .n = 200000 };
    urt_task *t = urt_spawn(read_some_then_close, &peer);
    r->off[0] = 0;
    r->res[0] = urt_sendfile(sv[0], r->file, &r->off[0], FILE_SIZE);
    urt_join(t);
    urt_close(sv[0]);
    r->peer_got[0] = peer.len;

    /* 2. nobody reads: the deadline ends it; the peer then reads exactly [0, *offset) */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    r->off[1] = 0;
    urt_deadline(urt_now() + URT_MSEC(200));
    r->res[1] = urt_sendfile(sv[0], r->file, &r->off[1], FILE_SIZE);
    urt_deadline(0);
    shutdown(sv[0], SHUT_WR);
    struct drain d = { .fd = sv[1], .got = got };
    drain_task(&d);
    r->peer_got[1] = d.len;
    r->peer_same[1] = memcmp(got, data, d.len) == 0;
    urt_close(sv[0]);
    urt_close(sv[1]);

    /* 3. cancelled while blocked */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    r->off[2] = 0;
    void *a[3] = { &sv[0], &r->file, &r->off[2] };
    t = urt_spawn(sendfile_task, a);
    urt_task *c = urt_spawn(canceller, t);
    r->res[2] = urt_join(t);
    urt_join(c);
    shutdown(sv[0], SHUT_WR);
    d = (struct drain){ .fd = sv[1], .got = got };
    drain_task(&d);
    r->peer_got[2] = d.len;
    r->peer_same[2] = memcmp(got, data, d.len) == 0;
    urt_close(sv[0]);
    urt_close(sv[1]);

    /* 4. the pooled pipes hold nothing of the above: a whole file arrives intact */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d = (struct drain){ .fd = sv[1], .got = got };
    t = urt_spawn(drain_task, &d);
    int64_t off = 0;
    ssize_t n = urt_sendfile(sv[0], r->file, &off, FILE_SIZE);
    urt_close(sv[0]);
    urt_join(t);
    urt_close(sv[1]);
    r->after_ok = n == FILE_SIZE && d.len == FILE_SIZE && memcmp(got, data, FILE_SIZE) == 0;
    sigset_t s;
    r->sigpipe_pending = sigpending(&s) == 0 && sigismember(&s, SIGPIPE);
    return 0;
}

UT_TEST(a_cut_sendfile_says_what_was_sent)
{
    signal(SIGPIPE, SIG_DFL);   /* a SIGPIPE would end this child */
    struct cut_result r = { .file = make_file() };
    assert_int_equal(urt_run(cut_main, &r, NULL), 0);
    assert_true(r.res[0] == -EPIPE || r.res[0] == -ECONNRESET);
    assert_true(r.off[0] >= 200000 && r.off[0] < FILE_SIZE);
    assert_int_equal(r.peer_got[0], 200000);
    assert_int_equal(r.res[1], -ETIMEDOUT);
    assert_true(r.off[1] >= 0 && r.off[1] < FILE_SIZE);   /* (0 if the kernel's worker starved) */
    assert_int_equal(r.peer_got[1], (size_t)r.off[1]);   /* no byte more, none lost */
    assert_true(r.peer_same[1]);
    assert_int_equal(r.res[2], -ECANCELED);
    assert_int_equal(r.peer_got[2], (size_t)r.off[2]);
    assert_true(r.peer_same[2]);
    assert_true(r.after_ok);
    assert_false(r.sigpipe_pending);
    close(r.file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sendfile_sends_exactly_the_range),
        cmocka_unit_test(a_cut_sendfile_says_what_was_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
