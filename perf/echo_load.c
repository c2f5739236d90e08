/* SPDX-License-Identifier: MIT */
/*
 * echo_load - a closed-loop load generator for echo servers, not built on urt (plain epoll, so
 * that it measures the server, not the runtime under test).
 *
 * C connections are spread over T threads, each thread with its own epoll set. Every connection
 * keeps exactly one message of M bytes in flight: it sends M bytes, reads M bytes back, checks
 * every byte, then sends the next message. The bytes of a message are a slice of a random
 * pattern whose offset depends on the connection and on the message's sequence number, so a
 * server that mixes up connections, drops, duplicates or reorders bytes, or replays an earlier
 * message, is caught; checking is one memcmp.
 *
 * After --warmup W seconds the measured window of --seconds S begins: requests completed in it
 * are counted and their latencies (send of the first byte to receipt of the last) go to a
 * log-linear histogram (32 sub-buckets per power of two: within ~3%). Errors (connect
 * failures, resets and early EOFs, mismatches, other socket errors) are counted over the whole
 * run.
 *
 * Each thread polls its epoll set without sleeping (epoll_wait with timeout 0) unless --no-spin
 * is given or there are more threads than CPUs: waking an idle (virtual) CPU costs wall time
 * that neither side is charged for; a spinning thread is always ready, so the server's pace
 * alone sets the rate.
 *
 * The generator's own load is measured over the window as busy time: each thread's CPU clock
 * less the time its empty polls took. When a thread was busy >= 90% of a core (or the process
 * >= 90% of the CPUs it may run on), the generator itself may be what limits the figure, and it
 * says so ("load generator saturated: the figure is a floor"). Over loopback TCP the kernel does
 * the same work for each end of a connection (a send also runs the peer's receive path), so one
 * generator thread costs about as much CPU per request as a lean server: against the fastest
 * servers it saturates as soon as they do, and then only CPU per request compares cleanly.
 *
 * With --server-pid PID it also reads the server's utime+stime from /proc/PID/stat at the
 * window's edges and reports the server's CPU use and CPU microseconds per request. It also
 * reads the whole machine's busy time (/proc/stat) and warns when other processes used >= 10%
 * of a core during the window ("the figures are disturbed").
 *
 * Prints text, then one JSON line. Exit status: 0; 1 when errors occurred or nothing was
 * measured; 2 for bad options.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define SATURATED 0.90      /* a thread busy this share of the window is the bottleneck      */
#define DISTURBED 0.10      /* other processes using this much of a core spoil the figures   */
#define PAT_SPAN  4093      /* distinct offsets into the pattern (prime)                      */
#define HSUB      5         /* 2^HSUB sub-buckets per power of two                           */
#define HBUCKETS  ((64 - HSUB + 1) << HSUB)
#define MAX_EVENTS 256

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s --port P [--host H] [--conns C] [--size M] [--seconds S] [--warmup W]\n"
            "       [--threads T] [--server-pid PID] [--no-spin] [--help]\n"
            "\n"
            "Closed-loop echo load (epoll, not urt): C connections over T threads, each keeping\n"
            "one message of M bytes in flight and checking every byte echoed back. Counts\n"
            "requests and errors, records latency (p50/p99/p99.9), measures its own CPU use over\n"
            "the window and warns when it is itself the bottleneck. Prints text and one JSON line.\n"
            "\n"
            "  --host H        server address (default 127.0.0.1)\n"
            "  --port P        server port (required)\n"
            "  --conns C       connections (default 100)\n"
            "  --size M        message size in bytes (default 64)\n"
            "  --seconds S     measured window in seconds (default 5)\n"
            "  --warmup W      seconds of load before the window (default 1)\n"
            "  --threads T     threads the connections are spread over (default 1)\n"
            "  --server-pid P  also report that process's CPU time over the window (/proc/P/stat)\n"
            "  --no-spin       sleep in epoll_wait when idle instead of polling without sleeping\n"
            "  --help          print this help and exit\n"
            "\n"
            "Exit status: 0; 1 when errors occurred or no request completed; 2 for bad options.\n",
            prog);
}

/* ---- histogram ---- */

static inline unsigned hbucket(uint64_t v)
{
    if (v < (1u << HSUB))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HSUB;
    return ((shift + 1) << HSUB) + (unsigned)((v >> shift) & ((1u << HSUB) - 1));
}

/* The middle of bucket i. */
static uint64_t hvalue(unsigned i)
{
    if (i < (1u << HSUB))
        return i;
    unsigned shift = (i >> HSUB) - 1;
    uint64_t lo = (uint64_t)((1u << HSUB) + (i & ((1u << HSUB) - 1))) << shift;
    return lo + ((1ull << shift) >> 1);
}

static uint64_t hpercentile(const uint64_t *h, uint64_t total, double p)
{
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(p * (double)total + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t acc = 0;
    for (unsigned i = 0; i < HBUCKETS; i++) {
        acc += h[i];
        if (acc >= want)
            return hvalue(i);
    }
    return hvalue(HBUCKETS - 1);
}

/* ---- state ---- */

struct conn {
    int fd;
    uint32_t id, seq;
    uint32_t sent, got;  /* bytes of the current message sent and received                  */
    uint32_t off;        /* the current message's offset into the pattern                    */
    int want_out;        /* EPOLLOUT registered (a send was short)                            */
    uint64_t t0;         /* when the current message's send began                            */
    unsigned char *rx;
};

struct thr {
    pthread_t th;
    clockid_t cpuclock;
    int ep;
    struct conn *conns;
    size_t n, live;
    /* counted in the window */
    uint64_t reqs, lat_max;
    uint64_t polls, events;    /* epoll_waits that returned events, and how many, in the window */
    uint64_t *hist;
    /* counted all along */
    uint64_t err_reset, err_mismatch, err_other;
    _Atomic uint64_t idle_ns;  /* spinning: time in epoll_waits that found nothing          */
} __attribute__((aligned(64)));

static atomic_int phase;           /* 0 warm-up, 1 measuring, 2 stop                          */
static int spin = 1;               /* poll epoll without sleeping (see --no-spin)             */
static size_t msg_size;
static unsigned char *pattern;     /* msg_size + PAT_SPAN random bytes                        */

static inline uint32_t msg_offset(uint32_t id, uint32_t seq)
{
    return (uint32_t)(((uint64_t)id * 2654435761u + (uint64_t)seq * 40503u) % PAT_SPAN);
}

static void conn_drop(struct thr *t, struct conn *c)
{
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    t->live--;
}

static void conn_fail(struct thr *t, struct conn *c, int err)
{
    if (err == 0 || err == ECONNRESET || err == EPIPE || err == ECONNABORTED)
        t->err_reset++;
    else
        t->err_other++;
    conn_drop(t, c);
}

static int set_events(struct thr *t, struct conn *c, int out)
{
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    c->want_out = out;
    return epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends what is left of the current message; 0, or -errno (the connection is then dropped). */
static int conn_send(struct thr *t, struct conn *c)
{
    const size_t m = msg_size;
    while (c->sent < m) {
        ssize_t n = send(c->fd, pattern + c->off + c->sent, m - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out && set_events(t, c, 1) < 0)
                return -errno;
            return 0;
        }
        return n < 0 ? -errno : -EPIPE;
    }
    if (c->want_out && set_events(t, c, 0) < 0)
        return -errno;
    return 0;
}

static int conn_start(struct thr *t, struct conn *c)
{
    c->sent = c->got = 0;
    c->off = msg_offset(c->id, c->seq);
    c->t0 = bench_now();
    return conn_send(t, c);
}

/* Reads what the socket has of the current reply; on a whole reply, checks it and starts the
   next message. 0, or -1 when the connection was dropped. */
static int conn_recv(struct thr *t, struct conn *c, int measuring)
{
    const size_t m = msg_size;
    ssize_t n = recv(c->fd, c->rx + c->got, m - c->got, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        conn_fail(t, c, errno);
        return -1;
    }
    if (n == 0) { /* EOF: the server hung up */
        conn_fail(t, c, 0);
        return -1;
    }
    c->got += (uint32_t)n;
    if (c->got < m)
        return 0;
    /* The server cannot echo bytes not yet sent: a whole reply before a whole send is wrong. */
    if (c->sent != m || memcmp(c->rx, pattern + c->off, m) != 0) {
        t->err_mismatch++;
        conn_drop(t, c);
        return -1;
    }
    if (measuring) {
        uint64_t lat = bench_now() - c->t0;
        t->reqs++;
        t->hist[hbucket(lat)]++;
        if (lat > t->lat_max)
            t->lat_max = lat;
    }
    c->seq++;
    int r = conn_start(t, c);
    if (r < 0) {
        conn_fail(t, c, -r);
        return -1;
    }
    return 0;
}

static void sleep_ns(uint64_t ns);

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    struct epoll_event evs[MAX_EVENTS];

    for (size_t i = 0; i < t->n; i++) {
        struct conn *c = &t->conns[i];
        int r = conn_start(t, c);
        if (r < 0)
            conn_fail(t, c, -r);
    }
    for (;;) {
        int ph = atomic_load_explicit(&phase, memory_order_relaxed);
        if (ph == 2)
            break;
        if (!t->live) { /* every connection is gone: idle until the end (the CPU clock stays) */
            sleep_ns(10000000);
            continue;
        }
        uint64_t t0 = spin ? bench_now() : 0;
        int n = epoll_wait(t->ep, evs, MAX_EVENTS, spin ? 0 : 50);
        if (n == 0 && spin) {
            uint64_t idle = atomic_load_explicit(&t->idle_ns, memory_order_relaxed);
            atomic_store_explicit(&t->idle_ns, idle + (bench_now() - t0), memory_order_relaxed);
            continue;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("echo_load: epoll_wait");
            t->err_other++;
            break;
        }
        ph = atomic_load_explicit(&phase, memory_order_relaxed);
        if (ph == 1) {
            t->polls++;
            t->events += (uint64_t)n;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            uint32_t e = evs[i].events;
            if (e & EPOLLOUT) {
                int r = conn_send(t, c);
                if (r < 0) {
                    conn_fail(t, c, -r);
                    continue;
                }
            }
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_recv(t, c, ph == 1);
        }
    }
    return NULL;
}

/* ---- measurements ---- */

static uint64_t cpu_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rusage_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/* utime+stime of process pid in nanoseconds (clock-tick resolution), and its utime alone in
   *user; -1 when unreadable. */
static int64_t proc_cpu_ns(long pid, int64_t *user)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
       utime(14) stime(15). */
    unsigned long long ut, st;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    unsigned long long tick = 1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK);
    *user = (int64_t)(ut * tick);
    return (int64_t)((ut + st) * tick);
}

/* Non-idle time of the whole machine (all CPUs) in nanoseconds, from /proc/stat; -1 if unknown. */
static int64_t machine_busy_ns(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = { 0 };
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 7)
        return -1;
    /* user nice system [idle iowait] irq softirq steal */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    long hz = sysconf(_SC_CLK_TCK);
    return (int64_t)(busy * (1000000000ull / (unsigned long long)hz));
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    const char *prog = "echo_load";
    const char *host = "127.0.0.1";
    const char *port = NULL;
    uint64_t conns = 100, size = 64, seconds = 5, warmup = 1, threads = 1;
    long server_pid = 0;

    static const struct option opts[] = {
        { "host", required_argument, 0, 'h' },    { "port", required_argument, 0, 'p' },
        { "conns", required_argument, 0, 'c' },   { "size", required_argument, 0, 'm' },
        { "seconds", required_argument, 0, 's' }, { "warmup", required_argument, 0, 'w' },
        { "threads", required_argument, 0, 't' }, { "server-pid", required_argument, 0, 'P' },
        { "no-spin", no_argument, 0, 'S' },       { "help", no_argument, 0, 'H' },
        { 0, 0, 0, 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': bench_parse_u64(prog, "--port", optarg, 1, 65535); port = optarg; break;
        case 'c': conns = bench_parse_u64(prog, "--conns", optarg, 1, 1000000); break;
        case 'm': size = bench_parse_u64(prog, "--size", optarg, 1, 16u << 20); break;
        case 's': seconds = bench_parse_u64(prog, "--seconds", optarg, 1, 86400); break;
        case 'w': warmup = bench_parse_u64(prog, "--warmup", optarg, 0, 86400); break;
        case 't': threads = bench_parse_u64(prog, "--threads", optarg, 1, 1024); break;
        case 'P': server_pid = (long)bench_parse_u64(prog, "--server-pid", optarg, 1, 1u << 30); break;
        case 'S': spin = 0; break;
        case 'H': usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        usage(stderr, argv[0]);
        return 2;
    }
    if (!port) {
        fprintf(stderr, "%s: --port is required\n", prog);
        usage(stderr, argv[0]);
        return 2;
    }
    if (threads > conns)
        threads = conns;
    msg_size = size;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    bench_note_build();

    /* The pattern: random bytes (xorshift64*, fixed seed). */
    pattern = malloc(size + PAT_SPAN);
    if (!pattern) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < size + PAT_SPAN; i++) {
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
        pattern[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> 56);
    }

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
    int gr = getaddrinfo(host, port, &hints, &ai);
    if (gr) {
        fprintf(stderr, "%s: %s:%s: %s\n", prog, host, port, gai_strerror(gr));
        return 1;
    }

    struct thr *thr = aligned_alloc(64, sizeof *thr * threads);
    unsigned char *rxmem = malloc(conns * size);
    if (!thr || !rxmem) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    memset(thr, 0, sizeof *thr * threads);
    for (uint64_t i = 0; i < threads; i++) {
        thr[i].ep = epoll_create1(EPOLL_CLOEXEC);
        thr[i].hist = calloc(HBUCKETS, sizeof(uint64_t));
        thr[i].conns = calloc(conns / threads + 1, sizeof(struct conn));
        if (thr[i].ep < 0 || !thr[i].hist || !thr[i].conns) {
            fprintf(stderr, "%s: cannot set up thread state: %s\n", prog, strerror(errno));
            return 1;
        }
    }

    /* Connect everything first (blocking connects, then non-blocking), round-robin over threads. */
    uint64_t err_connect = 0;
    int first_connect_errno = 0;
    for (uint64_t i = 0; i < conns; i++) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (!first_connect_errno)
                first_connect_errno = errno;
            if (fd >= 0)
                close(fd);
            err_connect++;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        struct thr *t = &thr[i % threads];
        struct conn *c = &t->conns[t->n++];
        c->fd = fd;
        c->id = (uint32_t)i;
        c->seq = 0;
        c->rx = rxmem + i * size;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("echo_load: epoll_ctl");
            return 1;
        }
        t->live++;
    }
    freeaddrinfo(ai);
    if (err_connect)
        fprintf(stderr, "%s: %llu of %llu connections failed (first: %s)\n", prog,
                (unsigned long long)err_connect, (unsigned long long)conns,
                strerror(first_connect_errno));
    if (err_connect == conns) {
        fprintf(stderr, "%s: no connection to %s:%s\n", prog, host, port);
        return 1;
    }

    /* Spinning needs a core per thread: with fewer, the threads would spin against each other. */
    cpu_set_t set;
    long ncpu = (long)threads;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < (long)threads)
        ncpu = CPU_COUNT(&set);
    if (spin && ncpu < (long)threads) {
        printf("note: %llu threads on %ld CPUs: not spinning\n", (unsigned long long)threads, ncpu);
        spin = 0;
    }

    atomic_store(&phase, 0);
    for (uint64_t i = 0; i < threads; i++) {
        if (pthread_create(&thr[i].th, NULL, thr_main, &thr[i])) {
            fprintf(stderr, "%s: pthread_create failed\n", prog);
            return 1;
        }
        pthread_getcpuclockid(thr[i].th, &thr[i].cpuclock);
    }

    sleep_ns(warmup * 1000000000ull);

    /* The window's edges: each thread's CPU clock and spin-idle time, the process's rusage and
       the server's /proc/PID/stat, read as close together as possible. */
    uint64_t *cpu0 = calloc(threads, sizeof(uint64_t)), *cpu1 = calloc(threads, sizeof(uint64_t));
    uint64_t *idle0 = calloc(threads, sizeof(uint64_t)), *idle1 = calloc(threads, sizeof(uint64_t));
    int64_t mach0 = machine_busy_ns();
    int64_t srv_user0 = 0, srv_user1 = 0;
    int64_t srv0 = server_pid ? proc_cpu_ns(server_pid, &srv_user0) : -1;
    uint64_t ru0 = rusage_ns();
    for (uint64_t i = 0; i < threads; i++) {
        cpu0[i] = cpu_ns(thr[i].cpuclock);
        idle0[i] = atomic_load(&thr[i].idle_ns);
    }
    uint64_t w0 = bench_now();
    atomic_store(&phase, 1);

    sleep_ns(seconds * 1000000000ull);

    atomic_store(&phase, 2);
    uint64_t w1 = bench_now();
    for (uint64_t i = 0; i < threads; i++) {
        cpu1[i] = cpu_ns(thr[i].cpuclock);
        idle1[i] = atomic_load(&thr[i].idle_ns);
    }
    uint64_t ru1 = rusage_ns();
    int64_t srv1 = server_pid ? proc_cpu_ns(server_pid, &srv_user1) : -1;
    int64_t mach1 = machine_busy_ns();

    for (uint64_t i = 0; i < threads; i++)
        pthread_join(thr[i].th, NULL);

    /* Sum up. Busy = CPU time less the time spent polling and finding nothing (spinning). */
    uint64_t reqs = 0, lat_max = 0, e_reset = 0, e_mis = 0, e_other = 0, live = 0;
    uint64_t polls = 0, events = 0;
    uint64_t *hist = calloc(HBUCKETS, sizeof(uint64_t));
    double thr_busy_max = 0, idle_total = 0;
    const double wns = (double)(w1 - w0);
    double window = wns / 1e9;
    for (uint64_t i = 0; i < threads; i++) {
        struct thr *t = &thr[i];
        reqs += t->reqs;
        polls += t->polls;
        events += t->events;
        if (t->lat_max > lat_max)
            lat_max = t->lat_max;
        e_reset += t->err_reset;
        e_mis += t->err_mismatch;
        e_other += t->err_other;
        live += t->live;
        for (unsigned b = 0; b < HBUCKETS; b++)
            hist[b] += t->hist[b];
        double idle = (double)(idle1[i] - idle0[i]);
        double busy = cpu1[i] > cpu0[i] ? ((double)(cpu1[i] - cpu0[i]) - idle) / wns : 0;
        idle_total += idle;
        if (busy > thr_busy_max)
            thr_busy_max = busy;
    }
    /* The process against the cores it may use (fewer than T when the threads share them). */
    double proc_cpu = (double)(ru1 - ru0) / wns;               /* in cores, spinning included */
    double proc_share = ((double)(ru1 - ru0) - idle_total) / wns / (double)ncpu;
    int saturated = thr_busy_max >= SATURATED || proc_share >= SATURATED;
    /* What the rest of the machine did meanwhile: its busy time less ours and the server's
       (tick-sampled, so within a few percent of a core). */
    double others = -1;
    if (mach0 >= 0 && mach1 >= 0) {
        double o = (double)(mach1 - mach0) - (double)(ru1 - ru0);
        if (srv0 >= 0 && srv1 >= 0)
            o -= (double)(srv1 - srv0);
        others = o > 0 ? o / wns : 0;
    }

    double rps = (double)reqs / window;
    uint64_t p50 = hpercentile(hist, reqs, 0.50), p99 = hpercentile(hist, reqs, 0.99),
             p999 = hpercentile(hist, reqs, 0.999);
    uint64_t errors = err_connect + e_reset + e_mis + e_other;

    printf("echo_load: %s:%s, %llu connections over %llu thread%s, %llu-byte messages, "
           "%llus warm-up, %.2fs window\n",
           host, port, (unsigned long long)(conns - err_connect), (unsigned long long)threads,
           threads == 1 ? "" : "s", (unsigned long long)size, (unsigned long long)warmup, window);
    printf("requests:  %llu (%.0f req/s)\n", (unsigned long long)reqs, rps);
    printf("latency:   p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n", p50 / 1e3,
           p99 / 1e3, p999 / 1e3, lat_max / 1e3);
    printf("errors:    %llu (connect %llu, reset/eof %llu, mismatch %llu, other %llu); "
           "%llu connections alive at the end\n",
           (unsigned long long)errors, (unsigned long long)err_connect,
           (unsigned long long)e_reset, (unsigned long long)e_mis, (unsigned long long)e_other,
           (unsigned long long)live);
    printf("generator: busiest thread busy %.1f%% of a core; process busy %.1f%% of %ld core%s "
           "(CPU %.1f%%%s); %.1f events per epoll_wait\n",
           thr_busy_max * 100, proc_share * 100, ncpu, ncpu == 1 ? "" : "s", proc_cpu * 100,
           spin ? ", spinning included" : "", polls ? (double)events / (double)polls : 0.0);
    double srv_util = -1, srv_us_req = -1, srv_user_us_req = -1;
    if (server_pid) {
        if (srv0 >= 0 && srv1 >= 0) {
            srv_util = (double)(srv1 - srv0) / (double)(w1 - w0);
            srv_us_req = reqs ? (double)(srv1 - srv0) / 1e3 / (double)reqs : -1;
            srv_user_us_req = reqs ? (double)(srv_user1 - srv_user0) / 1e3 / (double)reqs : -1;
            printf("server:    pid %ld used %.1f%% of a core, %.3f us CPU per request "
                   "(%.3f in user space, the rest in the kernel)\n",
                   server_pid, srv_util * 100, srv_us_req, srv_user_us_req);
        } else {
            printf("server:    pid %ld: /proc/%ld/stat unreadable\n", server_pid, server_pid);
        }
    }
    if (others >= 0)
        printf("others:    the rest of the machine used %.1f%% of a core%s\n", others * 100,
               server_pid ? "" : " (the server included: no --server-pid)");
    if (saturated)
        printf("warning: load generator saturated: the figure is a floor\n");
    if (server_pid && others >= DISTURBED)
        printf("warning: other processes used %.0f%% of a core during the window: the figures "
               "are disturbed\n", others * 100);
    printf("{\"bench\":\"echo_load\",\"host\":\"%s\",\"port\":%s,\"conns\":%llu,\"size\":%llu,"
           "\"threads\":%llu,\"window_s\":%.3f,\"requests\":%llu,\"rps\":%.1f,"
           "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
           "\"errors\":%llu,\"err_connect\":%llu,\"err_reset\":%llu,\"err_mismatch\":%llu,"
           "\"err_other\":%llu,\"gen_thread_busy_max\":%.3f,\"gen_busy_share\":%.3f,"
           "\"gen_cpu\":%.3f,\"gen_spin\":%s,\"events_per_poll\":%.2f,"
           "\"gen_saturated\":%s,\"server_cpu\":%.3f,\"server_cpu_us_per_req\":%.4f,"
           "\"server_user_us_per_req\":%.4f,\"other_cpu\":%.3f}\n",
           host, port, (unsigned long long)conns, (unsigned long long)size,
           (unsigned long long)threads, window, (unsigned long long)reqs, rps, p50 / 1e3,
           p99 / 1e3, p999 / 1e3, lat_max / 1e3, (unsigned long long)errors,
           (unsigned long long)err_connect, (unsigned long long)e_reset,
           (unsigned long long)e_mis, (unsigned long long)e_other, thr_busy_max, proc_share,
           proc_cpu, spin ? "true" : "false", polls ? (double)events / (double)polls : 0.0, saturated ? "true" : "false", srv_util, srv_us_req,
           srv_user_us_req, others);
    fflush(stdout);
    return (errors || !reqs) ? 1 : 0;
}
