/* SPDX-License-Identifier: MIT */
/*
 * http_server - an HTTP/1.1 server with one urt task per connection.
 *
 *     build/examples/http_server --port 8080 --root ./www
 *     curl http://127.0.0.1:8080/                 # "Hello, World!"
 *     curl http://127.0.0.1:8080/static/a.txt     # ./www/a.txt, sent by the kernel
 *     curl --data-binary @f http://127.0.0.1:8080/   # POST: the body's length back
 *     kill -TERM <pid>                            # graceful: in-flight requests finish
 *
 * Each connection is a task that reads like a blocking server: receive a request, answer it,
 * repeat. What it does beyond that, and why:
 *
 *  - Keep-alive and pipelining: every complete request already received is answered, in order,
 *    into one output buffer, which goes out with the wait for the next request in one call
 *    (urt_send_recv): a keep-alive request costs one park of its task.
 *  - Bodies by Content-Length and chunked (http_parse.c decodes; Expect: 100-continue is
 *    answered), at most --max-body bytes (413 past it). They are counted, not kept: POST /
 *    answers with the count.
 *  - GET /static/PATH serves a file under --root. The path is opened beneath the root by the
 *    kernel (openat2 RESOLVE_BENEATH: no "..", absolute path or symlink leads out; 403), a NUL
 *    byte or a missing file is 404, only regular files are served. The body goes from the page
 *    cache to the socket inside the kernel (urt_sendfile: io_uring splices through a pipe).
 *  - Errors: 400, 404, 405, 413, 431, 501, 505; those after which the stream cannot be trusted
 *    (400, 413, 431, 501, 505) close the connection after the answer, saying so.
 *  - Timeouts: a request's head (and its body, between receives) must arrive within
 *    --header-timeout of its first byte: a slowloris client sending a byte at a time is dropped
 *    and costs only its own task meanwhile. A keep-alive connection is closed after
 *    --idle-timeout without a request.
 *  - Memory: a connection starts with a 1 KiB input buffer in its stack's top page, beside the
 *    task's header, so that an idle keep-alive connection costs one page; a request head that
 *    does not fit moves it to 8 KiB buffers in a frame of their own (431 beyond that).
 *  - --max-conns, SIGINT/SIGTERM: as examples/echo_server (accept and close over the limit; stop
 *    accepting, close connections waiting between requests at once, give the others --grace ms),
 *    and --threads N: N runtimes on one port (SO_REUSEPORT).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "http_parse.h"
#include "server_base.h"
#include "urt.h"

#define SEND_PART (1 << 20)   /* a file goes in parts of this size, each renewing the timeout */
#define SMALL_IN  1024
#define SMALL_OUT 512
#define LARGE_IN  (8 * 1024)
#define LARGE_OUT (2 * 1024)
#define GROW      1   /* serve_loop: the request head outgrew the small buffer      */
#define WE_CLOSE  (-1000000)  /* the response said Connection: close: end after it   */

static const char hello[] = "Hello, World!\n";

/* Settings, read-only once main() has parsed them. */
static struct {
    const char *host;
    unsigned    port;
    const char *root;
    int         root_fd;      /* O_PATH of --root: files are opened beneath it */
    uint64_t    max_conns, idle_ns, header_ns, grace_ns, max_body;
    int         threads;
    int         listen_fds[URT_THREADS_MAX];
    urt_chan   *stop;         /* shared: closed when the first runtime hears the signal */
    int         signal;
} O = { .host = "127.0.0.1", .port = 8080, .root = ".", .root_fd = -1, .max_conns = 10000,
        .idle_ns = URT_SEC(60), .header_ns = URT_SEC(10), .grace_ns = URT_SEC(5),
        .max_body = 1 << 20, .threads = 1 };

/* One connection's state, on its task's stack. */
struct conn {
    int          fd;
    bool         head_started;   /* bytes of a request head have arrived: its deadline runs  */
    bool         between;        /* waiting for a new request with nothing received          */
    bool         large;
    char        *in;
    size_t       cap, len, pos;  /* in[pos..len): received, not yet parsed                    */
    size_t       scan;           /* http_head_end's resume point, relative to pos             */
    char        *out;
    size_t       out_cap, out_len;
    struct conn *prev, *next;    /* the runtime's connections, for the graceful stop          */
};

/*
 * State and counters of one runtime. Every task of a runtime runs on its thread, one at a time,
 * switching only inside urt calls: plain thread-local variables need no locks.
 */
enum { C_ACCEPTED, C_REFUSED, C_REQUESTS, C_2XX, C_4XX, C_5XX, C_IDLE, C_SLOW, C_PEER, C_ERRORS,
       C_CANCELLED, C_OURS, C_FILE_BYTES, C_COUNT };
static const char *const counter_names[C_COUNT] = {
    "accepted", "refused", "requests", "responses_2xx", "responses_4xx", "responses_5xx",
    "closed_idle", "closed_slow", "closed_by_peer", "errors", "cancelled", "closed_by_server",
    "file_bytes",
};
static __thread struct {
    int          listen_fd;
    urt_group   *conns;
    uint64_t     live;
    bool         stopping;
    struct conn *all;
    uint64_t     date_sec;      /* urt_now_coarse() second the Date line was made in */
    char         date[64];      /* "Date: ...\r\n" */
    uint64_t     n[C_COUNT];
} S = { .listen_fd = -1 };
static uint64_t total[C_COUNT];

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [options]\n"
            "\n"
            "An HTTP/1.1 server: one urt task per connection.\n"
            "  GET|HEAD /             \"Hello, World!\\n\"\n"
            "  POST /                 the request body's length, in decimal\n"
            "  GET|HEAD /static/PATH  the file PATH under --root\n"
            "\n"
            "  --host ADDR            numeric IPv4 or IPv6 address (default 127.0.0.1)\n"
            "  --port N               port (default 8080); 0 picks a free one\n"
            "  --root DIR             where /static/ files come from (default .)\n"
            "  --threads N            N runtimes, one per thread, one port (default 1)\n"
            "  --max-conns N          connections served at once (default 10000); more are\n"
            "                         accepted and closed at once\n"
            "  --max-body BYTES       largest request body (default 1048576): 413 beyond\n"
            "  --header-timeout MS    a request must arrive within MS ms of its first byte\n"
            "                         (default 10000)\n"
            "  --idle-timeout MS      close a keep-alive connection idle for MS ms (default\n"
            "                         60000)\n"
            "  --grace MS             on SIGINT/SIGTERM, how long requests in flight may take\n"
            "                         (default 5000)\n"
            "  --help                 print this help and exit\n"
            "\n"
            "Prints \"listening on HOST:PORT\" once ready, and its counters when it stops.\n",
            prog);
}

/* ---- output ---- */

/* Sends out[0..out_len) whole. */
static ssize_t flush(struct conn *c, int more)
{
    for (size_t off = 0; off < c->out_len;) {
        ssize_t w = urt_send(c->fd, c->out + off, c->out_len - off, more ? MSG_MORE : 0);
        if (w < 0)
            return w;
        off += (size_t)w;
    }
    c->out_len = 0;
    return 0;
}

/* Appends n bytes to the output, sending what is there first when they do not fit. */
static ssize_t put(struct conn *c, const char *s, size_t n)
{
    while (c->out_len + n > c->out_cap) {
        if (c->out_len) {
            ssize_t err = flush(c, 1);
            if (err)
                return err;
            continue;
        }
        ssize_t w = urt_send(c->fd, s, n, MSG_MORE);   /* bigger than the buffer: as it is */
        if (w < 0)
            return w;
        s += w;
        n -= (size_t)w;
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return 0;
}

/* The Date line, made again once a second (the coarse clock says when; time(2) says what). */
static const char *date_line(void)
{
    uint64_t sec = urt_now_coarse() / URT_SEC(1);
    if (sec != S.date_sec || !S.date[0]) {
        S.date_sec = sec;
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(S.date, sizeof S.date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    }
    return S.date;
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

static char *cat(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define CAT(p, literal) cat(p, literal, sizeof literal - 1)

static char *cat_u64(char *p, uint64_t v)
{
    char digits[20];
    int i = sizeof digits;
    do
        digits[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return cat(p, digits + i, sizeof digits - (size_t)i);
}

/*
 * A response's head. close: the connection ends after it (said in the head); keep_alive_10: an
 * HTTP/1.0 client asked for keep-alive, which must be confirmed. Put together by hand: printf's
 * machinery would be the largest cost of a small response in user space.
 */
static ssize_t put_head(struct conn *c, int status, const char *type, uint64_t length,
                        bool close, bool keep_alive_10, const char *extra)
{
    char head[384], *p = head;
    const char *why = reason(status);
    p = CAT(p, "HTTP/1.1 ");
    p = cat_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = cat(p, why, strlen(why));
    p = CAT(p, "\r\nServer: urt\r\n");
    const char *date = date_line();
    p = cat(p, date, strlen(date));
    p = CAT(p, "Content-Type: ");
    p = cat(p, type, strlen(type));
    p = CAT(p, "\r\nContent-Length: ");
    p = cat_u64(p, length);
    p = CAT(p, "\r\n");
    if (close)
        p = CAT(p, "Connection: close\r\n");
    else if (keep_alive_10)
        p = CAT(p, "Connection: keep-alive\r\n");
    if (extra)
        p = cat(p, extra, strlen(extra));   /* (short: an Allow line) */
    p = CAT(p, "\r\n");
    S.n[status < 300 ? C_2XX : status < 500 ? C_4XX : C_5XX]++;
    return put(c, head, (size_t)(p - head));
}

/* A short text response: status line and reason as the body. */
static ssize_t put_status(struct conn *c, int status, bool head_only, bool close,
                          bool keep_alive_10, const char *extra)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason(status));
    ssize_t err = put_head(c, status, "text/plain", (uint64_t)n, close, keep_alive_10, extra);
    return err || head_only ? err : put(c, body, (size_t)n);
}

/* ---- input ---- */

/* Moves the unparsed bytes to the start of the buffer. */
static void compact(struct conn *c)
{
    if (c->pos == 0)
        return;
    memmove(c->in, c->in + c->pos, c->len - c->pos);
    c->len -= c->pos;
    c->pos = 0;
}

static void renew(uint64_t ns)
{
    urt_deadline(ns >= URT_SEC(1) ? urt_now_coarse() + ns : urt_now() + ns);
}

/* Receives more bytes into in[len..cap), first sending any output; 0 at EOF. */
static ssize_t receive(struct conn *c)
{
    ssize_t n;
    if (c->out_len && !S.stopping) {
        size_t sent;
        n = urt_send_recv(c->fd, c->out, c->out_len, c->in + c->len, c->cap - c->len, 0, &sent);
        if (n < 0 && sent < c->out_len)
            return n;   /* the send failed */
        c->out_len = 0;
    } else {
        if ((n = flush(c, 0)) < 0)
            return n;
        n = urt_recv(c->fd, c->in + c->len, c->cap - c->len, 0);
    }
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

/* ---- bodies ---- */

/* The buffer's bytes all taken by the body: receives the next ones into the empty buffer (after
   sending the responses before, which a client may be waiting for). -ECONNRESET at EOF: the
   body was cut short. */
static ssize_t refill(struct conn *c)
{
    c->pos = c->len = 0;
    ssize_t n = receive(c);
    return n == 0 ? -ECONNRESET : n;
}

/*
 * Reads and counts a request's body (it is not kept). 0, or <0 to close: -413, -400, errors.
 * The whole body must arrive within --header-timeout of the head's end: a deadline per
 * receive would let a client that sends a byte now and then hold the connection for ever.
 * Bytes past the body stay in the buffer: they are the next request's.
 */
static ssize_t read_body(struct conn *c, const struct http_request *r, uint64_t *count)
{
    *count = 0;
    if (!r->chunked && r->content_length <= 0)
        return 0;
    c->head_started = true;   /* a request in progress (for the counters) */
    renew(O.header_ns);
    if (r->content_length > 0 && (uint64_t)r->content_length > O.max_body)
        return -413;
    if (r->expect_continue && c->pos == c->len) {
        /* The client waits for this before sending the body. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t err = put(c, cont, sizeof cont - 1);
        if (err || (err = flush(c, 0)))
            return err;
    }
    if (!r->chunked) {
        uint64_t left = (uint64_t)r->content_length;
        for (;;) {
            size_t have = c->len - c->pos;
            size_t k = have < left ? have : (size_t)left;
            c->pos += k;
            left -= k;
            if (left == 0)
                break;
            ssize_t n = refill(c);
            if (n <= 0)
                return n;
        }
        *count = (uint64_t)r->content_length;
        c->head_started = false;
        return 0;
    }
    struct http_chunked dec = { 0 };
    for (;;) {
        long k = http_chunked_feed(&dec, c->in + c->pos, c->len - c->pos, NULL, NULL);
        if (k < 0)
            return -400;
        c->pos += (size_t)k;
        if (dec.body > O.max_body)
            return -413;
        if (http_chunked_done(&dec))
            break;
        ssize_t n = refill(c);
        if (n <= 0)
            return n;
    }
    *count = dec.body;
    c->head_started = false;
    return 0;
}

/* ---- files ---- */

static const char *content_type(const char *path, size_t len)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html" },       { ".txt", "text/plain" },
        { ".css", "text/css" },         { ".js", "text/javascript" },
        { ".json", "application/json" }, { ".png", "image/png" },
        { ".jpg", "image/jpeg" },       { ".svg", "image/svg+xml" },
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t e = strlen(types[i].ext);
        if (len >= e && strncasecmp(path + len - e, types[i].ext, e) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

static int unhex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)(ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/*
 * The file for /static/ + p[0..n) (percent-encoded, query removed) opened beneath the root:
 * an fd and its size, or a negative HTTP status: 400 (bad escape), 403, 404, 500.
 */
static int open_static(const char *p, size_t n, char *rel, size_t rel_size, struct stat *st)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '%') {
            if (i + 2 >= n || unhex(p[i + 1]) < 0 || unhex(p[i + 2]) < 0)
                return -400;
            ch = (char)(unhex(p[i + 1]) * 16 + unhex(p[i + 2]));
            i += 2;
            if (ch == '\0')
                return -404;   /* no file name holds a NUL */
        }
        if (len + 1 >= rel_size)
            return -404;
        rel[len++] = ch;
    }
    rel[len] = '\0';
    /* ".." is refused here already, so that no lookup is tried; symlinks and absolute paths
       that lead out are refused by the kernel below (EXDEV). */
    for (size_t s = 0; s < len;) {
        size_t e = s;
        while (e < len && rel[e] != '/')
            e++;
        if (e - s == 2 && rel[s] == '.' && rel[s + 1] == '.')
            return -403;
        s = e + 1;
    }
    if (len == 0)
        return -403;
    struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
                            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    /* A local lookup in the dentry cache and no I/O: made directly, as nginx does (a FIFO
       would block an open for reading: O_NONBLOCK, and only regular files are served). */
    int fd = (int)syscall(SYS_openat2, O.root_fd, rel, &how, sizeof how);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG ? -404
               : errno == EXDEV || errno == EACCES || errno == ELOOP || errno == EPERM ? -403
                                                                                        : -500;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -403;
    }
    return fd;
}

/* Reads the body (read_body); on a bad or too large one answers and says to close. */
static ssize_t take_body(struct conn *c, const struct http_request *r, uint64_t *body)
{
    ssize_t err = read_body(c, r, body);
    if (err == -413 || err == -400) {
        err = put_status(c, (int)-err, r->method == HTTP_HEAD, true, false, NULL);
        return err ? err : WE_CLOSE;
    }
    return err;
}

/* Whether the connection ends after this response: decided once the body is in, since a stop
   may have begun while it came. */
static bool ends_after(const struct http_request *r)
{
    return !r->keep_alive || S.stopping;
}

/* GET or HEAD /static/...: 0, or <0 to close the connection. The file is opened before the
   body is read: the path lives in the input buffer, which the body's bytes may overwrite. */
static __attribute__((noinline)) ssize_t serve_static(struct conn *c,
                                                      const struct http_request *r,
                                                      const char *p, size_t n)
{
    char rel[1024];
    struct stat st;
    bool ka10 = r->minor == 0 && r->keep_alive;
    uint64_t body;
    int fd = open_static(p, n, rel, sizeof rel, &st);
    ssize_t err = take_body(c, r, &body);
    bool close_after = ends_after(r);
    if (fd < 0 || err) {
        if (!err)
            err = put_status(c, -fd, r->method == HTTP_HEAD, close_after, ka10, NULL);
        if (fd >= 0)
            close(fd);
        return err ? err : close_after ? WE_CLOSE : 0;
    }
    err = put_head(c, 200, content_type(rel, strlen(rel)), (uint64_t)st.st_size, close_after,
                   ka10, NULL);
    if (!err && r->method == HTTP_GET && st.st_size > 0) {
        /* The head goes first, held back (MSG_MORE) to share a segment with the body. The
           client must keep taking the file: --idle-timeout without progress ends it, however
           long the whole takes. */
        renew(O.idle_ns);
        err = flush(c, 1);
        for (int64_t off = 0; !err && off < st.st_size;) {
            int64_t was = off;
            size_t part = st.st_size - off < SEND_PART ? (size_t)(st.st_size - off) : SEND_PART;
            ssize_t sent = urt_sendfile(c->fd, fd, &off, part);
            S.n[C_FILE_BYTES] += (uint64_t)(off - was);
            if (sent < 0)
                err = sent;
            else if ((size_t)sent < part)
                err = -EIO;   /* the file shrank: the length we sent is wrong */
            else
                renew(O.idle_ns);
        }
    }
    close(fd);
    return err ? err : close_after ? WE_CLOSE : 0;
}

/* ---- requests ---- */

/* Answers one parsed request whose body is still to be read. 0: go on; <0: close. */
static ssize_t answer(struct conn *c, const struct http_request *r)
{
    S.n[C_REQUESTS]++;
    bool head_only = r->method == HTTP_HEAD;
    bool ka10 = r->minor == 0 && r->keep_alive;
    const char *path = r->target;
    size_t n = r->target_len;
    const char *q = memchr(path, '?', n);
    if (q)
        n = (size_t)(q - path);
    bool is_static = n > 8 && memcmp(path, "/static/", 8) == 0;
    ssize_t err;
    if (is_static && (r->method == HTTP_GET || head_only))
        return serve_static(c, r, path + 8, n - 8);
    /* From here on the target is not needed: the body may overwrite it. */
    bool is_root = n == 1 && path[0] == '/';
    uint64_t body;
    if ((err = take_body(c, r, &body)))
        return err;
    bool close_after = ends_after(r);
    if (is_root && (r->method == HTTP_GET || head_only)) {
        err = put_head(c, 200, "text/plain", sizeof hello - 1, close_after, ka10, NULL);
        if (!err && !head_only)
            err = put(c, hello, sizeof hello - 1);
    } else if (is_root && r->method == HTTP_POST) {
        char text[32];
        int len = snprintf(text, sizeof text, "%" PRIu64 "\n", body);
        err = put_head(c, 200, "text/plain", (uint64_t)len, close_after, ka10, NULL);
        if (!err)
            err = put(c, text, (size_t)len);
    } else if (is_root || is_static) {
        err = put_status(c, 405, head_only, close_after, ka10,
                         is_root ? "Allow: GET, HEAD, POST\r\n" : "Allow: GET, HEAD\r\n");
    } else {
        err = put_status(c, 404, head_only, close_after, ka10, NULL);
    }
    if (err)
        return err;
    return close_after ? WE_CLOSE : 0;
}

/*
 * Serves requests until the connection ends: returns <= 0 (the reason), or GROW when a request
 * head does not fit the small buffer (the caller moves to larger ones and calls again).
 */
static ssize_t serve_loop(struct conn *c)
{
    for (;;) {
        /* Empty lines before a request are allowed (some clients end a body with one more). */
        if (c->scan == 0)
            while (c->pos < c->len && (c->in[c->pos] == '\r' || c->in[c->pos] == '\n'))
                c->pos++;
        size_t head = http_head_end(c->in + c->pos, c->len - c->pos, &c->scan);
        if (head) {
            struct http_request r;
            int bad = http_parse_request(c->in + c->pos, head, &r);
            c->pos += head;
            c->head_started = false;
            if (bad) {
                S.n[C_REQUESTS]++;
                ssize_t err = put_status(c, -bad, false, true, false, NULL);
                return err ? err : WE_CLOSE;
            }
            ssize_t err = answer(c, &r);
            if (err)
                return err;
            continue;
        }
        /* Every complete request has been answered: more input is needed. */
        if (c->pos == c->len) {
            c->pos = c->len = 0;
        } else {
            compact(c);
        }
        if (c->len == c->cap) {
            if (!c->large)
                return GROW;
            S.n[C_REQUESTS]++;
            ssize_t err = put_status(c, 431, false, true, false, NULL);
            return err ? err : WE_CLOSE;
        }
        c->between = c->len == 0;
        if (c->between) {
            if (S.stopping)
                break;   /* graceful stop: no new request on this connection */
            renew(O.idle_ns);
        } else if (!c->head_started) {
            c->head_started = true;   /* the slowloris clock starts at the first byte */
            renew(O.header_ns);
        }
        ssize_t n = receive(c);
        c->between = false;
        if (n <= 0)
            return n;
    }
    return WE_CLOSE;
}

/*
 * Ends a connection we close: sends the last responses, then reads (and drops) what the client
 * still sends until it closes too, for a second at most. Closing with unread bytes would make
 * the kernel answer with a reset, which can destroy the response - a 400 the client never sees.
 */
static void linger(struct conn *c)
{
    urt_deadline(urt_now() + URT_SEC(1));
    if (flush(c, 0) == 0 && urt_shutdown(c->fd, SHUT_WR) == 0) {
        for (size_t total = 0; total < 64 * 1024;) {
            ssize_t n = urt_recv(c->fd, c->in, c->cap, 0);
            if (n <= 0)
                break;
            total += (size_t)n;
        }
    }
    urt_deadline(0);
}

/* The rest of a connection whose request head outgrew the small buffers. */
static __attribute__((noinline)) ssize_t serve_large(struct conn *c)
{
    char in[LARGE_IN], out[LARGE_OUT];
    memcpy(in, c->in + c->pos, c->len - c->pos);
    memcpy(out, c->out, c->out_len);
    c->len -= c->pos;
    c->pos = 0;
    c->in = in;
    c->cap = sizeof in;
    c->out = out;
    c->out_cap = sizeof out;
    c->large = true;
    ssize_t n = serve_loop(c);
    if (n == WE_CLOSE)
        linger(c);   /* here, while the buffers it uses live */
    c->in = c->out = NULL;
    c->len = c->pos = c->out_len = 0;
    return n;
}

static void count_end(const struct conn *c, ssize_t n)
{
    if (n == WE_CLOSE || (n == 0 && S.stopping))
        S.n[C_OURS]++;   /* (at a stop: ended by our shutdown(SHUT_RD)) */
    else if (n == 0 || n == -ECONNRESET || n == -EPIPE)
        S.n[C_PEER]++;
    else if (n == -ETIMEDOUT)
        S.n[c->len == 0 && !c->head_started ? C_IDLE : C_SLOW]++;
    else if (n == -ECANCELED)
        S.n[C_CANCELLED]++;
    else
        S.n[C_ERRORS]++;
}

/* One connection; owns fd. */
static int serve(void *arg)
{
    char in[SMALL_IN], out[SMALL_OUT];
    struct conn c = { .fd = (int)(intptr_t)arg, .in = in, .cap = sizeof in, .out = out,
                      .out_cap = sizeof out };
    c.next = S.all;
    if (S.all)
        S.all->prev = &c;
    S.all = &c;
    ssize_t n = serve_loop(&c);
    bool large = n == GROW;
    if (large)
        n = serve_large(&c);
    count_end(&c, n);
    if (n == WE_CLOSE && !large)
        linger(&c);
    if (c.prev)
        c.prev->next = c.next;
    else
        S.all = c.next;
    if (c.next)
        c.next->prev = c.prev;
    urt_close(c.fd);   /* not a cancellation point: the fd is always closed */
    S.live--;
    return 0;          /* nonzero would make the group cancel every connection */
}

/* ---- accepting, starting, stopping ---- */

static int accept_loop(void *arg)
{
    (void)arg;
    struct server_acceptor acc = { .prog = "http_server" };
    /* Non-blocking connections: a file sent to a client that stops reading then waits in its
       task (urt_sendfile polls), not in one of the kernel's worker threads. */
    urt_listener *l = urt_listener_new(S.listen_fd, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (!l) {
        fprintf(stderr, "http_server: urt_listener_new: %s\n", strerror(errno));
        kill(getpid(), SIGTERM);
        return 1;
    }
    int fd;
    while ((fd = server_accept(&acc, l, S.listen_fd)) >= 0) {
        if (S.live >= O.max_conns || urt_group_spawn(S.conns, serve, (void *)(intptr_t)fd)) {
            S.n[C_REFUSED]++;
            urt_close(fd);
            continue;
        }
        S.n[C_ACCEPTED]++;
        S.live++;
    }
    urt_listener_free(l);
    return fd == -ECANCELED ? 0 : 1;
}

/* One runtime's server, until the stop. */
static int server_main(void *arg)
{
    const sigset_t *stop_signals = arg;
    int index = urt_thread_index();
    S.listen_fd = O.listen_fds[index];
    S.conns = urt_group_new();
    urt_task *acceptor = S.conns ? urt_spawn(accept_loop, NULL) : NULL;
    if (!acceptor) {
        fprintf(stderr, "http_server: %s\n", strerror(errno));
        urt_group_free(S.conns);
        kill(getpid(), SIGTERM);   /* the other runtimes stop too */
        return 1;
    }
    int sig = server_wait_stop(stop_signals, O.stop);
    if (index == 0)
        O.signal = sig;

    /* 1. Stop accepting. */
    urt_cancel(acceptor);
    int acceptor_status = urt_join(acceptor);
    urt_close(S.listen_fd);
    /* 2. Connections waiting for a new request end now: their receive sees the end of the
          stream (SHUT_RD; bytes already received are still read and answered). The others
          answer the request in flight, saying Connection: close, for --grace ms at most. */
    S.stopping = true;
    for (struct conn *c = S.all; c; c = c->next)
        if (c->between)
            shutdown(c->fd, SHUT_RD);
    urt_deadline(urt_now() + O.grace_ns);
    urt_group_wait(S.conns);
    urt_deadline(0);
    urt_group_free(S.conns);
    for (int i = 0; i < C_COUNT; i++)
        __atomic_fetch_add(&total[i], S.n[i], __ATOMIC_RELAXED);
    return sig > 0 && acceptor_status == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    /* Block the stop signals first: one that arrives early waits for urt_signal_wait. */
    sigset_t stop_signals;
    server_block_stop_signals(&stop_signals);

    static const struct option opts[] = {
        { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },
        { "root", required_argument, NULL, 'r' },
        { "threads", required_argument, NULL, 't' },
        { "max-conns", required_argument, NULL, 'm' },
        { "max-body", required_argument, NULL, 'b' },
        { "header-timeout", required_argument, NULL, 'T' },
        { "idle-timeout", required_argument, NULL, 'i' },
        { "grace", required_argument, NULL, 'g' },
        { "help", no_argument, NULL, 'H' },
        { 0 },
    };
    const uint64_t day_ms = 86400000;
#define number(max) server_number("http_server", opts[i].name, optarg, (max))
    int ch, i = 0;
    while ((ch = getopt_long(argc, argv, "", opts, &i)) != -1) {
        switch (ch) {
        case 'h': O.host = optarg; break;
        case 'p': O.port = (unsigned)number(65535); break;
        case 'r': O.root = optarg; break;
        case 't': O.threads = (int)number(URT_THREADS_MAX); break;
        case 'm': O.max_conns = number(UINT32_MAX); break;
        case 'b': O.max_body = number(HTTP_MAX_CONTENT_LENGTH); break;
        case 'T': O.header_ns = URT_MSEC(number(day_ms)); break;
        case 'i': O.idle_ns = URT_MSEC(number(day_ms)); break;
        case 'g': O.grace_ns = URT_MSEC(number(day_ms)); break;
        case 'H': usage(stdout, argv[0]); return 0;
        default:  usage(stderr, argv[0]); return 2;
        }
    }
    if (optind < argc || O.threads < 1 || O.header_ns == 0 || O.idle_ns == 0) {
        usage(stderr, argv[0]);
        return 2;
    }
    O.root_fd = open(O.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (O.root_fd < 0) {
        fprintf(stderr, "http_server: --root %s: %s\n", O.root, strerror(errno));
        return 2;
    }
    server_raise_nofile("http_server");   /* every connection is an fd */
    for (int t = 0; t < O.threads; t++) {
        O.listen_fds[t] = server_listen("http_server", O.host, O.port, O.threads > 1);
        if (O.listen_fds[t] < 0)
            return 1;
        if (t == 0) {
            O.port = server_port_of(O.listen_fds[0]);   /* --port 0: the others take it too */
            server_print_listening(O.listen_fds[0]);
        }
    }
    int ret;
    if (O.threads == 1) {
        ret = urt_run(server_main, &stop_signals, NULL);
    } else {
        O.stop = urt_chan_new_shared(sizeof(int), 0);
        ret = O.stop ? urt_run_threads(O.threads, server_main, &stop_signals, NULL) : -ENOMEM;
        urt_chan_free(O.stop);
    }
    if (ret >= 0) {
        int sig = O.signal;
        printf("stopped by %s\n", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "error");
        for (int k = 0; k < C_COUNT; k++)
            printf("%s %" PRIu64 "\n", counter_names[k], total[k]);
        fflush(stdout);
    }
    close(O.root_fd);
    return ret < 0 ? 1 : ret;
}
