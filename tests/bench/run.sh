#!/usr/bin/env bash
# The benchmark suite in one command.
#
#   tests/bench/run.sh [--quick] [--out DIR] [--build DIR] [scalloc_bench options]
#
# Configures and builds the project with the benchmarks (Release) in the
# build directory (default: /tmp/scalloc-bench-build, or $SCALLOC_BENCH_BUILD),
# runs every workload against scalloc and every peer found (glibc malloc
# always; jemalloc, mimalloc, tcmalloc when their -dev packages are
# installed), 5 runs per point with the allocators alternating, and writes
# raw.csv, medians.csv, table.md and, when gnuplot is installed, PNG charts
# into the output directory (default: BUILD/bench-results). The table is
# also printed. --quick runs every workload once at small sizes and fails
# when a result is not sane (it never judges times).
# Other options (--runs, --threads, --workloads, --allocators, --seed) go to
# scalloc_bench unchanged.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${SCALLOC_BENCH_BUILD:-/tmp/scalloc-bench-build}
out=
quick=
pass=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) quick=--quick; shift ;;
    --out) out=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) pass+=("$1"); shift ;;
    esac
done
out=${out:-$build/bench-results}

jobs=$(nproc 2>/dev/null || echo 2)
if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCALLOC_BUILD_BENCH=ON >/dev/null
fi
cmake --build "$build" --target scalloc_bench_all -j "$jobs" >/dev/null

bench=$build/tests/bench/scalloc_bench
[[ -x $bench ]] || bench=$(find "$build" -name scalloc_bench -type f -perm -u+x | head -n1)
if [[ -z $bench || ! -x $bench ]]; then
    echo "run.sh: scalloc_bench was not built in $build" >&2
    exit 1
fi

mkdir -p "$out"
start=$SECONDS
status=0
"$bench" $quick --out "$out" --command "tests/bench/run.sh $quick ${pass[*]:-}" \
    ${pass[@]+"${pass[@]}"} | tee "$out/stdout.md" || status=$?

if command -v gnuplot >/dev/null; then
    if (cd "$out" && gnuplot charts.gp) 2>"$out/gnuplot.log"; then
        echo "charts: $out/throughput.png $out/rss.png $out/fragmentation.png" >&2
    else
        echo "run.sh: gnuplot failed, see $out/gnuplot.log" >&2
    fi
else
    echo "run.sh: gnuplot not installed; no charts (apt install gnuplot-nox)" >&2
fi
echo "run.sh: $((SECONDS - start)) s; results in $out" >&2
exit $status
