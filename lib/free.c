/* The free dispatcher (free.h). */
#include "free.h"

#include "address_map.h"
#include "check.h"
#include "error.h"
#include "frontend.h"
#include "huge.h"
#include "requested.h"
#include "span.h"

static block_ref_t bad(sc_error_t err)
{
    return (block_ref_t){BLOCK_BAD, err, NULL};
}

/* A huge block's header s: live, and p is where its data starts. */
static block_ref_t huge_ref(span_t *s, const void *p)
{
    if (span_state(s) != SPAN_HOT)
        return bad(SC_ERR_DOUBLE_FREE);
    if (atomic_load_explicit(&s->bump, memory_order_relaxed) != (const char *)p)
        return bad(SC_ERR_INTERIOR_POINTER);
    return (block_ref_t){BLOCK_HUGE, SC_ERR_NONE, s};
}

block_ref_t block_lookup(const struct sc_heap_s *heap, const sc_frontend_t *t, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    /* The one read of the map word (acquire: the span header behind a
     * published word is initialised). 0 for any p outside user space. */
    uintptr_t w = address_map_get(a);
    if (w == 0)
        return bad(SC_ERR_FOREIGN_POINTER);
    if (address_map_heap(w, a) != heap)
        return bad(SC_ERR_OTHER_HEAP);
    struct sc_heap_s *h = (struct sc_heap_s *)heap;
    switch (w & MAP_TAGS) {
    case MAP_RESERVED:
        /* Inside the heap's regions but not a block span: the inside of a
         * huge block, or space with nothing in it. */
        return bad((a & 15) != 0 || huge_contains(h, a) ? SC_ERR_INTERIOR_POINTER
                                                        : SC_ERR_FOREIGN_POINTER);
    case MAP_HUGE_ALIGNED:
        return huge_ref(huge_header_of(a, w), p);
    default:
        break; /* MAP_SPAN (ownerless, or owned in a slow-only heap) or a frontend */
    }
    span_t *s = span_at(p);
    if (span_kind(s) == SPAN_KIND_HUGE)
        return huge_ref(s, p);
    if (span_kind(s) != SPAN_KIND_BLOCKS)
        return bad(SC_ERR_FOREIGN_POINTER);
    if (!span_state_in_use(span_state(s)))
        return bad(SC_ERR_DOUBLE_FREE); /* the span holds no live block */
    if (!span_is_block_start(s, a))
        return bad(SC_ERR_INTERIOR_POINTER);
    /* Only t writes t into a map word, and only t makes itself a span's
     * owner, so either comparison is exact for t's own spans. */
    bool owned = t != NULL && (w == (uintptr_t)t || span_owner(s) == t);
    return (block_ref_t){owned ? BLOCK_OWNED : BLOCK_REMOTE, SC_ERR_NONE, s};
}

/* A block of a span t does not own: into t's batch for the span. */
static void free_remote(sc_frontend_t *t, span_t *s, block_t *b, const char *call)
{
    if (check_enabled(t->heap) && !check_block_free(s, b)) {
        error_report(SC_ERR_DOUBLE_FREE, call, t->heap, b);
        return;
    }
    /* The slack entry is read before the block is handed over (its next
     * owner may overwrite it). */
    uint32_t slack = requested_enabled(t->heap) ? requested_slack(s, b) : 0;
    if (!frontend_remote_add(t, s, b)) {
        error_report(SC_ERR_DOUBLE_FREE, call, t->heap, b);
        return;
    }
    if (requested_enabled(t->heap))
        requested_on_free(t, slack);
}

/* Every free the remote shortcut below leaves: classified in full. */
static __attribute__((noinline)) void free_classified(sc_frontend_t *t, void *p, const char *call)
{
    block_ref_t r = block_lookup(t->heap, t, p);
    switch (r.kind) {
    case BLOCK_BAD:
        error_report(r.error, call, t->heap, p);
        return;
    case BLOCK_OWNED:
        frontend_free_owned(t, r.span, p, call);
        return;
    case BLOCK_REMOTE:
        free_remote(t, r.span, p, call);
        return;
    case BLOCK_HUGE:
        huge_free(t, r.span, p, call);
        return;
    }
}

/* The remote shortcut's slower half: a slot to free or a batch to hand
 * over; a refused block gets the full classification. */
static __attribute__((noinline)) void free_remote_slot(sc_frontend_t *t, span_t *s, void *p,
                                                       const char *call)
{
    if (!frontend_remote_add_slow(t, s, p))
        free_classified(t, p, call);
}

/* Everything below runs behind the owner's gate (frontend.h): batches
 * and owned spans are the frontend's state that an idle trim may touch. */
static __attribute__((noinline)) void free_classified_gated(sc_frontend_t *t, void *p,
                                                            const char *call)
{
    frontend_enter(t);
    free_classified(t, p, call);
    frontend_leave(t);
}

static __attribute__((noinline)) void free_remote_slot_gated(sc_frontend_t *t, span_t *s,
                                                             void *p, const char *call)
{
    frontend_enter(t);
    free_remote_slot(t, s, p, call);
    frontend_leave(t);
}

void free_dispatch(sc_frontend_t *t, void *p, const char *call)
{
    /* The common case first, with the tests of block_lookup for it: a
     * block of another frontend's span (its map word is that frontend) or
     * of an ownerless span (heap | MAP_SPAN) of t's heap, not checked or
     * tracking (their spans are tagged MAP_SPAN even while owned, and their
     * frees need per-block work). */
    uintptr_t a = (uintptr_t)p;
    uintptr_t idx = a >> SPAN_SHIFT;
    if (likely(idx < MAP_ENTRIES)) {
        struct sc_heap_s *heap = t->heap;
        /* acquire: the span header behind a published word is initialised. */
        uintptr_t w = atomic_load_explicit(&address_map[idx], memory_order_acquire);
        /* Read only where w says the span has a header. */
        span_t *s = span_at(p);
        bool other_frontend = (w & MAP_TAGS) == 0 && w != 0 && w != (uintptr_t)t;
        if ((other_frontend || w == ((uintptr_t)heap | MAP_SPAN)) &&
            (heap->flags & (SC_HEAP_CHECKED | SC_HEAP_TRACK_REQUESTED)) == 0 && s->heap == heap &&
            span_kind(s) == SPAN_KIND_BLOCKS && span_is_block_start_at(s, a, SPAN_LEAD) &&
            span_state_in_use(span_state(s))) {
            if (likely(frontend_enter_quick(t))) {
                bool added = frontend_remote_add_fast(t, s, p);
                frontend_leave_quick(t);
                if (likely(added))
                    return;
            }
            free_remote_slot_gated(t, s, p, call); /* a tail call: no frame here */
            return;
        }
    }
    free_classified_gated(t, p, call);
}

size_t free_usable_size(const struct sc_heap_s *heap, const void *p, const char *call)
{
    block_ref_t r = block_lookup(heap, NULL, p);
    switch (r.kind) {
    case BLOCK_BAD:
        error_report(r.error, call, heap, p);
        return 0;
    case BLOCK_HUGE:
        return huge_usable_size(r.span);
    case BLOCK_OWNED:
    case BLOCK_REMOTE:
        break;
    }
    return r.span->block_size;
}
