#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# urt as a package: configures, builds and installs urt into a temporary prefix (with a multiarch
# libdir, lib/x86_64-linux-gnu), then builds and runs tests/consumer/main.c (one task that sleeps,
# then prints OK) against it four ways:
#   cmake        find_package(urt CONFIG REQUIRED), linking urt::urt and urt::urt_static
#   pkg-config   cc main.c $(pkg-config --cflags --libs urt), and with --static against liburt.a
#   subdirectory add_subdirectory(urt's source tree), linking urt::urt and urt::urt_static; no test,
#                example or benchmark target may be there, nor urt's warning flags on the consumer
# Installs what it needs on Debian 12 when run as root (tests/install-deps.sh). About 30 s here.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD

source tests/install-deps.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/urt-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
libdir=lib/x86_64-linux-gnu
jobs=$(nproc)

# run LOG CMD...: runs CMD with its output in $tmp/LOG, shown only when it fails.
run() {
    local log=$tmp/$1
    shift
    if ! "$@" >"$log" 2>&1; then
        echo "FAILED: $*" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}
# expect_ok NAME BINARY: the program runs and prints exactly OK.
expect_ok() {
    local out
    if ! out=$("$2" 2>&1) || [ "$out" != OK ]; then
        echo "FAILED: $1 ($2) printed: $out" >&2
        exit 1
    fi
    echo "   $1: OK"
}
# links_to BINARY PATTERN: ldd shows a library matching PATTERN (or, with !, none).
links_to() {
    local deps
    deps=$(ldd "$1")
    if [ "$2" = "!" ]; then
        if grep -E "$3" <<<"$deps" >/dev/null; then
            echo "FAILED: $1 should not load $3:" >&2; echo "$deps" >&2; exit 1
        fi
    elif ! grep -E "$2" <<<"$deps" >/dev/null; then
        echo "FAILED: $1 should load $2:" >&2; echo "$deps" >&2; exit 1
    fi
}

echo "== install urt into $prefix (libdir $libdir)"
run configure.log cmake -S "$src" -B "$tmp/urt-build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR="$libdir" -DURT_WERROR=ON \
    -DURT_BUILD_TESTS=OFF -DURT_BUILD_EXAMPLES=OFF -DURT_BUILD_PERF=OFF
run build.log cmake --build "$tmp/urt-build" -j"$jobs"
run install.log cmake --install "$tmp/urt-build"
for f in include/urt.h "$libdir"/liburt.a "$libdir"/liburt.so "$libdir"/pkgconfig/urt.pc \
         "$libdir"/cmake/urt/urtConfig.cmake "$libdir"/cmake/urt/urtConfigVersion.cmake \
         "$libdir"/cmake/urt/urtTargets.cmake; do
    [ -e "$prefix/$f" ] || { echo "FAILED: $prefix/$f not installed" >&2; exit 1; }
done

echo "== CMake: find_package(urt CONFIG REQUIRED)"
run cmake-configure.log cmake -S tests/consumer -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix"
run cmake-build.log cmake --build "$tmp/cmake" -j"$jobs"
links_to "$tmp/cmake/consumer_shared" "liburt\.so\.0 => $prefix/$libdir/liburt\.so\.0"
links_to "$tmp/cmake/consumer_static" ! "liburt\.so"
expect_ok "urt::urt (shared, by RPATH)" "$tmp/cmake/consumer_shared"
expect_ok "urt::urt_static" "$tmp/cmake/consumer_static"

echo "== pkg-config"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
[ "$(pkg-config --modversion urt)" = "$(sed -n 's/^project(urt VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)" ] || {
    echo "FAILED: pkg-config --modversion urt: $(pkg-config --modversion urt)" >&2; exit 1; }
cc=${CC:-cc}
# shellcheck disable=SC2046  # pkg-config's output is a list of words
run pc-shared.log "$cc" -Wall -Wextra -Werror tests/consumer/main.c -o "$tmp/pc_shared" \
    $(pkg-config --cflags --libs urt)
LD_LIBRARY_PATH=$prefix/$libdir links_to "$tmp/pc_shared" "liburt\.so\.0 => $prefix/$libdir/liburt\.so\.0"
LD_LIBRARY_PATH=$prefix/$libdir expect_ok "pkg-config --libs (shared, LD_LIBRARY_PATH)" "$tmp/pc_shared"
# liburt.a and liburing.a (-Bstatic: the archives, not the .so beside them), libc shared: the
# --static line (Requires.private, Libs.private) must be complete.
# shellcheck disable=SC2046
run pc-static.log "$cc" -Wall -Wextra -Werror tests/consumer/main.c -o "$tmp/pc_static" \
    $(pkg-config --cflags urt) -Wl,-Bstatic $(pkg-config --static --libs urt) -Wl,-Bdynamic
links_to "$tmp/pc_static" ! "liburt\.so|liburing\.so"
expect_ok "pkg-config --static --libs (liburt.a)" "$tmp/pc_static"

echo "== CMake: add_subdirectory(urt)"
run sub-configure.log cmake -S tests/consumer -B "$tmp/sub" -DURT_SOURCE_DIR="$src" -DURT_WERROR=ON
run sub-build.log cmake --build "$tmp/sub" -j"$jobs"
run sub-targets.log cmake --build "$tmp/sub" --target help
if grep -E '(test_|example_|perf_|chaos|valgrind)' "$tmp/sub-targets.log"; then
    echo "FAILED: urt added as a subdirectory builds its tests, examples or benchmarks" >&2; exit 1
fi
if grep -E -- '-Wextra|-Werror|-fstack-clash-protection' "$tmp"/sub/CMakeFiles/consumer_*.dir/flags.make; then
    echo "FAILED: urt's own compile options reach the consumer's targets" >&2; exit 1
fi
links_to "$tmp/sub/consumer_shared" "liburt\.so\.0 => $tmp/sub/urt/liburt\.so\.0"
expect_ok "urt::urt (shared, subdirectory)" "$tmp/sub/consumer_shared"
expect_ok "urt::urt_static (subdirectory)" "$tmp/sub/consumer_static"
echo "consumer: all passed"
