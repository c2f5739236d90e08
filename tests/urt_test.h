/* SPDX-License-Identifier: MIT */
/*
 * urt_test.h - what every test file of urt shares.
 *
 * A failed cmocka assertion longjmps back to the runner; from a task's stack that would wreck the
 * scheduler. So every test runs in a forked child (UT_TEST), under an alarm() time limit:
 *  - inside tasks, checks go through EXPECT/EXPECT_EQ, which only record and print a failure;
 *  - on the main stack, after urt_run has returned, the child uses cmocka's assert_* (with
 *    CMOCKA_TEST_ABORT=1 a failure ends the child instead of longjmp-ing into a copy of the
 *    runner);
 *  - the child exits 0 only when nothing failed; the parent asserts on its exit status, so a
 *    crash, a hang (SIGALRM) or an ASan/LSan report all fail the test with a message.
 * The child ends with exit(), so LeakSanitizer checks every test for leaks in ASan builds.
 */
#ifndef URT_TEST_H
#define URT_TEST_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include <cmocka.h>

#include "urt.h"

/* Failures recorded by EXPECT inside tasks (or anywhere) of the current child. */
static int ut_fails;

static void ut_failf(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), unused));
static void ut_failf(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: EXPECT failed: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    ut_fails++;
}

/* Record-only checks, safe on a task's stack. */
#define EXPECT(cond)                                                                 \
    do {                                                                             \
        if (!(cond))                                                                 \
            ut_failf(__FILE__, __LINE__, "%s", #cond);                               \
    } while (0)

#define EXPECT_EQ(a, b)                                                              \
    do {                                                                             \
        long long ut_a_ = (long long)(a), ut_b_ = (long long)(b);                    \
        if (ut_a_ != ut_b_)                                                          \
            ut_failf(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, ut_a_,   \
                     ut_b_);                                                         \
    } while (0)

/* Default time limit of one test, in seconds (ASan builds included). */
#ifndef UT_TIMEOUT
#define UT_TIMEOUT 30
#endif

/* Runs body() in a forked child with a time limit; fails the current test unless it exits 0. */
static void ut_run_in_child(void (*body)(void), unsigned timeout_s, const char *name)
    __attribute__((unused));
static void ut_run_in_child(void (*body)(void), unsigned timeout_s, const char *name)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("CMOCKA_TEST_ABORT", "1", 1);
        signal(SIGPIPE, SIG_IGN);   /* a write to a vanished peer must come back as -EPIPE */
        signal(SIGALRM, SIG_DFL);
        /* cmocka's handler would hide urt's stack-overflow report (urt installs its own only
           over the default disposition) */
        signal(SIGSEGV, SIG_DFL);
        alarm(timeout_s);
        ut_fails = 0;
        body();
        if (ut_fails) {
            fprintf(stderr, "%s: %d EXPECT failure(s)\n", name, ut_fails);
            fflush(stderr);
            exit(1);
        }
        exit(0);
    }
    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(w, pid);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        fail_msg("%s: child killed by signal %d (%s)%s", name, sig, strsignal(sig),
                 sig == SIGALRM ? ": it ran past its time limit (a hang?)" : "");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s: child exited with status %d", name, WEXITSTATUS(status));
}

/* Defines a cmocka test `name` whose body runs in a child with a limit of `secs` seconds. */
#define UT_TEST_T(name, secs)                                                        \
    static void name##_body(void);                                                   \
    static void name(void **state)                                                   \
    {                                                                                \
        (void)state;                                                                 \
        ut_run_in_child(name##_body, (secs), #name);                                 \
    }                                                                                \
    static void name##_body(void)

#define UT_TEST(name) UT_TEST_T(name, UT_TIMEOUT)

/* Under Valgrind a thread asleep in io_uring_enter keeps Valgrind's one lock, so no other thread
   of the process runs until it wakes (liburing issue 657): a runtime that waits for another
   thread never gets its wake-up. Tests of what crosses runtimes leave Valgrind out with a line
   that says so; they run in the plain, ASan/UBSan and TSan builds. */
static int ut_under_valgrind(void) __attribute__((unused));
static int ut_under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

#define UT_NOT_UNDER_VALGRIND()                                                      \
    do {                                                                             \
        if (ut_under_valgrind()) {                                                   \
            UT_NOTE("  (not under Valgrind: it stalls threads that wake a runtime)\n"); \
            return;                                                                  \
        }                                                                            \
    } while (0)

/* A task that recurses without end, 256 bytes a frame, until its stack's guard stops it: the
   overflow tests' runaway. */
static volatile int ut_keep_recursing __attribute__((unused)) = 1;   /* (no compiler can
                                                                        call it endless) */
static int ut_recurse(int depth) __attribute__((unused));
static int ut_recurse(int depth)
{
    volatile char pad[256];
    memset((char *)pad, depth, sizeof pad);
    if (!ut_keep_recursing)
        return pad[1];
    return ut_recurse(depth + 1) + pad[7];
}

static int ut_runaway_task(void *arg) __attribute__((unused));
static int ut_runaway_task(void *arg)
{
    (void)arg;
    return ut_recurse(0);
}

/* The calling process's memory mappings (lines of /proc/self/maps), or -1. */
static long ut_count_maps(void) __attribute__((unused));
static long ut_count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* The calling process's resident memory now, in KiB (0 if unknown). */
static long ut_rss_kib(void) __attribute__((unused));
static long ut_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A line of information in the test's output (flushed: a failing child aborts). */
#define UT_NOTE(...)                                                                 \
    do {                                                                             \
        printf(__VA_ARGS__);                                                         \
        fflush(stdout);                                                              \
    } while (0)

/* Runs urt_run(fn, arg, cfg) in a forked child with the default SIGSEGV/SIGABRT dispositions, as a
   program has; collects what the child wrote on stderr into text (cap bytes, NUL-terminated) and
   returns its wait status. For tests of what a crash reports. */
static int ut_run_crashing(urt_fn fn, void *arg, const struct urt_config *cfg, char *text,
                           size_t cap) __attribute__((unused));
static int ut_run_crashing(urt_fn fn, void *arg, const struct urt_config *cfg, char *text,
                           size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        urt_run(fn, arg, cfg);
        _exit(0);   /* not reached when the crash is caught */
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(p[0], text + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    text[len] = '\0';
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* Open file descriptors of this process. */
static int ut_count_fds(void) __attribute__((unused));
static int ut_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the directory's own fd */
}

/* A small deterministic generator, so that a failing random run can be reproduced. */
static uint64_t ut_rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t ut_rand(void) __attribute__((unused));
static uint32_t ut_rand(void)
{
    uint64_t x = ut_rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ut_rng_state = x;
    return (uint32_t)(x >> 32);
}

/* A TCP listener on 127.0.0.1, port chosen by the kernel (in *addr); -1 on failure. */
static int ut_tcp_listener(int backlog, struct sockaddr_in *addr) __attribute__((unused));
static int ut_tcp_listener(int backlog, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, backlog) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        close(fd);
        return -1;
    }
    *addr = a;
    return fd;
}

/* A plain blocking connect (to a loopback listener it completes from the backlog, no urt
   involved); -1 on failure. */
static int ut_tcp_connect(const struct sockaddr_in *addr) __attribute__((unused));
static int ut_tcp_connect(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Starts argv (argv[0] a path, or a program found on PATH) in cwd (NULL: ours) with its stdout
   on a pipe whose read end goes to *out and its stderr thrown away; it dies with its parent
   (PR_SET_PDEATHSIG). Its pid, or -1 when it could not be started. */
static pid_t ut_spawn_piped(const char *const argv[], const char *cwd, int *out)
    __attribute__((unused));
static pid_t ut_spawn_piped(const char *const argv[], const char *cwd, int *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], STDOUT_FILENO);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDERR_FILENO);
        if (cwd && chdir(cwd) < 0)
            _exit(127);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0)
        close(p[0]);
    else
        *out = p[0];
    return pid;
}

#endif
