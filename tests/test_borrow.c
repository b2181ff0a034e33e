/*
 * Borrowing (lib/frontend.c, "BORROWING"; scalloc.h, sc_good_size and
 * sc_usable_size): a request of a class with blocks of BORROW_MIN_BLOCK
 * bytes or more whose hot span has no free block takes a free block of one
 * of the next BORROW_CLASSES classes' hot spans, so that a thread's
 * neighbouring big classes share one high-water mark.
 *
 * Contract lines checked here:
 *  - the free block of the next class is handed out, whole (its usable
 *    size is its class's), and goes back to its own span   [takes_next_class]
 *  - the request's own class comes first                  [own_class_first]
 *  - never more than BORROW_CLASSES classes up          [at_most_two_classes_up]
 *  - never for classes below BORROW_MIN_BLOCK                  [not_below_min]
 *  - checked and tracking heaps never borrow (usable size is exactly
 *    sc_good_size there, requested bytes exact)        [not_in_checked_heaps]
 *  - a thread allocating and freeing big blocks of wandering sizes: every
 *    block's contents survive, usable sizes stay within the bound, span
 *    lists and counts add up, and everything comes back      [mixed_ring]
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>

#include "invariants.h"
#include "size_class.h"
#include "test_util.h"
#include "tuning.h"

/* The class of blocks of exactly BORROW_MIN_BLOCK bytes: the first that
 * borrows. */
static unsigned first_borrowing_class(void)
{
    unsigned c = size_class_of(BORROW_MIN_BLOCK);
    cr_assert_eq(size_class_block_size(c), BORROW_MIN_BLOCK,
                 "BORROW_MIN_BLOCK is not a class size");
    return c;
}

static size_t bs(unsigned c)
{
    return size_class_block_size(c);
}

static void check_heap(sc_heap_t *h)
{
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(h, &bad);
    cr_assert_null(broken, "span %p: %s", (void *)bad, broken);
}

Test(borrow, takes_next_class)
{
    unsigned c = first_borrowing_class();
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* Two blocks of the next class, one freed: its hot span's only free
     * block (the other keeps the span hot: an empty one would leave the
     * hot slot). */
    unsigned char *keep = sc_alloc(h, bs(c + 1));
    unsigned char *q = sc_alloc(h, bs(c + 1));
    cr_assert_not_null(keep);
    cr_assert_not_null(q);
    sc_free(h, q);

    unsigned char *p = sc_alloc(h, bs(c));
    cr_assert_eq(p, q, "a request of %zu B did not take the free %zu B block", bs(c), bs(c + 1));
    cr_assert_eq(sc_usable_size(h, p), bs(c + 1), "usable %zu, the block's class is %zu",
                 sc_usable_size(h, p), bs(c + 1));
    memset(p, 0x5c, bs(c + 1)); /* all of it is the caller's */
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 2);
    cr_assert_eq(st.live_bytes, 2 * bs(c + 1));
    cr_assert_eq(st.classes[c + 1].live_blocks, 2, "counted in the block's own class");
    cr_assert_eq(st.classes[c].live_blocks, 0);
    check_heap(h);

    /* Its free goes to its own span: the next request of that class gets it. */
    sc_free(h, p);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 1);
    cr_assert_eq(st.live_bytes, bs(c + 1));
    unsigned char *r = sc_alloc(h, bs(c + 1));
    cr_assert_eq(r, q, "the borrowed block did not go back to its span");
    sc_free(h, r);
    sc_free(h, keep);
    st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    check_heap(h);
    sc_heap_destroy(h);
}

Test(borrow, own_class_first)
{
    unsigned c = first_borrowing_class();
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    void *own_keep = sc_alloc(h, bs(c)), *own = sc_alloc(h, bs(c));
    void *next_keep = sc_alloc(h, bs(c + 1)), *next = sc_alloc(h, bs(c + 1));
    cr_assert(own_keep && own && next_keep && next);
    sc_free(h, next);
    sc_free(h, own);
    void *p = sc_alloc(h, bs(c));
    cr_assert_eq(p, own, "the class's own free block was passed over");
    cr_assert_eq(sc_usable_size(h, p), bs(c));
    sc_free(h, p);
    sc_free(h, own_keep);
    sc_free(h, next_keep);
    sc_heap_destroy(h);
}

/* A hot span of class c + k holding one live block and one free one. */
static void *one_free_block(sc_heap_t *h, unsigned cls, void **keep)
{
    *keep = sc_alloc(h, bs(cls));
    void *q = sc_alloc(h, bs(cls));
    cr_assert_not_null(*keep);
    cr_assert_not_null(q);
    sc_free(h, q);
    return q;
}

Test(borrow, at_most_two_classes_up)
{
    cr_assert_eq(BORROW_CLASSES, 2u, "this case and scalloc.h say two classes");
    unsigned c = first_borrowing_class();
    void *keep;
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    void *far = one_free_block(h, c + BORROW_CLASSES + 1, &keep);
    void *p = sc_alloc(h, bs(c));
    cr_assert_not_null(p);
    cr_assert_neq(p, far, "a block %u classes up was borrowed", BORROW_CLASSES + 1);
    cr_assert_eq(sc_usable_size(h, p), bs(c));
    sc_free(h, p);
    sc_free(h, keep);
    check_heap(h);
    sc_heap_destroy(h);

    /* The farthest allowed is taken. */
    h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    void *edge = one_free_block(h, c + BORROW_CLASSES, &keep);
    p = sc_alloc(h, bs(c));
    cr_assert_eq(p, edge, "the free block %u classes up was not borrowed", BORROW_CLASSES);
    cr_assert_eq(sc_usable_size(h, p), bs(c + BORROW_CLASSES));
    sc_free(h, p);
    sc_free(h, keep);
    check_heap(h);
    sc_heap_destroy(h);
}

Test(borrow, not_below_min)
{
    unsigned c = first_borrowing_class();
    void *keep;
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* The class below BORROW_MIN_BLOCK, with a free block one class up. */
    void *up = one_free_block(h, c, &keep);
    void *p = sc_alloc(h, bs(c - 1));
    cr_assert_not_null(p);
    cr_assert_neq(p, up);
    cr_assert_eq(sc_usable_size(h, p), bs(c - 1));
    cr_assert_eq(sc_usable_size(h, p), sc_good_size(bs(c - 1)));
    sc_free(h, p);
    sc_free(h, keep);
    sc_heap_destroy(h);
}

Test(borrow, not_in_checked_heaps)
{
    unsigned c = first_borrowing_class();
    const unsigned flags[] = {SC_HEAP_CHECKED, SC_HEAP_TRACK_REQUESTED};
    for (unsigned i = 0; i < 2; i++) {
        sc_heap_config_t cfg = {.flags = flags[i]};
        sc_heap_t *h = sc_heap_create(&cfg);
        cr_assert_not_null(h);
        void *keep;
        one_free_block(h, c + 1, &keep);
        void *p = sc_alloc(h, bs(c) - 100);
        cr_assert_not_null(p);
        cr_assert_eq(sc_usable_size(h, p), sc_good_size(bs(c) - 100), "flags %#x: usable %zu",
                     flags[i], sc_usable_size(h, p));
        sc_heap_stats_t st = test_stats(h);
        cr_assert_eq(st.requested_bytes, bs(c) - 100 + bs(c + 1), "flags %#x: requested %zu",
                     flags[i], st.requested_bytes);
        sc_free(h, p);
        sc_free(h, keep);
        sc_heap_destroy(h);
    }
}

/* A ring of blocks of 4-64 KiB, each filled to its usable size with a mark
 * and checked before it is freed. */
Test(borrow, mixed_ring)
{
    enum { RING = 64 };
    size_t steps = test_scaled(20000, 2000);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    unsigned char *ring[RING] = {0};
    size_t size[RING] = {0};
    test_rng_t rng = {7};
    size_t borrowed = 0;
    for (size_t k = 0; k < steps; k++) {
        unsigned i = (unsigned)(k % RING);
        if (ring[i] != NULL) {
            for (size_t j = 0; j < size[i]; j += 997)
                cr_assert_eq(ring[i][j], (unsigned char)(i + j), "step %zu: block %u byte %zu", k,
                             i, j);
            cr_assert_eq(ring[i][size[i] - 1], (unsigned char)i);
            sc_free(h, ring[i]);
        }
        size_t n = test_rng_range(&rng, 4096, 65536);
        unsigned char *p = sc_alloc(h, n);
        cr_assert_not_null(p);
        size_t u = sc_usable_size(h, p);
        unsigned c = size_class_of(n);
        cr_assert_geq(u, sc_good_size(n));
        cr_assert_leq(u, bs(c + BORROW_CLASSES), "%zu B: usable %zu", n, u);
        borrowed += u > sc_good_size(n);
        for (size_t j = 0; j < u; j += 997)
            p[j] = (unsigned char)(i + j);
        p[u - 1] = (unsigned char)i;
        ring[i] = p;
        size[i] = u;
    }
    cr_assert_gt(borrowed, 0, "no request borrowed in %zu steps", steps);
    cr_log_info("%zu of %zu requests borrowed", borrowed, steps);
    check_heap(h);
    for (unsigned i = 0; i < RING; i++)
        sc_free(h, ring[i]);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    check_heap(h);
    sc_heap_destroy(h);
}
