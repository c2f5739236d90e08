/* SPDX-License-Identifier: MIT */
/*
 * server_child.h - an example server as its users run it, for the tests of examples/echo_server
 * and examples/http_server: the built binary runs as a child process (--port 0; the port is read
 * from its first line, "listening on 127.0.0.1:PORT"), plain blocking sockets talk to it, and
 * its counters are read from what it prints as it stops. The includer defines SERVER_PATH and
 * includes urt_test.h first.
 */
#ifndef URT_TESTS_SERVER_CHILD_H
#define URT_TESTS_SERVER_CHILD_H

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#ifndef SERVER_PATH
#error "SERVER_PATH must name the built server binary"
#endif

struct server {
    pid_t  pid;
    int    out;          /* read end of its stdout */
    int    port;
    char   buf[8192];    /* all of its stdout read so far */
    size_t len;
};

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Reads the server's stdout until `until` is in it, EOF, or timeout_ms. 1 if found. */
static inline int read_output(struct server *s, const char *until, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    for (;;) {
        s->buf[s->len] = '\0';
        if (until && strstr(s->buf, until))
            return 1;
        uint64_t now = now_ms();
        if (now >= end || s->len + 1 >= sizeof s->buf)
            return 0;
        struct pollfd p = { .fd = s->out, .events = POLLIN };
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t n = read(s->out, s->buf + s->len, sizeof s->buf - 1 - s->len);
        if (n <= 0)
            return 0;   /* EOF: the server has exited */
        s->len += (size_t)n;
    }
}

/* Starts the server with --port 0 and extra arguments (NULL-terminated); nofile > 0: run it under
   RLIMIT_NOFILE nofile (soft and hard, so that it cannot raise it). Waits for its first line. */
static inline void server_start(struct server *s, rlim_t nofile, const char *const *extra)
{
    const char *argv[24] = { SERVER_PATH, "--port", "0" };
    int argc = 3;
    for (; extra && *extra && argc < 23; extra++)
        argv[argc++] = *extra;
    argv[argc] = NULL;

    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    memset(s, 0, sizeof *s);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a failed or timed-out test takes the server along */
        signal(SIGPIPE, SIG_DFL);           /* the server must not rely on our SIG_IGN */
        dup2(p[1], STDOUT_FILENO);
        if (nofile) {
            struct rlimit rl = { nofile, nofile };
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                _exit(126);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    s->out = p[0];
    if (!read_output(s, "\n", 10000))
        fail_msg("%s printed no first line; output: '%s'", SERVER_PATH, s->buf);
    unsigned port = 0;
    assert_int_equal(sscanf(s->buf, "listening on 127.0.0.1:%u", &port), 1);
    assert_true(port > 0 && port < 65536);
    s->port = (int)port;
}

/* Sends sig, waits up to timeout_ms for the server to exit (reading all its output) and returns
   its wait status; *elapsed_ms: how long it took. */
static inline int server_stop(struct server *s, int sig, unsigned timeout_ms, uint64_t *elapsed_ms)
{
    uint64_t t0 = now_ms();
    assert_int_equal(kill(s->pid, sig), 0);
    read_output(s, NULL, timeout_ms);   /* returns at EOF: the server has exited */
    int status = 0;
    pid_t w;
    while ((w = waitpid(s->pid, &status, WNOHANG)) == 0 && now_ms() - t0 < timeout_ms)
        sleep_ms(5);
    if (w != s->pid) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        fail_msg("%s did not exit within %u ms of signal %d", SERVER_PATH, timeout_ms, sig);
    }
    if (elapsed_ms)
        *elapsed_ms = now_ms() - t0;
    close(s->out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "%s output:\n%s\n", SERVER_PATH, s->buf);
    return status;
}

/* A counter from the server's final output ("accepted 12"). */
static inline long long counter(const struct server *s, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(s->buf, key);
    if (!p)
        fail_msg("no counter '%s' in the server's output: '%s'", name, s->buf);
    return strtoll(p + strlen(key), NULL, 10);
}

static inline void assert_alive(const struct server *s)
{
    int status;
    assert_int_equal(waitpid(s->pid, &status, WNOHANG), 0);
}

/* Reads /proc/PID/FILE (its start, size - 1 bytes at most) into buf as a string. */
static inline void read_proc(pid_t pid, const char *file, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
}

/* utime + stime of the server, in clock ticks. */
static inline long long cpu_ticks(pid_t pid)
{
    char buf[1024];
    read_proc(pid, "stat", buf, sizeof buf);
    const char *p = strrchr(buf, ')');   /* the command name may hold spaces */
    assert_non_null(p);
    unsigned long long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt, then
       utime and stime (fields 14 and 15) */
    assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                            &st), 2);
    return (long long)(ut + st);
}

/* Open file descriptors of process pid. */
static inline int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ---- clients: plain blocking sockets -------------------------------------------------------- */

/* A connected client with 5 s send/receive timeouts (no test can hang on it), or -errno. */
static inline int client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static inline void set_rcvtimeo(int fd, unsigned ms)
{
    struct timeval tv = { ms / 1000, (long)(ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Closes with an RST instead of a FIN. */
static inline void close_rst(int fd)
{
    struct linger l = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static inline int send_all(int fd, const void *b, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, (const char *)b + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* Receives exactly n bytes: 0; 1 at EOF first; -1 on error (errno) or timeout. */
static inline int recv_all(int fd, void *b, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t r = recv(fd, (char *)b + off, n - off, 0);
        if (r == 0)
            return 1;
        if (r < 0)
            return -1;
        off += (size_t)r;
    }
    return 0;
}

/* Whether the server has closed fd: recv gives EOF or a reset within timeout_ms. */
static inline int closed_by_server(int fd, unsigned timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, (int)timeout_ms) != 1)
        return 0;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

#endif
