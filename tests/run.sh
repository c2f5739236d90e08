#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds urt and runs every test. Installs what it needs on Debian 12 when run as root.
#   tests/run.sh              plain build in build/
#   tests/run.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
#   tests/run.sh --faults     the sanitizer build with the fault injector, in build-faults/: every
#                             test, plus tests/test_faults which turns the faults on
#   tests/run.sh --tsan       ThreadSanitizer build in build-tsan/ (tasks annotated as fibers):
#                             the tests of what crosses threads (test_threads, test_chan,
#                             test_task, test_sync, test_scope, test_echo_server with
#                             --threads)
set -euo pipefail
cd "$(dirname "$0")/.."

source tests/install-deps.sh

dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
ctest_args=()
case "${1:-}" in
--sanitize | --faults)
    dir=build-asan
    flags=(-DCMAKE_BUILD_TYPE=Debug -DURT_SANITIZE=ON)
    if [ "$1" = "--faults" ]; then
        dir=build-faults
        flags+=(-DURT_FAULT_INJECTION=ON -DURT_BUILD_PERF=OFF)
    fi
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    ;;
--tsan)
    dir=build-tsan
    flags=(-DCMAKE_BUILD_TYPE=Debug -DURT_TSAN=ON -DURT_BUILD_PERF=OFF)
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
    ctest_args=(-R '^(test_threads|test_chan|test_sync|test_scope|test_task|test_echo_server)$')
    ;;
"") ;;
*) echo "usage: $0 [--sanitize | --faults | --tsan]" >&2; exit 2 ;;
esac
flags+=(-DURT_WERROR=ON)   # a warning fails the build, in every mode
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
ctest --output-on-failure --timeout 300 "${ctest_args[@]}"
