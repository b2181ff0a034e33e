/*
 * The only place that talks to the kernel about memory. Everything above
 * works in terms of reserve (address space only), commit (make usable),
 * release (give physical pages back, keep the range) and unreserve.
 */
#ifndef SCALLOC_OS_H
#define SCALLOC_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

size_t os_page_size(void);

/* Whether the kernel enforces its commit limit strictly
 * (vm.overcommit_memory = 2). Then address space is made writable only as
 * it is used; otherwise whole spans are made writable at once, which keeps
 * one mapping per region instead of one per span (vm.max_map_count). */
bool os_strict_commit(void);

/* Physical memory plus swap: no single block larger than this can ever be
 * backed, so such requests fail at once (the kernel's own overcommit check
 * does not apply to scalloc's NORESERVE reservations). */
size_t os_memory_total(void);

/* Reserves `size` bytes aligned to `align` (a power of two), not charged to
 * the commit limit: inaccessible, or already readable and writable when
 * `writable` (a MAP_NORESERVE mapping costs nothing until touched, so a
 * region that is writable from the start needs no mprotect per span). The
 * mapping is over-sized to find the alignment and kept whole (cutting the
 * ends off would cost two more calls): *mapping and *mapping_size get it,
 * for os_unreserve. NULL if the kernel refuses. */
void *os_reserve_aligned(size_t size, size_t align, bool writable, void **mapping,
                         size_t *mapping_size);

/* Makes [p, p+size) readable and writable (charged to the commit limit). */
bool os_commit(void *p, size_t size);

/* Gives the physical pages of [p, p+size) back; the range stays usable and
 * reads as zero afterwards. p and size page aligned. */
void os_release(void *p, size_t size);

/* Ranges to give back as os_release does, gathered so that one system call
 * can take many: process_madvise(2) on the calling process (PIDFD_SELF)
 * where the kernel accepts MADV_DONTNEED there, one madvise per range
 * otherwise (the first refusal is remembered). The caller keeps the batch
 * (on its stack); os_release_batch_add flushes a full one, and the caller
 * flushes the rest before it relies on the pages being gone. */
#define OS_RELEASE_BATCH 64
typedef struct {
    void *start[OS_RELEASE_BATCH];
    size_t size[OS_RELEASE_BATCH];
    unsigned n;
} os_release_batch_t;

void os_release_batch_add(os_release_batch_t *b, void *p, size_t size);
void os_release_batch_flush(os_release_batch_t *b);

/* Moves the pages of [from, from+size) to [to, to+size), replacing
 * whatever was mapped there, without copying or faulting (mremap with
 * MREMAP_DONTUNMAP: only page tables move). `from` stays mapped and reads
 * as zero afterwards. Both ranges page aligned, inside the caller's
 * writable reservations. false if the kernel refused (before Linux 5.7,
 * under some checkers, at the process's map count limit): nothing moved,
 * and every later call refuses too, so the caller falls back to faults.
 * Each move may split the mappings around `to`: two more entries in the
 * kernel's map table (vm.max_map_count), see os_map_budget_take. */
bool os_move_pages(void *from, void *to, size_t size);

/* The process-wide budget of map entries that page moves may add
 * (tuning.h, MOVE_MAP_BUDGET): take n before a move (false: spent),
 * return what a caller's moves added once it unmapped their ranges. */
bool os_map_budget_take(size_t n);
void os_map_budget_return(size_t n);

/* Drops the pages of [p, p+size) and makes the range inaccessible and
 * uncommitted again (still reserved). */
void os_decommit(void *p, size_t size);

/* Returns the range to the kernel entirely. */
void os_unreserve(void *p, size_t size);

/* Plain read-write anonymous memory for allocator metadata (meta.h carves
 * it into pooled blocks), and its return. */
void *os_alloc_metadata(size_t size);

/* A large table of zero words reserved without charge (MAP_NORESERVE):
 * writable if the kernel allows that (*writable true), else read-only, its
 * pages made writable later with os_commit. NULL if neither works. */
void *os_reserve_table(size_t size, bool *writable);
void os_free_metadata(void *p, size_t size);

/* A coarse monotonic clock in milliseconds (CLOCK_MONOTONIC_COARSE: read
 * from the vDSO, no system call, a few ms resolution), wrapping at 2^32:
 * compare readings by their difference. For the release policy's delays;
 * read on slow paths only. */
uint32_t os_coarse_ms(void);

/* The address-space limit (RLIMIT_AS) in bytes, SIZE_MAX if none. */
size_t os_address_space_limit(void);

/* Reserves exactly [p, p + size) (nothing there may be mapped already):
 * read-write and MAP_NORESERVE if writable, else inaccessible. false if the
 * range is taken or the kernel refuses. */
bool os_reserve_at(void *p, size_t size, bool writable);

/* Bytes of [p, p+size) resident now (mincore). */
size_t os_resident_bytes(void *p, size_t size);

/* A full memory barrier on every running thread of the process
 * (membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED; the process registers
 * on the first call). Once it returns, each other thread has passed a
 * point before which all its memory accesses are visible to the caller and
 * after which it sees all of the caller's accesses made before the call,
 * without that thread executing any fence itself. false (and nothing
 * done) where the kernel or a seccomp filter refuses; the first refusal
 * is remembered. */
bool os_membarrier(void);

/* Registers the process for os_membarrier now, if it has not yet. The
 * kernel waits for an RCU grace period when a process with more than one
 * thread registers (about 12 ms here), so a caller that may do it early,
 * while the process is likely to have one thread, should: the first
 * os_membarrier then costs the call alone. */
void os_membarrier_register(void);

/* Lets another thread run (sched_yield). */
void os_yield(void);

#endif /* SCALLOC_OS_H */
