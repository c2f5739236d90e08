/* SPDX-License-Identifier: MIT */
/*
 * switch - the cost of one task switch: two urt tasks yielding to each other.
 *
 * Each urt_yield by one of the two tasks hands the CPU to the other; each yield counts as one
 * switch. The baseline (perf/baselines/switch_bare.c), run in the same process, is urt's own
 * assembly switch between two bare contexts with no scheduler: the floor for any scheduler
 * built on it. Both are measured --reps times, interleaved, and the best of each is reported.
 *
 * Target: urt within 2.5x the bare switch.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urt.h"
#include "bench.h"
#include "baselines/switch_bare.h"

#define TARGET_RATIO 2.5

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--iters N] [--reps R] [--help]\n"
            "\n"
            "Two urt tasks yield to each other N times in all (one switch per yield); the\n"
            "baseline is urt's assembly context switch between two bare contexts, N times, in\n"
            "the same process, with both contexts in one loop so that the CPU predicts each\n"
            "return of the switch (the floor). Prints ns per switch for both, their ratio\n"
            "(target <= %.1f) and one JSON line; for information also the bare switch with\n"
            "one loop per context, where every return is mispredicted.\n"
            "\n"
            "  --iters N  switches per measurement (default 10000000)\n"
            "  --reps R   measurements of each, interleaved; the best counts (default 3)\n"
            "  --help     print this help and exit\n",
            prog, TARGET_RATIO);
}

struct job {
    uint64_t iters;      /* switches per measurement */
    uint64_t yields_each;
    double   ns;         /* result of one measurement */
    uint64_t switches;   /* urt_stats' count over the measurement */
    int      err;
};

static int yielder(void *arg)
{
    const struct job *j = arg;
    for (uint64_t i = 0; i < j->yields_each; i++) {
        int err = urt_yield();
        if (err)
            return err;
    }
    return 0;
}

/* Runs in a task: both yielders, timed from before their spawn until both are joined. */
static int measure(struct job *j)
{
    j->yields_each = j->iters / 2;
    struct urt_stats s0, s1;
    urt_stats(&s0);
    uint64_t t0 = bench_now();
    urt_task *a = urt_spawn(yielder, j);
    urt_task *b = a ? urt_spawn(yielder, j) : NULL;
    if (!a || !b) {
        int err = -errno;
        if (a)
            urt_join(a);
        return err;
    }
    int ra = urt_join(a);
    int rb = urt_join(b);
    uint64_t t1 = bench_now();
    urt_stats(&s1);
    if (ra || rb)
        return ra ? ra : rb;
    j->ns = (double)(t1 - t0) / (double)(j->yields_each * 2);
    j->switches = s1.switches - s0.switches;
    return 0;
}

static int urt_main(void *arg)
{
    return measure(arg);
}

/* One urt measurement in a fresh runtime: each measurement starts alike. */
static int urt_switch_ns(struct job *j)
{
    return urt_run(urt_main, j, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "iters", required_argument, NULL, 'i' },
        { "reps",  required_argument, NULL, 'r' },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t iters = 10000000, reps = 3;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i': iters = bench_parse_u64(argv[0], "--iters", optarg, 2, 1ull << 40); break;
        case 'r': reps = bench_parse_u64(argv[0], "--reps", optarg, 1, 100); break;
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
    iters &= ~1ull;   /* two tasks, the same number of yields each */

    /* Warm-up: fault in the stacks and code, let the CPU clock settle. */
    uint64_t warm = iters / 10 < 2 ? 2 : (iters / 10) & ~1ull;
    struct job wj = { .iters = warm };
    int ret = urt_switch_ns(&wj);
    if (ret) {
        fprintf(stderr, "switch: urt run failed: %s\n", strerror(ret < 0 ? -ret : ret));
        return 1;
    }
    if (switch_bare_ns(warm) < 0) {
        fprintf(stderr, "switch: no memory for the bare contexts' stacks\n");
        return 1;
    }

    double best_urt = 0, best_bare = 0, best_split = 0;
    uint64_t switches = 0;
    for (uint64_t r = 0; r < reps; r++) {
        double bare = switch_bare_ns(iters);
        double split = switch_bare_split_ns(iters);
        struct job j = { .iters = iters };
        ret = urt_switch_ns(&j);
        if (ret || bare < 0 || split < 0) {
            fprintf(stderr, "switch: measurement failed: %s\n",
                    ret ? strerror(ret < 0 ? -ret : ret) : "no memory");
            return 1;
        }
        printf("rep %llu: urt %.2f ns/switch, bare %.2f ns/switch, bare two-site %.2f "
               "ns/switch\n", (unsigned long long)r + 1, j.ns, bare, split);
        if (r == 0 || j.ns < best_urt) {
            best_urt = j.ns;
            switches = j.switches;
        }
        if (r == 0 || bare < best_bare)
            best_bare = bare;
        if (r == 0 || split < best_split)
            best_split = split;
    }

    double ratio = best_urt / best_bare;
    int pass = ratio <= TARGET_RATIO;
    printf("switches per measurement: %llu (urt_stats counted %llu)\n",
           (unsigned long long)iters, (unsigned long long)switches);
    printf("urt  task switch (urt_yield): %8.2f ns/switch\n", best_urt);
    printf("bare context switch:          %8.2f ns/switch\n", best_bare);
    printf("(info) bare, two call sites:  %8.2f ns/switch  (every ret mispredicted; not the "
           "baseline)\n", best_split);
    printf("ratio urt/bare:               %8.2f   (target <= %.1f: %s)\n", ratio, TARGET_RATIO,
           pass ? "met" : "MISSED");
    printf("{\"bench\":\"switch\",\"iters\":%llu,\"reps\":%llu,\"urt_ns_per_switch\":%.3f,"
           "\"bare_ns_per_switch\":%.3f,\"bare_two_site_ns_per_switch\":%.3f,\"ratio\":%.3f,"
           "\"target_ratio_max\":%.1f,\"target_met\":%s}\n",
           (unsigned long long)iters, (unsigned long long)reps, best_urt, best_bare, best_split,
           ratio, TARGET_RATIO, pass ? "true" : "false");
    return 0;
}
