/* SPDX-License-Identifier: MIT */
/*
 * fetch - a concurrent web fetcher: one urt task per URL, the example that trio and asks made
 * popular.
 *
 *     build/examples/fetch http://127.0.0.1:8080/a http://localhost:8080/b
 *     build/examples/fetch --timeout 500 http://127.0.0.1:8080/slow
 *
 * Every URL gets a task in one urt_group. Each task resolves the host (urt_getaddrinfo: the
 * lookup runs on a helper thread, so a slow DNS server stalls only its own task), connects, sends
 * an HTTP/1.1 GET and reads the response, all written as plain blocking code. While one task
 * waits, the others run, so the whole run takes about as long as the slowest URL, not the sum.
 * A line is printed as each URL completes - seconds since start, bytes of body, the URL:
 *
 *       0.004 s      13 bytes  http://127.0.0.1:8080/small
 *       0.011 s 1048576 bytes  http://127.0.0.1:8080/big
 *       0.002 s       9 bytes  HTTP 404  http://127.0.0.1:8080/404
 *       0.001 s   error: connection refused  http://127.0.0.1:1/
 *       0.301 s   error: timed out after 300 ms  http://127.0.0.1:8080/slow
 *
 * What a fetcher needs beyond the happy path:
 *
 *  - A deadline per request (urt_deadline, --timeout): set once when the task starts, it bounds
 *    the lookup, the connect, the send and every recv together, so a server that accepts and then
 *    says nothing costs --timeout and no more.
 *  - Failures stay on their own line. A task reports its error and returns 0: a nonzero status
 *    would make the group cancel every other fetch (trio's nursery semantics), which is right
 *    for "all or nothing" jobs but not for a fetcher. The exit code says whether any failed.
 *  - The body's length: Content-Length when the server sends it (we stop reading there), the
 *    decoded size when the body is chunked, else whatever arrives until the server closes.
 *    A non-2xx status is not an error: the body still arrived, and the line shows the status.
 *
 * Only http:// (no TLS), GET, no redirects, no keep-alive (we send "Connection: close").
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "urt.h"

#define BUF_SIZE (64 * 1024)   /* receive buffer; also the most header bytes we accept */
#define DEFAULT_TIMEOUT_MS 10000

/* Settings and results. Tasks run one at a time on urt_run's thread and switch only inside urt
   calls: plain variables need no locks. */
static struct {
    uint64_t start;        /* urt_now() when the program started: the lines' time column */
    uint64_t timeout_ns;   /* per request; 0: none */
    unsigned failures;
} S = { .timeout_ns = URT_MSEC(DEFAULT_TIMEOUT_MS) };

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--timeout MS] URL...\n"
            "\n"
            "Fetches every URL at once, one urt task each, with HTTP/1.1 GET, and prints a line\n"
            "per URL as it completes: seconds since start, bytes of response body, the URL.\n"
            "A non-2xx status is shown on the line (\"HTTP 404\"); an error replaces the byte\n"
            "count (\"error: connection refused\") and the other URLs carry on.\n"
            "\n"
            "  --timeout MS   limit for each request: lookup, connect, send and receive\n"
            "                 together (default %d; 0: none)\n"
            "  --help         print this help and exit\n"
            "\n"
            "URLs are http://HOST[:PORT][/PATH]; HOST is a name, an IPv4 address or an IPv6\n"
            "address in brackets. https:// is not supported.\n"
            "\n"
            "Exit status: 0 if every URL was fetched, 1 if any failed, 2 for bad usage.\n",
            prog, DEFAULT_TIMEOUT_MS);
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
};

/* Splits an http:// URL. 0, or -1 with *why set to a message for the user. */
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
        *why = "bad URL: want http://HOST[:PORT][/PATH]";
        return -1;
    }
    size_t slen = (size_t)(sep - s);
    if (slen == 5 && strncasecmp(s, "https", 5) == 0) {
        *why = "https not supported";
        return -1;
    }
    if (slen != 4 || strncasecmp(s, "http", 4) != 0) {
        *why = "bad URL: only http:// is supported";
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
    unsigned long portnum = 80;
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
        }
    }
    return 0;
}

/* ---- one fetch ------------------------------------------------------------------------------- */

/* Text for a negative errno, in the lower case of the rest of the line. deadline: the
   request's (0: none), to tell our own timeout from the kernel's. */
static const char *error_text(int err, uint64_t deadline, char *buf, size_t size)
{
    if (err == -ETIMEDOUT && deadline && urt_now() >= deadline) {
        snprintf(buf, size, "timed out after %" PRIu64 " ms", S.timeout_ns / 1000000);
        return buf;
    }
    snprintf(buf, size, "%s", strerror(-err));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');   /* "Connection refused" -> "connection refused" */
    return buf;
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

/* Sends all of len bytes. 0 or a negative errno. */
static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        /* MSG_NOSIGNAL: a server that closes early is -EPIPE, not a SIGPIPE that kills us */
        ssize_t n = urt_send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Receives the response on fd: status in r, decoded body length in *body. 0, a negative
   errno, or 1 with *why set for a malformed or cut-off response. */
static int read_response(int fd, char *buf, struct response *r, uint64_t *body,
                         const char **why)
{
    size_t len = 0, searched = 0, start;
    ssize_t n;

    /* 1. The header block. 1xx responses (100 Continue...) are interim: skip them. */
    for (;;) {
        if (len == BUF_SIZE - 1) {
            *why = "bad response: headers over 64 KiB";
            return 1;
        }
        n = urt_recv(fd, buf + len, BUF_SIZE - 1 - len, 0);
        if (n < 0)
            return (int)n;
        if (n == 0) {
            *why = len ? "connection closed in the response headers"
                       : "connection closed with no response";
            return 1;
        }
        len += (size_t)n;
        size_t end;
        while ((end = header_end(buf, len, searched > 3 ? searched - 3 : 0))) {
            char saved = buf[end];
            buf[end] = '\0';
            if (parse_head(buf, r, why) < 0)
                return 1;
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
    /* 2. The body: what followed the headers in buf[0..len), then more recvs. */
    *body = 0;
    if (r->no_body)
        return 0;
    struct chunked ch = { 0 };
    start = 0;
    for (;;) {
        if (r->chunked) {
            if (chunked_feed(&ch, buf + start, len - start, body) < 0) {
                *why = "bad response: malformed chunked body";
                return 1;
            }
            if (ch.st == CH_DONE)
                return 0;
        } else if (r->content_length >= 0) {
            *body += len - start;
            if (*body >= (uint64_t)r->content_length) {
                *body = (uint64_t)r->content_length;   /* anything after it is not body */
                return 0;
            }
        } else {
            *body += len - start;
        }

        n = urt_recv(fd, buf, BUF_SIZE, 0);
        if (n < 0)
            return (int)n;
        if (n == 0) {
            if (r->chunked) {
                *why = "connection closed in the chunked body";
                return 1;
            }
            if (r->content_length >= 0) {
                *why = "connection closed before Content-Length bytes";
                return 1;
            }
            return 0;   /* no length given: the body runs until the server closes */
        }
        start = 0;
        len = (size_t)n;
    }
}

/* A task: fetches one URL and prints its line. Always returns 0 - see the top of the file. */
static int fetch_task(void *arg)
{
    const char *url_text = arg;
    const char *why = NULL;
    char errbuf[128];
    struct url u;
    struct addrinfo *ai = NULL;
    char *buf = NULL, *req = NULL;
    int fd = -1, err = 0;
    uint64_t body = 0;
    struct response r = { 0 };

    uint64_t deadline = S.timeout_ns ? urt_now() + S.timeout_ns : 0;
    urt_deadline(deadline);

    if (parse_url(url_text, &u, &why) < 0)
        goto out;

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    int gai = urt_getaddrinfo(u.host, u.port, &hints, &ai);
    if (gai == EAI_SYSTEM) {
        err = errno ? -errno : -EIO;     /* -ETIMEDOUT: the deadline passed during the lookup */
        ai = NULL;
        goto out;
    }
    if (gai) {
        snprintf(errbuf, sizeof errbuf, "cannot resolve %.64s: %s", u.host, gai_strerror(gai));
        why = errbuf;
        ai = NULL;
        goto out;
    }

    fd = connect_any(ai);
    if (fd < 0) {
        err = fd;
        goto out;
    }

    /* The request: the path as written, the Host header every HTTP/1.1 server requires, and
       Connection: close so that the server ends the body by closing when it has no length. */
    static const char fmt[] = "GET %s HTTP/1.1\r\n"
                              "Host: %s\r\n"
                              "User-Agent: urt-fetch/0.1\r\n"
                              "Accept: */*\r\n"
                              "Connection: close\r\n"
                              "\r\n";
    size_t reqlen = sizeof fmt + strlen(u.path) + strlen(u.authority);
    req = malloc(reqlen);
    buf = malloc(BUF_SIZE);   /* on the heap: a task's stack is small */
    if (!req || !buf) {
        err = -ENOMEM;
        goto out;
    }
    int w = snprintf(req, reqlen, fmt, u.path, u.authority);
    err = send_all(fd, req, (size_t)w);
    if (err)
        goto out;

    err = read_response(fd, buf, &r, &body, &why);
    if (err > 0)
        err = 0;    /* why says it */

out:
    /* urt_close is not a cancellation point and ignores deadlines: the fd is always closed. */
    if (fd >= 0)
        urt_close(fd);
    if (ai)
        freeaddrinfo(ai);
    free(req);
    free(buf);
    free(u.mem);

    if (err < 0 && !why)
        why = error_text(err, deadline, errbuf, sizeof errbuf);
    if (why) {
        S.failures++;
        report(url_text, "  error: %s", why);
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
        struct urt_spawn_opts opts = { .name = name };
        int err = urt_group_spawn_ex(g, fetch_task, urls[i], &opts);
        if (err) {   /* -ENOMEM: no stack for it; the others go on */
            S.failures++;
            report(urls[i], "  error: cannot start a task: %s", strerror(-err));
        }
    }
    /* Every task returns 0, so this waits for all of them; no task outlives the group. */
    urt_group_wait(g);
    urt_group_free(g);
    return S.failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    S.start = urt_now();

    static const struct option opts[] = {
        { "timeout", required_argument, NULL, 't' },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': {
            char *end;
            errno = 0;
            unsigned long long ms = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || ms > 86400ull * 1000) {
                fprintf(stderr, "%s: --timeout wants a number of milliseconds (0 to 86400000)\n",
                        argv[0]);
                return 2;
            }
            S.timeout_ns = URT_MSEC(ms);
            break;
        }
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

    /* Each URL holds an fd while it is fetched: allow as many as the hard limit lets us. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int ret = urt_run(fetch_main, argv + optind, NULL);   /* argv[argc] is NULL */
    return ret < 0 ? 1 : ret;   /* < 0: no io_uring here; urt_run has said why on stderr */
}
