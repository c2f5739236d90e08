/* SPDX-License-Identifier: MIT */
/*
 * echo_epoll - the baseline echo server done with epoll and non-blocking sockets
 * (perf/echo_bench.sh compares it and urt's echo server with the raw liburing one).
 *
 * One thread, one level-triggered epoll set. The listening socket accepts until EAGAIN. A
 * readable connection does one recv (up to ECHO_BUF bytes) and one send of what it got; after a
 * short send it waits for EPOLLOUT only (reading nothing more) until the rest has gone.
 */
#include <fcntl.h>
#include <sys/epoll.h>

#include "echo_common.h"

#define MAX_EVENTS 512

struct conn {
    int fd;
    unsigned len, off;       /* bytes waiting to be sent: buf[off..len)                         */
    unsigned char buf[ECHO_BUF];
};

static int ep, listen_fd;
static char listen_tag;      /* epoll data for the listening socket                             */

static void conn_close(struct conn *c)
{
    close(c->fd); /* leaves the epoll set with its last reference */
    free(c);
}

static void watch(struct conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends buf[off..len); 1 when all of it went, 0 when the socket is full, -1 on error. */
static int flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n > 0) {
            c->off += (unsigned)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    return 1;
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "echo_epoll: accept: %s\n", strerror(errno));
            return;
        }
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->len = c->off = 0;
        echo_tune(fd);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            fprintf(stderr, "echo_epoll: epoll_ctl: %s\n", strerror(errno));
            conn_close(c);
        }
    }
}

static void on_conn(struct conn *c, uint32_t events)
{
    if (c->off < c->len) { /* the rest of a short send */
        int r = flush(c);
        if (r < 0)
            conn_close(c);
        else if (r > 0)
            watch(c, EPOLLIN);
        return;
    }
    ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->len = (unsigned)n;
    c->off = 0;
    int r = flush(c);
    if (r < 0)
        conn_close(c);
    else if (r == 0)
        watch(c, EPOLLOUT);
    (void)events;
}

int main(int argc, char **argv)
{
    listen_fd = echo_listen(argc, argv,
                            "The epoll echo server baseline: level-triggered epoll, non-blocking\n"
                            "sockets, one recv then one send per readable connection.",
                            1);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listen_tag };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev) < 0) {
        fprintf(stderr, "echo_epoll: epoll: %s\n", strerror(errno));
        return 1;
    }
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "echo_epoll: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listen_tag)
                on_accept();
            else
                on_conn(evs[i].data.ptr, evs[i].events);
        }
    }
}
