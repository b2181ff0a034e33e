/*
 * Arena regions and virtual spans (types.h, "HEAPS AND REGIONS"): reserving
 * regions, bumping fresh spans and runs of spans out of them, committing
 * address space against the heap's limit.
 */
#ifndef SCALLOC_ARENA_H
#define SCALLOC_ARENA_H

#include "types.h"

/* Reserves the heap's first region. false (errno = ENOMEM) if no address
 * space could be had even at the smallest region size. */
bool arena_init(struct sc_heap_s *heap);

/* A never-used span of the heap, its header page committed and its map
 * word set to heap | MAP_SPAN; NULL (errno = ENOMEM) when address space or
 * the heap's limit runs out. Lock-free unless a new region is needed. */
span_t *arena_take_span(struct sc_heap_s *heap);

/* `count` contiguous never-used spans for a huge block, committed for
 * `bytes` from the first span's start; NULL with errno = ENOMEM. */
span_t *arena_take_run(struct sc_heap_s *heap, size_t count, size_t bytes);

/* Makes sure [s, s + bytes) is read-write, charging the heap's limit.
 * false if the limit or the kernel refuses; nothing changed then. */
bool arena_commit(struct sc_heap_s *heap, span_t *s, size_t bytes);

/* Gives the pages of [s + from, s + rw_bytes) back to the OS and stops
 * charging them: with a strict commit limit they become inaccessible again
 * (rw_bytes = from), otherwise they stay writable so mappings do not split. */
void arena_give_back(struct sc_heap_s *heap, span_t *s, size_t from);

/* Writable bytes to make a fresh span or run of `bytes` (see
 * os_strict_commit). */
size_t arena_writable_extent(size_t bytes, size_t spans);

/* Stops charging s's committed bytes beyond `keep` (its pages were given
 * back with os_release or os_decommit). */
void arena_uncommit(struct sc_heap_s *heap, span_t *s, size_t keep);

/* Commits the first page of a span never committed before (a new header
 * inside a huge run), charging the limit; sets its `committed`. */
bool arena_commit_header(struct sc_heap_s *heap, span_t *s);

/* ASan builds: opens every range scalloc poisoned in the heap's regions
 * (before they are unmapped or rewound). Nothing in other builds. */
void arena_unpoison_used(struct sc_heap_s *heap);

/* Gives every region of the heap back to the kernel and clears their map
 * words. The heap must be unused. */
void arena_destroy(struct sc_heap_s *heap);

/* Bytes resident in the heap's regions (walks mincore; for statistics). */
size_t arena_resident_bytes(struct sc_heap_s *heap);

/* Calls fn for every span of the heap that has a header (block spans and
 * huge heads), in address order within each region. Spans bumped while it
 * runs may be missed. */
typedef void arena_span_fn(span_t *s, uintptr_t word, void *arg);
void arena_for_each_span(struct sc_heap_s *heap, arena_span_fn *fn, void *arg);

#endif /* SCALLOC_ARENA_H */
