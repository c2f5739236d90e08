/* SPDX-License-Identifier: MIT */
/* server_base.c - see server_base.h. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_base.h"

#define BACKOFF_MIN URT_MSEC(2)
#define BACKOFF_MAX URT_MSEC(100)

int server_listen(const char *prog, const char *host, unsigned port, bool reuseport)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *ai;
    char service[16];
    snprintf(service, sizeof service, "%u", port);
    int err = getaddrinfo(host, service, &hints, &ai);
    if (err) {
        fprintf(stderr, "%s: --host %s: %s\n", prog, host, gai_strerror(err));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "%s: %s port %s: %s\n", prog, host, service, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

unsigned server_port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

void server_print_listening(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST], port[NI_MAXSERV];
    getsockname(fd, (struct sockaddr *)&ss, &len);
    getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
                NI_NUMERICHOST | NI_NUMERICSERV);
    printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%s\n" : "listening on %s:%s\n", host,
           port);
    fflush(stdout);   /* scripts and tests wait for this line */
}

void server_block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int server_wait_stop(const sigset_t *signals, urt_chan *stop)
{
    if (urt_thread_index() != 0) {
        int dummy;
        urt_chan_recv(stop, &dummy);   /* -EPIPE once closed */
        return 1;
    }
    int sig = urt_signal_wait(signals);
    if (sig < 0)
        fprintf(stderr, "urt_signal_wait: %s\n", strerror(-sig));
    if (stop)
        urt_chan_close(stop);
    return sig;
}

void server_raise_nofile(const char *prog)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fprintf(stderr, "%s: setrlimit(RLIMIT_NOFILE): %s\n", prog, strerror(errno));
    }
}

uint64_t server_number(const char *prog, const char *opt, const char *s, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max) {
        fprintf(stderr, "%s: --%s: bad value '%s'\n", prog, opt, s);
        exit(2);
    }
    return v;
}

int server_accept(struct server_acceptor *a, urt_listener *l, int listen_fd)
{
    for (;;) {
        int fd = l ? urt_listener_accept(l) : urt_accept(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            a->backoff = 0;
            /* Replies go out whole (or held back on purpose with MSG_MORE): never wait for
               Nagle. */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
            return fd;
        }
        if (fd == -ECANCELED)
            return fd;
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            a->backoffs++;
            a->backoff = a->backoff ? a->backoff * 2 : BACKOFF_MIN;
            if (a->backoff > BACKOFF_MAX)
                a->backoff = BACKOFF_MAX;
            if (urt_sleep(a->backoff) == -ECANCELED)
                return -ECANCELED;
            continue;
        }
        if (fd == -EBADF || fd == -EINVAL || fd == -ENOTSOCK || fd == -EFAULT) {
            fprintf(stderr, "%s: accept: %s\n", a->prog, strerror(-fd));
            kill(getpid(), SIGTERM);
            return fd;
        }
        /* ECONNABORTED, EPERM, EPROTO...: that one connection failed */
    }
}
