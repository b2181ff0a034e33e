#!/usr/bin/env bash
# Where scalloc's memory goes, workload by workload (issue 14, item 1).
#
#   tests/bench/footprint.sh [--build DIR] [--threads N[,N...]] [--runs N]
#                            [--workloads a,b] [--allocators a,b] [--quick]
#                            [--out FILE]
#
# For every workload and thread count:
#   1. peak RSS (VmHWM) of scalloc and the peers, each run in a fresh
#      process, allocators alternating, median of --runs (default 3). The
#      suite's workloads run on the suite's drivers (scalloc_bench_<name>);
#      the study's own (server, demo-cache) on footprint_<name>, built from
#      the same sources and adapters.
#   2. the breakdown of scalloc's committed - live at the peak, at the
#      workload's marks and at the end, from one run of scalloc_footprint
#      (the heap walked with the world stopped; see footprint_walk.c).
# and writes FILE (default tests/bench/results/footprint.md). Whatever
# follows the line "<!-- conclusions -->" in an existing FILE is kept: that
# is where the reading of the numbers goes.
#
# Build directory: --build, else $SCALLOC_BENCH_BUILD, else
# /tmp/scalloc-bench-build (configured Release if it is not yet).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${SCALLOC_BENCH_BUILD:-/tmp/scalloc-bench-build}
threads=4
runs=3
scale=full
workloads=mixed,server,churn,cache-scratch,cache-thrash,larson,frag,demo-cache,tiny
allocators=scalloc,glibc,mimalloc
out=$here/results/footprint.md
cmdline="tests/bench/footprint.sh $*"
while [[ $# -gt 0 ]]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --allocators) allocators=$2; shift 2 ;;
    --quick) scale=quick; shift ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "footprint.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
IFS=, read -r -a wl_list <<<"$workloads"
IFS=, read -r -a th_list <<<"$threads"
IFS=, read -r -a al_list <<<"$allocators"
[[ ${al_list[0]} == scalloc ]] || { echo "footprint.sh: the first allocator must be scalloc" >&2; exit 64; }

if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCALLOC_BUILD_BENCH=ON >/dev/null
fi
targets=(scalloc_footprint)
for a in "${al_list[@]}"; do targets+=("scalloc_bench_$a" "footprint_$a"); done
cmake --build "$build" --target "${targets[@]}" -j "${SCALLOC_CI_JOBS:-2}" >/dev/null
bin=$build/tests/bench
suite=$("$bin/scalloc_bench_scalloc" --list | cut -f1)

# Driver for allocator $1 and workload $2.
driver() {
    if grep -qx -- "$2" <<<"$suite"; then echo "$bin/scalloc_bench_$1"; else echo "$bin/footprint_$1"; fi
}
# Value of key $1 in a result line on stdin.
field() { sed 's/[[:space:]]\+/\n/g' | sed -n "s/^$1=//p" | head -n1; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Peak RSS, alternating allocators within each repetition.
for t in "${th_list[@]}"; do
    for w in "${wl_list[@]}"; do
        for ((r = 0; r < runs; r++)); do
            for ((i = 0; i < ${#al_list[@]}; i++)); do
                a=${al_list[$(((i + r) % ${#al_list[@]}))]}
                line=$(timeout 600 "$(driver "$a" "$w")" "$w" "$t" "$scale" 1 | grep '^result' || true)
                if [[ -z $line ]]; then
                    echo "footprint.sh: $a $w $t failed" >&2
                    exit 1
                fi
                field peak_rss_kb <<<"$line" >>"$work/hwm.$w.$t.$a"
                field rss_idle_kb <<<"$line" >>"$work/idle.$w.$t.$a"
            done
        done
        echo "footprint.sh: peak RSS of $w at $t threads measured" >&2
    done
done

# 2. The breakdowns.
for t in "${th_list[@]}"; do
    for w in "${wl_list[@]}"; do
        timeout 600 "$bin/scalloc_footprint" "$w" "$t" "$scale" 1 | grep -v '^result' >"$work/walk.$w.$t.md"
        echo "footprint.sh: $w at $t threads walked" >&2
    done
done

kept=
if [[ -f $out ]]; then
    kept=$(sed -n '/^<!-- conclusions -->$/,$p' "$out")
fi
{
    echo "# Footprint: where scalloc's committed bytes go"
    echo
    echo "Written by \`$cmdline\` ($(date -u +%Y-%m-%d), $(nproc) cores, Linux $(uname -r),"
    echo "git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))."
    echo
    echo "Peak RSS is VmHWM of a fresh process per run, median of $runs, allocators"
    echo "alternating; it includes the process's own ~1.4 MiB (binary, libc)."
    echo "The breakdowns come from one run each of \`scalloc_footprint\`: scalloc"
    echo "through an instrumented adapter that stops the world and walks the heap"
    echo "whenever its committed bytes reach a new high (the kept walk is within"
    echo "1/64 of the peak), at the workload's marks and before destroy. Each row"
    echo "is committed bytes and, beside it, how many of them are resident"
    echo "(mincore); the rows add up to the heap's committed counter (the report"
    echo "says when they do not). \"Live\" is the bytes requested; rounding to the"
    echo "class is usable - requested (sizes from a shadow table the adapter"
    echo "keeps). Multi-threaded runs differ a little from run to run."
    echo
    echo "## Peak RSS side by side (KiB)"
    echo
    printf '| workload | threads |'
    for a in "${al_list[@]}"; do printf ' %s |' "$a"; done
    printf ' scalloc ÷ smallest peer |\n|---|---:|'
    for _ in "${al_list[@]}"; do printf -- '---:|'; done
    printf -- '---:|\n'
    for t in "${th_list[@]}"; do
        for w in "${wl_list[@]}"; do
            printf '| %s | %s |' "$w" "$t"
            mine=$(median <"$work/hwm.$w.$t.scalloc")
            best=
            for a in "${al_list[@]}"; do
                v=$(median <"$work/hwm.$w.$t.$a")
                printf ' %s |' "$v"
                if [[ $a != scalloc ]] && [[ -z $best || $v -lt $best ]]; then best=$v; fi
            done
            if [[ -n $best ]]; then
                awk -v m="$mine" -v b="$best" 'BEGIN { printf " %.2f |\n", m / b }'
            else
                printf ' – |\n'
            fi
        done
    done
    if grep -q . "$work"/idle.* 2>/dev/null; then
        echo
        echo "Resident after every block is freed and the heap trimmed, workers alive"
        echo "but idle (VmRSS, KiB, median; workloads that measure it):"
        echo
        printf '| workload | threads |'
        for a in "${al_list[@]}"; do printf ' %s |' "$a"; done
        printf '\n|---|---:|'
        for _ in "${al_list[@]}"; do printf -- '---:|'; done
        printf '\n'
        for t in "${th_list[@]}"; do
            for w in "${wl_list[@]}"; do
                grep -q . "$work/idle.$w.$t.scalloc" || continue
                printf '| %s | %s |' "$w" "$t"
                for a in "${al_list[@]}"; do printf ' %s |' "$(median <"$work/idle.$w.$t.$a")"; done
                printf '\n'
            done
        done
    fi
    echo
    echo "## Breakdowns"
    echo
    for t in "${th_list[@]}"; do
        for w in "${wl_list[@]}"; do
            cat "$work/walk.$w.$t.md"
        done
    done
    if [[ -n $kept ]]; then
        echo "$kept"
    else
        echo "<!-- conclusions -->"
        echo "## What the breakdown says"
        echo
        echo "(to be written)"
    fi
} >"$out"
echo "footprint.sh: wrote $out" >&2
