#!/usr/bin/env bash
# Runs the whole ctest suite (valgrind_core and chaos included) several times in a row while CPU
# hogs keep the cores busy, to show that no test depends on the machine being idle. Stops at the
# first failing run and names the run and the test(s) that failed; the hogs are killed on exit,
# however it ends (trap).
#
#   tests/stress.sh [--hogs N] [--repeat K] [--build DIR] [--no-build] [-- CTEST_ARGS...]
#
#   --hogs N     N busy loops (sh -c 'while :; do :; done', at nice 0 like the tests) for the whole
#                session; default: one per core (nproc)
#   --repeat K   K runs of the suite; default 3
#   --build DIR  the build directory (default build/, a plain RelWithDebInfo build made here if it
#                is not configured yet: the configuration that has valgrind_core)
#   --no-build   run the tests already built in DIR, without `cmake --build` first
#   after --, arguments for ctest (say -R test_timer to stress one program)
#
# Each run's full ctest output is kept in DIR/stress-run-<k>.log; a failed run's is printed.
# Exit status: 0 if every run passed, 1 at the first failure, 2 on a usage or build error.
# Example: tests/stress.sh --hogs 2 --repeat 10
set -euo pipefail
cd "$(dirname "$0")/.."

hogs=$(nproc)
repeat=3
dir=build
build=1
ctest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --hogs) hogs=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --build) dir=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "usage: $0 [--hogs N] [--repeat K] [--build DIR] [--no-build] [-- CTEST_ARGS...]" >&2
       exit 2 ;;
    esac
done
case "$hogs$repeat" in
*[!0-9]*) echo "$0: --hogs and --repeat take a number" >&2; exit 2 ;;
esac

if [ "$build" = 1 ]; then
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 2
    fi
    cmake --build "$dir" -j"$(nproc)" >/dev/null || { echo "$0: the build failed" >&2; exit 2; }
fi
[ -f "$dir/CTestTestfile.cmake" ] || { echo "$0: no tests in $dir" >&2; exit 2; }

hog_pids=()
stop_hogs() {
    for p in "${hog_pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${hog_pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    hog_pids=()
}
trap stop_hogs EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for ((i = 0; i < hogs; i++)); do
    nice -n 0 sh -c 'while :; do :; done' &
    hog_pids+=($!)
done
echo "stress: $repeat run(s) of the suite in $dir with $hogs CPU hog(s) on $(nproc) core(s)"

start=$SECONDS
for ((k = 1; k <= repeat; k++)); do
    log="$dir/stress-run-$k.log"
    t0=$SECONDS
    if (cd "$dir" && ctest --output-on-failure --timeout 300 "${ctest_args[@]}") >"$log" 2>&1; then
        echo "stress: run $k/$repeat passed ($((SECONDS - t0)) s)"
        continue
    fi
    cat "$log"
    failed=$(sed -n '/The following tests FAILED:/,$p' "$log" | sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\).*/\1/p' |
             paste -sd ' ' -)
    echo "stress: run $k/$repeat FAILED ($((SECONDS - t0)) s): ${failed:-see $log}"
    exit 1
done
echo "stress: all $repeat run(s) passed with $hogs hog(s), $((SECONDS - start)) s in all"
