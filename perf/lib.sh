# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2154,SC2034  # $root, $build in; $pin_srv, $pin_cli out
# perf/lib.sh - what the benchmark scripts share. Sourced by echo_bench.sh and soak.sh, which set
# $root and $build first.

# require_bins FILE...: the programs a script runs; it builds nothing, so say how when one is missing.
require_bins() {
    local f
    for f in "$@"; do
        if [ ! -x "$f" ]; then
            echo "$0: $f is missing: this script builds nothing; first run" >&2
            echo "    cmake -S $root -B $build && cmake --build $build" >&2
            exit 1
        fi
    done
}

# Pinning: the server on CPU 0 ($pin_srv), its clients on CPU 1 ($pin_cli); both unpinned where
# that is impossible.
pin_srv="taskset -c 0"
pin_cli="taskset -c 1"
if ! command -v taskset >/dev/null || ! taskset -c 1 true 2>/dev/null; then
    echo "note: cannot pin to CPUs 0 and 1 (taskset missing or fewer than 2 CPUs): running unpinned"
    pin_srv=""
    pin_cli=""
fi

# wait_listening OUT PID: prints the port of the "listening on HOST:PORT" line a server started
# with --port 0 writes first to OUT; waits up to 5 s, while PID lives. Fails, printing nothing,
# when the line never comes.
wait_listening() {
    local out=$1 pid=$2 line _
    for _ in $(seq 100); do
        line=$(head -n 1 "$out" 2>/dev/null)
        case "$line" in "listening on "*) echo "${line##*:}"; return 0 ;; esac
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

jget() { # jget FIELD JSON
    sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$2" | tr -d '"'
}
