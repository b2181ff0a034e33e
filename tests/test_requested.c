/*
 * Exact requested bytes: scalloc.h, "Configuration" (SC_HEAP_TRACK_REQUESTED,
 * SC_HEAP_CHECKED, unknown flags) and "Introspection" (requested_bytes and
 * requested_exact in sc_heap_stats_t, sc_heap_print_stats): tracking and
 * checked heaps, and what plain heaps report instead.
 *
 * Contract lines checked here:
 *  - a tracking heap's requested_bytes is the sum of the sizes asked for,
 *    for every class (1-, 2- and 4-byte table entries) and for huge blocks,
 *    after allocations and after frees                      [exact_*]
 *  - sc_calloc counts count * size, sc_aligned_alloc counts the size, not
 *    the bigger class it picked, and sc_realloc in place counts the new
 *    size                                                   [api_*]
 *  - blocks allocated by threads that exited, and freed later by others,
 *    keep the sum exact; frees from other threads too        [threads_*]
 *  - after sc_heap_reset the sum is zero and exact again     [reset]
 *  - plain heaps say the figure is not exact and count class blocks at
 *    their usable size; huge blocks exactly                  [plain]
 *  - checked heaps track; SCALLOC_TRACK_REQUESTED=1 turns tracking on;
 *    an unknown flag is refused with EINVAL                  [flags_*]
 *  - text and JSON output carry the figure and whether it is exact
 *                                                            [print]
 *  - a tracking (and checked) heap commits no more than a plain heap plus
 *    a page per span for the same blocks           [commit_like_plain_heap]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define MiB ((size_t)1 << 20)

static sc_heap_t *tracking_heap(const char *name)
{
    sc_heap_config_t cfg = {.name = name, .flags = SC_HEAP_TRACK_REQUESTED};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    return h;
}

static void assert_requested(sc_heap_t *h, size_t want, const char *when)
{
    sc_heap_stats_t st = test_stats(h);
    cr_assert(st.requested_exact, "%s: requested_exact is 0", when);
    cr_assert_eq(st.requested_bytes, want, "%s: requested_bytes %zu, asked for %zu", when,
                 st.requested_bytes, want);
}

/* Sizes across every class width: 0, odd sizes below 256 (1-byte
 * entries), 256..64 KiB (2 bytes), above (4 bytes), and huge. */
static const size_t sizes[] = {0,     1,      15,     16,      17,         100,
                               255,   256,    257,    1000,    4097,       65535,
                               65536, 65537,  200000, 1000000, SC_MAX_CLASS_SIZE,
                               SC_MAX_CLASS_SIZE + 1, 3 * MiB + 5};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Three blocks of every size in sizes[]; requested_bytes after allocating,
 * after freeing the middle copy of each (its neighbours' entries stay) and
 * when empty. */
static void check_every_width(sc_heap_t *h, const char *what)
{
    enum { COPIES = 3 };
    void *p[NSIZES][COPIES];
    size_t want = 0;
    for (size_t i = 0; i < NSIZES; i++)
        for (int k = 0; k < COPIES; k++) {
            p[i][k] = sc_alloc(h, sizes[i]);
            cr_assert_not_null(p[i][k], "%s: sc_alloc(%zu)", what, sizes[i]);
            memset(p[i][k], 0xab, sizes[i]);
            want += sizes[i];
        }
    char when[96];
    snprintf(when, sizeof when, "%s, after allocating", what);
    assert_requested(h, want, when);
    for (size_t i = 0; i < NSIZES; i++) {
        sc_free(h, p[i][1]);
        want -= sizes[i];
    }
    snprintf(when, sizeof when, "%s, after freeing one copy of each", what);
    assert_requested(h, want, when);
    for (size_t i = 0; i < NSIZES; i++)
        for (int k = 0; k < COPIES; k += 2)
            sc_free(h, p[i][k]);
    snprintf(when, sizeof when, "%s, after freeing all", what);
    assert_requested(h, 0, when);
}

Test(requested, exact_every_width)
{
    sc_heap_t *h = tracking_heap("requested");
    check_every_width(h, "tracking heap");
    sc_heap_destroy(h);
}

/* Many blocks of one small class: the table entries of a whole span, its
 * blocks reused with other sizes after being freed. */
Test(requested, exact_reused_blocks)
{
    sc_heap_t *h = tracking_heap("requested-reuse");
    enum { N = 5000 };
    static void *p[N];
    static size_t n[N];
    test_rng_t rng = {42};
    size_t want = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            if (p[i]) {
                sc_free(h, p[i]);
                want -= n[i];
            }
            n[i] = test_rng_range(&rng, 17, 32); /* one class, slack 0..15 */
            p[i] = sc_alloc(h, n[i]);
            cr_assert_not_null(p[i]);
            want += n[i];
        }
        assert_requested(h, want, "after a round");
    }
    for (int i = 0; i < N; i++)
        sc_free(h, p[i]);
    assert_requested(h, 0, "empty");
    sc_heap_destroy(h);
}

Test(requested, api_calloc_aligned_realloc)
{
    sc_heap_t *h = tracking_heap("requested-api");
    void *c = sc_calloc(h, 7, 9); /* 63 bytes */
    cr_assert_not_null(c);
    assert_requested(h, 63, "calloc");
    void *a = sc_aligned_alloc(h, 128, 20); /* a 128-byte class block */
    cr_assert_not_null(a);
    cr_assert_eq((uintptr_t)a % 128, 0);
    cr_assert_geq(sc_usable_size(h, a), 128);
    assert_requested(h, 63 + 20, "aligned");
    void *big = sc_aligned_alloc(h, 4 * MiB, 1000); /* huge for its alignment */
    cr_assert_not_null(big);
    assert_requested(h, 63 + 20 + 1000, "aligned huge");
    void *r = sc_alloc(h, 1000);
    cr_assert_not_null(r);
    size_t usable = sc_usable_size(h, r);
    void *r2 = sc_realloc(h, r, usable); /* grows in place to the whole block */
    cr_assert_eq(r2, r);
    assert_requested(h, 63 + 20 + 1000 + usable, "realloc grown in place");
    r2 = sc_realloc(h, r, usable / 2 + 1); /* shrinks in place */
    cr_assert_eq(r2, r);
    assert_requested(h, 63 + 20 + 1000 + usable / 2 + 1, "realloc shrunk in place");
    void *moved = sc_realloc(h, r, 100000); /* moves */
    cr_assert_not_null(moved);
    assert_requested(h, 63 + 20 + 1000 + 100000, "realloc moved");
    void *z = sc_realloc(h, moved, 0); /* a fresh 0-byte block */
    cr_assert_not_null(z);
    assert_requested(h, 63 + 20 + 1000, "realloc to 0");
    sc_free(h, z);
    sc_free(h, c);
    sc_free(h, a);
    sc_free(h, big);
    assert_requested(h, 0, "empty");
    sc_heap_destroy(h);
}

/* Threads allocate blocks of odd sizes and exit with them live; the main
 * thread frees them (into detached spans), and a second wave frees blocks
 * the main thread allocated (remote frees into its hot spans). */
enum { THREADS = 4, PER_THREAD = 3000 };

typedef struct wave_s {
    sc_heap_t *heap;
    void **blocks;
    size_t *sizes;
    unsigned seed;
} wave_t;

static void *allocate_and_exit(void *arg)
{
    wave_t *w = arg;
    test_rng_t rng = {w->seed};
    for (int i = 0; i < PER_THREAD; i++) {
        w->sizes[i] = test_mixed_size(&rng) % 5000;
        w->blocks[i] = sc_alloc(w->heap, w->sizes[i]);
        if (w->blocks[i] == NULL)
            return (void *)1;
    }
    return NULL;
}

static void *free_all(void *arg)
{
    wave_t *w = arg;
    for (int i = 0; i < PER_THREAD; i++)
        sc_free(w->heap, w->blocks[i]);
    return NULL;
}

Test(requested, threads_exit_and_remote_frees)
{
    sc_heap_t *h = tracking_heap("requested-threads");
    static void *blocks[THREADS][PER_THREAD];
    static size_t bsizes[THREADS][PER_THREAD];
    wave_t waves[THREADS];
    pthread_t tid[THREADS];
    size_t want = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        waves[t] = (wave_t){h, blocks[t], bsizes[t], 100 + t};
        cr_assert_eq(pthread_create(&tid[t], NULL, allocate_and_exit, &waves[t]), 0);
    }
    for (unsigned t = 0; t < THREADS; t++) {
        void *ret;
        pthread_join(tid[t], &ret);
        cr_assert_null(ret, "thread %u could not allocate", t);
        for (int i = 0; i < PER_THREAD; i++)
            want += bsizes[t][i];
    }
    assert_requested(h, want, "after the threads exited");
    /* Half of each exited thread's blocks freed here. */
    for (unsigned t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i += 2) {
            sc_free(h, blocks[t][i]);
            want -= bsizes[t][i];
            blocks[t][i] = sc_alloc(h, bsizes[t][i] / 2 + 3);
            cr_assert_not_null(blocks[t][i]);
            bsizes[t][i] = bsizes[t][i] / 2 + 3;
            want += bsizes[t][i];
        }
    assert_requested(h, want, "after freeing and reallocating in the main thread");
    /* Everything freed by other threads. */
    for (unsigned t = 0; t < THREADS; t++)
        cr_assert_eq(pthread_create(&tid[t], NULL, free_all, &waves[t]), 0);
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    assert_requested(h, 0, "after other threads freed everything");
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.live_blocks, 0);
    sc_heap_destroy(h);
}

Test(requested, reset)
{
    sc_heap_t *h = tracking_heap("requested-reset");
    for (int i = 0; i < 1000; i++)
        cr_assert_not_null(sc_alloc(h, (size_t)i % 300 + 1));
    cr_assert_not_null(sc_alloc(h, 2 * MiB + 1));
    sc_heap_reset(h);
    assert_requested(h, 0, "after reset");
    void *p = sc_alloc(h, 77);
    void *q = sc_alloc(h, 5 * MiB + 3);
    cr_assert_not_null(p);
    cr_assert_not_null(q);
    assert_requested(h, 77 + 5 * MiB + 3, "allocating after reset");
    sc_free(h, p);
    sc_free(h, q);
    assert_requested(h, 0, "empty after reset");
    sc_heap_destroy(h);
}

Test(requested, plain)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    void *a = sc_alloc(h, 17);       /* a 32-byte block */
    void *b = sc_alloc(h, 3 * MiB + 1);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    sc_heap_stats_t st = test_stats(h);
    cr_assert_eq(st.requested_exact, 0);
    cr_assert_eq(st.requested_bytes, sc_usable_size(h, a) + 3 * MiB + 1);
    sc_free(h, a);
    sc_free(h, b);
    st = test_stats(h);
    cr_assert_eq(st.requested_bytes, 0);
    sc_heap_destroy(h);
}

/* The table costs its own bytes, not the span's: a tracking heap commits
 * as carving goes, like a plain heap. One block of every class in each kind
 * of heap: the tracking heap may commit at most one page more per span
 * (its table, and the page the blocks are pushed onto), not whole real
 * spans (up to 2 MiB each for the big classes). */
static void one_block_per_class(sc_heap_t *h, void **blocks)
{
    for (unsigned c = 0; c < SC_NUM_CLASSES; c++) {
        size_t bs = test_stats(h).classes[c].block_size;
        blocks[c] = bs ? sc_alloc(h, bs) : NULL;
        cr_assert(bs == 0 || blocks[c] != NULL, "class %u (%zu bytes)", c, bs);
    }
}

Test(requested, commit_like_plain_heap)
{
    static void *plain_blocks[SC_NUM_CLASSES], *tracked_blocks[SC_NUM_CLASSES];
    sc_heap_t *plain = sc_heap_create(NULL);
    cr_assert_not_null(plain);
    sc_heap_config_t cfg = {.name = "tracked", .flags = SC_HEAP_TRACK_REQUESTED | SC_HEAP_CHECKED};
    sc_heap_t *tracked = sc_heap_create(&cfg);
    cr_assert_not_null(tracked);
    one_block_per_class(plain, plain_blocks);
    one_block_per_class(tracked, tracked_blocks);
    sc_heap_stats_t p = test_stats(plain), t = test_stats(tracked);
    size_t spans = t.spans_hot + t.spans_floating + t.spans_reusable;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    cr_assert_gt(spans, 40, "one span per class: %zu", spans);
    cr_assert_leq(t.committed_bytes, p.committed_bytes + spans * page,
                  "tracking heap committed %zu bytes, plain heap %zu, %zu spans", t.committed_bytes,
                  p.committed_bytes, spans);
    sc_heap_destroy(plain);
    sc_heap_destroy(tracked);
}

Test(requested, flags_checked_tracks)
{
    sc_heap_config_t cfg = {.name = "requested-checked", .flags = SC_HEAP_CHECKED};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    check_every_width(h, "checked heap");
    sc_heap_destroy(h);
}

Test(requested, flags_environment)
{
    cr_assert_eq(setenv("SCALLOC_TRACK_REQUESTED", "1", 1), 0);
    sc_heap_t *h = sc_heap_create(NULL);
    unsetenv("SCALLOC_TRACK_REQUESTED");
    cr_assert_not_null(h);
    void *p = sc_alloc(h, 33);
    cr_assert_not_null(p);
    assert_requested(h, 33, "SCALLOC_TRACK_REQUESTED=1");
    sc_free(h, p);
    sc_heap_destroy(h);
}

Test(requested, flags_unknown_refused)
{
    sc_heap_config_t cfg = {.flags = 1u << 7};
    errno = 0;
    cr_assert_null(sc_heap_create(&cfg));
    cr_assert_eq(errno, EINVAL);
}

Test(requested, print)
{
    sc_heap_t *h = tracking_heap("requested-print");
    void *p = sc_alloc(h, 5);
    cr_assert_not_null(p);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    sc_heap_print_stats(h, f, SC_STATS_JSON);
    sc_heap_print_stats(h, f, SC_STATS_TEXT);
    fclose(f);
    cr_assert_not_null(strstr(buf, "\"requested_bytes\":5,\"requested_exact\":true"), "%s", buf);
    cr_assert_not_null(strstr(buf, "requested: 5 bytes\n"), "%s", buf);
    free(buf);
    sc_free(h, p);
    sc_heap_destroy(h);
}
