#!/usr/bin/env bash
# Unmodified programs with their whole malloc family on one allocator, the
# way outside reviewers run allocators: glibc (no preload), then jemalloc,
# tcmalloc, mimalloc and scalloc (libscalloc_preload.so) through LD_PRELOAD.
# Runs alternate (the allocator order rotates from run to run); the tables
# hold medians. See tests/bench/README.md, "Preload".
#
#   tests/bench/preload/run.sh [--build DIR] [--runs N] [--syscalls]
#                              [--programs a,b] [--allocators a,b]
#                              [--out FILE] [--quick]
#
#   --build DIR       build tree (default /tmp/scalloc-preload-build);
#                     configured and built (target preload_all) if needed
#   --runs N          timed runs per program and allocator (default 3)
#   --syscalls        one more run of each under strace -f -c: counts of
#                     mmap, munmap, madvise, mprotect, mremap (the whole process
#                     tree, loading of shared objects included)
#   --programs LIST   subset of the programs (default: all; --list shows them)
#   --allocators LIST subset of glibc,jemalloc,tcmalloc,mimalloc,scalloc
#   --out FILE        where the Markdown goes too (default
#                     tests/bench/results/preload.md)
#   --quick           one run, no file written unless --out is given
#
# Correctness is checked on every run: exit status 0, and the output's
# checksum (stdout, or the object files for gcc) equal to glibc's.
set -u
unset LD_PRELOAD

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=/tmp/scalloc-preload-build
runs=3
syscalls=0
programs=""
allocators="glibc,jemalloc,tcmalloc,mimalloc,scalloc"
out="$root/tests/bench/results/preload.md"
out_given=0
quick=0
list=0
cmdline="tests/bench/preload/run.sh $*"

while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --syscalls) syscalls=1; shift ;;
    --programs) programs=$2; shift 2 ;;
    --allocators) allocators=$2; shift 2 ;;
    --out) out=$2; out_given=1; shift 2 ;;
    --quick) quick=1; runs=1; shift ;;
    --list) list=1; shift ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ "$quick" = 1 ] && [ "$out_given" = 0 ]; then
    out=""
fi

all_programs="xmalloc-test cache-scratch larson mstress malloc-large glibc-simple sh6bench mleak
sort gzip-9 xz-6 sqlite3 python3 python3-malloc perl gcc-O2"
if [ "$list" = 1 ]; then
    echo $all_programs
    exit 0
fi
[ -n "$programs" ] || programs=$(echo $all_programs | tr ' ' ',')

# --- build ------------------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >"$build.configure.log" 2>&1 ||
        { echo "run.sh: configure failed, see $build.configure.log" >&2; exit 1; }
fi
cmake --build "$build" -j2 --target preload_all >"$build.build.log" 2>&1 ||
    { echo "run.sh: build failed, see $build.build.log" >&2; exit 1; }
shim="$build/tests/bench/preload/libscalloc_preload.so"
bin="$build/tests/bench/preload/progs"

# --- allocators -------------------------------------------------------------
multiarch=$(gcc -print-multiarch 2>/dev/null || true)
[ -n "$multiarch" ] || multiarch=x86_64-linux-gnu
libdir=/usr/lib/$multiarch
declare -A lib
lib[glibc]=""
lib[jemalloc]=$libdir/libjemalloc.so.2
lib[tcmalloc]=$libdir/libtcmalloc_minimal.so.4
[ -e "${lib[tcmalloc]}" ] || lib[tcmalloc]=$libdir/libtcmalloc.so.4
lib[mimalloc]=$libdir/libmimalloc.so.2
lib[scalloc]=$shim
notes=()
allocs=()
for a in ${allocators//,/ }; do
    if [ -z "${lib[$a]+x}" ]; then
        echo "run.sh: unknown allocator $a" >&2; exit 2
    fi
    if [ "$a" != glibc ] && [ ! -e "${lib[$a]}" ]; then
        notes+=("$a: ${lib[$a]} not found, skipped")
        continue
    fi
    allocs+=("$a")
done
# Each preload must really take over malloc (glibc's run must get libc's).
declare -A malloc_from
for a in "${allocs[@]}"; do
    if [ "$a" = glibc ]; then
        malloc_from[$a]=$("$bin/which_malloc")
    else
        malloc_from[$a]=$(env LD_PRELOAD="${lib[$a]}" "$bin/which_malloc")
    fi
    case "$a:${malloc_from[$a]}" in
    glibc:*libc.so*) ;;
    glibc:*) echo "run.sh: glibc run gets malloc from ${malloc_from[$a]}" >&2; exit 1 ;;
    *) [ "$(readlink -f "${malloc_from[$a]}")" = "$(readlink -f "${lib[$a]}")" ] ||
        { echo "run.sh: $a: malloc comes from ${malloc_from[$a]}" >&2; exit 1; } ;;
    esac
done

# --- workloads ----------------------------------------------------------------
work="$build/preload-work"
mkdir -p "$work"
[ -s "$work/text20.txt" ] || "$bin/gen_text" 20000000 1 >"$work/text20.txt"
[ -s "$work/text8.txt" ] || head -c 8000000 "$work/text20.txt" >"$work/text8.txt"
[ -s "$work/text3.txt" ] || head -c 3000000 "$work/text20.txt" >"$work/text3.txt"
cp "$here/workloads/sqlite.sql" "$here/workloads/py.py" "$here/workloads/perl.pl" "$work/"

need_tool() { # program tool...
    local p=$1; shift
    for t in "$@"; do
        if ! command -v "$t" >/dev/null 2>&1; then
            notes+=("$p: $t not installed, skipped")
            return 1
        fi
    done
}
progs=()
for p in ${programs//,/ }; do
    case "$p" in
    sort) need_tool "$p" sort || continue ;;
    gzip-9) need_tool "$p" gzip || continue ;;
    xz-6) need_tool "$p" xz || continue ;;
    sqlite3) need_tool "$p" sqlite3 || continue ;;
    python3 | python3-malloc) need_tool "$p" /usr/bin/python3 || continue ;;
    perl) need_tool "$p" perl || continue ;;
    gcc-O2) need_tool "$p" gcc || continue ;;
    xmalloc-test | cache-scratch | larson | mstress | malloc-large | glibc-simple | sh6bench | mleak) ;;
    *) echo "run.sh: unknown program $p (--list)" >&2; exit 2 ;;
    esac
    progs+=("$p")
done

# run_prog PROGRAM ALLOCATOR WRAPPER...: runs PROGRAM once under ALLOCATOR,
# behind WRAPPER (time or strace), stdout to $work/out, stderr to
# $work/err; prints the output checksum. Returns the exit status.
run_prog() {
    local p=$1 a=$2; shift 2
    local envp=(env -u LD_PRELOAD)
    [ "$a" = glibc ] || envp=(env LD_PRELOAD="${lib[$a]}")
    local rc t0 t1
    t0=$EPOCHREALTIME
    case "$p" in
    xmalloc-test) "$@" "${envp[@]}" "$bin/xmalloc_test" ;;
    cache-scratch) "$@" "${envp[@]}" "$bin/cache_scratch" ;;
    larson) "$@" "${envp[@]}" "$bin/larson" ;;
    mstress) "$@" "${envp[@]}" "$bin/mstress" ;;
    malloc-large) "$@" "${envp[@]}" "$bin/malloc_large" ;;
    glibc-simple) "$@" "${envp[@]}" "$bin/glibc_simple" ;;
    sh6bench) "$@" "${envp[@]}" "$bin/sh6bench" ;;
    mleak) "$@" "${envp[@]}" "$bin/mleak" ;;
    sort) "$@" "${envp[@]}" LC_ALL=C sort "$work/text20.txt" ;;
    gzip-9) "$@" "${envp[@]}" gzip -9 -c "$work/text8.txt" ;;
    xz-6) "$@" "${envp[@]}" xz -6 -T1 -c "$work/text3.txt" ;;
    sqlite3) "$@" "${envp[@]}" sqlite3 :memory: <"$work/sqlite.sql" ;;
    python3) "$@" "${envp[@]}" /usr/bin/python3 "$work/py.py" ;;
    python3-malloc) "$@" "${envp[@]}" PYTHONMALLOC=malloc /usr/bin/python3 "$work/py.py" ;;
    perl) "$@" "${envp[@]}" perl "$work/perl.pl" ;;
    gcc-O2)
        rm -rf "$work/cc" && mkdir -p "$work/cc"
        (cd "$work/cc" && "$@" "${envp[@]}" gcc -O2 -c -D_GNU_SOURCE -I"$root/include" \
            -I"$root/lib" "$root"/lib/*.c) ;;
    esac >"$work/out" 2>"$work/err"
    rc=$?
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }' >"$work/secs"
    if [ "$p" = gcc-O2 ]; then
        cat "$work"/cc/*.o 2>/dev/null | md5sum | cut -c1-12
    else
        md5sum <"$work/out" | cut -c1-12
    fi
    return $rc
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
raw="$work/raw.tsv"
: >"$raw"
shimlog="$work/shim-messages.txt"
: >"$shimlog"
: >"$work/failures.txt"
nalloc=${#allocs[@]}
total=$((runs * ${#progs[@]} * nalloc))
n=0
for ((r = 0; r < runs; r++)); do
    for pi in "${!progs[@]}"; do
        p=${progs[$pi]}
        for ((k = 0; k < nalloc; k++)); do
            a=${allocs[$(((k + r + pi) % nalloc))]}
            n=$((n + 1))
            sum=$(run_prog "$p" "$a" /usr/bin/time -f '%M %U %S %R' -o "$work/rss")
            rc=$?
            secs=$(cat "$work/secs")
            read -r rss usr sys_s minflt < <(tail -n 1 "$work/rss" 2>/dev/null)
            case "${rss:-}" in '' | *[!0-9]*) rss=0 ;; esac
            case "${minflt:-}" in '' | *[!0-9]*) minflt=0 ;; esac
            cpu=$(awk -v u="${usr:-0}" -v s="${sys_s:-0}" 'BEGIN { printf "%.2f", u + s }')
            printf '%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n' "$p" "$a" "$r" "$secs" "$rss" "$rc" \
                "$sum" "$cpu" "$minflt" >>"$raw"
            if [ "$a" = scalloc ] && grep -q "scalloc" "$work/err"; then
                grep "scalloc" "$work/err" | sed "s/^/$p (run $r): /" >>"$shimlog"
            fi
            if [ "$rc" != 0 ]; then
                { echo "$p under $a, run $r: exit status $rc"; tail -n 5 "$work/err"; } >>"$work/failures.txt"
            fi
            printf '\r[%d/%d] %-15s %-9s %7.3fs %s' "$n" "$total" "$p" "$a" "$secs" \
                "$([ "$rc" = 0 ] || echo "rc=$rc")" >&2
        done
    done
done
printf '\n' >&2

sysraw="$work/syscalls.tsv"
: >"$sysraw"
if [ "$syscalls" = 1 ]; then
    if ! command -v strace >/dev/null 2>&1; then
        notes+=("--syscalls: strace not installed")
        syscalls=0
    else
        for p in "${progs[@]}"; do
            for a in "${allocs[@]}"; do
                printf '\rstrace %-15s %-9s' "$p" "$a" >&2
                run_prog "$p" "$a" strace -f -c -e trace=madvise,process_madvise,mprotect,mmap,munmap,mremap \
                    -o "$work/strace" >/dev/null
                awk -v p="$p" -v a="$a" '
                    $NF ~ /^(mmap|munmap|madvise|mprotect|mremap)$/ {
                        # calls is the 4th field; "errors" may be empty
                        c[$NF] += $4
                    }
                    # a batch of ranges given back in one call counts as a madvise
                    $NF == "process_madvise" { c["madvise"] += $4 }
                    END { printf "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", p, a, c["mmap"], c["munmap"],
                          c["madvise"], c["mprotect"], c["mremap"] }' "$work/strace" >>"$sysraw"
            done
        done
        printf '\n' >&2
    fi
fi

# --- report -------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
glibc_v=$(ldd --version 2>/dev/null | head -n 1 | sed 's/.* //')
pkgv() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "?")
dirty=$(git -C "$root" status --porcelain 2>/dev/null | grep -qv '^??' && echo "+changes" || true)

report() {
    echo "# Preload: unmodified programs on one allocator"
    echo
    echo "Command: \`$cmdline\` (scalloc $commit$dirty, $(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(uname -srm), $cpu, $(nproc) cores, glibc $glibc_v; peers from Debian:" \
        "jemalloc $(pkgv libjemalloc2), tcmalloc $(pkgv libtcmalloc-minimal4)" \
        "($(basename "${lib[tcmalloc]}")), mimalloc $(pkgv libmimalloc2.0)." \
        "Load average before the runs: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "Each program ran $runs times under each allocator, alternating (the order" \
        "rotates); figures are medians. Wall time includes process start-up. Peak RSS" \
        "is \`/usr/bin/time -f %M\`: the largest process of the tree (for gcc: cc1)." \
        "scalloc is \`libscalloc_preload.so\` (tests/bench/preload/sc_preload.c): every" \
        "malloc, free, realloc... of the process on one heap."
    echo
    echo "malloc comes from:"
    for a in "${allocs[@]}"; do echo "- $a: \`${malloc_from[$a]}\`"; done
    for x in "${notes[@]+"${notes[@]}"}"; do echo "- note: $x"; done
    echo
    awk -F'\t' -v allocs="${allocs[*]}" -v progs="${progs[*]}" -v sysfile="$sysraw" '
        function median(key,   n, i, j, t, v) {
            n = cnt[key]
            if (n == 0) return ""
            for (i = 1; i <= n; i++) v[i] = val[key, i]
            for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
                t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
            return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        }
        # A table header: a column per allocator, and "scalloc / best peer"
        # when ratio is set and scalloc ran.
        function header(ratio,   j, hdr, sep) {
            hdr = "| program |"; sep = "|---|"
            for (j = 1; j <= na; j++) { hdr = hdr " " A[j] " |"; sep = sep "---:|" }
            if (ratio && has_sc) { hdr = hdr " scalloc / best peer |"; sep = sep "---:|" }
            print hdr; print sep
        }
        # A row per program: the median of field `key` over `scale`, printed
        # with `fmt` (failed runs marked when `mark`), and scalloc over the
        # best (smallest) peer when scalloc ran.
        function rows(key, scale, fmt, mark,   i, j, p, a, v, cell, line, best, bestname, sc) {
            for (i = 1; i <= np; i++) {
                p = P[i]; line = "| " p " |"; best = ""; bestname = ""; sc = 0
                for (j = 1; j <= na; j++) {
                    a = A[j]; v = median(p SUBSEP a key) / scale
                    cell = sprintf(fmt, v)
                    if (mark && fail[p, a] != "") cell = cell " ✗"
                    line = line " " cell " |"
                    if (a == "scalloc") sc = v
                    else if (best == "" || v < best) { best = v; bestname = a }
                }
                if (has_sc) line = line sprintf(" %.2f (%s) |", best > 0 ? sc / best : 0, bestname)
                print line
            }
        }
        {
            p = $1; a = $2
            cnt[p SUBSEP a "t"]++; val[p SUBSEP a "t", cnt[p SUBSEP a "t"]] = $4
            cnt[p SUBSEP a "m"]++; val[p SUBSEP a "m", cnt[p SUBSEP a "m"]] = $5
            cnt[p SUBSEP a "c"]++; val[p SUBSEP a "c", cnt[p SUBSEP a "c"]] = $8
            cnt[p SUBSEP a "f"]++; val[p SUBSEP a "f", cnt[p SUBSEP a "f"]] = $9
            if ($6 != 0) bad[p, a] = bad[p, a] " rc=" $6
            sums[p, a] = sums[p, a] == "" ? $7 : sums[p, a]
            if (sums[p, a] != $7) unstable[p, a] = 1
        }
        END {
            na = split(allocs, A, " "); np = split(progs, P, " ")
            # correctness
            nfail = 0
            for (i = 1; i <= np; i++) for (j = 1; j <= na; j++) {
                p = P[i]; a = A[j]
                if (bad[p, a] != "") { fail[p, a] = "exit" bad[p, a]; nfail++ }
                else if (unstable[p, a]) { fail[p, a] = "output differs between runs"; nfail++ }
                if (fail[p, a] == "" && sums[p, "glibc"] != "" && sums[p, a] != sums[p, "glibc"]) {
                    fail[p, a] = "output differs from glibc"; nfail++ }
            }
            has_sc = 0; for (j = 1; j <= na; j++) if (A[j] == "scalloc") has_sc = 1
            print "## Wall time (s, median)"
            print ""
            header(1); rows("t", 1, "%.3f", 1)
            print ""
            print "## CPU time (user + sys, s, median)"
            print ""
            print "Less disturbed than wall time by other load on the machine; for" \
                  " multi-threaded programs it also counts spinning and contention."
            print ""
            header(1); rows("c", 1, "%.2f", 0)
            print ""
            print "## Peak RSS (MiB, median)"
            print ""
            header(1); rows("m", 1024, "%.1f", 0)
            print ""
            print "## Minor page faults (thousands, median)"
            print ""
            print "Pages the kernel had to back: memory given back and touched again" \
                  " shows here (and in sys time)."
            print ""
            header(0)
            for (i = 1; i <= np; i++) {
                p = P[i]; line = "| " p " |"
                for (j = 1; j <= na; j++) line = line sprintf(" %.1f |", median(p SUBSEP A[j] "f") / 1000)
                print line
            }
            print ""
            nsys = 0
            while ((getline l < sysfile) > 0) {
                split(l, f, "\t"); sys[f[1], f[2]] = f[3] " / " f[4] " / " f[5] " / " f[6] " / " f[7]; nsys++
            }
            if (nsys > 0) {
                print "## System calls (one run under strace -f -c): mmap / munmap / madvise (process_madvise included) / mprotect / mremap"
                print ""
                header(0)
                for (i = 1; i <= np; i++) {
                    p = P[i]; line = "| " p " |"
                    for (j = 1; j <= na; j++) line = line " " sys[p, A[j]] " |"
                    print line
                }
                print ""
            }
            print "## Correctness"
            print ""
            if (nfail == 0) {
                print "Every run of every program exited with status 0, and its output" \
                      " checksum (stdout; the object files for gcc) matched glibc'"'"'s."
            } else {
                print "| program | allocator | problem |"
                print "|---|---|---|"
                for (i = 1; i <= np; i++) for (j = 1; j <= na; j++)
                    if (fail[P[i], A[j]] != "") print "| " P[i] " | " A[j] " | " fail[P[i], A[j]] " |"
            }
        }' "$raw"
    echo
    if [ -s "$shimlog" ]; then
        echo "## Messages of the scalloc shim (stderr)"
        echo
        echo '```'
        sort -u "$shimlog" | head -n 40
        echo '```'
    else
        echo "The scalloc shim printed nothing (no foreign pointer, no bootstrap overflow)."
    fi
    echo
    echo "| program | what runs |"
    echo "|---|---|"
    echo "| xmalloc-test | progs/xmalloc_test.c: 2 producers, 2 consumers, 2 M blocks of 8 B-4 KiB, all freed remotely |"
    echo "| cache-scratch | progs/cache_scratch.c: 4 threads free a main-thread object, then allocate/write/free 8 B |"
    echo "| larson | progs/larson.c: 4 threads x 8 rounds x 400 k slot replacements, 8-1000 B; each round new threads |"
    echo "| mstress | progs/mstress.c: 8 threads x 10 rounds, 3.2 M objects 8 B-170 KiB, transfers between threads |"
    echo "| malloc-large | progs/malloc_large.c: 150 buffers of 2-32 MiB replaced, 8 live, every page written |"
    echo "| glibc-simple | progs/glibc_simple.c: batches of 25-1600 blocks of 16 B-4 KiB allocated and freed, 1 thread |"
    echo "| sh6bench | progs/sh6bench.c: 2 threads x 4000 rounds x 2000 blocks of 2-1001 B, freed in 3 orders |"
    echo "| mleak | progs/mleak.c: 2000 threads, 4 at a time, 300 blocks each, some freed by main, one leaked |"
    echo "| sort | \`LC_ALL=C sort\` of a 20 MB generated text file (gen_text) |"
    echo "| gzip-9 | \`gzip -9 -c\` of 8 MB of it |"
    echo "| xz-6 | \`xz -6 -T1 -c\` of 3 MB of it |"
    echo "| sqlite3 | \`sqlite3 :memory: < workloads/sqlite.sql\`: 200 k rows inserted, indexed, joined, updated, deleted |"
    echo "| python3 | \`python3 workloads/py.py\`: big dicts, lists, sets, strings built and dropped (pymalloc on) |"
    echo "| python3-malloc | the same with PYTHONMALLOC=malloc: every object from malloc |"
    echo "| perl | \`perl workloads/perl.pl\`: 200 k-key hash, sort, join/split, regex substitution |"
    echo "| gcc-O2 | \`gcc -O2 -c lib/*.c\` (17 files; cc1 and as are preloaded too) |"
}

if [ -n "$out" ]; then
    mkdir -p "$(dirname "$out")"
    report | tee "$out"
else
    report
fi
if [ -s "$work/failures.txt" ]; then
    echo "run.sh: failures, see $work/failures.txt" >&2
    exit 1
fi
