/*
 * Size classes (DESIGN.md §1 "Size classes"; §2 sc_alloc / sc_usable_size).
 *
 * Contract lines checked here:
 *  - sc_alloc(h, n) gives at least n usable bytes (at least 1 for n = 0) for
 *    every n served from classes, 0..SC_MAX_CLASS_SIZE          [usable_covers_request]
 *  - the class of a size never decreases as the size grows, and the class
 *    chosen is the smallest that fits (no class skipped)          [mapping_*]
 *  - block sizes are multiples of 16 (16-byte alignment of every
 *    block follows from it)                                      [block_sizes_*]
 *  - small classes are 16..256 in 16-byte steps                  [small_classes_step_16]
 *  - there are SC_NUM_CLASSES classes in the internal table       [class_count]
 *  - sc_heap_get_stats reports the same block sizes as the table  [stats_block_sizes]
 */
#include <criterion/criterion.h>

#include "size_class.h"
#include "test_util.h"

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
