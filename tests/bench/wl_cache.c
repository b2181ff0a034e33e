/*
 * cache-thrash and cache-scratch: false sharing caused by the allocator.
 *
 * cache-thrash (active): every thread repeatedly allocates an 8-byte object,
 * writes each of its bytes CACHE_REPS times, and frees it. An allocator that
 * hands objects on one cache line to different threads makes the writes
 * fight over that line.
 *
 * cache-scratch (passive): the main thread allocates one 8-byte object per
 * thread, back to back, and gives object i to thread i, which frees it first
 * and then runs the cache-thrash loop. An allocator that recycles that
 * remote-freed object for the freeing thread puts neighbours' objects on
 * one line again.
 *
 * The total work is fixed and split over the threads, so on P cores the
 * ideal time at T >= P threads is 1/P of the one-thread time; the report
 * gives each allocator's throughput at T against its own at one thread.
 * One op = one allocate/write/free iteration.
 */
#include "bench_alloc.h"
#include "bench_util.h"

#define CACHE_OBJECT 8
#define CACHE_REPS 64

typedef struct cache_worker {
    bench_heap *heap;
    unsigned char *handed; /* cache-scratch: object to free first */
    uint64_t iterations;
    uint64_t done;
    uint64_t failures;
} cache_worker;

static void *cache_thread(void *arg)
{
    cache_worker *w = arg;
    bench_thread *t = bench_thread_attach(w->heap);
    if (t == NULL) {
        w->failures++;
        return NULL;
    }
    if (w->handed != NULL)
        bench_free(t, w->handed);
    for (uint64_t i = 0; i < w->iterations; i++) {
        volatile unsigned char *p = bench_malloc(t, CACHE_OBJECT);
        if (p == NULL) {
            w->failures++;
            continue;
        }
        for (unsigned b = 0; b < CACHE_OBJECT; b++)
            p[b] = 0;
        for (unsigned rep = 0; rep < CACHE_REPS; rep++)
            for (unsigned b = 0; b < CACHE_OBJECT; b++)
                p[b] = (unsigned char)(p[b] + 1);
        if (p[0] != CACHE_REPS || p[CACHE_OBJECT - 1] != CACHE_REPS)
            w->failures++;
        bench_free(t, (void *)p);
        w->done++;
    }
    bench_thread_detach(t, 0);
    return NULL;
}

static void cache_run(const bench_params *p, bench_result *r, int scratch)
{
    uint64_t total = p->scale == BENCH_FULL ? 200000 : 10000;
    bench_heap *heap = bench_heap_create();
    bench_thread *main_t = heap != NULL ? bench_thread_attach(heap) : NULL;
    cache_worker w[256] = {{0}};
    if (heap == NULL || main_t == NULL) {
        r->failures++;
        return;
    }
    for (unsigned i = 0; i < p->threads; i++) {
        w[i].heap = heap;
        w[i].iterations = bench_share(total, p->threads, i);
        if (scratch) {
            w[i].handed = bench_malloc(main_t, CACHE_OBJECT);
            if (w[i].handed == NULL)
                r->failures++;
        }
    }
    double t0 = bench_now();
    if (bench_run_threads(p->threads, cache_thread, w, sizeof w[0]) != 0)
        r->failures++;
    r->seconds = bench_now() - t0;
    for (unsigned i = 0; i < p->threads; i++) {
        r->ops += w[i].done;
        r->failures += w[i].failures;
    }
    r->expected_ops = total;
    bench_thread_detach(main_t, 0);
    bench_heap_destroy(heap);
}

void wl_cache_thrash(const bench_params *p, bench_result *r) { cache_run(p, r, 0); }
void wl_cache_scratch(const bench_params *p, bench_result *r) { cache_run(p, r, 1); }
