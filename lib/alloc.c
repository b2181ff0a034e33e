/* The allocation API (scalloc.h, "Allocation"): thin wrappers around the
 * frontend fast paths, plus calloc, realloc, aligned allocation and the
 * ownership queries. */
#include <errno.h>
#include <string.h>

#include "address_map.h"
#include "annotate.h"
#include "error.h"
#include "free.h"
#include "frontend.h"
#include "heap.h"
#include "huge.h"
#include "os.h"
#include "registry.h"
#include "requested.h"
#include "span.h"

/* The calling thread's live frontend for heap: the cached one if it is
 * (a cache hit may find a destroyed heap's frontend), else a lookup. */
static sc_frontend_t *frontend_of(sc_heap_t *heap, const char *call)
{
    sc_frontend_t *t = registry_thread_cache.frontend;
    if (registry_thread_cache.heap == heap && registry_frontend_valid(t, heap))
        return t;
    return registry_lookup(heap, call);
}

static __attribute__((noinline)) void *alloc_slow(sc_heap_t *heap, size_t n)
{
    /* Blocks over SMALL_MAX come off their hot span behind the owner's
     * gate (frontend.h), here so that sc_alloc needs no stack frame. */
    if (n > SMALL_MAX && n <= SIZE_CLASS_MAX && registry_thread_cache.heap == heap) {
        void *b = frontend_alloc_gated(registry_thread_cache.frontend, n);
        if (likely(b != NULL))
            return b;
    }
    if (unlikely(registry_thread_exited))
        return registry_alloc_after_exit(heap, n);
    sc_frontend_t *t = frontend_of(heap, "sc_alloc");
    if (t == NULL)
        return NULL;
    void *b = frontend_alloc_slow(t, n);
    /* Whether the heap's idle threads get their hot spans trimmed (at
     * most once per purge delay, registry.c "AUTOMATIC IDLE TRIM"). */
    registry_idle_look(t);
    return b;
}

void *sc_alloc(sc_heap_t *heap, size_t n)
{
    if (likely(registry_thread_cache.heap == heap)) {
        void *b = frontend_alloc_fast(registry_thread_cache.frontend, n);
        if (likely(b != NULL))
            return b;
    }
    return alloc_slow(heap, n);
}

static __attribute__((noinline)) void free_slow(sc_heap_t *heap, void *p)
{
    if (p == NULL)
        return;
    if (unlikely(registry_thread_exited)) {
        registry_free_after_exit(heap, p);
        return;
    }
    sc_frontend_t *t = frontend_of(heap, "sc_free");
    if (t)
        free_dispatch(t, p, "sc_free");
}

void sc_free(sc_heap_t *heap, void *p)
{
    if (likely(registry_thread_cache.heap == heap)) {
        sc_frontend_t *t = registry_thread_cache.frontend;
        span_t *s = frontend_free_target(t, p);
        if (likely(s != NULL)) {
            if (unlikely(frontend_local_push(t, s, p)))
                frontend_free_event(s);
            return;
        }
        /* The cached frontend, if it is still the heap's (see
         * thread_cache_t), is this thread's live frontend: straight to the
         * dispatcher. */
        if (likely(p != NULL && t->heap == heap)) {
            free_dispatch(t, p, "sc_free");
            return;
        }
    }
    free_slow(heap, p);
}

sc_thread_t *sc_heap_thread(sc_heap_t *heap)
{
    return frontend_of(heap, "sc_heap_thread");
}

/* A frontend is only usable by its thread (checked on every call: a
 * foreign thread would race with the owner on the hot spans), and only
 * while its heap lives (checked on the slow paths: a destroyed heap's
 * frontends have no hot span, so every call reaches them). The fast test
 * is that t is the thread's cached frontend, which only its own thread's
 * frontends ever are; any other t is checked here and, if it is the
 * thread's, becomes the cached one. */
static __attribute__((noinline)) bool thread_frontend_check(sc_thread_t *t, const char *call)
{
    if (!registry_owns_frontend(t)) {
        error_report(SC_ERR_WRONG_THREAD, call, t ? t->heap : NULL, NULL);
        return false;
    }
    if (t->heap == NULL) {
        error_report(SC_ERR_DESTROYED_HEAP, call, NULL, NULL);
        return false;
    }
    registry_thread_cache.heap = t->heap;
    registry_thread_cache.frontend = t;
    return true;
}

static __attribute__((noinline)) void *thread_alloc_slow(sc_thread_t *t, size_t n)
{
    if (n > SMALL_MAX && n <= SIZE_CLASS_MAX && t == registry_thread_cache.frontend) {
        void *b = frontend_alloc_gated(t, n);
        if (likely(b != NULL))
            return b;
    }
    if (!thread_frontend_check(t, "sc_thread_alloc"))
        return NULL;
    void *b = frontend_alloc(t, n);
    registry_idle_look(t);
    return b;
}

void *sc_thread_alloc(sc_thread_t *t, size_t n)
{
    if (likely(t == registry_thread_cache.frontend)) {
        void *b = frontend_alloc_fast(t, n);
        if (likely(b != NULL))
            return b;
    }
    return thread_alloc_slow(t, n);
}

static __attribute__((noinline)) void thread_free_slow(sc_thread_t *t, void *p)
{
    if (p == NULL || !thread_frontend_check(t, "sc_thread_free"))
        return;
    free_dispatch(t, p, "sc_thread_free");
}

void sc_thread_free(sc_thread_t *t, void *p)
{
    if (likely(t == registry_thread_cache.frontend)) {
        span_t *s = frontend_free_target(t, p);
        if (likely(s != NULL)) {
            if (unlikely(frontend_local_push(t, s, p)))
                frontend_free_event(s);
            return;
        }
    }
    thread_free_slow(t, p);
}

size_t sc_usable_size(sc_heap_t *heap, const void *p)
{
    if (p == NULL || !heap_check_live(heap, "sc_usable_size"))
        return 0;
    return free_usable_size(heap, p, "sc_usable_size");
}

size_t sc_good_size(size_t n)
{
    if (n <= SIZE_CLASS_MAX)
        return size_class_block_size(size_class_of(n));
    return huge_good_size(n);
}

void *sc_calloc(sc_heap_t *heap, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = sc_alloc(heap, n);
    if (p == NULL)
        return NULL;
    /* A huge block clears only what may hold a former block's data (its
     * first page, and pages a freed block kept); the rest of its pages
     * are fresh or were given back, and read as zero. */
    uintptr_t a = (uintptr_t)p;
    uintptr_t w = address_map_get(a);
    span_t *s = (w & MAP_TAGS) == MAP_HUGE_ALIGNED ? huge_header_of(a, w)
                                                   : span_at(p);
    if (span_kind(s) == SPAN_KIND_HUGE) {
        huge_clear_for_calloc(s, p, n);
        annotate_defined(p, n);
        return p;
    }
    memset(p, 0, n);
    return p;
}

void *sc_aligned_alloc(sc_heap_t *heap, size_t alignment, size_t n)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= 16)
        return sc_alloc(heap, n);
    sc_frontend_t *t = frontend_of(heap, "sc_aligned_alloc");
    if (t == NULL)
        return NULL;
    /* Blocks start a multiple of 128 bytes into a 2 MiB-aligned span (128,
     * or past a checked or tracking span's metadata), so a class whose
     * block size is a multiple of an alignment up to 128 only has aligned
     * blocks: pick the first such class that fits, and frees stay ordinary.
     * Larger alignments get a huge block placed at the alignment. */
    if (alignment <= SPAN_LEAD && n <= SIZE_CLASS_MAX) {
        for (unsigned c = size_class_of(n); c < SIZE_CLASS_COUNT; c++) {
            if (size_class_block_size(c) % alignment != 0)
                continue;
            void *p = frontend_alloc(t, size_class_block_size(c));
            if (p && requested_enabled(t->heap))
                requested_on_resize(t, span_at(p), p, n);
            return p;
        }
    }
    return frontend_alloc_huge(t, alignment, n);
}

/* Fits, and more than half of the block stays in use (or the block is
 * small anyway): realloc keeps it where it is. A much smaller request
 * moves to a smaller class to free the memory. */
static bool realloc_in_place(size_t n, size_t usable)
{
    return n <= usable && (n > usable / 2 || usable <= 256);
}

/* A resize that moves: a new block, the common bytes, p freed; NULL
 * (errno from sc_alloc) with p untouched if there is no new block. */
static void *realloc_move(sc_heap_t *heap, void *p, size_t n, size_t usable)
{
    void *q = sc_alloc(heap, n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, n < usable ? n : usable);
    sc_free(heap, p);
    return q;
}

void *sc_realloc(sc_heap_t *heap, void *p, size_t n)
{
    /* A block of a span this thread owns, with sc_free's tests (one map
     * word, the block-start test, the cheap double-free test): nothing
     * else to look up, so a realloc in place costs what those tests do, and
     * one that moves costs an allocation, the copy and a free (before, the
     * full classification, 57 instructions, came first: 175 against
     * mimalloc's 73 per realloc in place through the preload library). */
    if (likely(registry_thread_cache.heap == heap) && n != 0) {
        span_t *s = frontend_free_target(registry_thread_cache.frontend, p);
        if (likely(s != NULL)) {
            size_t usable = s->block_size;
            return realloc_in_place(n, usable) ? p : realloc_move(heap, p, n, usable);
        }
    }
    if (p == NULL)
        return sc_alloc(heap, n);
    if (!heap_check_live(heap, "sc_realloc"))
        return NULL;
    block_ref_t r = block_lookup(heap, NULL, p);
    if (r.kind == BLOCK_BAD) {
        error_report(r.error, "sc_realloc", heap, p);
        return NULL;
    }
    span_t *s = r.span;
    if (n == 0) {
        /* Documented: frees p and returns a fresh minimal block. */
        void *q = sc_alloc(heap, 0);
        if (q)
            sc_free(heap, p);
        return q;
    }
    bool huge = r.kind == BLOCK_HUGE;
    size_t usable = huge ? huge_usable_size(s) : s->block_size;
    /* In place (realloc_in_place), except that a huge block shrunk to a
     * class size moves to that class, unless it is huge only for its
     * alignment. */
    bool aligned_huge = huge && (size_t)((char *)p - span_base(s)) != SPAN_LEAD;
    if (realloc_in_place(n, usable) && (!huge || n > SIZE_CLASS_MAX || aligned_huge)) {
        if (huge) {
            huge_set_requested(heap, s, n);
        } else if (requested_enabled(heap)) {
            sc_frontend_t *t = frontend_of(heap, "sc_realloc");
            if (t == NULL)
                return NULL;
            requested_on_resize(t, s, p, n);
        }
        return p;
    }
    if (huge && n > SIZE_CLASS_MAX && huge_resize_in_place(heap, s, n))
        return p;
    return realloc_move(heap, p, n, usable);
}

int sc_heap_owns(const sc_heap_t *heap, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return heap != NULL && address_map_heap(address_map_get(a), a) == heap;
}

sc_heap_t *sc_heap_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return address_map_heap(address_map_get(a), a);
}
