/* SPDX-License-Identifier: MIT */
/*
 * fetch - a concurrent web fetcher: one urt task per URL, the example that trio and asks made
 * popular.
 *
 *     build/examples/fetch http://127.0.0.1:8080/a https://example.org/ https://example.org/b
 *     build/examples/fetch --timeout 500 http://127.0.0.1:8080/slow
 *     build/examples/fetch --cacert ca.pem --per-host 4 https://localhost:8443/{1..100}
 *
 * Every URL gets a task in one urt_group. Each task resolves the host (urt_getaddrinfo: the
 * lookup runs on a helper thread, so a slow DNS server stalls only its own task), connects, sends
 * an HTTP/1.1 GET and reads the response, all written as plain blocking code. While one task
 * waits, the others run, so the whole run takes about as long as the slowest URL, not the sum.
 * A line is printed as each URL completes - seconds since start, bytes of body, the URL:
 *
 *       0.004 s      13 bytes  http://127.0.0.1:8080/small
 *       0.011 s 1048576 bytes  https://127.0.0.1:8443/big
 *       0.002 s       9 bytes  HTTP 404  http://127.0.0.1:8080/404
 *       0.001 s   error: connection refused  http://127.0.0.1:1/
 *       0.005 s   error: certificate verify failed: self-signed certificate  https://10.0.0.7/
 *       0.301 s   error: timed out after 300 ms  http://127.0.0.1:8080/slow
 *
 * What a fetcher needs beyond the happy path:
 *
 *  - A deadline per request (urt_deadline, --timeout): set once when the task starts, it bounds
 *    the wait for a connection, the lookup, the connect, the TLS handshake, the send and every
 *    recv together, so a server that accepts and then says nothing costs --timeout and no more.
 *  - Failures stay on their own line. A task reports its error and returns 0: a nonzero status
 *    would make the group cancel every other fetch (trio's nursery semantics), which is right
 *    for "all or nothing" jobs but not for a fetcher. The exit code says whether any failed.
 *  - The body's length: Content-Length when the server sends it (we stop reading there), the
 *    decoded size when the body is chunked, else whatever arrives until the server closes.
 *    A non-2xx status is not an error: the body still arrived, and the line shows the status.
 *  - Connections reused per host. URLs of the same scheme://host:port share kept-alive
 *    connections, at most --per-host of them (a urt_sem per host: a task waits for a free
 *    connection as it would for any other resource, deadline included), so a hundred URLs on one
 *    server cost a few TCP and TLS handshakes, not a hundred. A kept connection is checked,
 *    without waiting, before it is reused: one the server has closed, or on which bytes came
 *    that nobody asked for, is closed instead. A server may still close an idle connection at
 *    any time: a request that meets a reused connection already closed (no byte of response)
 *    goes once more, on a new one.
 *
 * https:// goes through OpenSSL, with the TLS records riding urt's own urt_recv and urt_send:
 * OpenSSL reads from and writes to two memory BIOs, and this file moves the bytes between them
 * and the socket (see "TLS" below). OpenSSL never touches the socket, so it never blocks the
 * thread: a task waiting for a TLS record parks, and the others run. The certificate is checked
 * against the system's store (or --cacert) and the host name; --insecure skips both.
 *
 * Only GET, no redirects, no pipelining, no HTTP/2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "urt.h"

#define BUF_SIZE (64 * 1024)   /* receive buffer; also the most header bytes we accept */
#define NET_SIZE (32 * 1024)   /* TLS bytes taken from the socket per recv: two full records */
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_PER_HOST 6     /* what browsers allow per host for HTTP/1.1 */
/* OpenSSL's handshake (certificate chains, RSA and ECDSA) wants tens of KiB of stack, more under
   ASan; only the pages a task touches cost memory, so a roomy stack is cheap. */
#define TASK_STACK (256 * 1024)

/* Settings and results. Tasks run one at a time on urt_run's thread and switch only inside urt
   calls: plain variables need no locks. */
static struct {
    uint64_t      start;        /* urt_now() when the program started: the lines' time column */
    uint64_t      timeout_ns;   /* per request; 0: none */
    unsigned      per_host;     /* connections per scheme://host:port */
    const char   *cacert;       /* --cacert: trust these instead of the system's store */
    int           insecure;     /* --insecure: no certificate or host name checks */
    SSL_CTX      *tls;          /* shared by every https:// connection; NULL until needed */
    struct host  *hosts;        /* every scheme://host:port met so far */
    unsigned      failures;
} S = { .timeout_ns = URT_MSEC(DEFAULT_TIMEOUT_MS), .per_host = DEFAULT_PER_HOST };

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--timeout MS] [--per-host N] [--cacert FILE | --insecure] URL...\n"
            "\n"
            "Fetches every URL at once, one urt task each, with HTTP/1.1 GET, and prints a line\n"
            "per URL as it completes: seconds since start, bytes of response body, the URL.\n"
            "A non-2xx status is shown on the line (\"HTTP 404\"); an error replaces the byte\n"
            "count (\"error: connection refused\") and the other URLs carry on. URLs of the\n"
            "same scheme, host and port share kept-alive connections.\n"
            "\n"
            "  --timeout MS   limit for each request: waiting for a connection, lookup,\n"
            "                 connect, TLS handshake, send and receive together\n"
            "                 (default %d; 0: none)\n"
            "  --per-host N   connections open at once to one scheme://host:port (default %d)\n"
            "  --cacert FILE  check https:// servers' certificates against the CA\n"
            "                 certificates in FILE (PEM) instead of the system's store\n"
            "  --insecure     do not check https:// servers' certificates or names\n"
            "  --help         print this help and exit\n"
            "\n"
            "URLs are http://HOST[:PORT][/PATH] or https://...; HOST is a name, an IPv4\n"
            "address or an IPv6 address in brackets.\n"
            "\n"
            "Exit status: 0 if every URL was fetched, 1 if any failed, 2 for bad usage.\n",
            prog, DEFAULT_TIMEOUT_MS, DEFAULT_PER_HOST);
}

/* ---- output ---------------------------------------------------------------------------------- */

/* Writes one finished line to stdout through the ring: a slow terminal or a full pipe parks
   this task only, not the whole thread as a blocking printf would. */
static void put_line(const char *line, size_t len)
{
    /* The deadline belongs to the request, not to the report: the line of a request that timed
       out must still be written. */
    urt_deadline(0);
    while (len > 0) {
        ssize_t n = urt_write(STDOUT_FILENO, line, len, -1);
        if (n <= 0)
            return;   /* stdout is gone: nothing better to do */
        line += n;
        len -= (size_t)n;
    }
}

/* "  0.123 s " + what (format) + "  URL\n", written as one line. */
static void report(const char *url, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const char *url, const char *fmt, ...)
{
    char head[256];
    int h = snprintf(head, sizeof head, "%7.3f s ", (double)(urt_now() - S.start) / 1e9);
    va_list ap;
    va_start(ap, fmt);
    h += vsnprintf(head + h, sizeof head - (size_t)h, fmt, ap);
    va_end(ap);
    if (h >= (int)sizeof head)
        h = (int)sizeof head - 1;

    /* URLs can be long: the line is built on the heap, not in a task's small stack. */
    size_t len = (size_t)h + 2 + strlen(url) + 1;
    char *line = malloc(len + 1);
    if (!line) {
        put_line(head, (size_t)h);
        put_line("\n", 1);
        return;
    }
    snprintf(line, len + 1, "%s  %s\n", head, url);
    put_line(line, len);
    free(line);
}

/* ---- URLs ------------------------------------------------------------------------------------ */

struct url {
    char *mem;          /* one allocation holding the strings below */
    char *host;         /* for getaddrinfo: no brackets */
    char *authority;    /* for the Host header: host[:port] as written */
    char *path;         /* request target: path and query, at least "/" */
    char  port[8];
    int   tls;          /* https:// */
};

/* Splits an http:// or https:// URL. 0, or -1 with *why set to a message for the user. */
static int parse_url(const char *s, struct url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            *why = "bad URL: contains a space or control character";
            return -1;
        }
    }
    const char *sep = strstr(s, "://");
    if (!sep || sep == s) {
        *why = "bad URL: want http[s]://HOST[:PORT][/PATH]";
        return -1;
    }
    size_t slen = (size_t)(sep - s);
    if (slen == 5 && strncasecmp(s, "https", 5) == 0) {
        u->tls = 1;
    } else if (slen != 4 || strncasecmp(s, "http", 4) != 0) {
        *why = "bad URL: only http:// and https:// are supported";
        return -1;
    }

    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;
    if (alen == 0) {
        *why = "bad URL: no host";
        return -1;
    }
    if (memchr(auth, '@', alen)) {
        *why = "bad URL: user@ is not supported";
        return -1;
    }

    /* host and port inside the authority */
    const char *host = auth, *port = NULL;
    size_t hlen;
    if (auth[0] == '[') {                      /* [IPv6] */
        const char *close = memchr(auth, ']', alen);
        if (!close || close == auth + 1) {
            *why = "bad URL: bad [IPv6] address";
            return -1;
        }
        host = auth + 1;
        hlen = (size_t)(close - host);
        const char *after = close + 1;
        if (after < auth + alen) {
            if (*after != ':') {
                *why = "bad URL: junk after ]";
                return -1;
            }
            port = after + 1;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        hlen = colon ? (size_t)(colon - auth) : alen;
        if (colon) {
            port = colon + 1;
            if (memchr(port, ':', (size_t)(auth + alen - port))) {
                *why = "bad URL: an IPv6 address needs [brackets]";
                return -1;
            }
        }
        if (hlen == 0) {
            *why = "bad URL: no host";
            return -1;
        }
    }
    unsigned long portnum = u->tls ? 443 : 80;
    if (port && port < auth + alen) {          /* "host:" alone means the default port */
        size_t plen = (size_t)(auth + alen - port);
        portnum = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9' || portnum > 65535) {
                portnum = 0;
                break;
            }
            portnum = portnum * 10 + (unsigned long)(port[i] - '0');
        }
        if (portnum == 0 || portnum > 65535) {
            *why = "bad URL: bad port";
            return -1;
        }
    }
    snprintf(u->port, sizeof u->port, "%lu", portnum);

    /* path and query; the #fragment is the client's own and is not sent */
    size_t rlen = strcspn(rest, "#");
    int slash = rlen == 0 || rest[0] != '/';   /* "" or "?q": the path is "/" */

    u->mem = malloc(hlen + 1 + alen + 1 + (size_t)slash + rlen + 1);
    if (!u->mem) {
        *why = "out of memory";
        return -1;
    }
    char *p = u->mem;
    u->host = p;
    memcpy(p, host, hlen);
    p[hlen] = '\0';
    p += hlen + 1;
    u->authority = p;
    memcpy(p, auth, alen);
    p[alen] = '\0';
    p += alen + 1;
    u->path = p;
    if (slash)
        *p++ = '/';
    memcpy(p, rest, rlen);
    p[rlen] = '\0';
    return 0;
}

/* ---- HTTP responses -------------------------------------------------------------------------- */

/* A chunked-body decoder fed with whatever each recv brought; counts the decoded bytes. */
struct chunked {
    enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
           CH_TRAILER, CH_TRAILER_LINE, CH_END_LF, CH_DONE } st;
    uint64_t left;     /* bytes of the current chunk still to come, or its size being read */
    int      digits;
};

/* Consumes up to n bytes of p. Returns how many it took (fewer than n only once CH_DONE:
   whatever follows the body is not ours), or -1 for a malformed body. */
static ssize_t chunked_feed(struct chunked *c, const char *p, size_t n, uint64_t *body)
{
    size_t i = 0;
    while (i < n && c->st != CH_DONE) {
        char ch = p[i];
        switch (c->st) {
        case CH_DATA: {
            size_t take = n - i < c->left ? n - i : (size_t)c->left;
            *body += take;
            c->left -= take;
            i += take;
            if (c->left == 0)
                c->st = CH_DATA_CR;
            continue;
        }
        case CH_SIZE: {
            int d = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (d >= 0) {
                if (++c->digits > 15)
                    return -1;                     /* no 2^60-byte chunks */
                c->left = c->left * 16 + (uint64_t)d;
                break;
            }
            if (c->digits == 0)
                return -1;
            if (ch == ';' || ch == ' ' || ch == '\t')
                c->st = CH_EXT;                    /* chunk extensions: ignored */
            else if (ch == '\r')
                c->st = CH_SIZE_LF;
            else if (ch == '\n')
                c->st = c->left ? CH_DATA : CH_TRAILER;
            else
                return -1;
            break;
        }
        case CH_EXT:
            if (ch == '\r')
                c->st = CH_SIZE_LF;
            else if (ch == '\n')
                c->st = c->left ? CH_DATA : CH_TRAILER;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return -1;
            c->st = c->left ? CH_DATA : CH_TRAILER;   /* size 0: the last chunk */
            break;
        case CH_DATA_CR:
            if (ch == '\r')
                c->st = CH_DATA_LF;
            else if (ch == '\n')
                c->st = CH_SIZE, c->digits = 0;
            else
                return -1;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return -1;
            c->st = CH_SIZE;
            c->digits = 0;
            break;
        case CH_TRAILER:                           /* start of a trailer line, or the end */
            if (ch == '\r')
                c->st = CH_END_LF;
            else if (ch == '\n')
                c->st = CH_DONE;
            else
                c->st = CH_TRAILER_LINE;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\n')
                c->st = CH_TRAILER;
            break;
        case CH_END_LF:
            if (ch != '\n')
                return -1;
            c->st = CH_DONE;
            break;
        case CH_DONE:
            break;
        }
        i++;
    }
    return (ssize_t)i;
}

struct response {
    int      status;
    int      chunked;          /* Transfer-Encoding: chunked */
    int64_t  content_length;   /* -1: none, the body runs until the server closes */
    int      no_body;          /* 204 or 304: no body whatever the headers say */
    int      keep_alive;       /* the server will take another request on the connection */
};

/* The end of the header block in buf[0..len) (the offset of the body), or 0 if not there yet.
   from: where a previous search left off. Accepts bare LF line ends as well as CRLF. */
static size_t header_end(const char *buf, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Parses the status line and the headers we need from buf[0..len) (a whole header block,
   NUL-terminated by the caller). 0, or -1 with *why set. */
static int parse_head(char *buf, struct response *r, const char **why)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    char *save = NULL;
    char *line = strtok_r(buf, "\n", &save);
    unsigned major, minor;
    int status, off = 0;
    if (!line || sscanf(line, "HTTP/%u.%u %3d%n", &major, &minor, &status, &off) != 3 ||
        off != 12 || status < 100 || status > 999 || (line[12] && line[12] != ' ' &&
                                                      line[12] != '\r')) {
        *why = "bad response: no HTTP status line";
        return -1;
    }
    r->status = status;
    r->no_body = status == 204 || status == 304;
    /* HTTP/1.1 keeps the connection unless told "close"; HTTP/1.0 closes it unless told
       "keep-alive" (below). */
    r->keep_alive = major == 1 && minor >= 1;
    int te = 0;   /* a Transfer-Encoding came */

    while ((line = strtok_r(NULL, "\n", &save))) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *value = colon + 1;
        value += strspn(value, " \t");
        if (strcasecmp(line, "Content-Length") == 0) {
            char *end;
            errno = 0;
            long long v = strtoll(value, &end, 10);
            end += strspn(end, " \t");
            if (errno || end == value || *end || v < 0 || value[0] == '-' ||
                (r->content_length >= 0 && r->content_length != v)) {
                *why = "bad response: bad Content-Length";
                return -1;
            }
            r->content_length = v;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            /* chunked must be the last coding applied; "gzip, chunked" is chunked too (the
               count is then of compressed bytes, which is what came over the wire). */
            size_t vl = strlen(value);
            while (vl && (value[vl - 1] == ' ' || value[vl - 1] == '\t'))
                vl--;
            r->chunked = vl >= 7 && strncasecmp(value + vl - 7, "chunked", 7) == 0;
            te = 1;
        } else if (strcasecmp(line, "Connection") == 0) {
            char *tok_save = NULL;
            for (char *tok = strtok_r(value, ", \t", &tok_save); tok;
                 tok = strtok_r(NULL, ", \t", &tok_save)) {
                if (strcasecmp(tok, "close") == 0)
                    r->keep_alive = 0;
                else if (strcasecmp(tok, "keep-alive") == 0 && major == 1 && minor == 0)
                    r->keep_alive = 1;
            }
        }
    }
    /* Transfer-Encoding overrides Content-Length (RFC 9112 6.3): the body is chunked, or, when
       chunked is not the last coding, runs until the server closes. A response with both may be
       one that something between us and the server framed otherwise (response splitting), and
       an HTTP/1.0 one with Transfer-Encoding is framed wrong: neither connection is used again
       (6.1). */
    if (te) {
        if (r->content_length >= 0 || (major == 1 && minor == 0))
            r->keep_alive = 0;
        r->content_length = -1;
    }
    return 0;
}

/* ---- errors --------------------------------------------------------------------------------- */

/* Why a request failed, when an errno alone would not say it: the functions below return a
   negative errno, and -EPROTO comes with its reason in words here. */
struct why {
    const char *text;     /* the reason; NULL: none given */
    const char *stage;    /* where the request was, for a timeout's line: "" or " in ..." */
    char        buf[200]; /* for a reason that had to be formatted */
};

static int fail(struct why *w, const char *text)
{
    w->text = text;
    return -EPROTO;
}

static int failf(struct why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failf(struct why *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->buf, sizeof w->buf, fmt, ap);
    va_end(ap);
    w->text = w->buf;
    return -EPROTO;
}

/* Text for a negative errno, in the lower case of the rest of the line. deadline: the
   request's (0: none), to tell our own timeout from the kernel's. */
static const char *error_text(int err, uint64_t deadline, struct why *w)
{
    if (err == -ETIMEDOUT && deadline && urt_now() >= deadline) {
        snprintf(w->buf, sizeof w->buf, "timed out after %" PRIu64 " ms%s",
                 S.timeout_ns / 1000000, w->stage);
        return w->buf;
    }
    char *b = w->buf;
    snprintf(b, sizeof w->buf, "%s", strerror(-err));
    if (b[0] >= 'A' && b[0] <= 'Z' && !(b[1] >= 'A' && b[1] <= 'Z'))
        b[0] = (char)(b[0] - 'A' + 'a');   /* "Connection refused" -> "connection refused" */
    return b;
}

/* ---- connections ----------------------------------------------------------------------------- */

/* One connection to a server, plain or TLS. */
struct conn {
    struct conn  *next;         /* in its host's idle list */
    int           fd;
    char         *buf;          /* BUF_SIZE bytes for the responses: one per connection, not per
                                   URL, since a thousand URLs waiting for a connection need none */
    int           reused;       /* it has carried a whole response before */
    int           eof;          /* the server closed its side: end of stream, reset, EPIPE */
    /* TLS only */
    SSL          *ssl;          /* NULL for http:// */
    BIO          *in, *out;     /* memory BIOs: TLS bytes received / TLS bytes to send */
    char         *net;          /* NET_SIZE bytes: what urt_recv brings, on its way to `in` */
    unsigned char rec_head[5];  /* the record header being received: rec_have bytes of it */
    unsigned      rec_have;
    size_t        rec_left;     /* bytes of the current record's body still to come */
    int           no_notify;    /* the stream ended without the server's close_notify */
    int           broken;       /* a fatal TLS error, or our records lost: no close_notify */
    int           refused;      /* we refused the server's renegotiation: it will end this */
};

/* Sends all of len bytes on c's socket. 0 or a negative errno. */
static int sock_send(struct conn *c, const char *p, size_t len)
{
    while (len > 0) {
        /* MSG_NOSIGNAL: a server that closes early is -EPIPE, not a SIGPIPE that kills us */
        ssize_t n = urt_send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (n == -EPIPE || n == -ECONNRESET)
                c->eof = 1;
            return (int)n;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- TLS over urt_recv and urt_send ---------------------------------------------------------- */
/*
 * OpenSSL is given two memory BIOs instead of the socket: it reads TLS records from `in` and
 * writes the ones it makes to `out`, and does no I/O of its own. When an SSL_ call says
 * SSL_ERROR_WANT_READ (it needs bytes that have not come yet), we send what it wrote (the
 * ClientHello, a Finished, a request) with urt_send, receive more with urt_recv into `in`, and
 * call it again. The waits are urt's: they park this task only, and its deadline and any cancel
 * apply to them as to every other call.
 *
 * OpenSSL's error queue belongs to the thread, and every task shares this one: each SSL_ call
 * comes right after ERR_clear_error and right before SSL_get_error, with no urt call (where
 * another task could run and queue errors of its own) in between.
 */

/* Notes on c that we refused a TLS 1.2 server's renegotiation (the no_renegotiation alert): the
   server will most likely end the connection for it, so it is not kept for another request. */
static void tls_info(const SSL *ssl, int where, int ret)
{
    struct conn *c = SSL_get_app_data(ssl);
    if ((where & SSL_CB_WRITE_ALERT) == SSL_CB_WRITE_ALERT &&
        (ret & 0xff) == SSL_AD_NO_RENEGOTIATION && c)
        c->refused = 1;
}

/* The settings every https:// connection shares. 0, or -1 after saying why on stderr. */
static int tls_init(const char *prog)
{
    S.tls = SSL_CTX_new(TLS_client_method());
    if (!S.tls) {
        fprintf(stderr, "%s: SSL_CTX_new failed\n", prog);
        return -1;
    }
    SSL_CTX_set_min_proto_version(S.tls, TLS1_2_VERSION);
    /* A TLS 1.2 server's HelloRequest is answered with a no_renegotiation alert. A renegotiation
       would run inside whichever call meets it: a connection left half-way through one (our
       ClientHello sent, the server's answer not yet read) fails the next request's SSL_write. */
    SSL_CTX_set_options(S.tls, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_info_callback(S.tls, tls_info);
    if (S.insecure) {
        SSL_CTX_set_verify(S.tls, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(S.tls, SSL_VERIFY_PEER, NULL);
    /* Read here, before urt_run: a file read never parks a task, so it would stall them all.
       The system's store is a bundle plus a hashed directory whose files OpenSSL reads on
       demand, a few local reads per handshake at most. */
    int ok = S.cacert ? SSL_CTX_load_verify_locations(S.tls, S.cacert, NULL)
                      : SSL_CTX_set_default_verify_paths(S.tls);
    if (!ok) {
        /* A missing file is a system error deep in the queue, under OpenSSL's own. */
        const char *reason = NULL;
        unsigned long e;
        while ((e = ERR_get_error())) {
            if (ERR_SYSTEM_ERROR(e))
                reason = strerror(ERR_GET_REASON(e));
            else if (!reason)
                reason = ERR_reason_error_string(e);
        }
        fprintf(stderr, "%s: cannot load %s: %s\n", prog,
                S.cacert ? S.cacert : "the system's CA certificates",
                reason ? reason : "unknown error");
        return -1;
    }
    return 0;
}

/* Follows the record framing of the TLS bytes received: each record is a 5-byte header (type,
   version, a 16-bit length) and that many bytes. At the end of the stream it tells a server
   that stopped between records from one that stopped inside a record. */
static void tls_track(struct conn *c, const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (c->rec_left > 0) {
            size_t take = n < c->rec_left ? n : c->rec_left;
            c->rec_left -= take;
            p += take;
            n -= take;
            continue;
        }
        c->rec_head[c->rec_have++] = *p++;
        n--;
        if (c->rec_have == sizeof c->rec_head) {
            c->rec_left = (size_t)c->rec_head[3] << 8 | c->rec_head[4];
            c->rec_have = 0;
        }
    }
}

static int tls_mid_record(const struct conn *c)
{
    return c->rec_have > 0 || c->rec_left > 0;
}

/* Sends what OpenSSL has written to `out`. 0 or a negative errno. */
static int tls_flush(struct conn *c)
{
    char *p;
    long n = BIO_get_mem_data(c->out, &p);
    if (n <= 0)
        return 0;
    int err = sock_send(c, p, (size_t)n);
    (void)BIO_reset(c->out);
    return err;
}

/* Receives the next TLS bytes into `in`. 0; 1 at the end of the stream; a negative errno. */
static int tls_fill(struct conn *c)
{
    ssize_t n = urt_recv(c->fd, c->net, NET_SIZE, 0);
    if (n == 0 || n == -ECONNRESET)
        c->eof = 1;
    if (n <= 0)
        return n == 0 ? 1 : (int)n;
    tls_track(c, (const unsigned char *)c->net, (size_t)n);
    if (BIO_write(c->in, c->net, (int)n) != (int)n)
        return -ENOMEM;
    return 0;
}

/* Why a TLS call failed, in words: what certificate verification said when that was it, else
   the reason OpenSSL queued. Returns -EPROTO. */
static int tls_fail(struct conn *c, int ssl_err, const char *what, struct why *w)
{
    c->broken = 1;
    long v = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_error();
    int ret;
    if (!S.insecure && v != X509_V_OK)
        ret = failf(w, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    else if (e && ERR_reason_error_string(e))
        ret = failf(w, "%s: %s", what, ERR_reason_error_string(e));
    else
        ret = failf(w, "%s (SSL error %d)", what, ssl_err);
    ERR_clear_error();
    return ret;
}

static int tls_handshake(struct conn *c, struct why *w)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        /* The reason is read now: the flush below lets other tasks run, and they clear the
           thread's error queue. */
        int failed = e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ
                         ? tls_fail(c, e, "TLS handshake failed", w)
                         : 0;
        /* What OpenSSL wrote goes out whatever happened: the ClientHello, our Finished, or the
           alert that tells the server why we give up. */
        int err = tls_flush(c);
        if (failed || err || r == 1)
            return failed ? failed : err;
        err = tls_fill(c);
        if (err == 1)
            return fail(w, tls_mid_record(c) ? "connection closed in the middle of a TLS record"
                                             : "connection closed in the TLS handshake");
        if (err < 0)
            return err;
    }
}

/* Starts TLS on c's connected socket: SNI, the checks of the certificate, the handshake. */
static int tls_start(struct conn *c, const char *host, struct why *w)
{
    c->net = malloc(NET_SIZE);
    c->ssl = SSL_new(S.tls);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (!c->net || !c->ssl || !in || !out) {
        BIO_free(in);
        BIO_free(out);
        return -ENOMEM;
    }
    SSL_set_bio(c->ssl, in, out);   /* the SSL owns them from here on */
    c->in = in;
    c->out = out;
    SSL_set_app_data(c->ssl, c);    /* for tls_info */
    SSL_set_connect_state(c->ssl);

    /* SNI names the site to a server that has several; an address is not sent (RFC 6066). */
    unsigned char addr[sizeof(struct in6_addr)];
    int is_addr = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    if (!is_addr && !SSL_set_tlsext_host_name(c->ssl, host))
        return tls_fail(c, 0, "bad host name for TLS", w);
    /* Without this, any valid certificate would do, for any site: a name is checked against the
       certificate's DNS subjectAltName, an address against its IP ones. */
    if (!S.insecure && !(is_addr ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host)
                                 : SSL_set1_host(c->ssl, host)))
        return tls_fail(c, 0, "bad host name for TLS", w);
    return tls_handshake(c, w);
}

/* SSL_read through the pump. The count, 0 at the end of the stream, or a negative errno. */
static ssize_t tls_recv(struct conn *c, void *buf, size_t len, struct why *w)
{
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
        if (n > 0) {
            /* Reading may have made OpenSSL write (the alert refusing a renegotiation; OpenSSL
               3.0 keeps a KeyUpdate's answer for the next SSL_write, as RFC 8446 allows): it
               goes now, not with the next request, since the connection may wait long in the
               pool, and the server for it. Lost, it would leave our side out of step. */
            if (BIO_ctrl_pending(c->out) > 0 && tls_flush(c) < 0)
                c->broken = 1;
            return n;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) {   /* close_notify: the server ended cleanly */
            c->eof = 1;
            return 0;
        }
        if (e != SSL_ERROR_WANT_READ)
            return tls_fail(c, e, "TLS error", w);
        /* A record may have asked for an answer (a TLS 1.3 KeyUpdate): send it first. */
        int err = tls_flush(c);
        if (!err)
            err = tls_fill(c);
        if (err == 1) {
            if (tls_mid_record(c))
                return fail(w, "connection closed in the middle of a TLS record");
            /* Between records, but with no close_notify: whether that cut anything short is
               for the HTTP framing to say (read_response). */
            c->no_notify = 1;
            return 0;
        }
        if (err < 0)
            return err;
    }
}

/* SSL_write of all len bytes, then the records go out. 0 or a negative errno. */
static int tls_send(struct conn *c, const char *p, size_t len, struct why *w)
{
    for (;;) {
        ERR_clear_error();
        /* A memory BIO takes everything: one call writes it all, without SSL_ERROR_WANT_WRITE. */
        int n = SSL_write(c->ssl, p, (int)len);
        int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
        int failed = e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ
                         ? tls_fail(c, e, "TLS error", w)
                         : 0;
        int err = tls_flush(c);
        if (failed || err || n > 0)
            return failed ? failed : err;
        /* SSL_ERROR_WANT_READ: a handshake is under way and needs the server's next records;
           SSL_write is called again with the same arguments once they are in. */
        err = tls_fill(c);
        if (err == 1)
            return fail(w, "connection closed in a TLS handshake");
        if (err < 0)
            return err;
    }
}

/* Whether the idle TLS connection c can carry another request; see conn_reusable. What came
   while it was idle goes through SSL_read: a TLS 1.3 session ticket or KeyUpdate is taken in
   there (a KeyUpdate's answer goes with the next request), application data is a response
   nobody asked for, close_notify or an alert the server's goodbye, part of a record the start of
   something unknown. 1 or 0. */
static int tls_reusable(struct conn *c)
{
    ssize_t n;
    size_t took = 0;
    while ((n = urt_recv(c->fd, c->net, NET_SIZE, MSG_DONTWAIT)) > 0) {
        tls_track(c, (const unsigned char *)c->net, (size_t)n);
        if (BIO_write(c->in, c->net, (int)n) != (int)n || (took += (size_t)n) > BUF_SIZE)
            return 0;   /* no memory, or more than an idle server has reason to send */
    }
    if (n != -EAGAIN) {
        c->eof = n == 0 || n == -ECONNRESET;
        return 0;
    }
    char b;
    ERR_clear_error();
    int r = SSL_read(c->ssl, &b, 1);
    int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN)
        c->eof = 1;
    else if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ)
        c->broken = 1;
    return e == SSL_ERROR_WANT_READ && !c->refused && !tls_mid_record(c) && tls_flush(c) == 0;
}

/* ---- plain or TLS ---------------------------------------------------------------------------- */

/* Whether c, taken from the pool, can carry another request: nothing came on it while it was
   idle. Bytes that did are a response nobody asked for (a server out of step with us), which the
   next request would take for its own; an end of stream is the server closing it, which would
   cost the request a retry. Does not wait. 1, or 0: close c and take another. */
static int conn_reusable(struct conn *c)
{
    if (c->ssl)
        return tls_reusable(c);
    char b;
    ssize_t n = urt_recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    c->eof = n == 0 || n == -ECONNRESET;
    return n == -EAGAIN;
}

/* Whether c, whose response ended by its own framing, may go back to the pool: over TLS, only
   with nothing of it left unread or unsent, and no handshake under way. The rest of a response
   left in the receive buffer is read_response's to see. */
static int conn_poolable(struct conn *c)
{
    return !c->eof && !c->broken &&
           (!c->ssl || (!c->refused && !SSL_in_init(c->ssl) && !SSL_has_pending(c->ssl) &&
                        BIO_ctrl_pending(c->out) == 0));
}

/* Receives up to len bytes of the response. The count, 0 at the end of the stream, or a negative
   errno. */
static ssize_t conn_recv(struct conn *c, void *buf, size_t len, struct why *w)
{
    if (c->ssl)
        return tls_recv(c, buf, len, w);
    ssize_t n = urt_recv(c->fd, buf, len, 0);
    if (n == 0 || n == -ECONNRESET)
        c->eof = 1;
    return n;
}

/* Sends all of len bytes of the request. 0 or a negative errno. */
static int conn_send(struct conn *c, const char *p, size_t len, struct why *w)
{
    return c->ssl ? tls_send(c, p, len, w) : sock_send(c, p, len);
}

/* Closes c. A TLS connection in good standing first says goodbye (close_notify), as the
   protocol asks; the alert goes if the socket takes it at once, and is not waited for. */
static void conn_close(struct conn *c)
{
    if (c->ssl) {
        if (!c->broken && !c->eof && SSL_is_init_finished(c->ssl)) {
            ERR_clear_error();
            int sent = SSL_shutdown(c->ssl) >= 0;
            ERR_clear_error();
            char *p;
            long n = BIO_get_mem_data(c->out, &p);
            if (sent && n > 0)
                urt_send(c->fd, p, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        SSL_free(c->ssl);   /* and its two BIOs */
    }
    /* urt_close is not a cancellation point and ignores deadlines: the fd is always closed. */
    if (c->fd >= 0)
        urt_close(c->fd);
    free(c->net);
    free(c->buf);
    free(c);
}

/* The addresses of u's host. 0, or a negative errno. */
static int resolve(const struct url *u, struct addrinfo **ai, struct why *w)
{
    /* An address written out needs no lookup: getaddrinfo converts it here and now, without a
       helper thread. */
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST };
    if (getaddrinfo(u->host, u->port, &hints, ai) == 0)
        return 0;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = urt_getaddrinfo(u->host, u->port, &hints, ai);
    if (gai == EAI_SYSTEM) {
        *ai = NULL;
        return errno ? -errno : -EIO;     /* -ETIMEDOUT: the deadline passed during the lookup */
    }
    if (gai) {
        *ai = NULL;
        return failf(w, "cannot resolve %.64s: %s", u->host, gai_strerror(gai));
    }
    return 0;
}

/* Connects to the first address of ai that accepts. The fd, or a negative errno (the last
   address's error). */
static int connect_any(const struct addrinfo *ai)
{
    int err = -EHOSTUNREACH;
    for (; ai; ai = ai->ai_next) {
        int fd = urt_socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = fd;
        } else {
            err = urt_connect(fd, ai->ai_addr, ai->ai_addrlen);
            if (err == 0)
                return fd;
            urt_close(fd);   /* after -ETIMEDOUT its connect state is undefined: never reuse */
        }
        if (err == -ETIMEDOUT || err == -ECANCELED)
            break;           /* the deadline covers every address: no time left to try more */
    }
    return err;
}

/* Opens a new connection for u: lookup, connect and, for https://, the TLS handshake. */
static int conn_open(const struct url *u, struct conn **out, struct why *w)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fd = -1;
    c->buf = malloc(BUF_SIZE);   /* on the heap: a task's stack is small */
    if (!c->buf) {
        conn_close(c);
        return -ENOMEM;
    }
    struct addrinfo *ai;
    int err = resolve(u, &ai, w);
    if (err == 0) {
        c->fd = connect_any(ai);
        freeaddrinfo(ai);
        err = c->fd < 0 ? c->fd : 0;
    }
    if (err == 0 && u->tls) {
        w->stage = " in the TLS handshake";
        err = tls_start(c, u->host, w);
        if (err == 0)
            w->stage = "";
    }
    if (err) {
        conn_close(c);
        return err;
    }
    *out = c;
    return 0;
}

/* ---- connections per host -------------------------------------------------------------------- */

/* A scheme://host:port and the connections to it. */
struct host {
    struct host *next;     /* in S.hosts */
    urt_sem     *slots;    /* one unit per connection that may be lent: --per-host */
    struct conn *idle;     /* kept alive, waiting for the next request (last in, first out) */
    char         key[];    /* "https://host:port" */
};

/* u's host, made on first use; NULL: no memory. A list is enough for the few hosts a command
   line names; a crawler would hash. */
static struct host *host_get(const struct url *u)
{
    size_t klen = strlen(u->host) + sizeof "https://[]:" + strlen(u->port);
    struct host *h = calloc(1, sizeof *h + klen);
    if (!h)
        return NULL;
    snprintf(h->key, klen, "%s://%s:%s", u->tls ? "https" : "http", u->host, u->port);
    for (struct host *o = S.hosts; o; o = o->next) {
        if (strcasecmp(o->key, h->key) == 0) {   /* host names are not case-sensitive */
            free(h);
            return o;
        }
    }
    h->slots = urt_sem_new(S.per_host);
    if (!h->slots) {
        free(h);
        return NULL;
    }
    h->next = S.hosts;
    S.hosts = h;
    return h;
}

/* Closes every idle connection and frees the hosts (the end of the run: nobody holds a slot). */
static void hosts_free(void)
{
    struct host *h;
    while ((h = S.hosts)) {
        S.hosts = h->next;
        struct conn *c;
        while ((c = h->idle)) {
            h->idle = c->next;
            conn_close(c);
        }
        urt_sem_free(h->slots);
        free(h);
    }
}

/* ---- one fetch ------------------------------------------------------------------------------- */

/* Receives the response on c: status in r, decoded body length in *body, how many bytes of
   response came at all in *got. 0 or a negative errno. */
static int read_response(struct conn *c, struct response *r, uint64_t *body, size_t *got,
                         struct why *w)
{
    char *buf = c->buf;
    size_t len = 0, searched = 0, start;
    ssize_t n;

    /* 1. The header block. 1xx responses (100 Continue...) are interim: skip them. */
    for (;;) {
        if (len == BUF_SIZE - 1)
            return fail(w, "bad response: headers over 64 KiB");
        n = conn_recv(c, buf + len, BUF_SIZE - 1 - len, w);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return fail(w, *got ? "connection closed in the response headers"
                                : "connection closed with no response");
        *got += (size_t)n;
        len += (size_t)n;
        size_t end;
        while ((end = header_end(buf, len, searched > 3 ? searched - 3 : 0))) {
            char saved = buf[end];
            buf[end] = '\0';
            if (parse_head(buf, r, &w->text) < 0)
                return -EPROTO;
            buf[end] = saved;
            memmove(buf, buf + end, len - end);   /* keep what came after the headers */
            len -= end;
            searched = 0;
            if (r->status >= 200)
                goto body;
        }
        searched = len;
    }

body:
    /* 2. The body: what followed the headers in buf[0..len), then more receives. Bytes after
       the body's end mean a server out of step with us: its connection is not reused. */
    *body = 0;
    if (r->no_body) {
        r->keep_alive &= len == 0;
        return 0;
    }
    struct chunked ch = { 0 };
    start = 0;
    for (;;) {
        if (r->chunked) {
            ssize_t took = chunked_feed(&ch, buf + start, len - start, body);
            if (took < 0)
                return fail(w, "bad response: malformed chunked body");
            if (ch.st == CH_DONE) {
                r->keep_alive &= (size_t)took == len - start;
                return 0;
            }
        } else if (r->content_length >= 0) {
            *body += len - start;
            if (*body >= (uint64_t)r->content_length) {
                r->keep_alive &= *body == (uint64_t)r->content_length;
                *body = (uint64_t)r->content_length;   /* anything after it is not body */
                return 0;
            }
        } else {
            *body += len - start;
        }

        n = conn_recv(c, buf, BUF_SIZE, w);
        if (n < 0)
            return (int)n;
        if (n == 0) {
            if (r->chunked)
                return fail(w, "connection closed in the chunked body");
            if (r->content_length >= 0)
                return fail(w, "connection closed before Content-Length bytes");
            /* No length given: the body runs until the server closes. Over TLS that end must be
               the server's close_notify, or an attacker who cuts the connection could pass off
               part of the body as all of it. */
            if (c->no_notify)
                return fail(w, "connection closed without TLS close_notify: body may be cut short");
            return 0;
        }
        start = 0;
        len = (size_t)n;
    }
}

/* A task: fetches one URL and prints its line. Always returns 0 - see the top of the file. */
static int fetch_task(void *arg)
{
    const char *url_text = arg;
    struct why w = { .stage = "" };
    struct url u;
    struct host *h = NULL;
    struct conn *c = NULL;
    char *req = NULL;
    int err = 0, keep = 0;
    uint64_t body = 0;
    struct response r = { 0 };

    uint64_t deadline = S.timeout_ns ? urt_now() + S.timeout_ns : 0;
    urt_deadline(deadline);

    if (parse_url(url_text, &u, &w.text) < 0)
        goto out;

    /* The request: the path as written and the Host header every HTTP/1.1 server requires. No
       "Connection: close": the connection stays open for the next URL of the same host. */
    static const char fmt[] = "GET %s HTTP/1.1\r\n"
                              "Host: %s\r\n"
                              "User-Agent: urt-fetch/0.2\r\n"
                              "Accept: */*\r\n"
                              "\r\n";
    size_t reqlen = sizeof fmt + strlen(u.path) + strlen(u.authority);
    req = malloc(reqlen);
    struct host *host = host_get(&u);
    if (!req || !host) {
        err = -ENOMEM;
        goto out;
    }
    reqlen = (size_t)snprintf(req, reqlen, fmt, u.path, u.authority);

    /* One of the host's --per-host connections, waited for like any other resource. */
    w.stage = " waiting for a connection";
    err = urt_sem_acquire(host->slots);
    if (err)
        goto out;
    h = host;   /* holding a slot: given back at out */
    w.stage = "";

    /* A server may close a kept-alive connection whenever it likes (its idle timeout, a
       restart), and we learn it only when the request gets nothing back: then it goes once more,
       on a new connection (not another idle one: those are as old). GET is safe to repeat. */
    for (int attempt = 0;; attempt++) {
        c = NULL;
        while (attempt == 0 && (c = h->idle)) {
            h->idle = c->next;
            if (conn_reusable(c))
                break;
            conn_close(c);
        }
        if (!c && (err = conn_open(&u, &c, &w)) < 0)
            break;
        size_t got = 0;
        err = conn_send(c, req, reqlen, &w);
        if (!err)
            err = read_response(c, &r, &body, &got, &w);
        if (err && c->reused && c->eof && got == 0 && attempt == 0) {
            conn_close(c);
            c = NULL;
            w.text = NULL;
            continue;
        }
        break;
    }
    /* Reusable only when the body ended by its own framing, not by the server's close. */
    keep = !err && r.keep_alive && (r.no_body || r.chunked || r.content_length >= 0) &&
           conn_poolable(c);

out:
    if (c && keep) {
        c->reused = 1;
        c->next = h->idle;
        h->idle = c;
    } else if (c) {
        conn_close(c);
    }
    if (h)
        urt_sem_release(h->slots);
    free(req);
    free(u.mem);

    if (err < 0 && !w.text)
        w.text = error_text(err, deadline, &w);
    if (w.text) {
        S.failures++;
        report(url_text, "  error: %s", w.text);
    } else if (r.status >= 200 && r.status < 300) {
        report(url_text, "%7" PRIu64 " bytes", body);
    } else {
        report(url_text, "%7" PRIu64 " bytes  HTTP %d", body, r.status);
    }
    return 0;
}

static int fetch_main(void *arg)
{
    char **urls = arg;

    urt_group *g = urt_group_new();
    if (!g) {
        fprintf(stderr, "fetch: urt_group_new: %s\n", strerror(errno));
        return 1;
    }
    for (size_t i = 0; urls[i]; i++) {
        /* The name shows in urt_dump (SIGQUIT-style debugging of a hung fetch). */
        char name[32];
        snprintf(name, sizeof name, "fetch %zu", i + 1);
        struct urt_spawn_opts opts = { .name = name, .stack_size = TASK_STACK };
        int err = urt_group_spawn_ex(g, fetch_task, urls[i], &opts);
        if (err) {   /* -ENOMEM: no stack for it; the others go on */
            S.failures++;
            report(urls[i], "  error: cannot start a task: %s", strerror(-err));
        }
    }
    /* Every task returns 0, so this waits for all of them; no task outlives the group. */
    urt_group_wait(g);
    urt_group_free(g);
    hosts_free();
    return S.failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    S.start = urt_now();

    static const struct option opts[] = {
        { "timeout",  required_argument, NULL, 't' },
        { "per-host", required_argument, NULL, 'p' },
        { "cacert",   required_argument, NULL, 'c' },
        { "insecure", no_argument,       NULL, 'k' },
        { "help",     no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't':
        case 'p': {
            unsigned long long max = c == 't' ? 86400ull * 1000 : 10000;
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v > max ||
                (c == 'p' && v == 0)) {
                if (c == 't')
                    fprintf(stderr, "%s: --timeout wants a number of milliseconds (0 to %llu)\n",
                            argv[0], max);
                else
                    fprintf(stderr, "%s: --per-host wants a number of connections (1 to %llu)\n",
                            argv[0], max);
                return 2;
            }
            if (c == 't')
                S.timeout_ns = URT_MSEC(v);
            else
                S.per_host = (unsigned)v;
            break;
        }
        case 'c':
            S.cacert = optarg;
            break;
        case 'k':
            S.insecure = 1;
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s: no URL given\n", argv[0]);
        usage(stderr, argv[0]);
        return 2;
    }
    if (S.cacert && S.insecure) {
        fprintf(stderr, "%s: --cacert and --insecure contradict each other\n", argv[0]);
        return 2;
    }
    /* The TLS settings are made once, before the runtime starts, and only when an https:// URL
       needs them: a --cacert that cannot be read is a usage error, not an error per URL. */
    for (int i = optind; i < argc && !S.tls; i++) {
        if (strncasecmp(argv[i], "https:", 6) == 0 && tls_init(argv[0]) < 0) {
            SSL_CTX_free(S.tls);
            return 2;
        }
    }

    /* Each URL holds an fd while it is fetched: allow as many as the hard limit lets us. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int ret = urt_run(fetch_main, argv + optind, NULL);   /* argv[argc] is NULL */
    SSL_CTX_free(S.tls);
    return ret < 0 ? 1 : ret;   /* < 0: no io_uring here; urt_run has said why on stderr */
}
