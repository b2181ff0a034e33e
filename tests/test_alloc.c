/*
 * Allocation: scalloc.h, "Allocation" (sc_alloc, sc_free, sc_thread_alloc,
 * sc_thread_free, sc_usable_size). The same section's sc_calloc,
 * sc_realloc and sc_aligned_alloc are test_resize.c, sc_good_size and the
 * class sizes test_size_class.c, sc_heap_owns and sc_heap_of
 * test_ownership.c; frees from other threads are the test_mt_* programs.
 *
 * Contract lines checked here:
 *  - sc_alloc returns distinct, writable blocks; sc_free(h, NULL) is a no-op
 *                                                                [basic_alloc_free, free_null]
 *  - sc_alloc(h, 0) returns a unique pointer that must be freed  [zero_size_unique]
 *  - every block is 16-byte aligned, small, big and huge          [alignment_16]
 *  - blocks keep their contents while live, whatever else happens
 *    in the heap (mixed sizes, interleaved frees)                 [contents_survive_workload]
 *  - sc_usable_size is at least the request and all of it is usable
 *                                                                [usable_size]
 *  - a request that cannot be met returns NULL with errno = ENOMEM,
 *    never crashes                                                [too_large_enomem]
 *  - sc_thread_alloc / sc_thread_free through sc_heap_thread       [thread_frontend]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "test_util.h"

Test(alloc, basic_alloc_free)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);

    char *a = sc_alloc(h, 100);
    char *b = sc_alloc(h, 100);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    memset(a, 'a', 100);
    memset(b, 'b', 100);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(a[i], 'a');
        cr_assert_eq(b[i], 'b');
    }
    sc_free(h, a);
    sc_free(h, b);

    /* A freed block is handed out again: the heap reuses memory rather than
     * bumping forever (checked loosely: within a few allocations). */
    void *c = sc_alloc(h, 100);
    cr_assert_not_null(c);
    sc_free(h, c);
    sc_heap_destroy(h);
}

Test(alloc, free_null)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    test_error_log_t log;
    test_error_log_install(&log);
    sc_free(h, NULL);
    sc_thread_t *t = sc_heap_thread(h);
    cr_assert_not_null(t);
    sc_thread_free(t, NULL);
    cr_assert_eq(atomic_load(&log.count), 0, "freeing NULL reported an error (%d)",
                 (int)log.last_err);
    sc_set_error_handler(NULL, NULL);
    sc_heap_destroy(h);
    sc_heap_destroy(NULL); /* documented no-op */
}

Test(alloc, zero_size_unique)
{
    enum { N = 1000 };
    static void *ptrs[N];
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    for (int i = 0; i < N; i++) {
        ptrs[i] = sc_alloc(h, 0);
        cr_assert_not_null(ptrs[i], "sc_alloc(h, 0) #%d returned NULL", i);
        cr_assert_geq(sc_usable_size(h, ptrs[i]), 1);
        cr_assert(sc_heap_owns(h, ptrs[i]));
    }
    /* Unique: sort the addresses and look for neighbours that coincide. */
    for (int i = 1; i < N; i++) {
        void *v = ptrs[i];
        int j = i - 1;
        while (j >= 0 && (uintptr_t)ptrs[j] > (uintptr_t)v) {
            ptrs[j + 1] = ptrs[j];
            j--;
        }
        ptrs[j + 1] = v;
    }
    for (int i = 1; i < N; i++)
        cr_assert_neq(ptrs[i - 1], ptrs[i], "sc_alloc(h, 0) returned %p twice", ptrs[i]);

    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, N, "live blocks %zu, expected %d", st.live_blocks, N);
    for (int i = 0; i < N; i++)
        sc_free(h, ptrs[i]);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0, "live blocks %zu after freeing the zero-size blocks",
                 st.live_blocks);
    sc_heap_destroy(h);
}

Test(alloc, alignment_16)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    static const size_t sizes[] = {
        0,     1,     7,      8,      15,     16,      17,      24,          31,
        33,    48,    100,    255,    256,    257,     1000,    4095,        4096,
        4097,  10000, 65535,  65536,  100000, 524288,  1000000, (1u << 20) - 1,
        1u << 20,  (1u << 20) + 1, 3u << 20, (5u << 20) + 12345,
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        /* Several per size, so that blocks after the first in a span count. */
        void *p[5];
        for (int k = 0; k < 5; k++) {
            p[k] = sc_alloc(h, sizes[i]);
            cr_assert_not_null(p[k], "sc_alloc(h, %zu) failed", sizes[i]);
            cr_assert_eq((uintptr_t)p[k] % 16, 0, "sc_alloc(h, %zu) = %p is not 16-aligned",
                         sizes[i], p[k]);
        }
        for (int k = 0; k < 5; k++)
            sc_free(h, p[k]);
    }
    sc_heap_destroy(h);
}

/* Slots of live blocks, each with the key its pattern was written with. */
typedef struct live_block_s {
    unsigned char *p;
    size_t n;
    uint64_t key;
} live_block_t;

Test(alloc, contents_survive_workload)
{
    enum { SLOTS = 4096 };
    static live_block_t live[SLOTS];
    memset(live, 0, sizeof live);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    test_rng_t rng = {42};
    size_t steps = test_scaled(400000, 20000);
    size_t live_count = 0;

    for (size_t step = 0; step < steps; step++) {
        size_t i = (size_t)(test_rng_next(&rng) % SLOTS);
        live_block_t *s = &live[i];
        if (s->p != NULL) {
            size_t bad = test_pattern_check(s->p, s->n, s->key);
            cr_assert_eq(bad, TEST_PATTERN_OK,
                         "step %zu: block %p (%zu bytes) corrupted at offset %zu", step,
                         (void *)s->p, s->n, bad);
            sc_free(h, s->p);
            s->p = NULL;
            live_count--;
            /* Free-only steps let the live set shrink and regrow, so spans
             * go through floating / reusable / free and back. */
            if (test_rng_next(&rng) % 3 == 0)
                continue;
        }
        size_t n = test_mixed_size(&rng);
        /* Now and then a huge block, so huge runs are mixed in too. */
        if (step % 20000 == 19999)
            n = SC_MAX_CLASS_SIZE + 1 + (size_t)(test_rng_next(&rng) % (3u << 20));
        s->p = sc_alloc(h, n);
        cr_assert_not_null(s->p, "step %zu: sc_alloc(h, %zu) failed", step, n);
        cr_assert_eq((uintptr_t)s->p % 16, 0);
        s->n = n;
        s->key = test_rng_next(&rng);
        test_pattern_fill(s->p, n, s->key);
        live_count++;
    }

    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, live_count, "stats say %zu live blocks, test holds %zu",
                 st.live_blocks, live_count);

    for (size_t i = 0; i < SLOTS; i++) {
        live_block_t *s = &live[i];
        if (s->p == NULL)
            continue;
        size_t bad = test_pattern_check(s->p, s->n, s->key);
        cr_assert_eq(bad, TEST_PATTERN_OK, "final: block %p (%zu bytes) corrupted at %zu",
                     (void *)s->p, s->n, bad);
        sc_free(h, s->p);
        s->p = NULL;
    }
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_eq(st.huge_blocks, 0);
    sc_heap_destroy(h);
}

Test(alloc, usable_size)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    static const size_t sizes[] = {1,     16,     17,       200,      300,      5000,
                                   70000, 900000, 1u << 20, 1u << 21, 12345678};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = sc_alloc(h, sizes[i]);
        cr_assert_not_null(p);
        size_t u = sc_usable_size(h, p);
        cr_assert_geq(u, sizes[i], "usable %zu < requested %zu", u, sizes[i]);
        /* The whole usable size is the caller's: write all of it. */
        memset(p, 0xcd, u);
        cr_assert_eq(p[u - 1], 0xcd);
        sc_free(h, p);
    }
    sc_heap_destroy(h);
}

Test(alloc, too_large_enomem)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    static const size_t sizes[] = {
        SIZE_MAX,
        SIZE_MAX - 1,
        SIZE_MAX - 15,          /* rounding up to 16 would overflow */
        SIZE_MAX - (1u << 21),  /* rounding up to a span would overflow */
        SIZE_MAX / 2,
        SIZE_MAX / 2 + 1,
        (size_t)1 << 62,
        (size_t)1 << 56,        /* more address space than x86-64 has */
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        void *p = sc_alloc(h, sizes[i]);
        cr_assert_null(p, "sc_alloc(h, %zu) returned %p", sizes[i], p);
        cr_assert_eq(errno, ENOMEM, "sc_alloc(h, %zu): errno %d, expected ENOMEM", sizes[i],
                     errno);
        sc_thread_t *t = sc_heap_thread(h);
        cr_assert_not_null(t);
        errno = 0;
        p = sc_thread_alloc(t, sizes[i]);
        cr_assert_null(p, "sc_thread_alloc(t, %zu) returned %p", sizes[i], p);
        cr_assert_eq(errno, ENOMEM, "sc_thread_alloc(t, %zu): errno %d", sizes[i], errno);
    }
    /* The failures left nothing behind and the heap still works. */
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.huge_blocks, 0);
    void *p = sc_alloc(h, 64);
    cr_assert_not_null(p);
    sc_free(h, p);
    sc_heap_destroy(h);
}

Test(alloc, thread_frontend)
{
    enum { N = 20000 };
    static live_block_t blocks[N];
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    sc_thread_t *t = sc_heap_thread(h);
    cr_assert_not_null(t);
    cr_assert_eq(sc_heap_thread(h), t, "sc_heap_thread returns a different frontend twice");

    test_rng_t rng = {7};
    for (int i = 0; i < N; i++) {
        size_t n = test_mixed_size(&rng);
        blocks[i].p = sc_thread_alloc(t, n);
        cr_assert_not_null(blocks[i].p, "sc_thread_alloc(t, %zu) failed", n);
        cr_assert_eq((uintptr_t)blocks[i].p % 16, 0);
        cr_assert(sc_heap_owns(h, blocks[i].p));
        cr_assert_geq(sc_usable_size(h, blocks[i].p), n);
        blocks[i].n = n;
        blocks[i].key = (uint64_t)i * 77 + 1;
        test_pattern_fill(blocks[i].p, n, blocks[i].key);
    }
    cr_assert_eq(test_stats(h).live_blocks, N);
    /* Frontend and plain calls mix freely on the same blocks: free half of
     * them each way. */
    for (int i = 0; i < N; i++) {
        cr_assert_eq(test_pattern_check(blocks[i].p, blocks[i].n, blocks[i].key),
                     TEST_PATTERN_OK, "block %d corrupted", i);
        if (i % 2)
            sc_thread_free(t, blocks[i].p);
        else
            sc_free(h, blocks[i].p);
    }
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_geq(st.frontends, 1, "the calling thread's frontend is not counted");
    sc_heap_destroy(h);
}
