/* SPDX-License-Identifier: MIT */
/*
 * stress - a mass of sleeping tasks: N tasks, all alive at once, sleeping until one common
 * instant M ms after the last was spawned (Go's peer with -alive does the same: a barrier, then
 * one wake-up time).
 *
 * Its time is split in phases, each with its minor page faults per task: spawn (urt_spawn N
 * times), start (every task runs up to its sleep), sleep, wake-up (from the common instant until
 * the last task has run: the run queue's delay after N simultaneous wake-ups) and teardown (the
 * tasks' ends, the group's wait and free, the runtime's end).
 *
 * What it counts is what the noise of this machine cannot move: resident bytes and minor page
 * faults per live task, memory mappings before, at the peak and after, io_uring_enter calls, how
 * late each sleeper woke. Wall time is ruled by first touches of fresh pages (1.3 to 6.8 us each
 * here), so compare times only within one run: the same job is run with threads (a smaller N) as
 * the baseline, and --peer runs another program's version of the job (perf/peers/) in the same
 * run and prints the ratio of wall times.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "urt.h"
#include "bench.h"

#define LATE_BUCKET_NS 10000ull   /* lateness histogram: 10 us buckets up to 1 s */
#define LATE_BUCKETS   100000

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--tasks N] [--sleep-ms M] [--stack-size B] [--threads T] [--peer CMD]\n"
            "          [--pool-max P] [--no-progress] [--help]\n"
            "\n"
            "Spawns N urt tasks, all alive at once, that sleep until one instant M ms after the\n"
            "last spawn; prints the time and page faults of each phase (spawn, start, sleep,\n"
            "wake-up, teardown) and one JSON line: tasks, spawn and wall seconds, peak RSS, bytes and minor\n"
            "page faults per task, memory mappings before / at the peak / after, io_uring_enter\n"
            "calls, wake-up lateness. Then the same job with T threads as the baseline; with\n"
            "--peer, CMD (run by sh, given N and M as $TASKS and $SLEEP_MS) does the same job in\n"
            "another runtime, and the ratio of wall times is printed.\n"
            "\n"
            "  --tasks N        tasks (default 100000)\n"
            "  --sleep-ms M     how long each sleeps (default 1000)\n"
            "  --stack-size B   stack size per task in bytes (default: urt's 64 KiB; under\n"
            "                   4096: compact stacks, several per page, canary-checked)\n"
            "  --threads T      threads for the baseline (default 10000; 0: none)\n"
            "  --pool-max P     urt_config.stack_pool_max (default: urt's)\n"
            "  --peer CMD       e.g. 'build/perf/peers/gosleep -n $TASKS -ms $SLEEP_MS'\n"
            "  --no-progress    no progress line, even on a terminal\n"
            "  --help           print this help and exit\n",
            prog);
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The process's peak resident set so far (getrusage's high-water mark), in KiB. */
static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

struct job {
    uint64_t  tasks, sleep_ns;
    size_t    stack_size;
    bool      progress;
    uint32_t *late;            /* histogram */
    uint64_t  spawned, started, woke;
    uint64_t  wake_at;         /* the common instant, set once every task is spawned */
    /* phase boundaries: urt_now() and minor faults */
    uint64_t  t_spawn0, t_spawn1, t_started, t_woke, t_done;
    long      f_spawn0, f_spawn1, f_started, f_woke, f_done;
    /* results */
    double    spawn_s, wall_s;
    long      rss_before, rss_peak, flt_before, flt_peak, maps_before, maps_peak;
    uint64_t  enters, timer_late_us;
    int       err;
};

static struct job J;

static int sleeper(void *arg)
{
    (void)arg;
    if (++J.started == J.tasks) {
        J.t_started = urt_now();
        J.f_started = minflt();
    }
    uint64_t deadline = J.wake_at;
    int err = urt_sleep_until(deadline);
    uint64_t late = urt_now() - deadline;
    uint64_t b = late / LATE_BUCKET_NS;
    J.late[b < LATE_BUCKETS ? b : LATE_BUCKETS - 1]++;
    if (++J.woke == J.tasks) {
        J.t_woke = urt_now();
        J.f_woke = minflt();
    }
    return err;
}

static int progress(void *arg)
{
    uint64_t t0 = urt_now();
    while (urt_sleep(URT_MSEC(200)) == 0)
        fprintf(stderr, "\r  %.1f s: %llu spawned, %llu woke  ", (urt_now() - t0) / 1e9,
                (unsigned long long)J.spawned, (unsigned long long)J.woke);
    fprintf(stderr, "\r%60s\r", "");
    return 0;
}

static int stress_main(void *arg)
{
    urt_task *prog = NULL;
    if (J.progress) {
        struct urt_spawn_opts po = { .name = "progress" };
        prog = urt_spawn_ex(progress, NULL, &po);
    }
    urt_group *g = urt_group_new();
    if (!g)
        return -ENOMEM;
    struct urt_spawn_opts o = { .stack_size = J.stack_size, .name = "sleeper" };
    J.f_spawn0 = minflt();
    uint64_t t0 = J.t_spawn0 = urt_now();
    for (uint64_t i = 0; i < J.tasks; i++) {
        int err = urt_group_spawn_ex(g, sleeper, NULL, &o);
        if (err) {
            fprintf(stderr, "stress: spawn %llu failed: %s\n", (unsigned long long)i, strerror(-err));
            J.err = err;
            break;
        }
        J.spawned++;
    }
    uint64_t t1 = J.t_spawn1 = urt_now();
    J.f_spawn1 = minflt();
    J.spawn_s = (t1 - t0) / 1e9;
    J.wake_at = t1 + J.sleep_ns;   /* the tasks run once this one waits: all see it */
    /* The peak: every task spawned, none run yet (they run when this task waits). */
    J.maps_peak = count_maps();
    int status = urt_group_wait(g);
    J.wall_s = (urt_now() - t0) / 1e9;   /* spawn to the last task's end */
    /* Finished tasks hand their pages back beyond the pool's mark: the high-water mark is it. */
    J.rss_peak = maxrss_kib();
    J.flt_peak = minflt();
    urt_group_free(g);
    if (prog) {
        urt_cancel(prog);
        urt_join(prog);
    }
    struct urt_stats st;
    urt_stats(&st);
    J.enters = st.enter_calls;
    J.timer_late_us = st.timer_late_max_ns / 1000;
    if (!J.t_woke) {   /* (a failed spawn: the phases end where the tasks did) */
        J.t_started = J.t_woke = J.t_spawn1;
        J.f_started = J.f_woke = J.f_spawn1;
    }
    return J.err ? J.err : status;
}

/* ---- the baseline: the same job with threads ---- */

static void *thread_sleeper(void *arg)
{
    uint64_t ns = *(uint64_t *)arg;
    struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return NULL;
}

struct thread_result {
    uint64_t n;
    double   wall_s, spawn_s;
    long     bytes_per;
};

static int run_threads(uint64_t n, uint64_t sleep_ns, struct thread_result *r)
{
    pthread_t *t = calloc(n, sizeof *t);
    if (!t)
        return -ENOMEM;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);   /* as small as urt's default stack */
    long rss0 = rss_kib();
    uint64_t t0 = bench_now(), made = 0;
    for (; made < n; made++)
        if (pthread_create(&t[made], &attr, thread_sleeper, &sleep_ns) != 0)
            break;
    r->spawn_s = (bench_now() - t0) / 1e9;
    long rss1 = rss_kib();
    for (uint64_t i = 0; i < made; i++)
        pthread_join(t[i], NULL);
    r->wall_s = (bench_now() - t0) / 1e9;
    r->n = made;
    r->bytes_per = made ? (rss1 - rss0) * 1024 / (long)made : 0;
    pthread_attr_destroy(&attr);
    free(t);
    return 0;
}

/* ---- --peer: another runtime's program for the same job ---- */

static int run_peer(const char *cmd, uint64_t tasks, uint64_t ms, double *wall_s, long *maxrss)
{
    char nbuf[32], mbuf[32];
    snprintf(nbuf, sizeof nbuf, "%llu", (unsigned long long)tasks);
    snprintf(mbuf, sizeof mbuf, "%llu", (unsigned long long)ms);
    uint64_t t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        setenv("TASKS", nbuf, 1);
        setenv("SLEEP_MS", mbuf, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        return -errno;
    *wall_s = (bench_now() - t0) / 1e9;
    *maxrss = ru.ru_maxrss;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

static uint64_t percentile_us(const uint32_t *h, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (uint64_t b = 0; b < LATE_BUCKETS; b++) {
        seen += h[b];
        if (seen > want || (seen == total && h[b]))
            return (b + 1) * LATE_BUCKET_NS / 1000;
    }
    return LATE_BUCKETS * LATE_BUCKET_NS / 1000;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "tasks",       required_argument, NULL, 'n' },
        { "sleep-ms",    required_argument, NULL, 'm' },
        { "stack-size",  required_argument, NULL, 's' },
        { "threads",     required_argument, NULL, 't' },
        { "peer",        required_argument, NULL, 'p' },
        { "pool-max",    required_argument, NULL, 'P' },
        { "no-progress", no_argument,       NULL, 'q' },
        { "help",        no_argument,       NULL, 'h' },
        { 0 },
    };
    uint64_t tasks = 100000, ms = 1000, threads = 10000, stack = 0, pool_max = 0;
    const char *peer = NULL;
    bool quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': tasks = bench_parse_u64(argv[0], "--tasks", optarg, 1, 100000000); break;
        case 'm': ms = bench_parse_u64(argv[0], "--sleep-ms", optarg, 0, 3600000); break;
        case 's': stack = bench_parse_u64(argv[0], "--stack-size", optarg, 1, 1 << 30); break;
        case 't': threads = bench_parse_u64(argv[0], "--threads", optarg, 0, 100000); break;
        case 'p': peer = optarg; break;
        case 'P': pool_max = bench_parse_u64(argv[0], "--pool-max", optarg, 1, 100000000); break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr, argv[0]);
        return 2;
    }
    bench_note_build();

    J.tasks = tasks;
    J.sleep_ns = URT_MSEC(ms);
    J.stack_size = stack;
    J.progress = !quiet && isatty(STDERR_FILENO);
    J.late = calloc(LATE_BUCKETS, sizeof *J.late);
    if (!J.late)
        return 1;
    memset(J.late, 0, LATE_BUCKETS * sizeof *J.late);   /* touched now, not counted per task */

    double peer_wall = 0;
    long peer_rss = 0;
    if (peer && run_peer(peer, tasks, ms, &peer_wall, &peer_rss) != 0) {
        fprintf(stderr, "stress: the peer command failed\n");
        return 1;
    }

    /* Measured from here: the runtime's own ring and the first stacks count against the tasks. */
    J.maps_before = count_maps();
    J.rss_before = maxrss_kib();
    J.flt_before = minflt();
    struct urt_config cfg = { .stack_size = stack >= 4096 ? stack : 0,
                              .stack_pool_max = (unsigned)pool_max };
    int ret = urt_run(stress_main, NULL, &cfg);
    J.t_done = urt_now();
    J.f_done = minflt();
    long maps_after = count_maps();
    if (ret < 0) {
        fprintf(stderr, "stress: %s\n", strerror(-ret));
        return 1;
    }
    double bytes_per = (double)(J.rss_peak - J.rss_before) * 1024.0 / (double)tasks;
    double flt_per = (double)(J.flt_peak - J.flt_before) / (double)tasks;
    uint64_t p50 = percentile_us(J.late, J.woke, 0.50), p99 = percentile_us(J.late, J.woke, 0.99),
             pmax = percentile_us(J.late, J.woke, 1.0);

    printf("urt:     %llu tasks sleeping %llu ms: spawned in %.3f s, all done in %.3f s\n",
           (unsigned long long)tasks, (unsigned long long)ms, J.spawn_s, J.wall_s);
    printf("         %.0f bytes and %.3f minor faults per task; mappings %ld -> %ld -> %ld; "
           "%llu io_uring_enter calls\n", bytes_per, flt_per, J.maps_before, J.maps_peak,
           maps_after, (unsigned long long)J.enters);
    double n = (double)tasks;
    struct { const char *name; uint64_t t0, t1; long f0, f1; } ph[] = {
        { "spawn",    J.t_spawn0,  J.t_spawn1,  J.f_spawn0,  J.f_spawn1 },
        { "start",    J.t_spawn1,  J.t_started, J.f_spawn1,  J.f_started },
        { "sleep",    J.t_started, J.wake_at,   J.f_started, J.f_started },
        { "wake-up",  J.wake_at,   J.t_woke,    J.f_started, J.f_woke },
        { "teardown", J.t_woke,    J.t_done,    J.f_woke,    J.f_done },
    };
    for (size_t i = 0; i < sizeof ph / sizeof ph[0]; i++) {
        double sec = ph[i].t1 > ph[i].t0 ? (double)(ph[i].t1 - ph[i].t0) / 1e9 : 0.0;
        printf("         %-9s %8.3f s  %7.3f us and %.3f minor faults per task\n", ph[i].name,
               sec, sec * 1e6 / n, (double)(ph[i].f1 - ph[i].f0) / n);
    }
    printf("         timers fired at most %llu us late; tasks ran after their wake-up time by\n"
           "         p50 %llu us, p99 %llu us, max %llu us (10 us buckets: the run queue's delay)\n",
           (unsigned long long)J.timer_late_us, (unsigned long long)p50, (unsigned long long)p99,
           (unsigned long long)pmax);

    struct thread_result tr = {0};
    if (threads) {
        run_threads(threads, URT_MSEC(ms), &tr);
        printf("threads: %llu threads sleeping %llu ms: spawned in %.3f s, all done in %.3f s, "
               "%ld bytes per thread\n", (unsigned long long)tr.n, (unsigned long long)ms,
               tr.spawn_s, tr.wall_s, tr.bytes_per);
        printf("ratio:   spawn time per task urt/threads %.3f, bytes per task urt/threads %.3f\n",
               (J.spawn_s / tasks) / (tr.spawn_s / (double)tr.n),
               tr.bytes_per ? bytes_per / (double)tr.bytes_per : 0.0);
    }
    if (peer) {
        fflush(stdout);
        double after = 0;
        long rss_after = 0;
        int err = run_peer(peer, tasks, ms, &after, &rss_after);
        if (err) {
            fprintf(stderr, "stress: the peer command failed\n");
            peer_wall = 0;
        } else {
            /* Whoever runs second finds pages the first gave back already backed by the host
               (this machine is a VM): the peer runs both before and after us, and the ratio is
               taken to the mean of its two runs. */
            printf("peer:    '%s': %.3f s wall before urt, %.3f s after; %ld KiB peak RSS "
                   "(%.0f bytes per task)\n", peer, peer_wall, after, peer_rss,
                   peer_rss * 1024.0 / (double)tasks);
            peer_wall = (peer_wall + after) / 2;
            printf("ratio:   wall time urt/peer %.3f\n", J.wall_s / peer_wall);
        }
    }
    printf("{\"bench\":\"stress\",\"tasks\":%llu,\"sleep_ms\":%llu,\"stack_size\":%llu,"
           "\"spawn_s\":%.3f,\"spawn_faults_per_task\":%.3f,\"start_s\":%.3f,"
           "\"start_faults_per_task\":%.3f,\"wakeup_s\":%.3f,\"wakeup_faults_per_task\":%.3f,"
           "\"teardown_s\":%.3f,\"teardown_faults_per_task\":%.3f,\"wall_s\":%.3f,\"peak_rss_kib\":%ld,\"bytes_per_task\":%.0f,"
           "\"minflt_per_task\":%.3f,\"maps_before\":%ld,\"maps_peak\":%ld,\"maps_after\":%ld,"
           "\"enter_calls\":%llu,\"timer_late_max_us\":%llu,\"late_p50_us\":%llu,\"late_p99_us\":%llu,\"late_max_us\":%llu,"
           "\"threads\":%llu,\"threads_wall_s\":%.3f,\"threads_bytes_per\":%ld,"
           "\"peer_wall_s\":%.3f,\"ratio_wall_peer\":%.3f,\"status\":%d}\n",
           (unsigned long long)tasks, (unsigned long long)ms, (unsigned long long)stack, J.spawn_s,
           (double)(J.f_spawn1 - J.f_spawn0) / n, (double)(J.t_started - J.t_spawn1) / 1e9,
           (double)(J.f_started - J.f_spawn1) / n,
           J.t_woke > J.wake_at ? (double)(J.t_woke - J.wake_at) / 1e9 : 0.0,
           (double)(J.f_woke - J.f_started) / n, (double)(J.t_done - J.t_woke) / 1e9,
           (double)(J.f_done - J.f_woke) / n, J.wall_s, J.rss_peak, bytes_per, flt_per, J.maps_before, J.maps_peak, maps_after,
           (unsigned long long)J.enters, (unsigned long long)J.timer_late_us, (unsigned long long)p50, (unsigned long long)p99,
           (unsigned long long)pmax, (unsigned long long)tr.n, tr.wall_s, tr.bytes_per,
           peer_wall, peer_wall > 0 ? J.wall_s / peer_wall : 0.0, ret);
    free(J.late);
    return ret == 0 ? 0 : 1;
}
