/*
 * Many threads on one heap: scalloc.h's file comment ("every call may run
 * concurrently with any other call on the same or other heaps, from any
 * thread"), "Allocation" (sc_alloc / sc_free from any thread, frees into
 * other threads' spans), "Heaps" (sc_heap_trim "may run while other
 * threads allocate") and "Introspection" (sc_heap_get_stats "may run while
 * other threads use the heap").
 *
 * Contract lines checked here:
 *  - 8+ threads allocate and free mixed sizes concurrently; every block keeps
 *    its contents until freed, by its allocator or by another thread
 *    (more than 1,000,000 operations per test)               [ring_handoff, producer_consumer]
 *  - sc_alloc/sc_free and sc_thread_alloc/sc_thread_free mix on the same
 *    blocks across threads                                    [ring_handoff]
 *  - sc_heap_get_stats and sc_heap_trim may run while others allocate
 *                                                            [producer_consumer]
 *  - sc_heap_trim from one thread, over and over, while others allocate
 *    batches and free them themselves: the spans their frees empty (kept
 *    for the class, armed hot spans) are given back and set up again under
 *    their owners' feet, and every block keeps its contents
 *                                                     [trim_while_cycling]
 *  - afterwards the stats are exact: nothing live, no huge blocks, and the
 *    exited threads' frontends are gone; destroy works          [both]
 *
 * Runs under the standalone runner of test_util.h, not Criterion, so that
 * it also runs under ThreadSanitizer: `PROGRAM [NAME...] [--no-fork]`.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>
#include <sched.h>

#define TEST_STANDALONE_RUNNER
#include "test_util.h"

enum {
    THREADS = 8,
    RING_CAP = 512,
    LOCAL_SLOTS = 256,
};

/* Required volume: the contract for this file asks for at least a million
 * allocator calls per test; the scale knob only adds to it. */
#define MIN_OPS 1000000u

/* Sizes for the stress mix: mostly small, some medium, very few big and
 * huge ones (those cost page faults rather than allocator work). */
static size_t stress_size(test_rng_t *r)
{
    unsigned pick = (unsigned)(test_rng_next(r) % 10000);
    if (pick < 9000)
        return test_rng_range(r, 0, 256);
    if (pick < 9950)
        return test_rng_range(r, 257, 4096);
    if (pick < 9998)
        return test_rng_range(r, 4097, 65536);
    return test_rng_range(r, 65537, 2 * SC_MAX_CLASS_SIZE);
}

typedef struct item_s {
    unsigned char *p;
    size_t n;
    uint64_t key;
} item_t;

static void item_check(const item_t *it, const char *who)
{
    size_t bad = test_pattern_check(it->p, it->n, it->key);
    TEST_CHECK(bad == TEST_PATTERN_OK, "%s: block %p (%zu bytes, key %llx) corrupted at %zu", who,
               (void *)it->p, it->n, (unsigned long long)it->key, bad);
}

/* ------------------------------------------------------------------------ */
/* A bounded ring with try-only operations: no thread ever waits on a ring, */
/* so a cycle of rings cannot deadlock.                                     */
/* ------------------------------------------------------------------------ */

typedef struct ring_s {
    pthread_mutex_t mu;
    size_t head; /* next to pop */
    size_t len;
    item_t items[RING_CAP];
} ring_t;

static int ring_try_push(ring_t *r, item_t it)
{
    int ok = 0;
    pthread_mutex_lock(&r->mu);
    if (r->len < RING_CAP) {
        r->items[(r->head + r->len) % RING_CAP] = it;
        r->len++;
        ok = 1;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static int ring_try_pop(ring_t *r, item_t *out)
{
    int ok = 0;
    pthread_mutex_lock(&r->mu);
    if (r->len > 0) {
        *out = r->items[r->head];
        r->head = (r->head + 1) % RING_CAP;
        r->len--;
        ok = 1;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Test 1: a ring of threads, each handing some blocks to its neighbour.    */
/* ------------------------------------------------------------------------ */

typedef struct ring_worker_s {
    sc_heap_t *heap;
    unsigned index;
    size_t iterations;
    ring_t *rings; /* THREADS of them; this worker pops rings[index] */
    size_t allocs, frees, handed, received;
} ring_worker_t;

static void *ring_worker_main(void *arg)
{
    ring_worker_t *w = arg;
    /* Half the threads go through an explicit frontend, half through the
     * implicit lookup, so both paths free each other's blocks. */
    sc_thread_t *t = NULL;
    if (w->index % 2) {
        t = sc_heap_thread(w->heap);
        TEST_CHECK(t != NULL, "thread %u: sc_heap_thread failed", w->index);
    }
    item_t slots[LOCAL_SLOTS];
    memset(slots, 0, sizeof slots);
    test_rng_t rng = {0x1000u + w->index};
    ring_t *next = &w->rings[(w->index + 1) % THREADS];
    ring_t *mine = &w->rings[w->index];
    uint64_t seq = 0;

    for (size_t it = 0; it < w->iterations; it++) {
        item_t *s = &slots[test_rng_next(&rng) % LOCAL_SLOTS];
        if (s->p != NULL) {
            item_check(s, "owner");
            /* A third of the blocks go to the neighbour, who frees them. */
            if (test_rng_next(&rng) % 3 == 0 && ring_try_push(next, *s)) {
                w->handed++;
            } else {
                if (t)
                    sc_thread_free(t, s->p);
                else
                    sc_free(w->heap, s->p);
                w->frees++;
            }
            s->p = NULL;
        }
        size_t n = stress_size(&rng);
        s->p = t ? sc_thread_alloc(t, n) : sc_alloc(w->heap, n);
        TEST_CHECK(s->p != NULL, "thread %u: alloc of %zu failed", w->index, n);
        s->n = n;
        s->key = ((uint64_t)w->index << 56) ^ seq++ ^ (test_rng_next(&rng) << 20);
        test_pattern_fill(s->p, n, s->key);
        w->allocs++;

        item_t got;
        if (ring_try_pop(mine, &got)) {
            item_check(&got, "receiver");
            TEST_CHECK(sc_heap_of(got.p) == w->heap, "received block %p not in the heap",
                       (void *)got.p);
            if (t)
                sc_thread_free(t, got.p);
            else
                sc_free(w->heap, got.p);
            w->received++;
            w->frees++;
        }
    }
    for (size_t i = 0; i < LOCAL_SLOTS; i++) {
        if (slots[i].p == NULL)
            continue;
        item_check(&slots[i], "owner at exit");
        sc_free(w->heap, slots[i].p);
        w->frees++;
    }
    return NULL;
}

static void mt_stress_ring_handoff(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    static ring_t rings[THREADS];
    static ring_worker_t workers[THREADS];
    pthread_t tids[THREADS];
    /* Each iteration is one allocation plus up to two frees; allocations
     * alone reach MIN_OPS / 2, so frees bring the total past MIN_OPS. */
    size_t per_thread = test_scaled(MIN_OPS / 2 / THREADS + 1000, MIN_OPS / 2 / THREADS + 1000);

    for (unsigned i = 0; i < THREADS; i++) {
        memset(&rings[i], 0, sizeof rings[i]);
        pthread_mutex_init(&rings[i].mu, NULL);
        workers[i] =
            (ring_worker_t){.heap = h, .index = i, .iterations = per_thread, .rings = rings};
    }
    for (unsigned i = 0; i < THREADS; i++)
        TEST_ASSERT(pthread_create(&tids[i], NULL, ring_worker_main, &workers[i]) == 0);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(tids[i], NULL);

    /* Blocks still in rings were handed over but never received: the main
     * thread frees them, a thread that allocated none of them. */
    size_t allocs = 0, frees = 0, handed = 0, received = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        item_t it;
        while (ring_try_pop(&rings[i], &it)) {
            item_check(&it, "main drain");
            sc_free(h, it.p);
            frees++;
        }
        allocs += workers[i].allocs;
        frees += workers[i].frees;
        handed += workers[i].handed;
        received += workers[i].received;
        pthread_mutex_destroy(&rings[i].mu);
    }
    TEST_LOG("ring_handoff: %zu allocs, %zu frees, %zu handed over, %zu freed by receiver", allocs,
             frees, handed, received);
    TEST_CHECK(allocs == frees, "%zu allocations but %zu frees", allocs, frees);
    TEST_CHECK((allocs + frees) >= MIN_OPS, "only %zu operations", allocs + frees);
    /* How many blocks cross over depends on scheduling (under valgrind
     * threads run one at a time): require that some did, never a share. */
    TEST_CHECK(received > 0, "no cross-thread frees (%zu allocations)", allocs);

    sc_heap_stats_t st = test_stats(h);
    TEST_CHECK(st.live_blocks == 0, "live blocks %zu after all frees", st.live_blocks);
    TEST_CHECK(st.live_bytes == 0, "live bytes %zu after all frees", st.live_bytes);
    TEST_ASSERT(st.requested_bytes == 0);
    TEST_ASSERT(st.huge_blocks == 0);
    TEST_ASSERT(st.huge_bytes == 0);
    for (unsigned c = 0; c < SC_NUM_CLASSES; c++)
        TEST_CHECK(st.classes[c].live_blocks == 0, "class %u: %zu live blocks", c,
                   st.classes[c].live_blocks);
    /* The workers exited; only the main thread may still have a frontend. */
    TEST_CHECK(st.frontends <= 1, "%zu frontends after the workers exited", st.frontends);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* Test 2: producer/consumer pairs with blocking hand-off; the main thread   */
/* reads stats and trims concurrently.                                       */
/* ------------------------------------------------------------------------ */

enum { PAIRS = THREADS / 2 };

typedef struct channel_s {
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    size_t head, len;
    item_t items[RING_CAP];
} channel_t;

static void channel_push(channel_t *c, item_t it)
{
    pthread_mutex_lock(&c->mu);
    while (c->len == RING_CAP)
        pthread_cond_wait(&c->not_full, &c->mu);
    c->items[(c->head + c->len) % RING_CAP] = it;
    c->len++;
    pthread_cond_signal(&c->not_empty);
    pthread_mutex_unlock(&c->mu);
}

static item_t channel_pop(channel_t *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->len == 0)
        pthread_cond_wait(&c->not_empty, &c->mu);
    item_t it = c->items[c->head];
    c->head = (c->head + 1) % RING_CAP;
    c->len--;
    pthread_cond_signal(&c->not_full);
    pthread_mutex_unlock(&c->mu);
    return it;
}

typedef struct pc_arg_s {
    sc_heap_t *heap;
    channel_t *chan;
    unsigned index;
    size_t count;
    atomic_size_t *done_threads;
} pc_arg_t;

static void *producer_main(void *arg)
{
    pc_arg_t *a = arg;
    test_rng_t rng = {0x2000u + a->index};
    for (size_t i = 0; i < a->count; i++) {
        item_t it;
        it.n = stress_size(&rng);
        it.p = sc_alloc(a->heap, it.n);
        TEST_CHECK(it.p != NULL, "producer %u: sc_alloc(%zu) failed", a->index, it.n);
        it.key = ((uint64_t)a->index << 48) + i;
        test_pattern_fill(it.p, it.n, it.key);
        /* Some blocks never leave the producer: local frees interleave with
         * the remote ones arriving at the same spans. */
        if (i % 4 == 3) {
            item_check(&it, "producer");
            sc_free(a->heap, it.p);
            continue;
        }
        channel_push(a->chan, it);
    }
    /* A NULL block tells the consumer this producer is done. */
    channel_push(a->chan, (item_t){.p = NULL});
    atomic_fetch_add(a->done_threads, 1);
    return NULL;
}

static void *consumer_main(void *arg)
{
    pc_arg_t *a = arg;
    for (;;) {
        item_t it = channel_pop(a->chan);
        if (it.p == NULL)
            break;
        item_check(&it, "consumer");
        TEST_CHECK(sc_heap_owns(a->heap, it.p), "consumed block %p not owned", (void *)it.p);
        sc_free(a->heap, it.p);
    }
    atomic_fetch_add(a->done_threads, 1);
    return NULL;
}

static void mt_stress_producer_consumer(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    static channel_t chans[PAIRS];
    static pc_arg_t prod[PAIRS], cons[PAIRS];
    pthread_t ptid[PAIRS], ctid[PAIRS];
    atomic_size_t done_threads;
    atomic_init(&done_threads, 0);
    /* Every block is one alloc and one free: MIN_OPS / 2 blocks in all. */
    size_t per_producer = test_scaled(MIN_OPS / 2 / PAIRS + 1000, MIN_OPS / 2 / PAIRS + 1000);

    for (unsigned i = 0; i < PAIRS; i++) {
        memset(&chans[i], 0, sizeof chans[i]);
        pthread_mutex_init(&chans[i].mu, NULL);
        pthread_cond_init(&chans[i].not_full, NULL);
        pthread_cond_init(&chans[i].not_empty, NULL);
        prod[i] = (pc_arg_t){.heap = h,
                             .chan = &chans[i],
                             .index = i,
                             .count = per_producer,
                             .done_threads = &done_threads};
        cons[i] = prod[i];
        TEST_ASSERT(pthread_create(&ctid[i], NULL, consumer_main, &cons[i]) == 0);
        TEST_ASSERT(pthread_create(&ptid[i], NULL, producer_main, &prod[i]) == 0);
    }

    /* While they run: stats snapshots must be sane, and trimming must not
     * disturb anyone. The loop ends when all 2*PAIRS threads have finished,
     * which they do on their own (bounded work, no dependence on this loop). */
    size_t snapshots = 0;
    size_t total_blocks = per_producer * PAIRS;
    while (atomic_load(&done_threads) < 2 * PAIRS) {
        sc_heap_stats_t st = test_stats(h);
        TEST_CHECK(st.live_blocks <= (total_blocks + THREADS),
                   "snapshot claims %zu live blocks, at most %zu exist", st.live_blocks,
                   total_blocks);
        if (++snapshots % 64 == 0)
            sc_heap_trim(h);
        /* Give the workers the CPU: on two cores this loop must not starve
         * them. */
        sched_yield();
    }
    for (unsigned i = 0; i < PAIRS; i++) {
        pthread_join(ptid[i], NULL);
        pthread_join(ctid[i], NULL);
        pthread_mutex_destroy(&chans[i].mu);
        pthread_cond_destroy(&chans[i].not_full);
        pthread_cond_destroy(&chans[i].not_empty);
    }
    TEST_LOG("producer_consumer: %zu blocks, %zu stats snapshots during the run", total_blocks,
             snapshots);

    sc_heap_stats_t st = test_stats(h);
    TEST_CHECK(st.live_blocks == 0, "live blocks %zu after all frees", st.live_blocks);
    TEST_ASSERT(st.live_bytes == 0);
    TEST_ASSERT(st.huge_blocks == 0);
    TEST_CHECK(st.frontends <= 1, "%zu frontends after the workers exited", st.frontends);
    sc_heap_destroy(h);
}

enum { CYCLE_THREADS = 4, CYCLE_BATCH = 3000 };

typedef struct cycle_arg_s {
    sc_heap_t *heap;
    unsigned index;
    size_t rounds;
    atomic_int *done_threads;
} cycle_arg_t;

/* Batches of mixed sizes (mostly small, some up to 64 KiB), each block
 * filled, then checked and freed by this thread; a short pause in the
 * middle of some rounds lets the trimmer find the spans empty. */
static void *cycle_main(void *argp)
{
    cycle_arg_t *a = argp;
    static _Thread_local void *blocks[CYCLE_BATCH];
    static _Thread_local size_t sizes[CYCLE_BATCH];
    test_rng_t rng = {1000003u * (a->index + 1)};
    for (size_t r = 0; r < a->rounds; r++) {
        size_t n = 1 + (size_t)(test_rng_next(&rng) % CYCLE_BATCH);
        for (size_t i = 0; i < n; i++) {
            unsigned pick = (unsigned)(test_rng_next(&rng) % 100);
            sizes[i] = pick < 90 ? test_rng_range(&rng, 1, 512)
                                 : pick < 99 ? test_rng_range(&rng, 513, 8192)
                                             : test_rng_range(&rng, 8193, 65536);
            blocks[i] = sc_alloc(a->heap, sizes[i]);
            TEST_ASSERT(blocks[i] != NULL);
            memset(blocks[i], (int)((i + r) & 0xff), sizes[i]);
        }
        for (size_t i = 0; i < n; i++) {
            const unsigned char *q = blocks[i];
            TEST_CHECK(q[0] == (unsigned char)(i + r) && q[sizes[i] - 1] == q[0],
                       "thread %u round %zu block %zu changed", a->index, r, i);
            sc_free(a->heap, blocks[i]);
        }
        if (r % 16 == 0)
            sched_yield();
    }
    atomic_fetch_add(a->done_threads, 1);
    return NULL;
}

static void mt_stress_trim_while_cycling(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    atomic_int done_threads;
    atomic_init(&done_threads, 0);
    /* About 1,000,000 allocator calls in all. */
    size_t rounds = test_scaled(1000000 / (CYCLE_THREADS * CYCLE_BATCH) + 1, 80);
    pthread_t tids[CYCLE_THREADS];
    cycle_arg_t args[CYCLE_THREADS];
    for (unsigned i = 0; i < CYCLE_THREADS; i++) {
        args[i] = (cycle_arg_t){h, i, rounds, &done_threads};
        TEST_ASSERT(pthread_create(&tids[i], NULL, cycle_main, &args[i]) == 0);
    }
    size_t trims = 0;
    while (atomic_load(&done_threads) < CYCLE_THREADS) {
        sc_heap_trim(h);
        trims++;
        sched_yield();
    }
    for (unsigned i = 0; i < CYCLE_THREADS; i++)
        pthread_join(tids[i], NULL);
    TEST_LOG("trim_while_cycling: %zu rounds per thread, %zu trims", rounds, trims);
    sc_heap_stats_t st = test_stats(h);
    TEST_CHECK(st.live_blocks == 0, "live blocks %zu after all frees", st.live_blocks);
    sc_heap_destroy(h);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"mt_stress::ring_handoff", mt_stress_ring_handoff},
        {"mt_stress::producer_consumer", mt_stress_producer_consumer},
        {"mt_stress::trim_while_cycling", mt_stress_trim_while_cycling},
    };
    return test_run_cases(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
