/*
 * The heap's span pool: empty spans, usable for any size class, on
 * POOL_SLOTS lock-free stacks. A thread pushes to and pops from its own slot
 * first, so threads returning and taking spans rarely share a cache line.
 */
#ifndef SCALLOC_SPAN_POOL_H
#define SCALLOC_SPAN_POOL_H

#include "types.h"

/* Exclusive holder: gives s's physical memory back and pushes it. */
void span_pool_put(struct sc_heap_s *heap, span_t *s, unsigned slot);

/* A pooled span (now held exclusively by the caller), or NULL. Tries the
 * caller's slot, then the others, in constant time. */
span_t *span_pool_take(struct sc_heap_s *heap, unsigned slot);

/* Gives back the memory of every pooled span that kept it (trim, limit);
 * with release_headers, their header pages too (the spans become cold). */
void span_pool_cool(struct sc_heap_s *heap, bool release_headers);

/* Frees the cold list's own memory (destroy). */
void span_pool_free_cold(struct sc_heap_s *heap);

#endif /* SCALLOC_SPAN_POOL_H */
