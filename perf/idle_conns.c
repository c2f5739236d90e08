/* SPDX-License-Identifier: MIT */
/*
 * idle_conns - opens many TCP connections to a server and holds them idle, to measure what an
 * idle connection costs the server. Not built on urt (plain epoll).
 *
 *     build/perf/idle_conns --port 7000 --conns 100000 --seconds 120 --server-pid PID
 *
 * One source address has only as many ephemeral ports as net.ipv4.ip_local_port_range holds
 * (~28k by default) for one destination, so the connections are spread round-robin over
 * --sources loopback source addresses 127.0.0.2, 127.0.0.3, ... (each socket is bound to its
 * source address, port 0, before connect; IP_BIND_ADDRESS_NO_PORT lets connect pick the port).
 * The whole 127.0.0.0/8 is local on Linux, so no address needs configuring. The destination
 * must be a numeric IPv4 loopback address.
 *
 * Connects are non-blocking, at most --window in flight at once, so that the server's listen
 * backlog is not flooded (a full backlog drops SYNs, and the client then waits a second for the
 * retransmission). Nothing is ever sent: once connected, a connection is only watched for the
 * server closing it (EOF or reset), which is counted.
 *
 * RLIMIT_NOFILE is raised to fit the connections: the soft limit, and the hard limit too where
 * it is too low (possible as root, up to /proc/sys/fs/nr_open).
 *
 * With --server-pid PID, once all connections are up it waits (up to --accept-wait seconds) for
 * the server to hold at least that many more fds than it did before (/proc/PID/fd), then reads
 * VmRSS and VmHWM from /proc/PID/status, before and after, and reports the growth per
 * connection.
 *
 * Output: "connected C of N in T s (F failed)", "holding C connections for S s" (flushed, for
 * scripts), then the server's figures if asked, the number closed by the server during the
 * hold, and one JSON line. SIGINT or SIGTERM ends the hold early (normally). Every connection
 * is closed on exit.
 *
 * Exit status: 0; 1 when a connect failed or the server closed connections; 2 for bad options
 * or setup failures.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_EVENTS 1024

/* epoll data: the fd in the low 32 bits, bit 32 set while the connect is still pending. */
#define PENDING (1ull << 32)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s --port P [--host H] [--conns N] [--seconds S] [--sources K]\n"
            "       [--window W] [--server-pid PID] [--accept-wait S] [--help]\n"
            "\n"
            "Opens N TCP connections to H:P, spread over K loopback source addresses\n"
            "(127.0.0.2, 127.0.0.3, ...), and holds them idle for S seconds: nothing is sent.\n"
            "Counts connect failures and connections the server closes. Raises its own\n"
            "RLIMIT_NOFILE (soft, and hard where needed: root, up to /proc/sys/fs/nr_open).\n"
            "\n"
            "  --host H          server's numeric IPv4 loopback address (default 127.0.0.1)\n"
            "  --port P          server port (required)\n"
            "  --conns N         connections (default 100000)\n"
            "  --seconds S       how long to hold them once connected (default 60; 0: until\n"
            "                    SIGINT/SIGTERM)\n"
            "  --sources K       source addresses (default: one per 10000 connections, at\n"
            "                    least 1)\n"
            "  --window W        connects in flight at once (default 256)\n"
            "  --server-pid PID  once connected, wait for that process to hold N more fds,\n"
            "                    then report its VmRSS/VmHWM and the growth per connection\n"
            "  --accept-wait S   how long to wait for that (default 60)\n"
            "  --help            print this help and exit\n"
            "\n"
            "Exit status: 0; 1 when a connect failed or the server closed connections; 2 for\n"
            "bad options or setup failures.\n",
            prog);
}

/* ---- the server's figures (/proc/PID) ---- */

static long count_fds(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* A "Name:   N kB" field of /proc/PID/status, in kB; -1 when unreadable. */
static long status_kb(long pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t len = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* ---- setup ---- */

static int raise_nofile(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur >= need)
        return 0;
    rl.rlim_cur = need;
    if (rl.rlim_max < need)
        rl.rlim_max = need;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

/* Starts one non-blocking connect from src to dst; the fd, or -errno. */
static int start_connect(int ep, const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);   /* best effort */
    if (bind(fd, (const struct sockaddr *)src, sizeof *src) < 0 ||
        (connect(fd, (const struct sockaddr *)dst, sizeof *dst) < 0 && errno != EINPROGRESS)) {
        int err = errno;
        close(fd);
        return -err;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = PENDING | (uint32_t)fd };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *prog = argv[0];
    const char *host = "127.0.0.1";
    long port = -1, pid = 0;
    uint64_t conns = 100000, seconds = 60, sources = 0, window = 256, accept_wait = 60;

    static const struct option opts[] = {
        { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },
        { "conns", required_argument, NULL, 'n' },
        { "seconds", required_argument, NULL, 's' },
        { "sources", required_argument, NULL, 'k' },
        { "window", required_argument, NULL, 'w' },
        { "server-pid", required_argument, NULL, 'P' },
        { "accept-wait", required_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'H' },
        { 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': port = (long)bench_parse_u64(prog, "--port", optarg, 1, 65535); break;
        case 'n': conns = bench_parse_u64(prog, "--conns", optarg, 1, 10000000); break;
        case 's': seconds = bench_parse_u64(prog, "--seconds", optarg, 0, 86400 * 365); break;
        case 'k': sources = bench_parse_u64(prog, "--sources", optarg, 1, 65000); break;
        case 'w': window = bench_parse_u64(prog, "--window", optarg, 1, 1000000); break;
        case 'P': pid = (long)bench_parse_u64(prog, "--server-pid", optarg, 1, 1u << 30); break;
        case 'a': accept_wait = bench_parse_u64(prog, "--accept-wait", optarg, 0, 86400); break;
        case 'H': usage(stdout, prog); return 0;
        default: usage(stderr, prog); return 2;
        }
    }
    if (optind < argc || port < 0) {
        usage(stderr, prog);
        return 2;
    }
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 ||
        (ntohl(dst.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "%s: --host wants a numeric IPv4 loopback address (127.x.x.x), not '%s'\n",
                prog, host);
        return 2;
    }
    if (!sources)
        sources = (conns + 9999) / 10000;

    if (raise_nofile((rlim_t)(conns + 64)) < 0) {
        fprintf(stderr, "%s: cannot raise RLIMIT_NOFILE to %llu: %s (root may go up to "
                "/proc/sys/fs/nr_open)\n", prog, (unsigned long long)(conns + 64),
                strerror(errno));
        return 2;
    }
    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART: epoll_wait -> EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("epoll_create1");
        return 2;
    }
    long fds_before = 0, rss_before = 0, hwm_before = 0;
    if (pid) {
        fds_before = count_fds(pid);
        rss_before = status_kb(pid, "VmRSS");
        hwm_before = status_kb(pid, "VmHWM");
        if (fds_before < 0 || rss_before < 0) {
            fprintf(stderr, "%s: cannot read /proc/%ld: %s\n", prog, pid, strerror(errno));
            return 2;
        }
        printf("server before: fds %ld, VmRSS %ld kB, VmHWM %ld kB\n", fds_before, rss_before,
               hwm_before);
    }

    /* ---- connect ---- */
    uint64_t started = 0, connected = 0, failed = 0, in_flight = 0, peer_closed = 0;
    uint64_t first_err = 0;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t t0 = bench_now(), last_report = t0;
    while ((started < conns || in_flight) && !stop) {
        while (started < conns && in_flight < window) {
            struct sockaddr_in src = { .sin_family = AF_INET };
            src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(started % sources));
            int fd = start_connect(ep, &src, &dst);
            started++;
            if (fd < 0) {
                failed++;
                if (!first_err)
                    first_err = (uint64_t)-fd;
                if (fd == -EMFILE || fd == -ENFILE)
                    break;
                continue;
            }
            in_flight++;
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 2;
        }
        for (int i = 0; i < n; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            if (!(evs[i].data.u64 & PENDING)) {   /* an established one closed early */
                char c;
                ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    peer_closed++;
                    close(fd);
                }
                continue;
            }
            in_flight--;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                failed++;
                if (!first_err)
                    first_err = (uint64_t)err;
                close(fd);
                continue;
            }
            connected++;
            /* From now on: watch for the server closing it. */
            struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint32_t)fd };
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        }
        uint64_t now = bench_now();
        if (now - last_report >= 5000000000ull) {
            last_report = now;
            fprintf(stderr, "  ... %llu connected, %llu failed, %.1f s\n",
                    (unsigned long long)connected, (unsigned long long)failed,
                    (double)(now - t0) / 1e9);
        }
    }
    double connect_s = (double)(bench_now() - t0) / 1e9;
    printf("connected %llu of %llu in %.2f s (%llu failed%s%s) from %llu source addresses\n",
           (unsigned long long)connected, (unsigned long long)conns, connect_s,
           (unsigned long long)failed, first_err ? "; first: " : "",
           first_err ? strerror((int)first_err) : "", (unsigned long long)sources);
    fflush(stdout);

    /* ---- the server's figures, once it has accepted them ---- */
    long fds_after = -1, rss_after = -1, hwm_after = -1;
    double accept_s = 0;
    if (pid && !stop) {
        uint64_t deadline = bench_now() + accept_wait * 1000000000ull;
        for (;;) {
            fds_after = count_fds(pid);
            if (fds_after < 0 || fds_after - fds_before >= (long)(connected - peer_closed) ||
                bench_now() >= deadline || stop)
                break;
            usleep(200000);
        }
        accept_s = (double)(bench_now() - t0) / 1e9 - connect_s;
        sleep(1);   /* let the last tasks spawned reach their first wait */
        fds_after = count_fds(pid);
        rss_after = status_kb(pid, "VmRSS");
        hwm_after = status_kb(pid, "VmHWM");
        long added = fds_after - fds_before;
        printf("server after: fds %ld (+%ld), VmRSS %ld kB, VmHWM %ld kB\n", fds_after, added,
               rss_after, hwm_after);
        if (added < (long)(connected - peer_closed))
            printf("warning: the server holds only %ld more fds than before, not %llu\n", added,
                   (unsigned long long)(connected - peer_closed));
        if (added > 0)
            printf("server growth per connection: VmRSS %.0f bytes, VmHWM %.0f bytes "
                   "(over %ld connections)\n", (double)(rss_after - rss_before) * 1024 / added,
                   (double)(hwm_after - hwm_before) * 1024 / added, added);
        fflush(stdout);
    }

    /* ---- hold ---- */
    printf("holding %llu connections for %llu s\n", (unsigned long long)(connected - peer_closed),
           (unsigned long long)seconds);
    fflush(stdout);
    uint64_t end = bench_now() + seconds * 1000000000ull;
    while (!stop) {
        int timeout = -1;
        if (seconds) {
            uint64_t now = bench_now();
            if (now >= end)
                break;
            uint64_t left_ms = (end - now + 999999) / 1000000;
            timeout = left_ms > 1000 ? 1000 : (int)left_ms;
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            char buf[256];
            ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                peer_closed++;
                close(fd);
            }
        }
    }
    printf("closed by the server: %llu\n", (unsigned long long)peer_closed);
    printf("{\"bench\":\"idle_conns\",\"conns\":%llu,\"connected\":%llu,\"failed\":%llu,"
           "\"connect_s\":%.3f,\"peer_closed\":%llu,\"sources\":%llu",
           (unsigned long long)conns, (unsigned long long)connected, (unsigned long long)failed,
           connect_s, (unsigned long long)peer_closed, (unsigned long long)sources);
    if (pid)
        printf(",\"server_fds_before\":%ld,\"server_fds\":%ld,\"server_rss_kb_before\":%ld,"
               "\"server_rss_kb\":%ld,\"server_hwm_kb\":%ld,\"accept_wait_s\":%.3f",
               fds_before, fds_after, rss_before, rss_after, hwm_after, accept_s);
    printf("}\n");
    fflush(stdout);
    /* Exit closes every connection. */
    return failed || peer_closed ? 1 : 0;
}
