/*
 * Trim, statistics and visits: scalloc.h, "Heaps" (sc_heap_trim: "Gives
 * the physical memory of the heap's free spans back to the OS now ...
 * Another live thread's hot spans are that thread's alone to touch") and
 * "Introspection" (sc_heap_get_stats: "exact once they stop";
 * sc_heap_visit: "every live block of the heap, including huge blocks and
 * blocks in other threads' spans ... Returning non-zero from fn stops the
 * visit"). Exact requested bytes and the printed statistics are
 * test_requested.c; per-class block sizes are test_size_class.c.
 *
 * Contract lines checked here:
 *  - stats count live blocks and bytes exactly, small, big and huge;
 *    requested bytes lie between the requests and the usable sizes;
 *    committed >= live, reserved >= committed          [stats_live_counts]
 *  - resident bytes are the kernel's: every page written is counted, a
 *    huge block nobody touched is not, resident <= committed + a page per
 *    span; after free-all + trim almost nothing stays; on a heap at rest
 *    no page is resident outside the extents the walk visits
 *                                            [resident_counts_touched_pages]
 *  - trim may run any time and leaves live blocks alone (contents, count),
 *    and resident bytes do not grow                    [trim_keeps_live_blocks]
 *  - after everything is freed by its owner, trim gives the memory back:
 *    at most 4 MiB stays resident              [trim_after_freeing_everything]
 *  - after every block is freed (by owners and by other threads, frontends
 *    still alive) and each thread trimmed: resident below 1 MiB plus a
 *    small allowance per frontend; after the threads exit, again
 *                                                     [trim_after_free_all]
 *  - workers that free what they allocated and then stay blocked, never
 *    trimming themselves: a trim by another thread gives back what their
 *    spans held, down to 256 KiB resident per frontend
 *                                    [idle_workers_trimmed_by_another_thread]
 *  - sc_heap_visit reports every live block once with its usable size:
 *    small, big, huge, over-aligned huge, blocks in another live thread's
 *    hot spans, in an exited thread's spans, and never a block freed
 *    locally or remotely (once the freeing thread's batches reached their
 *    spans)                                    [visit_reports_every_live_block]
 *  - a visit stops at the first non-zero return; an empty or reset heap
 *    is visited with no call                   [visit_stops_and_empty_heaps]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <string.h>
#include <unistd.h>

#include "invariants.h"
#include "test_util.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)


/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

Test(trim_stats, stats_live_counts)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);

    void *a = sc_alloc(h, 10);     /* class 16 */
    void *b = sc_alloc(h, 100);    /* class 112 */
    void *c = sc_alloc(h, 3u << 20); /* huge */
    cr_assert(a && b && c);
    size_t usable = sc_usable_size(h, a) + sc_usable_size(h, b) + sc_usable_size(h, c);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 3, "live blocks %zu", st.live_blocks);
    cr_assert_eq(st.live_bytes, usable, "live bytes %zu, usable sum %zu", st.live_bytes, usable);
    /* Class blocks carry no header, so their exact request may be counted at
     * the usable size; huge blocks keep theirs. Either way the figure lies
     * between what was asked for and what was handed out. */
    cr_assert_geq(st.requested_bytes, 10 + 100 + (3u << 20), "requested bytes %zu",
                  st.requested_bytes);
    cr_assert_leq(st.requested_bytes, st.live_bytes, "requested bytes %zu above live bytes %zu",
                  st.requested_bytes, st.live_bytes);
    cr_assert_eq(st.huge_blocks, 1);
    cr_assert_geq(st.huge_bytes, 3u << 20);
    cr_assert_geq(st.committed_bytes, st.live_bytes);
    cr_assert_geq(st.reserved_bytes, st.committed_bytes);

    sc_free(h, c);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 2);
    cr_assert_eq(st.huge_blocks, 0);
    cr_assert_eq(st.huge_bytes, 0);
    sc_free(h, a);
    sc_free(h, b);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_eq(st.requested_bytes, 0);
    sc_heap_destroy(h);
}

Test(trim_stats, resident_counts_touched_pages)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    enum { SMALL = 20000, SMALL_SIZE = 200 };
    static unsigned char *small[SMALL];
    for (size_t i = 0; i < SMALL; i++) {
        small[i] = sc_alloc(h, SMALL_SIZE);
        cr_assert_not_null(small[i]);
        memset(small[i], 0x5a, SMALL_SIZE);
    }
    unsigned char *written = sc_alloc(h, 8 * MiB);
    unsigned char *untouched = sc_alloc(h, 8 * MiB);
    cr_assert(written && untouched);
    memset(written, 0xa5, 8 * MiB);
    size_t touched = (size_t)SMALL * SMALL_SIZE + 8 * MiB;
    sc_heap_stats_t st = test_stats(h);
    size_t spans = st.spans_hot + st.spans_floating + st.spans_reusable + st.spans_free + 16;
    cr_log_info("resident %zu KiB, committed %zu KiB, touched %zu KiB", st.resident_bytes / KiB,
                st.committed_bytes / KiB, touched / KiB);
    cr_assert_geq(st.resident_bytes, touched, "resident %zu KiB below the %zu KiB written",
                  st.resident_bytes / KiB, touched / KiB);
    cr_assert_lt(st.resident_bytes, touched + 4 * MiB,
                 "resident %zu KiB counts the untouched 8 MiB block (written %zu KiB)",
                 st.resident_bytes / KiB, touched / KiB);
    cr_assert_leq(st.resident_bytes, st.committed_bytes + spans * (size_t)sysconf(_SC_PAGESIZE));
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "heap at rest: %s", broken);

    for (size_t i = 0; i < SMALL; i++)
        cr_assert_eq(small[i][SMALL_SIZE - 1], 0x5a);
    for (size_t i = 0; i < SMALL; i++)
        sc_free(h, small[i]);
    sc_free(h, written);
    sc_free(h, untouched);
    broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "freed, before trim: %s", broken);
    sc_heap_trim(h);
    st = test_stats(h);
    cr_log_info("after free-all + trim: resident %zu KiB, committed %zu KiB",
                st.resident_bytes / KiB, st.committed_bytes / KiB);
    cr_assert_leq(st.resident_bytes, 256 * KiB, "%zu KiB resident after free-all + trim",
                  st.resident_bytes / KiB);
    broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "after trim: %s", broken);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* Trim by the owning thread                                                */
/* ------------------------------------------------------------------------ */

Test(trim_stats, trim_keeps_live_blocks)
{
    enum { N = 20000 };
    static test_block_t blocks[N];
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    test_fill_blocks(h, blocks, N, 3);
    /* Free most of them so there are free spans to trim. */
    for (size_t i = 0; i < N; i++)
        if (i % 16)
            sc_free(h, blocks[i].p);
    sc_heap_stats_t before = test_stats(h);
    sc_heap_trim(h);
    sc_heap_stats_t after = test_stats(h);
    cr_assert_leq(after.resident_bytes, before.resident_bytes, "trim grew resident bytes");
    cr_assert_eq(after.live_blocks, before.live_blocks);
    for (size_t i = 0; i < N; i += 16) {
        size_t bad = test_pattern_check(blocks[i].p, blocks[i].n, blocks[i].key);
        cr_assert_eq(bad, TEST_PATTERN_OK, "block %zu corrupted by trim at %zu", i, bad);
        sc_free(h, blocks[i].p);
    }
    sc_heap_trim(h);
    sc_heap_stats_t empty = test_stats(h);
    cr_assert_eq(empty.live_blocks, 0);
    cr_log_info("resident: %zu KiB before trim, %zu KiB after, %zu KiB when empty+trimmed",
                before.resident_bytes >> 10, after.resident_bytes >> 10,
                empty.resident_bytes >> 10);
    sc_heap_destroy(h);
}

Test(trim_stats, trim_after_freeing_everything)
{
    enum { N = 20000 };
    static test_block_t blocks[N];
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* Every class gets used, big ones included, and every block is freed by
     * the thread that owns its span. */
    test_fill_blocks(h, blocks, N, 4);
    sc_heap_stats_t peak = test_stats(h);
    for (size_t i = 0; i < N; i++)
        sc_free(h, blocks[i].p);
    sc_heap_trim(h);
    sc_heap_stats_t st = test_stats(h);
    cr_log_info("resident: %zu KiB with %zu KiB live, %zu KiB after freeing all and trimming "
                "(%zu hot spans)",
                peak.resident_bytes >> 10, peak.live_bytes >> 10, st.resident_bytes >> 10,
                st.spans_hot);
    cr_assert_eq(st.live_blocks, 0);
    /* DESIGN §1/§4: physical memory comes back when a program frees what it
     * allocated, and RSS falls after frees and trims. A few empty hot spans
     * of small classes may stay warm; megabytes may not. */
    cr_assert_leq(st.resident_bytes, (size_t)4 << 20,
                  "%zu KiB still resident with nothing live after sc_heap_trim",
                  st.resident_bytes >> 10);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* Trim with other threads' frees and frontends                             */
/* ------------------------------------------------------------------------ */

typedef struct trim_item_s {
    unsigned char *p;
    size_t n;
} trim_item_t;

enum { TRIM_THREADS = 3, TRIM_BLOCKS = 20000 };

/* What a live frontend may keep resident after trim when nothing is live:
 * a page for each size class it holds a hot span of (the span header and
 * the first blocks), 64 x 4 KiB. Keeping the real span of each hot span
 * (32 KiB to over 1 MiB each) is not "a small per-frontend amount". */
#define TRIM_PER_FRONTEND (256 * KiB)

static trim_item_t trim_items[TRIM_THREADS][TRIM_BLOCKS];
static pthread_barrier_t trim_step;

typedef struct trim_arg_s {
    sc_heap_t *heap;
    unsigned index;
} trim_arg_t;

/* Starts n workers of heap h running fn, worker i with {h, i}, after
 * setting up `step` for them and the main thread. */
static void workers_start(sc_heap_t *h, pthread_barrier_t *step, unsigned n, void *(*fn)(void *),
                          pthread_t *tids, trim_arg_t *args)
{
    pthread_barrier_init(step, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        args[i] = (trim_arg_t){h, i};
        cr_assert_eq(pthread_create(&tids[i], NULL, fn, &args[i]), 0);
    }
}

/* Lets them past their last wait on `step` and joins them. */
static void workers_finish(pthread_barrier_t *step, unsigned n, pthread_t *tids)
{
    pthread_barrier_wait(step);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(pthread_join(tids[i], NULL), 0);
    pthread_barrier_destroy(step);
}

static void *trim_worker(void *arg)
{
    trim_arg_t *a = arg;
    test_rng_t rng = {77 + a->index};
    for (size_t i = 0; i < TRIM_BLOCKS; i++) {
        size_t n = i % 1000 == 999 ? 2 * MiB + i : test_mixed_size(&rng);
        trim_items[a->index][i].p = sc_alloc(a->heap, n);
        TEST_CHECK(trim_items[a->index][i].p != NULL, "alloc of %zu failed", n);
        trim_items[a->index][i].n = n;
        memset(trim_items[a->index][i].p, 0x44, n);
    }
    pthread_barrier_wait(&trim_step); /* all allocated */
    /* Free even blocks of our own and odd blocks of the neighbour. */
    for (size_t i = 0; i < TRIM_BLOCKS; i += 2)
        sc_free(a->heap, trim_items[a->index][i].p);
    trim_item_t *theirs = trim_items[(a->index + 1) % TRIM_THREADS];
    for (size_t i = 1; i < TRIM_BLOCKS; i += 2)
        sc_free(a->heap, theirs[i].p);
    pthread_barrier_wait(&trim_step); /* all freed */
    /* Frees into other threads' spans are handed over in batches, at the
     * latest by the freeing thread's trim (scalloc.h, sc_heap_trim): this
     * trim hands ours over. */
    sc_heap_trim(a->heap);
    pthread_barrier_wait(&trim_step); /* every batch handed over */
    /* A thread's hot spans are its own to give back (scalloc.h,
     * sc_heap_trim): a trim from this thread does it now, the frees of the
     * others included; otherwise its next allocation slow path or its exit
     * would. */
    sc_heap_trim(a->heap);
    pthread_barrier_wait(&trim_step); /* workers trimmed their own */
    pthread_barrier_wait(&trim_step); /* main trimmed and measured */
    return NULL;
}

Test(trim_stats, trim_after_free_all, .timeout = 120)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    pthread_t tids[TRIM_THREADS];
    trim_arg_t args[TRIM_THREADS];
    workers_start(h, &trim_step, TRIM_THREADS, trim_worker, tids, args);
    /* The main thread is a frontend too, with its own blocks. */
    static void *mine[4096];
    test_rng_t rng = {4243};
    for (size_t i = 0; i < 4096; i++) {
        size_t n = test_mixed_size(&rng);
        mine[i] = sc_alloc(h, n);
        cr_assert_not_null(mine[i]);
        memset(mine[i], 0x55, n);
    }
    pthread_barrier_wait(&trim_step);
    sc_heap_stats_t peak = test_stats(h);
    for (size_t i = 0; i < 4096; i++)
        sc_free(h, mine[i]);
    pthread_barrier_wait(&trim_step); /* all freed */
    sc_heap_trim(h);                  /* our batches handed over */
    pthread_barrier_wait(&trim_step); /* every batch handed over */
    pthread_barrier_wait(&trim_step); /* workers trimmed their own */

    sc_heap_trim(h);
    sc_heap_stats_t st = test_stats(h);
    size_t allowance = MiB + st.frontends * TRIM_PER_FRONTEND;
    cr_log_info("trim with %zu frontends alive: resident %zu KiB at peak (%zu KiB live), "
                "%zu KiB after freeing all and trimming (allowance %zu KiB); committed %zu KiB; "
                "spans hot %zu floating %zu reusable %zu free %zu",
                st.frontends, peak.resident_bytes >> 10, peak.live_bytes >> 10,
                st.resident_bytes >> 10, allowance >> 10, st.committed_bytes >> 10,
                st.spans_hot, st.spans_floating, st.spans_reusable, st.spans_free);
    workers_finish(&trim_step, TRIM_THREADS, tids);

    /* Once the threads are gone, trim takes the rest too (only the main
     * thread's frontend is left). Both figures are logged before either is
     * asserted, so a failure shows the whole picture. */
    sc_heap_trim(h);
    sc_heap_stats_t gone = test_stats(h);
    cr_log_info("after the threads exited and another trim: %zu KiB resident, %zu frontends, "
                "%zu free spans",
                gone.resident_bytes >> 10, gone.frontends, gone.spans_free);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.frontends, TRIM_THREADS + 1);
    cr_assert_leq(st.resident_bytes, allowance,
                  "%zu KiB resident after freeing everything and trimming, allowed %zu KiB "
                  "(1 MiB + %zu KiB for each of %zu frontends)",
                  st.resident_bytes >> 10, allowance >> 10, TRIM_PER_FRONTEND >> 10,
                  st.frontends);
    cr_assert_leq(gone.resident_bytes, MiB + gone.frontends * TRIM_PER_FRONTEND,
                  "%zu KiB resident after the threads exited and another trim, allowed %zu KiB",
                  gone.resident_bytes >> 10, (MiB + gone.frontends * TRIM_PER_FRONTEND) >> 10);
    sc_heap_destroy(h);
}

/* Workers that go through a few rounds of allocating blocks of mixed
 * sizes and freeing them all themselves, then block without trimming: the
 * hot spans their last frees emptied (armed, frontend.c "ARMED HOT SPANS")
 * and their emptied floating spans wait DRAINED, so the main thread's trim
 * gives their memory back. */
enum { IDLE_THREADS = 4, IDLE_ROUNDS = 3, IDLE_BLOCKS = 4000 };
static pthread_barrier_t idle_step;

/* One round: IDLE_BLOCKS blocks of mixed sizes, each filled, then checked
 * and freed by this thread. */
static void idle_round(sc_heap_t *h, test_rng_t *rng, int salt)
{
    static _Thread_local void *blocks[IDLE_BLOCKS];
    static _Thread_local size_t sizes[IDLE_BLOCKS];
    for (size_t i = 0; i < IDLE_BLOCKS; i++) {
        sizes[i] = test_mixed_size(rng);
        blocks[i] = sc_alloc(h, sizes[i]);
        cr_assert_not_null(blocks[i]);
        memset(blocks[i], (int)(i + (size_t)salt) & 0xff, sizes[i]);
    }
    for (size_t i = 0; i < IDLE_BLOCKS; i++) {
        const unsigned char *q = blocks[i];
        if (sizes[i] > 0)
            cr_assert(q[0] == (unsigned char)(i + (size_t)salt) && q[sizes[i] - 1] == q[0],
                      "block %zu changed", i);
        sc_free(h, blocks[i]);
    }
}

static void *idle_worker(void *arg)
{
    trim_arg_t *a = arg;
    test_rng_t rng = {7919 + a->index};
    for (int r = 0; r < IDLE_ROUNDS; r++)
        idle_round(a->heap, &rng, r);
    pthread_barrier_wait(&idle_step); /* freed everything: now idle */
    pthread_barrier_wait(&idle_step); /* the main thread trimmed */
    idle_round(a->heap, &rng, 99);    /* the spans it kept serve again */
    return NULL;
}

Test(trim_stats, idle_workers_trimmed_by_another_thread, .timeout = 120)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    pthread_t tids[IDLE_THREADS];
    trim_arg_t args[IDLE_THREADS];
    workers_start(h, &idle_step, IDLE_THREADS, idle_worker, tids, args);
    pthread_barrier_wait(&idle_step);
    sc_heap_stats_t before = test_stats(h);
    sc_heap_trim(h);
    sc_heap_stats_t st = test_stats(h);
    cr_log_info("%u idle workers: resident %zu KiB before another thread's trim, %zu KiB after "
                "(%zu frontends; %zu hot spans)",
                IDLE_THREADS, before.resident_bytes >> 10, st.resident_bytes >> 10, st.frontends,
                st.spans_hot);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_leq(st.resident_bytes, st.frontends * TRIM_PER_FRONTEND,
                  "%zu KiB resident for %zu idle frontends after a trim by another thread",
                  st.resident_bytes >> 10, st.frontends);
    workers_finish(&idle_step, IDLE_THREADS, tids);
    cr_assert_eq(test_stats(h).live_blocks, 0);
    const char *broken = invariants_check_heap(h, NULL);
    cr_assert_null(broken, "after the workers used their trimmed spans again: %s", broken);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* Visit                                                                    */
/* ------------------------------------------------------------------------ */

enum { VISIT_MAX = 8192 };

/* The blocks a visit must report, sorted by address, each with the number
 * of times the visit reported it and the usable size it reported. */
typedef struct expected_s {
    uintptr_t p;
    size_t usable;
    unsigned seen;
    size_t reported_usable;
} expected_t;

typedef struct visit_log_s {
    expected_t *want;
    size_t count;
    size_t calls;
    size_t unknown;       /* reported blocks that are not live */
    uintptr_t first_unknown;
} visit_log_t;

static int by_address(const void *a, const void *b)
{
    uintptr_t x = ((const expected_t *)a)->p, y = ((const expected_t *)b)->p;
    return x < y ? -1 : x > y;
}

static int visit_record(void *block, size_t usable_size, void *arg)
{
    visit_log_t *v = arg;
    v->calls++;
    expected_t key = {(uintptr_t)block, 0, 0, 0};
    expected_t *e = bsearch(&key, v->want, v->count, sizeof *e, by_address);
    if (e == NULL) {
        if (v->unknown++ == 0)
            v->first_unknown = (uintptr_t)block;
        return 0;
    }
    e->seen++;
    e->reported_usable = usable_size;
    return 0;
}

static sc_heap_t *visit_heap;
static pthread_barrier_t visit_step;
static void *visit_theirs[2][512];

/* Worker 0 stays alive and idle during the visit, its hot spans holding
 * live blocks; worker 1 exits first, leaving its spans ownerless. Both
 * free every fourth of their blocks themselves, and worker 0 also frees
 * the odd blocks of worker 1 (remote frees into ownerless spans), then
 * reads the stats, which hands its batches to their spans (scalloc.h,
 * sc_free): a visit counts blocks on span lists, not in batches. */
static void *visit_worker(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    test_rng_t rng = {900 + index};
    for (size_t i = 0; i < 512; i++) {
        size_t n = test_mixed_size(&rng);
        visit_theirs[index][i] = sc_alloc(visit_heap, n);
        TEST_CHECK(visit_theirs[index][i] != NULL, "worker %u: sc_alloc(%zu) failed", index, n);
    }
    for (size_t i = 0; i < 512; i += 4) {
        sc_free(visit_heap, visit_theirs[index][i]);
        visit_theirs[index][i] = NULL;
    }
    if (index == 1)
        return NULL;
    pthread_barrier_wait(&visit_step); /* worker 1 joined */
    for (size_t i = 1; i < 512; i += 2) {
        sc_free(visit_heap, visit_theirs[1][i]);
        visit_theirs[1][i] = NULL;
    }
    (void)test_stats(visit_heap);
    pthread_barrier_wait(&visit_step); /* frees done, batches handed over */
    pthread_barrier_wait(&visit_step); /* main visited */
    return NULL;
}

Test(trim_stats, visit_reports_every_live_block)
{
    static expected_t want[VISIT_MAX];
    static void *mine[2048];
    size_t count = 0;
    visit_heap = sc_heap_create(NULL);
    sc_heap_t *h = visit_heap;
    cr_assert_not_null(h);
    pthread_barrier_init(&visit_step, NULL, 2);
    pthread_t t0, t1;
    cr_assert_eq(pthread_create(&t1, NULL, visit_worker, (void *)(uintptr_t)1), 0);
    pthread_join(t1, NULL);
    cr_assert_eq(pthread_create(&t0, NULL, visit_worker, (void *)(uintptr_t)0), 0);

    /* The main thread's own blocks: every kind, and over-aligned ones whose
     * data does not start where their span's blocks or run's data would. */
    test_rng_t rng = {4711};
    for (size_t i = 0; i < 2048; i++) {
        size_t n = test_mixed_size(&rng);
        if (i % 512 == 7)
            mine[i] = sc_alloc(h, 3 * MiB + i);
        else if (i % 512 == 8)
            mine[i] = sc_aligned_alloc(h, 4 * MiB, MiB + i); /* huge for its alignment */
        else if (i % 64 == 9)
            mine[i] = sc_aligned_alloc(h, 4096, n);
        else
            mine[i] = sc_alloc(h, n);
        cr_assert_not_null(mine[i], "block %zu: allocation failed", i);
    }
    for (size_t i = 0; i < 2048; i += 3) {
        sc_free(h, mine[i]);
        mine[i] = NULL;
    }
    pthread_barrier_wait(&visit_step); /* worker 1 joined */
    pthread_barrier_wait(&visit_step); /* worker 0's frees reached their spans */

    for (size_t i = 0; i < 2048; i++)
        if (mine[i])
            want[count++] = (expected_t){(uintptr_t)mine[i], sc_usable_size(h, mine[i]), 0, 0};
    for (unsigned w = 0; w < 2; w++)
        for (size_t i = 0; i < 512; i++)
            if (visit_theirs[w][i])
                want[count++] = (expected_t){(uintptr_t)visit_theirs[w][i],
                                             sc_usable_size(h, visit_theirs[w][i]), 0, 0};
    qsort(want, count, sizeof want[0], by_address);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, count, "stats: %zu live blocks, the test holds %zu",
                 st.live_blocks, count);

    visit_log_t v = {want, count, 0, 0, 0};
    sc_heap_visit(h, visit_record, &v);
    pthread_barrier_wait(&visit_step); /* worker 0 may exit */
    pthread_join(t0, NULL);
    pthread_barrier_destroy(&visit_step);

    cr_assert_eq(v.unknown, 0, "the visit reported %zu blocks that are not live, first %#lx",
                 v.unknown, (unsigned long)v.first_unknown);
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq(want[i].seen, 1, "live block %#lx visited %u times",
                     (unsigned long)want[i].p, want[i].seen);
        cr_assert_eq(want[i].reported_usable, want[i].usable,
                     "block %#lx visited with %zu usable bytes, sc_usable_size says %zu",
                     (unsigned long)want[i].p, want[i].reported_usable, want[i].usable);
    }
    cr_assert_eq(v.calls, count);
    sc_heap_destroy(h);
}

typedef struct visit_stop_s {
    size_t calls;
    size_t stop_at; /* the call that returns non-zero */
} visit_stop_t;

static int visit_count_and_stop(void *block, size_t usable_size, void *arg)
{
    (void)block;
    (void)usable_size;
    visit_stop_t *v = arg;
    return ++v->calls == v->stop_at;
}

Test(trim_stats, visit_stops_and_empty_heaps)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    visit_stop_t v = {0, 0};
    sc_heap_visit(h, visit_count_and_stop, &v);
    cr_assert_eq(v.calls, 0, "a new heap visited %zu blocks", v.calls);

    /* Blocks in several spans and a huge one, so that stopping has to hold
     * across spans, not only inside one. */
    static void *blocks[300];
    for (size_t i = 0; i < 300; i++) {
        blocks[i] = sc_alloc(h, i == 150 ? 3 * MiB : 16 + (i % 5) * 3000);
        cr_assert_not_null(blocks[i]);
    }
    static const size_t stops[] = {1, 2, 17, 150, 299, 300};
    for (size_t k = 0; k < sizeof stops / sizeof stops[0]; k++) {
        v = (visit_stop_t){0, stops[k]};
        sc_heap_visit(h, visit_count_and_stop, &v);
        cr_assert_eq(v.calls, stops[k], "fn returned non-zero at call %zu, visit made %zu",
                     stops[k], v.calls);
    }
    /* A visit that never stops sees them all. */
    v = (visit_stop_t){0, 0};
    sc_heap_visit(h, visit_count_and_stop, &v);
    cr_assert_eq(v.calls, 300);

    /* Freed or reset away: nothing to visit. */
    for (size_t i = 0; i < 100; i++)
        sc_free(h, blocks[i]);
    v = (visit_stop_t){0, 0};
    sc_heap_visit(h, visit_count_and_stop, &v);
    cr_assert_eq(v.calls, 200, "after freeing 100 of 300: %zu visited", v.calls);
    sc_heap_reset(h);
    v = (visit_stop_t){0, 0};
    sc_heap_visit(h, visit_count_and_stop, &v);
    cr_assert_eq(v.calls, 0, "a reset heap visited %zu blocks", v.calls);
    sc_heap_destroy(h);
}
