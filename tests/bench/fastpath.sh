#!/usr/bin/env bash
# Fast-path figure: callgrind instructions per alloc+free pair of 32 B.
#
#   tests/bench/fastpath.sh BUILD_DIR [N]
#
# For every fast-path program found in BUILD_DIR (fastpath for scalloc,
# fastpath_<peer> for the peers) and every mode it has, runs N and 2N pairs
# under `valgrind --tool=callgrind --toggle-collect=fastpath_measured_*`,
# which counts only the measured loop, and reports (Ir(2N) - Ir(N)) / N:
# set-up and the slow paths of the first pairs cancel out. The figure
# includes the loop itself (a few instructions). N defaults to 1,000,000.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 BUILD_DIR [N]" >&2
    exit 64
fi
build=$1
n=${2:-1000000}
if ! command -v valgrind >/dev/null; then
    echo "fastpath.sh: valgrind not found (apt install valgrind)" >&2
    exit 1
fi

# The programs live next to scalloc_bench; find that directory.
bindir=
for d in "$build/tests/bench" "$build"; do
    if [[ -x $d/fastpath || -x $d/fastpath_glibc ]]; then bindir=$d; break; fi
done
if [[ -z $bindir ]]; then
    bindir=$(dirname "$(find "$build" -name fastpath_glibc -type f -perm -u+x | head -n1)")
fi
if [[ -z $bindir || ! -x $bindir/fastpath_glibc ]]; then
    echo "fastpath.sh: no fast-path programs in $build (configure with -DSCALLOC_BUILD_BENCH=ON and build)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Ir of the measured function for one run.
instructions() { # program mode pairs
    local out=$work/cg.out
    valgrind --tool=callgrind --toggle-collect='fastpath_measured_*' \
        --callgrind-out-file="$out" "$1" "$2" "$3" >"$work/log" 2>&1 || {
        echo "fastpath.sh: $1 $2 $3 failed under valgrind:" >&2
        tail -n 20 "$work/log" >&2
        return 1
    }
    awk '/^summary:/ { print $2; found = 1 } END { if (!found) exit 1 }' "$out"
}

printf '| allocator | API | alternating | batch of 1000, LIFO |\n'
printf '|---|---|---:|---:|\n'
status=0
for prog in "$bindir/fastpath" "$bindir"/fastpath_glibc "$bindir"/fastpath_mimalloc \
            "$bindir"/fastpath_tcmalloc "$bindir"/fastpath_jemalloc; do
    [[ -x $prog ]] || continue
    # modes come in pairs per API: alt + batch, thread-alt + thread-batch
    declare -A figure=()
    declare -A api_of=()
    apis=()
    while IFS=$'\t' read -r name mode api; do
        ir1=$(instructions "$prog" "$mode" "$n") || { status=1; continue; }
        ir2=$(instructions "$prog" "$mode" $((2 * n))) || { status=1; continue; }
        figure[$mode]=$(awk -v a="$ir1" -v b="$ir2" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
        key=${mode%alt}; key=${key%batch}; key=${key:-plain-}
        if [[ -z ${api_of[$key]+x} ]]; then api_of[$key]=$api; apis+=("$key"); fi
        alloc_name=$name
    done < <("$prog" --modes)
    for key in "${apis[@]}"; do
        prefix=${key#plain-}
        printf '| %s | %s | %s | %s |\n' "$alloc_name" "${api_of[$key]}" \
            "${figure[${prefix}alt]:-–}" "${figure[${prefix}batch]:-–}"
    done
    unset figure api_of
done
printf '\nInstructions per pair (callgrind, (Ir(2N) - Ir(N)) / N, N = %s, loop included).\n' "$n"
exit $status
