/* Virtual memory calls (mmap, mprotect, madvise, mremap, munmap, mincore) and the
 * coarse clock. */
#include "os.h"

#include "tuning.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The facts below are read once and cached. Threads may race to fill a
 * cache; they all store the same value, so relaxed atomics suffice. */
size_t os_page_size(void)
{
    static _Atomic size_t page;
    size_t v = atomic_load_explicit(&page, memory_order_relaxed);
    if (v == 0) {
        v = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, v, memory_order_relaxed);
    }
    return v;
}

bool os_strict_commit(void)
{
    static _Atomic int strict = -1;
    int v = atomic_load_explicit(&strict, memory_order_relaxed);
    if (v < 0) {
        int mode = 0;
        FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
        if (f) {
            if (fscanf(f, "%d", &mode) != 1)
                mode = 0;
            fclose(f);
        }
        v = mode == 2;
        atomic_store_explicit(&strict, v, memory_order_relaxed);
    }
    return v != 0;
}

size_t os_memory_total(void)
{
    static _Atomic size_t total;
    size_t v = atomic_load_explicit(&total, memory_order_relaxed);
    if (v == 0) {
        struct sysinfo si;
        if (sysinfo(&si) == 0)
            v = ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
        if (v == 0)
            v = SIZE_MAX;
        atomic_store_explicit(&total, v, memory_order_relaxed);
    }
    return v;
}

/* Whether transparent huge pages are on for every mapping ("always"): only
 * then must regions ask for MADV_NOHUGEPAGE (in "madvise" and "never" mode
 * no mapping gets huge pages unless it asks). Unreadable: assume always. */
static bool thp_always(void)
{
    static _Atomic int always = -1;
    int v = atomic_load_explicit(&always, memory_order_relaxed);
    if (v < 0) {
        char mode[128] = "";
        FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
        if (f) {
            if (fgets(mode, sizeof mode, f) == NULL)
                mode[0] = '\0';
            fclose(f);
        }
        v = mode[0] == '\0' || strstr(mode, "[always]") != NULL;
        atomic_store_explicit(&always, v, memory_order_relaxed);
    }
    return v != 0;
}

void *os_reserve_aligned(size_t size, size_t align, bool writable, void **mapping,
                         size_t *mapping_size)
{
    size_t span = size + align;
    if (span < size)
        return NULL;
    int prot = writable ? PROT_READ | PROT_WRITE : PROT_NONE;
    char *raw = mmap(NULL, span, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
#ifdef MADV_NOHUGEPAGE
    /* Transparent huge pages would back a touched 4 KiB with 2 MiB and
     * defeat the lazy real spans; ask the kernel not to, whatever the THP
     * sysctl says. */
    if (thp_always())
        madvise((void *)start, size, MADV_NOHUGEPAGE);
#endif
    *mapping = raw;
    *mapping_size = span;
    return (void *)start;
}

bool os_reserve_at(void *p, size_t size, bool writable)
{
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
    int prot = writable ? PROT_READ | PROT_WRITE : PROT_NONE;
    char *got = mmap(p, size, prot,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (got == MAP_FAILED)
        return false;
    if (got != p) {
        /* A kernel (or valgrind) that takes the flag for a hint put it
         * elsewhere: not what was asked. */
        munmap(got, size);
        return false;
    }
#ifdef MADV_NOHUGEPAGE
    if (thp_always())
        madvise(p, size, MADV_NOHUGEPAGE);
#endif
    return true;
}

size_t os_address_space_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    return (size_t)rl.rlim_cur;
}

bool os_commit(void *p, size_t size)
{
    return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

void os_release(void *p, size_t size)
{
    if (size == 0)
        return;
    /* MADV_DONTNEED frees the pages now (RSS falls at once) and the range
     * reads back as zeros, which sc_calloc relies on. */
    madvise(p, size, MADV_DONTNEED);
}

/* The calling thread's own process for process_madvise, without a file
 * descriptor (and so the same after fork). */
#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000)
#endif

void os_release_batch_flush(os_release_batch_t *b)
{
    unsigned done = 0;
#ifdef SYS_process_madvise
    /* The kernel refused a batch once (no PIDFD_SELF, or no MADV_DONTNEED
     * there): never asked again. Racing threads store the same answer:
     * relaxed. */
    static _Atomic bool refused;
    if (b->n > 1 && !atomic_load_explicit(&refused, memory_order_relaxed)) {
        struct iovec v[OS_RELEASE_BATCH];
        for (unsigned i = 0; i < b->n; i++) {
            v[i].iov_base = b->start[i];
            v[i].iov_len = b->size[i];
        }
        long r = syscall(SYS_process_madvise, PIDFD_SELF, v, (size_t)b->n, MADV_DONTNEED, 0u);
        if (r >= 0) {
            /* The ranges it took in full; a short count means it stopped
             * inside one: the rest go one call each below. */
            size_t left = (size_t)r;
            while (done < b->n && left >= b->size[done])
                left -= b->size[done++];
            if (done < b->n && left > 0) {
                b->start[done] = (char *)b->start[done] + left;
                b->size[done] -= left;
            }
        } else if (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM) {
            atomic_store_explicit(&refused, true, memory_order_relaxed);
        }
    }
#endif
    for (unsigned i = done; i < b->n; i++)
        os_release(b->start[i], b->size[i]);
    b->n = 0;
}

void os_release_batch_add(os_release_batch_t *b, void *p, size_t size)
{
    if (size == 0)
        return;
    if (b->n == OS_RELEASE_BATCH)
        os_release_batch_flush(b);
    b->start[b->n] = p;
    b->size[b->n] = size;
    b->n++;
}

/* Older headers lack it (Linux 5.7). */
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

bool os_move_pages(void *from, void *to, size_t size)
{
    /* Racing threads store the same answer: relaxed. */
    static _Atomic bool refused;
    if (size == 0)
        return true;
    if (atomic_load_explicit(&refused, memory_order_relaxed))
        return false;
    if (mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to) ==
        MAP_FAILED) {
        atomic_store_explicit(&refused, true, memory_order_relaxed);
        return false;
    }
    return true;
}

/* relaxed: a count that publishes nothing; the CAS keeps it from going
 * below zero. */
static _Atomic size_t map_budget = MOVE_MAP_BUDGET;

bool os_map_budget_take(size_t n)
{
    size_t v = atomic_load_explicit(&map_budget, memory_order_relaxed);
    do {
        if (v < n)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&map_budget, &v, v - n, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void os_map_budget_return(size_t n)
{
    atomic_fetch_add_explicit(&map_budget, n, memory_order_relaxed);
}

void os_decommit(void *p, size_t size)
{
    if (size == 0)
        return;
    /* Mapping fresh PROT_NONE memory over the range frees its pages and
     * its commit charge in one call; the reservation stays ours. */
    void *q = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                   -1, 0);
    if (q == MAP_FAILED)
        madvise(p, size, MADV_DONTNEED);
#ifdef MADV_NOHUGEPAGE
    else
        madvise(p, size, MADV_NOHUGEPAGE);
#endif
}

void os_unreserve(void *p, size_t size)
{
    munmap(p, size);
}

void *os_reserve_table(size_t size, bool *writable)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    *writable = p != MAP_FAILED;
    if (p == MAP_FAILED)
        p = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *os_alloc_metadata(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void os_free_metadata(void *p, size_t size)
{
    munmap(p, size);
}

uint32_t os_coarse_ms(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

size_t os_resident_bytes(void *p, size_t size)
{
    size_t page = os_page_size();
    size_t pages = (size + page - 1) / page;
    /* 16 Ki pages (64 MiB of 4 KiB pages) per call: a heap of hundreds of
     * GiB is counted in thousands of calls, not millions. */
    unsigned char vec[16384];
    size_t resident = 0;
    char *base = p;
    for (size_t done = 0; done < pages;) {
        size_t n = pages - done < sizeof vec ? pages - done : sizeof vec;
        if (mincore(base + done * page, n * page, vec) != 0)
            break;
        for (size_t i = 0; i < n; i++)
            resident += vec[i] & 1;
        done += n;
    }
    return resident * page;
}

/* 0: not tried yet, 1: registered, -1: refused. */
static _Atomic int membarrier_state;

/* Registers the process on the first call; then 1 (registered) or -1
 * (refused: the kernel, or a seccomp filter). */
static int membarrier_registered(void)
{
#ifndef SYS_membarrier
    return -1;
#else
    /* relaxed: registering twice is harmless, and the state only says
     * whether the command may be used. */
    int state = atomic_load_explicit(&membarrier_state, memory_order_relaxed);
    if (state == 0) {
        long r = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
        state = r == 0 ? 1 : -1;
        atomic_store_explicit(&membarrier_state, state, memory_order_relaxed);
    }
    return state;
#endif
}

void os_membarrier_register(void)
{
    (void)membarrier_registered();
}

bool os_membarrier(void)
{
#ifndef SYS_membarrier
    return false;
#else
    if (membarrier_registered() < 0)
        return false;
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
        atomic_store_explicit(&membarrier_state, -1, memory_order_relaxed);
        return false;
    }
    return true;
#endif
}

void os_yield(void)
{
    sched_yield();
}
