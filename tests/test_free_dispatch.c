/*
 * The free dispatcher's classification (lib/free.h, block_lookup) of every
 * kind of pointer a program can hand to sc_free, sc_realloc or
 * sc_usable_size, and the error each bad kind gets through the public API
 * (scalloc.h, "Errors": foreign pointer, other heap, interior pointer,
 * double free):
 *  - own hot span, own floating span: BLOCK_OWNED           [owned_*]
 *  - another live thread's span, an exited thread's (ownerless) span:
 *    BLOCK_REMOTE                                            [remote_*]
 *  - huge and over-aligned huge blocks: BLOCK_HUGE; their inside and the
 *    heap's reserved space: interior / foreign               [huge_*, reserved_*]
 *  - libc, stack, global, garbage and non-canonical pointers: foreign;
 *    another heap's block: other heap                         [foreign_*, other_heap]
 *  - interior pointers into a block; blocks freed already (a pooled span,
 *    the head of the free list, a block kept across a reset into a span
 *    bumped again)                                  [interior, freed_*, stale_*]
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "arena.h"
#include "free.h"
#include "frontend.h"
#include "invariants.h"
#include "test_util.h"

#define MiB ((size_t)1 << 20)

static test_error_log_t errors;

static void setup(void)
{
    test_error_log_install(&errors);
}

static void teardown(void)
{
    sc_set_error_handler(NULL, NULL);
}

TestSuite(free_dispatch, .init = setup, .fini = teardown);

static block_ref_t lookup(sc_heap_t *h, const void *p)
{
    return block_lookup(h, sc_heap_thread(h), p);
}

/* The public calls agree with the classification: a bad pointer reports
 * `err` from sc_free, sc_usable_size and sc_realloc, and changes nothing. */
static void expect_bad(sc_heap_t *h, void *p, sc_error_t err)
{
    block_ref_t r = lookup(h, p);
    cr_assert_eq(r.kind, BLOCK_BAD, "pointer %p classified %d, not bad", p, (int)r.kind);
    cr_assert_eq(r.error, err, "pointer %p: error %d, expected %d", p, (int)r.error, (int)err);
    test_error_log_clear(&errors);
    sc_free(h, p);
    cr_assert_eq(atomic_load(&errors.count), 1);
    cr_assert_eq(errors.last_err, err);
    cr_assert_eq(sc_usable_size(h, p), 0);
    cr_assert_eq(errors.last_err, err);
    cr_assert_null(sc_realloc(h, p, 100));
    cr_assert_eq(errors.last_err, err);
    cr_assert_eq(atomic_load(&errors.count), 3);
    test_error_log_clear(&errors);
}

Test(free_dispatch, owned_hot)
{
    sc_heap_t *h = sc_heap_create(NULL);
    void *p = sc_alloc(h, 64);
    block_ref_t r = lookup(h, p);
    cr_assert_eq(r.kind, BLOCK_OWNED);
    cr_assert_eq(r.span, span_at(p));
    cr_assert_eq((uintptr_t)span_base(r.span), (uintptr_t)p & ~(uintptr_t)SPAN_MASK);
    cr_assert_eq(sc_usable_size(h, p), 64);
    sc_free(h, p);
    cr_assert_eq(atomic_load(&errors.count), 0);
    sc_heap_destroy(h);
}

Test(free_dispatch, owned_floating)
{
    sc_heap_t *h = sc_heap_create(NULL);
    /* More blocks than one span holds: the first span floats. */
    enum { N = 3000 }; /* three real spans: no grown one (tuning.h, GROWN_SPAN_AFTER) */
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = sc_alloc(h, 32);
    span_t *first = span_at(blocks[0]);
    span_t *last = span_at(blocks[N - 1]);
    cr_assert_neq(first, last, "one span held %d blocks of 32 B", N);
    cr_assert_eq(span_state(first), SPAN_FLOATING);
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(h, &bad);
    cr_assert_null(broken, "%s (span %p)", broken, (void *)bad);
    for (int i = 0; i < N; i += 3)
        sc_free(h, blocks[i]);
    broken = invariants_check_heap(h, &bad);
    cr_assert_null(broken, "after freeing a third: %s (span %p)", broken, (void *)bad);
    for (int i = 0; i < N; i += 3)
        blocks[i] = sc_alloc(h, 32);
    block_ref_t r = lookup(h, blocks[0]);
    cr_assert_eq(r.kind, BLOCK_OWNED);
    /* The owner frees into its floating span without an error; once the
     * span is empty, it waits in the floating set, kept for the class
     * (frontend.c, "KEPT EMPTY SPANS": DRAINED, so that any thread's trim
     * may give its memory back), and the next refill takes it back with
     * its blocks as they are. */
    for (int i = 0; i < N; i++)
        sc_free(h, blocks[i]);
    cr_assert_eq(atomic_load(&errors.count), 0);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(span_state(first), SPAN_DRAINED);
    cr_assert_eq(first->kept_empty, 1);
    broken = invariants_check_heap(h, &bad);
    cr_assert_null(broken, "with a kept span: %s (span %p)", broken, (void *)bad);
    size_t committed = st.committed_bytes;
    for (int i = 0; i < N; i++)
        blocks[i] = sc_alloc(h, 32);
    st = test_stats(h);
    cr_assert_eq(st.committed_bytes, committed, "the kept spans served the class again");
    for (int i = 0; i < N; i++)
        sc_free(h, blocks[i]);
    /* A trim gives empty spans, kept or hot, to the pool. */
    sc_heap_trim(h);
    st = test_stats(h);
    cr_assert_eq(st.spans_floating, 0, "%zu floating spans left", st.spans_floating);
    sc_heap_destroy(h);
}

typedef struct worker_s {
    sc_heap_t *heap;
    void *block;
    pthread_barrier_t *hold; /* NULL: exit at once */
} worker_t;

static void *alloc_worker(void *arg)
{
    worker_t *w = arg;
    w->block = sc_alloc(w->heap, 48);
    if (w->hold) {
        pthread_barrier_wait(w->hold); /* allocated */
        pthread_barrier_wait(w->hold); /* main looked */
    }
    return NULL;
}

Test(free_dispatch, remote_live_thread)
{
    sc_heap_t *h = sc_heap_create(NULL);
    pthread_barrier_t hold;
    pthread_barrier_init(&hold, NULL, 2);
    worker_t w = {h, NULL, &hold};
    pthread_t tid;
    cr_assert_eq(pthread_create(&tid, NULL, alloc_worker, &w), 0);
    pthread_barrier_wait(&hold);
    block_ref_t r = lookup(h, w.block);
    cr_assert_eq(r.kind, BLOCK_REMOTE);
    cr_assert_eq(span_state(r.span), SPAN_HOT);
    cr_assert_eq(sc_usable_size(h, w.block), 48);
    sc_free(h, w.block); /* a remote free, batched */
    cr_assert_eq(test_stats(h).live_blocks, 0);
    pthread_barrier_wait(&hold);
    pthread_join(tid, NULL);
    pthread_barrier_destroy(&hold);
    cr_assert_eq(atomic_load(&errors.count), 0);
    sc_heap_destroy(h);
}

Test(free_dispatch, remote_detached)
{
    sc_heap_t *h = sc_heap_create(NULL);
    worker_t w = {h, NULL, NULL};
    pthread_t tid;
    cr_assert_eq(pthread_create(&tid, NULL, alloc_worker, &w), 0);
    pthread_join(tid, NULL);
    block_ref_t r = lookup(h, w.block);
    cr_assert_eq(r.kind, BLOCK_REMOTE);
    /* Ownerless: one block live, the rest free, so past the reuse
     * threshold (REUSABLE) or not (DETACHED). */
    cr_assert(span_state(r.span) == SPAN_REUSABLE || span_state(r.span) == SPAN_DETACHED,
              "state %u", span_state(r.span));
    cr_assert_null(span_owner(r.span));
    sc_free(h, w.block);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.spans_hot + st.spans_floating + st.spans_reusable, 0,
                 "the detached span's last free did not pool it");
    cr_assert_eq(atomic_load(&errors.count), 0);
    sc_heap_destroy(h);
}

Test(free_dispatch, huge_blocks)
{
    sc_heap_t *h = sc_heap_create(NULL);
    char *p = sc_alloc(h, 5 * MiB);
    block_ref_t r = lookup(h, p);
    cr_assert_eq(r.kind, BLOCK_HUGE);
    cr_assert_geq(sc_usable_size(h, p), 5 * MiB);
    char *q = sc_aligned_alloc(h, 4 * MiB, 3 * MiB);
    cr_assert_eq((uintptr_t)q % (4 * MiB), 0);
    r = lookup(h, q);
    cr_assert_eq(r.kind, BLOCK_HUGE);
    /* Inside a huge block: its first span, and the spans after it. */
    expect_bad(h, p + 16, SC_ERR_INTERIOR_POINTER);
    expect_bad(h, p + 3 * MiB, SC_ERR_INTERIOR_POINTER);
    expect_bad(h, q + 2 * MiB + 64, SC_ERR_INTERIOR_POINTER);
    sc_free(h, p);
    sc_free(h, q);
    cr_assert_eq(atomic_load(&errors.count), 0);
    /* Freed: a double free. */
    expect_bad(h, p, SC_ERR_DOUBLE_FREE);
    sc_heap_destroy(h);
}

Test(free_dispatch, reserved_space)
{
    sc_heap_t *h = sc_heap_create(NULL);
    char *p = sc_alloc(h, 64);
    /* Far into the heap's region: reserved, never handed out. */
    char *far = (char *)((uintptr_t)p & ~(uintptr_t)SPAN_MASK) + 64 * SPAN_SIZE;
    cr_assert(sc_heap_owns(h, far), "64 spans on is outside the region");
    expect_bad(h, far, SC_ERR_FOREIGN_POINTER);
    expect_bad(h, far + 8, SC_ERR_INTERIOR_POINTER);
    sc_free(h, p);
    sc_heap_destroy(h);
}

static int a_global;

Test(free_dispatch, foreign_pointers)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(sc_heap_thread(h)); /* the frontend exists */
    void *libc = malloc(64);
    int on_stack = 0;
    expect_bad(h, libc, SC_ERR_FOREIGN_POINTER);
    expect_bad(h, &on_stack, SC_ERR_FOREIGN_POINTER);
    expect_bad(h, &a_global, SC_ERR_FOREIGN_POINTER);
    expect_bad(h, (void *)(uintptr_t)0xdeadbeefdeadbeefULL, SC_ERR_FOREIGN_POINTER);
    expect_bad(h, (void *)(uintptr_t)-1, SC_ERR_FOREIGN_POINTER);
    expect_bad(h, (void *)(uintptr_t)16, SC_ERR_FOREIGN_POINTER);
    /* Above the user address space, aliasing a block's map index. */
    void *p = sc_alloc(h, 64);
    expect_bad(h, (void *)((uintptr_t)p | ((uintptr_t)1 << 47)), SC_ERR_FOREIGN_POINTER);
    sc_free(h, p);
    free(libc);
    sc_heap_destroy(h);
}

Test(free_dispatch, other_heap)
{
    sc_heap_t *h = sc_heap_create(NULL);
    sc_heap_t *other = sc_heap_create(NULL);
    cr_assert_not_null(sc_heap_thread(h));
    void *p = sc_alloc(other, 64);
    void *big = sc_alloc(other, 3 * MiB);
    expect_bad(h, p, SC_ERR_OTHER_HEAP);
    expect_bad(h, big, SC_ERR_OTHER_HEAP);
    sc_free(other, p);
    sc_free(other, big);
    cr_assert_eq(atomic_load(&errors.count), 0);
    sc_heap_destroy(other);
    sc_heap_destroy(h);
}

Test(free_dispatch, interior)
{
    sc_heap_t *h = sc_heap_create(NULL);
    char *p = sc_alloc(h, 64);
    char *q = sc_alloc(h, 64);
    expect_bad(h, p + 8, SC_ERR_INTERIOR_POINTER);
    expect_bad(h, p + 16, SC_ERR_INTERIOR_POINTER);
    /* Every 16 bytes of the span's lead (before its first block, where the
     * fast path's offset test wraps round), a block never handed out, and
     * the last 16 bytes of the span. */
    char *base = (char *)((uintptr_t)p & ~(uintptr_t)SPAN_MASK);
    for (size_t off = 0; off < SPAN_LEAD; off += 16)
        expect_bad(h, base + off, SC_ERR_INTERIOR_POINTER);
    expect_bad(h, q + 64 * 100, SC_ERR_INTERIOR_POINTER);
    expect_bad(h, base + SPAN_SIZE - 16, SC_ERR_INTERIOR_POINTER);
    sc_free(h, p);
    sc_free(h, q);
    cr_assert_eq(atomic_load(&errors.count), 0);
    sc_heap_destroy(h);
}

Test(free_dispatch, freed_head_of_list)
{
    sc_heap_t *h = sc_heap_create(NULL);
    void *p = sc_alloc(h, 64);
    void *q = sc_alloc(h, 64);
    sc_free(h, p);
    test_error_log_clear(&errors);
    sc_free(h, p); /* the head of the owner's free list */
    cr_assert_eq(errors.last_err, SC_ERR_DOUBLE_FREE);
    cr_assert_eq(atomic_load(&errors.count), 1);
    /* Nothing was corrupted: the next two allocations are distinct. */
    void *a = sc_alloc(h, 64), *b = sc_alloc(h, 64);
    cr_assert_neq(a, b);
    sc_free(h, a);
    sc_free(h, b);
    sc_free(h, q);
    sc_heap_destroy(h);
}

static void *alloc_free_worker(void *arg)
{
    worker_t *w = arg;
    w->block = sc_alloc(w->heap, 80);
    sc_free(w->heap, w->block);
    return NULL;
}

Test(free_dispatch, freed_pooled_span)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(sc_heap_thread(h));
    /* A thread allocates, frees and exits: its span goes to the pool. */
    worker_t w = {h, NULL, NULL};
    pthread_t tid;
    cr_assert_eq(pthread_create(&tid, NULL, alloc_free_worker, &w), 0);
    pthread_join(tid, NULL);
    span_t *s = span_at(w.block);
    cr_assert_eq(span_state(s), SPAN_POOLED);
    expect_bad(h, w.block, SC_ERR_DOUBLE_FREE);
    sc_heap_destroy(h);
}

/* Span headers live in the header table, not in the span, so a span
 * bumped again after sc_heap_reset gets its old header back: the arena
 * makes it a fresh span's (no kind, nothing carved) before its map word
 * says it has one. A block pointer kept from before the reset is then
 * refused, as a zeroed header in the span's own first page refused it,
 * instead of being taken for a live block of the span it used to be. */
Test(free_dispatch, stale_block_in_a_span_bumped_again)
{
    sc_heap_t *h = sc_heap_create(NULL);
    void *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = sc_alloc(h, 64);
    char *stale = blocks[10];
    span_t *before = span_at(stale);
    char *base = span_base(before);
    cr_assert_eq(span_kind(before), SPAN_KIND_BLOCKS);
    sc_heap_reset(h); /* reset_keep_bytes 0: the whole region is rewound */
    expect_bad(h, stale, SC_ERR_FOREIGN_POINTER);

    span_t *s = arena_take_span(h);
    cr_assert_not_null(s);
    cr_assert_eq(span_base(s), base, "the first span bumped after the reset is %p, not %p",
                 (void *)span_base(s), (void *)base);
    cr_assert_eq(s, before, "the same 2 MiB got another header");
    cr_assert_eq(span_kind(s), 0, "a bumped span's header kept its kind");
    cr_assert_eq(span_capacity(s), 0);
    cr_assert_eq(s->block_size, 0);
    cr_assert_null(span_owner(s));
    cr_assert_eq(s->committed, os_page_size());
    cr_assert_eq(address_map_get((uintptr_t)stale) & MAP_TAGS, MAP_SPAN);
    expect_bad(h, stale, SC_ERR_FOREIGN_POINTER);
    sc_heap_destroy(h);
}
