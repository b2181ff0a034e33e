/*
 * Requested-size tracking (SC_HEAP_TRACK_REQUESTED, SCALLOC_TRACK_REQUESTED=1,
 * and every checked heap).
 *
 * Class blocks have no header, so the size a caller asked for is lost once
 * the class is picked. A tracking heap keeps it: each block span carries a
 * table between its header and its blocks (after the checked-mode bitmap,
 * if any; span.c sizes both) with one
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

#include "check.h"
#include "span.h"
#include "types.h"

static inline bool requested_enabled(const struct sc_heap_s *heap)
{
    return (heap->flags & (SC_HEAP_TRACK_REQUESTED | SC_HEAP_CHECKED)) != 0;
}

/* The table: after the header and the checked-mode bitmap, before the
 * blocks (span.c). */
static inline char *requested_table_of(const span_t *s)
{
    char *table = span_base(s) + SPAN_LEAD;
    if (check_enabled(s->heap))
        table += span_bitmap_bytes(span_capacity(s));
    return table;
}

/* Exclusive holder: makes the table of a span being set up writable. */
void requested_span_init(span_t *s);

/* The slack recorded for live block b (read before b is freed: once it is,
 * the owner may hand it out again and overwrite the entry). */
static inline uint32_t requested_slack(const span_t *s, const block_t *b)
{
    char *table = requested_table_of(s);
    size_t i = span_block_index(s, b);
    switch (span_slack_entry_bytes(s->block_size)) {
    case 1: return ((uint8_t *)table)[i];
    case 2: return ((uint16_t *)(void *)table)[i];
    default: return ((uint32_t *)(void *)table)[i];
    }
}

static inline void requested_entry_set(const span_t *s, const block_t *b, uint32_t slack)
{
    char *table = requested_table_of(s);
    size_t i = span_block_index(s, b);
    switch (span_slack_entry_bytes(s->block_size)) {
    case 1: ((uint8_t *)table)[i] = (uint8_t)slack; break;
    case 2: ((uint16_t *)(void *)table)[i] = (uint16_t)slack; break;
    default: ((uint32_t *)(void *)table)[i] = slack; break;
    }
}

/* Adds delta to t's counter: a relaxed load and store, no read-modify-
 * write (only t writes it; statistics read it). Sums wrap modulo 2^64 on
 * purpose: a frontend that frees more than it allocated goes "negative". */
static inline void requested_counter_add(sc_frontend_t *t, size_t delta)
{
    size_t v = atomic_load_explicit(&t->slack, memory_order_relaxed);
    atomic_store_explicit(&t->slack, v + delta, memory_order_relaxed);
}

/* Records that b, just handed out by owner t, holds n requested bytes. */
static inline void requested_on_alloc(sc_frontend_t *t, span_t *s, const block_t *b, size_t n)
{
    uint32_t slack = (uint32_t)(s->block_size - n);
    requested_entry_set(s, b, slack);
    requested_counter_add(t, slack);
}

/* Records that t (any thread's frontend) freed a block of that slack. */
static inline void requested_on_free(sc_frontend_t *t, uint32_t slack)
{
    requested_counter_add(t, 0 - (size_t)slack);
}

/* Records that live block b now holds n requested bytes (resized in place,
 * or handed out for an aligned request smaller than its class); t is the
 * caller's frontend. */
static inline void requested_on_resize(sc_frontend_t *t, span_t *s, const block_t *b, size_t n)
{
    uint32_t slack = (uint32_t)(s->block_size - n);
    requested_counter_add(t, (size_t)slack - requested_slack(s, b));
    requested_entry_set(s, b, slack);
}

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
