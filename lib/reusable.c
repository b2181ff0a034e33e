/* The heap's reusable stacks (reusable.h). */
#include "reusable.h"

#include "arena.h"
#include "span.h"
#include "span_pool.h"
#include "span_stack.h"

void reusable_push(struct sc_heap_s *heap, span_t *s)
{
    span_stack_push(&heap->reusable[span_class(s)], s);
}

span_t *reusable_take(struct sc_heap_s *heap, unsigned cls, bool *empty)
{
    span_t *s;
    while ((s = span_stack_pop(&heap->reusable[cls])) != NULL) {
        switch (span_claim_reusable(s)) {
        case SPAN_CLAIM_BLOCKS:
            *empty = false;
            return s;
        case SPAN_CLAIM_EMPTY:
            *empty = true;
            return s;
        case SPAN_CLAIM_LOST:
            break;
        }
    }
    return NULL;
}

void reusable_sweep_empty(struct sc_heap_s *heap)
{
    /* Take each stack whole, pool the EMPTY spans, push the others back.
     * A concurrent taker may find a stack empty meanwhile and use another
     * span: a trim is allowed to cost that. A REUSABLE span may become
     * EMPTY while it is off the stack here; it is pushed back as it is. */
    for (unsigned c = 0; c < NUM_CLASSES; c++) {
        span_t *keep = NULL, *s;
        while ((s = span_stack_pop(&heap->reusable[c])) != NULL) {
            if (span_claim_if_empty(s)) {
                span_pool_put(heap, s, c); /* any slot: spread them */
                continue;
            }
            atomic_store_explicit(&s->stack_next, keep, memory_order_relaxed);
            keep = s;
        }
        while (keep) {
            span_t *next = atomic_load_explicit(&keep->stack_next, memory_order_relaxed);
            span_stack_push(&heap->reusable[c], keep);
            keep = next;
        }
    }
}
