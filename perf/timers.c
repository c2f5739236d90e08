/* SPDX-License-Identifier: MIT */
/*
 * timers - how sleepers are woken: urt's userland timers (an in-order list and a heap under one
 * kernel wait) against one IORING_OP_TIMEOUT per sleeper (docs/architecture.md, "Timers").
 *
 * The same job twice in one process: N tasks each call urt_sleep(M ms), once with urt's timers and
 * once with urt_config.kernel_timers, where each sleep is an IORING_OP_TIMEOUT. Spawning costs the
 * same in both (its page faults dominate); the difference is the timers. Both report CPU time (user
 * + system) per sleeper, io_uring_enter calls, and how late the last sleeper woke; the ratio
 * compares CPU per sleeper.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "urt.h"
#include "bench.h"

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--sleepers N] [--sleep-ms M] [--help]\n"
            "\n"
            "N tasks sleeping M ms in urt_sleep, woken by urt's userland timers and, as the\n"
            "baseline in the same process, by one IORING_OP_TIMEOUT each (urt_config.kernel_timers).\n"
            "Prints CPU microseconds per sleeper, io_uring_enter calls and the lateness of the last\n"
            "wake-up for both, the ratio of CPU per sleeper, and one JSON line.\n"
            "\n"
            "  --sleepers N  (default 100000)\n"
            "  --sleep-ms M  (default 200)\n"
            "  --help        print this help and exit\n",
            prog);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

struct result {
    double   cpu_us_per, late_ms;
    uint64_t enters;
};

static uint64_t N, SLEEP_NS, last_wake;

static int sleeper(void *arg)
{
    (void)arg;
    urt_sleep(SLEEP_NS);
    last_wake = urt_now();
    return 0;
}

static int urt_main(void *arg)
{
    struct result *r = arg;
    urt_group *g = urt_group_new();
    if (!g)
        return -ENOMEM;
    double c0 = cpu_s();
    uint64_t t0 = urt_now();
    for (uint64_t i = 0; i < N; i++)
        if (urt_group_spawn(g, sleeper, NULL) != 0)
            return -ENOMEM;
    int st = urt_group_wait(g);
    r->cpu_us_per = (cpu_s() - c0) * 1e6 / (double)N;
    r->late_ms = ((double)last_wake - (double)(t0 + SLEEP_NS)) / 1e6;
    struct urt_stats s;
    urt_stats(&s);
    r->enters = s.enter_calls;
    urt_group_free(g);
    return st;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "sleepers", required_argument, NULL, 'n' },
        { "sleep-ms", required_argument, NULL, 'm' },
        { "help",     no_argument,       NULL, 'h' },
        { 0 },
    };
    uint64_t n = 100000, ms = 200;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': n = bench_parse_u64(argv[0], "--sleepers", optarg, 1, 10000000); break;
        case 'm': ms = bench_parse_u64(argv[0], "--sleep-ms", optarg, 1, 60000); break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr, argv[0]);
        return 2;
    }
    bench_note_build();
    N = n;
    SLEEP_NS = URT_MSEC(ms);
    struct result u = {0}, k = {0};
    /* Kernel timeouts first: the run that goes second finds pages the first gave back already
       backed (this is a VM), so the order favours the baseline if anything. */
    struct urt_config kc = { .kernel_timers = 1 };
    int err = urt_run(urt_main, &k, &kc);
    if (!err)
        err = urt_run(urt_main, &u, NULL);
    if (err) {
        fprintf(stderr, "timers: %s\n", strerror(-err));
        return 1;
    }
    printf("urt timers (tasks in urt_sleep):   %.3f us CPU per sleeper, %llu io_uring_enter, "
           "last woke %.1f ms after the first spawn + M\n", u.cpu_us_per, (unsigned long long)u.enters, u.late_ms);
    printf("one IORING_OP_TIMEOUT per sleeper: %.3f us CPU per sleeper, %llu io_uring_enter, "
           "last woke %.1f ms after the first spawn + M\n", k.cpu_us_per,
           (unsigned long long)k.enters, k.late_ms);
    printf("ratio of CPU per sleeper urt/kernel timeouts: %.3f\n", u.cpu_us_per / k.cpu_us_per);
    printf("{\"bench\":\"timers\",\"sleepers\":%llu,\"sleep_ms\":%llu,\"urt_cpu_us\":%.3f,"
           "\"urt_enters\":%llu,\"urt_late_ms\":%.2f,\"kernel_cpu_us\":%.3f,\"kernel_enters\":%llu,"
           "\"kernel_late_ms\":%.2f,\"ratio\":%.3f}\n",
           (unsigned long long)n, (unsigned long long)ms, u.cpu_us_per,
           (unsigned long long)u.enters, u.late_ms, k.cpu_us_per, (unsigned long long)k.enters,
           k.late_ms, u.cpu_us_per / k.cpu_us_per);
    return 0;
}
