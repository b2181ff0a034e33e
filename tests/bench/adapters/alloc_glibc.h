/* glibc malloc: process-wide, so a "heap" is a placeholder and a heap
 * cannot be destroyed; trim is malloc_trim(0), which also gives back free
 * pages in the middle of arenas. */
#ifndef BENCH_ALLOC_GLIBC_H
#define BENCH_ALLOC_GLIBC_H

#include <gnu/libc-version.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_ALLOCATOR_NAME "glibc"
#define BENCH_API_NAME "malloc/free"
#define BENCH_CAN_DESTROY 0
#define BENCH_TRIM_PER_THREAD 0

typedef struct bench_heap { int unused; } bench_heap;
typedef struct bench_thread { int unused; } bench_thread;

static bench_heap bench_glibc_heap;
static bench_thread bench_glibc_thread;

static inline bench_heap *bench_heap_create(void) { return &bench_glibc_heap; }
static inline void bench_heap_destroy(bench_heap *h) { (void)h; }
static inline bench_thread *bench_thread_attach(bench_heap *h)
{
    (void)h;
    return &bench_glibc_thread;
}
static inline void bench_thread_detach(bench_thread *t, int heap_dying)
{
    (void)t;
    (void)heap_dying;
}
static inline void *bench_malloc(bench_thread *t, size_t n)
{
    (void)t;
    return malloc(n);
}
static inline void bench_free(bench_thread *t, void *p)
{
    (void)t;
    free(p);
}
static inline void bench_thread_trim(bench_thread *t) { (void)t; }
static inline void bench_heap_trim(bench_heap *h)
{
    (void)h;
    malloc_trim(0);
}
static inline const char *bench_allocator_version(char *buf, size_t len)
{
    snprintf(buf, len, "glibc %s", gnu_get_libc_version());
    return buf;
}

#endif
