/* The span pool (span_pool.h). */
#include "span_pool.h"

#include <string.h>
#include <sys/mman.h>

#include "address_map.h"
#include "annotate.h"
#include "arena.h"
#include "os.h"
#include "span.h"
#include "types.h"
#include "span_stack.h"

/* Up to this many committed bytes of empty spans per heap stay resident in
 * the pool, so that a program that frees a batch and allocates the next
 * does not give pages back only to fault them in again. Beyond it, and on
 * sc_heap_trim, pooled spans give their memory back. */
#define POOL_WARM_LIMIT ((size_t)4 << 20)

void span_pool_put(struct sc_heap_s *heap, span_t *s, unsigned slot)
{
    /* Keep it warm if the budget allows; otherwise give the memory back
     * before anyone can take the span (whatever is released is not in use).
     * This is where RSS falls when a program frees what it allocated. */
    size_t bytes = s->committed;
    size_t before = atomic_fetch_add_explicit(&heap->warm_bytes, bytes, memory_order_relaxed);
    if (before + bytes <= POOL_WARM_LIMIT && span_kind(s) == SPAN_KIND_BLOCKS) {
        s->warm = 1;
        s->free = NULL;
    } else {
        atomic_fetch_sub_explicit(&heap->warm_bytes, bytes, memory_order_relaxed);
        s->warm = 0;
        span_release(s);
    }
    span_set_owner(s, NULL);
    /* relaxed: the push below publishes with release. */
    atomic_store_explicit(&s->remote, remote_word(SPAN_POOLED, s, NULL, 0),
                          memory_order_relaxed);
    span_stack_push(&heap->pool[slot % POOL_SLOTS].stack, s);
}

static void take_warm(struct sc_heap_s *heap, span_t *s)
{
    if (s->warm) {
        s->warm = 0;
        atomic_fetch_sub_explicit(&heap->warm_bytes, s->committed, memory_order_relaxed);
    }
}

/* A cold span made usable again: its header page committed and charged
 * afresh, its map word back to a span with a header. */
static span_t *revive_cold(struct sc_heap_s *heap, span_t *s)
{
    if (!arena_commit_header(heap, s))
        return NULL;
    s->rw_bytes = arena_writable_extent(os_page_size(), 1);
    s->heap = heap;
    s->warm = 0;
    span_set_bump(s, (char *)s + SPAN_HEADER_SIZE);
    address_map_set(s, (uintptr_t)heap | MAP_SPAN);
    return s;
}

span_t *span_pool_take(struct sc_heap_s *heap, unsigned slot)
{
    for (unsigned i = 0; i < POOL_SLOTS; i++) {
        span_t *s = span_stack_pop(&heap->pool[(slot + i) % POOL_SLOTS].stack);
        if (s) {
            take_warm(heap, s);
            return s;
        }
    }
    span_t *s = NULL;
    pthread_mutex_lock(&heap->cold_lock);
    if (heap->cold_count > 0)
        s = heap->cold[--heap->cold_count];
    pthread_mutex_unlock(&heap->cold_lock);
    if (s && revive_cold(heap, s) == NULL) {
        pthread_mutex_lock(&heap->cold_lock);
        heap->cold[heap->cold_count++] = s; /* the limit refused: keep it */
        pthread_mutex_unlock(&heap->cold_lock);
        s = NULL;
    }
    return s;
}

/* Makes room for `more` cold spans (under cold_lock). */
static bool cold_reserve(struct sc_heap_s *heap, size_t more)
{
    if (heap->cold_count + more <= heap->cold_capacity)
        return true;
    size_t cap = heap->cold_capacity ? heap->cold_capacity : 512;
    while (cap < heap->cold_count + more)
        cap *= 2;
    span_t **bigger = os_alloc_metadata(cap * sizeof(span_t *));
    if (bigger == NULL)
        return false;
    if (heap->cold) {
        memcpy(bigger, heap->cold, heap->cold_count * sizeof(span_t *));
        munmap(heap->cold, heap->cold_capacity * sizeof(span_t *));
    }
    heap->cold = bigger;
    heap->cold_capacity = cap;
    return true;
}

void span_pool_free_cold(struct sc_heap_s *heap)
{
    if (heap->cold)
        munmap(heap->cold, heap->cold_capacity * sizeof(span_t *));
    heap->cold = NULL;
    heap->cold_count = heap->cold_capacity = 0;
}

void span_pool_cool(struct sc_heap_s *heap, bool release_headers)
{
    /* Take every slot's stack whole, release the warm spans, push all back.
     * Concurrent takers may find a slot empty meanwhile and bump a fresh
     * span instead: a trim is allowed to cost that. */
    size_t page = os_page_size();
    for (unsigned i = 0; i < POOL_SLOTS; i++) {
        span_t *list = NULL, *s;
        while ((s = span_stack_pop(&heap->pool[i].stack)) != NULL) {
            if (s->warm) {
                take_warm(heap, s);
                span_release(s);
            }
            atomic_store_explicit(&s->stack_next, list, memory_order_relaxed);
            list = s;
        }
        while (list) {
            span_t *next = atomic_load_explicit(&list->stack_next, memory_order_relaxed);
            bool cooled = false;
            if (release_headers) {
                /* Cold: the header page goes too, so the span is only an
                 * address in the cold list until it is taken again. */
                pthread_mutex_lock(&heap->cold_lock);
                if (cold_reserve(heap, 1)) {
                    heap->cold[heap->cold_count++] = list;
                    address_map_set(list, (uintptr_t)heap | MAP_RESERVED);
                    arena_uncommit(heap, list, 0);
                    annotate_owned(list, SPAN_HEADER_SIZE);
                    os_release(list, page);
                    cooled = true;
                }
                pthread_mutex_unlock(&heap->cold_lock);
            }
            if (!cooled)
                span_stack_push(&heap->pool[i].stack, list);
            list = next;
        }
    }
}
