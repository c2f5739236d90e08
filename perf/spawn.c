/* SPDX-License-Identifier: MIT */
/*
 * spawn - how many tasks per second urt can start and finish.
 *
 * A task spawns empty tasks in batches (--batch of them, then joins those, and again), so that
 * the stacks of one batch come back to the pool and serve the next: the steady state of a
 * server that starts a task per request. The baseline, run in the same process, does the same
 * with pthread_create and pthread_join (threads given urt's default 64 KiB stack), on fewer of
 * them, since threads are slower.
 *
 * Go's goroutines do the same job where build/perf/peers/gospawn exists (GOMAXPROCS=1, a
 * WaitGroup per batch: Go has no join), run by this program before its own run, for the ratio.
 *
 * Target: at least 20 million tasks per second.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "urt.h"
#include "bench.h"

#define TARGET_RATE 20e6
#define THREAD_STACK (64 * 1024)

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--tasks N] [--batch B] [--threads T] [--go PATH] [--help]\n"
            "\n"
            "Spawns and joins N empty urt tasks, B at a time (spawn B, join those B, repeat),\n"
            "and T threads the same way with pthread_create/pthread_join as the baseline, in\n"
            "the same process, and N goroutines B at a time with Go's peer where it is built.\n"
            "Prints tasks per second for each, the ratios (urt target: %.0f million tasks/s)\n"
            "and one JSON line.\n"
            "\n"
            "  --tasks N    urt tasks (default 1000000)\n"
            "  --batch B    tasks (and threads) alive at once (default 100)\n"
            "  --threads T  threads for the baseline (default 20000)\n"
            "  --go PATH    the Go peer (default peers/gospawn next to this program)\n"
            "  --help       print this help and exit\n",
            prog, TARGET_RATE / 1e6);
}

struct job {
    uint64_t   tasks, batch;
    urt_task **handles;
    double     rate;       /* tasks per second */
    uint64_t   spawned;    /* urt_stats: tasks started during the timed part */
    uint64_t   mapped;     /* urt_stats: stacks mapped at the end */
};

static int empty_task(void *arg)
{
    (void)arg;
    return 0;
}

/* Spawns and joins n tasks, batch at a time. 0 or a negative errno. */
static int spawn_join(struct job *j, uint64_t n)
{
    for (uint64_t done = 0; done < n;) {
        uint64_t k = n - done < j->batch ? n - done : j->batch;
        uint64_t i;
        for (i = 0; i < k; i++) {
            j->handles[i] = urt_spawn(empty_task, NULL);
            if (!j->handles[i])
                break;
        }
        int err = i < k ? -errno : 0;
        for (uint64_t m = 0; m < i; m++) {
            int st = urt_join(j->handles[m]);
            if (st && !err)
                err = st;
        }
        if (err)
            return err;
        done += k;
    }
    return 0;
}

static int urt_main(void *arg)
{
    struct job *j = arg;
    /* Warm-up: a tenth of the work (at least two batches) fills the stack pool. */
    uint64_t warm = j->tasks / 10 > 2 * j->batch ? j->tasks / 10 : 2 * j->batch;
    int err = spawn_join(j, warm);
    if (err)
        return err;

    struct urt_stats s0, s1;
    urt_stats(&s0);
    uint64_t t0 = bench_now();
    err = spawn_join(j, j->tasks);
    uint64_t t1 = bench_now();
    urt_stats(&s1);
    if (err)
        return err;
    j->rate = (double)j->tasks * 1e9 / (double)(t1 - t0);
    j->spawned = s1.tasks_spawned - s0.tasks_spawned;
    j->mapped = s1.stacks_mapped;
    return 0;
}

static void *empty_thread(void *arg)
{
    return arg;
}

/* The baseline: n threads, batch at a time. Threads per second, or a negative errno. */
static double threads_rate(uint64_t n, uint64_t batch, pthread_t *tids)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    uint64_t t0 = bench_now();
    for (uint64_t done = 0; done < n;) {
        uint64_t k = n - done < batch ? n - done : batch;
        uint64_t i;
        int err = 0;
        for (i = 0; i < k; i++) {
            err = pthread_create(&tids[i], &attr, empty_thread, NULL);
            if (err)
                break;
        }
        for (uint64_t m = 0; m < i; m++)
            pthread_join(tids[m], NULL);
        if (err) {
            pthread_attr_destroy(&attr);
            return -err;
        }
        done += k;
    }
    uint64_t t1 = bench_now();
    pthread_attr_destroy(&attr);
    return (double)n * 1e9 / (double)(t1 - t0);
}

/* Goroutines spawned and joined per second by the Go peer, GOMAXPROCS=1 (a channel closed by
   each, received by the spawner), and in *wg with one WaitGroup per batch; 0 without a peer. */
static double go_rate(const char *peer, uint64_t tasks, uint64_t batch, double *wg)
{
    *wg = 0;
    if (access(peer, X_OK) != 0)
        return 0;
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "GOMAXPROCS=1 '%s' -n %llu -batch %llu", peer,
             (unsigned long long)tasks, (unsigned long long)batch);
    FILE *f = popen(cmd, "r");
    if (!f)
        return 0;
    char line[512];
    double rate = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "\"peer\":\"go\"")) {
            rate = bench_json_num(line, "spawn_join_per_s");
            *wg = bench_json_num(line, "waitgroup_per_s");
        }
    pclose(f);
    return rate > 0 ? rate : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "tasks",   required_argument, NULL, 'n' },
        { "batch",   required_argument, NULL, 'b' },
        { "threads", required_argument, NULL, 't' },
        { "go",      required_argument, NULL, 'g' },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char peer[4096];
    bench_peer_path(peer, sizeof peer, argv[0], "gospawn");
    uint64_t tasks = 1000000, batch = 100, threads = 20000;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': tasks = bench_parse_u64(argv[0], "--tasks", optarg, 1, 1ull << 36); break;
        case 'b': batch = bench_parse_u64(argv[0], "--batch", optarg, 1, 100000); break;
        case 't': threads = bench_parse_u64(argv[0], "--threads", optarg, 1, 1ull << 30); break;
        case 'g': snprintf(peer, sizeof peer, "%s", optarg); break;
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
    void *mem = calloc(batch, sizeof(urt_task *) > sizeof(pthread_t) ? sizeof(urt_task *)
                                                                      : sizeof(pthread_t));
    if (!mem) {
        fprintf(stderr, "spawn: out of memory\n");
        return 1;
    }

    /* Baseline first: a warm-up batch, then the timed run. */
    double trate = threads_rate(batch, batch, mem);
    if (trate > 0)
        trate = threads_rate(threads, batch, mem);
    if (trate < 0) {
        fprintf(stderr, "spawn: pthread_create: %s\n", strerror((int)-trate));
        free(mem);
        return 1;
    }

    double gwg;
    double grate = go_rate(peer, tasks, batch, &gwg);
    struct job j = { .tasks = tasks, .batch = batch, .handles = mem };
    int ret = urt_run(urt_main, &j, NULL);
    free(mem);
    if (ret) {
        fprintf(stderr, "spawn: urt run failed: %s\n", strerror(ret < 0 ? -ret : ret));
        return 1;
    }

    double ratio = j.rate / trate;
    int pass = j.rate >= TARGET_RATE;
    printf("urt tasks spawned+joined: %llu, in batches of %llu (%llu stacks mapped at the end)\n",
           (unsigned long long)j.spawned, (unsigned long long)batch,
           (unsigned long long)j.mapped);
    printf("urt spawn+join:           %10.3f M tasks/s   (%.1f ns/task; target >= %.0f M/s: %s)\n",
           j.rate / 1e6, 1e9 / j.rate, TARGET_RATE / 1e6, pass ? "met" : "MISSED");
    printf("pthread create+join:      %10.3f M threads/s (%.1f ns/thread; %llu threads)\n",
           trate / 1e6, 1e9 / trate, (unsigned long long)threads);
    printf("ratio urt/pthread:        %10.1f x\n", ratio);
    if (grate > 0)
        printf("Go goroutines (GOMAXPROCS=1): %6.3f M/s joined by a channel each (ratio urt/Go: "
               "%.1f x), %.3f M/s by a WaitGroup per batch (%.1f x)\n",
               grate / 1e6, j.rate / grate, gwg / 1e6, gwg > 0 ? j.rate / gwg : 0.0);
    else
        printf("Go: no peer at %s (built where golang-go is installed)\n", peer);
    printf("{\"bench\":\"spawn\",\"tasks\":%llu,\"batch\":%llu,\"threads\":%llu,"
           "\"urt_tasks_per_s\":%.0f,\"pthread_per_s\":%.0f,\"ratio\":%.2f,"
           "\"go_per_s\":%.0f,\"ratio_go\":%.2f,"
           "\"target_tasks_per_s_min\":%.0f,\"target_met\":%s}\n",
           (unsigned long long)tasks, (unsigned long long)batch, (unsigned long long)threads,
           j.rate, trate, ratio, grate, grate > 0 ? j.rate / grate : 0.0, TARGET_RATE,
           pass ? "true" : "false");
    return 0;
}
