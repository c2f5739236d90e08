#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what building and testing urt needs on Debian 12 (as root), where it is missing.
# Sourced by tests/run.sh and examples/tour.sh. valgrind: the core suites also run under memcheck.
# libssl-dev: examples/fetch speaks https:// through OpenSSL; openssl (the command): its tests make
# a certificate and run `openssl s_server`.
need=()
for pkg in build-essential cmake pkg-config liburing-dev libcmocka-dev valgrind libssl-dev openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing packages: ${need[*]} (run as root to install them)" >&2
        exit 1
    fi
fi
