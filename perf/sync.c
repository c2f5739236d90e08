/* SPDX-License-Identifier: MIT */
/*
 * sync - what urt's mutex and urt_select cost, each beside its baselines in the same run:
 *   1. an uncontended urt_mutex lock+unlock inside one task of a urt_run runtime (the local
 *      path: no atomics), ns per pair; baselines: pthread_mutex_lock/unlock in a plain thread,
 *      and Go's sync.Mutex Lock/Unlock where build/perf/peers/gosync exists; for reference, the
 *      same on a shared mutex (made inside urt_run_threads(2)), whose state sits under a
 *      spinning lock;
 *   2. two tasks trading one urt_mutex (each: lock, bump a shared counter, unlock, again): ns
 *      and context switches (urt_stats) per handoff, and whether ownership strictly alternates
 *      (an unlock hands the mutex to the waiter directly); baselines: two pthreads on one
 *      pthread mutex, and two goroutines on one sync.Mutex (GOMAXPROCS=1) - neither hands off,
 *      so their owner changes are counted - and the goroutines again with a runtime.Gosched()
 *      after each Unlock, which makes them alternate;
 *   3. urt_select over 4 buffered local channels, one of which holds data each time, against
 *      one urt_chan_recv on one channel, ns per op and the ratio; baseline: the same in Go
 *      (GOMAXPROCS=1).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "urt.h"
#include "bench.h"

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--pairs N] [--handoffs N] [--ops N] [--go PATH] [--help]\n"
            "\n"
            "Costs of urt's mutex and urt_select, each beside its baselines in the same run:\n"
            "(1) an uncontended urt_mutex lock+unlock in one task (local and shared mutex)\n"
            "against pthread_mutex_lock/unlock and Go's sync.Mutex; (2) two tasks trading one\n"
            "mutex: ns and context switches per handoff, against two pthreads and two\n"
            "goroutines (GOMAXPROCS=1) on their mutexes; (3) urt_select over 4 buffered\n"
            "channels, one holding data, against one urt_chan_recv, and the same in Go.\n"
            "The Go figures come from build/perf/peers/gosync where golang-go is installed.\n"
            "Prints each figure, the ratios, the targets and one JSON line.\n"
            "\n"
            "  --pairs N     uncontended lock+unlock pairs (default 20000000)\n"
            "  --handoffs N  handoffs between the two tasks (default 2000000)\n"
            "  --ops N       selects, and receives (default 4000000)\n"
            "  --go PATH     the Go peer (default peers/gosync next to this program)\n"
            "  --help        print this help and exit\n",
            prog);
}

static uint64_t pairs = 20000000, handoffs = 2000000, ops = 4000000;

/* ---- 1. uncontended lock+unlock ---- */

struct un {
    uint64_t t0, t1;
    int      err;
};

static void uncontended(struct un *u)
{
    urt_mutex *m = urt_mutex_new();
    if (!m) {
        u->err = 1;
        return;
    }
    for (int i = 0; i < 1000; i++)   /* warm-up */
        if (urt_mutex_lock(m) || urt_mutex_unlock(m))
            u->err = 1;
    u->t0 = bench_now();
    for (uint64_t i = 0; i < pairs; i++)
        if (urt_mutex_lock(m) != 0 || urt_mutex_unlock(m) != 0) {
            u->err = 1;
            break;
        }
    u->t1 = bench_now();
    if (urt_mutex_free(m))
        u->err = 1;
}

static int un_local_main(void *arg)
{
    uncontended(arg);
    return 0;
}

static double urt_uncontended(void)
{
    struct un u = { 0, 0, 0 };
    if (urt_run(un_local_main, &u, NULL) || u.err)
        return -1;
    return (double)(u.t1 - u.t0) / (double)pairs;
}

/* A mutex made inside urt_run_threads(2) is shared; runtime 0's task uses it alone. */
static int un_shared_main(void *arg)
{
    if (urt_thread_index() == 0)
        uncontended(arg);
    return 0;
}

static double urt_uncontended_shared(void)
{
    struct un u = { 0, 0, 0 };
    if (urt_run_threads(2, un_shared_main, &u, NULL) || u.err)
        return -1;
    return (double)(u.t1 - u.t0) / (double)pairs;
}

static double pthread_uncontended(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&m);
        pthread_mutex_unlock(&m);
    }
    uint64_t t0 = bench_now();
    for (uint64_t i = 0; i < pairs; i++) {
        pthread_mutex_lock(&m);
        pthread_mutex_unlock(&m);
    }
    uint64_t t1 = bench_now();
    return (double)(t1 - t0) / (double)pairs;
}

/* ---- 2. two tasks trading a mutex ---- */

/* The first WARM acquisitions are not timed (both tasks are in their loops by then). */
#define WARM 1000

struct ho {
    urt_mutex       *m;
    pthread_mutex_t  pm;
    uint64_t         count;      /* acquisitions so far, under the mutex         */
    int              last;       /* who took it last: 1 or 2, 0 before anyone     */
    uint64_t         changes;    /* timed acquisitions by the other one than last */
    uint64_t         t0, t1, sw0, sw1;
    int              err;
};

static uint64_t switches_now(void)
{
    struct urt_stats s;
    urt_stats(&s);
    return s.switches;
}

/* Under the mutex: one acquisition by `me`; false once the measured ones are done. Timed from
   acquisition WARM to acquisition WARM + handoffs: `handoffs` handoffs. */
static bool acquired(struct ho *h, int me, bool in_urt)
{
    if (h->count > WARM + handoffs)
        return false;
    if (h->count > WARM && h->last != me)
        h->changes++;
    if (h->count == WARM || h->count == WARM + handoffs) {
        uint64_t t = bench_now(), sw = in_urt ? switches_now() : 0;
        if (h->count == WARM) {
            h->t0 = t;
            h->sw0 = sw;
        } else {
            h->t1 = t;
            h->sw1 = sw;
        }
    }
    h->last = me;
    return h->count++ < WARM + handoffs;
}

static void ho_loop(struct ho *h, int me)
{
    for (;;) {
        if (urt_mutex_lock(h->m) != 0) {
            h->err = 1;
            return;
        }
        bool more = acquired(h, me, true);
        if (urt_mutex_unlock(h->m) != 0)
            h->err = 1;
        if (!more)
            return;
    }
}

static int ho_partner(void *arg)
{
    ho_loop(arg, 2);
    return 0;
}

static int ho_main(void *arg)
{
    struct ho *h = arg;
    h->m = urt_mutex_new();
    if (!h->m) {
        h->err = 1;
        return 0;
    }
    /* Hold the mutex while the partner starts, so that it is waiting from the first. */
    urt_mutex_lock(h->m);
    urt_task *t = urt_spawn(ho_partner, h);
    urt_yield();
    urt_mutex_unlock(h->m);
    ho_loop(h, 1);
    urt_join(t);
    if (urt_mutex_free(h->m))
        h->err = 1;
    return 0;
}

/* ns per handoff; *sw: switches per handoff; *alt: owner changes per timed acquisition. */
static double urt_handoff(double *sw, double *alt)
{
    struct ho h;
    memset(&h, 0, sizeof h);
    if (urt_run(ho_main, &h, NULL) || h.err)
        return -1;
    *sw = (double)(h.sw1 - h.sw0) / (double)handoffs;
    *alt = (double)h.changes / (double)handoffs;
    return (double)(h.t1 - h.t0) / (double)handoffs;
}

struct pho {
    struct ho *h;
    int        me;
};

static void *pho_loop(void *arg)
{
    struct pho *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->h->pm);
        bool more = acquired(p->h, p->me, false);
        pthread_mutex_unlock(&p->h->pm);
        if (!more)
            return NULL;
    }
}

/* ns per acquisition; *alt as above. */
static double pthread_handoff(double *alt)
{
    struct ho h;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.pm, NULL);
    struct pho a = { &h, 1 }, b = { &h, 2 };
    pthread_t ta, tb;
    pthread_create(&ta, NULL, pho_loop, &a);
    pthread_create(&tb, NULL, pho_loop, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_mutex_destroy(&h.pm);
    *alt = (double)h.changes / (double)handoffs;
    return (double)(h.t1 - h.t0) / (double)handoffs;
}

/* ---- 3. urt_select over 4 channels against one receive ---- */

#define NCH   4
#define BATCH 4096

struct sel {
    double select_ns, recv_ns, select_all_ns;
    int    err;
};

/* Puts n elements into c (it has room: nothing is received between fills). */
static int fill(urt_chan *c, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (urt_chan_try_send(c, &i) != 0)
            return -1;
    return 0;
}

static int sel_main(void *arg)
{
    struct sel *s = arg;
    urt_chan *ch[NCH];
    for (int i = 0; i < NCH; i++)
        if (!(ch[i] = urt_chan_new(sizeof(uint64_t), BATCH))) {
            s->err = 1;
            return 0;
        }
    uint64_t v[NCH], sink = 0;
    struct urt_case cases[NCH];
    uint64_t batches = (ops + BATCH - 1) / BATCH, t_sel = 0, t_recv = 0, t_all = 0;
    /* Batch b fills channel b % 4 alone with BATCH elements (untimed), then takes them out with
       BATCH selects over all four channels (timed); then the same with one urt_chan_recv on the
       filled channel. The channel with data changes every batch. The first batch of each warms
       up and is not counted. */
    for (uint64_t b = 0; b <= batches && !s->err; b++) {
        urt_chan *c = ch[b % NCH];
        if (fill(c, BATCH)) {
            s->err = 1;
            break;
        }
        uint64_t t0 = bench_now();
        for (int i = 0; i < BATCH; i++) {
            for (int k = 0; k < NCH; k++)
                cases[k] = (struct urt_case){ ch[k], URT_RECV, &v[k], 1 };
            int r = urt_select(cases, NCH);
            if (r < 0 || cases[r].result != 0 || cases[r].chan != c) {
                s->err = 1;
                break;
            }
            sink += v[r];
        }
        uint64_t t1 = bench_now();
        if (fill(c, BATCH)) {
            s->err = 1;
            break;
        }
        uint64_t t2 = bench_now();
        for (int i = 0; i < BATCH; i++) {
            if (urt_chan_recv(c, &v[0]) != 0) {
                s->err = 1;
                break;
            }
            sink += v[0];
        }
        uint64_t t3 = bench_now();
        /* For reference: all four hold data (BATCH / 4 each), so select picks among four. */
        for (int k = 0; k < NCH; k++)
            if (fill(ch[k], BATCH / NCH))
                s->err = 1;
        uint64_t t4 = bench_now();
        for (int i = 0; i < BATCH && !s->err; i++) {
            for (int k = 0; k < NCH; k++)
                cases[k] = (struct urt_case){ ch[k], URT_RECV, &v[k], 1 };
            int r = urt_select(cases, NCH);
            if (r < 0 || cases[r].result != 0)
                s->err = 1;
            else
                sink += v[r];
        }
        uint64_t t5 = bench_now();
        if (b > 0) {
            t_sel += t1 - t0;
            t_recv += t3 - t2;
            t_all += t5 - t4;
        }
    }
    for (int i = 0; i < NCH; i++)
        urt_chan_free(ch[i]);
    if (sink == 1)   /* keeps the received values alive; never true in practice */
        printf(" ");
    s->select_ns = (double)t_sel / (double)(batches * BATCH);
    s->recv_ns = (double)t_recv / (double)(batches * BATCH);
    s->select_all_ns = (double)t_all / (double)(batches * BATCH);
    return 0;
}

static int urt_select_bench(struct sel *s)
{
    memset(s, 0, sizeof *s);
    if (urt_run(sel_main, s, NULL) || s->err)
        return -1;
    return 0;
}

/* ---- Go ---- */

struct gofig {
    double lock_ns, handoff_lock_ns, handoff_alt, yield_ns, yield_alt, select_ns, recv_ns;
};


/* Go's figures, from the peer's JSON line; 0 when there is none. */
static int go_run(const char *peer, struct gofig *g)
{
    g->lock_ns = g->handoff_lock_ns = g->handoff_alt = g->yield_ns = g->yield_alt = -1;
    g->select_ns = g->recv_ns = -1;
    if (!peer || access(peer, X_OK) != 0)
        return 0;
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "GOMAXPROCS=1 '%s' -pairs %llu -handoffs %llu -ops %llu", peer,
             (unsigned long long)pairs, (unsigned long long)handoffs, (unsigned long long)ops);
    FILE *f = popen(cmd, "r");
    if (!f)
        return 0;
    char line[512];
    int got = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"peer\":\"go\""))
            continue;
        g->lock_ns = bench_json_num(line, "lock_unlock_ns");
        g->handoff_lock_ns = bench_json_num(line, "contended_ns_per_lock");
        g->handoff_alt = bench_json_num(line, "owner_changes_per_lock");
        g->yield_ns = bench_json_num(line, "yield_ns_per_lock");
        g->yield_alt = bench_json_num(line, "yield_owner_changes_per_lock");
        g->select_ns = bench_json_num(line, "select4_ns");
        g->recv_ns = bench_json_num(line, "recv_ns");
        got = 1;
    }
    pclose(f);
    return got;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "pairs", required_argument, NULL, 'p' }, { "handoffs", required_argument, NULL, 'o' },
        { "ops", required_argument, NULL, 's' },   { "go", required_argument, NULL, 'g' },
        { "help", no_argument, NULL, 'h' },        { NULL, 0, NULL, 0 },
    };
    char peer[4096];
    bench_peer_path(peer, sizeof peer, argv[0], "gosync");
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p': pairs = bench_parse_u64(argv[0], "--pairs", optarg, 1, 1ull << 34); break;
        case 'o': handoffs = bench_parse_u64(argv[0], "--handoffs", optarg, 2, 1u << 30); break;
        case 's': ops = bench_parse_u64(argv[0], "--ops", optarg, 1, 1u << 30); break;
        case 'g': snprintf(peer, sizeof peer, "%s", optarg); break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
    }
    bench_note_build();

    double un = urt_uncontended(), un_sh = urt_uncontended_shared(), pt_un = pthread_uncontended();
    double sw = -1, alt = -1, pt_alt = -1;
    double ho = urt_handoff(&sw, &alt), pt_ho = pthread_handoff(&pt_alt);
    struct sel s;
    int sel_rc = urt_select_bench(&s);
    struct gofig g;
    int have_go = go_run(peer, &g);

    printf("1. uncontended lock+unlock, ns per pair (%llu pairs):\n", (unsigned long long)pairs);
    printf("  urt_mutex, one task, local:         %8.2f   (target <= 3: %s)\n", un,
           un >= 0 && un <= 3 ? "met" : "NOT met");
    printf("  pthread_mutex, plain thread:        %8.2f   urt/this %.2f\n", pt_un, un / pt_un);
    if (have_go)
        printf("  Go sync.Mutex:                      %8.2f   urt/this %.2f\n", g.lock_ns,
               un / g.lock_ns);
    printf("  (urt_mutex, shared, one task:       %8.2f   the spinning lock's cost)\n", un_sh);

    printf("2. two tasks trading one mutex (%llu handoffs):\n", (unsigned long long)handoffs);
    printf("  urt_mutex: %.1f ns per handoff, %.3f switches per handoff (target 1: %s),\n"
           "             owner changed on %.1f%% of acquisitions (%s)\n",
           ho, sw, sw > 0.99 && sw < 1.01 ? "met" : "NOT met", alt * 100,
           alt > 0.9999 ? "strict alternation" : "NOT strictly alternating");
    printf("  pthreads, one pthread_mutex:        %8.1f ns per lock, owner changed %.0f times",
           pt_ho, pt_alt * (double)handoffs);
    if (pt_alt * (double)handoffs >= 100)
        printf(" (%.0f ns per owner change)", pt_ho / pt_alt);
    printf("\n");
    if (have_go) {
        printf("  Go, sync.Mutex, GOMAXPROCS=1:       %8.1f ns per lock, owner changed %.0f times",
               g.handoff_lock_ns, g.handoff_alt * (double)handoffs);
        if (g.handoff_alt * (double)handoffs >= 100)
            printf(" (%.0f ns per owner change)", g.handoff_lock_ns / g.handoff_alt);
        printf("\n");
        printf("  Go, the same, Gosched after Unlock: %8.1f ns per lock, owner changed on %.1f%%\n",
               g.yield_ns, g.yield_alt * 100);
    }
    printf("     (neither pthreads nor Go hands the mutex off: the unlocker takes it again until it\n"
           "      is preempted; Go with a Gosched after each Unlock alternates, as urt does)\n");

    printf("3. receive from 4 buffered channels, one holding data, ns per op (%llu ops):\n",
           (unsigned long long)ops);
    if (sel_rc == 0) {
        double ratio = s.select_ns / s.recv_ns;
        printf("  urt_select over 4:                  %8.1f\n", s.select_ns);
        printf("  urt_chan_recv on one:               %8.1f   select/recv %.2f (target <= 1.5: %s)\n",
               s.recv_ns, ratio, ratio <= 1.5 ? "met" : "NOT met");
        printf("  (urt_select, all 4 holding data:    %8.1f)\n", s.select_all_ns);
    } else
        printf("  urt: failed\n");
    if (have_go)
        printf("  Go select over 4 / receive, GOMAXPROCS=1: %.1f / %.1f, ratio %.2f\n", g.select_ns,
               g.recv_ns, g.select_ns / g.recv_ns);
    if (!have_go)
        printf("Go: no peer at %s (built where golang-go is installed)\n", peer);

    printf("{\"bench\":\"sync\",\"pairs\":%llu,\"handoffs\":%llu,\"ops\":%llu,"
           "\"urt_lock_unlock_ns\":%.2f,\"urt_shared_lock_unlock_ns\":%.2f,"
           "\"pthread_lock_unlock_ns\":%.2f,\"go_lock_unlock_ns\":%.2f,"
           "\"urt_handoff_ns\":%.1f,\"urt_switches_per_handoff\":%.3f,\"urt_owner_changes\":%.4f,"
           "\"pthread_contended_ns_per_lock\":%.1f,\"pthread_owner_changes\":%.7f,"
           "\"go_contended_ns_per_lock\":%.1f,\"go_owner_changes\":%.7f,"
           "\"go_yield_ns_per_lock\":%.1f,\"go_yield_owner_changes\":%.4f,"
           "\"urt_select4_ns\":%.1f,\"urt_recv_ns\":%.1f,\"urt_select4_all_ready_ns\":%.1f,"
           "\"go_select4_ns\":%.1f,\"go_recv_ns\":%.1f}\n",
           (unsigned long long)pairs, (unsigned long long)handoffs, (unsigned long long)ops, un,
           un_sh, pt_un, g.lock_ns, ho, sw, alt, pt_ho, pt_alt, g.handoff_lock_ns, g.handoff_alt,
           g.yield_ns, g.yield_alt,
           sel_rc ? -1.0 : s.select_ns, sel_rc ? -1.0 : s.recv_ns,
           sel_rc ? -1.0 : s.select_all_ns, g.select_ns, g.recv_ns);
    return un < 0 || un_sh < 0 || ho < 0 || sel_rc ? 1 : 0;
}
