/* Frontend slow paths: refilling a class's hot span, and every free that
 * is not a local free into a hot span. */
#include "frontend.h"

#include <errno.h>

#include "arena.h"
#include "check.h"
#include "error.h"
#include "huge.h"
#include "os.h"
#include "span.h"
#include "span_pool.h"

/* An exhausted hot span takes its remote frees back when at least this
 * share of it is waiting; fewer would mean coming back here almost at
 * once, so the span floats instead and refills in peace. */
/* Hot spans of classes above this give their memory back as soon as their
 * last block is freed, instead of staying warm for the next allocation:
 * each block is big enough (80 KiB and up) that touching fresh pages costs
 * little next to using it, and a few idle hot spans would otherwise hold
 * megabytes. */
#define EAGER_RELEASE_MIN ((uint32_t)64 << 10)

static uint32_t take_threshold(const span_t *s)
{
    uint32_t n = span_capacity(s) / 16;
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
    /* Frees of a checked heap, and of big blocks, never take the fast
     * path: their spans keep the heap's word. */
    bool slow_frees = check_enabled(heap) || s->block_size > EAGER_RELEASE_MIN;
    address_map_set(s, slow_frees ? (uintptr_t)heap | MAP_SPAN : (uintptr_t)t);
    return s;
}

/* The array of hot spans the slow path works on. */
static span_t **frontend_hot_array(sc_frontend_t *t)
{
    return check_enabled(t->heap) ? t->checked_hot : t->hot;
}

/* Gives up the hot span of cls (exhausted). */
static void frontend_drop_hot(sc_frontend_t *t, span_t **hot, unsigned cls)
{
    span_t *s = hot[cls];
    hot[cls] = &span_empty;
    address_map_set(s, (uintptr_t)t->heap | MAP_SPAN);
    span_give_up(s, t->pool_slot);
}

/* Trims t if sc_heap_trim ran since it last looked. */
static void frontend_trim_if_asked(sc_frontend_t *t)
{
    /* relaxed: a late look only delays the trim to the next slow path. */
    uint64_t epoch = atomic_load_explicit(&t->heap->trim_epoch, memory_order_relaxed);
    if (unlikely(epoch != t->trim_epoch)) {
        t->trim_epoch = epoch;
        frontend_trim(t);
    }
}

/* A freed big block keeps only the page holding its free-list link: its
 * other pages go back to the OS at once, by whichever thread frees it. */
static void release_block_pages(const span_t *s, block_t *b)
{
    if (s->block_size <= EAGER_RELEASE_MIN)
        return;
    size_t page = os_page_size();
    uintptr_t lo = ((uintptr_t)b + sizeof(block_t) + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t hi = ((uintptr_t)b + s->block_size) & ~(uintptr_t)(page - 1);
    if (hi > lo)
        os_release((void *)lo, hi - lo);
}

void *frontend_alloc_slow(sc_frontend_t *t, size_t n)
{
    frontend_trim_if_asked(t);
    if (n > SIZE_CLASS_MAX)
        return huge_alloc(t, n);
    unsigned cls = size_class_of(n);
    span_t **hot = frontend_hot_array(t);
    for (;;) {
        span_t *s = hot[cls];
        if (s != &span_empty) {
            if (s->free == NULL && !span_take_remote(s, take_threshold(s)) &&
                !span_carve(s)) {
                frontend_drop_hot(t, hot, cls);
            } else if (s->free != NULL) {
                block_t *b = s->free;
                if (hot == t->checked_hot && !check_block_allocate(s, b)) {
                    /* The list cannot be trusted past here: drop it (its
                     * blocks are lost to this span) and go on. */
                    s->free = NULL;
                    error_report(SC_ERR_CORRUPTION, "sc_alloc", t->heap, b);
                    continue;
                }
                s->free = block_next(b);
                counter_set(&s->used, counter_get(&s->used) + 1);
                annotate_alloc(t->heap, b, s->block_size);
                return b;
            }
        }
        s = frontend_new_span(t, cls);
        if (s == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        hot[cls] = s;
    }
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
    if (span_kind(s) == SPAN_KIND_HUGE) {
        huge_free(t, s, p, call);
        return;
    }
    if (span_kind(s) != SPAN_KIND_BLOCKS) {
        error_report(SC_ERR_FOREIGN_POINTER, call, t->heap, p);
        return;
    }
    unsigned st = span_state(s);
    if (st != SPAN_HOT && st != SPAN_FLOATING && st != SPAN_REUSABLE) {
        /* The span holds no allocated block: p was freed already. */
        error_report(SC_ERR_DOUBLE_FREE, call, t->heap, p);
        return;
    }
    if (!span_is_block_start(s, a)) {
        error_report(SC_ERR_INTERIOR_POINTER, call, t->heap, p);
        return;
    }
    block_t *b = p;
    if (check_enabled(t->heap) && !check_block_free(s, b)) {
        error_report(SC_ERR_DOUBLE_FREE, call, t->heap, p);
        return;
    }
    release_block_pages(s, b);
    frontend_trim_if_asked(t);
    span_t **hot = frontend_hot_array(t);
    if (word == (uintptr_t)t || hot[span_class(s)] == s) {
        /* Our own hot span: the fast path declined a double free, or the
         * span takes its frees here (checked heap, big class). */
        if (b == s->free) {
            error_report(SC_ERR_DOUBLE_FREE, call, t->heap, p);
            return;
        }
        annotate_free(t->heap, b, s->block_size);
        block_set_next(b, s->free);
        s->free = b;
        uint32_t used = counter_get(&s->used) - 1;
        counter_set(&s->used, used);
        if (s->block_size > EAGER_RELEASE_MIN &&
            used == remote_count(atomic_load_explicit(&s->remote, memory_order_relaxed)))
            frontend_drop_hot(t, hot, span_class(s)); /* all free: to the pool */
    } else {
        sc_error_t err = span_free_remote(s, b, t->pool_slot);
        if (err != SC_ERR_NONE) {
            error_report(err, call, t->heap, p);
            return;
        }
    }
}

void frontend_trim(sc_frontend_t *t)
{
    span_t **hot = frontend_hot_array(t);
    for (unsigned c = 0; c < NUM_CLASSES; c++) {
        span_t *s = hot[c];
        if (s == &span_empty)
            continue;
        uint64_t w = atomic_load_explicit(&s->remote, memory_order_relaxed);
        if (counter_get(&s->used) == remote_count(w))
            frontend_drop_hot(t, hot, c); /* every block free: to the pool */
    }
}
