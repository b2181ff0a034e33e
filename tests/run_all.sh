#!/usr/bin/env bash
# The whole test sequence, as CI runs it:
#   release    Release build with -Werror, every test           (gcc)
#   layering   lib/ modules use only lower layers, no cycle    (tests/check_layering.sh)
#   asan       the same tests under AddressSanitizer + UBSan, with the
#              internal invariants checked (SCALLOC_DEBUG)   (gcc)
#   tsan       the multi-thread tests (label mt) under TSan, invariants
#              checked too                                    (clang)
#   packaging  install to a temporary prefix; cpack .debs and .tar.gz, their
#              contents and dependencies; C and C++ consumers of each;
#              a build with no C++ compiler          (tests/packaging/run.sh)
#   bench      quick benchmark smoke run, if tests/bench/quick.sh exists
#   fuzz       libFuzzer target: replay the seeds, fuzz 120 s     (tests/fuzz/run.sh, clang)
#   memcheck   examples and mt tests under valgrind memcheck, and the
#              valgrind annotations catch misuse         (tests/memcheck/run.sh)
#   ulimit     part of the suite with `ulimit -v 4000000`  (tests/memcheck/run.sh)
#
# usage: bash tests/run_all.sh [STEP...]     (default: all steps, in order)
# Builds go to build-ci/<step>/ (override with SCALLOC_CI_BUILD_ROOT);
# SCALLOC_CI_JOBS sets build and ctest parallelism (default 2).
# Every step runs even if an earlier one failed; the exit status is non-zero
# if any failed. The last line counts the steps.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
build_root=${SCALLOC_CI_BUILD_ROOT:-$root/build-ci}
jobs=${SCALLOC_CI_JOBS:-2}
all_steps=(release layering asan tsan packaging bench fuzz memcheck ulimit)

# A test that hangs must fail the run, not stall it.
ctest_args=(--output-on-failure -j "$jobs" --timeout 300)
# With a test suite present, finding no tests means the build lost them.
if [[ -f "$root/tests/CMakeLists.txt" ]]; then
    ctest_args+=(--no-tests=error)
fi

configure() { # configure BUILD_DIR CMAKE_ARGS...
    local dir=$1
    shift
    cmake -S "$root" -B "$dir" -DSCALLOC_WERROR=ON "$@"
}

build() { # build BUILD_DIR
    cmake --build "$1" -j "$jobs"
}

step_release() {
    local dir="$build_root/release"
    configure "$dir" -DCMAKE_BUILD_TYPE=Release
    build "$dir"
    (cd "$dir" && ctest "${ctest_args[@]}")
}

# On the release build's objects, so it checks what was built and tested.
step_layering() {
    local dir="$build_root/release"
    if [[ ! -f "$dir/CMakeCache.txt" ]]; then
        configure "$dir" -DCMAKE_BUILD_TYPE=Release
    fi
    build "$dir"
    bash "$root/tests/check_layering.sh" "$dir"
}

step_asan() {
    local dir="$build_root/asan"
    # Benchmarks link peer allocators that replace malloc, which fights the
    # ASan runtime; they are not tests anyway.
    configure "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSCALLOC_SANITIZE=address,undefined -DSCALLOC_BUILD_BENCH=OFF
    build "$dir"
    (
        cd "$dir"
        export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0
        export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
        ctest "${ctest_args[@]}"
    )
}

# Prints the command prefix TSan binaries need here. clang 14's TSan runtime
# cannot map its shadow memory when the kernel randomises mmap addresses with
# more bits than it expects (vm.mmap_rnd_bits=32 on recent kernels); running
# with ASLR off avoids that. Probe instead of guessing: setarch may itself be
# forbidden in containers.
tsan_launcher() {
    local probe_dir
    probe_dir=$(mktemp -d)
    printf '#include <pthread.h>\nstatic void *run(void *a) { return a; }\nint main(void) { pthread_t t; pthread_create(&t, 0, run, 0); return pthread_join(t, 0); }\n' \
        >"$probe_dir/probe.c"
    clang -fsanitize=thread -o "$probe_dir/probe" "$probe_dir/probe.c" -pthread || {
        rm -rf "$probe_dir"
        return 1
    }
    if "$probe_dir/probe" >/dev/null 2>&1; then
        echo ""
    elif setarch "$(uname -m)" -R "$probe_dir/probe" >/dev/null 2>&1; then
        echo "setarch $(uname -m) -R"
    else
        echo "tsan_launcher: TSan cannot run on this machine, even with ASLR off" >&2
        rm -rf "$probe_dir"
        return 1
    fi
    rm -rf "$probe_dir"
}

step_tsan() {
    local dir="$build_root/tsan" launcher
    launcher=$(tsan_launcher)
    [[ -n "$launcher" ]] && echo "running TSan tests under: $launcher"
    configure "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSCALLOC_SANITIZE=thread -DSCALLOC_BUILD_EXAMPLES=OFF -DSCALLOC_BUILD_BENCH=OFF
    build "$dir"
    (
        cd "$dir"
        export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
        local count
        count=$(ctest -N -L mt | sed -n 's/^Total Tests: //p')
        if [[ "${count:-0}" == 0 ]]; then
            echo "WARNING: no tests labelled mt; nothing ran under TSan"
        fi
        # shellcheck disable=SC2086 # the launcher is a command and its arguments
        $launcher ctest "${ctest_args[@]/--no-tests=error/--no-tests=ignore}" -L mt
    )
}

step_packaging() {
    local dir="$build_root/release"
    if [[ ! -f "$dir/CMakeCache.txt" ]]; then
        configure "$dir" -DCMAKE_BUILD_TYPE=Release
    fi
    SCALLOC_CI_JOBS=$jobs bash "$root/tests/packaging/run.sh" "$dir"
}

step_bench() {
    local dir="$build_root/release"
    if [[ ! -f "$root/tests/bench/quick.sh" ]]; then
        echo "tests/bench/quick.sh not present: skipped"
        return 77
    fi
    if [[ ! -f "$dir/CMakeCache.txt" ]]; then
        configure "$dir" -DCMAKE_BUILD_TYPE=Release
    fi
    build "$dir"
    bash "$root/tests/bench/quick.sh" "$dir"
}

# Skipped (exit 77) when clang or its libFuzzer runtime is missing.
step_fuzz() {
    bash "$root/tests/fuzz/run.sh" "$build_root/fuzz" "${SCALLOC_FUZZ_SECONDS:-120}"
}

# Skipped (exit 77) when valgrind is missing.
step_memcheck() {
    local dir="$build_root/memcheck"
    configure "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCALLOC_VALGRIND=ON \
        -DSCALLOC_BUILD_BENCH=OFF
    build "$dir"
    bash "$root/tests/memcheck/run.sh" memcheck "$dir"
}

step_ulimit() {
    local dir="$build_root/release"
    if [[ ! -f "$dir/CMakeCache.txt" ]]; then
        configure "$dir" -DCMAKE_BUILD_TYPE=Release
    fi
    build "$dir"
    bash "$root/tests/memcheck/run.sh" ulimit "$dir"
}

steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=("${all_steps[@]}")
for s in "${steps[@]}"; do
    if ! declare -F "step_$s" >/dev/null; then
        echo "run_all: unknown step '$s' (steps: ${all_steps[*]})" >&2
        exit 2
    fi
done

passed=0
failed=0
skipped=0
summary=()
total_start=$SECONDS
for s in "${steps[@]}"; do
    printf '\n==================== run_all: %s ====================\n' "$s"
    start=$SECONDS
    # A subshell with errexit: the first failing command ends the step.
    (set -e; "step_$s")
    rc=$?
    took=$((SECONDS - start))
    if [[ $rc -eq 0 ]]; then
        result=passed
        passed=$((passed + 1))
    elif [[ $rc -eq 77 && ($s == bench || $s == fuzz || $s == memcheck) ]]; then
        result=skipped
        skipped=$((skipped + 1))
    else
        result="FAILED (exit $rc)"
        failed=$((failed + 1))
    fi
    printf -- '-------------------- run_all: %s %s in %d s\n' "$s" "$result" "$took"
    summary+=("$(printf '%-10s %-18s %4d s' "$s" "$result" "$took")")
done

printf '\n'
printf 'run_all:   %s\n' "${summary[@]}"
printf 'run_all: total %d s\n' $((SECONDS - total_start))
printf 'run_all: %d passed, %d failed' "$passed" "$failed"
[[ $skipped -gt 0 ]] && printf ', %d skipped' "$skipped"
printf '\n'
[[ $failed -eq 0 ]]
