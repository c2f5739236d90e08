#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/test_http_clients.sh SERVER - examples/http_server against clients nobody here wrote: curl
# and Python's http.client (keep-alive, files, HEAD, bodies by length, chunked and behind
# Expect: 100-continue, HTTP/1.0, error statuses). ctest runs it as example_http_clients; exit 77
# (skipped, saying why) only when curl or python3 is missing and cannot be installed.
set -euo pipefail
server=${1:?usage: $0 build/examples/http_server}

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; } ||
            { echo "SKIP: cannot install ${missing[*]}"; exit 77; }
    else
        echo "SKIP: ${missing[*]} missing (run as root to install)"
        exit 77
    fi
fi

dir=$(mktemp -d)
pid=""
cleanup() {
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- server output:"
    cat "$dir/out"
    exit 1
}

mkdir "$dir/www"
printf 'Hello, World!\n' >"$dir/www/hello.txt"
head -c 1000000 /dev/urandom >"$dir/www/big.bin"
"$server" --port 0 --root "$dir/www" >"$dir/out" 2>&1 &
pid=$!
port=""
for _ in $(seq 200); do
    line=$(head -n 1 "$dir/out")
    case "$line" in "listening on "*) port=${line##*:}; break ;; esac
    kill -0 "$pid" 2>/dev/null || fail "the server exited"
    sleep 0.05
done
[ -n "$port" ] || fail "no 'listening on' line"
url=http://127.0.0.1:$port
curl() { command curl --max-time 60 "$@"; }   # a hung server fails the test, not hangs it

# ---- curl ----
[ "$(curl -sS "$url/")" = "Hello, World!" ] || fail "curl GET /"
curl -sS -o "$dir/got" "$url/static/big.bin" && cmp -s "$dir/got" "$dir/www/big.bin" ||
    fail "curl GET /static/big.bin: not the file"
curl -sS -v "$url/" "$url/static/hello.txt" "$url/" -o /dev/null -o /dev/null -o /dev/null \
    2>"$dir/verbose" || fail "curl three URLs"
grep -qi "re-using existing connection" "$dir/verbose" || fail "curl did not keep the connection"
curl -sS -I "$url/static/big.bin" | tr -d '\r' | grep -qx "Content-Length: 1000000" ||
    fail "curl HEAD"
# 1,000,000 bytes: curl sends Expect: 100-continue first
[ "$(curl -sS --data-binary @"$dir/www/big.bin" "$url/")" = "1000000" ] || fail "curl POST"
[ "$(curl -sS -H 'Transfer-Encoding: chunked' --data-binary @"$dir/www/big.bin" "$url/")" = "1000000" ] ||
    fail "curl chunked POST"
[ "$(curl -sS --http1.0 "$url/static/hello.txt")" = "Hello, World!" ] || fail "curl --http1.0"
code() { curl -s -o /dev/null -w '%{http_code}' --path-as-is "$@"; }
[ "$(code "$url/static/../../../etc/passwd")" = 403 ] || fail "curl: .. not 403"
[ "$(code "$url/static/nope")" = 404 ] || fail "curl: missing file not 404"
[ "$(code -X DELETE "$url/")" = 405 ] || fail "curl DELETE not 405"
head -c 2000000 /dev/zero >"$dir/huge"
[ "$(code --data-binary @"$dir/huge" "$url/")" = 413 ] || fail "curl: 2 MB body not 413"
echo "curl: ok"

# ---- Python's http.client ----
python3 - "$port" "$dir/www/big.bin" <<'EOF' || fail "python http.client"
import http.client, sys
port, big = int(sys.argv[1]), open(sys.argv[2], 'rb').read()
c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
c.connect()
first = c.sock

def get(method, path, status=200, **kw):
    c.request(method, path, **kw)
    r = c.getresponse()
    body = r.read()
    assert r.status == status, (method, path, r.status, body)
    return r, body

for i in range(200):
    r, body = get('GET', '/')
    assert body == b'Hello, World!\n'
r, body = get('GET', '/static/big.bin')
assert body == big and r.getheader('Content-Type') == 'application/octet-stream'
r, body = get('HEAD', '/static/big.bin')
assert r.getheader('Content-Length') == '1000000' and body == b''
r, body = get('POST', '/', body=iter([b'abc', b'defg', b'']), encode_chunked=True)
assert body == b'7\n', body
r, body = get('POST', '/', body=b'x' * 12345)
assert body == b'12345\n'
r, body = get('PUT', '/', status=405, body=b'')
assert 'GET' in r.getheader('Allow')
get('GET', '/nope', status=404)
r, body = get('GET', '/static/hello.txt?x=1')
assert body == b'Hello, World!\n'
assert c.sock is first, 'http.client had to reconnect: keep-alive broken'
c.close()
print('python http.client: ok (one connection, %d requests)' % 207)
EOF

kill -TERM "$pid"
wait "$pid" || fail "the server exited with $?"
pid=""
grep -qx "errors 0" "$dir/out" || fail "the server counted errors"
echo "example_http_clients: ok"
