#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# accept_bench.sh - what a connection costs the server: one multishot accept for all connections
# against one accept request per connection, in urt (urt_listener / urt_accept) and by hand (raw
# liburing), under a connection storm.
#
# Builds nothing: it expects build/. Each server runs pinned to CPU 0; build/perf/soak_clients
# --mode storm, pinned to CPU 1, opens bursts of --burst connections with no pause, sends one
# message on each, reads the echo on every other one and closes them all, for --seconds. The
# server's CPU time (utime+stime from /proc/PID/stat, around the storm) divided by the
# connections made is its CPU per connection. Servers alternate round by round (--rounds) so
# that drifts of a shared machine hit all of them; the table gives each one's median and its
# ratio to the raw multishot server's median.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build="$root/build"
seconds=4
rounds=3
burst=200

usage() {
    cat <<EOF
usage: $0 [--seconds S] [--rounds R] [--burst B] [--build DIR] [--help]

Server CPU per connection under a connection storm (build/perf/soak_clients --mode storm) for:
  raw-multishot  build/perf/echo_uring (one multishot accept)
  raw-single     build/perf/echo_uring with ECHO_SINGLE_ACCEPT=1 (one accept per connection)
  urt-listener   build/examples/echo_server (a urt_listener)
  urt-accept     build/examples/echo_server --plain-accept (urt_accept per connection)
Builds nothing.

  --seconds S   storm length per run (default 4)
  --rounds R    runs of every server, alternating (default 3)
  --burst B     connections per burst (default 200)
  --build DIR   the build directory (default $root/build)
  --help        print this help and exit
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --burst) burst=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --help|-h) usage; exit 0 ;;
    *) echo "$0: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for v in "$seconds" "$rounds" "$burst"; do
    case "$v" in ''|*[!0-9]*) echo "$0: '$v' is not a whole number" >&2; exit 2 ;; esac
done

# shellcheck source=perf/lib.sh
source "$here/lib.sh"
require_bins "$build/perf/soak_clients" "$build/perf/echo_uring" "$build/examples/echo_server"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

servers="raw-multishot raw-single urt-listener urt-accept"
declare -A cmd=(
    [raw-multishot]="$build/perf/echo_uring"
    [raw-single]="env ECHO_SINGLE_ACCEPT=1 $build/perf/echo_uring"
    [urt-listener]="$build/examples/echo_server"
    [urt-accept]="$build/examples/echo_server --plain-accept"
)
declare -A results
logs=$(mktemp -d "${TMPDIR:-/tmp}/accept_bench.XXXXXX")
srv_pid=""
trap '[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; wait 2>/dev/null' EXIT

cpu_ticks() { # utime+stime of a pid, in clock ticks
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)

echo "accept_bench: servers on CPU 0, soak_clients --mode storm --burst $burst on CPU 1, ${seconds}s x $rounds rounds"
for r in $(seq "$rounds"); do
    for s in $servers; do
        out="$logs/$s.$r.out"
        # shellcheck disable=SC2086  # the command carries its options
        $pin_srv ${cmd[$s]} --host 127.0.0.1 --port 0 >"$out" 2>"$logs/$s.$r.err" &
        srv_pid=$!
        port=$(wait_listening "$out" "$srv_pid")
        if [ -z "$port" ]; then
            echo "warning: $s did not start (see $logs)" >&2
            kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""
            continue
        fi
        t0=$(cpu_ticks "$srv_pid")
        json=$($pin_cli "$build/perf/soak_clients" --mode storm --port "$port" --seconds "$seconds" \
            --burst "$burst" --pause 0 --sources 8 2>&1 | grep '^{')
        t1=$(cpu_ticks "$srv_pid")
        kill -TERM "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""
        conns=$(jget connects "$json")
        failed=$(jget connect_failed "$json")
        us=$(awk -v d=$((t1 - t0)) -v c="${conns:-0}" -v hz="$hz" \
            'BEGIN { if (c > 0) printf "%.2f", d * 1e6 / hz / c; else print "-" }')
        printf '  round %d %-14s %8s connections (%s failed), %6s us CPU per connection\n' \
            "$r" "$s" "${conns:-?}" "${failed:-?}" "$us"
        results[$s]="${results[$s]:-} $us"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | grep -v '^-$' | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'; }
base=$(median <<<"${results[raw-multishot]:-}")
echo
printf '%-14s %18s %8s   %s\n' server 'us CPU/connection' 'xraw-ms' 'all runs'
for s in $servers; do
    m=$(median <<<"${results[$s]:-}")
    ratio=$(awk -v a="$m" -v b="$base" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-14s %18s %8s  %s\n' "$s" "$m" "$ratio" "${results[$s]:-}"
    echo "{\"bench\":\"accept_bench\",\"server\":\"$s\",\"us_per_conn_median\":\"$m\",\"vs_raw_multishot\":\"$ratio\",\"runs\":\"${results[$s]:-}\"}" >>"$logs/results.jsonl"
done
echo "xraw-ms: ratio to the raw liburing server with a multishot accept (lower is better)."
cat "$logs/results.jsonl"
