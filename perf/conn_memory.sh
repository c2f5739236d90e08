#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# perf/conn_memory.sh - what a connection costs a server in memory: resident bytes per
# connection with C connections each echoing M-byte messages, side by side for urt's echo server
# and the hand-written servers (raw liburing, epoll), each in the same run; then urt's HTTP
# server with C keep-alive connections loaded by wrk (when wrk is installed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
conns=10000
size=64
rounds=3

usage() {
    cat <<EOF
usage: $0 [--conns C] [--size M] [--rounds R] [--build DIR] [--help]

Starts each server (build/perf/echo_uring: raw liburing, build/perf/echo_epoll, and urt's
build/examples/echo_server) pinned to CPU 0, drives it with build/perf/echo_load pinned to
CPU 1 (C connections, one M-byte message each in flight, every byte checked), reads the
server's VmRSS before the load and in the middle of it, and prints the growth per connection,
with urt's ratio to the raw liburing server's. R rounds, the servers alternating in each; the
figure per server is the median of its rounds. Then build/examples/http_server the same way,
loaded by wrk -t1 -cC (GET /, keep-alive: every connection with a request answered and
the next one in flight), with its ratio to the raw liburing echo server's figure.

  --conns C    connections (default 10000)
  --size M     message size in bytes (default 64)
  --rounds R   rounds (default 3)
  --build DIR  where the programs are (default build/)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --conns) conns=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

# shellcheck source=perf/lib.sh
source "$root/perf/lib.sh"
load=$build/perf/echo_load
require_bins "$load" "$build/perf/echo_uring" "$build/perf/echo_epoll" "$build/examples/echo_server"

# Every connection is an fd at both ends.
need=$((conns + 64))
[ "$(ulimit -Hn)" -ge "$need" ] || ulimit -Hn "$need" 2>/dev/null || true
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -Sn)" -lt "$need" ]; then
    echo "$0: ulimit -n is $(ulimit -Sn), $need are needed for $conns connections" >&2
    exit 1
fi

logs=$(mktemp -d)
srv_pid=""
cleanup() {
    [ -z "$srv_pid" ] || kill "$srv_pid" 2>/dev/null || true
    rm -rf "$logs"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

declare -A bin=([uring]=$build/perf/echo_uring [epoll]=$build/perf/echo_epoll
                [urt]=$build/examples/echo_server)
declare -A per
order=(uring epoll urt)

# measure TAG: one run of one server; appends bytes per connection to per[TAG].
measure() {
    local tag=$1 out=$logs/$1.out port r0 r1 lp
    # shellcheck disable=SC2086 # $pin_srv is words
    $pin_srv "${bin[$tag]}" --host 127.0.0.1 --port 0 >"$out" 2>"$logs/$tag.err" &
    srv_pid=$!
    if ! port=$(wait_listening "$out" "$srv_pid"); then
        echo "$0: $tag did not start (see $logs/$tag.err)" >&2
        exit 1
    fi
    r0=$(rss_kib "$srv_pid")
    # shellcheck disable=SC2086
    $pin_cli "$load" --port "$port" --conns "$conns" --size "$size" --warmup 2 --seconds 3 \
        >"$logs/load.out" 2>&1 &
    lp=$!
    sleep 3.5   # in the middle of the measured window: every connection is up and echoing
    r1=$(rss_kib "$srv_pid")
    if ! wait "$lp"; then
        echo "$0: the load against $tag failed:" >&2
        cat "$logs/load.out" >&2
        exit 1
    fi
    kill "$srv_pid"
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=""
    local b=$(((r1 - r0) * 1024 / conns))
    per[$tag]="${per[$tag]:-} $b"
    printf '  round %d  %-6s %6d KiB before, %7d KiB with %d connections: %5d B per connection\n' \
        "$round" "$tag" "$r0" "$r1" "$conns" "$b"
}

echo "server memory per connection: $conns connections echoing $size B, $rounds rounds"
for round in $(seq "$rounds"); do
    for tag in "${order[@]}"; do
        measure "$tag"
    done
    order=("${order[@]:1}" "${order[0]}")   # a different server first in each round
done
u=$(median "${per[uring]}")
e=$(median "${per[epoll]}")
t=$(median "${per[urt]}")

ratio=$(awk -v t="$t" -v u="$u" 'BEGIN { printf "%.3f", t / u }')
echo "medians: raw liburing $u B, epoll $e B, urt echo_server $t B per connection; urt/raw $ratio"

# urt's HTTP server: C keep-alive connections, each with a request in flight, from wrk.
h=null
hratio=null
if command -v wrk >/dev/null && [ -x "$build/examples/http_server" ]; then
    www=$logs/www
    mkdir -p "$www"
    for round in $(seq "$rounds"); do
        # shellcheck disable=SC2086
        $pin_srv "$build/examples/http_server" --port 0 --root "$www" --max-conns $((conns * 2)) \
            >"$logs/http.out" 2>"$logs/http.err" &
        srv_pid=$!
        port=$(wait_listening "$logs/http.out" "$srv_pid") ||
            { echo "$0: http_server did not start" >&2; cat "$logs/http.err" >&2; exit 1; }
        r0=$(rss_kib "$srv_pid")
        # shellcheck disable=SC2086
        $pin_cli wrk -t1 -c"$conns" -d6s "http://127.0.0.1:$port/" >"$logs/wrk.out" 2>&1 &
        lp=$!
        sleep 3.5   # connected and requesting, mid-run
        r1=$(rss_kib "$srv_pid")
        n=$(find "/proc/$srv_pid/fd" -mindepth 1 | wc -l)
        wait "$lp" || { echo "$0: wrk failed:" >&2; cat "$logs/wrk.out" >&2; exit 1; }
        kill "$srv_pid"
        wait "$srv_pid" 2>/dev/null || true
        srv_pid=""
        b=$(((r1 - r0) * 1024 / conns))
        per[http]="${per[http]:-} $b"
        printf '  round %d  %-6s %6d KiB before, %7d KiB with %d connections (%d fds open): %5d B per connection\n' \
            "$round" http "$r0" "$r1" "$conns" "$n" "$b"
    done
    h=$(median "${per[http]}")
    hratio=$(awk -v t="$h" -v u="$u" 'BEGIN { printf "%.3f", t / u }')
    echo "median: urt http_server $h B per keep-alive connection; /raw liburing echo $hratio"
else
    echo "(wrk or build/examples/http_server missing: no HTTP figure)"
fi
printf '{"bench":"conn_memory","conns":%d,"size":%d,"rounds":%d,"uring_bytes":%d,"epoll_bytes":%d,"urt_bytes":%d,"ratio_urt_uring":%s,"http_bytes":%s,"ratio_http_uring":%s}\n' \
    "$conns" "$size" "$rounds" "$u" "$e" "$t" "$ratio" "$h" "$hratio"
