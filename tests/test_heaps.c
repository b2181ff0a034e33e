/*
 * Heaps: scalloc.h, "Heaps" (sc_heap_create, sc_heap_destroy with its
 * lifecycle rules, sc_heap_reset, sc_heap_name, sc_heap_thread) and the
 * file comment's "Many heaps" promise (DESIGN.md section 2: "at least
 * thousands at once"). The heap's configuration is test_config.c, trim is
 * test_trim_stats.c, destroy racing with other threads is test_mt_destroy.c,
 * fork is test_fork.c.
 *
 * Contract lines checked here:
 *  - two heaps are isolated: neither owns the other's blocks, stats count
 *    only their own, destroying one leaves the other's contents intact
 *                                                    [two_heaps_isolated]
 *  - thousands, and 10,000, heaps coexist with default settings, each with
 *    live blocks (of one size class, and of four), every block attributed
 *    to its own heap; destroying them leaves nothing that grows from one
 *    round to the next               [thousand_heaps_at_once, ten_thousand_heaps*]
 *  - heaps can be created and destroyed in a loop without leaking memory
 *    or address space                                [create_destroy_1000]
 *  - destroy frees every block at once (live objects included, small, big
 *    and huge) and gives the address range back    [destroy_with_live_objects]
 *  - sc_heap_destroy of a heap that held 64 MiB (small, big and huge
 *    blocks, allocated by several threads) brings the process's RSS back
 *    within 1 MiB of what it was before the heap was created, and its
 *    address space back too                        [destroy_gives_rss_back]
 *  - after sc_heap_destroy, threads that used the old heap and live on use
 *    a NEW heap (often at the old one's address and handle) normally:
 *    their blocks belong to the new heap, stats count them and their
 *    frontends, no misuse is reported      [new_heap_in_threads_of_old_one]
 *  - sc_heap_reset frees every block (huge ones too) and keeps the heap and
 *    its frontends usable, in this and other threads; an unrelated heap is
 *    untouched; calloc still zeroes; without reset_keep_bytes nearly
 *    nothing stays committed; with it, at most that much (plus a small
 *    allowance) stays committed, and some stays warm
 *                                 [reset_keeps_heap_usable, reset_*_keep*]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_util.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ------------------------------------------------------------------------ */
/* Process figures                                                          */
/* ------------------------------------------------------------------------ */

typedef struct proc_sizes_s {
    size_t virt;
    size_t rss;
} proc_sizes_t;

/* The process's address space and resident memory from /proc/self/statm. */
static proc_sizes_t proc_sizes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    unsigned long pages_virt = 0, pages_rss = 0;
    int got = fscanf(f, "%lu %lu", &pages_virt, &pages_rss);
    fclose(f);
    cr_assert_eq(got, 2);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (proc_sizes_t){pages_virt * page, pages_rss * page};
}

/* Under ASan the process's RSS also holds shadow memory (an eighth of
 * every range the heap touched, kept after the range is gone) and the
 * sanitizer's own allocator with its quarantine, so process-wide figures
 * say nothing about the heap there. The heap's own figures still do. */
#if defined(SCALLOC_SANITIZE_ADDRESS) || defined(SCALLOC_SANITIZE_THREAD)
#define PROCESS_FIGURES_DISTORTED 1
#else
#define PROCESS_FIGURES_DISTORTED 0
#endif


static void check_blocks(const test_block_t *b, size_t count, const char *when)
{
    for (size_t i = 0; i < count; i++) {
        size_t bad = test_pattern_check(b[i].p, b[i].n, b[i].key);
        cr_assert_eq(bad, TEST_PATTERN_OK, "%s: block %zu (%p, %zu bytes) corrupted at %zu",
                     when, i, (void *)b[i].p, b[i].n, bad);
    }
}

/* ------------------------------------------------------------------------ */
/* Isolation and many heaps                                                 */
/* ------------------------------------------------------------------------ */

Test(heaps, two_heaps_isolated)
{
    enum { N = 5000 };
    static test_block_t a_blocks[N], b_blocks[N];
    sc_heap_config_t ca = {.name = "heap-a"};
    sc_heap_config_t cb = {.name = "heap-b"};
    sc_heap_t *a = sc_heap_create(&ca);
    sc_heap_t *b = sc_heap_create(&cb);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);

    /* Interleave the two heaps' allocations so any shared state would mix
     * their blocks. */
    for (size_t i = 0; i < N; i += 500) {
        test_fill_blocks(a, a_blocks + i, 500, 1 + i);
        test_fill_blocks(b, b_blocks + i, 500, 100001 + i);
    }
    for (size_t i = 0; i < N; i++) {
        cr_assert(sc_heap_owns(a, a_blocks[i].p));
        cr_assert_not(sc_heap_owns(b, a_blocks[i].p), "heap b owns heap a's block %zu", i);
        cr_assert(sc_heap_owns(b, b_blocks[i].p));
        cr_assert_not(sc_heap_owns(a, b_blocks[i].p), "heap a owns heap b's block %zu", i);
        cr_assert_eq(sc_heap_of(a_blocks[i].p), a);
        cr_assert_eq(sc_heap_of(b_blocks[i].p), b);
    }
    cr_assert_eq(test_stats(a).live_blocks, N);
    cr_assert_eq(test_stats(b).live_blocks, N);

    /* Freeing half of a: b neither notices in stats nor in contents. */
    for (size_t i = 0; i < N; i += 2)
        sc_free(a, a_blocks[i].p);
    cr_assert_eq(test_stats(a).live_blocks, N / 2);
    cr_assert_eq(test_stats(b).live_blocks, N);
    check_blocks(b_blocks, N, "after freeing half of heap a");

    /* Destroying a (with N/2 live blocks) leaves b untouched and usable. */
    sc_heap_destroy(a);
    check_blocks(b_blocks, N, "after destroying heap a");
    cr_assert_eq(test_stats(b).live_blocks, N);
    cr_assert_str_eq(sc_heap_name(b), "heap-b");
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(sc_heap_of(b_blocks[i].p), b);
    /* b keeps allocating after a's spans and address range are gone. */
    static test_block_t more[N];
    test_fill_blocks(b, more, N, 777);
    check_blocks(more, N, "new blocks of heap b");
    for (size_t i = 0; i < N; i++) {
        sc_free(b, b_blocks[i].p);
        sc_free(b, more[i].p);
    }
    cr_assert_eq(test_stats(b).live_blocks, 0);
    sc_heap_destroy(b);
}

Test(heaps, thousand_heaps_at_once)
{
    enum { HEAPS = 1000 };
    static sc_heap_t *heaps[HEAPS];
    static void *blocks[HEAPS];
    for (size_t i = 0; i < HEAPS; i++) {
        heaps[i] = sc_heap_create(NULL);
        cr_assert_not_null(heaps[i], "heap %zu of %d could not be created (errno %d)", i, HEAPS,
                           errno);
        blocks[i] = sc_alloc(heaps[i], 64 + i % 200);
        cr_assert_not_null(blocks[i]);
        test_pattern_fill(blocks[i], 64, i);
    }
    for (size_t i = 0; i < HEAPS; i++) {
        cr_assert_eq(sc_heap_of(blocks[i]), heaps[i], "block of heap %zu attributed elsewhere",
                     i);
        cr_assert_eq(test_pattern_check(blocks[i], 64, i), TEST_PATTERN_OK,
                     "block of heap %zu corrupted", i);
        cr_assert_not(sc_heap_owns(heaps[(i + 1) % HEAPS], blocks[i]));
    }
    for (size_t i = 0; i < HEAPS; i++) {
        if (i % 2)
            sc_free(heaps[i], blocks[i]);
        sc_heap_destroy(heaps[i]);
    }
}

enum { MANY_HEAPS = 10000, MANY_MAX_BLOCKS = 4 };

/* Creates MANY_HEAPS heaps with default settings, allocates blocks of
 * `kinds` sizes in each (and a huge block in every 100th), checks them all
 * while they coexist, destroys them all. Returns the process's RSS after
 * the destroy. */
static size_t many_heaps_cycle(unsigned kinds, int cycle)
{
    static sc_heap_t *heaps[MANY_HEAPS];
    static unsigned char *blocks[MANY_HEAPS][MANY_MAX_BLOCKS];
    static const size_t kind_sizes[MANY_MAX_BLOCKS] = {24, 300, 5000, 70000};
    proc_sizes_t before = proc_sizes();
    for (size_t i = 0; i < MANY_HEAPS; i++) {
        errno = 0;
        heaps[i] = sc_heap_create(NULL);
        cr_assert_not_null(heaps[i], "heap %zu of %d could not be created (errno %d)", i,
                           MANY_HEAPS, errno);
        for (unsigned k = 0; k < kinds; k++) {
            size_t n = k == 0 && i % 100 == 99 ? 3 * MiB : kind_sizes[k];
            errno = 0;
            blocks[i][k] = sc_alloc(heaps[i], n);
            cr_assert_not_null(blocks[i][k], "heap %zu of %d: sc_alloc(%zu) failed (errno %d)",
                               i, MANY_HEAPS, n, errno);
            test_pattern_fill(blocks[i][k], n < 4096 ? n : 4096, i * 8 + k);
        }
    }
    proc_sizes_t all = proc_sizes();
    for (size_t i = 0; i < MANY_HEAPS; i++) {
        for (unsigned k = 0; k < kinds; k++) {
            unsigned char *p = blocks[i][k];
            cr_assert_eq(sc_heap_of(p), heaps[i], "block of heap %zu attributed to %p", i,
                         (void *)sc_heap_of(p));
            cr_assert(sc_heap_owns(heaps[i], p));
            cr_assert_not(sc_heap_owns(heaps[(i + 1) % MANY_HEAPS], p));
            size_t n = k == 0 && i % 100 == 99 ? 3 * MiB : kind_sizes[k];
            size_t bad = test_pattern_check(p, n < 4096 ? n : 4096, i * 8 + k);
            cr_assert_eq(bad, TEST_PATTERN_OK, "block %u of heap %zu corrupted at %zu", k, i,
                         bad);
        }
        cr_assert_eq(test_stats(heaps[i]).live_blocks, kinds, "heap %zu: wrong live count", i);
    }
    /* Half freed first, half taken by the destroy. */
    for (size_t i = 0; i < MANY_HEAPS; i++) {
        if (i % 2)
            for (unsigned k = 0; k < kinds; k++)
                sc_free(heaps[i], blocks[i][k]);
        sc_heap_destroy(heaps[i]);
    }
    proc_sizes_t after = proc_sizes();
    cr_log_info("cycle %d, %d heaps with %u block sizes each: +%zu MiB resident (%zu KiB per "
                "heap), +%zu GiB address space while alive; after destroying all %+ld KiB",
                cycle, MANY_HEAPS, kinds, (all.rss - before.rss) >> 20,
                (all.rss - before.rss) / MANY_HEAPS >> 10, (all.virt - before.virt) >> 30,
                ((long)after.rss - (long)before.rss) / 1024);
    return after.rss;
}

Test(heaps, ten_thousand_heaps, .timeout = 240)
{
    size_t rss[3];
    for (int cycle = 0; cycle < 3; cycle++)
        rss[cycle] = many_heaps_cycle(1, cycle);
    /* What destroyed heaps leave behind (bookkeeping in type-stable memory)
     * is reused by the next heaps: the third cycle ends where the second
     * did. */
    (void)rss;
#if !PROCESS_FIGURES_DISTORTED
    cr_assert_leq(rss[2], rss[1] + MiB, "RSS after destroying 10,000 heaps grew from %zu to "
                                        "%zu MiB between cycles",
                  rss[1] >> 20, rss[2] >> 20);
#endif
}

/* The same with blocks of four size classes in every heap: a heap per
 * tenant uses several classes, and 10,000 of them must not run into a
 * system limit (e.g. vm.max_map_count, 65,530 mappings by default). */
Test(heaps, ten_thousand_heaps_several_classes, .timeout = 240)
{
    many_heaps_cycle(MANY_MAX_BLOCKS, 0);
}

Test(heaps, create_destroy_1000)
{
    size_t loops = test_scaled(1000, 200);
    proc_sizes_t early = {0, 0};
    for (size_t i = 0; i < loops; i++) {
        sc_heap_t *h = sc_heap_create(NULL);
        cr_assert_not_null(h, "sc_heap_create failed at iteration %zu (errno %d)", i, errno);
        /* Touch a few classes and a huge block so each heap really commits
         * memory that destroy has to give back. */
        void *p[4];
        p[0] = sc_alloc(h, 16);
        p[1] = sc_alloc(h, 1000);
        p[2] = sc_alloc(h, 200000);
        p[3] = sc_alloc(h, 2u << 20);
        for (int k = 0; k < 4; k++) {
            cr_assert_not_null(p[k]);
            memset(p[k], 0x11, 16);
        }
        if (i % 2)
            sc_free(h, p[0]);
        sc_heap_destroy(h);
        if (i == loops / 10)
            early = proc_sizes();
    }
    proc_sizes_t late = proc_sizes();
    size_t virt_early = early.virt, rss_early = early.rss;
    size_t virt_late = late.virt, rss_late = late.rss;
    cr_log_info("after %zu heaps: virtual %zu MiB -> %zu MiB, resident %zu MiB -> %zu MiB",
                loops, virt_early >> 20, virt_late >> 20, rss_early >> 20, rss_late >> 20);
    /* A heap that kept its 256 MiB reservation, or its ~2.5 MiB of touched
     * memory, would grow these by hundreds of GiB / MiB. */
    cr_assert_leq(virt_late, virt_early + ((size_t)512 << 20),
                  "virtual size grew from %zu to %zu MiB over %zu create/destroy loops",
                  virt_early >> 20, virt_late >> 20, loops);
    cr_assert_leq(rss_late, rss_early + ((size_t)32 << 20),
                  "resident size grew from %zu to %zu MiB over %zu create/destroy loops",
                  rss_early >> 20, rss_late >> 20, loops);
}

/* ------------------------------------------------------------------------ */
/* Destroy                                                                  */
/* ------------------------------------------------------------------------ */

Test(heaps, destroy_with_live_objects)
{
    enum { N = 100000 };
    static void *ptrs[N];
    sc_heap_t *keep = sc_heap_create(NULL);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(keep);
    cr_assert_not_null(h);
    void *kept = sc_alloc(keep, 48);
    cr_assert_not_null(kept);
    test_pattern_fill(kept, 48, 99);

    test_rng_t rng = {11};
    for (size_t i = 0; i < N; i++) {
        size_t n = test_rng_range(&rng, 0, 2048);
        if (i % 10000 == 0)
            n = (3u << 20) + i; /* a few huge blocks too */
        ptrs[i] = sc_alloc(h, n);
        cr_assert_not_null(ptrs[i]);
        memset(ptrs[i], 0xee, n < 64 ? n : 64);
    }
    /* Some freed, most not: destroy must not care. */
    for (size_t i = 0; i < N; i += 3)
        sc_free(h, ptrs[i]);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, N - (N + 2) / 3);
    cr_assert_gt(st.committed_bytes, 0);

    sc_heap_destroy(h);

    /* The address range went back: no heap claims the old blocks now (only
     * `keep` exists, and it was created before). */
    for (size_t i = 0; i < N; i += 97)
        cr_assert_null(sc_heap_of(ptrs[i]), "destroyed heap's block %p still has a heap",
                       ptrs[i]);
    cr_assert_eq(test_pattern_check(kept, 48, 99), TEST_PATTERN_OK);
    cr_assert_eq(sc_heap_of(kept), keep);
    sc_free(keep, kept);
    sc_heap_destroy(keep);
}

typedef struct filler_arg_s {
    sc_heap_t *heap;
    size_t bytes;
    uint64_t seed;
} filler_arg_t;

/* Allocates about `bytes` in blocks of every kind and writes every page,
 * leaving all of it live. */
static void *filler_main(void *arg)
{
    filler_arg_t *a = arg;
    test_rng_t rng = {a->seed};
    size_t done = 0;
    while (done < a->bytes) {
        unsigned pick = (unsigned)(test_rng_next(&rng) % 100);
        size_t n;
        if (pick < 70)
            n = test_rng_range(&rng, 1, 256);
        else if (pick < 95)
            n = test_rng_range(&rng, 257, 16384);
        else if (pick < 99)
            n = test_rng_range(&rng, 16385, SC_MAX_CLASS_SIZE);
        else
            n = test_rng_range(&rng, SC_MAX_CLASS_SIZE + 1, 6 * MiB);
        unsigned char *p = sc_alloc(a->heap, n);
        TEST_CHECK(p != NULL, "sc_alloc(%zu) failed", n);
        memset(p, 0x5a, n);
        done += n;
    }
    return NULL;
}

/* Fills a fresh heap with `bytes` from `threads` threads (joined). */
static sc_heap_t *filled_heap(size_t bytes, unsigned threads, uint64_t seed)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    pthread_t tids[8];
    filler_arg_t args[8];
    cr_assert_leq(threads, 8);
    for (unsigned i = 0; i < threads; i++) {
        args[i] = (filler_arg_t){h, bytes / (threads + 1), seed * 16 + i};
        cr_assert_eq(pthread_create(&tids[i], NULL, filler_main, &args[i]), 0);
    }
    for (unsigned i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    /* The calling thread's share: it stays alive across the destroy. */
    filler_arg_t own = {h, bytes / (threads + 1), seed * 16 + 15};
    filler_main(&own);
    return h;
}

Test(heaps, destroy_gives_rss_back, .timeout = 120)
{
    const size_t held = 64 * MiB;
    /* One round first, so that what the process keeps once for good (the
     * library's global tables, glibc's thread stacks and arenas of the
     * filler threads, Criterion's buffers) is in place before measuring. */
    sc_heap_destroy(filled_heap(held, 3, 99));

    for (int round = 0; round < 3; round++) {
        proc_sizes_t before = proc_sizes();
        sc_heap_t *h = filled_heap(held, 3, (uint64_t)round + 1);
        sc_heap_stats_t st = test_stats(h);
        proc_sizes_t full = proc_sizes();
        cr_assert_geq(st.live_bytes, held - held / 8, "heap holds only %zu MiB",
                      st.live_bytes >> 20);
        cr_assert_geq(full.rss, before.rss + held - held / 8,
                      "RSS grew by only %zu MiB with %zu MiB written",
                      (full.rss - before.rss) >> 20, held >> 20);
        sc_heap_destroy(h);
        proc_sizes_t after = proc_sizes();
        cr_log_info("round %d: RSS %zu KiB before create, %zu KiB full (%zu live blocks), "
                    "%zu KiB after destroy; address space %+ld KiB",
                    round, before.rss >> 10, full.rss >> 10, st.live_blocks, after.rss >> 10,
                    ((long)after.virt - (long)before.virt) / 1024);
#if !PROCESS_FIGURES_DISTORTED
        cr_assert_leq(after.rss, before.rss + MiB,
                      "round %d: RSS %zu KiB after destroy, %zu KiB before create", round,
                      after.rss >> 10, before.rss >> 10);
        cr_assert_leq(after.virt, before.virt + MiB,
                      "round %d: address space %zu MiB after destroy, %zu MiB before create",
                      round, after.virt >> 20, before.virt >> 20);
#endif
    }
}

/* A new heap in threads that used a destroyed one. */

enum { REUSE_WORKERS = 4, REUSE_BLOCKS = 200 };

typedef struct reuse_item_s {
    unsigned char *p;
    size_t n;
    uint64_t key;
} reuse_item_t;

/* The heap of the current round: written by the main thread between
 * barriers, read by the workers after them. */
static sc_heap_t *reuse_heap;
static size_t reuse_rounds;
static pthread_barrier_t reuse_go, reuse_allocated, reuse_counted, reuse_freed, reuse_destroyed;
static reuse_item_t reuse_shared[REUSE_WORKERS][REUSE_BLOCKS];

static void *reuse_worker(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    static _Thread_local reuse_item_t kept[REUSE_BLOCKS];
    for (size_t round = 0; round < reuse_rounds; round++) {
        pthread_barrier_wait(&reuse_go);
        sc_heap_t *h = reuse_heap;
        /* Alternate between the implicit lookup and an explicit frontend,
         * both of which a stale cache could answer wrongly. */
        sc_thread_t *t = (round + index) % 2 ? sc_heap_thread(h) : NULL;
        TEST_CHECK((round + index) % 2 == 0 || t != NULL, "round %zu: sc_heap_thread failed",
                   round);
        test_rng_t rng = {round * 100 + index};
        for (size_t i = 0; i < REUSE_BLOCKS; i++) {
            reuse_item_t *it[2] = {&reuse_shared[index][i], &kept[i]};
            for (int k = 0; k < 2; k++) {
                size_t n = test_mixed_size(&rng);
                if (i == 0 && k == 1)
                    n = 3 * MiB; /* one huge block each */
                it[k]->p = t ? sc_thread_alloc(t, n) : sc_alloc(h, n);
                TEST_CHECK(it[k]->p != NULL, "round %zu worker %u: alloc of %zu failed", round,
                           index, n);
                TEST_CHECK(sc_heap_of(it[k]->p) == h && sc_heap_owns(h, it[k]->p),
                           "round %zu worker %u: new block %p not attributed to the new heap",
                           round, index, (void *)it[k]->p);
                it[k]->n = n;
                it[k]->key = (round << 40) | ((uint64_t)index << 32) | (i << 1) | (uint64_t)k;
                test_pattern_fill(it[k]->p, n, it[k]->key);
            }
        }
        pthread_barrier_wait(&reuse_allocated);
        pthread_barrier_wait(&reuse_counted); /* main has read the stats */
        /* Free the neighbour's shared blocks (remote frees) and half of
         * our own (local frees). */
        reuse_item_t *theirs = reuse_shared[(index + 1) % REUSE_WORKERS];
        for (size_t i = 0; i < REUSE_BLOCKS; i++) {
            TEST_CHECK(test_pattern_check(theirs[i].p, theirs[i].n, theirs[i].key) ==
                           TEST_PATTERN_OK,
                       "round %zu worker %u: neighbour's block %zu corrupted", round, index, i);
            sc_free(h, theirs[i].p);
        }
        for (size_t i = 0; i < REUSE_BLOCKS; i += 2) {
            TEST_CHECK(test_pattern_check(kept[i].p, kept[i].n, kept[i].key) == TEST_PATTERN_OK,
                       "round %zu worker %u: own block %zu corrupted", round, index, i);
            if (t)
                sc_thread_free(t, kept[i].p);
            else
                sc_free(h, kept[i].p);
        }
        pthread_barrier_wait(&reuse_freed);
        /* Alive and idle, with live blocks in h, while it is destroyed. */
        pthread_barrier_wait(&reuse_destroyed);
    }
    return NULL;
}

Test(heaps, new_heap_in_threads_of_old_one, .timeout = 120)
{
    test_error_log_t log;
    test_error_log_install(&log);
    reuse_rounds = test_scaled(40, 8);
    pthread_barrier_init(&reuse_go, NULL, REUSE_WORKERS + 1);
    pthread_barrier_init(&reuse_allocated, NULL, REUSE_WORKERS + 1);
    pthread_barrier_init(&reuse_counted, NULL, REUSE_WORKERS + 1);
    pthread_barrier_init(&reuse_freed, NULL, REUSE_WORKERS + 1);
    pthread_barrier_init(&reuse_destroyed, NULL, REUSE_WORKERS + 1);
    pthread_t tids[REUSE_WORKERS];
    for (unsigned i = 0; i < REUSE_WORKERS; i++)
        cr_assert_eq(pthread_create(&tids[i], NULL, reuse_worker, (void *)(uintptr_t)i), 0);

    sc_heap_t *previous = NULL;
    uintptr_t previous_block = 0;
    size_t same_handle = 0, same_range = 0;
    for (size_t round = 0; round < reuse_rounds; round++) {
        reuse_heap = sc_heap_create(NULL);
        cr_assert_not_null(reuse_heap, "round %zu: sc_heap_create failed", round);
        same_handle += reuse_heap == previous;
        /* The main thread uses each heap too, before and after the workers. */
        void *mine = sc_alloc(reuse_heap, 100);
        cr_assert_not_null(mine);
        cr_assert_eq(sc_heap_of(mine), reuse_heap);
        same_range += previous_block != 0 && ((uintptr_t)mine >> 21) == (previous_block >> 21);
        pthread_barrier_wait(&reuse_go);
        pthread_barrier_wait(&reuse_allocated);
        sc_heap_stats_t st = test_stats(reuse_heap);
        cr_assert_eq(st.live_blocks, (size_t)REUSE_WORKERS * REUSE_BLOCKS * 2 + 1,
                     "round %zu: %zu live blocks", round, st.live_blocks);
        cr_assert_eq(st.frontends, REUSE_WORKERS + 1, "round %zu: %zu frontends", round,
                     st.frontends);
        pthread_barrier_wait(&reuse_counted);
        pthread_barrier_wait(&reuse_freed);
        st = test_stats(reuse_heap);
        cr_assert_eq(st.live_blocks, (size_t)REUSE_WORKERS * REUSE_BLOCKS / 2 + 1,
                     "round %zu: %zu live blocks after frees", round, st.live_blocks);
        cr_assert_eq(atomic_load(&log.count), 0, "round %zu: misuse reported: %s in %s (%p)",
                     round, sc_error_string(log.last_err), log.last_call, log.last_p);
        previous_block = (uintptr_t)mine;
        sc_heap_destroy(reuse_heap);
        previous = reuse_heap;
        pthread_barrier_wait(&reuse_destroyed);
    }
    for (unsigned i = 0; i < REUSE_WORKERS; i++)
        pthread_join(tids[i], NULL);
    cr_assert_eq(atomic_load(&log.count), 0, "misuse reported: %s in %s",
                 sc_error_string(log.last_err), log.last_call);
    sc_set_error_handler(NULL, NULL);
    pthread_barrier_destroy(&reuse_go);
    pthread_barrier_destroy(&reuse_allocated);
    pthread_barrier_destroy(&reuse_counted);
    pthread_barrier_destroy(&reuse_freed);
    pthread_barrier_destroy(&reuse_destroyed);
    cr_log_info("%zu rounds: new heap at the old handle %zu times, at the old address range "
                "%zu times",
                reuse_rounds, same_handle, same_range);
}

/* ------------------------------------------------------------------------ */
/* Reset                                                                    */
/* ------------------------------------------------------------------------ */

Test(heaps, reset_keeps_heap_usable)
{
    enum { N = 20000 };
    static test_block_t blocks[N];
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    sc_thread_t *t = sc_heap_thread(h);
    cr_assert_not_null(t);

    for (int round = 0; round < 3; round++) {
        test_fill_blocks(h, blocks, N, 5 + (uint64_t)round);
        void *huge = sc_alloc(h, 5u << 20);
        cr_assert_not_null(huge);
        cr_assert_eq(test_stats(h).live_blocks, N + 1);

        sc_heap_reset(h);
        sc_heap_stats_t st = test_stats(h);
        cr_assert_eq(st.live_blocks, 0, "live blocks after reset: %zu", st.live_blocks);
        cr_assert_eq(st.live_bytes, 0);
        cr_assert_eq(st.huge_blocks, 0);

        /* Usable afterwards, through the same frontend too. */
        test_fill_blocks(h, blocks, N / 2, 50 + (uint64_t)round);
        void *q = sc_thread_alloc(t, 100);
        cr_assert_not_null(q);
        check_blocks(blocks, N / 2, "after reset");
        sc_thread_free(t, q);
        for (size_t i = 0; i < N / 2; i++)
            sc_free(h, blocks[i].p);
        cr_assert_eq(test_stats(h).live_blocks, 0);
    }
    sc_heap_destroy(h);
}

/* What a heap with nothing live may keep committed: span headers, region
 * descriptors, a frontend's empty hot spans. 1 MiB is far below the tens
 * of MiB a reset that forgot its spans would keep. */
#define EMPTY_ALLOWANCE MiB

typedef struct reset_peer_s {
    sc_heap_t *heap;
    pthread_barrier_t *step;
    size_t rounds;
} reset_peer_t;

/* A second thread that allocates in every round and lives across each
 * reset, so its frontend must survive them. */
static void *reset_peer_main(void *arg)
{
    reset_peer_t *a = arg;
    sc_thread_t *t = sc_heap_thread(a->heap);
    TEST_CHECK(t != NULL, "peer: sc_heap_thread failed");
    for (size_t r = 0; r < a->rounds; r++) {
        test_rng_t rng = {1000 + r};
        for (int i = 0; i < 2000; i++) {
            size_t n = test_mixed_size(&rng);
            unsigned char *p = i % 2 ? sc_thread_alloc(t, n) : sc_alloc(a->heap, n);
            TEST_CHECK(p != NULL, "peer round %zu: alloc of %zu failed after reset", r, n);
            TEST_CHECK(sc_heap_of(p) == a->heap, "peer: block attributed elsewhere");
            memset(p, 0x33, n);
        }
        pthread_barrier_wait(a->step); /* allocated */
        pthread_barrier_wait(a->step); /* main reset the heap */
    }
    return NULL;
}

static void reset_rounds(size_t keep, size_t *committed_after, size_t *resident_after)
{
    sc_heap_config_t cfg = {.name = "reset", .reset_keep_bytes = keep};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    const size_t rounds = 6;
    pthread_barrier_t step;
    pthread_barrier_init(&step, NULL, 2);
    reset_peer_t peer = {h, &step, rounds};
    pthread_t tid;
    cr_assert_eq(pthread_create(&tid, NULL, reset_peer_main, &peer), 0);
    for (size_t r = 0; r < rounds; r++) {
        /* 48 MiB of class blocks and two huge blocks from this thread. */
        sc_heap_t *other = sc_heap_create(NULL); /* an unrelated heap must not change */
        cr_assert_not_null(other);
        void *unrelated = sc_alloc(other, 1000);
        cr_assert_not_null(unrelated);
        memset(unrelated, 0x77, 1000);
        filler_arg_t fill = {h, 48 * MiB, 500 + r};
        filler_main(&fill);
        void *huge1 = sc_alloc(h, 9 * MiB), *huge2 = sc_calloc(h, 1, 5 * MiB);
        cr_assert(huge1 && huge2);
        memset(huge1, 1, 9 * MiB);
        pthread_barrier_wait(&step); /* the peer has allocated too */
        sc_heap_stats_t full = test_stats(h);
        cr_assert_geq(full.live_bytes, 48 * MiB);

        sc_heap_reset(h);
        sc_heap_stats_t st = test_stats(h);
        cr_assert_eq(st.live_blocks, 0, "round %zu: %zu live blocks after reset", r,
                     st.live_blocks);
        cr_assert_eq(st.live_bytes, 0);
        cr_assert_eq(st.huge_blocks, 0);
        cr_assert_eq(st.huge_bytes, 0);
        for (unsigned c = 0; c < SC_NUM_CLASSES; c++)
            cr_assert_eq(st.classes[c].live_blocks, 0, "class %u: live blocks after reset", c);
        cr_assert_leq(st.committed_bytes, keep + EMPTY_ALLOWANCE,
                      "round %zu: %zu KiB committed after reset (keep %zu KiB)", r,
                      st.committed_bytes >> 10, keep >> 10);
        cr_assert_leq(st.resident_bytes, st.committed_bytes);
        committed_after[r] = st.committed_bytes;
        resident_after[r] = st.resident_bytes;
        cr_log_info("reset keep %zu KiB round %zu: before reset %zu KiB committed / %zu KiB "
                    "resident; after %zu KiB / %zu KiB",
                    keep >> 10, r, full.committed_bytes >> 10, full.resident_bytes >> 10,
                    st.committed_bytes >> 10, st.resident_bytes >> 10);

        /* The heap is usable at once, and calloc still zeroes. */
        unsigned char *z = sc_calloc(h, 1, 3000);
        cr_assert_not_null(z);
        for (size_t i = 0; i < 3000; i++)
            cr_assert_eq(z[i], 0, "calloc after reset: byte %zu not zero", i);
        sc_free(h, z);
        for (size_t i = 0; i < 1000; i++)
            cr_assert_eq(((unsigned char *)unrelated)[i], 0x77, "other heap's block changed");
        sc_free(other, unrelated);
        sc_heap_destroy(other);
        pthread_barrier_wait(&step); /* the peer may allocate again */
    }
    pthread_join(tid, NULL);
    pthread_barrier_destroy(&step);
    sc_heap_destroy(h);
}

Test(heaps, reset_without_keep, .timeout = 120)
{
    size_t committed[6], resident[6];
    reset_rounds(0, committed, resident);
    /* Repeated resets do not accumulate anything. */
    cr_assert_leq(committed[5], committed[0] + EMPTY_ALLOWANCE);
}

Test(heaps, reset_keeps_up_to_keep_bytes, .timeout = 120)
{
    const size_t keep = 8 * MiB;
    size_t committed[6], resident[6];
    reset_rounds(keep, committed, resident);
    /* The option exists to keep memory warm: the heap held 60+ MiB, so some
     * of the 8 MiB must have stayed. */
    size_t committed_none[6], resident_none[6];
    reset_rounds(0, committed_none, resident_none);
    cr_assert_gt(committed[5], committed_none[5] + keep / 4,
                 "reset_keep_bytes = %zu KiB kept %zu KiB committed, no keep %zu KiB",
                 keep >> 10, committed[5] >> 10, committed_none[5] >> 10);
}
