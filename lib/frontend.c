/* Frontend slow paths: refilling a class's hot span, and every free that
 * is not a local free into a hot span. */
#include "frontend.h"

#include <errno.h>

#include "arena.h"
#include "error.h"
#include "huge.h"
#include "span.h"
#include "span_pool.h"

/* An exhausted hot span takes its remote frees back when at least this
 * share of it is waiting; fewer would mean coming back here almost at
 * once, so the span floats instead and refills in peace. */
static uint32_t take_threshold(const span_t *s)
{
    uint32_t n = s->capacity / 16;
    return n ? n : 1;
}

/* A span for class cls, HOT for t: a reusable one first, then the pool,
 * then a fresh virtual span. */
static span_t *frontend_new_span(sc_frontend_t *t, unsigned cls)
{
    struct sc_heap_s *heap = t->heap;
    span_t *s = span_adopt_reusable(heap, cls);
    if (s == NULL) {
        s = span_pool_take(heap, t->pool_slot);
        if (s == NULL)
            s = arena_take_span(heap);
        if (s == NULL)
            return NULL;
        if (!span_init_blocks(s, heap, cls)) {
            span_pool_put(heap, s, t->pool_slot);
            errno = ENOMEM;
            return NULL;
        }
    }
    address_map_set(s, (uintptr_t)t);
    return s;
}

/* Gives up the hot span of cls (exhausted). */
static void frontend_drop_hot(sc_frontend_t *t, unsigned cls)
{
    span_t *s = t->hot[cls];
    t->hot[cls] = &span_empty;
    address_map_set(s, (uintptr_t)t->heap | MAP_SPAN);
    span_give_up(s, t->pool_slot);
}

void *frontend_alloc_slow(sc_frontend_t *t, size_t n)
{
    if (n > SIZE_CLASS_MAX)
        return huge_alloc(t, n);
    unsigned cls = size_class_of(n);
    for (;;) {
        span_t *s = t->hot[cls];
        if (s != &span_empty) {
            if (s->free == NULL && !span_take_remote(s, take_threshold(s)) &&
                !span_carve(s))
                frontend_drop_hot(t, cls);
            else if (s->free != NULL)
                break;
        }
        s = frontend_new_span(t, cls);
        if (s == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        t->hot[cls] = s;
    }
    span_t *s = t->hot[cls];
    block_t *b = s->free;
    s->free = b->next;
    counter_add(&t->counters[cls].allocs, 1);
    return b;
}

/* Why p, whose map word is `word`, is not a block t may free. */
static sc_error_t classify_bad_pointer(sc_frontend_t *t, uintptr_t a, uintptr_t word)
{
    if (word == 0)
        return SC_ERR_FOREIGN_POINTER;
    if (address_map_heap(word, a) != t->heap)
        return SC_ERR_OTHER_HEAP;
    return SC_ERR_INTERIOR_POINTER;
}

void frontend_free_slow(sc_frontend_t *t, void *p, const char *call)
{
    if (p == NULL)
        return;
    uintptr_t a = (uintptr_t)p;
    uintptr_t word = address_map_get(a);
    if ((word & MAP_TAGS) == MAP_HUGE_ALIGNED && address_map_heap(word, a) == t->heap) {
        huge_free(t, huge_header_of(a, word), p, call);
        return;
    }
    if (word == 0 || (word & MAP_TAGS) == MAP_RESERVED) {
        sc_error_t err = classify_bad_pointer(t, a, word);
        if (err == SC_ERR_INTERIOR_POINTER && (a & 15) == 0 && !huge_contains(t->heap, a))
            err = SC_ERR_FOREIGN_POINTER;
        error_report(err, call, t->heap, p);
        return;
    }
    span_t *s = (span_t *)(a & ~(uintptr_t)SPAN_MASK);
    if (s->heap != t->heap) {
        error_report(SC_ERR_OTHER_HEAP, call, t->heap, p);
        return;
    }
    if (s->kind == SPAN_KIND_HUGE) {
        huge_free(t, s, p, call);
        return;
    }
    if (s->kind != SPAN_KIND_BLOCKS || !span_is_block_start(s, a)) {
        error_report(SC_ERR_INTERIOR_POINTER, call, t->heap, p);
        return;
    }
    block_t *b = p;
    unsigned cls = s->size_class;
    if (word == (uintptr_t)t) {
        /* Our own hot span: the fast path only declined a double free. */
        if (b == s->free) {
            error_report(SC_ERR_DOUBLE_FREE, call, t->heap, p);
            return;
        }
        b->next = s->free;
        s->free = b;
    } else {
        sc_error_t err = span_free_remote(s, b, t->pool_slot);
        if (err != SC_ERR_NONE) {
            error_report(err, call, t->heap, p);
            return;
        }
    }
    counter_add(&t->counters[cls].frees, 1);
}
