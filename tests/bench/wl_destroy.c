/*
 * heap destroy: T threads each allocate their share of N blocks (16..256 B,
 * every block written), then everything is released at once, timed:
 *   destroy    - the heap is destroyed with its blocks live (scalloc:
 *                sc_heap_destroy; jemalloc: tcaches destroyed, then
 *                arena.<i>.destroy; mimalloc: every thread destroys its own
 *                mi_heap, in parallel, since mimalloc heaps are per thread).
 *                Allocators without heaps (glibc, tcmalloc) cannot do it.
 *   free-each  - every thread frees its own blocks one by one.
 * Reported: blocks released per second, RSS before and after the release.
 * One op = one block released.
 */
#include "bench_alloc.h"
#include "bench_util.h"

#include <pthread.h>

#define DESTROY_MIN 16
#define DESTROY_MAX 256

typedef struct destroy_shared {
    bench_heap *heap;
    int destroy; /* 1: destroy the heap; 0: free each block */
    pthread_barrier_t allocated;
    pthread_barrier_t start;
    pthread_barrier_t released;
} destroy_shared;

typedef struct destroy_worker {
    destroy_shared *sh;
    uint64_t count;
    uint64_t seed;
    size_t live;
    uint64_t done;
    uint64_t failures;
} destroy_worker;

static void *destroy_thread(void *arg)
{
    destroy_worker *w = arg;
    destroy_shared *sh = w->sh;
    bench_thread *t = bench_thread_attach(sh->heap);
    size_t bytes = w->count * sizeof(void *);
    unsigned char **blocks = bench_harness_alloc(bytes);
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    int ok = t != NULL && blocks != NULL;
    if (!ok)
        w->failures++;
    for (uint64_t i = 0; ok && i < w->count; i++) {
        size_t n = bench_rng_range(&rng, DESTROY_MIN, DESTROY_MAX);
        blocks[i] = bench_malloc(t, n);
        if (blocks[i] == NULL) {
            w->failures++;
            continue;
        }
        blocks[i][0] = (unsigned char)i;
        blocks[i][n - 1] = (unsigned char)i;
        w->live += n;
    }
    pthread_barrier_wait(&sh->allocated);
    pthread_barrier_wait(&sh->start);
    if (ok && sh->destroy) {
        w->done = w->count; /* released by the heap destroy below */
    } else {
        for (uint64_t i = 0; ok && i < w->count; i++) {
            if (blocks[i] != NULL) {
                bench_free(t, blocks[i]);
                w->done++;
            }
        }
    }
    if (t != NULL)
        bench_thread_detach(t, sh->destroy);
    pthread_barrier_wait(&sh->released);
    bench_harness_free(blocks, bytes);
    return NULL;
}

static void destroy_run(const bench_params *p, bench_result *r, int destroy)
{
    uint64_t total = p->scale == BENCH_FULL ? 500000 : 20000;
    unsigned n = p->threads;
    destroy_shared sh;
    destroy_worker w[256] = {{0}};
    pthread_t ids[256];
    if (destroy && !BENCH_CAN_DESTROY) {
        r->unsupported = 1;
        return;
    }
    sh.heap = bench_heap_create();
    sh.destroy = destroy;
    if (sh.heap == NULL) {
        r->failures++;
        return;
    }
    pthread_barrier_init(&sh.allocated, NULL, n + 1);
    pthread_barrier_init(&sh.start, NULL, n + 1);
    pthread_barrier_init(&sh.released, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        w[i].sh = &sh;
        w[i].count = bench_share(total, n, i);
        w[i].seed = p->seed * 1000 + i;
    }
    if (bench_spawn(n, ids, destroy_thread, w, sizeof w[0]) != 0) {
        r->failures++; /* cannot happen at these thread counts */
        return;
    }
    pthread_barrier_wait(&sh.allocated);
    bench_extra(r, "rss_before_kb", (double)bench_status_kib("VmRSS"));
    for (unsigned i = 0; i < n; i++)
        r->live_peak += w[i].live;
    double t0 = bench_now();
    pthread_barrier_wait(&sh.start);
    pthread_barrier_wait(&sh.released);
    if (destroy)
        bench_heap_destroy(sh.heap);
    r->seconds = bench_now() - t0;
    bench_extra(r, "rss_after_kb", (double)bench_status_kib("VmRSS"));
    bench_join(n, ids);
    if (!destroy)
        bench_heap_destroy(sh.heap);
    for (unsigned i = 0; i < n; i++) {
        r->ops += w[i].done;
        r->failures += w[i].failures;
    }
    r->expected_ops = total;
    pthread_barrier_destroy(&sh.allocated);
    pthread_barrier_destroy(&sh.start);
    pthread_barrier_destroy(&sh.released);
}

void wl_destroy(const bench_params *p, bench_result *r) { destroy_run(p, r, 1); }
void wl_free_each(const bench_params *p, bench_result *r) { destroy_run(p, r, 0); }
