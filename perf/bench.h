/* SPDX-License-Identifier: MIT */
/* bench.h - the small helpers the benchmarks in perf/ share: a clock, option parsing, and the
   Go peers' paths and JSON lines. */
#ifndef URT_PERF_BENCH_H
#define URT_PERF_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
/* The path of the Go peer `name` (built where golang-go is installed) next to this program:
   dirname(argv0)/peers/name. */
static inline void bench_peer_path(char *out, size_t size, const char *argv0, const char *name)
{
    const char *slash = strrchr(argv0, '/');
    int dir = slash ? (int)(slash - argv0 + 1) : 0;
    snprintf(out, size, "%.*speers/%s", dir, argv0, name);
}

/* The number after "key": in a JSON line; -1 when it is not there. */
static inline double bench_json_num(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}

#endif
}

/* The path of the Go peer `name` (built where golang-go is installed) next to this program:
   dirname(argv0)/peers/name. */
static inline void bench_peer_path(char *out, size_t size, const char *argv0, const char *name)
{
    const char *slash = strrchr(argv0, '/');
    int dir = slash ? (int)(slash - argv0 + 1) : 0;
    snprintf(out, size, "%.*speers/%s", dir, argv0, name);
}

/* The number after "key": in a JSON line; -1 when it is not there. */
static inline double bench_json_num(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}

#endif
