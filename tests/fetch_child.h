/* SPDX-License-Identifier: MIT */
/*
 * fetch_child.h - examples/fetch as its users run it, for test_fetch and test_fetch_tls: the built
 * binary runs as a child process, its stdout is read until it exits and its stderr kept, and its
 * line for a URL ("%7.3f s " WHAT "  " URL) is found by the URL. The includer defines FETCH_PATH
 * and FETCH_LIMIT_MS (how long one run may take) and includes urt_test.h first.
 */
#ifndef URT_TESTS_FETCH_CHILD_H
#define URT_TESTS_FETCH_CHILD_H

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>

#ifndef FETCH_PATH
#error "FETCH_PATH must name the built fetch binary"
#endif
#ifndef FETCH_LIMIT_MS
#error "FETCH_LIMIT_MS must say how long one fetch run may take"
#endif

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct run {
    int      status;       /* wait status */
    uint64_t elapsed_ms;
    char     out[65536];   /* its stdout */
    size_t   len;
    char     err[8192];    /* its stderr */
};

/* Runs fetch with args, then urls (both NULL-terminated; urls may be NULL), reading its stdout
   until it exits; fails the test when that takes more than FETCH_LIMIT_MS. */
static inline void run_fetch(struct run *r, const char *const *args, char *const *urls)
{
    const char *argv[256] = { FETCH_PATH };
    int argc = 1;
    for (; *args && argc < 255; args++)
        argv[argc++] = *args;
    for (; urls && *urls && argc < 255; urls++)
        argv[argc++] = *urls;
    argv[argc] = NULL;

    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int errfd = memfd_create("fetch-stderr", MFD_CLOEXEC);   /* read once fetch has exited */
    assert_true(errfd >= 0);
    memset(r, 0, sizeof *r);
    uint64_t t0 = now_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a failed or timed-out test takes fetch along */
        signal(SIGPIPE, SIG_DFL);
        dup2(p[1], STDOUT_FILENO);
        dup2(errfd, STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    for (;;) {
        uint64_t spent = now_ms() - t0;
        if (spent >= FETCH_LIMIT_MS || r->len + 1 >= sizeof r->out)
            break;
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        if (poll(&pf, 1, (int)(FETCH_LIMIT_MS - spent)) <= 0)
            continue;
        ssize_t n = read(p[0], r->out + r->len, sizeof r->out - 1 - r->len);
        if (n <= 0)
            break;   /* EOF: fetch has exited */
        r->len += (size_t)n;
    }
    r->out[r->len] = '\0';
    close(p[0]);
    /* Its stdout is closed: it has exited or is about to. A bounded blocking wait, no polling. */
    int killed = 0;
    if (now_ms() - t0 >= FETCH_LIMIT_MS) {
        kill(pid, SIGKILL);
        killed = 1;
    }
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
        ;
    if (killed)
        fail_msg("fetch did not exit within %d ms; output:\n%s", FETCH_LIMIT_MS, r->out);
    r->elapsed_ms = now_ms() - t0;
    ssize_t n = pread(errfd, r->err, sizeof r->err - 1, 0);
    r->err[n > 0 ? n : 0] = '\0';
    close(errfd);
    if (r->len < 4000)
        UT_NOTE("fetch output (%llu ms, exit %d):\n%s", (unsigned long long)r->elapsed_ms,
                WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1, r->out);
    else
        UT_NOTE("fetch output: %zu bytes (%llu ms, exit %d)\n", r->len,
                (unsigned long long)r->elapsed_ms,
                WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1);
}

/* The line for url: "%7.3f s " WHAT "  " url. Returns WHAT (trimmed, in a static buffer) and
   the seconds in *secs; fails the test if there is not exactly one such line. */
static inline const char *line_for(const struct run *r, const char *url, double *secs)
{
    static char what[512];
    int found = 0;
    const char *p = r->out;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        if (n >= sizeof line)
            n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (nl ? 1 : 0);

        char *sep = strstr(line, "  ");   /* the last "  " precedes the URL */
        for (char *q = sep; q; q = strstr(q + 1, "  "))
            sep = q;
        if (!sep || strcmp(sep + 2, url) != 0)
            continue;
        *sep = '\0';
        double s;
        int off = 0;
        if (sscanf(line, "%lf s %n", &s, &off) != 1 || off == 0)
            fail_msg("bad line for %s: '%s'", url, line);
        found++;
        *secs = s;
        snprintf(what, sizeof what, "%s", line + off);
    }
    if (found != 1)
        fail_msg("%d lines for %s in:\n%s", found, url, r->out);
    return what;
}

static inline void assert_exit(const struct run *r, int code)
{
    assert_true(WIFEXITED(r->status));
    assert_int_equal(WEXITSTATUS(r->status), code);
}

#endif
