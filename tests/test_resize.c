/*
 * calloc, realloc and aligned allocation (DESIGN.md §2 "sc_calloc,
 * sc_realloc, sc_aligned_alloc(heap, align, n): usual semantics; align any
 * power of two"; "calloc overflow: NULL/ENOMEM. Bad alignment: NULL/EINVAL").
 *
 * Contract lines checked here:
 *  - sc_calloc returns zeroed memory, also when it reuses dirty blocks
 *                                                          [calloc_zeroes_reused_memory]
 *  - sc_calloc overflow -> NULL, errno = ENOMEM             [calloc_overflow]
 *  - sc_realloc keeps contents up to the smaller size, across classes and
 *    into/out of huge; stays in place when the usable size fits
 *                                                          [realloc_*]
 *  - sc_realloc(h, NULL, n) allocates; n = 0 frees and returns a fresh
 *    minimal block; failure leaves p untouched, NULL/ENOMEM [realloc_edges]
 *  - sc_aligned_alloc honours every power of two up to 4 MiB, the block is
 *    usable for n bytes and freed with sc_free               [aligned_powers_of_two]
 *  - non-power-of-two alignment -> NULL, errno = EINVAL     [aligned_bad_alignment]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>

#include "test_util.h"

Test(resize, calloc_zeroes_reused_memory)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    static const size_t sizes[] = {1, 16, 100, 256, 1000, 5000, 70000, 1u << 20, 3u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        /* Dirty some blocks of the class and free them so calloc reuses
         * them. */
        void *dirty[8];
        for (int k = 0; k < 8; k++) {
            dirty[k] = sc_alloc(h, n);
            cr_assert_not_null(dirty[k]);
            memset(dirty[k], 0xff, n);
        }
        for (int k = 0; k < 8; k++)
            sc_free(h, dirty[k]);
        for (int k = 0; k < 8; k++) {
            unsigned char *p = sc_calloc(h, 1, n);
            cr_assert_not_null(p);
            for (size_t b = 0; b < n; b++)
                cr_assert_eq(p[b], 0, "sc_calloc(%zu): byte %zu is %#x", n, b, p[b]);
            dirty[k] = p;
        }
        for (int k = 0; k < 8; k++)
            sc_free(h, dirty[k]);
    }
    /* count * size split differently. */
    unsigned char *p = sc_calloc(h, 1000, 24);
    cr_assert_not_null(p);
    for (size_t b = 0; b < 24000; b++)
        cr_assert_eq(p[b], 0);
    sc_free(h, p);
    sc_heap_destroy(h);
}

/* One test for both kinds of impossible calloc: products that overflow
 * size_t (each factor on either side, powers of two whose product is
 * exactly 2^64, odd factors), and a product that fits but no heap can
 * serve. Zero count or size is an ordinary request. */
Test(resize, calloc_overflow)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    static const size_t pairs[][2] = {
        {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {SIZE_MAX / 3 + 1, 3},
        {3, SIZE_MAX / 3 + 1},
        {(size_t)1 << 32, (size_t)1 << 32},
        {(size_t)1 << 33, (size_t)1 << 31},
        {SIZE_MAX / 16 + 1, 16},
        {(SIZE_MAX >> 1) + 1, 2},
        {65537, SIZE_MAX / 65536},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *p = sc_calloc(h, pairs[i][0], pairs[i][1]);
        cr_assert_null(p, "sc_calloc(%zu, %zu) returned %p", pairs[i][0], pairs[i][1], p);
        cr_assert_eq(errno, ENOMEM, "sc_calloc(%zu, %zu): errno %d", pairs[i][0], pairs[i][1],
                     errno);
    }
    /* No overflow, but too big for anything: also ENOMEM. */
    errno = 0;
    cr_assert_null(sc_calloc(h, SIZE_MAX / 2, 1));
    cr_assert_eq(errno, ENOMEM);
    /* The heap is fine afterwards. */
    unsigned char *p = sc_calloc(h, 3, 1000);
    cr_assert_not_null(p);
    for (size_t i = 0; i < 3000; i++)
        cr_assert_eq(p[i], 0);
    sc_free(h, p);
    /* Zero count or size is a valid, freeable request. */
    void *z = sc_calloc(h, 0, 16);
    cr_assert_not_null(z);
    sc_free(h, z);
    z = sc_calloc(h, 16, 0);
    cr_assert_not_null(z);
    sc_free(h, z);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

/* Every byte a function of its offset, so any prefix can be checked after
 * a move (test_pattern_* skips bytes in big blocks, which a shrink would
 * expose). */
static void dense_fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131 + (i >> 8) * 7 + 1);
}

static size_t dense_check(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 131 + (i >> 8) * 7 + 1))
            return i;
    return TEST_PATTERN_OK;
}

Test(resize, realloc_keeps_contents)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* Grow through every kind of block, then shrink back, checking the
     * common prefix at every step. */
    static const size_t steps[] = {1,       10,      16,       17,       100,      256,
                                   257,     1000,    4096,     50000,    1u << 20, (1u << 20) + 1,
                                   3u << 20, 9u << 20, 2u << 20, 900000,   5000,     300,
                                   32,      1};
    size_t cur = 0;
    unsigned char *p = NULL;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        unsigned char *q = sc_realloc(h, p, n);
        cr_assert_not_null(q, "sc_realloc to %zu failed", n);
        cr_assert_eq((uintptr_t)q % 16, 0);
        cr_assert_geq(sc_usable_size(h, q), n);
        size_t keep = cur < n ? cur : n;
        size_t bad = dense_check(q, keep);
        cr_assert_eq(bad, TEST_PATTERN_OK, "realloc %zu -> %zu lost byte %zu", cur, n, bad);
        dense_fill(q, n);
        p = q;
        cur = n;
    }
    sc_free(h, p);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

Test(resize, realloc_in_place_when_it_fits)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    unsigned char *p = sc_alloc(h, 100);
    cr_assert_not_null(p);
    size_t usable = sc_usable_size(h, p);
    memset(p, 7, 100);
    unsigned char *q = sc_realloc(h, p, usable);
    cr_assert_eq(q, p, "realloc within the usable size moved the block");
    q = sc_realloc(h, p, 50);
    cr_assert_eq(q, p, "shrinking within the block moved it");
    for (int i = 0; i < 50; i++)
        cr_assert_eq(q[i], 7);
    sc_free(h, q);
    sc_heap_destroy(h);
}

Test(resize, realloc_edges)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* NULL allocates. */
    void *p = sc_realloc(h, NULL, 40);
    cr_assert_not_null(p);
    cr_assert_geq(sc_usable_size(h, p), 40);
    memset(p, 3, 40);

    /* A failing resize leaves p untouched and live. */
    errno = 0;
    void *q = sc_realloc(h, p, SIZE_MAX - 8);
    cr_assert_null(q);
    cr_assert_eq(errno, ENOMEM);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(((unsigned char *)p)[i], 3, "failed realloc changed byte %d", i);
    cr_assert_eq(test_stats(h).live_blocks, 1);

    /* n = 0 frees p and returns a fresh minimal block, never NULL. */
    void *z = sc_realloc(h, p, 0);
    cr_assert_not_null(z, "sc_realloc(h, p, 0) returned NULL");
    cr_assert_eq(test_stats(h).live_blocks, 1, "realloc to 0 leaked or lost a block");
    sc_free(h, z);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

Test(resize, aligned_powers_of_two)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    static const size_t sizes[] = {0, 1, 24, 100, 4096, 70000, 3u << 20};
    for (size_t align = 1; align <= ((size_t)4 << 20); align <<= 1) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *ps[3];
            for (int k = 0; k < 3; k++) {
                unsigned char *p = sc_aligned_alloc(h, align, n);
                cr_assert_not_null(p, "sc_aligned_alloc(%zu, %zu) failed", align, n);
                cr_assert_eq((uintptr_t)p % align, 0, "sc_aligned_alloc(%zu, %zu) = %p", align,
                             n, (void *)p);
                cr_assert_geq(sc_usable_size(h, p), n);
                cr_assert(sc_heap_owns(h, p));
                if (n)
                    test_pattern_fill(p, n, align + n);
                ps[k] = p;
            }
            for (int k = 0; k < 3; k++) {
                if (n)
                    cr_assert_eq(test_pattern_check(ps[k], n, align + n), TEST_PATTERN_OK,
                                 "aligned block (%zu, %zu) corrupted", align, n);
                sc_free(h, ps[k]);
            }
        }
    }
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.huge_blocks, 0);
    sc_heap_destroy(h);
}

/* Alignments that are not powers of two: zero, odd, even non-powers small
 * and large (above a span, above 1 GiB, the top bit plus one), with sizes
 * from 0 to huge, so that neither the class path nor the huge path checks
 * the size before the alignment. */
Test(resize, aligned_bad_alignment)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    static const size_t bad[] = {0,
                                 3,
                                 5,
                                 12,
                                 24,
                                 48,
                                 96,
                                 1000,
                                 4097,
                                 ((size_t)1 << 20) + 16,
                                 (size_t)3 << 20,
                                 ((size_t)1 << 30) + 16,
                                 (size_t)3 << 30,
                                 SIZE_MAX,
                                 SIZE_MAX - 1,
                                 ((size_t)1 << 63) + 1};
    static const size_t sizes[] = {0, 1, 64, 100, (size_t)5 << 20};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            errno = 0;
            void *p = sc_aligned_alloc(h, bad[i], sizes[k]);
            cr_assert_null(p, "alignment %zu size %zu accepted", bad[i], sizes[k]);
            cr_assert_eq(errno, EINVAL, "alignment %zu size %zu: errno %d, expected EINVAL",
                         bad[i], sizes[k], errno);
        }
    }
    /* A valid alignment with an impossible size is ENOMEM, not EINVAL. */
    errno = 0;
    cr_assert_null(sc_aligned_alloc(h, 64, SIZE_MAX - 32));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}
