/* SPDX-License-Identifier: MIT */
/*
 * thread_server.h - the threaded test server of test_fetch and test_fetch_tls: a listener on
 * 127.0.0.1, an acceptor thread, and a detached thread per connection that sets 5 s receive and
 * send timeouts on it (nothing there can hang a test for long), calls the includer's serve
 * callback, then closes it. The harness counts connections accepted, handlers running and the
 * requests that serve reports; thread_server_stop waits for the handlers to end. serve callbacks
 * send filler bodies with thread_server_fill. The includer includes urt_test.h first.
 */
#ifndef URT_TESTS_THREAD_SERVER_H
#define URT_TESTS_THREAD_SERVER_H

#include <pthread.h>
#include <time.h>

/* Serves the connection fd, the index-th accepted (from 0), until it is done with it; the
   harness closes fd after. Runs in the connection's own thread. */
typedef void thread_server_serve_fn(void *ctx, int fd, int index);

struct thread_server {
    int                     listen_fd;
    int                     port;
    thread_server_serve_fn *serve;      /* NULL: nobody accepts */
    void                   *ctx;
    pthread_t               acceptor;
    pthread_mutex_t         lock;       /* over the counters below */
    pthread_cond_t          idle;       /* handlers reached 0 */
    int                     handlers;   /* connection threads running */
    int                     accepted;   /* connections accepted */
    int                     requests;   /* requests read (thread_server_count) */
    int                     bad;        /* requests that serve found wrong */
};

struct thread_server_conn {
    struct thread_server *s;
    int                   fd;
    int                   index;
};

static inline void thread_server_handler_done(struct thread_server *s)
{
    pthread_mutex_lock(&s->lock);
    if (--s->handlers == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

static inline void *thread_server_handler(void *arg)
{
    struct thread_server_conn c = *(struct thread_server_conn *)arg;
    free(arg);
    struct timeval tv = { 5, 0 };
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c.s->serve(c.s->ctx, c.fd, c.index);
    close(c.fd);
    thread_server_handler_done(c.s);
    return NULL;
}

static inline void *thread_server_acceptor(void *arg)
{
    struct thread_server *s = arg;
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;   /* shut down by thread_server_stop */
        }
        struct thread_server_conn *c = calloc(1, sizeof *c);
        pthread_mutex_lock(&s->lock);
        s->handlers++;
        int index = s->accepted++;
        pthread_mutex_unlock(&s->lock);
        pthread_t t;
        if (c)
            *c = (struct thread_server_conn){ .s = s, .fd = fd, .index = index };
        if (!c || pthread_create(&t, NULL, thread_server_handler, c) != 0) {
            free(c);
            close(fd);
            thread_server_handler_done(s);
            continue;
        }
        pthread_detach(t);
    }
}

/* Listens on 127.0.0.1 (the port in s->port) with backlog, its counters at 0, and accepts with
   serve(ctx, ...) for each connection. serve NULL: listens and never accepts, so the kernel
   completes the TCP handshake and nobody ever reads. */
static inline void thread_server_start(struct thread_server *s, int backlog,
                                       thread_server_serve_fn *serve, void *ctx)
{
    *s = (struct thread_server){ .serve = serve, .ctx = ctx };
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    struct sockaddr_in a;
    s->listen_fd = ut_tcp_listener(backlog, &a);
    assert_true(s->listen_fd >= 0);
    s->port = ntohs(a.sin_port);
    if (serve)
        assert_int_equal(pthread_create(&s->acceptor, NULL, thread_server_acceptor, s), 0);
}

/* Counts one request read by serve; ok 0: a bad one. */
static inline void thread_server_count(struct thread_server *s, int ok)
{
    pthread_mutex_lock(&s->lock);
    s->requests++;
    s->bad += !ok;
    pthread_mutex_unlock(&s->lock);
}

/* Sends n bytes of 'x' through put(to, buf, len), which returns 0, or -1 on an error. 0 or -1. */
static inline int thread_server_fill(int (*put)(void *to, const void *buf, size_t len), void *to,
                                     size_t n)
{
    char buf[8192];
    memset(buf, 'x', sizeof buf);
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        if (put(to, buf, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* Stops accepting and waits (up to wait_s seconds) for the connection threads to end: each ends
   when its peer closes, so an idle server means the client closed every connection. Fails the
   test if some are left. */
static inline void thread_server_stop(struct thread_server *s, int wait_s)
{
    shutdown(s->listen_fd, SHUT_RDWR);   /* wakes accept() */
    if (s->serve)
        pthread_join(s->acceptor, NULL);
    close(s->listen_fd);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_s;
    pthread_mutex_lock(&s->lock);
    while (s->handlers > 0 && pthread_cond_timedwait(&s->idle, &s->lock, &until) == 0)
        ;
    int left = s->handlers;
    pthread_mutex_unlock(&s->lock);
    assert_int_equal(left, 0);
}

#endif
