#!/usr/bin/env bash
# The benchmark suite's quick mode on an existing build, for CI:
#
#   tests/bench/quick.sh BUILD_DIR
#
# Every workload runs once at small sizes with every allocator built in
# BUILD_DIR (configured with -DSCALLOC_BUILD_BENCH=ON); the script fails if
# a result is not sane: a verification failure, operation counts that do
# not add up, a non-positive RSS figure, or a "glibc" that is not glibc.
# Times are never judged. Takes well under a minute on 2 cores.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 64
fi
build=$1
bench=$build/tests/bench/scalloc_bench
[[ -x $bench ]] || bench=$(find "$build" -name scalloc_bench -type f -perm -u+x 2>/dev/null | head -n1)
if [[ -z $bench || ! -x $bench ]]; then
    echo "quick.sh: no scalloc_bench in $build; configure with -DSCALLOC_BUILD_BENCH=ON and build" >&2
    exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
"$bench" --quick --out "$out" --command "tests/bench/quick.sh" >"$out/stdout.md" || status=$?
if [[ $status -ne 0 ]]; then
    echo "quick.sh: benchmark sanity check failed; what the runs said:" >&2
    [[ -f $out/log.txt ]] && tail -n 40 "$out/log.txt" >&2
fi
exit $status
