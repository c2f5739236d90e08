/*
 * test_io.c - the I/O calls: good and bad paths, deadlines and cancellation of kernel operations,
 * urt_close ending other tasks' operations, races between a cancel and a completion, tiny rings
 * under many tasks, completion-queue overflow and EMFILE.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "urt_test.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

/* ---- helpers (plain system calls, usable on any stack) ---------------------------------------- */

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* The byte at position k of a test stream: lost or repeated pieces change the sequence. */
static unsigned char stream_byte(size_t k)
{
    return (unsigned char)(k * 131u + (k >> 8) * 7u + (k >> 16));
}

/* ---- good paths ---------------------------------------------------------------------------- */

struct pipe_rw {
    long w1, r1, r2, w2, r3;
    char got[32];
};

static int pipe_rw_main(void *arg)
{
    struct pipe_rw *r = arg;
    int p[2];
    if (pipe(p))
        return -1;
    r->w1 = urt_write(p[1], "hello world", 11, -1);
    r->r1 = urt_read(p[0], r->got, 5, -1);          /* a short read leaves the rest */
    r->r2 = urt_read(p[0], r->got + 5, 100, -1);
    r->w2 = urt_write(p[1], "", 0, -1);
    close(p[1]);
    r->r3 = urt_read(p[0], r->got, 10, -1);          /* writer gone, pipe empty: EOF */
    close(p[0]);
    return 0;
}

UT_TEST(pipe_read_write)
{
    struct pipe_rw r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(pipe_rw_main, &r, NULL), 0);
    assert_int_equal(r.w1, 11);
    assert_int_equal(r.r1, 5);
    assert_int_equal(r.r2, 6);
    assert_int_equal(r.w2, 0);
    assert_int_equal(r.r3, 0);
}

struct vec_res {
    long wv, rv, badcnt, badcnt2;
    char a[4], b[16];
};

static int vec_main(void *arg)
{
    struct vec_res *r = arg;
    int p[2];
    if (pipe(p))
        return -1;
    struct iovec out[3] = { { "abc", 3 }, { "defgh", 5 }, { "ij", 2 } };
    r->wv = urt_writev(p[1], out, 3, -1);
    struct iovec in[2] = { { r->a, 4 }, { r->b, sizeof r->b } };
    r->rv = urt_readv(p[0], in, 2, -1);
    r->badcnt = urt_readv(p[0], in, -1, -1);
    r->badcnt2 = urt_writev(p[1], out, -5, -1);
    close(p[0]);
    close(p[1]);
    return 0;
}

UT_TEST(readv_writev)
{
    struct vec_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(vec_main, &r, NULL), 0);
    assert_int_equal(r.wv, 10);
    assert_int_equal(r.rv, 10);
    assert_memory_equal(r.a, "abcd", 4);
    assert_memory_equal(r.b, "efghij", 6);
    assert_int_equal(r.badcnt, -EINVAL);
    assert_int_equal(r.badcnt2, -EINVAL);
}

/* A regular file: offsets, the file position, fsync, open's errors. */
struct file_res {
    char path[64];
    long fd, w1, w2, r1, r2, r3, wv, rv, fs, fds, cl;
    long enoent, efault, eexist, fsync_bad;
    char b1[8], b2[8], b3[16], bv[8];
};

static int file_main(void *arg)
{
    struct file_res *r = arg;
    r->fd = urt_open(r->path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
    int fd = (int)r->fd;
    r->w1 = urt_write(fd, "hello", 5, -1);          /* at the position: 0..5 */
    r->w2 = urt_write(fd, "XY", 2, 10);             /* at offset 10, position unchanged */
    r->r1 = urt_read(fd, r->b1, 2, 10);
    r->r2 = urt_read(fd, r->b2, 5, 0);
    r->r3 = urt_read(fd, r->b3, sizeof r->b3, 5);   /* the hole reads as zeros: 5..12 */
    struct iovec wv[2] = { { "12", 2 }, { "34", 2 } };
    r->wv = urt_writev(fd, wv, 2, 20);
    struct iovec rv[2] = { { r->bv, 3 }, { r->bv + 3, 1 } };
    r->rv = urt_readv(fd, rv, 2, 20);
    r->fs = urt_fsync(fd, 0);
    r->fds = urt_fsync(fd, 1);
    r->cl = urt_close(fd);
    r->enoent = urt_open("/nonexistent-dir-urt/x", O_RDONLY, 0);
    r->efault = urt_open(NULL, O_RDONLY, 0);
    r->eexist = urt_open(r->path, O_CREAT | O_EXCL | O_RDWR, 0600);
    r->fsync_bad = urt_fsync(fd, 0);                /* closed now */
    return 0;
}

UT_TEST(file_offsets_fsync_open_errors)
{
    struct file_res r;
    memset(&r, 0, sizeof r);
    snprintf(r.path, sizeof r.path, "/tmp/urt-test-file-%d", (int)getpid());
    assert_int_equal(urt_run(file_main, &r, NULL), 0);
    unlink(r.path);
    assert_true(r.fd >= 0);
    assert_int_equal(r.w1, 5);
    assert_int_equal(r.w2, 2);
    assert_int_equal(r.r1, 2);
    assert_memory_equal(r.b1, "XY", 2);
    assert_int_equal(r.r2, 5);
    assert_memory_equal(r.b2, "hello", 5);
    assert_int_equal(r.r3, 7);
    assert_memory_equal(r.b3, "\0\0\0\0\0XY", 7);
    assert_int_equal(r.wv, 4);
    assert_int_equal(r.rv, 4);
    assert_memory_equal(r.bv, "1234", 4);
    assert_int_equal(r.fs, 0);
    assert_int_equal(r.fds, 0);
    assert_int_equal(r.cl, 0);
    assert_int_equal(r.enoent, -ENOENT);
    assert_int_equal(r.efault, -EFAULT);
    assert_int_equal(r.eexist, -EEXIST);
    assert_int_equal(r.fsync_bad, -EBADF);
}

/* TCP over loopback: socket, connect, accept (with the peer's address), send/recv, shutdown. */
#define TCP_BYTES (256 * 1024)

struct tcp_res {
    struct sockaddr_in addr;
    int lfd;
    long sock, conn, client_port;
    long acc, acc_family, acc_port, acc_cloexec;
    long server_total, server_bad, client_sent, client_total, client_eof;
    long shut;
};

static int tcp_server(void *arg)
{
    struct tcp_res *r = arg;
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    memset(&peer, 0, sizeof peer);
    int fd = urt_accept(r->lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    r->acc = fd;
    if (fd < 0)
        return -1;
    r->acc_family = peer.sin_family;
    r->acc_port = ntohs(peer.sin_port);
    r->acc_cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
    /* echo everything back until the client shuts its side down */
    static unsigned char buf[8192];
    for (;;) {
        ssize_t n = urt_recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (n < 0)
                r->server_bad = n;
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != stream_byte((size_t)r->server_total + (size_t)i))
                r->server_bad = 1;
        r->server_total += n;
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = urt_send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0) {
                r->server_bad = w ? w : -1;
                break;
            }
            off += w;
        }
    }
    urt_close(fd);
    return 0;
}

struct tcp_client_arg {
    struct tcp_res *r;
    int fd;
};

static int tcp_client_recv(void *arg)
{
    struct tcp_client_arg *a = arg;
    static unsigned char buf[8192];
    for (;;) {
        ssize_t n = urt_recv(a->fd, buf, sizeof buf, 0);
        if (n == 0) {
            a->r->client_eof = 1;
            break;
        }
        if (n < 0) {
            a->r->server_bad = n;
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != stream_byte((size_t)a->r->client_total + (size_t)i))
                a->r->server_bad = 2;
        a->r->client_total += n;
    }
    return 0;
}

static int tcp_main(void *arg)
{
    struct tcp_res *r = arg;
    r->lfd = ut_tcp_listener(16, &r->addr);
    if (r->lfd < 0)
        return -1;
    urt_task *srv = urt_spawn(tcp_server, r);
    int fd = urt_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    r->sock = fd;
    if (fd < 0)
        return -1;
    r->conn = urt_connect(fd, (struct sockaddr *)&r->addr, sizeof r->addr);
    struct sockaddr_in me;
    socklen_t mlen = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &mlen);
    r->client_port = ntohs(me.sin_port);
    struct tcp_client_arg ca = { r, fd };
    urt_task *rd = urt_spawn(tcp_client_recv, &ca);
    static unsigned char out[TCP_BYTES];
    for (size_t k = 0; k < sizeof out; k++)
        out[k] = stream_byte(k);
    size_t off = 0;
    while (off < sizeof out) {
        size_t chunk = 1000 + (off % 7000);
        if (chunk > sizeof out - off)
            chunk = sizeof out - off;
        ssize_t w = urt_send(fd, out + off, chunk, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    r->client_sent = (long)off;
    r->shut = urt_shutdown(fd, SHUT_WR);
    EXPECT_EQ(urt_join(rd), 0);
    EXPECT_EQ(urt_join(srv), 0);
    urt_close(fd);
    urt_close(r->lfd);
    return 0;
}

UT_TEST(tcp_loopback_echo)
{
    struct tcp_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(tcp_main, &r, NULL), 0);
    assert_true(r.sock >= 0);
    assert_int_equal(r.conn, 0);
    assert_true(r.acc >= 0);
    assert_int_equal(r.acc_family, AF_INET);
    assert_int_equal(r.acc_port, r.client_port);
    assert_int_equal(r.acc_cloexec, 1);
    assert_int_equal(r.shut, 0);
    assert_int_equal(r.server_bad, 0);
    assert_int_equal(r.client_sent, TCP_BYTES);
    assert_int_equal(r.server_total, TCP_BYTES);
    assert_int_equal(r.client_total, TCP_BYTES);
    assert_int_equal(r.client_eof, 1);
}

/* sendmsg/recvmsg: gathered data and a passed file descriptor. */
struct msg_res {
    long sent, got, nullsend, nullrecv;
    char data[32];
    int passed_fd;
    char through_passed[8];
};

static int msg_main(void *arg)
{
    struct msg_res *r = arg;
    int sv[2], p[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) || pipe(p))
        return -1;
    struct iovec out[2] = { { "datagram-", 9 }, { "payload", 7 } };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof cm);
    struct msghdr mh = { .msg_iov = out, .msg_iovlen = 2, .msg_control = cm.buf,
                         .msg_controllen = sizeof cm.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[1], sizeof(int));
    r->sent = urt_sendmsg(sv[0], &mh, 0);

    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cin;
    memset(&cin, 0, sizeof cin);
    struct iovec in = { r->data, sizeof r->data };
    struct msghdr mi = { .msg_iov = &in, .msg_iovlen = 1, .msg_control = cin.buf,
                         .msg_controllen = sizeof cin.buf };
    r->got = urt_recvmsg(sv[1], &mi, MSG_CMSG_CLOEXEC);
    r->passed_fd = -1;
    struct cmsghdr *ci = CMSG_FIRSTHDR(&mi);
    if (ci && ci->cmsg_type == SCM_RIGHTS)
        memcpy(&r->passed_fd, CMSG_DATA(ci), sizeof(int));
    if (r->passed_fd >= 0) {
        EXPECT_EQ(urt_write(r->passed_fd, "via", 3, -1), 3);
        EXPECT_EQ(urt_read(p[0], r->through_passed, 3, -1), 3);
        close(r->passed_fd);
    }
    r->nullsend = urt_sendmsg(sv[0], NULL, 0);
    r->nullrecv = urt_recvmsg(sv[1], NULL, 0);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    return 0;
}

UT_TEST(sendmsg_recvmsg_with_fd_passing)
{
    struct msg_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(msg_main, &r, NULL), 0);
    assert_int_equal(r.sent, 16);
    assert_int_equal(r.got, 16);
    assert_memory_equal(r.data, "datagram-payload", 16);
    assert_true(r.passed_fd >= 0);
    assert_memory_equal(r.through_passed, "via", 3);
    assert_int_equal(r.nullsend, -EFAULT);
    assert_int_equal(r.nullrecv, -EFAULT);
}

/* poll: waits for readiness, reports what is ready. */
struct poll_res {
    int p[2];
    long in_res, out_res, hup_res, order;
    int writer_done;
};

static int poll_writer(void *arg)
{
    struct poll_res *r = arg;
    urt_sleep(URT_MSEC(5));
    r->writer_done = 1;
    return write(r->p[1], "z", 1) == 1 ? 0 : -1;
}

static int poll_main(void *arg)
{
    struct poll_res *r = arg;
    if (pipe(r->p))
        return -1;
    r->out_res = urt_poll(r->p[1], POLLOUT);
    urt_task *w = urt_spawn(poll_writer, r);
    r->in_res = urt_poll(r->p[0], POLLIN);
    r->order = r->writer_done;           /* poll returned only after the write */
    EXPECT_EQ(urt_join(w), 0);
    close(r->p[1]);
    char c;
    EXPECT_EQ(urt_read(r->p[0], &c, 1, -1), 1);
    r->hup_res = urt_poll(r->p[0], POLLIN);
    close(r->p[0]);
    return 0;
}

UT_TEST(poll_readiness)
{
    struct poll_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(poll_main, &r, NULL), 0);
    assert_true(r.out_res & POLLOUT);
    assert_true(r.in_res & POLLIN);
    assert_int_equal(r.order, 1);
    assert_true(r.hup_res & POLLHUP);
}

/* ---- bad paths ------------------------------------------------------------------------------ */

#define NBAD 13
struct bad_res {
    long r[3][NBAD];
    long sock_bad_domain, accept_notsock, read_efault, write_efault;
};

static void bad_fd_calls(int fd, long *r)
{
    char buf[8] = { 0 };
    struct iovec iov = { buf, sizeof buf };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(9),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int i = 0;
    r[i++] = urt_read(fd, buf, sizeof buf, -1);
    r[i++] = urt_write(fd, buf, sizeof buf, -1);
    r[i++] = urt_readv(fd, &iov, 1, -1);
    r[i++] = urt_writev(fd, &iov, 1, -1);
    r[i++] = urt_recv(fd, buf, sizeof buf, 0);
    r[i++] = urt_send(fd, buf, sizeof buf, MSG_NOSIGNAL);
    r[i++] = urt_recvmsg(fd, &mh, 0);
    r[i++] = urt_sendmsg(fd, &mh, MSG_NOSIGNAL);
    r[i++] = urt_accept(fd, NULL, NULL, 0);
    r[i++] = urt_connect(fd, (struct sockaddr *)&sin, sizeof sin);
    r[i++] = urt_fsync(fd, 0);
    r[i++] = urt_shutdown(fd, SHUT_RDWR);
    r[i++] = urt_close(fd);
}

static int bad_main(void *arg)
{
    struct bad_res *r = arg;
    int p[2];
    if (pipe(p))
        return -1;
    close(p[0]);   /* a closed fd */
    bad_fd_calls(-1, r->r[0]);
    bad_fd_calls(9999, r->r[1]);
    bad_fd_calls(p[0], r->r[2]);
    r->sock_bad_domain = urt_socket(12345, SOCK_STREAM, 0);
    r->accept_notsock = urt_accept(p[1], NULL, NULL, 0);
    int q[2];
    if (pipe(q))
        return -1;
    r->write_efault = urt_write(q[1], (void *)16, 8, -1);
    EXPECT_EQ(write(q[1], "abcdefgh", 8), 8);
    r->read_efault = urt_read(q[0], (void *)16, 8, -1);
    close(q[0]);
    close(q[1]);
    close(p[1]);
    return 0;
}

UT_TEST(bad_fds_and_buffers_are_errors)
{
    struct bad_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(bad_main, &r, NULL), 0);
    static const char *names[NBAD] = { "read", "write", "readv", "writev", "recv", "send",
                                       "recvmsg", "sendmsg", "accept", "connect", "fsync",
                                       "shutdown", "close" };
    static const char *which[3] = { "-1", "9999", "a closed fd" };
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < NBAD; i++)
            if (r.r[k][i] != -EBADF)
                fail_msg("urt_%s on %s returned %ld, expected -EBADF", names[i], which[k],
                         r.r[k][i]);
    assert_true(r.sock_bad_domain == -EAFNOSUPPORT || r.sock_bad_domain == -EINVAL);
    assert_int_equal(r.accept_notsock, -ENOTSOCK);
    assert_int_equal(r.write_efault, -EFAULT);
    assert_int_equal(r.read_efault, -EFAULT);
}

/* A peer that vanished: EOF, EPIPE, ECONNRESET, as the system calls say. */
struct vanish_res {
    long sp_recv, sp_send, pipe_write, pipe_read;
    long blocked_recv;
    long rst_recv_blocked, rst_recv_after, rst_send;
};

struct blocked_recv_arg {
    int fd;
    long res;
};

static int blocked_recv(void *arg)
{
    struct blocked_recv_arg *a = arg;
    char buf[16];
    a->res = urt_recv(a->fd, buf, sizeof buf, 0);
    return 0;
}

static int vanish_main(void *arg)
{
    struct vanish_res *r = arg;
    char buf[16] = "x";
    int sv[2], p[2];
    /* socketpair: peer closed */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    close(sv[1]);
    r->sp_recv = urt_recv(sv[0], buf, sizeof buf, 0);
    r->sp_send = urt_send(sv[0], buf, 1, MSG_NOSIGNAL);
    close(sv[0]);
    /* pipe: each end closed in turn */
    if (pipe(p))
        return -1;
    close(p[0]);
    r->pipe_write = urt_write(p[1], buf, 1, -1);
    close(p[1]);
    if (pipe(p))
        return -1;
    close(p[1]);
    r->pipe_read = urt_read(p[0], buf, 1, -1);
    close(p[0]);
    /* a task waiting in recv when its peer goes away wakes with EOF */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    struct blocked_recv_arg ba = { sv[0], 99 };
    urt_task *t = urt_spawn(blocked_recv, &ba);
    urt_sleep(URT_MSEC(5));
    close(sv[1]);
    EXPECT_EQ(urt_join(t), 0);
    r->blocked_recv = ba.res;
    close(sv[0]);
    /* TCP reset: the peer closes with SO_LINGER 0 */
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(4, &addr);
    for (int round = 0; round < 2; round++) {
        int cfd = urt_socket(AF_INET, SOCK_STREAM, 0);
        EXPECT_EQ(urt_connect(cfd, (struct sockaddr *)&addr, sizeof addr), 0);
        int sfd = urt_accept(lfd, NULL, NULL, 0);
        EXPECT(sfd >= 0);
        struct linger lg = { 1, 0 };
        setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        if (round == 0) {
            struct blocked_recv_arg ra = { cfd, 99 };
            urt_task *rt = urt_spawn(blocked_recv, &ra);
            urt_sleep(URT_MSEC(5));
            close(sfd);
            EXPECT_EQ(urt_join(rt), 0);
            r->rst_recv_blocked = ra.res;
        } else {
            close(sfd);
            urt_sleep(URT_MSEC(5));
            r->rst_recv_after = urt_recv(cfd, buf, sizeof buf, 0);
            r->rst_send = urt_send(cfd, buf, 1, MSG_NOSIGNAL);
        }
        urt_close(cfd);
    }
    close(lfd);
    return 0;
}

UT_TEST(peer_vanished)
{
    struct vanish_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(vanish_main, &r, NULL), 0);
    assert_int_equal(r.sp_recv, 0);
    assert_int_equal(r.sp_send, -EPIPE);
    assert_int_equal(r.pipe_write, -EPIPE);
    assert_int_equal(r.pipe_read, 0);
    assert_int_equal(r.blocked_recv, 0);
    assert_int_equal(r.rst_recv_blocked, -ECONNRESET);
    assert_int_equal(r.rst_recv_after, -ECONNRESET);
    /* after the reset was reported the socket is dead: EPIPE (or ECONNRESET) */
    assert_true(r.rst_send == -EPIPE || r.rst_send == -ECONNRESET);
}

/* ---- SIGPIPE: a reader that has gone is -EPIPE, never a signal ------------------------------- */

static int sigpipe_pending(void)
{
    sigset_t s;
    sigemptyset(&s);
    return sigpending(&s) == 0 && sigismember(&s, SIGPIPE) == 1;
}

static int sigpipe_blocked(void)
{
    sigset_t s;
    sigemptyset(&s);
    return pthread_sigmask(SIG_BLOCK, NULL, &s) == 0 && sigismember(&s, SIGPIPE) == 1;
}

static volatile sig_atomic_t sigpipe_handled;

static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipe_handled++;
}

/* A pipe whose read end is closed: its write end, or -1. */
static int broken_pipe(void)
{
    int p[2];
    if (pipe(p))
        return -1;
    close(p[0]);
    return p[1];
}

struct blocked_write_arg {
    int fd;
    long res;
};

static int blocked_write(void *arg)
{
    struct blocked_write_arg *a = arg;
    a->res = urt_write(a->fd, "x", 1, -1);
    return 0;
}

struct writes_res {
    long write, writev, sock_write, waiting_write, raw_write;
    int raw_errno, pending_after[4], blocked_inside;
};

static int writes_main(void *arg)
{
    struct writes_res *r = arg;
    r->blocked_inside = sigpipe_blocked();
    int fd = broken_pipe();
    r->write = urt_write(fd, "x", 1, -1);
    r->pending_after[0] = sigpipe_pending();
    struct iovec iov[2] = { { "ab", 2 }, { "c", 1 } };
    r->writev = urt_writev(fd, iov, 2, -1);
    r->pending_after[1] = sigpipe_pending();
    close(fd);
    /* write(2) on a socket has no MSG_NOSIGNAL either */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    close(sv[1]);
    r->sock_write = urt_write(sv[0], "x", 1, -1);
    r->pending_after[2] = sigpipe_pending();
    close(sv[0]);
    /* a write waiting for room in a full pipe when the reader goes */
    int p[2];
    if (pipe(p))
        return -1;
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    char fill[4096];
    memset(fill, 'f', sizeof fill);
    while (write(p[1], fill, sizeof fill) > 0)
        ;
    fcntl(p[1], F_SETFL, 0);
    struct blocked_write_arg ba = { p[1], 99 };
    urt_task *t = urt_spawn(blocked_write, &ba);
    urt_sleep(URT_MSEC(5));
    EXPECT_EQ(ba.res, 99);   /* still waiting */
    close(p[0]);
    EXPECT_EQ(urt_join(t), 0);
    r->waiting_write = ba.res;
    r->pending_after[3] = sigpipe_pending();
    close(p[1]);
    /* a task's own write(2): EPIPE, its signal held off until urt_run ends (and dropped) */
    fd = broken_pipe();
    r->raw_write = write(fd, "x", 1);
    r->raw_errno = errno;
    close(fd);
    return 0;
}

UT_TEST(write_to_gone_reader_is_epipe_not_sigpipe)
{
    signal(SIGPIPE, SIG_DFL);   /* the default action would end this child */
    struct writes_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(writes_main, &r, NULL), 0);
    assert_int_equal(r.blocked_inside, 1);
    assert_int_equal(r.write, -EPIPE);
    assert_int_equal(r.writev, -EPIPE);
    assert_int_equal(r.sock_write, -EPIPE);
    assert_int_equal(r.waiting_write, -EPIPE);
    assert_int_equal(r.raw_write, -1);
    assert_int_equal(r.raw_errno, EPIPE);
    for (int i = 0; i < 4; i++)
        if (r.pending_after[i])
            fail_msg("SIGPIPE left pending after write %d", i);
    assert_false(sigpipe_pending());
    assert_false(sigpipe_blocked());   /* the caller's mask again */
}

struct sends_res {
    long send, sendmsg, send_recv, tcp_send[4];
    size_t sent;
    int pending;
};

static int sends_main(void *arg)
{
    struct sends_res *r = arg;
    char buf[16] = "x";
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    close(sv[1]);
    r->send = urt_send(sv[0], buf, 1, 0);   /* no MSG_NOSIGNAL from the caller */
    struct iovec iov = { buf, 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    r->sendmsg = urt_sendmsg(sv[0], &mh, 0);
    r->sent = 99;
    r->send_recv = urt_send_recv(sv[0], buf, 1, buf, sizeof buf, 0, &r->sent);
    close(sv[0]);
    /* TCP: the peer closes; the sends after its FIN draw a reset, then EPIPE */
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(4, &addr);
    int cfd = urt_socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(urt_connect(cfd, (struct sockaddr *)&addr, sizeof addr), 0);
    int sfd = urt_accept(lfd, NULL, NULL, 0);
    EXPECT(sfd >= 0);
    close(sfd);
    r->tcp_send[0] = urt_send(cfd, buf, 1, 0);   /* goes out, or meets the reset already */
    if (r->tcp_send[0] >= 0) {
        /* Wait for the reset it draws, not for time: POLLPRI never comes here, but POLLERR and
           POLLHUP are reported whatever was asked, and only the reset sets them. */
        uint64_t old = urt_deadline(urt_now() + URT_SEC(30));
        int ev = urt_poll(cfd, POLLPRI);
        EXPECT(ev > 0 && (ev & (POLLERR | POLLHUP)));
        urt_deadline(old);
    }
    for (int i = 1; i < 4; i++)
        r->tcp_send[i] = urt_send(cfd, buf, 1, 0);
    urt_close(cfd);
    close(lfd);
    r->pending = sigpipe_pending();
    return 0;
}

UT_TEST(send_to_gone_peer_is_epipe_not_sigpipe)
{
    signal(SIGPIPE, SIG_DFL);
    struct sends_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(sends_main, &r, NULL), 0);
    assert_int_equal(r.send, -EPIPE);
    assert_int_equal(r.sendmsg, -EPIPE);
    assert_int_equal(r.send_recv, -EPIPE);
    assert_int_equal(r.sent, 0);
    /* the first send may go out before the FIN is seen; a later one meets the reset (ECONNRESET)
       or the dead socket (EPIPE) */
    assert_int_equal(r.tcp_send[3], -EPIPE);
    assert_false(r.pending);
    assert_false(sigpipe_pending());
}

static int one_broken_write(void *arg)
{
    long *res = arg;
    int fd = broken_pipe();
    *res = urt_write(fd, "x", 1, -1);
    close(fd);
    return 0;
}

UT_TEST(program_sigpipe_handler_works_outside_urt_run)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, NULL), 0);
    long res = 0;
    assert_int_equal(urt_run(one_broken_write, &res, NULL), 0);
    assert_int_equal(res, -EPIPE);
    assert_int_equal(sigpipe_handled, 0);   /* urt's own SIGPIPE: taken back, never delivered */
    assert_false(sigpipe_blocked());
    /* the program's own write after urt_run: its handler runs */
    int fd = broken_pipe();
    assert_int_equal(write(fd, "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(sigpipe_handled, 1);
    close(fd);
    /* and once more after a second urt_run */
    assert_int_equal(urt_run(one_broken_write, &res, NULL), 0);
    assert_int_equal(res, -EPIPE);
    assert_int_equal(sigpipe_handled, 1);
    fd = broken_pipe();
    assert_int_equal(write(fd, "x", 1), -1);
    assert_int_equal(sigpipe_handled, 2);
    close(fd);
}

UT_TEST(program_pending_sigpipe_is_not_taken)
{
    signal(SIGPIPE, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &s, NULL), 0);
    /* the program's own SIGPIPE, pending (blocked) when urt_run begins */
    int fd = broken_pipe();
    assert_int_equal(write(fd, "x", 1), -1);
    close(fd);
    assert_true(sigpipe_pending());
    long res = 0;
    assert_int_equal(urt_run(one_broken_write, &res, NULL), 0);
    assert_int_equal(res, -EPIPE);
    assert_true(sigpipe_blocked());   /* it was blocked before: it stays so */
    assert_true(sigpipe_pending());   /* the program's, still there */
    struct timespec zero = { 0, 0 };
    assert_int_equal(sigtimedwait(&s, NULL, &zero), SIGPIPE);
    assert_false(sigpipe_pending());
    /* blocked by the caller, none pending: urt's own is taken back, the block stays */
    assert_int_equal(urt_run(one_broken_write, &res, NULL), 0);
    assert_int_equal(res, -EPIPE);
    assert_true(sigpipe_blocked());
    assert_false(sigpipe_pending());
}

static int threads_sigpipe_main(void *arg)
{
    (void)arg;
    EXPECT(sigpipe_blocked());
    for (int i = 0; i < 50; i++) {
        int fd = broken_pipe();
        EXPECT_EQ(urt_write(fd, "x", 1, -1), -EPIPE);
        EXPECT(!sigpipe_pending());
        close(fd);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
            return -1;
        close(sv[1]);
        EXPECT_EQ(urt_send(sv[0], "x", 1, 0), -EPIPE);
        EXPECT_EQ(urt_write(sv[0], "x", 1, -1), -EPIPE);
        EXPECT(!sigpipe_pending());
        close(sv[0]);
        urt_yield();
    }
    return 0;
}

UT_TEST(sigpipe_in_run_threads)
{
    UT_NOT_UNDER_VALGRIND();
    signal(SIGPIPE, SIG_DFL);
    assert_int_equal(urt_run_threads(2, threads_sigpipe_main, NULL, NULL), 0);
    assert_false(sigpipe_pending());
    assert_false(sigpipe_blocked());
    /* the program's handler still applies on this thread */
    signal(SIGPIPE, on_sigpipe);
    int fd = broken_pipe();
    assert_int_equal(write(fd, "x", 1), -1);
    assert_int_equal(sigpipe_handled, 1);
    close(fd);
}

struct sigwait_res {
    int signo;
    long write;
};

static int wait_sigpipe(void *arg)
{
    struct sigwait_res *r = arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    r->signo = urt_signal_wait(&s);
    return 0;
}

static int sigwait_main(void *arg)
{
    struct sigwait_res *r = arg;
    urt_task *t = urt_spawn(wait_sigpipe, r);
    urt_yield();   /* it runs first (FIFO), into urt_signal_wait, before the write below */
    int fd = broken_pipe();
    r->write = urt_write(fd, "x", 1, -1);
    close(fd);
    uint64_t old = urt_deadline(urt_now() + URT_SEC(5));
    EXPECT_EQ(urt_join(t), 0);
    urt_deadline(old);
    return 0;
}

UT_TEST(signal_wait_for_sigpipe_receives_urts)
{
    signal(SIGPIPE, SIG_DFL);
    struct sigwait_res r = { 0, 0 };
    assert_int_equal(urt_run(sigwait_main, &r, NULL), 0);
    assert_int_equal(r.write, -EPIPE);
    assert_int_equal(r.signo, SIGPIPE);   /* asked for through urt_signal_wait: left for it */
    assert_true(sigpipe_blocked());       /* as urt_signal_wait says: blocked from then on */
    assert_false(sigpipe_pending());
}

/* ---- urt_send_recv: the send and the next recv as one linked pair ------------------------- */

/* The peer of an exchange, a plain thread: reads a 4-byte length and that many bytes, answers
   with their sum (mod 256) as one byte followed by the length; until EOF. */
static void *sum_peer(void *arg)
{
    int fd = *(int *)arg;
    static unsigned char big[4 << 20];
    for (;;) {
        uint32_t len;
        if (recv(fd, &len, sizeof len, MSG_WAITALL) != (ssize_t)sizeof len || len > sizeof big)
            break;
        if (recv(fd, big, len, MSG_WAITALL) != (ssize_t)len)
            break;
        unsigned char reply[5] = { 0 };
        for (size_t i = 0; i < len; i++)
            reply[0] = (unsigned char)(reply[0] + big[i]);
        memcpy(reply + 1, &len, 4);
        if (send(fd, reply, sizeof reply, MSG_NOSIGNAL) != 5)
            break;
    }
    return NULL;
}

struct sr_res {
    long small_ok, big_ok, same_buf_ok, empty_out;
    uint64_t switches, submitted, reaped;
    long after_close;
    size_t after_close_sent;
};

/* One exchange of len bytes of message (prefixed by its length); checks the reply. */
static int exchange(int fd, const unsigned char *msg, uint32_t len, unsigned char *scratch)
{
    memcpy(scratch, &len, 4);
    memcpy(scratch + 4, msg, len);
    unsigned char want = 0;
    for (uint32_t i = 0; i < len; i++)
        want = (unsigned char)(want + msg[i]);
    /* The reply lands in the buffer the request was sent from. */
    size_t sent = 0;
    ssize_t n = urt_send_recv(fd, scratch, len + 4, scratch, 5, MSG_NOSIGNAL | MSG_WAITALL, &sent);
    if (sent != len + 4)
        return -3000;
    if (n != 5)
        return (int)(n < 0 ? n : -1000 - n);
    uint32_t echoed;
    memcpy(&echoed, scratch + 1, 4);
    return scratch[0] == want && echoed == len ? 0 : -2000;
}

static int send_recv_main(void *arg)
{
    struct sr_res *r = arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    pthread_t peer;
    if (pthread_create(&peer, NULL, sum_peer, &sv[1]))
        return -1;
    struct urt_stats a, b;
    urt_stats(&a);
    static unsigned char msg[4 << 20], scratch[(4 << 20) + 8];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 7 + 3);
    /* 100 small exchanges: one park and one completion each. */
    for (uint32_t i = 1; i <= 100; i++) {
        int e = exchange(sv[0], msg + i, i, scratch);
        if (e) {
            r->small_ok = e;
            break;
        }
        r->small_ok = i;
    }
    urt_stats(&b);
    r->switches = b.switches - a.switches;
    r->submitted = b.sqes_submitted - a.sqes_submitted;
    r->reaped = b.cqes_reaped - a.cqes_reaped;
    /* 4 MiB: far beyond the socket's buffer, so the kernel sends it in parts while the peer
       reads; the recv must not start before the last part is out. */
    r->big_ok = exchange(sv[0], msg, sizeof msg - 8, scratch);
    /* Nothing to send: a plain recv. */
    uint32_t len = 3;
    memcpy(scratch, &len, 4);
    memcpy(scratch + 4, "abc", 3);
    EXPECT_EQ(urt_send(sv[0], scratch, 7, 0), 7);
    r->empty_out = urt_send_recv(sv[0], NULL, 0, scratch, 5, MSG_WAITALL, NULL);
    r->same_buf_ok = scratch[0] == (unsigned char)('a' + 'b' + 'c');
    /* The peer goes away: the send fails, nothing is received. */
    shutdown(sv[0], SHUT_WR);
    pthread_join(peer, NULL);
    close(sv[1]);
    r->after_close = urt_send_recv(sv[0], "x", 1, scratch, 1, MSG_NOSIGNAL, &r->after_close_sent);
    close(sv[0]);
    return 0;
}

UT_TEST(send_recv_exchanges)
{
#if defined(RUNNING_ON_VALGRIND)
    /* Valgrind holds its one-thread-at-a-time lock through io_uring_enter: the peer thread
       could never run while the ring waits for it. */
    if (RUNNING_ON_VALGRIND) {
        UT_NOTE("  skipped under Valgrind\n");
        return;
    }
#endif
    struct sr_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(send_recv_main, &r, NULL), 0);
    assert_int_equal(r.small_ok, 100);
    /* Each exchange is two SQEs and two completions, and the task parks once: two switches
       (away and back), where a send then a recv take four. */
    assert_int_equal(r.submitted, 200);
    assert_int_equal(r.reaped, 200);
    assert_int_equal(r.switches, 200);
    assert_int_equal(r.big_ok, 0);
    assert_int_equal(r.empty_out, 5);
    assert_true(r.same_buf_ok);
    assert_int_equal(r.after_close, -EPIPE);
    assert_int_equal(r.after_close_sent, 0);
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted + st.cqes_more);
}

/* Either half can be the one in the kernel when a cancel, a deadline or urt_close comes. */
struct sr_stop {
    int fd;
    int how;          /* 0 cancel, 1 deadline, 2 urt_close by another task */
    size_t out_len;   /* large: stops in the send; small: in the recv */
    long res;
    size_t sent;
    int started;
};

static unsigned char sr_big[4 << 20];

static int sr_stopped(void *arg)
{
    struct sr_stop *s = arg;
    char in[16];
    if (s->how == 1)
        urt_deadline(urt_now() + URT_MSEC(20));
    s->started = 1;
    s->sent = 12345;
    s->res = urt_send_recv(s->fd, sr_big, s->out_len, in, sizeof in, MSG_NOSIGNAL, &s->sent);
    return 0;
}

struct sr_stop_res {
    long res[3][2];
    size_t sent[3][2];
    size_t peer_got[3][2];
    long fd_alive[3][2];
};

static int sr_stop_main(void *arg)
{
    struct sr_stop_res *r = arg;
    for (int how = 0; how < 3; how++) {
        for (int half = 0; half < 2; half++) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
                return -1;
            struct sr_stop s = { .fd = sv[0], .how = how, .out_len = half ? 10 : sizeof sr_big };
            urt_task *t = urt_spawn(sr_stopped, &s);
            urt_sleep(URT_MSEC(5));    /* t is in the kernel: the send stalled, or the recv */
            EXPECT(s.started);
            if (how == 0)
                urt_cancel(t);
            else if (how == 2)
                urt_close(sv[0]);
            EXPECT_EQ(urt_join(t), 0);
            r->res[how][half] = s.res;
            r->sent[how][half] = s.sent;
            /* What reached the peer: all 10 bytes when the recv was waiting, a part of the
               4 MiB when the send was. */
            int fl = fcntl(sv[1], F_GETFL);
            fcntl(sv[1], F_SETFL, fl | O_NONBLOCK);
            size_t got = 0;
            for (;;) {
                ssize_t n = read(sv[1], sr_big, 65536);
                if (n <= 0)
                    break;
                got += (size_t)n;
            }
            r->peer_got[how][half] = got;
            if (how != 2) {
                /* The fd still works: an exchange the peer answers by hand. */
                EXPECT_EQ(write(sv[1], "pong", 4), 4);
                char in[8];
                r->fd_alive[how][half] = urt_send_recv(sv[0], "ping", 4, in, sizeof in, 0, NULL);
                char pg[4];
                EXPECT_EQ(read(sv[1], pg, 4), 4);
                urt_close(sv[0]);
            }
            close(sv[1]);
        }
    }
    return 0;
}

UT_TEST(send_recv_cancel_deadline_close_in_either_half)
{
    struct sr_stop_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(sr_stop_main, &r, NULL), 0);
    static const long want[3] = { -ECANCELED, -ETIMEDOUT, -EBADF };
    for (int how = 0; how < 3; how++) {
        for (int half = 0; half < 2; half++) {
            if (r.res[how][half] != want[how])
                fail_msg("how %d, %s half: %ld, want %ld", how, half ? "recv" : "send",
                         r.res[how][half], want[how]);
        }
        assert_true(r.peer_got[how][0] > 0 && r.peer_got[how][0] < sizeof sr_big);
        assert_int_equal(r.peer_got[how][1], 10);
        /* sent says what went: all of it before the recv, the part the peer got otherwise */
        assert_int_equal(r.sent[how][0], r.peer_got[how][0]);
        assert_int_equal(r.sent[how][1], 10);
        if (how != 2) {
            assert_int_equal(r.fd_alive[how][0], 4);
            assert_int_equal(r.fd_alive[how][1], 4);
        }
    }
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted + st.cqes_more);
}

/* Joins t under a deadline of ns, so that a lost cancel or deadline fails a test instead of
   hanging it: returns the join's result (-ETIMEDOUT then, after a dump of the tasks and one more
   cancel and join). */
static int join_in_time(urt_task *t, uint64_t ns)
{
    urt_deadline(urt_now() + ns);
    int st = urt_join(t);
    urt_deadline(0);
    if (st != 0) {
        fprintf(stderr, "a task did not end in time (join %d); the tasks:\n", st);
        urt_dump(stderr);
        urt_cancel(t);
        urt_join(t);
    }
    return st;
}

/* A cancel that goes to the kernel in the same submission as the pair it cancels: the send
   completes there and then, and the recv is queued only at the end of that batch, where the
   cancel cannot have found it. The runtime must cancel the recv again. */
static int sr_quick(void *arg)
{
    struct sr_stop *s = arg;
    char in[16];
    s->res = urt_send_recv(s->fd, "ping", 4, in, sizeof in, 0, &s->sent);
    return 0;
}

static int sr_same_batch_main(void *arg)
{
    long *res = arg;
    for (int i = 0; i < 50; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            return -1;
        struct sr_stop s = { .fd = sv[0], .res = 99 };
        urt_task *t = urt_spawn(sr_quick, &s);
        urt_yield();        /* t queues its pair and parks; this task comes next in the round */
        urt_cancel(t);      /* before the round's submission */
        int st = join_in_time(t, URT_SEC(2));
        if (st != 0)
            res[1] = st;
        if (s.res != -ECANCELED || s.sent != 4)
            res[0]++;
        urt_close(sv[0]);
        close(sv[1]);
    }
    return 0;
}

UT_TEST(send_recv_cancelled_in_the_same_batch)
{
    long res[2] = { 0, 0 };
    assert_int_equal(urt_run(sr_same_batch_main, res, NULL), 0);
    assert_int_equal(res[1], 0);   /* every join returned: no cancel was lost */
    assert_int_equal(res[0], 0);   /* each call: -ECANCELED, the ping sent */
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted + st.cqes_more);
}

/* A cancel that comes just as a stalled send completes in the kernel's task work, where the
   recv behind it is queued but not yet started: the first cancels find neither half, and must
   be sent again. The peer thread reads the whole request, then wakes the canceller through an
   eventfd and never answers. */
struct sr_late {
    int fd, efd;
    long res;
    size_t sent;
    uint64_t deadline;
};

static unsigned char sr_late_big[4 << 20];

static void *sr_late_peer(void *arg)
{
    struct sr_late *l = arg;
    static unsigned char sink[4 << 20];
    if (recv(l->fd, sink, sizeof sink, MSG_WAITALL) == (ssize_t)sizeof sink) {
        uint64_t one = 1;
        if (write(l->efd, &one, sizeof one) != sizeof one)
            return NULL;
    }
    return NULL;
}

static int sr_late_caller(void *arg)
{
    struct sr_late *l = arg;
    char in[8];
    if (l->deadline)
        urt_deadline(l->deadline);
    l->res = urt_send_recv(l->fd, sr_late_big, sizeof sr_late_big, in, sizeof in, MSG_NOSIGNAL,
                           &l->sent);
    return 0;
}

/* The peer of the deadline variant: drains the request after a pause, never answers. */
static void *sr_slow_peer(void *arg)
{
    struct sr_late *l = arg;
    static unsigned char sink[4 << 20];
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    if (recv(l->fd, sink, sizeof sink, MSG_WAITALL) != (ssize_t)sizeof sink)
        return NULL;
    return NULL;
}

/* Deadlines spread over the moments the peer drains the stalled send, so that some expire in
   the round that reaps the send's completion, with the recv behind it queued but not started. */
static int sr_deadline_sweep_main(void *arg)
{
    long *res = arg;
    for (int k = 0; k < 40; k++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            return -1;
        struct sr_late peer = { .fd = sv[1] };
        struct sr_late l = { .fd = sv[0], .res = 99,
                             .deadline = urt_now() + URT_MSEC(20) + (uint64_t)k * URT_USEC(50) };
        pthread_t th;
        if (pthread_create(&th, NULL, sr_slow_peer, &peer))
            return -1;
        urt_task *t = urt_spawn(sr_late_caller, &l);
        if (join_in_time(t, URT_SEC(3)) != 0) {
            res[1]++;
            fprintf(stderr, "deadline %d was lost\n", k);
        }
        if (l.res != -ETIMEDOUT) {
            res[0]++;
            fprintf(stderr, "deadline %d: %ld, sent %zu\n", k, l.res, l.sent);
        }
        urt_close(sv[0]);           /* the peer may wait for bytes the deadline stopped */
        pthread_join(th, NULL);
        close(sv[1]);
    }
    return 0;
}

UT_TEST_T(send_recv_deadline_as_its_send_completes, 60)
{
#if defined(RUNNING_ON_VALGRIND)
    if (RUNNING_ON_VALGRIND) {   /* a peer thread: see send_recv_exchanges */
        UT_NOTE("  skipped under Valgrind\n");
        return;
    }
#endif
    long res[2] = { 0, 0 };
    assert_int_equal(urt_run(sr_deadline_sweep_main, res, NULL), 0);
    assert_int_equal(res[1], 0);   /* every join returned: no deadline was lost */
    assert_int_equal(res[0], 0);   /* each call: -ETIMEDOUT */
}

static int sr_late_main(void *arg)
{
    long *res = arg;
    for (int i = 0; i < 5; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
            return -1;
        struct sr_late l = { .fd = sv[0], .efd = eventfd(0, EFD_CLOEXEC), .res = 99 };
        struct sr_late peer = { .fd = sv[1], .efd = l.efd };
        pthread_t th;
        if (l.efd < 0 || pthread_create(&th, NULL, sr_late_peer, &peer))
            return -1;
        urt_task *t = urt_spawn(sr_late_caller, &l);
        uint64_t v;
        EXPECT_EQ(urt_read(l.efd, &v, sizeof v, -1), 8);   /* the peer has it all */
        urt_cancel(t);
        if (join_in_time(t, URT_SEC(3)) != 0)
            res[1]++;
        if (l.res != -ECANCELED || l.sent != sizeof sr_late_big)
            res[0]++;
        pthread_join(th, NULL);
        urt_close(sv[0]);
        close(sv[1]);
        close(l.efd);
    }
    return 0;
}

UT_TEST(send_recv_cancelled_as_its_send_completes)
{
#if defined(RUNNING_ON_VALGRIND)
    if (RUNNING_ON_VALGRIND) {   /* a peer thread: see send_recv_exchanges */
        UT_NOTE("  skipped under Valgrind\n");
        return;
    }
#endif
    long res[2] = { 0, 0 };
    assert_int_equal(urt_run(sr_late_main, res, NULL), 0);
    assert_int_equal(res[1], 0);   /* every join returned: no cancel was lost */
    assert_int_equal(res[0], 0);   /* each call: -ECANCELED with all 4 MiB sent */
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted + st.cqes_more);
}

static size_t sent[5];

static int sr_bad_main(void *arg)
{
    long *r = arg;
    char buf[4];
    r[0] = urt_send_recv(-1, "x", 1, buf, sizeof buf, 0, &sent[0]);
    int p[2];
    if (pipe(p))
        return -1;
    r[1] = urt_send_recv(p[0], "x", 1, buf, sizeof buf, 0, &sent[1]);   /* not a socket */
    close(p[0]);
    close(p[1]);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    r[2] = urt_send_recv(sv[0], NULL, 1, buf, sizeof buf, MSG_NOSIGNAL, &sent[2]);   /* bad out */
    EXPECT_EQ(write(sv[1], "y", 1), 1);
    r[3] = urt_send_recv(sv[0], "x", 1, NULL, sizeof buf, 0, &sent[3]);              /* bad in */
    /* an address the kernel refuses as the recv is submitted: the send never runs */
    r[4] = urt_send_recv(sv[0], "x", 1, (void *)-4096, sizeof buf, 0, &sent[4]);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

UT_TEST(send_recv_bad_input)
{
    long r[5];
    memset(r, 0, sizeof r);
    assert_int_equal(urt_run(sr_bad_main, r, NULL), 0);
    assert_int_equal(r[0], -EBADF);
    assert_int_equal(r[1], -ENOTSOCK);
    assert_int_equal(r[2], -EFAULT);
    assert_int_equal(r[3], -EFAULT);
    /* The send went in the last case only. */
    assert_int_equal(sent[0], 0);
    assert_int_equal(sent[1], 0);
    assert_int_equal(sent[2], 0);
    assert_int_equal(sent[3], 1);
    assert_int_equal(r[4], -EFAULT);
    assert_int_equal(sent[4], 0);
    /* Outside a task. */
    char buf[4];
    assert_int_equal(urt_send_recv(0, "x", 1, buf, sizeof buf, 0, NULL), -EPERM);
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted + st.cqes_more);
}

/* ---- deadlines and cancellation of kernel operations --------------------------------------- */

struct deadline_io {
    long acc, acc_after, read_to, read_after, recv_to, recv_after, poll_to, sleep_after;
    uint64_t acc_ns, read_ns;
    uint64_t prev;
    char rbuf[8], sbuf[8];
};

static int late_connector(void *arg)
{
    struct sockaddr_in *addr = arg;
    urt_sleep(URT_MSEC(5));
    int fd = urt_socket(AF_INET, SOCK_STREAM, 0);
    int r = urt_connect(fd, (struct sockaddr *)addr, sizeof *addr);
    urt_sleep(URT_MSEC(20));
    urt_close(fd);
    return r;
}

static int deadline_io_main(void *arg)
{
    struct deadline_io *r = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(8, &addr);
    int p[2], sv[2];
    if (lfd < 0 || pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;

    uint64_t t0 = urt_now();
    urt_deadline(t0 + URT_MSEC(20));
    r->acc = urt_accept(lfd, NULL, NULL, 0);
    r->acc_ns = urt_now() - t0;
    r->prev = urt_deadline(0);
    urt_task *c = urt_spawn(late_connector, &addr);
    r->acc_after = urt_accept(lfd, NULL, NULL, 0);   /* the listener still works */
    EXPECT_EQ(urt_join(c), 0);
    if (r->acc_after >= 0)
        urt_close((int)r->acc_after);

    t0 = urt_now();
    urt_deadline(t0 + URT_MSEC(20));
    r->read_to = urt_read(p[0], r->rbuf, sizeof r->rbuf, -1);
    r->read_ns = urt_now() - t0;
    urt_deadline(urt_now() + URT_MSEC(10));
    r->recv_to = urt_recv(sv[0], r->sbuf, sizeof r->sbuf, 0);
    urt_deadline(urt_now() + URT_MSEC(10));
    r->poll_to = urt_poll(p[0], POLLIN);
    urt_deadline(0);
    r->sleep_after = urt_sleep(URT_MSEC(5));
    /* Data sent after the timeouts arrives whole: the cancelled operations took nothing. */
    EXPECT_EQ(write(p[1], "abc", 3), 3);
    EXPECT_EQ(write(sv[1], "defg", 4), 4);
    r->read_after = urt_read(p[0], r->rbuf, sizeof r->rbuf, -1);
    r->recv_after = urt_recv(sv[0], r->sbuf, sizeof r->sbuf, 0);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    urt_close(lfd);
    return 0;
}

UT_TEST(deadlines_on_io_then_fd_still_works)
{
    struct deadline_io r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(deadline_io_main, &r, NULL), 0);
    assert_int_equal(r.acc, -ETIMEDOUT);
    assert_true(r.acc_ns >= URT_MSEC(19));
    assert_true(r.acc_ns < URT_SEC(5));
    assert_true(r.prev != 0);
    assert_true(r.acc_after >= 0);
    assert_int_equal(r.read_to, -ETIMEDOUT);
    assert_true(r.read_ns >= URT_MSEC(19));
    assert_true(r.read_ns < URT_SEC(5));
    assert_int_equal(r.recv_to, -ETIMEDOUT);
    assert_int_equal(r.poll_to, -ETIMEDOUT);
    assert_int_equal(r.sleep_after, 0);
    assert_int_equal(r.read_after, 3);
    assert_memory_equal(r.rbuf, "abc", 3);
    assert_int_equal(r.recv_after, 4);
    assert_memory_equal(r.sbuf, "defg", 4);
}

/* connect that nobody answers: a listener whose accept queue is full drops the SYN. */
struct connect_res {
    long results[16];
    int n;
    uint64_t to_ns;
    long cancelled;
    uint64_t cancel_ns;
};

struct connecting {
    struct sockaddr_in *addr;
    long res;
};

static int connect_forever(void *arg)
{
    struct connecting *c = arg;
    int fd = urt_socket(AF_INET, SOCK_STREAM, 0);
    c->res = urt_connect(fd, (struct sockaddr *)c->addr, sizeof *c->addr);
    urt_close(fd);
    return 0;
}

static int connect_main(void *arg)
{
    struct connect_res *r = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(0, &addr);
    int fds[16];
    for (r->n = 0; r->n < 16; r->n++) {
        int fd = urt_socket(AF_INET, SOCK_STREAM, 0);
        fds[r->n] = fd;
        uint64_t t0 = urt_now();
        urt_deadline(t0 + URT_MSEC(100));
        r->results[r->n] = urt_connect(fd, (struct sockaddr *)&addr, sizeof addr);
        urt_deadline(0);
        if (r->results[r->n] == -ETIMEDOUT) {
            r->to_ns = urt_now() - t0;
            r->n++;
            break;
        }
    }
    /* the same unanswered connect, cancelled by another task */
    struct connecting c = { &addr, 99 };
    urt_task *t = urt_spawn(connect_forever, &c);
    urt_sleep(URT_MSEC(20));
    uint64_t t0 = urt_now();
    urt_cancel(t);
    EXPECT_EQ(urt_join(t), 0);
    r->cancel_ns = urt_now() - t0;
    r->cancelled = c.res;
    for (int i = 0; i < r->n; i++)
        urt_close(fds[i]);
    urt_close(lfd);
    return 0;
}

UT_TEST(connect_deadline_and_cancel)
{
    struct connect_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(connect_main, &r, NULL), 0);
    assert_true(r.n >= 1);
    for (int i = 0; i < r.n - 1; i++)
        assert_int_equal(r.results[i], 0);
    assert_int_equal(r.results[r.n - 1], -ETIMEDOUT);
    assert_true(r.to_ns >= URT_MSEC(99));
    assert_true(r.to_ns < URT_SEC(5));
    assert_int_equal(r.cancelled, -ECANCELED);
    assert_true(r.cancel_ns < URT_SEC(5));
}

/* A cancelled read returns -ECANCELED and takes no data; the next read gets all of it. */
struct cancel_read {
    int p[2];
    long res, after;
    char buf[8];
};

static int reader_into(void *arg)
{
    struct cancel_read *c = arg;
    c->res = urt_read(c->p[0], c->buf, sizeof c->buf, -1);
    return 0;
}

static int cancel_read_main(void *arg)
{
    struct cancel_read *c = arg;
    if (pipe(c->p))
        return -1;
    urt_task *t = urt_spawn(reader_into, c);
    urt_sleep(URT_MSEC(5));
    urt_cancel(t);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT_EQ(write(c->p[1], "12345", 5), 5);
    c->after = urt_read(c->p[0], c->buf, sizeof c->buf, -1);
    close(c->p[0]);
    close(c->p[1]);
    return 0;
}

UT_TEST(cancel_blocked_read)
{
    struct cancel_read c;
    memset(&c, 0, sizeof c);
    assert_int_equal(urt_run(cancel_read_main, &c, NULL), 0);
    assert_int_equal(c.res, -ECANCELED);
    assert_int_equal(c.after, 5);
    assert_memory_equal(c.buf, "12345", 5);
}

/* ---- urt_close ends other tasks' operations on the fd ---------------------------------------- */

struct waiter {
    int fd;
    int kind;
    long res;
    int done;
};

static int wait_on_fd(void *arg)
{
    struct waiter *w = arg;
    char buf[16];
    switch (w->kind) {
    case 0: w->res = urt_read(w->fd, buf, sizeof buf, -1); break;
    case 1: w->res = urt_recv(w->fd, buf, sizeof buf, 0); break;
    case 2: w->res = urt_accept(w->fd, NULL, NULL, 0); break;
    case 3: w->res = urt_poll(w->fd, POLLIN); break;
    }
    w->done = 1;
    return 0;
}

struct close_res {
    struct waiter w[6];
    long close_res[3];
    int still_open[3];
    uint64_t ns;
};

static int close_waiters_main(void *arg)
{
    struct close_res *r = arg;
    int p[2], sv[2];
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(4, &addr);
    if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || lfd < 0)
        return -1;
    r->w[0] = (struct waiter){ p[0], 0, 99, 0 };    /* two readers on one pipe */
    r->w[1] = (struct waiter){ p[0], 0, 99, 0 };
    r->w[2] = (struct waiter){ p[0], 3, 99, 0 };    /* and a poller */
    r->w[3] = (struct waiter){ sv[0], 1, 99, 0 };
    r->w[4] = (struct waiter){ sv[0], 3, 99, 0 };
    r->w[5] = (struct waiter){ lfd, 2, 99, 0 };
    urt_task *t[6];
    for (int i = 0; i < 6; i++)
        t[i] = urt_spawn(wait_on_fd, &r->w[i]);
    urt_sleep(URT_MSEC(5));   /* all parked in the kernel now */
    uint64_t t0 = urt_now();
    r->close_res[0] = urt_close(p[0]);
    r->close_res[1] = urt_close(sv[0]);
    r->close_res[2] = urt_close(lfd);
    for (int i = 0; i < 6; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    r->ns = urt_now() - t0;
    r->still_open[0] = fd_is_open(p[0]);
    r->still_open[1] = fd_is_open(sv[0]);
    r->still_open[2] = fd_is_open(lfd);
    close(p[1]);
    close(sv[1]);
    return 0;
}

UT_TEST(close_wakes_waiters_with_ebadf)
{
    struct close_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(close_waiters_main, &r, NULL), 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r.w[i].done, 1);
        if (r.w[i].res != -EBADF)
            fail_msg("waiter %d (kind %d) returned %ld, expected -EBADF", i, r.w[i].kind,
                     r.w[i].res);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.close_res[i], 0);
        assert_int_equal(r.still_open[i], 0);
    }
    assert_true(r.ns < URT_SEC(5));
}

/*
 * A deadline's timer stays where it was armed when the deadline moves later (the idle timeout
 * of a server, pushed back on every message): it must then follow the deadline, not fire at its
 * old time; moved earlier or cleared, the timer must follow at once.
 */
struct moving_deadline {
    long later, earlier, cleared;
    uint64_t later_ns, earlier_ns, cleared_ns;
    char buf[8];
};

static int late_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    urt_sleep(URT_MSEC(60));
    return write(fd, "x", 1) == 1 ? 0 : -1;
}

static int moving_deadline_main(void *arg)
{
    struct moving_deadline *r = arg;
    int p[2];
    if (pipe(p))
        return -1;
    /* Armed at +30 ms by a read that completes at once, then pushed to +150 ms: the next read
       must wait past the old time and time out at the new one. */
    uint64_t t0 = urt_now();
    urt_deadline(t0 + URT_MSEC(30));
    EXPECT_EQ(write(p[1], "a", 1), 1);
    EXPECT_EQ(urt_read(p[0], r->buf, 1, -1), 1);
    for (int i = 1; i <= 5; i++)   /* several pushes, as per-message re-arming does */
        urt_deadline(t0 + URT_MSEC(30) * (uint64_t)i);
    r->later = urt_read(p[0], r->buf, 1, -1);
    r->later_ns = urt_now() - t0;

    /* Armed at +10 s, then brought forward to +30 ms. */
    t0 = urt_now();
    urt_deadline(t0 + URT_SEC(10));
    EXPECT_EQ(write(p[1], "b", 1), 1);
    EXPECT_EQ(urt_read(p[0], r->buf, 1, -1), 1);
    urt_deadline(t0 + URT_MSEC(30));
    r->earlier = urt_read(p[0], r->buf, 1, -1);
    r->earlier_ns = urt_now() - t0;

    /* Armed at +20 ms, then cleared: a read answered at +60 ms gets its byte. */
    t0 = urt_now();
    urt_deadline(t0 + URT_MSEC(20));
    EXPECT_EQ(write(p[1], "c", 1), 1);
    EXPECT_EQ(urt_read(p[0], r->buf, 1, -1), 1);
    urt_deadline(0);
    urt_task *w = urt_spawn(late_writer, (void *)(intptr_t)p[1]);
    r->cleared = urt_read(p[0], r->buf, 1, -1);
    r->cleared_ns = urt_now() - t0;
    EXPECT_EQ(urt_join(w), 0);

    struct urt_stats st;
    urt_stats(&st);
    EXPECT_EQ(st.timers_armed, 0);
    close(p[0]);
    close(p[1]);
    return 0;
}

UT_TEST(deadline_moved_while_its_timer_is_armed)
{
    struct moving_deadline r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(moving_deadline_main, &r, NULL), 0);
    assert_int_equal(r.later, -ETIMEDOUT);
    assert_true(r.later_ns >= URT_MSEC(149));
    assert_true(r.later_ns < URT_SEC(5));
    assert_int_equal(r.earlier, -ETIMEDOUT);
    assert_true(r.earlier_ns >= URT_MSEC(29));
    assert_true(r.earlier_ns < URT_SEC(5));
    assert_int_equal(r.cleared, 1);
    assert_true(r.cleared_ns >= URT_MSEC(59));
}

/* ---- races between a cancel (or a deadline) and a completing read ----------------------------- */

#define RACE_ITERS 100000
#define RACE_BYTES ((size_t)RACE_ITERS * 40)

struct race {
    int rfd, wfd;
    int use_recv;
    int threaded;             /* a writer thread feeds the stream while readers are cancelled */
    volatile int stop;
    uint64_t deadline_ns;     /* nonzero: readers time out instead of being cancelled */
    unsigned char *got;
    size_t ngot, nwritten;
    long data_reads, interrupted_reads, zero_reads, other_err, last_err;
};

static int race_reader(void *arg)
{
    struct race *r = arg;
    unsigned char buf[64];
    size_t want = 1 + ut_rand() % sizeof buf;
    if (r->deadline_ns)
        urt_deadline(urt_now() + (ut_rand() % r->deadline_ns));
    ssize_t n = r->use_recv ? urt_recv(r->rfd, buf, want, 0) : urt_read(r->rfd, buf, want, -1);
    if (n > 0) {
        if (r->ngot + (size_t)n <= RACE_BYTES)
            memcpy(r->got + r->ngot, buf, (size_t)n);
        r->ngot += (size_t)n;
        r->data_reads++;
    } else if (n == (r->deadline_ns ? -ETIMEDOUT : -ECANCELED)) {
        r->interrupted_reads++;
    } else if (n == 0) {
        r->zero_reads++;
    } else {
        r->other_err++;
        r->last_err = n;
    }
    return 0;
}

static void race_write(struct race *r)
{
    unsigned char chunk[24];
    size_t len = 1 + ut_rand() % sizeof chunk;
    if (r->nwritten + len > RACE_BYTES)
        return;
    for (size_t i = 0; i < len; i++)
        chunk[i] = stream_byte(r->nwritten + i);
    ssize_t w = write(r->wfd, chunk, len);   /* nonblocking write end */
    if (w > 0)
        r->nwritten += (size_t)w;
}

/* The writer thread: chunks at random short intervals, so completions land at any point of
   the runtime's cancel sequence. It has its own generator: ut_rand is the runtime thread's. */
static void *race_writer_thread(void *arg)
{
    struct race *r = arg;
    uint64_t x = 0x1234567887654321ull;
    while (!r->stop) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned char chunk[24];
        size_t len = 1 + (size_t)(x % sizeof chunk);
        if (r->nwritten + len > RACE_BYTES)
            break;
        for (size_t i = 0; i < len; i++)
            chunk[i] = stream_byte(r->nwritten + i);
        ssize_t w = write(r->wfd, chunk, len);
        if (w > 0)
            r->nwritten += (size_t)w;
        uint64_t until = urt_now() + (x >> 40) % 8000;   /* up to 8 us */
        while (urt_now() < until)
            ;
    }
    return NULL;
}

static int race_main(void *arg)
{
    struct race *r = arg;
    pthread_t th;
    if (r->threaded && pthread_create(&th, NULL, race_writer_thread, r))
        return -1;
    for (int i = 0; i < RACE_ITERS && !r->other_err; i++) {
        urt_task *t = urt_spawn(race_reader, r);
        uint32_t action = ut_rand();
        if ((action & 1) && !r->threaded)
            race_write(r);
        for (uint32_t y = (action >> 1) % 4; y > 0; y--)
            urt_yield();
        if ((action & 8) && !r->threaded)
            race_write(r);
        if (!r->deadline_ns)
            urt_cancel(t);
        if (urt_join(t) != 0)
            r->other_err++;
    }
    if (r->threaded) {
        r->stop = 1;
        pthread_join(th, NULL);
    }
    /* drain what is left with plain reads */
    int left = 0;
    ioctl(r->rfd, FIONREAD, &left);
    while (left > 0 && r->ngot < RACE_BYTES) {
        unsigned char buf[4096];
        ssize_t n = read(r->rfd, buf, sizeof buf < (size_t)left ? sizeof buf : (size_t)left);
        if (n <= 0)
            break;
        memcpy(r->got + r->ngot, buf, (size_t)n);
        r->ngot += (size_t)n;
        left -= (int)n;
    }
    return 0;
}

static void check_race(const struct race *r, long iters)
{
    UT_NOTE("  %ld reads won with data, %ld interrupted, %zu bytes\n", r->data_reads,
           r->interrupted_reads, r->nwritten);
    if (r->other_err)
        fail_msg("a racing read returned %ld", r->last_err);
    assert_int_equal(r->zero_reads, 0);
    assert_int_equal(r->data_reads + r->interrupted_reads, iters);
    /* both outcomes happened, or the race was not exercised */
    assert_true(r->data_reads > 0);
    assert_true(r->interrupted_reads > 0);
    assert_int_equal(r->ngot, r->nwritten);
    for (size_t k = 0; k < r->nwritten; k++)
        if (r->got[k] != stream_byte(k))
            fail_msg("byte %zu of %zu: got %u, expected %u (lost or repeated data)", k,
                     r->nwritten, r->got[k], stream_byte(k));
}

static void run_race(int use_socket, int threaded, uint64_t deadline_ns)
{
#if defined(RUNNING_ON_VALGRIND)
    /* Valgrind runs one thread at a time: the writer thread starves and no read ever wins. */
    if (threaded && RUNNING_ON_VALGRIND) {
        UT_NOTE("  skipped under Valgrind\n");
        return;
    }
#endif
    struct race r;
    memset(&r, 0, sizeof r);
    r.threaded = threaded;
    int fds[2];
    if (use_socket)
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    else
        assert_int_equal(pipe(fds), 0);
    r.rfd = fds[0];
    r.wfd = fds[1];
    r.use_recv = use_socket;
    r.deadline_ns = deadline_ns;
    fcntl(r.wfd, F_SETFL, fcntl(r.wfd, F_GETFL) | O_NONBLOCK);   /* the write end only */
    r.got = malloc(RACE_BYTES);
    assert_non_null(r.got);
    assert_int_equal(urt_run(race_main, &r, NULL), 0);
    struct urt_stats st;
    urt_stats(&st);
    UT_NOTE("  %llu cancel requests went to the kernel\n", (unsigned long long)st.cancels);
    check_race(&r, RACE_ITERS);
    close(fds[0]);
    close(fds[1]);
    free(r.got);
}

/* The writes come from the loop itself, between the reader's steps. */
UT_TEST_T(cancel_races_completing_read_pipe_100k, 100)
{
    run_race(0, 0, 0);
}

/* The writes come from another thread, at any moment. */
UT_TEST_T(cancel_races_completing_read_pipe_writer_thread_100k, 100)
{
    run_race(0, 1, 0);
}

UT_TEST_T(cancel_races_completing_recv_socketpair_writer_thread_100k, 100)
{
    run_race(1, 1, 0);
}

UT_TEST_T(deadline_races_completing_read_pipe_100k, 100)
{
    run_race(0, 0, URT_USEC(30));
}

/* An fd accepted by a call cancelled in the same instant is returned, not leaked. */
#define ACCEPT_ITERS 2000

struct accept_race {
    int lfd;
    struct sockaddr_in addr;
    long connects, accepted, cancelled, other;
    long last_err;
};

static int race_acceptor(void *arg)
{
    struct accept_race *a = arg;
    int fd = urt_accept(a->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        a->accepted++;
        close(fd);
    } else if (fd == -ECANCELED) {
        a->cancelled++;
    } else {
        a->other++;
        a->last_err = fd;
    }
    return 0;
}

static int accept_race_main(void *arg)
{
    struct accept_race *a = arg;
    int clients[64];
    int nc = 0;
    for (int i = 0; i < ACCEPT_ITERS; i++) {
        urt_task *t = urt_spawn(race_acceptor, a);
        uint32_t action = ut_rand();
        for (uint32_t y = action % 3; y > 0; y--)
            urt_yield();
        if (action & 4) {
            int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            int r = connect(c, (struct sockaddr *)&a->addr, sizeof a->addr);
            if (r == 0 || errno == EINPROGRESS) {
                a->connects++;
                clients[nc++] = c;
            } else {
                close(c);
            }
        }
        if (action & 8)
            urt_yield();
        urt_cancel(t);
        urt_join(t);
        if (nc == 64) {
            for (int k = 0; k < nc; k++)
                close(clients[k]);
            nc = 0;
        }
    }
    /* every connection not yet accepted is still in the queue (the deadline only ends the wait
       for one that was lost: an accept returns as soon as a connection is there) */
    while (a->accepted < a->connects) {
        urt_deadline(urt_now() + URT_SEC(5));
        int fd = urt_accept(a->lfd, NULL, NULL, SOCK_CLOEXEC);
        urt_deadline(0);
        if (fd < 0)
            break;
        a->accepted++;
        close(fd);
    }
    for (int k = 0; k < nc; k++)
        close(clients[k]);
    return 0;
}

UT_TEST_T(accept_cancel_race_loses_no_connection, 60)
{
    struct accept_race a;
    memset(&a, 0, sizeof a);
    a.lfd = ut_tcp_listener(4096, &a.addr);
    assert_true(a.lfd >= 0);
    assert_int_equal(urt_run(accept_race_main, &a, NULL), 0);
    if (a.other)
        fail_msg("an accept returned %ld", a.last_err);
    assert_true(a.connects > 0);
    assert_true(a.cancelled > 0);
    assert_int_equal(a.accepted, a.connects);
    close(a.lfd);
}

/* ---- small rings, many tasks, completion-queue overflow -------------------------------------- */

#define MANY_TASKS 10000

struct many {
    int p[2];
    int zero_fd, null_fd;
    long ok, polled, bad;
    long first_bad;
};

static int many_worker(void *arg)
{
    struct many *m = arg;
    int ev = urt_poll(m->p[0], POLLIN);
    if (ev & POLLIN)
        m->polled++;
    uint64_t buf[4] = { 1, 2, 3, 4 };
    ssize_t w = urt_write(m->null_fd, buf, sizeof buf, -1);
    ssize_t r = urt_read(m->zero_fd, buf, sizeof buf, -1);
    if (ev & POLLIN && w == sizeof buf && r == sizeof buf && buf[0] == 0 && buf[3] == 0) {
        m->ok++;
    } else {
        if (!m->bad)
            m->first_bad = ev < 0 ? ev : w < 0 ? w : r;
        m->bad++;
    }
    return 0;
}

static int many_main(void *arg)
{
    struct many *m = arg;
    if (pipe(m->p))
        return -1;
    m->zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    m->null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    urt_group *g = urt_group_new();
    for (int i = 0; i < MANY_TASKS; i++)
        if (urt_group_spawn(g, many_worker, m) != 0)
            m->bad++;
    urt_sleep(URT_MSEC(20));   /* every task waits in urt_poll now */
    EXPECT_EQ(write(m->p[1], "!", 1), 1);
    EXPECT_EQ(urt_group_wait(g), 0);
    urt_group_free(g);
    close(m->p[0]);
    close(m->p[1]);
    close(m->zero_fd);
    close(m->null_fd);
    return 0;
}

UT_TEST_T(ring_of_8_serves_10000_tasks, 60)
{
    struct many m;
    memset(&m, 0, sizeof m);
    struct urt_config cfg = { .ring_entries = 8, .stack_size = 32 * 1024 };
    assert_int_equal(urt_run(many_main, &m, &cfg), 0);
    if (m.bad)
        fail_msg("%ld tasks failed, the first with %ld", m.bad, m.first_bad);
    assert_int_equal(m.polled, MANY_TASKS);
    assert_int_equal(m.ok, MANY_TASKS);
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_true(st.sq_full > 0);
    assert_true(st.sqes_submitted >= 3 * MANY_TASKS);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted);
}

/* Thousands of reads become ready at once on a ring whose CQ holds 64: nothing may be lost. */
#define OVERFLOW_TASKS 2000

struct ovf_task {
    int rfd;
    uint64_t got;
    long res;
};

static int ovf_reader(void *arg)
{
    struct ovf_task *o = arg;
    o->res = urt_read(o->rfd, &o->got, sizeof o->got, -1);
    return 0;
}

struct ovf {
    struct ovf_task t[OVERFLOW_TASKS];
    int wfd[OVERFLOW_TASKS];
    uint64_t cqes_before, cqes_after;
};

static int ovf_main(void *arg)
{
    struct ovf *o = arg;
    urt_task *h[OVERFLOW_TASKS];
    for (int i = 0; i < OVERFLOW_TASKS; i++) {
        int p[2];
        if (pipe(p))
            return -1;
        o->t[i].rfd = p[0];
        o->t[i].res = 99;
        o->wfd[i] = p[1];
        h[i] = urt_spawn(ovf_reader, &o->t[i]);
    }
    urt_sleep(URT_MSEC(20));   /* all reads armed in the kernel */
    struct urt_stats st;
    urt_stats(&st);
    o->cqes_before = st.cqes_reaped;
    /* Plain writes: no scheduling point until every read has become ready. */
    for (int i = 0; i < OVERFLOW_TASKS; i++) {
        uint64_t v = 0x1000000ull + (uint64_t)i;
        EXPECT_EQ(write(o->wfd[i], &v, sizeof v), sizeof v);
    }
    for (int i = 0; i < OVERFLOW_TASKS; i++)
        EXPECT_EQ(urt_join(h[i]), 0);
    urt_stats(&st);
    o->cqes_after = st.cqes_reaped;
    for (int i = 0; i < OVERFLOW_TASKS; i++) {
        close(o->t[i].rfd);
        close(o->wfd[i]);
    }
    return 0;
}

UT_TEST_T(cq_overflow_loses_no_completion, 60)
{
    static struct ovf o;
    memset(&o, 0, sizeof o);
    struct urt_config cfg = { .ring_entries = 8, .stack_size = 32 * 1024 };
    assert_int_equal(urt_run(ovf_main, &o, &cfg), 0);
    for (int i = 0; i < OVERFLOW_TASKS; i++) {
        if (o.t[i].res != 8 || o.t[i].got != 0x1000000ull + (uint64_t)i)
            fail_msg("reader %d: result %ld, value %#llx", i, o.t[i].res,
                     (unsigned long long)o.t[i].got);
    }
    assert_true(o.cqes_after - o.cqes_before >= OVERFLOW_TASKS);
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.cqes_reaped, st.sqes_submitted);
}

/* Many cancels at once on a full 8-entry ring: each cancel finds room, no task hangs. */
#define CANCEL_MANY 500

struct cancel_many {
    int p[2];
    long res[CANCEL_MANY];
    long after;
    char buf[16];
};

struct cm_arg {
    struct cancel_many *c;
    int i;
    int use_deadline;
};

static int cm_reader(void *arg)
{
    struct cm_arg *a = arg;
    char b[4];
    if (a->use_deadline)
        urt_deadline(urt_now() + URT_MSEC(30));
    a->c->res[a->i] = urt_read(a->c->p[0], b, sizeof b, -1);
    return 0;
}

static int cancel_many_main(void *arg)
{
    struct cancel_many *c = arg;
    if (pipe(c->p))
        return -1;
    static struct cm_arg args[CANCEL_MANY];
    urt_task *t[CANCEL_MANY];
    for (int i = 0; i < CANCEL_MANY; i++) {
        args[i] = (struct cm_arg){ c, i, i % 2 };   /* half time out together, half cancelled */
        t[i] = urt_spawn(cm_reader, &args[i]);
    }
    urt_sleep(URT_MSEC(10));
    for (int i = 0; i < CANCEL_MANY; i += 2)
        urt_cancel(t[i]);
    for (int i = 0; i < CANCEL_MANY; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    EXPECT_EQ(write(c->p[1], "0123456789", 10), 10);
    c->after = urt_read(c->p[0], c->buf, sizeof c->buf, -1);
    close(c->p[0]);
    close(c->p[1]);
    return 0;
}

UT_TEST_T(many_cancels_and_deadlines_on_small_ring, 30)
{
    static struct cancel_many c;
    memset(&c, 0, sizeof c);
    struct urt_config cfg = { .ring_entries = 8 };
    assert_int_equal(urt_run(cancel_many_main, &c, &cfg), 0);
    for (int i = 0; i < CANCEL_MANY; i++) {
        long want = i % 2 ? -ETIMEDOUT : -ECANCELED;
        if (c.res[i] != want)
            fail_msg("reader %d returned %ld, expected %ld", i, c.res[i], want);
    }
    assert_int_equal(c.after, 10);
    assert_memory_equal(c.buf, "0123456789", 10);
}

/* ---- EMFILE ---------------------------------------------------------------------------------- */

struct emfile_res {
    long open_res, socket_res, accept_res, accept_after;
    int filled;
};

static int emfile_main(void *arg)
{
    struct emfile_res *r = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(8, &addr);
    int client = ut_tcp_connect(&addr);    /* waits in the accept queue */
    if (lfd < 0 || client < 0)
        return -1;
    struct rlimit old, lim;
    getrlimit(RLIMIT_NOFILE, &old);
    lim = old;
    lim.rlim_cur = 256;
    if (setrlimit(RLIMIT_NOFILE, &lim))
        return -1;
    static int dups[256];
    int n = 0;
    for (;;) {
        int d = dup(0);
        if (d < 0)
            break;
        dups[n++] = d;
    }
    r->filled = (errno == EMFILE);
    r->open_res = urt_open("/dev/null", O_RDONLY, 0);
    r->socket_res = urt_socket(AF_INET, SOCK_STREAM, 0);
    r->accept_res = urt_accept(lfd, NULL, NULL, 0);
    close(dups[--n]);   /* one free slot: the connection was not lost */
    r->accept_after = urt_accept(lfd, NULL, NULL, 0);
    if (r->accept_after >= 0)
        close((int)r->accept_after);
    while (n > 0)
        close(dups[--n]);
    setrlimit(RLIMIT_NOFILE, &old);
    close(client);
    close(lfd);
    return 0;
}

UT_TEST(emfile_is_an_error)
{
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
    /* Valgrind keeps descriptors of its own under the limit and hides the real one: running out
       of fds there says nothing about urt. */
    if (RUNNING_ON_VALGRIND) {
        UT_NOTE("  skipped under Valgrind\n");
        return;
    }
#endif
#endif
    struct emfile_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(emfile_main, &r, NULL), 0);
    assert_int_equal(r.filled, 1);
    assert_int_equal(r.open_res, -EMFILE);
    assert_int_equal(r.socket_res, -EMFILE);
    assert_int_equal(r.accept_res, -EMFILE);
    assert_true(r.accept_after >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pipe_read_write),
        cmocka_unit_test(readv_writev),
        cmocka_unit_test(file_offsets_fsync_open_errors),
        cmocka_unit_test(tcp_loopback_echo),
        cmocka_unit_test(sendmsg_recvmsg_with_fd_passing),
        cmocka_unit_test(poll_readiness),
        cmocka_unit_test(bad_fds_and_buffers_are_errors),
        cmocka_unit_test(peer_vanished),
        cmocka_unit_test(write_to_gone_reader_is_epipe_not_sigpipe),
        cmocka_unit_test(send_to_gone_peer_is_epipe_not_sigpipe),
        cmocka_unit_test(program_sigpipe_handler_works_outside_urt_run),
        cmocka_unit_test(program_pending_sigpipe_is_not_taken),
        cmocka_unit_test(sigpipe_in_run_threads),
        cmocka_unit_test(signal_wait_for_sigpipe_receives_urts),
        cmocka_unit_test(send_recv_exchanges),
        cmocka_unit_test(send_recv_cancel_deadline_close_in_either_half),
        cmocka_unit_test(send_recv_cancelled_in_the_same_batch),
        cmocka_unit_test(send_recv_cancelled_as_its_send_completes),
        cmocka_unit_test(send_recv_deadline_as_its_send_completes),
        cmocka_unit_test(send_recv_bad_input),
        cmocka_unit_test(deadlines_on_io_then_fd_still_works),
        cmocka_unit_test(deadline_moved_while_its_timer_is_armed),
        cmocka_unit_test(connect_deadline_and_cancel),
        cmocka_unit_test(cancel_blocked_read),
        cmocka_unit_test(close_wakes_waiters_with_ebadf),
        cmocka_unit_test(cancel_races_completing_read_pipe_100k),
        cmocka_unit_test(cancel_races_completing_read_pipe_writer_thread_100k),
        cmocka_unit_test(cancel_races_completing_recv_socketpair_writer_thread_100k),
        cmocka_unit_test(deadline_races_completing_read_pipe_100k),
        cmocka_unit_test(accept_cancel_race_loses_no_connection),
        cmocka_unit_test(ring_of_8_serves_10000_tasks),
        cmocka_unit_test(cq_overflow_loses_no_completion),
        cmocka_unit_test(many_cancels_and_deadlines_on_small_ring),
        cmocka_unit_test(emfile_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
