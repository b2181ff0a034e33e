/*
 * The thread-local frontend: the allocation and free fast paths (inline,
 * no atomic read-modify-write, no lock) and the slow paths behind them.
 */
#ifndef SCALLOC_FRONTEND_H
#define SCALLOC_FRONTEND_H

#include "address_map.h"
#include "size_class.h"
#include "span.h"
#include "types.h"

/* Counter update by the owner only: a relaxed load and store compile to a
 * plain add; readers on other threads see a value that was current. */
static inline void counter_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* Slow paths (frontend.c). `call` names the API call for error messages. */
void *frontend_alloc_slow(sc_frontend_t *t, size_t n);
void frontend_free_slow(sc_frontend_t *t, void *p, const char *call);

static inline void *frontend_alloc(sc_frontend_t *t, size_t n)
{
    if (likely(n <= SIZE_CLASS_MAX)) {
        unsigned cls = size_class_of(n);
        span_t *s = t->hot[cls];
        block_t *b = s->free;
        if (likely(b != NULL)) {
            s->free = b->next;
            counter_add(&t->counters[cls].allocs, 1);
            return b;
        }
    }
    return frontend_alloc_slow(t, n);
}

static inline void frontend_free(sc_frontend_t *t, void *p, const char *call)
{
    uintptr_t a = (uintptr_t)p;
    /* One map word tells whether t holds p's span hot; anything else (NULL,
     * foreign, other thread's, huge, misuse) goes to the slow path. */
    if (likely(address_map_get(a) == (uintptr_t)t)) {
        span_t *s = (span_t *)(a & ~(uintptr_t)SPAN_MASK);
        block_t *b = (block_t *)p;
        /* Interior or never-allocated pointers and the cheap double free
         * (b is already the list head) are checked in the slow path. */
        if (likely(span_is_block_start(s, a) && b != s->free)) {
            b->next = s->free;
            s->free = b;
            counter_add(&t->counters[s->size_class].frees, 1);
            return;
        }
    }
    frontend_free_slow(t, p, call);
}

#endif /* SCALLOC_FRONTEND_H */
