/* SPDX-License-Identifier: MIT */
/* bench.h - the small helpers the benchmarks in perf/ share: a clock and option parsing. */
#ifndef URT_PERF_BENCH_H
#define URT_PERF_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Nanoseconds of CLOCK_MONOTONIC. */
static inline uint64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Parses the value of option `opt` as a whole number in [min, max]; a bad one exits with 2. */
static inline uint64_t bench_parse_u64(const char *prog, const char *opt, const char *s,
                                       uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "%s: %s wants a whole number from %llu to %llu, not '%s'\n", prog, opt,
                (unsigned long long)min, (unsigned long long)max, s);
        exit(2);
    }
    return v;
}

/* Says so when this build's figures mean little: a sanitizer, or no optimisation. */
static inline void bench_note_build(void)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("note: built with AddressSanitizer: the timings below are not representative\n");
#elif !defined(__OPTIMIZE__)
    printf("note: built without optimisation: the timings below are not representative\n");
#endif
}

#endif
