/* SPDX-License-Identifier: MIT */
/*
 * batching - how few system calls urt makes: counted, so noise cannot move the figures.
 *
 * 1. Sleepers: N tasks sleep at once (default 2000 tasks, 10 ms each). urt keeps sleeps in a
 *    userland timer heap and waits for the earliest one inside its single blocking
 *    io_uring_enter, so the whole crowd should cost a handful of enters. Reported: enters per
 *    100 sleeps (target <= 1). Reference: a sleep in a thread is one nanosleep, 100 per 100.
 *
 * 2. Pipe ping-pong: two tasks pass an M-message ping-pong through two pipes (per round trip:
 *    write, read on each side, 4 operations). Reported: io_uring_enter calls per operation and
 *    SQEs per enter (the batch size), from urt_stats. Baseline, in the same process: the same
 *    ping-pong between two threads with blocking read/write, which is one system call per
 *    operation by construction; its time per round trip is measured for the time ratio.
 *
 * urt's own counters are exact: every io_uring_enter the scheduler makes is counted, and urt
 * makes no other system call on these paths (its clock is the vDSO's). Cross-check with
 * `strace -f -c` or `perf stat -e raw_syscalls:sys_enter` if in doubt.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "urt.h"
#include "bench.h"

#define TARGET_ENTERS_PER_100_SLEEPS 1.0
#define MSG 64

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--sleepers N] [--sleep-ms MS] [--messages M] [--help]\n"
            "\n"
            "Counts urt's io_uring_enter calls (from urt_stats) for N tasks sleeping at once\n"
            "(target <= %.0f enter per 100 sleeps), and for a pipe ping-pong of M messages\n"
            "between two tasks (enters per operation, SQEs per enter), against the same\n"
            "ping-pong between two threads with blocking read/write, run in the same process.\n"
            "Prints the figures, the ratios and one JSON line.\n"
            "\n"
            "  --sleepers N   tasks asleep at once (default 2000)\n"
            "  --sleep-ms MS  how long each sleeps (default 10)\n"
            "  --messages M   ping-pong round trips (default 100000)\n"
            "  --help         print this help and exit\n",
            prog, TARGET_ENTERS_PER_100_SLEEPS);
}

struct params {
    uint64_t sleepers, sleep_ns, messages;
};

struct results {
    /* sleepers */
    uint64_t sleep_enters, sleep_elapsed_ns;
    /* ping-pong */
    uint64_t pp_ops, pp_enters, pp_sqes, pp_elapsed_ns;
};

/* ---- 1. sleepers ---- */

static int sleeper(void *arg)
{
    const uint64_t *ns = arg;
    return urt_sleep(*ns);
}

/* Spawns n sleepers, joins them; the enter calls and time it took. */
static int sleep_round(uint64_t n, uint64_t sleep_ns, urt_task **h, uint64_t *enters,
                       uint64_t *elapsed)
{
    struct urt_stats s0, s1;
    urt_stats(&s0);
    uint64_t t0 = bench_now();
    uint64_t i;
    for (i = 0; i < n; i++) {
        h[i] = urt_spawn(sleeper, &sleep_ns);
        if (!h[i])
            break;
    }
    int err = i < n ? -errno : 0;
    for (uint64_t m = 0; m < i; m++) {
        int st = urt_join(h[m]);
        if (st && !err)
            err = st;
    }
    uint64_t t1 = bench_now();
    urt_stats(&s1);
    *enters = s1.enter_calls - s0.enter_calls;
    *elapsed = t1 - t0;
    return err;
}

/* ---- 2. ping-pong ---- */

struct pp {
    int      ping[2], pong[2];   /* pipes: ping carries A->B, pong B->A */
    uint64_t n;
};

static int check_io(ssize_t r)
{
    if (r == MSG)
        return 0;
    return r < 0 ? (int)r : -EIO;
}

static int pinger(void *arg)
{
    const struct pp *p = arg;
    char buf[MSG];
    memset(buf, 'p', sizeof buf);
    for (uint64_t i = 0; i < p->n; i++) {
        int err = check_io(urt_write(p->ping[1], buf, MSG, -1));
        if (!err)
            err = check_io(urt_read(p->pong[0], buf, MSG, -1));
        if (err)
            return err;
    }
    return 0;
}

static int ponger(void *arg)
{
    const struct pp *p = arg;
    char buf[MSG];
    for (uint64_t i = 0; i < p->n; i++) {
        int err = check_io(urt_read(p->ping[0], buf, MSG, -1));
        if (!err)
            err = check_io(urt_write(p->pong[1], buf, MSG, -1));
        if (err)
            return err;
    }
    return 0;
}

static int open_pipes(struct pp *p)
{
    if (pipe2(p->ping, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(p->pong, O_CLOEXEC) < 0) {
        int err = -errno;
        close(p->ping[0]);
        close(p->ping[1]);
        return err;
    }
    return 0;
}

static void close_pipes(struct pp *p)
{
    close(p->ping[0]);
    close(p->ping[1]);
    close(p->pong[0]);
    close(p->pong[1]);
}

static int urt_pingpong(uint64_t n, struct results *r)
{
    struct pp p = { .n = n };
    int err = open_pipes(&p);
    if (err)
        return err;
    struct urt_stats s0, s1;
    urt_stats(&s0);
    uint64_t t0 = bench_now();
    urt_task *a = urt_spawn(pinger, &p);
    urt_task *b = a ? urt_spawn(ponger, &p) : NULL;
    if (!a || !b) {
        err = -errno;
        if (a) {
            urt_cancel(a);
            urt_join(a);
        }
        close_pipes(&p);
        return err;
    }
    int ra = urt_join(a);
    int rb = urt_join(b);
    uint64_t t1 = bench_now();
    urt_stats(&s1);
    close_pipes(&p);
    if (ra || rb)
        return ra ? ra : rb;
    if (r) {
        r->pp_ops = 4 * n;
        r->pp_enters = s1.enter_calls - s0.enter_calls;
        r->pp_sqes = s1.sqes_submitted - s0.sqes_submitted;
        r->pp_elapsed_ns = t1 - t0;
    }
    return 0;
}

struct urt_job {
    struct params  p;
    struct results r;
    urt_task     **handles;
};

static int urt_main(void *arg)
{
    struct urt_job *j = arg;
    uint64_t enters, elapsed;
    /* Warm-up: the sleepers' stacks come from the pool afterwards, the pipes' code is hot. */
    int err = sleep_round(j->p.sleepers, URT_MSEC(1), j->handles, &enters, &elapsed);
    if (!err)
        err = sleep_round(j->p.sleepers, j->p.sleep_ns, j->handles, &j->r.sleep_enters,
                          &j->r.sleep_elapsed_ns);
    if (err) {
        fprintf(stderr, "batching: sleepers: %s\n", strerror(-err));
        return 1;
    }
    err = urt_pingpong(j->p.messages / 10 + 1, NULL);
    if (!err)
        err = urt_pingpong(j->p.messages, &j->r);
    if (err) {
        fprintf(stderr, "batching: ping-pong: %s\n", strerror(-err));
        return 1;
    }
    return 0;
}

/* ---- the thread baseline: blocking read/write, one system call per operation ---- */

static int full_io(ssize_t r)
{
    return r == MSG ? 0 : -1;
}

static void *thread_ponger(void *arg)
{
    const struct pp *p = arg;
    char buf[MSG];
    for (uint64_t i = 0; i < p->n; i++)
        if (full_io(read(p->ping[0], buf, MSG)) || full_io(write(p->pong[1], buf, MSG)))
            return (void *)1;
    return NULL;
}

/* Round trips between this thread and another; the time it took, or 0 on failure. */
static uint64_t threads_pingpong(uint64_t n)
{
    struct pp p = { .n = n };
    if (open_pipes(&p))
        return 0;
    char buf[MSG];
    memset(buf, 'p', sizeof buf);
    pthread_t tid;
    uint64_t t0 = bench_now();
    if (pthread_create(&tid, NULL, thread_ponger, &p)) {
        close_pipes(&p);
        return 0;
    }
    int bad = 0;
    for (uint64_t i = 0; i < n && !bad; i++)
        bad = full_io(write(p.ping[1], buf, MSG)) || full_io(read(p.pong[0], buf, MSG));
    void *ret;
    pthread_join(tid, &ret);
    uint64_t t1 = bench_now();
    close_pipes(&p);
    return bad || ret ? 0 : t1 - t0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "sleepers", required_argument, NULL, 's' },
        { "sleep-ms", required_argument, NULL, 'm' },
        { "messages", required_argument, NULL, 'n' },
        { "help",     no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct urt_job j = {
        .p = { .sleepers = 2000, .sleep_ns = URT_MSEC(10), .messages = 100000 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            j.p.sleepers = bench_parse_u64(argv[0], "--sleepers", optarg, 1, 10000000);
            break;
        case 'm':
            j.p.sleep_ns = URT_MSEC(bench_parse_u64(argv[0], "--sleep-ms", optarg, 1, 60000));
            break;
        case 'n':
            j.p.messages = bench_parse_u64(argv[0], "--messages", optarg, 1, 1ull << 32);
            break;
        case 'h': usage(stdout, argv[0]); return 0;
        default:  usage(stderr, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr, argv[0]);
        return 2;
    }

    bench_note_build();
    /* Baseline: warm-up, then the timed run. */
    uint64_t base_ns = threads_pingpong(j.p.messages / 10 + 1);
    if (base_ns)
        base_ns = threads_pingpong(j.p.messages);
    if (!base_ns) {
        fprintf(stderr, "batching: thread ping-pong failed: %s\n", strerror(errno));
        return 1;
    }

    j.handles = calloc(j.p.sleepers, sizeof *j.handles);
    if (!j.handles) {
        fprintf(stderr, "batching: out of memory\n");
        return 1;
    }
    int ret = urt_run(urt_main, &j, NULL);
    free(j.handles);
    if (ret) {
        if (ret < 0)
            fprintf(stderr, "batching: urt_run: %s\n", strerror(-ret));
        return 1;
    }

    const struct results *r = &j.r;
    double per100 = 100.0 * (double)r->sleep_enters / (double)j.p.sleepers;
    int pass = per100 <= TARGET_ENTERS_PER_100_SLEEPS;
    double enters_per_op = (double)r->pp_enters / (double)r->pp_ops;
    double batch = r->pp_enters ? (double)r->pp_sqes / (double)r->pp_enters : 0;
    double urt_rt_ns = (double)r->pp_elapsed_ns / (double)j.p.messages;
    double thr_rt_ns = (double)base_ns / (double)j.p.messages;

    printf("sleepers: %llu tasks x %.0f ms at once: %llu io_uring_enter calls, %.3f s elapsed\n",
           (unsigned long long)j.p.sleepers, (double)j.p.sleep_ns / 1e6,
           (unsigned long long)r->sleep_enters, (double)r->sleep_elapsed_ns / 1e9);
    printf("  enters per 100 sleeps:     %8.3f   (target <= %.0f: %s; a thread's nanosleep: "
           "100, ratio %.4f)\n",
           per100, TARGET_ENTERS_PER_100_SLEEPS, pass ? "met" : "MISSED", per100 / 100.0);
    printf("ping-pong: %llu round trips, %llu operations (urt_read/urt_write)\n",
           (unsigned long long)j.p.messages, (unsigned long long)r->pp_ops);
    printf("  urt: %llu enters, %llu SQEs submitted\n", (unsigned long long)r->pp_enters,
           (unsigned long long)r->pp_sqes);
    printf("  syscalls per operation:    %8.3f   (threads, blocking read/write: 1 by "
           "construction; ratio %.3f)\n", enters_per_op, enters_per_op);
    printf("  SQEs per enter (batch):    %8.3f\n", batch);
    printf("  round trip: urt %.0f ns, threads %.0f ns, ratio urt/threads %.3f\n", urt_rt_ns,
           thr_rt_ns, urt_rt_ns / thr_rt_ns);
    printf("{\"bench\":\"batching\",\"sleepers\":%llu,\"sleep_ms\":%.0f,\"sleep_enters\":%llu,"
           "\"enters_per_100_sleeps\":%.4f,\"target_enters_per_100_sleeps_max\":%.0f,"
           "\"target_met\":%s,\"messages\":%llu,\"pp_ops\":%llu,\"pp_enters\":%llu,"
           "\"pp_sqes\":%llu,\"syscalls_per_op\":%.4f,\"baseline_syscalls_per_op\":1,"
           "\"sqes_per_enter\":%.3f,\"urt_round_trip_ns\":%.1f,\"threads_round_trip_ns\":%.1f,"
           "\"round_trip_ratio\":%.3f}\n",
           (unsigned long long)j.p.sleepers, (double)j.p.sleep_ns / 1e6,
           (unsigned long long)r->sleep_enters, per100, TARGET_ENTERS_PER_100_SLEEPS,
           pass ? "true" : "false", (unsigned long long)j.p.messages,
           (unsigned long long)r->pp_ops, (unsigned long long)r->pp_enters,
           (unsigned long long)r->pp_sqes, enters_per_op, batch, urt_rt_ns, thr_rt_ns,
           urt_rt_ns / thr_rt_ns);
    return 0;
}
