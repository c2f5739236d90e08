/* SPDX-License-Identifier: MIT */
/* switch_bare.h - the baseline of perf/switch: urt's context switch with no scheduler around it. */
#ifndef URT_PERF_SWITCH_BARE_H
#define URT_PERF_SWITCH_BARE_H

#include <stdint.h>

/*
 * Two contexts on their own stacks switch to each other `switches` times in all (rounded down to
 * an even number) with urt__ctx_switch, the very routine the scheduler uses. Returns the
 * nanoseconds per switch, or a negative number when no stack could be allocated.
 */
double switch_bare_ns(uint64_t switches);

/*
 * For information, not a baseline: the same ping-pong with each context in its own loop, so
 * that every switch returns to a different call instruction than the one that entered it and
 * the return-stack predictor misses each time. Shows what a misprediction costs.
 */
double switch_bare_split_ns(uint64_t switches);

#endif
