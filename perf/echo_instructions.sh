#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# echo_instructions.sh - user-space instructions per request of an echo server, by callgrind.
#
#   perf/echo_instructions.sh [--conns C] [--size M] [--seconds S] [--] SERVER [SERVER ARGS...]
#
# Runs SERVER --port 0 (plus its arguments) under valgrind --tool=callgrind and
# build/perf/echo_load against it; zeroes callgrind's counters after a second of load, dumps them
# at the end of the window, and prints the instructions counted divided by the requests echo_load
# made in its window. Instruction counts are stable on a noisy machine where times are not: they
# rank code paths, not cache misses (callgrind runs the server about 50 times slower, so the load
# is light). Examples:
#   perf/echo_instructions.sh build/perf/echo_uring
#   perf/echo_instructions.sh build/examples/echo_server --separate-send
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build="$root/build"
conns=1000 size=64 seconds=4
while [ $# -gt 0 ]; do
    case "$1" in
    --conns) conns=${2:?}; shift 2 ;;
    --size) size=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --help|-h) sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--conns C] [--size M] [--seconds S] SERVER [ARGS...]" >&2; exit 2; }
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    { echo "$0: needs valgrind (callgrind)" >&2; exit 2; }
# shellcheck source=perf/lib.sh
source "$here/lib.sh"
require_bins "$build/perf/echo_load" "$1"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/echo_instructions.XXXXXX")
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" --port 0 >"$work/srv.out" 2>"$work/srv.err" &
vg=$!
trap 'kill -KILL $vg 2>/dev/null; wait $vg 2>/dev/null' EXIT
port=$(wait_listening "$work/srv.out" "$vg") || { echo "$0: the server did not start (see $work)" >&2; exit 1; }
"$build/perf/echo_load" --port "$port" --conns "$conns" --size "$size" --seconds "$seconds" \
    --warmup 1 >"$work/load.out" 2>&1 &
load=$!
sleep 1
callgrind_control -z "$vg" >/dev/null
wait "$load"
callgrind_control -d "$vg" >/dev/null
sleep 0.5
req=$(grep -o '"requests":[0-9]*' "$work/load.out" | cut -d: -f2)
dump=$(ls -t "$work"/cg.out* | head -n 1)
ins=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
if [ -z "$req" ] || [ "${req:-0}" -eq 0 ] || [ -z "$ins" ]; then
    echo "$0: no figure (see $work)" >&2
    exit 1
fi
echo "$*: $((ins / req)) user instructions per request ($ins in $req requests, $conns conns x $size B)"
echo "{\"bench\":\"echo_instructions\",\"server\":\"$*\",\"conns\":$conns,\"size\":$size,\"requests\":$req,\"instructions\":$ins,\"per_request\":$((ins / req))}"
rm -rf "$work"
