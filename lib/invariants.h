/*
 * The expensive consistency check of a heap at rest, for tests: every span
 * walked, every free list followed, every count compared (span.h, "THE
 * COUNTS WORD", and the life cycle in types.h). The model and fuzz tests
 * call it between steps; it is never called by the library itself.
 */
#ifndef SCALLOC_INVARIANTS_H
#define SCALLOC_INVARIANTS_H

#include "types.h"

/* Checks every block span of heap, which no thread may use meanwhile (its
 * frontends' remote batches included: they count as live). Returns NULL if
 * all holds, else a static message naming the first broken invariant; *bad
 * is then the span (NULL for the last check: a page resident where no span
 * keeps pages, found by comparing arena_resident_bytes with a walk of all
 * the address space the heap ever used). */
const char *invariants_check_heap(struct sc_heap_s *heap, span_t **bad);

#endif /* SCALLOC_INVARIANTS_H */
