/* Checked mode: the allocation bitmap of a span (check.h). */
#include "check.h"

#include <string.h>

#include "annotate.h"
#include "span.h"

static _Atomic uint64_t *bitmap_of(span_t *s)
{
    /* Right after the header, before the blocks (span.c). */
    return (_Atomic uint64_t *)(void *)(span_base(s) + SPAN_LEAD);
}

void check_span_init(span_t *s)
{
    _Atomic uint64_t *bits = bitmap_of(s);
    annotate_span_meta((void *)bits, span_bitmap_bytes(span_capacity(s)));
    for (size_t i = 0; i < span_bitmap_bytes(span_capacity(s)) / 8; i++)
        atomic_store_explicit(&bits[i], 0, memory_order_relaxed);
}

bool check_block_allocate(span_t *s, block_t *b)
{
    block_t *next = block_next(b);
    if (next != NULL && !span_is_block_start(s, (uintptr_t)next))
        return false;
    size_t i = span_block_index(s, b);
    /* relaxed: the bitmap is a check, ordered with the block itself by the
     * free lists' own synchronisation. */
    uint64_t old = atomic_fetch_or_explicit(&bitmap_of(s)[i / 64], (uint64_t)1 << (i % 64),
                                            memory_order_relaxed);
    if (old >> (i % 64) & 1)
        return false;
    if (next != NULL) {
        size_t j = span_block_index(s, next);
        uint64_t w = atomic_load_explicit(&bitmap_of(s)[j / 64], memory_order_relaxed);
        if (w >> (j % 64) & 1) {
            /* The link points at a live block: undo and refuse. */
            atomic_fetch_and_explicit(&bitmap_of(s)[i / 64], ~((uint64_t)1 << (i % 64)),
                                      memory_order_relaxed);
            return false;
        }
    }
    return true;
}

bool check_block_free(span_t *s, block_t *b)
{
    size_t i = span_block_index(s, b);
    uint64_t old = atomic_fetch_and_explicit(&bitmap_of(s)[i / 64], ~((uint64_t)1 << (i % 64)),
                                             memory_order_relaxed);
    return (old >> (i % 64) & 1) != 0;
}
