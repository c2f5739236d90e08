# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2154,SC2034  # $root, $build in; $pin_srv, $pin_cli out
# perf/lib.sh - what the benchmark scripts share. Sourced by the scripts beside it, which set
# $root and $build first.

# require_bins FILE...: the programs a script runs; it builds nothing, so say how when one is missing.
require_bins() {
    local f
    for f in "$@"; do
        if [ ! -x "$f" ]; then
            echo "$0: $f is missing: this script builds nothing; first run" >&2
            echo "    cmake -S $root -B $build && cmake --build $build" >&2
            exit 1
        fi
    done
}

# Pinning: the server on CPU 0 ($pin_srv), its clients on CPU 1 ($pin_cli); both unpinned where
# that is impossible.
pin_srv="taskset -c 0"
pin_cli="taskset -c 1"
if ! command -v taskset >/dev/null || ! taskset -c 1 true 2>/dev/null; then
    echo "note: cannot pin to CPUs 0 and 1 (taskset missing or fewer than 2 CPUs): running unpinned"
    pin_srv=""
    pin_cli=""
fi

# wait_listening OUT PID: prints the port of the "listening on HOST:PORT" line a server started
# with --port 0 writes first to OUT; waits up to 5 s, while PID lives. Fails, printing nothing,
# when the line never comes.
wait_listening() {
    local out=$1 pid=$2 line _
    for _ in $(seq 100); do
        line=$(head -n 1 "$out" 2>/dev/null)
        case "$line" in "listening on "*) echo "${line##*:}"; return 0 ;; esac
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

jget() { # jget FIELD JSON
    sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$2" | tr -d '"'
}

# install_packages CMD... -- PKG...: unless every CMD is there (on PATH or in /usr/sbin), installs
# the Debian packages PKG... (as root; otherwise says so and exits), running apt-get update only
# when the first try fails. A /usr/sbin/policy-rc.d that exits 101 keeps their services from
# starting meanwhile; one the machine has already is kept as it is.
install_packages() {
    local cmds=() missing="" c own=""
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        cmds+=("$1")
        shift
    done
    shift
    for c in "${cmds[@]}"; do
        command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || missing="$missing $c"
    done
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" != 0 ]; then
        echo "$0:$missing missing: run as root to install $*" >&2
        exit 1
    fi
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        own=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
    [ -z "$own" ] || rm -f /usr/sbin/policy-rc.d
}

# serve_on_free_port PIDVAR PORTVAR START READY: for a server that cannot be given port 0.
# `START PORT` starts it in the background on a random port from 20000 to 39999 and `READY PORT
# PID` says whether it answers there (it, not another server that already had the port); up to
# 5 s a port, 20 ports. Sets the variables named PIDVAR and PORTVAR (kept up to date while it
# tries, for the caller's cleanup); fails, with both empty, when no port worked.
serve_on_free_port() {
    local -n pid_var=$1 port_var=$2
    local start=$3 ready=$4 p _
    port_var=""
    for _ in $(seq 20); do
        p=$((20000 + RANDOM % 20000))
        "$start" "$p"
        pid_var=$!
        for _ in $(seq 100); do
            kill -0 "$pid_var" 2>/dev/null || break
            if "$ready" "$p" "$pid_var"; then
                port_var=$p
                return 0
            fi
            sleep 0.05
        done
        kill "$pid_var" 2>/dev/null || true
        wait "$pid_var" 2>/dev/null || true
        pid_var=""
    done
    return 1
}

# median "N N N...": the middle one of the numbers (the lower middle of an even count).
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
