#!/usr/bin/env bash
# Proves that what scalloc installs and packages is usable on its own:
#
#  1. `cmake --install` into a temporary prefix: the layout, the SONAME, the
#     exported symbols; then C and C++ consumers built against that install
#     only, through pkg-config and through find_package(scalloc CONFIG).
#  2. `cpack`: the runtime .deb (libscalloc0), the -dev .deb and the .tar.gz.
#     Their contents (dpkg-deb --contents) must be exactly what each one is
#     for; their control fields (Depends, Section, the shlibs file, the
#     ldconfig call) must be right; apt-get --simulate must resolve the two
#     .debs together on this system and refuse the -dev one alone. Then both
#     .debs are unpacked with dpkg -x into a temporary root (the system is
#     left unchanged: no dpkg -i) and the .tar.gz into a temporary directory,
#     and the consumers are built and run against each, again through
#     pkg-config and find_package.
#  3. A configure with no C++ compiler still builds the C library and the C
#     examples (C++ is optional).
#
# usage: tests/packaging/run.sh [BUILD_DIR]
#   BUILD_DIR  an already configured scalloc build (its libraries are built
#              if needed); without it a fresh Release build is made in a
#              temporary directory.
# Exits non-zero on the first failure. Needs cmake, a C and a C++ compiler,
# pkg-config, dpkg-deb and dpkg-shlibdeps (dpkg-dev), file and readelf.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC:-cc}
cxx=${CXX:-c++}

work=$(mktemp -d "${TMPDIR:-/tmp}/scalloc-packaging.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '[packaging] %s\n' "$*"; }
fail() { printf '[packaging] FAIL: %s\n' "$*" >&2; exit 1; }

for tool in cmake cpack pkg-config dpkg-deb readelf nm ldd "$cc" "$cxx"; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done

build=${1:-}
if [[ -z "$build" ]]; then
    build="$work/build"
    step "configuring a fresh Release build in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DSCALLOC_BUILD_TESTS=OFF -DSCALLOC_BUILD_EXAMPLES=OFF \
        -DSCALLOC_BUILD_BENCH=OFF >/dev/null
fi
[[ -f "$build/CMakeCache.txt" ]] || fail "$build is not a configured CMake build directory"
build=$(cd "$build" && pwd)

cache_value() { # cache_value NAME: the value of NAME in the build's CMakeCache.txt
    sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -n 1
}
version=$(cache_value CMAKE_PROJECT_VERSION)
major=$(cache_value CMAKE_PROJECT_VERSION_MAJOR)
libdir_rel=$(cache_value CMAKE_INSTALL_LIBDIR)
[[ -n "$version" && -n "$major" && -n "$libdir_rel" ]] || fail "version or libdir missing from $build/CMakeCache.txt"
soname="libscalloc.so.$major"

# Only the installed targets are needed; tests and examples may be absent.
step "building the libraries in $build"
cmake --build "$build" --target scalloc scalloc_static -j "${SCALLOC_CI_JOBS:-2}" >/dev/null

# ldd output is captured before grepping: with pipefail, `grep -q` quitting
# early would fail the pipeline through SIGPIPE.
loads_from() { # loads_from BINARY DIR: BINARY resolves libscalloc.so.N in DIR
    local deps
    deps=$(ldd "$1")
    grep -q "$soname => $2/" <<<"$deps"
}

# check_consumers NAME PREFIX PC_DIR [PKG-CONFIG ARGS...]
# Builds and runs the C and C++ consumers against the scalloc installed in
# PREFIX, whose scalloc.pc lies in PC_DIR: with pkg-config (given ARGS),
# and with the CMake package (CMAKE_PREFIX_PATH=PREFIX). Each must load the
# shared library from PREFIX, and the static one must not load it at all.
check_consumers() {
    local name=$1 prefix=$2 pc_dir=$3
    shift 3
    local out="$work/consumers-$name"
    local libdir="$prefix/$libdir_rel"
    mkdir -p "$out"
    # PKG_CONFIG_LIBDIR too: only this install's scalloc.pc may be found.
    local pc=(env PKG_CONFIG_PATH="$pc_dir" PKG_CONFIG_LIBDIR="$pc_dir" pkg-config "$@")
    local includedir flags
    includedir=$("${pc[@]}" --variable=includedir scalloc)
    [[ "$(realpath -m "$includedir")" == "$(realpath -m "$prefix/include")" ]] ||
        fail "$name: scalloc.pc names include directory '$includedir', expected $prefix/include"
    [[ "$(realpath -m "$("${pc[@]}" --variable=libdir scalloc)")" == "$(realpath -m "$libdir")" ]] ||
        fail "$name: scalloc.pc names the wrong library directory"
    [[ "$("${pc[@]}" --modversion scalloc)" == "$version" ]] || fail "$name: scalloc.pc has the wrong version"
    flags=$("${pc[@]}" --cflags --libs scalloc)
    step "$name: pkg-config: $flags"

    # shellcheck disable=SC2086 # the flags are meant to be split into words
    "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$out/consumer_pc" \
        "$here/consumer.c" $flags -Wl,-rpath,"$libdir"
    # shellcheck disable=SC2086
    "$cxx" -std=c++17 -Wall -Wextra -Wpedantic -Werror -o "$out/consumer_cpp_pc" \
        "$here/consumer.cpp" $flags -Wl,-rpath,"$libdir"
    for bin in consumer_pc consumer_cpp_pc; do
        loads_from "$out/$bin" "$libdir" || fail "$name: $bin does not load $soname from $libdir"
        "$out/$bin" >/dev/null || fail "$name: $bin failed"
    done

    step "$name: find_package(scalloc CONFIG)"
    cmake -S "$here" -B "$out/cmake" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON >/dev/null
    local found
    found=$(sed -n 's/^scalloc_DIR:PATH=//p' "$out/cmake/CMakeCache.txt")
    [[ "$(realpath -m "$found")" == "$(realpath -m "$libdir/cmake/scalloc")" ]] ||
        fail "$name: find_package found scalloc in '$found', expected $libdir/cmake/scalloc"
    cmake --build "$out/cmake" -j "${SCALLOC_CI_JOBS:-2}" >/dev/null
    for bin in consumer_shared consumer_cpp; do
        loads_from "$out/cmake/$bin" "$libdir" || fail "$name: CMake $bin does not load $soname from $libdir"
    done
    local static_deps
    static_deps=$(ldd "$out/cmake/consumer_static")
    if grep -q libscalloc <<<"$static_deps"; then
        fail "$name: consumer_static links libscalloc dynamically"
    fi
    for bin in consumer_shared consumer_static consumer_cpp; do
        "$out/cmake/$bin" >/dev/null || fail "$name: CMake $bin failed"
    done
    step "$name: C and C++ consumers ok (pkg-config, find_package; shared and static)"
}

# --- 1. cmake --install ------------------------------------------------------
prefix="$work/prefix"
step "installing into $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

for f in scalloc.h scalloc.hpp; do
    [[ -f "$prefix/include/scalloc/$f" ]] || fail "header not installed: include/scalloc/$f"
done
libdir="$prefix/$libdir_rel"
for f in libscalloc.so "$soname" libscalloc.a pkgconfig/scalloc.pc \
    cmake/scalloc/scallocConfig.cmake cmake/scalloc/scallocConfigVersion.cmake \
    cmake/scalloc/scallocTargets.cmake; do
    [[ -e "$libdir/$f" ]] || fail "$libdir/$f not installed"
done

got_soname=$(readelf -d "$libdir/libscalloc.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ "$got_soname" == "$soname" ]] || fail "SONAME is '$got_soname', expected $soname"

# The shared object's ABI is the public header: only sc_* symbols exported.
leaked=$(nm -D --defined-only "$libdir/libscalloc.so" | awk '{print $3}' |
    grep -v -E '^(sc_|_init$|_fini$)' || true)
[[ -z "$leaked" ]] || fail "internal symbols exported from libscalloc.so: $(tr "\n" " " <<<"$leaked")"
exported=$(nm -D --defined-only "$libdir/libscalloc.so")
step "install layout ok (SONAME $got_soname, $(grep -c ' sc_' <<<"$exported") sc_* symbols exported)"

# A plain install writes its real prefix into scalloc.pc.
pc_prefix=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --variable=prefix scalloc)
[[ "$pc_prefix" == "$prefix" ]] || fail "scalloc.pc prefix is '$pc_prefix', expected '$prefix'"
check_consumers install "$prefix" "$libdir/pkgconfig"

# --- 2. packages -------------------------------------------------------------
packages="$work/packages"
step "cpack (DEB, TGZ) into $packages"
cpack --config "$build/CPackConfig.cmake" -G "DEB;TGZ" -B "$packages" >"$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log"; fail "cpack failed"; }

arch=$(dpkg --print-architecture)
runtime_deb="$packages/libscalloc${major}_${version}_${arch}.deb"
dev_deb="$packages/libscalloc-dev_${version}_${arch}.deb"
tarball="$packages/scalloc-${version}-Linux.tar.gz"
for f in "$runtime_deb" "$dev_deb" "$tarball"; do
    [[ -f "$f" ]] || fail "cpack did not make $(basename "$f") (made: $(ls "$packages"))"
done

# The files of a package, from dpkg-deb --contents, without directories:
# one path per line, "./" dropped, symlinks as "path -> target".
deb_files() {
    dpkg-deb --contents "$1" | awk '$1 !~ /^d/ { $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); sub(/^\.\//, ""); print }' | sort
}
usr_lib="usr/$libdir_rel"
expect_runtime=$(printf '%s\n' \
    "$usr_lib/$soname -> libscalloc.so.$version" \
    "$usr_lib/libscalloc.so.$version" | sort)
expect_dev=$(printf '%s\n' \
    "usr/include/scalloc/scalloc.h" \
    "usr/include/scalloc/scalloc.hpp" \
    "$usr_lib/cmake/scalloc/scallocConfig.cmake" \
    "$usr_lib/cmake/scalloc/scallocConfigVersion.cmake" \
    "$usr_lib/cmake/scalloc/scallocTargets-release.cmake" \
    "$usr_lib/cmake/scalloc/scallocTargets.cmake" \
    "$usr_lib/libscalloc.a" \
    "$usr_lib/libscalloc.so -> $soname" \
    "$usr_lib/pkgconfig/scalloc.pc" | sort)
got=$(deb_files "$runtime_deb")
[[ "$got" == "$expect_runtime" ]] ||
    fail "$(basename "$runtime_deb") holds:"$'\n'"$got"$'\n'"expected:"$'\n'"$expect_runtime"
got=$(deb_files "$dev_deb")
[[ "$got" == "$expect_dev" ]] ||
    fail "$(basename "$dev_deb") holds:"$'\n'"$got"$'\n'"expected:"$'\n'"$expect_dev"
step "package contents ok: $(basename "$runtime_deb") $(wc -l <<<"$expect_runtime") files, $(basename "$dev_deb") $(wc -l <<<"$expect_dev") files"

field() { dpkg-deb --field "$1" "$2"; }
[[ "$(field "$runtime_deb" Package)" == "libscalloc$major" ]] || fail "runtime package name"
[[ "$(field "$dev_deb" Package)" == "libscalloc-dev" ]] || fail "-dev package name"
[[ "$(field "$runtime_deb" Version)" == "$version" && "$(field "$dev_deb" Version)" == "$version" ]] ||
    fail "package versions differ from $version"
[[ "$(field "$runtime_deb" Section)" == "libs" && "$(field "$dev_deb" Section)" == "libdevel" ]] ||
    fail "package sections"
runtime_depends=$(field "$runtime_deb" Depends)
dev_depends=$(field "$dev_deb" Depends)
# dpkg-shlibdeps reads the runtime's dependencies from the ELF file.
libc_dep='^libc6 \(>= [0-9.]+\)$'
[[ "$runtime_depends" =~ $libc_dep ]] ||
    fail "runtime Depends is '$runtime_depends', expected libc6 (>= VERSION)"
[[ "$dev_depends" == "libscalloc$major (= $version), libc6-dev" ]] ||
    fail "-dev Depends is '$dev_depends', expected 'libscalloc$major (= $version), libc6-dev'"
# The shlibs file lets packages built against libscalloc depend on it.
shlibs=$(dpkg-deb --info "$runtime_deb" shlibs)
[[ "$shlibs" == "libscalloc $major libscalloc$major (>= $version)" ]] || fail "shlibs is '$shlibs'"
postinst=$(dpkg-deb --info "$runtime_deb" postinst)
grep -q ldconfig <<<"$postinst" || fail "the runtime package does not run ldconfig"
step "control fields ok: Depends '$runtime_depends' / '$dev_depends'; shlibs '$shlibs'"

# Dependencies resolved against this system, without changing it.
if command -v apt-get >/dev/null; then
    if ! apt-get install --simulate -q "$runtime_deb" "$dev_deb" >"$work/apt.log" 2>&1; then
        cat "$work/apt.log"
        fail "apt-get cannot install the two packages together"
    fi
    if apt-get install --simulate -q "$dev_deb" >"$work/apt-dev.log" 2>&1; then
        fail "apt-get would install libscalloc-dev without libscalloc$major"
    fi
    grep -q "Depends: libscalloc$major (= $version)" "$work/apt-dev.log" ||
        { cat "$work/apt-dev.log"; fail "apt-get refused libscalloc-dev alone for another reason"; }
    step "apt-get --simulate: the pair installs; libscalloc-dev alone is refused for libscalloc$major (= $version)"
else
    step "apt-get not found: dependency resolution not simulated"
fi

# Both .debs unpacked into a temporary root, as dpkg -i would lay them out.
debroot="$work/debroot"
dpkg-deb -x "$runtime_deb" "$debroot"
dpkg-deb -x "$dev_deb" "$debroot"
got_soname=$(readelf -d "$debroot/$usr_lib/$soname" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ "$got_soname" == "$soname" ]] || fail "packaged SONAME is '$got_soname', expected $soname"
[[ "$(sed -n 's/^prefix=//p' "$debroot/$usr_lib/pkgconfig/scalloc.pc")" == "/usr" ]] ||
    fail "the -dev package's scalloc.pc does not say prefix=/usr"
# scalloc.pc says /usr, as it must once installed; here /usr is debroot/usr.
check_consumers deb "$debroot/usr" "$debroot/$usr_lib/pkgconfig" --define-variable=prefix="$debroot/usr"

# The tarball: relocatable, used where it was unpacked.
tgzroot="$work/tgz"
mkdir -p "$tgzroot"
tar -xzf "$tarball" -C "$tgzroot"
top="$tgzroot/scalloc-${version}-Linux"
[[ -d "$top" ]] || fail "the tarball does not unpack into scalloc-${version}-Linux/"
got=$(cd "$top" && find . -type f -o -type l | sed 's|^\./||' | sort)
expect=$(sed -e 's|^usr/||' -e 's| -> .*||' <<<"$expect_runtime"$'\n'"$expect_dev" | sort)
[[ "$got" == "$expect" ]] || fail "the tarball holds:"$'\n'"$got"$'\n'"expected:"$'\n'"$expect"
check_consumers tgz "$top" "$top/$libdir_rel/pkgconfig"

# --- 3. no C++ compiler --------------------------------------------------------
step "configure with no C++ compiler (CXX names none)"
c_only="$work/c-only"
tests_flag=-DSCALLOC_BUILD_TESTS=OFF
# With the tests on, tests/CMakeLists.txt's guard around the C++ tests is
# exercised too; they need Criterion.
if pkg-config --exists criterion; then
    tests_flag=-DSCALLOC_BUILD_TESTS=ON
fi
CXX="$work/no-such-c++" cmake -S "$root" -B "$c_only" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" "$tests_flag" -DSCALLOC_BUILD_BENCH=OFF >"$work/c-only.log" 2>&1 ||
    { cat "$work/c-only.log"; fail "configure without a C++ compiler failed"; }
grep -q "no C++ compiler found" "$work/c-only.log" || fail "configure did not report the missing C++ compiler"
cmake --build "$c_only" --target server_demo -j "${SCALLOC_CI_JOBS:-2}" >/dev/null ||
    fail "the C build without a C++ compiler failed"
"$c_only/examples/server_demo" >/dev/null || fail "server_demo from the C-only build failed"
step "C-only build ok (library and server_demo; C++ tests and request_arena left out)"

step "ok"
