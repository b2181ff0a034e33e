#!/usr/bin/env bash
# Memory system calls per workload, scalloc side by side with the peers.
#
#   tests/bench/syscalls.sh [--build DIR] [--threads 1,4] [--scale full|quick]
#                           [--workloads a,b] [--allocators a,b] [--out FILE]
#
# Runs every workload of the benchmark driver (scalloc_bench_<allocator>,
# the binaries tests/bench/run.sh builds) once per allocator and thread
# count under `strace -f -c -e trace=madvise,process_madvise,mprotect,mmap,munmap,mremap`
# (process_madvise counted with madvise; mremap: scalloc's moves of kept
# huge pages, glibc's realloc of mapped chunks) and writes
# a markdown table of the calls each made (default: tests/bench/results/
# syscalls.md; also printed). The counts cover the whole process: the
# dynamic loader's mappings, the allocator's start-up, thread stacks (glibc
# maps a stack and protects its guard page per thread it cannot reuse) and
# the workload. The start-up row is the same binary run with --info (loader
# and allocator initialisation, no workload). Counts are of one run each;
# they vary a little between runs where threads race (which thread empties
# a span, how many thread stacks glibc can reuse).
#
# The scalloc driver allocates nothing per thread outside scalloc any more
# (adapters/alloc_scalloc.h), but glibc gives each new thread that mallocs
# an arena of its own (an mmap, two munmaps and an mprotect); any harness
# or libc malloc left would count glibc's calls as scalloc's, so the
# scalloc driver runs with MALLOC_ARENA_MAX=1 (one glibc arena). The other
# drivers' mallocs are their allocator's own and are left as they are.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${SCALLOC_BENCH_BUILD:-/tmp/scalloc-bench-build}
threads=4
scale=full
only_workloads=
only_allocators=
out=$here/results/syscalls.md
while [[ $# -gt 0 ]]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --workloads) only_workloads=$2; shift 2 ;;
    --allocators) only_allocators=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "syscalls.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
command -v strace >/dev/null || { echo "syscalls.sh: strace not installed (apt install strace)" >&2; exit 1; }
[[ $scale == full || $scale == quick ]] || { echo "syscalls.sh: --scale full|quick" >&2; exit 64; }

jobs=$(nproc 2>/dev/null || echo 2)
if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCALLOC_BUILD_BENCH=ON >/dev/null
fi
cmake --build "$build" --target scalloc_bench_all -j "$jobs" >/dev/null
bindir=$(dirname "$(find "$build" -name scalloc_bench_scalloc -type f -perm -u+x | head -n1)")
[[ -x $bindir/scalloc_bench_scalloc ]] || { echo "syscalls.sh: no scalloc_bench_scalloc in $build" >&2; exit 1; }

listed() { # listed LIST NAME: NAME is in the comma-separated LIST (empty: all)
    [[ -z $1 ]] && return 0
    [[ ",$1," == *",$2,"* ]]
}

allocators=()
for a in scalloc glibc jemalloc mimalloc tcmalloc; do
    [[ -x $bindir/scalloc_bench_$a ]] && listed "$only_allocators" "$a" && allocators+=("$a")
done
workloads=()
while IFS=$'\t' read -r name _; do
    listed "$only_workloads" "$name" && workloads+=("$name")
done < <("$bindir/scalloc_bench_scalloc" --list)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# count FILE: "madvise mprotect mmap munmap mremap total" from strace -c output (the
# calls column is the 4th; the errors column may be empty). process_madvise
# calls (scalloc's batches of ranges, one call each) count as madvise.
count() {
    awk '
        $NF == "madvise" || $NF == "process_madvise" { a += $4 } $NF == "mprotect" { p = $4 }
        $NF == "mmap" { m = $4 } $NF == "munmap" { u = $4 } $NF == "mremap" { r = $4 }
        END { printf "%d %d %d %d %d %d\n", a, p, m, u, r, a + p + m + u + r }' "$1"
}

# trace NAME ARGS...: runs the allocator's driver under strace; prints counts.
trace() {
    local a=$1
    shift
    local env=()
    [[ $a == scalloc ]] && env=(env MALLOC_ARENA_MAX=1)
    if ! ${env[@]+"${env[@]}"} strace -f -c -e trace=madvise,process_madvise,mprotect,mmap,munmap,mremap -o "$tmp/strace" \
        "$bindir/scalloc_bench_$a" "$@" >"$tmp/stdout" 2>"$tmp/stderr"; then
        # 2: the workload is not supported by this allocator
        echo "- - - - - -"
        return
    fi
    count "$tmp/strace"
}

declare -A cell detail
for w in "${workloads[@]}"; do
    for t in ${threads//,/ }; do
        for a in "${allocators[@]}"; do
            read -r ma mp mm mu mr total < <(trace "$a" "$w" "$t" "$scale")
            cell[$w,$t,$a]=$total
            detail[$w,$t,$a]="$ma / $mp / $mm / $mu / $mr"
        done
    done
done
for a in "${allocators[@]}"; do
    read -r ma mp mm mu mr total < <(trace "$a" --info)
    cell[startup,$a]=$total
    detail[startup,$a]="$ma / $mp / $mm / $mu / $mr"
done

{
    echo "Memory system calls per run (\`tests/bench/syscalls.sh --threads $threads --scale $scale\`):"
    echo "madvise (process_madvise calls included) + mprotect + mmap + munmap + mremap of the whole process under \`strace -f -c\`, one run each"
    echo "of \`scalloc_bench_<allocator> WORKLOAD THREADS $scale\` (scalloc's with MALLOC_ARENA_MAX=1 for"
    echo "its harness's glibc mallocs, see the script); $(uname -sr), $(nproc) cores."
    echo
    printf '| workload | threads |'
    for a in "${allocators[@]}"; do printf ' %s |' "$a"; done
    printf ' scalloc <= mimalloc |\n|---|---:|'
    for a in "${allocators[@]}"; do printf -- '---:|'; done
    printf -- '---|\n'
    for w in "${workloads[@]}"; do
        for t in ${threads//,/ }; do
            printf '| %s | %s |' "$w" "$t"
            for a in "${allocators[@]}"; do printf ' %s |' "${cell[$w,$t,$a]}"; done
            verdict=
            s=${cell[$w,$t,scalloc]:-}
            m=${cell[$w,$t,mimalloc]:-}
            if [[ $s =~ ^[0-9]+$ && $m =~ ^[0-9]+$ ]]; then
                if ((s <= m)); then verdict=yes; else verdict="**no**"; fi
            fi
            printf ' %s |\n' "$verdict"
        done
    done
    printf '| start-up (`--info`) | |'
    for a in "${allocators[@]}"; do printf ' %s |' "${cell[startup,$a]}"; done
    printf ' |\n'
    echo
    echo "The same runs, madvise / mprotect / mmap / munmap / mremap:"
    echo
    printf '| workload | threads |'
    for a in "${allocators[@]}"; do printf ' %s |' "$a"; done
    printf '\n|---|---:|'
    for a in "${allocators[@]}"; do printf -- '---:|'; done
    printf '\n'
    for w in "${workloads[@]}"; do
        for t in ${threads//,/ }; do
            printf '| %s | %s |' "$w" "$t"
            for a in "${allocators[@]}"; do printf ' %s |' "${detail[$w,$t,$a]}"; done
            printf '\n'
        done
    done
    printf '| start-up (`--info`) | |'
    for a in "${allocators[@]}"; do printf ' %s |' "${detail[startup,$a]}"; done
    printf '\n'
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "syscalls.sh: table in $out" >&2
