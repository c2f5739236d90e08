/* SPDX-License-Identifier: MIT */
/* echo_common.h - what the hand-written echo servers in perf/baselines/ share: options
   (--host, --port, --help), the listening socket and its "listening on HOST:PORT" line, and
   exiting 0 on SIGINT/SIGTERM. */
#ifndef URT_PERF_ECHO_COMMON_H
#define URT_PERF_ECHO_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

/* Bytes each connection reads at most per recv (the echo buffer). */
#define ECHO_BUF 16384

static void echo_on_signal(int sig)
{
    (void)sig;
    _exit(0);
}

/* Parses --host/--port/--help (what: one line on what the server is); exits 0 on --help and 2
   on bad options. Installs the exit-0 handlers for SIGINT and SIGTERM, ignores SIGPIPE. Returns
   a listening, close-on-exec socket (nonblocking when nonblock) and prints "listening on
   HOST:PORT", flushed; exits 1 when it cannot listen. */
static int echo_listen(int argc, char **argv, const char *what, int nonblock)
{
    const char *host = "127.0.0.1", *port = "0";
    static const struct option opts[] = {
        { "host", required_argument, 0, 'h' },
        { "port", required_argument, 0, 'p' },
        { "help", no_argument, 0, 'H' },
        { 0, 0, 0, 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': bench_parse_u64(argv[0], "--port", optarg, 0, 65535); port = optarg; break;
        case 'H':
            printf("usage: %s [--host H] [--port P] [--help]\n\n%s\n\n"
                   "  --host H   address to listen on (default 127.0.0.1)\n"
                   "  --port P   port (default 0: the kernel picks a free one)\n"
                   "  --help     print this help and exit\n\n"
                   "Prints \"listening on HOST:PORT\" first; SIGINT or SIGTERM ends it with status 0.\n",
                   argv[0], what);
            exit(0);
        default:
            fprintf(stderr, "usage: %s [--host H] [--port P] [--help]\n", argv[0]);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        exit(2);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = echo_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE }, *ai;
    int r = getaddrinfo(host, port, &hints, &ai);
    if (r) {
        fprintf(stderr, "%s: %s:%s: %s\n", argv[0], host, port, gai_strerror(r));
        exit(1);
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0),
                    ai->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "%s: cannot listen on %s:%s: %s\n", argv[0], host, port, strerror(errno));
        exit(1);
    }
    freeaddrinfo(ai);

    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned pnum = 0;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
        pnum = ntohs(s6->sin6_port);
        printf("listening on [%s]:%u\n", addr, pnum);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
        pnum = ntohs(s4->sin_port);
        printf("listening on %s:%u\n", addr, pnum);
    }
    fflush(stdout);
    return fd;
}

/* The same socket options on every accepted connection, in every baseline. */
static inline void echo_tune(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

#endif
