#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A short tour of urt: builds it (installing what it needs on Debian 12 as root), then runs the
# timers and nursery examples and the benchmarks at modest sizes, each benchmark printing what it
# measured and its ratio to the baseline run beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

source tests/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

step() { printf '\n== %s\n$ %s\n' "$1" "$2"; eval "$2"; }
step "Two tasks that overlap: asyncio's classic, with urt" "build/examples/timers"
step "trio's nursery: one task fails, the rest are cancelled, shielded cleanups still run" "build/examples/nursery"
step "A task switch (two tasks yielding), against the bare assembly switch" "build/perf/switch --iters 5000000"
step "Spawning and joining tasks, against pthread_create" "build/perf/spawn --tasks 1000000"
step "Submission batching: sleepers and a pipe ping-pong" "build/perf/batching"
step "100,000 tasks sleeping 1 s at once (default 64 KiB stacks)" "build/perf/stress --tasks 100000 --sleep-ms 1000 --threads 2000 --no-progress"
step "The same with compact 2 KiB stacks" "build/perf/stress --tasks 100000 --sleep-ms 1000 --threads 0 --stack-size 2048 --no-progress"
echo
echo "More: build/perf/stress --tasks 1000000 (see README.md), and the tests: tests/run.sh"
