/* SPDX-License-Identifier: MIT */
/*
 * redis_client.c - a Redis client for urt tasks (RESP2). See redis_client.h.
 *
 * Replies are parsed in two passes over the bytes received: one that only checks that a whole
 * reply is there (and well formed, within the limits), then one that builds it. A reply that is
 * not all there yet costs a re-scan after the next receive, never a half-built tree.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redis_client.h"
#include "urt.h"

struct rc_conn {
    int    fd;
    char  *in;              /* received, not yet parsed: in[pos, end) */
    size_t pos, end, cap;
    char  *out;             /* queued commands */
    size_t out_len, out_cap;
    size_t pending;         /* commands queued or sent whose replies are not read yet */
    size_t scanned;         /* bytes buffered when a scan last found the reply incomplete */
    rc_conn *next_idle;     /* in a pool's idle list */
};

/* ---- connecting ---- */

int rc_connect(const char *host, int port, rc_conn **out)
{
    if (!host || port <= 0 || port > 65535 || !out)
        return -EINVAL;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res;
    int err = urt_getaddrinfo(host, service, &hints, &res);
    if (err) {   /* EAI_* codes: a name that does not resolve is a host we cannot reach */
        if (err == EAI_SYSTEM)
            return errno ? -errno : -EIO;
        return err == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
    }
    int fd = -EHOSTUNREACH;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = urt_socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        err = urt_connect(fd, a->ai_addr, a->ai_addrlen);
        if (err == 0)
            break;
        urt_close(fd);
        fd = err;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return fd;
    int one = 1;   /* small commands, answered at once: no Nagle delay */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rc_conn *c = calloc(1, sizeof *c);
    if (!c) {
        urt_close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    *out = c;
    return 0;
}

void rc_close(rc_conn *c)
{
    if (!c)
        return;
    if (urt_close(c->fd) == -EPERM)
        close(c->fd);   /* outside a task (a pool freed after urt_run): plain close(2) */
    free(c->in);
    free(c->out);
    free(c);
}

/* ---- commands out ---- */

static int reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *b = realloc(*buf, n);
    if (!b)
        return -ENOMEM;
    *buf = b;
    *cap = n;
    return 0;
}

int rc_append(rc_conn *c, int argc, const char *const *argv, const size_t *argvlen)
{
    if (!c || argc < 1 || !argv)
        return -EINVAL;
    /* *argc\r\n then $len\r\narg\r\n each: 32 bytes cover every header line. */
    size_t need = c->out_len + 32;
    for (int i = 0; i < argc; i++) {
        if (!argv[i])
            return -EINVAL;
        need += 32 + (argvlen ? argvlen[i] : strlen(argv[i]));
    }
    if (reserve(&c->out, &c->out_cap, need))
        return -ENOMEM;
    char *p = c->out + c->out_len;
    p += sprintf(p, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        p += sprintf(p, "$%zu\r\n", len);
        memcpy(p, argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    c->out_len = (size_t)(p - c->out);
    c->pending++;
    return 0;
}

int rc_flush(rc_conn *c)
{
    if (!c)
        return -EINVAL;
    for (size_t off = 0; off < c->out_len;) {
        ssize_t n = urt_send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
        if (n < 0)
            return (int)n;
        off += (size_t)n;
    }
    c->out_len = 0;
    return 0;
}

/* ---- replies in ---- */

/* The line at p (up to end) without its \r\n: its length, or -1 when the \r\n is not there
   yet. */
static long line_len(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return -1;
    return nl > p && nl[-1] == '\r' ? nl - p - 1 : -2;   /* -2: a bare \n, not RESP */
}

/* A decimal integer filling [p, p + len): 0, or -EPROTO. */
static int parse_int(const char *p, long len, long long *out)
{
    bool neg = len > 0 && *p == '-';
    long i = neg;
    if (i == len)
        return -EPROTO;
    unsigned long long v = 0;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EPROTO;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -EPROTO;
        v = v * 10 + d;
    }
    if (v > (unsigned long long)LLONG_MAX + neg)
        return -EPROTO;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

/*
 * Checks that a whole reply starts at *p: 1 and *p past it, 0 when more bytes are needed,
 * -EPROTO. With build set it also fills r (the check has passed before, so nothing fails then
 * but memory: -ENOMEM).
 */
static int scan(const char **p, const char *end, int depth, rc_reply *r)
{
    if (*p == end)
        return 0;
    char kind = **p;
    long len = line_len(*p + 1, end);
    if (len == -1)
        return 0;
    if (len < 0)
        return -EPROTO;
    const char *line = *p + 1, *next = line + len + 2;
    long long v = 0;
    switch (kind) {
    case '+':
    case '-':
        if (memchr(line, '\r', (size_t)len))
            return -EPROTO;
        if (r) {
            r->type = kind == '+' ? RC_STATUS : RC_ERROR;
            if (!(r->str = malloc((size_t)len + 1)))
                return -ENOMEM;
            memcpy(r->str, line, (size_t)len);
            r->str[len] = '\0';
            r->len = (size_t)len;
        }
        *p = next;
        return 1;
    case ':':
        if (parse_int(line, len, &v))
            return -EPROTO;
        if (r) {
            r->type = RC_INTEGER;
            r->integer = v;
        }
        *p = next;
        return 1;
    case '$':
        if (parse_int(line, len, &v) || v < -1 || v > RC_MAX_BULK)
            return -EPROTO;
        if (v == -1) {
            if (r)
                r->type = RC_NIL;
            *p = next;
            return 1;
        }
        if (end - next < v + 2)
            return 0;
        if (next[v] != '\r' || next[v + 1] != '\n')
            return -EPROTO;
        if (r) {
            r->type = RC_BULK;
            if (!(r->str = malloc((size_t)v + 1)))
                return -ENOMEM;
            memcpy(r->str, next, (size_t)v);
            r->str[v] = '\0';
            r->len = (size_t)v;
        }
        *p = next + v + 2;
        return 1;
    case '*':
        if (parse_int(line, len, &v) || v < -1 || v > RC_MAX_ELEMS || depth >= RC_MAX_DEPTH)
            return -EPROTO;
        if (v == -1) {
            if (r)
                r->type = RC_NIL;
            *p = next;
            return 1;
        }
        if (r) {
            r->type = RC_ARRAY;
            if (v && !(r->elem = calloc((size_t)v, sizeof *r->elem)))
                return -ENOMEM;
            r->n = (size_t)v;
        }
        *p = next;
        for (long long i = 0; i < v; i++) {
            int got = scan(p, end, depth + 1, r ? &r->elem[i] : NULL);
            if (got <= 0)
                return got;
        }
        return 1;
    default:
        return -EPROTO;
    }
}

static void reply_clear(rc_reply *r)
{
    free(r->str);
    for (size_t i = 0; i < r->n; i++)
        reply_clear(&r->elem[i]);
    free(r->elem);
}

void rc_reply_free(rc_reply *r)
{
    if (!r)
        return;
    reply_clear(r);
    free(r);
}

int rc_read(rc_conn *c, rc_reply **out)
{
    if (!c || !out)
        return -EINVAL;
    if (!c->pending && c->pos == c->end)
        return -EINVAL;   /* no reply is coming: it would wait forever */
    int err = rc_flush(c);
    if (err)
        return err;
    bool drained = true;   /* the last receive took all there was */
    for (;;) {
        /* A partial reply is scanned again from its start, so only when it has grown by a
           quarter or the socket had nothing more for now: a large reply costs a few scans,
           not one per receive. */
        size_t have = c->end - c->pos;
        int got = 0;
        const char *p = c->in + c->pos;
        if (c->in && (drained || have >= c->scanned + c->scanned / 4)) {
            got = scan(&p, c->in + c->end, 0, NULL);
            if (got < 0)
                return got;
            if (!got)
                c->scanned = have;
        }
        if (got) {
            c->scanned = 0;
            rc_reply *r = calloc(1, sizeof *r);
            if (!r)
                return -ENOMEM;
            p = c->in + c->pos;
            err = scan(&p, c->in + c->end, 0, r);
            if (err < 0) {
                rc_reply_free(r);
                return err;
            }
            c->pos = (size_t)(p - c->in);
            if (c->pending)
                c->pending--;
            if (c->pos == c->end)
                c->pos = c->end = 0;
            *out = r;
            return 0;
        }
        /* More bytes: move what is left to the front, make room, receive. */
        if (c->pos) {
            memmove(c->in, c->in + c->pos, c->end - c->pos);
            c->end -= c->pos;
            c->pos = 0;
        }
        if (c->end >= RC_MAX_REPLY)
            return -EPROTO;   /* one reply larger than any this client takes */
        if (c->cap - c->end < 4096 && reserve(&c->in, &c->cap, c->end + c->end / 2 + 16384))
            return -ENOMEM;
        size_t room = c->cap - c->end;
        ssize_t n = urt_recv(c->fd, c->in + c->end, room, 0);
        if (n == 0)
            return -ECONNRESET;   /* the server closed the connection mid-reply */
        if (n < 0)
            return (int)n;
        c->end += (size_t)n;
        drained = (size_t)n < room;
    }
}

int rc_command(rc_conn *c, rc_reply **out, int argc, const char *const *argv,
               const size_t *argvlen)
{
    int err = rc_append(c, argc, argv, argvlen);
    return err ? err : rc_read(c, out);
}

/* ---- the pool ---- */

struct rc_pool {
    char    *host;
    int      port;
    urt_sem *units;      /* one per connection that may exist: lent, idle, or not yet made */
    rc_conn *idle;
    int      lent;
};

rc_pool *rc_pool_new(const char *host, int port, int size)
{
    if (!host || size < 1) {
        errno = EINVAL;
        return NULL;
    }
    rc_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->host = strdup(host);
    p->port = port;
    p->units = urt_sem_new((unsigned)size);
    if (!p->host || !p->units) {
        urt_sem_free(p->units);
        free(p->host);
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

int rc_pool_get(rc_pool *p, rc_conn **out)
{
    if (!p || !out)
        return -EINVAL;
    int err = urt_sem_acquire(p->units);
    if (err)
        return err;
    p->lent++;   /* from here: rc_pool_free must wait for it, connected or not */
    rc_conn *c = p->idle;
    if (c) {
        p->idle = c->next_idle;
    } else if ((err = rc_connect(p->host, p->port, &c)) != 0) {
        p->lent--;
        urt_sem_release(p->units);
        return err;
    }
    *out = c;
    return 0;
}

void rc_pool_put(rc_pool *p, rc_conn *c, bool broken)
{
    if (!p || !c)
        return;
    p->lent--;
    if (broken || c->pending || c->pos != c->end) {   /* (replies unread: not reusable) */
        rc_close(c);
    } else {
        c->next_idle = p->idle;
        p->idle = c;
    }
    urt_sem_release(p->units);
}

int rc_pool_free(rc_pool *p)
{
    if (!p)
        return 0;
    if (p->lent || urt_sem_free(p->units) != 0)   /* lent, or tasks waiting for one */
        return -EBUSY;
    while (p->idle) {
        rc_conn *c = p->idle;
        p->idle = c->next_idle;
        rc_close(c);
    }
    free(p->host);
    free(p);
    return 0;
}
