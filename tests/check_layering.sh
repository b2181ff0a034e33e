#!/usr/bin/env bash
# Layering check for lib/ (DESIGN.md §3, lib/README.md).
#
#   tests/check_layering.sh [BUILD_DIR]
#
# A module is lib/X.c with lib/X.h, or either alone. Its dependencies are
#   include  every #include "Y.h" in lib/X.c or lib/X.h (static inline
#            functions in headers are covered by this: using one means
#            including its header), and
#   use      every symbol lib/X.c's object leaves undefined (nm) that another
#            module's object defines: functions and data alike (a variable
#            like address_map is as much a dependency as a call).
# Objects come from BUILD_DIR (the library's object files in a CMake build
# tree) or, without an argument, from compiling each lib/*.c here.
#
# The rule, checked strictly (there is no allow-list):
#   1. every module has a layer in LAYERS below;
#   2. no include or use goes to a module in a higher layer;
#   3. no cycle of includes or uses, within a layer or across layers;
#   4. only os talks to the kernel about memory (mmap, munmap, ...);
#   5. span state transitions (writes of a span's `remote` word) live in
#      span.c and span_pool.c only.
# Every violation is printed with the file, line or symbol that makes it;
# exit 1 if there is any, 0 with a one-line summary when clean, 2 when the
# check itself cannot run (missing object, no nm).
set -euo pipefail

# The declared layers, lowest first: one line per layer, its name, then its
# modules. A module may use modules of lower layers, and modules of its own
# layer as long as no cycle forms. lib/README.md says what each module is
# and why it sits where it does; keep the two in step.
LAYERS='
base         tuning types annotate size_class error
os           os
meta         meta
address_map  address_map
arena        arena
span         span_stack span
span_meta    check requested
backend      span_pool reusable huge
frontend     frontend
free         free
heap         registry heap
api          alloc stats invariants
'

# Library calls that talk to the kernel about memory (rule 4).
KERNEL_SYMS='mmap mmap64 munmap mprotect madvise posix_madvise mincore mremap msync mlock munlock brk sbrk'

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib="$root/lib"
build_dir=${1:-}

command -v nm >/dev/null || { echo "check_layering: nm not found" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- objects -----------------------------------------------------------------
objdir="$work/obj"
mkdir -p "$objdir"
if [[ -n "$build_dir" ]]; then
    # CMake puts the library's objects under CMakeFiles/<target>.dir/.../lib/.
    for src in "$lib"/*.c; do
        name=$(basename "$src")
        obj=$(find -H "$build_dir" -path "*/CMakeFiles/scalloc_objects.dir/*lib/$name.o" -print -quit 2>/dev/null || true)
        if [[ -z "$obj" ]]; then
            echo "check_layering: no object for lib/$name in $build_dir (build it first)" >&2
            exit 2
        fi
        if [[ "$src" -nt "$obj" ]]; then
            echo "check_layering: $obj is older than lib/$name (build it first)" >&2
            exit 2
        fi
        cp "$obj" "$objdir/${name%.c}.o"
    done
else
    cc=${CC:-cc}
    for src in "$lib"/*.c; do
        name=$(basename "$src" .c)
        # The library's own flags where they matter for which symbols an
        # object references: optimised (inlining as in a release build),
        # hidden visibility, the same feature macro.
        "$cc" -std=c11 -O2 -D_GNU_SOURCE -fvisibility=hidden -fPIC \
            -I"$root/include" -I"$lib" -c "$src" -o "$objdir/$name.o"
    done
fi

# --- facts: one tab-separated line each -------------------------------------
#   layer RANK LAYERNAME MODULE
#   module MODULE
#   edge KIND FROM TO EVIDENCE
#   kernel MODULE SYMBOL
#   state FILE:LINE TEXT
facts="$work/facts"
: >"$facts"

rank=0
while read -r layer mods; do
    [[ -z "$layer" ]] && continue
    for m in $mods; do
        printf 'layer\t%d\t%s\t%s\n' "$rank" "$layer" "$m" >>"$facts"
    done
    rank=$((rank + 1))
done <<<"$LAYERS"

for f in "$lib"/*.c "$lib"/*.h; do
    printf 'module\t%s\n' "$(basename "${f%.*}")" >>"$facts"
done

# Includes of lib headers ("scalloc/scalloc.h" is the public header, not a
# module of lib/).
for f in "$lib"/*.c "$lib"/*.h; do
    from=$(basename "${f%.*}")
    awk -v from="$from" -v file="lib/$(basename "$f")" -v libdir="$lib" '
        /^[ \t]*#[ \t]*include[ \t]*"/ {
            hdr = $0
            sub(/^[^"]*"/, "", hdr)
            sub(/".*$/, "", hdr)
            if (hdr ~ /\//) next
            to = hdr
            sub(/\.h$/, "", to)
            if (to == from) next
            if ((getline junk < (libdir "/" hdr)) < 0) next # not a lib header
            close(libdir "/" hdr)
            printf "edge\tinclude\t%s\t%s\t%s:%d: #include \"%s\"\n", from, to, file, FNR, hdr
        }' "$f" >>"$facts"
done

# Symbols: who defines what (global symbols of any kind), who uses what.
defs="$work/defs"
: >"$defs"
for obj in "$objdir"/*.o; do
    m=$(basename "$obj" .o)
    nm -P -g --defined-only "$obj" | awk -v m="$m" '{ print $1 "\t" m }' >>"$defs"
done
for obj in "$objdir"/*.o; do
    m=$(basename "$obj" .o)
    nm -P -u "$obj" | awk -v m="$m" -v kernel="$KERNEL_SYMS" -v defs="$defs" '
        BEGIN {
            while ((getline line < defs) > 0) {
                split(line, f, "\t")
                owner[f[1]] = f[2]
            }
            n = split(kernel, k, " ")
            for (i = 1; i <= n; i++) is_kernel[k[i]] = 1
        }
        {
            s = $1
            sub(/@.*$/, "", s) # versioned references (sym@GLIBC_x)
            if (s in owner) {
                if (owner[s] != m)
                    printf "edge\tuse\t%s\t%s\tlib/%s.c uses %s (defined in lib/%s.c)\n", m, owner[s], m, s, owner[s]
            } else if (s in is_kernel && m != "os") {
                printf "kernel\t%s\t%s\n", m, s
            }
        }' >>"$facts"
done

# Span state transitions: a store, exchange or CAS on a span's `remote`
# word, or an assignment to it, outside span.c/span_pool.c (and their
# headers). Statements are joined up to their `;` so that a call split over
# lines is seen whole; the line reported is where the statement starts.
for f in "$lib"/*.c "$lib"/*.h; do
    case $(basename "$f") in span.c | span.h | span_pool.c | span_pool.h) continue ;; esac
    awk -v file="lib/$(basename "$f")" '
        function flush() {
            if (stmt ~ /atomic_(store|exchange|compare_exchange_weak|compare_exchange_strong|fetch_[a-z]+|init)(_explicit)?[ \t]*\([ \t]*&[^,]*(->|\.)remote[ \t]*,/ ||
                stmt ~ /(->|\.)remote[ \t]*=[^=]/) {
                text = stmt
                gsub(/[ \t]+/, " ", text)
                sub(/^ /, "", text)
                if (length(text) > 110) text = substr(text, 1, 107) "..."
                printf "state\t%s:%d\t%s\n", file, start, text
            }
            stmt = ""
        }
        {
            # Comments out first (they may span lines), so that neither
            # their text nor their lines count as the statement.
            line = $0
            out = ""
            while (line != "") {
                if (in_comment) {
                    p = index(line, "*/")
                    if (p == 0) { line = ""; break }
                    line = substr(line, p + 2); in_comment = 0
                } else {
                    p = index(line, "/*")
                    q = index(line, "//")
                    if (q && (p == 0 || q < p)) { out = out substr(line, 1, q - 1); line = ""; break }
                    if (p == 0) { out = out line; line = ""; break }
                    out = out substr(line, 1, p - 1) " "; line = substr(line, p + 2); in_comment = 1
                }
            }
            if (out ~ /^[ \t]*$/) next
            if (stmt == "") start = FNR
            stmt = stmt " " out
            if (out ~ /[;{}]/) flush()
        }
        END { flush() }' "$f" >>"$facts"
done

# --- analysis ----------------------------------------------------------------
awk -F'\t' '
    $1 == "layer" {
        if ($4 in rank) { dup_layer[$4] = 1 }
        rank[$4] = $2; lname[$4] = $3
        next
    }
    $1 == "module" {
        if (!($2 in present)) { present[$2] = 1; mods[++nm] = $2; idx[$2] = nm }
        next
    }
    $1 == "edge" {
        key = $3 SUBSEP $4
        if (!(key in ev)) { ekeys[++ne] = key; ev[key] = "" }
        ev[key] = ev[key] "\n    " $2 "  " $5
        if ($2 == "include") n_inc++; else n_use++
        next
    }
    $1 == "kernel" { kern[++nk] = $2 "\t" $3; next }
    $1 == "state" { st[++ns] = $2 "\t" $3; next }

    function layer_of(m) { return (m in rank) ? lname[m] " (" rank[m] ")" : "no layer" }

    END {
        bad = 0

        # 1. Every module placed.
        for (i = 1; i <= nm; i++) {
            m = mods[i]
            if (!(m in rank)) {
                printf "layering: module %s (lib/%s.*) has no layer: add it to LAYERS in tests/check_layering.sh and to lib/README.md\n", m, m
                unplaced++
            }
        }
        for (m in dup_layer) {
            printf "layering: module %s is listed in more than one layer\n", m
            unplaced++
        }

        # 2. Upward edges.
        for (e = 1; e <= ne; e++) {
            split(ekeys[e], p, SUBSEP)
            a = p[1]; b = p[2]
            adj[idx[a], idx[b]] = 1
            if ((a in rank) && (b in rank) && rank[b] + 0 > rank[a] + 0) {
                printf "layering: upward: %s [%s] -> %s [%s]%s\n", a, layer_of(a), b, layer_of(b), ev[ekeys[e]]
                upward++
            }
        }

        # 3. Cycles: modules that reach each other (transitive closure; a
        # few dozen modules, so cubic is nothing). Each strongly connected
        # group is printed with every edge inside it, and for each edge the
        # shortest cycle through it, so every cycle-making include or use
        # is named.
        for (i = 1; i <= nm; i++)
            for (j = 1; j <= nm; j++)
                reach[i, j] = ((i, j) in adj) ? 1 : 0
        for (k = 1; k <= nm; k++)
            for (i = 1; i <= nm; i++)
                if (reach[i, k])
                    for (j = 1; j <= nm; j++)
                        if (reach[k, j]) reach[i, j] = 1
        for (i = 1; i <= nm; i++) {
            if (done[i] || !reach[i, i]) continue
            members = ""; cnt = 0
            for (j = 1; j <= nm; j++)
                if (i == j || (reach[i, j] && reach[j, i])) {
                    done[j] = 1; grp[j] = i; cnt++
                    members = members (members == "" ? "" : " ") mods[j]
                }
            cycles++
            printf "layering: cycle of %d modules: %s\n", cnt, members
            for (e = 1; e <= ne; e++) {
                split(ekeys[e], p, SUBSEP)
                a = idx[p[1]]; b = idx[p[2]]
                if (grp[a] != i || grp[b] != i) continue
                dir = rank[p[2]] + 0 > rank[p[1]] + 0 ? "upward" : rank[p[2]] == rank[p[1]] ? "same layer" : "downward"
                printf "  %s -> %s  [%s]  (cycle: %s)%s\n", p[1], p[2], dir, shortest_cycle(a, b), ev[ekeys[e]]
            }
        }

        # 4. Kernel calls outside os.
        for (i = 1; i <= nk; i++) {
            split(kern[i], p, "\t")
            printf "layering: kernel call outside os: lib/%s.c calls %s (only os.c talks to the kernel)\n", p[1], p[2]
        }

        # 5. Span state writes outside span.c/span_pool.c.
        for (i = 1; i <= ns; i++) {
            split(st[i], p, "\t")
            printf "layering: span state written outside span.c/span_pool.c: %s: %s\n", p[1], p[2]
        }

        bad = unplaced + upward + cycles + nk + ns
        if (bad) {
            printf "layering: FAILED: %d unplaced modules, %d upward edges, %d cycles (groups of modules that depend on each other), %d kernel calls outside os, %d span state writes outside span.c/span_pool.c\n", unplaced, upward, cycles, nk, ns
            exit 1
        }
        nl = 0
        for (i = 1; i <= nm; i++)
            if (!(lname[mods[i]] in seen_l)) { seen_l[lname[mods[i]]] = 1; nl++ }
        printf "layering: OK: %d modules in %d layers, %d include and %d use edges: nothing upward, no cycle, kernel calls only in os, span states written only in span/span_pool\n", nm, nl, n_inc + 0, n_use + 0
        exit 0
    }

    # Path b -> ... -> a (breadth first, within the group), printed as the
    # cycle a -> b -> ... -> a.
    function shortest_cycle(a, b,    q, head, tail, u, v, from, path, seenb) {
        head = 1; tail = 1; q[1] = b; seenb[b] = 1
        while (head <= tail) {
            u = q[head++]
            if (u == a) break
            for (v = 1; v <= nm; v++)
                if (((u, v) in adj) && !(v in seenb) && grp[v] == grp[a]) {
                    seenb[v] = 1; from[v] = u; q[++tail] = v
                }
        }
        path = mods[a]
        for (v = a; v != b; v = from[v])
            path = mods[from[v]] " -> " path
        return mods[a] " -> " path
    }
' "$facts"
