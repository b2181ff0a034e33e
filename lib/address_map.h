/*
 * The process-wide address map: one word per 2 MiB of user address space
 * (see types.h, "THE ADDRESS MAP"), and beside it the span header table
 * (types.h, "THE SPAN HEADER TABLE"). Lookups never touch the looked-up
 * address, so any pointer value may be asked about.
 */
#ifndef SCALLOC_ADDRESS_MAP_H
#define SCALLOC_ADDRESS_MAP_H

#include "types.h"

/* Tags in the low bits of a map word; an untagged non-zero word is the
 * frontend that owns that span (HOT or FLOATING) in a heap that is neither
 * checked nor tracking. Heaps and frontends are 64-byte aligned. */
#define MAP_SPAN ((uintptr_t)1)     /* heap | MAP_SPAN: span with a header */
#define MAP_RESERVED ((uintptr_t)2) /* heap | MAP_RESERVED: no header here */
/* heap | MAP_HUGE_ALIGNED: the first data span of a huge block aligned to
 * 2 MiB or more; its header is the span before. */
#define MAP_HUGE_ALIGNED ((uintptr_t)3)
#define MAP_TAGS ((uintptr_t)3)

extern SC_INTERNAL _Atomic uintptr_t *address_map;

/* The header table's origin: span_at(a) = origin + (a >> 21 << 8). The
 * table itself starts at origin + (window_lo >> 21 << 8); in a full table
 * window_lo is 0. An address, not a pointer into one object (the window's
 * origin may lie below the table), hence an integer. */
extern SC_INTERNAL uintptr_t span_table_origin;

/* Makes lookups possible: reserves the map and the header table;
 * idempotent, thread-safe. false if the address space cannot be reserved. */
bool address_map_init(void);

static inline uintptr_t address_map_get(uintptr_t a)
{
    _Atomic uintptr_t *map = address_map;
    if (unlikely((a >> ADDRESS_BITS) != 0 || map == NULL))
        return 0;
    /* acquire: a span header written before its word was published (with
     * release) is visible to whoever reads the word. */
    return atomic_load_explicit(&map[a >> SPAN_SHIFT], memory_order_acquire);
}

/* The header of the span whose 2 MiB hold p. Arithmetic only: valid to
 * dereference where p lies in a registered region (its map word is not 0),
 * which every caller knows. */
static inline span_t *span_at(const void *p)
{
    return (span_t *)(span_table_origin +
                      (((uintptr_t)p >> SPAN_SHIFT) << SPAN_HEADER_SHIFT));
}

/* The span's memory: the 2 MiB whose header s is. */
static inline char *span_base(const span_t *s)
{
    return (char *)((((uintptr_t)s - span_table_origin) >> SPAN_HEADER_SHIFT) << SPAN_SHIFT);
}

/* Sets the word of the 2 MiB holding p (in a registered region). */
static inline void address_map_set_at(const void *p, uintptr_t word)
{
    atomic_store_explicit(&address_map[(uintptr_t)p >> SPAN_SHIFT], word, memory_order_release);
}

/* Sets span s's word. */
static inline void address_map_set(const span_t *s, uintptr_t word)
{
    address_map_set_at(span_base(s), word);
}

/* Sets the words of [base, base + size) (2 MiB aligned) to `word`, making
 * the map's pages writable first where needed. false if they cannot be.
 * Clearing (word 0) also gives back the pages of map and header table that
 * no registered span uses any more. */
bool address_map_set_range(const void *base, size_t size, uintptr_t word);

/* Makes the header table's pages for the spans of [base, base + size)
 * writable where the table was reserved read-only (a strict commit limit).
 * false if they cannot be. */
bool address_map_headers_writable(const void *base, size_t size);

/* Whether the header table covers only a window of the address space
 * (ulimit -v): then every region must lie in [*lo, *hi). */
bool address_map_window(char **lo, char **hi);

/* Holds off range changes (fork takes every lock before it forks). */
void address_map_lock_ranges(void);
void address_map_unlock_ranges(void);

/* The heap of a map word, whatever its tag. */
static inline struct sc_heap_s *address_map_heap(uintptr_t word, uintptr_t a)
{
    if (word == 0)
        return NULL;
    if ((word & MAP_TAGS) == 0) /* owned: the span header knows */
        return span_at((const void *)a)->heap;
    return (struct sc_heap_s *)(word & ~MAP_TAGS);
}

#endif /* SCALLOC_ADDRESS_MAP_H */
