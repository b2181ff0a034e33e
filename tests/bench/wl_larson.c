/*
 * larson: a server simulation. Each of T "lineages" owns an array of slots
 * holding blocks of random size (8..1000 B). A worker thread repeatedly
 * frees a random slot and refills it with a new block of random size. After
 * each round the worker exits and a new thread takes over the same slots, so
 * it frees blocks allocated by a thread that is now dead (and the first
 * round frees blocks made by the main thread). Main fills the slots before
 * the clock starts and frees what is left after it stops.
 * One op = one free + one allocation.
 */
#include "bench_alloc.h"
#include "bench_util.h"

#include <string.h>

#define LARSON_MIN 8
#define LARSON_MAX 1000

typedef struct larson_slot {
    unsigned char *p;
    size_t size;
} larson_slot;

typedef struct larson_lineage {
    bench_heap *heap;
    larson_slot *slots;
    size_t nslots;
    uint64_t ops_per_round;
    bench_rng rng;
    size_t live;
    size_t live_peak;
    uint64_t done;
    uint64_t failures;
} larson_lineage;

static int larson_fill(bench_thread *t, larson_lineage *l, size_t i)
{
    size_t n = bench_rng_range(&l->rng, LARSON_MIN, LARSON_MAX);
    unsigned char *p = bench_malloc(t, n);
    l->slots[i].p = p;
    l->slots[i].size = p != NULL ? n : 0;
    if (p == NULL)
        return -1;
    /* first and last byte: cheap proof the whole block is usable */
    p[0] = (unsigned char)n;
    p[n - 1] = (unsigned char)i;
    l->live += n;
    return 0;
}

static void larson_release(bench_thread *t, larson_lineage *l, size_t i)
{
    larson_slot *s = &l->slots[i];
    if (s->p == NULL)
        return;
    if (s->p[0] != (unsigned char)s->size || s->p[s->size - 1] != (unsigned char)i)
        l->failures++;
    bench_free(t, s->p);
    l->live -= s->size;
    s->p = NULL;
}

static void *larson_thread(void *arg)
{
    larson_lineage *l = arg;
    bench_thread *t = bench_thread_attach(l->heap);
    if (t == NULL) {
        l->failures++;
        return NULL;
    }
    for (uint64_t k = 0; k < l->ops_per_round; k++) {
        size_t i = (size_t)(bench_rng_next(&l->rng) % l->nslots);
        larson_release(t, l, i);
        if (larson_fill(t, l, i) != 0)
            l->failures++;
        if (l->live > l->live_peak)
            l->live_peak = l->live;
        l->done++;
    }
    bench_thread_detach(t, 0);
    return NULL;
}

void wl_larson(const bench_params *p, bench_result *r)
{
    size_t nslots = p->scale == BENCH_FULL ? 1000 : 200;
    uint64_t rounds = p->scale == BENCH_FULL ? 20 : 4;
    uint64_t total = p->scale == BENCH_FULL ? 4000000 : 100000;
    unsigned n = p->threads;
    bench_heap *heap = bench_heap_create();
    bench_thread *main_t = heap != NULL ? bench_thread_attach(heap) : NULL;
    larson_lineage *lin = bench_harness_alloc(n * sizeof *lin);
    if (heap == NULL || main_t == NULL || lin == NULL) {
        r->failures++;
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        lin[i].heap = heap;
        lin[i].nslots = nslots;
        lin[i].slots = bench_harness_alloc(nslots * sizeof(larson_slot));
        lin[i].ops_per_round = bench_share(total, n, i) / rounds;
        bench_rng_seed(&lin[i].rng, p->seed * 1000 + i);
        r->expected_ops += lin[i].ops_per_round * rounds;
        for (size_t s = 0; s < nslots; s++)
            if (larson_fill(main_t, &lin[i], s) != 0)
                r->failures++;
        lin[i].live_peak = lin[i].live;
    }
    double t0 = bench_now();
    for (uint64_t round = 0; round < rounds; round++)
        if (bench_run_threads(n, larson_thread, lin, sizeof lin[0]) != 0)
            r->failures++;
    r->seconds = bench_now() - t0;
    for (unsigned i = 0; i < n; i++) {
        for (size_t s = 0; s < nslots; s++)
            larson_release(main_t, &lin[i], s);
        r->ops += lin[i].done;
        r->failures += lin[i].failures;
        r->live_peak += lin[i].live_peak;
        if (lin[i].live != 0)
            r->failures++;
        bench_harness_free(lin[i].slots, nslots * sizeof(larson_slot));
    }
    bench_harness_free(lin, n * sizeof *lin);
    bench_thread_detach(main_t, 0);
    bench_heap_destroy(heap);
}
