/*
 * Ownership: scalloc.h, "Allocation", sc_heap_owns and sc_heap_of ("O(1);
 * any pointer value is safe to ask about (NULL, libc pointers, stack,
 * garbage)"). The answers come from the process-wide address map without
 * touching the pointer's memory; the map itself is tested word by word in
 * test_component_address_map.c.
 *
 * Contract lines checked here:
 *  - a heap owns its small, big and huge blocks, sc_heap_of names it, and
 *    another heap neither owns them nor is named     [owns_and_heap_of]
 *  - NULL, libc (small and mmap-sized), stack, globals, rodata, code, and
 *    garbage ((void *)1, (void *)-1, 0xdeadbeefdeadbeef, the last user
 *    address, non-canonical and kernel addresses) belong to no heap
 *                                          [owns_and_heap_of, ownership_of_any_value]
 *  - every byte of a huge block and of a 1 GiB-aligned huge block, and the
 *    last byte of a small block, belong to their heap [ownership_of_any_value]
 *  - random words, and every 2 MiB for 2 GiB around the heaps' blocks, never
 *    crash and are answered with one of the live heaps or NULL
 *                                                   [ownership_of_any_value]
 *  - a destroyed heap's old range belongs to nobody  [ownership_of_any_value]
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#include "test_util.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

static const char rodata_text[] = "read-only data, owned by no heap";

Test(ownership, owns_and_heap_of)
{
    sc_heap_t *h = sc_heap_create(NULL);
    sc_heap_t *other = sc_heap_create(NULL);
    cr_assert_not_null(h);
    cr_assert_not_null(other);

    void *small = sc_alloc(h, 32);
    void *big = sc_alloc(h, 300000);
    void *huge = sc_alloc(h, 5u << 20);
    void *theirs = sc_alloc(other, 32);
    void *libc = malloc(32);
    int on_stack = 0;
    cr_assert(small && big && huge && theirs && libc);

    void *own[] = {small, big, huge};
    for (int i = 0; i < 3; i++) {
        cr_assert(sc_heap_owns(h, own[i]), "heap does not own its block %p", own[i]);
        cr_assert_not(sc_heap_owns(other, own[i]), "other heap claims %p", own[i]);
        cr_assert_eq(sc_heap_of(own[i]), h, "sc_heap_of(%p) = %p, expected %p", own[i],
                     (void *)sc_heap_of(own[i]), (void *)h);
    }
    cr_assert(sc_heap_owns(other, theirs));
    cr_assert_not(sc_heap_owns(h, theirs));
    cr_assert_eq(sc_heap_of(theirs), other);

    /* Pointers that no heap owns. */
    const void *strangers[] = {
        NULL,
        libc,
        &on_stack,
        (const void *)(uintptr_t)1,
        (const void *)(uintptr_t)0x1000,
        (const void *)(uintptr_t)UINTPTR_MAX,
        (const void *)((uintptr_t)UINTPTR_MAX - 4095),
        (const void *)(uintptr_t)0x7fffffffffffull,
        (const void *)rodata_text,
    };
    for (size_t i = 0; i < sizeof strangers / sizeof strangers[0]; i++) {
        cr_assert_not(sc_heap_owns(h, strangers[i]), "heap claims stranger %p", strangers[i]);
        cr_assert_null(sc_heap_of(strangers[i]), "sc_heap_of(%p) is not NULL", strangers[i]);
    }

    free(libc);
    sc_free(other, theirs);
    sc_free(h, small);
    sc_free(h, big);
    sc_free(h, huge);
    sc_heap_destroy(other);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* Ownership of any pointer value                                           */
/* ------------------------------------------------------------------------ */

static int a_global;

static void assert_foreign(sc_heap_t *h, sc_heap_t *other, const void *p, const char *what)
{
    cr_assert_null(sc_heap_of(p), "sc_heap_of(%s %p) = %p", what, p, (void *)sc_heap_of(p));
    cr_assert_not(sc_heap_owns(h, p), "heap owns %s %p", what, p);
    cr_assert_not(sc_heap_owns(other, p), "other heap owns %s %p", what, p);
}

Test(ownership, ownership_of_any_value, .timeout = 60)
{
    sc_heap_t *h = sc_heap_create(NULL);
    sc_heap_t *other = sc_heap_create(NULL);
    cr_assert(h && other);
    unsigned char *small = sc_alloc(h, 48);
    unsigned char *huge = sc_alloc(h, 9 * MiB + 5);
    unsigned char *giant_aligned = sc_aligned_alloc(h, GiB, 6 * MiB);
    void *theirs = sc_alloc(other, 48);
    cr_assert(small && huge && giant_aligned && theirs);

    /* Values that are no heap's. */
    int on_stack = 0;
    void *libc_small = malloc(32);
    void *libc_big = malloc(64 * MiB); /* an mmap of its own */
    cr_assert(libc_small && libc_big);
    const void *foreign[] = {
        NULL,
        (void *)1,
        (void *)16,
        (void *)4096,
        (void *)(uintptr_t)-1,
        (void *)(uintptr_t)-4096,
        (void *)(uintptr_t)0xdeadbeefdeadbeefull,
        (void *)(uintptr_t)0x00007fffffffffffull,
        (void *)(uintptr_t)0x0000800000000000ull, /* first non-canonical */
        (void *)(uintptr_t)0xffff800000000000ull, /* kernel half */
        (void *)(uintptr_t)0x8000000000000000ull,
        &on_stack,
        &a_global,
        libc_small,
        libc_big,
        (char *)libc_big + 33 * MiB,
        (const void *)(uintptr_t)&assert_foreign,
    };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++)
        assert_foreign(h, other, foreign[i], "foreign value");

    /* Every byte range of a huge block belongs to its heap: first, last,
     * and a pointer in every span and page boundary in between. */
    size_t usable = sc_usable_size(h, huge);
    for (size_t off = 0; off < usable; off += 64 * KiB) {
        cr_assert_eq(sc_heap_of(huge + off), h, "interior %zu of a huge block: %p", off,
                     (void *)sc_heap_of(huge + off));
        cr_assert(sc_heap_owns(h, huge + off));
        cr_assert_not(sc_heap_owns(other, huge + off));
    }
    cr_assert_eq(sc_heap_of(huge + usable - 1), h);
    usable = sc_usable_size(h, giant_aligned);
    for (size_t off = 0; off < usable; off += 256 * KiB)
        cr_assert_eq(sc_heap_of(giant_aligned + off), h);
    cr_assert_eq(sc_heap_of(small + 47), h);
    cr_assert_eq(sc_heap_of(theirs), other);

    /* Random words, and every 2 MiB around both heaps' blocks: never a
     * crash, and an answer is always one of the two live heaps. */
    test_rng_t rng = {0xabcdef};
    for (int i = 0; i < 200000; i++) {
        uint64_t w = test_rng_next(&rng);
        if (i % 2)
            w &= 0x00007fffffffffffull; /* user half, where heaps live */
        sc_heap_t *o = sc_heap_of((void *)(uintptr_t)w);
        cr_assert(o == NULL || o == h || o == other, "sc_heap_of(%#llx) = %p",
                  (unsigned long long)w, (void *)o);
        (void)sc_heap_owns(h, (void *)(uintptr_t)w);
    }
    const unsigned char *anchors[] = {small, huge, giant_aligned, theirs};
    for (size_t k = 0; k < 4; k++) {
        uintptr_t base = (uintptr_t)anchors[k];
        for (intptr_t d = -(intptr_t)(2 * GiB); d <= (intptr_t)(2 * GiB); d += 2 * MiB) {
            const void *p = (const void *)(base + (uintptr_t)d);
            sc_heap_t *o = sc_heap_of(p);
            cr_assert(o == NULL || o == h || o == other, "sc_heap_of(%p) = %p", p, (void *)o);
            (void)sc_heap_owns(other, p);
        }
    }

    /* A destroyed heap's range belongs to nobody (no heap was created
     * since, so nothing can have taken it over). */
    uintptr_t old[3] = {(uintptr_t)small, (uintptr_t)huge + 3 * MiB, (uintptr_t)giant_aligned};
    sc_heap_destroy(h);
    for (size_t k = 0; k < 3; k++) {
        cr_assert_null(sc_heap_of((void *)old[k]), "destroyed heap's address %#lx still "
                                                   "attributed to %p",
                       (unsigned long)old[k], (void *)sc_heap_of((void *)old[k]));
        cr_assert_not(sc_heap_owns(other, (void *)old[k]));
    }
    cr_assert_eq(sc_heap_of(theirs), other);
    free(libc_small);
    free(libc_big);
    sc_free(other, theirs);
    sc_heap_destroy(other);
}
