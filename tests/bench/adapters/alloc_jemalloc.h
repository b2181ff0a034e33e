/* jemalloc: a bench heap is an arena made with "arenas.create"; every
 * thread makes its own explicit tcache with "tcache.create" and passes
 * MALLOCX_ARENA(arena) | MALLOCX_TCACHE(tcache) to mallocx, and its tcache
 * to dallocx (so a remote free lands in the freeing thread's tcache, as it
 * would with implicit tcaches). Detach destroys the tcache, which flushes
 * its cached blocks back to their arenas; destroying the heap is
 * "arena.<i>.destroy", valid once every tcache holding its blocks is gone.
 * Trim flushes the thread's tcache and then purges the arena. */
#ifndef BENCH_ALLOC_JEMALLOC_H
#define BENCH_ALLOC_JEMALLOC_H

#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_ALLOCATOR_NAME "jemalloc"
#define BENCH_API_NAME "mallocx/dallocx, own arena + tcache"
#define BENCH_CAN_DESTROY 1
#define BENCH_TRIM_PER_THREAD 1

typedef struct bench_heap { unsigned arena; } bench_heap;
typedef struct bench_thread {
    int alloc_flags;
    int free_flags;
    unsigned tcache;
} bench_thread;

static inline bench_heap *bench_heap_create(void)
{
    bench_heap *h = calloc(1, sizeof *h);
    size_t len = sizeof h->arena;
    if (h == NULL || mallctl("arenas.create", &h->arena, &len, NULL, 0) != 0) {
        free(h);
        return NULL;
    }
    return h;
}
static inline void bench_heap_ctl(bench_heap *h, const char *what)
{
    char name[64];
    snprintf(name, sizeof name, "arena.%u.%s", h->arena, what);
    if (mallctl(name, NULL, NULL, NULL, 0) != 0)
        fprintf(stderr, "jemalloc adapter: mallctl(%s) failed\n", name);
}
static inline void bench_heap_destroy(bench_heap *h)
{
    bench_heap_ctl(h, "destroy");
    free(h);
}
static inline bench_thread *bench_thread_attach(bench_heap *h)
{
    bench_thread *t = calloc(1, sizeof *t);
    size_t len = sizeof t->tcache;
    if (t == NULL || mallctl("tcache.create", &t->tcache, &len, NULL, 0) != 0) {
        free(t);
        return NULL;
    }
    t->alloc_flags = MALLOCX_ARENA(h->arena) | MALLOCX_TCACHE(t->tcache);
    t->free_flags = MALLOCX_TCACHE(t->tcache);
    return t;
}
static inline void bench_thread_detach(bench_thread *t, int heap_dying)
{
    (void)heap_dying;
    mallctl("tcache.destroy", NULL, NULL, &t->tcache, sizeof t->tcache);
    free(t);
}
static inline void *bench_malloc(bench_thread *t, size_t n) { return mallocx(n, t->alloc_flags); }
static inline void bench_free(bench_thread *t, void *p) { dallocx(p, t->free_flags); }
static inline void bench_thread_trim(bench_thread *t)
{
    mallctl("tcache.flush", NULL, NULL, &t->tcache, sizeof t->tcache);
}
static inline void bench_heap_trim(bench_heap *h) { bench_heap_ctl(h, "purge"); }
static inline const char *bench_allocator_version(char *buf, size_t len)
{
    const char *v = "?";
    size_t vlen = sizeof v;
    mallctl("version", &v, &vlen, NULL, 0);
    snprintf(buf, len, "jemalloc %s", v);
    return buf;
}

#endif
