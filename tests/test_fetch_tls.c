/*
 * test_fetch_tls.c - examples/fetch over https://, and its connections kept alive, as its users
 * see them: the built binary runs as a child process against
 *  - `openssl s_server -WWW` (a real TLS server nobody here wrote) for the certificate checks:
 *    --cacert, the system's store (which does not know our certificate), --insecure, a name that
 *    the certificate does not cover;
 *  - a server of the test's own, OpenSSL on blocking sockets in threads, for what s_server cannot
 *    be made to do: keep-alive with counted connections, closing kept-alive connections, and
 *    stopping in the middle of a TLS record, between records without close_notify, or never
 *    answering the handshake at all; a response sent twice, a TLS 1.2 renegotiation, a KeyUpdate
 *    on an idle connection.
 * The certificate is made once per run by `openssl req` in a mkdtemp directory; without the
 * openssl command the whole program is skipped (exit 77), saying so.
 *
 * Each test runs in a forked child (urt_test.h) with a time limit; fetch and s_server are that
 * child's children and die with it (PR_SET_PDEATHSIG). Nothing sleeps to wait for an event:
 * s_server is ready when it prints ACCEPT, our server when listen() has returned.
 */
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "urt_test.h"

#define FETCH_LIMIT_MS 20000    /* one fetch run; under Valgrind our server's handshakes are slow */
#include "fetch_child.h"
#include "thread_server.h"

#define FILE_SIZE    100000     /* the file s_server serves */
#define CUT_SIZE     1000       /* body bytes sent before a cut */

static char dir[64];            /* the mkdtemp directory: key, cert, the served file */
static char key_path[96], cert_path[96];

/* Runs argv (a program found on PATH) in cwd with its output thrown away. Its exit status; 127
   when it could not be started. */
static int run_quiet(const char *cwd, char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (cwd && chdir(cwd) < 0)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 127;
}

/* A port of 127.0.0.1 free a moment ago. */
static int free_port(void)
{
    struct sockaddr_in a;
    int fd = ut_tcp_listener(1, &a);
    assert_true(fd >= 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- openssl s_server -WWW ------------------------------------------------------------------- */

static int s_server_out = -1;   /* its stdout, read until ACCEPT and kept open until it ends */

/* Starts s_server on addr:*port, serving dir; returns its pid once it accepts connections. */
static pid_t s_server_start(const char *addr, int *port)
{
    for (int attempt = 0; attempt < 5; attempt++) {   /* another program may take the port */
        *port = free_port();
        char accept_arg[64];
        snprintf(accept_arg, sizeof accept_arg, "%s:%d", addr, *port);
        const char *argv[] = { "openssl", "s_server", "-accept", accept_arg, "-cert", cert_path,
                               "-key", key_path, "-WWW", NULL };
        int rd = -1;
        pid_t pid = ut_spawn_piped(argv, dir, &rd);
        assert_true(pid >= 0);
        /* It prints ACCEPT once it listens; EOF means it gave up (the port was taken). */
        char out[512];
        size_t len = 0;
        int ready = 0;
        uint64_t t0 = now_ms();
        while (!ready && len < sizeof out - 1 && now_ms() - t0 < 10000) {
            struct pollfd pf = { .fd = rd, .events = POLLIN };
            if (poll(&pf, 1, 1000) <= 0)
                continue;
            ssize_t n = read(rd, out + len, sizeof out - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            out[len] = '\0';
            ready = strstr(out, "ACCEPT") != NULL;
        }
        if (ready) {
            s_server_out = rd;   /* it writes ACCEPT again after each connection */
            return pid;
        }
        close(rd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    fail_msg("openssl s_server did not start");
    return -1;
}

static void s_server_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    close(s_server_out);
    s_server_out = -1;
}

/* ---- our own server -------------------------------------------------------------------------- */

enum mode {
    KEEP_ALIVE,      /* answers requests on a connection until the client closes it */
    CLOSE_EACH,      /* answers one request and closes, although its response said nothing */
    SILENT,          /* accepts and never says a word */
    MID_HELLO,       /* reads the ClientHello, sends part of a record, closes */
    MID_BODY,        /* the handshake, part of the body, then part of a record, close */
    CUT_LENGTH,      /* part of a Content-Length body, then close without close_notify */
    CUT_UNTIL_CLOSE, /* a body without length, then close without close_notify */
    STALE,           /* KEEP_ALIVE, but the first request answered twice, in two records */
    RENEGOTIATE,     /* KEEP_ALIVE over TLS 1.2, the first answer after a HelloRequest */
    KEY_UPDATE,      /* KEEP_ALIVE, each answer followed by a KeyUpdate asking for the client's */
};

static struct {
    struct thread_server ts;     /* its bad: malformed requests, or ones that asked to close */
    int                  tls;
    enum mode            mode;
    SSL_CTX             *ctx;
    int                  key_updates;   /* KeyUpdates received (ts.lock) */
} srv;

struct peer {
    int  fd;
    SSL *ssl;   /* NULL: plain */
    int  index; /* which accepted connection, from 0 */
};

static int peer_read(struct peer *p, char *buf, size_t len)
{
    if (!p->ssl)
        return (int)recv(p->fd, buf, len, 0);
    int n = SSL_read(p->ssl, buf, (int)len);
    return n > 0 ? n : (SSL_get_error(p->ssl, n) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
}

static int peer_write(struct peer *p, const void *buf, size_t len)
{
    if (!p->ssl)
        return send(p->fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
    return SSL_write(p->ssl, buf, (int)len) == (int)len ? 0 : -1;   /* blocking: all or error */
}

static int peer_str(struct peer *p, const char *s)
{
    return peer_write(p, s, strlen(s));
}

static int peer_put(void *p, const void *buf, size_t len)
{
    return peer_write(p, buf, len);
}

/* n bytes of 'x' */
static int peer_fill(struct peer *p, size_t n)
{
    return thread_server_fill(peer_put, p, n);
}

/* Sends a raw TLS record header announcing 0x4000 bytes and only part of them. */
static void send_partial_record(int fd, unsigned char type)
{
    unsigned char rec[5 + 100] = { type, 0x03, 0x03, 0x40, 0x00 };
    memset(rec + 5, 0xab, sizeof rec - 5);
    send(fd, rec, sizeof rec, MSG_NOSIGNAL);
}

/* TCP_CORK on or off: what is written while it is on goes out as one segment when it goes off,
   and fetch receives it with one recv. */
static void cork(int fd, int on)
{
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* Counts the KeyUpdates that our server's connections receive. */
static void on_message(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg)
{
    (void)version, (void)ssl, (void)arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len == 0 ||
        *(const unsigned char *)buf != SSL3_MT_KEY_UPDATE)
        return;
    pthread_mutex_lock(&srv.ts.lock);
    srv.key_updates++;
    pthread_mutex_unlock(&srv.ts.lock);
}

/* Reads the client's first TLS record (its ClientHello) raw, so that closing after it does not
   reset the connection with unread data. */
static void read_client_hello(int fd)
{
    unsigned char head[5];
    size_t have = 0;
    while (have < sizeof head) {
        ssize_t n = recv(fd, head + have, sizeof head - have, 0);
        if (n <= 0)
            return;
        have += (size_t)n;
    }
    size_t left = (size_t)head[3] << 8 | head[4];
    char buf[4096];
    while (left > 0) {
        ssize_t n = recv(fd, buf, left < sizeof buf ? left : sizeof buf, 0);
        if (n <= 0)
            return;
        left -= (size_t)n;
    }
}

/* Answers one request for "/N" (N a decimal number): N bytes of 'x', with Content-Length when N
   is even and chunked when it is odd. */
static int answer(struct peer *p, const char *path)
{
    long n = strtol(path + 1, NULL, 10);
    char head[128];
    if (n % 2 == 0) {
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n\r\n", n);
        return peer_write(p, head, strlen(head)) < 0 ? -1 : peer_fill(p, (size_t)n);
    }
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%lx\r\n", n);
    if (peer_write(p, head, strlen(head)) < 0 || peer_fill(p, (size_t)n) < 0)
        return -1;
    return peer_write(p, "\r\n0\r\n\r\n", 7);
}

/* Serves a connection of our server in srv.mode (the harness closes fd after). */
static void serve(void *ctx, int fd, int index)
{
    (void)ctx;
    struct peer p = { .fd = fd, .index = index };
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    if (srv.mode == SILENT) {
        char c;
        while (recv(p.fd, &c, 1, 0) > 0)   /* until fetch closes (or 5 s pass) */
            ;
        goto done;
    }
    if (srv.mode == MID_HELLO) {
        read_client_hello(p.fd);
        send_partial_record(p.fd, 0x16);   /* a handshake record, cut short */
        goto done;
    }
    if (srv.tls) {
        p.ssl = SSL_new(srv.ctx);
        SSL_set_fd(p.ssl, p.fd);
        if (srv.mode == KEY_UPDATE)
            SSL_set_msg_callback(p.ssl, on_message);
        if (SSL_accept(p.ssl) != 1)
            goto done;
    }

    char req[4096] = "";
    size_t len = 0;
    for (int nth = 0;; nth++) {   /* the nth request on the connection */
        /* one request head */
        char *end;
        while (!(end = strstr(req, "\r\n\r\n"))) {
            if (len == sizeof req - 1)
                goto done;
            int n = peer_read(&p, req + len, sizeof req - 1 - len);
            if (n <= 0)
                goto done;   /* the client closed: the normal end of a kept-alive connection */
            len += (size_t)n;
            req[len] = '\0';
        }
        char path[256] = "";
        int ok = sscanf(req, "GET %255s HTTP/1.1\r\n", path) == 1 && path[0] == '/' &&
                 strstr(req, "\r\nHost: ") && !strcasestr(req, "\r\nConnection: close");
        thread_server_count(&srv.ts, ok);
        size_t used = (size_t)(end + 4 - req);
        memmove(req, req + used, len - used + 1);
        len -= used;

        char head[128];
        int first = p.index == 0 && nth == 0;
        switch (srv.mode) {
        case KEEP_ALIVE:
            if (answer(&p, path) < 0)
                goto done;
            continue;
        case STALE:
            if (!first) {
                if (answer(&p, path) < 0)
                    goto done;
                continue;
            }
            /* A whole response, and in the next record, at once, one nobody asked for. */
            cork(p.fd, 1);
            if (peer_str(&p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello") < 0 ||
                peer_str(&p, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil") < 0)
                goto done;
            cork(p.fd, 0);
            continue;
        case RENEGOTIATE:
            /* The HelloRequest and the answer in one segment: fetch reads both at once. */
            cork(p.fd, 1);
            if (first && (SSL_renegotiate(p.ssl) != 1 || SSL_do_handshake(p.ssl) != 1))
                goto done;
            if (answer(&p, path) < 0)
                goto done;
            cork(p.fd, 0);
            continue;
        case KEY_UPDATE:
            /* The answer and a KeyUpdate in one segment: the KeyUpdate is there, unread, when
               the connection goes back to fetch's pool. */
            cork(p.fd, 1);
            if (answer(&p, path) < 0 || SSL_key_update(p.ssl, SSL_KEY_UPDATE_REQUESTED) != 1 ||
                SSL_do_handshake(p.ssl) != 1)
                goto done;
            cork(p.fd, 0);
            continue;
        case CLOSE_EACH:
            answer(&p, path);
            if (p.ssl && p.index % 2 == 0)
                SSL_shutdown(p.ssl);   /* half of them say goodbye, the rest just go */
            goto done;
        case MID_BODY:
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                     FILE_SIZE);
            if (peer_write(&p, head, strlen(head)) == 0 && peer_fill(&p, CUT_SIZE) == 0)
                send_partial_record(p.fd, 0x17);   /* application data, cut short */
            goto done;
        case CUT_LENGTH:
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                     FILE_SIZE);
            if (peer_write(&p, head, strlen(head)) == 0)
                peer_fill(&p, CUT_SIZE);
            goto done;
        case CUT_UNTIL_CLOSE:
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            if (peer_write(&p, head, strlen(head)) == 0)
                peer_fill(&p, CUT_SIZE);
            goto done;
        default:
            goto done;
        }
    }

done:
    SSL_free(p.ssl);   /* no SSL_shutdown: where one is wanted, the mode sent it */
}

/* Starts our server on 127.0.0.1 (port in srv.ts.port). SILENT: listens and never accepts, so
   the kernel completes the TCP handshake and nobody ever reads. */
static void server_start(int tls, enum mode mode)
{
    srv.tls = tls;
    srv.mode = mode;
    if (tls) {
        srv.ctx = SSL_CTX_new(TLS_server_method());
        assert_non_null(srv.ctx);
        assert_int_equal(SSL_CTX_use_certificate_chain_file(srv.ctx, cert_path), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(srv.ctx, key_path, SSL_FILETYPE_PEM), 1);
        if (mode == RENEGOTIATE)   /* TLS 1.3 has no renegotiation */
            assert_int_equal(SSL_CTX_set_max_proto_version(srv.ctx, TLS1_2_VERSION), 1);
    }
    srv.key_updates = 0;
    thread_server_start(&srv.ts, 128, mode == SILENT ? NULL : serve, NULL);
}

/* Stops our server: every connection must end within 5 s (fetch closed them all). */
static void server_stop(void)
{
    thread_server_stop(&srv.ts, 5);
    SSL_CTX_free(srv.ctx);
    srv.ctx = NULL;
}

/* ---- tests: certificates, against openssl s_server ------------------------------------------- */

/* --cacert with our certificate: the file arrives whole, by address and by name. */
UT_TEST_T(cacert_verifies, 60)
{
    int port;
    pid_t s = s_server_start("127.0.0.1", &port);
    char by_addr[96], by_name[96];
    snprintf(by_addr, sizeof by_addr, "https://127.0.0.1:%d/file", port);
    snprintf(by_name, sizeof by_name, "https://localhost:%d/file", port);
    struct run r;
    run_fetch(&r, (const char *[]){ "--cacert", cert_path, by_addr, by_name, NULL }, NULL);
    s_server_stop(s);
    assert_exit(&r, 0);
    double t;
    char want[32];
    snprintf(want, sizeof want, "%d bytes", FILE_SIZE);
    assert_string_equal(line_for(&r, by_addr, &t), want);
    assert_string_equal(line_for(&r, by_name, &t), want);
    assert_string_equal(r.err, "");
}

/* Without --cacert the system's store is used, which has never heard of our certificate; with it,
   an address the certificate does not name fails the host check. Both say what verification
   said. */
UT_TEST_T(bad_certificate_is_reported, 60)
{
    int port;
    pid_t s = s_server_start("127.0.0.1", &port);
    char url[96];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/file", port);
    struct run r;
    run_fetch(&r, (const char *[]){ url, NULL }, NULL);
    s_server_stop(s);
    assert_exit(&r, 1);
    double t;
    const char *what = line_for(&r, url, &t);
    /* "self-signed certificate" (OpenSSL 3; "self signed" before) */
    if (strncmp(what, "error: certificate verify failed: self", 38) != 0)
        fail_msg("want a certificate verify error, got '%s'", what);

    /* 127.0.0.2 reaches the loopback too, but the certificate names 127.0.0.1 and localhost */
    s = s_server_start("127.0.0.2", &port);
    snprintf(url, sizeof url, "https://127.0.0.2:%d/file", port);
    run_fetch(&r, (const char *[]){ "--cacert", cert_path, url, NULL }, NULL);
    s_server_stop(s);
    assert_exit(&r, 1);
    assert_string_equal(line_for(&r, url, &t),
                        "error: certificate verify failed: IP address mismatch");
}

/* --insecure: neither the store nor the name is checked. */
UT_TEST_T(insecure_skips_checks, 60)
{
    int port;
    pid_t s = s_server_start("127.0.0.2", &port);
    char url[96];
    snprintf(url, sizeof url, "https://127.0.0.2:%d/file", port);
    struct run r;
    run_fetch(&r, (const char *[]){ "--insecure", url, NULL }, NULL);
    s_server_stop(s);
    assert_exit(&r, 0);
    double t;
    char want[32];
    snprintf(want, sizeof want, "%d bytes", FILE_SIZE);
    assert_string_equal(line_for(&r, url, &t), want);
}

/* A --cacert that cannot be read is bad usage, said once on stderr; so is asking for both. */
UT_TEST_T(cacert_errors_are_usage_errors, 30)
{
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.pem", dir);
    struct run r;
    run_fetch(&r, (const char *[]){ "--cacert", missing, "https://127.0.0.1:1/", NULL }, NULL);
    assert_exit(&r, 2);
    assert_int_equal(r.len, 0);
    assert_non_null(strstr(r.err, "missing.pem: No such file or directory"));
    run_fetch(&r, (const char *[]){ "--cacert", cert_path, "--insecure", "https://x/", NULL },
              NULL);
    assert_exit(&r, 2);
    assert_non_null(strstr(r.err, "--insecure"));
}

/* ---- tests: broken servers, against our own ------------------------------------------------- */

/* A server that accepts and never answers the ClientHello: --timeout ends the handshake. */
UT_TEST_T(handshake_timeout, 30)
{
    server_start(1, SILENT);
    char url[96];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", srv.ts.port);
    struct run r;
    run_fetch(&r, (const char *[]){ "--timeout", "300", "--cacert", cert_path, url, NULL }, NULL);
    server_stop();
    assert_exit(&r, 1);
    double t;
    assert_string_equal(line_for(&r, url, &t),
                        "error: timed out after 300 ms in the TLS handshake");
    assert_true(t >= 0.29 && t < 2.0);
    assert_true(r.elapsed_ms < 3000);
}

/* Fetches one https:// URL of our server, started in mode (with TLS) and stopped after; fetch
   must fail (exit 1). Its line for the URL, as line_for gives it. */
static const char *fetch_failing(enum mode mode)
{
    server_start(1, mode);
    char url[96];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/x", srv.ts.port);
    struct run r;
    run_fetch(&r, (const char *[]){ "--cacert", cert_path, url, NULL }, NULL);
    server_stop();
    assert_exit(&r, 1);
    double t;
    return line_for(&r, url, &t);
}

/* A server that closes in the middle of a TLS record: in the handshake, and in the body. */
UT_TEST_T(closed_mid_record, 30)
{
    static const enum mode modes[] = { MID_HELLO, MID_BODY };
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(fetch_failing(modes[i]),
                            "error: connection closed in the middle of a TLS record");
}

/* Closed between records without close_notify: cut short when the framing says the body is not
   whole (Content-Length), and when only the server's close could end it. A body that is whole
   by its framing needs no close_notify: see keep_alive_bounds_connections, whose connections
   are reused. */
UT_TEST_T(closed_without_close_notify, 30)
{
    assert_string_equal(fetch_failing(CUT_LENGTH),
                        "error: connection closed before Content-Length bytes");
    assert_string_equal(fetch_failing(CUT_UNTIL_CLOSE),
                        "error: connection closed without TLS close_notify: body may be cut short");
}

/* ---- tests: connections kept alive ----------------------------------------------------------- */

#define MAX_URLS 100

/* n URLs of our server (over TLS if it is), each asking for "/SIZE": the sizes first, first +
   step, first + 2 * step... modulo 70000 (a few records' worth; answer() sends odd ones chunked).
   They go in list, NULL-terminated, which has room for n + 1. */
static void server_urls(char **list, int n, int first, int step)
{
    static char urls[MAX_URLS][96];
    assert_true(n <= MAX_URLS);
    for (int i = 0; i < n; i++) {
        snprintf(urls[i], sizeof urls[i], "%s://127.0.0.1:%d/%d", srv.tls ? "https" : "http",
                 srv.ts.port, (first + i * step) % 70000);
        list[i] = urls[i];
    }
    list[n] = NULL;
}

/* Each URL of list (from server_urls) has one line, and it says the whole body arrived. */
static void assert_whole_bodies(const struct run *r, char *const *list)
{
    for (; *list; list++) {
        double t;
        char want[32];
        snprintf(want, sizeof want, "%ld bytes", strtol(strrchr(*list, '/') + 1, NULL, 10));
        assert_string_equal(line_for(r, *list, &t), want);
    }
}

/* 100 URLs of one host, over https and over http: every body whole (Content-Length and chunked),
   every request on one of at most --per-host connections, each request asked once. */
UT_TEST_T(keep_alive_bounds_connections, 90)
{
    enum { N = 100, PER_HOST = 4 };
    for (int tls = 1; tls >= 0; tls--) {
        server_start(tls, KEEP_ALIVE);
        char *list[N + 1];
        server_urls(list, N, 0, 7919);   /* sizes from 0 to 70000 */
        char per_host[16];
        snprintf(per_host, sizeof per_host, "%d", PER_HOST);
        struct run r;
        run_fetch(&r, (const char *[]){ "--per-host", per_host, "--cacert", cert_path, NULL },
                  list);
        server_stop();   /* fetch closed every connection when it ended */
        assert_exit(&r, 0);
        assert_whole_bodies(&r, list);
        UT_NOTE("  %s: %d requests on %d connections\n", tls ? "https" : "http", srv.ts.requests,
                srv.ts.accepted);
        assert_int_equal(srv.ts.requests, N);
        assert_int_equal(srv.ts.bad, 0);
        assert_true(srv.ts.accepted >= 1 && srv.ts.accepted <= PER_HOST);
    }
}

/* A server that closes each connection after one response, although the response let it stay
   open (half of them with close_notify): each request that meets a connection so closed goes
   again on a new one, and every URL succeeds. */
UT_TEST_T(closed_idle_connection_is_retried, 90)
{
    enum { N = 12 };
    server_start(1, CLOSE_EACH);
    char *list[N + 1];
    server_urls(list, N, 1000, 1);   /* 1000 to 1011 bytes */
    struct run r;
    run_fetch(&r, (const char *[]){ "--per-host", "2", "--cacert", cert_path, NULL }, list);
    server_stop();
    assert_exit(&r, 0);
    assert_whole_bodies(&r, list);
    assert_int_equal(srv.ts.requests, N);   /* every request answered once */
    assert_true(srv.ts.accepted >= N);      /* and each on a connection of its own */
}

/* A response that arrives unasked on a kept-alive connection, in the record after the one that
   ended the response before: the next URL goes on a new connection and gets its own answer. */
UT_TEST_T(stale_response_is_not_taken_for_the_next, 60)
{
    server_start(1, STALE);
    char *list[3];
    server_urls(list, 2, 5, 5);   /* /5, /10 */
    struct run r;
    run_fetch(&r, (const char *[]){ "--per-host", "1", "--cacert", cert_path, NULL }, list);
    server_stop();
    assert_exit(&r, 0);
    assert_whole_bodies(&r, list);   /* /10 is not the 4 bytes of "evil" */
    assert_int_equal(srv.ts.requests, 2);
    assert_int_equal(srv.ts.accepted, 2);
}

/* A TLS 1.2 server that asks to renegotiate: fetch refuses, and the connection, which the server
   then ends, does not go back to the pool; the next URL goes on a new one. */
UT_TEST_T(renegotiation_is_refused, 60)
{
    server_start(1, RENEGOTIATE);
    char *list[3];
    server_urls(list, 2, 6, 2);   /* /6, /8 */
    struct run r;
    run_fetch(&r, (const char *[]){ "--per-host", "1", "--cacert", cert_path, NULL }, list);
    server_stop();
    assert_exit(&r, 0);
    assert_whole_bodies(&r, list);
    assert_int_equal(srv.ts.requests, 2);
    assert_int_equal(srv.ts.accepted, 2);
}

/* What comes while a connection is idle and is not a response - a TLS 1.3 KeyUpdate here,
   session tickets too - is taken in by the check before reuse; the connection stays in use, and
   the KeyUpdate the server asked for goes with the next request (RFC 8446 4.6.3). */
UT_TEST_T(key_update_keeps_connection, 60)
{
    server_start(1, KEY_UPDATE);
    char *list[4];
    server_urls(list, 3, 10, 2);   /* /10, /12, /14 */
    struct run r;
    run_fetch(&r, (const char *[]){ "--per-host", "1", "--cacert", cert_path, NULL }, list);
    server_stop();
    assert_exit(&r, 0);
    assert_whole_bodies(&r, list);
    assert_int_equal(srv.ts.requests, 3);
    assert_int_equal(srv.ts.accepted, 1);
    assert_true(srv.key_updates >= 2);   /* with the 2nd and the 3rd request */
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Removes what setup made (the tests' children have all ended). */
static void cleanup(void)
{
    static const char *const files[] = { "key.pem", "cert.pem", "file" };
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    if (run_quiet(NULL, (char *[]){ "openssl", "version", NULL }) != 0) {
        printf("test_fetch_tls: skipped: the openssl command is missing (Debian: apt-get "
               "install openssl; tests/install-deps.sh installs it)\n");
        return 77;
    }
    snprintf(dir, sizeof dir, "/tmp/urt-fetch-tls.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    char *req[] = { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-days", "1", "-keyout", key_path, "-out", cert_path, NULL };
    if (run_quiet(dir, req) != 0) {
        fprintf(stderr, "test_fetch_tls: openssl req could not make a certificate\n");
        cleanup();
        return 1;
    }
    /* The file s_server -WWW serves: bytes that are not all alike. */
    char path[128];
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        cleanup();
        return 1;
    }
    for (int i = 0; i < FILE_SIZE; i++)
        fputc("abcdefghijklmnopqrstuvwxyz\n"[i % 27], f);
    fclose(f);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cacert_verifies),
        cmocka_unit_test(bad_certificate_is_reported),
        cmocka_unit_test(insecure_skips_checks),
        cmocka_unit_test(cacert_errors_are_usage_errors),
        cmocka_unit_test(handshake_timeout),
        cmocka_unit_test(closed_mid_record),
        cmocka_unit_test(closed_without_close_notify),
        cmocka_unit_test(keep_alive_bounds_connections),
        cmocka_unit_test(closed_idle_connection_is_retried),
        cmocka_unit_test(stale_response_is_not_taken_for_the_next),
        cmocka_unit_test(renegotiation_is_refused),
        cmocka_unit_test(key_update_keeps_connection),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    cleanup();
    return failed;
}
