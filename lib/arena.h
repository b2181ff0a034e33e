/*
 * Arena regions and virtual spans (types.h, "HEAPS AND REGIONS"): reserving
 * regions, bumping fresh spans and runs of spans out of them, committing
 * address space against the heap's limit, and the per-span bookkeeping of
 * the release policy: which free spans keep committed pages and since when
 * ("span info"), which are cold, and giving pages back in contiguous ranges.
 */
#ifndef SCALLOC_ARENA_H
#define SCALLOC_ARENA_H

#include "address_map.h"
#include "os.h"
#include "types.h"

/* Reserves the heap's first region. false (errno = ENOMEM) if no address
 * space could be had even at the smallest region size. */
bool arena_init(struct sc_heap_s *heap);

/* A never-used span of the heap, its first page committed and its map
 * word set to heap | MAP_SPAN; NULL (errno = ENOMEM) when address space or
 * the heap's limit runs out. Lock-free unless a new region is needed. */
span_t *arena_take_span(struct sc_heap_s *heap);

/* `count` contiguous never-used spans for a huge block, committed for
 * `bytes` from the first span's start; NULL with errno = ENOMEM. */
span_t *arena_take_run(struct sc_heap_s *heap, size_t count, size_t bytes);

/* Grows the run of `count` spans at s by `more` never-used spans right after
 * it, if s ends where its region's bump pointer is and the region has room
 * (the address space after it was never handed out). Commits nothing. */
bool arena_extend_run(struct sc_heap_s *heap, span_t *s, size_t count, size_t more);

/* Makes sure [s, s + bytes) is read-write, charging the heap's limit.
 * false if the limit or the kernel refuses; nothing changed then. */
bool arena_commit(struct sc_heap_s *heap, span_t *s, size_t bytes);

/* Charges / uncharges bytes to the heap's committed bytes and limit. */
bool arena_charge(struct sc_heap_s *heap, size_t bytes);
void arena_uncharge(struct sc_heap_s *heap, size_t bytes);

/* Makes [p, p + bytes) writable: nothing to do unless the kernel's commit
 * limit is strict (regions are writable from the start otherwise). */
bool arena_make_writable(void *p, size_t bytes);

/* Gives the pages of [s + from, s + rw_bytes) back to the OS and stops
 * charging them: with a strict commit limit they become inaccessible again
 * (rw_bytes = from), otherwise they stay writable so mappings do not split. */
void arena_give_back(struct sc_heap_s *heap, span_t *s, size_t from);

/* The same outside a strict commit limit, the range added to `batch`: the
 * caller flushes it before anyone may touch those pages again. */
void arena_give_back_to_batch(struct sc_heap_s *heap, span_t *s, size_t from,
                              os_release_batch_t *batch);

/* Writable bytes to make a fresh span or run of `bytes` (see
 * os_strict_commit). */
size_t arena_writable_extent(size_t bytes, size_t spans);

/* Stops charging s's committed bytes beyond `keep` (its pages were given
 * back with os_release or os_decommit). */
void arena_uncommit(struct sc_heap_s *heap, span_t *s, size_t keep);

/* Commits the first page of a span that has none (a new free run's first
 * span inside a huge run, a cold span), charging the limit; sets its
 * `committed`. */
bool arena_commit_first_page(struct sc_heap_s *heap, span_t *s);

/* ASan builds: opens every range scalloc poisoned in the heap's regions
 * (before they are unmapped or rewound). Nothing in other builds. */
void arena_unpoison_used(struct sc_heap_s *heap);

/* Gives every region of the heap back to the kernel and clears their map
 * words. The heap must be unused. */
void arena_destroy(struct sc_heap_s *heap);

/* Reset: region r's bump pointer back to `end`, its span info and cold
 * bits cleared (the caller gave the used part above `end` back). */
void arena_rewind(region_t *r, char *end);

/* Bytes resident in the heap's regions, for statistics: mincore over the
 * extents where the heap keeps pages (each span's committed bytes or
 * retained pages, the regions' metadata), one call per run of adjacent
 * extents. Its cost follows the memory the heap holds, not the address
 * space it ever used. */
size_t arena_resident_bytes(struct sc_heap_s *heap);

/* The same over every page of every span the regions ever handed out (the
 * consistency check: on a heap at rest the two agree, or a page is
 * resident that the heap does not account for). */
size_t arena_resident_bytes_anywhere(struct sc_heap_s *heap);

/* The first span of region r that can serve blocks (after the meta spans). */
static inline char *arena_first_span(const region_t *r)
{
    return r->base + r->meta_spans * SPAN_SIZE;
}

/* Holds off region placement inside the header window (fork takes every
 * lock before it forks; the order is a heap's grow_lock, this, the address
 * map's range lock). */
void arena_lock_placement(void);
void arena_unlock_placement(void);

/* The region of the heap that holds p (any address inside the heap's
 * regions), or NULL. Walks the heap's few regions. */
region_t *arena_region_of(struct sc_heap_s *heap, const void *p);

/* ------------------------------------------------------------------------ */
/* Span info: per span, for the release policy                              */
/* ------------------------------------------------------------------------ */

/* A word per span of a region: since (coarse ms the span became unused) in
 * bits 0..31, committed pages from the span start in bits 32..47, flags. */
#define INFO_POOLED ((uint64_t)1 << 56)    /* in the span pool, pages kept */
#define INFO_HUGE_FREE ((uint64_t)1 << 57) /* inside a free huge run */
#define INFO_HUGE_HEAD ((uint64_t)1 << 58) /* first span of a free huge run:
                                              its first page stays */

static inline uint64_t info_word(uint64_t flags, size_t pages, uint32_t since)
{
    return flags | ((uint64_t)pages << 32) | since;
}

static inline size_t info_pages(uint64_t w)
{
    return (size_t)((w >> 32) & 0xFFFF);
}

static inline uint32_t info_since(uint64_t w)
{
    return (uint32_t)w;
}

/* Whether coarse time a is before b (wrapping clock). */
static inline bool time_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

/* The info word of the span whose memory starts at p (inside one of heap's
 * regions); the words of the region's following spans follow it. */
_Atomic uint64_t *arena_info(struct sc_heap_s *heap, const char *p);

/* The info word of span s (and its region's following spans'). */
static inline _Atomic uint64_t *arena_span_info(struct sc_heap_s *heap, const span_t *s)
{
    return arena_info(heap, span_base(s));
}

/* Retained pages of the spans whose info has a flag of `kinds`
 * (INFO_POOLED, INFO_HUGE_FREE; huge runs' first pages are not counted)
 * that became unused before `cutoff`, in bytes; *oldest gets the earliest
 * `since` of all of them (or `now` if none). An estimate while other
 * threads run (relaxed reads). */
size_t arena_retained_before(struct sc_heap_s *heap, uint32_t cutoff, uint32_t now,
                             uint32_t *oldest, uint64_t kinds);

/* Under retain_lock: gives back the pages of free huge spans that became
 * unused before `cutoff` (all of them if `all`), in contiguous ranges, one
 * call each; keeps each free run's first page. Returns the bytes given
 * back (uncharged and taken off unused_bytes). */
size_t arena_purge_huge(struct sc_heap_s *heap, uint32_t cutoff, bool all);

/* Under retain_lock: marks the pooled span s, which the caller holds
 * exclusively (taken off the pool's stacks), to be given back whole by the
 * next arena_purge_flush. */
void arena_purge_mark(struct sc_heap_s *heap, span_t *s);

/* Under retain_lock: gives back every marked span, first page included,
 * in contiguous ranges (one call per range), and makes them cold. Returns
 * the bytes given back (uncharged and taken off unused_bytes). */
size_t arena_purge_flush(struct sc_heap_s *heap);

/* A cold span made usable again (its first page committed and charged
 * afresh, its map word back to a span with a header), lowest address
 * first; NULL if there is none or the heap's limit refuses the page. */
span_t *arena_take_cold(struct sc_heap_s *heap);

/* Calls fn for every span of the heap that has a header (block spans and
 * huge heads), in address order within each region. Spans bumped while it
 * runs may be missed. */
typedef void arena_span_fn(span_t *s, uintptr_t word, void *arg);
void arena_for_each_span(struct sc_heap_s *heap, arena_span_fn *fn, void *arg);

/* ------------------------------------------------------------------------ */
/* Marked spans: to be looked at again later                                */
/* ------------------------------------------------------------------------ */

/* What marks are for: floating spans DRAINED by remote frees, whose
 * memory goes if they stay so (span_pool.c, span_pool_release_drained).
 * Spans given up DETACHED had marks of their own until stop 35. */

/* Marks the block span s (any thread): the next sweep but one looks at
 * it. */
void arena_mark(struct sc_heap_s *heap, span_t *s);

/* Calls fn for every span marked before the previous sweep (once each:
 * their marks are cleared), then ages the marks made since. True if some
 * marks are left for the next sweep. One sweep at a time (the caller's
 * election); marks may be added meanwhile. A mark may be stale: fn must
 * look at the span's state. */
typedef void arena_mark_fn(span_t *s, void *arg);
bool arena_sweep_marks(struct sc_heap_s *heap, arena_mark_fn *fn, void *arg);

/* The election of a sweeper (or of any look elected the same way,
 * registry.c) at coarse time `now`: true for one caller per `period`
 * while `marked` says some marks may be waiting; that caller's sweep then
 * clears `marked` (seq_cst: a mark made meanwhile sets it again after, so
 * the flag is never lost) and *due moves a period on. */
static inline bool arena_sweep_elect(_Atomic uint32_t *marked, _Atomic uint32_t *due,
                                     uint32_t now, uint32_t period)
{
    if (atomic_load_explicit(marked, memory_order_relaxed) == 0)
        return false;
    uint32_t when = atomic_load_explicit(due, memory_order_relaxed);
    if (time_before(now, when))
        return false;
    /* One sweeper per period: the thread that moves the due time. */
    if (!atomic_compare_exchange_strong_explicit(due, &when, now + period, memory_order_relaxed,
                                                 memory_order_relaxed))
        return false;
    atomic_store_explicit(marked, 0, memory_order_seq_cst);
    return true;
}

#endif /* SCALLOC_ARENA_H */
