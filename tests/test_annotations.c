/*
 * Memory checkers see scalloc blocks as they see malloc's: the misuse that
 * scalloc.h's "Errors" leaves to them (a use after free or an overflow
 * touches memory, not a call, so no handler can hear it), in the builds
 * the README's "Errors and checking" describes.
 *
 * Contract lines checked here (ASan builds, -DSCALLOC_SANITIZE=address,...):
 *  - a read or write of a freed block is reported            [use_after_free]
 *  - a write past the end of a block into a free neighbour
 *    is reported                                             [overflow_into_free]
 *  - blocks of a destroyed or reset heap are off limits      [reset_poisons]
 *  - a block handed out again is fully usable (no false
 *    reports from the allocator's own free-list links)       [reuse_is_clean]
 * In builds without ASan each case is skipped. The valgrind variant of the
 * same checks runs from tests/memcheck/run.sh.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <scalloc/scalloc.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

#ifdef HAVE_ASAN
#define ASAN_ONLY .disabled = 0
#else
#define ASAN_ONLY .disabled = 1
#endif

/* ASan exits with status 1 on its first report (halt_on_error). */
Test(annotations, use_after_free, .exit_code = 1, ASAN_ONLY)
{
    sc_heap_t *h = sc_heap_create(NULL);
    char *p = sc_alloc(h, 64);
    memset(p, 1, 64);
    sc_free(h, p);
    volatile char *q = p;
    q[40] = 2; /* reported here */
    cr_assert_fail("use after free went unreported");
}

Test(annotations, overflow_into_free, .exit_code = 1, ASAN_ONLY)
{
    sc_heap_t *h = sc_heap_create(NULL);
    /* The first block of a fresh span: its neighbour is never-used. */
    char *p = sc_alloc(h, 48);
    size_t n = sc_usable_size(h, p);
    volatile char *q = p;
    q[n] = 1; /* one past the end: reported */
    cr_assert_fail("write past the end went unreported");
}

Test(annotations, reset_poisons, .exit_code = 1, ASAN_ONLY)
{
    sc_heap_config_t cfg = {.reset_keep_bytes = (size_t)1 << 20};
    sc_heap_t *h = sc_heap_create(&cfg);
    char *p = sc_alloc(h, 100);
    memset(p, 1, 100);
    sc_heap_reset(h);
    volatile char *q = p;
    q[50] = 2; /* the block was released by reset: reported */
    cr_assert_fail("use after reset went unreported");
}

Test(annotations, reuse_is_clean, ASAN_ONLY)
{
    sc_heap_t *h = sc_heap_create(NULL);
    enum { N = 5000 };
    static char *blocks[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            size_t n = (size_t)(i % 700) * 13 + 1;
            blocks[i] = sc_alloc(h, n);
            cr_assert_not_null(blocks[i]);
            memset(blocks[i], i & 0xff, sc_usable_size(h, blocks[i]));
        }
        for (int i = 0; i < N; i += 2)
            sc_free(h, blocks[i]);
        for (int i = 0; i < N; i += 2) {
            blocks[i] = sc_realloc(h, NULL, 3000 + (size_t)i);
            memset(blocks[i], 1, 3000 + (size_t)i);
        }
        for (int i = 0; i < N; i++)
            sc_free(h, blocks[i]);
    }
    void *big = sc_alloc(h, (size_t)5 << 20);
    memset(big, 3, (size_t)5 << 20);
    big = sc_realloc(h, big, (size_t)9 << 20);
    memset(big, 4, (size_t)9 << 20);
    sc_free(h, big);
    sc_heap_trim(h);
    sc_heap_destroy(h);
}
