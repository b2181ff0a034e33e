/*
 * Grown spans (lib/tuning.h, GROWN_SPAN_AFTER; lib/frontend.c,
 * class_grow_level): a thread whose live blocks of a small class pile up in
 * many spans gets bigger real spans for that class, so that it pays for
 * fewer spans; a thread whose blocks come back keeps small ones.
 *
 * Contract lines checked here:
 *  - a class whose blocks stay live grows after GROWN_SPAN_AFTER floating
 *    spans, and once more after four times as many, up to
 *    GROWN_SPAN_LEVELS: the spans before are of the class's own size, each
 *    level's bigger than the last; every block's contents survive, counts
 *    add up, and everything comes back on free + trim    [piling_class_grows]
 *  - a class whose floating spans each have a block freed by their owner
 *    keeps spans of its own size                 [owner_frees_keep_spans_small]
 *  - a class whose blocks another thread frees keeps them too, while
 *    those frees still wait in its batches (a class forgets remote frees
 *    two retirement looks later: at most one grown span per look)
 *                                                [remote_frees_keep_spans_small]
 *  - checked and tracking heaps never grow spans         [not_in_checked_heaps]
 *  - classes of 320 B - 4 KiB start at 128 KiB and grow to 512 KiB
 *                                        [classes_over_256_bytes_start_bigger]
 *  - a thread that moves on to another class right after a phase that grew
 *    spans (well within the retirement looks' delay) takes those spans
 *    for the new class instead of fresh memory: the heap's committed bytes
 *    stay within what the first phase committed and one grown span, for
 *    each of two new classes in turn     [phase_change_reuses_grown_spans]
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <semaphore.h>
#include <string.h>

#include "address_map.h"
#include "invariants.h"
#include "size_class.h"
#include "span.h"
#include "test_util.h"
#include "tuning.h"

#define BLOCK 64

/* Blocks of BLOCK bytes in a span of the class's own size. */
static size_t base_capacity(sc_heap_t *h)
{
    return (size_t)span_keep_bytes(h, size_class_of(BLOCK), 0) / BLOCK;
}

/* Allocates blocks of BLOCK bytes into b[*n..] until `spans` distinct
 * spans have served them (the last of them just begun), each block
 * filled with a pattern of its index; returns the spans in order. */
static size_t fill_spans(sc_heap_t *h, void **b, size_t *n, size_t max, span_t **spans,
                         size_t nspans, size_t want)
{
    while (*n < max && nspans < want) {
        void *p = sc_alloc(h, BLOCK);
        cr_assert_not_null(p);
        test_pattern_fill(p, BLOCK, *n);
        b[(*n)++] = p;
        span_t *s = span_at(p);
        if (nspans == 0 || spans[nspans - 1] != s)
            spans[nspans++] = s;
    }
    return nspans;
}

static void free_all_checked(sc_heap_t *h, void **b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i] == NULL)
            continue;
        cr_assert_eq(test_pattern_check(b[i], BLOCK, i), (size_t)-1, "block %zu changed", i);
        sc_free(h, b[i]);
    }
}

static size_t grown_count(span_t **spans, size_t n)
{
    size_t g = 0;
    for (size_t i = 0; i < n; i++)
        g += span_grown_level(spans[i]) > 0;
    return g;
}

/* The floating spans a class needs to grow to `level` (frontend.c,
 * class_grow_level): GROWN_SPAN_AFTER, then four times as many for each
 * level more. */
static size_t spans_before_level(unsigned level)
{
    return level == 0 ? 0 : (size_t)GROWN_SPAN_AFTER << (2 * (level - 1));
}

enum { SPANS = (GROWN_SPAN_AFTER << (2 * (GROWN_SPAN_LEVELS - 1))) + 2, MAX_SPANS = 64 };

/* Room for the blocks of SPANS spans, grown or not (each level a band, 4
 * times the blocks); *max: how many. */
static void **block_array(sc_heap_t *h, size_t *max)
{
    *max = base_capacity(h) * ((size_t)1 << (2 * GROWN_SPAN_LEVELS)) * SPANS;
    void **b = calloc(*max, sizeof *b);
    cr_assert_not_null(b);
    return b;
}

Test(grown_spans, piling_class_grows)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    cr_assert(span_class_can_grow(h, size_class_of(BLOCK)));
    size_t max;
    void **b = block_array(h, &max);
    span_t *spans[MAX_SPANS];
    size_t n = 0;
    size_t ns = fill_spans(h, b, &n, max, spans, 0, SPANS);
    cr_assert_eq(ns, (size_t)SPANS, "%zu blocks filled only %zu spans", n, ns);
    /* Each full hot span floats as the next is set up: span i is set up
     * with i floating, so the first grown one is span GROWN_SPAN_AFTER,
     * the first grown twice span 4 * GROWN_SPAN_AFTER. */
    for (size_t i = 0; i < ns; i++) {
        unsigned want = 0;
        while (want < GROWN_SPAN_LEVELS && i >= spans_before_level(want + 1))
            want++;
        cr_assert_eq(span_grown_level(spans[i]), want, "span %zu of %zu: level %u", i, ns,
                     span_grown_level(spans[i]));
        if (i > 0 && want > span_grown_level(spans[i - 1]))
            cr_assert_gt(span_capacity(spans[i]), span_capacity(spans[i - 1]));
        else if (i > 0)
            cr_assert_eq(span_capacity(spans[i]), span_capacity(spans[i - 1]));
    }
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(h, &bad);
    cr_assert_null(broken, "%s (span %p)", broken, (void *)bad);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, n);
    free_all_checked(h, b, n);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    broken = invariants_check_heap(h, &bad);
    cr_assert_null(broken, "after the frees: %s (span %p)", broken, (void *)bad);
    /* The next round reuses them, grown ones included, contents intact. */
    n = 0;
    ns = fill_spans(h, b, &n, max, spans, 0, SPANS);
    free_all_checked(h, b, n);
    sc_heap_trim(h);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_leq(st.resident_bytes, (size_t)64 << 10, "%zu bytes resident after free-all + trim",
                  st.resident_bytes);
    free(b);
    sc_heap_destroy(h);
}

Test(grown_spans, owner_frees_keep_spans_small)
{
    sc_heap_t *h = sc_heap_create(NULL);
    size_t max;
    void **b = block_array(h, &max);
    span_t *spans[MAX_SPANS];
    size_t n = 0;
    size_t ns = 0;
    /* As each span begins, a block of the one before (now floating) comes
     * back: no floating span is ever full. */
    while (ns < SPANS) {
        ns = fill_spans(h, b, &n, max, spans, ns, ns + 1);
        if (ns < 2)
            continue;
        for (size_t i = n - 1; i-- > 0;) {
            if (b[i] != NULL && span_at(b[i]) == spans[ns - 2]) {
                sc_free(h, b[i]);
                b[i] = NULL;
                break;
            }
        }
    }
    cr_assert_eq(grown_count(spans, ns), 0, "a class whose blocks come back grew");
    free_all_checked(h, b, n);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    free(b);
    sc_heap_destroy(h);
}

/* A thread that frees the blocks it is handed and stays alive, so its
 * frees wait in its batches (counted live in their spans) until it exits:
 * a producer's consumer. */
typedef struct remote_freer_s {
    sc_heap_t *heap;
    void *block; /* NULL: exit */
    sem_t go, done;
} remote_freer_t;

static void *remote_freer(void *arg)
{
    remote_freer_t *r = arg;
    for (;;) {
        sem_wait(&r->go);
        if (r->block == NULL)
            return NULL; /* its batches are handed over at exit */
        sc_free(r->heap, r->block);
        sem_post(&r->done);
    }
}

Test(grown_spans, remote_frees_keep_spans_small)
{
    sc_heap_t *h = sc_heap_create(NULL);
    size_t max;
    void **b = block_array(h, &max);
    remote_freer_t r = {.heap = h};
    cr_assert_eq(sem_init(&r.go, 0, 0), 0);
    cr_assert_eq(sem_init(&r.done, 0, 0), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, remote_freer, &r), 0);
    span_t *spans[MAX_SPANS];
    size_t n = 0, ns = 0;
    double start = test_now_seconds();
    /* Each new span's first block is freed by the other thread at once;
     * the spans still look full, the free waiting in its batch. */
    while (ns < SPANS) {
        ns = fill_spans(h, b, &n, max, spans, ns, ns + 1);
        r.block = b[n - 1];
        b[n - 1] = NULL;
        sem_post(&r.go);
        sem_wait(&r.done);
    }
    double ms = (test_now_seconds() - start) * 1e3;
    r.block = NULL;
    sem_post(&r.go);
    cr_assert_eq(pthread_join(th, NULL), 0);
    size_t grown = grown_count(spans, ns);
    cr_assert_leq(grown, 1 + (size_t)(ms / HOT_RETIRE_MS),
                  "%zu grown spans in %.0f ms of remote frees", grown, ms);
    free_all_checked(h, b, n);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sem_destroy(&r.go);
    sem_destroy(&r.done);
    free(b);
    sc_heap_destroy(h);
}

Test(grown_spans, not_in_checked_heaps)
{
    unsigned flags[] = {SC_HEAP_CHECKED, SC_HEAP_TRACK_REQUESTED};
    for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
        sc_heap_config_t cfg = {.flags = flags[f]};
        sc_heap_t *h = sc_heap_create(&cfg);
        cr_assert_not_null(h);
        cr_assert(!span_class_can_grow(h, size_class_of(BLOCK)), "flags %#x", flags[f]);
        size_t max;
        void **b = block_array(h, &max);
        span_t *spans[MAX_SPANS];
        size_t n = 0;
        size_t ns = fill_spans(h, b, &n, max, spans, 0, SPANS);
        cr_assert_eq(grown_count(spans, ns), 0, "flags %#x: a span grew", flags[f]);
        free_all_checked(h, b, n);
        free(b);
        sc_heap_destroy(h);
    }
}

/* The smallest band (32 KiB) takes only the classes it holds about
 * REAL_SPAN_SMALLEST_BLOCKS of (up to 256 B); the other classes up to
 * 4 KiB start at 128 KiB and grow once, to 512 KiB, where the smallest
 * band's classes stop too. A piling class of 1 KiB blocks: spans of
 * 128 KiB, then of 512 KiB from span GROWN_SPAN_AFTER on. */
Test(grown_spans, classes_over_256_bytes_start_bigger)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    for (unsigned cls = 0; cls < NUM_CLASSES && size_class_block_size(cls) <= 4096; cls++) {
        size_t bs = size_class_block_size(cls);
        size_t base = span_keep_bytes(h, cls, 0);
        cr_assert_eq(base, bs <= 256 ? REAL_SPAN_MIN : REAL_SPAN_BAND(1), "%zu B: %zu bytes", bs,
                     base);
        cr_assert_geq((base - SPAN_LEAD) / bs, bs <= 256 ? REAL_SPAN_SMALLEST_BLOCKS - 1 : 31,
                      "%zu B", bs);
        cr_assert(span_class_can_grow(h, cls), "%zu B cannot grow", bs);
        cr_assert_eq(span_keep_bytes(h, cls, GROWN_SPAN_LEVELS), REAL_SPAN_BAND(2), "%zu B", bs);
    }
    enum { BIG = 1024, WANT = GROWN_SPAN_AFTER + 2 };
    size_t max = (REAL_SPAN_BAND(2) / BIG) * WANT;
    void **b = calloc(max, sizeof *b);
    cr_assert_not_null(b);
    span_t *spans[WANT];
    size_t n = 0, ns = 0;
    while (n < max && ns < WANT) {
        void *p = sc_alloc(h, BIG);
        cr_assert_not_null(p);
        test_pattern_fill(p, BIG, n);
        b[n++] = p;
        if (ns == 0 || spans[ns - 1] != span_at(p))
            spans[ns++] = span_at(p);
    }
    cr_assert_eq(ns, (size_t)WANT);
    for (size_t i = 0; i < ns; i++)
        cr_assert_eq(span_real_bytes(spans[i]), i < GROWN_SPAN_AFTER ? REAL_SPAN_BAND(1) : REAL_SPAN_BAND(2),
                     "span %zu: %zu bytes", i, span_real_bytes(spans[i]));
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(test_pattern_check(b[i], BIG, i), (size_t)-1, "block %zu changed", i);
        sc_free(h, b[i]);
    }
    cr_assert_eq(test_stats(h).live_blocks, 0);
    free(b);
    sc_heap_destroy(h);
}

/* Phase after phase (lib/frontend.c, PHASE CHANGES): 6 MiB of 1 KiB
 * blocks allocated and freed (their class grows to 512 KiB spans), then
 * at once 5.5 MiB of 4 KiB blocks, then of 2 KiB blocks. Without the
 * phase-change reuse the third phase committed 10,704 KiB after the first
 * one's 6,220: the 4 KiB class's grown spans, kept empty for it, idled
 * until the next retirement looks; here the committed bytes stay within
 * the first phase's and one grown span (a slow machine whose looks come
 * sooner pools them, which passes too). */
Test(grown_spans, phase_change_reuses_grown_spans)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    static const size_t sizes[] = {1024, 4096, 2048};
    static const size_t bytes[] = {(size_t)6 << 20, (size_t)11 << 19, (size_t)11 << 19};
    size_t max = bytes[0] / sizes[0];
    void **b = malloc(max * sizeof *b);
    cr_assert_not_null(b);
    size_t first_phase = 0;
    for (unsigned ph = 0; ph < 3; ph++) {
        size_t n = bytes[ph] / sizes[ph];
        for (size_t i = 0; i < n; i++) {
            b[i] = sc_alloc(h, sizes[ph]);
            cr_assert_not_null(b[i]);
            test_pattern_fill(b[i], sizes[ph], i);
        }
        sc_heap_stats_t st = test_stats(h);
        cr_assert_eq(st.live_bytes, n * sizes[ph]);
        cr_log_info("phase %u (%zu B blocks): %zu KiB committed", ph + 1, sizes[ph],
                    st.committed_bytes >> 10);
        if (ph == 0) {
            first_phase = st.committed_bytes;
            span_t *last = span_at(b[n - 1]);
            cr_assert_gt(span_grown_level(last), 0, "the first phase grew no spans");
        } else {
            cr_assert_leq(st.committed_bytes, first_phase + REAL_SPAN_BAND(GROWN_SPAN_LEVELS),
                          "phase %u (%zu B blocks): %zu KiB committed, the first phase %zu KiB",
                          ph + 1, sizes[ph], st.committed_bytes >> 10, first_phase >> 10);
        }
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(test_pattern_check(b[i], sizes[ph], i), TEST_PATTERN_OK,
                         "block %zu of phase %u", i, ph + 1);
            sc_free(h, b[i]);
        }
    }
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
    free(b);
}
