/*
 * Requested-size tracking (SC_HEAP_TRACK_REQUESTED, SCALLOC_TRACK_REQUESTED=1,
 * and every checked heap).
 *
 * Class blocks have no header, so the size a caller asked for is lost once
 * the class is picked. A tracking heap keeps it: each block span carries a
 * table after its blocks (after the checked-mode bitmap, if any) with one
 * entry per block holding the block's slack, usable size minus requested
 * size. Entries are 1 byte for blocks below 256 bytes, 2 below 64 KiB and
 * 4 above, so the table costs at most 1/16 of the span (16-byte blocks) and
 * under 1% from 256 bytes up.
 *
 * The exact sum comes from counters, not from walking tables: every
 * frontend keeps the slack of the blocks it allocated minus the slack of
 * the blocks it freed (a relaxed counter only it writes, like a span's
 * `used`), and the heap keeps what exited threads' frontends left
 * (`retired_slack`). Their sum, taken modulo 2^64, is the slack of the live
 * class blocks whichever thread frees what; requested bytes are the live
 * usable bytes less that.
 *
 * Entry access needs no atomics: an entry is written when its block is
 * handed out (by the span's owner) or resized in place (by the block's
 * holder), and read when the block is freed; the program's own hand-over of
 * the block orders those, and entries of different blocks are distinct
 * objects.
 *
 * The fast paths know nothing of this: a tracking heap's frontends keep
 * their fast-path arrays empty and their spans' map words untagged, as in
 * checked mode, so every allocation and free of such a heap takes the slow
 * path and untracked heaps pay nothing.
 */
#ifndef SCALLOC_REQUESTED_H
#define SCALLOC_REQUESTED_H

#include "types.h"

static inline bool requested_enabled(const struct sc_heap_s *heap)
{
    return (heap->flags & (SC_HEAP_TRACK_REQUESTED | SC_HEAP_CHECKED)) != 0;
}

/* Bytes of table a span of `capacity` blocks of block_size bytes needs (a
 * multiple of 8). */
size_t requested_table_bytes(size_t block_size, uint32_t capacity);

/* Exclusive holder: makes the table of a span being set up writable. */
void requested_span_init(span_t *s);

/* Records that b, just handed out by owner t, holds n requested bytes. */
void requested_on_alloc(sc_frontend_t *t, span_t *s, const block_t *b, size_t n);

/* The slack recorded for live block b (read before b is freed: once it is,
 * the owner may hand it out again and overwrite the entry). */
uint32_t requested_slack(const span_t *s, const block_t *b);

/* Records that t (any thread's frontend) freed a block of that slack. */
void requested_on_free(sc_frontend_t *t, uint32_t slack);

/* Records that live block b now holds n requested bytes (resized in place,
 * or handed out for an aligned request bigger than n); t is the caller's
 * frontend. */
void requested_on_resize(sc_frontend_t *t, span_t *s, const block_t *b, size_t n);

/* Slack of the heap's live class blocks (usable minus requested bytes):
 * the frontends' counters plus the retired ones. Under the registry lock. */
size_t requested_heap_slack(const struct sc_heap_s *heap);

/* Folds t's counter into its heap's (t leaves the heap). Under the
 * registry lock. */
void requested_retire(sc_frontend_t *t);

/* After a reset: no live block, so the sum starts again at zero. Under the
 * registry lock, with the heap otherwise unused (sc_heap_reset's rule). */
void requested_reset(struct sc_heap_s *heap);

#endif /* SCALLOC_REQUESTED_H */
