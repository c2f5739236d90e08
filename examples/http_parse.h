/* SPDX-License-Identifier: MIT */
/*
 * http_parse.h - a small, bounded HTTP/1.x request parser, for a server to copy.
 *
 * No allocation, no callbacks, no state kept between calls but what the caller holds: a request
 * head is found with http_head_end (which looks at each received byte once, so a client sending
 * one byte at a time costs no more than one sending it all), then parsed whole by
 * http_parse_request, which checks it strictly (RFC 9112): a request that two parsers could
 * read two ways - a bare CR, obs-folded headers, whitespace before a colon, two different
 * Content-Lengths, Content-Length beside Transfer-Encoding - is refused, never guessed at, so
 * that no proxy in front of the server can be made to disagree with it about where a request
 * ends. A chunked body is decoded by http_chunked_feed, a byte-at-a-time state machine whose
 * every field is bounded.
 *
 * Errors are negative HTTP status codes: -400 malformed, -431 header fields too large (too
 * many), -501 a Transfer-Encoding other than chunked, -505 a version other than 1.x.
 */
#ifndef HTTP_PARSE_H
#define HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 100          /* header fields in one request          */
#define HTTP_MAX_CONTENT_LENGTH 1000000000000000LL

enum http_method {
    HTTP_OTHER, HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_DELETE, HTTP_OPTIONS, HTTP_PATCH,
};

/* What a server needs from a request head; the strings point into the caller's buffer. */
struct http_request {
    const char *target;          /* origin-form "/path?query", or "*"                         */
    uint32_t    target_len;
    uint8_t     method;          /* enum http_method                                          */
    uint8_t     minor;           /* HTTP/1.minor                                              */
    uint8_t     keep_alive;      /* the connection may carry another request after this one  */
    uint8_t     chunked;         /* the body is chunked (Transfer-Encoding: chunked)          */
    uint8_t     expect_continue; /* Expect: 100-continue                                      */
    int64_t     content_length;  /* -1: no Content-Length                                     */
};

/*
 * The length of the request head at the start of buf[0..len) (request line and header fields,
 * up to and including the empty line), or 0 while it is incomplete. *scan is where to resume:
 * 0 at the start of a request, then left as the call sets it.
 */
size_t http_head_end(const char *buf, size_t len, size_t *scan);

/* Parses the complete head buf[0..len) (len from http_head_end) into r: 0, or -400, -431, -501,
   -505. */
int http_parse_request(const char *buf, size_t len, struct http_request *r);

/* A chunked body's decoder: zero it at the start of each body. */
struct http_chunked {
    uint64_t left;        /* data bytes left in the current chunk              */
    uint64_t body;        /* data bytes decoded so far                         */
    uint32_t field;       /* bytes of the current size line or trailer section */
    uint8_t  state;
    uint8_t  digits;
};

/*
 * Feeds p[0..n) to the decoder. Returns how many bytes it consumed - fewer than n only when the
 * body ended within them: the rest belongs to the next request - or -400 (malformed; a size line
 * or the trailers over their bounds). The data bytes among them are counted in c->body and, when
 * on_data is not NULL, handed to it in order. http_chunked_done says when the body has ended.
 */
long http_chunked_feed(struct http_chunked *c, const char *p, size_t n,
                       void (*on_data)(void *ctx, const char *data, size_t len), void *ctx);
int http_chunked_done(const struct http_chunked *c);

#endif
