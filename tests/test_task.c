/*
 * test_task.c - urt_run, spawning, joining, detaching, cancelling, yielding, ids and names, and
 * the calls made where they are not allowed.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "urt_test.h"

/* ---- urt_run ---------------------------------------------------------------------------- */

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

UT_TEST(run_returns_main_status)
{
    assert_int_equal(urt_run(return_arg, (void *)(intptr_t)42, NULL), 42);
    assert_int_equal(urt_run(return_arg, (void *)(intptr_t)0, NULL), 0);
    assert_int_equal(urt_run(return_arg, (void *)(intptr_t)-7, NULL), -7);
    struct urt_config cfg = { .ring_entries = 16, .stack_size = 32 * 1024, .stack_pool_max = 1 };
    assert_int_equal(urt_run(return_arg, (void *)(intptr_t)5, &cfg), 5);
}

UT_TEST(run_rejects_bad_arguments)
{
    assert_int_equal(urt_run(NULL, NULL, NULL), -EINVAL);
    struct urt_config cfg = { .ring_entries = 1u << 20 };
    assert_int_equal(urt_run(return_arg, NULL, &cfg), -EINVAL);
    struct urt_config cfg2 = { .stack_size = (size_t)1 << 50 };
    assert_int_equal(urt_run(return_arg, NULL, &cfg2), -EINVAL);
    /* and the thread is still able to run a runtime afterwards */
    assert_int_equal(urt_run(return_arg, (void *)(intptr_t)3, NULL), 3);
}

static int nested_run(void *arg)
{
    int *res = arg;
    *res = urt_run(return_arg, (void *)(intptr_t)99, NULL);
    return 0;
}

UT_TEST(run_nested_is_ebusy)
{
    int res = 0;
    assert_int_equal(urt_run(nested_run, &res, NULL), 0);
    assert_int_equal(res, -EBUSY);
}

/* Several runtimes one after another on one thread: each starts afresh (ids from 1 again). */
static int record_id(void *arg)
{
    *(uint64_t *)arg = urt_task_id(NULL);
    return 0;
}

UT_TEST(run_sequential_runtimes)
{
    for (int i = 0; i < 50; i++) {
        uint64_t id = 0;
        assert_int_equal(urt_run(record_id, &id, NULL), 0);
        assert_int_equal(id, 1);
    }
}

/* A ring too small for urt's own needs (a cancel slot, urt_close's three linked requests) must
   either be refused with -EINVAL or work; never hang. */
static int small_ring_main(void *arg)
{
    int *res = arg;
    int fd = urt_open("/dev/zero", O_RDONLY, 0);
    res[0] = fd;
    char buf[16];
    res[1] = (int)urt_read(fd, buf, sizeof buf, -1);
    res[2] = urt_close(fd);
    return 0;
}

static void small_ring(unsigned entries)
{
    int res[3] = { -1, -1, -1 };
    struct urt_config cfg = { .ring_entries = entries };
    int ret = urt_run(small_ring_main, res, &cfg);
    if (ret == -EINVAL)
        return;
    assert_int_equal(ret, 0);
    assert_true(res[0] >= 0);
    assert_int_equal(res[1], 16);
    assert_int_equal(res[2], 0);
}

UT_TEST_T(run_ring_of_1_entry, 5) { small_ring(1); }
UT_TEST_T(run_ring_of_2_entries, 5) { small_ring(2); }
UT_TEST_T(run_ring_of_4_entries, 5) { small_ring(4); }

/* urt_run on two threads at once: each thread has its own runtime. */
struct thread_run {
    int ret;
    uint64_t first_id;
    int sum;
};

static int count_up(void *arg)
{
    int *sum = arg;
    for (int i = 0; i < 100; i++) {
        (*sum)++;
        if (urt_yield() != 0)
            return -1;
    }
    return 0;
}

static int thread_main_task(void *arg)
{
    struct thread_run *tr = arg;
    tr->first_id = urt_task_id(NULL);
    urt_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = urt_spawn(count_up, &tr->sum);
    int bad = 0;
    for (int i = 0; i < 4; i++)
        bad |= urt_join(t[i]);
    return bad ? -1 : 77;
}

static void *thread_body(void *arg)
{
    struct thread_run *tr = arg;
    tr->ret = urt_run(thread_main_task, tr, NULL);
    return NULL;
}

UT_TEST(run_on_two_threads)
{
    pthread_t th[2];
    struct thread_run tr[2];
    memset(tr, 0, sizeof tr);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_body, &tr[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr[i].ret, 77);
        assert_int_equal(tr[i].first_id, 1);
        assert_int_equal(tr[i].sum, 400);
    }
}

/* ---- spawn and join ------------------------------------------------------------------------ */

static int times_ten(void *arg)
{
    return (int)(intptr_t)arg * 10;
}

static int spawn_join_main(void *arg)
{
    urt_task *t[20];
    for (int i = 0; i < 20; i++) {
        t[i] = urt_spawn(times_ten, (void *)(intptr_t)i);
        EXPECT(t[i] != NULL);
    }
    /* join in reverse order: statuses stay with their tasks */
    for (int i = 19; i >= 0; i--)
        EXPECT_EQ(urt_join(t[i]), i * 10);
    return 0;
}

UT_TEST(spawn_join_returns_status)
{
    assert_int_equal(urt_run(spawn_join_main, NULL, NULL), 0);
}

/* Spawned tasks start after the spawner parks, in the order they were spawned. */
struct order_log {
    int seq[16];
    int n;
};

struct order_arg {
    struct order_log *log;
    int tag;
};

static int log_tag(void *arg)
{
    struct order_arg *a = arg;
    a->log->seq[a->log->n++] = a->tag;
    return 0;
}

static int spawn_order_main(void *arg)
{
    struct order_log *log = arg;
    struct order_arg a[5];
    urt_task *t[5];
    for (int i = 0; i < 5; i++) {
        a[i] = (struct order_arg){ log, i + 1 };
        t[i] = urt_spawn(log_tag, &a[i]);
    }
    log->seq[log->n++] = 0;   /* the spawner keeps running: nothing ran yet */
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(urt_join(t[i]), 0);
    return 0;
}

UT_TEST(spawn_runs_in_fifo_order_after_caller)
{
    struct order_log log = { { 0 }, 0 };
    assert_int_equal(urt_run(spawn_order_main, &log, NULL), 0);
    assert_int_equal(log.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(log.seq[i], i);
}

struct join_errs {
    int twice_first, twice_second;
    int self_join;
    int null_join;
    int fake_join;
    int detached_join;
    int detach_twice;
    int detach_null;
    int done_then_detach;
    int spawn_null_errno;
    void *spawn_null;
    int joined_while_joined;
};

static int sleep_a_bit(void *arg)
{
    (void)arg;
    return urt_sleep(URT_MSEC(5)) == 0 ? 3 : -1;
}

static int second_joiner(void *arg)
{
    return urt_join((urt_task *)arg);
}

static int join_errors_main(void *arg)
{
    struct join_errs *r = arg;
    urt_task *t = urt_spawn(times_ten, (void *)(intptr_t)4);
    r->twice_first = urt_join(t);
    r->twice_second = urt_join(t);
    r->self_join = urt_join(urt_self());
    r->null_join = urt_join(NULL);
    /* A 64-byte aligned block of zeros is not a task. */
    static _Alignas(64) char fake[512];
    r->fake_join = urt_join((urt_task *)fake);

    urt_task *d = urt_spawn(sleep_a_bit, NULL);
    urt_detach(d);
    r->detached_join = urt_join(d);
    r->detach_twice = urt_detach_checked(d);
    r->detach_null = urt_detach_checked(NULL);
    urt_detach(NULL);   /* must not crash */

    /* A task already finished: detach releases it at once. */
    urt_task *f = urt_spawn(times_ten, (void *)(intptr_t)1);
    urt_yield();
    r->done_then_detach = urt_detach_checked(f);

    errno = 0;
    r->spawn_null = urt_spawn(NULL, NULL);
    r->spawn_null_errno = errno;

    /* While one task joins t, a second join of t is refused. */
    urt_task *s = urt_spawn(sleep_a_bit, NULL);
    urt_task *j = urt_spawn(second_joiner, s);
    urt_yield();   /* j now waits in urt_join(s) */
    r->joined_while_joined = urt_join(s);
    EXPECT_EQ(urt_join(j), 3);   /* j got s's status */
    return 0;
}

UT_TEST(join_and_detach_errors)
{
    struct join_errs r;
    memset(&r, 0x55, sizeof r);
    assert_int_equal(urt_run(join_errors_main, &r, NULL), 0);
    assert_int_equal(r.twice_first, 40);
    assert_int_equal(r.twice_second, -EINVAL);
    assert_int_equal(r.self_join, -EDEADLK);
    assert_int_equal(r.null_join, -EINVAL);
    assert_int_equal(r.fake_join, -EINVAL);
    assert_int_equal(r.detached_join, -EINVAL);
    assert_int_equal(r.detach_twice, -EINVAL);
    assert_int_equal(r.detach_null, -EINVAL);
    assert_int_equal(r.done_then_detach, 0);
    assert_null(r.spawn_null);
    assert_int_equal(r.spawn_null_errno, EINVAL);
    assert_int_equal(r.joined_while_joined, -EINVAL);
}

/* A handle that was joined stays dead even when its memory serves a new task: joining or
   cancelling it again must not reach the new task. */
struct stale_res {
    int reused;
    int stale_join;
    int stale_detach;
    int new_join;
    int new_sleep;
};

static int sleep_then_7(void *arg)
{
    struct stale_res *r = arg;
    r->new_sleep = urt_sleep(URT_MSEC(5));
    return 7;
}

static int stale_main(void *arg)
{
    struct stale_res *r = arg;
    urt_task *t = urt_spawn(times_ten, (void *)(intptr_t)1);
    EXPECT_EQ(urt_join(t), 10);
    /* The stack pool is LIFO: the next task gets t's memory. Handles are opaque, so whether it
       did cannot be seen from here; the promise must hold either way. */
    urt_task *u = urt_spawn(sleep_then_7, r);
    r->reused = 1;
    urt_cancel(t);                          /* t is gone: this must do nothing */
    r->stale_join = urt_join(t);            /* already joined: -EINVAL */
    r->stale_detach = urt_detach_checked(t);
    r->new_join = urt_join(u);
    return 0;
}

UT_TEST(stale_handle_does_not_reach_new_task)
{
    struct stale_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(stale_main, &r, NULL), 0);
    UT_NOTE("  stale join %d, stale detach %d, new task's sleep %d, its join %d\n",
            r.stale_join, r.stale_detach, r.new_sleep, r.new_join);
    assert_int_equal(r.stale_join, -EINVAL);
    assert_int_equal(r.stale_detach, -EINVAL);
    assert_int_equal(r.new_sleep, 0);
    assert_int_equal(r.new_join, 7);
}

/* A stack overflow is reported with the task's name and stack size, and the process aborts
   (docs/architecture.md, "Stacks"). The child gets the default SIGSEGV disposition, as a program has. */
static volatile int keep_going = 1;

static int recurse(void *arg)
{
    volatile char pad[512];
    pad[0] = (char)(uintptr_t)arg;
    if (!keep_going)
        return pad[0];
    return recurse((void *)((uintptr_t)arg + 1)) + pad[0];
}

static int overflow_main(void *arg)
{
    (void)arg;
    struct urt_spawn_opts o = { .name = "deep-recursion", .stack_size = 64 * 1024 };
    urt_task *t = urt_spawn_ex(recurse, NULL, &o);
    urt_join(t);
    return 0;
}

static void stack_overflow_child(void)
{
    char text[4096];
    int status = ut_run_crashing(overflow_main, NULL, NULL, text, sizeof text);
    UT_NOTE("  %s", text);
    /* it did not return normally */
    assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#if !defined(__SANITIZE_ADDRESS__)
    /* (under ASan, ASan's own SIGSEGV handler reports the overflow instead) */
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(text, "deep-recursion"));
    assert_non_null(strstr(text, "overflow"));
#endif
}

UT_TEST(stack_overflow_is_reported)
{
    stack_overflow_child();
}

/* A detached task runs to its end on its own. */
static int set_flag_later(void *arg)
{
    urt_sleep(URT_MSEC(2));
    *(int *)arg = 1;
    return 5;
}

static int detach_main(void *arg)
{
    urt_task *t = urt_spawn(set_flag_later, arg);
    EXPECT_EQ(urt_detach_checked(t), 0);
    /* until it has set the flag (10 s at most: a detached task that never finishes fails) */
    uint64_t give_up = urt_now() + URT_SEC(10);
    while (*(volatile int *)arg == 0 && urt_now() < give_up)
        EXPECT_EQ(urt_sleep(URT_MSEC(1)), 0);
    EXPECT_EQ(*(int *)arg, 1);
    return 0;
}

UT_TEST(detached_task_runs_to_completion)
{
    int flag = 0;
    assert_int_equal(urt_run(detach_main, &flag, NULL), 0);
    assert_int_equal(flag, 1);
}

/* ---- spawn options, ids and names ------------------------------------------------------------ */

struct id_info {
    uint64_t self_id;
    const char *name_ptr;
    char name[64];
    urt_task *self;
    size_t stack_used;
};

static int report_identity(void *arg)
{
    struct id_info *in = arg;
    in->self_id = urt_task_id(NULL);
    in->self = urt_self();
    snprintf(in->name, sizeof in->name, "%s", urt_task_name(NULL));
    return 0;
}

static int ids_names_main(void *arg)
{
    struct id_info *main_info = arg;
    report_identity(main_info);

    enum { N = 64 };
    static struct id_info info[N];
    urt_task *t[N];
    uint64_t handle_ids[N];
    char namebuf[40];
    for (int i = 0; i < N; i++) {
        snprintf(namebuf, sizeof namebuf, "worker-%d", i);
        struct urt_spawn_opts o = { .name = (i % 2) ? namebuf : NULL };
        t[i] = urt_spawn_ex(report_identity, &info[i], &o);
        EXPECT(t[i] != NULL);
        strcpy(namebuf, "clobbered");   /* the name was copied */
        handle_ids[i] = urt_task_id(t[i]);
        if (i % 2) {
            char want[40];
            snprintf(want, sizeof want, "worker-%d", i);
            EXPECT(strcmp(urt_task_name(t[i]), want) == 0);
        } else {
            EXPECT(strcmp(urt_task_name(t[i]), "") == 0);
        }
    }
    for (int i = 0; i < N; i++) {
        urt_yield();
        EXPECT_EQ(urt_task_id(t[i]), handle_ids[i]);   /* still valid until joined */
        EXPECT(strcmp(urt_task_name(t[i]), info[i].name) == 0);
        EXPECT_EQ(urt_join(t[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        EXPECT_EQ(info[i].self_id, handle_ids[i]);
        EXPECT(info[i].self == t[i]);
        EXPECT(info[i].self_id > 1);
        if (i)
            EXPECT(info[i].self_id > info[i - 1].self_id);
    }

    /* A long name is cut to 31 bytes. */
    const char *longname = "0123456789abcdef0123456789abcdef0123456789";
    struct urt_spawn_opts o = { .name = longname };
    struct id_info li;
    urt_task *lt = urt_spawn_ex(report_identity, &li, &o);
    EXPECT_EQ(urt_join(lt), 0);
    EXPECT_EQ(strlen(li.name), 31);
    EXPECT(strncmp(li.name, longname, 31) == 0);
    return 0;
}

UT_TEST(ids_and_names)
{
    struct id_info m;
    memset(&m, 0, sizeof m);
    assert_int_equal(urt_run(ids_names_main, &m, NULL), 0);
    assert_int_equal(m.self_id, 1);
    assert_string_equal(m.name, "main");
    assert_non_null(m.self);
    /* outside a task */
    assert_null(urt_self());
    assert_int_equal(urt_task_id(NULL), 0);
    assert_string_equal(urt_task_name(NULL), "");
}

/* Stack sizes: a task may use (most of) the stack it asked for; a guarded request of one page
   gets 16 KiB; a compact request (under 4096 bytes) gets a small slot that serves shallow code. */
static int use_stack(void *arg)
{
    size_t n = (size_t)arg;
    volatile char *p = __builtin_alloca(n);
    for (size_t i = 0; i < n; i += 512)
        p[i] = (char)i;
    p[n - 1] = 1;
    return p[512] == (char)512 ? 0 : -1;
}

static int stack_size_main(void *arg)
{
    (void)arg;
    struct urt_spawn_opts big = { .stack_size = 1024 * 1024 };
    urt_task *t = urt_spawn_ex(use_stack, (void *)(uintptr_t)(900 * 1024), &big);
    EXPECT(t != NULL);
    EXPECT_EQ(urt_join(t), 0);
    struct urt_spawn_opts page = { .stack_size = 4096 };
    t = urt_spawn_ex(use_stack, (void *)(uintptr_t)(8 * 1024), &page);
    EXPECT(t != NULL);
    EXPECT_EQ(urt_join(t), 0);
    struct urt_spawn_opts tiny = { .stack_size = 1500 };   /* compact: a 2 KiB slot */
    t = urt_spawn_ex(use_stack, (void *)(uintptr_t)600, &tiny);
    EXPECT(t != NULL);
    EXPECT_EQ(urt_join(t), 0);
    return 0;
}

UT_TEST(spawn_ex_stack_sizes)
{
    assert_int_equal(urt_run(stack_size_main, NULL, NULL), 0);
}

/* A urt_config.stack_size under 4096 makes compact stacks the default: a task in a 2 KiB slot
   can use a kilobyte of it, while the first task still gets an ordinary stack. */
static int small_default_main(void *arg)
{
    (void)arg;
    EXPECT_EQ(use_stack((void *)(uintptr_t)(32 * 1024)), 0);   /* main: at least 64 KiB */
    urt_task *t = urt_spawn(use_stack, (void *)(uintptr_t)1024);
    EXPECT(t != NULL);
    EXPECT_EQ(urt_join(t), 0);
    return 0;
}

UT_TEST(config_small_stack_size_gives_compact_stacks)
{
    struct urt_config cfg = { .stack_size = 2048 };
    assert_int_equal(urt_run(small_default_main, NULL, &cfg), 0);
}

/* Tasks of many different stack sizes can live side by side. */
static int many_sizes_main(void *arg)
{
    int *ok = arg;
    urt_task *t[12];
    for (int i = 0; i < 12; i++) {
        struct urt_spawn_opts o = { .stack_size = (size_t)(16 + 4 * i) * 1024 };
        errno = 0;
        t[i] = urt_spawn_ex(use_stack, (void *)(uintptr_t)(8 * 1024), &o);
        if (!t[i])
            ut_failf(__FILE__, __LINE__, "spawn with stack_size %zu KiB: NULL, errno %d",
                     o.stack_size / 1024, errno);
    }
    for (int i = 0; i < 12; i++)
        if (t[i] && urt_join(t[i]) == 0)
            (*ok)++;
    return 0;
}

UT_TEST(spawn_ex_many_stack_sizes)
{
    int ok = 0;
    assert_int_equal(urt_run(many_sizes_main, &ok, NULL), 0);
    assert_int_equal(ok, 12);
}

/* No memory for a stack: NULL and ENOMEM (address space limited by RLIMIT_AS in this child). */
static long vm_size_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

struct nomem_res {
    void *t;
    int err;
    int gerr;
    int after;
};

static int nomem_main(void *arg)
{
    struct nomem_res *r = arg;
    urt_group *g = urt_group_new();
    struct rlimit old;
    getrlimit(RLIMIT_AS, &old);
    struct rlimit lim = { (rlim_t)vm_size_bytes() + 32 * 1024 * 1024, old.rlim_max };
    setrlimit(RLIMIT_AS, &lim);
    struct urt_spawn_opts huge = { .stack_size = (size_t)256 * 1024 * 1024 };
    errno = 0;
    r->t = urt_spawn_ex(times_ten, NULL, &huge);
    r->err = errno;
    r->gerr = urt_group_spawn_ex(g, times_ten, NULL, &huge);
    setrlimit(RLIMIT_AS, &old);
    /* and spawning works again once memory is there */
    urt_task *t = urt_spawn_ex(times_ten, (void *)(intptr_t)2, &huge);
    r->after = t ? urt_join(t) : -1;
    urt_group_free(g);
    return 0;
}

UT_TEST(spawn_without_memory_is_enomem)
{
    struct nomem_res r = { (void *)1, 0, 0, 0 };
    assert_int_equal(urt_run(nomem_main, &r, NULL), 0);
    assert_null(r.t);
    assert_int_equal(r.err, ENOMEM);
    assert_int_equal(r.gerr, -ENOMEM);
    assert_int_equal(r.after, 20);
}

/* ---- yield ------------------------------------------------------------------------------------ */

struct pingpong {
    char log[64];
    int n;
};

struct pp_arg {
    struct pingpong *pp;
    char tag;
};

static int yielder(void *arg)
{
    struct pp_arg *a = arg;
    for (int i = 0; i < 5; i++) {
        a->pp->log[a->pp->n++] = a->tag;
        EXPECT_EQ(urt_yield(), 0);
    }
    return 0;
}

static int yield_main(void *arg)
{
    struct pingpong *pp = arg;
    struct pp_arg a = { pp, 'a' }, b = { pp, 'b' }, c = { pp, 'c' };
    urt_task *ta = urt_spawn(yielder, &a);
    urt_task *tb = urt_spawn(yielder, &b);
    urt_task *tc = urt_spawn(yielder, &c);
    EXPECT_EQ(urt_join(ta), 0);
    EXPECT_EQ(urt_join(tb), 0);
    EXPECT_EQ(urt_join(tc), 0);
    /* alone in the run queue, yield returns at once */
    EXPECT_EQ(urt_yield(), 0);
    return 0;
}

UT_TEST(yield_round_robin)
{
    struct pingpong pp;
    memset(&pp, 0, sizeof pp);
    assert_int_equal(urt_run(yield_main, &pp, NULL), 0);
    assert_string_equal(pp.log, "abcabcabcabcabc");
}

/* A task that yields in a loop does not starve I/O or timers. */
struct starve {
    volatile int io_done, timer_done;
    long spins;
};

static int do_pipe_read(void *arg)
{
    struct starve *s = arg;
    int p[2];
    if (pipe(p))
        return -1;
    if (write(p[1], "x", 1) != 1)
        return -1;
    char c;
    ssize_t n = urt_read(p[0], &c, 1, -1);
    EXPECT_EQ(n, 1);
    s->io_done = 1;
    close(p[0]);
    close(p[1]);
    return 0;
}

static int do_short_sleep(void *arg)
{
    struct starve *s = arg;
    EXPECT_EQ(urt_sleep(URT_MSEC(1)), 0);
    s->timer_done = 1;
    return 0;
}

static int spin_yield(void *arg)
{
    struct starve *s = arg;
    while (!(s->io_done && s->timer_done) && s->spins < 50 * 1000 * 1000) {
        s->spins++;
        if (urt_yield() != 0)
            return -1;
    }
    return 0;
}

static int starve_main(void *arg)
{
    urt_task *y = urt_spawn(spin_yield, arg);
    urt_task *r = urt_spawn(do_pipe_read, arg);
    urt_task *s = urt_spawn(do_short_sleep, arg);
    EXPECT_EQ(urt_join(y), 0);
    EXPECT_EQ(urt_join(r), 0);
    EXPECT_EQ(urt_join(s), 0);
    return 0;
}

UT_TEST(yield_loop_does_not_starve_io_or_timers)
{
    struct starve s = { 0, 0, 0 };
    assert_int_equal(urt_run(starve_main, &s, NULL), 0);
    assert_int_equal(s.io_done, 1);
    assert_int_equal(s.timer_done, 1);
    assert_true(s.spins < 50 * 1000 * 1000);
}

/* ---- cancel ----------------------------------------------------------------------------------- */

struct cancel_res {
    int sleep_res;
    int later_sleep, later_yield, cancelled_flag;
    int close_res;
    int fd_closed;
};

static int sleeper_records(void *arg)
{
    struct cancel_res *r = arg;
    r->sleep_res = urt_sleep(URT_SEC(30));
    r->later_sleep = urt_sleep(URT_MSEC(1));
    r->later_yield = urt_yield();
    r->cancelled_flag = urt_cancelled();
    int p[2];
    if (pipe(p) == 0) {
        r->close_res = urt_close(p[0]);   /* close still closes */
        r->fd_closed = fcntl(p[0], F_GETFD) == -1 && errno == EBADF;
        close(p[1]);
    }
    return 9;
}

static int cancel_main(void *arg)
{
    struct cancel_res *r = arg;
    uint64_t t0 = urt_now();
    urt_task *t = urt_spawn(sleeper_records, r);
    urt_sleep(URT_MSEC(5));
    EXPECT_EQ(urt_cancelled(), 0);
    urt_cancel(t);
    urt_cancel(t);   /* twice is harmless */
    EXPECT_EQ(urt_join(t), 9);
    EXPECT(urt_now() - t0 < URT_SEC(5));
    return 0;
}

UT_TEST(cancel_sleeping_task_is_sticky)
{
    struct cancel_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(cancel_main, &r, NULL), 0);
    assert_int_equal(r.sleep_res, -ECANCELED);
    assert_int_equal(r.later_sleep, -ECANCELED);
    assert_int_equal(r.later_yield, -ECANCELED);
    assert_int_not_equal(r.cancelled_flag, 0);
    assert_int_equal(r.close_res, 0);
    assert_int_equal(r.fd_closed, 1);
}

/* Cancelled before it ever ran: its first blocking call fails; cancelling a finished task or
   NULL does nothing. */
static int first_call(void *arg)
{
    *(int *)arg = urt_sleep(URT_MSEC(1));
    return 1;
}

struct cancel_misc {
    int before_start;
    int finished_status;
    int self_yield;
    int self_flag;
};

static int cancel_misc_main(void *arg)
{
    struct cancel_misc *r = arg;
    urt_task *t = urt_spawn(first_call, &r->before_start);
    urt_cancel(t);
    EXPECT_EQ(urt_join(t), 1);

    int dummy = 99;
    urt_task *f = urt_spawn(first_call, &dummy);
    /* until f has finished: it sets dummy just before it returns, with no switch in between */
    uint64_t give_up = urt_now() + URT_SEC(10);
    while (*(volatile int *)&dummy == 99 && urt_now() < give_up)
        EXPECT_EQ(urt_sleep(URT_MSEC(1)), 0);
    urt_cancel(f);
    r->finished_status = urt_join(f);
    EXPECT_EQ(dummy, 0);
    urt_cancel(NULL);

    urt_cancel(urt_self());
    r->self_flag = urt_cancelled();
    r->self_yield = urt_yield();
    return 0;
}

UT_TEST(cancel_before_start_finished_and_self)
{
    struct cancel_misc r = { 1, 0, 1, 0 };
    assert_int_equal(urt_run(cancel_misc_main, &r, NULL), 0);
    assert_int_equal(r.before_start, -ECANCELED);
    assert_int_equal(r.finished_status, 1);
    assert_int_not_equal(r.self_flag, 0);
    assert_int_equal(r.self_yield, -ECANCELED);
}

/* A joiner that is cancelled, or whose deadline passes, gets the error and the task is not
   released: it can be joined again later. */
struct joiner_arg {
    urt_task *target;
    int first, second;
    int use_deadline;
    volatile int release;
};

/* Runs until released (10 s at most), after the joiner's first join has ended: whatever the
   machine's speed, the cancel or the deadline comes while it still runs. */
static int long_task(void *arg)
{
    struct joiner_arg *a = arg;
    uint64_t give_up = urt_now() + URT_SEC(10);
    while (!a->release && urt_now() < give_up)
        urt_sleep(URT_MSEC(1));
    return 11;
}

static int interrupted_joiner(void *arg)
{
    struct joiner_arg *a = arg;
    if (a->use_deadline)
        urt_deadline(urt_now() + URT_MSEC(5));
    a->first = urt_join(a->target);
    return 0;
}

static int joiner_main(void *arg)
{
    struct joiner_arg *a = arg;
    for (int mode = 0; mode < 2; mode++) {
        a[mode].use_deadline = mode;
        a[mode].target = urt_spawn(long_task, &a[mode]);
        urt_task *j = urt_spawn(interrupted_joiner, &a[mode]);
        if (mode == 0) {
            urt_sleep(URT_MSEC(5));   /* j waits in its join now (it ran when this slept) */
            urt_cancel(j);
        }
        EXPECT_EQ(urt_join(j), 0);
        a[mode].release = 1;
        a[mode].second = urt_join(a[mode].target);
    }
    return 0;
}

UT_TEST(join_interrupted_keeps_task)
{
    struct joiner_arg a[2];
    memset(a, 0, sizeof a);
    assert_int_equal(urt_run(joiner_main, a, NULL), 0);
    assert_int_equal(a[0].first, -ECANCELED);
    assert_int_equal(a[0].second, 11);
    assert_int_equal(a[1].first, -ETIMEDOUT);
    assert_int_equal(a[1].second, 11);
}

/* Every blocking call of a cancelled task returns -ECANCELED (and creates nothing); urt_close
   still closes. */
struct all_calls {
    long r[24];
    int n;
    int fds_before, fds_after;
    int close_res;
};

static int child_ok(void *arg)
{
    (void)arg;
    return 0;
}

static int member_sleeps(void *arg)
{
    (void)arg;
    return urt_sleep(URT_SEC(10)) == -ECANCELED ? 0 : -1;
}

static void every_call(struct all_calls *a, int pfd_r, int pfd_w, int sock)
{
    char buf[8] = "abc";
    struct iovec iov = { buf, sizeof buf };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct sockaddr_in sin = { .sin_family = AF_INET };
    urt_chan *c = urt_chan_new(sizeof(int), 4);
    int v = 1;
    urt_chan_send(c, &v);   /* may fail already, it does not matter: recv below has room */
    urt_group *g = urt_group_new();
    EXPECT_EQ(urt_group_spawn(g, member_sleeps, NULL), 0);   /* not a blocking call either */
    int i = 0;
    a->r[i++] = urt_read(pfd_r, buf, sizeof buf, -1);
    a->r[i++] = urt_write(pfd_w, buf, 1, -1);
    a->r[i++] = urt_readv(pfd_r, &iov, 1, -1);
    a->r[i++] = urt_writev(pfd_w, &iov, 1, -1);
    a->r[i++] = urt_recv(sock, buf, sizeof buf, 0);
    a->r[i++] = urt_send(sock, buf, 1, MSG_NOSIGNAL);
    a->r[i++] = urt_recvmsg(sock, &mh, 0);
    a->r[i++] = urt_sendmsg(sock, &mh, MSG_NOSIGNAL);
    a->r[i++] = urt_accept(sock, NULL, NULL, 0);
    a->r[i++] = urt_connect(sock, (struct sockaddr *)&sin, sizeof sin);
    a->r[i++] = urt_socket(AF_INET, SOCK_STREAM, 0);
    a->r[i++] = urt_open("/dev/null", O_RDONLY, 0);
    a->r[i++] = urt_fsync(pfd_w, 0);
    a->r[i++] = urt_shutdown(sock, SHUT_RDWR);
    a->r[i++] = urt_poll(pfd_w, POLLOUT);
    a->r[i++] = urt_sleep(URT_MSEC(1));
    a->r[i++] = urt_sleep_until(urt_now() + URT_MSEC(1));
    a->r[i++] = urt_sleep(0);
    a->r[i++] = urt_yield();
    urt_task *t = urt_spawn(child_ok, NULL);   /* spawning is not a blocking call */
    int joined = urt_join(t);
    a->r[i++] = joined;
    a->r[i++] = urt_chan_send(c, &v);
    a->r[i++] = urt_chan_recv(c, &v);
    a->r[i++] = urt_group_wait(g);
    a->n = i;
    if (t && joined != 0)
        urt_detach(t);   /* the join failed: t was not released */
    urt_group_free(g);
    urt_chan_free(c);
}

static int cancelled_caller(void *arg)
{
    struct all_calls *a = arg;
    int p[2], sv[2];
    if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    urt_cancel(urt_self());
    a->fds_before = ut_count_fds();
    every_call(a, p[0], p[1], sv[0]);
    a->fds_after = ut_count_fds();
    a->close_res = urt_close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

UT_TEST(cancelled_task_every_call_ecanceled)
{
    struct all_calls a;
    memset(&a, 0, sizeof a);
    assert_int_equal(urt_run(cancelled_caller, &a, NULL), 0);
    assert_int_equal(a.n, 23);
    for (int i = 0; i < a.n; i++) {
        if (a.r[i] != -ECANCELED)
            fail_msg("call #%d returned %ld, expected -ECANCELED", i, a.r[i]);
    }
    assert_int_equal(a.fds_before, a.fds_after);
    assert_int_equal(a.close_res, 0);
}

/* The same with a deadline in the past: -ETIMEDOUT everywhere; close still closes. */
static int late_caller(void *arg)
{
    struct all_calls *a = arg;
    int p[2], sv[2];
    if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    urt_deadline(urt_now() - 1);
    a->fds_before = ut_count_fds();
    every_call(a, p[0], p[1], sv[0]);
    a->fds_after = ut_count_fds();
    a->close_res = urt_close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

UT_TEST(past_deadline_every_call_etimedout)
{
    struct all_calls a;
    memset(&a, 0, sizeof a);
    assert_int_equal(urt_run(late_caller, &a, NULL), 0);
    assert_int_equal(a.n, 23);
    for (int i = 0; i < a.n; i++) {
        if (a.r[i] != -ETIMEDOUT)
            fail_msg("call #%d returned %ld, expected -ETIMEDOUT", i, a.r[i]);
    }
    assert_int_equal(a.fds_before, a.fds_after);
    assert_int_equal(a.close_res, 0);
}

/* urt_close is not a cancellation point: cancelling a task parked in urt_close leaves the close
   to complete. */
struct close_cancel {
    int fd;
    int close_res;
    int after;
};

static int closer(void *arg)
{
    struct close_cancel *c = arg;
    c->close_res = urt_close(c->fd);
    c->after = urt_sleep(URT_MSEC(1));
    return 0;
}

static int close_cancel_main(void *arg)
{
    struct close_cancel *c = arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return -1;
    c->fd = sv[0];
    urt_task *t = urt_spawn(closer, c);
    urt_yield();          /* t runs and parks in urt_close */
    urt_cancel(t);
    EXPECT_EQ(urt_join(t), 0);
    EXPECT(fcntl(sv[0], F_GETFD) == -1 && errno == EBADF);
    close(sv[1]);
    return 0;
}

UT_TEST(cancel_during_close_still_closes)
{
    struct close_cancel c = { -1, 1, 1 };
    assert_int_equal(urt_run(close_cancel_main, &c, NULL), 0);
    assert_int_equal(c.close_res, 0);
    assert_int_equal(c.after, -ECANCELED);
}

/* ---- calls outside a task ----------------------------------------------------------------- */

struct outside {
    void *spawn;
    int spawn_errno;
    void *spawn_ex;
    int spawn_ex_errno;
    int join, detach, yield, sleep, sleep_until, cancelled;
    uint64_t deadline;
    long read, write, recv, send, close, open, accept, sock, poll;
    void *group;
    int group_errno;
    int gspawn, gwait;
    int csend, crecv, ctrysend, ctryrecv;
    unsigned ring_flags;
    void *self;
};

static void calls_outside(struct outside *o)
{
    char buf[4];
    int v = 0;
    errno = 0;
    o->spawn = urt_spawn(child_ok, NULL);
    o->spawn_errno = errno;
    errno = 0;
    o->spawn_ex = urt_spawn_ex(child_ok, NULL, NULL);
    o->spawn_ex_errno = errno;
    o->join = urt_join(NULL);
    o->detach = urt_detach_checked(NULL);
    urt_detach(NULL);
    urt_cancel(NULL);
    o->yield = urt_yield();
    o->sleep = urt_sleep(URT_MSEC(1));
    o->sleep_until = urt_sleep_until(urt_now() + URT_MSEC(1));
    o->cancelled = urt_cancelled();
    o->deadline = urt_deadline(urt_now() + URT_SEC(1));
    o->read = urt_read(0, buf, 1, -1);
    o->write = urt_write(1, buf, 0, -1);
    o->recv = urt_recv(0, buf, 1, 0);
    o->send = urt_send(1, buf, 0, 0);
    o->close = urt_close(12345);
    o->open = urt_open("/dev/null", 0, 0);
    o->accept = urt_accept(0, NULL, NULL, 0);
    o->sock = urt_socket(AF_INET, SOCK_STREAM, 0);
    o->poll = urt_poll(0, 1);
    errno = 0;
    o->group = urt_group_new();
    o->group_errno = errno;
    o->gspawn = urt_group_spawn(NULL, child_ok, NULL);
    o->gwait = urt_group_wait(NULL);
    urt_group_cancel(NULL);
    urt_group_free(NULL);
    urt_chan *c = urt_chan_new(sizeof v, 2);   /* allowed anywhere */
    o->csend = urt_chan_send(c, &v);
    o->crecv = urt_chan_recv(c, &v);
    o->ctrysend = urt_chan_try_send(c, &v);
    o->ctryrecv = urt_chan_try_recv(c, &v);
    urt_chan_close(c);
    urt_chan_free(c);
    o->ring_flags = urt_ring_flags();
    o->self = urt_self();
}

static void check_outside(const struct outside *o)
{
    assert_null(o->spawn);
    assert_int_equal(o->spawn_errno, EPERM);
    assert_null(o->spawn_ex);
    assert_int_equal(o->spawn_ex_errno, EPERM);
    assert_int_equal(o->join, -EPERM);
    assert_int_equal(o->detach, -EPERM);
    assert_int_equal(o->yield, -EPERM);
    assert_int_equal(o->sleep, -EPERM);
    assert_int_equal(o->sleep_until, -EPERM);
    assert_int_equal(o->cancelled, 0);
    assert_int_equal(o->deadline, 0);
    assert_int_equal(o->read, -EPERM);
    assert_int_equal(o->write, -EPERM);
    assert_int_equal(o->recv, -EPERM);
    assert_int_equal(o->send, -EPERM);
    assert_int_equal(o->close, -EPERM);
    assert_int_equal(o->open, -EPERM);
    assert_int_equal(o->accept, -EPERM);
    assert_int_equal(o->sock, -EPERM);
    assert_int_equal(o->poll, -EPERM);
    assert_null(o->group);
    assert_int_equal(o->group_errno, EPERM);
    assert_int_equal(o->gspawn, -EPERM);
    assert_int_equal(o->gwait, -EPERM);
    assert_int_equal(o->csend, -EPERM);
    assert_int_equal(o->crecv, -EPERM);
    assert_int_equal(o->ctrysend, -EPERM);
    assert_int_equal(o->ctryrecv, -EPERM);
    assert_int_equal(o->ring_flags, 0);
    assert_null(o->self);
}

UT_TEST(calls_outside_a_runtime_eperm)
{
    struct outside o;
    memset(&o, 0x55, sizeof o);
    calls_outside(&o);
    check_outside(&o);
}

/* A second thread while a runtime runs on this one: it has no runtime, so EPERM too. */
static void *outside_thread(void *arg)
{
    calls_outside(arg);
    return NULL;
}

static int other_thread_main(void *arg)
{
    pthread_t th;
    if (pthread_create(&th, NULL, outside_thread, arg))
        return -1;
    pthread_join(th, NULL);   /* blocks this runtime briefly; fine for a test */
    return 0;
}

UT_TEST(calls_from_another_thread_eperm)
{
    struct outside o;
    memset(&o, 0x55, sizeof o);
    assert_int_equal(urt_run(other_thread_main, &o, NULL), 0);
    check_outside(&o);
}

/* ---- the end of urt_run ------------------------------------------------------------------- */

struct shutdown_res {
    int sleeper_res;
    int reader_res;
    int chan_res;
    int unjoined_res;
    void *spawn_after;
    int spawn_after_errno;
    int gspawn_after;
    int finished;
};

static int detached_sleeper(void *arg)
{
    struct shutdown_res *r = arg;
    r->sleeper_res = urt_sleep(URT_SEC(60));
    errno = 0;
    r->spawn_after = urt_spawn(child_ok, NULL);
    r->spawn_after_errno = errno;
    urt_group *g = urt_group_new();
    r->gspawn_after = g ? urt_group_spawn(g, child_ok, NULL) : -12345;
    urt_group_free(g);
    r->finished++;
    return 0;
}

static int detached_reader(void *arg)
{
    struct shutdown_res *r = arg;
    int p[2];
    if (pipe(p))
        return -1;
    char c;
    r->reader_res = (int)urt_read(p[0], &c, 1, -1);
    urt_close(p[0]);
    urt_close(p[1]);
    r->finished++;
    return 0;
}

static int chan_waiter(void *arg)
{
    struct shutdown_res *r = arg;
    urt_chan *c = urt_chan_new(sizeof(int), 0);
    int v;
    r->chan_res = urt_chan_recv(c, &v);
    urt_chan_free(c);
    r->finished++;
    return 0;
}

static int unjoined(void *arg)
{
    struct shutdown_res *r = arg;
    r->unjoined_res = urt_sleep(URT_SEC(60));
    r->finished++;
    return 0;
}

static int shutdown_main(void *arg)
{
    urt_detach(urt_spawn(detached_sleeper, arg));
    urt_detach(urt_spawn(detached_reader, arg));
    urt_detach(urt_spawn(chan_waiter, arg));
    (void)urt_spawn(unjoined, arg);   /* never joined nor detached */
    urt_sleep(URT_MSEC(5));            /* all of them are parked now */
    return 123;
}

UT_TEST(run_returns_while_tasks_wait_they_get_cancelled)
{
    struct shutdown_res r;
    memset(&r, 0, sizeof r);
    r.spawn_after = (void *)1;
    int fds = ut_count_fds();
    uint64_t t0 = urt_now();
    assert_int_equal(urt_run(shutdown_main, &r, NULL), 123);
    assert_true(urt_now() - t0 < URT_SEC(10));
    assert_int_equal(r.finished, 4);
    assert_int_equal(r.sleeper_res, -ECANCELED);
    assert_int_equal(r.reader_res, -ECANCELED);
    assert_int_equal(r.chan_res, -ECANCELED);
    assert_int_equal(r.unjoined_res, -ECANCELED);
    assert_null(r.spawn_after);
    assert_int_equal(r.spawn_after_errno, EPERM);
    assert_int_equal(r.gspawn_after, -EPERM);
    assert_int_equal(ut_count_fds(), fds);
    struct urt_stats st;
    urt_stats(&st);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(st.ops_inflight, 0);
    assert_int_equal(st.tasks_spawned, 5);
}

/* Where io_uring is not there at all (an old kernel: ENOSYS) or refused (a seccomp filter, the
   io_uring_disabled sysctl: EPERM), urt_run says so and returns the error. A seccomp filter
   that fails io_uring_setup plays both parts. */
static int never_runs(void *arg)
{
    (void)arg;
    return 99;
}

static void deny_io_uring_setup(int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };
    EXPECT_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    EXPECT_EQ(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

UT_TEST(run_without_io_uring_is_enosys)
{
    deny_io_uring_setup(ENOSYS);
    EXPECT_EQ(urt_run(never_runs, NULL, NULL), -ENOSYS);
    struct urt_config quiet = { .quiet = 1 };
    EXPECT_EQ(urt_run(never_runs, NULL, &quiet), -ENOSYS);
}

UT_TEST(run_with_io_uring_refused_is_eperm)
{
    deny_io_uring_setup(EPERM);
    EXPECT_EQ(urt_run(never_runs, NULL, NULL), -EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(run_without_io_uring_is_enosys),
        cmocka_unit_test(run_with_io_uring_refused_is_eperm),
        cmocka_unit_test(run_returns_main_status),
        cmocka_unit_test(run_rejects_bad_arguments),
        cmocka_unit_test(run_nested_is_ebusy),
        cmocka_unit_test(run_sequential_runtimes),
        cmocka_unit_test(run_ring_of_1_entry),
        cmocka_unit_test(run_ring_of_2_entries),
        cmocka_unit_test(run_ring_of_4_entries),
        cmocka_unit_test(run_on_two_threads),
        cmocka_unit_test(spawn_join_returns_status),
        cmocka_unit_test(spawn_runs_in_fifo_order_after_caller),
        cmocka_unit_test(join_and_detach_errors),
        cmocka_unit_test(stale_handle_does_not_reach_new_task),
        cmocka_unit_test(stack_overflow_is_reported),
        cmocka_unit_test(detached_task_runs_to_completion),
        cmocka_unit_test(ids_and_names),
        cmocka_unit_test(spawn_ex_stack_sizes),
        cmocka_unit_test(config_small_stack_size_gives_compact_stacks),
        cmocka_unit_test(spawn_ex_many_stack_sizes),
        cmocka_unit_test(spawn_without_memory_is_enomem),
        cmocka_unit_test(yield_round_robin),
        cmocka_unit_test(yield_loop_does_not_starve_io_or_timers),
        cmocka_unit_test(cancel_sleeping_task_is_sticky),
        cmocka_unit_test(cancel_before_start_finished_and_self),
        cmocka_unit_test(join_interrupted_keeps_task),
        cmocka_unit_test(cancelled_task_every_call_ecanceled),
        cmocka_unit_test(past_deadline_every_call_etimedout),
        cmocka_unit_test(cancel_during_close_still_closes),
        cmocka_unit_test(calls_outside_a_runtime_eperm),
        cmocka_unit_test(calls_from_another_thread_eperm),
        cmocka_unit_test(run_returns_while_tasks_wait_they_get_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
