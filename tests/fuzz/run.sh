#!/usr/bin/env bash
# Builds the libFuzzer target, replays the committed seeds and crash
# reproducers, then fuzzes for a bounded time and prints how much ran.
#
# usage: tests/fuzz/run.sh [BUILD_DIR] [SECONDS]
#   BUILD_DIR  default build-ci/fuzz
#   SECONDS    fuzzing time; default $SCALLOC_FUZZ_SECONDS or 120
# Exit status: 0 clean, 77 when clang or its libFuzzer runtime is missing
# (Debian: clang, libclang-rt-14-dev), anything else a failure. Findings
# land in BUILD_DIR/artifacts/; the whole libFuzzer log in BUILD_DIR/fuzz.log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:-$root/build-ci/fuzz}
seconds=${2:-${SCALLOC_FUZZ_SECONDS:-120}}
jobs=${SCALLOC_CI_JOBS:-2}

# Probe the toolchain rather than guess from package names.
if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not found: skipped"
    exit 77
fi
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    >"$probe_dir/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined -o "$probe_dir/probe" "$probe_dir/probe.c" \
    >"$probe_dir/log" 2>&1; then
    echo "fuzz: clang cannot link -fsanitize=fuzzer,address,undefined (libclang-rt-dev missing?): skipped"
    sed 's/^/    /' "$probe_dir/log" | head -5
    exit 77
fi

cmake -S "$here" -B "$dir" -DCMAKE_C_COMPILER=clang -DSCALLOC_WERROR=ON
cmake --build "$dir" -j "$jobs"
fuzzer="$dir/fuzz_heap"

# libFuzzer's own exit codes for a finding (77 for a crash by default) must
# not read as "skipped" to the caller.
common=(-rss_limit_mb=4096 -timeout=20 -error_exitcode=1 -timeout_exitcode=1)

seeds=()
while IFS= read -r f; do
    seeds+=("$f")
done < <(find "$here/corpus" "$here/crashes" -type f ! -name '.*' 2>/dev/null | sort)
echo "fuzz: replaying ${#seeds[@]} committed inputs"
if [[ ${#seeds[@]} -gt 0 ]]; then
    rc=0
    "$fuzzer" "${common[@]}" "${seeds[@]}" >"$dir/replay.log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "fuzz: replay of the committed inputs FAILED (exit $rc):"
        tail -n 40 "$dir/replay.log"
        exit 1
    fi
    echo "fuzz: replay passed"
fi

# New inputs go to a scratch corpus, started afresh each run; the committed
# directories are read only.
work="$dir/corpus-work"
artifacts="$dir/artifacts"
rm -rf "$work"
mkdir -p "$work" "$artifacts"
echo "fuzz: fuzzing for ${seconds} s"
rc=0
"$fuzzer" "${common[@]}" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "$here/corpus" "$here/crashes" >"$dir/fuzz.log" 2>&1 || rc=$?
# Progress lines only (new units are many and say little in CI).
grep -E '^#[0-9]+[[:space:]]+(INITED|pulse|DONE)|^INFO: Seed|FAIL|ERROR|SUMMARY|^stat::' "$dir/fuzz.log" || true
if [[ $rc -ne 0 ]]; then
    echo "fuzz: FAILED (exit $rc); last lines of $dir/fuzz.log:"
    tail -n 40 "$dir/fuzz.log"
    echo "fuzz: reproducers in $artifacts:"
    ls -l "$artifacts"
    exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$dir/fuzz.log")
rate=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$dir/fuzz.log")
cov=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/fuzz.log" | sed -n 's/.*cov: \([0-9]*\).*/\1/p' | tail -1)
echo "fuzz: ${runs:-?} executions in ${seconds} s (${rate:-?}/s), coverage ${cov:-?} edges, no findings"
