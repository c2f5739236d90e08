#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/test_redis.sh REDIS - examples/redis (REDIS: the built program) against a real
# redis-server: every reply type printed exactly as `redis-cli --no-raw` prints it, commands
# with side effects, errors, binary values, a server that is not there, and the --bench mode
# with every GET checked. Installs redis-server and redis-tools from Debian's packages when they
# are missing (as root; their service is kept from starting, this script starts its own server
# on a free port, persistence off). Exits 77 (ctest: skipped) only when they cannot be
# installed, saying so.
set -uo pipefail
redis=${1:?usage: $0 build/examples/redis}

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        # Keep the package's service from starting (a policy-rc.d of the machine's own stays).
        own=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
            own=1
        fi
        # (a fresh machine may have no package lists yet: update once if the first try fails)
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server redis-tools >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server redis-tools >/dev/null 2>&1; }
        [ -z "$own" ] || rm -f /usr/sbin/policy-rc.d
    fi
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        echo "SKIP: redis-server and redis-cli are not installed and could not be (apt-get, as root)"
        exit 77
    fi
fi

dir=$(mktemp -d)
srv=""
cleanup() {
    [ -z "$srv" ] || kill "$srv" 2>/dev/null
    [ -z "$srv" ] || wait "$srv" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

# A free port: the server says whether it could bind; try others until one works.
port=""
for try in $(seq 20); do
    p=$((20000 + (RANDOM % 20000)))
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        --dir "$dir" >"$dir/server.log" 2>&1 &
    srv=$!
    for _ in $(seq 100); do
        # ours answering, not some other Redis that already had the port
        if kill -0 "$srv" 2>/dev/null &&
            redis-cli -p "$p" INFO server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$srv"; then
            port=$p
            break 2
        fi
        kill -0 "$srv" 2>/dev/null || break
        sleep 0.05
    done
    kill "$srv" 2>/dev/null
    wait "$srv" 2>/dev/null
    srv=""
done
if [ -z "$port" ]; then
    echo "FAIL: redis-server did not start:"
    cat "$dir/server.log"
    exit 1
fi
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on port $port"

fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# same ARG...: this program and redis-cli print the same for a command without side effects.
same() {
    local ours theirs
    ours=$("$redis" -p "$port" "$@" 2>&1)
    theirs=$(redis-cli --no-raw -p "$port" "$@" 2>&1)
    if [ "$ours" = "$theirs" ]; then
        echo "ok: $*"
    else
        fail "$*"
        diff <(echo "$ours") <(echo "$theirs") | head -20
    fi
}

# gives WANT ARG...: this program prints WANT for the command.
gives() {
    local want=$1 ours
    shift
    ours=$("$redis" -p "$port" "$@" 2>&1)
    if [ "$ours" = "$want" ]; then echo "ok: $* -> $want"; else fail "$*: '$ours', not '$want'"; fi
}

gives OK SET greeting hello
gives '(integer) 1' INCR counter
gives '(integer) 12' RPUSH list 1 2 3 4 5 6 7 8 9 10 11 12
gives '(integer) 2' HSET hash f1 v1 f2 v2
gives OK SET binary $'sp ace\n"q"\\\x01\xff'
same GET greeting
same GET binary
same GET missing
same INCRBY counter 0
same LRANGE list 0 -1
same LRANGE nothing 0 -1
same HGETALL hash
same EVAL "return {1,{2,{3,'x'}},'a',{},false}" 0
same GET
same LPUSH greeting x
same PING
same ECHO ''
same COMMAND INFO GET
# a value larger than one receive (set through redis-cli's stdin: too long for an argument)
head -c 300000 /dev/zero | tr '\0' 'z' | redis-cli -p "$port" -x SET big >/dev/null
same STRLEN big
ours=$("$redis" -p "$port" GET big | md5sum)
theirs=$(redis-cli --no-raw -p "$port" GET big | md5sum)
[ "$ours" = "$theirs" ] && echo "ok: GET big (300,000 bytes)" || fail "GET big: outputs differ"

# Nothing listens on the port: a clear line and exit 1.
out=$("$redis" -p 1 PING 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "Could not connect to Redis at 127.0.0.1:1" <<<"$out" && echo "ok: refused" ||
    fail "no server: rc $rc, '$out'"

# The bench: every GET checked against what its client wrote; one JSON line.
out=$("$redis" --bench -p "$port" -c 20 -n 20000 -P 8 -d 100 2>&1)
rc=$?
if [ $rc = 0 ] && grep -q '^{"bench":"redis"' <<<"$out"; then
    echo "ok: bench"
    echo "$out"
else
    fail "bench: rc $rc"
    echo "$out"
fi
out=$("$redis" --bench -p "$port" -c 3 -n 1000 -t get -d 5000 2>&1)
[ $? = 0 ] && echo "ok: bench, get alone, 5000-byte values" || { fail "bench -t get"; echo "$out"; }

"$redis" --help | grep -q '^usage:' || fail "--help"
"$redis" -p "$port" >/dev/null 2>&1
[ $? = 2 ] || fail "no command: not exit 2"

[ "$fails" = 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
