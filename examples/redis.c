/* SPDX-License-Identifier: MIT */
/*
 * redis - a Redis client on urt (redis_client.c: RESP2, pipelining, a connection pool).
 *
 *     build/examples/redis [-h HOST] [-p PORT] COMMAND ARG...
 * runs one command and prints its reply as `redis-cli` prints it on a terminal:
 *     "bar"   (integer) 3   (nil)   (error) ERR ...   1) "a"   (empty array)
 *
 *     build/examples/redis --bench [-h HOST] [-p PORT] [-c CLIENTS] [-n REQUESTS] [-P PIPELINE]
 *                          [-t set,get] [-d SIZE]
 * does what `redis-benchmark` does for SET and GET: CLIENTS tasks, each on its own connection
 * from one pool, keep PIPELINE commands in flight until REQUESTS are done; each SET writes a
 * value of SIZE bytes made from the client and request numbers, and each GET checks it reads
 * back what its client last wrote. Prints requests per second for each test, like
 * `redis-benchmark -q`, then one JSON line with the process's CPU time per request.
 *
 * The server is a real redis-server (perf/redis_bench.sh and tests/test_redis.sh start one).
 * Exit status: 0; 1 when a command failed (a Redis error reply is printed, and is a success
 * for the one-command form, as for redis-cli) or the bench read back something wrong; 2 for bad
 * options.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "redis_client.h"
#include "urt.h"

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [-h HOST] [-p PORT] COMMAND ARG...\n"
            "       %s --bench [-h HOST] [-p PORT] [-c CLIENTS] [-n REQUESTS] [-P PIPELINE]\n"
            "              [-t set,get] [-d SIZE]\n"
            "\n"
            "A Redis client on urt. The first form runs one command and prints the reply as\n"
            "redis-cli does on a terminal. --bench mirrors redis-benchmark for SET and GET:\n"
            "CLIENTS connections, PIPELINE commands in flight on each, REQUESTS in all per test,\n"
            "values of SIZE bytes, every GET checked; prints requests/s and one JSON line.\n"
            "\n"
            "  -h HOST       server (default 127.0.0.1)\n"
            "  -p PORT       port (default 6379)\n"
            "  -c CLIENTS    bench: connections (default 50)\n"
            "  -n REQUESTS   bench: requests per test (default 100000)\n"
            "  -P PIPELINE   bench: commands in flight per connection (default 1)\n"
            "  -t TESTS      bench: set, get or set,get (default set,get)\n"
            "  -d SIZE       bench: value size in bytes (default 3)\n"
            "  --help        print this help and exit\n",
            prog, prog);
}

/* ---- printing a reply as redis-cli does ---- */

static void print_quoted(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '\\': fputs("\\\\", stdout); break;
        case '"': fputs("\\\"", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\a': fputs("\\a", stdout); break;
        case '\b': fputs("\\b", stdout); break;
        default:
            if (isprint(ch))
                putchar(ch);
            else
                printf("\\x%02x", ch);
        }
    }
    putchar('"');
}

/* Prints r; indent is what goes before the second and later lines of an array element. */
static void print_reply(const rc_reply *r, const char *indent)
{
    switch (r->type) {
    case RC_STATUS: printf("%s\n", r->str); break;
    case RC_ERROR: printf("(error) %s\n", r->str); break;
    case RC_INTEGER: printf("(integer) %lld\n", r->integer); break;
    case RC_NIL: printf("(nil)\n"); break;
    case RC_BULK:
        print_quoted(r->str, r->len);
        putchar('\n');
        break;
    case RC_ARRAY: {
        if (r->n == 0) {
            printf("(empty array)\n");
            break;
        }
        int width = snprintf(NULL, 0, "%zu", r->n);
        /* Elements' own lines line up under the first: the index's width and ") ". */
        char inner[RC_MAX_DEPTH * 16 + 16];   /* (width + 2 a level, at most 12) */
        snprintf(inner, sizeof inner, "%s%*s", indent, width + 2, "");
        for (size_t i = 0; i < r->n; i++) {
            printf("%s%*zu) ", i ? indent : "", width, i + 1);
            print_reply(&r->elem[i], inner);
        }
        break;
    }
    }
}

/* ---- options ---- */

static struct {
    const char *host;
    int         port;
    int         argc;
    char      **argv;
    bool        bench;
    int         clients, pipeline;
    long        requests;
    size_t      size;
    bool        do_set, do_get;
} O = { "127.0.0.1", 6379, 0, NULL, false, 50, 1, 100000, 3, true, true };

static int one_command(void *arg)
{
    (void)arg;
    rc_conn *c;
    int err = rc_connect(O.host, O.port, &c);
    if (err) {
        fprintf(stderr, "Could not connect to Redis at %s:%d: %s\n", O.host, O.port,
                strerror(-err));
        return 1;
    }
    rc_reply *r;
    err = rc_command(c, &r, O.argc, (const char *const *)O.argv, NULL);
    rc_close(c);
    if (err) {
        fprintf(stderr, "redis: %s\n", strerror(-err));
        return 1;
    }
    print_reply(r, "");
    rc_reply_free(r);
    return 0;
}

/* ---- the bench ---- */

struct bench {
    rc_pool *pool;
    bool     set;         /* this test: SET, else GET */
    long     next;        /* requests handed out */
    long     done;
    long     errors;
    char     err_text[200];
};

static struct bench B;

/* The value request i of client k writes: SIZE bytes that name both. */
static void value_of(char *buf, size_t size, int k)
{
    char tag[32];
    int n = snprintf(tag, sizeof tag, "client-%d;", k);
    for (size_t i = 0; i < size; i++)
        buf[i] = tag[i % (size_t)n];
}

static void bench_error(const char *fmt, const char *detail)
{
    if (!B.errors++)
        snprintf(B.err_text, sizeof B.err_text, fmt, detail);
}

/* One client: its own connection, PIPELINE commands at a time until the test's requests are
   all handed out. Each client has its own key, so a GET knows what it must read. */
static int bench_client(void *arg)
{
    int k = (int)(intptr_t)arg;
    rc_conn *c;
    int err = rc_pool_get(B.pool, &c);
    if (err) {
        bench_error("connect: %s", strerror(-err));
        return 0;
    }
    char key[32];
    snprintf(key, sizeof key, "key:urt:%06d", k);
    char *value = malloc(O.size + 1), *want = malloc(O.size + 1);
    if (!value || !want) {
        bench_error("%s", "out of memory");
        goto out;
    }
    value_of(value, O.size, k);
    memcpy(want, value, O.size);
    const char *set_argv[3] = { "SET", key, value }, *get_argv[2] = { "GET", key };
    const size_t set_len[3] = { 3, strlen(key), O.size }, get_len[2] = { 3, strlen(key) };
    if (!B.set) {   /* what the GETs will read (a SET test before this one wrote it already) */
        rc_reply *r;
        if ((err = rc_command(c, &r, 3, set_argv, set_len)) == 0)
            rc_reply_free(r);
    }
    while (!err && B.next < O.requests && !B.errors) {
        long n = O.requests - B.next < O.pipeline ? O.requests - B.next : O.pipeline;
        B.next += n;
        for (long i = 0; i < n && !err; i++)
            err = B.set ? rc_append(c, 3, set_argv, set_len) : rc_append(c, 2, get_argv, get_len);
        for (long i = 0; i < n && !err; i++) {
            rc_reply *r;
            if ((err = rc_read(c, &r)) != 0)
                break;
            if (B.set ? r->type != RC_STATUS || strcmp(r->str, "OK")
                      : r->type != RC_BULK || r->len != O.size || memcmp(r->str, want, O.size))
                bench_error("unexpected reply to %s", B.set ? "SET" : "GET");
            rc_reply_free(r);
            B.done++;
        }
    }
    if (err)
        bench_error("%s", strerror(-err));
out:
    free(value);
    free(want);
    rc_pool_put(B.pool, c, err != 0);
    return 0;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int bench_main(void *arg)
{
    (void)arg;
    B.pool = rc_pool_new(O.host, O.port, O.clients);
    if (!B.pool) {
        fprintf(stderr, "redis: %s\n", strerror(errno));
        return 1;
    }
    const char *names[2] = { "SET", "GET" };
    double rps[2] = { 0, 0 }, cpu_us[2] = { 0, 0 };
    int status = 0;
    for (int t = 0; t < 2 && !status; t++) {
        if (!(t == 0 ? O.do_set : O.do_get))
            continue;
        B.set = t == 0;
        B.next = B.done = B.errors = 0;
        urt_group *g = urt_group_new();
        uint64_t t0 = urt_now();
        double c0 = cpu_seconds();
        for (int k = 0; g && k < O.clients; k++)
            if (urt_group_spawn(g, bench_client, (void *)(intptr_t)k) != 0)
                bench_error("%s", "spawn failed");
        if (g) {
            urt_group_wait(g);   /* every client (their errors are counted in B) */
            urt_group_free(g);
        }
        double secs = (double)(urt_now() - t0) / 1e9, cpu = cpu_seconds() - c0;
        if (!g || B.errors || B.done != O.requests) {
            fprintf(stderr, "redis: %s: %ld errors, %ld of %ld done: %s\n", names[t], B.errors,
                    B.done, O.requests, B.errors ? B.err_text : "?");
            status = 1;
            break;
        }
        rps[t] = (double)B.done / secs;
        cpu_us[t] = cpu * 1e6 / (double)B.done;
        printf("%s: %.2f requests per second (%.3f us CPU per request)\n", names[t], rps[t],
               cpu_us[t]);
    }
    if (!status)
        printf("{\"bench\":\"redis\",\"clients\":%d,\"requests\":%ld,\"pipeline\":%d,\"size\":%zu,"
               "\"set_rps\":%.1f,\"get_rps\":%.1f,\"set_cpu_us\":%.3f,\"get_cpu_us\":%.3f}\n",
               O.clients, O.requests, O.pipeline, O.size, rps[0], rps[1], cpu_us[0], cpu_us[1]);
    if (rc_pool_free(B.pool) != 0)
        status = 1;
    return status;
}

static long parse_num(const char *prog, const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "%s: %s wants a number from %ld to %ld, not '%s'\n", prog, opt, lo, hi, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "bench", no_argument, NULL, 'B' },
        { "help", no_argument, NULL, 'H' },
        { 0 },
    };
    int c;
    /* '+': the command's own arguments (GET -x) are not options of ours */
    while ((c = getopt_long(argc, argv, "+h:p:c:n:P:t:d:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': O.host = optarg; break;
        case 'p': O.port = (int)parse_num(argv[0], "-p", optarg, 1, 65535); break;
        case 'c': O.clients = (int)parse_num(argv[0], "-c", optarg, 1, 100000); break;
        case 'n': O.requests = parse_num(argv[0], "-n", optarg, 1, 1000000000); break;
        case 'P': O.pipeline = (int)parse_num(argv[0], "-P", optarg, 1, 100000); break;
        case 'd': O.size = (size_t)parse_num(argv[0], "-d", optarg, 1, 64 * 1024 * 1024); break;
        case 't':
            O.do_set = strstr(optarg, "set") != NULL;
            O.do_get = strstr(optarg, "get") != NULL;
            if (!O.do_set && !O.do_get) {
                fprintf(stderr, "%s: -t wants set, get or set,get\n", argv[0]);
                return 2;
            }
            break;
        case 'B': O.bench = true; break;
        case 'H': usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
    }
    O.argc = argc - optind;
    O.argv = argv + optind;
    if (O.bench ? O.argc != 0 : O.argc < 1) {
        usage(stderr, argv[0]);
        return 2;
    }
    int r = urt_run(O.bench ? bench_main : one_command, NULL, NULL);
    if (r < 0) {
        fprintf(stderr, "redis: %s\n", strerror(-r));
        return 1;
    }
    return r;
}
