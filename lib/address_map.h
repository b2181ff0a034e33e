/*
 * The process-wide address map: one word per 2 MiB of user address space
 * (see types.h, "THE ADDRESS MAP"). Lookups never touch the looked-up
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

/* Makes lookups possible; idempotent, thread-safe. false if the map's
 * address space cannot be reserved. */
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

static inline void address_map_set(const void *span, uintptr_t word)
{
    atomic_store_explicit(&address_map[(uintptr_t)span >> SPAN_SHIFT], word,
                          memory_order_release);
}

/* Sets the words of [base, base + size) (2 MiB aligned) to `word`, making
 * the map's pages writable first where needed. false if they cannot be. */
bool address_map_set_range(const void *base, size_t size, uintptr_t word);

/* Holds off range changes (fork takes every lock before it forks). */
void address_map_lock_ranges(void);
void address_map_unlock_ranges(void);

/* The heap of a map word, whatever its tag. */
static inline struct sc_heap_s *address_map_heap(uintptr_t word, uintptr_t a)
{
    if (word == 0)
        return NULL;
    if ((word & MAP_TAGS) == 0) /* owned: the span header knows */
        return ((span_t *)(a & ~(uintptr_t)SPAN_MASK))->heap;
    return (struct sc_heap_s *)(word & ~MAP_TAGS);
}

#endif /* SCALLOC_ADDRESS_MAP_H */
