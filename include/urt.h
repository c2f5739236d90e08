/*
 * urt.h - an io_uring task runtime for C.
 *
 * This header is the manual. Read it top to bottom once.
 *
 * urt runs stackful tasks (coroutines with their own small stacks) over one io_uring per thread.
 * Code inside a task reads like blocking C:
 *
 *     ssize_t n = urt_recv(fd, buf, sizeof buf, 0);
 *
 * The call queues an SQE on the thread's ring and parks the task; the scheduler runs the other
 * ready tasks, submits every queued SQE in one io_uring_enter that also waits, and resumes the task
 * when its completion arrives.
 *
 * Promises kept by every function below, stated once:
 *
 *  - Errors are values. A function that can fail returns a negative errno (or NULL with errno set,
 *    where it returns a pointer). Bad input - an invalid fd, a NULL handle, a call marked (T) made
 *    outside a task - is an error, never a crash or an abort.
 *  - No call raises SIGPIPE: a write or send to a pipe or socket whose reader has gone returns
 *    -EPIPE, whatever SIGPIPE's disposition (the I/O section says how).
 *  - Calls marked (T) may only be made from inside a task (a function started by urt_run, urt_spawn
 *    or urt_group_spawn). Made elsewhere they fail with -EPERM (or NULL and errno EPERM).
 *  - A blocking call never returns before the kernel has finished with the buffers it was given:
 *    when it is cancelled or its deadline passes, urt asks the kernel to cancel the operation and
 *    waits for the operation's own completion. If the operation won the race (bytes were read, a
 *    connection was accepted), that real result is returned, not dropped.
 *  - Cancellation (urt_cancel) is sticky: every blocking call a cancelled task makes, now and later,
 *    returns -ECANCELED, except urt_close, which always closes.
 *  - When every task waits on something only another task could end (a join, a channel, a
 *    group) and no I/O or timer is pending, nothing could ever wake them: each such wait returns
 *    -EDEADLK instead of hanging forever.
 *  - Deadlines (urt_deadline) apply to every blocking call: once urt_now() passes the task's deadline
 *    the call fails with -ETIMEDOUT, after its kernel operation has been cancelled.
 *  - Nothing is shared between threads: each thread that calls urt_run has its own runtime, and a
 *    task, group or channel belongs to the runtime that created it.
 *
 * Times are nanoseconds of CLOCK_MONOTONIC.
 */
#ifndef URT_H
#define URT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define URT_VERSION_MAJOR 0
#define URT_VERSION_MINOR 1

#define URT_USEC(n) ((uint64_t)(n) * 1000ull)
#define URT_MSEC(n) ((uint64_t)(n) * 1000000ull)
#define URT_SEC(n)  ((uint64_t)(n) * 1000000000ull)

/* ============================================================================================== */
/*  The runtime                                                                                   */
/* ============================================================================================== */

/* A task's body. Its return value is the task's status, handed to urt_join or to its group. */
typedef int (*urt_fn)(void *arg);

/* The most helper threads urt_config.blocking_threads may ask for. */
#define URT_BLOCKING_THREADS_MAX 64

/* Settings for urt_run. Zero-initialised fields (or a NULL pointer) take the defaults. */
struct urt_config {
    unsigned ring_entries;   /* submission queue size; default 256, at least 8 (smaller values
                                are raised to 8). The completion queue is 8 times larger, and
                                the kernel never drops a completion, so the ring size limits
                                only how many SQEs go per io_uring_enter.                        */
    size_t   stack_size;     /* default stack size of a task in bytes; default 64 KiB. See
                                "Stacks" below. The first task always gets at least 64 KiB.      */
    unsigned stack_pool_max; /* freed stacks of each size that keep their memory for reuse;
                                default 4096. The pages of stacks freed beyond it go back to the
                                kernel in batches of up to 256, or when the scheduler next waits. */
    int      quiet;          /* nonzero: urt_run prints nothing when io_uring is unavailable.     */
    unsigned blocking_threads; /* most helper threads for urt_blocking; default 4, at most
                                URT_BLOCKING_THREADS_MAX (more: urt_run returns -EINVAL).        */
    int      no_pinning;     /* nonzero: urt_run_threads leaves its threads unpinned (by default
                                runtime i runs on the i-th CPU of the caller's affinity mask,
                                round-robin when there are fewer CPUs than threads).             */
    int      kernel_timers;  /* nonzero: each sleep is one IORING_OP_TIMEOUT instead of urt's
                                userland timers (one kernel wait over an in-order list and a
                                heap). Slower (perf/timers measures both); for comparison only.  */
};

/*
 * Stacks. A task's stack is carved from a large shared mapping (so a million tasks do not need a
 * million mappings), and only the pages a task touches cost memory: an idle task costs about one
 * 4 KiB page, its header included.
 *
 *  - A size of 4096 bytes or more is rounded up to whole pages, at least 16 KiB, with a guard page
 *    below it. A task that overflows into its guard is reported on stderr by id, name and stack
 *    size, and the process aborts (SIGABRT).
 *  - A size under 4096 asks for a compact stack: a 1, 2 or 4 KiB slot (the size rounded up to a
 *    power of two, at least 1 KiB), several to a page, about 200 bytes of it taken by the task's
 *    header: an idle task then costs about half a page. Compact stacks have no guard page: an
 *    overflow is found by a canary word checked at every switch, or by the fault it causes, and
 *    reported the same way - but by then it may have corrupted the neighbouring task's memory, and
 *    a frame larger than the rest of the stack can step over the canary. Keep compact tasks to
 *    shallow code: no printf-family calls, no deep recursion, no large locals; link with
 *    -Wl,-z,now (the lazy binding of a first call into a shared library needs over 1 KiB of
 *    stack); signal handlers must run on an alternate stack (SA_ONSTACK). Sanitizer builds give
 *    compact requests ordinary 16 KiB stacks, since instrumented frames are several times larger.
 *    urt's own calls are safe on any stack, a 1 KiB one included: what needs more than a few
 *    hundred bytes (reaping completions, allocating, starting helper threads, giving stacks back)
 *    runs on the scheduler's stack.
 */

/*
 * Starts a runtime on the calling thread and runs main_fn(arg) as its first task. When main_fn
 * returns, every task still running is cancelled; urt_run returns once all of them have finished.
 *
 * Returns main_fn's return value, or a negative errno when the runtime could not start:
 *   -ENOSYS  io_uring is not available in this kernel (a message says so on stderr)
 *   -EPERM   io_uring is disabled (kernel.io_uring_disabled, seccomp) (message on stderr)
 *   -ENOMEM  no memory for the ring or the first task's stack
 *   -EBUSY   a runtime is already running on this thread (urt_run called from inside a task)
 *   -EINVAL  main_fn is NULL, or cfg holds an impossible value
 * or, once running, the negative errno of an io_uring_enter failure that retrying cannot mend
 * (a forked child going on with its parent's runtime gets -EINVAL or -EEXIST): a line on stderr
 * says so, urt_run returns at once, and the memory its tasks and operations held is left
 * allocated (the kernel may still write into it), never freed or reused.
 */
int urt_run(urt_fn main_fn, void *arg, const struct urt_config *cfg);

/*
 * Many cores: one runtime per thread, shared-nothing. Starts nthreads threads (0: one per CPU of
 * the caller's affinity mask, at most URT_THREADS_MAX), each running its own runtime - its own
 * ring, run queue, timers and stacks - with main_fn(arg) as its first task, pinned to a CPU
 * unless cfg->no_pinning. A task never moves between threads; work crosses through the target
 * runtime's inbox (urt_spawn_on, shared channels), which other threads post to with a message to
 * its ring (IORING_OP_MSG_RING, Linux 5.18) or, from threads without a ring, an eventfd.
 *
 * Returns once every runtime has ended: 0 when every main_fn returned 0, else the first nonzero
 * status in thread order; a negative errno when a runtime could not start (-ENOSYS, -EPERM,
 * -ENOMEM as urt_run, -EAGAIN when a thread could not be created; the first tasks of the others
 * are then cancelled). -EINVAL for a NULL main_fn or a bad count, -EBUSY inside a runtime.
 */
#define URT_THREADS_MAX 1024
int urt_run_threads(int nthreads, urt_fn main_fn, void *arg, const struct urt_config *cfg);
/* The calling runtime's index in its set, 0..n-1 (0 inside urt_run); -EPERM outside a runtime. */
int urt_thread_index(void);
/* The number of runtimes in the caller's set (1 inside urt_run); -EPERM outside a runtime. */
int urt_thread_count(void);

/* Counters of the calling thread's runtime, for benchmarks and debugging. Called outside a
   runtime, they are the final counters of the last runtime this thread ran (zeros if none). */
struct urt_stats {
    uint64_t tasks_live;      /* tasks started and not yet finished                               */
    uint64_t tasks_spawned;   /* tasks ever started, the first included                           */
    uint64_t switches;        /* context switches between tasks or to the scheduler               */
    uint64_t sqes_submitted;  /* SQEs handed to the kernel                                        */
    uint64_t cqes_reaped;     /* completions consumed (a multishot request posts several)         */
    uint64_t enter_calls;     /* io_uring_enter system calls made by the scheduler                */
    uint64_t ops_inflight;    /* SQEs queued or submitted whose last completion has not arrived   */
    uint64_t cancels;         /* cancel requests sent to the kernel                               */
    uint64_t sq_full;         /* times an SQE had to wait for a flush of a full submission queue  */
    uint64_t stacks_pooled;   /* freed stacks kept for reuse right now                            */
    uint64_t stacks_mapped;   /* stacks currently mapped (in use or pooled)                       */
    uint64_t timers_armed;    /* tasks waiting with a wake-up time (sleeps and deadlines)         */
    uint64_t timer_late_max_ns; /* the latest a timer was found expired after its time (how
                                   precise wake-ups are; running the woken tasks comes after)    */
    uint64_t cqes_more;       /* completions of a multishot request (a listener's accept) that said
                                 more would follow: once nothing is in flight, cqes_reaped ==
                                 sqes_submitted + cqes_more                                       */
    uint64_t messages_in;     /* completions that were messages from another runtime's ring
                                 (urt_run_threads): cqes_reaped == sqes_submitted + cqes_more +
                                 messages_in once nothing is in flight                          */
    uint64_t sched_calls;     /* times a task had work done on the scheduler's stack and went on
                                 (allocations, thread starts, a flush of a full queue): not
                                 counted in switches                                              */
};
void urt_stats(struct urt_stats *out);
/* Adds every counter of *one to *sum: the figures of a set of runtimes (urt_run_threads), each
   read by its own runtime with urt_stats. */
void urt_stats_add(struct urt_stats *sum, const struct urt_stats *one);

/*
 * Writes one line per task of the calling thread's runtime to out: id, name, state, what it waits
 * on (the operation and fd, "sleep", the task it joins, the channel or group), how long it has
 * been parked (as of the scheduler's last poll), time left to its deadline, and the stack it has
 * in use (at its last switch) and in all. For finding out why a program hangs.
 */
void urt_dump(FILE *out);

/* (T) Spawns a detached task named "urt-dump" that writes urt_dump(stderr) whenever signo
   arrives (say SIGQUIT, as Go does); signo is blocked in the thread (see urt_signal_wait). The
   dump task runs like any other: a task that never parks or yields holds it off. It ends when
   the runtime ends. 0, -EINVAL (bad signo), -EPERM, -ENOMEM. */
int urt_dump_on_signal(int signo);

/* The ring features urt_run obtained (IORING_SETUP_* flags it set up with), 0 outside a runtime. */
unsigned urt_ring_flags(void);

/* ============================================================================================== */
/*  Tasks                                                                                         */
/* ============================================================================================== */

/*
 * A task handle. It is opaque: not the task's address. A handle stays recognisable after its
 * task is released, so joining, detaching or cancelling through a stale handle is an error
 * (-EINVAL) or does nothing, instead of reaching a later task that reuses the memory (the check
 * compares 22 bits of the task id: it could be fooled only by a handle kept across about four
 * million spawns). Handles belong to the runtime that made them and die with it.
 */
typedef struct urt_task urt_task;

/*
 * (T) Starts fn(arg) as a new task with the default stack size. The task is queued to run after
 * the tasks already ready; the caller keeps running. Returns its handle, which must be passed to
 * exactly one of urt_join or urt_detach. NULL with errno set on failure:
 *   EPERM   not called from a task, or the runtime is shutting down
 *   EINVAL  fn is NULL
 *   ENOMEM  no memory for the task's stack
 */
urt_task *urt_spawn(urt_fn fn, void *arg);

/* Options for urt_spawn_ex. Zero fields take the defaults. */
struct urt_spawn_opts {
    size_t      stack_size;  /* bytes, as urt_config.stack_size (see "Stacks" above); 0: the
                                runtime's default.                                                */
    const char *name;        /* copied (up to 31 bytes); shown by urt_task_name and in reports   */
};

/* (T) urt_spawn with a chosen stack size and name. Errors as urt_spawn. opts may be NULL. */
urt_task *urt_spawn_ex(urt_fn fn, void *arg, const struct urt_spawn_opts *opts);

/* (T) Starts a detached task fn(arg) on runtime `index` of the caller's set (urt_run_threads;
   inside urt_run only index 0 exists). It runs once that runtime next looks at its inbox; if the
   runtime ends first, or has no memory for its stack, it never runs. 0; -EINVAL (bad index, NULL
   fn); -ESHUTDOWN (that runtime's first task has returned: it takes no more work); -ENOMEM;
   -EPERM outside a task. */
int urt_spawn_on(int index, urt_fn fn, void *arg);

/*
 * (T) Waits until t has finished, returns its status and releases it. Errors:
 *   -EINVAL     t is NULL, not a task, already joined, detached, or a group's member
 *   -EDEADLK    t is the calling task
 *   -EXDEV      t is not in this runtime's memory, inside urt_run_threads: another runtime's
 *               task (only its own runtime's tasks may join it), or one whose runtime has ended
 *               (-EINVAL if this runtime has since mapped memory there). Such a handle is never
 *               read; under urt_run it is -EINVAL.
 *   -ECANCELED  the caller was cancelled while waiting (t is not released; join it again later)
 *   -ETIMEDOUT  the caller's deadline passed while waiting (t is not released)
 */
int urt_join(urt_task *t);

/* (T) Lets t release itself when it ends; t's status is then lost. Returns 0, or -EINVAL when t is
   not joinable (NULL, joined, detached already, a group's member), -EXDEV when it belongs to
   another runtime. urt_detach ignores the
   error (it returns nothing, as in most runtimes); urt_detach_checked reports it. */
void urt_detach(urt_task *t);
int  urt_detach_checked(urt_task *t);

/* (T) Cancels t: its blocking call in progress, if any, and every later one return -ECANCELED.
   A task may cancel itself. Cancelling a finished or unknown task, or another runtime's, does
   nothing (to stop work on another runtime, close a shared channel it waits on). */
void urt_cancel(urt_task *t);

/* (T) The calling task; NULL outside a task. */
urt_task *urt_self(void);

/* The task's id (unique within its runtime, the first task is 1) and name ("" if none). Both
   accept NULL for the calling task; outside a task they return 0 and "". */
uint64_t    urt_task_id(const urt_task *t);
const char *urt_task_name(const urt_task *t);

/* (T) Nonzero when the calling task has been cancelled. */
int urt_cancelled(void);

/* (T) Lets the other ready tasks run, then returns 0; -ECANCELED if the caller is cancelled,
   -ETIMEDOUT if its deadline has passed. Pending I/O is submitted and reaped at least once per
   round of the run queue, so a task that yields in a loop does not starve I/O. */
int urt_yield(void);

/* ============================================================================================== */
/*  Time                                                                                          */
/* ============================================================================================== */

/* Now, in nanoseconds of CLOCK_MONOTONIC. Callable anywhere. */
uint64_t urt_now(void);

/* urt_now() to within a few ticks of the kernel's clock (1-10 ms each, by its HZ), for a quarter
   of the cost (CLOCK_MONOTONIC_COARSE; urt_now where there is none): never ahead of urt_now(),
   normally under two ticks behind, more while the kernel's timekeeping stalls. For deadlines
   seconds away renewed on every message, such as an idle timeout, which may then fire a few
   milliseconds early. Callable anywhere. */
uint64_t urt_now_coarse(void);

/* (T) Sleeps ns nanoseconds. 0 when the time has passed; -ECANCELED; -ETIMEDOUT when the task's
   deadline comes first (the task then wakes at its deadline). A sleep of 0 is a yield. */
int urt_sleep(uint64_t ns);

/* (T) Sleeps until urt_now() >= abs_ns. Returns as urt_sleep. */
int urt_sleep_until(uint64_t abs_ns);

/*
 * (T) Sets the calling task's deadline to abs_ns (0 removes it) and returns the previous one
 * (0 outside a task). While set, any blocking call fails with -ETIMEDOUT once urt_now() passes it;
 * an operation already queued in the kernel is cancelled first. The typical use:
 *
 *     uint64_t old = urt_deadline(urt_now() + URT_SEC(5));
 *     n = urt_recv(fd, buf, len, 0);
 *     urt_deadline(old);
 *
 * Cheap to renew: moving a deadline later (an idle timeout pushed back on every message) does no
 * timer work at all, since the timer armed for the earlier time moves on when it fires; moving it
 * earlier, or removing it, is O(1) for timers armed in increasing order and O(log n) otherwise.
 * Checking it is cheap too: a deadline more than a few ticks away is told from a passed one by
 * the coarse clock (urt_now_coarse). Should that clock lag further (the kernel's timekeeping
 * stalled), a call made just after the deadline may start; its timer, already due, then ends it
 * with -ETIMEDOUT at the scheduler's next round, unless it could complete at once.
 */
uint64_t urt_deadline(uint64_t abs_ns);

/* ============================================================================================== */
/*  Cancel scopes, after trio's                                                                   */
/* ============================================================================================== */
/*
 * A scope bounds the blocking calls made while it is open with a deadline of its own, a way to
 * cancel just them, or a shield from everything outside it. Scopes nest, on the task's stack:
 *
 *     urt_scope s;
 *     urt_scope_enter(&s, urt_now() + URT_MSEC(200), 0);    // trio: move_on_after(0.2)
 *     int r = urt_recv(fd, buf, len, 0);                      // -ETIMEDOUT after 200 ms
 *     if (urt_scope_exit(&s))
 *         ...                                                 // the 200 ms ran out in there
 *
 * The rules:
 *  - A blocking call fails with -ETIMEDOUT once the earliest deadline of the open scopes (and the
 *    task's own, urt_deadline, the outermost) has passed: an inner, later deadline never extends
 *    an outer one. It fails with -ECANCELED once an enclosing scope was cancelled
 *    (urt_scope_cancel) or the task was (urt_cancel).
 *  - A URT_SHIELD scope is deaf to everything outside it - enclosing deadlines and cancels,
 *    urt_cancel - until it exits, while its own deadline and its own cancel still apply: the way
 *    to send a goodbye after a cancel. What it kept out applies again from its exit on.
 *  - Leaving a scope ends its deadline and its cancellation: later calls work again unless an
 *    outer scope, the task's deadline or urt_cancel says otherwise.
 *  - Scopes must be left in the reverse order of entering; a scope must be left before the
 *    function that holds it returns.
 *  - A scope costs no timer work unless a call blocks inside it (the timer is armed when a call
 *    waits, as for urt_deadline).
 */
typedef struct urt_scope { uint64_t _opaque[6]; } urt_scope;

#define URT_SHIELD 1u

/* (T) Opens s with a deadline (absolute, urt_now() nanoseconds; 0 for none) and flags (0 or
   URT_SHIELD). Outside a task, or with a NULL s, it does nothing, and the matching exit
   returns -EPERM or -EINVAL. */
void urt_scope_enter(urt_scope *s, uint64_t deadline_abs_ns, unsigned flags);

/* (T) Closes s. Returns 1 if s's deadline or a urt_scope_cancel of s ended or refused a
   blocking call inside it (trio's cancelled_caught), else 0. -EINVAL when s is not the
   innermost open scope of the calling task: if s is open further out, the scopes inside it are
   closed too, then s; if s is not open at all, nothing changes. -EPERM outside a task. */
int urt_scope_exit(urt_scope *s);

/* (T) Cancels what runs inside s (only that): the call blocked in it, if any, and every later
   call until s exits get -ECANCELED, unless a shield inside s holds it off. Any task of s's
   runtime may call it while s is open; on a closed scope, another runtime's, NULL or outside
   a task it does nothing. Idempotent. */
void urt_scope_cancel(urt_scope *s);

/* ============================================================================================== */
/*  I/O                                                                                           */
/* ============================================================================================== */
/*
 * (T) Each call is the system call of the same name run through io_uring: it returns the system
 * call's result, or a negative errno (-EBADF for a closed fd, -EFAULT for a bad buffer as the kernel
 * reports them, -ECANCELED, -ETIMEDOUT). offset -1 means the file position. Buffers must stay valid
 * only for the duration of the call, since the call does not return before the kernel is done.
 * An fd whose operation was ended by another task's urt_close gets -EBADF.
 *
 * SIGPIPE: a write or send to a pipe or socket whose reader has gone returns -EPIPE, and neither
 * kills the process nor leaves a SIGPIPE pending. urt_send, urt_sendmsg and urt_send_recv's send
 * add MSG_NOSIGNAL to flags. A write (urt_write, urt_writev, on a socket too) has no such flag
 * and the kernel raises SIGPIPE in the runtime's thread, so urt_run (each thread's, under
 * urt_run_threads) blocks SIGPIPE in its thread while it runs and takes back, with sigtimedwait,
 * the one an -EPIPE came with. When urt_run returns, SIGPIPE is blocked in the thread or not as
 * before, and the program's handler or disposition applies to its own writes again. Meanwhile a
 * task's own write(2) gets EPIPE alone too (its SIGPIPE is discarded by urt_run's return at the
 * latest), and threads a task starts inherit the block. Never taken: a SIGPIPE pending when
 * urt_run began (the program's own; while it is, urt takes none), and, once a task has called
 * urt_signal_wait with SIGPIPE in its set, those urt's writes raise: they are left for
 * urt_signal_wait to return, and SIGPIPE stays blocked after urt_run, as that call says.
 */
ssize_t urt_read(int fd, void *buf, size_t len, int64_t offset);
ssize_t urt_write(int fd, const void *buf, size_t len, int64_t offset);
ssize_t urt_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
ssize_t urt_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset);
ssize_t urt_recv(int fd, void *buf, size_t len, int flags);
ssize_t urt_send(int fd, const void *buf, size_t len, int flags);
ssize_t urt_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t urt_sendmsg(int fd, const struct msghdr *msg, int flags);

/*
 * (T) Sends all out_len bytes of out, then receives up to in_len bytes into in: the reply and
 * the next request of a server, the request and the reply of a client. Returns what the recv
 * returns (bytes received, 0 at end of stream) or a negative errno: the send's (-EPIPE,
 * -ECONNRESET...) if it failed, else the recv's; -ECANCELED and -ETIMEDOUT as for the other calls,
 * whichever half was in the kernel; -EBADF when another task's urt_close ended it (or 0, end of
 * stream, when that close reached the kernel in the same batch as the pair). *sent (sent
 * may be NULL) is how many bytes of out went: out_len once the send is done, so after an error it
 * tells a request that went out from one that did not. flags go to both halves: MSG_NOSIGNAL
 * (the send; harmless to the recv), MSG_WAITALL (the send always has it; the recv then waits for
 * all in_len bytes). MSG_DONTWAIT makes little sense here: the reply is seldom there yet, and
 * the recv would fail with -EAGAIN. out and in may be the same buffer: the recv starts only once
 * the send is done. (One exception: a kernel out of memory at the very moment may submit the
 * two apart; the recv may then run during the send.)
 *
 * Why it exists: the two go to the kernel as one linked pair (IOSQE_IO_LINK), so the task parks
 * and resumes once instead of twice: for a task per connection that is half of urt's own cost
 * per request (README, "Servers"). The kernel finishes a partial send itself; should the send
 * still come back short (an error after part of it), the rest goes by urt_send calls and the
 * recv by urt_recv, which meet that error or carry on.
 */
ssize_t urt_send_recv(int fd, const void *out, size_t out_len, void *in, size_t in_len,
                      int flags, size_t *sent);

/* (T) accept4(2): the new fd; flags are accept4's (SOCK_NONBLOCK, SOCK_CLOEXEC). addr and addrlen may be NULL. An fd accepted by a call that was
   cancelled in the same instant is returned, not leaked; EMFILE/ENFILE come back as errors. */
int urt_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/*
 * Listeners: accepting with one multishot accept (Linux 5.19) instead of one request per
 * connection. Once a task has called urt_listener_accept, the kernel accepts connections as they
 * arrive, also while no task is waiting, and they wait in the listener's queue, in order, each an
 * open fd, until taken. An accept error (EMFILE, ENFILE...) takes its place in that order and ends
 * the multishot accept, which the next urt_listener_accept arms again; so does a full completion
 * queue, the kernel's way (connections then wait in the listen backlog until it is re-armed). A
 * connection storm then costs no request per connection (perf/accept_bench.sh measures both
 * ways). There is no backpressure: a listener nobody takes from turns its backlog into open fds
 * until the fd limit; free it when the program stops accepting. The listening fd stays the
 * caller's: free the listener before closing it. Should urt_close close it first, every task in
 * urt_listener_accept gets -EBADF, later calls get the connections still queued (accepted before
 * the close took effect) and then -EBADF, and the listener never arms on that fd number again.
 * An armed listener that no task waits on does not keep the -EDEADLK check from firing.
 */
typedef struct urt_listener urt_listener;

/* (T) A listener on the listening socket fd; flags are accept4's (SOCK_NONBLOCK, SOCK_CLOEXEC)
   for every connection it accepts. Nothing is accepted before the first urt_listener_accept.
   NULL with errno: EPERM outside a task, EBADF for fd < 0, EINVAL for other flags, ENOMEM. */
urt_listener *urt_listener_new(int fd, int flags);

/* (T) The next accepted connection's fd (the caller owns it), waiting for one if none is queued;
   or the accept's error in its place (-EMFILE, -ENFILE, -ECONNABORTED, -EINVAL when fd is not a
   listening socket or the kernel has no multishot accept...); -ECANCELED, -ETIMEDOUT (a
   connection handed to a task that is cancelled before it runs is still returned); -ENOMEM (no
   room to arm the deadline); -EBADF once the listening fd was closed by urt_close or
   urt_listener_free has begun; -EINVAL for NULL or a listener of
   another runtime; -EPERM outside a task. */
int urt_listener_accept(urt_listener *l);

/* (T) Ends the multishot accept and waits for the kernel to let go of it and for every task in
   urt_listener_accept to leave (they return -EBADF, or -ECANCELED / -ETIMEDOUT if that came
   first); closes the connections accepted but not
   taken (their clients see the connection close) and frees l. Not a cancellation point. 0;
   -EINVAL for NULL, a foreign listener or one being freed; -EPERM outside a task. Listeners not
   freed are freed when urt_run returns. */
int urt_listener_free(urt_listener *l);

/* (T) connect(2). -ETIMEDOUT from the deadline leaves fd in an undefined connect state: close it. */
int urt_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/* (T) socket(2) through the ring. Returns the new fd. */
int urt_socket(int domain, int type, int protocol);

/* (T) openat(AT_FDCWD, path, flags, mode). path NULL: -EFAULT. */
int urt_open(const char *path, int flags, mode_t mode);

/* (T) fsync(2); datasync nonzero: fdatasync(2). */
int urt_fsync(int fd, int datasync);

/* (T) shutdown(2). */
int urt_shutdown(int fd, int how);

/*
 * (T) splice(2): moves up to len bytes from fd_in to fd_out inside the kernel, one of them a
 * pipe. off_in/off_out as splice's: NULL for a pipe or to use (and advance) the fd's position,
 * else read from and advanced by what was moved. flags are SPLICE_F_*. Returns the bytes moved,
 * 0 at end of input, or a negative errno: splice's (-EINVAL: neither fd a pipe, or a negative
 * offset; -ESPIPE; -EBADF; -EPIPE, without a SIGPIPE; -EAGAIN: a non-blocking fd not ready),
 * -ECANCELED, -ETIMEDOUT.
 */
ssize_t urt_splice(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len,
                   unsigned flags);

/*
 * (T) Sends count bytes of the file in_fd, from *offset on, to out_fd (a socket, or a pipe), the
 * way sendfile(2) does: the pages go from the page cache to the socket inside the kernel, through
 * a pipe the runtime lends (io_uring splices; up to 256 pipes are kept per runtime, closed by
 * its end). Returns count, fewer bytes only when the file ends first, or a negative errno: -EPIPE or
 * -ECONNRESET (the peer went; no SIGPIPE), -EINVAL (offset NULL or negative, in_fd cannot be
 * spliced from), -EBADF, -EMFILE/-ENFILE (no pipe could be made), -ECANCELED, -ETIMEDOUT. In every
 * case *offset is advanced by the bytes out_fd took and no more: after an error, the bytes from
 * *offset on were not sent. The kernel runs splices on io_uring's worker threads: make out_fd
 * non-blocking (SOCK_NONBLOCK, O_NONBLOCK; urt's other calls on it still park and resume as
 * ever) and a peer that stops reading costs only the waiting task, which polls for room; into a
 * blocking socket the splice waits on a worker thread, one thread per such peer.
 */
ssize_t urt_sendfile(int out_fd, int in_fd, int64_t *offset, size_t count);

/* (T) Waits until fd is ready for events (POLLIN, POLLOUT…); returns the events that are ready. */
int urt_poll(int fd, short events);

/*
 * (T) Closes fd. First every operation this runtime has in flight on fd is cancelled and has
 * completed (its task gets -EBADF, or its real result if it won the race), and a socket is shut
 * down (SHUT_RDWR), so that no task hangs on a closed fd - not even one whose operation was
 * queued in the same instant; then the fd is closed. The shutdown reaches every copy of the
 * socket (dup, fork): to give up only this descriptor of a shared socket, use close(2).
 * urt_close is not a cancellation point: a cancelled task or one past its deadline still closes
 * its fds. Returns 0 or close(2)'s error (-EBADF).
 */
int urt_close(int fd);

/* ============================================================================================== */
/*  Signals and blocking work                                                                     */
/* ============================================================================================== */

/*
 * (T) Waits until one of the signals in set arrives and returns its number. The signals in set are
 * blocked in the calling thread from then on (a signalfd receives only blocked signals); block
 * them in every thread, before starting others, so that none of them takes the signal instead.
 * -EINVAL for NULL; -ECANCELED; -ETIMEDOUT.
 */
int urt_signal_wait(const sigset_t *set);

/*
 * (T) Runs fn(arg) on one of the runtime's helper threads (at most struct urt_config's
 * blocking_threads, 4 by default, started on first use) and parks only the calling task until it
 * returns; returns fn's return value. For calls that block and have no io_uring form: DNS
 * lookups, legacy libraries, heavy computation. fn runs on another thread: it must not call urt.
 * Once started it runs to the end: urt_blocking is a cancellation point only before fn starts
 * (-ECANCELED, -ETIMEDOUT); -ENOMEM, -EAGAIN when no thread can be had; -EINVAL for NULL fn.
 */
int urt_blocking(urt_fn fn, void *arg);

struct addrinfo;
/*
 * (T) getaddrinfo(3) on a helper thread. Returns 0 or getaddrinfo's EAI_* code; when the caller
 * is cancelled or its deadline passes first, returns EAI_SYSTEM with errno ECANCELED or ETIMEDOUT
 * at once (the lookup finishes in the background and its result is freed). Free *res with
 * freeaddrinfo.
 */
int urt_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res);

/* ============================================================================================== */
/*  Groups: structured concurrency, after trio's nursery                                          */
/* ============================================================================================== */
/*
 * A group owns the tasks spawned into it, its members. urt_group_wait waits for all of them; the
 * first member to return a nonzero status on its own is the group's failure: it cancels the
 * others, and that status is what urt_group_wait returns. No task outlives its group:
 * urt_group_free cancels and waits for any still running. A group belongs to the task that
 * created it.
 *
 * A deliberate urt_group_cancel is not a failure, as a cancelled trio nursery exits cleanly: the
 * -ECANCELED that members return because of it is dropped, and urt_group_cancelled says that the
 * cancel happened. After `int err = urt_group_wait(g);`:
 *
 *     err != 0                 a member returned err on its own (even -ECANCELED, returned before
 *                              any urt_group_cancel), or the waiter itself was cancelled or its
 *                              deadline passed (-ECANCELED, -ETIMEDOUT; urt_cancelled() tells)
 *     err == 0, cancelled 1    urt_group_cancel stopped the group, and no member failed
 *     err == 0, cancelled 0    every member returned 0
 *
 * For every member's status, not only the first failure, spawn with urt_group_spawn_status:
 *
 *     int st[100];
 *     for (int i = 0; i < 100; i++) {
 *         int e = urt_group_spawn_status(g, job, &jobs[i], NULL, &st[i]);
 *         if (e != 0)
 *             st[i] = e;                  // it never started: no status will come
 *     }
 *     int err = urt_group_wait(g);       // every st[i] is set: job(&jobs[i])'s return value
 *
 * A member cancelled by a failure or a cancel returns what its code returns then, typically the
 * -ECANCELED of the blocking call it was in.
 */
typedef struct urt_group urt_group;

/* (T) A new empty group; NULL and errno ENOMEM or EPERM. */
urt_group *urt_group_new(void);

/* (T) Spawns fn(arg) into g. Any task of the runtime may spawn into a group, not only its
   owner. 0, or -EINVAL (g or fn NULL), -ENOMEM, -EPERM, -ECANCELED (the group has been
   cancelled or has failed and urt_group_wait has not returned since: no new task starts), -EXDEV
   (another runtime's group: a group and its tasks stay on the runtime that made it;
   urt_group_cancel and urt_group_free do nothing there). opts as urt_spawn_ex, NULL allowed. */
int urt_group_spawn(urt_group *g, urt_fn fn, void *arg);
int urt_group_spawn_ex(urt_group *g, urt_fn fn, void *arg, const struct urt_spawn_opts *opts);

/* (T) urt_group_spawn_ex that also stores the member's return value into *status when it ends,
   before urt_group_wait (or urt_group_free) returns; *status must stay valid until then, and is
   not touched before the member ends nor when the spawn fails. status NULL: urt_group_spawn_ex.
   The cost: 24 bytes of the group's, reused, per member running; no allocation per member.
   Errors as urt_group_spawn. */
int urt_group_spawn_status(urt_group *g, urt_fn fn, void *arg, const struct urt_spawn_opts *opts,
                           int *status);

/* (T) Waits for every task in g. Returns the first status a member returned on its own (after
   cancelling the others and waiting for them); 0 if every member returned 0, or -ECANCELED only
   because urt_group_cancel cancelled it (a status other than -ECANCELED returned after the
   cancel, say -EIO from cleanup, is still a failure). When the waiting task is cancelled or its
   deadline passes, the group's tasks are cancelled and waited for, then -ECANCELED or -ETIMEDOUT
   is returned. -EINVAL for NULL, -EXDEV for another runtime's group, -EDEADLK when no member
   could ever end. The group can be reused after it returns: spawns work again. */
int urt_group_wait(urt_group *g);

/* (T) Cancels every task in g and refuses new ones (-ECANCELED) until urt_group_wait returns.
   Not a failure: see urt_group_wait and urt_group_cancelled. Does nothing for NULL or another
   runtime's group. */
void urt_group_cancel(urt_group *g);

/* (T) 1 if urt_group_cancel was called on g and no spawn into g has succeeded since, else 0: it
   still answers after urt_group_wait returns, until the next spawn starts the group afresh.
   -EINVAL for NULL, -EXDEV for another runtime's group. */
int urt_group_cancelled(urt_group *g);

/* (T) Cancels and waits for any task still in g, then frees it. NULL is ignored. */
void urt_group_free(urt_group *g);

/* ============================================================================================== */
/*  Channels                                                                                      */
/* ============================================================================================== */
/*
 * A channel carries fixed-size elements between tasks of one runtime, in FIFO order, with room
 * for `capacity` buffered elements; capacity 0 makes every send wait for a receiver (a rendezvous).
 */
typedef struct urt_chan urt_chan;

/* A new channel; NULL and errno EINVAL (elem_size 0) or ENOMEM. */
urt_chan *urt_chan_new(size_t elem_size, size_t capacity);
/* A channel that tasks of every runtime of the set (urt_run_threads) may send to and receive
   from, with the same calls; urt_chan_try_send, urt_chan_try_recv and urt_chan_close also work
   from any thread at all (one urt does not run), which is how other code wakes a task. FIFO;
   each element is delivered exactly once. It lives until urt_chan_free, by whichever thread knows
   that nobody uses it any more. A task waiting on it is never taken for deadlocked. A local
   channel (urt_chan_new) belongs to its runtime: its calls from another runtime's task or another
   thread return -EXDEV (urt_chan_close and urt_chan_free do nothing from another runtime; from a
   thread that runs none they act, as for a channel whose runtime has ended). */
urt_chan *urt_chan_new_shared(size_t elem_size, size_t capacity);

/* (T) Copies *elem into the channel, waiting for room. 0; -EPIPE when the channel is closed;
   -ECANCELED; -ETIMEDOUT; -EINVAL for NULL arguments. */
int urt_chan_send(urt_chan *c, const void *elem);

/* (T) Takes the oldest element into *elem, waiting for one. 0; -EPIPE when the channel is
   closed and drained; -ECANCELED; -ETIMEDOUT; -EINVAL for NULL arguments. */
int urt_chan_recv(urt_chan *c, void *elem);

/* Non-blocking variants: 0 or -EAGAIN where the blocking call would wait; other errors as above.
   Callable from a task only. */
int urt_chan_try_send(urt_chan *c, const void *elem);
int urt_chan_try_recv(urt_chan *c, void *elem);

/* Closes c: waiting senders get -EPIPE, receivers drain what is buffered and then get -EPIPE.
   Closing twice does nothing. */
void urt_chan_close(urt_chan *c);

/* Closes c, waking its waiters with -EPIPE, and frees it. NULL is ignored. */
void urt_chan_free(urt_chan *c);

/*
 * (T) Go's select over channel cases: waits until at least one case can proceed, performs
 * exactly one of them and returns its index, with cases[i].result 0, or -EPIPE when its channel
 * is closed (a closed channel counts as ready: a send to it, or a receive from it once drained).
 * Among several ready cases each is equally likely to be chosen (a random order each call, as
 * Go's): none starves. Local and shared channels may be mixed; a local channel of another
 * runtime gives -EXDEV. The other cases' results are left as they were.
 * Returns -ECANCELED and -ETIMEDOUT as any blocking call (cancel scopes included), then no case
 * was performed; -EINVAL for n < 1 or n > URT_SELECT_MAX, a NULL chan or elem or an op other
 * than URT_RECV or URT_SEND (before any -EXDEV); -ENOMEM when it must wait on more than four
 * cases and has no memory for their records; -EDEADLK when the runtime found every task stuck
 * (local channels only); -EPERM outside a task. For a select that must not wait, open a
 * scope whose deadline has passed around it: then -ETIMEDOUT means no case was ready.
 * A shared channel must outlive every select over it: the select takes its lock again as it
 * ends. A local channel may be freed under a waiting select (that case gets -EPIPE).
 */
#define URT_RECV 0
#define URT_SEND 1
#define URT_SELECT_MAX 64
struct urt_case {
    urt_chan *chan;
    int       op;       /* URT_RECV: into elem; URT_SEND: from elem                           */
    void     *elem;
    int       result;   /* set for the case performed                                        */
};
int urt_select(struct urt_case *cases, int n);

/* ============================================================================================== */
/*  Locks, semaphores, events, conditions                                                         */
/* ============================================================================================== */
/*
 * The usual primitives, for tasks. Every wait is FIFO (the oldest waiter goes first: nobody
 * starves) and honours cancel scopes, deadlines and urt_cancel like any blocking call, which
 * also means that a cancelled task gets -ECANCELED from urt_mutex_lock, urt_sem_acquire,
 * urt_event_wait and urt_cond_wait even where it would not have to wait.
 *
 * Made inside urt_run_threads with more than one thread, a primitive works across the threads
 * of the set: a mutex held by a task of one runtime blocks a task of another, a release on one
 * wakes a waiter on another. Such a primitive keeps its state under a lock that spins (held for
 * a few dozen instructions at most); a waiter on it is never taken for deadlocked, since another
 * thread may still wake it. Made anywhere else - inside urt_run, or outside any runtime, when
 * the first runtime to use it adopts it - it belongs to one runtime and takes no lock and no
 * atomic operation: urt_mutex_lock and
 * urt_mutex_unlock without contention are a few loads and stores. Its calls from another
 * runtime's task or thread return -EXDEV.
 *
 * A _new returns NULL with errno ENOMEM when there is no memory. A _free returns 0 when it
 * freed (NULL is ignored: 0), -EBUSY when a task waits on the primitive or holds the mutex - the
 * caller's bug, reported rather than turned into freed memory under a sleeping task: nothing is
 * freed then - and -EXDEV for another runtime's local primitive. Every other call returns
 * -EINVAL for a NULL primitive, and -EPERM where marked (T) and made outside a task.
 */
typedef struct urt_mutex urt_mutex;
typedef struct urt_sem   urt_sem;
typedef struct urt_event urt_event;
typedef struct urt_cond  urt_cond;

urt_mutex *urt_mutex_new(void);
/* (T) Takes m, waiting while another task holds it. 0; -EDEADLK when the caller holds it;
   -ECANCELED, -ETIMEDOUT (then the caller does not hold it); -EXDEV. An unlock hands the mutex
   to the oldest waiter directly, so two tasks trading a mutex switch once per handoff. */
int urt_mutex_lock(urt_mutex *m);
/* (T) Takes m if nobody holds it: 0, -EBUSY, -EDEADLK (the caller holds it), -EXDEV. */
int urt_mutex_try_lock(urt_mutex *m);
/* (T) Lets m go, to the oldest waiter if any: 0, or -EPERM when the caller does not hold it. */
int urt_mutex_unlock(urt_mutex *m);
int urt_mutex_free(urt_mutex *m);

/* A semaphore with `value` units. */
urt_sem *urt_sem_new(unsigned value);
/* (T) Takes a unit, waiting for a release while there is none. 0, -ECANCELED, -ETIMEDOUT,
   -EXDEV. */
int urt_sem_acquire(urt_sem *s);
/* Takes a unit if there is one: 0 or -EAGAIN. From any thread for a shared semaphore. */
int urt_sem_try_acquire(urt_sem *s);
/* Gives a unit back, to the oldest waiter if any: 0, or -EOVERFLOW at UINT_MAX units. From any
   thread for a shared semaphore (a thread urt does not run can wake a task this way). */
int urt_sem_release(urt_sem *s);
/* The units free now (a snapshot; INT_MAX at most). */
int urt_sem_value(urt_sem *s);
int urt_sem_free(urt_sem *s);

/* trio.Event: set once, never reset; every task waiting for it, then or later, goes on. */
urt_event *urt_event_new(void);
/* Sets e and wakes its waiters: 0 (setting it again does nothing). From any thread for a
   shared event. */
int urt_event_set(urt_event *e);
/* (T) Waits until e is set: 0 (at once if it is), -ECANCELED, -ETIMEDOUT, -EXDEV. */
int urt_event_wait(urt_event *e);
/* 1 when e is set, else 0. Any thread. */
int urt_event_is_set(urt_event *e);
int urt_event_free(urt_event *e);

/* A condition variable, used with a urt_mutex as pthread_cond_t is with a pthread_mutex_t:
   wait in a loop that tests the condition. */
urt_cond *urt_cond_new(void);
/* (T) Lets m go and waits for a signal, then takes m back before it returns - on error too,
   as pthread_cond_wait does (the taking back waits as long as it must; no cancel ends it).
   0; -EPERM when the caller does not hold m; -ECANCELED, -ETIMEDOUT; -EXDEV. A waiter that
   was signalled but is cancelled (or times out) before it runs returns the error and passes
   the signal on to the next waiter: no signal is lost. -EDEADLK when the runtime found every
   task stuck while this one waited to take m back (a local mutex held by a task that waits
   forever): the only return without m held. */
int urt_cond_wait(urt_cond *c, urt_mutex *m);
/* Wake the oldest waiter / every waiter: 0. Need not hold the mutex. From any thread for a
   shared condition. */
int urt_cond_signal(urt_cond *c);
int urt_cond_broadcast(urt_cond *c);
int urt_cond_free(urt_cond *c);

#ifdef __cplusplus
}
#endif
#endif /* URT_H */
