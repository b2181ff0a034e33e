#!/usr/bin/env bash
# Valgrind memcheck over scalloc (README, "Testing"), and the allocator under a
# limited address space (ulimit -v).
#
#   tests/memcheck/run.sh memcheck BUILD_DIR   # BUILD_DIR built with -DSCALLOC_VALGRIND=ON
#   tests/memcheck/run.sh ulimit BUILD_DIR     # any build with tests
#
# memcheck: the examples, the multi-thread tests and the C++ tests run
# clean under memcheck, and each mistake in misuse.c is reported.
# ulimit: the allocation, resize, error, span-reuse, stress, destroy, fork
# and address-map tests, the C++ tests and three examples pass with the
# address space capped at 4,000,000 KiB, where scalloc's 256 MiB default
# regions must fall back to smaller ones and the span header table covers
# only a window that every region is placed in (fork: while other threads
# place regions there). (Tests
# with hundreds of threads are left out: their 8 MiB stacks alone would
# use up such a cap, and so would the model test's 1 GiB alignments;
# test_resize's 1 GiB alignments accept ENOMEM under a cap.)
set -uo pipefail
mode=${1:?usage: run.sh memcheck|ulimit BUILD_DIR}
build=${2:?usage: run.sh memcheck|ulimit BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
fail=0

case $mode in
memcheck)
    command -v valgrind >/dev/null || { echo "memcheck: valgrind not installed, skipped"; exit 77; }
    vg=(valgrind -q --error-exitcode=99 --leak-check=no)
    misuse=$build/memcheck_misuse
    cc -O1 -g -I"$here/../../include" "$here/misuse.c" "$build/libscalloc.a" -pthread -o "$misuse" || exit 1
    run_clean() {
        local name=$1; shift
        if "${vg[@]}" "$@" >/dev/null 2>"$build/memcheck-$name.log"; then
            echo "memcheck: $name clean"
        else
            echo "memcheck: $name FAILED"; cat "$build/memcheck-$name.log"; fail=1
        fi
    }
    run_clean misuse-clean "$misuse" clean
    run_clean server_demo "$build/examples/server_demo"
    [[ -x $build/examples/sqlite_heap ]] && run_clean sqlite_heap "$build/examples/sqlite_heap"
    SCALLOC_TEST_SCALE=10 run_clean test_mt_stress "$build/tests/test_mt_stress" --no-fork
    SCALLOC_TEST_SCALE=10 run_clean test_mt_model "$build/tests/test_mt_model" --no-fork
    SCALLOC_TEST_SCALE=10 run_clean test_mt_idle_trim "$build/tests/test_mt_idle_trim" --no-fork
    # The C++ layer (tests/cpp, examples/request_arena.cpp), when a C++
    # compiler built them. In-process (--no-fork), so that memcheck sees
    # every case; the RLIMIT_AS case is left out: valgrind itself cannot
    # run under such a limit.
    for t in test_cpp_heap test_cpp_allocator test_cpp_resource test_cpp_bulk test_cpp_noexcept; do
        [[ -x $build/tests/cpp/$t ]] &&
            SCALLOC_TEST_SCALE=10 run_clean "$t" "$build/tests/cpp/$t" --no-fork --skip=no_address_space
    done
    [[ -x $build/examples/request_arena ]] && run_clean request_arena "$build/examples/request_arena"
    for m in use-after-free overflow destroyed; do
        "${vg[@]}" "$misuse" "$m" >/dev/null 2>"$build/memcheck-$m.log"
        rc=$?
        # 99: memcheck's error exit; a destroyed heap's memory is unmapped,
        # so that read is also a SIGSEGV after the report.
        if [[ $rc -ne 0 ]] && grep -q "Invalid \(read\|write\)" "$build/memcheck-$m.log"; then
            echo "memcheck: $m reported: $(grep -m1 'Invalid' "$build/memcheck-$m.log" | sed 's/^==[0-9]*== //')"
        else
            echo "memcheck: $m NOT reported (exit $rc)"; cat "$build/memcheck-$m.log"; fail=1
        fi
    done
    ;;
ulimit)
    (
        ulimit -v 4000000
        cd "$build" && ctest --output-on-failure --timeout 300 \
            -R '^(test_alloc|test_resize|test_errors|test_span_reuse|test_mt_stress|test_mt_destroy|test_fork|test_component_address_map|test_cpp_.*|example_server_demo|example_sqlite_heap|example_request_arena)$'
    ) || fail=1
    ;;
*)
    echo "unknown mode $mode"; exit 2 ;;
esac
exit $fail
