/*
 * Component test of the address map (lib/address_map.h; types.h, "THE
 * ADDRESS MAP"): the process-wide table of one word per 2 MiB that answers
 * sc_heap_of, sc_heap_owns and the free dispatcher without touching the
 * pointer's memory. Tested below the public API: words are read back with
 * address_map_get and decoded with address_map_heap. The public calls on
 * top of it are test_ownership.c.
 *
 * Checked here:
 *  - any pointer value is answered without a crash, before any heap exists
 *    and after: NULL, 1, -1, non-canonical and kernel addresses, everything
 *    above 2^47, stack, libc, globals, code; a sweep of the whole user
 *    address space finds only words of the one live heap, and every span
 *    of its region has one
 *                                                     [any_pointer_value]
 *  - every word kind, written with address_map_set_range / address_map_set_at, and the header table beside the words (span_at, span_base)
 *    into address space of the test's own: 0, heap | MAP_SPAN,
 *    heap | MAP_RESERVED, heap | MAP_HUGE_ALIGNED, and an untagged frontend
 *    word (whose heap the span header names), read back at the span's
 *    first, middle and last byte, decoded to the right heap, neighbours
 *    untouched                                      [every_word_kind_set]
 *  - the words a real heap writes: its hot span's untagged frontend word
 *    (plain heap) or heap | MAP_SPAN (checked and tracking heaps), a fresh
 *    arena span, the region descriptor and unbumped spans (MAP_RESERVED),
 *    a huge block's head and continuation, an over-aligned huge block's
 *    data span (MAP_HUGE_ALIGNED); all 0 after sc_heap_destroy
 *                                                  [every_word_kind_of_a_heap]
 *  - under an address-space limit (ulimit -v) too small for the whole span
 *    header table, the table covers a window and every region of every
 *    heap is placed inside it: blocks, huge blocks and their headers work
 *    as in the whole table                        [header_window_under_ulimit]
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "address_map.h"
#include "arena.h"
#include "invariants.h"
#include "os.h"
#include "test_util.h"

#define MiB ((size_t)1 << 20)

static int a_global;
static const char rodata_text[] = "no heap's";

/* A lookup of a that must find nothing: word 0, no heap. */
static void assert_no_word(uintptr_t a, const char *what)
{
    uintptr_t w = address_map_get(a);
    cr_assert_eq(w, 0, "%s %#lx: map word %#lx", what, (unsigned long)a, (unsigned long)w);
    cr_assert_null(address_map_heap(w, a), "%s %#lx has a heap", what, (unsigned long)a);
}

Test(component_address_map, any_pointer_value, .timeout = 60)
{
    int on_stack = 0;
    void *libc_small = malloc(32);
    void *libc_big = malloc(64 * MiB); /* an mmap of its own */
    cr_assert(libc_small && libc_big);
    const uintptr_t values[] = {
        0,
        1,
        16,
        4096,
        (uintptr_t)-1,
        (uintptr_t)-4096,
        (uintptr_t)0xdeadbeefdeadbeefull,
        (uintptr_t)0x00007fffffffffffull,     /* the last user byte */
        (uintptr_t)1 << ADDRESS_BITS,         /* the first above 2^47 */
        ((uintptr_t)1 << ADDRESS_BITS) + 1,
        (uintptr_t)1 << 50,
        (uintptr_t)0x0000800000000000ull,     /* first non-canonical */
        (uintptr_t)0x00ff000000000000ull,
        (uintptr_t)0xffff800000000000ull,     /* kernel half */
        (uintptr_t)0xffffffffff600000ull,     /* vsyscall page */
        (uintptr_t)0x8000000000000000ull,
        (uintptr_t)&on_stack,
        (uintptr_t)&a_global,
        (uintptr_t)rodata_text,
        (uintptr_t)&assert_no_word,
        (uintptr_t)libc_small,
        (uintptr_t)libc_big,
        (uintptr_t)libc_big + 33 * MiB,
    };
    const size_t count = sizeof values / sizeof values[0];
    /* Before any heap: the map may not even exist yet. */
    for (size_t i = 0; i < count; i++)
        assert_no_word(values[i], "before any heap:");

    cr_assert(address_map_init(), "the address map cannot be reserved");
    cr_assert(address_map_init(), "address_map_init is not idempotent");
    for (size_t i = 0; i < count; i++)
        assert_no_word(values[i], "map, no heap:");

    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    void *block = sc_alloc(h, 100);
    cr_assert_not_null(block);
    for (size_t i = 0; i < count; i++)
        assert_no_word(values[i], "one heap:");

    /* Every 2 MiB step of a stride through the whole user address space
     * (an odd number of spans, so the sweep hits every residue), and random
     * words: a word is 0 or the live heap's. */
    size_t found = 0;
    const uintptr_t stride = (uintptr_t)4099 << SPAN_SHIFT;
    for (uintptr_t a = 0; a < ((uintptr_t)1 << ADDRESS_BITS); a += stride) {
        uintptr_t w = address_map_get(a);
        if (w == 0)
            continue;
        found++;
        cr_assert_eq(address_map_heap(w, a), h, "%#lx: word %#lx of no live heap",
                     (unsigned long)a, (unsigned long)w);
    }
    test_rng_t rng = {0x5eed};
    for (int i = 0; i < 100000; i++) {
        uintptr_t a = (uintptr_t)test_rng_next(&rng);
        if (i % 2)
            a &= ((uintptr_t)1 << ADDRESS_BITS) - 1;
        uintptr_t w = address_map_get(a);
        if (a >> ADDRESS_BITS)
            cr_assert_eq(w, 0, "%#lx above the user address space has word %#lx",
                         (unsigned long)a, (unsigned long)w);
        else if (w != 0)
            cr_assert_eq(address_map_heap(w, a), h);
    }
    /* Densely around the heap's block: every span of its one region has a
     * word (a region is registered whole), nothing around it does. */
    size_t near = 0;
    uintptr_t centre = (uintptr_t)block & ~(uintptr_t)SPAN_MASK;
    for (uintptr_t a = centre - ((uintptr_t)1 << 30); a <= centre + ((uintptr_t)1 << 30);
         a += SPAN_SIZE) {
        uintptr_t w = address_map_get(a);
        if (w == 0)
            continue;
        near++;
        cr_assert_eq(address_map_heap(w, a), h, "%#lx: word %#lx of no live heap",
                     (unsigned long)a, (unsigned long)w);
    }
    size_t region_spans = test_stats(h).reserved_bytes / SPAN_SIZE;
    cr_log_info("sweep of the user address space: %zu words of the heap; within 1 GiB of its "
                "block %zu, its region has %zu spans",
                found, near, region_spans);
    cr_assert_eq(near, region_spans, "%zu words near the heap's block, its region has %zu spans",
                 near, region_spans);
    /* The heap's own block is found, of course. */
    cr_assert_eq(address_map_heap(address_map_get((uintptr_t)block), (uintptr_t)block), h);
    sc_free(h, block);
    sc_heap_destroy(h);
    free(libc_small);
    free(libc_big);
}

/* ------------------------------------------------------------------------ */
/* Words written by hand                                                    */
/* ------------------------------------------------------------------------ */

/* Stand-ins that are never dereferenced by the map: it only needs their
 * addresses (64-byte aligned, so the tag bits are free). */
static struct sc_heap_s fake_heap;
static _Alignas(CACHE_LINE) char fake_frontend[CACHE_LINE];

/* The word at the first, a middle and the last byte of the span at base. */
static void assert_span_word(uintptr_t base, uintptr_t want, struct sc_heap_s *heap,
                             const char *what)
{
    const uintptr_t at[] = {base, base + SPAN_SIZE / 2 + 8, base + SPAN_SIZE - 1};
    for (size_t i = 0; i < 3; i++) {
        uintptr_t w = address_map_get(at[i]);
        cr_assert_eq(w, want, "%s: word %#lx at %#lx, expected %#lx", what, (unsigned long)w,
                     (unsigned long)at[i], (unsigned long)want);
        cr_assert_eq(address_map_heap(w, at[i]), heap, "%s: heap %p at %#lx, expected %p", what,
                     (void *)address_map_heap(w, at[i]), (unsigned long)at[i], (void *)heap);
    }
}

Test(component_address_map, every_word_kind_set)
{
    enum { SPANS = 8 };
    cr_assert(address_map_init());
    cr_assert_eq((uintptr_t)&fake_heap & MAP_TAGS, 0);
    cr_assert_eq((uintptr_t)fake_frontend & MAP_TAGS, 0);
    /* Address space no heap knows about, with a span on either side that
     * must keep its word (0: nothing else maps there). */
    void *mapping = NULL;
    size_t mapping_size = 0;
    char *area = os_reserve_aligned((SPANS + 2) * SPAN_SIZE, SPAN_SIZE, false, &mapping,
                                    &mapping_size);
    cr_assert_not_null(area);
    uintptr_t base = (uintptr_t)area + SPAN_SIZE;
    uintptr_t before = base - SPAN_SIZE, after = base + SPANS * SPAN_SIZE;
    assert_span_word(before, 0, NULL, "below, untouched");
    for (size_t k = 0; k < SPANS; k++)
        assert_span_word(base + k * SPAN_SIZE, 0, NULL, "unregistered");

    /* A region: every word heap | MAP_RESERVED. Its spans' headers are in
     * the header table, found from any address in the span by arithmetic
     * and back, neighbours side by side. */
    uintptr_t reserved = (uintptr_t)&fake_heap | MAP_RESERVED;
    cr_assert(address_map_set_range((void *)base, SPANS * SPAN_SIZE, reserved));
    char *lo, *hi;
    bool windowed = address_map_window(&lo, &hi);
    if (windowed && ((char *)base < lo || (char *)after > hi)) {
        cr_assert(address_map_set_range((void *)base, SPANS * SPAN_SIZE, 0));
        os_unreserve(mapping, mapping_size);
        cr_skip_test("the header table covers a window (ulimit -v) that this area is not in");
    }
    cr_assert(address_map_headers_writable((void *)base, SPANS * SPAN_SIZE));
    span_t *first = span_at((void *)base);
    for (size_t k = 0; k < SPANS; k++) {
        span_t *h = span_at((void *)(base + k * SPAN_SIZE));
        cr_assert_eq(h, first + k, "span %zu: header %p, not %p (the headers side by side)", k,
                     (void *)h, (void *)(first + k));
        cr_assert_eq(span_at((void *)(base + k * SPAN_SIZE + SPAN_SIZE - 1)), h,
                     "span %zu: its last byte leads to another header", k);
        cr_assert_eq((uintptr_t)span_base(h), base + k * SPAN_SIZE, "span %zu: header %p leads back to %p", k,
                     (void *)h, (void *)span_base(h));
    }
    for (size_t k = 0; k < SPANS; k++)
        assert_span_word(base + k * SPAN_SIZE, reserved, &fake_heap, "range MAP_RESERVED");
    assert_span_word(before, 0, NULL, "below the range");
    assert_span_word(after, 0, NULL, "above the range");

    /* One word of each kind, one span each. The untagged (frontend) word
     * sends address_map_heap to the span header, which names the heap. */
    span_at((void *)(base + 3 * SPAN_SIZE))->heap = &fake_heap;
    const struct {
        uintptr_t word;
        struct sc_heap_s *heap;
        const char *what;
    } kinds[] = {
        {(uintptr_t)&fake_heap | MAP_SPAN, &fake_heap, "MAP_SPAN"},
        {(uintptr_t)&fake_heap | MAP_HUGE_ALIGNED, &fake_heap, "MAP_HUGE_ALIGNED"},
        {0, NULL, "0"},
        {(uintptr_t)fake_frontend, &fake_heap, "untagged frontend word"},
    };
    for (size_t k = 0; k < 4; k++)
        address_map_set_at((void *)(base + k * SPAN_SIZE), kinds[k].word);
    for (size_t k = 0; k < 4; k++)
        assert_span_word(base + k * SPAN_SIZE, kinds[k].word, kinds[k].heap, kinds[k].what);
    for (size_t k = 4; k < SPANS; k++)
        assert_span_word(base + k * SPAN_SIZE, reserved, &fake_heap, "left as MAP_RESERVED");
    assert_span_word(before, 0, NULL, "below the range");
    assert_span_word(after, 0, NULL, "above the range");
    /* The tag bits are the map's, the rest the pointer's. */
    cr_assert_eq(address_map_get(base) & MAP_TAGS, MAP_SPAN);
    cr_assert_eq(address_map_get(base + SPAN_SIZE) & MAP_TAGS, MAP_HUGE_ALIGNED);
    cr_assert_eq(address_map_get(base + 3 * SPAN_SIZE) & MAP_TAGS, 0);

    /* Cleared again, as arena_destroy does. */
    span_at((void *)(base + 3 * SPAN_SIZE))->heap = NULL;
    cr_assert(address_map_set_range((void *)base, SPANS * SPAN_SIZE, 0));
    for (size_t k = 0; k < SPANS; k++)
        assert_span_word(base + k * SPAN_SIZE, 0, NULL, "cleared");
    os_unreserve(mapping, mapping_size);
}

/* ------------------------------------------------------------------------ */
/* Words a heap writes                                                      */
/* ------------------------------------------------------------------------ */

static uintptr_t span_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)SPAN_MASK;
}

Test(component_address_map, every_word_kind_of_a_heap)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    uintptr_t span_word = (uintptr_t)h | MAP_SPAN;
    uintptr_t reserved_word = (uintptr_t)h | MAP_RESERVED;

    /* A plain heap's hot span: the owning frontend, untagged, which the
     * free fast path compares with its own. */
    void *small = sc_alloc(h, 64);
    cr_assert_not_null(small);
    sc_thread_t *t = sc_heap_thread(h);
    cr_assert_not_null(t);
    assert_span_word(span_of(small), (uintptr_t)t, h, "plain heap's hot span");

    /* Checked and tracking heaps keep every span on the slow path: their
     * hot spans are heap | MAP_SPAN. */
    static const unsigned slow_flags[] = {SC_HEAP_CHECKED, SC_HEAP_TRACK_REQUESTED};
    for (size_t f = 0; f < 2; f++) {
        sc_heap_config_t cfg = {.name = "slow", .flags = slow_flags[f]};
        sc_heap_t *slow = sc_heap_create(&cfg);
        cr_assert_not_null(slow);
        void *p = sc_alloc(slow, 64);
        cr_assert_not_null(p);
        assert_span_word(span_of(p), (uintptr_t)slow | MAP_SPAN, slow, "slow heap's hot span");
        sc_free(slow, p);
        sc_heap_destroy(slow);
    }

    /* A fresh span from the arena: a header, no owner. */
    span_t *fresh = arena_take_span(h);
    cr_assert_not_null(fresh);
    assert_span_word((uintptr_t)span_base(fresh), span_word, h, "fresh arena span");
    cr_assert_eq(span_at(span_base(fresh) + SPAN_SIZE / 2), fresh,
                 "the map leads from the span's memory to another header");
    /* Its header lies in the region's header table, not in the span. */
    region_t *hr = arena_region_of(h, span_base(fresh));
    cr_assert_not_null(hr);
    size_t k = (size_t)(span_base(fresh) - hr->base) / SPAN_SIZE;
    span_t *headers = span_at(hr->base);
    cr_assert_eq(fresh, &headers[k], "span %zu's header %p is not the table's %p", k,
                 (void *)fresh, (void *)&headers[k]);
    /* The small block's span too: the headers of neighbouring spans are
     * neighbours in the table. */
    cr_assert_eq(span_at(small), &headers[(size_t)(span_of(small) - (uintptr_t)hr->base) /
                                              SPAN_SIZE]);

    /* The region's descriptor span and its spans never bumped. */
    region_t *r = atomic_load(&h->regions);
    cr_assert_not_null(r);
    assert_span_word((uintptr_t)r->base, reserved_word, h, "region descriptor");
    char *bump = atomic_load(&r->bump);
    cr_assert_lt((uintptr_t)bump, (uintptr_t)r->base + r->size, "region already full");
    assert_span_word((uintptr_t)bump, reserved_word, h, "never bumped");
    assert_span_word((uintptr_t)r->base + r->size - SPAN_SIZE, reserved_word, h,
                     "region's last span");

    /* A huge block: its head span has the header, the spans after it are
     * covered by it without one. */
    unsigned char *huge = sc_alloc(h, 5 * MiB);
    cr_assert_not_null(huge);
    assert_span_word(span_of(huge), span_word, h, "huge head");
    assert_span_word(span_of(huge) + SPAN_SIZE, reserved_word, h, "huge continuation");
    assert_span_word(span_of(huge + 5 * MiB - 1), reserved_word, h, "huge last span");

    /* A huge block aligned to 2 MiB or more: its data starts a span after
     * its header, in a span marked MAP_HUGE_ALIGNED. */
    unsigned char *aligned = sc_aligned_alloc(h, 4 * MiB, MiB);
    cr_assert_not_null(aligned);
    cr_assert_eq((uintptr_t)aligned & SPAN_MASK, 0);
    assert_span_word((uintptr_t)aligned, (uintptr_t)h | MAP_HUGE_ALIGNED, h,
                     "over-aligned huge data");
    assert_span_word((uintptr_t)aligned - SPAN_SIZE, span_word, h, "over-aligned huge header");

    /* Destroy clears every word of the heap. */
    uintptr_t spans[] = {span_of(small),  (uintptr_t)span_base(fresh), (uintptr_t)r->base,
                         (uintptr_t)bump, span_of(huge),        span_of(huge) + SPAN_SIZE,
                         (uintptr_t)aligned, (uintptr_t)aligned - SPAN_SIZE};
    sc_heap_destroy(h);
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++)
        assert_span_word(spans[i], 0, NULL, "after destroy");
}

/* Under RLIMIT_AS the 16 GiB header table cannot be reserved: the table
 * covers a window as big as the limit, and regions go inside it. The map
 * is set up on the first heap's creation, so the limit must come first:
 * in a process of its own (Criterion forks each test). */
Test(component_address_map, header_window_under_ulimit, .timeout = 60)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_skip_test("a sanitizer's shadow memory needs more address space than the limit");
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    cr_skip_test("a sanitizer's shadow memory needs more address space than the limit");
#endif
#endif
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        cr_skip_test("valgrind keeps its own address space");
    if (address_map != NULL)
        cr_skip_test("the address map was set up before this test (tests not forked)");
    const size_t limit = (size_t)4000 << 20;
    struct rlimit old, rl;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    rl = old;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > limit)
        rl.rlim_cur = limit;
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    sc_heap_t *a = sc_heap_create(NULL), *b = sc_heap_create(NULL);
    cr_assert(a && b, "heaps refused under a %zu MiB limit", (size_t)rl.rlim_cur >> 20);
    char *lo, *hi;
    cr_assert(address_map_window(&lo, &hi), "the whole 16 GiB table fit under a 4000 MiB limit");
    cr_assert_leq((size_t)(hi - lo), (size_t)rl.rlim_cur + SPAN_SIZE);
    cr_log_info("window %p..%p (%zu MiB)", (void *)lo, (void *)hi, (size_t)(hi - lo) >> 20);

    enum { N = 3000 };
    static unsigned char *blocks[N];
    test_rng_t rng = {99};
    for (size_t i = 0; i < N; i++) {
        sc_heap_t *h = i % 2 ? a : b;
        size_t n = i % 500 == 7 ? (size_t)3 << 20 : 1 + test_mixed_size(&rng);
        blocks[i] = i % 700 == 3 ? sc_aligned_alloc(h, (size_t)4 << 20, n) : sc_alloc(h, n);
        cr_assert_not_null(blocks[i], "block %zu of %zu bytes", i, n);
        cr_assert((char *)blocks[i] >= lo && (char *)blocks[i] < hi,
                  "block %p outside the window", (void *)blocks[i]);
        cr_assert_eq(sc_heap_of(blocks[i]), h);
        memset(blocks[i], (int)(i & 0xff), n < 64 ? n : 64);
    }
    for (sc_heap_t *h = a; h; h = h == a ? b : NULL)
        for (region_t *r = atomic_load(&h->regions); r; r = r->next) {
            cr_assert(r->base >= lo && r->base + r->size <= hi, "region %p+%zu outside the window",
                      (void *)r->base, r->size);
            cr_assert_eq(span_base(span_at(r->base)), r->base);
        }
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(blocks[i][0], (unsigned char)(i & 0xff), "block %zu lost its contents", i);
        sc_free(i % 2 ? a : b, blocks[i]);
    }
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(a, &bad);
    cr_assert_null(broken, "%s (span %p)", broken, (void *)bad);
    sc_heap_destroy(a);
    sc_heap_destroy(b);
    setrlimit(RLIMIT_AS, &old);
}
