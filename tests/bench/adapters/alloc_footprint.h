/* scalloc, instrumented to explain its footprint (footprint_walk.c,
 * results/footprint.md): the same sc_alloc/sc_free as alloc_scalloc.h, plus
 * what a heap walk needs and the heap cannot tell:
 *   - the size each block was requested with (rounding to the class is
 *     usable - requested), kept beside the heap in a shadow table;
 *   - a way to stop the world: every call marks its thread inside the
 *     allocator, so a walk can wait until no thread is and then read span
 *     headers and free lists that nobody changes meanwhile;
 *   - walks of the heap when its committed bytes reach a new high (the last
 *     one is the peak), at marks a workload sets, and before destroy.
 * Timing under this adapter means nothing; its numbers are bytes. Peak RSS
 * of the process is not the allocator's either (the shadow table is
 * harness memory): the plain scalloc driver measures that. */
#ifndef BENCH_ALLOC_FOOTPRINT_H
#define BENCH_ALLOC_FOOTPRINT_H

#include <scalloc/scalloc.h>
#include <stdio.h>

#define BENCH_ALLOCATOR_NAME "scalloc-footprint"
#define BENCH_API_NAME "sc_alloc/sc_free, instrumented for the footprint breakdown"
#define BENCH_CAN_DESTROY 1
#define BENCH_TRIM_PER_THREAD 0
/* Workloads may call bench_heap_mark(h, "label") to walk the heap there. */
#define BENCH_HAVE_MARK 1

typedef struct bench_heap bench_heap;
typedef struct bench_thread bench_thread;

bench_heap *fp_heap_create(void);
void fp_heap_destroy(bench_heap *h);
bench_thread *fp_thread_attach(bench_heap *h);
void fp_thread_detach(bench_thread *t);
void *fp_malloc(bench_thread *t, size_t n);
void fp_free(bench_thread *t, void *p);
void fp_heap_trim(bench_heap *h);
void fp_heap_mark(bench_heap *h, const char *label);

static inline bench_heap *bench_heap_create(void) { return fp_heap_create(); }
static inline void bench_heap_destroy(bench_heap *h) { fp_heap_destroy(h); }
static inline bench_thread *bench_thread_attach(bench_heap *h) { return fp_thread_attach(h); }
static inline void bench_thread_detach(bench_thread *t, int heap_dying)
{
    (void)heap_dying;
    fp_thread_detach(t);
}
static inline void *bench_malloc(bench_thread *t, size_t n) { return fp_malloc(t, n); }
static inline void bench_free(bench_thread *t, void *p) { fp_free(t, p); }
static inline void bench_thread_trim(bench_thread *t) { (void)t; }
static inline void bench_heap_trim(bench_heap *h) { fp_heap_trim(h); }
static inline void bench_heap_mark(bench_heap *h, const char *label) { fp_heap_mark(h, label); }
static inline const char *bench_allocator_version(char *buf, size_t len)
{
    snprintf(buf, len, "scalloc %d.%d.%d (footprint)", SCALLOC_VERSION_MAJOR,
             SCALLOC_VERSION_MINOR, SCALLOC_VERSION_PATCH);
    return buf;
}

#endif
