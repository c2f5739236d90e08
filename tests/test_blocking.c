/*
 * test_blocking.c - urt_blocking (helper threads), urt_getaddrinfo, urt_signal_wait, urt_dump and
 * urt_dump_on_signal.
 */
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include "urt_test.h"

/* Threads of this process, from /proc/self/status. */
static int thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* ---- urt_blocking ------------------------------------------------------------------------ */

static atomic_int running_now, running_max;

/* A job for a helper thread: it says it has started, then sleeps sleep_ms, or - with until set -
   waits for *until to reach until_n (an event in the runtime's thread, checked every 100 us, for
   10 s at most, so that a broken runtime fails the test instead of hanging it). */
struct job {
    int value;
    int sleep_ms;
    pthread_t ran_on;
    int done;
    atomic_int started;
    atomic_int *until;
    int until_n;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int job_fn(void *arg)
{
    struct job *j = arg;
    int now = atomic_fetch_add(&running_now, 1) + 1;
    int max = atomic_load(&running_max);
    while (now > max && !atomic_compare_exchange_weak(&running_max, &max, now))
        ;
    j->ran_on = pthread_self();
    atomic_store(&j->started, 1);
    if (j->until) {
        uint64_t give_up = mono_ns() + 10000000000u;
        while (atomic_load(j->until) < j->until_n && mono_ns() < give_up)
            usleep(100);
    } else if (j->sleep_ms) {
        usleep((useconds_t)j->sleep_ms * 1000);
    }
    atomic_fetch_sub(&running_now, 1);
    j->done = 1;
    return j->value;
}

/* (T) Waits until *flag is nonzero, for 10 s at most (urt_sleep in between: other tasks and the
   helpers run); 1 when it came. */
static int wait_for_flag(atomic_int *flag)
{
    uint64_t give_up = urt_now() + URT_SEC(10);
    while (!atomic_load(flag))
        if (urt_now() > give_up || urt_sleep(URT_MSEC(1)) != 0)
            return 0;
    return 1;
}

struct ticker {
    atomic_int ticks;
    volatile int stop;
};

static int tick(void *arg)
{
    struct ticker *t = arg;
    while (!t->stop && urt_sleep(URT_MSEC(1)) == 0)
        atomic_fetch_add(&t->ticks, 1);
    return 0;
}

struct blocking_res {
    int ret;
    int other_thread;
    int ticks_during;
    int null_fn;
};

/* The job waits for the ticker task to tick 5 times: it can only end that way (rather than after
   its 10 s) when the runtime's thread keeps running tasks while this one waits in urt_blocking. */
static int blocking_main(void *arg)
{
    struct blocking_res *r = arg;
    struct ticker tk = { 0, 0 };
    urt_task *t = urt_spawn(tick, &tk);
    struct job j = { .value = 1234, .until = &tk.ticks, .until_n = 5 };
    r->ret = urt_blocking(job_fn, &j);
    r->other_thread = !pthread_equal(j.ran_on, pthread_self());
    r->ticks_during = atomic_load(&tk.ticks);   /* the other task ran while this one waited */
    tk.stop = 1;
    EXPECT_EQ(urt_join(t), 0);
    r->null_fn = urt_blocking(NULL, NULL);
    return 0;
}

UT_TEST(blocking_runs_on_helper_thread_others_keep_running)
{
    struct blocking_res r;
    memset(&r, 0, sizeof r);
    int threads_before = thread_count();
    assert_int_equal(urt_run(blocking_main, &r, NULL), 0);
    assert_int_equal(r.ret, 1234);
    assert_int_equal(r.other_thread, 1);
    assert_true(r.ticks_during >= 5);
    assert_int_equal(r.null_fn, -EINVAL);
    /* the helper threads are gone once urt_run returns */
    assert_int_equal(thread_count(), threads_before);
    assert_int_equal(urt_blocking(job_fn, NULL), -EPERM);
}

/* At most blocking_threads helpers run jobs at once; every job completes with its own value. */
#define NJOBS 24

struct pool_res {
    struct job jobs[NJOBS];
    int rets[NJOBS];
};

struct pool_arg {
    struct pool_res *r;
    int i;
};

static int pool_worker(void *arg)
{
    struct pool_arg *a = arg;
    a->r->rets[a->i] = urt_blocking(job_fn, &a->r->jobs[a->i]);
    return 0;
}

static int pool_main(void *arg)
{
    struct pool_res *r = arg;
    static struct pool_arg args[NJOBS];
    urt_task *t[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        r->jobs[i] = (struct job){ .value = 100 + i, .sleep_ms = 5 };
        args[i] = (struct pool_arg){ r, i };
        t[i] = urt_spawn(pool_worker, &args[i]);
    }
    for (int i = 0; i < NJOBS; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    return 0;
}

static void pool_case(unsigned threads, int expect_max)
{
    static struct pool_res r;
    memset(&r, 0, sizeof r);
    atomic_store(&running_now, 0);
    atomic_store(&running_max, 0);
    struct urt_config cfg = { .blocking_threads = threads };
    assert_int_equal(urt_run(pool_main, &r, &cfg), 0);
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(r.rets[i], 100 + i);
        assert_int_equal(r.jobs[i].done, 1);
    }
    assert_true(atomic_load(&running_max) >= 1);
    assert_true(atomic_load(&running_max) <= expect_max);
}

UT_TEST(blocking_pool_size_default_4)
{
    pool_case(0, 4);
}

UT_TEST(blocking_pool_size_2)
{
    pool_case(2, 2);
}

/* Cancellation: before fn starts -ECANCELED (fn never runs); once started it runs to the end
   and its value is returned. The cancel is sent once the job says it has started, and the job
   goes on until the cancel has been sent. */
struct blk_cancel {
    struct job started;
    int started_ret;
    int pre_ret, pre_deadline_ret;
    int saw_start;
    atomic_int cancel_sent;
    struct job never;
};

static int cancelled_blocker(void *arg)
{
    struct blk_cancel *c = arg;
    c->started_ret = urt_blocking(job_fn, &c->started);
    return 0;
}

static int blk_cancel_main(void *arg)
{
    struct blk_cancel *c = arg;
    urt_task *t = urt_spawn(cancelled_blocker, c);
    c->saw_start = wait_for_flag(&c->started.started);   /* the job is running on a helper now */
    urt_cancel(t);
    atomic_store(&c->cancel_sent, 1);
    EXPECT_EQ(urt_join(t), 0);

    urt_deadline(urt_now() - 1);
    c->pre_deadline_ret = urt_blocking(job_fn, &c->never);
    urt_deadline(0);
    urt_cancel(urt_self());
    c->pre_ret = urt_blocking(job_fn, &c->never);
    return 0;
}

UT_TEST(blocking_cancellation_point_only_before_start)
{
    struct blk_cancel c;
    memset(&c, 0, sizeof c);
    c.started = (struct job){ .value = 55, .until = &c.cancel_sent, .until_n = 1 };
    c.never = (struct job){ .value = 66 };
    assert_int_equal(urt_run(blk_cancel_main, &c, NULL), 0);
    assert_int_equal(c.saw_start, 1);
    assert_int_equal(c.started_ret, 55);
    assert_int_equal(c.started.done, 1);
    assert_int_equal(c.pre_deadline_ret, -ETIMEDOUT);
    assert_int_equal(c.pre_ret, -ECANCELED);
    assert_int_equal(c.never.done, 0);
}

/* ---- urt_getaddrinfo (numeric only: no network needed) ------------------------------------- */

struct gai_res {
    int ok, family, port, addr_ok;
    int noname, nothing;
    int cancelled, cancelled_errno;
    int late, late_errno;
};

static int gai_main(void *arg)
{
    struct gai_res *r = arg;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    r->ok = urt_getaddrinfo("127.0.0.1", "8080", &hints, &res);
    if (r->ok == 0 && res) {
        r->family = res->ai_family;
        struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
        r->port = ntohs(sin->sin_port);
        r->addr_ok = sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
        freeaddrinfo(res);
    }
    res = NULL;
    r->noname = urt_getaddrinfo("not-a-number", "80", &hints, &res);
    r->nothing = urt_getaddrinfo(NULL, NULL, &hints, &res);

    urt_deadline(urt_now() - 1);
    errno = 0;
    r->late = urt_getaddrinfo("127.0.0.1", "80", &hints, &res);
    r->late_errno = errno;
    urt_deadline(0);
    urt_cancel(urt_self());
    errno = 0;
    r->cancelled = urt_getaddrinfo("127.0.0.1", "80", &hints, &res);
    r->cancelled_errno = errno;
    return 0;
}

UT_TEST(getaddrinfo_numeric_and_errors)
{
    struct gai_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(gai_main, &r, NULL), 0);
    assert_int_equal(r.ok, 0);
    assert_int_equal(r.family, AF_INET);
    assert_int_equal(r.port, 8080);
    assert_int_equal(r.addr_ok, 1);
    assert_int_equal(r.noname, EAI_NONAME);
    assert_int_equal(r.nothing, EAI_NONAME);
    assert_int_equal(r.late, EAI_SYSTEM);
    assert_int_equal(r.late_errno, ETIMEDOUT);
    assert_int_equal(r.cancelled, EAI_SYSTEM);
    assert_int_equal(r.cancelled_errno, ECANCELED);
}

/* ---- urt_signal_wait ------------------------------------------------------------------------- */

/* Raises the signal once the ticker has ticked 3 times (or after 10 s): the ticks can only come
   while the main task waits in urt_signal_wait when that wait leaves the thread to other tasks. */
struct raise_arg {
    int sig;
    struct ticker *tk;
};

static int raiser(void *arg)
{
    struct raise_arg *a = arg;
    uint64_t give_up = urt_now() + URT_SEC(10);
    while (atomic_load(&a->tk->ticks) < 3 && urt_now() < give_up)
        urt_sleep(URT_MSEC(1));
    return kill(getpid(), a->sig);
}

struct sig_res {
    int got, got2, null_set, cancelled, timed;
    int other_ticks;
};

static int sig_waiter(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    *(int *)arg = urt_signal_wait(&set);
    return 0;
}

static int sig_main(void *arg)
{
    struct sig_res *r = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    struct ticker tk = { 0, 0 };
    struct raise_arg ra = { SIGUSR2, &tk };
    urt_task *tt = urt_spawn(tick, &tk);
    urt_task *k = urt_spawn(raiser, &ra);
    r->got = urt_signal_wait(&set);
    r->other_ticks = atomic_load(&tk.ticks);
    tk.stop = 1;
    EXPECT_EQ(urt_join(k), 0);
    EXPECT_EQ(urt_join(tt), 0);
    /* a signal that arrived while nobody waited is not lost (it stays pending, blocked) */
    kill(getpid(), SIGUSR1);
    r->got2 = urt_signal_wait(&set);
    r->null_set = urt_signal_wait(NULL);
    urt_task *w = urt_spawn(sig_waiter, &r->cancelled);
    urt_sleep(URT_MSEC(5));
    urt_cancel(w);
    EXPECT_EQ(urt_join(w), 0);
    urt_deadline(urt_now() + URT_MSEC(5));
    r->timed = urt_signal_wait(&set);
    urt_deadline(0);
    return 0;
}

UT_TEST(signal_wait)
{
    struct sig_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(sig_main, &r, NULL), 0);
    assert_int_equal(r.got, SIGUSR2);
    assert_int_equal(r.got2, SIGUSR1);
    assert_int_equal(r.null_set, -EINVAL);
    assert_int_equal(r.cancelled, -ECANCELED);
    assert_int_equal(r.timed, -ETIMEDOUT);
    assert_true(r.other_ticks >= 3);
}

/* ---- urt_dump, urt_dump_on_signal -------------------------------------------------------------- */

static int dump_sleeper(void *arg)
{
    (void)arg;
    return urt_sleep(URT_SEC(10)) == -ECANCELED ? 0 : -1;
}

static int dump_reader(void *arg)
{
    int fd = *(int *)arg;
    char c;
    return urt_read(fd, &c, 1, -1) == -ECANCELED ? 0 : -1;
}

struct dump_res {
    char *text;
    size_t len;
    int pipe_fd;
    uint64_t joined_id;
};

static int dump_main(void *arg)
{
    struct dump_res *r = arg;
    int p[2];
    if (pipe(p))
        return -1;
    r->pipe_fd = p[0];
    struct urt_spawn_opts so = { .name = "napper" }, ro = { .name = "pipe-reader" };
    urt_task *s = urt_spawn_ex(dump_sleeper, NULL, &so);
    urt_task *rd = urt_spawn_ex(dump_reader, &p[0], &ro);
    r->joined_id = urt_task_id(s);
    urt_sleep(URT_MSEC(5));
    FILE *f = open_memstream(&r->text, &r->len);
    urt_dump(f);
    fclose(f);
    urt_cancel(s);
    urt_cancel(rd);
    EXPECT_EQ(urt_join(s), 0);
    EXPECT_EQ(urt_join(rd), 0);
    close(p[0]);
    close(p[1]);
    return 0;
}

UT_TEST(dump_lists_every_task_and_its_wait)
{
    struct dump_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(dump_main, &r, NULL), 0);
    assert_non_null(r.text);
    UT_NOTE("%s", r.text);
    int lines = 0;
    for (size_t i = 0; i < r.len; i++)
        lines += r.text[i] == '\n';
    assert_true(lines >= 3);   /* main, napper, pipe-reader (plus any heading) */
    assert_non_null(strstr(r.text, "main"));
    assert_non_null(strstr(r.text, "napper"));
    assert_non_null(strstr(r.text, "pipe-reader"));
    assert_non_null(strstr(r.text, "sleep"));
    char fdtext[32];
    snprintf(fdtext, sizeof fdtext, "fd %d", r.pipe_fd);
    assert_non_null(strstr(r.text, "read"));
    assert_non_null(strstr(r.text, fdtext));
    free(r.text);
    /* outside a runtime and with a NULL stream: no crash */
    urt_dump(NULL);
    FILE *devnull = fopen("/dev/null", "w");
    urt_dump(devnull);
    fclose(devnull);
}

static int dump_signal_main(void *arg)
{
    int *res = arg;
    res[0] = urt_dump_on_signal(0);
    res[1] = urt_dump_on_signal(SIGKILL);
    res[2] = urt_dump_on_signal(SIGUSR1);
    urt_yield();   /* the dump task is waiting for the signal */
    struct stat st0, st;
    fstat(2, &st0);   /* stderr is a file here (the test's) */
    kill(getpid(), SIGUSR1);
    /* Until the dump is there (the dump task writes it all before it parks again), 10 s at most. */
    uint64_t give_up = urt_now() + URT_SEC(10);
    while (fstat(2, &st) == 0 && st.st_size == st0.st_size && urt_now() < give_up)
        urt_sleep(URT_MSEC(1));
    return 0;
}

UT_TEST(dump_on_signal)
{
    int res[3] = { 1, 1, 1 };
    char path[64];
    snprintf(path, sizeof path, "/tmp/urt-test-dump-%d", (int)getpid());
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    int ret = urt_run(dump_signal_main, res, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char text[8192] = { 0 };
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(path);
    assert_int_equal(ret, 0);
    assert_int_equal(res[0], -EINVAL);
    assert_int_equal(res[1], -EINVAL);
    assert_int_equal(res[2], 0);
    assert_true(n > 0);
    assert_non_null(strstr(text, "urt-dump"));
    assert_non_null(strstr(text, "main"));
    assert_int_equal(urt_dump_on_signal(SIGUSR1), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blocking_runs_on_helper_thread_others_keep_running),
        cmocka_unit_test(blocking_pool_size_default_4),
        cmocka_unit_test(blocking_pool_size_2),
        cmocka_unit_test(blocking_cancellation_point_only_before_start),
        cmocka_unit_test(getaddrinfo_numeric_and_errors),
        cmocka_unit_test(signal_wait),
        cmocka_unit_test(dump_lists_every_task_and_its_wait),
        cmocka_unit_test(dump_on_signal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
