/* The span pool (span_pool.h). */
#include "span_pool.h"

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

span_t *span_pool_take(struct sc_heap_s *heap, unsigned slot)
{
    for (unsigned i = 0; i < POOL_SLOTS; i++) {
        span_t *s = span_stack_pop(&heap->pool[(slot + i) % POOL_SLOTS].stack);
        if (s) {
            take_warm(heap, s);
            return s;
        }
    }
    return NULL;
}

void span_pool_cool(struct sc_heap_s *heap)
{
    /* Take every slot's stack whole, release the warm spans, push all back.
     * Concurrent takers may find a slot empty meanwhile and bump a fresh
     * span instead: a trim is allowed to cost that. */
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
            span_stack_push(&heap->pool[i].stack, list);
            list = next;
        }
    }
}
