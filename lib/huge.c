/* Huge blocks (huge.h). */
#include "huge.h"

#include <errno.h>

#include "address_map.h"
#include "annotate.h"
#include "arena.h"
#include "error.h"
#include "frontend.h"
#include "os.h"
#include "span.h"

/* A huge header keeps the requested size in divide_magic (unused by huge
 * spans), so statistics can report requested bytes. */
#define huge_requested(s) ((s)->divide_magic)

/* Larger requests cannot be met by any region: refuse them up front, which
 * also keeps the size arithmetic below from overflowing. */
#define HUGE_MAX ((size_t)1 << 45)

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
    return (char *)r + (size_t)span_capacity(r) * SPAN_SIZE;
}

/* After a run shrank to its current capacity: its writable extent must
 * not reach into the spans now owned by another run, or giving r's pages
 * back would take theirs (a split-off run's header among them). */
static void run_clamp(span_t *r)
{
    size_t bytes = (size_t)span_capacity(r) * SPAN_SIZE;
    if (r->rw_bytes > bytes)
        r->rw_bytes = bytes;
}

/* Under huge_lock: writes a free-run header at r (its first page must be
 * committed). */
static void run_make_free(struct sc_heap_s *heap, span_t *r, size_t spans)
{
    annotate_owned(r, SPAN_HEADER_SIZE);
    span_set_kind(r, SPAN_KIND_HUGE);
    r->heap = heap;
    span_set_capacity(r, (uint32_t)spans);
    r->free = NULL;
    atomic_store_explicit(&r->bump, NULL, memory_order_relaxed);
    r->bump_end = NULL;
    atomic_store_explicit(&r->remote, remote_word(SPAN_POOLED, r, NULL, 0), memory_order_release);
    address_map_set(r, (uintptr_t)heap | MAP_SPAN);
}

/* Under huge_lock: inserts the free run r of `spans` spans, coalescing with
 * the runs right before and after it. */
static void run_insert(struct sc_heap_s *heap, span_t *r, size_t spans)
{
    run_make_free(heap, r, spans);
    span_t *prev = NULL, *next = heap->huge_free_runs;
    while (next && next < r) {
        prev = next;
        next = run_next(next);
    }
    if (next && run_end(r) == (char *)next) {
        span_t *after = run_next(next);
        span_set_capacity(r, span_capacity(r) + (span_capacity(next)));
        address_map_set(next, (uintptr_t)heap | MAP_RESERVED);
        arena_give_back(heap, next, 0);
        next = after;
    }
    if (prev && run_end(prev) == (char *)r) {
        span_set_capacity(prev, span_capacity(prev) + (span_capacity(r)));
        address_map_set(r, (uintptr_t)heap | MAP_RESERVED);
        arena_give_back(heap, r, 0);
        run_set_next(prev, next);
        return;
    }
    run_set_next(r, next);
    if (prev)
        run_set_next(prev, r);
    else
        heap->huge_free_runs = r;
}

/* Under huge_lock: cuts the first `spans` spans off free run r (linked
 * after prev). The remainder keeps r's place in the address order. */
static bool run_split_front(struct sc_heap_s *heap, span_t *prev, span_t *r, size_t spans)
{
    span_t *next = run_next(r);
    if (span_capacity(r) > spans) {
        span_t *rest = (span_t *)((char *)r + spans * SPAN_SIZE);
        if (!arena_commit_header(heap, rest))
            return false;
        run_make_free(heap, rest, span_capacity(r) - spans);
        run_set_next(rest, next);
        next = rest;
    }
    if (prev)
        run_set_next(prev, next);
    else
        heap->huge_free_runs = next;
    span_set_capacity(r, (uint32_t)spans);
    run_clamp(r);
    return true;
}

/* Under huge_lock: a run of at least `spans` spans from the free runs. */
static span_t *run_take_free(struct sc_heap_s *heap, size_t spans)
{
    span_t *prev = NULL;
    for (span_t *r = heap->huge_free_runs; r; prev = r, r = run_next(r)) {
        if (span_capacity(r) >= spans)
            return run_split_front(heap, prev, r, spans) ? r : NULL;
    }
    return NULL;
}

size_t huge_good_size(size_t n)
{
    if (n > HUGE_MAX)
        return 0;
    size_t page = os_page_size();
    /* Data starts after the header, the block ends at a page boundary. */
    return round_up(SPAN_HEADER_SIZE + n, page) - SPAN_HEADER_SIZE;
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
    size_t page = os_page_size();
    /* Where the data starts in the run: right after the header, or, for
     * alignments of a span or more, one span in (the header keeps its own
     * span and the data span gets the MAP_HUGE_ALIGNED word). */
    size_t lead = align >= SPAN_SIZE ? SPAN_SIZE : round_up(SPAN_HEADER_SIZE, align);
    size_t spans = (lead + n + SPAN_SIZE - 1) / SPAN_SIZE;
    /* For alignments above a span, take extra spans and trim the front. */
    size_t extra = align > SPAN_SIZE ? align / SPAN_SIZE - 1 : 0;
    size_t total = spans + extra;
    if (total > UINT32_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&heap->huge_lock);
    span_t *r = run_take_free(heap, total);
    if (r == NULL) {
        r = arena_take_run(heap, total, page);
        if (r == NULL) {
            pthread_mutex_unlock(&heap->huge_lock);
            errno = ENOMEM;
            return NULL;
        }
        span_set_capacity(r, (uint32_t)total);
    }
    if (extra) {
        /* Move the header so that header + one span is aligned; the spans
         * before it and after the block go back as free runs. */
        uintptr_t data = round_up((uintptr_t)r + SPAN_SIZE, align);
        span_t *h = (span_t *)(data - SPAN_SIZE);
        size_t before = (size_t)((char *)h - (char *)r) / SPAN_SIZE;
        size_t after = total - before - spans;
        if (before && !arena_commit_header(heap, h)) {
            /* No page for the moved header (the heap's limit): the block
             * cannot be placed at its alignment. Give the run back. */
            run_insert(heap, r, total);
            pthread_mutex_unlock(&heap->huge_lock);
            errno = ENOMEM;
            return NULL;
        }
        if (before) {
            span_set_capacity(r, (uint32_t)before);
            run_clamp(r);
            run_insert(heap, r, before);
            r = h;
        }
        if (after) {
            span_t *tail = (span_t *)((char *)r + spans * SPAN_SIZE);
            if (arena_commit_header(heap, tail))
                run_insert(heap, tail, after);
            else
                spans += after;
        }
        span_set_capacity(r, (uint32_t)spans);
        run_clamp(r);
    }
    char *data = (char *)r + lead;
    char *end = (char *)round_up((uintptr_t)data + n, page);
    size_t bytes = (size_t)(end - (char *)r);
    if (!arena_commit(heap, r, bytes)) {
        run_insert(heap, r, span_capacity(r));
        pthread_mutex_unlock(&heap->huge_lock);
        errno = ENOMEM;
        return NULL;
    }
    annotate_owned(r, SPAN_HEADER_SIZE);
    span_set_kind(r, SPAN_KIND_HUGE);
    r->heap = heap;
    atomic_store_explicit(&r->bump, data, memory_order_relaxed);
    r->bump_end = end;
    huge_requested(r) = requested;
    /* release: statistics read the header after acquiring the state. */
    atomic_store_explicit(&r->remote, remote_word(SPAN_HOT, r, NULL, 0), memory_order_release);
    address_map_set(r, (uintptr_t)heap | MAP_SPAN);
    if (lead >= SPAN_SIZE)
        address_map_set(data, (uintptr_t)heap | MAP_HUGE_ALIGNED);
    /* No MADV_HUGEPAGE here: the flag outlives the block (it belongs to
     * the mapping, not the pages), and a free-run header written later in
     * such a range faults in a whole 2 MiB page for its 4 KiB; giving the
     * header back splits it and leaves the other 511 pages resident and
     * uncounted (issue 13's resident leak, tests/test_huge_release.c). */
    annotate_alloc(heap, data, (size_t)(end - data));
    heap->huge_blocks++;
    heap->huge_bytes += (size_t)(end - data);
    heap->huge_requested += requested;
    pthread_mutex_unlock(&heap->huge_lock);
    return data;
}

span_t *huge_header_of(uintptr_t p, uintptr_t word)
{
    uintptr_t span = p & ~(uintptr_t)SPAN_MASK;
    if ((word & MAP_TAGS) == MAP_HUGE_ALIGNED)
        span -= SPAN_SIZE;
    return (span_t *)span;
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
    heap->huge_requested -= huge_requested(s);
    if ((uintptr_t)data - (uintptr_t)s >= SPAN_SIZE)
        address_map_set(data, (uintptr_t)heap | MAP_RESERVED);
    /* Give everything but the header page back, memory and commit charge. */
    arena_give_back(heap, s, os_page_size());
    run_insert(heap, s, span_capacity(s));
    pthread_mutex_unlock(&heap->huge_lock);
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
            span_t *s = (span_t *)span;
            if (span_kind(s) != SPAN_KIND_HUGE || span_state(s) != SPAN_HOT)
                return false;
            return a < (uintptr_t)s->bump_end;
        }
        if ((w & MAP_TAGS) == 0)
            return false;
        span -= SPAN_SIZE;
    }
}

bool huge_resize_in_place(struct sc_heap_s *heap, span_t *s, size_t n)
{
    if (n > HUGE_MAX)
        return false;
    size_t page = os_page_size();
    bool ok = false;
    pthread_mutex_lock(&heap->huge_lock);
    char *data = atomic_load_explicit(&s->bump, memory_order_relaxed);
    size_t lead = (size_t)(data - (char *)s);
    size_t spans = (lead + n + SPAN_SIZE - 1) / SPAN_SIZE;
    char *end = (char *)round_up((uintptr_t)data + n, page);
    if (spans <= span_capacity(s)) {
        /* Shrink (or grow within the run): give back whole spans past the
         * new end as a free run and pages past it within the last span. */
        size_t keep = (size_t)(end - (char *)s);
        /* Before the tail becomes a free run: its header must stay open. */
        annotate_resize(heap, data, huge_usable_size(s), (size_t)(end - data));
        if (s->committed > keep) {
            arena_give_back(heap, s, keep);
        } else if (!arena_commit(heap, s, keep)) {
            goto out;
        }
        if (spans < span_capacity(s)) {
            span_t *tail = (span_t *)((char *)s + spans * SPAN_SIZE);
            size_t tail_spans = span_capacity(s) - spans;
            if (arena_commit_header(heap, tail)) {
                span_set_capacity(s, (uint32_t)spans);
                run_clamp(s);
                run_insert(heap, tail, tail_spans);
            }
        }
        ok = true;
    } else {
        /* Grow into a free run that starts right where this one ends. */
        span_t *prev = NULL, *r = heap->huge_free_runs;
        while (r && (char *)r < run_end(s)) {
            prev = r;
            r = run_next(r);
        }
        size_t more = spans - span_capacity(s);
        if (r && (char *)r == run_end(s) && span_capacity(r) >= more &&
            run_split_front(heap, prev, r, more)) {
            address_map_set(r, (uintptr_t)heap | MAP_RESERVED);
            /* r's header page is charged on its own; arena_commit below
             * charges it again as part of the block. */
            atomic_fetch_sub_explicit(&heap->committed_bytes, page, memory_order_relaxed);
            span_set_capacity(s, span_capacity(s) + ((uint32_t)more));
            if (arena_commit(heap, s, (size_t)(end - (char *)s))) {
                annotate_resize(heap, data, huge_usable_size(s), (size_t)(end - data));
                ok = true;
            } else {
                /* Give the spans back; the block keeps its old size. */
                span_t *tail = r;
                if (arena_commit_header(heap, tail)) {
                    span_set_capacity(s, span_capacity(s) - ((uint32_t)more));
                    run_clamp(s);
                    run_insert(heap, tail, more);
                }
            }
        }
    }
    if (ok) {
        heap->huge_bytes -= huge_usable_size(s);
        heap->huge_requested -= huge_requested(s);
        s->bump_end = end;
        huge_requested(s) = n;
        heap->huge_bytes += huge_usable_size(s);
        heap->huge_requested += n;
    }
out:
    pthread_mutex_unlock(&heap->huge_lock);
    return ok;
}

void huge_set_requested(struct sc_heap_s *heap, span_t *s, size_t n)
{
    pthread_mutex_lock(&heap->huge_lock);
    heap->huge_requested -= huge_requested(s);
    huge_requested(s) = n;
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
