/* mimalloc heaps (mi_heap_*): a mi_heap_t may only be allocated from by the
 * thread that created it, while mi_free works from any thread. So the bench
 * heap is only a placeholder, and every attaching thread makes its own
 * mi_heap_new(): the "heap" of a workload is the set of its threads' mimalloc
 * heaps. Detach deletes the thread's heap (live blocks move to the thread's
 * backing heap and stay valid); when the heap is dying it destroys it
 * instead, which is how mimalloc frees a heap's blocks all at once - per
 * thread, by the owning thread. Trim is mi_heap_collect(heap, true) in each
 * thread, then mi_collect(true). */
#ifndef BENCH_ALLOC_MIMALLOC_H
#define BENCH_ALLOC_MIMALLOC_H

#include <mimalloc.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_ALLOCATOR_NAME "mimalloc"
#define BENCH_API_NAME "mi_heap_malloc/mi_free, heap per thread"
#define BENCH_CAN_DESTROY 1
#define BENCH_TRIM_PER_THREAD 1

typedef struct bench_heap { int unused; } bench_heap;
typedef struct bench_thread { mi_heap_t *mi; } bench_thread;

static bench_heap bench_mi_heap;

static inline bench_heap *bench_heap_create(void) { return &bench_mi_heap; }
static inline void bench_heap_destroy(bench_heap *h) { (void)h; }
static inline bench_thread *bench_thread_attach(bench_heap *h)
{
    (void)h;
    bench_thread *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->mi = mi_heap_new();
    if (t->mi == NULL) {
        free(t);
        return NULL;
    }
    return t;
}
static inline void bench_thread_detach(bench_thread *t, int heap_dying)
{
    if (heap_dying)
        mi_heap_destroy(t->mi);
    else
        mi_heap_delete(t->mi);
    free(t);
}
static inline void *bench_malloc(bench_thread *t, size_t n) { return mi_heap_malloc(t->mi, n); }
static inline void bench_free(bench_thread *t, void *p)
{
    (void)t;
    mi_free(p);
}
static inline void bench_thread_trim(bench_thread *t) { mi_heap_collect(t->mi, true); }
static inline void bench_heap_trim(bench_heap *h)
{
    (void)h;
    mi_collect(true);
}
static inline const char *bench_allocator_version(char *buf, size_t len)
{
    int v = mi_version();
    snprintf(buf, len, "mimalloc %d.%d.%d", v / 100, (v / 10) % 10, v % 10);
    return buf;
}

#endif
