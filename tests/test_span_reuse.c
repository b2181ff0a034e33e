/*
 * Span reuse (DESIGN.md §1 "Virtual spans", "The span pool", span life
 * cycle; §2 sc_heap_get_stats committed bytes).
 *
 * Contract lines checked here:
 *  - any free span is reused for any size class, so a steady-state
 *    alloc/free loop stops growing the heap's committed memory after its
 *    first round                                             [steady_state_*]
 *  - freed huge runs are reused: a loop of huge alloc/free does not grow
 *    committed or reserved memory                            [huge_runs_reused]
 *  - after everything is freed no span is left hot/floating/reusable
 *    with zero live blocks counted                           [steady_state_same_pattern]
 *  - a hot span whose blocks are all free, of a class the thread stopped
 *    using, goes to the pool by itself while the thread keeps working on
 *    its slow paths (no trim): its class counts no span, the pool one more
 *                                             [unused_class_hot_span_retires]
 *  - floating spans that the owner's frees empty wait for their class
 *    (committing at most FRONTEND_KEEP_EMPTY_BYTES per frontend; more go
 *    to the pool), serve its next batch without a span from the pool, go
 *    to the pool by themselves once the thread stops using the class, and
 *    give their memory back on a trim by another thread while their owner
 *    is blocked; the owner then uses them again, or exits
 *                         [kept_empty_spans_*, kept_span_trimmed_then_owner_exits]
 *  - so does a floating span that the owner and another thread emptied
 *    together without either seeing it empty
 *                           [empty_floating_span_trimmed_by_other_thread]
 *  - kept spans serve another class of their band that the thread moves
 *    to (no span from the pool, no new memory), never a class of a bigger
 *    band                        [kept_spans_serve_another_class_of_their_band]
 *  - a thread that cycles batches bigger than it keeps grows its keep
 *    budget until a batch takes no span from the pool, and the budget
 *    falls back once its kept spans retire     [keep_budget_follows_the_batch]
 *  - small classes that find only bigger warm spans in the pool cut
 *    several at once and take the others as they are
 *                                [small_classes_cut_big_warm_spans_in_batches]
 *  - a span its thread left half used (its blocks outliving the thread)
 *    is reusable at once: the next thread of its class fills its holes
 *    and nothing else, taking no new memory, and it is reusable again
 *    when that thread exits too; contents survive
 *                                   [given_up_span_reusable_from_an_eighth]
 *  - one left with fewer than an eighth of its blocks free waits DETACHED
 *    until other threads' frees bring it there, and is reusable from the
 *    batch of frees that does            [nearly_full_given_up_span_waits]
 *  - a floating span is refilled from once the reuse threshold of its
 *    blocks is free, or REUSE_ENOUGH_BYTES of them if that is fewer (one
 *    block of 64 KiB and more)    [big_block_spans_reused_from_enough_bytes]
 *  - a hot span of blocks of 4 KiB and more does not carve new blocks while
 *    the first floating span of its class has free blocks on its list: that
 *    one becomes hot; small blocks carve on [free_blocks_before_never_used_ones]
 *  - each heap keeps its own reuse threshold while heaps of one kind share
 *    one geometry table (span.c, "THE SHARED GEOMETRY TABLES"): heaps made
 *    alternately with thresholds 10 and 100, plain and checked, set their
 *    spans up with their own threshold and their kind's layout
 *                                    [reuse_threshold_per_heap_shared_layout]
 */
#include <criterion/criterion.h>

#include <string.h>
#include <time.h>

#include <pthread.h>

#include "frontend.h"
#include "invariants.h"
#include "test_util.h"
#include "tuning.h"

/* The spans the calling thread keeps empty for class cls (frontend.c,
 * "KEPT EMPTY SPANS"), up to max, into out; their count. */
static size_t kept_spans_of(sc_heap_t *h, unsigned cls, span_t **out, size_t max)
{
    sc_frontend_t *t = sc_heap_thread(h);
    size_t n = 0;
    span_t *head = t->floating[cls];
    for (span_t *s = head; s != NULL; s = s->set_next == head ? NULL : s->set_next) {
        if (s->kept_empty && n < max)
            out[n++] = s;
    }
    return n;
}

/* The span of block p (its header, in the region's header table). */
static span_t *span_of(const void *p)
{
    return span_at(p);
}

enum { ROUNDS = 10 };

typedef struct round_figures_s {
    size_t peak_committed;  /* after the allocation phase of a round */
    size_t after_committed; /* after the free phase */
} round_figures_t;

/* A mix heavier on small objects than test_mixed_size so a round of 100k
 * objects stays under ~80 MiB, plus a few huge blocks per round. */
static size_t reuse_size(test_rng_t *r, size_t i)
{
    if (i % 25000 == 12345)
        return SC_MAX_CLASS_SIZE + 1 + (size_t)(test_rng_next(r) % (4u << 20));
    unsigned pick = (unsigned)(test_rng_next(r) % 100);
    if (pick < 85)
        return test_rng_range(r, 1, 256);
    if (pick < 99)
        return test_rng_range(r, 257, 4096);
    return test_rng_range(r, 4097, 65536);
}

/* One round: allocate `count` blocks, touch each, free them in a shuffled
 * order (so spans pass through floating and reusable before going free). */
static round_figures_t run_round(sc_heap_t *h, void **ptrs, size_t count, uint64_t seed)
{
    test_rng_t rng = {seed};
    for (size_t i = 0; i < count; i++) {
        size_t n = reuse_size(&rng, i);
        unsigned char *p = sc_alloc(h, n);
        cr_assert_not_null(p, "sc_alloc(h, %zu) failed at object %zu", n, i);
        p[0] = (unsigned char)i;
        p[n - 1] = (unsigned char)(i >> 8);
        ptrs[i] = p;
    }
    round_figures_t f;
    f.peak_committed = test_stats(h).committed_bytes;
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = (size_t)(test_rng_next(&rng) % (i + 1));
        void *t = ptrs[i];
        ptrs[i] = ptrs[j];
        ptrs[j] = t;
    }
    for (size_t i = 0; i < count; i++)
        sc_free(h, ptrs[i]);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0, "live blocks after a round: %zu", st.live_blocks);
    f.after_committed = st.committed_bytes;
    return f;
}

static void log_rounds(const char *what, const round_figures_t *f, int n)
{
    for (int r = 0; r < n; r++)
        cr_log_info("%s round %d: committed peak %zu KiB, after free %zu KiB", what, r + 1,
                    f[r].peak_committed >> 10, f[r].after_committed >> 10);
}

/* Every round repeats the same requests in the same order, so a heap that
 * reuses its spans needs about the memory of round 1 in every later round,
 * and no more as rounds go on. */
Test(span_reuse, steady_state_same_pattern, .timeout = 120)
{
    size_t count = test_scaled(100000, 10000);
    void **ptrs = calloc(count, sizeof *ptrs);
    cr_assert_not_null(ptrs);
    /* The release policy keeps free memory committed for reuse and gives
     * it back by time (purge_delay_ms) and, oldest first, by the bound:
     * which pages are kept then depends on the clock, and kept pages count
     * as committed. This heap gives free memory back whenever it allocates
     * (retain_bytes = 1, no delay), as scalloc did before the policy, so
     * committed bytes show span reuse alone, the same in every run. */
    sc_heap_config_t cfg = {.purge_delay_ms = SC_PURGE_NEVER, .retain_bytes = 1};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);

    round_figures_t f[ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        f[r] = run_round(h, ptrs, count, 1234);
    log_rounds("same pattern", f, ROUNDS);

    /* Round 2 may settle a little differently from round 1 (it starts with
     * spans in the pool rather than none), within 1%; from then on the same
     * requests must need exactly the same memory. */
    size_t settle = f[0].peak_committed / 100;
    for (int r = 1; r < ROUNDS; r++)
        cr_assert_leq(f[r].peak_committed, f[0].peak_committed + settle,
                      "round %d peak committed %zu KiB, round 1 needed %zu KiB", r + 1,
                      f[r].peak_committed >> 10, f[0].peak_committed >> 10);
    /* From round 2 on the need stays put: within 1/64 of round 1's over
     * rounds 2..10 (no growth from spans that are never reused). Not
     * exactly equal: a big request whose class has no free block borrows
     * one of the next classes' (frontend.c, BORROWING), so which blocks a
     * round uses depends on what the round before left free, and spans of
     * 128 KiB and 512 KiB (blocks over 256 B) carry that difference in
     * bigger steps, as do the up to 8 MiB of empty spans the thread keeps
     * for its classes (FRONTEND_KEEP_EMPTY_MAX), which another class of the
     * thread takes only where its real span fits. Measured: rounds 2..30
     * within 924 KiB of each other, of 97,200 KiB, no trend (1 MiB kept:
     * 420 KiB; with 32 KiB spans for blocks up to 4 KiB: rounds 2..10
     * within 208 KiB, of 98,548 KiB). */
    size_t lo = SIZE_MAX, hi = 0, lo_after = SIZE_MAX, hi_after = 0;
    for (int r = 1; r < ROUNDS; r++) {
        lo = f[r].peak_committed < lo ? f[r].peak_committed : lo;
        hi = f[r].peak_committed > hi ? f[r].peak_committed : hi;
        lo_after = f[r].after_committed < lo_after ? f[r].after_committed : lo_after;
        hi_after = f[r].after_committed > hi_after ? f[r].after_committed : hi_after;
    }
    cr_assert_leq(hi - lo, f[0].peak_committed / 64,
                  "peak committed still moving: rounds 2-%d between %zu and %zu KiB", ROUNDS,
                  lo >> 10, hi >> 10);
    cr_assert_leq(hi_after - lo_after, f[0].peak_committed / 64,
                  "committed after free still moving: rounds 2-%d between %zu and %zu KiB",
                  ROUNDS, lo_after >> 10, hi_after >> 10);

    /* Everything is free and this thread is the only owner: its spans are
     * its hot spans (at most one per class), the empty floating spans it
     * keeps for their class (committing at most FRONTEND_KEEP_EMPTY_BYTES,
     * each at least a REAL_SPAN_MIN), or back in the pool. A trim gives
     * the kept ones to the pool too. */
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_leq(st.spans_floating, FRONTEND_KEEP_EMPTY_BYTES / REAL_SPAN_MIN,
                  "floating spans with nothing live: %zu", st.spans_floating);
    sc_heap_trim(h);
    st = test_stats(h);
    cr_assert_eq(st.spans_floating, 0, "floating spans with nothing live after a trim: %zu",
                 st.spans_floating);
    cr_assert_eq(st.spans_reusable, 0, "reusable spans with nothing live: %zu",
                 st.spans_reusable);
    cr_assert_leq(st.spans_hot, SC_NUM_CLASSES, "hot spans: %zu", st.spans_hot);

    sc_heap_destroy(h);
    free(ptrs);
}

/* Each round draws different sizes; the total need varies a little from round
 * to round, so allow 10% over the highest of the first two rounds. Growth
 * from leaked or never-reused spans would pass that after a few rounds. */
Test(span_reuse, steady_state_varying_pattern, .timeout = 120)
{
    size_t count = test_scaled(100000, 10000);
    void **ptrs = calloc(count, sizeof *ptrs);
    cr_assert_not_null(ptrs);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);

    round_figures_t f[ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        f[r] = run_round(h, ptrs, count, 99 + (uint64_t)r * 1000003);
    log_rounds("varying pattern", f, ROUNDS);

    size_t base = f[0].peak_committed > f[1].peak_committed ? f[0].peak_committed
                                                            : f[1].peak_committed;
    for (int r = 2; r < ROUNDS; r++)
        cr_assert_leq(f[r].peak_committed, base + base / 10,
                      "round %d peak committed %zu KiB, rounds 1-2 needed %zu KiB", r + 1,
                      f[r].peak_committed >> 10, base >> 10);
    sc_heap_destroy(h);
    free(ptrs);
}

Test(span_reuse, huge_runs_reused)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    test_rng_t rng = {5};
    size_t first_reserved = 0;
    size_t rounds = test_scaled(2000, 200);
    for (size_t i = 0; i < rounds; i++) {
        size_t n = SC_MAX_CLASS_SIZE + 1 + (size_t)(test_rng_next(&rng) % (8u << 20));
        unsigned char *p = sc_alloc(h, n);
        cr_assert_not_null(p, "huge sc_alloc(h, %zu) failed at %zu", n, i);
        p[0] = 1;
        p[n - 1] = 2;
        sc_heap_stats_t st = test_stats(h);
        cr_assert_eq(st.huge_blocks, 1);
        cr_assert_geq(st.huge_bytes, n);
        if (i == 0)
            first_reserved = st.reserved_bytes;
        /* The address range of a freed run is reused: 2000 rounds of up to
         * 9 MiB would need 18 GiB of fresh address space otherwise. */
        cr_assert_eq(st.reserved_bytes, first_reserved,
                     "reserved grew from %zu to %zu MiB at huge alloc %zu",
                     first_reserved >> 20, st.reserved_bytes >> 20, i);
        sc_free(h, p);
    }
    /* Freed huge runs keep their pages for the next block until the
     * release policy's delay passes; trim gives them back now. */
    sc_heap_trim(h);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.huge_blocks, 0);
    cr_assert_eq(st.huge_bytes, 0);
    cr_assert_lt(st.committed_bytes, (size_t)4 << 20,
                 "committed %zu KiB after freeing every huge block", st.committed_bytes >> 10);
    sc_heap_destroy(h);
}


Test(span_reuse, unused_class_hot_span_retires, .timeout = 60)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* Class of 40 KiB blocks: used once, then never again. */
    void *p = sc_alloc(h, 40 << 10);
    cr_assert_not_null(p);
    memset(p, 1, 40 << 10);
    unsigned cls = 0;
    sc_heap_stats_t st = test_stats(h);
    for (unsigned c = 0; c < SC_NUM_CLASSES; c++)
        if (st.classes[c].block_size == sc_usable_size(h, p))
            cls = c;
    sc_free(h, p);
    st = test_stats(h);
    /* The free empties the span: it stays the class's, hot or (a span is
     * armed when it becomes hot, frontend.c "ARMED HOT SPANS") kept. */
    span_t *kept[4];
    cr_assert_eq(st.classes[cls].spans + kept_spans_of(h, cls, kept, 4), 1,
                 "the class keeps its span right after the free");
    size_t pooled_before = st.spans_free - kept_spans_of(h, cls, kept, 4);
    /* The thread goes on with huge blocks only: every call is a slow path.
     * Bounded in calls and in time (the coarse clock must pass two looks). */
    double start = test_now_seconds();
    size_t calls = 0;
    while (calls < 10000000 && test_now_seconds() - start < 20.0) {
        void *q = sc_alloc(h, 2u << 20);
        cr_assert_not_null(q);
        sc_free(h, q);
        if (++calls % 256 == 0) {
            st = test_stats(h);
            if (st.classes[cls].spans == 0 && kept_spans_of(h, cls, kept, 4) == 0)
                break;
        }
    }
    size_t left = kept_spans_of(h, cls, kept, 4);
    cr_log_info("%zu huge alloc/free pairs, %.0f ms: class %u spans %zu, kept %zu, pool %zu -> %zu",
                calls, (test_now_seconds() - start) * 1e3, cls, st.classes[cls].spans, left,
                pooled_before, st.spans_free);
    cr_assert_eq(st.classes[cls].spans, 0, "the empty hot span of an unused class stayed hot");
    cr_assert_eq(left, 0, "the empty span of an unused class stayed kept");
    cr_assert_gt(st.spans_free, pooled_before, "the retired span is not in the pool");
    /* The class still works: a new span for it. */
    p = sc_alloc(h, 40 << 10);
    cr_assert_not_null(p);
    memset(p, 2, 40 << 10);
    sc_free(h, p);
    sc_heap_destroy(h);
}

/* A batch of count 32 B blocks, block i filled with byte i + salt. */
static void **alloc_batch(sc_heap_t *h, size_t count, int salt)
{
    void **b = calloc(count, sizeof *b);
    cr_assert_not_null(b);
    for (size_t i = 0; i < count; i++) {
        b[i] = sc_alloc(h, 32);
        cr_assert_not_null(b[i]);
        memset(b[i], (int)((i + (size_t)salt) & 0xff), 32);
    }
    return b;
}

static void free_batch(sc_heap_t *h, void **b, size_t count, int salt)
{
    for (size_t i = 0; i < count; i++) {
        const unsigned char *q = b[i];
        cr_assert(q[0] == (unsigned char)(i + (size_t)salt) && q[31] == q[0], "block %zu changed", i);
        sc_free(h, b[i]);
    }
    free(b);
}

/* The spans the calling thread keeps empty for the 32 B class, up to max,
 * into out; their count. */
static size_t kept_spans(sc_heap_t *h, span_t **out, size_t max)
{
    return kept_spans_of(h, size_class_of(32), out, max);
}

static size_t blocks_per_span(void)
{
    return (REAL_SPAN_MIN - SPAN_LEAD) / 32;
}

/* The real span of a span of the 32 B class grown the most (tuning.h,
 * GROWN_SPAN_AFTER): the most one kept span of the class may count. */
static size_t grown_span_bytes(sc_heap_t *h)
{
    return span_keep_bytes(h, size_class_of(32), GROWN_SPAN_LEVELS);
}

Test(span_reuse, kept_empty_spans_bounded_and_reused)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* 4 MiB of 32 B blocks in 32 KiB real spans: four times what a
     * frontend keeps. */
    size_t count = (4u << 20) / 32;
    void **b = alloc_batch(h, count, 0);
    free_batch(h, b, count, 0);
    sc_frontend_t *t = sc_heap_thread(h);
    span_t *kept[64];
    size_t n = kept_spans(h, kept, 64);
    /* Emptied floating spans within the bound, and the hot span, whose
     * last free emptied it too (it is armed), whatever the bound. */
    cr_assert_gt(n, 0, "no empty span kept for the class");
    cr_assert_leq(t->kept_empty_bytes, FRONTEND_KEEP_EMPTY_BYTES + grown_span_bytes(h));
    cr_assert_leq(n, FRONTEND_KEEP_EMPTY_BYTES / REAL_SPAN_MIN + 1, "%zu spans kept", n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(span_state(kept[i]), SPAN_DRAINED, "a kept span is DRAINED");
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_gt(st.spans_free, n, "what the bound does not keep is in the pool");
    /* A batch that the hot span and the kept spans hold is served by them:
     * no other span, nothing committed but the tail of the one that was
     * hot last, which carves on if it is taken first (a grown span's tail
     * may be uncommitted). */
    size_t committed = st.committed_bytes;
    size_t small = 0; /* what the kept spans carved (some may be grown) */
    for (size_t k = 0; k < n; k++)
        small += span_capacity(kept[k]) - (size_t)(kept[k]->bump_end - span_bump(kept[k])) / 32;
    span_t *hot = t->hot[size_class_of(32)];
    b = alloc_batch(h, small, 3);
    st = test_stats(h);
    cr_assert_geq(st.committed_bytes, committed);
    cr_assert_leq(st.committed_bytes, committed + grown_span_bytes(h));
    for (size_t i = 0; i < small; i++) {
        span_t *s = span_of(b[i]);
        bool known = s == hot;
        for (size_t k = 0; k < n && !known; k++)
            known = s == kept[k];
        cr_assert(known, "block %zu came from a span that was not kept", i);
    }
    free_batch(h, b, small, 3);
    sc_heap_destroy(h);
}

Test(span_reuse, kept_empty_spans_retire, .timeout = 60)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    size_t count = 4 * blocks_per_span();
    free_batch(h, alloc_batch(h, count, 0), count, 0);
    span_t *kept[8];
    cr_assert_geq(kept_spans(h, kept, 8), 3, "the emptied spans are kept");
    sc_heap_stats_t st = test_stats(h);
    /* The thread stops using the class and goes on with huge blocks only
     * (every call a slow path): two retirement looks later the kept spans
     * are in the pool. Bounded in calls and in time. */
    double start = test_now_seconds();
    size_t calls = 0, left = 0;
    while (calls < 10000000 && test_now_seconds() - start < 20.0) {
        void *q = sc_alloc(h, 2u << 20);
        cr_assert_not_null(q);
        sc_free(h, q);
        if (++calls % 256 == 0 && (left = kept_spans(h, kept, 8)) == 0)
            break;
    }
    st = test_stats(h);
    cr_log_info("%zu huge alloc/free pairs, %.0f ms: kept %zu, pool %zu", calls,
                (test_now_seconds() - start) * 1e3, left, st.spans_free);
    cr_assert_eq(left, 0, "kept spans of an unused class stayed");
    cr_assert_eq(sc_heap_thread(h)->kept_empty_bytes, 0);
    sc_heap_destroy(h);
}

typedef struct kept_worker_s {
    sc_heap_t *heap;
    pthread_barrier_t *barrier;
    bool use_again; /* after the trim: use the kept spans again, or exit */
    size_t kept;
    span_t *spans[8];
} kept_worker_t;

static void *kept_worker(void *arg)
{
    kept_worker_t *w = arg;
    size_t count = 4 * blocks_per_span();
    free_batch(w->heap, alloc_batch(w->heap, count, 0), count, 0);
    w->kept = kept_spans(w->heap, w->spans, 8);
    pthread_barrier_wait(w->barrier); /* kept: the main thread trims */
    pthread_barrier_wait(w->barrier); /* trimmed */
    if (w->use_again)
        free_batch(w->heap, alloc_batch(w->heap, count, 5), count, 5);
    return NULL;
}

/* Starts kept_worker and waits until it is blocked with an empty hot span
 * and at least three kept spans. */
static void kept_worker_start(kept_worker_t *w, sc_heap_t *h, pthread_barrier_t *barrier,
                              bool use_again, pthread_t *th)
{
    pthread_barrier_init(barrier, NULL, 2);
    *w = (kept_worker_t){.heap = h, .barrier = barrier, .use_again = use_again};
    cr_assert_eq(pthread_create(th, NULL, kept_worker, w), 0);
    pthread_barrier_wait(barrier);
    cr_assert_geq(w->kept, 3, "the worker kept %zu spans", w->kept);
}

Test(span_reuse, kept_empty_spans_trimmed_by_other_thread)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    pthread_barrier_t barrier;
    kept_worker_t w;
    pthread_t th;
    kept_worker_start(&w, h, &barrier, true, &th);
    sc_heap_stats_t before = test_stats(h);
    sc_heap_trim(h);
    sc_heap_stats_t after = test_stats(h);
    cr_log_info("resident %zu KiB -> %zu KiB after a trim by another thread", before.resident_bytes >> 10,
                after.resident_bytes >> 10);
    for (size_t i = 0; i < w.kept; i++)
        cr_assert(span_was_trimmed(w.spans[i]), "kept span %zu still holds its memory", i);
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "with trimmed kept spans: %s", broken);
    cr_assert_leq(after.resident_bytes + w.kept * (REAL_SPAN_MIN - 4096), before.resident_bytes,
                  "the kept spans' pages are still resident: %zu -> %zu", before.resident_bytes,
                  after.resident_bytes);
    pthread_barrier_wait(&barrier);
    cr_assert_eq(pthread_join(th, NULL), 0);
    pthread_barrier_destroy(&barrier);
    sc_heap_stats_t end = test_stats(h);
    cr_assert_eq(end.live_blocks, 0);
    sc_heap_destroy(h);
}

/* A floating span emptied by its owner and another thread together, so
 * that no free of either sees it empty: the owner's frees stop at the
 * remote count, above the event level it set before those remote frees.
 * A trim by a third party (the main thread) still gives its memory back
 * while the owner is blocked, and the owner uses the span again after. */
typedef struct shared_span_s {
    sc_heap_t *heap;
    pthread_barrier_t *barrier;
    void **blocks;
    size_t count;
    span_t *first;
} shared_span_t;

static void *shared_span_owner(void *arg)
{
    shared_span_t *w = arg;
    /* The first span fills and floats; the batch goes on in a second. */
    w->blocks = alloc_batch(w->heap, w->count, 0);
    w->first = span_of(w->blocks[0]);
    pthread_barrier_wait(w->barrier); /* 1: the main thread frees half of it */
    pthread_barrier_wait(w->barrier); /* 2: the owner frees the rest */
    for (size_t i = 0; i < w->count; i++) {
        bool in_first = span_of(w->blocks[i]) == w->first;
        if (i % 2 == 0 || !in_first)
            sc_free(w->heap, w->blocks[i]);
    }
    pthread_barrier_wait(w->barrier); /* 3: the main thread trims */
    pthread_barrier_wait(w->barrier); /* 4: the span serves the class again */
    free(w->blocks);
    w->blocks = alloc_batch(w->heap, w->count, 9);
    free_batch(w->heap, w->blocks, w->count, 9);
    return NULL;
}

Test(span_reuse, empty_floating_span_trimmed_by_other_thread)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    shared_span_t w = {.heap = h, .barrier = &barrier, .count = blocks_per_span() + 64};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, shared_span_owner, &w), 0);
    pthread_barrier_wait(&barrier); /* 1 */
    span_t *s = w.first;
    cr_assert_eq(span_state(s), SPAN_FLOATING);
    size_t in_first = 0;
    for (size_t i = 1; i < w.count; i += 2) {
        if (span_of(w.blocks[i]) == s) {
            sc_free(h, w.blocks[i]);
            in_first++;
        }
    }
    (void)test_stats(h); /* hands this thread's batch over */
    pthread_barrier_wait(&barrier); /* 2 */
    pthread_barrier_wait(&barrier); /* 3 */
    cr_assert_gt(in_first, 0);
    cr_assert_eq(span_state(s), SPAN_FLOATING, "no free saw the span empty (state %u)", span_state(s));
    cr_assert_eq(span_owned_live(s), 0, "every block of the span is free");
    sc_heap_trim(h);
    cr_assert_eq(span_state(s), SPAN_DRAINED, "the trim took the span (state %u)", span_state(s));
    cr_assert(span_was_trimmed(s), "the empty floating span still holds its memory");
    pthread_barrier_wait(&barrier); /* 4 */
    cr_assert_eq(pthread_join(th, NULL), 0);
    pthread_barrier_destroy(&barrier);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

/* The owner of kept spans that another thread's trim gave back exits
 * without touching them again: giving them up must not read their lists
 * (their pages are gone; reading them would map them again, resident
 * outside every extent the heap keeps). */
Test(span_reuse, kept_span_trimmed_then_owner_exits)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    pthread_barrier_t barrier;
    kept_worker_t w;
    pthread_t th;
    kept_worker_start(&w, h, &barrier, false, &th);
    sc_heap_trim(h);
    pthread_barrier_wait(&barrier);
    cr_assert_eq(pthread_join(th, NULL), 0);
    pthread_barrier_destroy(&barrier);
    for (size_t i = 0; i < w.kept; i++)
        cr_assert_eq(span_state(w.spans[i]), SPAN_POOLED, "kept span %zu: state %u", i,
                     span_state(w.spans[i]));
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "after the owner of trimmed kept spans exited: %s", broken);
    sc_heap_destroy(h);
}

/* SPANS GIVEN UP AT THREAD EXIT. A thread fills one span of 256 B
 * blocks, frees every other block and exits: with half its blocks free,
 * below the reuse threshold but past one in DETACHED_REUSE_SHARE, the span
 * is REUSABLE at once, with no delay and no sweep; the next thread that
 * needs the class fills its holes (and only its holes) instead of taking
 * new memory, and when that thread exits with the span half used again it
 * is reusable again (the lower threshold stays with the span). */
/* 256 B blocks: 127 in a 32 KiB span, so that half of them free stays
 * below both reuse thresholds (80%, REUSE_ENOUGH_BYTES). */
enum { ORPHAN_BLOCK = 256, ORPHAN_MAX = 160 };

typedef struct orphan_job_s {
    sc_heap_t *heap;
    span_t *span;              /* the span the first thread filled */
    void *mine[ORPHAN_MAX];    /* blocks of it this thread keeps live */
    size_t mine_count;
    size_t capacity;           /* blocks of the span */
    size_t free_every;         /* first thread: frees one block in this many */
    size_t taken;              /* second thread: blocks it got, all in span */
    bool all_in_span;
} orphan_job_t;

static void *orphan_first_owner(void *arg)
{
    orphan_job_t *j = arg;
    void *all[ORPHAN_MAX + 1];
    size_t n = 0;
    for (; n <= ORPHAN_MAX; n++) {
        all[n] = sc_alloc(j->heap, ORPHAN_BLOCK);
        cr_assert_not_null(all[n]);
        if (n > 0 && span_of(all[n]) != span_of(all[0]))
            break; /* the span is full: this block is in the next one */
    }
    cr_assert_lt(n, ORPHAN_MAX + 1, "more than %d blocks of %d B in a span", ORPHAN_MAX, ORPHAN_BLOCK);
    sc_free(j->heap, all[n]);
    j->span = span_of(all[0]);
    j->capacity = n;
    for (size_t i = 0; i < n; i++) {
        if (i % j->free_every == 0) {
            sc_free(j->heap, all[i]);
        } else {
            test_pattern_fill(all[i], ORPHAN_BLOCK, 7000 + i);
            j->mine[j->mine_count++] = all[i];
        }
    }
    return NULL;
}

/* Takes the holes of the given-up span, keeps half of what it got, exits. */
static void *orphan_second_owner(void *arg)
{
    orphan_job_t *j = arg;
    size_t holes = j->capacity - j->mine_count;
    void *got[ORPHAN_MAX];
    j->all_in_span = true;
    for (size_t i = 0; i < holes; i++) {
        got[i] = sc_alloc(j->heap, ORPHAN_BLOCK);
        cr_assert_not_null(got[i]);
        if (span_of(got[i]) != j->span)
            j->all_in_span = false;
        for (size_t k = 0; k < j->mine_count; k++)
            cr_assert_neq(got[i], j->mine[k], "a live block of the given-up span was handed out again");
        test_pattern_fill(got[i], ORPHAN_BLOCK, 9000 + i);
    }
    j->taken = holes;
    /* Keep every other one: the span stays below the class's threshold. */
    size_t kept = 0;
    for (size_t i = 0; i < holes; i++) {
        if (i % 2 == 0)
            sc_free(j->heap, got[i]);
        else
            j->mine[j->mine_count + kept++] = got[i];
    }
    j->mine_count += kept;
    return NULL;
}

/* A new heap whose span a thread filled, freeing one block in
 * free_every, and left at its exit. */
static void given_up_span(orphan_job_t *j, size_t free_every)
{
    *j = (orphan_job_t){.heap = sc_heap_create(NULL), .free_every = free_every};
    cr_assert_not_null(j->heap);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, orphan_first_owner, j), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
}

Test(span_reuse, given_up_span_reusable_from_an_eighth)
{
    orphan_job_t j;
    given_up_span(&j, 2);
    sc_heap_t *h = j.heap;
    pthread_t th;
    cr_assert_lt((j.capacity - j.mine_count) * 100, j.capacity * DEFAULT_REUSE_THRESHOLD,
                 "the test needs a span below the reuse threshold");
    cr_assert_eq(span_state(j.span), SPAN_REUSABLE,
                 "a span half free when its thread exited should be reusable at once (state %u)",
                 span_state(j.span));
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "with a reusable given-up span: %s", broken);
    size_t committed = test_stats(h).committed_bytes;

    /* The next thread that needs the class fills the holes. */
    size_t first_live = j.mine_count;
    cr_assert_eq(pthread_create(&th, NULL, orphan_second_owner, &j), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert(j.all_in_span, "the %zu blocks the next thread got did not all fill the span's holes",
              j.taken);
    cr_assert_leq(test_stats(h).committed_bytes, committed + REAL_SPAN_MIN,
                  "filling the span's holes took new memory");
    /* Half used again at that exit: reusable again. */
    cr_assert_eq(span_state(j.span), SPAN_REUSABLE,
                 "the refilled span should be reusable when its thread exits (state %u)",
                 span_state(j.span));
    broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "after the second exit: %s", broken);

    /* Every block kept its contents; all of them go back. */
    for (size_t i = 0; i < j.mine_count; i++) {
        uint64_t key = i < first_live ? 7000 + (2 * i + 1) : 9000 + (2 * (i - first_live) + 1);
        cr_assert_eq(test_pattern_check(j.mine[i], ORPHAN_BLOCK, key), TEST_PATTERN_OK,
                     "block %zu changed", i);
        sc_free(h, j.mine[i]);
    }
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    sc_heap_destroy(h);
}

/* A span left with one block in 32 free (under one in DETACHED_REUSE_SHARE)
 * waits DETACHED: nobody allocates from it. The main thread frees its live
 * blocks, handing each batch over with a trim; the span stays DETACHED
 * while fewer than an eighth of its blocks are free and is REUSABLE from
 * the batch that gets it there, by no clock. */
Test(span_reuse, nearly_full_given_up_span_waits)
{
    orphan_job_t j;
    given_up_span(&j, 32);
    sc_heap_t *h = j.heap;
    size_t share = j.capacity / DETACHED_REUSE_SHARE;
    size_t free_now = j.capacity - j.mine_count;
    cr_assert_lt(free_now, share, "the test needs a span under an eighth free (%zu of %zu)", free_now,
                 j.capacity);
    cr_assert_eq(span_state(j.span), SPAN_DETACHED,
                 "a span with %zu of %zu blocks free when its thread exited should wait (state %u)",
                 free_now, j.capacity, span_state(j.span));
    size_t next = 0;
    while (free_now + 1 < share) {
        cr_assert_eq(test_pattern_check(j.mine[next], ORPHAN_BLOCK, 7000 + next + next / 31 + 1),
                     TEST_PATTERN_OK, "block %zu changed", next);
        sc_free(h, j.mine[next++]);
        free_now++;
    }
    sc_heap_trim(h); /* hands the main thread's batch over */
    cr_assert_eq(span_state(j.span), SPAN_DETACHED, "%zu of %zu free, share %zu: should still wait (state %u)",
                 free_now, j.capacity, share, span_state(j.span));
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "with a detached span: %s", broken);
    sc_free(h, j.mine[next++]);
    sc_heap_trim(h);
    cr_assert_eq(span_state(j.span), SPAN_REUSABLE,
                 "%zu of %zu free: the span should be reusable (state %u)", free_now + 1, j.capacity,
                 span_state(j.span));
    broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "with the span reusable: %s", broken);
    for (; next < j.mine_count; next++)
        sc_free(h, j.mine[next]);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

/* KEPT SPANS FOR ANOTHER CLASS. The empty spans a thread keeps for one
 * class serve the next class of the same band it moves to (set up
 * afresh, no span from the pool), but not a class of another band, whose
 * real span is bigger. */
static bool span_in(span_t *s, span_t **set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == s)
            return true;
    return false;
}

Test(span_reuse, kept_spans_serve_another_class_of_their_band)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    size_t count = 4 * blocks_per_span();
    free_batch(h, alloc_batch(h, count, 0), count, 0);
    span_t *kept[8];
    size_t n = kept_spans(h, kept, 8);
    cr_assert_geq(n, 3, "the emptied spans are kept");
    /* 8 KiB blocks: band of 128 KiB real spans, not served by them. */
    void *big = sc_alloc(h, 8192);
    cr_assert_not_null(big);
    cr_assert(!span_in(span_of(big), kept, n), "a 32 KiB kept span served an 8 KiB class");
    memset(big, 7, 8192);
    /* 48 B blocks: the same band as 32 B. */
    sc_heap_stats_t before = test_stats(h);
    unsigned char *p = sc_alloc(h, 48);
    cr_assert_not_null(p);
    cr_assert(span_in(span_of(p), kept, n), "the 48 B class took a span other than the kept ones");
    memset(p, 9, 48);
    sc_heap_stats_t after = test_stats(h);
    /* Statistics count kept (drained) spans as free: one fewer, the one
     * that became hot, and no other. */
    cr_assert_eq(after.spans_free + 1, before.spans_free, "a span came from the pool");
    cr_assert_eq(after.committed_bytes, before.committed_bytes, "the reused span took new memory");
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "after a kept span changed class: %s", broken);
    /* Its blocks are whole 48 B blocks of that span. */
    void *more[64];
    for (size_t i = 0; i < 64; i++) {
        more[i] = sc_alloc(h, 48);
        cr_assert_not_null(more[i]);
        cr_assert_eq(sc_usable_size(h, more[i]), 48);
        memset(more[i], (int)i, 48);
    }
    for (size_t i = 0; i < 64; i++) {
        cr_assert_eq(((unsigned char *)more[i])[47], (unsigned char)i);
        sc_free(h, more[i]);
    }
    sc_free(h, p);
    sc_free(h, big);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

/* THE KEEP BUDGET. A thread that cycles batches bigger than what it keeps
 * sends spans to the pool and takes them back; its budget grows until it
 * keeps a whole batch, so a later batch takes nothing from the pool. Once
 * the thread stops using the class, the looks retire the kept spans and
 * the budget falls back to the minimum. */
Test(span_reuse, keep_budget_follows_the_batch, .timeout = 60)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    sc_frontend_t *t = sc_heap_thread(h);
    /* 32 spans of 32 B blocks: 1 MiB, four times the starting budget. */
    size_t count = 32 * blocks_per_span();
    cr_assert_eq(t->keep_budget, FRONTEND_KEEP_EMPTY_BYTES);
    /* Per round: the spans its blocks came from that the thread did not
     * hold (hot or kept) before the round. */
    size_t taken_last = SIZE_MAX;
    int rounds = 0;
    for (; rounds < 12 && taken_last != 0; rounds++) {
        span_t *held[66];
        size_t n = kept_spans(h, held, 64);
        held[n++] = t->hot[size_class_of(32)];
        void **b = alloc_batch(h, count, rounds);
        span_t *other[64];
        size_t others = 0;
        for (size_t i = 0; i < count; i++) {
            span_t *s = span_of(b[i]);
            if (!span_in(s, held, n) && !span_in(s, other, others)) {
                cr_assert_lt(others, 64);
                other[others++] = s;
            }
        }
        taken_last = others;
        free_batch(h, b, count, rounds);
    }
    cr_log_info("budget %zu KiB after %d rounds; the last took %zu spans it did not hold",
                t->keep_budget >> 10, rounds, taken_last);
    cr_assert_eq(taken_last, 0, "a batch of %zu blocks still took spans from elsewhere", count);
    cr_assert_gt(t->keep_budget, FRONTEND_KEEP_EMPTY_BYTES);
    cr_assert_leq(t->keep_budget, FRONTEND_KEEP_EMPTY_MAX);
    cr_assert_leq(t->kept_empty_bytes, t->keep_budget + grown_span_bytes(h));
    /* The thread moves on to huge blocks only (every call a slow path),
     * bounded in calls and in time: the kept spans retire, the budget
     * falls back. */
    double start = test_now_seconds();
    size_t calls = 0;
    span_t *kept[4];
    while (calls < 10000000 && test_now_seconds() - start < 20.0 &&
           (kept_spans(h, kept, 4) != 0 || t->keep_budget != FRONTEND_KEEP_EMPTY_BYTES)) {
        void *q = sc_alloc(h, 2u << 20);
        cr_assert_not_null(q);
        sc_free(h, q);
        calls++;
    }
    cr_assert_eq(kept_spans(h, kept, 4), 0, "kept spans of an unused class stayed");
    cr_assert_eq(t->keep_budget, FRONTEND_KEEP_EMPTY_BYTES, "the budget stayed at %zu KiB",
                 t->keep_budget >> 10);
    cr_assert_eq(t->kept_empty_bytes, 0);
    sc_heap_destroy(h);
}

/* CUTS IN BATCHES. A thread fills eight spans of the 512 KiB band, frees
 * everything and exits: the pool holds their warm pages. The first small
 * class after that finds only bigger warm spans; it cuts eight of them
 * down to its real span at once (one system call) and the next small
 * classes take the others as they are. */
enum { BIG_BLOCK = 48 << 10, BIG_SPANS = 8 };

static void *big_spans_worker(void *arg)
{
    sc_heap_t *h = arg;
    enum { MAX = 256 };
    void *b[MAX];
    size_t n = 0;
    span_t *spans[BIG_SPANS + 1];
    size_t nspans = 0;
    while (n < MAX) {
        b[n] = sc_alloc(h, BIG_BLOCK);
        cr_assert_not_null(b[n]);
        memset(b[n], 5, BIG_BLOCK);
        span_t *s = span_of(b[n++]);
        if (!span_in(s, spans, nspans)) {
            if (nspans == BIG_SPANS)
                break; /* the ninth span: stop before filling it */
            spans[nspans++] = s;
        }
    }
    for (size_t i = 0; i < n; i++)
        sc_free(h, b[i]);
    return NULL;
}

Test(span_reuse, small_classes_cut_big_warm_spans_in_batches)
{
    sc_heap_config_t cfg = {.purge_delay_ms = SC_PURGE_NEVER};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, big_spans_worker, h), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    sc_heap_stats_t before = test_stats(h);
    cr_assert_eq(before.live_blocks, 0);
    /* Eight small classes in turn, one block each. */
    static const size_t sizes[] = {16, 48, 80, 112, 144, 176, 208, 240};
    void *p[8];
    p[0] = sc_alloc(h, sizes[0]);
    cr_assert_not_null(p[0]);
    sc_heap_stats_t first = test_stats(h);
    size_t cut = (REAL_SPAN_BAND(2) - REAL_SPAN_BAND(0)) * 6;
    cr_log_info("committed %zu KiB -> %zu KiB after the first small class", before.committed_bytes >> 10,
                first.committed_bytes >> 10);
    cr_assert_leq(first.committed_bytes + cut, before.committed_bytes,
                  "one small class cut fewer than 7 big warm spans: %zu -> %zu KiB",
                  before.committed_bytes >> 10, first.committed_bytes >> 10);
    for (size_t i = 1; i < 8; i++) {
        p[i] = sc_alloc(h, sizes[i]);
        cr_assert_not_null(p[i]);
        memset(p[i], (int)i, sizes[i]);
    }
    sc_heap_stats_t after = test_stats(h);
    cr_assert_leq(after.committed_bytes, first.committed_bytes,
                  "the next small classes took new memory instead of the cut spans");
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "after the batch of cuts: %s", broken);
    for (size_t i = 0; i < 8; i++)
        sc_free(h, p[i]);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    sc_heap_destroy(h);
}

/* How many blocks of bs bytes a span of a fresh heap holds (one block
 * allocated and freed to see it). */
static uint32_t capacity_for(sc_heap_t *h, size_t bs)
{
    void *probe = sc_alloc(h, bs);
    cr_assert_not_null(probe);
    uint32_t cap = span_capacity(span_of(probe));
    sc_free(h, probe);
    return cap;
}

/* A fresh heap's first span of bs bytes, filled and floated: its `*cap`
 * blocks (a calloc'ed array, the caller frees it) and, in *next, the first
 * block of the span that took over. */
static void **fill_and_float(sc_heap_t *h, size_t bs, uint32_t *cap, void **next)
{
    *cap = capacity_for(h, bs);
    void **blocks = calloc(*cap, sizeof *blocks);
    cr_assert_not_null(blocks);
    for (uint32_t i = 0; i < *cap; i++) {
        blocks[i] = sc_alloc(h, bs);
        cr_assert_not_null(blocks[i]);
    }
    *next = sc_alloc(h, bs); /* the span is exhausted: this one is a new span's */
    cr_assert_not_null(*next);
    cr_assert_neq(span_of(*next), span_of(blocks[0]), "%zu B: span not exhausted after %u", bs,
                  *cap);
    return blocks;
}

/* Exhausts the current hot span of bs and returns the block after it. */
static void *exhaust_hot(sc_heap_t *h, size_t bs, void *first, void **held, uint32_t cap)
{
    span_t *hot = span_of(first);
    uint32_t n = 0;
    for (;;) {
        void *p = sc_alloc(h, bs);
        cr_assert_not_null(p);
        if (span_of(p) != hot)
            return p;
        cr_assert_lt(n, cap, "hot span of %zu B gives more than %u blocks", bs, cap);
        held[n++] = p;
    }
}

/* Frees blocks[from..to) from another thread, which then exits (its
 * batches of remote frees are handed over at exit). */
typedef struct remote_free_arg {
    sc_heap_t *heap;
    void **blocks;
    uint32_t from, to;
} remote_free_arg;

static void *remote_free_thread(void *p)
{
    remote_free_arg *a = p;
    for (uint32_t i = a->from; i < a->to; i++)
        sc_free(a->heap, a->blocks[i]);
    return NULL;
}

static void free_remotely(sc_heap_t *h, void **blocks, uint32_t from, uint32_t to)
{
    remote_free_arg arg = {h, blocks, from, to};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, remote_free_thread, &arg), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
}

/* A floating span of big blocks is refilled from once REUSE_ENOUGH_BYTES
 * of its blocks are free, below the reuse threshold; small blocks keep the
 * threshold. The frees come from another thread, so that they wait on the
 * span's remote list, which only a refill takes (free blocks on its local
 * list would be taken first: free_blocks_before_never_used_ones). */
Test(span_reuse, big_block_spans_reused_from_enough_bytes)
{
    const size_t sizes[] = {16384, 65536, 262144, 256};
    for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t bs = sizes[k];
        sc_heap_t *h = sc_heap_create(NULL);
        cr_assert_not_null(h);
        uint32_t cap;
        void *first;
        void **blocks = fill_and_float(h, bs, &cap, &first);
        uint32_t by_share = (cap * 80 + 99) / 100;
        uint32_t by_bytes = (uint32_t)((REUSE_ENOUGH_BYTES + bs - 1) / bs);
        uint32_t need = by_bytes < by_share ? by_bytes : by_share;
        void **held = calloc(cap + 1, sizeof *held);
        cr_assert_not_null(held);
        /* need - 1 blocks free: not yet reusable. */
        free_remotely(h, blocks, 0, need - 1);
        void *p = exhaust_hot(h, bs, first, held, cap);
        cr_assert_neq(span_of(p), span_of(blocks[cap - 1]),
                      "%zu B: span reused with %u of %u blocks free (needs %u)", bs, need - 1, cap,
                      need);
        /* One more free: reusable; the next refill takes it. */
        free_remotely(h, blocks, need - 1, need);
        void *q = exhaust_hot(h, bs, p, held, cap);
        cr_assert_eq(span_of(q), span_of(blocks[cap - 1]),
                     "%zu B: span not reused with %u of %u blocks free", bs, need, cap);
        if (bs >= 65536)
            cr_assert_eq(need, 1, "%zu B: one free block is enough", bs);
        if (bs * REAL_SPAN_SMALLEST_BLOCKS <= REAL_SPAN_MIN) /* 32 KiB spans */
            cr_assert_eq(need, by_share, "%zu B: small blocks keep the threshold", bs);
        sc_heap_destroy(h); /* frees everything at once */
        free(blocks);
        free(held);
    }
}

static void check_invariants(sc_heap_t *h)
{
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "%s", broken);
}

/* A hot span of big blocks with blocks left to carve does not carve while
 * the first floating span of its class holds free blocks on its list: that
 * span becomes hot and hands them out; small blocks carve on. */
Test(span_reuse, free_blocks_before_never_used_ones)
{
    const size_t sizes[] = {4096, 16384, 262144, 1024};
    for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t bs = sizes[k];
        sc_heap_t *h = sc_heap_create(NULL);
        cr_assert_not_null(h);
        uint32_t cap;
        void *next; /* the new hot span's first */
        void **blocks = fill_and_float(h, bs, &cap, &next);
        span_t *hot = span_of(next), *floated = span_of(blocks[0]);
        cr_assert_lt(span_bump(hot), hot->bump_end, "%zu B: nothing left to carve", bs);
        sc_free(h, blocks[2]); /* a local free: on the floating span's list */
        void *p = sc_alloc(h, bs);
        cr_assert_not_null(p);
        if (bs >= FREE_FIRST_MIN_BLOCK) {
            cr_assert_eq(p, blocks[2], "%zu B: carved a new block with a free one at hand", bs);
            cr_assert_eq(span_state(floated), SPAN_HOT);
            cr_assert_eq(span_state(hot), SPAN_FLOATING, "%zu B: the hot span did not float", bs);
            /* The floated span carves the rest when it is hot again: every
             * block of both comes out once, contents kept. */
        } else {
            cr_assert_eq(span_of(p), hot, "%zu B: small blocks carve on", bs);
        }
        blocks[2] = p;
        memset(p, 0x6d, bs);
        check_invariants(h);
        sc_free(h, next);
        for (uint32_t i = 0; i < cap; i++)
            sc_free(h, blocks[i]);
        sc_heap_stats_t st = test_stats(h);
        cr_assert_eq(st.live_blocks, 0);
        check_invariants(h);
        sc_heap_destroy(h);
        free(blocks);
    }
}

/* The reuse count a span of s's capacity and block size gets in a heap
 * with reuse threshold `percent` (tuning.h, REUSE_ENOUGH_BYTES). */
static uint32_t expected_reuse_count(const span_t *s, uint32_t percent)
{
    uint64_t reuse = ((uint64_t)span_capacity(s) * percent + 99) / 100;
    uint64_t enough = (REUSE_ENOUGH_BYTES + s->block_size - 1) / s->block_size;
    if (enough < reuse)
        reuse = enough;
    return (uint32_t)(reuse ? reuse : 1);
}

Test(span_reuse, reuse_threshold_per_heap_shared_layout)
{
    enum { HEAPS = 8 };
    sc_heap_t *heaps[HEAPS];
    void *blocks[HEAPS];
    uint32_t percent[HEAPS];
    for (unsigned i = 0; i < HEAPS; i++) {
        percent[i] = i % 2 ? 100 : 10;
        sc_heap_config_t cfg = {.reuse_threshold = percent[i],
                                .flags = i % 4 >= 2 ? SC_HEAP_CHECKED : 0};
        heaps[i] = sc_heap_create(&cfg);
        cr_assert_not_null(heaps[i]);
        blocks[i] = sc_alloc(heaps[i], 64);
        cr_assert_not_null(blocks[i]);
        memset(blocks[i], (int)i, 64);
    }
    for (unsigned i = 0; i < HEAPS; i++) {
        span_t *s = span_of(blocks[i]);
        cr_assert_eq(span_reuse_count(s), expected_reuse_count(s, percent[i]),
                     "heap %u (threshold %u%%): reuse count %u, expected %u", i, percent[i],
                     span_reuse_count(s), expected_reuse_count(s, percent[i]));
        /* Same kind, same layout: plain heaps' spans match heap 0's, checked
         * heaps' heap 2's, and a checked span's blocks start later (its
         * bitmap lies before them) */
        span_t *same = span_of(blocks[i % 4 >= 2 ? 2 : 0]);
        cr_assert_eq(span_capacity(s), span_capacity(same));
        cr_assert_eq(span_first_block(s) - span_base(s), span_first_block(same) - span_base(same));
    }
    span_t *plain = span_of(blocks[0]), *checked = span_of(blocks[2]);
    cr_assert_gt(span_first_block(checked) - span_base(checked),
                 span_first_block(plain) - span_base(plain));
    cr_assert_neq(span_reuse_count(plain), span_reuse_count(span_of(blocks[1])),
                  "thresholds 10%% and 100%% gave one reuse count");
    for (unsigned i = 0; i < HEAPS; i++) {
        unsigned char *b = blocks[i];
        for (size_t k = 0; k < 64; k++)
            cr_assert_eq(b[k], (unsigned char)i, "heap %u block byte %zu", i, k);
        sc_free(heaps[i], b);
        check_invariants(heaps[i]);
        sc_heap_destroy(heaps[i]);
    }
}
