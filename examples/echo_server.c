/* SPDX-License-Identifier: MIT */
/*
 * echo_server - a TCP echo server with one urt task per connection.
 *
 *     build/examples/echo_server                  # listens on 127.0.0.1:7000
 *     build/examples/echo_server --port 0         # picks a free port; the first line says which
 *     nc 127.0.0.1 7000                           # type lines: they come back
 *     kill -TERM <pid>                            # or Ctrl-C: graceful shutdown, then counters
 *
 * Each connection is served by a task that reads like blocking C: recv, then send everything
 * back and receive the next message in one call (urt_send_recv: the two go to the kernel linked,
 * and the task parks once per message instead of twice; --separate-send: urt_send, then
 * urt_recv), repeat. While it waits, urt runs the other connections. What a server needs beyond
 * that:
 *
 *  - Idle clients: a deadline (urt_deadline) set at the start and after each message received. A peer that sends nothing, or
 *    stops reading what we echo, for --idle-timeout ms makes the call return -ETIMEDOUT. (A
 *    timeout of a second or more is renewed by the coarse clock, urt_now_coarse: it may fire a
 *    few ms early.)
 *  - Accepting: a urt_listener keeps one multishot accept armed, so the kernel accepts each
 *    connection without a request of its own (--plain-accept: one urt_accept per connection).
 *  - Floods: at most --max-conns connections are served. Past that, a new connection is accepted
 *    and closed at once (counted as "refused"), so the client sees EOF instead of hanging in the
 *    listen backlog, and a flood costs no more than --max-conns tasks.
 *  - Running out of file descriptors: accept fails with EMFILE/ENFILE while the connection stays
 *    queued, so retrying at once would spin. The accept loop sleeps instead, a little longer
 *    each time, while the connections it has keep being served and, closing, free fds.
 *  - Shutdown: SIGINT/SIGTERM are read by a task (urt_signal_wait, no signal handler). The
 *    listener closes, live connections get --grace ms to finish, and the rest are cancelled.
 *    All connection tasks belong to one urt_group, so "wait for them, but no longer than the
 *    grace period" is a urt_group_wait under a deadline, and no task or fd can be left behind.
 *  - At start the RLIMIT_NOFILE soft limit is raised to the hard limit: each connection is an fd.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "server_base.h"
#include "urt.h"

/* Settings, read-only once main() has parsed them. */
static struct {
    const char *host;
    unsigned    port;
    uint64_t    max_conns, idle_ns, grace_ns;
    int         plain_accept; /* one urt_accept per connection instead of a urt_listener */
    int         separate_send; /* urt_send then urt_recv instead of urt_send_recv          */
    int         threads;      /* runtimes, one per thread, each with its own listener     */
    int         listen_fds[URT_THREADS_MAX];
    urt_chan   *stop;         /* shared: closed when the first runtime hears the signal  */
    int         signal;       /* the signal that stopped it                               */
} O = { .host = "127.0.0.1", .port = 7000, .max_conns = 10000,
        .idle_ns = URT_MSEC(30000), .grace_ns = URT_MSEC(2000), .threads = 1 };

/*
 * State and counters of one runtime. Every task of a runtime runs on its one thread, one at a
 * time, and switches only inside urt calls: plain (thread-local) variables need no locks. With
 * --threads N each runtime has its own; their counters are summed at the end.
 */
static __thread struct {
    int         listen_fd;
    urt_group  *conns;        /* every connection task */
    uint64_t    live;         /* connection tasks running */

    uint64_t    accepted, refused, idle_closed, peer_closed, cancelled, errors, bytes;
    uint64_t    emfile_backoffs;
} S = { .listen_fd = -1 };

/* The counters of every runtime, summed as each ends. */
static uint64_t total[8];

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [options]\n"
            "\n"
            "A TCP echo server: one urt task per connection.\n"
            "\n"
            "  --host ADDR          numeric IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
            "  --port N             port (default 7000); 0 picks a free one\n"
            "  --max-conns N        connections served at once (default 10000); more are\n"
            "                       accepted and closed at once\n"
            "  --idle-timeout MS    close a connection that makes no progress for MS ms\n"
            "                       (default 30000; 0: never; from 1000 on, a few ms early\n"
            "                       at most: renewed by the coarse clock)\n"
            "  --grace MS           on SIGINT/SIGTERM, how long live connections may go on\n"
            "                       before they are cancelled (default 2000)\n"
            "  --plain-accept       one accept request per connection instead of one multishot\n"
            "                       accept for all (urt_accept instead of a urt_listener; for\n"
            "                       comparison, perf/accept_bench.sh)\n"
            "  --threads N          N runtimes, one per thread (pinned to the CPUs allowed),\n"
            "                       each with its own SO_REUSEPORT listener (default 1)\n"
            "  --separate-send      echo with urt_send, then wait for the next message with\n"
            "                       urt_recv, instead of both in one urt_send_recv (for\n"
            "                       comparison)\n"
            "  --help               print this help and exit\n"
            "\n"
            "Prints \"listening on HOST:PORT\" once ready, and its counters when it stops.\n",
            prog);
}

/* Arms the idle timeout for the next blocking call. It is renewed on every message: a timeout
   of seconds reads the coarse clock, a quarter of the cost, and may fire a few ms early. */
static void idle_deadline(void)
{
    if (!O.idle_ns)
        urt_deadline(0);
    else
        urt_deadline((O.idle_ns >= URT_SEC(1) ? urt_now_coarse() : urt_now()) + O.idle_ns);
}

/*
 * Echoes what is in buf (n bytes) and what follows, until EOF, an error, the idle timeout or
 * cancellation: returns that result (<= 0). With grow set it returns early instead, the bytes
 * unsent, when a message fills buf: the caller goes on with a bigger buffer.
 */
static ssize_t echo(int fd, char *buf, size_t cap, ssize_t n, bool grow)
{
    while (n > 0) {
        if (grow && (size_t)n == cap)
            return n;
        /* Activity: the idle clock starts again, for the echo and the next message alike (one
           clock read per message, not one per call). */
        idle_deadline();
        ssize_t len = n;
        if (!O.separate_send) {
            /* All of it back, then the next message (the same buffer: the receive starts
               once the send is done). MSG_NOSIGNAL: a vanished peer is -EPIPE, not a SIGPIPE
               that kills the server. */
            size_t sent;
            n = urt_send_recv(fd, buf, (size_t)len, buf, cap, MSG_NOSIGNAL, &sent);
            S.bytes += sent;
            continue;
        }
        /* send may take less than all of it when the peer reads slowly: loop. */
        for (ssize_t off = 0, w; off < len; off += w) {
            w = urt_send(fd, buf + off, (size_t)(len - off), MSG_NOSIGNAL);
            if (w < 0)
                return w;
            S.bytes += (uint64_t)w;
        }
        n = urt_recv(fd, buf, cap, 0);
    }
    return n;
}

/* The rest of a connection whose messages outgrew the small buffer: a 4 KiB one, in a frame of
   its own so that a connection that never needs it never touches its page. */
static __attribute__((noinline)) ssize_t echo_large(int fd, const char *pending, ssize_t n)
{
    char buf[4 * 1024];
    memcpy(buf, pending, (size_t)n);
    return echo(fd, buf, sizeof buf, n, false);
}

/*
 * One connection. Owns fd. Its first buffer is small enough that the task's header, this frame
 * and the frames of a blocking call share the stack's top page: a connection of small messages
 * costs one page. The first message that fills it moves the connection to a 4 KiB buffer for
 * good (and to a second page).
 */
static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char small[1024];
    idle_deadline();
    ssize_t n = echo(fd, small, sizeof small, urt_recv(fd, small, sizeof small, 0), true);
    if (n > 0)
        n = echo_large(fd, small, n);
    if (n == 0 || n == -ECONNRESET || n == -EPIPE)
        S.peer_closed++;
    else if (n == -ETIMEDOUT)
        S.idle_closed++;
    else if (n == -ECANCELED)
        S.cancelled++;    /* the grace period is over */
    else
        S.errors++;
    /* Not a cancellation point and deadlines do not apply: the fd is always closed. */
    urt_close(fd);
    S.live--;
    return 0;             /* a nonzero status would make the group cancel every connection */
}

static int accept_loop(void *arg)
{
    (void)arg;
    struct server_acceptor acc = { .prog = "echo_server" };
    urt_listener *l = NULL;
    if (!O.plain_accept && !(l = urt_listener_new(S.listen_fd, SOCK_CLOEXEC))) {
        fprintf(stderr, "echo_server: urt_listener_new: %s\n", strerror(errno));
        kill(getpid(), SIGTERM);
        return 1;
    }
    int fd;
    /* Until -ECANCELED: shutting down (connections accepted but not taken are closed by
       urt_listener_free: their clients see the connection close). */
    while ((fd = server_accept(&acc, l, S.listen_fd)) >= 0) {
        if (S.live >= O.max_conns) {
            S.refused++;
            urt_close(fd);
            continue;
        }
        /* The task owns fd from here: once spawned it always runs, even if cancelled at once,
           and closes fd as it ends. */
        int err = urt_group_spawn(S.conns, serve, (void *)(intptr_t)fd);
        if (err) {        /* -ENOMEM: no stack for it */
            S.refused++;
            urt_close(fd);
            continue;
        }
        S.accepted++;
        S.live++;
    }
    S.emfile_backoffs = acc.backoffs;
    if (l)
        urt_listener_free(l);
    return fd == -ECANCELED ? 0 : 1;
}

static void add_total(int i, uint64_t v)
{
    __atomic_fetch_add(&total[i], v, __ATOMIC_RELAXED);
}

/* One runtime's server: its listener's accept loop and connections, until the stop. */
static int server_main(void *arg)
{
    const sigset_t *stop_signals = arg;
    int index = urt_thread_index();

    S.listen_fd = O.listen_fds[index];
    S.conns = urt_group_new();
    urt_task *acceptor = S.conns ? urt_spawn(accept_loop, NULL) : NULL;
    if (!acceptor) {
        fprintf(stderr, "echo_server: %s\n", strerror(errno));
        urt_group_free(S.conns);
        kill(getpid(), SIGTERM);   /* the other runtimes stop too */
        return 1;
    }

    /* Park until SIGINT or SIGTERM (the first runtime hears it and tells the others through a
       shared channel it closes); meanwhile the acceptor and the connections run. */
    int sig = server_wait_stop(stop_signals, O.stop);
    if (index == 0)
        O.signal = sig;

    /* 1. Stop accepting. New clients are now refused by the kernel. */
    urt_cancel(acceptor);
    int acceptor_status = urt_join(acceptor);
    urt_close(S.listen_fd);

    /* 2. Let live connections finish, for the grace period at most. When the deadline passes,
          urt_group_wait cancels the tasks still running (their recv/send return -ECANCELED, they
          close their fds) and returns -ETIMEDOUT once every one of them has ended. */
    urt_deadline(urt_now() + O.grace_ns);
    urt_group_wait(S.conns);
    urt_deadline(0);
    urt_group_free(S.conns);

    uint64_t mine[8] = { S.accepted, S.refused, S.idle_closed, S.peer_closed, S.cancelled,
                         S.errors, S.bytes, S.emfile_backoffs };
    for (int i = 0; i < 8; i++)
        add_total(i, mine[i]);
    return sig > 0 && acceptor_status == 0 ? 0 : 1;
}

/* One "name value" per line, for scripts. accepted: connections served; refused: closed at once
   (over --max-conns); the closed_* and cancelled say how served connections ended. */
static void print_counters(void)
{
    int sig = O.signal;
    const char *why = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "error";
    printf("stopped by %s\n"
           "accepted %" PRIu64 "\n"
           "refused %" PRIu64 "\n"
           "closed_idle %" PRIu64 "\n"
           "closed_by_peer %" PRIu64 "\n"
           "cancelled %" PRIu64 "\n"
           "errors %" PRIu64 "\n"
           "bytes_echoed %" PRIu64 "\n"
           "emfile_backoffs %" PRIu64 "\n",
           why, total[0], total[1], total[2], total[3], total[4], total[5], total[6], total[7]);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    /* First of all, block the stop signals: one arriving before urt_signal_wait is listening
       then waits for it instead of killing the process. Threads started later inherit this. */
    sigset_t stop_signals;
    server_block_stop_signals(&stop_signals);

    static const struct option opts[] = {
        { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },
        { "max-conns", required_argument, NULL, 'm' },
        { "idle-timeout", required_argument, NULL, 'i' },
        { "grace", required_argument, NULL, 'g' },
        { "plain-accept", no_argument, NULL, 'P' },
        { "separate-send", no_argument, NULL, 'S' },
        { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'H' },
        { 0 },
    };
    const uint64_t day_ms = 86400000;
#define number(max) server_number("echo_server", opts[i].name, optarg, (max))
    int c, i = 0;
    while ((c = getopt_long(argc, argv, "", opts, &i)) != -1) {
        switch (c) {
        case 'h': O.host = optarg; break;
        case 'p': O.port = (unsigned)number(65535); break;
        case 'm': O.max_conns = number(UINT32_MAX); break;
        case 'i': O.idle_ns = URT_MSEC(number(day_ms)); break;
        case 'g': O.grace_ns = URT_MSEC(number(day_ms)); break;
        case 'P': O.plain_accept = 1; break;
        case 'S': O.separate_send = 1; break;
        case 't': O.threads = (int)number(URT_THREADS_MAX); break;
        case 'H': usage(stdout, argv[0]); return 0;
        default:  usage(stderr, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr, argv[0]);
        return 2;
    }

    server_raise_nofile("echo_server");   /* every connection is an fd */

    if (O.threads < 1) {
        fprintf(stderr, "echo_server: --threads: at least 1\n");
        return 2;
    }
    /* socket, bind, listen: none of them blocks, so they need no task. With --threads N, N
       sockets share the port (SO_REUSEPORT) and the kernel spreads connections over them. */
    for (int t = 0; t < O.threads; t++) {
        O.listen_fds[t] = server_listen("echo_server", O.host, O.port, O.threads > 1);
        if (O.listen_fds[t] < 0)
            return 1;
        if (t == 0)
            O.port = server_port_of(O.listen_fds[0]);   /* --port 0: the others take the same one */
    }
    server_print_listening(O.listen_fds[0]);

    int ret;
    if (O.threads == 1) {
        ret = urt_run(server_main, &stop_signals, NULL);
    } else {
        O.stop = urt_chan_new_shared(sizeof(int), 0);
        ret = O.stop ? urt_run_threads(O.threads, server_main, &stop_signals, NULL) : -ENOMEM;
        urt_chan_free(O.stop);
    }
    if (ret >= 0)
        print_counters();
    return ret < 0 ? 1 : ret;   /* < 0: no io_uring here; urt_run has said why on stderr */
}
