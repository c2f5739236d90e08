/*
 * test_fetch.c - examples/fetch as its users see it: the built binary runs as a child process
 * against a small HTTP server that this test runs on 127.0.0.1 in threads of its own (plain
 * blocking sockets, a thread per connection). One run mixes good URLs (Content-Length, 1 MiB,
 * chunked, body until close, a 404), refused ports (http and https), a server that never answers
 * (--timeout 1000) and malformed URLs; the test checks every line, the exit code and the total
 * time. This server answers one request per connection and closes it, even where its response
 * left the connection open: fetch, which keeps connections alive, must then retry on a new one.
 * A second server (serve_keep) keeps its connections open, for what fetch must not reuse: one
 * with a response nobody asked for waiting in it, one whose response had Transfer-Encoding and
 * Content-Length both.
 * https:// itself is tested in test_fetch_tls.c.
 *
 * Each test runs in a forked child (urt_test.h) with a time limit; fetch is that child's child
 * and dies with it (PR_SET_PDEATHSIG). Every assertion runs on the test's main stack.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "urt_test.h"

#define FETCH_LIMIT_MS 10000   /* one fetch run */
#include "fetch_child.h"
#include "thread_server.h"

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- the HTTP server ------------------------------------------------------------------------ */

#define BIG_SIZE      (1024 * 1024)
#define CLOSE_SIZE    3000
#define CHUNKED_SIZE  (1 + 0x100 + 0x1000 + 0x1B58)   /* the chunks /chunked sends */

static struct thread_server srv;   /* its bad counts requests without "GET /... HTTP/1.1" or Host */

static int send_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

static int send_put(void *fd, const void *p, size_t len)
{
    return send_all(*(int *)fd, p, len);
}

/* n bytes of 'x' */
static int send_fill(int fd, size_t n)
{
    return thread_server_fill(send_put, &fd, n);
}

/* Serves one request on fd (the harness closes it after). */
static void serve(void *ctx, int fd, int index)
{
    struct thread_server *s = ctx;
    (void)index;
    char req[4096];
    size_t len = 0;

    /* the request head */
    while (len < sizeof req - 1) {
        ssize_t n = recv(fd, req + len, sizeof req - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[len] = '\0';

    char path[256] = "";
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", s->port);
    int ok = sscanf(req, "GET %255s HTTP/1.1\r\n", path) == 1 && strstr(req, "\r\n\r\n") &&
             (strstr(req, host) || strstr(req, "\r\nHost: localhost:"));
    thread_server_count(s, ok);
    if (!ok)
        fprintf(stderr, "bad request: '%s'\n", req);

    if (strcmp(path, "/small") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
                     "Hello, world\n");
    } else if (strcmp(path, "/big") == 0) {
        char head[128];
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_SIZE);
        if (send_str(fd, head) == 0)
            send_fill(fd, BIG_SIZE);
    } else if (strcmp(path, "/chunked") == 0) {
        /* In pieces, with pauses, so that fetch meets chunk boundaries, sizes and CRLFs split
           across recvs; a chunk extension, upper-case hex and a trailer for good measure. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        static const char *const pieces[] = {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConte", "nt-Type: text/plain\r\n",
            "\r", "\n1\r\nx\r", "\n10", "0;name=value\r\n", NULL /* 0x100 bytes */, "\r\n",
            "1000\r\n", NULL /* 0x1000 */, "\r\n1B58\r\n", NULL /* 0x1B58 */, "\r\n0\r\n",
            "X-Trailer: 1\r\n", "\r\n",
        };
        static const size_t fills[] = { 0x100, 0x1000, 0x1B58 };
        size_t f = 0;
        for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
            if ((pieces[i] ? send_str(fd, pieces[i]) : send_fill(fd, fills[f++])) < 0)
                break;
            sleep_ms(2);
        }
        sleep_ms(50);   /* hold the connection a little: fetch must stop at the last chunk */
    } else if (strcmp(path, "/close") == 0) {
        if (send_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n") == 0)
            send_fill(fd, CLOSE_SIZE);
    } else if (strcmp(path, "/interim") == 0) {
        send_str(fd, "HTTP/1.1 100 Continue\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    } else if (strcmp(path, "/truncated") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
    } else if (strcmp(path, "/slow") == 0) {
        /* Never answers: holds the connection until fetch closes it (or 5 s pass). */
        char c;
        while (recv(fd, &c, 1, 0) > 0)
            ;
    } else {
        send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
    }
}

/* ---- a server that keeps connections alive -------------------------------------------------- */

static struct thread_server keep_srv;   /* serve_keep's */
static int after_te;   /* requests on a connection after its /te-chunked answer (keep_srv.lock) */

/* /stale's answer: a whole response, then at once a second one that nobody asked for. The first
   is 65535 bytes, headers padded out, which is what fetch's first recv asks for: however the
   bytes arrive, fetch has read exactly the first response when its header block is whole, and
   the second is in its socket already (sent with the tail of the first, in one send), unread,
   before fetch could make another request on the connection. */
static int send_stale(int fd)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Pad: ";
    static const char tail[] = "\r\n\r\nhello"
                               "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil";
    enum { FIRST = 65535, TAIL = sizeof "\r\n\r\nhello" - 1 };
    char *first = malloc(FIRST - TAIL);
    if (!first)
        return -1;
    memcpy(first, head, sizeof head - 1);
    memset(first + sizeof head - 1, 'p', FIRST - TAIL - (sizeof head - 1));
    int err = send_all(fd, first, FIRST - TAIL);
    free(first);
    return err < 0 ? -1 : send_str(fd, tail);
}

/* Serves requests on fd one after the other until the client closes it (the harness closes fd
   after): /stale (send_stale), /te-chunked (chunked with a Content-Length that lies, the
   connection left open), /te-gzip (a Transfer-Encoding that is not chunked and a Content-Length
   that lies: the body ends when the server closes), else a 9-byte body. */
static void serve_keep(void *ctx, int fd, int index)
{
    struct thread_server *s = ctx;
    (void)index;
    char req[4096];
    size_t len = 0;
    int te = 0;   /* /te-chunked was answered on fd */
    for (;;) {
        char *end;
        req[len] = '\0';
        while (!(end = strstr(req, "\r\n\r\n"))) {
            if (len == sizeof req - 1)
                return;
            ssize_t n = recv(fd, req + len, sizeof req - 1 - len, 0);
            if (n <= 0)
                return;   /* the client closed */
            len += (size_t)n;
            req[len] = '\0';
        }
        char path[256] = "";
        thread_server_count(s, sscanf(req, "GET %255s HTTP/1.1\r\n", path) == 1);
        size_t used = (size_t)(end + 4 - req);
        memmove(req, req + used, len - used + 1);
        len -= used;
        if (te) {
            pthread_mutex_lock(&s->lock);
            after_te++;
            pthread_mutex_unlock(&s->lock);
        }

        int err;
        if (strcmp(path, "/stale") == 0) {
            err = send_stale(fd);
        } else if (strcmp(path, "/te-chunked") == 0) {
            te = 1;
            err = send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                               "Content-Length: 100\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        } else if (strcmp(path, "/te-gzip") == 0) {
            send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n"
                         "\r\nhello world");
            return;
        } else {
            err = send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot stale");
        }
        if (err < 0)
            return;
    }
}

static void server_start(void)
{
    thread_server_start(&srv, 64, serve, &srv);
}

static void server_stop(void)
{
    thread_server_stop(&srv, 3);   /* every connection was closed by fetch */
}

/* A port on which nothing listens: bound, then closed. */
static int refused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* The brief's run: good URLs, refused ports, a server that never answers, malformed URLs. */
UT_TEST_T(mixed_run_reports_every_url, 20)
{
    server_start();
    int dead = refused_port();
    char small[64], big[64], chunked[64], closed[64], notfound[64], truncated[64], refused[64],
        slow[64], https[64];
    snprintf(small, sizeof small, "http://127.0.0.1:%d/small", srv.port);
    snprintf(big, sizeof big, "http://127.0.0.1:%d/big", srv.port);
    snprintf(chunked, sizeof chunked, "http://localhost:%d/chunked", srv.port);   /* a name */
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d/close", srv.port);
    snprintf(notfound, sizeof notfound, "http://127.0.0.1:%d/404", srv.port);
    snprintf(truncated, sizeof truncated, "http://127.0.0.1:%d/truncated", srv.port);
    snprintf(refused, sizeof refused, "http://127.0.0.1:%d/", dead);
    snprintf(slow, sizeof slow, "http://127.0.0.1:%d/slow", srv.port);
    snprintf(https, sizeof https, "https://127.0.0.1:%d/", dead);
    /* The timeout is every URL's, the good ones' too: 1 s leaves them room (they take a few ms,
       the chunked one about 80) on a loaded machine, where 300 ms did not always. */
    const char *args[] = { "--timeout", "1000", small, big, chunked, closed, notfound,
                           truncated, refused, slow, "http://", "ftp://x", https, NULL };

    struct run r;
    run_fetch(&r, args, NULL);
    assert_exit(&r, 1);     /* some failed */
    assert_true(r.elapsed_ms < 8000);
    assert_int_equal(count_lines(r.out), 11);       /* one line per URL, nothing else */
    assert_string_equal(r.err, "");                 /* errors go on their URL's line */

    double t, slow_t;
    assert_string_equal(line_for(&r, small, &t), "13 bytes");
    char want[64];
    snprintf(want, sizeof want, "%d bytes", BIG_SIZE);
    assert_string_equal(line_for(&r, big, &t), want);
    snprintf(want, sizeof want, "%d bytes", CHUNKED_SIZE);
    assert_string_equal(line_for(&r, chunked, &t), want);
    snprintf(want, sizeof want, "%d bytes", CLOSE_SIZE);
    assert_string_equal(line_for(&r, closed, &t), want);
    assert_string_equal(line_for(&r, notfound, &t), "9 bytes  HTTP 404");   /* not an error */
    assert_string_equal(line_for(&r, truncated, &t),
                        "error: connection closed before Content-Length bytes");
    assert_string_equal(line_for(&r, refused, &t), "error: connection refused");
    assert_string_equal(line_for(&r, slow, &slow_t), "error: timed out after 1000 ms");
    assert_true(slow_t >= 0.99 && slow_t < 3.0);
    assert_true(strncmp(line_for(&r, "http://", &t), "error: bad URL", 14) == 0);
    assert_true(strncmp(line_for(&r, "ftp://x", &t), "error: bad URL", 14) == 0);
    assert_string_equal(line_for(&r, https, &t), "error: connection refused");

    /* The slow line comes last: the others did not wait for it. */
    const char *last = strrchr(r.out, '\n');
    while (last > r.out && last[-1] != '\n')
        last--;
    assert_non_null(strstr(last, slow));

    server_stop();   /* every connection was closed by fetch, the /slow one included */
    pthread_mutex_lock(&srv.lock);
    assert_int_equal(srv.bad, 0);
    assert_int_equal(srv.requests, 7);   /* the 7 URLs that reached the server */
    pthread_mutex_unlock(&srv.lock);
}

/* All good: exit 0; the default timeout; an interim 100 response is skipped; many URLs at once. */
UT_TEST_T(all_good_exits_zero, 20)
{
    server_start();
    enum { N = 20 };
    char urls[N][64];
    const char *args[N + 1];
    for (int i = 0; i < N; i++) {
        static const char *const paths[] = { "small", "big", "chunked", "close", "interim" };
        snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d/%s", srv.port, paths[i % 5]);
        args[i] = urls[i];
    }
    args[N] = NULL;

    struct run r;
    run_fetch(&r, args, NULL);
    assert_exit(&r, 0);
    assert_true(r.elapsed_ms < 5000);
    assert_int_equal(count_lines(r.out), N);
    assert_null(strstr(r.out, "error"));
    /* each of the five bodies, four times */
    static const char *const lines[] = { "13 bytes  http", "1048576 bytes  http",
                                         "11353 bytes  http", "3000 bytes  http",
                                         "5 bytes  http" };
    for (int k = 0; k < 5; k++) {
        int n = 0;
        for (const char *p = r.out; (p = strstr(p, lines[k])); p++)
            n++;
        assert_int_equal(n, N / 5);
    }
    server_stop();
    assert_int_equal(srv.bad, 0);
    assert_int_equal(srv.requests, N);
}

/* A response that arrives unasked on a kept-alive connection (the server answered /stale twice)
   is no answer to the next request: that request goes on a new connection and gets its own. */
UT_TEST_T(stale_response_is_not_taken_for_the_next, 20)
{
    thread_server_start(&keep_srv, 16, serve_keep, &keep_srv);
    char stale[64], next[64];
    snprintf(stale, sizeof stale, "http://127.0.0.1:%d/stale", keep_srv.port);
    snprintf(next, sizeof next, "http://127.0.0.1:%d/next", keep_srv.port);
    struct run r;
    run_fetch(&r, (const char *[]){ "--per-host", "1", stale, next, NULL }, NULL);
    thread_server_stop(&keep_srv, 3);
    assert_exit(&r, 0);
    double t;
    assert_string_equal(line_for(&r, stale, &t), "5 bytes");
    assert_string_equal(line_for(&r, next, &t), "9 bytes");   /* not the 4 of "evil" */
    assert_int_equal(keep_srv.requests, 2);
    assert_int_equal(keep_srv.accepted, 2);
}

/* Transfer-Encoding with Content-Length (RFC 9112 6.1, 6.3): chunked wins, and the connection is
   not used again; a coding that is not chunked makes the body run until the server closes,
   whatever Content-Length says. */
UT_TEST_T(transfer_encoding_overrides_content_length, 20)
{
    after_te = 0;
    thread_server_start(&keep_srv, 16, serve_keep, &keep_srv);
    char chunked[64], gzip[64], next[64];
    snprintf(chunked, sizeof chunked, "http://127.0.0.1:%d/te-chunked", keep_srv.port);
    snprintf(gzip, sizeof gzip, "http://127.0.0.1:%d/te-gzip", keep_srv.port);
    snprintf(next, sizeof next, "http://127.0.0.1:%d/next", keep_srv.port);
    struct run r;
    run_fetch(&r, (const char *[]){ "--per-host", "1", chunked, next, gzip, NULL }, NULL);
    thread_server_stop(&keep_srv, 3);
    assert_exit(&r, 0);
    double t;
    assert_string_equal(line_for(&r, chunked, &t), "5 bytes");
    assert_string_equal(line_for(&r, next, &t), "9 bytes");
    assert_string_equal(line_for(&r, gzip, &t), "11 bytes");   /* until the close */
    assert_int_equal(keep_srv.requests, 3);
    assert_int_equal(after_te, 0);   /* the chunked one's connection was closed, not kept */
}

/* --help, no URL, bad options. */
UT_TEST_T(usage_and_exit_codes, 20)
{
    struct run r;
    run_fetch(&r, (const char *[]){ "--help", NULL }, NULL);
    assert_exit(&r, 0);
    assert_non_null(strstr(r.out, "usage:"));
    assert_non_null(strstr(r.out, "--timeout"));
    assert_int_equal(r.err[0], '\0');

    static const char *const bad[][3] = {
        { NULL },                                   /* no URL */
        { "--timeout", "soon", "http://x/" },
        { "--timeout", "-5", "http://x/" },
        { "--bogus", "http://x/", NULL },
        { "--timeout", NULL },                      /* missing value */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[4] = { bad[i][0], bad[i][1], bad[i][2], NULL };
        run_fetch(&r, args, NULL);
        assert_exit(&r, 2);
        assert_int_equal(r.len, 0);   /* usage goes to stderr */
        assert_non_null(strstr(r.err, "fetch"));     /* and says why */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mixed_run_reports_every_url),
        cmocka_unit_test(all_good_exits_zero),
        cmocka_unit_test(stale_response_is_not_taken_for_the_next),
        cmocka_unit_test(transfer_encoding_overrides_content_length),
        cmocka_unit_test(usage_and_exit_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
