/*
 * The heap's reusable stacks: per size class, ownerless spans with at
 * least the reuse threshold of free blocks (REUSABLE), or with every block
 * free (EMPTY: the last free came after the push). Allocation takes them
 * before any span of the pool or fresh address space, so spans refill
 * before new memory is touched.
 */
#ifndef SCALLOC_REUSABLE_H
#define SCALLOC_REUSABLE_H

#include "types.h"

/* A span that just became REUSABLE (span_give_up, span_free_remote). */
void reusable_push(struct sc_heap_s *heap, span_t *s);

/* A reusable span of class cls made HOT for the caller, or NULL if there
 * is none. *empty tells whether every block of it was free (EMPTY): the
 * caller then sets it up afresh (span_init_blocks); otherwise its free
 * blocks are its local list already. */
span_t *reusable_take(struct sc_heap_s *heap, unsigned cls, bool *empty);

/* Moves every EMPTY span of every stack to the pool (trim); the others go
 * back on their stack. */
void reusable_sweep_empty(struct sc_heap_s *heap);

#endif /* SCALLOC_REUSABLE_H */
