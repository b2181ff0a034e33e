/*
 * Thread churn: scalloc.h, "Heaps", sc_heap_thread ("Threads are not
 * limited in number ... torn down when its thread exits (its spans are
 * handed on, none leaked)"), and "Introspection" (frontends and spans by
 * state in sc_heap_stats_t). DESIGN.md section 1, "The frontend", says how
 * a thread's exit hands its spans on.
 *
 * Contract lines checked here:
 *  - 1,000+ short-lived threads, each allocating, freeing blocks of the
 *    previous threads and exiting, do not make the heap grow: committed
 *    memory in the last waves is no more than in the early ones (no span is
 *    leaked by a thread's exit)                                [waves_do_not_leak_spans]
 *  - once everything is freed and the threads are gone, no span is left
 *    hot, floating or reusable, and no frontend is left        [waves_do_not_leak_spans]
 *  - hundreds of threads can use one heap at the same time, each with its
 *    own frontend, counted in the stats                         [many_live_threads]
 *
 * Runs under the standalone runner of test_util.h, not Criterion, so that
 * it also runs under ThreadSanitizer: `PROGRAM [NAME...] [--no-fork]`.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>

#define TEST_STANDALONE_RUNNER
#include "test_util.h"

enum {
    WAVE_THREADS = 16,
    WAVES = 63, /* 1,008 threads in all */
    MAX_PER_THREAD = 400,
    SCRATCH = 64,
};

typedef struct item_s {
    unsigned char *p;
    size_t n;
    uint64_t key;
} item_t;

/* Sizes for churn: small and medium classes, a rare big one, so every
 * thread touches several classes and so owns several hot spans at exit. */
static size_t churn_size(test_rng_t *r)
{
    unsigned pick = (unsigned)(test_rng_next(r) % 1000);
    if (pick < 700)
        return test_rng_range(r, 1, 256);
    if (pick < 990)
        return test_rng_range(r, 257, 8192);
    return test_rng_range(r, 8193, 200000);
}

/* Blocks handed from one wave to the next: wave w writes handoff[w % 2] and
 * frees what wave w - 1 left in handoff[(w + 1) % 2]. Waves are joined one
 * after another, so each slot has one user at a time. */
static item_t handoff[2][WAVE_THREADS][MAX_PER_THREAD];

typedef struct churn_arg_s {
    sc_heap_t *heap;
    unsigned wave;
    unsigned index;
    size_t per_thread;
} churn_arg_t;

static void *churn_main(void *arg)
{
    churn_arg_t *a = arg;
    test_rng_t rng = {((uint64_t)a->wave << 16) | a->index};
    /* Every other thread goes through an explicit frontend. */
    sc_thread_t *t = NULL;
    if (a->index % 2) {
        t = sc_heap_thread(a->heap);
        TEST_CHECK(t != NULL, "wave %u thread %u: sc_heap_thread failed", a->wave, a->index);
    }

    /* Free what the previous wave's thread of the same index left. These are
     * remote frees into spans whose owner has exited. */
    if (a->wave > 0) {
        item_t *prev = handoff[(a->wave + 1) % 2][a->index];
        for (size_t i = 0; i < a->per_thread; i++) {
            size_t bad = test_pattern_check(prev[i].p, prev[i].n, prev[i].key);
            TEST_CHECK(bad == TEST_PATTERN_OK,
                       "wave %u thread %u: inherited block %zu (%zu bytes) corrupted at %zu",
                       a->wave, a->index, i, prev[i].n, bad);
            if (t)
                sc_thread_free(t, prev[i].p);
            else
                sc_free(a->heap, prev[i].p);
            prev[i].p = NULL;
        }
    }

    /* Blocks for the next wave. */
    item_t *mine = handoff[a->wave % 2][a->index];
    for (size_t i = 0; i < a->per_thread; i++) {
        size_t n = churn_size(&rng);
        mine[i].p = t ? sc_thread_alloc(t, n) : sc_alloc(a->heap, n);
        TEST_CHECK(mine[i].p != NULL, "wave %u thread %u: alloc of %zu failed", a->wave, a->index,
                   n);
        mine[i].n = n;
        mine[i].key = ((uint64_t)a->wave << 40) ^ ((uint64_t)a->index << 32) ^ i;
        test_pattern_fill(mine[i].p, n, mine[i].key);
    }

    /* Scratch blocks freed before exit: local frees leave partly used hot
     * spans behind, which teardown must hand on. */
    void *scratch[SCRATCH];
    for (size_t i = 0; i < SCRATCH; i++) {
        scratch[i] = sc_alloc(a->heap, churn_size(&rng));
        TEST_CHECK(scratch[i] != NULL, "scratch alloc failed");
    }
    for (size_t i = 0; i < SCRATCH; i++)
        sc_free(a->heap, scratch[i]);
    return NULL;
}

static int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The median of n figures (a sorted copy; n <= WAVES). */
static size_t median_committed(const size_t *v, size_t n)
{
    size_t sorted[WAVES];
    memcpy(sorted, v, n * sizeof v[0]);
    qsort(sorted, n, sizeof sorted[0], size_cmp);
    return sorted[n / 2];
}

static void mt_churn_waves_do_not_leak_spans(void)
{
    /* Committed bytes include free memory the release policy keeps for
     * reuse for as long as the purge delay, however many waves fit in it:
     * a figure that depends on the machine's speed and load. This heap
     * gives free memory back whenever it allocates (retain_bytes = 1, no
     * delay), so committed shows what the waves hold and leak. */
    sc_heap_config_t cfg = {.name = "churn", .purge_delay_ms = SC_PURGE_NEVER, .retain_bytes = 1};
    sc_heap_t *h = sc_heap_create(&cfg);
    TEST_ASSERT(h != NULL);
    size_t per_thread = test_scaled(200, 50);
    if (per_thread > MAX_PER_THREAD)
        per_thread = MAX_PER_THREAD;
    static size_t committed[WAVES];
    static churn_arg_t args[WAVE_THREADS];
    pthread_t tids[WAVE_THREADS];

    for (unsigned w = 0; w < WAVES; w++) {
        for (unsigned i = 0; i < WAVE_THREADS; i++) {
            args[i] = (churn_arg_t){.heap = h, .wave = w, .index = i, .per_thread = per_thread};
            TEST_CHECK(pthread_create(&tids[i], NULL, churn_main, &args[i]) == 0,
                       "pthread_create failed in wave %u", w);
        }
        for (unsigned i = 0; i < WAVE_THREADS; i++)
            pthread_join(tids[i], NULL);
        sc_heap_stats_t st = test_stats(h);
        committed[w] = st.committed_bytes;
        /* Exactly the last wave's blocks are live. */
        TEST_CHECK(st.live_blocks == ((size_t)WAVE_THREADS * per_thread),
                   "wave %u: %zu live blocks, expected %zu", w, st.live_blocks,
                   (size_t)WAVE_THREADS * per_thread);
        TEST_CHECK(st.frontends == 0, "wave %u: %zu frontends left by exited threads", w,
                   st.frontends);
    }

    /* Steady state: the live set is the same size after every wave, so the
     * heap should stop growing after the first few. One leaked span per
     * thread would add 1,000 spans over the run, raising every later wave;
     * scheduling raises single waves (threads of one wave that ran late
     * and overlapped: seen once, 26 MiB against 17 MiB, on a machine
     * loaded with other tests), so the later waves are compared by their
     * median. */
    size_t early = 0;
    for (unsigned w = 0; w < WAVES / 4; w++)
        if (committed[w] > early)
            early = committed[w];
    size_t late = median_committed(committed + WAVES / 2, WAVES - WAVES / 2);
    size_t third = median_committed(committed + WAVES / 2, WAVES / 4);
    size_t final = median_committed(committed + WAVES - WAVES / 4, WAVES / 4);
    TEST_LOG("committed: wave 1 %zu KiB, max of first quarter %zu KiB, median of second half "
             "%zu KiB (third quarter %zu, last %zu), last wave %zu KiB",
             committed[0] >> 10, early >> 10, late >> 10, third >> 10, final >> 10,
             committed[WAVES - 1] >> 10);
    /* Scheduling makes each wave's figure vary by a few MiB; a quarter of
     * the early figure (at least 8 MiB) absorbs that, while one leaked
     * 32 KiB span per thread would add over 30 MiB. */
    size_t slack = early / 4 > ((size_t)8 << 20) ? early / 4 : ((size_t)8 << 20);
    TEST_CHECK(late <= (early + slack),
               "committed grew from %zu KiB (first waves) to %zu KiB (last waves)", early >> 10,
               late >> 10);
    TEST_CHECK(final <= (third + slack),
               "committed grew from %zu KiB (third quarter of the waves) to %zu KiB (last)",
               third >> 10, final >> 10);

    /* Free the last wave's blocks from this thread, which owns no span. */
    item_t *last = &handoff[(WAVES - 1) % 2][0][0];
    for (unsigned i = 0; i < WAVE_THREADS; i++) {
        for (size_t k = 0; k < per_thread; k++) {
            item_t *it = &last[(size_t)i * MAX_PER_THREAD + k];
            TEST_ASSERT(test_pattern_check(it->p, it->n, it->key) == TEST_PATTERN_OK);
            sc_free(h, it->p);
        }
    }
    sc_heap_stats_t st = test_stats(h);
    TEST_LOG("after all frees: hot %zu floating %zu reusable %zu free %zu frontends %zu",
             st.spans_hot, st.spans_floating, st.spans_reusable, st.spans_free, st.frontends);
    TEST_ASSERT(st.live_blocks == 0);
    TEST_ASSERT(st.live_bytes == 0);
    /* Every span's owner exited and every block is free: all spans must
     * have reached the pool. The main thread allocated nothing, so it holds
     * no hot span either. */
    size_t in_use = st.spans_hot + st.spans_floating + st.spans_reusable;
    TEST_CHECK(in_use == 0,
               "%zu spans not returned to the pool (hot %zu, floating %zu, "
               "reusable %zu)",
               in_use, st.spans_hot, st.spans_floating, st.spans_reusable);
    for (unsigned c = 0; c < SC_NUM_CLASSES; c++)
        TEST_CHECK(st.classes[c].spans == 0, "class %u still has %zu spans", c,
                   st.classes[c].spans);
    TEST_ASSERT(st.frontends <= 1);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */

enum { LIVE_THREADS = 256 };

typedef struct live_arg_s {
    sc_heap_t *heap;
    pthread_barrier_t *all_allocated;
    pthread_barrier_t *stats_taken;
    unsigned index;
} live_arg_t;

static void *live_main(void *arg)
{
    live_arg_t *a = arg;
    enum { K = 32 };
    item_t blocks[K];
    test_rng_t rng = {a->index + 1};
    for (unsigned i = 0; i < K; i++) {
        blocks[i].n = churn_size(&rng);
        blocks[i].p = sc_alloc(a->heap, blocks[i].n);
        TEST_CHECK(blocks[i].p != NULL, "thread %u: alloc failed", a->index);
        blocks[i].key = ((uint64_t)a->index << 32) | i;
        test_pattern_fill(blocks[i].p, blocks[i].n, blocks[i].key);
    }
    /* Everyone holds a frontend and live blocks at the same time here. */
    pthread_barrier_wait(a->all_allocated);
    pthread_barrier_wait(a->stats_taken);
    for (unsigned i = 0; i < K; i++) {
        TEST_CHECK(test_pattern_check(blocks[i].p, blocks[i].n, blocks[i].key) == TEST_PATTERN_OK,
                   "thread %u: block %u corrupted", a->index, i);
        sc_free(a->heap, blocks[i].p);
    }
    return NULL;
}

static void mt_churn_many_live_threads(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    static pthread_t tids[LIVE_THREADS];
    static live_arg_t args[LIVE_THREADS];
    pthread_barrier_t all_allocated, stats_taken;
    pthread_barrier_init(&all_allocated, NULL, LIVE_THREADS + 1);
    pthread_barrier_init(&stats_taken, NULL, LIVE_THREADS + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Small stacks: 256 threads need not reserve 2 GiB of stacks. */
    pthread_attr_setstacksize(&attr, (size_t)256 << 10);

    for (unsigned i = 0; i < LIVE_THREADS; i++) {
        args[i] = (live_arg_t){
            .heap = h, .all_allocated = &all_allocated, .stats_taken = &stats_taken, .index = i};
        TEST_CHECK(pthread_create(&tids[i], &attr, live_main, &args[i]) == 0,
                   "could not start thread %u", i);
    }
    pthread_barrier_wait(&all_allocated);
    sc_heap_stats_t st = test_stats(h);
    pthread_barrier_wait(&stats_taken);
    for (unsigned i = 0; i < LIVE_THREADS; i++)
        pthread_join(tids[i], NULL);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&all_allocated);
    pthread_barrier_destroy(&stats_taken);

    TEST_LOG("%d threads at once: %zu frontends, %zu live blocks, %zu hot spans", LIVE_THREADS,
             st.frontends, st.live_blocks, st.spans_hot);
    TEST_CHECK(st.frontends == LIVE_THREADS, "%zu frontends for %d live threads", st.frontends,
               LIVE_THREADS);
    TEST_ASSERT(st.live_blocks == ((size_t)LIVE_THREADS * 32));

    sc_heap_stats_t after = test_stats(h);
    TEST_ASSERT(after.live_blocks == 0);
    TEST_CHECK(after.frontends == 0, "%zu frontends after every thread exited", after.frontends);
    TEST_CHECK((after.spans_hot + after.spans_floating + after.spans_reusable) == 0,
               "spans left in use: hot %zu floating %zu reusable %zu", after.spans_hot,
               after.spans_floating, after.spans_reusable);
    sc_heap_destroy(h);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"mt_churn::waves_do_not_leak_spans", mt_churn_waves_do_not_leak_spans},
        {"mt_churn::many_live_threads", mt_churn_many_live_threads},
    };
    return test_run_cases(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
