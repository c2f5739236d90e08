/* SPDX-License-Identifier: MIT */
/*
 * server_base.h - what the example servers (echo_server, http_server) share, and what a server of
 * your own needs around its connection tasks: listening sockets (one per runtime with
 * --threads), the "listening on" line scripts wait for, accepting with a back-off when the fds run
 * out, the stop on SIGINT/SIGTERM heard by every runtime, and option numbers. Copy it with the
 * server.
 */
#ifndef SERVER_BASE_H
#define SERVER_BASE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "urt.h"

/* A TCP socket listening on host:port (a numeric address: no DNS lookup, so nothing blocks),
   with SO_REUSEADDR, and SO_REUSEPORT when several runtimes share the port. -1 after saying why
   on stderr, prefixed with prog. */
int server_listen(const char *prog, const char *host, unsigned port, bool reuseport);

/* The port fd listens on (what --port 0 got). */
unsigned server_port_of(int fd);

/* Prints "listening on HOST:PORT" (IPv6: [HOST]:PORT) and flushes stdout. */
void server_print_listening(int fd);

/* Blocks SIGINT and SIGTERM in the calling thread and the threads it starts, so that one that
   arrives before server_wait_stop listens waits for it instead of killing the process; *set gets
   the two. Call it first thing in main. */
void server_block_stop_signals(sigset_t *set);

/*
 * (T) Parks until the server should stop: on runtime 0 until SIGINT or SIGTERM (which it returns,
 * or a negative errno), then closes *stop, if there is one, for the others; on the others until
 * that close (returns 1). stop: a shared channel made before urt_run_threads, NULL with one
 * runtime.
 */
int server_wait_stop(const sigset_t *signals, urt_chan *stop);

/* Raises the soft RLIMIT_NOFILE to the hard limit (often 1024 -> 524288): each connection is an
   fd. */
void server_raise_nofile(const char *prog);

/* The number in option opt's value s, at most max; exits 2 (bad usage) when it is not one. */
uint64_t server_number(const char *prog, const char *opt, const char *s, uint64_t max);

/* An accept loop's state: its back-off, and how often it backed off. */
struct server_acceptor {
    const char *prog;
    uint64_t    backoff;    /* ns; 0 after a success */
    uint64_t    backoffs;
};

/*
 * (T) The next connection, with TCP_NODELAY set: from l, or with l NULL from urt_accept on
 * listen_fd (SOCK_CLOEXEC either way). -ECANCELED when the task is cancelled (the server is
 * stopping). Out of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the connection stays queued
 * and accepting again at once would fail again at once: it sleeps, 2 ms doubling to 100 ms, while
 * the connections it has are served and, closing, free fds, then tries again. A broken listener
 * (EBADF, EINVAL, ENOTSOCK, EFAULT) is said on stderr, SIGTERM is sent to the process, so that it
 * stops as on a signal, and the error returned. Any other error ends only that one connection:
 * it tries again.
 */
int server_accept(struct server_acceptor *a, urt_listener *l, int listen_fd);

#endif
