/* Arena regions and virtual spans (arena.h). */
#include "arena.h"

#include <errno.h>

#include "address_map.h"
#include "annotate.h"
#include "os.h"

#define REGION_MIN_SIZE ((size_t)8 << 20)
#define REGION_MAX_SIZE ((size_t)64 << 30)

/* Reserves a region of about `size` bytes (at least `min`), halving on
 * refusal so that a limited address space (ulimit -v, valgrind, 39-bit VA)
 * gets smaller regions instead of an error. */
static region_t *region_reserve(struct sc_heap_s *heap, size_t size, size_t min)
{
    if (min < REGION_MIN_SIZE)
        min = REGION_MIN_SIZE;
    if (size < min)
        size = min;
    char *base = NULL;
    for (;;) {
        base = os_reserve_aligned(size, SPAN_SIZE);
        if (base || size / 2 < min)
            break;
        size /= 2;
    }
    if (base == NULL)
        return NULL;
    size_t page = os_page_size();
    if (!os_commit(base, arena_writable_extent(page, 1))) {
        os_unreserve(base, size);
        return NULL;
    }
    /* Every 2 MiB of the region answers sc_heap_of; the first holds this
     * descriptor and is never a block span. */
    if (!address_map_set_range(base, size, (uintptr_t)heap | MAP_RESERVED)) {
        os_unreserve(base, size);
        return NULL;
    }
    region_t *r = (region_t *)base;
    r->base = base;
    r->size = size;
    atomic_init(&r->bump, base + SPAN_SIZE);
    r->next = atomic_load_explicit(&heap->regions, memory_order_relaxed);
    atomic_fetch_add_explicit(&heap->reserved_bytes, size, memory_order_relaxed);
    atomic_fetch_add_explicit(&heap->committed_bytes, page, memory_order_relaxed);
    return r;
}

bool arena_init(struct sc_heap_s *heap)
{
    region_t *r = region_reserve(heap, heap->first_region_size, 0);
    if (r == NULL) {
        errno = ENOMEM;
        return false;
    }
    heap->next_region_size = r->size * 2;
    /* release: the descriptor is visible to threads that load `regions`. */
    atomic_store_explicit(&heap->regions, r, memory_order_release);
    return true;
}

/* Bumps `count` spans off the newest region, or NULL if it has no room. */
static char *region_bump(region_t *r, size_t count)
{
    size_t bytes = count * SPAN_SIZE;
    char *cur = atomic_load_explicit(&r->bump, memory_order_relaxed);
    for (;;) {
        if ((size_t)(r->base + r->size - cur) < bytes)
            return NULL;
        /* relaxed: the bump pointer only divides address space; nothing
         * else is published through it. */
        if (atomic_compare_exchange_weak_explicit(&r->bump, &cur, cur + bytes,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return cur;
    }
}

/* Takes `count` fresh spans, adding a region when the newest is full. */
static char *arena_bump(struct sc_heap_s *heap, size_t count)
{
    for (;;) {
        region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire);
        char *p = region_bump(r, count);
        if (p)
            return p;
        pthread_mutex_lock(&heap->grow_lock);
        if (atomic_load_explicit(&heap->regions, memory_order_relaxed) == r) {
            /* Room for the run plus the descriptor span. */
            size_t need = (count + 1) * SPAN_SIZE;
            size_t size = heap->next_region_size;
            while (size < need)
                size *= 2;
            region_t *nr = region_reserve(heap, size, need);
            if (nr == NULL) {
                pthread_mutex_unlock(&heap->grow_lock);
                errno = ENOMEM;
                return NULL;
            }
            if (heap->next_region_size < REGION_MAX_SIZE)
                heap->next_region_size = nr->size * 2;
            atomic_store_explicit(&heap->regions, nr, memory_order_release);
        }
        pthread_mutex_unlock(&heap->grow_lock);
    }
}

static bool charge(struct sc_heap_s *heap, size_t bytes)
{
    size_t before = atomic_fetch_add_explicit(&heap->committed_bytes, bytes,
                                              memory_order_relaxed);
    if (heap->limit_bytes && before + bytes > heap->limit_bytes) {
        atomic_fetch_sub_explicit(&heap->committed_bytes, bytes, memory_order_relaxed);
        return false;
    }
    return true;
}

static void uncharge(struct sc_heap_s *heap, size_t bytes)
{
    atomic_fetch_sub_explicit(&heap->committed_bytes, bytes, memory_order_relaxed);
}

bool arena_commit(struct sc_heap_s *heap, span_t *s, size_t bytes)
{
    if (s->committed >= bytes)
        return true;
    size_t extra = bytes - s->committed;
    if (!charge(heap, extra))
        return false;
    if (s->rw_bytes < bytes) {
        if (!os_commit((char *)s + s->rw_bytes, bytes - s->rw_bytes)) {
            uncharge(heap, extra);
            return false;
        }
        s->rw_bytes = bytes;
    }
    s->committed = bytes;
    return true;
}

size_t arena_writable_extent(size_t bytes, size_t spans)
{
    return os_strict_commit() ? bytes : spans * SPAN_SIZE;
}

void arena_give_back(struct sc_heap_s *heap, span_t *s, size_t from)
{
    /* Read the header before the pages go: `from` may be 0 (a header that
     * is merged away), and released pages read back as zeros. */
    size_t rw = s->rw_bytes;
    arena_uncommit(heap, s, from);
    if (rw > from) {
        if (os_strict_commit()) {
            if (from > 0)
                s->rw_bytes = from;
            os_decommit((char *)s + from, rw - from);
        } else {
            os_release((char *)s + from, rw - from);
        }
    }
}

void arena_uncommit(struct sc_heap_s *heap, span_t *s, size_t keep)
{
    if (s->committed > keep) {
        uncharge(heap, s->committed - keep);
        s->committed = keep;
    }
}

bool arena_commit_header(struct sc_heap_s *heap, span_t *s)
{
    size_t page = os_page_size();
    if (!charge(heap, page))
        return false;
    if (!os_commit(s, page)) {
        uncharge(heap, page);
        return false;
    }
    annotate_owned(s, SPAN_HEADER_SIZE);
    s->committed = page;
    s->rw_bytes = page;
    return true;
}

span_t *arena_take_run(struct sc_heap_s *heap, size_t count, size_t bytes)
{
    if (!charge(heap, bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = arena_bump(heap, count);
    size_t rw = arena_writable_extent(bytes, count);
    if (p == NULL || !os_commit(p, rw)) {
        /* A bumped run that cannot be committed is lost address space
         * only; the kernel refused memory, so say so. */
        uncharge(heap, bytes);
        errno = ENOMEM;
        return NULL;
    }
    span_t *s = (span_t *)p;
    s->committed = bytes;
    s->rw_bytes = rw;
    s->heap = heap;
    return s;
}

span_t *arena_take_span(struct sc_heap_s *heap)
{
    span_t *s = arena_take_run(heap, 1, os_page_size());
    if (s == NULL)
        return NULL;
    atomic_init(&s->bump, (char *)s + SPAN_HEADER_SIZE);
    address_map_set(s, (uintptr_t)heap | MAP_SPAN);
    return s;
}

void arena_unpoison_used(struct sc_heap_s *heap)
{
#if defined(SCALLOC_SANITIZE_ADDRESS)
    /* ASan keeps a range's shadow through munmap, so whatever scalloc
     * poisoned must be opened again before the range goes back, or the
     * next mapping there would report false errors. Only the parts that
     * can be poisoned are walked: block spans' real spans and huge runs. */
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r; r = r->next) {
        char *end = atomic_load_explicit(&r->bump, memory_order_relaxed);
        for (char *p = r->base + SPAN_SIZE; p < end; p += SPAN_SIZE) {
            uintptr_t w = address_map_get((uintptr_t)p);
            unsigned tag = (unsigned)(w & MAP_TAGS);
            if (w == 0 || tag == MAP_RESERVED || tag == MAP_HUGE_ALIGNED)
                continue;
            span_t *s = (span_t *)p;
            if (span_kind(s) == SPAN_KIND_HUGE) {
                size_t spans = span_capacity(s);
                annotate_owned(s, spans * SPAN_SIZE);
                p += (spans ? spans - 1 : 0) * SPAN_SIZE;
            } else if (s->rw_bytes > SPAN_HEADER_SIZE) {
                annotate_owned((char *)s + SPAN_HEADER_SIZE, s->rw_bytes - SPAN_HEADER_SIZE);
            }
        }
    }
#else
    (void)heap;
#endif
}

void arena_destroy(struct sc_heap_s *heap)
{
    arena_unpoison_used(heap);
    region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire);
    while (r) {
        region_t *next = r->next;
        char *base = r->base;
        size_t size = r->size;
        address_map_set_range(base, size, 0);
        os_unreserve(base, size);
        r = next;
    }
    atomic_store_explicit(&heap->regions, NULL, memory_order_relaxed);
}

size_t arena_resident_bytes(struct sc_heap_s *heap)
{
    size_t total = 0;
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        char *end = atomic_load_explicit(&r->bump, memory_order_relaxed);
        total += os_resident_bytes(r->base, (size_t)(end - r->base));
    }
    return total;
}

void arena_for_each_span(struct sc_heap_s *heap, arena_span_fn *fn, void *arg)
{
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r; r = r->next) {
        char *end = atomic_load_explicit(&r->bump, memory_order_relaxed);
        for (char *p = r->base + SPAN_SIZE; p < end; p += SPAN_SIZE) {
            uintptr_t w = address_map_get((uintptr_t)p);
            unsigned tag = (unsigned)(w & MAP_TAGS);
            if (w == 0 || tag == MAP_RESERVED || tag == MAP_HUGE_ALIGNED)
                continue;
            fn((span_t *)p, w, arg);
        }
    }
}
