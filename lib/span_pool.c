/* The span pool (span_pool.h). */
#include "span_pool.h"

#include "span.h"
#include "span_stack.h"

void span_pool_put(struct sc_heap_s *heap, span_t *s, unsigned slot)
{
    /* Give the memory back before anyone can take the span: whatever is
     * released is not in use. Big classes touch up to 2 MiB per span, so
     * this is where RSS falls when a program frees what it allocated. */
    span_release(s);
    span_set_owner(s, NULL);
    /* relaxed: the push below publishes with release. */
    atomic_store_explicit(&s->remote, remote_word(SPAN_POOLED, s, NULL, 0),
                          memory_order_relaxed);
    span_stack_push(&heap->pool[slot % POOL_SLOTS].stack, s);
}

span_t *span_pool_take(struct sc_heap_s *heap, unsigned slot)
{
    for (unsigned i = 0; i < POOL_SLOTS; i++) {
        span_t *s = span_stack_pop(&heap->pool[(slot + i) % POOL_SLOTS].stack);
        if (s)
            return s;
    }
    return NULL;
}
