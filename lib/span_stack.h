/*
 * A lock-free Treiber stack of spans with an ABA tag. The head word packs
 * the span's memory address (2 MiB aligned, below 2^47; its header is found
 * through the address map, span_at) with a 38-bit counter in the low 21
 * bits and the top 17 bits; every successful pop bumps the counter,
 * so a popper that was preempted between reading the head and its CAS
 * cannot succeed against a head that was popped and pushed back meanwhile.
 */
#ifndef SCALLOC_SPAN_STACK_H
#define SCALLOC_SPAN_STACK_H

#include "address_map.h"
#include "types.h"

#define STACK_ADDR_MASK ((((uint64_t)1 << ADDRESS_BITS) - 1) & ~(uint64_t)SPAN_MASK)

static inline span_t *span_stack_word_span(uint64_t w)
{
    uint64_t base = w & STACK_ADDR_MASK;
    return base ? span_at((const void *)(uintptr_t)base) : NULL;
}

static inline uint64_t span_stack_word_tag(uint64_t w)
{
    return (w & SPAN_MASK) | ((w >> ADDRESS_BITS) << SPAN_SHIFT);
}

/* The head word for the span whose memory is at base (NULL: none). */
static inline uint64_t span_stack_word_at(const char *base, uint64_t tag)
{
    return (uint64_t)(uintptr_t)base | (tag & SPAN_MASK) |
           ((tag >> SPAN_SHIFT) << ADDRESS_BITS);
}

/* The head word for span s (NULL: the empty stack). */
static inline uint64_t span_stack_word(span_t *s, uint64_t tag)
{
    return span_stack_word_at(s ? span_base(s) : NULL, tag);
}

static inline void span_stack_push(span_stack_t *st, span_t *s)
{
    uint64_t old = atomic_load_explicit(&st->head, memory_order_relaxed);
    for (;;) {
        atomic_store_explicit(&s->stack_next, span_stack_word_span(old),
                              memory_order_relaxed);
        /* release: the span's header and link are visible to the popper.
         * The tag is kept: only pops need to change it (a push cannot be
         * fooled by ABA, it only needs the current head). */
        uint64_t next = span_stack_word_at(span_base(s), span_stack_word_tag(old));
        if (atomic_compare_exchange_weak_explicit(&st->head, &old, next,
                                                  memory_order_release,
                                                  memory_order_relaxed))
            return;
    }
}

static inline span_t *span_stack_pop(span_stack_t *st)
{
    /* acquire: pairs with the push's release, so the popped span's link and
     * header are those its pusher wrote. */
    uint64_t old = atomic_load_explicit(&st->head, memory_order_acquire);
    for (;;) {
        span_t *s = span_stack_word_span(old);
        if (s == NULL)
            return NULL;
        /* s may have been popped and reused meanwhile; its header stays
         * mapped for the heap's life, so the read is safe, and the tag makes
         * the CAS fail if the head changed. */
        span_t *next = atomic_load_explicit(&s->stack_next, memory_order_relaxed);
        uint64_t w = span_stack_word(next, span_stack_word_tag(old) + 1);
        if (atomic_compare_exchange_weak_explicit(&st->head, &old, w,
                                                  memory_order_acquire,
                                                  memory_order_acquire))
            return s;
    }
}

#endif /* SCALLOC_SPAN_STACK_H */
