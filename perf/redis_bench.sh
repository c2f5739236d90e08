#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# perf/redis_bench.sh - urt's Redis client (build/examples/redis --bench) against redis-benchmark,
# the C client Redis ships, on the same real redis-server, in the same run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
clients=50
requests=200000
pipeline=16
size=64
rounds=5

usage() {
    cat <<EOF
usage: $0 [-c CLIENTS] [-n REQUESTS] [-P PIPELINE] [-d SIZE] [--rounds R] [--build DIR] [--help]

Installs redis-server and redis-tools from Debian's packages if missing (their service kept
from starting), starts redis-server on a free port with persistence off, pinned to CPU 0, and
runs, pinned to CPU 1 and alternating over R rounds, build/examples/redis --bench and
redis-benchmark with the same -c -n -P -d and -t set,get. Prints each client's requests/s
per test and its CPU time per request (user + system, from the shell's child times), and the
medians with urt's ratios to redis-benchmark.

  -c CLIENTS   connections (default $clients)
  -n REQUESTS  requests per test (default $requests)
  -P PIPELINE  commands in flight per connection (default $pipeline)
  -d SIZE      value size (default $size)
  --rounds R   rounds (default $rounds)
  --build DIR  where build/examples/redis is (default build/)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    -c) clients=$2; shift 2 ;;
    -n) requests=$2; shift 2 ;;
    -P) pipeline=$2; shift 2 ;;
    -d) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

# shellcheck source=perf/lib.sh
source "$root/perf/lib.sh"
require_bins "$build/examples/redis"

install_packages redis-server redis-benchmark -- redis-server redis-tools

dir=$(mktemp -d)
srv=""
cleanup() {
    if [ -n "$srv" ]; then
        kill "$srv" 2>/dev/null || true
        wait "$srv" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

start_redis() {
    # shellcheck disable=SC2086 # $pin_srv is words
    $pin_srv redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
        >"$dir/server.log" 2>&1 &
}
# ours answering (PORT PID), not some other Redis that already had the port
redis_ready() { redis-cli -p "$1" INFO server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$2"; }
serve_on_free_port srv port start_redis redis_ready ||
    { echo "$0: redis-server did not start" >&2; cat "$dir/server.log" >&2; exit 1; }

# run_client NAME CMD...: one run on CPU 1; prints "SET_RPS GET_RPS CPU_US_PER_REQUEST".
run_client() {
    local name=$1 out t
    shift
    # The child's user and system time: the second line of `times` in a subshell that ran it.
    # shellcheck disable=SC2086
    t=$( ( $pin_cli "$@" >"$dir/$name.out" 2>&1; times ) | tail -n 1)
    out=$(tr '\r' '\n' <"$dir/$name.out" | grep 'requests per second')
    local set get cpu
    set=$(awk '/^ *SET:/ { print $2 }' <<<"$out")
    get=$(awk '/^ *GET:/ { print $2 }' <<<"$out")
    if [ -z "$set" ] || [ -z "$get" ]; then
        echo "$0: $name printed no figures:" >&2
        cat "$dir/$name.out" >&2
        exit 1
    fi
    cpu=$(awk -v t="$t" -v n="$requests" 'BEGIN {
        split(t, f, " "); s = 0
        for (i = 1; i <= 2; i++) { split(f[i], m, "m"); sub("s", "", m[2]); s += m[1] * 60 + m[2] }
        printf "%.3f", s * 1e6 / (2 * n) }')
    echo "$set $get $cpu"
}

echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on port $port (CPU 0); clients on CPU 1"
echo "-c $clients -n $requests -P $pipeline -d $size -t set,get, $rounds rounds"
declare -A s g c
for round in $(seq "$rounds"); do
    order=(urt redis-benchmark)
    [ $((round % 2)) = 0 ] && order=(redis-benchmark urt)
    for who in "${order[@]}"; do
        if [ "$who" = urt ]; then
            r=$(run_client urt "$build/examples/redis" --bench -p "$port" -c "$clients" \
                -n "$requests" -P "$pipeline" -d "$size")
        else
            r=$(run_client rb redis-benchmark -p "$port" -c "$clients" -n "$requests" \
                -P "$pipeline" -d "$size" -t set,get -q)
        fi
        read -r rs rg rc <<<"$r"
        s[$who]="${s[$who]:-} $rs"
        g[$who]="${g[$who]:-} $rg"
        c[$who]="${c[$who]:-} $rc"
        printf '  round %d  %-16s SET %10.0f/s  GET %10.0f/s  %7.3f us CPU per request\n' \
            "$round" "$who" "$rs" "$rg" "$rc"
    done
done
us=$(median "${s[urt]}"); ug=$(median "${g[urt]}"); uc=$(median "${c[urt]}")
bs=$(median "${s[redis-benchmark]}"); bg=$(median "${g[redis-benchmark]}"); bc=$(median "${c[redis-benchmark]}")
ratios=$(awk -v us="$us" -v ug="$ug" -v uc="$uc" -v bs="$bs" -v bg="$bg" -v bc="$bc" \
    'BEGIN { printf "%.2f %.2f %.2f", us / bs, ug / bg, uc / bc }')
read -r rset rget rcpu <<<"$ratios"
echo "medians: urt SET $us/s GET $ug/s $uc us/req; redis-benchmark SET $bs/s GET $bg/s $bc us/req"
echo "ratios urt/redis-benchmark: SET $rset, GET $rget (higher is better), CPU per request $rcpu (lower is better)"
printf '{"bench":"redis_bench","clients":%s,"requests":%s,"pipeline":%s,"size":%s,"rounds":%s,"urt_set_rps":%s,"urt_get_rps":%s,"urt_cpu_us":%s,"rb_set_rps":%s,"rb_get_rps":%s,"rb_cpu_us":%s,"ratio_set":%s,"ratio_get":%s,"ratio_cpu":%s}\n' \
    "$clients" "$requests" "$pipeline" "$size" "$rounds" "$us" "$ug" "$uc" "$bs" "$bg" "$bc" "$rset" "$rget" "$rcpu"
