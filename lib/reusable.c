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

void reusable_note_orphan(struct sc_heap_s *heap, span_t *s)
{
    /* seq_cst, here and in the sweep (flag cleared, then the marks
     * taken): a mark the sweep misses comes before its flag store in the
     * one order of all four, so the flag stays set for the next sweep.
     * Thread exits and sweeps are rare; the order costs nothing to see. */
    arena_mark(heap, s, ARENA_MARK_ORPHAN);
    atomic_store_explicit(&heap->orphans_marked, 1, memory_order_seq_cst);
}

static void adopt_one(span_t *s, void *arg)
{
    struct sc_heap_s *heap = arg;
    if (span_adopt_orphan(s))
        reusable_push(heap, s);
}

void reusable_adopt_orphans(struct sc_heap_s *heap, uint32_t now)
{
    if (!arena_sweep_elect(&heap->orphans_marked, &heap->orphan_sweep_due, now, ORPHAN_REUSE_MS))
        return;
    /* Marks made during the sweep set the flag again themselves; marks
     * aged by it need one more sweep. */
    if (arena_sweep_marks(heap, ARENA_MARK_ORPHAN, adopt_one, heap))
        atomic_store_explicit(&heap->orphans_marked, 1, memory_order_relaxed);
}
