/* SPDX-License-Identifier: MIT */
/*
 * nursery - trio's nursery with move_on_after, told with urt: a group of tasks in which one fails
 * and the others are cancelled, inside a cancel scope with a deadline, and a shielded cleanup
 * that still runs after the cancel.
 *
 * The Python it mirrors:
 *
 *     async def worker(name, work):
 *         try:
 *             await trio.sleep(work)
 *         finally:
 *             with trio.CancelScope(shield=True):
 *                 await trio.sleep(cleanup)            # say goodbye, even when cancelled
 *
 *     with trio.move_on_after(1.0) as scope:           # urt_scope_enter(&s, now + 1 s, 0)
 *         async with trio.open_nursery() as nursery:   # urt_group_new
 *             nursery.start_soon(worker, "alpha", 10)  # urt_group_spawn_status
 *             nursery.start_soon(flaky)                # fails after 50 ms: the rest are cancelled
 *     print(scope.cancelled_caught)                    # urt_scope_exit(&s)
 *
 * It runs the story twice:
 *
 *  1. A member fails (-EIO after 50 ms) before the deadline: the group cancels the other members,
 *     each runs its shielded cleanup (a URT_SHIELD scope: the cancel does not reach the sleep in
 *     it), and urt_group_wait returns the failure. The 1 s deadline never fires.
 *  2. Nobody fails, but the 100 ms deadline of the scope around urt_group_wait passes first: the
 *     wait cancels the members, they clean up under their shields, urt_group_wait returns
 *     -ETIMEDOUT and urt_scope_exit returns 1 (trio's cancelled_caught). After the scope the
 *     program goes on with no deadline.
 *
 * Every line says what happened, in order, with the time since the story began; only the times
 * change from run to run. It exits 0 when each story ended as told, 1 otherwise.
 *
 *     build/examples/nursery
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urt.h"

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--help]\n"
            "\n"
            "trio's nursery with move_on_after, with urt: a group of tasks where one fails and\n"
            "the others are cancelled, then a group stopped by a cancel scope's deadline; each\n"
            "cancelled task runs a shielded cleanup. Prints what happened, in order, and exits\n"
            "0 when both stories ended as expected.\n"
            "\n"
            "  --help   print this help and exit\n",
            prog);
}

static uint64_t story_start;

/* One line, prefixed with the milliseconds since the story began. */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  [%4llu ms] ", (unsigned long long)((urt_now() - story_start) / 1000000));
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static const char *errname(int err)
{
    switch (err) {
    case 0:           return "0";
    case -ECANCELED:  return "-ECANCELED";
    case -ETIMEDOUT:  return "-ETIMEDOUT";
    case -EIO:        return "-EIO";
    default:          return strerror(-err);
    }
}

struct member {
    const char *name;
    unsigned    work_ms;     /* how long its work takes                                        */
    unsigned    cleanup_ms;  /* how long its shielded cleanup takes                            */
    unsigned    fail_ms;     /* nonzero: instead of working, fails with -EIO after this long   */
    int         status;      /* its return value (urt_group_spawn_status)                      */
};

static int member(void *arg)
{
    struct member *m = arg;

    if (m->fail_ms) {
        int err = urt_sleep(URT_MSEC(m->fail_ms));
        if (err)
            return err;
        say("%s: fails with -EIO: the group cancels the other members", m->name);
        return -EIO;
    }

    int err = urt_sleep(URT_MSEC(m->work_ms));     /* the work: any blocking call would do */
    if (err == 0) {
        say("%s: work done", m->name);
        return 0;
    }
    say("%s: work interrupted: urt_sleep returned %s", m->name, errname(err));

    /* trio's `finally: with CancelScope(shield=True)`: the cancel does not reach in here; the
       shield's own deadline (500 ms) bounds the cleanup instead. */
    urt_scope shield;
    urt_scope_enter(&shield, urt_now() + URT_MSEC(500), URT_SHIELD);
    int c = urt_sleep(URT_MSEC(m->cleanup_ms));   /* stands for sending a goodbye */
    urt_scope_exit(&shield);
    say("%s: shielded cleanup: urt_sleep(%u ms) returned %s despite the cancel", m->name,
        m->cleanup_ms, errname(c));

    /* Out of the shield, the cancel applies again. */
    int again = urt_sleep(URT_MSEC(1));
    say("%s: after the shield, urt_sleep returns %s again; returns %s", m->name, errname(again),
        errname(err));
    return err;
}

/* One story: the members run in a group inside move_on_after(deadline_ms). Returns 0 when
   urt_group_wait returned want_wait, urt_scope_exit want_caught and each member want[i]. */
static int story(const char *title, struct member *ms, int n, unsigned deadline_ms,
                 int want_wait, int want_caught, const int *want)
{
    printf("\n%s\n", title);
    story_start = urt_now();

    urt_scope s;
    urt_scope_enter(&s, urt_now() + URT_MSEC(deadline_ms), 0);   /* move_on_after */
    say("main: enters move_on_after(%u ms), opens a group", deadline_ms);

    urt_group *g = urt_group_new();
    if (!g) {
        urt_scope_exit(&s);
        fprintf(stderr, "nursery: urt_group_new: %s\n", strerror(errno));
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const struct urt_spawn_opts opts = { .name = ms[i].name };
        int err = urt_group_spawn_status(g, member, &ms[i], &opts, &ms[i].status);
        if (err) {
            fprintf(stderr, "nursery: urt_group_spawn_status: %s\n", strerror(-err));
            ms[i].status = 1;
            bad = 1;
        } else if (ms[i].fail_ms) {
            say("main: spawns %s (fails after %u ms)", ms[i].name, ms[i].fail_ms);
        } else {
            say("main: spawns %s (works %u ms, cleans up %u ms)", ms[i].name, ms[i].work_ms,
                ms[i].cleanup_ms);
        }
    }

    int err = urt_group_wait(g);
    say("main: urt_group_wait returned %s", errname(err));
    urt_group_free(g);
    int caught = urt_scope_exit(&s);
    if (caught == 1)
        say("main: urt_scope_exit returned 1: moved on after %u ms (cancelled_caught)",
            deadline_ms);
    else
        say("main: urt_scope_exit returned %d: the deadline did not fire", caught);

    /* Leaving the scope ended its deadline: blocking calls work again. */
    int after = urt_sleep(URT_MSEC(1));
    say("main: after the scope, urt_sleep returns %s", errname(after));

    printf("  statuses:");
    for (int i = 0; i < n; i++) {
        printf(" %s=%s", ms[i].name, errname(ms[i].status));
        if (ms[i].status != want[i])
            bad = 1;
    }
    printf("\n");
    if (err != want_wait || caught != want_caught || after != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "nursery: %s ended otherwise than told\n", title);
    return bad;
}

static int main_task(void *arg)
{
    (void)arg;
    printf("nursery: trio's nursery with move_on_after, told with urt\n");

    struct member one[] = {
        { .name = "alpha", .work_ms = 10000, .cleanup_ms = 10 },
        { .name = "beta",  .work_ms = 10000, .cleanup_ms = 20 },
        { .name = "quick", .work_ms = 20,    .cleanup_ms = 10 },
        { .name = "flaky", .fail_ms = 50 },
    };
    const int want_one[] = { -ECANCELED, -ECANCELED, 0, -EIO };
    int bad = story("1. A member fails before the deadline: the group cancels the others",
                    one, 4, 1000, -EIO, 0, want_one);

    struct member two[] = {
        { .name = "alpha", .work_ms = 10000, .cleanup_ms = 10 },
        { .name = "beta",  .work_ms = 10000, .cleanup_ms = 20 },
    };
    const int want_two[] = { -ECANCELED, -ECANCELED };
    bad |= story("2. The deadline passes first: move_on_after cancels the group",
                 two, 2, 100, -ETIMEDOUT, 1, want_two);

    printf("\n%s\n", bad ? "FAILED: see above" : "both stories ended as told");
    return bad;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr, argv[0]);
        return 2;
    }

    /* Each line as soon as it is printed, also into a pipe, so the order shows. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    int ret = urt_run(main_task, NULL, NULL);
    if (ret < 0) {
        fprintf(stderr, "nursery: urt_run: %s\n", strerror(-ret));
        return 1;
    }
    return ret;
}
