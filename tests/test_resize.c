/*
 * calloc, realloc and aligned allocation: scalloc.h, "Allocation"
 * (sc_calloc: "Overflow: NULL with errno = ENOMEM"; sc_realloc: contents,
 * NULL and 0, in place or moved; sc_aligned_alloc: "any power of two. Not a
 * power of two: NULL with errno = EINVAL").
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
 *  - blocks of this thread's hot and floating spans (the owner's quick
 *    path) and of a span whose thread has exited (the full lookup) grow,
 *    shrink and stay alike: contents kept, and the heap's live blocks and
 *    bytes exact after every round                [realloc_every_owner]
 *  - sc_aligned_alloc honours every power of two up to 4 MiB, the block is
 *    usable for n bytes and freed with sc_free               [aligned_powers_of_two]
 *  - non-power-of-two alignment -> NULL, errno = EINVAL, whatever the size;
 *    a valid alignment with an impossible size -> ENOMEM  [aligned_bad_alignment]
 *  - every power of two up to 1 GiB, for small and huge sizes; aligned
 *    blocks resize like any other; under an address-space cap, alignments
 *    too large for it get ENOMEM                         [aligned_up_to_1_gib]
 *  - a huge block grows in place when the spans after it are free, keeps
 *    its contents, and later blocks do not overlap it; it shrinks in place
 *                                                     [huge_realloc_in_place]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>

#include "test_util.h"

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

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

/* Every byte a function of its offset and a key (the block's), so any
 * prefix can be checked after a move (test_pattern_* skips bytes in big
 * blocks, which a shrink would expose). */
static void keyed_fill(unsigned char *p, size_t n, size_t key)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131 + key * 17 + (i >> 8) * 7 + 1);
}

static size_t keyed_check(const unsigned char *p, size_t n, size_t key)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 131 + key * 17 + (i >> 8) * 7 + 1))
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
        size_t bad = keyed_check(q, keep, 0);
        cr_assert_eq(bad, TEST_PATTERN_OK, "realloc %zu -> %zu lost byte %zu", cur, n, bad);
        keyed_fill(q, n, 0);
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

#define OWNER_BLOCKS 2000

typedef struct owner_blocks {
    sc_heap_t *h;
    unsigned char *b[OWNER_BLOCKS];
    size_t n[OWNER_BLOCKS];
} owner_blocks_t;

static void owner_fill(owner_blocks_t *o, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        o->n[i] = 24 + (i * 37) % 600;
        o->b[i] = sc_alloc(o->h, o->n[i]);
        cr_assert_not_null(o->b[i]);
        keyed_fill(o->b[i], o->n[i], i);
    }
}

static void *owner_thread(void *arg)
{
    owner_fill(arg, 0, OWNER_BLOCKS / 2); /* then exits: its spans lose their owner */
    return NULL;
}

Test(resize, realloc_every_owner)
{
    static owner_blocks_t o;
    o.h = sc_heap_create(NULL);
    cr_assert_not_null(o.h);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, owner_thread, &o), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    /* This thread's half: enough 24-623 B blocks that the first spans of
     * each class float under the later ones. */
    owner_fill(&o, OWNER_BLOCKS / 2, OWNER_BLOCKS);
    static const size_t factor[] = {3, 1, 7, 2};
    for (unsigned round = 0; round < 4; round++) {
        size_t live_bytes = 0;
        for (size_t i = 0; i < OWNER_BLOCKS; i++) {
            size_t n = 8 + (o.n[i] * factor[round] + round) % 5000;
            unsigned char *q = sc_realloc(o.h, o.b[i], n);
            cr_assert_not_null(q, "round %u, block %zu: realloc to %zu failed", round, i, n);
            size_t keep = n < o.n[i] ? n : o.n[i];
            cr_assert_eq(keyed_check(q, keep, i + round * OWNER_BLOCKS), TEST_PATTERN_OK,
                         "round %u, block %zu (%zu -> %zu B) lost its contents", round, i, o.n[i],
                         n);
            keyed_fill(q, n, i + (round + 1) * OWNER_BLOCKS);
            o.b[i] = q;
            o.n[i] = n;
            live_bytes += sc_usable_size(o.h, q);
        }
        sc_heap_stats_t st = test_stats(o.h);
        cr_assert_eq(st.live_blocks, OWNER_BLOCKS, "round %u: %zu live blocks", round,
                     st.live_blocks);
        cr_assert_eq(st.live_bytes, live_bytes, "round %u: %zu live bytes, blocks hold %zu", round,
                     st.live_bytes, live_bytes);
    }
    for (size_t i = 0; i < OWNER_BLOCKS; i++)
        sc_free(o.h, o.b[i]);
    cr_assert_eq(test_stats(o.h).live_blocks, 0);
    sc_heap_destroy(o.h);
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

Test(resize, aligned_up_to_1_gib, .timeout = 60)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* Under an address-space cap (the CI's ulimit step) a block aligned to
     * a large fraction of the cap may not fit; then ENOMEM is the contract's
     * answer ("address space exhausted"), and only such blocks may get it. */
    struct rlimit as;
    cr_assert_eq(getrlimit(RLIMIT_AS, &as), 0);
    size_t cap = as.rlim_cur == RLIM_INFINITY ? SIZE_MAX : (size_t)as.rlim_cur;
    /* Every power of two from 1 to 1 GiB, small and huge sizes, two blocks
     * at a time so the second cannot reuse the first's place. */
    static const size_t sizes[] = {1, 4096, 3 * MiB};
    for (size_t align = 1; align <= GiB; align <<= 1) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            errno = 0;
            unsigned char *a = sc_aligned_alloc(h, align, sizes[k]);
            unsigned char *b = sc_aligned_alloc(h, align, sizes[k]);
            if ((a == NULL || b == NULL) && 2 * (align + sizes[k]) > cap / 4) {
                cr_assert_eq(errno, ENOMEM, "sc_aligned_alloc(%zu, %zu) under a %zu MiB "
                                            "address-space cap: errno %d",
                             align, sizes[k], cap >> 20, errno);
                cr_log_info("alignment %zu, size %zu: ENOMEM under a %zu MiB address-space cap",
                            align, sizes[k], cap >> 20);
                sc_free(h, a);
                sc_free(h, b);
                continue;
            }
            cr_assert(a && b, "sc_aligned_alloc(%zu, %zu) failed (errno %d)", align, sizes[k],
                      errno);
            cr_assert_eq((uintptr_t)a % align, 0, "%p not aligned to %zu", (void *)a, align);
            cr_assert_eq((uintptr_t)b % align, 0, "%p not aligned to %zu", (void *)b, align);
            cr_assert_geq(sc_usable_size(h, a), sizes[k]);
            cr_assert_eq(sc_heap_of(a), h);
            cr_assert_eq(sc_heap_of(a + sizes[k] - 1), h);
            test_pattern_fill(a, sizes[k], align);
            test_pattern_fill(b, sizes[k], align + 1);
            /* Aligned blocks resize like any other. */
            unsigned char *c = sc_realloc(h, a, sizes[k] * 2);
            cr_assert_not_null(c);
            cr_assert_eq(test_pattern_check(c, sizes[k], align), TEST_PATTERN_OK);
            cr_assert_eq(test_pattern_check(b, sizes[k], align + 1), TEST_PATTERN_OK);
            sc_free(h, c);
            sc_free(h, b);
        }
    }
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.huge_blocks, 0);
    sc_heap_destroy(h);
}

static size_t round_up(size_t x, size_t a)
{
    return (x + a - 1) / a * a;
}

Test(resize, huge_realloc_in_place)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    const size_t first = 4 * MiB, second = 12 * MiB;
    unsigned char *a = sc_alloc(h, first);
    unsigned char *b = sc_alloc(h, second);
    unsigned char *guard = sc_alloc(h, 3 * MiB); /* keeps b's spans bounded */
    cr_assert(a && b && guard);
    test_pattern_fill(a, first, 1);
    /* Consecutive huge blocks of a fresh heap are carved one after the
     * other; b's spans are then exactly the ones following a's. */
    size_t a_span_end = round_up((uintptr_t)a + sc_usable_size(h, a), 2 * MiB);
    cr_assert((uintptr_t)b > (uintptr_t)a && (uintptr_t)b < a_span_end + 2 * MiB,
              "layout: a %p (%zu usable), b %p: b does not follow a", (void *)a,
              sc_usable_size(h, a), (void *)b);
    sc_free(h, b);

    /* Grow into b's freed spans, in steps, without moving. */
    size_t room = (size_t)((uintptr_t)guard - (uintptr_t)a) - 2 * MiB;
    size_t sizes[] = {first + 1, first + 2 * MiB, first + 7 * MiB, room};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *q = sc_realloc(h, a, sizes[i]);
        cr_assert_eq(q, a, "growing %p to %zu bytes moved it to %p although the following "
                           "spans are free", (void *)a, sizes[i], (void *)q);
        cr_assert_geq(sc_usable_size(h, a), sizes[i]);
        cr_assert_eq(test_pattern_check(a, first, 1), TEST_PATTERN_OK,
                     "contents lost growing in place to %zu", sizes[i]);
        /* The new part is writable. */
        memset(a + first, 0x42, sizes[i] - first);
    }
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.huge_blocks, 2);
    cr_assert_geq(st.huge_bytes, room + 3 * MiB);

    /* Blocks allocated now do not overlap the grown one. */
    unsigned char *c = sc_alloc(h, 5 * MiB);
    cr_assert_not_null(c);
    uintptr_t a_end = (uintptr_t)a + sc_usable_size(h, a);
    cr_assert((uintptr_t)c >= a_end || (uintptr_t)c + 5 * MiB <= (uintptr_t)a,
              "new block %p overlaps the grown block %p..%#lx", (void *)c, (void *)a,
              (unsigned long)a_end);
    memset(c, 0x17, 5 * MiB);
    for (size_t i = first; i < room; i += 4096)
        cr_assert_eq(a[i], 0x42, "grown block overwritten at %zu", i);

    /* Shrinking gives the tail back in place, and the tail is reusable. */
    unsigned char *s = sc_realloc(h, a, first);
    cr_assert_eq(s, a, "huge shrink moved the block");
    cr_assert_eq(test_pattern_check(a, first, 1), TEST_PATTERN_OK);
    sc_free(h, c);
    sc_free(h, guard);
    sc_free(h, a);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.huge_bytes, 0);

    /* Not asserted (the contract only promises it when the following spans
     * are free): whether the newest huge block of a region grows in place
     * into spans never used yet. */
    unsigned char *tail = sc_alloc(h, 4 * MiB);
    cr_assert_not_null(tail);
    unsigned char *grown = sc_realloc(h, tail, 40 * MiB);
    cr_assert_not_null(grown);
    cr_log_info("growing the newest huge block into unused spans: %s",
                grown == tail ? "in place" : "moved");
    sc_free(h, grown);
    sc_heap_destroy(h);
}
