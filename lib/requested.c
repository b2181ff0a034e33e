/* Requested-size tracking: the per-span slack table and the counters
 * (requested.h). */
#include "requested.h"

#include "annotate.h"
#include "check.h"
#include "frontend.h"
#include "span.h"

/* Entry width for a block size: the slack of a block is below its size
 * (a request of 0 bytes gets the smallest class, 16 bytes), so it fits in
 * the smallest unsigned type that holds the block size itself. */
static size_t entry_bytes(size_t block_size)
{
    if (block_size <= UINT8_MAX)
        return 1;
    if (block_size <= UINT16_MAX)
        return 2;
    return 4;
}

size_t requested_table_bytes(size_t block_size, uint32_t capacity)
{
    return (entry_bytes(block_size) * capacity + 7) & ~(size_t)7;
}

/* The table: past the blocks, 8-aligned, after the checked-mode bitmap. */
static char *table_of(const span_t *s)
{
    uintptr_t end = ((uintptr_t)s->bump_end + 7) & ~(uintptr_t)7;
    if (check_enabled(s->heap))
        end += check_bitmap_bytes(span_capacity(s));
    return (char *)end;
}

void requested_span_init(span_t *s)
{
    annotate_span_tail(table_of(s), requested_table_bytes(s->block_size, span_capacity(s)));
}

static size_t block_index(const span_t *s, const block_t *b)
{
    return (size_t)((const char *)b - ((const char *)s + SPAN_HEADER_SIZE)) / s->block_size;
}

uint32_t requested_slack(const span_t *s, const block_t *b)
{
    char *table = table_of(s);
    size_t i = block_index(s, b);
    switch (entry_bytes(s->block_size)) {
    case 1: return ((uint8_t *)table)[i];
    case 2: return ((uint16_t *)(void *)table)[i];
    default: return ((uint32_t *)(void *)table)[i];
    }
}

static void entry_set(const span_t *s, const block_t *b, uint32_t slack)
{
    char *table = table_of(s);
    size_t i = block_index(s, b);
    switch (entry_bytes(s->block_size)) {
    case 1: ((uint8_t *)table)[i] = (uint8_t)slack; break;
    case 2: ((uint16_t *)(void *)table)[i] = (uint16_t)slack; break;
    default: ((uint32_t *)(void *)table)[i] = slack; break;
    }
}

/* The owner's counter: relaxed load and store, no read-modify-write (only
 * t writes it; statistics read it). Sums wrap modulo 2^64 on purpose: a
 * frontend that frees more than it allocated goes "negative". */
static void slack_add(sc_frontend_t *t, size_t delta)
{
    size_t v = atomic_load_explicit(&t->slack, memory_order_relaxed);
    atomic_store_explicit(&t->slack, v + delta, memory_order_relaxed);
}

void requested_on_alloc(sc_frontend_t *t, span_t *s, const block_t *b, size_t n)
{
    uint32_t slack = (uint32_t)(s->block_size - n);
    entry_set(s, b, slack);
    slack_add(t, slack);
}

void requested_on_free(sc_frontend_t *t, uint32_t slack)
{
    slack_add(t, 0 - (size_t)slack);
}

void requested_on_resize(sc_frontend_t *t, span_t *s, const block_t *b, size_t n)
{
    uint32_t slack = (uint32_t)(s->block_size - n);
    slack_add(t, (size_t)slack - requested_slack(s, b));
    entry_set(s, b, slack);
}

size_t requested_heap_slack(const struct sc_heap_s *heap)
{
    size_t sum = heap->retired_slack;
    for (sc_frontend_t *f = heap->frontends; f; f = f->heap_next)
        sum += atomic_load_explicit(&f->slack, memory_order_relaxed);
    return sum;
}

void requested_retire(sc_frontend_t *t)
{
    t->heap->retired_slack += atomic_load_explicit(&t->slack, memory_order_relaxed);
    atomic_store_explicit(&t->slack, 0, memory_order_relaxed);
}

void requested_reset(struct sc_heap_s *heap)
{
    heap->retired_slack = 0;
    heap->retired_slack = 0 - requested_heap_slack(heap);
}
