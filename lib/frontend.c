/* Frontend slow paths: refilling a class's hot span, the owner's floating
 * spans, the owner's frees the fast path leaves, and batches of remote
 * frees. */
#include "frontend.h"

#include <errno.h>

#include "arena.h"
#include "check.h"
#include "error.h"
#include "huge.h"
#include "os.h"
#include "requested.h"
#include "reusable.h"
#include "span.h"
#include "span_pool.h"

/* The remote frees at which an exhausted hot span takes them back
 * (tuning.h, TAKE_REMOTE_SHARE). */
static uint32_t take_threshold(const span_t *s)
{
    uint32_t n = span_capacity(s) / TAKE_REMOTE_SHARE;
    return n ? n : 1;
}

/* Checked and tracking heaps do per-block work on every allocation and
 * free (check.h, requested.h): they keep the fast paths out by leaving the
 * fast path's tables empty and their spans' map words untagged. */
static bool slow_only(const struct sc_heap_s *heap)
{
    return check_enabled(heap) || requested_enabled(heap);
}

/* The map word of a span t owns (hot or floating): t, so that t's frees
 * take the fast path, except in slow-only heaps. */
static uintptr_t owned_word(sc_frontend_t *t)
{
    return slow_only(t->heap) ? (uintptr_t)t->heap | MAP_SPAN : (uintptr_t)t;
}

/* The array of hot spans the slow path works on. */
static span_t **frontend_hot_array(sc_frontend_t *t)
{
    return slow_only(t->heap) ? t->slow_hot : t->hot;
}

/* Makes s the hot span of class cls, in hot[] and in every small[] entry
 * of the class (sizes up to SMALL_MAX), or in slow_hot[] for slow-only
 * heaps. */
/* The fast path's slots of class cls: hot[cls] and every small[] entry
 * of the class. relaxed stores: the owner's fast path reads them with
 * relaxed loads, and an idle trimmer writes them too (IDLE TRIM); plain
 * stores on x86-64. */
static void slots_set(sc_frontend_t *t, unsigned cls, span_t *s)
{
    __atomic_store_n(&t->hot[cls], s, __ATOMIC_RELAXED);
    size_t size = size_class_block_size(cls);
    if (size > SMALL_MAX)
        return;
    /* The class serves (previous class size, size]; index i holds sizes
     * up to 16 * i, and index 0 (size 0) belongs to the first class. */
    size_t lo = cls == 0 ? 0 : size_class_block_size(cls - 1) / 16 + 1;
    for (size_t i = lo; i <= size / 16; i++)
        __atomic_store_n(&t->small[i], s, __ATOMIC_RELAXED);
}

static void frontend_set_hot(sc_frontend_t *t, unsigned cls, span_t *s)
{
    if (slow_only(t->heap)) {
        t->slow_hot[cls] = s;
        return;
    }
    slots_set(t, cls, s);
}

void frontend_forget_spans(sc_frontend_t *t)
{
    for (unsigned i = 0; i < SMALL_SLOTS; i++)
        t->small[i] = &span_empty;
    for (unsigned c = 0; c < NUM_CLASSES; c++) {
        t->hot[c] = &span_empty;
        t->slow_hot[c] = &span_empty;
        t->floating[c] = NULL;
        t->floating_spans[c] = 0;
    }
    t->kept_empty_bytes = 0;
    t->kept_empty_classes = 0;
    t->keep_budget = FRONTEND_KEEP_EMPTY_BYTES;
    t->keep_overflow = 0;
    /* No class was refilled from its kept spans lately. */
    t->slow_ticks = 0;
    for (unsigned c = 0; c < NUM_CLASSES; c++)
        t->reclaim_tick[c] = 0u - HOT_REFILL_TICKS;
    atomic_store_explicit(&t->drained_classes, 0, memory_order_relaxed);
    atomic_store_explicit(&t->remote_classes, 0, memory_order_relaxed);
    t->remote_classes_before = 0;
    t->parked_classes = 0;
    t->trimmed_classes = 0;
    for (unsigned c = 0; c < NUM_CLASSES; c++)
        t->parked[c] = NULL;
    frontend_remote_discard(t);
}

/* --- The owner's floating set of a class: a circular list, oldest first. */

static void floating_push(sc_frontend_t *t, unsigned cls, span_t *s)
{
    span_t *head = t->floating[cls];
    t->floating_spans[cls]++;
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
    if (s->kept_empty) {
        s->kept_empty = 0;
        t->kept_empty_bytes -= span_real_bytes(s);
    }
    t->floating_spans[cls]--;
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

/* Puts a span where the state it moved to says (span_give_up,
 * span_free_remote): REUSABLE on its stack, POOLED in the pool; a DRAINED
 * span stays with its owner, which is told the class to look at. */
static void place_span(struct sc_heap_s *heap, span_t *s, unsigned to, unsigned pool_slot)
{
    if (to == SPAN_REUSABLE) {
        reusable_push(heap, s);
    } else if (to == SPAN_EMPTY) {
        /* Still on its stack, its pages kept: the next allocation slow
         * path of any thread sweeps it into the pool. */
        atomic_fetch_add_explicit(&heap->reusable_emptied, 1, memory_order_relaxed);
    } else if (to == SPAN_POOLED) {
        span_pool_put(heap, s, pool_slot);
    } else if (to == SPAN_DRAINED) {
        /* The owner cannot change while the span is DRAINED except by
         * pooling it itself, after which a new owner may get a spurious
         * look; frontends are never unmapped, so the write is safe.
         * release: the owner that sees the bit sees the span DRAINED. */
        sc_frontend_t *owner = span_owner(s);
        if (owner && atomic_fetch_or_explicit(&owner->drained_classes,
                                              (uint64_t)1 << span_class(s),
                                              memory_order_release) == 0) {
            /* The first since the owner looked: if it stays away from its
             * slow paths, another thread pools the spans for it
             * (registry.c, "DRAINED SPANS OF IDLE OWNERS"). relaxed: a
             * hint; seq_cst, as for the sweeps' flags (arena_sweep_elect):
             * a bit the look misses precedes its clearing of the flag, so
             * the flag stays set. */
            atomic_store_explicit(&owner->drained_since, os_coarse_ms(), memory_order_relaxed);
            atomic_store_explicit(&heap->drained_waiting, 1, memory_order_seq_cst);
        }
        /* An owner that stopped allocating never looks: the release
         * policy gives the memory back after the delay meanwhile. */
        span_pool_note_drained(heap, s);
    }
}

/* An owned span none of whose blocks is allocated: to the pool. false if
 * a trimming thread is giving its memory back right now (the caller keeps
 * it and looks again later). The map word changes after the claim, so no
 * free of t's can find the span once it is the pool's. */
static bool owned_to_pool(sc_frontend_t *t, span_t *s)
{
    SC_ASSERT(span_owned_live(s) == 0);
    if (!span_claim_owned_empty(s, false))
        return false;
    address_map_set(s, (uintptr_t)t->heap | MAP_SPAN);
    span_pool_put(t->heap, s, t->pool_slot);
    return true;
}

/* KEPT EMPTY SPANS. A floating span that its owner's frees emptied stays
 * at the front of its class's floating set (the next refill takes it back
 * HOT with its free list as it is) while the frontend's kept spans commit
 * no more than its keep budget (FRONTEND_KEEP_EMPTY_BYTES, growing up to
 * FRONTEND_KEEP_EMPTY_MAX); others go to the pool. A kept span is
 * DRAINED, as a floating span that remote frees emptied, and noted as
 * one: the release policy's sweep (one to two purge delays after it was
 * kept) and a trim by any thread give its memory back meanwhile (the
 * owner then sets it up afresh when it takes it back), so a thread that
 * stopped allocating holds none of it past the delay or a trim. Kept
 * spans keep the frontend's map word, so frees into them stay on the
 * fast path: the one that reaches such a
 * span is a double free, which sends the span to the pool, whose fresh
 * set-up drops the list it broke. Retirement looks pool kept spans that
 * waited over a whole look (frontend_retire_kept_empty); the owner's
 * trims and its thread's exit let go of them as of any floating span.
 * `always`: keep it whatever the bound (a hot span that just emptied: it
 * would have stayed hot anyway); it still counts towards the bound. */
/* Owner: s, DRAINED and just taken off its set, is kept for cls at the
 * front of cls's set; `bytes` (its real span) counts towards the budget. */
static void kept_to_front(sc_frontend_t *t, unsigned cls, span_t *s, size_t bytes)
{
    floating_push(t, cls, s);
    t->floating[cls] = s;
    s->kept_empty = 1;
    t->kept_empty_bytes += bytes;
    t->kept_empty_classes |= (uint64_t)1 << cls;
}

/* Whether keeping `bytes` more stays within t's keep budget; a span that
 * does not fit is counted, so that the budget may grow (keep_budget_grow). */
static bool keep_fits(sc_frontend_t *t, size_t bytes)
{
    if (t->kept_empty_bytes + bytes <= t->keep_budget)
        return true;
    t->keep_overflow++;
    return false;
}

static void floating_settle_empty(sc_frontend_t *t, unsigned cls, span_t *s, bool always)
{
    floating_remove(t, cls, s);
    /* Counted at the span's real span, not at `committed`, which a trim
     * by another thread may cut while the span waits. */
    size_t bytes = span_real_bytes(s);
    if ((always || keep_fits(t, bytes)) && span_keep_empty(s)) {
        kept_to_front(t, cls, s, bytes);
        /* An owner that stops allocating never looks again: the release
         * policy gives the pages back after the delay, as for spans that
         * remote frees drained (the owner sets it up afresh then). */
        span_pool_note_drained(t->heap, s);
        return;
    }
    if (!owned_to_pool(t, s))
        floating_push(t, cls, s);
}

/* Owner: hot span s of class c, none of whose blocks is allocated, leaves
 * the frontend for the pool (trim, retirement). A hot span is never being
 * trimmed, so owned_to_pool cannot refuse it. */
static void hot_to_pool(sc_frontend_t *t, unsigned c, span_t *s)
{
    frontend_set_hot(t, c, &span_empty);
    bool pooled = owned_to_pool(t, s);
    SC_ASSERT(pooled);
    (void)pooled;
}

/* An owned span t lets go of (thread exit, trim): DETACHED, REUSABLE or
 * POOLED by what is free in it. */
static void owned_give_up(sc_frontend_t *t, span_t *s)
{
    /* The map word first: once given up, the span may be taken by another
     * frontend that writes its own word. */
    address_map_set(s, (uintptr_t)t->heap | MAP_SPAN);
    place_span(t->heap, s, span_give_up(s), t->pool_slot);
}

/* THE EVENT LEVEL OF A FLOATING SPAN. The owner's frees into a floating
 * span are fast-path frees; the one that brings `used` down to the level
 * calls frontend_free_event. The first level is where the span has the
 * reuse threshold of free blocks, counting the remote frees seen so far
 * (used <= capacity - reuse_count + remote); after that, where every block
 * is free by the remote count seen then. Remote frees only count (they may
 * free the last block: the owner finds that span when it looks at the set
 * on a refill, or on a trim), so the levels use the count the owner last
 * read: later remote frees only bring the real event earlier. */
static int64_t floating_reuse_level(const span_t *s, uint32_t remote)
{
    return (int64_t)span_capacity(s) - span_reuse_count(s) + remote;
}

/* The hot span of cls is exhausted: it joins t's floating set. */
static void frontend_float_hot(sc_frontend_t *t, span_t **hot, unsigned cls)
{
    span_t *s = hot[cls];
    frontend_set_hot(t, cls, &span_empty);
    /* Exhausted, or with blocks left to carve (floating_free_first). */
    SC_ASSERT(s->free == NULL);
    span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING);
    uint32_t remote = remote_count(atomic_load_explicit(&s->remote, memory_order_acquire));
    uint32_t used = span_used(s);
    floating_push(t, cls, s);
    if ((int64_t)used <= floating_reuse_level(s, remote))
        span_set_used_level(s, used, remote); /* reusable already */
    else
        span_set_used_level(s, used, floating_reuse_level(s, remote));
    if (used == remote) /* every block was freed while it was hot */
        floating_settle_empty(t, cls, s, false);
}

/* ARMED HOT SPANS. A hot span's frees never stop at an event (its level is
 * SPAN_LEVEL_NEVER), so a thread that frees everything and then waits
 * keeps its hot spans, which no other thread may touch. At each retirement
 * look the owner arms its hot spans that hold live blocks instead: their
 * level becomes the remote count of then, so the owner's free that empties
 * one calls frontend_free_event, which takes it off the hot slot and
 * settles it as an emptied floating span (kept for the class, DRAINED, so
 * that any thread's trim gives its memory back; or pooled, past the
 * bound). Every span that becomes hot is armed. The next allocation of the
 * class takes the kept span back on its slow path; if it empties again
 * within HOT_REFILL_TICKS slow paths, it stays hot, unarmed until the next
 * look: a program that empties and refills a hot span all the time pays
 * a slow path or two per class and look (HOT_RETIRE_MS), not one per
 * refill. */
static bool span_event_armed(const span_t *s)
{
    /* counts = room * 2^COUNTS_USED_BITS + used; an unarmed hot span's room
     * is above 2^29 (SPAN_LEVEL_NEVER), an armed one's below a capacity. */
    return (int64_t)owner_word_get(&s->counts) < ((int64_t)1 << (COUNTS_USED_BITS + 29));
}

static void hot_arm(span_t *s)
{
    uint32_t remote = remote_count(atomic_load_explicit(&s->remote, memory_order_acquire));
    span_set_used_level(s, span_used(s), remote);
}

/* The owner's free that reached an armed hot span's level: an empty span
 * leaves the hot slot; one that is not (its remote frees were taken back
 * since it was armed) is armed again at the count of now. */
static void hot_free_event(sc_frontend_t *t, unsigned cls, span_t *s, uint32_t used, uint32_t remote)
{
    span_t **hot = frontend_hot_array(t);
    if (used > remote || hot[cls] != s) {
        span_set_used_level(s, used, hot[cls] == s ? (int64_t)remote : SPAN_LEVEL_NEVER);
        return;
    }
    if (t->slow_ticks - t->reclaim_tick[cls] <= HOT_REFILL_TICKS) {
        /* Taken back from the kept spans a moment ago: a loop that
         * empties and refills it. It stays hot, unarmed. */
        span_set_used_level(s, used, SPAN_LEVEL_NEVER);
        return;
    }
    frontend_set_hot(t, cls, &span_empty);
    bool floated = span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING);
    SC_ASSERT(floated); /* only a FLOATING span is ever taken from its owner */
    (void)floated;
    floating_push(t, cls, s);
    floating_settle_empty(t, cls, s, true);
}

static void free_event_gated(sc_frontend_t *t, span_t *s);

void frontend_free_event(span_t *s)
{
    sc_frontend_t *t = span_owner(s);
    frontend_enter(t);
    free_event_gated(t, s);
    frontend_leave(t);
}

static void free_event_gated(sc_frontend_t *t, span_t *s)
{
    unsigned cls = span_class(s);
    uint32_t used = span_used(s);
    /* acquire: remote frees counted here are complete. */
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    uint32_t remote = remote_count(w);
    t->slow_ticks++; /* the owner's slow paths count frees' events too */
    if (remote_state(w) == SPAN_HOT) {
        hot_free_event(t, cls, s, used, remote);
        return;
    }
    if (remote_state(w) != SPAN_FLOATING || s->kept_empty) {
        /* A DRAINED or kept span was free already: this free was a double
         * free, which the pool's fresh start absorbs. */
        floating_remove(t, cls, s);
        if (!owned_to_pool(t, s))
            floating_push(t, cls, s);
        return;
    }
    if (used <= remote) { /* every block is free */
        floating_settle_empty(t, cls, s, false);
        return;
    }
    /* Reusable: first in line for the next refill of the class. */
    floating_remove(t, cls, s);
    floating_push(t, cls, s);
    t->floating[cls] = s;
    span_set_used_level(s, used, remote);
}

/* Sets up s (taken from the pool, fresh, or an EMPTY reusable span) as a
 * HOT span of cls, grown or not, with the metadata of a checked or
 * tracking heap. */
static bool frontend_setup_span(sc_frontend_t *t, span_t *s, unsigned cls, unsigned level)
{
    size_t touched = span_touched_bytes(s);
    if (!span_init_blocks(s, t->heap, cls, level))
        return false;
    if (check_enabled(t->heap))
        check_span_init(s);
    if (requested_enabled(t->heap))
        requested_span_init(s);
    span_carve_touched(s, touched);
    return true;
}

/* Owner: takes back s, a span kept empty for class c (KEPT EMPTY SPANS)
 * and just taken off c's set, as an armed HOT span of class cls. It is set
 * up afresh when cls is another class (at grown level `level`) or a trim
 * gave its memory back meanwhile. */
enum kept_result { KEPT_HOT, KEPT_BEING_TRIMMED, KEPT_REFUSED };
static enum kept_result kept_take(sc_frontend_t *t, unsigned c, span_t *s, unsigned cls,
                                  unsigned level)
{
    if (!span_reclaim_kept(s)) {
        floating_push(t, c, s); /* being trimmed: the trimmer pools it */
        return KEPT_BEING_TRIMMED;
    }
    t->reclaim_tick[cls] = t->slow_ticks;
    /* Set up afresh for its own class, a span keeps its size. */
    if ((c != cls || span_was_trimmed(s)) &&
        !frontend_setup_span(t, s, cls, c == cls ? span_grown_level(s) : level)) {
        /* The heap's limit refused the set-up. */
        bool pooled = owned_to_pool(t, s);
        SC_ASSERT(pooled);
        (void)pooled;
        return KEPT_REFUSED;
    }
    hot_arm(s);
    return KEPT_HOT;
}

/* Looks at the oldest floating spans of cls: empty ones go to the pool, the
 * first with enough free blocks becomes HOT and is returned. *all_full:
 * whether every span it looked at (one at least) had every block live. */
static span_t *floating_reuse(sc_frontend_t *t, unsigned cls, bool *all_full)
{
    *all_full = t->floating[cls] != NULL;
    for (unsigned i = 0; i < FLOATING_SCAN; i++) {
        span_t *s = t->floating[cls];
        if (s == NULL)
            return NULL;
        bool kept = s->kept_empty != 0;
        floating_remove(t, cls, s);
        if (kept) {
            *all_full = false;
            if (kept_take(t, cls, s, cls, 0) == KEPT_HOT)
                return s;
            continue;
        }
        uint32_t live = span_owned_live(s);
        if (live < span_capacity(s))
            *all_full = false;
        /* An empty span that is still FLOATING (kept, or emptied by frees
         * counted since) serves its class as it is; a DRAINED one goes to
         * the pool, which has its pages back already or soon. */
        if (live == 0 && span_state(s) != SPAN_FLOATING && owned_to_pool(t, s))
            continue;
        if (span_capacity(s) - live >= span_reuse_count(s) &&
            span_set_owned_state(s, SPAN_FLOATING, SPAN_HOT)) {
            hot_arm(s);
            return s;
        }
        floating_push(t, cls, s); /* not yet, or being trimmed: look again later */
    }
    return NULL;
}

/* Owner: floating span s of class c to the pool (a span being trimmed
 * right then stays in the set). */
static void floating_pool_one(sc_frontend_t *t, unsigned c, span_t *s)
{
    floating_remove(t, c, s);
    if (!owned_to_pool(t, s))
        floating_push(t, c, s);
}

/* Owner: looks at every floating span of class c once and settles those
 * `pick` says with `settle`, which may put them back at either end of the
 * set (after the last one looked at). */
static void floating_settle_where(sc_frontend_t *t, unsigned c, bool (*pick)(span_t *),
                                  void (*settle)(sc_frontend_t *, unsigned, span_t *))
{
    span_t *head = t->floating[c];
    if (head == NULL)
        return;
    span_t *last = head->set_prev;
    for (span_t *s = head;;) {
        span_t *next = s->set_next;
        bool done = s == last;
        if (pick(s))
            settle(t, c, s);
        if (done)
            break;
        s = next;
    }
}

/* Owner: pools every floating span of class c that `pick` says. */
static void floating_pool_where(sc_frontend_t *t, unsigned c, bool (*pick)(span_t *))
{
    floating_settle_where(t, c, pick, floating_pool_one);
}

static bool drained_not_kept(span_t *s)
{
    return span_state(s) == SPAN_DRAINED && !s->kept_empty;
}

static bool no_live_block(span_t *s)
{
    return span_owned_live(s) == 0;
}

/* Owner: s, a floating span of class c that other threads' frees drained
 * (DRAINED or DRAINING, marked drained already), is kept for c as if its
 * owner's frees had emptied it (KEPT EMPTY SPANS: the next refill of c
 * takes it back HOT, its blocks on its remote list) when it is a span of
 * the smallest band and the keep budget allows; else it goes to the pool.
 * Why the smallest band only: a producer whose consumers free everything
 * otherwise finds the pool's small spans taken and cuts a bigger class's
 * warm span down for each small class (a madvise each, span_pool.c,
 * cut_batch), while kept big spans would hold what other producers take
 * from the pool (tuning.h, DRAINED_KEEP_MAX says what each cost). */
static void drained_keep_or_pool(sc_frontend_t *t, unsigned c, span_t *s)
{
    size_t bytes = span_real_bytes(s);
    if (bytes > DRAINED_KEEP_MAX || !keep_fits(t, bytes)) {
        floating_pool_one(t, c, s);
        return;
    }
    floating_remove(t, c, s);
    kept_to_front(t, c, s, bytes); /* DRAINED and marked drained already */
}

/* The DRAINED floating spans of the classes other threads reported
 * (place_span): settled by the owner (`keep`: drained_keep_or_pool), or
 * pooled, every one, by another thread behind the owner's gate (the owner
 * is idle: registry.c, "DRAINED SPANS OF IDLE OWNERS"). */
static void frontend_pool_drained(sc_frontend_t *t, bool keep)
{
    /* acquire: pairs with the reporters' release. */
    uint64_t classes = atomic_exchange_explicit(&t->drained_classes, 0, memory_order_acquire);
    while (classes) {
        unsigned c = (unsigned)__builtin_ctzll(classes);
        classes &= classes - 1;
        floating_settle_where(t, c, drained_not_kept,
                              keep ? drained_keep_or_pool : floating_pool_one);
    }
}

/* t takes a span of class cls from the pool or fresh address space: if
 * its own spans went to the pool for want of budget since the last look,
 * the budget grows by this one (tuning.h, FRONTEND_KEEP_EMPTY_BYTES). */
static void keep_budget_grow(sc_frontend_t *t, size_t bytes)
{
    if (t->keep_overflow == 0)
        return;
    t->keep_overflow--;
    if (t->keep_budget + bytes <= FRONTEND_KEEP_EMPTY_MAX)
        t->keep_budget += bytes;
}

/* A span t keeps empty for another class (KEPT EMPTY SPANS), set up
 * afresh for cls, HOT and armed; NULL if there is none. Without `cut`:
 * one whose committed bytes class cls keeps as they are (no tail to cut).
 * A thread that moves on from one class to the next of its band reuses
 * its own empty spans without the pool's round trip (two clock reads and
 * atomics that every thread of the heap writes), and its kept spans do
 * not wait for a class it no longer uses. With `cut` (the pool had no span
 * for cls and none is cold: PHASE CHANGES below): a grown one, whatever
 * it committed, set up at grown level `level` (span_init_blocks gives back
 * what is over cls's real span there). */
static span_t *kept_reuse_other(sc_frontend_t *t, unsigned cls, unsigned level, bool cut)
{
    size_t keep = span_keep_bytes(t->heap, cls, level);
    unsigned band = span_pool_bucket(keep);
    uint64_t classes = t->kept_empty_classes & ~((uint64_t)1 << cls);
    while (classes) {
        unsigned c = (unsigned)__builtin_ctzll(classes);
        classes &= classes - 1;
        span_t *s = t->floating[c];
        /* Without `cut`, of the same band only: a smaller span grown for a
         * bigger class would leave the pool's warm spans of that band idle
         * (and its own class without it), which measured as more memory,
         * not less. */
        if (s == NULL || !s->kept_empty)
            continue;
        if (cut ? span_grown_level(s) == 0
                : s->committed > keep || span_pool_bucket(span_real_bytes(s)) != band)
            continue;
        floating_remove(t, c, s);
        switch (kept_take(t, c, s, cls, level)) {
        case KEPT_HOT: return s;
        case KEPT_BEING_TRIMMED: continue;
        case KEPT_REFUSED: return NULL;
        }
    }
    return NULL;
}

/* PHASE CHANGES. A thread that moves on from one class to another keeps
 * the old class's empty hot span, and the empty spans it kept for it, until
 * its next retirement looks (HOT_RETIRE_MS), and the pool only ever sees
 * them then; a program whose phases are shorter than that took fresh pages
 * for each new class while the old ones idled. glibc's malloc-simple loop
 * (batches of up to 1,600 blocks of 16 B, then of 32 B, ... then of 4 KiB;
 * tests/bench/preload) peaked at 9.7 MB committed with 6.5 MB in use, the
 * grown 128-512 KiB spans of five earlier classes idle. So on the way to
 * fresh address space (nothing in the pool fits, none is cold) a thread
 * first sets up a grown span it keeps empty for another class, cut down
 * if bigger (kept_reuse_other), then pools the empty grown hot span of
 * another class (hot_pool_other) and takes that. Grown spans only: a class grew its
 * spans because its blocks piled up (class_grow_level), so an empty grown
 * span is what a finished phase left; a small span that is empty now
 * mostly belongs to a class that cycles a few blocks and wants it back at
 * once. Taking any span, grown or not, measured the same on the loop but
 * raised the 1-thread peaks of thread churn (5,296 -> 5,828 KiB resident,
 * scalloc_footprint churn 1 full 1) and mixed sizes (5,748 -> 5,912 KiB at
 * the end); grown only: both unchanged, and the loop (its sizes and
 * batches through sc_alloc) ends at 7,148 KiB committed instead of 9,712
 * (taking only spans at least as big as the new class's: 7,664). */

/* Whether a span that committed `a` bytes serves a class that keeps
 * `keep` better than one that committed `b`: one that holds them all
 * with the least to give back, else the one that holds the most. */
static bool fits_better(size_t a, size_t b, size_t keep)
{
    if ((a >= keep) != (b >= keep))
        return a >= keep;
    return a >= keep ? a < b : a > b;
}

/* The empty grown hot span of another class of t's that serves `keep`
 * best (fits_better) to the pool, where the caller takes it (cut down to
 * `keep` if bigger); false if there is none. */
static bool hot_pool_other(sc_frontend_t *t, unsigned cls, size_t keep)
{
    span_t **hot = frontend_hot_array(t);
    unsigned best = NUM_CLASSES;
    for (unsigned c = 0; c < NUM_CLASSES; c++) {
        span_t *s = hot[c];
        if (c == cls || s == &span_empty || span_grown_level(s) == 0 || span_owned_live(s) != 0)
            continue;
        if (best == NUM_CLASSES || fits_better(s->committed, hot[best]->committed, keep))
            best = c;
    }
    if (best == NUM_CLASSES)
        return false;
    hot_to_pool(t, best, hot[best]);
    return true;
}

/* The level t's next span of class cls from the pool or fresh address
 * space is grown to (tuning.h, GROWN_SPAN_AFTER; 0: not grown): 1 once its
 * floating set holds GROWN_SPAN_AFTER spans, one more for each four times
 * as many, up to GROWN_SPAN_LEVELS, if the spans floating_reuse just
 * looked at have every block live (`full`: none came back), and no other
 * thread began freeing blocks of
 * the class into t's spans over t's last two retirement looks (remote frees
 * wait in batches, so spans look full long after they started): the
 * class's live blocks keep piling up. A thread whose blocks come back (a
 * ring, a producer whose consumers free them) keeps small spans, which
 * frees empty sooner. */
static unsigned class_grow_level(const sc_frontend_t *t, unsigned cls, bool full)
{
    uint32_t floating = t->floating_spans[cls];
    if (!full || floating < GROWN_SPAN_AFTER || !span_class_can_grow(t->heap, cls))
        return 0;
    /* relaxed: a hint; a bit set a moment late costs one grown span. */
    uint64_t remote = atomic_load_explicit(&t->remote_classes, memory_order_relaxed) | t->remote_classes_before;
    if (remote >> cls & 1)
        return 0;
    unsigned level = 1;
    while (level < GROWN_SPAN_LEVELS && floating >= (uint32_t)GROWN_SPAN_AFTER << (2 * level))
        level++;
    return level;
}

/* A span for class cls, HOT for t: one of t's own floating spans, then a
 * reusable one of the heap, then one t keeps empty for another class, then
 * the pool, then a fresh virtual span. */
static span_t *frontend_new_span(sc_frontend_t *t, unsigned cls)
{
    struct sc_heap_s *heap = t->heap;
    bool floating_full;
    span_t *s = floating_reuse(t, cls, &floating_full);
    if (s)
        return s;
    bool empty = false;
    s = reusable_take(heap, cls, &empty);
    if (s == NULL && (s = kept_reuse_other(t, cls, 0, false)) != NULL)
        return s;
    if (s == NULL || empty) {
        unsigned level = class_grow_level(t, cls, floating_full);
        if (s == NULL) {
            size_t keep = span_keep_bytes(heap, cls, level);
            s = span_pool_take_fit(heap, t->pool_slot, keep);
            if (s == NULL && (s = kept_reuse_other(t, cls, level, true)) != NULL)
                return s;
            if (s == NULL && hot_pool_other(t, cls, keep))
                s = span_pool_take_fit(heap, t->pool_slot, keep);
            if (s == NULL)
                s = arena_take_span(heap);
            if (s == NULL)
                return NULL;
            keep_budget_grow(t, keep);
        }
        /* An empty span of the class's that grew before is set up grown to
         * fit it, not cut down (a madvise, and the faults after it). */
        while (empty && span_class_can_grow(heap, cls) && level < GROWN_SPAN_LEVELS &&
               s->committed > span_keep_bytes(heap, cls, level))
            level++;
        if (!frontend_setup_span(t, s, cls, level)) {
            span_pool_put(heap, s, t->pool_slot);
            errno = ENOMEM;
            return NULL;
        }
    }
    span_set_owner(s, t);
    address_map_set(s, owned_word(t));
    hot_arm(s);
    return s;
}

void frontend_free_owned(sc_frontend_t *t, span_t *s, block_t *b, const char *call)
{
    if (b == s->free || (check_enabled(t->heap) && !check_block_free(s, b))) {
        error_report(SC_ERR_DOUBLE_FREE, call, t->heap, b);
        return;
    }
    if (requested_enabled(t->heap))
        requested_on_free(t, requested_slack(s, b));
    if (frontend_local_push(t, s, b))
        frontend_free_event(s);
}

/* REMOTE BATCHES. A free into a span t does not own is collected in t's
 * batch for that span (slots are picked by the span's address, so this is
 * a few loads and stores) and the batch is handed over with one CAS on the
 * span's remote word: when the slot is needed for another span, when it
 * holds REMOTE_SLOT_MAX blocks, when t's batches hold REMOTE_PENDING_BYTES
 * of blocks in all, on t's allocation slow path, on a trim and at thread
 * exit. Until then the blocks count as live in their span (so it cannot
 * be emptied and reused under them) and as freed in t's pending counters,
 * which statistics subtract. */

/* A batch refused as a whole (a double free in it or in the span): frees
 * its blocks one by one so that each bad one is reported and the others
 * are freed. */
static void remote_flush_each(sc_frontend_t *t, span_t *s, block_t *b)
{
    while (b) {
        block_t *next = block_next(b);
        unsigned to;
        sc_error_t err = span_free_remote(s, b, b, 1, &to);
        if (err != SC_ERR_NONE)
            error_report(err, "sc_free", t->heap, b);
        else
            place_span(t->heap, s, to, t->pool_slot);
        b = next;
    }
}

static void remote_flush_slot(sc_frontend_t *t, remote_batch_t *r)
{
    span_t *s = remote_batch_span(r);
    block_t *head = r->head, *tail = r->tail;
    uint32_t n = (uint32_t)owner_word_get(&r->count);
    owner_word_set(&r->span, 0);
    owner_word_set(&r->count, 0);
    r->head = r->tail = NULL;
    t->remote_pending_bytes -= n * s->block_size;
    unsigned to;
    if (span_free_remote(s, head, tail, n, &to) != SC_ERR_NONE)
        remote_flush_each(t, s, head);
    else
        place_span(t->heap, s, to, t->pool_slot);
}

/* A batch of frees into s begins: s's owner learns that its class has
 * remote frees (class_grow_level). Frontends are never unmapped, so a stale
 * owner's bit is only a spurious hint. relaxed: nothing is published. */
static void note_remote_class(const span_t *s)
{
    sc_frontend_t *owner = span_owner(s);
    uint64_t bit = (uint64_t)1 << span_class(s);
    if (owner != NULL && (atomic_load_explicit(&owner->remote_classes, memory_order_relaxed) & bit) == 0)
        atomic_fetch_or_explicit(&owner->remote_classes, bit, memory_order_relaxed);
}

bool frontend_remote_add_slow(sc_frontend_t *t, span_t *s, block_t *b)
{
    remote_batch_t *r = frontend_remote_slot(t, s);
    if (remote_batch_span(r) != s) {
        if (remote_batch_span(r) != NULL)
            remote_flush_slot(t, r);
        owner_word_set(&r->span, (uintptr_t)s);
        note_remote_class(s);
    } else if (b == r->head) {
        return false;
    }
    frontend_remote_link(t, r, s, b);
    if (owner_word_get(&r->count) >= REMOTE_SLOT_MAX)
        remote_flush_slot(t, r);
    else if (t->remote_pending_bytes >= REMOTE_PENDING_BYTES)
        frontend_remote_flush(t); /* nested in the dispatcher's gate */
    return true;
}

/* Hands every batch over; by the owner behind its gate, or by a trimmer
 * that holds the gate closed. */
static void remote_flush_all(sc_frontend_t *t)
{
    for (unsigned i = 0; i < REMOTE_SLOTS && t->remote_pending_bytes > 0; i++) {
        if (remote_batch_span(&t->remote[i]) != NULL)
            remote_flush_slot(t, &t->remote[i]);
    }
}

void frontend_remote_flush(sc_frontend_t *t)
{
    frontend_enter(t);
    remote_flush_all(t);
    frontend_leave(t);
}

void frontend_remote_discard(sc_frontend_t *t)
{
    for (unsigned i = 0; i < REMOTE_SLOTS; i++) {
        remote_batch_t *r = &t->remote[i];
        owner_word_set(&r->span, 0);
        owner_word_set(&r->count, 0);
        r->head = r->tail = NULL;
    }
    t->remote_pending_bytes = 0;
}

/* At a retirement look: the kept empty spans that a look saw before go to
 * the pool, the others are marked seen. Kept spans are pushed to the front
 * of their set, so each class's first few spans are looked at. */
static void frontend_retire_kept_empty(sc_frontend_t *t)
{
    uint64_t classes = t->kept_empty_classes, still = 0;
    bool retired = false;
    while (classes) {
        unsigned c = (unsigned)__builtin_ctzll(classes);
        classes &= classes - 1;
        span_t *look[FLOATING_SCAN];
        unsigned n = 0;
        span_t *head = t->floating[c];
        for (span_t *s = head; s != NULL && n < FLOATING_SCAN; s = s->set_next == head ? NULL : s->set_next)
            look[n++] = s;
        for (unsigned i = 0; i < n; i++) {
            span_t *s = look[i];
            if (s->kept_empty == 2) {
                floating_remove(t, c, s);
                retired = true;
                if (owned_to_pool(t, s))
                    continue;
                floating_push(t, c, s); /* being trimmed: the trimmer pools it */
            } else if (s->kept_empty == 1) {
                s->kept_empty = 2;
                still |= (uint64_t)1 << c;
            }
        }
        /* More kept spans than one look takes (they wait at the front):
         * the class is looked at again. */
        span_t *first = t->floating[c];
        if (first != NULL && first->kept_empty)
            still |= (uint64_t)1 << c;
    }
    t->kept_empty_classes = still;
    /* Spans kept a whole look for nothing: the budget was more than the
     * thread cycles; all of them: the thread cycles nothing now (a few big
     * spans, grown ones, retire in one look where many small ones took
     * several halvings). */
    if (retired && t->kept_empty_bytes != 0 && t->keep_budget / 2 >= FRONTEND_KEEP_EMPTY_BYTES)
        t->keep_budget /= 2;
    else if (retired)
        t->keep_budget = FRONTEND_KEEP_EMPTY_BYTES;
}

/* Owner, on the allocation slow path for class `except`: every
 * HOT_RETIRE_MS, the hot spans that are empty now and were empty at the
 * previous look go to the pool (tuning.h), the kept spans a look saw
 * before too, and the hot spans that hold live blocks are armed. The fast
 * paths never look at the clock; a frontend that never reaches its slow
 * path keeps its spans until a trim or its thread's exit. */
static void frontend_retire_empty_hot(sc_frontend_t *t, unsigned except)
{
    /* The clock every HOT_RETIRE_CHECK_EVERY slow paths: a program whose
     * slow paths come in bursts does not read it on each. The heap's sweep
     * of drained spans runs on the same reading. */
    if (--t->retire_countdown != 0)
        return;
    t->retire_countdown = HOT_RETIRE_CHECK_EVERY;
    uint32_t now = os_coarse_ms();
    /* relaxed: a hint for other threads' automatic idle trim (registry.c),
     * which is safe whatever it reads (the idle trim's gate). */
    atomic_store_explicit(&t->active_ms, now, memory_order_relaxed);
    span_pool_release_drained(t->heap, now);
    if (time_before(now, t->retire_due))
        return;
    t->retire_due = now + HOT_RETIRE_MS;
    /* A class whose remote frees stopped a whole look ago may grow again
     * (class_grow_level): two looks' worth, so that the first spans after a
     * look do not grow before the next remote batch begins. */
    t->remote_classes_before = atomic_exchange_explicit(&t->remote_classes, 0, memory_order_relaxed);
    /* The release policy's look too, when it is overdue: what threads
     * that exited or stopped allocating left in the pool goes back even
     * when no span is pooled or taken any more (cheap when nothing is
     * due). Only overdue: a heap whose pool traffic applies the policy in
     * time gets no purges, and no system calls, more. */
    span_pool_purge_overdue(t->heap, now);
    t->keep_overflow = 0; /* evidence of one look's period only */
    if (t->kept_empty_classes)
        frontend_retire_kept_empty(t);
    span_t **hot = frontend_hot_array(t);
    uint64_t seen = t->empty_hot_seen, empty = 0;
    for (unsigned c = 0; c < NUM_CLASSES; c++) {
        span_t *s = hot[c];
        if (s == &span_empty)
            continue;
        if (span_owned_live(s) != 0) {
            if (!span_event_armed(s))
                hot_arm(s);
            continue;
        }
        uint64_t bit = (uint64_t)1 << c;
        if (!(seen & bit) || c == except) {
            empty |= bit;
            continue;
        }
        hot_to_pool(t, c, s);
    }
    t->empty_hot_seen = empty;
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

/* At the heap's limit, t's own empty spans and the pool's warm ones may be
 * what is in the way: give them back once before refusing. */
static bool frontend_make_room(sc_frontend_t *t, bool *trimmed)
{
    if (*trimmed)
        return false;
    *trimmed = true;
    frontend_trim(t);
    span_pool_cool(t->heap, false);
    return true;
}

void *frontend_alloc_huge(sc_frontend_t *t, size_t align, size_t n)
{
    frontend_enter(t);
    if (t->remote_pending_bytes > 0)
        remote_flush_all(t);
    frontend_trim_if_asked(t);
    bool trimmed = false;
    void *p = huge_alloc_aligned(t->heap, align, n);
    if (p == NULL && frontend_make_room(t, &trimmed))
        p = huge_alloc_aligned(t->heap, align, n);
    frontend_leave(t);
    return p;
}

static void *alloc_slow_gated(sc_frontend_t *t, size_t n);

/* Owner, behind the gate: a block from the hot span of cls, or NULL. */
static block_t *hot_pop(sc_frontend_t *t, unsigned cls)
{
    span_t *s = t->hot[cls];
    return likely(s->free != NULL) ? frontend_local_pop(t, s) : NULL;
}

/* BORROWING. Each class of a thread carves blocks up to its own
 * high-water mark, and the free ones stay its own: a thread whose big
 * requests wander over neighbouring classes keeps the sum of their peaks
 * resident, though it never holds that much at once. So when the hot span
 * of a class with blocks of BORROW_MIN_BLOCK bytes or more has no free
 * block on its list (the slow path would carve never-used blocks, take
 * remote frees back or change spans), the request takes a free block of
 * one of the next BORROW_CLASSES classes' hot spans if one has it: memory
 * already resident, at most two classes of rounding. The block stays its span's
 * (its free goes there); only plain heaps borrow (a checked or tracking
 * heap's hot[] is empty). tuning.h has the figures. */
static block_t *borrow_bigger(sc_frontend_t *t, unsigned cls)
{
    if (size_class_block_size(cls) < BORROW_MIN_BLOCK)
        return NULL;
    for (unsigned k = 1; k <= BORROW_CLASSES && cls + k < NUM_CLASSES; k++) {
        block_t *b = hot_pop(t, cls + k);
        if (b != NULL)
            return b;
    }
    return NULL;
}

/* Behind the gate: a block of class cls from its hot span, else a
 * borrowed one, else NULL. No gate inside: frontend_alloc_gated runs it in
 * the quick stretch. */
static inline block_t *hot_pop_or_borrow(sc_frontend_t *t, unsigned cls)
{
    block_t *b = hot_pop(t, cls);
    return b != NULL ? b : borrow_bigger(t, cls);
}

/* Free blocks before never-used ones, for big blocks too: a hot span of
 * a class with blocks of FREE_FIRST_MIN_BLOCK bytes or more whose free list is
 * empty but which has blocks left to carve floats as it is when the first
 * floating span of its class holds free blocks on its list, and that span
 * becomes hot instead (its blocks are in memory; carving touches new
 * pages). Without it a thread carved its hot span to the end while its
 * floating spans' free blocks waited, and each (thread, class) kept about
 * a span's worth more than its high-water mark. The floated span carves
 * the rest when it is hot again. Each swap hands out a block at least.
 * The span of free blocks made HOT, or NULL. */
static span_t *floating_free_first(sc_frontend_t *t, unsigned cls, span_t *hot_s)
{
    if (hot_s->block_size < FREE_FIRST_MIN_BLOCK || span_bump(hot_s) >= hot_s->bump_end)
        return NULL;
    span_t *f = t->floating[cls];
    if (f == NULL || f->kept_empty || f->free == NULL)
        return NULL;
    floating_remove(t, cls, f);
    if (!span_set_owned_state(f, SPAN_FLOATING, SPAN_HOT)) {
        floating_push(t, cls, f); /* being trimmed: carve instead */
        return NULL;
    }
    hot_arm(f);
    return f;
}

/* frontend_alloc_gated when the gate is held already, closed, or has
 * parked spans to put back: the long way in. */
static __attribute__((noinline)) void *alloc_gated_long(sc_frontend_t *t, unsigned cls)
{
    frontend_enter(t);
    block_t *b = hot_pop_or_borrow(t, cls);
    frontend_leave(t);
    return b;
}

void *frontend_alloc_gated(sc_frontend_t *t, size_t n)
{
    /* A checked or tracking heap's hot[] holds only the empty span, as does
     * a destroyed heap's frontend: both miss here. */
    unsigned cls = size_class_of(n);
    if (unlikely(!frontend_enter_quick(t)))
        return alloc_gated_long(t, cls);
    block_t *b = hot_pop_or_borrow(t, cls);
    frontend_leave_quick(t);
    return b;
}

void *frontend_alloc_slow(sc_frontend_t *t, size_t n)
{
    frontend_enter(t);
    void *b = alloc_slow_gated(t, n);
    frontend_leave(t);
    return b;
}

static void *alloc_slow_gated(sc_frontend_t *t, size_t n)
{
    /* A block over SMALL_MAX from its hot span: the fast path's work, done
     * here behind the gate (frontend_alloc_fast), not a slow path yet. */
    if (n > SMALL_MAX && n <= SIZE_CLASS_MAX && !slow_only(t->heap)) {
        block_t *b = hot_pop_or_borrow(t, size_class_of(n));
        if (b != NULL)
            return b;
    }
    t->slow_ticks++;
    if (requested_enabled(t->heap)) {
        void *b = alloc_tracked_local(t, n);
        if (b != NULL)
            return b;
    }
    frontend_retire_empty_hot(t, n > SIZE_CLASS_MAX ? NUM_CLASSES : size_class_of(n));
    if (n > SIZE_CLASS_MAX)
        return frontend_alloc_huge(t, 16, n);
    if (t->remote_pending_bytes > 0)
        remote_flush_all(t);
    if (atomic_load_explicit(&t->drained_classes, memory_order_relaxed) != 0)
        frontend_pool_drained(t, true);
    /* relaxed: a late look only delays the sweep to a later slow path. */
    if (atomic_load_explicit(&t->heap->reusable_emptied, memory_order_relaxed) != 0 &&
        atomic_exchange_explicit(&t->heap->reusable_emptied, 0, memory_order_relaxed) != 0)
        reusable_sweep_empty(t->heap);
    frontend_trim_if_asked(t);
    bool trimmed = false;
    unsigned cls = size_class_of(n);
    span_t **hot = frontend_hot_array(t);
    for (;;) {
        span_t *s = hot[cls];
        if (s != &span_empty) {
            enum carve_result carved = CARVE_OK;
            if (s->free == NULL) {
                if (!span_take_remote(s, take_threshold(s))) {
                    span_t *f = floating_free_first(t, cls, s);
                    if (f != NULL) {
                        frontend_float_hot(t, hot, cls);
                        frontend_set_hot(t, cls, f);
                        continue;
                    }
                    carved = span_carve(s);
                } else if (span_event_armed(s))
                    hot_arm(s); /* the count it was armed at was taken */
            }
            if (carved == CARVE_NO_COMMIT) {
                /* At the heap's limit with blocks left to carve: floating
                 * the span would only have it adopted again. Make room
                 * once, else refuse. */
                if (frontend_make_room(t, &trimmed))
                    continue;
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
            if (frontend_make_room(t, &trimmed))
                continue;
            errno = ENOMEM;
            return NULL;
        }
        frontend_set_hot(t, cls, s);
    }
}

void frontend_trim(sc_frontend_t *t)
{
    frontend_enter(t);
    remote_flush_all(t);
    span_t **hot = frontend_hot_array(t);
    for (unsigned c = 0; c < NUM_CLASSES; c++) {
        span_t *s = hot[c];
        if (s != &span_empty && span_owned_live(s) == 0)
            hot_to_pool(t, c, s);
        floating_pool_where(t, c, no_live_block); /* every empty one */
    }
    frontend_leave(t);
}

void frontend_give_up_spans(sc_frontend_t *t)
{
    /* Under the registry lock, which a trimmer of idle frontends holds
     * too: no gate needed, but spans it parked go back to their slots. */
    if (t->parked_classes != 0)
        frontend_unpark(t);
    remote_flush_all(t);
    span_t **arrays[2] = {t->hot, t->slow_hot};
    for (unsigned a = 0; a < 2; a++) {
        for (unsigned c = 0; c < NUM_CLASSES; c++) {
            span_t *s = arrays[a][c];
            if (s != &span_empty)
                owned_give_up(t, s);
        }
    }
    /* Floating spans too: they become DETACHED, reusable, or pooled. */
    for (unsigned c = 0; c < NUM_CLASSES; c++) {
        span_t *head = t->floating[c];
        if (head == NULL)
            continue;
        head->set_prev->set_next = NULL; /* open the circle */
        for (span_t *s = head; s;) {
            span_t *next = s->set_next;
            s->set_next = s->set_prev = NULL;
            s->kept_empty = 0;
            owned_give_up(t, s);
            s = next;
        }
    }
    frontend_forget_spans(t);
}

/* IDLE TRIM. A thread that stopped allocating keeps its hot spans, whose
 * free lists only it may pop; sc_heap_trim from another thread gives their
 * pages back all the same, without costing the owner's fast paths anything:
 *
 * 1. The trimmer closes the owner's gate (trim_closed) and issues a
 *    membarrier. If the owner is on a slow path (busy) it is left alone;
 *    else it cannot enter one until the gate opens again (the membarrier
 *    orders the owner's store of busy before its load of trim_closed, so
 *    one of the two sees the other). Behind the gate the trimmer hands the
 *    owner's remote batches over, as the owner's slow paths do: all the
 *    frontends' first, since one's batches may hold the last live blocks
 *    of another's spans. (Floating spans need no gate: one with every
 *    block free is DRAINED or as good as, and sc_heap_trim gives its
 *    memory back in place.)
 * 2. Hot spans with no live block are parked: their slots point to the
 *    empty span, so the fast path allocates from them no more. A second
 *    membarrier makes that visible: at most one allocation that read the
 *    old slot is still under way, and it pops the head of the free list,
 *    which the trimmer reads after the membarrier (the pop counts the block
 *    before it publishes the new head, with release order, so a trimmer
 *    that sees the old head and no count has the block that pop returns).
 *    Only blocks up to SMALL_MAX have such a fast path: bigger ones are
 *    taken behind the gate (frontend_alloc_gated), so their spans have no
 *    allocation under way.
 * 3. Its pages go, except those of that head block; the span stays HOT and
 *    the owner's, its committed bytes as they were. Zeroed links only cut
 *    the lists short (lost blocks, never handed out twice: nothing is
 *    carved again while a block may be live).
 * 4. The owner's next slow path (frontend_enter) puts parked spans back in
 *    their slots; one still without a live block is set up afresh, so its
 *    lost blocks come back. If the one pop under way took the head, that
 *    is the span's only live block, and the owner links every other carved
 *    block again (span_rebuild_free_list): no block stays off both lists,
 *    where counts would call it free and no list would hand it out.
 *
 * Frees by the owner into a parked span stay on the fast path: a span with
 * no live block gets no correct free. Checked and tracking heaps are left
 * out (their frontends are trimmed by their owners), and so is everything
 * where membarrier(2) is refused. */

void frontend_gate_wait(sc_frontend_t *t)
{
    /* The owner waits with busy set: a trimmer that closes the gate again
     * meanwhile sees it and leaves the frontend alone, so a thread that
     * trims all the time cannot keep the owner out. The trimmer that
     * closed it before the owner came never waits for the owner. */
    while (atomic_load_explicit(&t->trim_closed, memory_order_acquire) != 0)
        os_yield();
}

void frontend_unpark(sc_frontend_t *t)
{
    uint64_t classes = t->parked_classes, trimmed = t->trimmed_classes;
    t->parked_classes = 0;
    t->trimmed_classes = 0;
    while (classes) {
        unsigned c = (unsigned)__builtin_ctzll(classes);
        classes &= classes - 1;
        span_t *s = t->parked[c];
        t->parked[c] = NULL;
        SC_ASSERT(t->hot[c] == &span_empty);
        /* Its pages were given back, so its lists may end at a zeroed link.
         * With no block live (no allocation can be under way: this is the
         * owner) it is set up afresh; its committed bytes are those of
         * before, so the set-up commits nothing. Else the one allocation
         * that was under way took the list's head: every other block is
         * linked again (no block may stay off both lists, or the span would
         * look reusable with nothing to hand out). */
        if (trimmed >> c & 1) {
            /* Either way unarmed while no block is live (an armed level
             * would be above an empty span's count), armed again at the
             * count of now otherwise (the rebuild dropped the remote count
             * it was armed at). */
            bool fresh = span_owned_live(s) == 0 && span_init_blocks(s, t->heap, c, span_grown_level(s));
            if (!fresh) {
                span_rebuild_free_list(s, t->parked_head[c]);
                if (span_used(s) == 0)
                    span_set_used_level(s, 0, SPAN_LEVEL_NEVER);
                else if (span_event_armed(s))
                    hot_arm(s);
            }
        }
        frontend_set_hot(t, c, s);
    }
}

/* The trimmer: takes hot span s of class c off t's fast path (the
 * membarrier that follows makes the slots' new value visible). */
static void idle_park(sc_frontend_t *t, unsigned c, span_t *s)
{
    t->parked[c] = s;
    t->parked_classes |= (uint64_t)1 << c;
    slots_set(t, c, &span_empty);
}

/* The trimmer: gives back the pages of parked span s but those of `keep`
 * (a block, or NULL). Bytes given back. */
static size_t idle_release(span_t *s, const block_t *keep, os_release_batch_t *batch)
{
    size_t page = os_page_size();
    char *base = span_base(s), *end = base + s->rw_bytes;
    char *lo = end, *hi = end;
    if (keep != NULL) {
        const char *k = (const char *)keep;
        if (k < base + SPAN_LEAD || k >= end)
            return 0; /* not a block of s: leave the span alone */
        lo = base + ((size_t)(k - base) & ~(page - 1));
        hi = base + (((size_t)(k - base) + s->block_size + page - 1) & ~(page - 1));
        if (hi > end)
            hi = end;
    }
    size_t bytes = 0;
    if (lo > base) {
        os_release_batch_add(batch, base, (size_t)(lo - base));
        bytes += (size_t)(lo - base);
    }
    if (end > hi) {
        os_release_batch_add(batch, hi, (size_t)(end - hi));
        bytes += (size_t)(end - hi);
    }
    return bytes;
}

static void idle_open(sc_frontend_t *t)
{
    /* release: the owner's next slow path sees what the trimmer did. */
    atomic_store_explicit(&t->trim_closed, 0, memory_order_release);
}

/* Step 1 of the idle trim: closes the gates of ts[0..n) and keeps in held
 * those whose owners are away from their slow paths (the others' gates
 * open again at once). Returns how many it holds. */
static unsigned idle_close(sc_frontend_t *const *ts, unsigned n, sc_frontend_t **held)
{
    SC_ASSERT(n <= FRONTEND_IDLE_GROUP);
    for (unsigned i = 0; i < n; i++)
        atomic_store_explicit(&ts[i]->trim_closed, 1, memory_order_relaxed);
    bool fenced = os_membarrier();
    unsigned m = 0;
    for (unsigned i = 0; i < n; i++) {
        /* acquire: what the owner did on its last slow path is visible. */
        if (fenced && atomic_load_explicit(&ts[i]->busy, memory_order_acquire) == 0)
            held[m++] = ts[i];
        else
            idle_open(ts[i]);
    }
    return m;
}

void frontend_pool_drained_idle(sc_frontend_t *const *ts, unsigned n)
{
    sc_frontend_t *held[FRONTEND_IDLE_GROUP];
    unsigned m = idle_close(ts, n, held);
    /* Behind the gate the trimmer is the owner as far as the floating sets
     * go: the owner's fast paths never touch them, and its frees reach a
     * span with no live block only as double frees (as for parked spans). */
    for (unsigned i = 0; i < m; i++)
        frontend_pool_drained(held[i], false);
    for (unsigned i = 0; i < m; i++)
        idle_open(held[i]);
}

void frontend_trim_idle(sc_frontend_t *const *ts, unsigned n)
{
    sc_frontend_t *held[FRONTEND_IDLE_GROUP];
    unsigned m = idle_close(ts, n, held);
    /* Every batch first: one frontend's batches may hold the last live
     * blocks of another's hot spans. */
    for (unsigned i = 0; i < m; i++)
        remote_flush_all(held[i]);
    bool parked = false;
    for (unsigned i = 0; i < m; i++) {
        sc_frontend_t *t = held[i];
        for (unsigned c = 0; c < NUM_CLASSES; c++) {
            span_t *s = t->hot[c];
            if (s != &span_empty && !(t->parked_classes >> c & 1) && span_owned_live(s) == 0) {
                idle_park(t, c, s);
                parked = true;
            }
        }
    }
    if (parked && os_membarrier()) {
        os_release_batch_t batch = {.n = 0};
        for (unsigned i = 0; i < m; i++) {
            sc_frontend_t *t = held[i];
            uint64_t classes = t->parked_classes & ~t->trimmed_classes;
            while (classes) {
                unsigned c = (unsigned)__builtin_ctzll(classes);
                classes &= classes - 1;
                span_t *s = t->parked[c];
                /* acquire (the head first, then the counts): see step 2.
                 * Blocks over SMALL_MAX are only ever taken behind the
                 * gate: no allocation of theirs can be under way. */
                const block_t *head = __atomic_load_n(&s->free, __ATOMIC_ACQUIRE);
                if (span_owned_live(s) != 0)
                    continue; /* allocated from meanwhile: parked only */
                if (s->block_size > SMALL_MAX)
                    head = NULL;
                if (idle_release(s, head, &batch) != 0) {
                    t->trimmed_classes |= (uint64_t)1 << c;
                    t->parked_head[c] = head;
                }
            }
        }
        os_release_batch_flush(&batch);
    }
    for (unsigned i = 0; i < m; i++)
        idle_open(held[i]);
}
