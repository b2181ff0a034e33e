/*
 * The thread-local frontend: the allocation and free fast paths (inline,
 * no atomic read-modify-write, no lock) and the slow paths behind them.
 */
#ifndef SCALLOC_FRONTEND_H
#define SCALLOC_FRONTEND_H

#include "address_map.h"
#include "annotate.h"
#include "size_class.h"
#include "span.h"
#include "types.h"

/* Update of a counter only one thread writes: a relaxed load and store, so
 * no lock prefix; other threads read a value that was current. */
static inline void counter_set(_Atomic uint32_t *c, uint32_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline uint32_t counter_get(const _Atomic uint32_t *c)
{
    return atomic_load_explicit((_Atomic uint32_t *)c, memory_order_relaxed);
}

/* Owner (t holds s HOT or FLOATING): hands out the head of s's local free
 * list, which is not empty, and counts it live. */
static inline block_t *frontend_local_pop(sc_frontend_t *t, span_t *s)
{
    block_t *b = s->free;
    s->free = block_next(b);
    counter_set(&s->used, counter_get(&s->used) + 1);
    annotate_alloc(t->heap, b, s->block_size);
    return b;
}

/* Owner: puts block b of s back on s's local free list; returns the blocks
 * of s still counted live by the owner. */
static inline uint32_t frontend_local_push(sc_frontend_t *t, span_t *s, block_t *b)
{
    annotate_free(t->heap, b, s->block_size);
    block_set_next(b, s->free);
    s->free = b;
    uint32_t used = counter_get(&s->used) - 1;
    counter_set(&s->used, used);
    return used;
}

/* Slow paths (frontend.c). `call` names the API call for error messages. */
void *frontend_alloc_slow(sc_frontend_t *t, size_t n);
void frontend_free_slow(sc_frontend_t *t, void *p, const char *call);

/* Gives t's hot spans that hold no live block back to the pool (their
 * memory with them). Owner only. */
void frontend_trim(sc_frontend_t *t);

/* A block from t's hot span for n, or NULL when the slow path must run. */
static inline void *frontend_alloc_fast(sc_frontend_t *t, size_t n)
{
    /* Small sizes first: one compare and a table load to the class. */
    unsigned cls;
    if (likely(n <= SIZE_CLASS_TABLE_MAX))
        cls = size_class_small_table[(n + 15) >> 4];
    else if (n <= SIZE_CLASS_MAX)
        cls = size_class_of(n);
    else
        return NULL;
    {
        span_t *s = t->hot[cls];
        if (likely(s->free != NULL))
            return frontend_local_pop(t, s);
    }
    return NULL;
}

static inline void *frontend_alloc(sc_frontend_t *t, size_t n)
{
    void *b = frontend_alloc_fast(t, n);
    return likely(b != NULL) ? b : frontend_alloc_slow(t, n);
}

/* The map word of t's floating spans (see frontend_t.floating). */
static inline uintptr_t frontend_floating_word(const sc_frontend_t *t)
{
    return (uintptr_t)t + CACHE_LINE;
}

/* Frees block p of t's floating span s (owner, no atomics); false if p is
 * not a block t may free there (the slow path reports why). */
bool frontend_free_floating(sc_frontend_t *t, span_t *s, void *p);

/* Frees p, a block of a span another frontend owns (or none does), with
 * one CAS; false if p is anything else or wrong (the slow path reports
 * why). */
bool frontend_free_remote(sc_frontend_t *t, void *p);

/* The frees the fast path leaves, cheapest first: into t's floating spans
 * (no atomics), into others' spans (one CAS), then everything else with
 * its checks and error reports. t must be live. */
void frontend_free_other(sc_frontend_t *t, void *p, const char *call);

/* Frees p if it is a block of a span t owns and nothing is wrong; false
 * sends the caller to the slow path. */
static inline bool frontend_free_fast(sc_frontend_t *t, void *p)
{
    uintptr_t a = (uintptr_t)p;
    /* The span is derived from the map index, not from p: a p above the
     * user address space aliases some index, and then fails the range check
     * below instead of being dereferenced. One map word tells whether t
     * holds the span hot; anything else (NULL, foreign, another thread's,
     * huge, misuse) goes to the slow path. */
    uintptr_t idx = (a >> SPAN_SHIFT) & (MAP_ENTRIES - 1);
    /* relaxed: t wrote this word itself, nothing to synchronise with. */
    if (unlikely(atomic_load_explicit(&address_map[idx], memory_order_relaxed) != (uintptr_t)t))
        return false;
    span_t *s = (span_t *)(idx << SPAN_SHIFT);
    block_t *b = p;
    /* A carved block start (not the header, not an interior pointer, not
     * the never-used part), and not already the head of the free list (the
     * cheap double free). */
    if (unlikely(!span_is_block_start_plain(s, a) || b == s->free))
        return false;
    frontend_local_push(t, s, b);
    return true;
}

#endif /* SCALLOC_FRONTEND_H */
