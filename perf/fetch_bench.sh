#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# perf/fetch_bench.sh - examples/fetch against curl, the C client everyone has, fetching the same
# https:// URLs of the same local nginx (TLS, keep-alive), in the same run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
urls=100
size=16384
rounds=5
per_host=""

usage() {
    cat <<EOF
usage: $0 [--urls N] [--size BYTES] [--rounds R] [--per-host N] [--build DIR] [--help]

Installs nginx-light from Debian's packages if missing (its service kept from starting), makes a
self-signed certificate and starts nginx with its own configuration in a temporary directory:
https on a free port of 127.0.0.1, keep-alive, one worker, pinned to CPU 0. Then, pinned to CPU 1
and alternating over R rounds, it fetches the same N URLs (one file of BYTES bytes, N distinct
query strings) with

  build/examples/fetch --cacert CERT URL...
  curl --parallel --parallel-max N --cacert CERT URL...

checks that every response arrived whole, and prints each client's CPU time per request (user +
system, from the shell's child times), the connections it opened (from nginx's log), and the
medians with fetch's ratio to curl.

  --urls N       URLs per run (default $urls)
  --size BYTES   size of the file they name (default $size)
  --rounds R     rounds (default $rounds)
  --per-host N   passed to fetch (default: fetch's own, 6); N = --urls opens a connection per
                 URL, as curl does
  --build DIR    where examples/fetch is (default build/)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --urls) urls=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --per-host) per_host=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

# shellcheck source=perf/lib.sh
source "$root/perf/lib.sh"
require_bins "$build/examples/fetch"
for cmd in curl openssl; do
    command -v "$cmd" >/dev/null || { echo "$0: $cmd is missing (apt-get install $cmd)" >&2; exit 1; }
done

install_packages nginx -- nginx-light
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if ! "$nginx" -V 2>&1 | grep -q -- --with-http_ssl_module; then
    echo "$0: this nginx has no http_ssl_module; install nginx-light or nginx-core from Debian" >&2
    exit 1
fi

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
chmod 755 "$dir"   # nginx's worker runs as nobody and reads the files
mkdir -p "$dir/www" "$dir/tmp"
head -c "$size" /dev/urandom >"$dir/www/file"
chmod 644 "$dir/www/file"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null

# nginx on a free port: it stays in the foreground (daemon off), so $srv is its master.
start_nginx() {
    local p=$1
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
    # one line per request, the connection's serial number: how many each client opened
    log_format conn '\$connection';
    access_log $dir/access.log conn;
    client_body_temp_path $dir/tmp;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$p ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        root $dir/www;
    }
}
EOF
    # shellcheck disable=SC2086 # $pin_srv is words
    $pin_srv "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/server.log" 2>&1 &
}
# ours answering, with our certificate
nginx_ready() { curl -s --cacert "$dir/cert.pem" -o /dev/null "https://127.0.0.1:$1/file" 2>/dev/null; }
serve_on_free_port srv port start_nginx nginx_ready ||
    { echo "$0: nginx did not start" >&2; cat "$dir/error.log" "$dir/server.log" >&2; exit 1; }

list=()
curl_args=()
for i in $(seq "$urls"); do
    list+=("https://127.0.0.1:$port/file?n=$i")
    curl_args+=(-o /dev/null "https://127.0.0.1:$port/file?n=$i")
done
fetch_args=(--cacert "$dir/cert.pem")
[ -z "$per_host" ] || fetch_args+=(--per-host "$per_host")

# run_client NAME CMD...: one run on CPU 1; checks its output, prints "CPU_US_PER_REQUEST CONNS".
run_client() {
    local name=$1 t ok conns
    shift
    : >"$dir/access.log"   # nginx appends to the file it opened; truncating keeps it
    # The child's user and system time: the second line of `times` in a subshell that ran it.
    # shellcheck disable=SC2086
    t=$( ( $pin_cli "$@" >"$dir/$name.out" 2>&1; times ) | tail -n 1)
    if [ "$name" = fetch ]; then
        ok=$(grep -c " $size bytes  https://" "$dir/$name.out" || true)
    else
        ok=$(grep -c "^200 $size\$" "$dir/$name.out" || true)
    fi
    if [ "$ok" != "$urls" ]; then
        echo "$0: $name fetched $ok of $urls URLs whole:" >&2
        head -n 20 "$dir/$name.out" >&2
        exit 1
    fi
    conns=$(sort -u "$dir/access.log" | wc -l)
    awk -v t="$t" -v n="$urls" -v c="$conns" 'BEGIN {
        split(t, f, " "); s = 0
        for (i = 1; i <= 2; i++) { split(f[i], m, "m"); sub("s", "", m[2]); s += m[1] * 60 + m[2] }
        printf "%.1f %d\n", s * 1e6 / n, c }'
}

echo "nginx $("$nginx" -v 2>&1 | sed 's/.*nginx\///') https on port $port (CPU 0); clients on CPU 1; $(openssl version | cut -d' ' -f1-2)"
echo "$urls URLs of one $size-byte file, $rounds rounds; fetch --per-host ${per_host:-6}"
declare -A c n
for round in $(seq "$rounds"); do
    order=(fetch curl)
    [ $((round % 2)) = 0 ] && order=(curl fetch)
    for who in "${order[@]}"; do
        if [ "$who" = fetch ]; then
            r=$(run_client fetch "$build/examples/fetch" "${fetch_args[@]}" "${list[@]}")
        else
            r=$(run_client curl curl --parallel --parallel-max "$urls" --cacert "$dir/cert.pem" \
                -s -w '%{http_code} %{size_download}\n' "${curl_args[@]}")
        fi
        read -r rc rn <<<"$r"
        c[$who]="${c[$who]:-} $rc"
        n[$who]="${n[$who]:-} $rn"
        printf '  round %d  %-6s %8.1f us CPU per request  %3d connections\n' "$round" "$who" "$rc" "$rn"
    done
done
fc=$(median "${c[fetch]}"); cc=$(median "${c[curl]}")
fn=$(median "${n[fetch]}"); cn=$(median "${n[curl]}")
ratio=$(awk -v a="$fc" -v b="$cc" 'BEGIN { printf "%.2f", a / b }')
echo "medians: fetch $fc us CPU/request on $fn connections; curl $cc us CPU/request on $cn connections"
echo "ratio fetch/curl, CPU per request: $ratio (lower is better)"
printf '{"bench":"fetch_bench","urls":%s,"size":%s,"rounds":%s,"per_host":%s,"fetch_cpu_us":%s,"fetch_conns":%s,"curl_cpu_us":%s,"curl_conns":%s,"ratio_cpu":%s}\n' \
    "$urls" "$size" "$rounds" "${per_host:-6}" "$fc" "$fn" "$cc" "$cn" "$ratio"
