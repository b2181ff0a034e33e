/* tcmalloc (gperftools, libtcmalloc_minimal): process-wide like glibc; the
 * binary that links it has its malloc replaced too, which is why it is a
 * binary of its own. tc_malloc/tc_free are called directly so that no
 * symbol interposition question arises. */
#ifndef BENCH_ALLOC_TCMALLOC_H
#define BENCH_ALLOC_TCMALLOC_H

#include <gperftools/malloc_extension_c.h>
#include <gperftools/tcmalloc.h>
#include <stdio.h>

#define BENCH_ALLOCATOR_NAME "tcmalloc"
#define BENCH_API_NAME "tc_malloc/tc_free"
#define BENCH_CAN_DESTROY 0
#define BENCH_TRIM_PER_THREAD 0

typedef struct bench_heap { int unused; } bench_heap;
typedef struct bench_thread { int unused; } bench_thread;

static bench_heap bench_tc_heap;
static bench_thread bench_tc_thread;

static inline bench_heap *bench_heap_create(void) { return &bench_tc_heap; }
static inline void bench_heap_destroy(bench_heap *h) { (void)h; }
static inline bench_thread *bench_thread_attach(bench_heap *h)
{
    (void)h;
    return &bench_tc_thread;
}
static inline void bench_thread_detach(bench_thread *t, int heap_dying)
{
    (void)t;
    (void)heap_dying;
}
static inline void *bench_malloc(bench_thread *t, size_t n)
{
    (void)t;
    return tc_malloc(n);
}
static inline void bench_free(bench_thread *t, void *p)
{
    (void)t;
    tc_free(p);
}
static inline void bench_thread_trim(bench_thread *t) { (void)t; }
static inline void bench_heap_trim(bench_heap *h)
{
    (void)h;
    MallocExtension_ReleaseFreeMemory();
}
static inline const char *bench_allocator_version(char *buf, size_t len)
{
    int major, minor;
    const char *patch;
    tc_version(&major, &minor, &patch);
    snprintf(buf, len, "tcmalloc %d.%d%s", major, minor, patch ? patch : "");
    return buf;
}

#endif
