/* SPDX-License-Identifier: MIT */
/*
 * test_limits.c - hostile input and exhausted limits: each gets an error, at once, never a
 * crash, a hang or a spin.
 */
#include <limits.h>
#include <sys/resource.h>
#include <time.h>

#include "urt_test.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

/* ---- urt_close of an absurd fd: -EBADF at once, memory flat ---- */

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

struct bad_close {
    int  close_max, close_big, sr_max;
    long rss_before, rss_after;
};

static int bad_close_main(void *arg)
{
    struct bad_close *r = arg;
    char c = 0;
    r->rss_before = max_rss_kib();
    /* urt_send_recv first: it keeps per-fd close counts, which must not grow to the fd's number */
    r->sr_max = (int)urt_send_recv(INT_MAX, &c, 1, &c, 1, 0, NULL);
    r->close_max = urt_close(INT_MAX);
    r->close_big = urt_close(INT_MAX - 7);
    r->rss_after = max_rss_kib();
    return 0;
}

UT_TEST(close_of_huge_fd_is_ebadf_at_once)
{
    struct bad_close r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(bad_close_main, &r, NULL), 0);
    UT_NOTE("  peak RSS %ld -> %ld KiB\n", r.rss_before, r.rss_after);
    assert_int_equal(r.sr_max, -EBADF);
    assert_int_equal(r.close_max, -EBADF);
    assert_int_equal(r.close_big, -EBADF);
    /* A count per fd number up to INT_MAX would be 8 GiB; nothing near that may be touched. */
    assert_true(r.rss_after - r.rss_before < 64 * 1024);
}

/* ---- a forked child that goes on using its parent's runtime: urt_run ends with the error ---- */

static int in_child;

static int fork_main(void *arg)
{
    pid_t *pid = arg;
    fflush(stderr);
    *pid = fork();
    if (*pid == 0) {
        in_child = 1;
        /* The next enter is the child's, on a ring that is its parent's. */
        urt_sleep(URT_MSEC(1));
        urt_sleep(URT_MSEC(1));
        _exit(3);   /* not reached: the child's urt_run has returned with the error */
    }
    return 0;
}

/* Runs main_fn, which forks; the child must see its urt_run end with an error (exit 0), the
   parent's runtime end normally, and the child exit on its own (a spinning child hits the test's
   time limit). */
static void forked_child_ends(urt_fn main_fn)
{
    pid_t pid = -1;
    in_child = 0;
    int rc = urt_run(main_fn, &pid, NULL);
    if (in_child)
        _exit(rc < 0 && rc != -EINTR ? 0 : 4);   /* no leak check here: the runtime was abandoned */
    assert_int_equal(rc, 0);
    assert_true(pid > 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

UT_TEST(forked_child_using_parent_runtime_ends_with_error)
{
    forked_child_ends(fork_main);
}

/* The same with a listener's multishot accept armed when the child's runtime ends: its teardown
   meets the dead ring too, and must give up rather than spin. */
static int accept_one(void *arg)
{
    int fd = urt_listener_accept(arg);
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? 0 : fd;
}

static int fork_listener_main(void *arg)
{
    pid_t *pid = arg;
    struct sockaddr_in addr;
    int lfd = ut_tcp_listener(16, &addr);
    urt_listener *l = urt_listener_new(lfd, SOCK_CLOEXEC);
    EXPECT(l != NULL);
    urt_task *t = urt_spawn(accept_one, l);
    int c = ut_tcp_connect(&addr);
    EXPECT_EQ(urt_join(t), 0);   /* the multishot accept stays armed */
    fflush(stderr);
    *pid = fork();
    if (*pid == 0) {
        in_child = 1;
        return 0;   /* the child's runtime ends now, with the listener still armed */
    }
    close(c);
    EXPECT_EQ(urt_listener_free(l), 0);
    close(lfd);
    return 0;
}

UT_TEST(forked_child_ends_despite_an_armed_listener)
{
    forked_child_ends(fork_listener_main);
}

/* ---- helper threads: the real cause at the fd limit, and an impossible thread count ---- */

static int one(void *arg)
{
    (void)arg;
    return 1;
}

struct fd_limit {
    int at_limit, after;
};

static int fd_limit_main(void *arg)
{
    struct fd_limit *r = arg;
    struct rlimit old, rl;
    getrlimit(RLIMIT_NOFILE, &old);
    rl = old;
    rl.rlim_cur = (rlim_t)ut_count_fds() + 16;
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    int fds[64], n = 0;
    while (n < 64 && (fds[n] = dup(0)) >= 0)
        n++;
    r->at_limit = urt_blocking(one, NULL);   /* the pool's eventfd cannot be made */
    while (n > 0)
        close(fds[--n]);
    setrlimit(RLIMIT_NOFILE, &old);
    r->after = urt_blocking(one, NULL);
    return 0;
}

UT_TEST(blocking_pool_at_fd_limit_says_emfile)
{
#if defined(RUNNING_ON_VALGRIND)
    if (RUNNING_ON_VALGRIND)
        return;   /* Valgrind keeps descriptors of its own below the limit */
#endif
    struct fd_limit r = { 0, 0 };
    assert_int_equal(urt_run(fd_limit_main, &r, NULL), 0);
    assert_int_equal(r.at_limit, -EMFILE);
    assert_int_equal(r.after, 1);
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

UT_TEST(blocking_threads_above_cap_is_einval)
{
    struct urt_config cfg = { .blocking_threads = 65 };
    assert_int_equal(urt_run(never, NULL, &cfg), -EINVAL);
    cfg.blocking_threads = 64;
    assert_int_equal(urt_run(never, NULL, &cfg), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(close_of_huge_fd_is_ebadf_at_once),
        cmocka_unit_test(forked_child_using_parent_runtime_ends_with_error),
        cmocka_unit_test(forked_child_ends_despite_an_armed_listener),
        cmocka_unit_test(blocking_pool_at_fd_limit_says_emfile),
        cmocka_unit_test(blocking_threads_above_cap_is_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
