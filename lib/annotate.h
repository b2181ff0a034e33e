/*
 * Telling memory checkers about blocks. With ASan (SCALLOC_SANITIZE_ADDRESS)
 * a block is unpoisoned while allocated and poisoned while free, never-used
 * or released, so a use after free and a write into a free neighbour are
 * reported as they are for malloc. With valgrind (SCALLOC_VALGRIND) each
 * heap is a memcheck memory pool and blocks are pool chunks, so memcheck
 * reports invalid accesses and sc_heap_destroy frees a pool's chunks at once.
 * Free-list links live inside free blocks: the allocator reads and writes
 * them only through block_next / block_set_next, which open the link word
 * for that one access. In other builds every function here is a plain load,
 * a plain store, or nothing.
 */
#ifndef SCALLOC_ANNOTATE_H
#define SCALLOC_ANNOTATE_H

#include "types.h"

#if defined(SCALLOC_SANITIZE_ADDRESS)
#include <sanitizer/asan_interface.h>
#define ANNOTATE_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ANNOTATE_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define ANNOTATE_LINK_OPEN(b) ASAN_UNPOISON_MEMORY_REGION((b), sizeof(block_t))
#define ANNOTATE_LINK_CLOSE(b) ASAN_POISON_MEMORY_REGION((b), sizeof(block_t))
#elif defined(SCALLOC_VALGRIND) && SCALLOC_VALGRIND
#include <valgrind/memcheck.h>
#define ANNOTATE_POISON(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define ANNOTATE_UNPOISON(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define ANNOTATE_LINK_OPEN(b) VALGRIND_MAKE_MEM_DEFINED((b), sizeof(block_t))
#define ANNOTATE_LINK_CLOSE(b) VALGRIND_MAKE_MEM_NOACCESS((b), sizeof(block_t))
#define ANNOTATE_POOLS 1
#else
#define ANNOTATE_POISON(p, n) ((void)(p), (void)(n))
#define ANNOTATE_UNPOISON(p, n) ((void)(p), (void)(n))
#define ANNOTATE_LINK_OPEN(b) ((void)(b))
#define ANNOTATE_LINK_CLOSE(b) ((void)(b))
#endif

static inline block_t *block_next(block_t *b)
{
    ANNOTATE_LINK_OPEN(b);
    block_t *next = b->next;
    ANNOTATE_LINK_CLOSE(b);
    return next;
}

static inline void block_set_next(block_t *b, block_t *next)
{
    ANNOTATE_LINK_OPEN(b);
    b->next = next;
    ANNOTATE_LINK_CLOSE(b);
}

/* A block of `size` usable bytes is handed to the caller. */
static inline void annotate_alloc(struct sc_heap_s *heap, void *p, size_t size)
{
    (void)heap;
#if defined(ANNOTATE_POOLS)
    VALGRIND_MEMPOOL_ALLOC(heap, p, size);
#else
    ANNOTATE_UNPOISON(p, size);
#endif
}

/* A block comes back from the caller (before its link is written). */
static inline void annotate_free(struct sc_heap_s *heap, void *p, size_t size)
{
    (void)heap;
#if defined(ANNOTATE_POOLS)
    (void)size;
    VALGRIND_MEMPOOL_FREE(heap, p);
#else
    ANNOTATE_POISON(p, size);
#endif
}

/* Metadata between a span's header and its blocks (checked bitmap,
 * requested-size table) that the allocator writes before it reads:
 * accessible, contents undefined. Blocks of the class the span served
 * before may have left it poisoned. */
static inline void annotate_span_meta(void *p, size_t size)
{
    ANNOTATE_UNPOISON(p, size);
}

/* Memory that holds no block the caller may touch (never used, released). */
static inline void annotate_no_access(void *p, size_t size)
{
    ANNOTATE_POISON(p, size);
}

/* Memory the allocator itself is about to write (headers) or that goes
 * back to the kernel (so later mappings there start clean). */
static inline void annotate_owned(void *p, size_t size)
{
#if defined(SCALLOC_SANITIZE_ADDRESS)
    ANNOTATE_UNPOISON(p, size);
#else
    (void)p;
    (void)size;
#endif
}

/* A block's bytes are known to hold zeros (fresh pages of a calloc'd huge
 * block): memcheck must not call them undefined. */
static inline void annotate_defined(void *p, size_t size)
{
#if defined(ANNOTATE_POOLS)
    VALGRIND_MAKE_MEM_DEFINED(p, size);
#else
    (void)p;
    (void)size;
#endif
}

/* A live block changes size in place (huge realloc). */
static inline void annotate_resize(struct sc_heap_s *heap, void *p, size_t old_size,
                                   size_t new_size)
{
    (void)heap;
#if defined(ANNOTATE_POOLS)
    VALGRIND_MEMPOOL_CHANGE(heap, p, p, new_size);
    /* The chunk's new bytes are addressable but undefined; its old tail is
     * off limits. */
    if (new_size > old_size)
        VALGRIND_MAKE_MEM_UNDEFINED((char *)p + old_size, new_size - old_size);
    else
        VALGRIND_MAKE_MEM_NOACCESS((char *)p + new_size, old_size - new_size);
#else
    if (new_size > old_size)
        ANNOTATE_UNPOISON((char *)p + old_size, new_size - old_size);
    else
        ANNOTATE_POISON((char *)p + new_size, old_size - new_size);
#endif
}

static inline void annotate_heap_create(struct sc_heap_s *heap)
{
    (void)heap;
#if defined(ANNOTATE_POOLS)
    VALGRIND_CREATE_MEMPOOL(heap, 0, 0);
#endif
}

/* Every block of the heap is gone at once (destroy, reset). */
static inline void annotate_heap_drop_all(struct sc_heap_s *heap, bool keep_pool)
{
    (void)heap;
    (void)keep_pool;
#if defined(ANNOTATE_POOLS)
    VALGRIND_DESTROY_MEMPOOL(heap);
    if (keep_pool)
        VALGRIND_CREATE_MEMPOOL(heap, 0, 0);
#endif
}

#endif /* SCALLOC_ANNOTATE_H */
