/*
 * Configuration: scalloc.h, "Configuration" (sc_heap_config_t and the
 * SC_HEAP_* flags) as sc_heap_create takes it. Checked mode's double-free
 * checks are test_errors.c, requested-size tracking is test_requested.c,
 * reset_keep_bytes is tested with sc_heap_reset in test_heaps.c.
 *
 * Contract lines checked here:
 *  - the name is copied and shown; NULL cfg or NULL name means "heap"
 *                                                              [names]
 *  - reuse_threshold 1..100 is accepted, 101 is EINVAL          [invalid_config]
 *  - region_size: 0 is the default (256 MiB when the address space is not
 *    limited); a large one costs address space, not memory; a small one is
 *    not a cap (the heap adds regions, every block stays attributed to it)
 *                                                              [region_size]
 *  - limit_bytes is a hard cap on committed bytes: NULL/ENOMEM beyond it,
 *    for small, big, huge, aligned, calloc and realloc requests; committed
 *    never passes it; the heap stays usable and freeing makes room again,
 *    also with several threads racing for the room    [limit_bytes, limit_*]
 *  - at its limit, a heap whose memory sits in empty spans makes room for
 *    an over-aligned block as for any other  [aligned_at_limit_after_free_all]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#include "test_util.h"

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

Test(config, names)
{
    char name[32] = "tenant-42";
    sc_heap_config_t cfg = {.name = name};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    /* The configuration, name included, is copied. */
    strcpy(name, "overwritten");
    cr_assert_str_eq(sc_heap_name(h), "tenant-42");
    sc_heap_destroy(h);

    h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    cr_assert_str_eq(sc_heap_name(h), "heap");
    sc_heap_destroy(h);

    sc_heap_config_t unnamed = {.name = NULL};
    h = sc_heap_create(&unnamed);
    cr_assert_not_null(h);
    cr_assert_str_eq(sc_heap_name(h), "heap");
    sc_heap_destroy(h);
}

Test(config, invalid_config)
{
    sc_heap_config_t cfg = {.reuse_threshold = 101};
    errno = 0;
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_null(h, "reuse_threshold 101 accepted");
    cr_assert_eq(errno, EINVAL, "errno %d, expected EINVAL", errno);

    /* The edges of the valid range are accepted. */
    sc_heap_config_t edge = {.reuse_threshold = 100};
    h = sc_heap_create(&edge);
    cr_assert_not_null(h);
    sc_heap_destroy(h);
    edge.reuse_threshold = 1;
    h = sc_heap_create(&edge);
    cr_assert_not_null(h);
    sc_heap_destroy(h);
}

Test(config, limit_bytes)
{
    const size_t limit = (size_t)16 << 20;
    sc_heap_config_t cfg = {.name = "capped", .limit_bytes = limit};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);

    /* One huge request over the cap fails cleanly. */
    errno = 0;
    cr_assert_null(sc_alloc(h, (size_t)32 << 20));
    cr_assert_eq(errno, ENOMEM);

    /* Filling the heap with 64 KiB blocks stops at the cap, with ENOMEM, and
     * committed never passes it. */
    enum { MAX_BLOCKS = 1024 };
    static void *blocks[MAX_BLOCKS];
    size_t got = 0;
    for (; got < MAX_BLOCKS; got++) {
        errno = 0;
        blocks[got] = sc_alloc(h, 65536);
        if (blocks[got] == NULL)
            break;
        cr_assert_leq(test_stats(h).committed_bytes, limit);
    }
    cr_assert_lt(got, MAX_BLOCKS, "64 MiB allocated under a 16 MiB cap");
    cr_assert_eq(errno, ENOMEM, "errno %d at the cap", errno);
    cr_assert_geq(got * 65536, limit / 2, "only %zu KiB allocated under a %zu KiB cap",
                  got * 64, limit >> 10);
    cr_assert_leq(test_stats(h).committed_bytes, limit);

    /* Freeing makes room again. */
    for (size_t i = 0; i < got; i++)
        sc_free(h, blocks[i]);
    void *p = sc_alloc(h, (size_t)4 << 20);
    cr_assert_not_null(p, "4 MiB refused under a 16 MiB cap with nothing live");
    sc_free(h, p);
    sc_heap_destroy(h);
}

Test(config, region_size)
{
    /* The default: one 256 MiB region, unless an address-space limit makes
     * the default smaller (scalloc.h, region_size). */
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    struct rlimit as;
    cr_assert_eq(getrlimit(RLIMIT_AS, &as), 0);
    sc_heap_stats_t st = test_stats(h);
    if (as.rlim_cur == RLIM_INFINITY)
        cr_assert_eq(st.reserved_bytes, 256 * MiB, "default heap reserved %zu MiB",
                     st.reserved_bytes >> 20);
    else
        cr_assert_leq(st.reserved_bytes, 256 * MiB);
    sc_heap_destroy(h);

    /* A large region is address space only: nothing of it is committed or
     * resident until used. */
    sc_heap_config_t big = {.name = "big-region", .region_size = 16 * GiB};
    h = sc_heap_create(&big);
    cr_assert_not_null(h, "region_size 16 GiB refused (errno %d)", errno);
    st = test_stats(h);
    cr_log_info("region_size 16 GiB: %zu MiB reserved, %zu KiB committed, %zu KiB resident",
                st.reserved_bytes >> 20, st.committed_bytes >> 10, st.resident_bytes >> 10);
    if (as.rlim_cur == RLIM_INFINITY)
        cr_assert_geq(st.reserved_bytes, 16 * GiB);
    cr_assert_leq(st.committed_bytes, MiB, "%zu KiB committed by an empty heap",
                  st.committed_bytes >> 10);
    cr_assert_leq(st.resident_bytes, st.committed_bytes);
    sc_heap_destroy(h);

    /* A small region is not a cap: 64 MiB of blocks, one huge block larger
     * than the region, all of them the heap's. */
    sc_heap_config_t small = {.name = "small-region", .region_size = 8 * MiB};
    h = sc_heap_create(&small);
    cr_assert_not_null(h);
    size_t first_reserved = test_stats(h).reserved_bytes;
    enum { N = 1024 };
    static void *blocks[N];
    for (size_t i = 0; i < N; i++) {
        size_t n = i == 0 ? 20 * MiB : 64 * 1024 - 16 * (i % 7);
        blocks[i] = sc_alloc(h, n);
        cr_assert_not_null(blocks[i], "block %zu (%zu bytes) refused by a heap with 8 MiB "
                                      "regions (errno %d)",
                           i, n, errno);
        memset(blocks[i], 0x3c, 64);
        cr_assert_eq(sc_heap_of(blocks[i]), h, "block %zu in a later region not attributed", i);
    }
    st = test_stats(h);
    cr_log_info("8 MiB first region: %zu MiB reserved at first, %zu MiB with %zu MiB live",
                first_reserved >> 20, st.reserved_bytes >> 20, st.live_bytes >> 20);
    cr_assert_gt(st.reserved_bytes, first_reserved, "the heap never added a region");
    cr_assert_geq(st.reserved_bytes, st.committed_bytes);
    cr_assert_geq(st.committed_bytes, st.live_bytes);
    for (size_t i = 0; i < N; i++)
        sc_free(h, blocks[i]);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* Limit                                                                    */
/* ------------------------------------------------------------------------ */

#define LIMIT ((size_t)32 << 20)

static void assert_under_limit(sc_heap_t *h, const char *when)
{
    sc_heap_stats_t st = test_stats(h);
    cr_assert_leq(st.committed_bytes, LIMIT, "%s: committed %zu KiB over the %zu KiB limit",
                  when, st.committed_bytes >> 10, LIMIT >> 10);
}

/* Allocates blocks of sizes in [lo, hi] until the heap refuses; checks the
 * refusal and the limit; returns how many it got. */
static size_t fill_to_limit(sc_heap_t *h, void **blocks, size_t max, size_t lo, size_t hi,
                            uint64_t seed)
{
    test_rng_t rng = {seed};
    size_t got = 0;
    for (; got < max; got++) {
        size_t n = test_rng_range(&rng, lo, hi);
        errno = 0;
        blocks[got] = sc_alloc(h, n);
        if (blocks[got] == NULL) {
            cr_assert_eq(errno, ENOMEM, "sc_alloc(%zu) at the limit: errno %d", n, errno);
            break;
        }
        memset(blocks[got], 0x11, n < 4096 ? n : 4096);
        if (got % 512 == 0)
            assert_under_limit(h, "filling");
    }
    cr_assert_lt(got, max, "no refusal after %zu blocks of %zu..%zu bytes under a %zu MiB limit",
                 got, lo, hi, LIMIT >> 20);
    assert_under_limit(h, "at the limit");
    return got;
}

Test(config, limit_bytes_every_kind, .timeout = 120)
{
    sc_heap_config_t cfg = {.name = "capped", .limit_bytes = LIMIT};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    enum { MAX = 1 << 20 };
    static void *blocks[MAX];
    static const struct {
        size_t lo, hi;
    } kinds[] = {
        {1, 256},                                       /* small classes */
        {4097, 65536},                                  /* medium */
        {65537, SC_MAX_CLASS_SIZE},                     /* big classes */
        {SC_MAX_CLASS_SIZE + 1, 7 * MiB},               /* huge */
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (int pass = 0; pass < 2; pass++) {
            size_t got = fill_to_limit(h, blocks, MAX, kinds[k].lo, kinds[k].hi, k * 10 + pass);
            sc_heap_stats_t st = test_stats(h);
            cr_log_info("limit %zu MiB, sizes %zu..%zu, pass %d: %zu blocks, %zu KiB live, "
                        "%zu KiB committed",
                        LIMIT >> 20, kinds[k].lo, kinds[k].hi, pass, got, st.live_bytes >> 10,
                        st.committed_bytes >> 10);
            /* The cap is on committed bytes, not a much lower hidden one.
             * Each big class commits its own real span (up to ~1 MiB with
             * one block in it), so random big sizes waste up to half. */
            cr_assert_geq(st.live_bytes, LIMIT / 3, "only %zu KiB live at a %zu KiB limit",
                          st.live_bytes >> 10, LIMIT >> 10);
            /* Still usable: a request of another kind that fits is refused or
             * met cleanly, and freeing makes room for the same kind again. */
            for (size_t i = 0; i < got; i += 2)
                sc_free(h, blocks[i]);
            void *again = sc_alloc(h, kinds[k].lo);
            cr_assert_not_null(again, "sc_alloc(%zu) refused after freeing half", kinds[k].lo);
            sc_free(h, again);
            for (size_t i = 1; i < got; i += 2)
                sc_free(h, blocks[i]);
            cr_assert_eq(test_stats(h).live_blocks, 0);
        }
    }

    /* Single requests that can never fit. */
    errno = 0;
    cr_assert_null(sc_alloc(h, LIMIT + MiB));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(sc_calloc(h, 64, LIMIT / 32));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(sc_aligned_alloc(h, 4 * MiB, LIMIT));
    cr_assert_eq(errno, ENOMEM);
    assert_under_limit(h, "after refused huge requests");

    /* An alignment far above the limit costs address space, not committed
     * memory: a small block at 1 GiB alignment fits under 32 MiB. */
    void *aligned = sc_aligned_alloc(h, GiB, 100);
    cr_assert_not_null(aligned, "sc_aligned_alloc(1 GiB, 100) refused under a 32 MiB limit");
    cr_assert_eq((uintptr_t)aligned % GiB, 0);
    assert_under_limit(h, "after a 1 GiB-aligned block");
    sc_free(h, aligned);

    /* realloc past the limit fails and keeps the block. */
    unsigned char *p = sc_alloc(h, 20 * MiB);
    cr_assert_not_null(p);
    test_pattern_fill(p, 20 * MiB, 7);
    errno = 0;
    cr_assert_null(sc_realloc(h, p, 40 * MiB));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(test_pattern_check(p, 20 * MiB, 7), TEST_PATTERN_OK);
    cr_assert_eq(sc_usable_size(h, p) >= 20 * MiB, 1);
    assert_under_limit(h, "after a refused realloc");
    /* While it is live, a second 20 MiB cannot fit; small blocks still can. */
    errno = 0;
    cr_assert_null(sc_alloc(h, 20 * MiB));
    cr_assert_eq(errno, ENOMEM);
    void *small = sc_alloc(h, 64);
    cr_assert_not_null(small);
    sc_free(h, small);
    sc_free(h, p);
    /* And with it gone, the second one fits. */
    p = sc_alloc(h, 20 * MiB);
    cr_assert_not_null(p, "20 MiB refused with nothing live under a 32 MiB limit");
    sc_free(h, p);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

typedef struct limit_thread_s {
    sc_heap_t *heap;
    unsigned index;
    size_t refused;
    size_t allocated;
} limit_thread_t;

/* Hammers a capped heap: allocate until refused, free, repeat. */
static void *limit_thread_main(void *arg)
{
    limit_thread_t *a = arg;
    enum { MAXB = 20000 };
    static _Thread_local void *mine[MAXB];
    test_rng_t rng = {a->index + 31};
    for (int round = 0; round < 6; round++) {
        size_t got = 0;
        while (got < MAXB) {
            size_t n = test_rng_next(&rng) % 50 == 0 ? test_rng_range(&rng, MiB, 4 * MiB)
                                                     : test_mixed_size(&rng);
            errno = 0;
            void *p = sc_alloc(a->heap, n);
            if (p == NULL) {
                TEST_CHECK(errno == ENOMEM, "errno %d at the limit", errno);
                a->refused++;
                break;
            }
            memset(p, 0x66, n < 256 ? n : 256);
            mine[got++] = p;
        }
        a->allocated += got;
        for (size_t i = 0; i < got; i++)
            sc_free(a->heap, mine[i]);
    }
    return NULL;
}

Test(config, limit_bytes_with_threads, .timeout = 120)
{
    sc_heap_config_t cfg = {.name = "capped-mt", .limit_bytes = LIMIT};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    enum { T = 3 };
    pthread_t tids[T];
    limit_thread_t args[T];
    for (unsigned i = 0; i < T; i++) {
        args[i] = (limit_thread_t){h, i, 0, 0};
        cr_assert_eq(pthread_create(&tids[i], NULL, limit_thread_main, &args[i]), 0);
    }
    for (unsigned i = 0; i < T; i++)
        pthread_join(tids[i], NULL);
    size_t refused = 0;
    for (unsigned i = 0; i < T; i++)
        refused += args[i].refused;
    sc_heap_stats_t st = test_stats(h);
    cr_log_info("%d threads under a %zu MiB limit: %zu refusals; afterwards %zu KiB committed",
                T, LIMIT >> 20, refused, st.committed_bytes >> 10);
    cr_assert_gt(refused, 0, "the limit was never reached");
    cr_assert_eq(st.live_blocks, 0);
    assert_under_limit(h, "after the threads");
    /* Everything is free: the whole limit is available again. */
    void *p = sc_alloc(h, LIMIT - 4 * MiB);
    cr_assert_not_null(p, "%zu MiB refused with nothing live under a %zu MiB limit",
                       (LIMIT >> 20) - 4, LIMIT >> 20);
    sc_free(h, p);
    sc_heap_destroy(h);
}

/* At its limit, a heap whose memory sits in empty spans makes room for an
 * over-aligned block as it does for any other (found by the C++ tests). */
Test(config, aligned_at_limit_after_free_all)
{
    sc_heap_config_t cfg = {.limit_bytes = (size_t)4 << 20};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    static void *v[1 << 17];
    size_t n = 0;
    for (void *p; n < sizeof v / sizeof v[0] && (p = sc_alloc(h, 64)) != NULL;)
        v[n++] = p;
    cr_assert_lt(n, sizeof v / sizeof v[0], "the limit was never reached");
    for (size_t i = 0; i < n; i++)
        sc_free(h, v[i]);
    void *a = sc_aligned_alloc(h, 4096, 65536);
    cr_assert_not_null(a, "aligned allocation at the limit with nothing live failed");
    cr_assert_eq((uintptr_t)a % 4096, 0);
    sc_free(h, a);
    sc_heap_destroy(h);
}
