#!/usr/bin/env bash
# Installs a built fai into a scratch prefix and builds examples/ against it, once through
# find_package(fai) and once through pkg-config, then runs both builds (exit 77 = no GPU).
# Usage: install_test.sh <build dir> <source dir>. CPU only; exits non-zero on any failure.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 <build dir> <source dir>" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fai-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" || fail "cmake --install failed"

# The layout GNUInstallDirs picked (lib or lib64): find it rather than assume it.
step "checking the installed tree"
[[ -f $prefix/include/fai.h ]] || fail "include/fai.h not installed"
pc=$(find "$prefix" -name fai.pc -path '*/pkgconfig/*' | head -n 1)
[[ -n $pc ]] || fail "fai.pc not installed"
libdir=$(dirname "$(dirname "$pc")")
for pattern in 'libfai.so' 'libfai.so.*' 'libfai.a' 'cmake/fai/fai-config.cmake' \
               'cmake/fai/fai-config-version.cmake' 'cmake/fai/fai-targets.cmake'; do
    compgen -G "$libdir/$pattern" >/dev/null || fail "$libdir/$pattern not installed"
done
# fai.pc must point into this prefix, not at CMAKE_INSTALL_PREFIX of the configure step.
if command -v pkg-config >/dev/null; then
    pc_inc=$(PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --variable=includedir fai)
    [[ -f $pc_inc/fai.h ]] ||
        fail "fai.pc's includedir ($pc_inc) has no fai.h: fai.pc is not relocated to $prefix"
fi

# Accepts exit 0 (ran) or 77 (no GPU here).
run_example() {
    local rc=0
    "$1" || rc=$?
    case $rc in
        0) echo "$1: ran" ;;
        77) echo "$1: skipped itself (no GPU), which is fine here" ;;
        *) fail "$1 exited with $rc" ;;
    esac
}

step "building examples/ with find_package(fai)"
cmake -S "$src/examples" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release || fail "configuring examples/ against $prefix failed"
cmake --build "$tmp/cmake-build" || fail "building examples/ with CMake failed"
run_example "$tmp/cmake-build/decode_example"

step "building examples/ with find_package(fai) and fai::fai_static"
cmake -S "$src/examples" -B "$tmp/cmake-static" -DCMAKE_PREFIX_PATH="$prefix" -DFAI_EXAMPLE_STATIC=ON \
    -DCMAKE_BUILD_TYPE=Release || fail "configuring examples/ (static) against $prefix failed"
cmake --build "$tmp/cmake-static" || fail "building examples/ against libfai.a failed"
run_example "$tmp/cmake-static/decode_example"

step "building examples/ with the Makefile and pkg-config"
command -v pkg-config >/dev/null || fail "pkg-config is not installed (needed to test fai.pc)"
command -v make >/dev/null || fail "make is not installed"
mkdir "$tmp/make-build"
cp "$src/examples/Makefile" "$src/examples/decode_example.c" "$tmp/make-build/"
PKG_CONFIG_PATH="$(dirname "$pc")" make -C "$tmp/make-build" ||
    fail "building examples/ with the Makefile failed"
run_example "$tmp/make-build/decode_example"

step "linking libfai.a by pkg-config --static"
# (libfai.a by path: -lfai would pick libfai.so beside it)
pc_static=$(PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --cflags --static --libs fai | sed 's/-lfai\b//')
cc -std=c11 "$src/examples/decode_example.c" -o "$tmp/static-pc" "$libdir/libfai.a" $pc_static ||
    fail "linking examples/decode_example.c with libfai.a and pkg-config --static failed"
run_example "$tmp/static-pc"

echo "install_test: PASS"
