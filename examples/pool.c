/* SPDX-License-Identifier: MIT */
/*
 * pool - a bounded worker pool: N jobs, at most K of them running at once, enforced with a
 * semaphore (urt_sem), as with asyncio.Semaphore or trio.CapacityLimiter.
 *
 * The Python it mirrors:
 *
 *     limit = asyncio.Semaphore(K)
 *     async def job(i):
 *         async with limit:
 *             await asyncio.sleep(ms / 1000)
 *     await asyncio.gather(*(job(i) for i in range(N)))
 *
 * Every job is a task of one group from the start; each takes a unit of the semaphore before its
 * work and gives it back after, so the other jobs wait in the semaphore's queue. The program
 * counts the jobs running at each moment and prints the most it saw, which must be K (N when
 * there are fewer jobs than that), the order in which the jobs started (the semaphore's queue is
 * FIFO: the order they asked), and the total time: about ceil(N / K) rounds of one job's time.
 *
 * Only the times change from run to run. It exits 0 when the most running at once was the limit
 * and every job succeeded.
 *
 *     build/examples/pool                              # 20 jobs of 20 ms, 4 at a time
 *     build/examples/pool --jobs 100 --limit 10 --ms 5
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urt.h"

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--jobs N] [--limit K] [--ms M] [--help]\n"
            "\n"
            "A bounded worker pool with urt: N jobs spawned at once into a group, at most K of\n"
            "them running at a time (a urt_sem of K units). Prints the most jobs seen running\n"
            "at once (K), the order they started in, and the total time.\n"
            "\n"
            "  --jobs N    how many jobs (default 20, at most 10000)\n"
            "  --limit K   how many may run at once (default 4, at least 1)\n"
            "  --ms M      how long each job works, in milliseconds (default 20, at most 10000)\n"
            "  --help      print this help and exit\n",
            prog);
}

struct pool {
    urt_sem *limit;
    unsigned jobs, max_running, ms;
    unsigned running, most;    /* jobs between acquire and release now; the most at once      */
    unsigned started;          /* jobs started so far                                          */
    unsigned *order;           /* order[k]: the k-th job to start                              */
};

struct job {
    struct pool *pool;
    unsigned     id;
    int          status;
};

static int job(void *arg)
{
    struct job *j = arg;
    struct pool *p = j->pool;

    int err = urt_sem_acquire(p->limit);   /* waits while K jobs run */
    if (err)
        return err;
    p->order[p->started++] = j->id;
    if (++p->running > p->most)
        p->most = p->running;

    err = urt_sleep(URT_MSEC(p->ms));     /* the work: any blocking call would do */

    p->running--;
    urt_sem_release(p->limit);
    return err;
}

static int main_task(void *arg)
{
    struct pool *p = arg;
    uint64_t start = urt_now();

    struct job *jobs = calloc(p->jobs, sizeof *jobs);
    p->order = calloc(p->jobs, sizeof *p->order);
    p->limit = urt_sem_new(p->max_running);
    urt_group *g = urt_group_new();
    if (!jobs || !p->order || !p->limit || !g) {
        fprintf(stderr, "pool: out of memory\n");
        urt_group_free(g);
        urt_sem_free(p->limit);
        free(p->order);
        free(jobs);
        return 1;
    }

    int bad = 0;
    for (unsigned i = 0; i < p->jobs; i++) {
        jobs[i] = (struct job){ .pool = p, .id = i };
        int err = urt_group_spawn_status(g, job, &jobs[i], NULL, &jobs[i].status);
        if (err) {
            fprintf(stderr, "pool: urt_group_spawn_status: %s\n", strerror(-err));
            jobs[i].status = err;
            bad = 1;
        }
    }
    int err = urt_group_wait(g);
    urt_group_free(g);
    uint64_t took_ns = urt_now() - start;
    if (err) {
        fprintf(stderr, "pool: a job failed: %s\n", strerror(-err));
        bad = 1;
    }

    unsigned ok = 0;
    for (unsigned i = 0; i < p->jobs; i++)
        ok += jobs[i].status == 0;
    unsigned want = p->jobs < p->max_running ? p->jobs : p->max_running;
    unsigned rounds = (p->jobs + p->max_running - 1) / p->max_running;

    printf("pool: %u jobs of %u ms, at most %u at once (urt_sem)\n", p->jobs, p->ms,
           p->max_running);
    printf("jobs done: %u of %u\n", ok, p->jobs);
    printf("started in order:");
    unsigned shown = p->started < 32 ? p->started : 32;
    for (unsigned k = 0; k < shown; k++)
        printf(" %u", p->order[k]);
    printf("%s\n", p->started > shown ? " ..." : "");
    printf("max concurrency observed: %u (limit %u)\n", p->most, p->max_running);
    printf("total time: %.1f ms (%u round%s of %u ms = %u ms; unbounded %u ms, one at a time "
           "%u ms)\n", (double)took_ns / 1e6, rounds, rounds == 1 ? "" : "s", p->ms,
           rounds * p->ms, p->ms, p->jobs * p->ms);

    if (ok != p->jobs || p->most != want) {
        fprintf(stderr, "pool: expected %u jobs done and at most %u at once\n", p->jobs, want);
        bad = 1;
    }
    /* Every unit came back, and nobody waits: the semaphore can be freed. */
    if (urt_sem_value(p->limit) != (int)p->max_running || urt_sem_free(p->limit) != 0) {
        fprintf(stderr, "pool: the semaphore did not get all its units back\n");
        bad = 1;
    }
    free(p->order);
    free(jobs);
    return bad;
}

/* A number from min to max, or -1 with a message. */
static long parse(const char *prog, const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "%s: --%s wants a number from %ld to %ld\n", prog, opt, min, max);
        return -1;
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "jobs",  required_argument, NULL, 'j' },
        { "limit", required_argument, NULL, 'k' },
        { "ms",    required_argument, NULL, 'm' },
        { "help",  no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct pool p = { .jobs = 20, .max_running = 4, .ms = 20 };
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            if ((v = parse(argv[0], "jobs", optarg, 1, 10000)) < 0)
                return 2;
            p.jobs = (unsigned)v;
            break;
        case 'k':
            if ((v = parse(argv[0], "limit", optarg, 1, 10000)) < 0)
                return 2;
            p.max_running = (unsigned)v;
            break;
        case 'm':
            if ((v = parse(argv[0], "ms", optarg, 0, 10000)) < 0)
                return 2;
            p.ms = (unsigned)v;
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr, argv[0]);
        return 2;
    }

    setvbuf(stdout, NULL, _IOLBF, 0);

    int ret = urt_run(main_task, &p, NULL);
    if (ret < 0) {
        fprintf(stderr, "pool: urt_run: %s\n", strerror(-ret));
        return 1;
    }
    return ret;
}
