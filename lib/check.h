/*
 * Checked mode (SC_HEAP_CHECKED, or SCALLOC_CHECKED=1 for every heap).
 *
 * A checked heap's frontends keep their fast-path hot array empty and their
 * map words untagged-free, so every allocation and free of a checked heap
 * takes the slow path; unchecked heaps pay nothing. There, each block span
 * carries an allocation bitmap between its header and its blocks: allocation sets
 * the block's bit, free clears it, so a double free or a free of a block
 * never handed out is caught wherever the block sits (any list, any
 * thread). Free-list links are validated when a block is handed out: the
 * next link must be another free block of the same span, which catches a
 * write through a dangling pointer into a free block before the allocator
 * follows it.
 */
#ifndef SCALLOC_CHECK_H
#define SCALLOC_CHECK_H

#include "span.h"
#include "types.h"

static inline bool check_enabled(const struct sc_heap_s *heap)
{
    return (heap->flags & SC_HEAP_CHECKED) != 0;
}

/* Clears the bitmap of a span being set up (exclusive holder). */
void check_span_init(span_t *s);

/* Records that b is handed out; validates its free-list link. false if b
 * is already allocated or its link is corrupt (the caller must not hand it
 * out). */
bool check_block_allocate(span_t *s, block_t *b);

/* Records that b is freed. false if it was not allocated. Any thread. */
bool check_block_free(span_t *s, block_t *b);

#endif /* SCALLOC_CHECK_H */
