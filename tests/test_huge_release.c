/*
 * Huge blocks give their memory back and never hold pages the heap does
 * not account for (DESIGN.md §1 "Freed huge runs give their memory back",
 * §4 "RSS must fall back after frees, trims and destroys"; issue 13).
 *
 * Contract lines checked here:
 *  - while huge buffers of 2-32 MiB are replaced in a loop (every page of
 *    each new one touched), the heap's resident bytes never exceed its
 *    committed bytes plus one page per span: no page is resident that the
 *    heap does not count (issue 13's leak: free-run headers written inside
 *    a range once advised MADV_HUGEPAGE faulted in whole 2 MiB pages, and
 *    giving the header back left 511 of them resident)
 *                                                     [replace_loop_resident_counted]
 *  - after freeing every buffer and sc_heap_trim, at most 1 MiB stays
 *    resident, and the process's RSS agrees       [replace_loop_resident_counted]
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <unistd.h>

#include "test_util.h"

#define MiB ((size_t)1 << 20)
#define SPAN ((size_t)2 << 20)

/* Under ASan the process's RSS also holds shadow memory (an eighth of every
 * range the heap touched, kept after the range is gone) and the
 * sanitizer's own allocator, so the process-wide figure says nothing about
 * the heap there; the heap's own figures still do. */
#if defined(SCALLOC_SANITIZE_ADDRESS) || defined(SCALLOC_SANITIZE_THREAD)
#define PROCESS_FIGURES_DISTORTED 1
#else
#define PROCESS_FIGURES_DISTORTED 0
#endif

enum { BUFFERS = 16 };

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* The process's resident bytes, from /proc/self/statm. */
static size_t process_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    unsigned long virt = 0, rss = 0;
    cr_assert_eq(fscanf(f, "%lu %lu", &virt, &rss), 2);
    fclose(f);
    return rss * page_size();
}

/* Resident bytes the heap accounts for: what it committed, plus the header
 * page of each span of its address space (a span header given back cold
 * may be counted out while its page is resident until the kernel drops it;
 * that is the one page per span the bound allows). */
static void check_counted(sc_heap_t *h, const char *phase, size_t step)
{
    sc_heap_stats_t st = test_stats(h);
    size_t allowance = st.reserved_bytes / SPAN * page_size();
    cr_assert_leq(st.resident_bytes, st.committed_bytes + allowance,
                  "%s %zu: %zu KiB resident, %zu KiB committed, allowance %zu KiB", phase, step,
                  st.resident_bytes >> 10, st.committed_bytes >> 10, allowance >> 10);
}

static void touch(unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += 4096)
        p[i] = v;
    p[n - 1] = v;
}

Test(huge_release, replace_loop_resident_counted, .timeout = 240)
{
    size_t rss_before = process_rss();
    sc_heap_config_t cfg = {.name = "huge_release"};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    test_rng_t rng = {13};
    unsigned char *buf[BUFFERS];
    size_t size[BUFFERS];
    for (unsigned i = 0; i < BUFFERS; i++) {
        size[i] = test_rng_range(&rng, 2 * MiB, 32 * MiB);
        buf[i] = sc_alloc(h, size[i]);
        cr_assert_not_null(buf[i]);
        touch(buf[i], size[i], (unsigned char)i);
    }
    check_counted(h, "filled", 0);
    size_t iterations = test_scaled(150, 30);
    for (size_t it = 0; it < iterations; it++) {
        unsigned k = (unsigned)(test_rng_next(&rng) % BUFFERS);
        cr_assert_eq(buf[k][0], buf[k][size[k] - 1], "buffer %u changed under its owner", k);
        sc_free(h, buf[k]);
        if (it % 16 == 0)
            check_counted(h, "freed at iteration", it);
        size[k] = test_rng_range(&rng, 2 * MiB, 32 * MiB);
        buf[k] = sc_alloc(h, size[k]);
        cr_assert_not_null(buf[k]);
        touch(buf[k], size[k], (unsigned char)(it + 1));
        if (it % 16 == 0)
            check_counted(h, "allocated at iteration", it);
    }
    check_counted(h, "loop done", iterations);
    for (unsigned i = 0; i < BUFFERS; i++)
        sc_free(h, buf[i]);
    check_counted(h, "all freed", 0);
    sc_heap_trim(h);
    check_counted(h, "trimmed", 0);
    sc_heap_stats_t st = test_stats(h);
    size_t rss_after = process_rss();
    cr_log_info("after %zu iterations, free-all and trim: live %zu, committed %zu KiB, resident "
                "%zu KiB; process RSS %zu KiB before the heap, %zu KiB now",
                iterations, st.live_bytes, st.committed_bytes >> 10, st.resident_bytes >> 10,
                rss_before >> 10, rss_after >> 10);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_leq(st.resident_bytes, MiB, "%zu KiB resident after free-all + trim",
                  st.resident_bytes >> 10);
    /* The process agrees (its own pages may move by a little). */
    if (!PROCESS_FIGURES_DISTORTED)
        cr_assert_leq(rss_after, rss_before + 2 * MiB, "process RSS %zu KiB, %zu KiB before",
                      rss_after >> 10, rss_before >> 10);
    sc_heap_destroy(h);
}

/* A freed huge block's pages are kept for the next one: taking them back
 * costs no page fault (DESIGN §1 "freed huge runs ... reused"), while
 * sc_calloc still hands out zeros.                  [reuse_is_warm_and_calloc_zero] */
#include <sys/resource.h>

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

Test(huge_release, reuse_is_warm_and_calloc_zero)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    size_t n = 8 * MiB;
    unsigned char *p = sc_alloc(h, n);
    cr_assert_not_null(p);
    memset(p, 0xA5, n);
    sc_free(h, p);
    unsigned char *q = sc_alloc(h, n);
    cr_assert_eq(q, p, "a freed run that fits is reused in place");
    long before = minor_faults();
    memset(q, 0x5A, n);
    long faults = minor_faults() - before;
    size_t pages = n / page_size();
    cr_log_info("rewriting a reused %zu MiB block: %ld page faults for %zu pages", n >> 20,
                faults, pages);
    cr_assert_lt((size_t)faults, pages / 10, "%ld faults rewriting a warm reused block", faults);
    sc_free(h, q);
    /* The same pages again, through calloc: they must read as zero. */
    unsigned char *z = sc_calloc(h, 1, n);
    cr_assert_not_null(z);
    for (size_t i = 0; i < n; i += 64)
        cr_assert_eq(z[i], 0, "calloc'd huge block holds %#x at %zu", z[i], i);
    cr_assert_eq(z[n - 1], 0);
    sc_free(h, z);
    sc_heap_destroy(h);
}

/* sc_realloc grows a huge block in place into the never-used address space
 * after it (the block is the last thing in its region), keeping its
 * contents; statistics follow.                          [realloc_grows_in_place] */
Test(huge_release, realloc_grows_in_place)
{
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    size_t n = 3 * MiB;
    unsigned char *p = sc_alloc(h, n);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (unsigned char)(i >> 12);
    for (size_t grow = 5 * MiB; grow <= 40 * MiB; grow += 7 * MiB) {
        unsigned char *q = sc_realloc(h, p, grow);
        cr_assert_eq(q, p, "realloc to %zu MiB moved the block", grow >> 20);
        cr_assert_geq(sc_usable_size(h, q), grow);
        q[grow - 1] = 7;
        sc_heap_stats_t st = test_stats(h);
        cr_assert_eq(st.huge_blocks, 1);
        cr_assert_geq(st.huge_bytes, grow);
        cr_assert_geq(st.committed_bytes, grow);
    }
    for (size_t i = 0; i < n; i += 4096)
        cr_assert_eq(p[i], (unsigned char)(i >> 12), "contents lost at %zu", i);
    /* And back down, in place, with the tail free for the next block. */
    unsigned char *q = sc_realloc(h, p, 4 * MiB);
    cr_assert_eq(q, p);
    unsigned char *r = sc_alloc(h, 20 * MiB);
    cr_assert_not_null(r);
    cr_assert_lt(r, p + 41 * MiB, "the shrunk block's tail was not reused");
    sc_free(h, r);
    sc_free(h, q);
    sc_heap_trim(h);
    cr_assert_lt(test_stats(h).committed_bytes, MiB);
    sc_heap_destroy(h);
}

/* A new huge block that fits no free run takes the pages that free runs
 * kept, moved by the kernel (mremap), instead of faulting in fresh ones;
 * the runs moved from read as zero and count nothing, the blocks that
 * stay live keep their contents, every resident page stays counted, and
 * sc_calloc over moved pages still hands out zeros.
 *                                                 [bigger_block_takes_kept_pages] */
#include <sys/mman.h>

#include "os.h"

/* Whether this kernel moves pages between mappings without unmapping the
 * source (MREMAP_DONTUNMAP, Linux 5.7; valgrind may refuse it): asked
 * through os_move_pages itself, whose refusal the heap shares (it then
 * falls back to page faults). */
static bool kernel_moves_pages(void)
{
    size_t n = 2 * page_size();
    char *m = mmap(NULL, 2 * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    m[0] = 1;
    bool ok = os_move_pages(m, m + n, n) && m[n] == 1 && m[0] == 0;
    munmap(m, 2 * n);
    return ok;
}

Test(huge_release, bigger_block_takes_kept_pages)
{
    sc_heap_config_t cfg = {.purge_delay_ms = SC_PURGE_NEVER, .retain_bytes = SIZE_MAX};
    sc_heap_t *h = sc_heap_create(&cfg);
    cr_assert_not_null(h);
    /* Two 8 MiB blocks, each followed by a block that stays live, so that
     * their runs cannot merge into one that a 16 MiB block fits. */
    size_t n = 8 * MiB;
    unsigned char *a = sc_alloc(h, n), *keep1 = sc_alloc(h, 2 * MiB);
    unsigned char *b = sc_alloc(h, n), *keep2 = sc_alloc(h, 2 * MiB);
    cr_assert(a && keep1 && b && keep2);
    memset(a, 0xA5, n);
    memset(b, 0xB6, n);
    memset(keep1, 0x11, 2 * MiB);
    memset(keep2, 0x22, 2 * MiB);
    sc_free(h, a);
    sc_free(h, b);
    check_counted(h, "two runs freed", 0);
    size_t committed = test_stats(h).committed_bytes;

    size_t big = 2 * n;
    unsigned char *c = sc_alloc(h, big);
    cr_assert_not_null(c);
    long before = minor_faults();
    memset(c, 0x5A, big);
    long faults = minor_faults() - before;
    sc_heap_stats_t st = test_stats(h);
    cr_log_info("a %zu MiB block after two %zu MiB runs freed: %ld page faults for %zu pages, "
                "committed %zu -> %zu KiB",
                big >> 20, n >> 20, faults, big / page_size(), committed >> 10,
                st.committed_bytes >> 10);
    check_counted(h, "bigger block written", 0);
    if (kernel_moves_pages()) {
        /* Most of the runs' pages moved: the runs' first spans keep their
         * first page, the rest faults in. */
        cr_assert_lt((size_t)faults, big / page_size() / 2,
                     "%ld faults writing a block that the runs' kept pages could hold", faults);
        cr_assert_lt(st.committed_bytes, committed + big / 2,
                     "committed %zu -> %zu KiB: the kept pages were not reused",
                     committed >> 10, st.committed_bytes >> 10);
    } else {
        cr_log_warn("this kernel does not move pages (MREMAP_DONTUNMAP): faults checked only");
    }
    for (size_t i = 0; i < 2 * MiB; i += 512) {
        cr_assert_eq(keep1[i], 0x11, "a live block changed at %zu", i);
        cr_assert_eq(keep2[i], 0x22, "a live block changed at %zu", i);
    }

    /* c's pages, all written, go to the next block that fits no run; as
     * sc_calloc's, every byte reads zero. */
    sc_free(h, c);
    size_t bigger = 3 * n;
    unsigned char *z = sc_calloc(h, 1, bigger);
    cr_assert_not_null(z);
    for (size_t i = 0; i < bigger; i += 64)
        cr_assert_eq(z[i], 0, "calloc'd huge block over moved pages holds %#x at %zu", z[i], i);
    cr_assert_eq(z[bigger - 1], 0);
    check_counted(h, "calloc'd block", 0);

    sc_free(h, z);
    sc_free(h, keep1);
    sc_free(h, keep2);
    sc_heap_trim(h);
    st = test_stats(h);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_leq(st.resident_bytes, MiB, "%zu KiB resident after free-all + trim",
                  st.resident_bytes >> 10);
    check_counted(h, "trimmed", 0);
    sc_heap_destroy(h);
}
