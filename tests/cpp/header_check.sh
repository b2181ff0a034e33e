#!/usr/bin/env bash
# Compiles header_check.cpp against include/scalloc/scalloc.hpp with each C++
# compiler given, in C++17 and C++20, with and without exceptions and RTTI,
# warnings as errors. ctest runs it (tests/cpp/CMakeLists.txt) with g++ and
# clang++ where installed, so the header is checked under both whichever
# compiler the build itself uses.
#
# usage: header_check.sh INCLUDE_DIR COMPILER...
set -uo pipefail
include=${1:?usage: header_check.sh INCLUDE_DIR COMPILER...}
shift
src=$(cd "$(dirname "$0")" && pwd)/header_check.cpp
fail=0
checked=0
for cxx in "$@"; do
    for flags in "-std=c++17" "-std=c++17 -fno-exceptions -fno-rtti" "-std=c++20"; do
        # shellcheck disable=SC2086 # the flags are meant to be split
        if "$cxx" $flags -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$include" "$src"; then
            echo "header_check: $cxx $flags: clean"
        else
            echo "header_check: $cxx $flags: FAILED"
            fail=1
        fi
        checked=$((checked + 1))
    done
done
if [[ $checked -eq 0 ]]; then
    echo "header_check: no compiler given"
    exit 1
fi
exit $fail
