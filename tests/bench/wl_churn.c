/*
 * thread churn (mstress style): threads are short-lived and objects outlive
 * them. A shared table of slots holds live objects. In each of several
 * generations T fresh threads run; each step picks a random slot and either
 * puts a new object there (freeing the one it replaces), or frees the
 * object there, or takes it into a small thread-local list (transferring it
 * to this thread). When a thread ends it puts its list back into random
 * slots, and the next generation's threads free what the dead ones made.
 * Every object carries a header and a pattern derived from a per-object
 * cookie; every object is verified before it is freed, so an allocator that
 * hands out overlapping or recycled-too-early memory is caught.
 * One op = one step. Live bytes are summed at generation boundaries.
 */
#include "bench_alloc.h"
#include "bench_util.h"

#include <stdatomic.h>
#include <string.h>

#define CHURN_HEADER 24 /* size, cookie, check word */
#define CHURN_LOCAL 16  /* objects a thread may hold privately */
#define CHURN_CHECK 0xc4a5e7d1b2f30968ull

typedef struct churn_shared {
    bench_heap *heap;
    _Atomic(uint64_t *) *slots;
    size_t nslots;
} churn_shared;

typedef struct churn_worker {
    churn_shared *sh;
    uint64_t steps;
    uint64_t seed;
    int64_t live_delta; /* bytes allocated minus bytes freed */
    uint64_t allocs, frees;
    uint64_t done;
    uint64_t failures;
} churn_worker;

static size_t churn_size(bench_rng *rng)
{
    unsigned pick = (unsigned)(bench_rng_next(rng) % 100);
    if (pick < 90)
        return bench_rng_range(rng, 32, 512);
    if (pick < 99)
        return bench_rng_range(rng, 513, 4096);
    return bench_rng_range(rng, 4097, 32768);
}

static uint64_t *churn_make(bench_thread *t, churn_worker *w, bench_rng *rng)
{
    size_t n = churn_size(rng);
    uint64_t *p = bench_malloc(t, n);
    if (p == NULL) {
        w->failures++;
        return NULL;
    }
    uint64_t cookie = bench_rng_next(rng);
    p[0] = n;
    p[1] = cookie;
    p[2] = n ^ cookie ^ CHURN_CHECK;
    /* whole words strictly before the last byte, which carries its own mark */
    for (size_t word = 3; (word + 1) * 8 < n; word++)
        p[word] = cookie * (word + 1);
    ((unsigned char *)p)[n - 1] = (unsigned char)cookie;
    w->allocs++;
    w->live_delta += (int64_t)n;
    return p;
}

/* Checks everything the object should hold; 1 when intact. */
static int churn_intact(const uint64_t *p)
{
    size_t n = p[0];
    uint64_t cookie = p[1];
    if ((n ^ cookie ^ CHURN_CHECK) != p[2] || n < 32 || n > 32768)
        return 0;
    for (size_t word = 3; (word + 1) * 8 < n; word++)
        if (p[word] != cookie * (word + 1))
            return 0;
    return ((const unsigned char *)p)[n - 1] == (unsigned char)cookie;
}

static void churn_drop(bench_thread *t, churn_worker *w, uint64_t *p)
{
    if (p == NULL)
        return;
    if (!churn_intact(p)) {
        w->failures++;
        return; /* leak it: freeing a corrupted block helps nobody */
    }
    w->live_delta -= (int64_t)p[0];
    w->frees++;
    bench_free(t, p);
}

static void *churn_thread(void *arg)
{
    churn_worker *w = arg;
    churn_shared *sh = w->sh;
    bench_thread *t = bench_thread_attach(sh->heap);
    uint64_t *local[CHURN_LOCAL];
    unsigned nlocal = 0;
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    if (t == NULL) {
        w->failures++;
        return NULL;
    }
    for (uint64_t k = 0; k < w->steps; k++) {
        uint64_t r = bench_rng_next(&rng);
        size_t slot = (size_t)(r % sh->nslots);
        switch ((r >> 40) & 3) {
        case 0:
        case 1: {
            uint64_t *p = churn_make(t, w, &rng);
            if (p != NULL)
                churn_drop(t, w, atomic_exchange(&sh->slots[slot], p));
            break;
        }
        case 2: {
            uint64_t *p = atomic_exchange(&sh->slots[slot], NULL);
            if (p == NULL)
                break;
            if (!churn_intact(p)) {
                w->failures++;
                break;
            }
            if (nlocal == CHURN_LOCAL) {
                churn_drop(t, w, local[0]);
                memmove(local, local + 1, (CHURN_LOCAL - 1) * sizeof local[0]);
                nlocal--;
            }
            local[nlocal++] = p;
            break;
        }
        default:
            churn_drop(t, w, atomic_exchange(&sh->slots[slot], NULL));
            break;
        }
        w->done++;
    }
    /* The thread dies; what it holds goes on living in the shared table. */
    for (unsigned i = 0; i < nlocal; i++) {
        size_t slot = (size_t)(bench_rng_next(&rng) % sh->nslots);
        churn_drop(t, w, atomic_exchange(&sh->slots[slot], local[i]));
    }
    bench_thread_detach(t, 0);
    return NULL;
}

void wl_churn(const bench_params *p, bench_result *r)
{
    size_t nslots = p->scale == BENCH_FULL ? 8192 : 1024;
    uint64_t generations = p->scale == BENCH_FULL ? 20 : 4;
    uint64_t per_generation = p->scale == BENCH_FULL ? 60000 : 5000;
    unsigned n = p->threads;
    churn_shared sh = {0};
    churn_worker w[256] = {{0}};
    sh.nslots = nslots;
    sh.heap = bench_heap_create();
    sh.slots = bench_harness_alloc(nslots * sizeof sh.slots[0]);
    if (sh.heap == NULL || sh.slots == NULL) {
        r->failures++;
        return;
    }
    for (size_t i = 0; i < nslots; i++)
        atomic_init(&sh.slots[i], NULL);
    int64_t live = 0;
    uint64_t allocs = 0, frees = 0;
    double t0 = bench_now();
    for (uint64_t g = 0; g < generations; g++) {
        for (unsigned i = 0; i < n; i++) {
            churn_worker fresh = {0};
            fresh.sh = &sh;
            fresh.steps = bench_share(per_generation, n, i);
            fresh.seed = (p->seed * 1000 + g) * 1000 + i;
            w[i] = fresh;
        }
        if (bench_run_threads(n, churn_thread, w, sizeof w[0]) != 0)
            r->failures++;
        for (unsigned i = 0; i < n; i++) {
            live += w[i].live_delta;
            allocs += w[i].allocs;
            frees += w[i].frees;
            r->ops += w[i].done;
            r->failures += w[i].failures;
        }
        if (live > 0 && (size_t)live > r->live_peak)
            r->live_peak = (size_t)live;
    }
    r->seconds = bench_now() - t0;
    r->expected_ops = generations * per_generation;

    /* Main drains the table; every object is verified once more. */
    bench_thread *main_t = bench_thread_attach(sh.heap);
    churn_worker drain = {0};
    drain.sh = &sh;
    if (main_t == NULL) {
        r->failures++;
    } else {
        for (size_t i = 0; i < nslots; i++)
            churn_drop(main_t, &drain, atomic_exchange(&sh.slots[i], NULL));
        bench_thread_detach(main_t, 0);
    }
    live += drain.live_delta;
    frees += drain.frees;
    r->failures += drain.failures;
    if (allocs != frees || live != 0)
        r->failures++;
    bench_extra(r, "objects", (double)allocs);
    bench_harness_free(sh.slots, nslots * sizeof sh.slots[0]);
    bench_heap_destroy(sh.heap);
}
