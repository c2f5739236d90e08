/* SPDX-License-Identifier: MIT */
/*
 * soak_clients - misbehaving clients for an echo server's soak test (perf/soak.sh). Not built on
 * urt (plain sockets and epoll), loopback only.
 *
 *     build/perf/soak_clients --mode reset --port 7000 --seconds 60
 *     build/perf/soak_clients --mode storm --port 7000 --seconds 60 --burst 200
 *
 * --mode reset: keeps --conns connections open in a ring and replaces them at --rate per second.
 * Each new connection is one of four kinds, in turn:
 *   half-held    sends half a message, is held while the ring goes round (the server has
 *                echoed that half by then, and is waiting for the rest), then reset;
 *   empty-held   sends nothing, is held likewise, then reset;
 *   half-now     sends half a message and is reset at once (the reset may overtake the echo);
 *   empty-now    is reset as soon as it is connected (possibly before the server accepts it).
 * A reset is a close with SO_LINGER {1, 0}: the kernel sends RST, not FIN, and any echoed
 * bytes still unread are discarded.
 *
 * --mode storm: bursts. Each burst starts --burst non-blocking connects at once, sends one
 * message of --size bytes on each connection as it comes up, reads and checks the echo on every
 * other connection (the rest never read theirs), then closes them all at once (an ordinary
 * close: FIN, or RST from the kernel where echoed bytes were left unread), pauses --pause ms,
 * and starts the next burst. A connection that does not come up, or an echo not back, within
 * --timeout ms is counted and closed with the rest.
 *
 * Each mode binds its sockets to its own loopback source addresses (reset: 127.0.2.1.., storm:
 * 127.0.3.1.., --sources of them, round-robin), so that the ports its closes leave in TIME_WAIT
 * are not taken from other clients of the same server. The destination must be a numeric IPv4
 * loopback address.
 *
 * Prints a line of text and one JSON line with what it did. Exit status: 0; 1 when no connection
 * came up at all (the server was not there); 2 for bad options or setup failures. Echo
 * mismatches or connects that failed do not change the exit status: they are reported in the
 * JSON for the caller to judge.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_EVENTS 256

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s --mode reset|storm --port P [--host H] [--seconds S] [--conns N]\n"
            "       [--rate R] [--burst B] [--pause MS] [--size M] [--timeout MS]\n"
            "       [--sources K] [--help]\n"
            "\n"
            "Misbehaving clients for an echo server's soak test (plain sockets, not urt).\n"
            "  reset: connections that send half a message or nothing, then close with RST\n"
            "         (SO_LINGER {1,0}), at once or after being held a while;\n"
            "  storm: bursts of B connections opened at once, one message each, the echo\n"
            "         read on every other one, then all closed together.\n"
            "Prints a line of text and one JSON line with the counts.\n"
            "\n"
            "  --mode M        reset or storm (required)\n"
            "  --host H        server's numeric IPv4 loopback address (default 127.0.0.1)\n"
            "  --port P        server port (required)\n"
            "  --seconds S     how long to go on (default 60)\n"
            "  --conns N       reset: connections held open at once (default 50)\n"
            "  --rate R        reset: new connections per second (default 500)\n"
            "  --burst B       storm: connections per burst (default 200)\n"
            "  --pause MS      storm: pause between bursts (default 200)\n"
            "  --size M        message size in bytes (default 512; reset sends half of it)\n"
            "  --timeout MS    connect timeout, and storm's wait for echoes (default 2000)\n"
            "  --sources K     source addresses, 127.0.2.1.. (reset) or 127.0.3.1.. (storm)\n"
            "                  (default 4)\n"
            "  --help          print this help and exit\n"
            "\n"
            "Exit status: 0; 1 when no connection came up at all; 2 for bad options.\n",
            prog);
}

/* ---- shared ---- */

static struct sockaddr_in dst;
static uint32_t src_base;        /* host order */
static uint64_t nsources, src_next;
static unsigned char *pattern;   /* the message's bytes                                       */
static size_t msg_size;
static int connect_timeout_ms;

static void fill_pattern(size_t n)
{
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
        pattern[i] = (unsigned char)((x * 0x9E3779B97F4A7C15ull) >> 56);
    }
}

/* A socket bound to the next source address; the fd, or -errno. */
static int new_socket(int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);   /* best effort */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(src_base + (uint32_t)(src_next++ % nsources));
    if (bind(fd, (const struct sockaddr *)&src, sizeof src) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* Close with RST: SO_LINGER on, zero seconds. */
static void close_rst(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void sleep_until(uint64_t t)
{
    uint64_t now = bench_now();
    if (t <= now)
        return;
    struct timespec ts = { .tv_sec = (time_t)((t - now) / 1000000000ull),
                           .tv_nsec = (long)((t - now) % 1000000000ull) };
    nanosleep(&ts, NULL);   /* EINTR (a stop signal): the caller looks at `stop` */
}

/* ---- reset ---- */

enum { HALF_HELD, EMPTY_HELD, HALF_NOW, EMPTY_NOW, NKINDS };
static const char *const kind_name[NKINDS] = { "half_held", "empty_held", "half_now", "empty_now" };

struct slot {
    int fd;
    int kind;
};

static int run_reset(uint64_t seconds, uint64_t nconns, uint64_t rate)
{
    struct slot *ring = malloc(nconns * sizeof *ring);
    if (!ring) {
        fprintf(stderr, "soak_clients: out of memory\n");
        return 2;
    }
    for (uint64_t i = 0; i < nconns; i++)
        ring[i].fd = -1;

    uint64_t connects = 0, connect_failed = 0, send_failed = 0, bytes_sent = 0;
    uint64_t resets[NKINDS] = { 0 };
    int first_err = 0;
    const size_t half = msg_size / 2 ? msg_size / 2 : 1;
    const uint64_t period = 1000000000ull / rate;
    const uint64_t t0 = bench_now(), end = t0 + seconds * 1000000000ull;
    uint64_t next = t0, n = 0;
    struct timeval tv = { .tv_sec = connect_timeout_ms / 1000,
                          .tv_usec = (connect_timeout_ms % 1000) * 1000 };

    while (!stop && bench_now() < end) {
        struct slot *s = &ring[n % nconns];
        int kind = (int)(n % NKINDS);
        n++;
        if (s->fd >= 0) {          /* held once round the ring: reset it now */
            close_rst(s->fd);
            resets[s->kind]++;
            s->fd = -1;
        }
        int fd = new_socket(0);
        if (fd >= 0) {
            /* A blocking connect bounded by SO_SNDTIMEO (a full listen backlog drops SYNs). */
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            if (connect(fd, (const struct sockaddr *)&dst, sizeof dst) < 0) {
                int err = errno;
                close(fd);
                fd = -err;
            }
        }
        if (fd < 0) {
            connect_failed++;
            if (!first_err)
                first_err = -fd;
        } else {
            connects++;
            if (kind == HALF_HELD || kind == HALF_NOW) {
                ssize_t w = send(fd, pattern, half, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0)
                    bytes_sent += (uint64_t)w;
                else
                    send_failed++;
            }
            if (kind == HALF_NOW || kind == EMPTY_NOW) {
                close_rst(fd);
                resets[kind]++;
            } else {
                s->fd = fd;
                s->kind = kind;
            }
        }
        next += period;
        uint64_t now = bench_now();
        if (next + 100000000ull < now)   /* fell behind by > 100 ms: do not catch up in a rush */
            next = now;
        sleep_until(next < end ? next : end);
    }
    for (uint64_t i = 0; i < nconns; i++)
        if (ring[i].fd >= 0) {
            close_rst(ring[i].fd);
            resets[ring[i].kind]++;
        }
    free(ring);

    double el = (double)(bench_now() - t0) / 1e9;
    uint64_t total = 0;
    for (int k = 0; k < NKINDS; k++)
        total += resets[k];
    printf("soak_clients reset: %llu connections in %.1f s (%llu failed%s%s), %llu reset "
           "(half_held %llu, empty_held %llu, half_now %llu, empty_now %llu)\n",
           (unsigned long long)connects, el, (unsigned long long)connect_failed,
           first_err ? "; first: " : "", first_err ? strerror(first_err) : "",
           (unsigned long long)total, (unsigned long long)resets[HALF_HELD],
           (unsigned long long)resets[EMPTY_HELD], (unsigned long long)resets[HALF_NOW],
           (unsigned long long)resets[EMPTY_NOW]);
    printf("{\"bench\":\"soak_clients\",\"mode\":\"reset\",\"seconds\":%.3f,\"connects\":%llu,"
           "\"connect_failed\":%llu,\"first_error\":\"%s\",\"resets\":%llu",
           el, (unsigned long long)connects, (unsigned long long)connect_failed,
           first_err ? strerror(first_err) : "", (unsigned long long)total);
    for (int k = 0; k < NKINDS; k++)
        printf(",\"%s\":%llu", kind_name[k], (unsigned long long)resets[k]);
    printf(",\"bytes_sent\":%llu,\"send_failed\":%llu}\n", (unsigned long long)bytes_sent,
           (unsigned long long)send_failed);
    fflush(stdout);
    return connects ? 0 : 1;
}

/* ---- storm ---- */

enum { S_CONNECTING, S_SENDING, S_READING, S_DONE };

struct sconn {
    int fd;
    int state;
    int read_echo;     /* this one reads its echo                           */
    size_t sent, got;
};

static int run_storm(uint64_t seconds, uint64_t burst, uint64_t pause_ms)
{
    struct sconn *c = calloc(burst, sizeof *c);
    unsigned char *rx = malloc(msg_size);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!c || !rx || ep < 0) {
        fprintf(stderr, "soak_clients: setup: %s\n", strerror(errno));
        return 2;
    }
    uint64_t bursts = 0, connects = 0, connect_failed = 0, connect_timeouts = 0;
    uint64_t messages = 0, send_failed = 0, echoed = 0, mismatched = 0, echo_lost = 0;
    uint64_t echo_timeouts = 0, unread = 0, peak_burst_ms = 0;
    int first_err = 0;
    struct epoll_event evs[MAX_EVENTS];
    const uint64_t t0 = bench_now(), end = t0 + seconds * 1000000000ull;

#define FAIL_CONN(cc, err)                                                                     \
    do {                                                                                       \
        if (!first_err)                                                                        \
            first_err = (err);                                                                 \
        epoll_ctl(ep, EPOLL_CTL_DEL, (cc)->fd, NULL);                                          \
        close((cc)->fd);                                                                       \
        (cc)->fd = -1;                                                                         \
        (cc)->state = S_DONE;                                                                  \
        pending--;                                                                             \
    } while (0)

    while (!stop && bench_now() < end) {
        uint64_t b0 = bench_now(), pending = 0;
        bursts++;
        /* 1. B connects at once. */
        for (uint64_t i = 0; i < burst; i++) {
            struct sconn *cc = &c[i];
            cc->sent = cc->got = 0;
            cc->read_echo = (int)(i & 1) == 0;
            cc->state = S_DONE;
            cc->fd = new_socket(1);
            if (cc->fd >= 0 && connect(cc->fd, (const struct sockaddr *)&dst, sizeof dst) < 0 &&
                errno != EINPROGRESS) {
                int err = errno;
                close(cc->fd);
                cc->fd = -err;
            }
            if (cc->fd < 0) {
                connect_failed++;
                if (!first_err)
                    first_err = -cc->fd;
                cc->fd = -1;
                continue;
            }
            cc->state = S_CONNECTING;
            struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = cc };
            epoll_ctl(ep, EPOLL_CTL_ADD, cc->fd, &ev);
            pending++;
        }
        /* 2. As each comes up: send the message; then read the echo, or (every other one) not. */
        uint64_t deadline = bench_now() + (uint64_t)connect_timeout_ms * 1000000ull;
        while (pending && !stop) {
            uint64_t now = bench_now();
            if (now >= deadline)
                break;
            int left_ms = (int)((deadline - now + 999999) / 1000000);
            int n = epoll_wait(ep, evs, MAX_EVENTS, left_ms);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                fprintf(stderr, "soak_clients: epoll_wait: %s\n", strerror(errno));
                return 2;
            }
            for (int i = 0; i < n; i++) {
                struct sconn *cc = evs[i].data.ptr;
                if (cc->state == S_CONNECTING) {
                    int err = 0;
                    socklen_t len = sizeof err;
                    getsockopt(cc->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                    if (err) {
                        connect_failed++;
                        FAIL_CONN(cc, err);
                        continue;
                    }
                    connects++;
                    messages++;
                    cc->state = S_SENDING;
                }
                if (cc->state == S_SENDING) {
                    ssize_t w = send(cc->fd, pattern + cc->sent, msg_size - cc->sent,
                                     MSG_NOSIGNAL);
                    if (w < 0 && errno != EAGAIN && errno != EINTR) {
                        send_failed++;
                        FAIL_CONN(cc, errno);
                        continue;
                    }
                    if (w > 0)
                        cc->sent += (size_t)w;
                    if (cc->sent < msg_size)
                        continue;
                    if (!cc->read_echo) {
                        unread++;
                        epoll_ctl(ep, EPOLL_CTL_DEL, cc->fd, NULL);
                        cc->state = S_DONE;    /* closed with the rest, the echo unread */
                        pending--;
                        continue;
                    }
                    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = cc };
                    epoll_ctl(ep, EPOLL_CTL_MOD, cc->fd, &ev);
                    cc->state = S_READING;
                    continue;
                }
                if (cc->state == S_READING) {
                    ssize_t r = recv(cc->fd, rx + cc->got, msg_size - cc->got, 0);
                    if (r < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                    if (r <= 0) {      /* EOF or an error before the whole echo */
                        echo_lost++;
                        FAIL_CONN(cc, r < 0 ? errno : 0);
                        continue;
                    }
                    cc->got += (size_t)r;
                    if (cc->got < msg_size)
                        continue;
                    if (memcmp(rx, pattern, msg_size) == 0)
                        echoed++;
                    else
                        mismatched++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, cc->fd, NULL);
                    cc->state = S_DONE;
                    pending--;
                }
            }
        }
        /* 3. Whatever is not done by now timed out. Close them all, together. */
        for (uint64_t i = 0; i < burst; i++) {
            struct sconn *cc = &c[i];
            if (cc->fd < 0)
                continue;
            if (cc->state == S_CONNECTING) {
                connect_timeouts++;
                connect_failed++;
                if (!first_err)
                    first_err = ETIMEDOUT;
            } else if (cc->state != S_DONE) {
                echo_timeouts++;
            }
            if (cc->state != S_DONE)
                epoll_ctl(ep, EPOLL_CTL_DEL, cc->fd, NULL);
        }
        for (uint64_t i = 0; i < burst; i++)
            if (c[i].fd >= 0) {
                close(c[i].fd);
                c[i].fd = -1;
            }
        uint64_t ms = (bench_now() - b0) / 1000000;
        if (ms > peak_burst_ms)
            peak_burst_ms = ms;
        uint64_t wake = bench_now() + pause_ms * 1000000ull;
        sleep_until(wake < end ? wake : end);
    }
#undef FAIL_CONN
    close(ep);
    free(c);
    free(rx);

    double el = (double)(bench_now() - t0) / 1e9;
    printf("soak_clients storm: %llu bursts of %llu in %.1f s: %llu connected (%llu failed%s%s), "
           "%llu echoes checked (%llu mismatched, %llu lost, %llu timed out), %llu left unread; "
           "slowest burst %llu ms\n",
           (unsigned long long)bursts, (unsigned long long)burst, el,
           (unsigned long long)connects, (unsigned long long)connect_failed,
           first_err ? "; first: " : "", first_err ? strerror(first_err) : "",
           (unsigned long long)echoed, (unsigned long long)mismatched,
           (unsigned long long)echo_lost, (unsigned long long)echo_timeouts,
           (unsigned long long)unread, (unsigned long long)peak_burst_ms);
    printf("{\"bench\":\"soak_clients\",\"mode\":\"storm\",\"seconds\":%.3f,\"bursts\":%llu,"
           "\"burst\":%llu,\"connects\":%llu,\"connect_failed\":%llu,\"connect_timeouts\":%llu,"
           "\"first_error\":\"%s\",\"messages\":%llu,\"send_failed\":%llu,\"echoed\":%llu,"
           "\"echo_mismatched\":%llu,\"echo_lost\":%llu,\"echo_timeouts\":%llu,\"unread\":%llu,"
           "\"slowest_burst_ms\":%llu}\n",
           el, (unsigned long long)bursts, (unsigned long long)burst,
           (unsigned long long)connects, (unsigned long long)connect_failed,
           (unsigned long long)connect_timeouts, first_err ? strerror(first_err) : "",
           (unsigned long long)messages, (unsigned long long)send_failed,
           (unsigned long long)echoed, (unsigned long long)mismatched,
           (unsigned long long)echo_lost, (unsigned long long)echo_timeouts,
           (unsigned long long)unread, (unsigned long long)peak_burst_ms);
    fflush(stdout);
    return connects ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *prog = "soak_clients";
    const char *host = "127.0.0.1", *mode = NULL;
    long port = -1;
    uint64_t seconds = 60, nconns = 50, rate = 500, burst = 200, pause_ms = 200, size = 512;
    uint64_t timeout_ms = 2000;
    nsources = 4;

    static const struct option opts[] = {
        { "mode", required_argument, NULL, 'M' },    { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },    { "seconds", required_argument, NULL, 's' },
        { "conns", required_argument, NULL, 'n' },   { "rate", required_argument, NULL, 'r' },
        { "burst", required_argument, NULL, 'b' },   { "pause", required_argument, NULL, 'P' },
        { "size", required_argument, NULL, 'm' },    { "timeout", required_argument, NULL, 't' },
        { "sources", required_argument, NULL, 'k' }, { "help", no_argument, NULL, 'H' },
        { 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'M': mode = optarg; break;
        case 'h': host = optarg; break;
        case 'p': port = (long)bench_parse_u64(prog, "--port", optarg, 1, 65535); break;
        case 's': seconds = bench_parse_u64(prog, "--seconds", optarg, 1, 86400 * 365); break;
        case 'n': nconns = bench_parse_u64(prog, "--conns", optarg, 1, 100000); break;
        case 'r': rate = bench_parse_u64(prog, "--rate", optarg, 1, 1000000); break;
        case 'b': burst = bench_parse_u64(prog, "--burst", optarg, 1, 100000); break;
        case 'P': pause_ms = bench_parse_u64(prog, "--pause", optarg, 0, 3600000); break;
        case 'm': size = bench_parse_u64(prog, "--size", optarg, 1, 1u << 20); break;
        case 't': timeout_ms = bench_parse_u64(prog, "--timeout", optarg, 1, 3600000); break;
        case 'k': nsources = bench_parse_u64(prog, "--sources", optarg, 1, 254); break;
        case 'H': usage(stdout, prog); return 0;
        default: usage(stderr, prog); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        usage(stderr, prog);
        return 2;
    }
    int is_reset = mode && strcmp(mode, "reset") == 0;
    int is_storm = mode && strcmp(mode, "storm") == 0;
    if (!is_reset && !is_storm) {
        fprintf(stderr, "%s: --mode wants reset or storm%s%s\n", prog, mode ? ", not " : "",
                mode ? mode : "");
        usage(stderr, prog);
        return 2;
    }
    if (port < 0) {
        fprintf(stderr, "%s: --port is required\n", prog);
        usage(stderr, prog);
        return 2;
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 ||
        (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "%s: --host wants a numeric IPv4 loopback address (127.x.x.x), not '%s'\n",
                prog, host);
        return 2;
    }
    src_base = is_reset ? 0x7f000201u : 0x7f000301u;   /* 127.0.2.1, 127.0.3.1 */
    msg_size = (size_t)size;
    connect_timeout_ms = (int)timeout_ms;
    pattern = malloc(msg_size);
    if (!pattern) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 2;
    }
    fill_pattern(msg_size);

    /* fds: the ring or a burst, plus a few. */
    uint64_t need = (is_reset ? nconns : burst) + 64;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        rl.rlim_cur = need;
        if (rl.rlim_max < need)
            rl.rlim_max = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            fprintf(stderr, "%s: cannot raise RLIMIT_NOFILE to %llu: %s\n", prog,
                    (unsigned long long)need, strerror(errno));
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    return is_reset ? run_reset(seconds, nconns, rate) : run_storm(seconds, burst, pause_ms);
}
