/* Frontend slow paths: refilling a class's hot span, and every free that
 * is not a local free into a hot span. */
#include "frontend.h"

#include <errno.h>

#include "arena.h"
#include "check.h"
#include "error.h"
#include "huge.h"
#include "os.h"
#include "requested.h"
#include "span.h"
#include "span_pool.h"

/* An exhausted hot span takes its remote frees back when at least this
 * share of it is waiting; fewer would mean coming back here almost at
 * once, so the span floats instead and refills in peace. */
static uint32_t take_threshold(const span_t *s)
{
    uint32_t n = span_capacity(s) / 16;
    return n ? n : 1;
}

/* How many floating spans a refill looks at: enough to find reusable ones
 * soon, few enough that a thread holding thousands of long-lived spans
 * pays a bounded price per refill. Spans looked at go to the back. */
#define FLOATING_SCAN 8

/* Checked and tracking heaps do per-block work on every allocation and
 * free (check.h, requested.h): they keep the fast paths out by leaving the
 * fast path's hot array empty and their spans' map words untagged. */
static bool slow_only(const struct sc_heap_s *heap)
{
    return check_enabled(heap) || requested_enabled(heap);
}

/* The map word of a span t holds hot: t, so that t's frees take the fast
 * path, except in slow-only heaps. */
static uintptr_t owned_word(sc_frontend_t *t)
{
    return slow_only(t->heap) ? (uintptr_t)t->heap | MAP_SPAN : (uintptr_t)t;
}

/* The map word of t's floating spans: an address inside t that is not t
 * (frontends are far bigger than a cache line apart), so it is unique to t
 * and the fast path's compare with t fails. */
static uintptr_t floating_word(sc_frontend_t *t)
{
    return slow_only(t->heap) ? (uintptr_t)t->heap | MAP_SPAN : frontend_floating_word(t);
}

static void floating_push(sc_frontend_t *t, unsigned cls, span_t *s)
{
    span_t *head = t->floating[cls];
    if (head == NULL) {
        s->set_next = s->set_prev = s;
        t->floating[cls] = s;
    } else {
        s->set_next = head;
        s->set_prev = head->set_prev;
        head->set_prev->set_next = s;
        head->set_prev = s;
    }
}

static void floating_remove(sc_frontend_t *t, unsigned cls, span_t *s)
{
    if (s->set_next == s) {
        t->floating[cls] = NULL;
    } else {
        s->set_prev->set_next = s->set_next;
        s->set_next->set_prev = s->set_prev;
        if (t->floating[cls] == s)
            t->floating[cls] = s->set_next;
    }
    s->set_next = s->set_prev = NULL;
}

static span_t *floating_pop(sc_frontend_t *t, unsigned cls)
{
    span_t *s = t->floating[cls];
    if (s)
        floating_remove(t, cls, s);
    return s;
}

/* An owned span none of whose blocks is allocated: to the pool. */
static void owned_to_pool(sc_frontend_t *t, span_t *s)
{
    address_map_set(s, (uintptr_t)t->heap | MAP_SPAN);
    span_give_up(s, t->pool_slot);
}

/* Looks at the oldest floating spans of cls: empty ones go to the pool, the
 * first with enough free blocks becomes HOT and is returned. */
static span_t *floating_reuse(sc_frontend_t *t, unsigned cls)
{
    for (unsigned i = 0; i < FLOATING_SCAN; i++) {
        span_t *s = floating_pop(t, cls);
        if (s == NULL)
            return NULL;
        unsigned st = span_state(s);
        uint32_t live = span_owned_live(s);
        if (st == SPAN_DRAINED || (st == SPAN_FLOATING && live == 0)) {
            owned_to_pool(t, s);
        } else if (st == SPAN_FLOATING && span_capacity(s) - live >= s->reuse_count &&
                   span_set_owned_state(s, SPAN_FLOATING, SPAN_HOT)) {
            address_map_set(s, owned_word(t));
            return s;
        } else {
            /* Not yet, or being drained right now: look again later. */
            floating_push(t, cls, s);
        }
    }
    return NULL;
}

/* A span for class cls, HOT for t: one of t's own floating spans, then a
 * reusable one of the heap, then the pool, then a fresh virtual span. */
static span_t *frontend_new_span(sc_frontend_t *t, unsigned cls)
{
    struct sc_heap_s *heap = t->heap;
    span_t *s = floating_reuse(t, cls);
    if (s)
        return s;
    s = span_adopt_reusable(heap, cls);
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
    span_set_owner(s, t);
    address_map_set(s, owned_word(t));
    return s;
}

/* The array of hot spans the slow path works on. */
static span_t **frontend_hot_array(sc_frontend_t *t)
{
    return slow_only(t->heap) ? t->slow_hot : t->hot;
}

/* The hot span of cls is exhausted: it joins t's floating set. */
static void frontend_float_hot(sc_frontend_t *t, span_t **hot, unsigned cls)
{
    span_t *s = hot[cls];
    hot[cls] = &span_empty;
    span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING);
    address_map_set(s, floating_word(t));
    floating_push(t, cls, s);
}

bool frontend_free_floating(sc_frontend_t *t, span_t *s, void *p)
{
    block_t *b = p;
    /* The fast path's checks, plus the state: a drained span is all free. */
    if (!span_is_block_start(s, (uintptr_t)p) || b == s->free || span_state(s) != SPAN_FLOATING)
        return false;
    uint32_t used = frontend_local_push(t, s, b);
    if (used == remote_count(atomic_load_explicit(&s->remote, memory_order_acquire))) {
        /* The owner freed the last block: to the pool, at once. */
        floating_remove(t, span_class(s), s);
        owned_to_pool(t, s);
    }
    return true;
}

bool frontend_free_remote(sc_frontend_t *t, void *p)
{
    struct sc_heap_s *heap = t->heap;
    if (slow_only(heap))
        return false; /* all their frees take the slow path */
    uintptr_t a = (uintptr_t)p;
    uintptr_t idx = (a >> SPAN_SHIFT) & (MAP_ENTRIES - 1);
    /* acquire: the span header behind a published word is initialised. */
    uintptr_t word = atomic_load_explicit(&address_map[idx], memory_order_acquire);
    uintptr_t tag = word & MAP_TAGS;
    if (word == 0 || tag == MAP_RESERVED || tag == MAP_HUGE_ALIGNED)
        return false;
    span_t *s = (span_t *)(idx << SPAN_SHIFT);
    if (s->heap != heap || span_kind(s) != SPAN_KIND_BLOCKS || span_owner(s) == t || !span_is_block_start(s, a))
        return false;
    return span_free_remote(s, (block_t *)p, t->pool_slot) == SC_ERR_NONE;
}

/* A tracking (not checked) heap's free into a span t holds HOT: the fast
 * path's checks, then the slack recorded. false sends p to the slow path
 * with its full checks. */
static bool free_tracked_local(sc_frontend_t *t, void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (address_map_get(a) != ((uintptr_t)t->heap | MAP_SPAN))
        return false;
    span_t *s = (span_t *)(a & ~(uintptr_t)SPAN_MASK);
    block_t *b = p;
    /* Only t makes a span HOT with itself as owner, so both together mean
     * the span is t's to free into without atomics. */
    if (span_owner(s) != t || span_kind(s) != SPAN_KIND_BLOCKS || span_state(s) != SPAN_HOT ||
        !span_is_block_start(s, a) || b == s->free)
        return false;
    requested_on_free(t, requested_slack(s, b));
    frontend_local_push(t, s, b);
    return true;
}

void frontend_free_other(sc_frontend_t *t, void *p, const char *call)
{
    if (unlikely(slow_only(t->heap))) {
        if (check_enabled(t->heap) || !free_tracked_local(t, p))
            frontend_free_slow(t, p, call);
        return;
    }
    uintptr_t a = (uintptr_t)p;
    uintptr_t idx = (a >> SPAN_SHIFT) & (MAP_ENTRIES - 1);
    uintptr_t word = atomic_load_explicit(&address_map[idx], memory_order_relaxed);
    if (word == frontend_floating_word(t) &&
        frontend_free_floating(t, (span_t *)(idx << SPAN_SHIFT), p))
        return;
    if (frontend_free_remote(t, p))
        return;
    frontend_free_slow(t, p, call);
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

/* A tracking (not checked) heap's allocation from its hot span: what the
 * fast path does, plus the slack recorded. NULL when the slow path's work
 * is needed. */
static void *alloc_tracked_local(sc_frontend_t *t, size_t n)
{
    if (n > SIZE_CLASS_MAX || check_enabled(t->heap))
        return NULL;
    span_t *s = t->slow_hot[size_class_of(n)];
    if (s->free == NULL)
        return NULL;
    block_t *b = frontend_local_pop(t, s);
    requested_on_alloc(t, s, b, n);
    return b;
}

void *frontend_alloc_slow(sc_frontend_t *t, size_t n)
{
    if (requested_enabled(t->heap)) {
        void *b = alloc_tracked_local(t, n);
        if (b != NULL)
            return b;
    }
    frontend_trim_if_asked(t);
    if (n > SIZE_CLASS_MAX) {
        void *p = huge_alloc(t, n);
        if (p == NULL) {
            /* At the heap's limit, t's own empty spans and the pool's warm
             * ones may be what is in the way: give them back, try again. */
            frontend_trim(t);
            span_pool_cool(t->heap, false);
            p = huge_alloc(t, n);
        }
        return p;
    }
    unsigned cls = size_class_of(n);
    span_t **hot = frontend_hot_array(t);
    bool trimmed = false;
    for (;;) {
        span_t *s = hot[cls];
        if (s != &span_empty) {
            enum carve_result carved = CARVE_OK;
            if (s->free == NULL && !span_take_remote(s, take_threshold(s)))
                carved = span_carve(s);
            if (carved == CARVE_NO_COMMIT) {
                /* At the heap's limit with blocks left to carve: floating
                 * the span would only have it adopted again. Make room
                 * once, else refuse. */
                if (!trimmed) {
                    trimmed = true;
                    frontend_trim(t);
                    span_pool_cool(t->heap, false);
                    continue;
                }
                errno = ENOMEM;
                return NULL;
            }
            if (carved == CARVE_FULL) {
                frontend_float_hot(t, hot, cls);
            } else if (s->free != NULL) {
                block_t *b = s->free;
                if (check_enabled(t->heap) && !check_block_allocate(s, b)) {
                    /* The list cannot be trusted past here: drop it (its
                     * blocks are lost to this span) and go on. */
                    s->free = NULL;
                    error_report(SC_ERR_CORRUPTION, "sc_alloc", t->heap, b);
                    continue;
                }
                frontend_local_pop(t, s);
                if (requested_enabled(t->heap))
                    requested_on_alloc(t, s, b, n);
                return b;
            }
        }
        s = frontend_new_span(t, cls);
        if (s == NULL) {
            if (!trimmed) {
                trimmed = true;
                frontend_trim(t); /* as for huge blocks above */
                span_pool_cool(t->heap, false);
                continue;
            }
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
    if (!span_state_in_use(st)) {
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
    frontend_trim_if_asked(t);
    bool tracked = requested_enabled(t->heap);
    if (word == (uintptr_t)t || span_owner(s) == t) {
        /* A span t owns: the fast path declined a double free, or the span
         * takes its frees here (slow-only heap). */
        if (b == s->free) {
            error_report(SC_ERR_DOUBLE_FREE, call, t->heap, p);
            return;
        }
        if (tracked)
            requested_on_free(t, requested_slack(s, b));
        frontend_local_push(t, s, b);
        if (span_state(s) == SPAN_FLOATING && span_owned_live(s) == 0) {
            /* The owner freed the last block: to the pool, at once. */
            floating_remove(t, span_class(s), s);
            owned_to_pool(t, s);
        }
    } else {
        uint32_t slack = tracked ? requested_slack(s, b) : 0;
        sc_error_t err = span_free_remote(s, b, t->pool_slot);
        if (err != SC_ERR_NONE) {
            error_report(err, call, t->heap, p);
            return;
        }
        if (tracked)
            requested_on_free(t, slack);
    }
}

void frontend_trim(sc_frontend_t *t)
{
    span_t **hot = frontend_hot_array(t);
    for (unsigned c = 0; c < NUM_CLASSES; c++) {
        span_t *s = hot[c];
        if (s != &span_empty && span_owned_live(s) == 0) {
            hot[c] = &span_empty;
            owned_to_pool(t, s); /* every block free: to the pool */
        }
        /* Every floating span once: empty ones to the pool. */
        span_t *head = t->floating[c];
        if (head == NULL)
            continue;
        span_t *last = head->set_prev;
        for (s = head;;) {
            span_t *next = s->set_next;
            bool done = s == last;
            unsigned st = span_state(s);
            if (st == SPAN_DRAINED || (st == SPAN_FLOATING && span_owned_live(s) == 0)) {
                floating_remove(t, c, s);
                owned_to_pool(t, s);
            }
            if (done)
                break;
            s = next;
        }
    }
}
