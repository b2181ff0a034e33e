/*
 * Misuse is reported, and nothing is corrupted: scalloc.h, "Errors"
 * (sc_error_t, sc_set_error_handler, sc_error_string) and the calls whose
 * comments name the misuse they report (sc_free, sc_thread_alloc /
 * sc_thread_free, sc_heap_destroy's destroyed handle; checked mode,
 * SC_HEAP_CHECKED in "Configuration"). How the free path classifies each
 * pointer is test_free_dispatch.c.
 *
 * Contract lines checked here, each with a recording handler that returns:
 *  - sc_free of a libc malloc pointer / a stack address / garbage
 *    -> SC_ERR_FOREIGN_POINTER                         [free_libc_pointer, free_stack_address,
 *                                                       free_garbage]
 *  - sc_free of another heap's block -> SC_ERR_OTHER_HEAP       [free_other_heaps_block]
 *  - sc_free of a pointer inside a block -> SC_ERR_INTERIOR_POINTER
 *                                                       [free_interior_pointer]
 *  - freeing the same block twice in a row -> SC_ERR_DOUBLE_FREE (the cheap
 *    case, always detected)                             [double_free_immediate]
 *  - checked mode detects any double free, also after other frees and from
 *    other threads                                      [checked_double_free_*]
 *  - a frontend used by a thread that does not own it -> SC_ERR_WRONG_THREAD
 *                                                       [wrong_thread_frontend]
 *  - using a destroyed heap handle -> SC_ERR_DESTROYED_HEAP  [destroyed_heap]
 *  - when the handler returns, the call does nothing: the heap's blocks,
 *    stats and later allocations are unaffected        [every test above]
 *  - the handler hears the call name and the heap name  [handler_arguments]
 *  - the default handler aborts                          [default_handler_aborts]
 *  - every error has a description                       [error_strings]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "test_util.h"

static test_error_log_t errlog;

static void install(void)
{
    test_error_log_install(&errlog);
}

static void restore(void)
{
    sc_set_error_handler(NULL, NULL);
}

TestSuite(errors, .init = install, .fini = restore);

/* Checks that exactly one error of kind `want` about pointer `p` was
 * reported since the last clear. */
static void expect_one_error(sc_error_t want, const void *p, const char *what)
{
    int n = atomic_load(&errlog.count);
    cr_assert_eq(n, 1, "%s: handler called %d times, expected once", what, n);
    cr_assert_eq(errlog.last_err, want, "%s: reported %d (%s), expected %d (%s)", what,
                 (int)errlog.last_err, sc_error_string(errlog.last_err), (int)want,
                 sc_error_string(want));
    cr_assert_eq(errlog.last_p, p, "%s: reported pointer %p, expected %p", what, errlog.last_p,
                 p);
    test_error_log_clear(&errlog);
}

/* A heap with some patterned live blocks, to show that misuse changed
 * nothing: the blocks keep their contents, stats keep their counts, and new
 * allocations do not overlap old ones. */
typedef struct witness_s {
    sc_heap_t *heap;
    void *blocks[64];
    size_t live_before;
} witness_t;

static void witness_start(witness_t *w, sc_heap_t *h)
{
    w->heap = h;
    for (size_t i = 0; i < 64; i++) {
        size_t n = 16 + i * 40;
        w->blocks[i] = sc_alloc(h, n);
        cr_assert_not_null(w->blocks[i]);
        test_pattern_fill(w->blocks[i], n, i + 1);
    }
    w->live_before = test_stats(h).live_blocks;
}

static void witness_check(witness_t *w, const char *what)
{
    for (size_t i = 0; i < 64; i++) {
        size_t bad = test_pattern_check(w->blocks[i], 16 + i * 40, i + 1);
        cr_assert_eq(bad, TEST_PATTERN_OK, "%s: live block %zu corrupted at %zu", what, i, bad);
    }
    size_t live = test_stats(w->heap).live_blocks;
    cr_assert_eq(live, w->live_before, "%s: live blocks went from %zu to %zu", what,
                 w->live_before, live);
    /* New blocks must not coincide with live ones (a corrupted free list
     * would hand a live block out again). */
    enum { FRESH = 256 };
    void *fresh[FRESH];
    for (size_t i = 0; i < FRESH; i++) {
        fresh[i] = sc_alloc(w->heap, 16 + (i % 64) * 40);
        cr_assert_not_null(fresh[i]);
        for (size_t k = 0; k < 64; k++)
            cr_assert_neq(fresh[i], w->blocks[k], "%s: live block %zu handed out again", what,
                          k);
        for (size_t k = 0; k < i; k++)
            cr_assert_neq(fresh[i], fresh[k], "%s: block %p handed out twice", what, fresh[i]);
    }
    for (size_t i = 0; i < FRESH; i++)
        sc_free(w->heap, fresh[i]);
    cr_assert_eq(atomic_load(&errlog.count), 0, "%s: errors while checking the heap", what);
}

static void witness_end(witness_t *w)
{
    for (size_t i = 0; i < 64; i++)
        sc_free(w->heap, w->blocks[i]);
    cr_assert_eq(test_stats(w->heap).live_blocks, w->live_before - 64);
}

Test(errors, free_libc_pointer)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    witness_t w;
    witness_start(&w, h);
    void *libc = malloc(64);
    cr_assert_not_null(libc);
    sc_free(h, libc);
    expect_one_error(SC_ERR_FOREIGN_POINTER, libc, "libc pointer");
    /* Through an explicit frontend too. */
    sc_thread_free(sc_heap_thread(h), libc);
    expect_one_error(SC_ERR_FOREIGN_POINTER, libc, "libc pointer via frontend");
    free(libc); /* still libc's: the misuse did nothing to it */
    witness_check(&w, "after freeing a libc pointer");
    witness_end(&w);
    sc_heap_destroy(h);
}

Test(errors, free_stack_address)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    witness_t w;
    witness_start(&w, h);
    char on_stack[64];
    memset(on_stack, 'x', sizeof on_stack);
    sc_free(h, on_stack);
    expect_one_error(SC_ERR_FOREIGN_POINTER, on_stack, "stack address");
    sc_free(h, on_stack + 16);
    expect_one_error(SC_ERR_FOREIGN_POINTER, on_stack + 16, "stack address + 16");
    for (size_t i = 0; i < sizeof on_stack; i++)
        cr_assert_eq(on_stack[i], 'x', "sc_free wrote into the stack buffer");
    witness_check(&w, "after freeing a stack address");
    witness_end(&w);
    sc_heap_destroy(h);
}

Test(errors, free_garbage)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    witness_t w;
    witness_start(&w, h);
    static const uintptr_t garbage[] = {
        16, 0x1000, 0xdeadbeef0, (uintptr_t)0x7ffffffff000ull, UINTPTR_MAX - 15,
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        void *p = (void *)garbage[i];
        sc_free(h, p);
        expect_one_error(SC_ERR_FOREIGN_POINTER, p, "garbage pointer");
    }
    witness_check(&w, "after freeing garbage");
    witness_end(&w);
    sc_heap_destroy(h);
}

Test(errors, free_other_heaps_block)
{
    sc_heap_config_t ca = {.name = "mine"}, cb = {.name = "theirs"};
    sc_heap_t *h = sc_heap_create(&ca);
    sc_heap_t *other = sc_heap_create(&cb);
    cr_assert_not_null(h);
    cr_assert_not_null(other);
    witness_t w, wo;
    witness_start(&w, h);
    witness_start(&wo, other);
    void *small = sc_alloc(other, 48);
    void *huge = sc_alloc(other, 3u << 20);
    cr_assert(small && huge);
    test_pattern_fill(small, 48, 5);

    sc_free(h, small);
    expect_one_error(SC_ERR_OTHER_HEAP, small, "other heap's small block");
    sc_free(h, huge);
    expect_one_error(SC_ERR_OTHER_HEAP, huge, "other heap's huge block");

    /* Still live and intact in their own heap. */
    cr_assert_eq(test_pattern_check(small, 48, 5), TEST_PATTERN_OK);
    cr_assert_eq(test_stats(other).live_blocks, 64 + 2);
    sc_free(other, small);
    sc_free(other, huge);
    cr_assert_eq(atomic_load(&errlog.count), 0, "the real owner's free was reported");
    witness_check(&w, "freeing heap");
    witness_check(&wo, "owning heap");
    witness_end(&w);
    witness_end(&wo);
    sc_heap_destroy(other);
    sc_heap_destroy(h);
}

Test(errors, free_interior_pointer)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    witness_t w;
    witness_start(&w, h);
    unsigned char *small = sc_alloc(h, 64);
    unsigned char *big = sc_alloc(h, 100000);
    unsigned char *huge = sc_alloc(h, 5u << 20);
    cr_assert(small && big && huge);
    test_pattern_fill(small, 64, 1);
    test_pattern_fill(big, 100000, 2);

    const struct {
        unsigned char *p;
        const char *what;
    } cases[] = {
        {small + 16, "small + 16"},   {small + 1, "small + 1"},
        {small + 63, "small + 63"},   {big + 16, "big + 16"},
        {big + 4096, "big + 4096"},   {big + 99999, "big + 99999"},
        {huge + 16, "huge + 16"},     {huge + (2u << 20), "huge + 2 MiB"},
        {huge + (5u << 20) - 1, "huge last byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_free(h, cases[i].p);
        expect_one_error(SC_ERR_INTERIOR_POINTER, cases[i].p, cases[i].what);
    }
    /* The blocks were not freed (the call did nothing). */
    cr_assert_eq(test_pattern_check(small, 64, 1), TEST_PATTERN_OK);
    cr_assert_eq(test_pattern_check(big, 100000, 2), TEST_PATTERN_OK);
    cr_assert_eq(test_stats(h).live_blocks, 64 + 3);
    sc_free(h, small);
    sc_free(h, big);
    sc_free(h, huge);
    cr_assert_eq(atomic_load(&errlog.count), 0);
    witness_check(&w, "after interior frees");
    witness_end(&w);
    sc_heap_destroy(h);
}

Test(errors, double_free_immediate)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    witness_t w;
    witness_start(&w, h);
    static const size_t sizes[] = {16, 100, 1000, 50000, 900000, 3u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = sc_alloc(h, sizes[i]);
        cr_assert_not_null(p);
        sc_free(h, p);
        cr_assert_eq(atomic_load(&errlog.count), 0);
        sc_free(h, p);
        char what[64];
        snprintf(what, sizeof what, "immediate double free of a %zu-byte block", sizes[i]);
        expect_one_error(SC_ERR_DOUBLE_FREE, p, what);
        /* The block is free once, not twice: the next two allocations of
         * that size are distinct. */
        void *a = sc_alloc(h, sizes[i]);
        void *b = sc_alloc(h, sizes[i]);
        cr_assert(a && b);
        cr_assert_neq(a, b, "double free of %zu-byte block handed it out twice", sizes[i]);
        sc_free(h, a);
        sc_free(h, b);
        cr_assert_eq(atomic_load(&errlog.count), 0);
    }
    /* Through an explicit frontend too. */
    sc_thread_t *t = sc_heap_thread(h);
    void *p = sc_thread_alloc(t, 32);
    cr_assert_not_null(p);
    sc_thread_free(t, p);
    sc_thread_free(t, p);
    expect_one_error(SC_ERR_DOUBLE_FREE, p, "immediate double free via frontend");
    witness_check(&w, "after double frees");
    witness_end(&w);
    sc_heap_destroy(h);
}

Test(errors, checked_double_free_later)
{
    sc_heap_config_t cfg = {.name = "checked", .flags = SC_HEAP_CHECKED};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    witness_t w;
    witness_start(&w, h);
    /* Free a, then others of the same class, then a again: a is no longer
     * at the head of any list, which only checked mode must catch. */
    void *blocks[10];
    for (int i = 0; i < 10; i++) {
        blocks[i] = sc_alloc(h, 80);
        cr_assert_not_null(blocks[i]);
    }
    for (int i = 0; i < 10; i++)
        sc_free(h, blocks[i]);
    sc_free(h, blocks[3]);
    expect_one_error(SC_ERR_DOUBLE_FREE, blocks[3], "checked: double free after other frees");
    /* After the report the class still hands out distinct blocks. */
    void *again[20];
    for (int i = 0; i < 20; i++) {
        again[i] = sc_alloc(h, 80);
        cr_assert_not_null(again[i]);
        for (int k = 0; k < i; k++)
            cr_assert_neq(again[i], again[k], "block %p handed out twice", again[i]);
    }
    for (int i = 0; i < 20; i++)
        sc_free(h, again[i]);
    witness_check(&w, "checked heap after double free");
    witness_end(&w);
    sc_heap_destroy(h);
}

typedef struct remote_free_arg_s {
    sc_heap_t *heap;
    void *p;
} remote_free_arg_t;

static void *remote_free_main(void *arg)
{
    remote_free_arg_t *a = arg;
    sc_free(a->heap, a->p);
    return NULL;
}

static void free_on_other_thread(sc_heap_t *h, void *p)
{
    remote_free_arg_t a = {h, p};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, remote_free_main, &a), 0);
    pthread_join(t, NULL);
}

Test(errors, checked_double_free_remote)
{
    sc_heap_config_t cfg = {.name = "checked", .flags = SC_HEAP_CHECKED};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    witness_t w;
    witness_start(&w, h);
    void *keep = sc_alloc(h, 200); /* keeps the span from going free */
    void *p = sc_alloc(h, 200);
    cr_assert(keep && p);
    /* Freed remotely, then freed again remotely, then locally. */
    free_on_other_thread(h, p);
    cr_assert_eq(atomic_load(&errlog.count), 0);
    free_on_other_thread(h, p);
    expect_one_error(SC_ERR_DOUBLE_FREE, p, "checked: remote double free");
    sc_free(h, p);
    expect_one_error(SC_ERR_DOUBLE_FREE, p, "checked: local free after remote free");
    sc_free(h, keep);
    witness_check(&w, "checked heap after remote double frees");
    witness_end(&w);
    sc_heap_destroy(h);
}

typedef struct wrong_thread_arg_s {
    sc_thread_t *frontend;
    void *block;
    void *allocated;
} wrong_thread_arg_t;

static void *wrong_thread_main(void *arg)
{
    wrong_thread_arg_t *a = arg;
    a->allocated = sc_thread_alloc(a->frontend, 64);
    sc_thread_free(a->frontend, a->block);
    return NULL;
}

Test(errors, wrong_thread_frontend)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    witness_t w;
    witness_start(&w, h);
    sc_thread_t *mine = sc_heap_thread(h);
    cr_assert_not_null(mine);
    void *block = sc_thread_alloc(mine, 64);
    cr_assert_not_null(block);
    test_pattern_fill(block, 64, 9);

    wrong_thread_arg_t a = {mine, block, (void *)&a};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wrong_thread_main, &a), 0);
    pthread_join(t, NULL);
    int n = atomic_load(&errlog.count);
    cr_assert_eq(n, 2, "wrong-thread alloc + free reported %d errors, expected 2", n);
    cr_assert_eq(errlog.last_err, SC_ERR_WRONG_THREAD, "reported %s",
                 sc_error_string(errlog.last_err));
    cr_assert_null(a.allocated, "sc_thread_alloc from the wrong thread returned a block");
    test_error_log_clear(&errlog);
    /* The free did nothing: the block is live and intact. */
    cr_assert_eq(test_pattern_check(block, 64, 9), TEST_PATTERN_OK);
    cr_assert_eq(test_stats(h).live_blocks, 64 + 1);
    sc_thread_free(mine, block);
    witness_check(&w, "after wrong-thread use");
    witness_end(&w);
    sc_heap_destroy(h);
}

Test(errors, destroyed_heap)
{
    sc_heap_t *keep = sc_heap_create(NULL);
    cr_assert_not_null(keep);
    witness_t w;
    witness_start(&w, keep);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    void *p = sc_alloc(h, 32);
    cr_assert_not_null(p);
    sc_heap_destroy(h);

    errno = 0;
    void *q = sc_alloc(h, 32);
    cr_assert_null(q, "sc_alloc on a destroyed heap returned %p", q);
    cr_assert_eq(atomic_load(&errlog.count), 1, "sc_alloc on a destroyed heap: %d reports",
                 atomic_load(&errlog.count));
    cr_assert_eq(errlog.last_err, SC_ERR_DESTROYED_HEAP, "reported %s",
                 sc_error_string(errlog.last_err));
    test_error_log_clear(&errlog);

    sc_free(h, p);
    cr_assert_eq(atomic_load(&errlog.count), 1, "sc_free on a destroyed heap: %d reports",
                 atomic_load(&errlog.count));
    cr_assert_eq(errlog.last_err, SC_ERR_DESTROYED_HEAP, "reported %s",
                 sc_error_string(errlog.last_err));
    test_error_log_clear(&errlog);
    witness_check(&w, "other heap after use of a destroyed one");
    witness_end(&w);
    sc_heap_destroy(keep);
}

Test(errors, handler_arguments)
{
    sc_heap_config_t cfg = {.name = "named-heap"};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    void *libc = malloc(16);
    sc_free(h, libc);
    cr_assert_eq(atomic_load(&errlog.count), 1);
    cr_assert_str_eq(errlog.last_call, "sc_free");
    cr_assert_str_eq(errlog.last_heap, "named-heap");
    free(libc);
    sc_heap_destroy(h);
}

Test(errors, error_strings)
{
    for (int e = SC_ERR_NONE; e <= SC_ERR_CORRUPTION; e++) {
        const char *s = sc_error_string((sc_error_t)e);
        cr_assert_not_null(s, "no description for error %d", e);
        cr_assert_gt(strlen(s), 0, "empty description for error %d", e);
        for (int k = SC_ERR_NONE; k < e; k++)
            cr_assert_str_neq(s, sc_error_string((sc_error_t)k),
                              "errors %d and %d share a description", k, e);
    }
}

/* The default handler: one line on stderr, then abort. The suite's .init
 * installs a recording handler, so this test lives in its own suite. */
Test(errors_default, default_handler_aborts, .signal = SIGABRT)
{
    sc_set_error_handler(NULL, NULL);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    int on_stack = 0;
    sc_free(h, &on_stack);
    /* Not reached when the default handler aborts. */
    sc_heap_destroy(h);
}

Test(errors_default, default_handler_aborts_on_double_free, .signal = SIGABRT)
{
    sc_set_error_handler(NULL, NULL);
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    void *p = sc_alloc(h, 24);
    cr_assert_not_null(p);
    sc_free(h, p);
    sc_free(h, p);
    sc_heap_destroy(h);
}
