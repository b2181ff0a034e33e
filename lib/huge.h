/*
 * Huge blocks (above the largest size class): a run of contiguous virtual
 * spans inside the heap's own regions, so ownership checks, statistics and
 * destroy cover them like any block. A freed run keeps its pages (still
 * committed) and joins the heap's free runs (address ordered, coalesced);
 * a later huge block goes where free runs hold most of the pages it needs,
 * so reusing them costs no page fault, and the release policy (span_pool.h)
 * gives the kept pages back in bulk after the heap's delay or past its
 * bound. Blocks are cut from free runs first, so the heap's address space
 * stays bounded by its live huge bytes plus fragmentation; a block at the
 * end of its region grows in place into the never-used space after it.
 */
#ifndef SCALLOC_HUGE_H
#define SCALLOC_HUGE_H

#include "types.h"

/* n bytes (n > SC_MAX_CLASS_SIZE, or any n with a big alignment) aligned to
 * align (a power of two >= 16). NULL with errno = ENOMEM on failure. */
void *huge_alloc_aligned(struct sc_heap_s *heap, size_t align, size_t n);

static inline void *huge_alloc(sc_frontend_t *t, size_t n)
{
    return huge_alloc_aligned(t->heap, 16, n);
}

/* Usable size of a huge block of n bytes with default alignment; 0 if n is
 * beyond any huge block. */
size_t huge_good_size(size_t n);

/* Frees the huge block at p whose header is s (reports misuse). */
void huge_free(sc_frontend_t *t, span_t *s, void *p, const char *call);

/* The header of the live huge block starting at p, or NULL; p's map word
 * is `word` (tag MAP_SPAN or MAP_HUGE_ALIGNED). */
span_t *huge_header_of(uintptr_t p, uintptr_t word);

/* Whether a lies inside a live huge block of heap (error classification). */
bool huge_contains(struct sc_heap_s *heap, uintptr_t a);

/* Usable bytes of the huge block with header s. */
static inline size_t huge_usable_size(const span_t *s)
{
    return (size_t)(s->bump_end - atomic_load_explicit(&s->bump, memory_order_relaxed));
}

/* Resizes the huge block at p (header s) to n bytes without moving it if
 * possible: shrinking makes the whole spans past the new end a free run
 * (pages kept), growing takes the free run that directly follows or the
 * never-used address space after the block. false if it would have to
 * move. */
bool huge_resize_in_place(struct sc_heap_s *heap, span_t *s, size_t n);

/* sc_calloc of the huge block at p (header s), n bytes: clears the part of
 * [p, p + n) that may hold a former block's data (the rest reads as zero:
 * fresh pages, or pages given back). */
void huge_clear_for_calloc(span_t *s, void *p, size_t n);

/* A huge block kept in place by sc_realloc now holds n requested bytes. */
void huge_set_requested(struct sc_heap_s *heap, span_t *s, size_t n);

/* The heap's regions are gone (sc_heap_destroy): the map entries its page
 * moves were charged go back to the process's budget. */
void huge_forget_moves(struct sc_heap_s *heap);

/* Live huge blocks, usable and requested bytes (under the huge lock). */
void huge_stats(struct sc_heap_s *heap, size_t *blocks, size_t *bytes, size_t *requested);

#endif /* SCALLOC_HUGE_H */
