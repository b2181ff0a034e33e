/*
 * threadtest: every thread allocates a batch of 64-byte objects, writes to
 * each, and frees the batch, for many rounds. All frees are local; this is
 * the allocator's thread-local fast path under parallel load.
 * One op = one allocation and its free.
 */
#include "bench_alloc.h"
#include "bench_util.h"

#define TT_OBJECT_SIZE 64

typedef struct tt_worker {
    bench_heap *heap;
    uint64_t objects; /* this thread's batch size */
    uint64_t rounds;
    uint64_t done;
    uint64_t failures;
} tt_worker;

static void *tt_thread(void *arg)
{
    tt_worker *w = arg;
    bench_thread *t = bench_thread_attach(w->heap);
    size_t bytes = w->objects * sizeof(void *);
    void **batch = bench_harness_alloc(bytes);
    if (t == NULL || batch == NULL) {
        w->failures++;
        goto out;
    }
    for (uint64_t r = 0; r < w->rounds; r++) {
        for (uint64_t i = 0; i < w->objects; i++) {
            uint64_t *p = bench_malloc(t, TT_OBJECT_SIZE);
            if (p == NULL) {
                w->failures++;
                batch[i] = NULL;
                continue;
            }
            p[0] = i; /* an object is used, not only handed out */
            batch[i] = p;
        }
        for (uint64_t i = 0; i < w->objects; i++) {
            uint64_t *p = batch[i];
            if (p == NULL)
                continue;
            if (p[0] != i)
                w->failures++;
            bench_free(t, p);
            w->done++;
        }
    }
out:
    bench_harness_free(batch, bytes);
    if (t != NULL)
        bench_thread_detach(t, 0);
    return NULL;
}

void wl_threadtest(const bench_params *p, bench_result *r)
{
    uint64_t objects = p->scale == BENCH_FULL ? 100000 : 10000; /* per round, all threads */
    uint64_t rounds = p->scale == BENCH_FULL ? 60 : 5;
    bench_heap *heap = bench_heap_create();
    tt_worker w[256] = {{0}};
    for (unsigned i = 0; i < p->threads; i++) {
        w[i].heap = heap;
        w[i].objects = bench_share(objects, p->threads, i);
        w[i].rounds = rounds;
    }
    double t0 = bench_now();
    if (heap == NULL || bench_run_threads(p->threads, tt_thread, w, sizeof w[0]) != 0)
        r->failures++;
    r->seconds = bench_now() - t0;
    for (unsigned i = 0; i < p->threads; i++) {
        r->ops += w[i].done;
        r->failures += w[i].failures;
    }
    r->expected_ops = objects * rounds;
    r->live_peak = objects * TT_OBJECT_SIZE;
    if (heap != NULL)
        bench_heap_destroy(heap);
}
