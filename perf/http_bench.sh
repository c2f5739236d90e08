#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# perf/http_bench.sh - examples/http_server against nginx (one worker), both loaded by wrk, in
# the same run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
rounds=5
duration=5
conns_list="100 1000"
threads=1

usage() {
    cat <<EOF
usage: $0 [--rounds R] [--duration S] [--conns "100 1000"] [--threads N] [--build DIR] [--help]

Installs nginx-light and wrk from Debian's packages if missing (nginx's service kept from
starting), starts nginx (N workers, access_log off, keep-alive without a request limit,
sendfile on) and build/examples/http_server (--threads N) on free ports, each pinned to CPU 0
(CPUs 0..N-1 with --threads N), and loads each with wrk -t1 pinned to the next CPU, alternating
servers, over R rounds: a 14-byte body at / (nginx: return 200) and the same 14 bytes as a file
under /static/, at each connection count. Prints requests/s and the server's CPU time per
request (user + system of all its threads, from /proc), the medians, and urt's ratios to nginx.
Any non-2xx response or socket error fails the run.

  --rounds R     rounds (default $rounds)
  --duration S   seconds of load per measurement (default $duration)
  --conns LIST   connection counts (default "$conns_list")
  --threads N    server threads / nginx workers (default $threads)
  --build DIR    where build/examples/http_server is (default build/)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --conns) conns_list=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

# shellcheck source=perf/lib.sh
source "$root/perf/lib.sh"
require_bins "$build/examples/http_server"

install_packages nginx wrk -- nginx-light wrk

ncpu=$(nproc)
srv_cpus="0"
[ "$threads" -gt 1 ] && srv_cpus="0-$((threads - 1))"
cli_cpu=$threads
if [ -z "$pin_srv" ] || [ "$cli_cpu" -ge "$ncpu" ]; then
    echo "note: $ncpu CPUs: servers and wrk unpinned"
    pin_srv=""
    pin_cli=""
else
    pin_srv="taskset -c $srv_cpus"
    pin_cli="taskset -c $cli_cpu"
fi

dir=$(mktemp -d)
chmod 755 "$dir"   # nginx's worker runs as www-data and reads www/
mkdir "$dir/www"
printf 'Hello, World!\n' >"$dir/www/hello.txt"
chmod 644 "$dir/www/hello.txt"
urt_pid=""
nginx_pid=""
cleanup() {
    for p in $urt_pid $nginx_pid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

# urt's server
# shellcheck disable=SC2086
$pin_srv "$build/examples/http_server" --port 0 --root "$dir/www" --threads "$threads" \
    --max-conns 100000 >"$dir/urt.out" 2>&1 &
urt_pid=$!
urt_port=$(wait_listening "$dir/urt.out" "$urt_pid") ||
    { echo "$0: http_server did not start" >&2; cat "$dir/urt.out" >&2; exit 1; }

# nginx, on a free port (bind fails on a taken one; try another)
start_nginx() {
    local p=$1
    cat >"$dir/nginx.conf" <<EOF
worker_processes $threads;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx.err warn;
worker_rlimit_nofile 200000;
events { worker_connections 100000; }
http {
    access_log off;
    keepalive_requests 4000000000;
    keepalive_timeout 65;
    sendfile on;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$p$([ "$threads" -gt 1 ] && echo " reuseport");
        location = / { default_type text/plain; return 200 "Hello, World!\n"; }
        location /static/ { alias $dir/www/; default_type text/plain; }
    }
}
EOF
    # shellcheck disable=SC2086
    $pin_srv nginx -c "$dir/nginx.conf" -e "$dir/nginx.err" >"$dir/nginx.out" 2>&1 &
}
nginx_ready() { [ "$(curl -s "http://127.0.0.1:$1/static/hello.txt" 2>/dev/null)" = "Hello, World!" ]; }
nginx_port=""
serve_on_free_port nginx_pid nginx_port start_nginx nginx_ready ||
    { echo "$0: nginx did not start" >&2; cat "$dir/nginx.err" "$dir/nginx.out" >&2; exit 1; }

for port in "$urt_port" "$nginx_port"; do
    for path in / /static/hello.txt; do
        body=$(curl -s "http://127.0.0.1:$port$path")
        [ "$body" = "Hello, World!" ] || { echo "$0: port $port $path answered '$body'" >&2; exit 1; }
    done
done

# cpu_ticks PID: user + system clock ticks of the process and every thread and child it has
# (nginx: the master and its workers; urt: its threads, io_uring's workers among them).
cpu_ticks() {
    local t=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$t"
}
hz=$(getconf CLK_TCK)

# measure PID PORT PATH CONNS: prints "REQ_PER_S CPU_US_PER_REQUEST".
measure() {
    local pid=$1 port=$2 path=$3 conns=$4 before after out reqs
    before=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086
    out=$($pin_cli wrk -t1 -c"$conns" -d"${duration}s" "http://127.0.0.1:$port$path" 2>&1)
    after=$(cpu_ticks "$pid")
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        echo "$0: errors under load on port $port $path -c $conns:" >&2
        echo "$out" >&2
        exit 1
    fi
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    awk -v r="$reqs" -v d="$duration" -v t=$((after - before)) -v hz="$hz" \
        'BEGIN { printf "%.0f %.3f\n", r / d, t / hz * 1e6 / r }'
}

echo "nginx $(nginx -v 2>&1 | sed 's|.*/||') (workers $threads, port $nginx_port) and urt http_server (threads $threads, port $urt_port) on CPU $srv_cpus; wrk -t1 on CPU $cli_cpu"
echo "$rounds rounds of ${duration}s per server, path and connection count"
# Per round, urt's ratios to nginx as well: the two ran back to back, so their ratio carries
# less of this shared machine's drift than the ratio of two medians.
declare -A rps cpu prr prc last_r last_c
for round in $(seq "$rounds"); do
    for conns in $conns_list; do
        for path in / /static/hello.txt; do
            order=(urt nginx)
            [ $((round % 2)) = 0 ] && order=(nginx urt)
            for who in "${order[@]}"; do
                if [ "$who" = urt ]; then
                    read -r r c < <(measure "$urt_pid" "$urt_port" "$path" "$conns")
                else
                    read -r r c < <(measure "$nginx_pid" "$nginx_port" "$path" "$conns")
                fi
                k="$who $conns $path"
                rps[$k]="${rps[$k]:-} $r"
                cpu[$k]="${cpu[$k]:-} $c"
                last_r[$who]=$r
                last_c[$who]=$c
                printf '  round %d  -c %-5s %-18s %-6s %8.0f req/s  %7.3f us CPU per request\n' \
                    "$round" "$conns" "$path" "$who" "$r" "$c"
            done
            k="$conns $path"
            prr[$k]="${prr[$k]:-} $(awk -v u="${last_r[urt]}" -v n="${last_r[nginx]}" 'BEGIN { printf "%.3f", u / n }')"
            prc[$k]="${prc[$k]:-} $(awk -v u="${last_c[urt]}" -v n="${last_c[nginx]}" 'BEGIN { printf "%.3f", u / n }')"
        done
    done
done

echo "medians:"
json=""
for conns in $conns_list; do
    for path in / /static/hello.txt; do
        ur=$(median "${rps[urt $conns $path]}"); uc=$(median "${cpu[urt $conns $path]}")
        nr=$(median "${rps[nginx $conns $path]}"); nc=$(median "${cpu[nginx $conns $path]}")
        read -r rr rc < <(awk -v ur="$ur" -v nr="$nr" -v uc="$uc" -v nc="$nc" \
            'BEGIN { printf "%.2f %.2f\n", ur / nr, uc / nc }')
        pr=$(median "${prr[$conns $path]}"); pc=$(median "${prc[$conns $path]}")
        printf '  -c %-5s %-18s urt %8s req/s %7s us/req   nginx %8s req/s %7s us/req   ratio req/s %s (>= 1 wanted), CPU %s (<= 0.8 wanted); median of the rounds'"'"' ratios: %s, %s\n' \
            "$conns" "$path" "$ur" "$uc" "$nr" "$nc" "$rr" "$rc" "$pr" "$pc"
        json="$json${json:+,}{\"conns\":$conns,\"path\":\"$path\",\"urt_rps\":$ur,\"urt_cpu_us\":$uc,\"nginx_rps\":$nr,\"nginx_cpu_us\":$nc,\"ratio_rps\":$rr,\"ratio_cpu\":$rc,\"round_ratio_rps\":$pr,\"round_ratio_cpu\":$pc}"
    done
done
printf '{"bench":"http_bench","threads":%s,"rounds":%s,"duration":%s,"results":[%s]}\n' \
    "$threads" "$rounds" "$duration" "$json"
