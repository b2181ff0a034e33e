/* Heap handles: creation, destroy, reset, trim (scalloc.h, "Heaps"). */
#ifndef SCALLOC_HEAP_H
#define SCALLOC_HEAP_H

#include "types.h"

/* Whether heap is a live heap; reports SC_ERR_DESTROYED_HEAP for `call`
 * otherwise. */
bool heap_check_live(const struct sc_heap_s *heap, const char *call);

#endif /* SCALLOC_HEAP_H */
