/*
 * Heaps as isolated units (DESIGN.md §2: sc_heap_create / sc_heap_destroy /
 * sc_heap_reset / sc_heap_trim / sc_heap_name, sc_heap_config_t; "many heaps
 * must coexist").
 *
 * Contract lines checked here:
 *  - two heaps are isolated: neither owns the other's blocks, stats count
 *    only their own, destroying one leaves the other's contents intact
 *                                                              [two_heaps_isolated]
 *  - destroy frees every block at once (live objects included, small, big
 *    and huge) and gives the address range back              [destroy_with_live_objects]
 *  - heaps can be created and destroyed in a loop without leaking memory or
 *    address space                                            [create_destroy_1000]
 *  - at least thousands of heaps coexist with default settings [thousand_heaps_at_once]
 *  - reset frees every block and keeps the heap (and frontends) usable
 *                                                              [reset_keeps_heap_usable]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "test_util.h"

/* The process's virtual size and resident size in bytes, from
 * /proc/self/statm, to see address space and memory come back. */
static void process_sizes(size_t *virt, size_t *rss)
{
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    unsigned long pages_virt = 0, pages_rss = 0;
    cr_assert_eq(fscanf(f, "%lu %lu", &pages_virt, &pages_rss), 2);
    fclose(f);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    *virt = pages_virt * page;
    *rss = pages_rss * page;
}

typedef struct block_s {
    unsigned char *p;
    size_t n;
    uint64_t key;
} block_t;

static void fill_blocks(sc_heap_t *h, block_t *b, size_t count, uint64_t seed)
{
    test_rng_t rng = {seed};
    for (size_t i = 0; i < count; i++) {
        size_t n = test_mixed_size(&rng);
        b[i].p = sc_alloc(h, n);
        cr_assert_not_null(b[i].p, "sc_alloc(h, %zu) failed", n);
        b[i].n = n;
        b[i].key = seed * 1000003 + i;
        test_pattern_fill(b[i].p, n, b[i].key);
    }
}

static void check_blocks(const block_t *b, size_t count, const char *when)
{
    for (size_t i = 0; i < count; i++) {
        size_t bad = test_pattern_check(b[i].p, b[i].n, b[i].key);
        cr_assert_eq(bad, TEST_PATTERN_OK, "%s: block %zu (%p, %zu bytes) corrupted at %zu",
                     when, i, (void *)b[i].p, b[i].n, bad);
    }
}

Test(heaps, two_heaps_isolated)
{
    enum { N = 5000 };
    static block_t a_blocks[N], b_blocks[N];
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
        fill_blocks(a, a_blocks + i, 500, 1 + i);
        fill_blocks(b, b_blocks + i, 500, 100001 + i);
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
    static block_t more[N];
    fill_blocks(b, more, N, 777);
    check_blocks(more, N, "new blocks of heap b");
    for (size_t i = 0; i < N; i++) {
        sc_free(b, b_blocks[i].p);
        sc_free(b, more[i].p);
    }
    cr_assert_eq(test_stats(b).live_blocks, 0);
    sc_heap_destroy(b);
}

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

Test(heaps, create_destroy_1000)
{
    size_t loops = test_scaled(1000, 200);
    size_t virt_early = 0, rss_early = 0;
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
            process_sizes(&virt_early, &rss_early);
    }
    size_t virt_late = 0, rss_late = 0;
    process_sizes(&virt_late, &rss_late);
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

Test(heaps, reset_keeps_heap_usable)
{
    enum { N = 20000 };
    static block_t blocks[N];
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    sc_thread_t *t = sc_heap_thread(h);
    cr_assert_not_null(t);

    for (int round = 0; round < 3; round++) {
        fill_blocks(h, blocks, N, 5 + (uint64_t)round);
        void *huge = sc_alloc(h, 5u << 20);
        cr_assert_not_null(huge);
        cr_assert_eq(test_stats(h).live_blocks, N + 1);

        sc_heap_reset(h);
        sc_heap_stats_t st = test_stats(h);
        cr_assert_eq(st.live_blocks, 0, "live blocks after reset: %zu", st.live_blocks);
        cr_assert_eq(st.live_bytes, 0);
        cr_assert_eq(st.huge_blocks, 0);

        /* Usable afterwards, through the same frontend too. */
        fill_blocks(h, blocks, N / 2, 50 + (uint64_t)round);
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
