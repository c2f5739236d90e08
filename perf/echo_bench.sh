#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# echo_bench.sh - urt's echo server against the hand-written baselines (raw liburing, epoll).
#
# Builds nothing: it expects build/ (cmake -S . -B build && cmake --build build). For every
# combination of connection count and message size it starts each server afresh, pinned to CPU 0
# (taskset -c 0), and runs build/perf/echo_load pinned to CPU 1 against it: --warmup seconds of
# load, then a measured window of --seconds. echo_load reads the server's utime+stime from
# /proc/PID/stat at the window's two edges (--server-pid), so the CPU time is the window's only.
# The table gives requests per second and server CPU microseconds per request, each also as a
# ratio to the raw liburing baseline of the same combination in the same run (rps: higher is
# better; CPU/req: lower is better). A row whose load generator was itself saturated is marked:
# its req/s is a floor, and only its CPU per request compares cleanly. (Over loopback a send also
# runs the receiver's TCP path, so the generator costs about what a lean server does per request:
# against the fastest servers both ends saturate together.)
#
# The machine may be shared: before each run the script waits for a quiet second, and a run in
# whose window other processes used >= 10% of a core is repeated (--retries) or marked.
#
# Where perf can count tracepoints (root, perf installed), the table also gives the IPIs the
# server sent per 1,000 requests (ipi:ipi_send_cpu, counted over about the window). On this
# virtual machine each IPI is a VM exit, and they come in bursts whose size depends on timing
# (the TCP stack hands freed buffers back to the CPU that allocated them, net.core.skb_defer_max,
# and kicks it with an IPI): they account for much of the spread between runs of one server.
#
# Servers are stopped with SIGTERM (SIGKILL after 5 s) at the end of each row, and on any exit
# of the script; nothing is left running.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build="$root/build"
seconds=5
warmup=1
conns_list="100 1000"
sizes_list="64 4096"
retries=2
rounds=1
quiet_wait=60
servers="uring epoll urt"
threads=1

usage() {
    cat <<EOF
usage: $0 [--seconds S] [--warmup W] [--conns "C1 C2.."] [--sizes "M1 M2.."] [--retries N] [--rounds N]
       [--quiet-wait S] [--servers "uring epoll urt multishot"] [--threads N] [--build DIR] [--help]

Runs urt's echo server (build/examples/echo_server) and the baselines build/perf/echo_uring
(raw liburing) and build/perf/echo_epoll, each pinned to CPU 0, under build/perf/echo_load
pinned to CPU 1, and prints requests/s and server CPU us/request, with ratios to echo_uring.
Builds nothing.

  --seconds S   measured window per run (default 5)
  --warmup W    warm-up seconds before it (default 1)
  --conns L     connection counts (default "100 1000")
  --sizes L     message sizes in bytes (default "64 4096")
  --retries N   runs again, up to N times, a run that other processes disturbed (they used
                >= 10% of a core in its window, as echo_load measures); default 2
  --rounds N    runs every server N times per combination, in turn (default 1); with N > 1 a
                second table gives each server's medians over the rounds, and the range of its
                CPU ratio (each round's ratio is to that round's uring run)
  --quiet-wait S  before each run, waits up to S seconds (default 60) for a second in which
                the machine is idle (< 10% of a core busy); 0: do not wait
  --servers L   which servers, in this order (default "uring epoll urt"): uring = raw liburing
                (build/perf/echo_uring), epoll (build/perf/echo_epoll), urt
                (build/examples/echo_server: urt_send_recv per message), multishot = raw
                liburing with a multishot recv into provided buffers
                (build/perf/echo_uring_multishot); for comparison: urt-separate (echo_server
                --separate-send: urt_send, then urt_recv), uring-linked (echo_uring with
                ECHO_LINK=1: each send linked to the next recv, as urt_send_recv does), coro
                (build/perf/echo_coro: bare coroutines on urt's context switch, the floor of
                the design), coro-linked (the same with ECHO_LINK=1). Ratios are to uring, so
                keep it in the list.
  --threads N   urt's servers run N runtimes (echo_server --threads N), pinned to CPUs
                0..N-1, and echo_load runs N threads on CPUs N.. (default 1; the baselines
                stay single-threaded on CPU 0). Needs at least 2N CPUs to mean much.
  --build DIR   the build directory (default $root/build)
  --help        print this help and exit
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=${2:?}; shift 2 ;;
    --warmup) warmup=${2:?}; shift 2 ;;
    --conns) conns_list=${2:?}; shift 2 ;;
    --sizes) sizes_list=${2:?}; shift 2 ;;
    --retries) retries=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --quiet-wait) quiet_wait=${2:?}; shift 2 ;;
    --servers) servers=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --help|-h) usage; exit 0 ;;
    *) echo "$0: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for v in "$seconds" "$warmup" "$retries" "$rounds" "$quiet_wait" "$threads" $conns_list $sizes_list; do
    case "$v" in ''|*[!0-9]*) echo "$0: '$v' is not a whole number" >&2; exit 2 ;; esac
done

load="$build/perf/echo_load"
# shellcheck source=perf/lib.sh
source "$here/lib.sh"
require_bins "$load" "$build/perf/echo_uring" "$build/perf/echo_epoll"

# File descriptors: each side needs one per connection.
max_conns=0
for c in $conns_list; do [ "$c" -gt "$max_conns" ] && max_conns=$c; done
need=$((max_conns + 256))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null || true
    hard=$(ulimit -Hn)
fi
ulimit -Sn "$hard" 2>/dev/null || true
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
    echo "$0: ulimit -n is $soft, $need are needed for $max_conns connections" >&2
    exit 1
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/echo_bench.XXXXXX")
srv_pid=""

stop_server() {
    [ -n "$srv_pid" ] || return 0
    if kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$srv_pid" 2>/dev/null; then
            echo "warning: server pid $srv_pid ignored SIGTERM for 5 s: SIGKILL" >&2
            kill -KILL "$srv_pid" 2>/dev/null
        fi
    fi
    wait "$srv_pid" 2>/dev/null
    srv_rc=$?
    srv_pid=""
    return 0
}
trap 'stop_server' EXIT
trap 'stop_server; exit 130' INT TERM

# start_server TAG BINARY: starts it on CPU 0 with port 0; sets srv_pid and srv_port.
start_server() {
    local tag=$1 bin=$2 out="$logs/$1.$3.out" err="$logs/$1.$3.err"
    srv_port=""
    # taskset execs the server (env execs taskset): $! is the server's pid.
    # shellcheck disable=SC2086 # the extra arguments and environment are words
    local pin=$pin_srv targs=""
    if [ "$threads" -gt 1 ] && [ "${bin##*/}" = echo_server ]; then
        pin="taskset -c 0-$((threads - 1))"
        targs="--threads $threads"
    fi
    # shellcheck disable=SC2086
    env ${envs[$tag]:-} $pin "$bin" ${args[$tag]:-} $targs --host 127.0.0.1 --port 0 >"$out" 2>"$err" &
    srv_pid=$!
    srv_port=$(wait_listening "$out" "$srv_pid") && return 0
    echo "warning: $tag did not print 'listening on HOST:PORT' (see $out, $err)" >&2
    stop_server
    return 1
}

# Busy ticks of the whole machine so far (/proc/stat: user nice system irq softirq steal).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)

# The machine may be shared: wait (up to --quiet-wait seconds) for a second in which everything
# else together used under 10% of a core, so that a run does not start in someone's build.
wait_quiet() {
    [ "$quiet_wait" -gt 0 ] || return 0
    local waited=0 a b
    while :; do
        a=$(busy_ticks); sleep 1; b=$(busy_ticks)
        [ $(((b - a) * 10)) -lt "$hz" ] && break
        waited=$((waited + 1))
        if [ "$waited" -ge "$quiet_wait" ]; then
            echo "  (the machine stayed busy for ${quiet_wait}s: running anyway)"
            return 0
        fi
    done
    [ "$waited" -gt 0 ] && echo "  (waited ${waited}s for other processes to finish)"
    return 0
}

declare -A bin=(
    [uring]="$build/perf/echo_uring"
    [epoll]="$build/perf/echo_epoll"
    [urt]="$build/examples/echo_server"
    [multishot]="$build/perf/echo_uring_multishot"
    [urt-separate]="$build/examples/echo_server"
    [uring-linked]="$build/perf/echo_uring"
    [coro]="$build/perf/echo_coro"
    [coro-linked]="$build/perf/echo_coro"
)
declare -A args=([urt-separate]="--separate-send")
declare -A envs=([uring-linked]="ECHO_LINK=1" [coro-linked]="ECHO_LINK=1")
declare -A name=([uring]="raw liburing" [epoll]="epoll" [urt]="urt echo_server"
                 [multishot]="raw multishot" [urt-separate]="urt, send then recv"
                 [uring-linked]="raw, linked" [coro]="bare coroutines"
                 [coro-linked]="bare coroutines, linked")
for s in $servers; do
    [ -n "${bin[$s]:-}" ] || { echo "$0: --servers: unknown server '$s'" >&2; exit 2; }
done

# IPIs the server sends (see the top): counted where perf can.
count_ipis=0
if command -v perf >/dev/null && perf stat -x, -e ipi:ipi_send_cpu -- true >/dev/null 2>&1; then
    count_ipis=1
fi

echo "echo_bench: servers on CPU 0, echo_load on CPU 1; ${warmup}s warm-up + ${seconds}s window per run"
echo "            (logs in $logs)"
rows=()
meds=()
notes=()
[ -x "${bin[urt]}" ] || notes+=("urt: ${bin[urt]} does not exist yet: its rows are skipped")

for conns in $conns_list; do
    for size in $sizes_list; do
      for round in $(seq "$rounds"); do
        base_rps="" base_cpu=""
        for s in $servers; do
            tag="$s.c$conns.m$size.r$round"
            if [ ! -x "${bin[$s]}" ]; then
                rows+=("$s|$conns|$size|skipped|||||||||(not built)")
                continue
            fi
            attempt=0
            while :; do
                wait_quiet
                if ! start_server "$s" "${bin[$s]}" "c$conns.m$size"; then
                    json=""
                    break
                fi
                srv_rc=0
                ipi_pid=""
                if [ "$count_ipis" = 1 ]; then
                    (sleep "$warmup"; exec perf stat -x, -o "$logs/$tag.ipi" -e ipi:ipi_send_cpu \
                        -p "$srv_pid" -- sleep "$seconds") >/dev/null 2>&1 &
                    ipi_pid=$!
                fi
                lpin=$pin_cli
                [ "$threads" -gt 1 ] && lpin="taskset -c $threads-$((2 * threads - 1))"
                $lpin "$load" --host 127.0.0.1 --port "$srv_port" --conns "$conns" \
                    --size "$size" --seconds "$seconds" --warmup "$warmup" --threads "$threads" \
                    --server-pid "$srv_pid" >"$logs/$tag.load" 2>&1
                load_rc=$?
                [ -n "$ipi_pid" ] && wait "$ipi_pid" 2>/dev/null
                stop_server
                json=$(grep '^{"bench":"echo_load"' "$logs/$tag.load" | tail -n 1)
                others=$(jget other_cpu "$json")
                disturbed=$(awk -v o="${others:-0}" 'BEGIN { print (o >= 0.10) ? 1 : 0 }')
                if [ -n "$json" ] && [ "$disturbed" = 1 ] && [ "$attempt" -lt "$retries" ]; then
                    attempt=$((attempt + 1))
                    echo "  $s $conns conns x $size B: other processes used $(awk -v o="$others" 'BEGIN { printf "%.0f", o * 100 }')% of a core: again ($attempt/$retries)"
                    continue
                fi
                break
            done
            if [ -z "$srv_port" ]; then
                rows+=("$s|$conns|$size|failed|||||||||(did not start: see $logs)")
                continue
            fi
            if [ -z "$json" ]; then
                rows+=("$s|$conns|$size|failed|||||||||(echo_load: see $logs/$tag.load)")
                continue
            fi
            rps=$(jget rps "$json")
            cpu=$(jget server_cpu_us_per_req "$json")
            usr=$(jget server_user_us_per_req "$json")
            util=$(jget server_cpu "$json")
            p99=$(jget p99_us "$json")
            gen=$(jget gen_thread_busy_max "$json")
            errs=$(jget errors "$json")
            sat=$(jget gen_saturated "$json")
            ipis=$(awk -F, '/ipi_send_cpu/ && $1 ~ /^[0-9]+$/ { print $1 }' "$logs/$tag.ipi" 2>/dev/null)
            ipk=$(awk -v n="$ipis" -v r="$rps" -v s="$seconds" 'BEGIN { if (n != "" && r > 0) printf "%.2f", n / (r * s) * 1000; else printf "-" }')
            if [ "$s" = uring ]; then base_rps=$rps; base_cpu=$cpu; fi
            note=""
            [ "$sat" = true ] && note="generator saturated: req/s is a floor"
            [ "$load_rc" -ne 0 ] && note="${note:+$note; }echo_load exit $load_rc"
            [ "$srv_rc" -ne 0 ] && note="${note:+$note; }server exit $srv_rc"
            [ "$disturbed" = 1 ] && note="${note:+$note; }disturbed: others used $(awk -v o="$others" 'BEGIN { printf "%.0f", o * 100 }')% of a core"
            r_rps=$(awk -v a="$rps" -v b="$base_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }')
            r_cpu=$(awk -v a="$cpu" -v b="$base_cpu" 'BEGIN { if (b > 0 && a >= 0) printf "%.2f", a / b; else printf "-" }')
            rows+=("$s|$conns|$size|$rps|$r_rps|$cpu|$r_cpu|$usr|$util|$p99|$gen|$errs|$ipk|$note")
            meds+=("$s|$conns|$size|$rps|$r_rps|$cpu|$r_cpu|$usr|$ipk")
            printf '  %-12s %5s conns x %5s B: %10.0f req/s, %6.2f us CPU/req (round %d)\n' "$s" "$conns" "$size" "$rps" "$cpu" "$round"
            echo "{\"bench\":\"echo_bench\",\"server\":\"$s\",\"round\":$round,\"conns\":$conns,\"size\":$size,\"rps\":$rps,\"rps_vs_uring\":\"$r_rps\",\"server_cpu_us_per_req\":$cpu,\"cpu_vs_uring\":\"$r_cpu\",\"server_user_us_per_req\":$usr,\"server_cpu\":$util,\"p99_us\":$p99,\"gen_busy\":$gen,\"gen_saturated\":$sat,\"other_cpu\":$others,\"errors\":$errs,\"ipis_per_1k_req\":\"$ipk\"}" >>"$logs/results.jsonl"
        done
      done
    done
done

echo
printf '%-24s %6s %6s %10s %7s %9s %7s %7s %6s %9s %6s %6s %7s  %s\n' \
    server conns size 'req/s' 'xuring' 'CPUus/req' 'xuring' 'user us' 'srvCPU' 'p99 us' 'genCPU' errors 'IPI/1k' note
for r in "${rows[@]}"; do
    IFS='|' read -r s conns size rps r_rps cpu r_cpu usr util p99 gen errs ipk note <<<"$r"
    if [ "$rps" = skipped ] || [ "$rps" = failed ]; then
        printf '%-24s %6s %6s %10s %s\n' "${name[$s]}" "$conns" "$size" "$rps" "$note"
        continue
    fi
    printf '%-24s %6s %6s %10.0f %7s %9.3f %7s %7.3f %5.0f%% %9.1f %5.0f%% %6s %7s  %s\n' \
        "${name[$s]}" "$conns" "$size" "$rps" "$r_rps" "$cpu" "$r_cpu" "$usr" \
        "$(awk -v u="$util" 'BEGIN { print u * 100 }')" "$p99" \
        "$(awk -v u="$gen" 'BEGIN { print u * 100 }')" "$errs" "$ipk" "$note"
done
for n in "${notes[@]}"; do echo "note: $n"; done
if [ "$rounds" -gt 1 ]; then
    echo
    echo "Medians over $rounds rounds (ratios: median of each round's ratio to its uring run):"
    printf '%-24s %6s %6s %10s %7s %9s %7s %7s %7s  %s\n' \
        server conns size 'req/s' 'xuring' 'CPUus/req' 'xuring' 'user us' 'IPI/1k' 'CPU xuring, all rounds'
    # One line per server and combination, in the order first seen.
    printf '%s\n' "${meds[@]}" | awk -F'|' -v names="$(for k in "${!name[@]}"; do printf '%s=%s;' "$k" "${name[$k]}"; done)" '
        function med(list,   a, n, i, j, t) {
            n = split(list, a, " ")
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        BEGIN { n = split(names, kv, ";"); for (i = 1; i <= n; i++) { split(kv[i], p, "="); nm[p[1]] = p[2] } }
        {
            k = $1 "|" $2 "|" $3
            if (!(k in seen)) { seen[k] = 1; order[++cnt] = k }
            rps[k] = rps[k] " " $4; rr[k] = rr[k] " " $5; cpu[k] = cpu[k] " " $6
            rc[k] = rc[k] " " $7; usr[k] = usr[k] " " $8; ipk[k] = ipk[k] " " $9
        }
        END {
            for (i = 1; i <= cnt; i++) {
                k = order[i]; split(k, f, "|")
                m = split(rc[k], all, " "); s = ""
                for (j = 1; j <= m; j++) s = s (j > 1 ? " " : "") all[j]
                ip = ipk[k] ~ /-/ ? "-" : sprintf("%.2f", med(ipk[k]))
                printf "%-24s %6s %6s %10.0f %7.2f %9.3f %7.2f %7.3f %7s  %s\n", nm[f[1]], f[2], f[3],
                       med(rps[k]), med(rr[k]), med(cpu[k]), med(rc[k]), med(usr[k]), ip, s
            }
        }'
fi
echo "xuring: ratio to the raw liburing server in the same run (req/s: higher is better; CPU/req: lower)."
echo "user us: the part of CPUus/req spent in user space (the rest is the kernel's)."
echo "srvCPU: server CPU use in the window (100% = its core saturated); genCPU: echo_load's busy"
echo "share of its core (spinning on an empty epoll excluded); >= 90% marks it saturated."
echo "IPI/1k: IPIs the server sent per 1,000 requests (each a VM exit on a virtual machine); - where"
echo "perf cannot count them."
echo "JSON lines: $logs/results.jsonl"
cat "$logs/results.jsonl"
