/* SPDX-License-Identifier: MIT */
/*
 * timers - two tasks that overlap in time, the classic asyncio demonstration written with urt.
 *
 * The Python it mirrors:
 *
 *     async def witch():  print("Surrender,"); await asyncio.sleep(2)
 *     async def sky():    print("Dorothy!")
 *     await asyncio.gather(witch(), sky())
 *
 * One task prints "Surrender," and sleeps two seconds; the other prints "Dorothy!" at once,
 * without waiting for the first to finish its sleep. The program then prints how long it ran:
 * about 2.0 s, not 2.0 s plus the second task's time, because while the first task sleeps the
 * scheduler runs the second one.
 *
 *     build/examples/timers            # sleeps 2 s
 *     build/examples/timers --ms 500   # sleeps 0.5 s
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "urt.h"

static void usage(FILE *to, const char *prog)
{
    fprintf(to,
            "usage: %s [--ms N] [--help]\n"
            "\n"
            "Two urt tasks: one prints \"Surrender,\" and sleeps, the other prints \"Dorothy!\"\n"
            "at once. The elapsed time printed at the end is about one sleep, showing that the\n"
            "tasks ran concurrently.\n"
            "\n"
            "  --ms N   how long the first task sleeps, in milliseconds (default 2000)\n"
            "  --help   print this help and exit\n",
            prog);
}

struct witch {
    uint64_t sleep_ns;
};

static int surrender(void *arg)
{
    const struct witch *w = arg;
    printf("Surrender,\n");
    int err = urt_sleep(w->sleep_ns);
    if (err) {
        fprintf(stderr, "timers: urt_sleep: %s\n", strerror(-err));
        return 1;
    }
    return 0;
}

static int dorothy(void *arg)
{
    (void)arg;
    printf("Dorothy!\n");
    return 0;
}

static int main_task(void *arg)
{
    uint64_t start = urt_now();

    urt_task *a = urt_spawn(surrender, arg);
    if (!a) {
        fprintf(stderr, "timers: urt_spawn: %s\n", strerror(errno));
        return 1;
    }
    urt_task *b = urt_spawn(dorothy, NULL);
    if (!b) {
        fprintf(stderr, "timers: urt_spawn: %s\n", strerror(errno));
        urt_cancel(a);
        urt_join(a);
        return 1;
    }

    int sa = urt_join(a);
    int sb = urt_join(b);

    double elapsed = (double)(urt_now() - start) / 1e9;
    printf("elapsed: %.3f s\n", elapsed);
    return sa || sb;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "ms",   required_argument, NULL, 'm' },
        { "help", no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct witch w = { .sleep_ns = URT_SEC(2) };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': {
            char *end;
            errno = 0;
            unsigned long long ms = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || ms > 3600ull * 1000) {
                fprintf(stderr, "%s: --ms wants a number of milliseconds (0 to 3600000)\n",
                        argv[0]);
                return 2;
            }
            w.sleep_ns = URT_MSEC(ms);
            break;
        }
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

    /* Each line as soon as it is printed, also into a pipe, so the order shows the overlap. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    int ret = urt_run(main_task, &w, NULL);
    if (ret < 0) {
        fprintf(stderr, "timers: urt_run: %s\n", strerror(-ret));
        return 1;
    }
    return ret;
}
