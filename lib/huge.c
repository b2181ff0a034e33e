/* Huge blocks (huge.h). */
#include "huge.h"

#include <errno.h>
#include <string.h>

#include "address_map.h"
#include "annotate.h"
#include "arena.h"
#include "error.h"
#include "os.h"
#include "span.h"
#include "span_pool.h"


/* Larger requests cannot be met by any region: refuse them up front, which
 * also keeps the size arithmetic below from overflowing. */
#define HUGE_MAX ((size_t)1 << 45)

/* Pages a huge block takes over from a freed one keep what was written
 * there. sc_calloc (alloc.c) clears them with huge_clear_for_calloc (up to
 * the header's huge_dirty_end), so huge_alloc leaves them as they are;
 * with 1 here, huge_alloc would zero them for every huge allocation (a
 * memset of warm memory: a third of a page fault's cost). */
#define HUGE_ZERO_REUSED 0

/* FREE RUNS. A freed huge block keeps its committed pages: it becomes a
 * free run (header at its first span: kind HUGE, state POOLED, capacity =
 * spans, stack_next = next free run in address order), coalesced with the
 * free runs right before and after it. The pages each span of a free run
 * keeps, and since when, are in the region's span info (arena.h; flags
 * INFO_HUGE_FREE, and INFO_HUGE_HEAD on a run's first span, whose header
 * page always stays), changed under the heap's retain_lock; the release
 * policy (span_pool.c) gives them back when they waited too long or the
 * heap keeps too much unused. A new huge block goes where free runs hold
 * the most of the pages it needs (no page fault for those), the lowest
 * address on a tie, so the heap's address space stays bounded by its live
 * huge bytes plus fragmentation; only when no free run fits is fresh
 * address space bumped. */

static size_t round_up(size_t x, size_t a)
{
    return (x + a - 1) & ~(a - 1);
}

static span_t *run_next(span_t *r)
{
    return atomic_load_explicit(&r->stack_next, memory_order_relaxed);
}

static void run_set_next(span_t *r, span_t *next)
{
    atomic_store_explicit(&r->stack_next, next, memory_order_relaxed);
}

static char *run_end(span_t *r)
{
    return span_base(r) + (size_t)span_capacity(r) * SPAN_SIZE;
}

static size_t pages_per_span(void)
{
    return SPAN_SIZE / os_page_size();
}

/* Pages of a free span that the release policy may give back (a run's
 * first page stays). */
static size_t purgeable_pages(uint64_t w)
{
    if (!(w & INFO_HUGE_FREE))
        return 0;
    size_t keep = (w & INFO_HUGE_HEAD) ? 1 : 0;
    return info_pages(w) > keep ? info_pages(w) - keep : 0;
}

/* Unused pages of free huge runs counted in (add) or out: the
 * release policy's figures (span_pool.c). */
static void unused_change(struct sc_heap_s *heap, size_t pages, bool add)
{
    if (pages == 0)
        return;
    size_t bytes = pages * os_page_size();
    if (add) {
        atomic_fetch_add_explicit(&heap->unused_bytes, bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&heap->unused_huge_bytes, bytes, memory_order_relaxed);
    } else {
        atomic_fetch_sub_explicit(&heap->unused_bytes, bytes, memory_order_relaxed);
        atomic_fetch_sub_explicit(&heap->unused_huge_bytes, bytes, memory_order_relaxed);
    }
}

static void unused_add(struct sc_heap_s *heap, size_t pages)
{
    unused_change(heap, pages, true);
}

static void unused_sub(struct sc_heap_s *heap, size_t pages)
{
    unused_change(heap, pages, false);
}

/* A huge header is about to be written at s, which may still say what a
 * former span or run said there: give the fields huge headers do not use
 * (owner, counters, the floating links) defined values. Field by field,
 * atomics by atomic stores: statistics and misdirected frees may read the
 * old header meanwhile (no memset). The caller writes the rest. */
static void open_header(span_t *s)
{
    s->free = NULL;
    s->block_size = 0;
    span_set_reuse_count(s, 0);
    s->set_next = s->set_prev = NULL;
    /* relaxed: these say nothing for a huge header; readers check the
     * kind and state first. */
    span_set_owner(s, NULL);
    owner_word_set(&s->counts, 0);
    span_set_class(s, 0);
}

/* Under huge_lock: writes a free-run header at r (its first page must be
 * committed and counted in r's span info). */
static void run_make_free(struct sc_heap_s *heap, span_t *r, size_t spans)
{
    open_header(r);
    span_set_kind(r, SPAN_KIND_HUGE);
    r->heap = heap;
    span_set_capacity(r, (uint32_t)spans);
    r->free = NULL;
    atomic_store_explicit(&r->bump, NULL, memory_order_relaxed);
    r->bump_end = NULL;
    r->committed = os_page_size();
    r->rw_bytes = arena_writable_extent(os_page_size(), spans);
    span_set_exclusive_state(r, SPAN_POOLED);
    address_map_set(r, (uintptr_t)heap | MAP_SPAN);
}

/* Under huge_lock and retain_lock: the header of free run r is merged into
 * the run before it; its page becomes one the policy may give back. */
static void run_absorbed(struct sc_heap_s *heap, span_t *r)
{
    _Atomic uint64_t *w = arena_span_info(heap, r);
    uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
    atomic_store_explicit(w, v & ~INFO_HUGE_HEAD, memory_order_relaxed);
    if (info_pages(v) > 0)
        unused_add(heap, 1);
    address_map_set(r, (uintptr_t)heap | MAP_RESERVED);
}

/* Under huge_lock and retain_lock: [start, start + spans) becomes free,
 * keeping its pages up to `committed` bytes from start (at least the first
 * page, which a free run always keeps), and joins the free runs,
 * coalesced with its neighbours. */
static void run_free(struct sc_heap_s *heap, char *start, size_t spans, size_t committed,
                     uint32_t now)
{
    size_t page = os_page_size(), pps = pages_per_span();
    _Atomic uint64_t *w = arena_info(heap, start);
    for (size_t j = 0; j < spans; j++) {
        size_t off = j * SPAN_SIZE;
        size_t pages = committed > off ? (committed - off + page - 1) / page : 0;
        if (pages > pps)
            pages = pps;
        uint64_t flags = INFO_HUGE_FREE | (j == 0 ? INFO_HUGE_HEAD : 0);
        uint64_t v = info_word(flags, pages, now);
        atomic_store_explicit(&w[j], v, memory_order_relaxed);
        unused_add(heap, purgeable_pages(v));
    }
    span_t *r = span_at(start);
    run_make_free(heap, r, spans);
    span_t *prev = NULL, *next = heap->huge_free_runs;
    while (next && span_base(next) < start) {
        prev = next;
        next = run_next(next);
    }
    if (next && run_end(r) == span_base(next)) {
        span_t *after = run_next(next);
        span_set_capacity(r, span_capacity(r) + span_capacity(next));
        run_absorbed(heap, next);
        next = after;
    }
    if (prev && run_end(prev) == start) {
        span_set_capacity(prev, span_capacity(prev) + span_capacity(r));
        run_absorbed(heap, r);
        run_set_next(prev, next);
        return;
    }
    run_set_next(r, next);
    if (prev)
        run_set_next(prev, r);
    else
        heap->huge_free_runs = r;
}

/* Under huge_lock and retain_lock: takes [pos, pos + spans) out of free
 * run r (linked after prev); what is before stays run r, what is after
 * becomes a run of its own. The caller charged a page for that run's
 * header if its first span kept no page (rest_needs_page). Returns the
 * pages the taken spans kept; *last gets those of the last one. */
static size_t run_claim(struct sc_heap_s *heap, span_t *prev, span_t *r, char *pos, size_t spans,
                        size_t *last)
{
    size_t cap = span_capacity(r);
    size_t o = (size_t)(pos - span_base(r)) / SPAN_SIZE;
    _Atomic uint64_t *w = arena_span_info(heap, r);
    span_t *next = run_next(r);
    if (o + spans < cap) {
        span_t *rest = span_at(pos + spans * SPAN_SIZE);
        uint64_t v = atomic_load_explicit(&w[o + spans], memory_order_relaxed);
        size_t pages = info_pages(v);
        if (pages == 0)
            pages = 1; /* charged by the caller */
        else
            unused_sub(heap, 1); /* a first page now, not purgeable */
        atomic_store_explicit(&w[o + spans],
                              info_word(INFO_HUGE_FREE | INFO_HUGE_HEAD, pages, info_since(v)),
                              memory_order_relaxed);
        run_make_free(heap, rest, cap - o - spans);
        run_set_next(rest, next);
        next = rest;
    }
    size_t pages = 0;
    for (size_t j = o; j < o + spans; j++) {
        uint64_t v = atomic_load_explicit(&w[j], memory_order_relaxed);
        unused_sub(heap, purgeable_pages(v));
        pages += info_pages(v);
        *last = info_pages(v);
        atomic_store_explicit(&w[j], 0, memory_order_relaxed);
    }
    if (o > 0) {
        span_set_capacity(r, (uint32_t)o);
        run_set_next(r, next);
    } else if (prev) {
        run_set_next(prev, next);
    } else {
        heap->huge_free_runs = next;
    }
    return pages;
}

/* Where a block of `spans` spans goes: the position in a free run whose
 * kept pages cover the most of what the block needs (every page of its
 * spans but the last, need_last pages of the last), lowest address on a
 * tie. Positions must put the data (lead bytes in) at a multiple of
 * align. Under huge_lock and retain_lock (the counts are exact). */
typedef struct placement_s {
    span_t *prev, *run;
    char *pos;
} placement_t;

static bool place(struct sc_heap_s *heap, size_t spans, size_t lead, size_t align,
                  size_t need_last, placement_t *out)
{
    size_t pps = pages_per_span();
    size_t best_score = 0, full = (spans - 1) * pps + need_last;
    bool found = false;
    span_t *prev = NULL;
    for (span_t *r = heap->huge_free_runs; r; prev = r, r = run_next(r)) {
        size_t cap = span_capacity(r);
        if (cap < spans)
            continue;
        _Atomic uint64_t *w = arena_span_info(heap, r);
        /* Sliding window: kept pages of the full spans, plus the last. */
        size_t sum = 0;
        for (size_t j = 0; j + 1 < spans; j++)
            sum += info_pages(atomic_load_explicit(&w[j], memory_order_relaxed));
        for (size_t o = 0; o + spans <= cap; o++) {
            if (o > 0 && spans > 1) {
                sum -= info_pages(atomic_load_explicit(&w[o - 1], memory_order_relaxed));
                sum += info_pages(atomic_load_explicit(&w[o + spans - 2], memory_order_relaxed));
            }
            char *pos = span_base(r) + o * SPAN_SIZE;
            if (((uintptr_t)pos + lead) & (align - 1))
                continue;
            size_t lastp = info_pages(atomic_load_explicit(&w[o + spans - 1], memory_order_relaxed));
            size_t score = sum + (lastp < need_last ? lastp : need_last);
            if (!found || score > best_score) {
                found = true;
                best_score = score;
                *out = (placement_t){prev, r, pos};
                if (score == full)
                    return true;
            }
        }
    }
    return found;
}

/* The pages spans w[0..spans) kept, in all; *end (if not NULL) gets where
 * the last of them ends, from the first span's start (0: none kept).
 * Kept pages are a prefix of each span. */
static size_t kept_pages(_Atomic uint64_t *w, size_t spans, size_t *end)
{
    size_t pages = 0, last_end = 0;
    for (size_t j = 0; j < spans; j++) {
        size_t p = info_pages(atomic_load_explicit(&w[j], memory_order_relaxed));
        pages += p;
        if (p)
            last_end = j * SPAN_SIZE + p * os_page_size();
    }
    if (end)
        *end = last_end;
    return pages;
}

/* MOVING WARM PAGES. The release policy keeps up to its bound of freed
 * huge pages warm, but a new block fits where they are only as far as the
 * old block it replaces was as big: a program replacing buffers of varying
 * sizes would fault in most of each bigger one while the pages of others
 * wait for the delay. So the spans of the block's place that kept no page
 * take the pages of other free runs' spans, moved there by the kernel
 * (os_move_pages: page tables only, no copy, no fault). A span moved from
 * reads as never touched (its info word says it kept none). A run's first
 * span keeps its first page: the pages after it move to the same offsets,
 * and the span they go to counts its own first page as kept too (charged
 * here, faulted in by the block), so that kept pages stay a prefix. The
 * span right after the place (the first of the run left behind, which
 * needs a page) is never moved from. Contiguous spans move in one call. */

/* A heap's moves cost map entries of the process's budget (tuning.h,
 * MOVE_MAP_BUDGET) until they reach two per span of its address space.
 * Under huge_lock. */
static bool map_charge(struct sc_heap_s *heap)
{
    size_t spans = atomic_load_explicit(&heap->reserved_bytes, memory_order_relaxed) / SPAN_SIZE;
    if (heap->huge_map_charge >= 2 * spans + 2)
        return true;
    if (!os_map_budget_take(2))
        return false;
    heap->huge_map_charge += 2;
    return true;
}

/* Spans and the places their pages go to, gathered so that contiguous
 * ones move in one call. */
#define MOVE_BATCH 64
typedef struct move_batch_s {
    _Atomic uint64_t *from[MOVE_BATCH], *to[MOVE_BATCH];
    char *from_at[MOVE_BATCH], *to_at[MOVE_BATCH];
    unsigned n;
} move_batch_t;

/* The first byte of span `at` (info word v) that moves: a run's first
 * page stays. */
static size_t move_offset(uint64_t v)
{
    return (v & INFO_HUGE_HEAD) ? os_page_size() : 0;
}

/* Moves what the batch gathered; the info words, the unused page counts
 * and, for pages from a run's first span, the charge of the place's first
 * page follow each move the kernel made. false once a move failed or the
 * limit refused a page (no more are tried). */
static bool move_flush(struct sc_heap_s *heap, move_batch_t *b)
{
    size_t page = os_page_size();
    bool ok = true;
    /* Purgeable pages of the words changed, before and after: the unused
     * counts change once for the batch. */
    size_t was = 0, is = 0;
    for (unsigned i = 0; i < b->n && ok;) {
        /* Spans i..e-1: sources and places both contiguous, all but the
         * last full, none but the first a run's first. */
        uint64_t first = atomic_load_explicit(b->from[i], memory_order_relaxed);
        unsigned e = i + 1;
        while (e < b->n && b->from_at[e] == b->from_at[e - 1] + SPAN_SIZE &&
               b->to_at[e] == b->to_at[e - 1] + SPAN_SIZE &&
               !(atomic_load_explicit(b->from[e], memory_order_relaxed) & INFO_HUGE_HEAD) &&
               info_pages(atomic_load_explicit(b->from[e - 1], memory_order_relaxed)) ==
                   pages_per_span())
            e++;
        uint64_t last = atomic_load_explicit(b->from[e - 1], memory_order_relaxed);
        size_t off = move_offset(first);
        size_t bytes = (size_t)(e - 1 - i) * SPAN_SIZE + info_pages(last) * page - off;
        if (off && !arena_charge(heap, page))
            break;
        ok = map_charge(heap) && os_move_pages(b->from_at[i] + off, b->to_at[i] + off, bytes);
        if (!ok && off)
            arena_uncharge(heap, page);
        for (; ok && i < e; i++) {
            uint64_t v = atomic_load_explicit(b->from[i], memory_order_relaxed);
            uint64_t t = atomic_load_explicit(b->to[i], memory_order_relaxed);
            uint64_t flags = INFO_HUGE_FREE | INFO_HUGE_HEAD;
            uint64_t nv = info_word(v & flags, move_offset(v) / page, info_since(v));
            uint64_t nt = info_word(t & flags, info_pages(v), info_since(v));
            was += purgeable_pages(v) + purgeable_pages(t);
            is += purgeable_pages(nv) + purgeable_pages(nt);
            atomic_store_explicit(b->to[i], nt, memory_order_relaxed);
            atomic_store_explicit(b->from[i], nv, memory_order_relaxed);
        }
    }
    unused_change(heap, is > was ? is - was : was - is, is > was);
    b->n = 0;
    return ok;
}

/* The first of spans w[j..spans) that kept no page (spans: none). */
static size_t next_without_pages(_Atomic uint64_t *w, size_t j, size_t spans)
{
    while (j < spans && info_pages(atomic_load_explicit(&w[j], memory_order_relaxed)) != 0)
        j++;
    return j;
}

/* Under huge_lock and retain_lock: the spans of the place [pos, pos +
 * spans) that kept no page take those of other free runs' spans; into
 * the last, at most last_max pages. `fresh`: the place is fresh address
 * space, not a free run (its info words are zero), and takes no pages of
 * runs' first spans, whose first page it would have to charge again. */
static void move_warm_pages(struct sc_heap_s *heap, char *pos, size_t spans, size_t last_max,
                            bool fresh)
{
    if (os_strict_commit())
        return; /* kept pages go back at once there */
    size_t page = os_page_size();
    _Atomic uint64_t *w = arena_info(heap, pos);
    size_t j = next_without_pages(w, 0, spans);
    if (j == spans)
        return;
    char *end = pos + spans * SPAN_SIZE;
    move_batch_t b;
    b.n = 0;
    for (span_t *r = heap->huge_free_runs; r && j < spans; r = run_next(r)) {
        _Atomic uint64_t *ws = arena_span_info(heap, r);
        char *base = span_base(r);
        for (size_t k = fresh ? 1 : 0; k < span_capacity(r) && j < spans; k++) {
            char *from = base + k * SPAN_SIZE;
            uint64_t v = atomic_load_explicit(&ws[k], memory_order_relaxed);
            if ((from >= pos && from <= end) || info_pages(v) * page <= move_offset(v) ||
                (j == spans - 1 && info_pages(v) > last_max))
                continue;
            b.from[b.n] = &ws[k];
            b.from_at[b.n] = from;
            b.to[b.n] = &w[j];
            b.to_at[b.n] = pos + j * SPAN_SIZE;
            if (++b.n == MOVE_BATCH && !move_flush(heap, &b))
                return;
            j = next_without_pages(w, j + 1, spans);
        }
    }
    move_flush(heap, &b);
}

/* Under huge_lock: fresh spans [h, h + spans), committed and charged up
 * to `bytes` from h for a new block, take the pages of free runs' spans.
 * Their charge moves with them (the block's covers them); their info
 * words go back to zero, a live block's. Returns the end of what was
 * moved in (relative to h), for sc_calloc's clearing. */
static size_t move_into_fresh(struct sc_heap_s *heap, span_t *h, size_t spans, size_t bytes)
{
    size_t page = os_page_size();
    size_t last_max = (bytes - (spans - 1) * SPAN_SIZE) / page;
    _Atomic uint64_t *w = arena_span_info(heap, h);
    pthread_mutex_lock(&heap->retain_lock);
    if (heap->huge_free_runs == NULL) {
        pthread_mutex_unlock(&heap->retain_lock);
        return 0;
    }
    move_warm_pages(heap, span_base(h), spans, last_max, true);
    size_t dirty;
    size_t moved = kept_pages(w, spans, &dirty) * page;
    for (size_t j = 0; j < spans; j++)
        atomic_store_explicit(&w[j], 0, memory_order_relaxed);
    pthread_mutex_unlock(&heap->retain_lock);
    arena_uncharge(heap, moved);
    return dirty;
}

void huge_forget_moves(struct sc_heap_s *heap)
{
    os_map_budget_return(heap->huge_map_charge);
    heap->huge_map_charge = 0;
}

size_t huge_good_size(size_t n)
{
    /* The requests huge_alloc_aligned refuses up front. */
    if (n > HUGE_MAX || n > os_memory_total())
        return 0;
    size_t page = os_page_size();
    /* Data starts after the span's lead, the block ends at a page boundary. */
    return round_up(SPAN_LEAD + n, page) - SPAN_LEAD;
}

#if HUGE_ZERO_REUSED
/* Under retain_lock, before the claim: zeroes what the spans from pos on
 * kept of former blocks' data, inside [pos + page, pos + end) (sc_calloc
 * clears the first page itself). Kept pages are a prefix of each span. */
static void zero_kept(_Atomic uint64_t *w, char *pos, size_t spans, size_t end)
{
    size_t page = os_page_size();
    for (size_t j = 0; j < spans; j++) {
        size_t pages = info_pages(atomic_load_explicit(&w[j], memory_order_relaxed));
        size_t lo = j * SPAN_SIZE, hi = lo + pages * page;
        if (lo < page)
            lo = page;
        if (hi > end)
            hi = end;
        if (hi > lo) {
            /* Freed block memory is off limits to checkers: open it for
             * the allocator's write (block_init then hands it out). */
            annotate_span_meta(pos + lo, hi - lo);
            memset(pos + lo, 0, hi - lo);
        }
    }
}
#endif

/* Under huge_lock: sets up the header of a block at s of `spans` spans with
 * data at lead bytes from s's start and end `end`, committed `committed`
 * bytes from s's start. */
static void *block_init(struct sc_heap_s *heap, span_t *s, size_t spans, size_t lead, char *end,
                        size_t committed, size_t rw, size_t requested, size_t dirty_end)
{
    char *data = span_base(s) + lead;
    open_header(s);
    span_set_kind(s, SPAN_KIND_HUGE);
    s->heap = heap;
    span_set_capacity(s, (uint32_t)spans);
    s->committed = committed;
    s->rw_bytes = rw;
    atomic_store_explicit(&s->bump, data, memory_order_relaxed);
    s->bump_end = end;
    s->huge_requested = requested;
    s->huge_dirty_end = dirty_end;
    /* release: statistics read the header after acquiring the state. */
    span_set_exclusive_state(s, SPAN_HOT);
    address_map_set(s, (uintptr_t)heap | MAP_SPAN);
    if (lead >= SPAN_SIZE)
        address_map_set_at(data, (uintptr_t)heap | MAP_HUGE_ALIGNED);
    annotate_alloc(heap, data, (size_t)(end - data));
    heap->huge_blocks++;
    heap->huge_bytes += (size_t)(end - data);
    heap->huge_requested += requested;
    return data;
}

/* Under huge_lock: a block of `spans` spans in fresh address space. For an
 * alignment above a span, `extra` more spans are bumped and the header
 * moved so that header + one span is aligned; the spans before and after
 * become free runs. NULL (errno = ENOMEM) at the limit or out of space. */
static void *alloc_fresh(struct sc_heap_s *heap, size_t spans, size_t extra, size_t lead,
                         size_t align, size_t n, size_t requested, uint32_t now)
{
    size_t page = os_page_size();
    size_t total = spans + extra;
    span_t *r = arena_take_run(heap, total, page);
    if (r == NULL)
        return NULL;
    char *start = span_base(r);
    span_t *h = r;
    if (extra) {
        uintptr_t data = round_up((uintptr_t)start + SPAN_SIZE, align);
        h = span_at((char *)(data - SPAN_SIZE));
        size_t before = (size_t)(span_base(h) - start) / SPAN_SIZE;
        size_t after = total - before - spans;
        if (before && !arena_commit_first_page(heap, h)) {
            /* No first page for the moved header's span (the heap's limit): the block
             * cannot be placed at its alignment. The run becomes free. */
            pthread_mutex_lock(&heap->retain_lock);
            run_free(heap, start, total, page, now);
            pthread_mutex_unlock(&heap->retain_lock);
            errno = ENOMEM;
            return NULL;
        }
        span_t *tail = span_at(span_base(h) + spans * SPAN_SIZE);
        bool tail_ok = after && arena_commit_first_page(heap, tail);
        if (after && !tail_ok)
            spans += after; /* no page for its header: the block keeps it */
        pthread_mutex_lock(&heap->retain_lock);
        if (before)
            run_free(heap, start, before, page, now);
        if (tail_ok)
            run_free(heap, span_base(tail), after, page, now);
        pthread_mutex_unlock(&heap->retain_lock);
    }
    char *data = span_base(h) + lead;
    char *end = (char *)round_up((uintptr_t)data + n, page);
    size_t bytes = (size_t)(end - span_base(h));
    if (!arena_commit(heap, h, bytes)) {
        pthread_mutex_lock(&heap->retain_lock);
        run_free(heap, span_base(h), spans, page, now);
        pthread_mutex_unlock(&heap->retain_lock);
        errno = ENOMEM;
        return NULL;
    }
    size_t dirty_end = extra ? 0 : move_into_fresh(heap, h, spans, bytes);
    if (dirty_end < os_page_size())
        dirty_end = os_page_size();
    size_t rw = os_strict_commit() ? h->rw_bytes : spans * SPAN_SIZE;
    return block_init(heap, h, spans, lead, end, bytes, rw, requested, dirty_end);
}

/* Under huge_lock: a block placed in a free run, or NULL when none fits.
 * *limited is set when one fits but the heap's limit refused the pages. */
static void *alloc_reuse(struct sc_heap_s *heap, size_t spans, size_t lead, size_t align,
                         size_t n, size_t requested, bool *limited)
{
    size_t page = os_page_size();
    *limited = false;
    pthread_mutex_lock(&heap->retain_lock);
    placement_t pl;
    size_t rel_end = round_up(lead + n, page); /* block end, from its header */
    size_t need_last = (rel_end - (spans - 1) * SPAN_SIZE) / page;
    if (!place(heap, spans, lead, align, need_last, &pl)) {
        pthread_mutex_unlock(&heap->retain_lock);
        return NULL;
    }
    move_warm_pages(heap, pl.pos, spans, SIZE_MAX, false);
    /* What the block will be charged for, before anything changes: every
     * page of its spans but the last, the last up to its end or what that
     * span kept if more (kept pages stay the block's until it is freed),
     * plus a first page for the run after it if that span kept none. */
    _Atomic uint64_t *w = arena_info(heap, pl.pos);
    size_t kept_end;
    size_t kept = kept_pages(w, spans, &kept_end);
    size_t last_kept = info_pages(atomic_load_explicit(&w[spans - 1], memory_order_relaxed));
    size_t last = last_kept > need_last ? last_kept : need_last;
    size_t committed = (spans - 1) * SPAN_SIZE + last * page;
    bool rest = pl.pos + spans * SPAN_SIZE < run_end(pl.run);
    bool rest_needs_page =
        rest && info_pages(atomic_load_explicit(&w[spans], memory_order_relaxed)) == 0;
    size_t charge = committed - kept * page + (rest_needs_page ? page : 0);
    if (!arena_charge(heap, charge)) {
        pthread_mutex_unlock(&heap->retain_lock);
        *limited = true;
        return NULL;
    }
    span_t *s = span_at(pl.pos);
    if (!arena_make_writable(pl.pos, committed)) {
        arena_uncharge(heap, charge);
        pthread_mutex_unlock(&heap->retain_lock);
        *limited = true;
        return NULL;
    }
    size_t dirty_end = kept_end > page ? kept_end : page;
    if (dirty_end > rel_end)
        dirty_end = rel_end;
#if HUGE_ZERO_REUSED
    zero_kept(w, pl.pos, spans, rel_end);
    dirty_end = page;
#endif
    size_t last_pages = 0;
    run_claim(heap, pl.prev, pl.run, pl.pos, spans, &last_pages);
    pthread_mutex_unlock(&heap->retain_lock);
    size_t rw = os_strict_commit() ? committed : spans * SPAN_SIZE;
    return block_init(heap, s, spans, lead, pl.pos + rel_end, committed, rw, requested,
                      dirty_end);
}

void *huge_alloc_aligned(struct sc_heap_s *heap, size_t align, size_t n)
{
    if (n > HUGE_MAX || align > HUGE_MAX || n > os_memory_total()) {
        errno = ENOMEM;
        return NULL;
    }
    size_t requested = n; /* for statistics; a 0-byte block still needs a byte */
    if (n == 0)
        n = 1;
    /* Where the data starts in the run: right after the header, or, for
     * alignments of a span or more, one span in (the header keeps its own
     * span and the data span gets the MAP_HUGE_ALIGNED word). */
    size_t lead = align >= SPAN_SIZE ? SPAN_SIZE : round_up(SPAN_LEAD, align);
    size_t spans = (lead + n + SPAN_SIZE - 1) / SPAN_SIZE;
    /* For alignments above a span, fresh runs take extra spans. */
    size_t extra = align > SPAN_SIZE ? align / SPAN_SIZE - 1 : 0;
    if (spans + extra > UINT32_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t data_align = align > SPAN_SIZE ? align : 1;
    pthread_mutex_lock(&heap->huge_lock);
    bool limited = false;
    void *p = alloc_reuse(heap, spans, lead, data_align, n, requested, &limited);
    if (p == NULL && limited) {
        /* At the limit, what the release policy keeps is in the way:
         * give it all back and try once more. */
        span_pool_cool(heap, false);
        p = alloc_reuse(heap, spans, lead, data_align, n, requested, &limited);
    }
    if (p == NULL && !limited)
        p = alloc_fresh(heap, spans, extra, lead, align, n, requested, os_coarse_ms());
    pthread_mutex_unlock(&heap->huge_lock);
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    span_pool_maybe_purge(heap, true);
    return p;
}

span_t *huge_header_of(uintptr_t p, uintptr_t word)
{
    uintptr_t span = p & ~(uintptr_t)SPAN_MASK;
    if ((word & MAP_TAGS) == MAP_HUGE_ALIGNED)
        span -= SPAN_SIZE;
    return span_at((const void *)span);
}

void huge_free(sc_frontend_t *t, span_t *s, void *p, const char *call)
{
    struct sc_heap_s *heap = t->heap;
    pthread_mutex_lock(&heap->huge_lock);
    unsigned st = span_state(s);
    char *data = atomic_load_explicit(&s->bump, memory_order_relaxed);
    if (st != SPAN_HOT || data != (char *)p) {
        pthread_mutex_unlock(&heap->huge_lock);
        error_report(st == SPAN_HOT ? SC_ERR_INTERIOR_POINTER : SC_ERR_DOUBLE_FREE, call, heap, p);
        return;
    }
    annotate_free(heap, data, huge_usable_size(s));
    heap->huge_blocks--;
    heap->huge_bytes -= huge_usable_size(s);
    heap->huge_requested -= s->huge_requested;
    if ((size_t)(data - span_base(s)) >= SPAN_SIZE)
        address_map_set_at(data, (uintptr_t)heap | MAP_RESERVED);
    /* The pages stay (committed and charged) for the next huge block; the
     * release policy gives them back. */
    uint32_t now = os_coarse_ms();
    pthread_mutex_lock(&heap->retain_lock);
    run_free(heap, span_base(s), span_capacity(s), s->committed, now);
    if (os_strict_commit()) {
        /* Under a strict commit limit kept pages hold commit charge that
         * other programs may need: they go back at once. */
        arena_purge_huge(heap, now, true);
    }
    pthread_mutex_unlock(&heap->retain_lock);
    pthread_mutex_unlock(&heap->huge_lock);
    span_pool_note_unused(heap, now);
    span_pool_maybe_purge(heap, false);
}

bool huge_contains(struct sc_heap_s *heap, uintptr_t a)
{
    /* Walk back to the nearest span with a header; error paths only. */
    uintptr_t span = a & ~(uintptr_t)SPAN_MASK;
    for (;;) {
        uintptr_t w = address_map_get(span);
        if (w == 0 || address_map_heap(w, span) != heap)
            return false;
        if ((w & MAP_TAGS) == MAP_SPAN) {
            span_t *s = span_at((const void *)span);
            if (span_kind(s) != SPAN_KIND_HUGE || span_state(s) != SPAN_HOT)
                return false;
            return a < (uintptr_t)s->bump_end;
        }
        if ((w & MAP_TAGS) == 0)
            return false;
        span -= SPAN_SIZE;
    }
}

/* Under huge_lock: block s of `spans` spans keeps only its first `keep`
 * spans; the rest becomes a free run with the pages it had. false (nothing
 * changed) if the rest's first page cannot be charged. */
static bool block_cut(struct sc_heap_s *heap, span_t *s, size_t keep)
{
    size_t page = os_page_size();
    size_t spans = span_capacity(s);
    if (keep >= spans)
        return true;
    size_t off = keep * SPAN_SIZE;
    size_t tail_committed = s->committed > off ? s->committed - off : 0;
    if (tail_committed < page) {
        if (!arena_charge(heap, page - tail_committed))
            return false;
        if (!arena_make_writable(span_base(s) + off, page)) {
            arena_uncharge(heap, page - tail_committed);
            return false;
        }
        tail_committed = page;
    }
    if (s->committed > off)
        s->committed = off;
    span_set_capacity(s, (uint32_t)keep);
    if (!os_strict_commit())
        s->rw_bytes = keep * SPAN_SIZE;
    else if (s->rw_bytes > off)
        s->rw_bytes = off;
    pthread_mutex_lock(&heap->retain_lock);
    run_free(heap, span_base(s) + off, spans - keep, tail_committed, os_coarse_ms());
    pthread_mutex_unlock(&heap->retain_lock);
    return true;
}

/* Under huge_lock: block s grows by `more` spans right after it, taken
 * from the free run that starts there or from never-used address space;
 * its committed bytes become `committed` (charged). false if neither has
 * room or the limit refuses. */
static bool block_grow(struct sc_heap_s *heap, span_t *s, size_t more, size_t need_last)
{
    size_t page = os_page_size();
    size_t spans = span_capacity(s);
    char *end = run_end(s);
    span_t *prev = NULL, *r = heap->huge_free_runs;
    while (r && span_base(r) < end) {
        prev = r;
        r = run_next(r);
    }
    size_t old = s->committed;
    size_t base = spans * SPAN_SIZE;
    if (r && span_base(r) == end && span_capacity(r) >= more) {
        pthread_mutex_lock(&heap->retain_lock);
        _Atomic uint64_t *w = arena_span_info(heap, r);
        size_t kept = kept_pages(w, more, NULL);
        size_t last_kept = info_pages(atomic_load_explicit(&w[more - 1], memory_order_relaxed));
        size_t last = last_kept > need_last ? last_kept : need_last;
        size_t committed = base + (more - 1) * SPAN_SIZE + last * page;
        bool rest = span_capacity(r) > more;
        bool rest_needs_page =
            rest && info_pages(atomic_load_explicit(&w[more], memory_order_relaxed)) == 0;
        /* The block's own spans are charged to the end of its old span
         * range from now on (their pages past `old` read as zero). */
        size_t charge = committed - old - kept * page + (rest_needs_page ? page : 0);
        if (!arena_charge(heap, charge)) {
            pthread_mutex_unlock(&heap->retain_lock);
            return false;
        }
        if (!arena_make_writable(span_base(s), committed)) {
            arena_uncharge(heap, charge);
            pthread_mutex_unlock(&heap->retain_lock);
            return false;
        }
        size_t last_pages = 0;
        run_claim(heap, prev, r, end, more, &last_pages);
        pthread_mutex_unlock(&heap->retain_lock);
        address_map_set(r, (uintptr_t)heap | MAP_RESERVED);
        s->committed = committed;
        span_set_capacity(s, (uint32_t)(spans + more));
        s->rw_bytes = os_strict_commit() ? committed : (spans + more) * SPAN_SIZE;
        return true;
    }
    /* Never-used address space right after the block: the region's bump
     * pointer is at its end. */
    size_t committed = base + (more - 1) * SPAN_SIZE + need_last * page;
    if (!arena_charge(heap, committed - old))
        return false;
    if (!arena_extend_run(heap, s, spans, more) ||
        (os_strict_commit() && !arena_make_writable(span_base(s), committed))) {
        arena_uncharge(heap, committed - old);
        return false;
    }
    s->committed = committed;
    span_set_capacity(s, (uint32_t)(spans + more));
    s->rw_bytes = os_strict_commit() ? committed : (spans + more) * SPAN_SIZE;
    return true;
}

bool huge_resize_in_place(struct sc_heap_s *heap, span_t *s, size_t n)
{
    if (n > HUGE_MAX)
        return false;
    size_t page = os_page_size();
    bool ok = false;
    pthread_mutex_lock(&heap->huge_lock);
    char *data = atomic_load_explicit(&s->bump, memory_order_relaxed);
    size_t lead = (size_t)(data - span_base(s));
    size_t spans = (lead + n + SPAN_SIZE - 1) / SPAN_SIZE;
    char *end = (char *)round_up((uintptr_t)data + n, page);
    size_t keep = (size_t)(end - span_base(s));
    if (spans <= span_capacity(s)) {
        /* Shrink (or grow within the run): whole spans past the new end
         * become a free run with their pages; pages past the end inside
         * the last span stay the block's (committed, no system call). */
        annotate_resize(heap, data, huge_usable_size(s), (size_t)(end - data));
        if (!block_cut(heap, s, spans) || !arena_commit(heap, s, keep)) {
            annotate_resize(heap, data, (size_t)(end - data), huge_usable_size(s));
            goto out;
        }
        ok = true;
    } else {
        size_t more = spans - span_capacity(s);
        size_t need_last = (keep - (spans - 1) * SPAN_SIZE) / page;
        if (block_grow(heap, s, more, need_last)) {
            annotate_resize(heap, data, huge_usable_size(s), (size_t)(end - data));
            ok = true;
        }
    }
    if (ok) {
        heap->huge_bytes -= huge_usable_size(s);
        heap->huge_requested -= s->huge_requested;
        s->bump_end = end;
        s->huge_requested = n;
        heap->huge_bytes += huge_usable_size(s);
        heap->huge_requested += n;
    }
out:
    pthread_mutex_unlock(&heap->huge_lock);
    return ok;
}

void huge_clear_for_calloc(span_t *s, void *p, size_t n)
{
    char *to = span_base(s) + s->huge_dirty_end;
    if ((char *)p + n < to)
        to = (char *)p + n;
    if (to > (char *)p)
        memset(p, 0, (size_t)(to - (char *)p));
}

void huge_set_requested(struct sc_heap_s *heap, span_t *s, size_t n)
{
    pthread_mutex_lock(&heap->huge_lock);
    heap->huge_requested -= s->huge_requested;
    s->huge_requested = n;
    heap->huge_requested += n;
    pthread_mutex_unlock(&heap->huge_lock);
}

void huge_stats(struct sc_heap_s *heap, size_t *blocks, size_t *bytes, size_t *requested)
{
    pthread_mutex_lock(&heap->huge_lock);
    *blocks = heap->huge_blocks;
    *bytes = heap->huge_bytes;
    *requested = heap->huge_requested;
    pthread_mutex_unlock(&heap->huge_lock);
}
