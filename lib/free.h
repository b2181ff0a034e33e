/*
 * The free dispatcher: what a pointer is, from its map word read once, and
 * what freeing it means. Every free the inline fast path declines comes
 * here (sc_free, sc_thread_free, sc_realloc), and so does every other
 * question about a block (sc_usable_size, sc_realloc): the misuse ladder
 * (foreign pointer, other heap, interior pointer, double free) is written
 * once, in block_lookup.
 */
#ifndef SCALLOC_FREE_H
#define SCALLOC_FREE_H

#include "types.h"

/* What a pointer is to a heap (and to one of its frontends). */
enum block_kind {
    BLOCK_BAD,     /* not a live block of the heap: `error` says why */
    BLOCK_OWNED,   /* a block of a span the frontend owns (hot or floating) */
    BLOCK_REMOTE,  /* a block of a span another frontend owns, or none */
    BLOCK_HUGE,    /* a live huge block; `span` is its header */
};

typedef struct block_ref_s {
    enum block_kind kind;
    sc_error_t error;  /* BLOCK_BAD: SC_ERR_FOREIGN_POINTER, _OTHER_HEAP,
                          _INTERIOR_POINTER or _DOUBLE_FREE */
    span_t *span;      /* the block's span (its header for huge blocks) */
} block_ref_t;

/* Classifies p for heap; t (may be NULL) is the caller's frontend, which
 * tells BLOCK_OWNED from BLOCK_REMOTE. Any pointer value may be asked
 * about. The double-free test here is the cheap one (a span that holds no
 * live block); the owner's and checked mode's tests are made when freeing. */
block_ref_t block_lookup(const struct sc_heap_s *heap, const sc_frontend_t *t, const void *p);

/* Frees p for t (a live frontend of its thread) after the fast path
 * declined it, reporting misuse for `call`. */
void free_dispatch(sc_frontend_t *t, void *p, const char *call);

/* The bytes usable at block p of heap, or 0 (misuse reported for `call`). */
size_t free_usable_size(const struct sc_heap_s *heap, const void *p, const char *call);

#endif /* SCALLOC_FREE_H */
