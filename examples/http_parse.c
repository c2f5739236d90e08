/* SPDX-License-Identifier: MIT */
/* http_parse.c - see http_parse.h. */
#include <string.h>
#include <strings.h>

#include "http_parse.h"

#define MAX_SIZE_LINE 4096   /* a chunk's size line, extensions included */
#define MAX_TRAILERS  8192   /* all trailer fields of a chunked body     */

size_t http_head_end(const char *buf, size_t len, size_t *scan)
{
    size_t i = *scan;
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        if (!nl)
            break;
        i = (size_t)(nl - buf);
        /* The line this LF ends is empty: LF LF, or LF CR LF (CR LF CR LF). */
        if (i >= 1 &&
            (buf[i - 1] == '\n' || (buf[i - 1] == '\r' && i >= 2 && buf[i - 2] == '\n'))) {
            *scan = 0;
            return i + 1;
        }
        i++;
    }
    *scan = len;
    return 0;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Field-value bytes: visible ASCII, space, tab and obs-text; never NUL, CR, LF or DEL. */
static int is_vchar(unsigned char c)
{
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* The line end at *p (CR LF or LF): moves past it; 0 if there is none there. */
static int line_end(const char **p, const char *end)
{
    if (*p < end && **p == '\n') {
        (*p)++;
        return 1;
    }
    if (end - *p >= 2 && (*p)[0] == '\r' && (*p)[1] == '\n') {
        *p += 2;
        return 1;
    }
    return 0;
}

static int parse_content_length(const char *v, size_t n, int64_t *out)
{
    if (n == 0 || n > 16)
        return -400;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -400;   /* also "5, 5": a list is a second Content-Length in disguise */
        x = x * 10 + (v[i] - '0');
    }
    if (x > HTTP_MAX_CONTENT_LENGTH)
        return -400;
    if (*out >= 0 && *out != x)
        return -400;
    *out = x;
    return 0;
}

/* Each comma-separated token of a Connection value. */
static void parse_connection(const char *v, size_t n, int *close, int *keep)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (name_is(v + s, i - s, "close"))
            *close = 1;
        else if (name_is(v + s, i - s, "keep-alive"))
            *keep = 1;
    }
}

static const struct { const char *name; enum http_method m; } methods[] = {
    { "GET", HTTP_GET },       { "HEAD", HTTP_HEAD },       { "POST", HTTP_POST },
    { "PUT", HTTP_PUT },       { "DELETE", HTTP_DELETE },   { "OPTIONS", HTTP_OPTIONS },
    { "PATCH", HTTP_PATCH },
};

int http_parse_request(const char *buf, size_t len, struct http_request *r)
{
    const char *p = buf, *end = buf + len;
    while (line_end(&p, end))   /* empty lines before a request line are allowed */
        ;

    /* request-line = method SP request-target SP HTTP-version */
    const char *m = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (p == m || p == end || *p != ' ')
        return -400;
    r->method = HTTP_OTHER;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].name) == (size_t)(p - m) && memcmp(m, methods[i].name, p - m) == 0)
            r->method = (uint8_t)methods[i].m;
    const char *t = ++p;
    while (p < end && (unsigned char)*p > ' ' && (unsigned char)*p < 0x7f)
        p++;
    if (p == t || p == end || *p != ' ' || (*t != '/' && !(p - t == 1 && *t == '*')))
        return -400;
    r->target = t;
    r->target_len = (uint32_t)(p - t);
    p++;
    if (end - p < 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return -400;
    if (p[5] != '1')
        return -505;
    r->minor = (uint8_t)(p[7] - '0');
    p += 8;
    if (!line_end(&p, end))
        return -400;

    int fields = 0, hosts = 0, close = 0, keep = 0, te = 0;
    r->content_length = -1;
    r->chunked = 0;
    r->expect_continue = 0;
    while (!line_end(&p, end)) {
        if (++fields > HTTP_MAX_HEADERS)
            return -431;
        const char *name = p;
        while (p < end && is_tchar((unsigned char)*p))
            p++;
        /* Also refused here: a line that starts with whitespace (obs-fold) and whitespace
           between the name and the colon. */
        if (p == name || p == end || *p != ':')
            return -400;
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *v = p;
        while (p < end && is_vchar((unsigned char)*p))
            p++;
        const char *vend = p;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        if (!line_end(&p, end))
            return -400;   /* a control byte in the value, or a bare CR */
        size_t n = (size_t)(vend - v);

        if (name_is(name, name_len, "content-length")) {
            if (parse_content_length(v, n, &r->content_length))
                return -400;
        } else if (name_is(name, name_len, "transfer-encoding")) {
            if (te++ || !name_is(v, n, "chunked"))
                return -501;   /* only chunked, alone, is understood */
            r->chunked = 1;
        } else if (name_is(name, name_len, "connection")) {
            parse_connection(v, n, &close, &keep);
        } else if (name_is(name, name_len, "host")) {
            hosts++;
        } else if (name_is(name, name_len, "expect")) {
            if (!name_is(v, n, "100-continue"))
                return -400;   /* (417 would be the precise answer) */
            r->expect_continue = r->minor >= 1;   /* HTTP/1.0 clients do not wait for it */
        }
    }
    if (p != end)
        return -400;   /* the caller's length was not the head's */
    if (r->chunked && r->content_length >= 0)
        return -400;   /* both framings: the classic request smuggling */
    if (r->minor >= 1 && hosts != 1)
        return -400;
    if (hosts > 1)
        return -400;
    r->keep_alive = (uint8_t)(r->minor >= 1 ? !close : (keep && !close));
    if (r->minor == 0 && r->chunked)
        r->keep_alive = 0;   /* RFC 9112 6.1: HTTP/1.0 framing by Transfer-Encoding is faulty */
    return 0;
}

enum {
    C_SIZE, C_SIZE_MORE, C_SIZE_BWS, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER_START,
    C_TRAILER, C_TRAILER_LF, C_END_LF, C_DONE,
};

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long http_chunked_feed(struct http_chunked *c, const char *p, size_t n,
                       void (*on_data)(void *ctx, const char *data, size_t len), void *ctx)
{
    size_t i = 0;
    while (i < n && c->state != C_DONE) {
        unsigned char ch = (unsigned char)p[i];
        switch (c->state) {
        case C_DATA: {
            size_t k = n - i < c->left ? n - i : (size_t)c->left;
            if (on_data)
                on_data(ctx, p + i, k);
            c->left -= k;
            c->body += k;
            i += k;
            if (c->left == 0)
                c->state = C_DATA_CR;
            continue;
        }
        case C_SIZE:
        case C_SIZE_MORE: {
            int h = hex(ch);
            if (h >= 0) {
                if (++c->digits > 15)
                    return -400;
                c->left = c->left * 16 + (uint64_t)h;
                c->state = C_SIZE_MORE;
            } else if (c->state == C_SIZE) {
                return -400;
            } else if (ch == ';') {
                c->state = C_EXT;
            } else if (ch == ' ' || ch == '\t') {
                c->state = C_SIZE_BWS;   /* whitespace may only lead to ';' or the line end */
            } else if (ch == '\r') {
                c->state = C_SIZE_LF;
            } else {
                return -400;
            }
            break;
        }
        case C_SIZE_BWS:
            if (ch == ';')
                c->state = C_EXT;
            else if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (ch != ' ' && ch != '\t')
                return -400;   /* "5 5": two parsers could read two sizes */
            break;
        case C_EXT:
            if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (!is_vchar(ch))
                return -400;
            break;
        case C_SIZE_LF:
            if (ch != '\n')
                return -400;
            c->state = c->left ? C_DATA : C_TRAILER_START;
            c->digits = 0;
            c->field = 0;
            break;
        case C_DATA_CR:
            if (ch != '\r')
                return -400;
            c->state = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (ch != '\n')
                return -400;
            c->state = C_SIZE;
            c->field = 0;
            break;
        case C_TRAILER_START:
            c->state = ch == '\r' ? C_END_LF : C_TRAILER;
            if (c->state == C_TRAILER && (ch == '\n' || !is_vchar(ch)))
                return -400;
            break;
        case C_TRAILER:
            if (ch == '\r')
                c->state = C_TRAILER_LF;
            else if (!is_vchar(ch))
                return -400;
            break;
        case C_TRAILER_LF:
            if (ch != '\n')
                return -400;
            c->state = C_TRAILER_START;
            break;
        case C_END_LF:
            if (ch != '\n')
                return -400;
            c->state = C_DONE;
            break;
        }
        /* Every byte that is not data counts against its field's bound: the size line with its
           extensions, or the trailer section as a whole. */
        if (++c->field > (c->state >= C_TRAILER_START ? MAX_TRAILERS : MAX_SIZE_LINE))
            return -400;
        i++;
    }
    return (long)i;
}

int http_chunked_done(const struct http_chunked *c)
{
    return c->state == C_DONE;
}
