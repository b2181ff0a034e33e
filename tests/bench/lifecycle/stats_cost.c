/*
 * stats_cost: what one sc_heap_get_stats call costs (issue 16 §3: the
 * resident figure must not walk every page the heap ever used).
 *
 * One thread fills a default heap with N live 64-byte objects, writing
 * into each; sc_heap_get_stats is timed (median of R calls). Then all but
 * one object in every 65,536 are freed and sc_heap_trim gives the rest
 * back, so the heap keeps its address space (every span it ever bumped)
 * but holds little; the call is timed again. The table shows the heap's
 * reserved, committed and resident bytes at each point.
 *
 *   stats_cost [--objects N] [--reps R]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <scalloc/scalloc.h>
#include <string.h>

#include "lifecycle_bench.h"

enum { MAX_REPS = 101 };

static double time_stats(sc_heap_t *h, unsigned reps, sc_heap_stats_t *st)
{
    double t[MAX_REPS];
    for (unsigned r = 0; r < reps; r++) {
        double t0 = lb_now();
        sc_heap_get_stats(h, st);
        t[r] = lb_now() - t0;
    }
    return lb_median(t, reps) * 1e3;
}

static void row(const char *what, double ms, const sc_heap_stats_t *st)
{
    printf("| %s | %.3f | %.0f | %.1f | %.1f | %zu |\n", what, ms, lb_mib(st->reserved_bytes),
           lb_mib(st->committed_bytes), lb_mib(st->resident_bytes), st->live_blocks);
}

int main(int argc, char **argv)
{
    size_t objects = 3000000;
    unsigned reps = 5;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (lb_option(argc, argv, &i, "--objects", &v))
            objects = (size_t)lb_parse_count("--objects", v);
        else if (lb_option(argc, argv, &i, "--reps", &v))
            reps = (unsigned)lb_parse_count("--reps", v);
        else {
            fprintf(stderr, "usage: %s [--objects N] [--reps R]\n", argv[0]);
            return 64;
        }
    }
    if (reps == 0 || reps > MAX_REPS || objects == 0) {
        fprintf(stderr, "stats_cost: --reps 1..%d, --objects > 0\n", MAX_REPS);
        return 64;
    }
    void **p = malloc(objects * sizeof *p);
    sc_heap_t *h = sc_heap_create(NULL);
    if (p == NULL || h == NULL) {
        fprintf(stderr, "stats_cost: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < objects; i++) {
        p[i] = sc_alloc(h, 64);
        if (p[i] == NULL) {
            fprintf(stderr, "stats_cost: allocation failed\n");
            return 1;
        }
        memset(p[i], (int)(i & 0xff), 8);
    }
    printf("stats_cost: %zu live 64 B objects, one thread; median of %u calls\n\n", objects,
           reps);
    printf("| heap | sc_heap_get_stats ms | reserved MiB | committed MiB | resident MiB | live "
           "blocks |\n|---|---:|---:|---:|---:|---:|\n");
    sc_heap_stats_t st;
    double ms = time_stats(h, reps, &st);
    row("full", ms, &st);
    for (size_t i = 0; i < objects; i++)
        if (i % 65536 != 0)
            sc_free(h, p[i]);
    sc_heap_trim(h);
    ms = time_stats(h, reps, &st);
    row("after freeing all but 1 in 65,536 and sc_heap_trim", ms, &st);
    sc_heap_destroy(h);
    free(p);
    return 0;
}
