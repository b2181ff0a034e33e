/*
 * Size classes and sc_good_size: scalloc.h, "Allocation" (sc_good_size:
 * "The usable size sc_alloc(heap, n) would give: n rounded up to its size
 * class (or to the page for huge sizes) ... 0 if n cannot be met";
 * sc_usable_size) and "Introspection" (SC_NUM_CLASSES, SC_MAX_CLASS_SIZE,
 * sc_class_stats_t.block_size), against the internal class table
 * (lib/size_class.h; DESIGN.md section 1, "Size classes").
 *
 * Contract lines checked here:
 *  - sc_alloc(h, n) gives at least n usable bytes (at least 1 for n = 0)
 *    for every n served from classes, 0..SC_MAX_CLASS_SIZE, exactly
 *    sc_good_size(n) of them                            [usable_covers_request]
 *  - the class of a size never decreases as the size grows, and the class
 *    chosen is the smallest that fits (no class skipped)          [mapping_*]
 *  - block sizes are multiples of 16 (16-byte alignment of every
 *    block follows from it)                                      [block_sizes_*]
 *  - small classes are 16..256 in 16-byte steps                  [small_classes_step_16]
 *  - there are SC_NUM_CLASSES classes in the internal table, the largest
 *    SC_MAX_CLASS_SIZE                                           [class_count]
 *  - sc_heap_get_stats reports the same block sizes as the table  [stats_block_sizes]
 *  - sc_good_size at every class boundary (the class size, one below,
 *    one above), at 0 and at the largest class; it is idempotent, so a
 *    caller that rounds twice asks for the same     [good_size_class_boundaries]
 *  - above SC_MAX_CLASS_SIZE it rounds so that the block ends on a page:
 *    less than a page more than n, and sc_alloc gives exactly that
 *                                                  [good_size_huge_rounds_to_page]
 *  - sizes that cannot be met (past the user address space, or whose
 *    rounding would overflow) give 0, and sc_alloc refuses them with
 *    ENOMEM                                           [good_size_cannot_be_met]
 *  - in plain, checked and tracking heaps alike, sc_usable_size of
 *    sc_alloc(h, n) and of sc_calloc(h, 1, n) is sc_good_size(n) for a
 *    sweep of class and huge sizes         [good_size_is_usable_size_in_every_heap]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "size_class.h"
#include "test_util.h"

#define MiB ((size_t)1 << 20)

Test(size_class, class_count)
{
    cr_assert_eq(SIZE_CLASS_COUNT, SC_NUM_CLASSES,
                 "internal class table has %d classes, public header says %d",
                 (int)SIZE_CLASS_COUNT, (int)SC_NUM_CLASSES);
    cr_assert_eq(size_class_block_size(SIZE_CLASS_COUNT - 1), SC_MAX_CLASS_SIZE,
                 "largest class is %zu bytes, SC_MAX_CLASS_SIZE is %zu",
                 size_class_block_size(SIZE_CLASS_COUNT - 1), SC_MAX_CLASS_SIZE);
}

Test(size_class, small_classes_step_16)
{
    for (unsigned c = 0; c < 16; c++)
        cr_assert_eq(size_class_block_size(c), 16u * (c + 1),
                     "class %u has %zu-byte blocks, expected %u", c,
                     size_class_block_size(c), 16u * (c + 1));
}

Test(size_class, block_sizes_multiple_of_16_and_increasing)
{
    size_t prev = 0;
    for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
        size_t bs = size_class_block_size(c);
        cr_assert_eq(bs % 16, 0, "class %u block size %zu is not a multiple of 16", c, bs);
        cr_assert_gt(bs, prev, "class %u block size %zu not above class %u's %zu", c, bs,
                     c - 1, prev);
        prev = bs;
    }
}

Test(size_class, mapping_fits_and_is_tightest)
{
    unsigned prev_cls = 0;
    for (size_t n = 0; n <= SC_MAX_CLASS_SIZE; n++) {
        unsigned cls = size_class_of(n);
        cr_assert_lt(cls, SIZE_CLASS_COUNT, "size %zu maps to class %u (out of range)", n, cls);
        size_t bs = size_class_block_size(cls);
        cr_assert_geq(bs, n, "size %zu maps to class %u with only %zu bytes", n, cls, bs);
        if (cls > 0)
            cr_assert_lt(size_class_block_size(cls - 1), n,
                         "size %zu maps to class %u although class %u (%zu bytes) fits", n,
                         cls, cls - 1, size_class_block_size(cls - 1));
        cr_assert_geq(cls, prev_cls, "class mapping not monotone at size %zu (%u after %u)", n,
                      cls, prev_cls);
        prev_cls = cls;
    }
    cr_assert_eq(size_class_of(SC_MAX_CLASS_SIZE), SIZE_CLASS_COUNT - 1);
}

Test(size_class, usable_covers_request)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);

    /* Every size, allocated and freed at once: the usable size must cover the
     * request, and grow (never shrink) with it. Writing the last usable byte
     * proves the block really is that large (ASan / a segfault would tell). */
    size_t prev_usable = 0;
    for (size_t n = 0; n <= SC_MAX_CLASS_SIZE; n++) {
        unsigned char *p = sc_alloc(h, n);
        cr_assert_not_null(p, "sc_alloc(h, %zu) failed", n);
        size_t usable = sc_usable_size(h, p);
        size_t need = n ? n : 1;
        cr_assert_geq(usable, need, "sc_alloc(h, %zu): usable size %zu", n, usable);
        cr_assert_geq(usable, prev_usable, "usable size shrank at %zu: %zu after %zu", n,
                      usable, prev_usable);
        cr_assert_eq(usable, size_class_block_size(size_class_of(n)),
                     "sc_alloc(h, %zu): usable %zu differs from class block size %zu", n, usable,
                     size_class_block_size(size_class_of(n)));
        cr_assert_eq(usable, sc_good_size(n), "sc_alloc(h, %zu): usable %zu, sc_good_size %zu",
                     n, usable, sc_good_size(n));
        p[0] = 0xa5;
        p[usable - 1] = 0x5a;
        sc_free(h, p);
        prev_usable = usable;
    }

    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0, "live blocks after freeing everything: %zu", st.live_blocks);
    cr_assert_eq(st.live_bytes, 0, "live bytes after freeing everything: %zu", st.live_bytes);
    sc_heap_destroy(h);
}

Test(size_class, stats_block_sizes)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    sc_heap_stats_t st = test_stats(h);
    for (unsigned c = 0; c < SC_NUM_CLASSES; c++)
        cr_assert_eq(st.classes[c].block_size, size_class_block_size(c),
                     "stats class %u block size %zu, table says %zu", c,
                     st.classes[c].block_size, size_class_block_size(c));
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* sc_good_size                                                             */
/* ------------------------------------------------------------------------ */

Test(size_class, good_size_class_boundaries)
{
    /* 0 gets the smallest class, as sc_alloc(h, 0) does. */
    cr_assert_eq(sc_good_size(0), size_class_block_size(0), "sc_good_size(0) = %zu",
                 sc_good_size(0));
    cr_assert_geq(sc_good_size(0), 1);
    cr_assert_eq(sc_good_size(1), size_class_block_size(0));
    size_t prev = 0;
    for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
        size_t bs = size_class_block_size(c);
        /* The class size itself, and everything from just above the
         * previous class to it, rounds to it. */
        cr_assert_eq(sc_good_size(bs), bs, "class %u: sc_good_size(%zu) = %zu", c, bs,
                     sc_good_size(bs));
        cr_assert_eq(sc_good_size(bs - 1), bs, "class %u: sc_good_size(%zu) = %zu", c, bs - 1,
                     sc_good_size(bs - 1));
        cr_assert_eq(sc_good_size(prev + 1), bs, "class %u: sc_good_size(%zu) = %zu", c,
                     prev + 1, sc_good_size(prev + 1));
        /* One above goes to the next class, or past the last one to huge. */
        size_t above = sc_good_size(bs + 1);
        if (c + 1 < SIZE_CLASS_COUNT)
            cr_assert_eq(above, size_class_block_size(c + 1),
                         "class %u: sc_good_size(%zu) = %zu, next class is %zu", c, bs + 1,
                         above, size_class_block_size(c + 1));
        else
            cr_assert_gt(above, bs, "sc_good_size(%zu) = %zu past the largest class", bs + 1,
                         above);
        /* Rounding twice changes nothing. */
        cr_assert_eq(sc_good_size(sc_good_size(prev + 1)), sc_good_size(prev + 1));
        prev = bs;
    }
    /* The largest class is SC_MAX_CLASS_SIZE, served from a class. */
    cr_assert_eq(sc_good_size(SC_MAX_CLASS_SIZE), SC_MAX_CLASS_SIZE);
    cr_assert_eq(sc_good_size(SC_MAX_CLASS_SIZE - 1), SC_MAX_CLASS_SIZE);
}

Test(size_class, good_size_huge_rounds_to_page)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* Around page and span boundaries from just above the largest class to
     * a few spans, where rounding errors by one would show. */
    size_t prev_good = SC_MAX_CLASS_SIZE;
    for (size_t base = SC_MAX_CLASS_SIZE; base <= 9 * MiB; base += 64 * 1024 + page) {
        static const long deltas[] = {1, 2, 15, 16, 17, 127, 128, 129, 4095, 4096, 4097};
        for (size_t k = 0; k < sizeof deltas / sizeof deltas[0]; k++) {
            size_t n = base + (size_t)deltas[k];
            size_t good = sc_good_size(n);
            cr_assert_geq(good, n, "sc_good_size(%zu) = %zu", n, good);
            cr_assert_lt(good - n, page, "sc_good_size(%zu) = %zu: more than a page over", n,
                         good);
            cr_assert_eq(sc_good_size(good), good, "sc_good_size(sc_good_size(%zu)) moved", n);
            if (k == 0)
                cr_assert_geq(good, prev_good, "sc_good_size fell from %zu to %zu at %zu",
                              prev_good, good, n);
            prev_good = good;
            unsigned char *p = sc_alloc(h, n);
            cr_assert_not_null(p, "sc_alloc(h, %zu) failed", n);
            size_t usable = sc_usable_size(h, p);
            cr_assert_eq(usable, good, "sc_alloc(h, %zu): usable %zu, sc_good_size %zu", n,
                         usable, good);
            /* "Rounded up to the page": the block ends on a page boundary,
             * and all of it is the caller's. */
            cr_assert_eq(((uintptr_t)p + usable) % page, 0,
                         "huge block %p of %zu usable bytes ends inside a page", (void *)p,
                         usable);
            p[usable - 1] = 0x7e;
            sc_free(h, p);
        }
    }
    cr_assert_eq(test_stats(h).huge_blocks, 0);
    sc_heap_destroy(h);
}

Test(size_class, good_size_cannot_be_met)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    /* No block larger than the user address space (2^47 on x86-64 and
     * aarch64) can exist; and near SIZE_MAX any rounding would wrap. */
    static const size_t impossible[] = {
        (size_t)1 << 47,
        ((size_t)1 << 47) + 1,
        (size_t)1 << 56,
        (size_t)1 << 62,
        (size_t)1 << 63,
        SIZE_MAX / 2,
        SIZE_MAX / 2 + 1,
        SIZE_MAX - (size_t)(2u << 20),
        SIZE_MAX - 4096,
        SIZE_MAX - 16,
        SIZE_MAX - 15,
        SIZE_MAX - 1,
        SIZE_MAX,
    };
    for (size_t i = 0; i < sizeof impossible / sizeof impossible[0]; i++) {
        size_t n = impossible[i];
        cr_assert_eq(sc_good_size(n), 0, "sc_good_size(%zu) = %zu for a size that cannot be met",
                     n, sc_good_size(n));
        errno = 0;
        void *p = sc_alloc(h, n);
        cr_assert_null(p, "sc_alloc(h, %zu) = %p", n, p);
        cr_assert_eq(errno, ENOMEM, "sc_alloc(h, %zu): errno %d", n, errno);
    }
    /* Beyond the machine's memory and swap (scalloc.h, sc_good_size) no
     * heap can meet a request either: 0, and sc_alloc refuses it. */
    size_t physical = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    if (physical < ((size_t)1 << 44)) {
        cr_assert_eq(sc_good_size((size_t)1 << 44), 0, "sc_good_size(2^44) = %zu",
                     sc_good_size((size_t)1 << 44));
        errno = 0;
        void *p = sc_alloc(h, (size_t)1 << 44);
        cr_assert(p == NULL && errno == ENOMEM, "sc_alloc(h, 2^44) = %p, errno %d", p, errno);
    }
    /* sc_good_size is 0 only where it must be: large sizes that fit the
     * machine get a rounded size, never less than asked. */
    const size_t large[] = {(size_t)1 << 30, physical / 2 + 1};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
        size_t good = sc_good_size(large[i]);
        cr_assert(good >= large[i] && good - large[i] < page, "sc_good_size(%zu) = %zu",
                  large[i], good);
    }
    sc_heap_destroy(h);
}

Test(size_class, good_size_is_usable_size_in_every_heap)
{
    /* sc_good_size knows no heap: checked and tracking heaps keep metadata
     * in their spans, but must hand out the same usable sizes. */
    static const unsigned flags[] = {SC_HEAP_DEFAULT, SC_HEAP_CHECKED, SC_HEAP_TRACK_REQUESTED};
    for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
        sc_heap_config_t cfg = {.name = "good-size", .flags = flags[f]};
        sc_heap_t *h = sc_heap_create(&cfg);
        cr_assert_not_null(h);
        test_rng_t rng = {77 + f};
        for (size_t i = 0; i < 3000; i++) {
            size_t n;
            if (i < SIZE_CLASS_COUNT * 3) /* every class size and its neighbours */
                n = size_class_block_size((unsigned)(i / 3)) + i % 3 - 1;
            else if (i % 50 == 0)
                n = test_rng_range(&rng, SC_MAX_CLASS_SIZE + 1, 5 * MiB);
            else
                n = test_mixed_size(&rng);
            void *p = i % 2 ? sc_calloc(h, 1, n) : sc_alloc(h, n);
            cr_assert_not_null(p, "flags %u: allocation of %zu failed", flags[f], n);
            cr_assert_eq(sc_usable_size(h, p), sc_good_size(n),
                         "flags %u, n %zu: usable %zu, sc_good_size %zu", flags[f], n,
                         sc_usable_size(h, p), sc_good_size(n));
            sc_free(h, p);
        }
        cr_assert_eq(test_stats(h).live_blocks, 0);
        sc_heap_destroy(h);
    }
}
