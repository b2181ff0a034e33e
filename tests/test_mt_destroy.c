/*
 * Destroying a heap that many threads used: scalloc.h, "Heaps",
 * sc_heap_destroy's lifecycle rules ("threads that used the heap may keep
 * running, use other heaps, create new heaps (a new heap may reuse the old
 * one's address and handle) and exit at any time").
 *
 * Contract lines checked here:
 *  - a heap holding live blocks allocated by several threads (some exited,
 *    some alive and idle) can be destroyed                     [destroy_then_new_heap]
 *  - the threads still alive then use a NEW heap normally, many times over:
 *    whatever each thread cached about the destroyed heap (its frontend, a
 *    lookup cache) must not leak into the new one, even when the new heap
 *    lands at the old one's address                          [destroy_then_new_heap]
 *  - threads that used a destroyed heap exit cleanly (their frontend
 *    teardown must not touch the destroyed heap)               [exit_after_destroy]
 *  - a heap may be destroyed by a thread that never used it, and heaps
 *    used by the same threads but not destroyed are unaffected
 *                                                            [destroy_from_other_thread]
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
    WORKERS = 6,   /* stay alive across every cycle */
    TRANSIENT = 4, /* per cycle: allocate, exit, are joined before destroy */
    PER_THREAD = 300,
};

typedef struct item_s {
    unsigned char *p;
    size_t n;
    uint64_t key;
} item_t;

static size_t destroy_size(test_rng_t *r)
{
    unsigned pick = (unsigned)(test_rng_next(r) % 100);
    if (pick < 80)
        return test_rng_range(r, 0, 512);
    if (pick < 99)
        return test_rng_range(r, 513, 16384);
    return test_rng_range(r, 16385, 3 * SC_MAX_CLASS_SIZE); /* some huge */
}

/* The heap of the current cycle. Written by the main thread only between
 * barriers, read by workers after them, so the barrier orders the access. */
static sc_heap_t *current_heap;
static pthread_barrier_t cycle_start, cycle_used, cycle_freed, cycle_destroyed;
static size_t cycles;
/* Blocks each worker leaves to its neighbour within a cycle. */
static item_t shared[WORKERS][PER_THREAD];

static void alloc_items(sc_heap_t *h, sc_thread_t *t, item_t *items, size_t count, uint64_t seed)
{
    test_rng_t rng = {seed};
    for (size_t i = 0; i < count; i++) {
        size_t n = destroy_size(&rng);
        items[i].p = t ? sc_thread_alloc(t, n) : sc_alloc(h, n);
        TEST_CHECK(items[i].p != NULL, "alloc of %zu failed (seed %llu)", n,
                   (unsigned long long)seed);
        TEST_CHECK(sc_heap_of(items[i].p) == h, "new block %p attributed to %p, not %p",
                   (void *)items[i].p, (void *)sc_heap_of(items[i].p), (void *)h);
        items[i].n = n;
        items[i].key = seed * 7919 + i;
        test_pattern_fill(items[i].p, n, items[i].key);
    }
}

static void check_items(const item_t *items, size_t count, const char *who)
{
    for (size_t i = 0; i < count; i++) {
        size_t bad = test_pattern_check(items[i].p, items[i].n, items[i].key);
        TEST_CHECK(bad == TEST_PATTERN_OK, "%s: block %zu (%p, %zu bytes) corrupted at %zu", who, i,
                   (void *)items[i].p, items[i].n, bad);
    }
}

typedef struct worker_arg_s {
    unsigned index;
} worker_arg_t;

/* A long-lived worker. Every cycle: allocate from the cycle's heap (some
 * through an explicit frontend), free its own scratch, free the neighbour's
 * shared blocks (remote frees), then keep a set of live blocks and go idle
 * while the main thread destroys the heap. */
static void *worker_main(void *arg)
{
    worker_arg_t *a = arg;
    item_t kept[PER_THREAD];
    for (size_t c = 0; c < cycles; c++) {
        pthread_barrier_wait(&cycle_start);
        sc_heap_t *h = current_heap;
        sc_thread_t *t = NULL;
        if ((a->index + c) % 2) {
            t = sc_heap_thread(h);
            TEST_CHECK(t != NULL, "worker %u cycle %zu: sc_heap_thread failed", a->index, c);
        }
        uint64_t base = ((uint64_t)c << 32) | ((uint64_t)a->index << 16);
        alloc_items(h, t, shared[a->index], PER_THREAD, base | 1);
        alloc_items(h, t, kept, PER_THREAD, base | 2);
        /* Free half of this thread's kept blocks locally right away. */
        for (size_t i = 0; i < PER_THREAD; i += 2) {
            if (t)
                sc_thread_free(t, kept[i].p);
            else
                sc_free(h, kept[i].p);
        }
        pthread_barrier_wait(&cycle_used);

        /* Free the neighbour's shared blocks: cross-thread frees. */
        item_t *theirs = shared[(a->index + 1) % WORKERS];
        check_items(theirs, PER_THREAD, "neighbour's block");
        for (size_t i = 0; i < PER_THREAD; i++)
            sc_free(h, theirs[i].p);
        for (size_t i = 1; i < PER_THREAD; i += 2)
            TEST_CHECK(test_pattern_check(kept[i].p, kept[i].n, kept[i].key) == TEST_PATTERN_OK,
                       "worker %u: kept block %zu corrupted", a->index, i);
        pthread_barrier_wait(&cycle_freed);
        /* Idle (alive, holding live blocks in h) while main destroys h. */
        pthread_barrier_wait(&cycle_destroyed);
    }
    return NULL;
}

typedef struct transient_arg_s {
    sc_heap_t *heap;
    uint64_t seed;
} transient_arg_t;

static void *transient_main(void *arg)
{
    transient_arg_t *a = arg;
    item_t items[64];
    alloc_items(a->heap, NULL, items, 64, a->seed);
    /* Leave them live: the heap's destroy takes them. */
    return NULL;
}

static void mt_destroy_destroy_then_new_heap(void)
{
    cycles = test_scaled(30, 5);
    static pthread_t tids[WORKERS];
    static worker_arg_t args[WORKERS];
    pthread_barrier_init(&cycle_start, NULL, WORKERS + 1);
    pthread_barrier_init(&cycle_used, NULL, WORKERS + 1);
    pthread_barrier_init(&cycle_freed, NULL, WORKERS + 1);
    pthread_barrier_init(&cycle_destroyed, NULL, WORKERS + 1);
    for (unsigned i = 0; i < WORKERS; i++) {
        args[i].index = i;
        TEST_ASSERT(pthread_create(&tids[i], NULL, worker_main, &args[i]) == 0);
    }

    size_t same_address = 0;
    sc_heap_t *previous = NULL;
    for (size_t c = 0; c < cycles; c++) {
        current_heap = sc_heap_create(NULL);
        TEST_CHECK(current_heap != NULL, "cycle %zu: sc_heap_create failed", c);
        if (current_heap == previous)
            same_address++;
        pthread_barrier_wait(&cycle_start);
        pthread_barrier_wait(&cycle_used);
        pthread_barrier_wait(&cycle_freed);

        /* Workers hold PER_THREAD / 2 live blocks each; transient threads
         * add their own and exit before the destroy. */
        pthread_t tt[TRANSIENT];
        transient_arg_t ta[TRANSIENT];
        for (unsigned i = 0; i < TRANSIENT; i++) {
            ta[i] = (transient_arg_t){.heap = current_heap, .seed = (c << 8) | i};
            TEST_ASSERT(pthread_create(&tt[i], NULL, transient_main, &ta[i]) == 0);
        }
        for (unsigned i = 0; i < TRANSIENT; i++)
            pthread_join(tt[i], NULL);

        sc_heap_stats_t st = test_stats(current_heap);
        size_t expected = (size_t)WORKERS * (PER_THREAD / 2) + (size_t)TRANSIENT * 64;
        TEST_CHECK(st.live_blocks == expected, "cycle %zu: %zu live blocks, expected %zu", c,
                   st.live_blocks, expected);
        TEST_CHECK(st.frontends == WORKERS, "cycle %zu: %zu frontends, expected %d", c,
                   st.frontends, WORKERS);

        sc_heap_destroy(current_heap);
        previous = current_heap;
        pthread_barrier_wait(&cycle_destroyed);
    }
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(tids[i], NULL);
    pthread_barrier_destroy(&cycle_start);
    pthread_barrier_destroy(&cycle_used);
    pthread_barrier_destroy(&cycle_freed);
    pthread_barrier_destroy(&cycle_destroyed);
    TEST_LOG("%zu cycles, new heap at the destroyed one's address %zu times", cycles, same_address);

    /* The workers exited after their last heap was destroyed (exit after
     * destroy); a fresh heap still works for this thread. */
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    void *p = sc_alloc(h, 100);
    TEST_ASSERT(p != NULL);
    sc_free(h, p);
    TEST_ASSERT(test_stats(h).frontends == 1);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */

typedef struct exit_arg_s {
    sc_heap_t *doomed;
    sc_heap_t *survivor;
    pthread_barrier_t *allocated;
    pthread_barrier_t *destroyed;
    item_t survivor_items[100];
    unsigned index;
} exit_arg_t;

/* Uses two heaps, waits while one is destroyed, checks the other, exits. */
static void *exit_main(void *arg)
{
    exit_arg_t *a = arg;
    item_t doomed_items[100];
    sc_thread_t *t = sc_heap_thread(a->doomed);
    TEST_CHECK(t != NULL, "sc_heap_thread failed");
    alloc_items(a->doomed, t, doomed_items, 100, 1000 + a->index);
    alloc_items(a->survivor, NULL, a->survivor_items, 100, 2000 + a->index);
    pthread_barrier_wait(a->allocated);
    pthread_barrier_wait(a->destroyed);
    /* The survivor heap is untouched by the other's destroy and keeps
     * serving this thread. */
    check_items(a->survivor_items, 100, "survivor block after the other heap's destroy");
    for (size_t i = 0; i < 50; i++)
        sc_free(a->survivor, a->survivor_items[i].p);
    item_t more[50];
    alloc_items(a->survivor, NULL, more, 50, 3000 + a->index);
    for (size_t i = 0; i < 50; i++)
        a->survivor_items[i] = more[i];
    /* Exiting now runs this thread's teardown for both heaps: the
     * destroyed one must be skipped safely. */
    return NULL;
}

typedef struct destroyer_arg_s {
    sc_heap_t *heap;
} destroyer_arg_t;

static void *destroyer_main(void *arg)
{
    destroyer_arg_t *a = arg;
    sc_heap_destroy(a->heap);
    return NULL;
}

static void run_exit_after_destroy(int destroy_from_helper)
{
    enum { N = 8 };
    sc_heap_t *doomed = sc_heap_create(NULL);
    sc_heap_t *survivor = sc_heap_create(NULL);
    TEST_ASSERT(doomed != NULL);
    TEST_ASSERT(survivor != NULL);
    pthread_barrier_t allocated, destroyed;
    pthread_barrier_init(&allocated, NULL, N + 1);
    pthread_barrier_init(&destroyed, NULL, N + 1);
    static exit_arg_t args[N];
    pthread_t tids[N];
    for (unsigned i = 0; i < N; i++) {
        args[i] = (exit_arg_t){.doomed = doomed,
                               .survivor = survivor,
                               .allocated = &allocated,
                               .destroyed = &destroyed,
                               .index = i};
        TEST_ASSERT(pthread_create(&tids[i], NULL, exit_main, &args[i]) == 0);
    }
    pthread_barrier_wait(&allocated);
    if (destroy_from_helper) {
        /* A thread that never touched the heap destroys it. */
        destroyer_arg_t d = {doomed};
        pthread_t dt;
        TEST_ASSERT(pthread_create(&dt, NULL, destroyer_main, &d) == 0);
        pthread_join(dt, NULL);
    } else {
        sc_heap_destroy(doomed);
    }
    pthread_barrier_wait(&destroyed);
    for (unsigned i = 0; i < N; i++)
        pthread_join(tids[i], NULL);
    pthread_barrier_destroy(&allocated);
    pthread_barrier_destroy(&destroyed);

    sc_heap_stats_t st = test_stats(survivor);
    TEST_CHECK(st.live_blocks == ((size_t)N * 100), "survivor has %zu live blocks", st.live_blocks);
    TEST_CHECK(st.frontends == 0, "survivor keeps %zu frontends of exited threads", st.frontends);
    for (unsigned i = 0; i < N; i++) {
        for (size_t k = 0; k < 100; k++) {
            item_t *it = &args[i].survivor_items[k];
            TEST_CHECK(test_pattern_check(it->p, it->n, it->key) == TEST_PATTERN_OK,
                       "survivor block %u/%zu corrupted", i, k);
            sc_free(survivor, it->p);
        }
    }
    TEST_ASSERT(test_stats(survivor).live_blocks == 0);
    sc_heap_destroy(survivor);
}

static void mt_destroy_exit_after_destroy(void)
{
    size_t rounds = test_scaled(10, 2);
    for (size_t r = 0; r < rounds; r++)
        run_exit_after_destroy(0);
}

static void mt_destroy_destroy_from_other_thread(void)
{
    size_t rounds = test_scaled(10, 2);
    for (size_t r = 0; r < rounds; r++)
        run_exit_after_destroy(1);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"mt_destroy::destroy_then_new_heap", mt_destroy_destroy_then_new_heap},
        {"mt_destroy::exit_after_destroy", mt_destroy_exit_after_destroy},
        {"mt_destroy::destroy_from_other_thread", mt_destroy_destroy_from_other_thread},
    };
    return test_run_cases(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
