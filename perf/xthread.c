/* SPDX-License-Identifier: MIT */
/*
 * xthread - what crossing between runtimes costs (urt_run_threads), beside its baselines in the
 * same run:
 *   1. ping-pong: a task on runtime 0 and one on runtime 1 over two shared rendezvous channels,
 *      ns per round trip; baselines: two pthreads over a mutex and condition variables, two
 *      pthreads over eventfds, and Go (two goroutines over unbuffered channels, GOMAXPROCS=2)
 *      where build/perf/peers/goxthread exists;
 *   2. urt_spawn_on from runtime 0 to runtime 1: spawns per second;
 *   3. two producers and two consumers (one of each per runtime) on one shared channel,
 *      messages per second; baseline: the same with two pthread producers and two consumers on
 *      a mutex/condvar queue of the same capacity;
 *   4. for reference, the same ping-pong between two tasks of one runtime over local channels.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "urt.h"
#include "bench.h"

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--trips N] [--spawns N] [--messages N] [--cap C] [--go PATH] [--help]\n"
            "\n"
            "Cross-runtime costs of urt_run_threads(2), each beside its baselines in the same\n"
            "run: (1) ping-pong round trips over shared rendezvous channels against two\n"
            "pthreads over a mutex/condvar, two over eventfds, and Go's goroutines over\n"
            "unbuffered channels (GOMAXPROCS=2) where the peer is built; (2) urt_spawn_on rate;\n"
            "(3) 2 producers / 2 consumers on one shared channel against pthreads on a\n"
            "mutex/condvar queue; (4) the same ping-pong inside one runtime, for reference.\n"
            "Prints each figure, the ratios and one JSON line.\n"
            "\n"
            "  --trips N     round trips of each ping-pong (default 200000)\n"
            "  --spawns N    urt_spawn_on calls (default 1000000)\n"
            "  --messages N  messages of the producer/consumer test (default 2000000)\n"
            "  --cap C       capacity of its channel and queue (default 64)\n"
            "  --go PATH     the Go peer (default build/perf/peers/goxthread next to this)\n"
            "  --help        print this help and exit\n",
            prog);
}

static uint64_t trips = 200000, spawns = 1000000, messages = 2000000, cap = 64;

/* ---- 1. urt ping-pong across runtimes ---- */

struct pp {
    urt_chan *ping, *pong;
    uint64_t  t0, t1;
    int       err;
};

/* The measured loop: trips round trips over p->ping and p->pong, timed into p. */
static void pingpong(struct pp *p)
{
    int v = 0;
    p->t0 = bench_now();
    for (uint64_t i = 0; i < trips; i++)
        if (urt_chan_send(p->ping, &v) != 0 || urt_chan_recv(p->pong, &v) != 0) {
            p->err = 1;
            break;
        }
    p->t1 = bench_now();
    urt_chan_close(p->ping);
}

static int pp_main(void *arg)
{
    struct pp *p = arg;
    int v = 0;
    if (urt_thread_index() == 1) {
        while (urt_chan_recv(p->ping, &v) == 0)
            if (urt_chan_send(p->pong, &v) != 0)
                break;
        return 0;
    }
    urt_chan_send(p->ping, &v);   /* warm-up: both sides waiting once */
    urt_chan_recv(p->pong, &v);
    pingpong(p);
    return 0;
}

static double urt_pingpong(void)
{
    struct pp p = { urt_chan_new_shared(sizeof(int), 0), urt_chan_new_shared(sizeof(int), 0), 0, 0, 0 };
    int rc = urt_run_threads(2, pp_main, &p, NULL);
    urt_chan_free(p.ping);
    urt_chan_free(p.pong);
    if (rc || p.err)
        return -1;
    return (double)(p.t1 - p.t0) / (double)trips;
}

/* ---- 4. the same inside one runtime ---- */

static int local_partner(void *arg)
{
    struct pp *p = arg;
    int v;
    while (urt_chan_recv(p->ping, &v) == 0)
        if (urt_chan_send(p->pong, &v) != 0)
            break;
    return 0;
}

static int local_main(void *arg)
{
    struct pp *p = arg;
    p->ping = urt_chan_new(sizeof(int), 0);
    p->pong = urt_chan_new(sizeof(int), 0);
    urt_task *t = urt_spawn(local_partner, p);
    pingpong(p);
    urt_join(t);
    urt_chan_free(p->ping);
    urt_chan_free(p->pong);
    return 0;
}

static double local_pingpong(void)
{
    struct pp p;
    memset(&p, 0, sizeof p);
    if (urt_run(local_main, &p, NULL) || p.err)
        return -1;
    return (double)(p.t1 - p.t0) / (double)trips;
}

/* ---- 1. baselines: pthreads ---- */

struct cv_pp {
    pthread_mutex_t m;
    pthread_cond_t  c;
    int             turn;   /* 0: the first thread's, 1: the second's */
};

static void *cv_partner(void *arg)
{
    struct cv_pp *s = arg;
    for (uint64_t i = 0; i < trips; i++) {
        pthread_mutex_lock(&s->m);
        while (s->turn != 1)
            pthread_cond_wait(&s->c, &s->m);
        s->turn = 0;
        pthread_cond_signal(&s->c);
        pthread_mutex_unlock(&s->m);
    }
    return NULL;
}

static double cv_pingpong(void)
{
    struct cv_pp s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    pthread_t th;
    pthread_create(&th, NULL, cv_partner, &s);
    uint64_t t0 = bench_now();
    for (uint64_t i = 0; i < trips; i++) {
        pthread_mutex_lock(&s.m);
        s.turn = 1;
        pthread_cond_signal(&s.c);
        while (s.turn != 0)
            pthread_cond_wait(&s.c, &s.m);
        pthread_mutex_unlock(&s.m);
    }
    uint64_t t1 = bench_now();
    pthread_join(th, NULL);
    return (double)(t1 - t0) / (double)trips;
}

struct efd_pp {
    int a, b;
};

static void *efd_partner(void *arg)
{
    struct efd_pp *s = arg;
    uint64_t v;
    for (uint64_t i = 0; i < trips; i++) {
        if (read(s->a, &v, sizeof v) != sizeof v || write(s->b, &v, sizeof v) != sizeof v)
            break;
    }
    return NULL;
}

static double efd_pingpong(void)
{
    struct efd_pp s = { eventfd(0, 0), eventfd(0, 0) };
    pthread_t th;
    pthread_create(&th, NULL, efd_partner, &s);
    uint64_t v = 1, t0 = bench_now();
    for (uint64_t i = 0; i < trips; i++) {
        if (write(s.a, &v, sizeof v) != sizeof v || read(s.b, &v, sizeof v) != sizeof v)
            break;
    }
    uint64_t t1 = bench_now();
    pthread_join(th, NULL);
    close(s.a);
    close(s.b);
    return (double)(t1 - t0) / (double)trips;
}

/* Go's figure, from the peer's JSON line; -1 when there is no peer. */
static double go_pingpong(const char *peer, bool locked)
{
    if (!peer || access(peer, X_OK) != 0)
        return -1;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "GOMAXPROCS=2 '%s' -trips %llu%s", peer, (unsigned long long)trips,
             locked ? " -locked" : "");
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char line[256];
    double ns = -1;
    while (fgets(line, sizeof line, f)) {
        const char *k = strstr(line, "\"ns_per_round_trip\":");
        if (k)
            ns = strtod(k + strlen("\"ns_per_round_trip\":"), NULL);
    }
    pclose(f);
    return ns;
}

/* ---- 2. urt_spawn_on ---- */

struct so {
    atomic_ulong ran;
    int          done;     /* eventfd: the last spawned task ran (runtime 0 waits on it)    */
    int          finish;   /* eventfd: runtime 1's first task may end                       */
    uint64_t     t0, t1;
};

static struct so *so_;

static int counted(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&so_->ran, 1) + 1 == spawns) {
        uint64_t one = 1;
        urt_write(so_->done, &one, sizeof one, -1);
    }
    return 0;
}

static int so_main(void *arg)
{
    struct so *s = arg;
    uint64_t v, one = 1;
    if (urt_thread_index() == 1) {
        urt_read(s->finish, &v, sizeof v, -1);   /* stays alive until the last one ran */
        return 0;
    }
    s->t0 = bench_now();
    for (uint64_t i = 0; i < spawns; i++) {
        if (urt_spawn_on(1, counted, NULL) != 0)
            return 1;
        if ((i & 255) == 255)
            urt_yield();   /* let the requests go in batches, as a busy server would */
    }
    urt_read(s->done, &v, sizeof v, -1);
    s->t1 = bench_now();
    urt_write(s->finish, &one, sizeof one, -1);
    return 0;
}

static double spawn_on_rate(void)
{
    struct so s;
    memset(&s, 0, sizeof s);
    s.done = eventfd(0, 0);
    s.finish = eventfd(0, 0);
    so_ = &s;
    int rc = urt_run_threads(2, so_main, &s, NULL);
    close(s.done);
    close(s.finish);
    if (rc)
        return -1;
    return (double)spawns / ((double)(s.t1 - s.t0) / 1e9);
}

/* ---- 3. two producers, two consumers ---- */

struct pc {
    urt_chan    *c;
    atomic_ulong received;
    atomic_int   producers_left;
    uint64_t     t0, t1;
};

static int producer(void *arg)
{
    struct pc *p = arg;
    for (uint64_t i = 0; i < messages / 2; i++)
        if (urt_chan_send(p->c, &i) != 0)
            break;
    if (atomic_fetch_sub(&p->producers_left, 1) == 1)
        urt_chan_close(p->c);
    return 0;
}

static int consumer(void *arg)
{
    struct pc *p = arg;
    uint64_t v, n = 0;
    while (urt_chan_recv(p->c, &v) == 0)
        n++;
    atomic_fetch_add(&p->received, n);
    return 0;
}

static int pc_main(void *arg)
{
    struct pc *p = arg;
    if (urt_thread_index() == 0)
        p->t0 = bench_now();
    urt_task *c = urt_spawn(consumer, p);
    urt_task *q = urt_spawn(producer, p);
    urt_join(q);
    urt_join(c);
    if (urt_thread_index() == 0)
        p->t1 = bench_now();
    return 0;
}

static double urt_prodcons(void)
{
    struct pc p;
    memset(&p, 0, sizeof p);
    p.c = urt_chan_new_shared(sizeof(uint64_t), cap);
    atomic_store(&p.producers_left, 2);
    int rc = urt_run_threads(2, pc_main, &p, NULL);
    urt_chan_free(p.c);
    if (rc || atomic_load(&p.received) != messages / 2 * 2)
        return -1;
    return (double)messages / ((double)(p.t1 - p.t0) / 1e9);
}

struct q {
    pthread_mutex_t m;
    pthread_cond_t  not_empty, not_full;
    uint64_t       *buf;
    uint64_t        head, count;
    int             closed, producers_left;
    uint64_t        received;
};

static void *q_producer(void *arg)
{
    struct q *s = arg;
    for (uint64_t i = 0; i < messages / 2; i++) {
        pthread_mutex_lock(&s->m);
        while (s->count == cap)
            pthread_cond_wait(&s->not_full, &s->m);
        s->buf[(s->head + s->count++) % cap] = i;
        pthread_cond_signal(&s->not_empty);
        pthread_mutex_unlock(&s->m);
    }
    pthread_mutex_lock(&s->m);
    if (--s->producers_left == 0) {
        s->closed = 1;
        pthread_cond_broadcast(&s->not_empty);
    }
    pthread_mutex_unlock(&s->m);
    return NULL;
}

static void *q_consumer(void *arg)
{
    struct q *s = arg;
    uint64_t n = 0;
    pthread_mutex_lock(&s->m);
    for (;;) {
        while (s->count == 0 && !s->closed)
            pthread_cond_wait(&s->not_empty, &s->m);
        if (s->count == 0)
            break;
        s->head = (s->head + 1) % cap;
        s->count--;
        n++;
        pthread_cond_signal(&s->not_full);
    }
    s->received += n;
    pthread_mutex_unlock(&s->m);
    return NULL;
}

static double pthread_prodcons(void)
{
    struct q s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.m, NULL);
    pthread_cond_init(&s.not_empty, NULL);
    pthread_cond_init(&s.not_full, NULL);
    s.buf = calloc(cap, sizeof *s.buf);
    s.producers_left = 2;
    pthread_t th[4];
    uint64_t t0 = bench_now();
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, i < 2 ? q_producer : q_consumer, &s);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    uint64_t t1 = bench_now();
    free(s.buf);
    if (s.received != messages / 2 * 2)
        return -1;
    return (double)messages / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "trips", required_argument, NULL, 't' }, { "spawns", required_argument, NULL, 's' },
        { "messages", required_argument, NULL, 'm' }, { "cap", required_argument, NULL, 'c' },
        { "go", required_argument, NULL, 'g' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char peer[4096];
    snprintf(peer, sizeof peer, "%s", argv[0]);
    char *slash = strrchr(peer, '/');
    if (slash)
        snprintf(slash + 1, sizeof peer - (size_t)(slash + 1 - peer), "peers/goxthread");
    else
        snprintf(peer, sizeof peer, "peers/goxthread");
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 't': trips = bench_parse_u64(argv[0], "--trips", optarg, 1, 1u << 30); break;
        case 's': spawns = bench_parse_u64(argv[0], "--spawns", optarg, 1, 1u << 30); break;
        case 'm': messages = bench_parse_u64(argv[0], "--messages", optarg, 2, 1u << 30); break;
        case 'c': cap = bench_parse_u64(argv[0], "--cap", optarg, 1, 1u << 20); break;
        case 'g': snprintf(peer, sizeof peer, "%s", optarg); break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
    }
    bench_note_build();
    double urt_pp = urt_pingpong(), cv_pp = cv_pingpong(), efd_pp = efd_pingpong();
    double go_pp = go_pingpong(peer, false), go_locked_pp = go_pingpong(peer, true);
    double local_pp = local_pingpong();
    double so = spawn_on_rate(), urt_pc = urt_prodcons(), pt_pc = pthread_prodcons();
    printf("ping-pong, ns per round trip (%llu trips):\n", (unsigned long long)trips);
    printf("  urt, two runtimes, shared channels: %10.0f\n", urt_pp);
    printf("  pthreads, mutex + condvar:          %10.0f   urt/this %.2f (target <= 0.5)\n", cv_pp,
           urt_pp / cv_pp);
    printf("  pthreads, eventfds:                 %10.0f   urt/this %.2f\n", efd_pp, urt_pp / efd_pp);
    if (go_pp > 0)
    {
        printf("  Go, goroutines, GOMAXPROCS=2:       %10.0f   urt/this %.2f (target <= 1)\n", go_pp,
               urt_pp / go_pp);
        printf("  Go, each on its own OS thread:      %10.0f   urt/this %.2f (crosses threads, as urt)\n",
               go_locked_pp, urt_pp / go_locked_pp);
    } else
        printf("  Go: no peer at %s (built where golang-go is installed)\n", peer);
    printf("  (urt, one runtime, local channels:  %10.0f)\n", local_pp);
    printf("urt_spawn_on, runtime 0 to 1:         %10.2f M/s (target >= 5)\n", so / 1e6);
    printf("2 producers / 2 consumers, cap %llu, M messages/s:\n", (unsigned long long)cap);
    printf("  urt, one shared channel:            %10.2f\n", urt_pc / 1e6);
    printf("  pthreads, mutex + condvar queue:    %10.2f   urt/this %.2f\n", pt_pc / 1e6,
           urt_pc / pt_pc);
    printf("{\"bench\":\"xthread\",\"trips\":%llu,\"urt_pingpong_ns\":%.1f,\"condvar_pingpong_ns\":%.1f,"
           "\"eventfd_pingpong_ns\":%.1f,\"go_pingpong_ns\":%.1f,\"go_locked_pingpong_ns\":%.1f,"
           "\"local_pingpong_ns\":%.1f,"
           "\"spawn_on_per_s\":%.0f,\"urt_prodcons_per_s\":%.0f,\"pthread_prodcons_per_s\":%.0f}\n",
           (unsigned long long)trips, urt_pp, cv_pp, efd_pp, go_pp, go_locked_pp, local_pp, so, urt_pc,
           pt_pc);
    return urt_pp < 0 || so < 0 || urt_pc < 0 ? 1 : 0;
}
