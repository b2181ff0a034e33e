/*
 * The allocator-neutral interface every workload is written against.
 *
 * Why a compile-time interface and not a table of function pointers: peers
 * such as jemalloc, mimalloc and tcmalloc export malloc/free themselves, so
 * linking one of them into a process replaces glibc malloc for the whole
 * process. Each allocator therefore gets its own driver binary
 * (scalloc_bench_<name>) built from the same workload sources with one
 * adapter selected by a BENCH_ALLOCATOR_<NAME> definition. With one adapter
 * per binary there is no reason to pay an indirect call per operation: the
 * adapters below are static inline, so each workload calls the allocator the
 * way a real program would.
 *
 * Every adapter provides:
 *
 *   BENCH_ALLOCATOR_NAME   short name ("scalloc", "glibc", ...)
 *   BENCH_API_NAME         the calls used, for reports ("sc_alloc/sc_free")
 *   BENCH_CAN_DESTROY      1 when destroying a heap frees its live blocks
 *   BENCH_TRIM_PER_THREAD  1 when bench_thread_trim does real work
 *
 *   bench_heap   *bench_heap_create(void);
 *       One isolated heap (a scalloc heap, a jemalloc arena); process-wide
 *       allocators (glibc, tcmalloc) return a placeholder.
 *   void          bench_heap_destroy(bench_heap *h);
 *       Called once no thread is attached any more. With BENCH_CAN_DESTROY
 *       it frees whatever is still live; otherwise every block must already
 *       have been freed.
 *   bench_thread *bench_thread_attach(bench_heap *h);
 *       The calling thread's handle on h (a jemalloc tcache, a mimalloc
 *       heap). Only the attaching thread may use it.
 *   void          bench_thread_detach(bench_thread *t, int heap_dying);
 *       The thread is done with h. Blocks it allocated stay valid unless
 *       heap_dying is set, in which case the heap is about to be destroyed
 *       and the adapter may throw this thread's blocks away (mimalloc does:
 *       its heaps are per thread, so destroying is per thread).
 *   void         *bench_malloc(bench_thread *t, size_t n);    n >= 1
 *   void          bench_free(bench_thread *t, void *p);
 *       p may have been allocated by any thread, alive or dead.
 *   void          bench_thread_trim(bench_thread *t);
 *       The thread-local part of giving memory back (flush caches).
 *   void          bench_heap_trim(bench_heap *h);
 *       The heap-wide part of giving free physical memory back to the OS.
 *   const char   *bench_allocator_version(char *buf, size_t len);
 */
#ifndef BENCH_ALLOC_H
#define BENCH_ALLOC_H

#include <stddef.h>

#if defined(BENCH_ALLOCATOR_SCALLOC)
#include "adapters/alloc_scalloc.h"
#elif defined(BENCH_ALLOCATOR_GLIBC)
#include "adapters/alloc_glibc.h"
#elif defined(BENCH_ALLOCATOR_JEMALLOC)
#include "adapters/alloc_jemalloc.h"
#elif defined(BENCH_ALLOCATOR_MIMALLOC)
#include "adapters/alloc_mimalloc.h"
#elif defined(BENCH_ALLOCATOR_TCMALLOC)
#include "adapters/alloc_tcmalloc.h"
#elif defined(BENCH_ALLOCATOR_FOOTPRINT)
#include "adapters/alloc_footprint.h" /* scalloc, instrumented: footprint.c */
#else
#error "define one BENCH_ALLOCATOR_<NAME> to pick the allocator under test"
#endif

#endif /* BENCH_ALLOC_H */
