/*
 * test_http_parse.c - examples/http_parse.c, the request parser users copy: heads found a byte at
 * a time as whole, every field the server reads, the requests it must refuse (the ones two
 * parsers could read two ways among them), chunked bodies split anywhere, and fuzzed input that
 * must give one of the documented answers without reading out of bounds (ASan runs this too).
 */
#include <stdlib.h>

#include "urt_test.h"
#include "../examples/http_parse.c"

static int parse(const char *s, struct http_request *r)
{
    size_t scan = 0, len = strlen(s);
    size_t head = http_head_end(s, len, &scan);
    if (!head)
        return 1;   /* incomplete */
    return http_parse_request(s, head, r);
}

UT_TEST(simple_requests_give_their_fields)
{
    struct http_request r;
    assert_int_equal(parse("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.method, HTTP_GET);
    assert_int_equal(r.target_len, 6);
    assert_memory_equal(r.target, "/a?b=c", 6);
    assert_int_equal(r.minor, 1);
    assert_true(r.keep_alive);
    assert_false(r.chunked);
    assert_int_equal(r.content_length, -1);

    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n"
                           "Connection: close\r\n\r\n", &r), 0);
    assert_int_equal(r.method, HTTP_POST);
    assert_int_equal(r.content_length, 12);
    assert_false(r.keep_alive);

    assert_int_equal(parse("PUT / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: Chunked\r\n"
                           "expect: 100-continue\r\n\r\n", &r), 0);
    assert_int_equal(r.method, HTTP_PUT);
    assert_true(r.chunked);
    assert_true(r.expect_continue);

    /* HTTP/1.0: closes unless it asks for keep-alive; needs no Host */
    assert_int_equal(parse("HEAD / HTTP/1.0\r\n\r\n", &r), 0);
    assert_int_equal(r.method, HTTP_HEAD);
    assert_int_equal(r.minor, 0);
    assert_false(r.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), 0);
    assert_true(r.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", &r), 0);
    assert_false(r.keep_alive);
    /* HTTP/1.0 framed by Transfer-Encoding closes after (RFC 9112 6.1); its Expect is ignored */
    assert_int_equal(parse("POST / HTTP/1.0\r\nConnection: keep-alive\r\n"
                           "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n", &r), 0);
    assert_true(r.chunked);
    assert_false(r.keep_alive);
    assert_false(r.expect_continue);

    /* bare LF line ends, empty lines before the request line, an unknown method, OPTIONS * */
    assert_int_equal(parse("\r\nGET / HTTP/1.1\nHost: x\n\n", &r), 0);
    assert_int_equal(parse("BREW / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.method, HTTP_OTHER);
    assert_int_equal(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.method, HTTP_OPTIONS);
    /* the same Content-Length twice is one Content-Length */
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                           "Content-Length: 3\r\n\r\n", &r), 0);
    assert_int_equal(r.content_length, 3);
    /* values keep obs-text; surrounding whitespace is not part of them */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nX-A: \t\xc3\xa9t\xc3\xa9 \t\r\n"
                           "Content-Length:  7 \r\n\r\n", &r), 0);
    assert_int_equal(r.content_length, 7);
}

UT_TEST(a_head_is_found_however_it_arrives)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\nGET /next HTTP/1.1\r\n";
    size_t want = strlen("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n");
    /* byte by byte, as a slow client sends it: found exactly when its last byte arrives */
    size_t scan = 0;
    for (size_t len = 0; len <= sizeof req - 1; len++) {
        size_t end = http_head_end(req, len, &scan);
        if (len < want)
            assert_int_equal(end, 0);
        else {
            assert_int_equal(end, want);
            break;
        }
    }
    /* in every two pieces */
    for (size_t cut = 0; cut <= want; cut++) {
        scan = 0;
        size_t end = http_head_end(req, cut, &scan);
        if (!end)
            end = http_head_end(req, sizeof req - 1, &scan);
        assert_int_equal(end, want);
    }
    /* LF CR LF also ends a head; a lone CR CR does not */
    scan = 0;
    assert_int_equal(http_head_end("GET / HTTP/1.0\n\r\nX", 18, &scan), 17);
    scan = 0;
    assert_int_equal(http_head_end("GET / HTTP/1.0\r\r", 16, &scan), 0);
}

UT_TEST(requests_two_parsers_could_read_two_ways_are_refused)
{
    static const struct { const char *req; int want; } bad[] = {
        { "GET / HTTP/1.1\r\nHost: x\r\nX : y\r\n\r\n", -400 },            /* space before : */
        { "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", -400 },   /* obs-fold */
        { "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", -400 },           /* bare CR */
        { "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n", -400 },          /* control byte */
        { "GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f\r\n\r\n", -400 },          /* DEL */
        { "GET / HTTP/1.1\r\n\r\n", -400 },                                 /* no Host */
        { "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400 },           /* two */
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
          "Transfer-Encoding: chunked\r\n\r\n", -400 },                     /* smuggling */
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
          -400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", -400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", -400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", -400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", -400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999\r\n\r\n", -400 },
        { "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", -501 },
        { "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501 },
        { "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n", -501 },
        { "GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", -400 },
        { "GET / HTTP/2.0\r\nHost: x\r\n\r\n", -505 },
        { "GET / HTTP/0.9\r\n\r\n", -505 },
        { "GET / HTTP/1.1x\r\nHost: x\r\n\r\n", -400 },
        { "GET / HTTP/1\r\nHost: x\r\n\r\n", -400 },
        { "GET / http/1.1\r\nHost: x\r\n\r\n", -400 },
        { "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", -400 },
        { "GET x HTTP/1.1\r\nHost: x\r\n\r\n", -400 },
        { "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", -400 },
        { "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", -400 },
        { " GET / HTTP/1.1\r\nHost: x\r\n\r\n", -400 },
        { "GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n", -400 },
        { "GET / HTTP/1.1\r\nHost x\r\n\r\n", -400 },
        { "\n\n", -400 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_request r;
        int got = parse(bad[i].req, &r);
        if (got != bad[i].want)
            fail_msg("case %zu: %d, not %d: %s", i, got, bad[i].want, bad[i].req);
    }
    /* NUL bytes: strlen cannot carry them */
    static const char nul_target[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char nul_value[] = "GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n";
    struct http_request r;
    size_t scan = 0;
    size_t end = http_head_end(nul_target, sizeof nul_target - 1, &scan);
    assert_int_equal(http_parse_request(nul_target, end, &r), -400);
    scan = 0;
    end = http_head_end(nul_value, sizeof nul_value - 1, &scan);
    assert_int_equal(http_parse_request(nul_value, end, &r), -400);
    /* more than HTTP_MAX_HEADERS fields */
    char many[8192];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X-%d: %d\r\n", i, i);
    snprintf(many + n, sizeof many - n, "\r\n");
    assert_int_equal(parse(many, &r), -431);
}

struct sink {
    char   data[4096];
    size_t len;
};

static void collect(void *ctx, const char *p, size_t n)
{
    struct sink *s = ctx;
    assert_true(s->len + n <= sizeof s->data);
    memcpy(s->data + s->len, p, n);
    s->len += n;
}

UT_TEST(chunked_bodies_decode_wherever_they_are_cut)
{
    static const char body[] = "5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                               "0\r\nTrailer: t\r\nOther: o\r\n\r\nNEXT";
    size_t total = sizeof body - 1, end = total - 4;
    for (size_t cut = 0; cut < end; cut++) {
        struct http_chunked c = { 0 };
        struct sink s = { .len = 0 };
        long a = http_chunked_feed(&c, body, cut, collect, &s);
        assert_int_equal(a, (long)cut);
        assert_false(http_chunked_done(&c));
        long b = http_chunked_feed(&c, body + cut, total - cut, collect, &s);
        assert_int_equal((size_t)a + (size_t)b, end);   /* "NEXT" is the next request's */
        assert_true(http_chunked_done(&c));
        assert_int_equal(c.body, 31);
        assert_int_equal(s.len, 31);
        assert_memory_equal(s.data, "helloabcdefghijklmnopqrstuvwxyz", 31);
    }
    /* whitespace before an extension or the line end is allowed */
    struct http_chunked w = { 0 };
    static const char ws[] = "5 \t;a=b\r\nhello\r\n3 \r\nabc\r\n0\r\n\r\n";
    assert_int_equal(http_chunked_feed(&w, ws, sizeof ws - 1, NULL, NULL), (long)sizeof ws - 1);
    assert_true(http_chunked_done(&w));
    assert_int_equal(w.body, 8);
    /* byte by byte */
    struct http_chunked c = { 0 };
    size_t used = 0;
    for (size_t i = 0; i < total && !http_chunked_done(&c); i++)
        used += (size_t)http_chunked_feed(&c, body + i, 1, NULL, NULL);
    assert_int_equal(used, end);
    assert_int_equal(c.body, 31);
}

UT_TEST(malformed_chunked_bodies_are_refused)
{
    static const char *const bad[] = {
        "x\r\n",                        /* no size */
        "\r\n",
        "5\r\nhelloX",                   /* no CRLF after the data */
        "5\nhello\r\n",                  /* LF alone after the size */
        "5\r\nhello\r\r",
        "1234567890abcdef\r\n",          /* 16 hex digits */
        "5;a\x01\r\n",                   /* control byte in an extension */
        "0\r\nBad\x01: x\r\n\r\n",
        "0\r\n\r\r",
        "0\r\n\n",
        "-5\r\n",
        "5 5\r\nhello\r\n",            /* whitespace, then not ';': two sizes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_chunked c = { 0 };
        long r = http_chunked_feed(&c, bad[i], strlen(bad[i]), NULL, NULL);
        if (r != -400)
            fail_msg("case %zu: %ld", i, r);
    }
    /* a size line longer than its bound (an extension that never ends) */
    static char ext[6000];
    memset(ext, 'a', sizeof ext);
    memcpy(ext, "5;", 2);
    struct http_chunked c = { 0 };
    assert_int_equal(http_chunked_feed(&c, ext, sizeof ext, NULL, NULL), -400);
    /* trailers longer than their bound */
    static char tr[12000];
    memset(tr, 'a', sizeof tr);
    memcpy(tr, "0\r\n", 3);
    for (size_t i = 100; i < sizeof tr; i += 100)
        memcpy(tr + i - 2, "\r\n", 2);
    memset(&c, 0, sizeof c);
    assert_int_equal(http_chunked_feed(&c, tr, sizeof tr, NULL, NULL), -400);
}

static uint32_t rnd(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

UT_TEST(fuzzed_input_gets_a_documented_answer)
{
    static const char *const seeds[] = {
        "GET /static/a.txt?x=1 HTTP/1.1\r\nHost: example\r\nConnection: keep-alive\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        "PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nA: b\r\n\r\n",
    };
    static const char alphabet[] = "\r\n :\t\0\x7f\x80/%GET0HTTP/1.1chunked-";
    uint32_t seed = 12345;
    int iters = ut_under_valgrind() ? 20000 : 100000;
    for (int iter = 0; iter < iters; iter++) {
        const char *s = seeds[iter % 3];
        size_t len = strlen(s);
        char *buf = malloc(len + 64);   /* exact sizes: ASan sees any read past the end */
        assert_non_null(buf);
        memcpy(buf, s, len);
        int edits = 1 + (int)(rnd(&seed) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd(&seed) % len;
            switch (rnd(&seed) % 3) {
            case 0: buf[at] = alphabet[rnd(&seed) % (sizeof alphabet - 1)]; break;
            case 1: buf[at] = (char)rnd(&seed); break;
            default:   /* delete a byte */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            }
        }
        char *exact = malloc(len ? len : 1);
        assert_non_null(exact);
        memcpy(exact, buf, len);
        free(buf);
        size_t scan = 0;
        size_t head = http_head_end(exact, len, &scan);
        assert_true(head <= len);
        if (head) {
            struct http_request r;
            int got = http_parse_request(exact, head, &r);
            if (got != 0 && got != -400 && got != -431 && got != -501 && got != -505)
                fail_msg("iteration %d: %d", iter, got);
            if (got == 0)
                assert_true(r.target >= exact && r.target + r.target_len <= exact + head);
        }
        struct http_chunked c = { 0 };
        long k = http_chunked_feed(&c, exact, len, NULL, NULL);
        assert_true(k == -400 || (k >= 0 && (size_t)k <= len));
        free(exact);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(simple_requests_give_their_fields),
        cmocka_unit_test(a_head_is_found_however_it_arrives),
        cmocka_unit_test(requests_two_parsers_could_read_two_ways_are_refused),
        cmocka_unit_test(chunked_bodies_decode_wherever_they_are_cut),
        cmocka_unit_test(malformed_chunked_bodies_are_refused),
        cmocka_unit_test(fuzzed_input_gets_a_documented_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
