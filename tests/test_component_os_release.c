/*
 * Component test of the batched page release (lib/os.h, os_release_batch_*):
 * ranges gathered and given back in as few system calls as the kernel
 * allows (process_madvise on the calling process, else one madvise each).
 * Tested below the public API on mappings of the test's own; whichever way
 * the kernel takes them, the result must be the same as os_release's.
 *
 * Checked here:
 *  - every range of a batch reads as zero afterwards and its pages are no
 *    longer resident; the bytes between the ranges keep their contents
 *                                                        [ranges_released]
 *  - a batch fuller than OS_RELEASE_BATCH flushes itself as it fills, an
 *    empty flush does nothing, a range of 0 bytes is ignored
 *                                                        [full_and_empty]
 */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "os.h"

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static unsigned char *map_filled(size_t bytes, int fill)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    memset(p, fill, bytes);
    return p;
}

static bool all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

Test(component_os_release, ranges_released)
{
    size_t page = page_size();
    size_t bytes = 64 * page;
    unsigned char *m = map_filled(bytes, 0x5a);
    /* Three ranges with kept pages between them: pages 1-3, 10, 20-29. */
    os_release_batch_t b = {.n = 0};
    os_release_batch_add(&b, m + 1 * page, 3 * page);
    os_release_batch_add(&b, m + 10 * page, page);
    os_release_batch_add(&b, m + 20 * page, 10 * page);
    cr_assert_eq(b.n, 3);
    cr_assert(all_bytes(m + page, 3 * page, 0x5a), "released before the flush");
    os_release_batch_flush(&b);
    cr_assert_eq(b.n, 0);
    cr_assert_eq(os_resident_bytes(m + page, 3 * page), 0);
    cr_assert_eq(os_resident_bytes(m + 10 * page, page), 0);
    cr_assert_eq(os_resident_bytes(m + 20 * page, 10 * page), 0);
    cr_assert(all_bytes(m + page, 3 * page, 0));
    cr_assert(all_bytes(m + 10 * page, page, 0));
    cr_assert(all_bytes(m + 20 * page, 10 * page, 0));
    /* Reading the released pages mapped them again (zero pages); what lay
     * between the ranges kept its bytes. */
    cr_assert(all_bytes(m, page, 0x5a));
    cr_assert(all_bytes(m + 4 * page, 6 * page, 0x5a));
    cr_assert(all_bytes(m + 11 * page, 9 * page, 0x5a));
    cr_assert(all_bytes(m + 30 * page, 34 * page, 0x5a));
    munmap(m, bytes);
}

Test(component_os_release, full_and_empty)
{
    size_t page = page_size();
    size_t ranges = OS_RELEASE_BATCH * 2 + 3;
    size_t bytes = ranges * 2 * page;
    unsigned char *m = map_filled(bytes, 0x11);
    os_release_batch_t b = {.n = 0};
    os_release_batch_flush(&b); /* empty: nothing */
    cr_assert_eq(b.n, 0);
    os_release_batch_add(&b, m, 0); /* nothing to give back */
    cr_assert_eq(b.n, 0);
    for (size_t i = 0; i < ranges; i++) {
        os_release_batch_add(&b, m + 2 * i * page, page);
        cr_assert_leq(b.n, OS_RELEASE_BATCH);
    }
    cr_assert_eq(b.n, ranges % OS_RELEASE_BATCH, "a full batch did not flush itself");
    /* The ranges of the flushed batches are gone already. */
    for (size_t i = 0; i + b.n < ranges; i++)
        cr_assert_eq(os_resident_bytes(m + 2 * i * page, page), 0, "range %zu still resident", i);
    os_release_batch_flush(&b);
    for (size_t i = 0; i < ranges; i++) {
        cr_assert_eq(os_resident_bytes(m + 2 * i * page, page), 0, "range %zu still resident", i);
        cr_assert(all_bytes(m + (2 * i + 1) * page, page, 0x11), "page between ranges %zu changed", i);
    }
    munmap(m, bytes);
}
