#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# soak.sh - urt's echo server under a minute (--seconds) of mixed load, then a graceful shutdown.
#
# Builds nothing: it expects build/ (cmake -S . -B build && cmake --build build). The server,
# build/examples/echo_server (--port 0, --idle-timeout 3000, --grace 2000), runs pinned to CPU 0;
# every client runs pinned to CPU 1 (taskset), all at once:
#   - well-behaved: two build/perf/echo_load, 100 connections each, 64 B and 4 KiB messages, every
#     byte echoed checked (--no-spin: they share their core with the rest);
#   - idle: build/perf/idle_conns holding 500 connections that send nothing, round after round:
#     the server's idle timeout closes them (that is the server doing its job), the round ends
#     a second later, and the next one connects 500 more (so they are there ~3/4 of the time);
#   - resets: build/perf/soak_clients --mode reset: connections that send half a message or
#     nothing, then close with RST, at once or after being held a while (500 a second);
#   - storms: build/perf/soak_clients --mode storm: bursts of 200 connections opened at once, one
#     message each, the echo read on every other one, all closed together (every 200 ms).
# First a warm-up of the same mix (--warmup seconds), so that the server's stack pool and heap
# have grown to what the load needs; once its connections are gone, the server's RSS (VmRSS,
# /proc/PID/status) and fd count (/proc/PID/fd) are recorded as the start. During the soak
# they are sampled every 5 s. After the clients end and the server's fd count has come back (or
# the idle timeout plus 10 s have passed), RSS and fds are recorded as the end, the server gets
# SIGTERM and its exit status and counters are collected.
#
# Criteria (each PASS or FAIL, and the exit status is 0 only if all pass):
#   - well-behaved clients saw no error (echo_load's "errors": connect failures, resets, early
#     EOFs, mismatched bytes) and completed requests;
#   - fds flat: the server's fd count at the end equals the start;
#   - RSS flat: the end is at most max(10% of the start, 4 MiB) above the start;
#   - the server exited with status 0 after SIGTERM (within its grace period plus 10 s).
# Prints the report, then one JSON line. Everything it starts is stopped when it exits, however
# it exits. Logs are kept in a temporary directory (named in the report).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build="$root/build"
seconds=60
warmup=5

# The mix (see above).
idle_timeout_ms=3000
grace_ms=2000
load_conns=100
load_sizes="64 4096"
idle_conns=500
reset_conns=50
reset_rate=500
storm_burst=200
storm_pause_ms=200
sample_every=5
rss_slack_pct=10
rss_slack_kb=4096

usage() {
    cat <<EOF
usage: $0 [--seconds S] [--warmup W] [--build DIR] [--help]

Soak test of urt's echo server (build/examples/echo_server, pinned to CPU 0): S seconds of
well-behaved clients (2 x echo_load, $load_conns connections, 64 B and 4 KiB messages), idle
clients (idle_conns, $idle_conns at a time, closed by the server's ${idle_timeout_ms} ms idle
timeout), clients that reset mid-message and connection storms (soak_clients), all pinned to
CPU 1; then SIGTERM. Reports the errors the well-behaved clients saw (must be 0), the server's
RSS and fd count at start and end (must be flat) and its exit status (must be 0), PASS/FAIL per
criterion and one JSON line. Exit status 0 only if every criterion passes. Builds nothing.

  --seconds S   length of the soak (default 60)
  --warmup W    seconds of the same mix before it, so that pools are warm (default 5)
  --build DIR   the build directory (default $root/build)
  --help        print this help and exit
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=${2:?}; shift 2 ;;
    --warmup) warmup=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --help|-h) usage; exit 0 ;;
    *) echo "$0: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for v in "$seconds" "$warmup"; do
    case "$v" in ''|*[!0-9]*) echo "$0: '$v' is not a whole number" >&2; exit 2 ;; esac
done
if [ "$seconds" -lt 5 ]; then
    echo "$0: --seconds must be at least 5" >&2
    exit 2
fi

server_bin="$build/examples/echo_server"
load_bin="$build/perf/echo_load"
idle_bin="$build/perf/idle_conns"
soak_bin="$build/perf/soak_clients"
# shellcheck source=perf/lib.sh
source "$here/lib.sh"
require_bins "$server_bin" "$load_bin" "$idle_bin" "$soak_bin"

# File descriptors: the clients raise their own limits; the server raises its soft limit to the
# hard one. Make sure the hard limit fits the mix.
need=$((2 * load_conns + idle_conns + reset_conns + storm_burst + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null || true
    hard=$(ulimit -Hn)
fi
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "$0: ulimit -Hn is $hard, $need are needed" >&2
    exit 1
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
srv_pid=""
srv_rc=""
declare -A kid=()        # role -> pid of a running client

# Stops every client still running (SIGTERM, SIGKILL after 5 s) and reaps it.
stop_clients() {
    local role p
    for role in "${!kid[@]}"; do
        p=${kid[$role]}
        kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
    done
    for _ in $(seq 50); do
        local alive=0
        for role in "${!kid[@]}"; do kill -0 "${kid[$role]}" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for role in "${!kid[@]}"; do
        p=${kid[$role]}
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
        unset "kid[$role]"
    done
}
cleanup() {
    stop_clients
    if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$srv_pid" 2>/dev/null && kill -KILL "$srv_pid" 2>/dev/null
        wait "$srv_pid" 2>/dev/null
    fi
    srv_pid=""
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT TERM

now() { echo "${EPOCHREALTIME/./}"; }           # microseconds
rss_kb() { awk '/^VmRSS:/ { print $2; exit }' "/proc/$1/status" 2>/dev/null; }
hwm_kb() { awk '/^VmHWM:/ { print $2; exit }' "/proc/$1/status" 2>/dev/null; }
fd_count() {
    [ -d "/proc/$1/fd" ] || return 0
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}
srv_alive() { [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; }

# ---- the server ----

$pin_srv "$server_bin" --host 127.0.0.1 --port 0 --idle-timeout "$idle_timeout_ms" \
    --grace "$grace_ms" >"$logs/server.out" 2>"$logs/server.err" &
srv_pid=$!    # taskset execs the server: this is the server's pid
port=$(wait_listening "$logs/server.out" "$srv_pid")
if [ -z "$port" ]; then
    echo "$0: the server did not print 'listening on HOST:PORT' (see $logs/server.out, server.err)" >&2
    cat "$logs/server.err" >&2
    exit 1
fi
fds_base=$(fd_count "$srv_pid")
echo "soak: echo_server pid $srv_pid on 127.0.0.1:$port (CPU 0; --idle-timeout $idle_timeout_ms --grace $grace_ms), clients on CPU 1"
echo "      ${warmup}s warm-up, then ${seconds}s soak; logs in $logs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "      server at rest: fds $fds_base, VmRSS $(rss_kb "$srv_pid") kB"

# ---- the clients ----

idle_hold=$(((idle_timeout_ms + 999) / 1000 + 1))   # a round outlives the idle timeout by 1 s
idle_rounds=0

# start_idle PHASE LEFT: one round of idle connections, held min(idle_hold, LEFT) seconds.
start_idle() {
    local hold=$idle_hold
    [ "$2" -lt "$hold" ] && hold=$2
    idle_rounds=$((idle_rounds + 1))
    $pin_cli "$idle_bin" --host 127.0.0.1 --port "$port" --conns "$idle_conns" \
        --seconds "$hold" >>"$logs/$1.idle.log" 2>&1 &
    kid[idle]=$!
}

# start_clients PHASE SECONDS: the whole mix.
start_clients() {
    local phase=$1 s=$2 size
    for size in $load_sizes; do
        $pin_cli "$load_bin" --host 127.0.0.1 --port "$port" --conns "$load_conns" --size "$size" \
            --seconds "$s" --warmup 0 --no-spin >"$logs/$phase.load$size.log" 2>&1 &
        kid[load$size]=$!
    done
    $pin_cli "$soak_bin" --mode reset --host 127.0.0.1 --port "$port" --seconds "$s" \
        --conns "$reset_conns" --rate "$reset_rate" >"$logs/$phase.reset.log" 2>&1 &
    kid[reset]=$!
    $pin_cli "$soak_bin" --mode storm --host 127.0.0.1 --port "$port" --seconds "$s" \
        --burst "$storm_burst" --pause "$storm_pause_ms" >"$logs/$phase.storm.log" 2>&1 &
    kid[storm]=$!
    idle_rounds=0
    start_idle "$phase" "$s"
}

rss_peak=0
# run_phase PHASE SECONDS SAMPLE: starts the mix, keeps idle rounds going, samples the server
# every $sample_every s if SAMPLE is 1, then waits for every client to end (SECONDS + 30 s at
# most). Returns 1 if the server died.
run_phase() {
    local phase=$1 s=$2 sample=$3
    local t0 t left next_sample=$sample_every el r f
    start_clients "$phase" "$s"
    t0=$(now)
    while :; do
        sleep 0.5
        t=$(now)
        el=$(((t - t0) / 1000000))
        left=$((s - el))
        if ! srv_alive; then
            echo "  the server died at ${el}s"
            return 1
        fi
        if [ "$sample" = 1 ] && [ "$el" -ge "$next_sample" ] && [ "$next_sample" -lt "$s" ]; then
            r=$(rss_kb "$srv_pid"); f=$(fd_count "$srv_pid")
            [ -n "$r" ] && [ "$r" -gt "$rss_peak" ] && rss_peak=$r
            printf '  t=%3ds  VmRSS %7s kB  fds %5s\n' "$next_sample" "$r" "$f"
            next_sample=$((next_sample + sample_every))
        fi
        [ "$left" -le 0 ] && break
        # The next idle round, once the last one has ended (if at least 2 s are left).
        if [ -n "${kid[idle]:-}" ] && ! kill -0 "${kid[idle]}" 2>/dev/null; then
            wait "${kid[idle]}" 2>/dev/null
            unset "kid[idle]"
            [ "$left" -ge 2 ] && start_idle "$phase" "$left"
        fi
    done
    # The clients end on their own: echo_load after its connects and window, the others on time.
    local deadline=$(($(now) + 30000000)) role
    for role in "${!kid[@]}"; do
        while kill -0 "${kid[$role]}" 2>/dev/null && [ "$(now)" -lt "$deadline" ]; do sleep 0.1; done
    done
    local late=""
    for role in "${!kid[@]}"; do kill -0 "${kid[$role]}" 2>/dev/null && late="$late $role"; done
    [ -n "$late" ] && echo "  clients still running 30 s after the end, stopped:$late"
    stop_clients
    srv_alive || return 1
    return 0
}

# wait_settle WANT: waits until the server holds at most WANT fds (its connections are gone),
# idle timeout + 10 s at most, then 2 s more for memory to be given back.
wait_settle() {
    local want=$1 deadline=$(($(now) + (idle_timeout_ms + 10000) * 1000)) f
    while srv_alive && [ "$(now)" -lt "$deadline" ]; do
        f=$(fd_count "$srv_pid")
        [ -n "$f" ] && [ "$f" -le "$want" ] && break
        sleep 0.2
    done
    sleep 2
}

failed_early=""
if [ "$warmup" -gt 0 ]; then
    echo "warm-up: ${warmup}s of the mix"
    run_phase warmup "$warmup" 0 || failed_early="the server died during the warm-up"
    [ -z "$failed_early" ] && wait_settle "$fds_base"
fi

rss_start="" fds_start="" rss_end="" fds_end="" hwm=""
if [ -z "$failed_early" ]; then
    rss_start=$(rss_kb "$srv_pid")
    fds_start=$(fd_count "$srv_pid")
    rss_peak=$rss_start
    echo "start: VmRSS $rss_start kB, fds $fds_start"
    echo "soak: ${seconds}s of the mix"
    if run_phase soak "$seconds" 1; then
        wait_settle "$fds_start"
        rss_end=$(rss_kb "$srv_pid")
        fds_end=$(fd_count "$srv_pid")
        hwm=$(hwm_kb "$srv_pid")
        [ -n "$rss_end" ] && [ "$rss_end" -gt "$rss_peak" ] && rss_peak=$rss_end
        echo "end: VmRSS $rss_end kB, fds $fds_end (VmHWM $hwm kB)"
    else
        failed_early="the server died during the soak"
    fi
fi

# ---- graceful shutdown ----

if srv_alive; then
    echo "SIGTERM to the server"
    kill -TERM "$srv_pid"
    stop_deadline=$(($(now) + (grace_ms + 10000) * 1000))
    while kill -0 "$srv_pid" 2>/dev/null && [ "$(now)" -lt "$stop_deadline" ]; do sleep 0.1; done
    if kill -0 "$srv_pid" 2>/dev/null; then
        echo "  the server ignored SIGTERM for $((grace_ms / 1000 + 10)) s: SIGKILL"
        kill -KILL "$srv_pid"
    fi
fi
wait "$srv_pid" 2>/dev/null
srv_rc=$?
srv_pid=""
counter() { awk -v k="$1" '$1 == k { print $2; exit }' "$logs/server.out"; }
stopped_by=$(sed -n 's/^stopped by //p' "$logs/server.out")

# ---- report ----

echo
echo "==== soak report: urt echo_server, ${seconds}s ===="
errors_total=0
reqs_total=0
load_ok=1
load_json=""
for size in $load_sizes; do
    j=$(grep '^{"bench":"echo_load"' "$logs/soak.load$size.log" 2>/dev/null | tail -n 1)
    if [ -z "$j" ]; then
        load_ok=0
        printf 'well-behaved %4s B x %s conns: no result (see %s)\n' "$size" "$load_conns" \
            "$logs/soak.load$size.log"
        continue
    fi
    e=$(jget errors "$j"); q=$(jget requests "$j")
    errors_total=$((errors_total + e))
    reqs_total=$((reqs_total + q))
    [ "$q" -gt 0 ] || load_ok=0
    printf 'well-behaved %4s B x %s conns: %s requests (%s req/s, p99 %s us, max %s us), errors %s (connect %s, reset/eof %s, mismatch %s, other %s)\n' \
        "$size" "$load_conns" "$q" "$(jget rps "$j")" "$(jget p99_us "$j")" "$(jget max_us "$j")" \
        "$e" "$(jget err_connect "$j")" "$(jget err_reset "$j")" "$(jget err_mismatch "$j")" \
        "$(jget err_other "$j")"
    load_json="$load_json,\"load${size}_requests\":$q,\"load${size}_errors\":$e"
done
j=$(grep '^{"bench":"soak_clients"' "$logs/soak.reset.log" 2>/dev/null | tail -n 1)
reset_conn=$(jget connects "$j"); reset_fail=$(jget connect_failed "$j")
if [ -n "$j" ]; then
    echo "reset clients: $reset_conn connections reset (half_held $(jget half_held "$j"), empty_held $(jget empty_held "$j"), half_now $(jget half_now "$j"), empty_now $(jget empty_now "$j")); connects failed $reset_fail"
else
    echo "reset clients: no result (see $logs/soak.reset.log)"
fi
j=$(grep '^{"bench":"soak_clients"' "$logs/soak.storm.log" 2>/dev/null | tail -n 1)
storm_conn=$(jget connects "$j"); storm_fail=$(jget connect_failed "$j")
storm_echoed=$(jget echoed "$j")
storm_bad=null
if [ -n "$j" ]; then
    storm_bad=$(($(jget echo_mismatched "$j") + $(jget echo_lost "$j") + $(jget echo_timeouts "$j")))
fi
if [ -n "$j" ]; then
    echo "storm clients: $(jget bursts "$j") bursts of $storm_burst, $storm_conn connections; echoes checked $storm_echoed, mismatched/lost/timed out $(jget echo_mismatched "$j")/$(jget echo_lost "$j")/$(jget echo_timeouts "$j"), left unread $(jget unread "$j"); connects failed $storm_fail; slowest burst $(jget slowest_burst_ms "$j") ms"
else
    echo "storm clients: no result (see $logs/soak.storm.log)"
fi
idle_connected=$(grep '^{"bench":"idle_conns"' "$logs/soak.idle.log" 2>/dev/null | sed -n 's/.*"connected":\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
idle_closed=$(grep '^{"bench":"idle_conns"' "$logs/soak.idle.log" 2>/dev/null | sed -n 's/.*"peer_closed":\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
idle_failed=$(grep '^{"bench":"idle_conns"' "$logs/soak.idle.log" 2>/dev/null | sed -n 's/.*"failed":\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
echo "idle clients: $idle_rounds rounds of $idle_conns, $idle_connected connected ($idle_failed failed), $idle_closed closed by the server's idle timeout"
accepted=$(counter accepted); accepted=${accepted:-null}
srv_errors=$(counter errors); srv_errors=${srv_errors:-null}
echo "server (warm-up included): stopped by ${stopped_by:-?}; accepted $(counter accepted), refused $(counter refused), closed_idle $(counter closed_idle), closed_by_peer $(counter closed_by_peer), cancelled $(counter cancelled), errors $(counter errors), bytes_echoed $(counter bytes_echoed), emfile_backoffs $(counter emfile_backoffs)"
if [ -s "$logs/server.err" ]; then
    echo "server stderr (first lines):"
    head -n 10 "$logs/server.err" | sed 's/^/  /'
fi
echo "RSS: start ${rss_start:-?} kB, peak ${rss_peak:-?} kB (sampled), end ${rss_end:-?} kB; VmHWM ${hwm:-?} kB"
echo "fds: start ${fds_start:-?}, end ${fds_end:-?} (at rest before the warm-up: $fds_base)"
echo "exit status: $srv_rc"
[ -n "$failed_early" ] && echo "note: $failed_early"
echo

pass=1
verdict() { # verdict OK TEXT
    if [ "$1" = 1 ]; then echo "PASS  $2"; else echo "FAIL  $2"; pass=0; fi
}
ok=0; [ "$load_ok" = 1 ] && [ "$errors_total" -eq 0 ] && [ "$reqs_total" -gt 0 ] && ok=1
verdict $ok "well-behaved clients: $errors_total errors in $reqs_total requests (must be 0 errors)"
ok=0; [ -n "$fds_start" ] && [ -n "$fds_end" ] && [ "$fds_end" -eq "$fds_start" ] && ok=1
verdict $ok "fds flat: start ${fds_start:-?}, end ${fds_end:-?} (must be equal)"
rss_limit=""
ok=0
if [ -n "$rss_start" ] && [ -n "$rss_end" ]; then
    rss_limit=$((rss_start * rss_slack_pct / 100))
    [ "$rss_limit" -lt "$rss_slack_kb" ] && rss_limit=$rss_slack_kb
    [ $((rss_end - rss_start)) -le "$rss_limit" ] && ok=1
    verdict $ok "RSS flat: start $rss_start kB, end $rss_end kB ($((rss_end - rss_start)) kB; at most +$rss_limit kB: ${rss_slack_pct}% or $((rss_slack_kb / 1024)) MiB)"
else
    verdict 0 "RSS flat: not measured"
fi
ok=0; [ "$srv_rc" -eq 0 ] && ok=1
verdict $ok "server exit status $srv_rc (must be 0 after SIGTERM)"
result=FAIL; [ "$pass" = 1 ] && result=PASS
echo "result: $result"
echo "{\"bench\":\"soak\",\"seconds\":$seconds,\"warmup\":$warmup,\"result\":\"$result\",\"well_behaved_errors\":$errors_total,\"well_behaved_requests\":$reqs_total$load_json,\"rss_kb_start\":${rss_start:-null},\"rss_kb_peak\":${rss_peak:-null},\"rss_kb_end\":${rss_end:-null},\"hwm_kb\":${hwm:-null},\"fds_start\":${fds_start:-null},\"fds_end\":${fds_end:-null},\"exit_status\":$srv_rc,\"reset_conns\":${reset_conn:-null},\"storm_conns\":${storm_conn:-null},\"storm_echo_failures\":$storm_bad,\"idle_connected\":$idle_connected,\"idle_closed_by_server\":$idle_closed,\"accepted\":$accepted,\"server_errors\":$srv_errors,\"logs\":\"$logs\"}"
[ "$pass" = 1 ]
