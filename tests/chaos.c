/*
 * chaos.c - a seeded, randomized test of the whole runtime.
 *
 *     build/tests/chaos --seeds N [--first-seed S] [--batch B] [--repeat R] [--hang-ms MS]
 *                       [--max-failures F] [--budget-seconds T [--min-seeds M]] [-v]
 *
 * Each seed is one urt_run (its ring size, stack pool and helper threads drawn from the seed).
 * Its first task starts a watchdog, channels with consumers and a few "actors"; each actor fans
 * out into children, to a budget of 100 to 2600 tasks, and draws a handful of random actions:
 * spawn (also compact-stack leaves, and long names), join, detach, cancel a random task (live or
 * stale handle, or itself), set and clear deadlines (some already passed), sleep, yield, open a
 * pipe or socket pair stream, read, write (plain, vectored, msg, MSG_WAITALL) or poll one, close
 * a stream end another task may be using, start a task blocked on an fd (read, poll, write to a
 * full pipe, recv, accept) and close that fd under it, send and receive on channels (blocking
 * and try_), close a channel, free a channel under waiting tasks, open a nested group whose
 * members may fail, cancel a group, spawn into any group, run work and getaddrinfo on helper
 * threads, urt_dump, call the API with bad arguments. The seed's weights switch some actions off
 * and favour others (swarm testing); some seeds return from the first task while everything
 * runs, some end in a deadlock only -EDEADLK can end. A model of the header's promises is checked
 * after every action and after urt_run returns:
 *
 *  - streams: byte i of stream k is a function of (seed, k, i). Whichever task holds a stream
 *    end's token does one operation; every byte read must be the next one expected (nothing
 *    lost, duplicated or reordered, also when cancels, deadlines and closes race the operation:
 *    a partial result counts); at EOF every byte the writers were told was written has arrived;
 *    errors are only those the situation allows (-EBADF after a close of that end, -EPIPE after
 *    the other end closed, -ECANCELED / -ETIMEDOUT below); a wait on an fd ends when another
 *    task closes it;
 *  - cancellation and deadlines: a blocking call made after a cancel returns -ECANCELED, one made
 *    past the deadline -ETIMEDOUT; -ECANCELED only when something cancelled the task (urt_cancel,
 *    its group failing or being cancelled or freed, its group's owner interrupted in
 *    urt_group_wait, the first task returning); -ETIMEDOUT only past the deadline; urt_sleep
 *    never returns 0 early or past the deadline; urt_cancelled() and urt_deadline agree;
 *  - tasks: ids are sequential; join returns the child's status; every handle is joined or
 *    detached exactly once; stale handles, group members' handles and second detaches are
 *    -EINVAL; every task ends; urt_stats' tasks_live and tasks_spawned agree with the model after
 *    every step; no spawn after the first task returned;
 *  - groups: urt_group_wait returns the first nonzero status (or the interruption) and no member
 *    outlives urt_group_wait or urt_group_free; a failed or cancelled group refuses spawns;
 *  - channels: each value is received at most once, never if its send failed, in increasing
 *    order per receiver; after close receivers drain, then get -EPIPE, and every value whose send
 *    succeeded has been received; nothing waits on a closed channel;
 *  - the end: urt_run returns the first task's value, tasks_live == 0, ops_inflight == 0,
 *    cqes_reaped == sqes_submitted, tasks_spawned == what was spawned, no fd is left open (each
 *    fd the test opened is closed, and /proc/self/fd counts as many as before).
 *
 * Checks inside tasks only record (a failure on a task's stack must not unwind it, and compact
 * stacks have no room for printf); they are printed, with the seed, after urt_run returns. Seeds
 * run in forked children, a batch at a time, each seed under an alarm(): a child that crashes or
 * hangs names the seed it was running, one that fails at exit (a LeakSanitizer report) has its
 * seeds halved until one is named. A seed replays with --seeds 1 --first-seed S -v; timing varies
 * the interleaving from run to run, so a failure may take a few replays (--repeat R). The last
 * line of the output is "chaos: seeds A..B in T s: N passed, M failed".
 *
 * --budget-seconds T sizes the run to the time it has rather than to the machine it meets (the
 * ctest entry uses it: a loaded machine or a sanitizer build runs fewer seeds instead of running
 * out of time): no seed starts once T seconds have passed, except that the first M seeds
 * (--min-seeds, default 100) always run. A seed already running finishes. The seeds left out are
 * not failures; a line says how many ran, and A..B names the seeds that did.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "urt.h"

#define MAX_STREAMS 8
#define MAX_CHANS   4
#define MAX_GROUPS  128
#define MAX_VICTIMS 16
#define MAX_PCHANS  16
#define MAX_SENDS   1024
#define MAX_FAILS   8
#define FD_LIMIT    4096
#define IOBUF       6144
#define ELEM_MAX    64
#define MAIN_RET(seed) ((int)((seed) % 1000) + 17)

/* ---- a small generator (splitmix64): every task has its own, seeded by its creator ---------- */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rnext(uint64_t *s)
{
    return mix64(*s += 0x9e3779b97f4a7c15ull);
}

/* Uniform in [0, n). */
static inline uint32_t rnd(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((rnext(s) >> 32) * (uint64_t)n) >> 32);
}

static inline bool pct(uint64_t *s, unsigned p)
{
    return rnd(s, 100) < p;
}

/* ---- the model ------------------------------------------------------------------------------ */

enum kind { K_MAIN, K_WATCHDOG, K_ACTOR, K_LEAF, K_WRITER, K_READER, K_CONSUMER, K_VICTIM,
            K_CHANWAITER, K_DEADLOCK };
static const char *const kind_name[] = { "main", "watchdog", "actor", "leaf", "writer", "reader",
                                         "consumer", "victim", "chanwaiter",
                                         "deadlock" };

enum act {
    A_SPAWN, A_SPAWN_LEAF, A_JOIN, A_DETACH, A_CANCEL, A_DEADLINE, A_SLEEP, A_YIELD,
    A_STREAM_OPEN, A_READ, A_WRITE, A_POLL, A_CLOSE_FD, A_SEND, A_RECV, A_CHAN_CLOSE,
    A_GROUP, A_GROUP_CANCEL, A_SIBLING, A_BLOCKING, A_MISUSE, A_VICTIM, A_CHAN_FREE, A_DUMP,
    A_NACT
};
/* Relative frequencies; each seed scales them (and switches some off). */
static const unsigned base_weight[A_NACT] = {
    [A_SPAWN] = 140, [A_SPAWN_LEAF] = 40, [A_JOIN] = 50, [A_DETACH] = 20, [A_CANCEL] = 30,
    [A_DEADLINE] = 50, [A_SLEEP] = 40, [A_YIELD] = 40, [A_STREAM_OPEN] = 25, [A_READ] = 60,
    [A_WRITE] = 60, [A_POLL] = 15, [A_CLOSE_FD] = 6, [A_SEND] = 60, [A_RECV] = 60,
    [A_CHAN_CLOSE] = 2, [A_GROUP] = 35, [A_GROUP_CANCEL] = 8, [A_SIBLING] = 20,
    [A_BLOCKING] = 6, [A_MISUSE] = 20, [A_VICTIM] = 8, [A_CHAN_FREE] = 5, [A_DUMP] = 1,
};

struct grp;
struct world;

struct trec {
    struct world *w;
    struct trec  *parent;        /* holds its handle; NULL for group members and main     */
    struct trec  *children;      /* the tasks whose handles this one holds                */
    struct trec  *sibling;
    struct grp   *group;         /* member of                                             */
    urt_task     *h;
    uint64_t      rng;
    uint64_t      id;
    uint64_t      deadline;      /* as set through urt_deadline                           */
    int           kind, depth, planned, status, obj;
    bool          started, ended, joined, detached, released, cancelled, being_joined;
    uint32_t      last_rx[MAX_CHANS];   /* the next sequence number this task may receive */
};

struct grp {
    urt_group   *g;
    struct trec *owner;
    int          live;           /* members spawned and not yet ended                     */
    int          mstatus;        /* what urt_group_wait should return                     */
    bool         alive, cancelling, owner_waiting;
    bool         deliberate;     /* urt_group_cancel called since the last wait: spawns are
                                    refused, and a member's -ECANCELED is no failure          */
};

struct stream {
    bool         sock;
    int          rfd, wfd;
    bool         r_closed, w_closed, eof, broken;
    struct trec *rtok, *wtok;    /* the task doing an operation on that end               */
    uint64_t     key, len, wpos, rpos;
};

/* An fd a task waits on with nothing else to end the wait, until another task closes it. */
enum { V_READ, V_POLL, V_WRITE_FULL, V_RECV, V_ACCEPT, V_NOPS };
struct victim {
    int  op, fd, other;   /* other: the pair's other end, -1 for a listening socket */
    bool sock, closed;
};

/* A channel of its own, freed while tasks wait on it. */
struct pchan {
    urt_chan *c;
    bool      freed, sent;   /* sent: one element went to a waiting receiver before the free */
    int       got;           /* receivers that got it                                        */
    size_t    cap;
};

#define S_PENDING 1
#define S_OK      2
#define S_FAILED  3
#define S_RECV    0x10

struct chanm {
    urt_chan *c;
    size_t    esize, cap;
    bool      closed, epipe;
    uint32_t  next;
    uint64_t  nok, nrecv;
    uint8_t   st[MAX_SENDS];
};

struct failure {
    int         line;
    const char *what;
    long long   a, b;
    uint64_t    task;
};

/* What a seed did, summed over the run for the closing lines. */
struct counters {
    uint64_t seeds, tasks, actions, bytes, msgs, ecanceled, etimedout, close_races, ebadf,
             groups, group_fails, cancels, victims, victims_woken, races_won, ns, max_ns;
};

struct world {
    uint64_t        seed;
    struct trec    *recs;
    int             nrec, maxrec;
    uint64_t        spawned, ended, next_id;
    int             max_depth, actions_max, max_streams, nroots, fail_pct, fanout;
    bool            early, use_blocking, finale;
    urt_chan       *dl_chan;
    int             dl_recv;
    bool            dl_spawned;
    unsigned        weight[A_NACT], wsum;
    struct stream   streams[MAX_STREAMS];
    int             nstreams;
    struct chanm    chans[MAX_CHANS];
    int             nchans;
    struct grp      groups[MAX_GROUPS];
    int             ngroups;
    struct victim   victims[MAX_VICTIMS];
    int             nvictims;
    struct pchan    pchans[MAX_PCHANS];
    int             npchans;
    FILE           *devnull;
    bool            main_returned, done, hung;
    uint64_t        t0, hang_ns;
    uint8_t         fd_open[FD_LIMIT], fd_used[FD_LIMIT];
    int             nfail;
    struct failure  fails[MAX_FAILS];
    struct counters cnt;
};

/* Records a failure; shallow enough for a compact stack (no formatting here). */
static __attribute__((noinline)) void fail_at(struct world *w, int line, const char *what,
                                              long long a, long long b)
{
    if (w->nfail < MAX_FAILS)
        w->fails[w->nfail] = (struct failure){ line, what, a, b, urt_task_id(NULL) };
    w->nfail++;
}
#define FAIL(w, what, a, b) fail_at((w), __LINE__, (what), (long long)(a), (long long)(b))

/* ---- cancellation and deadlines as the model sees them -------------------------------------- */

/* Something has certainly cancelled r: its blocking calls must return -ECANCELED. */
static bool certain_cancel(const struct trec *r)
{
    return r->cancelled || r->w->main_returned || (r->group && r->group->cancelling);
}

static bool past(const struct trec *r)
{
    return r->deadline && urt_now() >= r->deadline;
}

/* Something may have cancelled r: -ECANCELED is allowed. A member's group owner interrupted in
   urt_group_wait (cancelled or past its deadline) cancels the members. */
static bool possible_cancel(const struct trec *r)
{
    if (r->w->hung)
        return true;
    for (;;) {
        if (certain_cancel(r))
            return true;
        const struct grp *g = r->group;
        if (!g || !g->owner_waiting)
            return false;
        r = g->owner;
        if (past(r))
            return true;
    }
}

/* The state when a blocking call started. */
struct pre {
    bool c, t;
};

static inline struct pre pre_of(const struct trec *me)
{
    return (struct pre){ certain_cancel(me), past(me) };
}

/* The checks every blocking call's result gets. True when it was -ECANCELED or -ETIMEDOUT. */
static bool check_intr_at(struct trec *me, struct pre p, long long r, int line)
{
    struct world *w = me->w;
    if (p.c && r != -ECANCELED)
        fail_at(w, line, "a blocking call of a cancelled task did not return -ECANCELED", r, 0);
    else if (p.t && r != -ETIMEDOUT && !(r == -ECANCELED && possible_cancel(me)))
        fail_at(w, line, "a blocking call made past the deadline did not return -ETIMEDOUT", r, 0);
    if (r == -ECANCELED) {
        w->cnt.ecanceled++;
        if (!possible_cancel(me))
            fail_at(w, line, "-ECANCELED but nothing cancelled the task", r, 0);
        return true;
    }
    if (r == -ETIMEDOUT) {
        w->cnt.etimedout++;
        if (!past(me))
            fail_at(w, line, "-ETIMEDOUT before the deadline (a = ns left, -1: no deadline)",
                    me->deadline ? (long long)(me->deadline - urt_now()) : -1, 0);
        return true;
    }
    return false;
}
#define check_intr(me, p, r) check_intr_at((me), (p), (long long)(r), __LINE__)

static void set_deadline(struct trec *me, uint64_t d)
{
    uint64_t old = urt_deadline(d);
    if (old != me->deadline)
        FAIL(me->w, "urt_deadline returned a previous deadline that was not set", old, me->deadline);
    me->deadline = d;
}

/* ---- fds -------------------------------------------------------------------------------------- */

/* fd_open: 0 closed, 1 open, 2 being closed (the number may be given out again as soon as the
   close completes, before the closing task runs again). */
static void fd_opened(struct world *w, int fd)
{
    if (fd < 0 || fd >= FD_LIMIT) {
        FAIL(w, "fd out of the range the test tracks", fd, 0);
        return;
    }
    if (w->fd_open[fd] == 1)
        FAIL(w, "a new fd has the number of an fd still open", fd, 0);
    w->fd_open[fd] = 1;
    w->fd_used[fd] = 1;
}

static void fd_closing(struct world *w, int fd)
{
    if (fd >= 0 && fd < FD_LIMIT)
        w->fd_open[fd] = 2;
}

static void fd_closed(struct world *w, int fd)
{
    if (fd >= 0 && fd < FD_LIMIT && w->fd_open[fd] == 2)
        w->fd_open[fd] = 0;
}

static int count_fds(void)
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
    return n - 1;
}

/* ---- the per-step check ------------------------------------------------------------------------ */

static void check_step(struct trec *me)
{
    struct world *w = me->w;
    struct urt_stats st;
    urt_stats(&st);
    uint64_t live = w->spawned - w->ended;
    if (st.tasks_live != live)
        FAIL(w, "urt_stats tasks_live differs from the model", st.tasks_live, live);
    if (st.tasks_spawned != w->spawned)
        FAIL(w, "urt_stats tasks_spawned differs from the model", st.tasks_spawned, w->spawned);
    if (st.cqes_reaped > st.sqes_submitted)
        FAIL(w, "more completions reaped than SQEs submitted", st.cqes_reaped, st.sqes_submitted);
    if (st.ops_inflight < st.sqes_submitted - st.cqes_reaped)
        FAIL(w, "ops_inflight below submitted - reaped", st.ops_inflight,
             st.sqes_submitted - st.cqes_reaped);
    uint64_t d = urt_deadline(0);
    urt_deadline(d);
    if (d != me->deadline)
        FAIL(w, "the task's deadline changed by itself", d, me->deadline);
    if (urt_task_id(NULL) != me->id)
        FAIL(w, "urt_task_id(NULL) is not the task's id", urt_task_id(NULL), me->id);
    int uc = urt_cancelled();
    if (certain_cancel(me) && !uc)
        FAIL(w, "urt_cancelled() is 0 in a cancelled task", 0, 0);
    if (uc && !possible_cancel(me))
        FAIL(w, "urt_cancelled() is 1 but nothing cancelled the task", 0, 0);
}

/* ---- tasks ------------------------------------------------------------------------------------ */

static int task_entry(void *arg);

static struct trec *rec_new(struct trec *creator, int kind)
{
    struct world *w = creator->w;
    if (w->nrec >= w->maxrec)
        return NULL;
    struct trec *r = &w->recs[w->nrec++];
    memset(r, 0, sizeof *r);
    r->w = w;
    r->kind = kind;
    r->depth = creator->depth + 1;
    r->rng = rnext(&creator->rng);
    r->obj = -1;
    return r;
}

/* Gives back the record just taken by rec_new (nothing ran in between). */
static void rec_drop(struct trec *r)
{
    struct world *w = r->w;
    if (r == &w->recs[w->nrec - 1])
        w->nrec--;
}

static size_t stack_for(struct trec *c)
{
    if (c->kind == K_LEAF) {
#ifdef __OPTIMIZE__
        return pct(&c->rng, 50) ? 2000 : 4000;   /* compact: 2 or 4 KiB slots */
#else
        return 4000;   /* unoptimised frames (the runtime's too) need the larger slot */
#endif
    }
    if (c->kind == K_ACTOR && pct(&c->rng, 25))
        return 32768;
    return 0;
}

static const char long_name[] = "a-task-name-longer-than-31-bytes-is-cut";

static bool spawn_child(struct trec *me, struct trec *c)
{
    struct world *w = me->w;
    bool lname = c->kind == K_ACTOR && pct(&me->rng, 10);
    struct urt_spawn_opts o = { .stack_size = stack_for(c),
                                .name = lname ? long_name : kind_name[c->kind] };
    bool stop0 = w->main_returned;
    errno = 0;
    urt_task *h = urt_spawn_ex(task_entry, c, &o);
    if (!h) {
        if (!(errno == EPERM && stop0))
            FAIL(w, "urt_spawn failed", errno, stop0);
        rec_drop(c);
        return false;
    }
    if (stop0)
        FAIL(w, "urt_spawn succeeded after the first task returned", 0, 0);
    c->h = h;
    c->parent = me;
    c->id = ++w->next_id;
    w->spawned++;
    w->cnt.tasks++;
    c->sibling = me->children;
    me->children = c;
    if (urt_task_id(h) != c->id)
        FAIL(w, "a new task's id is not the next one", urt_task_id(h), c->id);
    const char *nm = urt_task_name(h);
    if (lname ? strlen(nm) != 31 || strncmp(nm, long_name, 31) : strcmp(nm, kind_name[c->kind]))
        FAIL(w, "urt_task_name is not the name given (cut to 31 bytes)", strlen(nm), lname);
    return true;
}

static bool spawn_member(struct trec *me, struct grp *g, int kind)
{
    struct world *w = me->w;
    struct trec *c = rec_new(me, kind);
    if (!c)
        return false;
    c->group = g;
    c->planned = pct(&c->rng, w->fail_pct) ? 5000 + (int)(c - w->recs) : 0;
    struct urt_spawn_opts o = { .stack_size = stack_for(c), .name = "member" };
    bool stop0 = w->main_returned;
    int ms0 = g->mstatus;
    int r = urt_group_spawn_ex(g->g, task_entry, c, &o);
    int want = stop0 ? -EPERM : ms0 || g->deliberate ? -ECANCELED : 0;
    if (r != want &&
        !(r == -ECANCELED && want == 0 && g->owner_waiting &&
          (possible_cancel(g->owner) || past(g->owner))))
        FAIL(w, "urt_group_spawn returned a, the model expected b", r, want);
    if (r != 0) {
        rec_drop(c);
        return false;
    }
    c->id = ++w->next_id;
    w->spawned++;
    w->cnt.tasks++;
    g->live++;
    return true;
}

/* The end of a task's body: what its status does to the model. */
static void task_end(struct trec *me, int st)
{
    struct world *w = me->w;
    for (int i = 0; i < w->nstreams; i++)
        if (w->streams[i].rtok == me || w->streams[i].wtok == me)
            FAIL(w, "a task ended holding a stream token (test bug)", i, 0);
    me->status = st;
    me->ended = true;
    w->ended++;
    if (me->detached || me->group)
        me->released = true;
    struct grp *g = me->group;
    if (g) {
        g->live--;
        if (st && !g->mstatus && !(st == -ECANCELED && g->deliberate)) {
            g->mstatus = st;      /* the first failure: the runtime cancels the others now */
            g->cancelling = true;
        }
    }
}

static bool do_join(struct trec *me, struct trec *c)
{
    struct world *w = me->w;
    struct pre p = pre_of(me);
    bool ended0 = c->ended;
    c->being_joined = true;
    int r = urt_join(c->h);
    c->being_joined = false;
    if (ended0 || r >= 0) {
        if (!c->ended)
            FAIL(w, "urt_join returned before the task ended", r, c->id);
        else if (r != c->status)
            FAIL(w, "urt_join returned a status the task did not return", r, c->status);
        if (!ended0)
            check_intr(me, p, r);
        c->joined = c->released = true;
        return true;
    }
    if (!check_intr(me, p, r)) {
        FAIL(w, "urt_join failed", r, c->id);
        c->joined = true;    /* do not try again */
        return true;
    }
    if (c->ended)
        FAIL(w, "urt_join was interrupted but the task had ended", r, c->id);
    return false;
}

static void do_detach(struct trec *me, struct trec *c)
{
    int r = urt_detach_checked(c->h);
    if (r != 0)
        FAIL(me->w, "urt_detach_checked of a joinable task failed", r, c->id);
    c->detached = true;
    if (c->ended)
        c->released = true;
}

/* Joins (or now and then detaches) every child still held. */
static void finish_children(struct trec *me)
{
    for (struct trec *c = me->children; c; c = c->sibling) {
        if (c->joined || c->detached)
            continue;
        if (me->kind != K_MAIN && pct(&me->rng, 15)) {
            do_detach(me, c);
            continue;
        }
        if (me->deadline)
            set_deadline(me, 0);
        if (!do_join(me, c))
            do_detach(me, c);   /* cancelled: the join cannot wait any more */
    }
}

/* A random child still held, or NULL. */
static struct trec *pick_child(struct trec *me)
{
    int n = 0;
    for (struct trec *c = me->children; c; c = c->sibling)
        n += !(c->joined || c->detached);
    if (!n)
        return NULL;
    int k = (int)rnd(&me->rng, (uint32_t)n);
    for (struct trec *c = me->children; c; c = c->sibling)
        if (!(c->joined || c->detached) && k-- == 0)
            return c;
    return NULL;
}

/* Sleeps up to max_us (0: yields), checking what it returns. */
static int pause_op(struct trec *me, uint32_t max_us)
{
    struct world *w = me->w;
    uint64_t ns = (uint64_t)rnd(&me->rng, max_us + 1) * 1000u;
    struct pre p = pre_of(me);
    uint64_t t0 = urt_now();
    int r = ns || pct(&me->rng, 50) ? urt_sleep(ns) : urt_yield();   /* urt_sleep(0) yields */
    if (r == 0 && ns) {
        uint64_t el = urt_now() - t0;
        if (el < ns)
            FAIL(w, "urt_sleep returned 0 early (a = ns slept, b = asked)", el, ns);
        if (me->deadline && me->deadline <= t0 + ns)
            FAIL(w, "urt_sleep returned 0 though the deadline came first", me->deadline - t0, ns);
    }
    if (!check_intr(me, p, r) && r != 0)
        FAIL(w, "urt_sleep/urt_yield failed", r, ns);
    return r;
}

/* ---- streams ---------------------------------------------------------------------------------- */

static inline uint64_t sblock(uint64_t key, uint64_t blk)
{
    return mix64(key ^ (blk * 0xd6e8feb86659fd93ull));
}

static void fill_bytes(uint64_t key, uint64_t pos, uint8_t *buf, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t p = pos + i, b = sblock(key, p >> 3);
        for (unsigned o = (unsigned)(p & 7); o < 8 && i < n; o++)
            buf[i++] = (uint8_t)(b >> (o * 8));
    }
}

/* The index of the first byte that is not stream byte pos + i, or n. */
static size_t check_bytes(uint64_t key, uint64_t pos, const uint8_t *buf, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t p = pos + i, b = sblock(key, p >> 3);
        for (unsigned o = (unsigned)(p & 7); o < 8 && i < n; o++, i++)
            if (buf[i] != (uint8_t)(b >> (o * 8)))
                return i;
    }
    return n;
}

static void close_end(struct trec *me, struct stream *s, bool write_end)
{
    struct world *w = me->w;
    bool *flag = write_end ? &s->w_closed : &s->r_closed;
    int fd = write_end ? s->wfd : s->rfd;
    if (*flag)
        return;
    *flag = true;   /* first: nobody starts an operation on fd from here on */
    if (write_end ? s->wtok != NULL : s->rtok != NULL)
        w->cnt.close_races++;
    fd_closing(w, fd);
    int r = urt_close(fd);
    if (r != 0)
        FAIL(w, "urt_close of an open fd failed", r, fd);
    fd_closed(w, fd);
}

/* What a read (or recv) returned. */
static long stream_got(struct trec *me, struct stream *s, const uint8_t *buf, size_t len,
                       ssize_t n, struct pre p)
{
    struct world *w = me->w;
    if (n > 0) {
        check_intr(me, p, n);
        if ((size_t)n > len) {
            FAIL(w, "a read returned more than asked", n, len);
            return n;
        }
        if (!s->broken) {
            size_t bad = check_bytes(s->key, s->rpos, buf, (size_t)n);
            if (bad != (size_t)n) {
                FAIL(w, "a byte read is not the next of its stream (lost, duplicated or "
                        "reordered; a = stream offset, b = bytes written so far)",
                     s->rpos + bad, s->wpos);
                s->broken = true;
            }
        }
        s->rpos += (uint64_t)n;
        w->cnt.bytes += (uint64_t)n;
        if (possible_cancel(me) || past(me))
            w->cnt.races_won++;   /* cancelled or timed out, yet the bytes came back */
        if (s->rpos > s->len)
            FAIL(w, "a stream delivered more bytes than it has", s->rpos, s->len);
        return n;
    }
    if (check_intr(me, p, n))
        return n;
    if (n == 0) {
        if (s->w_closed && !s->r_closed)
            s->eof = true;
        else if (!s->w_closed && !s->r_closed)
            FAIL(w, "EOF from a stream whose write end is open", s->rpos, s->wpos);
        return n;
    }
    if (n == -EBADF) {
        w->cnt.ebadf++;
        if (!s->r_closed)
            FAIL(w, "-EBADF from a read on an open fd", s->rfd, 0);
        return n;
    }
    if (n == -ECONNRESET && s->sock && (s->r_closed || s->w_closed))
        return n;
    FAIL(w, "a read failed", n, s->sock);
    return n;
}

/* One read-side operation by the holder of s->rtok, which it gives back. */
static long stream_read_op(struct trec *me, struct stream *s, bool poll_only)
{
    struct world *w = me->w;
    uint8_t buf[IOBUF];
    size_t len = 1 + rnd(&me->rng, pct(&me->rng, 50) ? IOBUF : 64);
    int fd = s->rfd;
    unsigned how = poll_only ? 4 : rnd(&me->rng, 5);
    /* MSG_WAITALL: the kernel keeps receiving until len; a cancel ends it with what it has */
    int rflags = s->sock && pct(&me->rng, 25) ? MSG_WAITALL : 0;
    struct pre p = pre_of(me);
    ssize_t n;
    if (how == 4) {   /* poll, then give the token back without reading */
        int r = urt_poll(fd, POLLIN);
        s->rtok = NULL;
        if (r > 0) {
            check_intr(me, p, r);
            if (!(r & (POLLIN | POLLHUP | POLLERR | POLLRDHUP)))
                FAIL(w, "urt_poll(POLLIN) returned other events", r, 0);
        } else if (!check_intr(me, p, r)) {
            if (r == -EBADF) {
                w->cnt.ebadf++;
                if (!s->r_closed)
                    FAIL(w, "-EBADF from a poll on an open fd", fd, 0);
            } else {
                FAIL(w, "urt_poll failed", r, 0);
            }
        }
        return r;
    }
    size_t half = len / 2;
    struct iovec iov[2] = { { buf, half }, { buf + half, len - half } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
    switch (how) {
    case 0:
        n = urt_read(fd, buf, len, -1);
        break;
    case 1:
        n = urt_readv(fd, iov, 2, -1);
        break;
    case 2:
        n = s->sock ? urt_recv(fd, buf, len, rflags) : urt_read(fd, buf, len, -1);
        break;
    default:
        n = s->sock ? urt_recvmsg(fd, &msg, rflags) : urt_readv(fd, iov, 2, -1);
        break;
    }
    s->rtok = NULL;
    return stream_got(me, s, buf, len, n, p);
}

/* One write-side operation by the holder of s->wtok, which it gives back. */
static long stream_write_op(struct trec *me, struct stream *s, bool poll_only)
{
    struct world *w = me->w;
    uint8_t buf[IOBUF];
    uint64_t left = s->len - s->wpos;
    if (!left) {
        s->wtok = NULL;
        return 0;
    }
    uint32_t cap = pct(&me->rng, 50) ? IOBUF : 64;
    size_t len = 1 + rnd(&me->rng, left < cap ? (uint32_t)left : cap);
    int fd = s->wfd;
    uint64_t pos0 = s->wpos;
    fill_bytes(s->key, pos0, buf, len);
    unsigned how = poll_only ? 4 : rnd(&me->rng, 5);
    struct pre p = pre_of(me);
    ssize_t n;
    if (how == 4) {
        int r = urt_poll(fd, POLLOUT);
        s->wtok = NULL;
        if (r > 0) {
            check_intr(me, p, r);
            if (!(r & (POLLOUT | POLLHUP | POLLERR)))
                FAIL(w, "urt_poll(POLLOUT) returned other events", r, 0);
        } else if (!check_intr(me, p, r)) {
            if (r == -EBADF) {
                w->cnt.ebadf++;
                if (!s->w_closed)
                    FAIL(w, "-EBADF from a poll on an open fd", fd, 0);
            } else {
                FAIL(w, "urt_poll failed", r, 0);
            }
        }
        return r;
    }
    size_t half = len / 2;
    struct iovec iov[2] = { { buf, half }, { buf + half, len - half } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
    switch (how) {
    case 0:
        n = urt_write(fd, buf, len, -1);
        break;
    case 1:
        n = urt_writev(fd, iov, 2, -1);
        break;
    case 2:
        n = s->sock ? urt_send(fd, buf, len, MSG_NOSIGNAL) : urt_write(fd, buf, len, -1);
        break;
    default:
        n = s->sock ? urt_sendmsg(fd, &msg, MSG_NOSIGNAL) : urt_writev(fd, iov, 2, -1);
        break;
    }
    s->wtok = NULL;
    if (s->wpos != pos0)
        FAIL(w, "the write position moved while the token was held (test bug)", s->wpos, pos0);
    if (n > 0) {
        check_intr(me, p, n);
        if ((size_t)n > len)
            FAIL(w, "a write returned more than asked", n, len);
        s->wpos += (uint64_t)n;
        if (possible_cancel(me) || past(me))
            w->cnt.races_won++;
        return n;
    }
    if (check_intr(me, p, n))
        return n;
    if (n == -EBADF) {
        w->cnt.ebadf++;
        if (!s->w_closed)
            FAIL(w, "-EBADF from a write on an open fd", fd, 0);
    } else if (n == -EPIPE || n == -ECONNRESET) {
        if (!s->r_closed)
            FAIL(w, "-EPIPE from a stream whose read end is open", n, 0);
    } else {
        FAIL(w, "a write failed", n, s->sock);
    }
    return n;
}

static struct stream *pick_stream(struct trec *me, bool write_end)
{
    struct world *w = me->w;
    if (!w->nstreams)
        return NULL;
    struct stream *s = &w->streams[rnd(&me->rng, (uint32_t)w->nstreams)];
    if (write_end ? (s->w_closed || s->wtok || s->wpos == s->len) : (s->r_closed || s->rtok))
        return NULL;
    return s;
}

static void act_read(struct trec *me, bool poll_only)
{
    struct stream *s = pick_stream(me, false);
    if (!s)
        return;
    s->rtok = me;
    stream_read_op(me, s, poll_only);
}

static void act_write(struct trec *me, bool poll_only)
{
    struct stream *s = pick_stream(me, true);
    if (!s)
        return;
    s->wtok = me;
    stream_write_op(me, s, poll_only);
}

static void act_stream_open(struct trec *me)
{
    struct world *w = me->w;
    if (w->nstreams >= w->max_streams || w->main_returned || w->nrec + 2 > w->maxrec)
        return;
    int fds[2];
    bool sock = pct(&me->rng, 50);
    if (sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) : pipe2(fds, O_CLOEXEC)) {
        FAIL(w, "socketpair/pipe2 failed", errno, sock);
        return;
    }
    fd_opened(w, fds[0]);
    fd_opened(w, fds[1]);
    if (pct(&me->rng, 60)) {   /* small buffers: writers block, partial writes happen */
        if (sock) {
            int sz = 4096;
            setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
            setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        } else {
            fcntl(fds[1], F_SETPIPE_SZ, 4096);
        }
    }
    int idx = w->nstreams++;
    struct stream *s = &w->streams[idx];
    memset(s, 0, sizeof *s);
    s->sock = sock;
    s->rfd = fds[0];
    s->wfd = fds[1];
    s->key = rnext(&me->rng);
    s->len = 1 + rnd(&me->rng, 12000);
    struct trec *wr = rec_new(me, K_WRITER);
    wr->obj = idx;
    wr->planned = (int)rnd(&me->rng, 1000);
    if (!spawn_child(me, wr)) {
        close_end(me, s, true);
        close_end(me, s, false);
        return;
    }
    struct trec *rd = rec_new(me, K_READER);
    rd->obj = idx;
    rd->planned = (int)rnd(&me->rng, 1000);
    if (!spawn_child(me, rd))
        close_end(me, s, false);
    if (pct(&me->rng, 10))
        do_detach(me, wr);
}

static void act_close_fd(struct trec *me)
{
    struct world *w = me->w;
    if (!w->nstreams)
        return;
    struct stream *s = &w->streams[rnd(&me->rng, (uint32_t)w->nstreams)];
    close_end(me, s, pct(&me->rng, 50));
}

/* The stream's own writer: writes the rest of the stream, then closes the write end. */
static void writer_body(struct trec *me)
{
    struct world *w = me->w;
    struct stream *s = &w->streams[me->obj];
    while (!s->w_closed && s->wpos < s->len) {
        if (s->wtok) {
            if (pause_op(me, 30) == -ECANCELED)
                break;
            continue;
        }
        bool dl = pct(&me->rng, 15);
        if (dl)
            set_deadline(me, urt_now() + rnd(&me->rng, 300) * 1000ull);
        s->wtok = me;
        long n = stream_write_op(me, s, false);
        if (dl)
            set_deadline(me, 0);
        if (n < 0 && n != -ETIMEDOUT)
            break;
        if (pct(&me->rng, 20) && pause_op(me, 50) == -ECANCELED)
            break;
    }
    close_end(me, s, true);
}

/* The stream's own reader: reads to the end (or an error), then closes the read end. */
static void reader_body(struct trec *me)
{
    struct world *w = me->w;
    struct stream *s = &w->streams[me->obj];
    while (!s->r_closed && !s->eof) {
        if (s->rtok) {
            if (pause_op(me, 30) == -ECANCELED)
                break;
            continue;
        }
        bool dl = pct(&me->rng, 15);
        if (dl)
            set_deadline(me, urt_now() + rnd(&me->rng, 300) * 1000ull);
        s->rtok = me;
        long n = stream_read_op(me, s, false);
        if (dl)
            set_deadline(me, 0);
        if (n < 0 && n != -ETIMEDOUT)
            break;
        if (pct(&me->rng, 20) && pause_op(me, 50) == -ECANCELED)
            break;
    }
    close_end(me, s, false);
}

/* ---- closing an fd another task waits on ----------------------------------------------------- */

static void victim_body(struct trec *me)
{
    struct world *w = me->w;
    struct victim *v = &w->victims[me->obj];
    if (v->closed)
        return;   /* closed before this task ran: the fd (number) is no longer its to use */
    uint8_t buf[256];
    struct pre p = pre_of(me);
    long r;
    switch (v->op) {
    case V_READ:
        r = urt_read(v->fd, buf, sizeof buf, -1);
        break;
    case V_POLL:
        r = urt_poll(v->fd, POLLIN);
        break;
    case V_WRITE_FULL:
        r = urt_write(v->fd, buf, sizeof buf, -1);
        break;
    case V_RECV:
        r = urt_recv(v->fd, buf, sizeof buf, 0);
        break;
    default:
        r = urt_accept(v->fd, NULL, NULL, SOCK_CLOEXEC);
        break;
    }
    if (check_intr(me, p, r))
        return;
    if (r == -EBADF) {
        w->cnt.victims_woken++;
        if (!v->closed)
            FAIL(w, "-EBADF from a wait on an fd nobody closed (a = op)", v->op, v->fd);
    } else if (r >= 0 && v->closed && v->op != V_WRITE_FULL && v->op != V_ACCEPT &&
               (v->op != V_POLL || r > 0)) {
        /* EOF, or poll events: the other end (or a shutdown) ended the wait */
    } else {
        FAIL(w, "a wait on an fd another task closed returned a (b = op)", r, v->op);
        if (v->op == V_ACCEPT && r >= 0)
            close((int)r);
    }
}

/* Opens an fd pair (or a listening socket), starts a task waiting on it, closes the fd under it
   and (mostly) joins the waiter before closing the other end, which would also end the wait. */
static void act_victim(struct trec *me)
{
    struct world *w = me->w;
    if (w->nvictims >= MAX_VICTIMS || w->main_returned || w->nrec + 1 > w->maxrec)
        return;
    struct victim *v = &w->victims[w->nvictims];
    memset(v, 0, sizeof *v);
    v->op = (int)rnd(&me->rng, V_NOPS);
    int fds[2];
    if (v->op == V_ACCEPT) {
        v->sock = true;
        fds[0] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        fds[1] = -1;
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "urt-chaos-%d-%llu-%d",
                         (int)getpid(), (unsigned long long)w->seed, w->nvictims);
        if (fds[0] < 0 ||
            bind(fds[0], (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) ||
            listen(fds[0], 4)) {
            FAIL(w, "a listening unix socket could not be set up", errno, 0);
            if (fds[0] >= 0)
                close(fds[0]);
            return;
        }
        fd_opened(w, fds[0]);
    } else {
        v->sock = v->op == V_RECV || (v->op != V_WRITE_FULL && pct(&me->rng, 50));
        if (v->sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds)
                    : pipe2(fds, O_CLOEXEC)) {
            FAIL(w, "socketpair/pipe2 failed", errno, v->sock);
            return;
        }
        fd_opened(w, fds[0]);
        fd_opened(w, fds[1]);
        if (v->op == V_WRITE_FULL) {   /* fill the pipe: the victim's write has to wait */
            int sz = fcntl(fds[1], F_SETPIPE_SZ, 4096);
            static const uint8_t zeros[4096];
            fcntl(fds[1], F_SETFL, O_NONBLOCK);
            while (sz > 0 && write(fds[1], zeros, sizeof zeros) > 0)
                ;
            fcntl(fds[1], F_SETFL, 0);
        }
    }
    v->fd = v->op == V_WRITE_FULL ? fds[1] : fds[0];
    v->other = v->op == V_ACCEPT ? -1 : v->op == V_WRITE_FULL ? fds[0] : fds[1];
    int vi = w->nvictims++;
    w->cnt.victims++;
    struct trec *c = rec_new(me, K_VICTIM);
    c->obj = vi;
    c->planned = (int)rnd(&me->rng, 1000);
    bool spawned = spawn_child(me, c);
    if (spawned)
        pause_op(me, pct(&me->rng, 50) ? 0 : 30);
    v->closed = true;
    fd_closing(w, v->fd);
    int r = urt_close(v->fd);
    if (r != 0)
        FAIL(w, "urt_close of an open fd failed", r, v->fd);
    fd_closed(w, v->fd);
    if (spawned && pct(&me->rng, 80)) {
        if (me->deadline)
            set_deadline(me, 0);
        do_join(me, c);   /* hangs (and the watchdog says so) if the close left it waiting */
    }
    if (v->other >= 0) {
        fd_closing(w, v->other);
        if ((r = urt_close(v->other)) != 0)
            FAIL(w, "urt_close of an open fd failed", r, v->other);
        fd_closed(w, v->other);
    }
}

/* ---- channels --------------------------------------------------------------------------------- */

static void make_elem(struct world *w, int ci, uint32_t seq, uint8_t *e, size_t esize)
{
    uint32_t hdr[2] = { (uint32_t)ci, seq };
    memcpy(e, hdr, 8);
    uint64_t h = mix64(w->seed ^ ((uint64_t)ci << 40) ^ seq);
    for (size_t i = 8; i < esize; i++)
        e[i] = (uint8_t)(h >> ((i & 7) * 8)) ^ (uint8_t)i;
}

static bool elem_ok(struct world *w, int ci, const uint8_t *e, size_t esize, uint32_t *seq)
{
    uint32_t hdr[2];
    memcpy(hdr, e, 8);
    if (hdr[0] != (uint32_t)ci)
        return false;
    *seq = hdr[1];
    uint64_t h = mix64(w->seed ^ ((uint64_t)ci << 40) ^ hdr[1]);
    for (size_t i = 8; i < esize; i++)
        if (e[i] != ((uint8_t)(h >> ((i & 7) * 8)) ^ (uint8_t)i))
            return false;
    return true;
}

/* A blocking send or receive by a task without a deadline gets one, so that it cannot wait
   forever on a channel nobody serves. Returns whether it set one. */
static bool bound_wait(struct trec *me, bool blocking)
{
    if (!blocking || me->deadline)
        return false;
    set_deadline(me, urt_now() + rnd(&me->rng, 1000) * 1000ull);
    return true;
}

static int chan_send_op(struct trec *me, int ci, bool blocking)
{
    struct world *w = me->w;
    struct chanm *c = &w->chans[ci];
    if (!c->c || c->next >= MAX_SENDS)
        return 0;
    uint32_t seq = c->next++;
    c->st[seq] = S_PENDING;
    uint8_t e[ELEM_MAX];
    make_elem(w, ci, seq, e, c->esize);
    bool tmp = bound_wait(me, blocking);
    bool closed0 = c->closed;
    struct urt_stats s0, s1;
    urt_stats(&s0);
    struct pre p = pre_of(me);
    int r = blocking ? urt_chan_send(c->c, e) : urt_chan_try_send(c->c, e);
    urt_stats(&s1);
    if (r == 0) {
        check_intr(me, p, r);
        if (closed0)
            FAIL(w, "a send on a closed channel succeeded", ci, seq);
        c->st[seq] = (uint8_t)(S_OK | (c->st[seq] & S_RECV));
        c->nok++;
    } else {
        if (c->st[seq] & S_RECV)
            FAIL(w, "the value of a failed send was received (a = error)", r, seq);
        c->st[seq] = S_FAILED;
        if (!check_intr(me, p, r)) {
            if (r == -EPIPE) {
                if (!c->closed)
                    FAIL(w, "-EPIPE from a send on an open channel", ci, 0);
            } else if (r == -EAGAIN) {
                if (blocking)
                    FAIL(w, "a blocking send returned -EAGAIN", ci, 0);
            } else {
                FAIL(w, "urt_chan_send failed", r, blocking);
            }
        }
    }
    if (closed0 && s1.switches != s0.switches)
        FAIL(w, "a send on a closed channel waited (a = its result)", r, ci);
    if (tmp)
        set_deadline(me, 0);
    return r;
}

static int chan_recv_op(struct trec *me, int ci, bool blocking, bool bound)
{
    struct world *w = me->w;
    struct chanm *c = &w->chans[ci];
    if (!c->c)
        return -EPIPE;
    uint8_t e[ELEM_MAX];
    memset(e, 0xa5, sizeof e);
    bool tmp = bound ? bound_wait(me, blocking) : false;
    bool epipe0 = c->epipe;
    struct urt_stats s0, s1;
    urt_stats(&s0);
    struct pre p = pre_of(me);
    int r = blocking ? urt_chan_recv(c->c, e) : urt_chan_try_recv(c->c, e);
    urt_stats(&s1);
    if (epipe0 && s1.switches != s0.switches)
        FAIL(w, "a receive on a closed, drained channel waited (a = its result)", r, ci);
    if (r == 0) {
        check_intr(me, p, r);
        uint32_t seq = 0;
        if (epipe0)
            FAIL(w, "a receive succeeded after the channel was closed and drained", ci, 0);
        if (!elem_ok(w, ci, e, c->esize, &seq)) {
            FAIL(w, "a received element is corrupt or from another channel", ci, seq);
        } else if (seq >= c->next || !(c->st[seq] & 0xf)) {
            FAIL(w, "a received element was never sent", ci, seq);
        } else {
            if (c->st[seq] & S_RECV)
                FAIL(w, "an element was received twice", ci, seq);
            else if ((c->st[seq] & 0xf) == S_FAILED)
                FAIL(w, "the element of a failed send was received", ci, seq);
            c->st[seq] |= S_RECV;
            c->nrecv++;
            w->cnt.msgs++;
            if (seq < me->last_rx[ci])
                FAIL(w, "a receiver got elements out of order (a = got, b = after)", seq,
                     me->last_rx[ci] - 1);
            me->last_rx[ci] = seq + 1;
        }
    } else if (!check_intr(me, p, r)) {
        if (r == -EPIPE) {
            if (!c->closed)
                FAIL(w, "-EPIPE from a receive on an open channel", ci, 0);
            c->epipe = true;   /* closed and drained: checked at the end of the seed */
        } else if (r == -EAGAIN) {
            if (blocking)
                FAIL(w, "a blocking receive returned -EAGAIN", ci, 0);
        } else {
            FAIL(w, "urt_chan_recv failed", r, blocking);
        }
    }
    if (tmp)
        set_deadline(me, 0);
    return r;
}

static void chan_close_op(struct trec *me, int ci)
{
    struct chanm *c = &me->w->chans[ci];
    if (!c->c)
        return;
    c->closed = true;
    urt_chan_close(c->c);
}

/* A channel's own consumer: receives until the channel is closed and drained. */
static void consumer_body(struct trec *me)
{
    for (;;) {
        if (pct(&me->rng, 20) && pause_op(me, 50) < 0)
            return;
        if (chan_recv_op(me, me->obj, true, false) != 0)
            return;
    }
}

/* A task waiting on a channel that its creator frees under it. */
static void chanwaiter_body(struct trec *me)
{
    struct world *w = me->w;
    struct pchan *pc = &w->pchans[me->obj >> 1];
    if (pc->freed)
        return;   /* freed before this task ran */
    uint64_t v = 0x5eed;
    bool recv = me->obj & 1;
    struct pre p = pre_of(me);
    int r = recv ? urt_chan_recv(pc->c, &v) : urt_chan_send(pc->c, &v);
    if (check_intr(me, p, r))
        return;
    if (r == 0 && recv && pc->sent && v == 0xfeed) {
        if (++pc->got > 1)
            FAIL(w, "one element was received twice", pc->got, 0);
    } else if (r == 0 && !recv && pc->cap) {
        /* a buffered channel took it without a wait */
    } else if (r != -EPIPE) {
        FAIL(w, "a wait on a channel freed under it returned a (b = receiver)", r, recv);
    }
}

/* Starts tasks that wait on a fresh channel, hands one element to a waiting receiver, frees the
   channel: each waiter gets the element, -EPIPE, or its cancellation, and touches nothing of the
   freed channel (ASan checks that). */
static void act_chan_free(struct trec *me)
{
    struct world *w = me->w;
    if (w->npchans >= MAX_PCHANS || me->depth >= w->max_depth)
        return;
    int pi = w->npchans++;
    struct pchan *pc = &w->pchans[pi];
    memset(pc, 0, sizeof *pc);
    pc->cap = pct(&me->rng, 70) ? 0 : 1;
    pc->c = urt_chan_new(sizeof(uint64_t), pc->cap);
    if (!pc->c) {
        FAIL(w, "urt_chan_new failed", errno, 0);
        return;
    }
    bool recv = pct(&me->rng, 60);   /* all receivers, or all senders */
    int k = 1 + (int)rnd(&me->rng, 4);
    for (int i = 0; i < k; i++) {
        struct trec *c = rec_new(me, K_CHANWAITER);
        if (!c)
            break;
        c->obj = pi * 2 + recv;
        c->planned = (int)rnd(&me->rng, 1000);
        spawn_child(me, c);
    }
    for (int i = (int)rnd(&me->rng, 3); i >= 0; i--)
        if (pause_op(me, 0) < 0)
            break;
    if (recv && pct(&me->rng, 50)) {
        uint64_t v = 0xfeed;
        struct pre p = pre_of(me);
        int r = urt_chan_try_send(pc->c, &v);
        if (r == 0)
            pc->sent = true;
        else if (!check_intr(me, p, r) && r != -EAGAIN)
            FAIL(w, "urt_chan_try_send failed", r, 0);
    }
    pc->freed = true;
    urt_chan_free(pc->c);
    pc->c = NULL;
}

static void act_dump(struct trec *me)
{
    if (me->w->devnull)
        urt_dump(me->w->devnull);
}

/* ---- groups ----------------------------------------------------------------------------------- */

static void group_cancel_op(struct trec *me, struct grp *g)
{
    g->deliberate = true;   /* not a failure: urt_group_wait returns what members did on their own */
    g->cancelling = true;
    urt_group_cancel(g->g);
    me->w->cnt.cancels++;
}

static void group_wait_op(struct trec *me, struct grp *g)
{
    struct world *w = me->w;
    int live0 = g->live, ms0 = g->mstatus;
    struct pre p = pre_of(me);
    g->owner_waiting = true;
    int r = urt_group_wait(g->g);
    g->owner_waiting = false;
    w->cnt.groups++;
    if (g->live)
        FAIL(w, "urt_group_wait returned while members run", g->live, r);
    if (live0 == 0) {
        if (r != ms0)
            FAIL(w, "urt_group_wait of an empty group did not return its status", r, ms0);
    } else if (p.c) {
        if (r != -ECANCELED)
            FAIL(w, "urt_group_wait of a cancelled task did not return -ECANCELED", r, 0);
    } else if (p.t && r != -ETIMEDOUT && !(r == -ECANCELED && possible_cancel(me))) {
        FAIL(w, "urt_group_wait past the deadline did not return -ETIMEDOUT", r, 0);
    } else if (r == g->mstatus) {
        if (r > 0)
            w->cnt.group_fails++;
    } else if (r == -ECANCELED) {
        w->cnt.ecanceled++;
        if (!possible_cancel(me))
            FAIL(w, "urt_group_wait returned -ECANCELED; nothing cancelled it or its group",
                 g->mstatus, 0);
    } else if (r == -ETIMEDOUT) {
        w->cnt.etimedout++;
        if (!past(me))
            FAIL(w, "urt_group_wait returned -ETIMEDOUT before the deadline", g->mstatus, 0);
    } else {
        FAIL(w, "urt_group_wait did not return the first failure (a = got, b = first)", r,
             g->mstatus);
    }
    g->mstatus = 0;
    g->cancelling = false;
    g->deliberate = false;
}

static void act_group(struct trec *me)
{
    struct world *w = me->w;
    if (me->depth >= w->max_depth || w->ngroups >= MAX_GROUPS)
        return;
    urt_group *gg = urt_group_new();
    if (!gg) {
        FAIL(w, "urt_group_new failed", errno, 0);
        return;
    }
    struct grp *g = &w->groups[w->ngroups++];
    memset(g, 0, sizeof *g);
    g->g = gg;
    g->owner = me;
    g->alive = true;
    int rounds = pct(&me->rng, 20) ? 2 : 1;
    for (int round = 0; round < rounds; round++) {
        int k = 1 + (int)rnd(&me->rng, 5);
        for (int i = 0; i < k; i++) {
            spawn_member(me, g, pct(&me->rng, 20) ? K_LEAF : K_ACTOR);
            if (pct(&me->rng, 25))
                pause_op(me, 20);
        }
        if (pct(&me->rng, 8))
            group_cancel_op(me, g);
        if (pct(&me->rng, 10))
            break;   /* urt_group_free with members still running */
        group_wait_op(me, g);
    }
    if (g->live) {
        if (!g->mstatus)
            g->mstatus = -ECANCELED;
        g->cancelling = true;
    }
    urt_group_free(gg);
    if (g->live)
        FAIL(w, "urt_group_free returned while members run", g->live, 0);
    g->alive = false;
    g->g = NULL;
}

static void act_group_cancel(struct trec *me)
{
    struct world *w = me->w;
    if (!w->ngroups)
        return;
    struct grp *g = &w->groups[rnd(&me->rng, (uint32_t)w->ngroups)];
    if (g->alive)
        group_cancel_op(me, g);
}

/* ---- the rest of the actions ------------------------------------------------------------------ */

static void act_cancel(struct trec *me)
{
    struct world *w = me->w;
    struct trec *t = pct(&me->rng, 5) ? me : &w->recs[rnd(&me->rng, (uint32_t)w->nrec)];
    if (t->kind == K_MAIN || t->kind == K_WATCHDOG || !t->h)
        return;
    if (!t->released)
        t->cancelled = true;   /* a stale handle: urt_cancel must do nothing */
    urt_cancel(t->h);
    w->cnt.cancels++;
}

static void act_deadline(struct trec *me)
{
    uint64_t now = urt_now();
    switch (rnd(&me->rng, 4)) {
    case 0:
        set_deadline(me, 0);
        break;
    case 1:
        set_deadline(me, now - 1);   /* already passed */
        break;
    case 2:
        set_deadline(me, now + rnd(&me->rng, 50) * 1000ull);
        break;
    default:
        set_deadline(me, now + rnd(&me->rng, 1500) * 1000ull);
        break;
    }
}

static int blocking_fn(void *arg)
{
    uint64_t *x = arg;
    for (int i = 0; i < 64; i++)
        *x = mix64(*x);
    return 4242;
}

/* urt_getaddrinfo of a numeric address (no DNS): cancellable while the lookup runs. */
static void act_getaddrinfo(struct trec *me)
{
    struct world *w = me->w;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    struct pre p = pre_of(me);
    errno = 0;
    int r = urt_getaddrinfo("127.0.0.1", "8080", &hints, &res);
    if (r == 0) {
        check_intr(me, p, 0);
        if (!res || res->ai_family != AF_INET ||
            ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port) != 8080)
            FAIL(w, "urt_getaddrinfo gave a wrong address", 0, 0);
        if (res)
            freeaddrinfo(res);
    } else if (r == EAI_SYSTEM && (errno == ECANCELED || errno == ETIMEDOUT)) {
        check_intr(me, p, -errno);
    } else {
        FAIL(w, "urt_getaddrinfo failed (a = EAI code, b = errno)", r, errno);
    }
}

static void act_blocking(struct trec *me)
{
    struct world *w = me->w;
    if (!w->use_blocking)
        return;
    if (pct(&me->rng, 40)) {
        act_getaddrinfo(me);
        return;
    }
    uint64_t x = rnext(&me->rng), want = x;
    for (int i = 0; i < 64; i++)
        want = mix64(want);
    struct pre p = pre_of(me);
    int r = urt_blocking(blocking_fn, &x);
    if (r == 4242) {
        check_intr(me, p, r);
        if (x != want)
            FAIL(w, "urt_blocking returned before its function finished", 0, 0);
    } else if (!check_intr(me, p, r)) {
        FAIL(w, "urt_blocking failed", r, 0);
    }
}

static void act_misuse(struct trec *me)
{
    struct world *w = me->w;
    struct trec *t = &w->recs[rnd(&me->rng, (uint32_t)w->nrec)];
    int r;
    switch (rnd(&me->rng, 7)) {
    case 0:   /* a stale handle or a group member's: not joinable */
        if (t->h && (t->released || t->group)) {
            if ((r = urt_join(t->h)) != -EINVAL)
                FAIL(w, "urt_join of a released task or a group member did not fail -EINVAL",
                     r, t->id);
            uint64_t id = urt_task_id(t->h);
            if (t->released && id != 0 && id != t->id)
                FAIL(w, "urt_task_id of a stale handle names another task", id, t->id);
        }
        break;
    case 1:   /* joined or detached already, or a group's */
        if (t->h && (t->joined || t->detached || t->group) &&
            (r = urt_detach_checked(t->h)) != -EINVAL)
            FAIL(w, "urt_detach_checked of a joined, detached or group task did not fail -EINVAL",
                 r, t->id);
        break;
    case 2: { /* joining oneself */
        int want = (me->group || me->detached || me->being_joined) ? -EINVAL : -EDEADLK;
        if ((r = urt_join(urt_self())) != want)
            FAIL(w, "urt_join(urt_self()) returned a, expected b", r, want);
        break;
    }
    case 3: { /* bad fds */
        if ((r = urt_close(-1)) != -EBADF)
            FAIL(w, "urt_close(-1) did not fail -EBADF", r, 0);
        char b[8];
        struct pre p = pre_of(me);
        ssize_t n = urt_read(-1, b, sizeof b, -1);
        if (!check_intr(me, p, n) && n != -EBADF)
            FAIL(w, "urt_read(-1) did not fail -EBADF", n, 0);
        break;
    }
    case 4: { /* NULL channels and elements */
        uint8_t e[ELEM_MAX] = { 0 };
        if ((r = urt_chan_send(NULL, e)) != -EINVAL)
            FAIL(w, "urt_chan_send(NULL) did not fail -EINVAL", r, 0);
        if (w->nchans && w->chans[0].c && (r = urt_chan_try_recv(w->chans[0].c, NULL)) != -EINVAL)
            FAIL(w, "urt_chan_try_recv(c, NULL) did not fail -EINVAL", r, 0);
        break;
    }
    case 5: {
        int want = w->main_returned ? -EPERM : -EINVAL;
        if ((r = urt_group_spawn(NULL, task_entry, NULL)) != want)
            FAIL(w, "urt_group_spawn(NULL) returned a, expected b", r, want);
        break;
    }
    default:
        if ((r = urt_join(NULL)) != -EINVAL)
            FAIL(w, "urt_join(NULL) did not fail -EINVAL", r, 0);
        if ((r = urt_detach_checked(NULL)) != -EINVAL)
            FAIL(w, "urt_detach_checked(NULL) did not fail -EINVAL", r, 0);
        urt_cancel(NULL);
        break;
    }
}

static void act(struct trec *me)
{
    struct world *w = me->w;
    uint32_t x = rnd(&me->rng, w->wsum);
    int a = 0;
    while (x >= w->weight[a])
        x -= w->weight[a++];
    w->cnt.actions++;
    switch (a) {
    case A_SPAWN:
    case A_SPAWN_LEAF:
        if (me->depth < w->max_depth) {
            struct trec *c = rec_new(me, a == A_SPAWN ? K_ACTOR : K_LEAF);
            if (c) {
                c->planned = (int)rnd(&me->rng, 1000);
                if (spawn_child(me, c) && pct(&me->rng, 10))
                    do_detach(me, c);
            }
        }
        break;
    case A_JOIN: {
        struct trec *c = pick_child(me);
        if (c)
            do_join(me, c);
        break;
    }
    case A_DETACH: {
        struct trec *c = pick_child(me);
        if (c)
            do_detach(me, c);
        break;
    }
    case A_CANCEL:
        act_cancel(me);
        break;
    case A_DEADLINE:
        act_deadline(me);
        break;
    case A_SLEEP:
        pause_op(me, 200);
        break;
    case A_YIELD:
        pause_op(me, 0);
        break;
    case A_STREAM_OPEN:
        act_stream_open(me);
        break;
    case A_READ:
        act_read(me, false);
        break;
    case A_WRITE:
        act_write(me, false);
        break;
    case A_POLL:
        if (pct(&me->rng, 50))
            act_read(me, true);
        else
            act_write(me, true);
        break;
    case A_CLOSE_FD:
        act_close_fd(me);
        break;
    case A_SEND:
        if (w->nchans)
            chan_send_op(me, (int)rnd(&me->rng, (uint32_t)w->nchans), pct(&me->rng, 60));
        break;
    case A_RECV:
        if (w->nchans)
            chan_recv_op(me, (int)rnd(&me->rng, (uint32_t)w->nchans), pct(&me->rng, 60), true);
        break;
    case A_CHAN_CLOSE:
        if (w->nchans)
            chan_close_op(me, (int)rnd(&me->rng, (uint32_t)w->nchans));
        break;
    case A_GROUP:
        act_group(me);
        break;
    case A_GROUP_CANCEL:
        act_group_cancel(me);
        break;
    case A_SIBLING: {
        /* into its own group, or into any other: any task may spawn into a group */
        struct grp *g = me->group;
        if ((!g || pct(&me->rng, 40)) && w->ngroups)
            g = &w->groups[rnd(&me->rng, (uint32_t)w->ngroups)];
        if (g && g->alive && me->depth < w->max_depth)
            spawn_member(me, g, pct(&me->rng, 30) ? K_LEAF : K_ACTOR);
        break;
    }
    case A_BLOCKING:
        act_blocking(me);
        break;
    case A_VICTIM:
        act_victim(me);
        break;
    case A_CHAN_FREE:
        act_chan_free(me);
        break;
    case A_DUMP:
        act_dump(me);
        break;
    default:
        act_misuse(me);
        break;
    }
}

static void actor_body(struct trec *me)
{
    struct world *w = me->w;
    /* Fan out first, so that the tree grows to the seed's budget of tasks. */
    int k = me->depth < w->max_depth ? (int)rnd(&me->rng, (uint32_t)w->fanout + 1) : 0;
    for (int i = 0; i < k; i++) {
        struct trec *c = rec_new(me, pct(&me->rng, 85) ? K_ACTOR : K_LEAF);
        if (!c)
            break;
        c->planned = (int)rnd(&me->rng, 1000);
        spawn_child(me, c);
    }
    int n = 1 + (int)rnd(&me->rng, (uint32_t)w->actions_max);
    for (int i = 0; i < n; i++) {
        act(me);
        check_step(me);
    }
}

/* Compact-stack tasks: a few shallow actions. */
static void leaf_body(struct trec *me)
{
    struct world *w = me->w;
    int n = 1 + (int)rnd(&me->rng, 4);
    for (int i = 0; i < n; i++) {
        switch (rnd(&me->rng, 4)) {
        case 0:
            pause_op(me, 0);
            break;
        case 1:
            pause_op(me, 20);
            break;
        case 2:
            if (w->nchans)
                chan_recv_op(me, (int)rnd(&me->rng, (uint32_t)w->nchans), false, false);
            break;
        default:
            if (w->nchans)
                chan_send_op(me, (int)rnd(&me->rng, (uint32_t)w->nchans), false);
            break;
        }
        check_step(me);
    }
}

/* Reports a hang (with urt_dump) and cancels everything, so that the seed still ends. */
static void watchdog_body(struct trec *me)
{
    struct world *w = me->w;
    for (;;) {
        int r = urt_sleep(URT_USEC(500));
        if (w->done || r == -ECANCELED)
            return;
        if (urt_now() - w->t0 > w->hang_ns) {
            FAIL(w, "the seed ran past its time limit (a hang?): urt_dump is on stderr",
                 (urt_now() - w->t0) / 1000000, 0);
            fprintf(stderr, "chaos: seed %llu hangs; urt_dump:\n", (unsigned long long)w->seed);
            urt_dump(stderr);
            w->hung = true;
            for (int i = 0; i < w->nrec; i++) {
                struct trec *t = &w->recs[i];
                if (t != me && t->h && !t->released && !t->ended) {
                    t->cancelled = true;
                    urt_cancel(t->h);
                }
            }
            for (int i = 0; i < w->nchans; i++)
                chan_close_op(me, i);
            return;
        }
    }
}

/* Joins c, again after each -EDEADLK (the deadlock finale wakes every waiter with it). */
static void join_through_deadlock(struct trec *me, struct trec *c)
{
    struct world *w = me->w;
    for (int tries = 0; tries < 4; tries++) {
        int r = urt_join(c->h);
        if (r == -EDEADLK && !c->ended)
            continue;
        if (r != c->status || !c->ended)
            FAIL(w, "urt_join in the deadlock finale returned a (b = the task's status)", r,
                 c->status);
        c->joined = c->released = true;
        return;
    }
    FAIL(w, "urt_join kept returning -EDEADLK", 0, 0);
    do_detach(me, c);
}

/* obj 0: joins a task of kind obj 1, which waits on a channel nobody sends to. */
static void deadlock_body(struct trec *me)
{
    struct world *w = me->w;
    if (me->obj == 1) {
        uint64_t v;
        w->dl_recv = urt_chan_recv(w->dl_chan, &v);
        return;
    }
    struct trec *b = rec_new(me, K_DEADLOCK);
    if (!b)
        return;
    b->obj = 1;
    b->planned = 77;
    if (spawn_child(me, b)) {
        w->dl_spawned = true;
        join_through_deadlock(me, b);
    }
}

/*
 * The end of some seeds, with nothing else left (no I/O, no timer): main joins A, A joins B, B
 * waits on a channel nobody sends to. Nothing could wake them: their waits return -EDEADLK.
 */
static void deadlock_finale(struct trec *me)
{
    struct world *w = me->w;
    struct trec *a = rec_new(me, K_DEADLOCK);
    if (!a)
        return;
    w->dl_chan = urt_chan_new(sizeof(uint64_t), 0);
    if (!w->dl_chan) {
        FAIL(w, "urt_chan_new failed", errno, 0);
        rec_drop(a);
        return;
    }
    a->obj = 0;
    a->planned = 78;
    w->dl_recv = 1;
    if (spawn_child(me, a))
        join_through_deadlock(me, a);
    if (w->dl_spawned && w->dl_recv != -EDEADLK)
        FAIL(w, "a receive nothing could ever end did not return -EDEADLK", w->dl_recv, 0);
    urt_chan_free(w->dl_chan);
    w->dl_chan = NULL;
}

/* The first task: the watchdog, channels and their consumers, the root actors, then the end. */
static void main_body(struct trec *me)
{
    struct world *w = me->w;
    struct trec *wd = rec_new(me, K_WATCHDOG);
    spawn_child(me, wd);
    static const size_t esizes[] = { 8, 16, 40, 64 };
    static const size_t caps[] = { 0, 1, 3, 16 };
    for (int i = 0; i < w->nchans; i++) {
        struct chanm *c = &w->chans[i];
        c->esize = esizes[rnd(&me->rng, 4)];
        c->cap = caps[rnd(&me->rng, 4)];
        c->c = urt_chan_new(c->esize, c->cap);
        if (!c->c)
            FAIL(w, "urt_chan_new failed", errno, 0);
        if (pct(&me->rng, 75)) {
            struct trec *k = rec_new(me, K_CONSUMER);
            k->obj = i;
            spawn_child(me, k);
        }
    }
    for (int i = 0; i < w->nroots; i++) {
        struct trec *c = rec_new(me, K_ACTOR);
        if (!c)
            break;
        c->planned = (int)rnd(&me->rng, 1000);
        spawn_child(me, c);
    }
    if (w->early) {
        /* Return while everything runs: urt_run cancels the rest and waits for it. */
        pause_op(me, 3000);
        for (struct trec *c = me->children; c; c = c->sibling)
            if (!c->joined && !c->detached)
                do_detach(me, c);
        return;
    }
    for (struct trec *c = me->children; c; c = c->sibling)
        if (c->kind != K_WATCHDOG && c->kind != K_CONSUMER && !c->joined && !c->detached &&
            !do_join(me, c))
            do_detach(me, c);
    /* Detached tasks may still run: wait for them (the watchdog bounds this). */
    for (;;) {
        int others = 0;
        for (int i = 0; i < w->nrec; i++) {
            struct trec *t = &w->recs[i];
            others += t->h && !t->ended && t->kind != K_MAIN && t->kind != K_WATCHDOG &&
                      t->kind != K_CONSUMER;
            others += !t->h && t->group && !t->ended;
        }
        if (!others || w->hung)
            break;
        if (urt_sleep(URT_USEC(50)) < 0)
            break;
    }
    for (int i = 0; i < w->nchans; i++)
        chan_close_op(me, i);
    for (struct trec *c = me->children; c; c = c->sibling)
        if (c->kind == K_CONSUMER && !c->joined && !c->detached && !do_join(me, c))
            do_detach(me, c);
    for (int i = 0; i < w->nchans; i++) {
        struct chanm *c = &w->chans[i];
        int r = 0;
        while (c->c && (r = chan_recv_op(me, i, false, false)) == 0)
            ;
        if (c->c && !c->epipe && !w->hung)
            FAIL(w, "draining a closed channel did not end in -EPIPE", i, r);
        if (!w->hung && c->nok != c->nrecv)
            FAIL(w, "sends that succeeded and elements received differ", c->nok, c->nrecv);
        urt_chan_free(c->c);
        c->c = NULL;
    }
    for (int i = 0; i < w->nstreams; i++)
        if (!w->streams[i].r_closed || !w->streams[i].w_closed)
            FAIL(w, "a stream end is open after its tasks ended", i, 0);
    w->done = true;
    wd->cancelled = true;
    urt_cancel(wd->h);
    if (!do_join(me, wd))
        do_detach(me, wd);
    if (w->finale)
        deadlock_finale(me);
    check_step(me);
}

static int task_entry(void *arg)
{
    struct trec *me = arg;
    struct world *w = me->w;
    me->started = true;
    if (urt_task_id(NULL) != me->id)
        FAIL(w, "a task's id is not the one its spawn gave", urt_task_id(NULL), me->id);
    urt_task *self = urt_self();
    if (me->h && self != me->h)
        FAIL(w, "urt_self() is not the handle urt_spawn returned", 0, me->id);
    if (!me->h)
        me->h = self;
    switch (me->kind) {
    case K_MAIN:
        main_body(me);
        break;
    case K_WATCHDOG:
        watchdog_body(me);
        break;
    case K_ACTOR:
        actor_body(me);
        break;
    case K_LEAF:
        leaf_body(me);
        break;
    case K_WRITER:
        writer_body(me);
        break;
    case K_READER:
        reader_body(me);
        break;
    case K_VICTIM:
        victim_body(me);
        break;
    case K_CHANWAITER:
        chanwaiter_body(me);
        break;
    case K_DEADLOCK:
        deadlock_body(me);
        break;
    default:
        consumer_body(me);
        break;
    }
    finish_children(me);
    int st = me->planned;
    task_end(me, st);
    if (me->kind == K_MAIN)
        w->main_returned = true;   /* urt_run cancels every task still running */
    return st;
}

/* ---- one seed --------------------------------------------------------------------------------- */

struct opts {
    uint64_t first, n;
    unsigned batch, repeat;
    uint64_t hang_ms, max_failures;
    bool verbose;
    uint64_t budget_ns, min_seeds;
    uint64_t stop_at;   /* urt_now() after which no seed starts (beyond min_seeds); 0: none */
};

/* Whether seed s may not start: the time budget is spent and the minimum has run. */
static bool budget_spent(const struct opts *o, uint64_t s)
{
    return o->stop_at && s - o->first >= o->min_seeds && urt_now() >= o->stop_at;
}

static void world_init(struct world *w, uint64_t seed, const struct opts *o)
{
    uint64_t rng = mix64(seed ^ 0x636861f5ull) ^ seed;
    w->seed = seed;
    int budget = 100 + (int)rnd(&rng, pct(&rng, 70) ? 700 : 2500);
    w->maxrec = budget + 4 + MAX_CHANS + 2 * MAX_STREAMS;
    w->max_depth = 3 + (int)rnd(&rng, 8);
    w->fanout = 1 + (int)rnd(&rng, 4);
    w->actions_max = 2 + (int)rnd(&rng, 10);
    w->max_streams = (int)rnd(&rng, MAX_STREAMS + 1);
    w->nroots = 1 + (int)rnd(&rng, 16);
    w->nchans = (int)rnd(&rng, MAX_CHANS + 1);
    w->fail_pct = (int)rnd(&rng, 40);
    w->early = pct(&rng, 8);
    w->use_blocking = pct(&rng, 15);
    w->finale = !w->early && pct(&rng, 30);
    w->wsum = 0;
    for (int a = 0; a < A_NACT; a++) {
        unsigned f = (a == A_SPAWN || !pct(&rng, 15)) ? 1 + rnd(&rng, 3) : 0;
        w->weight[a] = base_weight[a] * f;
        w->wsum += w->weight[a];
    }
    w->hang_ns = o->hang_ms * 1000000ull;
    w->recs = calloc((size_t)w->maxrec, sizeof *w->recs);
    if (!w->recs) {
        fprintf(stderr, "chaos: out of memory\n");
        exit(2);
    }
    struct trec *m = &w->recs[0];
    w->nrec = 1;
    m->w = w;
    m->kind = K_MAIN;
    m->id = 1;
    m->planned = MAIN_RET(seed);
    m->rng = rnext(&rng);
    m->obj = -1;
    w->spawned = 1;
    w->next_id = 1;
}

static void print_failures(const struct world *w)
{
    for (int i = 0; i < w->nfail && i < MAX_FAILS; i++) {
        const struct failure *f = &w->fails[i];
        fprintf(stderr, "chaos: seed %llu: chaos.c:%d: %s (a=%lld b=%lld, task %llu)\n",
                (unsigned long long)w->seed, f->line, f->what, f->a, f->b,
                (unsigned long long)f->task);
    }
    if (w->nfail > MAX_FAILS)
        fprintf(stderr, "chaos: seed %llu: ... %d more\n", (unsigned long long)w->seed,
                w->nfail - MAX_FAILS);
}

/* Runs one seed in this process. Returns 0 when every check held. */
static int run_seed(uint64_t seed, const struct opts *o, struct counters *tot)
{
    struct world *w = calloc(1, sizeof *w);
    if (!w)
        return 1;
    world_init(w, seed, o);
    uint64_t cfg_rng = seed * 0x2545f4914f6cdd1dull + 7;
    static const unsigned rings[] = { 0, 8, 16, 64 };
    static const unsigned pools[] = { 0, 1, 16, 4096 };
    struct urt_config cfg = {
        .ring_entries = rings[rnd(&cfg_rng, 4)],
        .stack_pool_max = pools[rnd(&cfg_rng, 4)],
        .blocking_threads = 1 + rnd(&cfg_rng, 3),
    };
    w->devnull = fopen("/dev/null", "w");
    int fd0 = count_fds();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    w->t0 = urt_now();
    int r = urt_run(task_entry, &w->recs[0], &cfg);
    uint64_t ns = urt_now() - w->t0;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu_ms = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e3 +
                    (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e3 +
                    (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e3 +
                    (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e3;

    if (r != MAIN_RET(seed))
        FAIL(w, "urt_run did not return the first task's value", r, MAIN_RET(seed));
    struct urt_stats st;
    urt_stats(&st);
    if (st.tasks_live)
        FAIL(w, "tasks_live is not 0 after urt_run", st.tasks_live, 0);
    if (st.ops_inflight)
        FAIL(w, "ops_inflight is not 0 after urt_run", st.ops_inflight, 0);
    if (st.cqes_reaped != st.sqes_submitted)
        FAIL(w, "cqes_reaped != sqes_submitted after urt_run", st.cqes_reaped, st.sqes_submitted);
    if (st.tasks_spawned != w->spawned)
        FAIL(w, "tasks_spawned differs from the tasks spawned", st.tasks_spawned, w->spawned);
    for (int i = 0; i < w->nrec; i++) {
        struct trec *t = &w->recs[i];
        if (!t->ended)
            FAIL(w, "a task never ended (a = id)", t->id, t->kind);
        if (t->parent && t->joined + t->detached != 1)
            FAIL(w, "a handle was not joined or detached exactly once", t->id,
                 t->joined + t->detached);
    }
    for (int i = 0; i < w->nstreams; i++) {
        struct stream *s = &w->streams[i];
        if (!s->r_closed || !s->w_closed)
            FAIL(w, "a stream's fd was left open", i, s->r_closed + 2 * s->w_closed);
        if (s->rpos > s->wpos)
            FAIL(w, "a stream's reader got bytes its writers were told were not written",
                 s->rpos, s->wpos);
        else if (s->eof && s->rpos != s->wpos)
            FAIL(w, "bytes written to a stream never arrived (a = read, b = written)", s->rpos,
                 s->wpos);
    }
    for (int i = 0; i < w->nchans; i++) {
        struct chanm *c = &w->chans[i];
        urt_chan_free(c->c);   /* early mode: freed outside the runtime */
        c->c = NULL;
        /* A receiver got -EPIPE: the channel was closed and drained, so every element whose send
           succeeded has been received (one copied into a receiver that had not yet run when
           another got -EPIPE was received too, once that receiver ran). */
        if (c->epipe)
            for (uint32_t k = 0; k < c->next; k++)
                if ((c->st[k] & 0xf) == S_OK && !(c->st[k] & S_RECV)) {
                    FAIL(w, "a channel was drained (-EPIPE) but a sent element was never "
                            "received (a = channel, b = sequence number)", i, k);
                    break;
                }
    }
    for (int i = 0; i < w->npchans; i++)
        if (w->pchans[i].sent && !w->pchans[i].cap && w->pchans[i].got != 1)
            FAIL(w, "an element handed to a waiting receiver before urt_chan_free was lost",
                 i, w->pchans[i].got);
    for (int i = 0; i < w->ngroups; i++)
        if (w->groups[i].alive)
            FAIL(w, "a group was never freed (test bug)", i, 0);
    for (int fd = 0; fd < FD_LIMIT; fd++)
        if (w->fd_used[fd] && (w->fd_open[fd] || fcntl(fd, F_GETFD) != -1))
            FAIL(w, "an fd the test opened is still open", fd, w->fd_open[fd]);
    int fd1 = count_fds();
    if (fd1 != fd0)
        FAIL(w, "the process has a different number of open fds after urt_run", fd1, fd0);
    if (w->devnull)
        fclose(w->devnull);

    w->cnt.seeds = 1;
    w->cnt.ns = w->cnt.max_ns = ns;
    tot->seeds += w->cnt.seeds;
    tot->tasks += w->cnt.tasks + 1;
    tot->actions += w->cnt.actions;
    tot->bytes += w->cnt.bytes;
    tot->msgs += w->cnt.msgs;
    tot->ecanceled += w->cnt.ecanceled;
    tot->etimedout += w->cnt.etimedout;
    tot->close_races += w->cnt.close_races;
    tot->ebadf += w->cnt.ebadf;
    tot->groups += w->cnt.groups;
    tot->group_fails += w->cnt.group_fails;
    tot->cancels += w->cnt.cancels;
    tot->victims += w->cnt.victims;
    tot->victims_woken += w->cnt.victims_woken;
    tot->races_won += w->cnt.races_won;
    tot->ns += ns;
    if (ns > tot->max_ns)
        tot->max_ns = ns;
    if (o->verbose)
        printf("chaos: seed %llu: %s, %llu tasks, %llu actions, %llu bytes, %llu msgs, "
               "%llu streams, %.2f ms (%.2f ms CPU)%s\n",
               (unsigned long long)seed, w->nfail ? "FAIL" : "ok",
               (unsigned long long)w->cnt.tasks + 1, (unsigned long long)w->cnt.actions,
               (unsigned long long)w->cnt.bytes, (unsigned long long)w->cnt.msgs,
               (unsigned long long)w->nstreams, ns / 1e6, cpu_ms, w->early ? " (early return)" : "");
    int failed = w->nfail != 0;
    if (failed)
        print_failures(w);
    free(w->recs);
    free(w);
    return failed;
}

/* ---- the driver: batches of seeds in forked children ------------------------------------------ */

struct msg {
    uint64_t        seed;      /* in the final message: the first seed not run (the budget) */
    int32_t         failed;
    int32_t         last;      /* the batch's final message: counters follow */
    struct counters cnt;
};

enum { ST_UNKNOWN, ST_PASS, ST_FAIL, ST_SKIPPED };

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

/*
 * Runs seeds [a, b) in a child, each under alarm(limit); res[seed - first] gets each seed's result
 * as it is reported. Returns 0 when the child ended cleanly, else describes how it died in why.
 */
static int run_batch(uint64_t a, uint64_t b, const struct opts *o, uint8_t *res,
                     struct counters *tot, unsigned limit, char *why, size_t whylen)
{
    int p[2];
    if (pipe(p))
        return snprintf(why, whylen, "could not start: pipe: %s", strerror(errno)), -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return snprintf(why, whylen, "could not start: fork: %s", strerror(errno)), -1;
    if (pid == 0) {
        close(p[0]);
        signal(SIGALRM, SIG_DFL);
        struct counters c;
        memset(&c, 0, sizeof c);
        uint64_t stopped = b;
        for (uint64_t s = a; s < b; s++) {
            if (budget_spent(o, s)) {
                stopped = s;
                break;
            }
            struct msg m = { .seed = s };
            for (unsigned k = 0; k < o->repeat && !m.failed; k++) {
                alarm(limit);   /* a hang the seed's watchdog cannot end (urt_run's own) */
                m.failed = run_seed(s, o, &c);
            }
            alarm(0);
            fflush(stdout);
            fflush(stderr);
            write_all(p[1], &m, sizeof m);
        }
        struct msg m = { .seed = stopped, .last = 1, .cnt = c };
        write_all(p[1], &m, sizeof m);
        close(p[1]);
        exit(0);   /* LeakSanitizer checks here in ASan builds */
    }
    close(p[1]);
    struct msg m;
    bool got_last = false;
    for (;;) {
        size_t have = 0;
        while (have < sizeof m) {
            ssize_t k = read(p[0], (char *)&m + have, sizeof m - have);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            have += (size_t)k;
        }
        if (have < sizeof m)
            break;
        if (m.last) {
            got_last = true;
            for (uint64_t k = m.seed; k >= a && k < b; k++)
                if (res[k - o->first] == ST_UNKNOWN)
                    res[k - o->first] = ST_SKIPPED;
            struct counters *c = &m.cnt;
            tot->seeds += c->seeds;
            tot->tasks += c->tasks;
            tot->actions += c->actions;
            tot->bytes += c->bytes;
            tot->msgs += c->msgs;
            tot->ecanceled += c->ecanceled;
            tot->etimedout += c->etimedout;
            tot->close_races += c->close_races;
            tot->ebadf += c->ebadf;
            tot->groups += c->groups;
            tot->group_fails += c->group_fails;
            tot->cancels += c->cancels;
            tot->victims += c->victims;
            tot->victims_woken += c->victims_woken;
            tot->races_won += c->races_won;
            tot->ns += c->ns;
            if (c->max_ns > tot->max_ns)
                tot->max_ns = c->max_ns;
        } else if (m.seed >= a && m.seed < b) {
            res[m.seed - o->first] = m.failed ? ST_FAIL : ST_PASS;
        }
    }
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(why, whylen, "was killed by signal %d (%s)%s", sig, strsignal(sig),
                 sig == SIGALRM ? ": past its time limit, a hang" : "");
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !got_last) {
        snprintf(why, whylen, "exited with status %d%s", WEXITSTATUS(status),
                 got_last ? " after its last seed (a leak report?)" : "");
        return -1;
    }
    return 0;
}

/* Past --max-failures, the seeds left are not run (a broken runtime fails every seed). */
static bool too_many_failures(const struct opts *o, const uint8_t *res)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < o->n; i++)
        n += res[i] == ST_FAIL;
    return n >= o->max_failures;
}

/*
 * Runs seeds [a, b), naming the seed that makes a child die: the one it was running when it
 * died (the rest go on in a new child), or, when it died after its last seed (a leak report),
 * the one found by halving the range.
 */
static void run_range(uint64_t a, uint64_t b, const struct opts *o, uint8_t *res,
                      struct counters *tot)
{
    char why[160];
    unsigned limit = (unsigned)(o->hang_ms / 1000) * 2 + 3;
    while (a < b) {
        if (too_many_failures(o, res))
            return;
        if (run_batch(a, b, o, res, tot, limit, why, sizeof why) == 0)
            return;
        uint64_t s = a;
        while (s < b && res[s - o->first] != ST_UNKNOWN)
            s++;
        if (s < b) {
            fprintf(stderr, "chaos: seed %llu: the child running it %s\n", (unsigned long long)s,
                    why);
            res[s - o->first] = ST_FAIL;
            a = s + 1;
            continue;
        }
        if (b - a == 1) {
            fprintf(stderr, "chaos: seed %llu: the child running it alone %s\n",
                    (unsigned long long)a, why);
            res[a - o->first] = ST_FAIL;
            return;
        }
        fprintf(stderr, "chaos: the child running seeds %llu..%llu %s; halving the range\n",
                (unsigned long long)a, (unsigned long long)(b - 1), why);
        uint64_t mid = a + (b - a) / 2;
        for (uint64_t k = a; k < b; k++)
            res[k - o->first] = ST_UNKNOWN;
        struct opts whole = *o;   /* the search runs every seed of the range, budget or not */
        whole.stop_at = 0;
        run_range(a, mid, &whole, res, tot);
        run_range(mid, b, &whole, res, tot);
        return;
    }
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--seeds N] [--first-seed S] [--batch B] [--repeat R] [--hang-ms MS]\n"
            "          [--max-failures F] [--budget-seconds T [--min-seeds M]] [-v]\n"
            "  runs seeds S .. S+N-1 (default: 100 seeds from 1), B seeds per forked child\n"
            "  (default 50); R runs of each seed (default 1); a seed running past MS ms\n"
            "  (default 3000) is reported as a hang, with urt_dump; after F failed seeds\n"
            "  (default 20) the rest are not run. With T, no seed starts after T seconds\n"
            "  once the first M (default 100) have run; those left out are not failures.\n"
            "  -v: a line per seed.\n",
            prog);
}

int main(int argc, char **argv)
{
    struct opts o = { .first = 1, .n = 100, .batch = 50, .repeat = 1, .hang_ms = 3000,
                      .max_failures = 20, .min_seeds = 100 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seeds") && v)
            o.n = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--first-seed") && v)
            o.first = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--batch") && v)
            o.batch = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(a, "--repeat") && v)
            o.repeat = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(a, "--hang-ms") && v)
            o.hang_ms = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--max-failures") && v)
            o.max_failures = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--budget-seconds") && v)
            o.budget_ns = strtoull(argv[++i], NULL, 0) * 1000000000ull;
        else if (!strcmp(a, "--min-seeds") && v)
            o.min_seeds = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
            o.verbose = true;
        else {
            usage(argv[0]);
            return 2;
        }
    }
    if (!o.batch)
        o.batch = 1;
    if (!o.repeat)
        o.repeat = 1;
    signal(SIGPIPE, SIG_IGN);   /* a write to a closed pipe must come back as -EPIPE */

    uint8_t *res = calloc(o.n ? o.n : 1, 1);
    if (!res)
        return 2;
    struct counters tot;
    memset(&tot, 0, sizeof tot);
    uint64_t t0 = urt_now();
    o.stop_at = o.budget_ns ? t0 + o.budget_ns : 0;
    for (uint64_t a = o.first; a < o.first + o.n; a += o.batch) {
        uint64_t b = a + o.batch < o.first + o.n ? a + o.batch : o.first + o.n;
        if (budget_spent(&o, a)) {
            for (uint64_t k = a; k < b; k++)
                res[k - o.first] = ST_SKIPPED;
            continue;
        }
        run_range(a, b, &o, res, &tot);
    }
    uint64_t passed = 0, nfailed = 0, notrun = 0, skipped = 0, last_run = 0;
    for (uint64_t i = 0; i < o.n; i++) {
        if (res[i] == ST_PASS || res[i] == ST_FAIL)
            last_run = i;
        if (res[i] == ST_PASS)
            passed++;
        else if (res[i] == ST_FAIL)
            nfailed++;
        else if (res[i] == ST_SKIPPED)
            skipped++;
        else
            notrun++;
    }
    double secs = (urt_now() - t0) / 1e9;
    if (tot.seeds)
        printf("chaos: %llu tasks, %llu actions, %llu stream bytes, %llu channel elements, "
               "%llu cancels, %llu -ECANCELED, %llu -ETIMEDOUT, %llu reads/writes returned bytes "
               "though cancelled or past the deadline, %llu closes raced an operation, "
               "%llu -EBADF, %llu waits ended by urt_close (of %llu), %llu group waits (%llu failed); "
               "%.2f ms a seed on average, "
               "%.2f ms at most\n",
               (unsigned long long)tot.tasks, (unsigned long long)tot.actions,
               (unsigned long long)tot.bytes, (unsigned long long)tot.msgs,
               (unsigned long long)tot.cancels, (unsigned long long)tot.ecanceled,
               (unsigned long long)tot.etimedout, (unsigned long long)tot.races_won,
               (unsigned long long)tot.close_races,
               (unsigned long long)tot.ebadf, (unsigned long long)tot.victims_woken,
               (unsigned long long)tot.victims, (unsigned long long)tot.groups,
               (unsigned long long)tot.group_fails, tot.ns / 1e6 / (double)tot.seeds,
               tot.max_ns / 1e6);
    for (uint64_t i = 0; i < o.n; i++)
        if (res[i] == ST_FAIL)
            printf("chaos: FAILED seed %llu (replay: %s --seeds 1 --first-seed %llu -v)\n",
                   (unsigned long long)(o.first + i), argv[0], (unsigned long long)(o.first + i));
    if (notrun)
        printf("chaos: %llu seeds not run: stopped after %llu failures (--max-failures)\n",
               (unsigned long long)notrun, (unsigned long long)o.max_failures);
    if (o.budget_ns)
        printf("chaos: time budget %llu s: ran %llu of the %llu seeds asked for (at least %llu "
               "always run)%s\n", (unsigned long long)(o.budget_ns / 1000000000ull),
               (unsigned long long)(o.n - skipped), (unsigned long long)o.n,
               (unsigned long long)(o.min_seeds < o.n ? o.min_seeds : o.n),
               skipped ? "; the rest were left out, not failed" : "");
    printf("chaos: seeds %llu..%llu in %.1f s: %llu passed, %llu failed\n",
           (unsigned long long)o.first,
           (unsigned long long)(o.first + (skipped ? last_run : o.n - 1)), secs,
           (unsigned long long)passed, (unsigned long long)(nfailed + notrun));
    free(res);
    return nfailed || notrun ? 1 : 0;
}
