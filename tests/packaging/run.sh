#!/usr/bin/env bash
# Installs scalloc into a temporary prefix and builds a consumer program
# against that install only, once through pkg-config and once through
# find_package(scalloc CONFIG), then runs each. Proves that what
# `cmake --install` lays down is usable on its own.
#
# usage: tests/packaging/run.sh [BUILD_DIR]
#   BUILD_DIR  an already configured scalloc build (its libraries are built
#              if needed); without it a fresh Release build is made in a
#              temporary directory.
# Exits non-zero on the first failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC:-cc}

work=$(mktemp -d "${TMPDIR:-/tmp}/scalloc-packaging.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '[packaging] %s\n' "$*"; }
fail() { printf '[packaging] FAIL: %s\n' "$*" >&2; exit 1; }

build=${1:-}
if [[ -z "$build" ]]; then
    build="$work/build"
    step "configuring a fresh Release build in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DSCALLOC_BUILD_TESTS=OFF -DSCALLOC_BUILD_EXAMPLES=OFF \
        -DSCALLOC_BUILD_BENCH=OFF >/dev/null
fi
[[ -f "$build/CMakeCache.txt" ]] || fail "$build is not a configured CMake build directory"

# Only the installed targets are needed; tests and examples may be absent.
step "building the libraries in $build"
cmake --build "$build" --target scalloc scalloc_static -j "$(nproc)" >/dev/null

prefix="$work/prefix"
step "installing into $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

# --- what the install contains ---------------------------------------------
header="$prefix/include/scalloc/scalloc.h"
[[ -f "$header" ]] || fail "header not installed: $header"

pc_file=$(find "$prefix" -name scalloc.pc -print -quit)
[[ -n "$pc_file" ]] || fail "scalloc.pc not installed"
pc_dir=$(dirname "$pc_file")
libdir=$(dirname "$pc_dir")

for f in libscalloc.so libscalloc.so.0 libscalloc.a; do
    [[ -e "$libdir/$f" ]] || fail "$libdir/$f not installed"
done
config=$(find "$prefix" -name scallocConfig.cmake -print -quit)
[[ -n "$config" ]] || fail "scallocConfig.cmake not installed"
for f in scallocConfigVersion.cmake scallocTargets.cmake; do
    [[ -f "$(dirname "$config")/$f" ]] || fail "$f not installed next to scallocConfig.cmake"
done

soname=$(readelf -d "$libdir/libscalloc.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ "$soname" == "libscalloc.so.0" ]] || fail "SONAME is '$soname', expected libscalloc.so.0"

# The shared object's ABI is the public header: only sc_* symbols exported.
leaked=$(nm -D --defined-only "$libdir/libscalloc.so" | awk '{print $3}' |
    grep -v -E '^(sc_|_init$|_fini$)' || true)
[[ -z "$leaked" ]] || fail "internal symbols exported from libscalloc.so: $(tr "\n" " " <<<"$leaked")"
exported=$(nm -D --defined-only "$libdir/libscalloc.so")
step "install layout ok (SONAME $soname, $(grep -c ' sc_' <<<"$exported") sc_* symbols exported)"

# --- pkg-config consumer ----------------------------------------------------
export PKG_CONFIG_PATH="$pc_dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pc_prefix=$(pkg-config --variable=prefix scalloc)
[[ "$pc_prefix" == "$prefix" ]] || fail "scalloc.pc prefix is '$pc_prefix', expected '$prefix'"
pc_flags=$(pkg-config --cflags --libs scalloc)
step "pkg-config scalloc $(pkg-config --modversion scalloc): $pc_flags"

# shellcheck disable=SC2086 # the flags are meant to be split into words
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$work/consumer_pc" \
    "$here/consumer.c" $pc_flags -Wl,-rpath,"$libdir"
# ldd output is captured before grepping: with pipefail, `grep -q` quitting
# early would fail the pipeline through SIGPIPE.
loads_from() { # loads_from BINARY DIR: BINARY resolves libscalloc.so.0 in DIR
    local deps
    deps=$(ldd "$1")
    grep -q "libscalloc.so.0 => $2/" <<<"$deps"
}
loads_from "$work/consumer_pc" "$libdir" ||
    fail "pkg-config consumer does not load libscalloc.so.0 from $libdir"
"$work/consumer_pc" || fail "pkg-config consumer exited with $?"

# --- CMake package consumer -------------------------------------------------
step "find_package(scalloc CONFIG) consumer"
cmake -S "$here" -B "$work/consumer" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON >/dev/null
cmake --build "$work/consumer" -j "$(nproc)" >/dev/null
loads_from "$work/consumer/consumer_shared" "$libdir" ||
    fail "CMake consumer does not load libscalloc.so.0 from $libdir"
static_deps=$(ldd "$work/consumer/consumer_static")
if grep -q libscalloc <<<"$static_deps"; then
    fail "consumer_static links libscalloc dynamically"
fi
"$work/consumer/consumer_shared" || fail "consumer_shared exited with $?"
"$work/consumer/consumer_static" || fail "consumer_static exited with $?"

step "ok"
