/*
 * test_redis_client.c - the RESP2 reader and writer of examples/redis_client.c, against bytes
 * the test plays as the server over a socketpair: every reply type, nesting, replies split at
 * every byte and pipelined, and malformed or hostile input (-EPROTO, never a crash or a leak),
 * a server that closes mid-reply. tests/test_redis.sh runs the example against a real
 * redis-server.
 */
#include "urt_test.h"

#include "../examples/redis_client.c"

/* A connection whose server is the other end of a socketpair (*peer). */
static rc_conn *pair_conn(int *peer)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return NULL;
    rc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = sv[0];
    *peer = sv[1];
    return c;
}

struct feed {
    int         fd;
    const char *bytes;
    size_t      len, step;   /* written step bytes at a time, a yield between */
    bool        close_after, closed;
};

static int feeder(void *arg)
{
    struct feed *f = arg;
    for (size_t off = 0; off < f->len; off += f->step) {
        size_t n = f->len - off < f->step ? f->len - off : f->step;
        ssize_t w = urt_write(f->fd, f->bytes + off, n, -1);
        if (w == -ECANCELED)
            return 0;   /* the reader refused what came before: it stops us */
        EXPECT_EQ(w, (ssize_t)n);
        if (urt_yield() == -ECANCELED)
            return 0;
    }
    if (f->close_after) {
        urt_close(f->fd);
        f->closed = true;
    }
    return 0;
}

/* Reads one reply from bytes fed step at a time: rc_read's result, the reply in *out. */
static int read_fed(const char *bytes, size_t len, size_t step, bool close_after, rc_reply **out)
{
    int peer;
    rc_conn *c = pair_conn(&peer);
    EXPECT(c != NULL);
    c->pending = 1;   /* as if a command had gone out */
    struct feed f = { peer, bytes, len, step, close_after, false };
    urt_task *t = urt_spawn(feeder, &f);
    *out = NULL;
    int r = rc_read(c, out);
    if (r != 0)
        urt_cancel(t);   /* (it may still be writing what the reader refused) */
    urt_join(t);
    if (!f.closed)
        urt_close(peer);
    rc_close(c);
    return r;
}

#define NESTED "*4\r\n:1\r\n*2\r\n$3\r\nabc\r\n*-1\r\n$0\r\n\r\n-ERR bad thing\r\n"

static void check_nested(const rc_reply *r)
{
    EXPECT(r && r->type == RC_ARRAY && r->n == 4);
    if (!r || r->n != 4)
        return;
    EXPECT(r->elem[0].type == RC_INTEGER && r->elem[0].integer == 1);
    EXPECT(r->elem[1].type == RC_ARRAY && r->elem[1].n == 2);
    EXPECT(r->elem[1].elem[0].type == RC_BULK && r->elem[1].elem[0].len == 3 &&
           memcmp(r->elem[1].elem[0].str, "abc", 4) == 0);
    EXPECT(r->elem[1].elem[1].type == RC_NIL);
    EXPECT(r->elem[2].type == RC_BULK && r->elem[2].len == 0 && r->elem[2].str[0] == '\0');
    EXPECT(r->elem[3].type == RC_ERROR && strcmp(r->elem[3].str, "ERR bad thing") == 0);
}

static int types_main(void *arg)
{
    (void)arg;
    rc_reply *r;
    EXPECT_EQ(read_fed("+OK\r\n", 5, 5, false, &r), 0);
    EXPECT(r && r->type == RC_STATUS && strcmp(r->str, "OK") == 0);
    rc_reply_free(r);
    EXPECT_EQ(read_fed(":-9223372036854775808\r\n", 23, 23, false, &r), 0);
    EXPECT(r && r->type == RC_INTEGER && r->integer == INT64_MIN);
    rc_reply_free(r);
    EXPECT_EQ(read_fed("$-1\r\n", 5, 5, false, &r), 0);
    EXPECT(r && r->type == RC_NIL);
    rc_reply_free(r);
    EXPECT_EQ(read_fed("*0\r\n", 4, 4, false, &r), 0);
    EXPECT(r && r->type == RC_ARRAY && r->n == 0);
    rc_reply_free(r);
    /* binary-safe: CR, LF and NUL inside a bulk string */
    EXPECT_EQ(read_fed("$5\r\na\r\n\0b\r\n", 11, 11, false, &r), 0);
    EXPECT(r && r->type == RC_BULK && r->len == 5 && memcmp(r->str, "a\r\n\0b", 5) == 0);
    rc_reply_free(r);
    /* nested, whole and then split at every byte */
    for (size_t step = sizeof NESTED - 1; step >= 1; step = step > 8 ? step / 2 : step - 1) {
        EXPECT_EQ(read_fed(NESTED, sizeof NESTED - 1, step, false, &r), 0);
        check_nested(r);
        rc_reply_free(r);
    }
    return 0;
}

UT_TEST(every_reply_type_whole_and_split)
{
    assert_int_equal(urt_run(types_main, NULL, NULL), 0);
}

/* Each of these is refused with -EPROTO. */
static const struct {
    const char *bytes;
    size_t      len;
} bad[] = {
    { "?what\r\n", 7 },                    /* no such type */
    { "+OK\n", 4 },                        /* a bare LF */
    { ":12x\r\n", 6 },                     /* not a number */
    { ":\r\n", 3 },
    { ":-\r\n", 4 },
    { ":99999999999999999999\r\n", 23 },   /* overflow */
    { "$-2\r\n", 5 },
    { "$3\r\nabcd\r\n", 10 },              /* longer than it said */
    { "$999999999999\r\n", 15 },           /* over the bulk limit: never allocated */
    { "*-5\r\n", 5 },
    { "*99999999\r\n", 11 },               /* over the element limit */
    { "*1\r\n!\r\n", 7 },
};

static int bad_main(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc_reply *r;
        int got = read_fed(bad[i].bytes, bad[i].len, bad[i].len, false, &r);
        if (got != -EPROTO)
            ut_failf(__FILE__, __LINE__, "case %zu: %d, not -EPROTO", i, got);
        rc_reply_free(r);
    }
    /* nesting deeper than RC_MAX_DEPTH */
    char deep[4 * (RC_MAX_DEPTH + 2) + 8];
    size_t n = 0;
    for (int d = 0; d < RC_MAX_DEPTH + 2; d++)
        n += (size_t)sprintf(deep + n, "*1\r\n");
    n += (size_t)sprintf(deep + n, ":1\r\n");
    rc_reply *r;
    EXPECT_EQ(read_fed(deep, n, n, false, &r), -EPROTO);
    /* the server goes away mid-reply */
    EXPECT_EQ(read_fed("*2\r\n:1\r\n$10\r\nabc", 17, 17, true, &r), -ECONNRESET);
    EXPECT_EQ(read_fed("", 0, 1, true, &r), -ECONNRESET);
    return 0;
}

UT_TEST(malformed_replies_are_eproto)
{
    assert_int_equal(urt_run(bad_main, NULL, NULL), 0);
}

/* Random bytes and mutations of good replies: whatever comes back, no crash, no leak, no hang
   (every read ends: the feeder closes its end after the bytes). */
static int fuzz_main(void *arg)
{
    (void)arg;
    unsigned seed = 12345;
    char buf[96];
    for (int i = 0; i < 3000; i++) {
        size_t len;
        if (i % 2) {
            len = sizeof NESTED - 1;
            memcpy(buf, NESTED, len);
            for (int k = 0; k < 3; k++)
                buf[rand_r(&seed) % len] = (char)(rand_r(&seed) % 256);
        } else {
            len = 1 + (size_t)rand_r(&seed) % sizeof buf;
            for (size_t k = 0; k < len; k++)
                buf[k] = "*$:+-\r\n0123456789-x"[rand_r(&seed) % 19];
        }
        rc_reply *r;
        int got = read_fed(buf, len, 1 + (size_t)rand_r(&seed) % 8, true, &r);
        EXPECT(got == 0 || got == -EPROTO || got == -ECONNRESET);
        rc_reply_free(r);
    }
    return 0;
}

UT_TEST_T(fuzzed_replies_never_crash, 120)
{
    assert_int_equal(urt_run(fuzz_main, NULL, NULL), 0);
}

/* Commands go out as RESP arrays of bulk strings; pipelined replies come back in order. */
static int pipeline_main(void *arg)
{
    (void)arg;
    int peer;
    rc_conn *c = pair_conn(&peer);
    EXPECT(c != NULL);
    const char *argv[] = { "SET", "k", "a b\r\n" };
    EXPECT_EQ(rc_append(c, 3, argv, NULL), 0);
    const size_t lens[] = { 3, 1 };
    EXPECT_EQ(rc_append(c, 2, (const char *[]){ "GETX", "k" }, lens), 0);
    EXPECT_EQ(rc_append(c, 0, argv, NULL), -EINVAL);
    EXPECT_EQ(rc_flush(c), 0);
    const char want[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na b\r\n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    char got[sizeof want];
    size_t have = 0;
    while (have < sizeof want - 1) {
        ssize_t n = urt_read(peer, got + have, sizeof want - 1 - have, -1);
        EXPECT(n > 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    EXPECT(have == sizeof want - 1 && memcmp(got, want, have) == 0);
    EXPECT_EQ(urt_write(peer, "+OK\r\n$5\r\na b\r\n\r\n", 16, -1), 16);
    rc_reply *r1, *r2;
    EXPECT_EQ(rc_read(c, &r1), 0);
    EXPECT_EQ(rc_read(c, &r2), 0);
    EXPECT(r1 && r1->type == RC_STATUS);
    EXPECT(r2 && r2->type == RC_BULK && r2->len == 5 && memcmp(r2->str, "a b\r\n", 5) == 0);
    EXPECT_EQ(c->pending, 0);
    rc_reply *none;
    EXPECT_EQ(rc_read(c, &none), -EINVAL);   /* nothing awaits a reply */
    rc_reply_free(r1);
    rc_reply_free(r2);
    urt_close(peer);
    rc_close(c);
    return 0;
}

UT_TEST(commands_out_and_pipelined_replies_in_order)
{
    assert_int_equal(urt_run(pipeline_main, NULL, NULL), 0);
}

/* A reply much larger than one receive, arriving in small pieces: whole and intact. */
static int big_main(void *arg)
{
    (void)arg;
    size_t n = 2u << 20;
    char *bytes = malloc(n + 32);
    EXPECT(bytes != NULL);
    if (!bytes)
        return 0;
    int h = sprintf(bytes, "$%zu\r\n", n);
    for (size_t i = 0; i < n; i++)
        bytes[h + (int)i] = (char)('a' + i % 26);
    memcpy(bytes + h + n, "\r\n", 2);
    rc_reply *r;
    EXPECT_EQ(read_fed(bytes, (size_t)h + n + 2, 7000, false, &r), 0);
    EXPECT(r && r->type == RC_BULK && r->len == n && r->str[n - 1] == (char)('a' + (n - 1) % 26));
    rc_reply_free(r);
    free(bytes);
    return 0;
}

UT_TEST(a_reply_larger_than_a_receive)
{
    assert_int_equal(urt_run(big_main, NULL, NULL), 0);
}

/* The pool: a failed connect gives its unit back; a lent connection keeps the pool alive. */
static int pool_main(void *arg)
{
    int port = *(int *)arg;
    rc_pool *p = rc_pool_new("127.0.0.1", 1, 2);   /* nothing listens on port 1 */
    EXPECT(p != NULL);
    rc_conn *c;
    EXPECT_EQ(rc_pool_get(p, &c), -ECONNREFUSED);
    EXPECT_EQ(rc_pool_get(p, &c), -ECONNREFUSED);
    EXPECT_EQ(rc_pool_get(p, &c), -ECONNREFUSED);   /* (no unit was lost) */
    EXPECT_EQ(rc_pool_free(p), 0);
    p = rc_pool_new("127.0.0.1", port, 1);
    EXPECT(p != NULL);
    EXPECT_EQ(rc_pool_get(p, &c), 0);
    EXPECT_EQ(rc_pool_free(p), -EBUSY);
    rc_pool_put(p, c, false);
    EXPECT_EQ(rc_pool_get(p, &c), 0);   /* the same connection, idle in the pool */
    rc_pool_put(p, c, true);            /* broken: closed, its unit back */
    EXPECT_EQ(rc_pool_free(p), 0);
    return 0;
}

UT_TEST(pool_units_come_back)
{
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(8, &addr);
    assert_true(lfd >= 0);
    int port = ntohs(addr.sin_port);
    assert_int_equal(urt_run(pool_main, &port, NULL), 0);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_reply_type_whole_and_split),
        cmocka_unit_test(malformed_replies_are_eproto),
        cmocka_unit_test(fuzzed_replies_never_crash),
        cmocka_unit_test(commands_out_and_pipelined_replies_in_order),
        cmocka_unit_test(a_reply_larger_than_a_receive),
        cmocka_unit_test(pool_units_come_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
