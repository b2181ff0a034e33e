/*
 * The thread-local frontend: the allocation and free fast paths (inline,
 * no atomic read-modify-write, no lock, no call), the slow paths behind
 * them, the owner's floating spans and its batches of remote frees.
 */
#ifndef SCALLOC_FRONTEND_H
#define SCALLOC_FRONTEND_H

#include "address_map.h"
#include "annotate.h"
#include "size_class.h"
#include "span.h"
#include "types.h"

/* Owner (t holds s HOT or FLOATING): hands out the head of s's local free
 * list, which is not empty, and counts it live. */
static inline block_t *frontend_local_pop(sc_frontend_t *t, span_t *s)
{
    block_t *b = s->free;
    block_t *next = block_next(b);
    span_count_out(s);
    /* release, after the count: a trimmer (IDLE TRIM) that sees the new
     * head sees the block counted. A plain store on x86-64. */
    __atomic_store_n(&s->free, next, __ATOMIC_RELEASE);
    annotate_alloc(t->heap, b, s->block_size);
    return b;
}

/* Owner: puts block b of s back on s's local free list. true if this free
 * reached the span's event level: the caller must then call
 * frontend_free_event (a floating span became reusable or empty). */
static inline bool frontend_local_push(sc_frontend_t *t, span_t *s, block_t *b)
{
    annotate_free(t->heap, b, s->block_size);
    block_set_next(b, s->free);
    /* release: the link is written before the block heads the list. */
    __atomic_store_n(&s->free, b, __ATOMIC_RELEASE);
    return span_count_in(s);
}

/* THE OWNER'S GATE (frontend.c, "IDLE TRIM"). Every slow path of the
 * owner that touches its spans, slots or batches runs between
 * frontend_enter and frontend_leave (nesting allowed); a trimming thread
 * works on the frontend only while the owner is outside. The owner's part
 * is two plain stores and a load: the trimmer's membarrier supplies the
 * fence between the store of busy and the load of trim_closed. */
void frontend_gate_wait(sc_frontend_t *t);
void frontend_unpark(sc_frontend_t *t);

/* The owner's half of the protocol: busy set, then whether the gate is
 * open (true) or a trimmer holds it closed. */
static inline bool frontend_gate_announce(sc_frontend_t *t)
{
    atomic_store_explicit(&t->busy, 1, memory_order_relaxed);
    /* The store stays before the load in program order; the hardware
     * order is the trimmer's membarrier's business. */
    atomic_signal_fence(memory_order_seq_cst);
    /* acquire: what a trimmer that was here wrote (parked spans, released
     * pages) comes before what this slow path does. */
    return atomic_load_explicit(&t->trim_closed, memory_order_acquire) == 0;
}

static inline void frontend_enter(sc_frontend_t *t)
{
    if (t->gate_depth++ != 0)
        return;
    if (unlikely(!frontend_gate_announce(t)))
        frontend_gate_wait(t);
    if (unlikely(t->parked_classes != 0))
        frontend_unpark(t);
}

static inline void frontend_leave(sc_frontend_t *t)
{
    /* release: a trimmer that sees the owner gone sees what it did. */
    if (--t->gate_depth == 0)
        atomic_store_explicit(&t->busy, 0, memory_order_release);
}

/* The gate for a short stretch with no call in it: true if the owner is
 * in (then frontend_leave_quick), false if it must take the long way
 * (frontend_enter: the gate is held already, closed, or has parked spans
 * to put back). The same stores and load as frontend_enter, no nesting
 * count. */
static inline bool frontend_enter_quick(sc_frontend_t *t)
{
    if (t->gate_depth != 0)
        return false;
    if (likely(frontend_gate_announce(t) && t->parked_classes == 0))
        return true;
    atomic_store_explicit(&t->busy, 0, memory_order_release);
    return false;
}

static inline void frontend_leave_quick(sc_frontend_t *t)
{
    atomic_store_explicit(&t->busy, 0, memory_order_release);
}

/* A hot span whose pages an idle trim gave back and whose owner has not
 * taken it back yet: its lists may end early, at a zeroed link, until the
 * owner sets it up afresh or rebuilds them (frontend_unpark). For checks
 * of a heap at rest. */
static inline bool frontend_span_trimmed(const span_t *s)
{
    const sc_frontend_t *t = span_owner(s);
    unsigned c = span_class(s);
    return t != NULL && (t->trimmed_classes >> c & 1) && t->parked[c] == s;
}

/* For such a span: the one block that may be live in it (the head its
 * list had when its pages went; NULL if none). */
static inline const block_t *frontend_trimmed_head(const span_t *s)
{
    return span_owner(s)->parked_head[span_class(s)];
}

/* IDLE TRIM: the calling thread (not the owner of any of ts[0..n), all of
 * one heap that is neither checked nor tracking, under the registry lock)
 * hands their remote batches over and gives back the pages of their empty
 * hot spans; a frontend whose owner is on a slow path is left alone.
 * n <= FRONTEND_IDLE_GROUP. */
#define FRONTEND_IDLE_GROUP 64
void frontend_trim_idle(sc_frontend_t *const *ts, unsigned n);

/* Under the registry lock, for frontends of one heap: pools the floating
 * spans that other threads' frees drained (the owner's slow paths would)
 * of those of ts[0..n) whose owners are away from their slow paths, behind
 * their gates as the idle trim does; the others are left to their owners.
 * n <= FRONTEND_IDLE_GROUP. */
void frontend_pool_drained_idle(sc_frontend_t *const *ts, unsigned n);

/* Slow path of allocation (frontend.c). */
void *frontend_alloc_slow(sc_frontend_t *t, size_t n);

/* A huge block of n bytes aligned to align (a power of two >= 16) for t:
 * at the heap's limit, t's empty spans and the pool's warm memory are
 * given back once before it fails with ENOMEM. */
void *frontend_alloc_huge(sc_frontend_t *t, size_t align, size_t n);

/* Owner: the free just pushed onto s reached s's event level (its owner
 * is the calling thread's frontend): a FLOATING span that is empty is kept
 * for its class or pooled, a reusable one goes to the front of the
 * owner's floating set, where the next refill of its class looks first;
 * an armed HOT span that is empty leaves the hot slot the same way
 * (frontend.c, "ARMED HOT SPANS"). */
void frontend_free_event(span_t *s);

/* Owner: frees block b of s, a span t owns, after the fast path declined
 * it (checked and tracking heaps, or the cheap double-free test): reports
 * a double free for `call`, else does what the fast path does. */
void frontend_free_owned(sc_frontend_t *t, span_t *s, block_t *b, const char *call);

/* REMOTE BATCHES (frontend.c): the slot of t that collects s's blocks.
 * Neighbouring spans' headers are neighbours in the header table, so the
 * header's number there spreads neighbouring spans over the slots. */
static inline remote_batch_t *frontend_remote_slot(sc_frontend_t *t, const span_t *s)
{
    return &t->remote[((uintptr_t)s >> SPAN_HEADER_SHIFT) % REMOTE_SLOTS];
}

static inline span_t *remote_batch_span(const remote_batch_t *r)
{
    return (span_t *)(uintptr_t)owner_word_get(&r->span);
}

/* Links b of s into r, the slot collecting s's blocks. */
static inline void frontend_remote_link(sc_frontend_t *t, remote_batch_t *r, span_t *s, block_t *b)
{
    annotate_free(t->heap, b, s->block_size);
    block_set_next(b, r->head);
    if (r->head == NULL)
        r->tail = b;
    r->head = b;
    owner_word_add(&r->count, 1);
    t->remote_pending_bytes += s->block_size;
}

/* The rest of frontend_remote_add: a slot to free for s, or a batch to
 * hand over. */
bool frontend_remote_add_slow(sc_frontend_t *t, span_t *s, block_t *b);

/* Any thread: adds block b of s, a span t does not own, to t's batch for
 * s; a full batch is handed over at once. false if b is the batch's last
 * block (a double free; nothing changed). */
/* The common case of frontend_remote_add: b joins the batch its slot
 * already collects for s, which stays below its limits. false: nothing
 * done, frontend_remote_add_slow decides. */
static inline bool frontend_remote_add_fast(sc_frontend_t *t, span_t *s, block_t *b)
{
    remote_batch_t *r = frontend_remote_slot(t, s);
    if (likely(remote_batch_span(r) == s && b != r->head &&
               owner_word_get(&r->count) < REMOTE_SLOT_MAX - 1 &&
               t->remote_pending_bytes + s->block_size < REMOTE_PENDING_BYTES)) {
        frontend_remote_link(t, r, s, b);
        return true;
    }
    return false;
}

static inline bool frontend_remote_add(sc_frontend_t *t, span_t *s, block_t *b)
{
    return frontend_remote_add_fast(t, s, b) || frontend_remote_add_slow(t, s, b);
}

/* Owner: hands every batch of remote frees over to its span. */
void frontend_remote_flush(sc_frontend_t *t);

/* Forgets t's batches without handing them over (their heap was reset or
 * destroyed, so their blocks are free or gone anyway). */
void frontend_remote_discard(sc_frontend_t *t);

/* Gives t's hot and floating spans that hold no live block back to the
 * pool, after handing its remote batches over. Owner only. */
void frontend_trim(sc_frontend_t *t);

/* Points every fast-path entry of t to the empty span (t's spans are
 * forgotten, not given up: reset, destroy, a new frontend). */
void frontend_forget_spans(sc_frontend_t *t);

/* Owner: gives up every span of t (its thread exits): remote batches are
 * handed over first, then hot and floating spans become DETACHED,
 * REUSABLE or POOLED. */
void frontend_give_up_spans(sc_frontend_t *t);

/* A block from t's hot span for n, or NULL when the slow path must run. */
static inline void *frontend_alloc_fast(sc_frontend_t *t, size_t n)
{
    /* Sizes up to SMALL_MAX only: bigger blocks come off their hot span on
     * the slow path, behind the owner's gate, so that an idle trim can give
     * back every page of their spans (frontend.c, "IDLE TRIM"). */
    if (unlikely(n > SMALL_MAX))
        return NULL;
    /* relaxed: a trimmer may park the span meanwhile (IDLE TRIM); either
     * span is one this thread may allocate from. A plain load on x86-64. */
    span_t *s = __atomic_load_n(&t->small[(n + 15) >> 4], __ATOMIC_RELAXED);
    if (likely(s->free != NULL))
        return frontend_local_pop(t, s);
    return NULL;
}

/* A block of n (SMALL_MAX < n <= SIZE_CLASS_MAX) from t's hot span for it,
 * behind the gate, or NULL when the slow path must run (frontend.c). */
void *frontend_alloc_gated(sc_frontend_t *t, size_t n);

static inline void *frontend_alloc(sc_frontend_t *t, size_t n)
{
    void *b = frontend_alloc_fast(t, n);
    return likely(b != NULL) ? b : frontend_alloc_slow(t, n);
}

/* The span of p if p is a block t may free on the fast path: a carved
 * block start of a span t owns (hot or floating) in a heap that is neither
 * checked nor tracking, and not the head of its free list (the cheap
 * double-free test). NULL sends p to the free dispatcher (free.h). */
static inline span_t *frontend_free_target(sc_frontend_t *t, void *p)
{
    uintptr_t a = (uintptr_t)p;
    /* A p above the user address space has no map word (and is refused
     * here, not aliased to one). One map word tells whether t owns the
     * span; anything else (NULL, foreign, another thread's, huge, slow-only
     * heaps, misuse) goes to the dispatcher. */
    uintptr_t idx = a >> SPAN_SHIFT;
    if (unlikely(idx >= MAP_ENTRIES))
        return NULL;
    /* relaxed: t wrote this word itself, nothing to synchronise with. */
    if (unlikely(atomic_load_explicit(&address_map[idx], memory_order_relaxed) != (uintptr_t)t))
        return NULL;
    span_t *s = span_at(p);
    if (unlikely(!span_is_block_start_plain(s, a) || (block_t *)p == s->free))
        return NULL;
    return s;
}

#endif /* SCALLOC_FRONTEND_H */
