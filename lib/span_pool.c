/* The span pool and the release policy (span_pool.h). */
#include "span_pool.h"

#include "arena.h"
#include "os.h"
#include "span.h"
#include "span_stack.h"

/* Upper bounds of the pool's buckets of committed bytes (the last takes
 * the rest): a bucket per band of real span sizes (tuning.h), with room
 * for a checked or tracking span's tables, so that a warm span is taken
 * for a class of its own band first and never has a tail to give back. */
_Static_assert(REAL_SPAN_BAND(POOL_BUCKETS - 1) == SPAN_SIZE,
               "one pool bucket per band of real spans");
static const size_t bucket_bound[POOL_BUCKETS - 1] = {
    REAL_SPAN_BAND(0) / 4 * 5, REAL_SPAN_BAND(1) / 4 * 5, REAL_SPAN_BAND(2) / 4 * 5};

unsigned span_pool_bucket(size_t committed)
{
    unsigned b = 0;
    while (b < POOL_BUCKETS - 1 && committed > bucket_bound[b])
        b++;
    return b;
}


#define PURGE_ARMED ((uint64_t)1 << 32)

/* The heap's in-use bytes now, and their high-water over the current
 * window and the one before (so a peak counts for one to two windows).
 * Racing threads may lose an update of the high-water (a window opens
 * once, by a CAS): it is a hint for the bound, relaxed atomics. */
static size_t in_use_now(struct sc_heap_s *heap, uint32_t now, size_t *peak)
{
    size_t committed = atomic_load_explicit(&heap->committed_bytes, memory_order_relaxed);
    size_t unused = atomic_load_explicit(&heap->unused_bytes, memory_order_relaxed);
    size_t in_use = committed > unused ? committed - unused : 0;
    uint32_t since = atomic_load_explicit(&heap->in_use_window, memory_order_relaxed);
    size_t cur = atomic_load_explicit(&heap->in_use_peak, memory_order_relaxed);
    if (!time_before(now, since + RETAIN_PEAK_WINDOW_MS) &&
        atomic_compare_exchange_strong_explicit(&heap->in_use_window, &since, now,
                                                memory_order_relaxed, memory_order_relaxed)) {
        atomic_store_explicit(&heap->in_use_peak_before, cur, memory_order_relaxed);
        cur = in_use;
        atomic_store_explicit(&heap->in_use_peak, cur, memory_order_relaxed);
    } else if (in_use > cur) {
        cur = in_use;
        atomic_store_explicit(&heap->in_use_peak, cur, memory_order_relaxed);
    }
    size_t before = atomic_load_explicit(&heap->in_use_peak_before, memory_order_relaxed);
    *peak = before > cur ? before : cur;
    return in_use;
}

size_t span_pool_retain_bound(struct sc_heap_s *heap, uint32_t now)
{
    if (heap->retain_bytes)
        return heap->retain_bytes;
    size_t peak;
    size_t in_use = in_use_now(heap, now, &peak);
    /* What the heap's committed bytes may reach: its recent peak of use
     * and a share more. Free spans, which wait for the delay whatever the
     * bound, take their part of that first. */
    size_t unused = atomic_load_explicit(&heap->unused_bytes, memory_order_relaxed);
    size_t huge = atomic_load_explicit(&heap->unused_huge_bytes, memory_order_relaxed);
    size_t spans = unused > huge ? unused - huge : 0;
    size_t allowed = peak + in_use / RETAIN_SHARE;
    size_t bound = allowed > in_use + spans ? allowed - in_use - spans : 0;
    return bound > RETAIN_MIN ? bound : RETAIN_MIN;
}

/* What the bound applies to: with retain_bytes set, every unused byte;
 * by default only the pages of free huge runs, which only a huge block
 * that fits can reuse (fragmentation can strand them while the heap keeps
 * allocating), while pooled spans, which any class reuses, are left to
 * the delay: a program that frees a batch and allocates the next keeps it
 * warm however big it is. */
static size_t bounded_unused(struct sc_heap_s *heap, uint64_t *kinds)
{
    if (heap->retain_bytes) {
        *kinds = INFO_POOLED | INFO_HUGE_FREE;
        return atomic_load_explicit(&heap->unused_bytes, memory_order_relaxed);
    }
    *kinds = INFO_HUGE_FREE;
    return atomic_load_explicit(&heap->unused_huge_bytes, memory_order_relaxed);
}

/* Lets the policy look at the heap again at coarse time `due` (or earlier,
 * if something is due earlier already). */
static void purge_arm(struct sc_heap_s *heap, uint32_t due)
{
    uint64_t want = PURGE_ARMED | due;
    /* relaxed: purge_due is only a hint when to look; the purge itself
     * reads the span info under retain_lock. */
    uint64_t cur = atomic_load_explicit(&heap->purge_due, memory_order_relaxed);
    while (!(cur & PURGE_ARMED) || time_before(due, (uint32_t)cur)) {
        if (atomic_compare_exchange_weak_explicit(&heap->purge_due, &cur, want,
                                                  memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

void span_pool_note_unused(struct sc_heap_s *heap, uint32_t now)
{
    if (heap->purge_delay_ms != UINT32_MAX)
        purge_arm(heap, now + heap->purge_delay_ms);
}

/* Takes a whole stack at once: the caller holds every span on it
 * exclusively. The tag is bumped, so a popper that read the old head fails
 * its CAS. Returns the spans linked through stack_next, newest first. */
static span_t *stack_take_all(span_stack_t *st)
{
    /* acquire: pairs with the pushes' release (their headers and links). */
    uint64_t old = atomic_load_explicit(&st->head, memory_order_acquire);
    for (;;) {
        if (span_stack_word_span(old) == NULL)
            return NULL;
        uint64_t empty = span_stack_word(NULL, span_stack_word_tag(old) + 1);
        if (atomic_compare_exchange_weak_explicit(&st->head, &old, empty,
                                                  memory_order_acquire, memory_order_acquire))
            return span_stack_word_span(old);
    }
}

/* Pushes the chain first..last (linked through stack_next) in one CAS. */
static void stack_push_chain(span_stack_t *st, span_t *first, span_t *last)
{
    uint64_t old = atomic_load_explicit(&st->head, memory_order_relaxed);
    for (;;) {
        atomic_store_explicit(&last->stack_next, span_stack_word_span(old), memory_order_relaxed);
        /* release: as span_stack_push, for every span of the chain. */
        if (atomic_compare_exchange_weak_explicit(
                &st->head, &old, span_stack_word(first, span_stack_word_tag(old)),
                memory_order_release, memory_order_relaxed))
            return;
    }
}

/* Under retain_lock: gives back the pooled spans of one stack that became
 * unused before `cutoff` (every one if `all`), puts the others back. */
static bool purge_stack(struct sc_heap_s *heap, span_stack_t *st, uint32_t cutoff, bool all)
{
    span_t *s = stack_take_all(st);
    span_t *keep_first = NULL, *keep_last = NULL;
    bool marked = false;
    while (s) {
        span_t *next = atomic_load_explicit(&s->stack_next, memory_order_relaxed);
        uint64_t w = atomic_load_explicit(arena_span_info(heap, s), memory_order_relaxed);
        /* A span without INFO_POOLED was kept by sc_heap_reset
         * (reset_keep_bytes): only a trim takes it. */
        if (all || ((w & INFO_POOLED) && time_before(info_since(w), cutoff))) {
            arena_purge_mark(heap, s);
            marked = true;
        } else {
            atomic_store_explicit(&s->stack_next, NULL, memory_order_relaxed);
            if (keep_last)
                atomic_store_explicit(&keep_last->stack_next, s, memory_order_relaxed);
            else
                keep_first = s;
            keep_last = s;
        }
        s = next;
    }
    if (keep_first)
        stack_push_chain(st, keep_first, keep_last);
    return marked;
}

/* Under retain_lock: the release policy. Everything that stayed unused
 * since before now - delay goes back; if the heap is still over its bound,
 * more goes, oldest first: what is over the bound, at least
 * PURGE_MIN_BYTES (so that a heap hovering at its bound gives back in
 * batches, not a page per call); with `all`, everything goes. */
static void purge(struct sc_heap_s *heap, uint32_t now, bool all)
{
    const uint64_t every = INFO_POOLED | INFO_HUGE_FREE;
    /* Disarm first: whatever is pooled from here on arms it again. */
    atomic_store_explicit(&heap->purge_due, 0, memory_order_relaxed);
    uint32_t oldest = now;
    uint32_t aged, bounded; /* cutoffs: by age, and for what the bound covers */
    uint64_t kinds = every;
    if (all) {
        aged = bounded = now + 1;
    } else {
        arena_retained_before(heap, now + 1, now, &oldest, every);
        /* Aged: since + delay <= now. With no delay nothing ages. */
        aged = heap->purge_delay_ms == UINT32_MAX ? oldest : now - heap->purge_delay_ms + 1;
        if (time_before(aged, oldest))
            aged = oldest;
        bounded = aged;
        size_t unused = bounded_unused(heap, &kinds);
        size_t bound = span_pool_retain_bound(heap, now);
        if (unused > bound) {
            /* Oldest first: the earliest cutoff that frees enough. Only
             * the excess: what stays under the bound is what the heap
             * cycles through next (tuning.h, RETAIN_SHARE). */
            size_t excess = unused - bound;
            size_t want = excess > PURGE_MIN_BYTES ? excess : PURGE_MIN_BYTES;
            uint32_t lo = aged, hi = now + 1;
            if (arena_retained_before(heap, lo, now, NULL, kinds) < want) {
                while ((uint32_t)(hi - lo) > 1) {
                    uint32_t mid = lo + (uint32_t)(hi - lo) / 2;
                    if (arena_retained_before(heap, mid, now, NULL, kinds) >= want)
                        hi = mid;
                    else
                        lo = mid;
                }
                bounded = hi;
            }
        }
        /* By age alone, less than PURGE_MIN_BYTES is not worth a system
         * call yet (nor the page faults of taking it back): it waits for
         * more to age with it, half a delay at a time. The heap's bound,
         * if smaller, is the floor instead (retain_bytes = 1 gives back
         * whatever aged). */
        size_t floor = bound < PURGE_MIN_BYTES ? bound : PURGE_MIN_BYTES;
        if (bounded == aged && arena_retained_before(heap, aged, now, NULL, every) < floor) {
            if (heap->purge_delay_ms != UINT32_MAX)
                purge_arm(heap, now + heap->purge_delay_ms / 2);
            return;
        }
    }
    arena_purge_huge(heap, (kinds & INFO_HUGE_FREE) ? bounded : aged, all);
    uint32_t pool_cutoff = (kinds & INFO_POOLED) ? bounded : aged;
    bool marked = false;
    for (unsigned b = 0; b < POOL_BUCKETS; b++)
        for (unsigned i = 0; i < POOL_SLOTS; i++)
            marked |= purge_stack(heap, &heap->pool[b][i].stack, pool_cutoff, all);
    if (marked)
        arena_purge_flush(heap);
    /* What is left is due when its oldest part has waited the delay, but
     * not before half a delay from now: memory that became unused bit by
     * bit goes back in batches, at most two purges per delay, instead of a
     * purge (and a system call) each time one more span has aged. It
     * waits up to one and a half delays. */
    if (arena_retained_before(heap, now + 1, now, &oldest, every) > 0 &&
        heap->purge_delay_ms != UINT32_MAX) {
        uint32_t due = oldest + heap->purge_delay_ms, soonest = now + heap->purge_delay_ms / 2;
        purge_arm(heap, time_before(due, soonest) ? soonest : due);
    }
}

static void maybe_purge(struct sc_heap_s *heap, uint32_t now, bool allocating)
{
    size_t unused = atomic_load_explicit(&heap->unused_bytes, memory_order_relaxed);
    if (unused == 0) {
        /* The bound's high-water sees the heap's use grow. */
        size_t peak;
        if (allocating && heap->retain_bytes == 0)
            in_use_now(heap, now, &peak);
        return;
    }
    uint64_t due = atomic_load_explicit(&heap->purge_due, memory_order_relaxed);
    bool is_due = (due & PURGE_ARMED) && !time_before(now, (uint32_t)due);
    if (!is_due) {
        uint64_t kinds;
        if (!allocating || bounded_unused(heap, &kinds) <= span_pool_retain_bound(heap, now))
            return;
    }
    /* One purger at a time; whoever finds it busy goes on with its work. */
    if (pthread_mutex_trylock(&heap->retain_lock) != 0)
        return;
    purge(heap, now, false);
    pthread_mutex_unlock(&heap->retain_lock);
}

void span_pool_maybe_purge(struct sc_heap_s *heap, bool allocating)
{
    uint32_t now = os_coarse_ms();
    if (allocating)
        span_pool_release_drained(heap, now);
    maybe_purge(heap, now, allocating);
}

void span_pool_purge_overdue(struct sc_heap_s *heap, uint32_t now)
{
    if (heap->purge_delay_ms == UINT32_MAX)
        return;
    uint64_t due = atomic_load_explicit(&heap->purge_due, memory_order_relaxed);
    if (!(due & PURGE_ARMED))
        return;
    if (time_before(now, (uint32_t)due + heap->purge_delay_ms))
        return;
    maybe_purge(heap, now, false);
}

void span_pool_put(struct sc_heap_s *heap, span_t *s, unsigned slot)
{
    s->free = NULL;
    span_set_owner(s, NULL);
    size_t bytes = s->committed;
    uint32_t now = os_coarse_ms();
    /* relaxed: the push below publishes the info word with the span. */
    atomic_store_explicit(arena_span_info(heap, s),
                          info_word(INFO_POOLED, bytes / os_page_size(), now),
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&heap->unused_bytes, bytes, memory_order_relaxed);
    atomic_store_explicit(&s->remote, remote_word(SPAN_POOLED, s, NULL, 0),
                          memory_order_relaxed);
    span_stack_push(&heap->pool[span_pool_bucket(bytes)][slot % POOL_SLOTS].stack, s);
    span_pool_note_unused(heap, now);
    maybe_purge(heap, now, false);
}

/* The span just popped off the pool is the caller's: it is no longer
 * unused. */
static span_t *take_out(struct sc_heap_s *heap, span_t *s)
{
    atomic_fetch_sub_explicit(&heap->unused_bytes, s->committed, memory_order_relaxed);
    atomic_store_explicit(arena_span_info(heap, s), 0, memory_order_relaxed);
    return s;
}

/* The same for what a caller takes to allocate from, and the policy looks
 * at the heap (the caller allocates). */
static span_t *taken(struct sc_heap_s *heap, span_t *s)
{
    if (s != NULL)
        take_out(heap, s);
    maybe_purge(heap, os_coarse_ms(), true);
    return s;
}

/* A span from bucket b, trying the caller's slot first. */
static span_t *pop_bucket(struct sc_heap_s *heap, unsigned b, unsigned slot)
{
    for (unsigned i = 0; i < POOL_SLOTS; i++) {
        span_t *s = span_stack_pop(&heap->pool[b][(slot + i) % POOL_SLOTS].stack);
        if (s)
            return s;
    }
    return NULL;
}

span_t *span_pool_take(struct sc_heap_s *heap, unsigned slot)
{
    span_t *s = NULL;
    for (unsigned b = 0; b < POOL_BUCKETS && s == NULL; b++)
        s = pop_bucket(heap, b, slot);
    s = taken(heap, s);
    return s != NULL ? s : arena_take_cold(heap);
}

/* The caller took s (taken already), a warm span with more committed
 * than `keep`, for a class that keeps `keep`: the bigger warm spans of the
 * pool outnumber the small ones. Cut s and up to POOL_CUT_BATCH - 1 more of them down to
 * `keep` in one system call (os_release_batch_t) and pool the others in
 * bucket `fit`, where the next small classes take them without a cut each:
 * a program whose frees leave big spans and whose allocations want small
 * ones (threads that end with their big blocks freed, then new ones) pays
 * one call per batch, not one per span. Under a strict commit limit each
 * cut is an mmap of its own anyway: s is left to span_init_blocks. */
static void cut_batch(struct sc_heap_s *heap, span_t *s, unsigned slot, unsigned fit, size_t keep)
{
    if (os_strict_commit())
        return;
    span_t *more[POOL_CUT_BATCH - 1];
    unsigned n = 0;
    for (unsigned b = fit + 1; b < POOL_BUCKETS && n < POOL_CUT_BATCH - 1; b++) {
        span_t *t;
        while (n < POOL_CUT_BATCH - 1 && (t = pop_bucket(heap, b, slot)) != NULL)
            more[n++] = take_out(heap, t); /* the caller's take looked at the policy */
    }
    os_release_batch_t batch;
    batch.n = 0;
    arena_give_back_to_batch(heap, s, keep, &batch);
    for (unsigned i = 0; i < n; i++)
        arena_give_back_to_batch(heap, more[i], keep, &batch);
    /* The pages go before any of these spans can be taken again. */
    os_release_batch_flush(&batch);
    for (unsigned i = 0; i < n; i++)
        span_pool_put(heap, more[i], slot);
}

span_t *span_pool_take_fit(struct sc_heap_s *heap, unsigned slot, size_t keep)
{
    span_t *s = NULL;
    unsigned fit = span_pool_bucket(keep);
    for (unsigned b = fit + 1; b-- > 0 && s == NULL;) {
        s = pop_bucket(heap, b, slot);
        if (s && s->committed > keep) {
            /* Its bucket holds bigger ones too: back it goes. */
            span_stack_push(&heap->pool[b][slot % POOL_SLOTS].stack, s);
            s = NULL;
        }
    }
    if (s == NULL && (s = arena_take_cold(heap)) != NULL) {
        taken(heap, NULL); /* the policy's look */
        return s;
    }
    /* Only bigger warm spans are left: cutting one down costs a madvise,
     * but leaving it idle while fresh spans are bumped would let the
     * heap's committed bytes grow until the delay passes. */
    for (unsigned b = fit; b < POOL_BUCKETS && s == NULL; b++)
        s = pop_bucket(heap, b, slot);
    s = taken(heap, s); /* before the cut: it counts what was pooled */
    if (s != NULL && s->committed > keep)
        cut_batch(heap, s, slot, fit, keep);
    return s;
}

void span_pool_cool(struct sc_heap_s *heap, bool release_headers)
{
    (void)release_headers;
    pthread_mutex_lock(&heap->retain_lock);
    purge(heap, os_coarse_ms(), true);
    pthread_mutex_unlock(&heap->retain_lock);
}

/* ------------------------------------------------------------------------ */
/* Drained spans                                                            */
/* ------------------------------------------------------------------------ */

/* DRAINED spans' memory goes back a batch of them at a time
 * (os_release_batch_t: one system call where the kernel allows); each
 * stays DRAINING until its pages are gone. */
typedef struct {
    os_release_batch_t pages;
    span_t *spans[OS_RELEASE_BATCH];
    unsigned n;
    /* The heap, passed in: a marked span may be being set up by another
     * thread right now, which writes its header's heap field (the same
     * value, but not atomically). */
    struct sc_heap_s *heap;
    /* The sweep's: spans drained since `since` are marked again instead
     * (trim: all go, `all`). */
    bool all;
    uint32_t since;
} drained_batch_t;

static void drained_batch_flush(drained_batch_t *d)
{
    os_release_batch_flush(&d->pages);
    for (unsigned i = 0; i < d->n; i++) {
        span_t *s = d->spans[i];
        if (span_trim_drained_end(s))
            span_pool_put(d->heap, s, 0); /* its owner left meanwhile */
    }
    d->n = 0;
}

static void drained_release_one(span_t *s, void *arg)
{
    drained_batch_t *d = arg;
    if (span_kind(s) != SPAN_KIND_BLOCKS)
        return;
    /* The sweep: a span no longer DRAINED was taken back or pooled (its
     * mark outlived the state). The mark may be older than the span's last
     * drain (taken back and drained again): that drain gets its own delay. */
    if (!d->all) {
        if (span_state(s) != SPAN_DRAINED)
            return;
        if (!time_before(atomic_load_explicit(&s->drained_ms, memory_order_relaxed), d->since)) {
            arena_mark(d->heap, s);
            atomic_store_explicit(&d->heap->drained_marked, 1, memory_order_relaxed);
            return;
        }
    }
    if (!span_trim_drained_begin(s))
        return;
    if (d->n == OS_RELEASE_BATCH)
        drained_batch_flush(d);
    span_trim_drained_release(s, &d->pages);
    d->spans[d->n++] = s;
}

static void drained_trim_one(span_t *s, uintptr_t word, void *arg)
{
    (void)word;
    drained_release_one(s, arg);
}

void span_pool_trim_drained(struct sc_heap_s *heap)
{
    drained_batch_t d = {.n = 0, .heap = heap, .all = true};
    arena_for_each_span(heap, drained_trim_one, &d);
    drained_batch_flush(&d);
}

void span_pool_note_drained(struct sc_heap_s *heap, span_t *s)
{
    if (heap->purge_delay_ms == UINT32_MAX)
        return; /* nothing goes back by time: the owner or a trim decides */
    atomic_store_explicit(&s->drained_ms, os_coarse_ms(), memory_order_relaxed);
    /* seq_cst, here, in arena_mark and in the sweep's election (flag
     * cleared, then the marks taken): a mark the sweep misses comes before
     * its clearing of the flag in the one order of all four, so the flag
     * stays set for the next sweep. Drains and sweeps are rare next to
     * frees; the order costs nothing to see. */
    arena_mark(heap, s);
    atomic_store_explicit(&heap->drained_marked, 1, memory_order_seq_cst);
}

void span_pool_release_drained(struct sc_heap_s *heap, uint32_t now)
{
    if (!arena_sweep_elect(&heap->drained_marked, &heap->drained_sweep_due, now,
                           heap->purge_delay_ms))
        return;
    drained_batch_t d = {.n = 0, .heap = heap, .since = now - heap->purge_delay_ms + 1};
    bool left = arena_sweep_marks(heap, drained_release_one, &d);
    drained_batch_flush(&d);
    /* Marks aged by this sweep need one more. */
    if (left)
        atomic_store_explicit(&heap->drained_marked, 1, memory_order_relaxed);
}
