/*
 * mixed sizes (sh8bench style): every thread keeps a ring of live blocks;
 * each step frees the oldest block and allocates a new one whose size is
 * drawn from a histogram between 8 B and 160 KiB that favours small sizes,
 * as real programs do. Each new block is written once per 4 KiB page and at
 * both ends, so the pages a block spans are really used and RSS reflects
 * the live set. One op = one free + one allocation.
 */
#include "bench_alloc.h"
#include "bench_util.h"

/* Size buckets and their weights in tenths of a percent (sum 1000). The
 * mean block is about 2.4 KiB; about half the blocks are 64 B or less. */
static const bench_size_bucket mixed_hist[] = {
    {8, 32, 300},          {33, 64, 200},         {65, 128, 150},
    {129, 256, 100},       {257, 512, 80},        {513, 1024, 60},
    {1025, 4096, 50},      {4097, 16384, 35},     {16385, 65536, 15},
    {65537, 160 * 1024, 10},
};
#define MIXED_BUCKETS (sizeof mixed_hist / sizeof mixed_hist[0])

typedef struct mixed_slot {
    unsigned char *p;
    size_t size;
} mixed_slot;

typedef struct mixed_worker {
    bench_heap *heap;
    uint64_t steps;
    size_t ring;
    uint64_t seed;
    size_t live_peak;
    uint64_t done;
    uint64_t failures;
} mixed_worker;

static size_t mixed_size(bench_rng *rng)
{
    return bench_hist_size(rng, mixed_hist, MIXED_BUCKETS);
}

static void *mixed_thread(void *arg)
{
    mixed_worker *w = arg;
    bench_thread *t = bench_thread_attach(w->heap);
    size_t ring_bytes = w->ring * sizeof(mixed_slot);
    mixed_slot *ring = bench_harness_alloc(ring_bytes);
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    size_t live = 0;
    if (t == NULL || ring == NULL) {
        w->failures++;
        goto out;
    }
    for (uint64_t k = 0; k < w->steps; k++) {
        mixed_slot *s = &ring[k % w->ring];
        unsigned char mark = (unsigned char)(k % w->ring);
        if (s->p != NULL) {
            if (!bench_check_pages(s->p, s->size, mark))
                w->failures++;
            bench_free(t, s->p);
            live -= s->size;
        }
        size_t n = mixed_size(&rng);
        s->p = bench_malloc(t, n);
        s->size = n;
        if (s->p == NULL) {
            w->failures++;
            s->size = 0;
        } else {
            bench_touch_pages(s->p, n, mark);
            live += n;
        }
        if (live > w->live_peak)
            w->live_peak = live;
        w->done++;
    }
    for (size_t i = 0; i < w->ring; i++)
        if (ring[i].p != NULL)
            bench_free(t, ring[i].p);
out:
    bench_harness_free(ring, ring_bytes);
    if (t != NULL)
        bench_thread_detach(t, 0);
    return NULL;
}

void wl_mixed(const bench_params *p, bench_result *r)
{
    uint64_t total = p->scale == BENCH_FULL ? 2000000 : 50000;
    size_t ring = p->scale == BENCH_FULL ? 500 : 100;
    bench_heap *heap = bench_heap_create();
    mixed_worker w[256] = {{0}};
    if (heap == NULL) {
        r->failures++;
        return;
    }
    for (unsigned i = 0; i < p->threads; i++) {
        w[i].heap = heap;
        w[i].steps = bench_share(total, p->threads, i);
        w[i].ring = ring;
        w[i].seed = p->seed * 1000 + i;
    }
    double t0 = bench_now();
    if (bench_run_threads(p->threads, mixed_thread, w, sizeof w[0]) != 0)
        r->failures++;
    r->seconds = bench_now() - t0;
    for (unsigned i = 0; i < p->threads; i++) {
        r->ops += w[i].done;
        r->failures += w[i].failures;
        r->live_peak += w[i].live_peak;
    }
    r->expected_ops = total;
    bench_heap_destroy(heap);
}
