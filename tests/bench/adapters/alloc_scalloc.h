/* scalloc: a bench heap is an sc_heap_t. Workloads go through
 * sc_alloc/sc_free, the API most users call (the thread's frontend is found
 * implicitly); the explicit-frontend calls are measured by the fast-path
 * program instead. Destroy is sc_heap_destroy; trim is sc_heap_trim. */
#ifndef BENCH_ALLOC_SCALLOC_H
#define BENCH_ALLOC_SCALLOC_H

#include <scalloc/scalloc.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_ALLOCATOR_NAME "scalloc"
#define BENCH_API_NAME "sc_alloc/sc_free"
#define BENCH_CAN_DESTROY 1
#define BENCH_TRIM_PER_THREAD 0

typedef struct bench_heap { sc_heap_t *sc; } bench_heap;
/* A thread needs nothing of its own (scalloc finds its frontend), so its
 * handle is the heap's: no harness allocation per thread, whose glibc
 * arena would add system calls to scalloc's count. */
typedef struct bench_heap bench_thread;

static inline bench_heap *bench_heap_create(void)
{
    bench_heap *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    sc_heap_config_t cfg = {0};
    cfg.name = "bench";
    h->sc = sc_heap_create(&cfg);
    if (h->sc == NULL) {
        free(h);
        return NULL;
    }
    return h;
}
static inline void bench_heap_destroy(bench_heap *h)
{
    sc_heap_destroy(h->sc);
    free(h);
}
static inline bench_thread *bench_thread_attach(bench_heap *h)
{
    return h;
}
static inline void bench_thread_detach(bench_thread *t, int heap_dying)
{
    /* scalloc tears the thread's frontend down when the thread exits. */
    (void)t;
    (void)heap_dying;
}
static inline void *bench_malloc(bench_thread *t, size_t n) { return sc_alloc(t->sc, n); }
static inline void bench_free(bench_thread *t, void *p) { sc_free(t->sc, p); }
static inline void bench_thread_trim(bench_thread *t) { (void)t; }
static inline void bench_heap_trim(bench_heap *h) { sc_heap_trim(h->sc); }
static inline const char *bench_allocator_version(char *buf, size_t len)
{
    snprintf(buf, len, "scalloc %d.%d.%d", SCALLOC_VERSION_MAJOR, SCALLOC_VERSION_MINOR,
             SCALLOC_VERSION_PATCH);
    return buf;
}

#endif
