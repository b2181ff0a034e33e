/* Arena regions and virtual spans (arena.h). */
#include "arena.h"

#include <errno.h>
#include <string.h>

#include "address_map.h"
#include "annotate.h"
#include "os.h"


static size_t round_up(size_t x, size_t a)
{
    return (x + a - 1) & ~(a - 1);
}

/* Bytes of a region's descriptor and tables for `spans` spans, whole pages:
 * the descriptor, a span info word per span, the cold, purging and two
 * mark bitmaps. (The spans' headers are in the header table.) */
static size_t meta_bytes(size_t spans)
{
    size_t words = (spans + 63) / 64;
    return round_up(round_up(sizeof(region_t), CACHE_LINE) + spans * sizeof(uint64_t) +
                        4 * words * sizeof(uint64_t),
                    os_page_size());
}

/* Bytes of header table pages that the headers of spans [0, k) of a region
 * at base touch. The first and last page may be shared with a neighbouring
 * region's headers (a page holds the headers of 64 MiB of address space),
 * so two regions can both count one page. */
static size_t header_page_bytes(const char *base, size_t k)
{
    size_t page = os_page_size();
    uintptr_t lo = (uintptr_t)span_at(base) & ~(uintptr_t)(page - 1);
    uintptr_t hi = round_up((uintptr_t)span_at(base + k * SPAN_SIZE), page);
    return k ? (size_t)(hi - lo) : 0;
}

/* Under an address-space limit the header table covers a window, and every
 * region is placed inside it: from a cursor on, at the first range nothing
 * else holds, wrapping round once. Rare (a region per doubling of a heap):
 * one lock for the cursor. */
static pthread_mutex_t window_lock = PTHREAD_MUTEX_INITIALIZER;
static char *window_cursor;

void arena_lock_placement(void) { pthread_mutex_lock(&window_lock); }
void arena_unlock_placement(void) { pthread_mutex_unlock(&window_lock); }

static char *window_reserve(char *lo, char *hi, size_t size, bool writable)
{
    pthread_mutex_lock(&window_lock);
    if (window_cursor < lo || window_cursor >= hi)
        window_cursor = lo;
    char *found = NULL;
    for (int pass = 0; pass < 2 && found == NULL; pass++) {
        for (char *at = window_cursor; (size_t)(hi - at) >= size; at += size) {
            if (os_reserve_at(at, size, writable)) {
                found = at;
                break;
            }
        }
        if (found == NULL)
            window_cursor = lo;
    }
    if (found)
        window_cursor = found + size;
    pthread_mutex_unlock(&window_lock);
    return found;
}

/* Reserves a region of about `size` bytes (at least `min`), halving on
 * refusal so that a limited address space (ulimit -v, valgrind, 39-bit VA)
 * gets smaller regions instead of an error. Outside a strict commit limit
 * the whole region is writable from the start (MAP_NORESERVE: nothing is
 * charged or resident until touched), so no span ever needs an mprotect;
 * with a strict limit it is reserved inaccessible and committed as used. */
static region_t *region_reserve(struct sc_heap_s *heap, size_t size, size_t min)
{
    if (min < REGION_MIN_SIZE)
        min = REGION_MIN_SIZE;
    if (size < min)
        size = min;
    bool strict = os_strict_commit();
    char *base = NULL;
    void *mapping = NULL;
    size_t mapping_size = 0;
    char *window_lo, *window_hi;
    bool window = address_map_window(&window_lo, &window_hi);
    for (;;) {
        if (window) {
            base = window_reserve(window_lo, window_hi, size, !strict);
            mapping = base;
            mapping_size = size;
        } else {
            base = os_reserve_aligned(size, SPAN_SIZE, !strict, &mapping, &mapping_size);
        }
        if (base || size / 2 < min)
            break;
        size /= 2;
    }
    if (base == NULL)
        return NULL;
    size_t spans = size / SPAN_SIZE;
    size_t meta_pages = meta_bytes(spans);
    size_t meta_spans = (meta_pages + SPAN_SIZE - 1) / SPAN_SIZE;
    /* Under a strict limit the region's header pages are made writable and
     * charged now (bumps do not lock); otherwise they are charged as spans
     * are bumped (headers_charge). */
    size_t header_pages = strict ? header_page_bytes(base, spans) : 0;
    if (meta_spans >= spans || (strict && (!os_commit(base, meta_pages) ||
                                           !address_map_headers_writable(base, size)))) {
        os_unreserve(mapping, mapping_size);
        return NULL;
    }
    /* Every 2 MiB of the region answers sc_heap_of; the meta spans hold
     * this descriptor and its tables and never serve blocks. */
    if (!address_map_set_range(base, size, (uintptr_t)heap | MAP_RESERVED)) {
        os_unreserve(mapping, mapping_size);
        return NULL;
    }
    region_t *r = (region_t *)base;
    r->base = base;
    r->size = size;
    r->mapping = mapping;
    r->mapping_size = mapping_size;
    r->spans = spans;
    r->meta_spans = meta_spans;
    r->meta_committed = meta_pages;
    atomic_init(&r->headers_committed, header_pages);
    r->info = (_Atomic uint64_t *)(base + round_up(sizeof(region_t), CACHE_LINE));
    r->cold_words = (spans + 63) / 64;
    r->cold = (uint64_t *)(r->info + spans);
    r->purging = r->cold + r->cold_words;
    _Atomic uint64_t *marks = (_Atomic uint64_t *)(r->purging + r->cold_words);
    r->mark_new = marks;
    r->mark_old = marks + r->cold_words;
    r->cold_first = r->cold_words;
    /* The tables are fresh memory: every word reads as zero already. */
    atomic_init(&r->bump, base + meta_spans * SPAN_SIZE);
    r->next = atomic_load_explicit(&heap->regions, memory_order_relaxed);
    atomic_fetch_add_explicit(&heap->reserved_bytes, size, memory_order_relaxed);
    /* The descriptor and its tables are charged as committed (they are
     * resident only where touched), outside the limit as before. */
    atomic_fetch_add_explicit(&heap->committed_bytes, meta_pages + header_pages,
                              memory_order_relaxed);
    return r;
}

bool arena_init(struct sc_heap_s *heap)
{
    region_t *r = region_reserve(heap, heap->first_region_size, 0);
    if (r == NULL) {
        errno = ENOMEM;
        return false;
    }
    heap->next_region_size = r->size * 2;
    /* release: the descriptor is visible to threads that load `regions`. */
    atomic_store_explicit(&heap->regions, r, memory_order_release);
    return true;
}

/* Makes the headers of [p, p + count spans) those of fresh spans, as the
 * zero page made headers that lived in their spans: no kind, no owner,
 * nothing committed or carved. The caller holds the spans alone and their
 * map words say MAP_RESERVED (just bumped off a region, or cold), but a
 * rewound or cold span's header still says what it said before, and a
 * stale reader (a drained sweep whose bit outlived the state, statistics)
 * may look at it meanwhile: field by field, atomics by relaxed stores. The
 * state word is left as it is: kind 0 already makes every reader pass the
 * span by (free.c, stats.c), and whoever sets the span up writes its state
 * (span.c, huge.c). */
static void headers_fresh(char *p, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char *base = p + i * SPAN_SIZE;
        span_t *s = span_at(base);
        atomic_store_explicit(&s->kind, 0, memory_order_relaxed);
        s->free = NULL;
        atomic_store_explicit(&s->bump, NULL, memory_order_relaxed);
        s->block_size = 0;
        atomic_store_explicit(&s->capacity, 0, memory_order_relaxed);
        s->divide_magic = 0;
        s->heap = NULL;
        owner_word_set(&s->carved_limit, 0);
        s->owner_magic = 0;
        owner_word_set(&s->owner_carved, 0);
        owner_word_set(&s->counts, 0);
        atomic_store_explicit(&s->size_class, 0, memory_order_relaxed);
        s->kept_empty = 0;
        atomic_store_explicit(&s->reuse_count, 0, memory_order_relaxed);
        s->bump_end = NULL;
        atomic_store_explicit(&s->stack_next, NULL, memory_order_relaxed);
        atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
        s->set_next = s->set_prev = NULL;
        owner_word_set(&s->committed, 0);
        s->rw_bytes = 0;
    }
}

/* Charges the header table's pages up to the header of the span before
 * `end` (a bump pointer of r to be) as committed, against the heap's limit
 * like the spans themselves: a span's header is resident from its first
 * use. false if the limit refuses. Bumpers race: a charge is kept only by
 * the one whose CAS raises the charged extent by it; a loser gives its
 * charge back and looks again. A charge whose bump then fails stays (the
 * next bump needs the page). */
static bool headers_charge(struct sc_heap_s *heap, region_t *r, char *end)
{
    size_t want = header_page_bytes(r->base, (size_t)(end - r->base) / SPAN_SIZE);
    /* relaxed: a counter; the pages need no commit outside a strict limit
     * (MAP_NORESERVE), and under one they were made writable and charged
     * up front (headers_committed starts at all of them). */
    size_t cur = atomic_load_explicit(&r->headers_committed, memory_order_relaxed);
    while (cur < want) {
        if (!arena_charge(heap, want - cur))
            return false;
        size_t was = cur;
        if (atomic_compare_exchange_strong_explicit(&r->headers_committed, &cur, want,
                                                    memory_order_relaxed, memory_order_relaxed))
            return true;
        arena_uncharge(heap, want - was);
    }
    return true;
}

/* Bumps `count` spans off region r, or NULL if it has no room (*limited
 * set if it has, but the limit refused the headers' page). */
static char *region_bump(struct sc_heap_s *heap, region_t *r, size_t count, bool *limited)
{
    size_t bytes = count * SPAN_SIZE;
    char *cur = atomic_load_explicit(&r->bump, memory_order_relaxed);
    for (;;) {
        if ((size_t)(r->base + r->size - cur) < bytes)
            return NULL;
        if (!headers_charge(heap, r, cur + bytes)) {
            *limited = true;
            return NULL;
        }
        /* relaxed: the bump pointer only divides address space; nothing
         * else is published through it. */
        if (atomic_compare_exchange_weak_explicit(&r->bump, &cur, cur + bytes,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            headers_fresh(cur, count);
            return cur;
        }
    }
}

/* Takes `count` fresh spans, adding a region when the newest is full. */
static char *arena_bump(struct sc_heap_s *heap, size_t count)
{
    for (;;) {
        region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire);
        bool limited = false;
        char *p = region_bump(heap, r, count, &limited);
        if (p || limited)
            return p;
        pthread_mutex_lock(&heap->grow_lock);
        if (atomic_load_explicit(&heap->regions, memory_order_relaxed) == r) {
            /* Room for the run plus the meta spans (at most one more span
             * of tables per 250,000 spans). */
            size_t need = (count + 2 + count / 200000) * SPAN_SIZE;
            size_t size = heap->next_region_size;
            while (size < need)
                size *= 2;
            region_t *nr = region_reserve(heap, size, need);
            if (nr == NULL) {
                pthread_mutex_unlock(&heap->grow_lock);
                errno = ENOMEM;
                return NULL;
            }
            if (heap->next_region_size < REGION_MAX_SIZE)
                heap->next_region_size = nr->size * 2;
            atomic_store_explicit(&heap->regions, nr, memory_order_release);
        }
        pthread_mutex_unlock(&heap->grow_lock);
    }
}

bool arena_charge(struct sc_heap_s *heap, size_t bytes)
{
    size_t before = atomic_fetch_add_explicit(&heap->committed_bytes, bytes,
                                              memory_order_relaxed);
    if (heap->limit_bytes && before + bytes > heap->limit_bytes) {
        atomic_fetch_sub_explicit(&heap->committed_bytes, bytes, memory_order_relaxed);
        return false;
    }
    return true;
}

void arena_uncharge(struct sc_heap_s *heap, size_t bytes)
{
    atomic_fetch_sub_explicit(&heap->committed_bytes, bytes, memory_order_relaxed);
}

bool arena_make_writable(void *p, size_t bytes)
{
    return !os_strict_commit() || bytes == 0 || os_commit(p, bytes);
}

bool arena_commit(struct sc_heap_s *heap, span_t *s, size_t bytes)
{
    if (s->committed >= bytes)
        return true;
    size_t extra = bytes - s->committed;
    if (!arena_charge(heap, extra))
        return false;
    if (s->rw_bytes < bytes) {
        if (os_strict_commit() &&
            !os_commit(span_base(s) + s->rw_bytes, bytes - s->rw_bytes)) {
            arena_uncharge(heap, extra);
            return false;
        }
        s->rw_bytes = bytes;
    }
    s->committed = bytes;
    return true;
}

size_t arena_writable_extent(size_t bytes, size_t spans)
{
    return os_strict_commit() ? bytes : spans * SPAN_SIZE;
}

void arena_give_back(struct sc_heap_s *heap, span_t *s, size_t from)
{
    /* Outside a strict limit nothing past `committed` was ever touched, so
     * that is where the range ends. */
    size_t rw = s->rw_bytes;
    size_t end = os_strict_commit() ? rw : s->committed;
    arena_uncommit(heap, s, from);
    if (end > from) {
        if (os_strict_commit()) {
            if (from > 0)
                s->rw_bytes = from;
            os_decommit(span_base(s) + from, end - from);
        } else {
            os_release(span_base(s) + from, end - from);
        }
    }
}

void arena_give_back_to_batch(struct sc_heap_s *heap, span_t *s, size_t from,
                              os_release_batch_t *batch)
{
    size_t end = s->committed;
    arena_uncommit(heap, s, from);
    if (end > from)
        os_release_batch_add(batch, span_base(s) + from, end - from);
}

void arena_uncommit(struct sc_heap_s *heap, span_t *s, size_t keep)
{
    if (s->committed > keep) {
        arena_uncharge(heap, s->committed - keep);
        s->committed = keep;
    }
}

bool arena_commit_first_page(struct sc_heap_s *heap, span_t *s)
{
    size_t page = os_page_size();
    if (!arena_charge(heap, page))
        return false;
    if (os_strict_commit() && !os_commit(span_base(s), page)) {
        arena_uncharge(heap, page);
        return false;
    }
    s->committed = page;
    s->rw_bytes = arena_writable_extent(page, 1);
    return true;
}

span_t *arena_take_run(struct sc_heap_s *heap, size_t count, size_t bytes)
{
    if (!arena_charge(heap, bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = arena_bump(heap, count);
    size_t rw = arena_writable_extent(bytes, count);
    if (p == NULL || (os_strict_commit() && !os_commit(p, rw))) {
        /* A bumped run that cannot be committed is lost address space
         * only; the kernel refused memory, so say so. */
        arena_uncharge(heap, bytes);
        errno = ENOMEM;
        return NULL;
    }
    span_t *s = span_at(p);
    s->committed = bytes;
    s->rw_bytes = rw;
    s->heap = heap;
    return s;
}

span_t *arena_take_span(struct sc_heap_s *heap)
{
    span_t *s = arena_take_run(heap, 1, os_page_size());
    if (s == NULL)
        return NULL;
    atomic_store_explicit(&s->bump, span_base(s) + SPAN_LEAD, memory_order_relaxed);
    address_map_set(s, (uintptr_t)heap | MAP_SPAN);
    return s;
}

region_t *arena_region_of(struct sc_heap_s *heap, const void *p)
{
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        if ((const char *)p >= r->base && (const char *)p < r->base + r->size)
            return r;
    }
    return NULL;
}

bool arena_extend_run(struct sc_heap_s *heap, span_t *s, size_t count, size_t more)
{
    region_t *r = arena_region_of(heap, span_base(s));
    if (r == NULL)
        return false;
    char *end = span_base(s) + count * SPAN_SIZE;
    if ((size_t)(r->base + r->size - end) < more * SPAN_SIZE ||
        !headers_charge(heap, r, end + more * SPAN_SIZE))
        return false;
    /* relaxed: as region_bump; succeeds only if nobody bumped past s. */
    if (!atomic_compare_exchange_strong_explicit(&r->bump, &end, end + more * SPAN_SIZE,
                                                 memory_order_relaxed, memory_order_relaxed))
        return false;
    headers_fresh(end, more);
    return true;
}

void arena_unpoison_used(struct sc_heap_s *heap)
{
#if defined(SCALLOC_SANITIZE_ADDRESS)
    /* ASan keeps a range's shadow through munmap, so whatever scalloc
     * poisoned must be opened again before the range goes back, or the
     * next mapping there would report false errors. Only the parts that
     * can be poisoned are walked: block spans' real spans and huge runs. */
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r; r = r->next) {
        char *end = atomic_load_explicit(&r->bump, memory_order_relaxed);
        for (char *p = arena_first_span(r); p < end; p += SPAN_SIZE) {
            uintptr_t w = address_map_get((uintptr_t)p);
            unsigned tag = (unsigned)(w & MAP_TAGS);
            if (w == 0 || tag == MAP_RESERVED || tag == MAP_HUGE_ALIGNED) {
                /* Free huge spans and cold spans may hold poisoned pages. */
                annotate_owned(p, SPAN_SIZE);
                continue;
            }
            span_t *s = span_at(p);
            if (span_kind(s) == SPAN_KIND_HUGE) {
                size_t spans = span_capacity(s);
                annotate_owned(p, spans * SPAN_SIZE);
                p += (spans ? spans - 1 : 0) * SPAN_SIZE;
            } else {
                annotate_owned(p, SPAN_SIZE);
            }
        }
    }
#else
    (void)heap;
#endif
}

void arena_destroy(struct sc_heap_s *heap)
{
    arena_unpoison_used(heap);
    region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire);
    while (r) {
        /* The descriptor lives in the mapping: read it all first. */
        region_t *next = r->next;
        char *base = r->base;
        size_t size = r->size;
        void *mapping = r->mapping;
        size_t mapping_size = r->mapping_size;
        address_map_set_range(base, size, 0);
        os_unreserve(mapping, mapping_size);
        r = next;
    }
    atomic_store_explicit(&heap->regions, NULL, memory_order_relaxed);
}

void arena_rewind(region_t *r, char *end)
{
    char *old = atomic_load_explicit(&r->bump, memory_order_relaxed);
    size_t used = (size_t)(old - r->base) / SPAN_SIZE;
    for (size_t k = r->meta_spans; k < used; k++)
        atomic_store_explicit(&r->info[k], 0, memory_order_relaxed);
    memset(r->cold, 0, r->cold_words * sizeof(uint64_t));
    memset(r->purging, 0, r->cold_words * sizeof(uint64_t));
    for (size_t wi = 0; wi < r->cold_words; wi++) {
        atomic_store_explicit(&r->mark_new[wi], 0, memory_order_relaxed);
        atomic_store_explicit(&r->mark_old[wi], 0, memory_order_relaxed);
    }
    r->cold_first = r->cold_words;
    atomic_store_explicit(&r->bump, end, memory_order_relaxed);
}

/* Ranges for mincore, gathered in address order: an extent that starts
 * where the last one ended joins it, so neighbouring spans cost one call. */
typedef struct resident_walk_s {
    char *from, *to;
    size_t bytes;
} resident_walk_t;

static void resident_flush(resident_walk_t *w)
{
    if (w->to > w->from)
        w->bytes += os_resident_bytes(w->from, (size_t)(w->to - w->from));
    w->from = w->to = NULL;
}

static void resident_add(resident_walk_t *w, char *lo, char *hi)
{
    if (w->from && lo < w->to) /* a huge block's extent ran over (racing) */
        lo = w->to;
    if (hi <= lo)
        return;
    if (w->from == NULL || lo != w->to) {
        resident_flush(w);
        w->from = lo;
    }
    w->to = hi;
}

/* Resident bytes of r's pages in the header table (those it charged). */
static size_t headers_resident(region_t *r)
{
    size_t bytes = atomic_load_explicit(&r->headers_committed, memory_order_relaxed);
    if (bytes == 0)
        return 0;
    uintptr_t page_mask = (uintptr_t)os_page_size() - 1;
    return os_resident_bytes((char *)((uintptr_t)span_at(r->base) & ~page_mask), bytes);
}

/* Where pages can be resident: a free span's or free huge span's retained
 * pages (its info word), a span with a header up to its committed bytes
 * (a live huge block's run from its first span), a region's metadata.
 * Nothing else was touched since it was last given back: never-used
 * spans, cold spans and the pages of free runs that went back are not
 * walked at all, and a block span's untouched 2 MiB tail is not either.
 * The figure is still the kernel's (mincore), not an estimate. */
size_t arena_resident_bytes(struct sc_heap_s *heap)
{
    size_t page = os_page_size();
    resident_walk_t w = {NULL, NULL, 0};
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        size_t used = (size_t)(atomic_load_explicit(&r->bump, memory_order_relaxed) - r->base) /
                      SPAN_SIZE;
        for (size_t k = r->meta_spans; k < used; k++) {
            char *p = r->base + k * SPAN_SIZE;
            uint64_t info = atomic_load_explicit(&r->info[k], memory_order_relaxed);
            if (info & (INFO_POOLED | INFO_HUGE_FREE)) {
                resident_add(&w, p, p + info_pages(info) * page);
                continue;
            }
            uintptr_t word = address_map_get((uintptr_t)p);
            unsigned tag = (unsigned)(word & MAP_TAGS);
            if (word == 0 || tag == MAP_RESERVED || tag == MAP_HUGE_ALIGNED)
                continue; /* no header: covered by a run's first span, or nothing */
            size_t extent = (size_t)owner_word_peek(&span_at(p)->committed);
            size_t room = (used - k) * SPAN_SIZE;
            resident_add(&w, p, p + (extent < room ? extent : room));
        }
        /* The tables last: reading their span info words above may have
         * mapped pages of them (the zero page, which mincore counts). */
        resident_flush(&w);
        w.bytes += os_resident_bytes(r->base, r->meta_committed);
        w.bytes += headers_resident(r);
    }
    return w.bytes;
}

size_t arena_resident_bytes_anywhere(struct sc_heap_s *heap)
{
    size_t total = 0;
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        char *end = atomic_load_explicit(&r->bump, memory_order_relaxed);
        total += os_resident_bytes(r->base, (size_t)(end - r->base)) + headers_resident(r);
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* Span info, cold spans, purging                                           */
/* ------------------------------------------------------------------------ */

_Atomic uint64_t *arena_info(struct sc_heap_s *heap, const char *p)
{
    region_t *r = arena_region_of(heap, p);
    return &r->info[(size_t)(p - r->base) >> SPAN_SHIFT];
}

/* Bytes of retained pages an info word stands for (a free huge run keeps
 * its first page whatever happens, so that page is not counted). */
static size_t retained_pages(uint64_t w, uint64_t kinds)
{
    if (!(w & kinds))
        return 0;
    size_t pages = info_pages(w);
    size_t keep = (w & INFO_HUGE_HEAD) ? 1 : 0;
    return pages > keep ? pages - keep : 0;
}

size_t arena_retained_before(struct sc_heap_s *heap, uint32_t cutoff, uint32_t now,
                             uint32_t *oldest, uint64_t kinds)
{
    size_t page = os_page_size();
    size_t bytes = 0;
    uint32_t first = now;
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        size_t used = (size_t)(atomic_load_explicit(&r->bump, memory_order_relaxed) - r->base) /
                      SPAN_SIZE;
        for (size_t k = r->meta_spans; k < used; k++) {
            uint64_t w = atomic_load_explicit(&r->info[k], memory_order_relaxed);
            size_t pages = retained_pages(w, kinds);
            if (pages == 0)
                continue;
            if (time_before(info_since(w), first))
                first = info_since(w);
            if (time_before(info_since(w), cutoff))
                bytes += pages * page;
        }
    }
    if (oldest)
        *oldest = first;
    return bytes;
}

/* Gives [from, to) back: the pages go, the range stays reserved; with a
 * strict commit limit its commit charge goes too (the caller never passes
 * a span header that a stale stack reader may still look at). Released
 * ranges join b, which the caller flushes before it lets go of the
 * retain lock (no one may take the memory while its release is pending). */
static void release_range(os_release_batch_t *b, char *from, char *to, bool decommit)
{
    if (to <= from)
        return;
    if (decommit && os_strict_commit())
        os_decommit(from, (size_t)(to - from));
    else
        os_release_batch_add(b, from, (size_t)(to - from));
}

size_t arena_purge_huge(struct sc_heap_s *heap, uint32_t cutoff, bool all)
{
    size_t page = os_page_size();
    size_t released = 0;
    os_release_batch_t batch = {.n = 0};
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        size_t used = (size_t)(atomic_load_explicit(&r->bump, memory_order_relaxed) - r->base) /
                      SPAN_SIZE;
        char *from = NULL, *to = NULL; /* the range being gathered */
        for (size_t k = r->meta_spans; k < used; k++) {
            uint64_t w = atomic_load_explicit(&r->info[k], memory_order_relaxed);
            size_t pages = info_pages(w);
            size_t keep = (w & INFO_HUGE_HEAD) ? 1 : 0;
            if (!(w & INFO_HUGE_FREE) || pages <= keep ||
                (!all && !time_before(info_since(w), cutoff))) {
                release_range(&batch, from, to, true);
                from = to = NULL;
                continue;
            }
            char *span = r->base + k * SPAN_SIZE;
            char *lo = span + keep * page, *hi = span + pages * page;
            if (from == NULL || to != lo) {
                release_range(&batch, from, to, true);
                from = lo;
            }
            to = hi;
            released += (pages - keep) * page;
            atomic_store_explicit(&r->info[k],
                                  info_word(w & (INFO_HUGE_FREE | INFO_HUGE_HEAD), keep,
                                            info_since(w)),
                                  memory_order_relaxed);
        }
        release_range(&batch, from, to, true);
    }
    os_release_batch_flush(&batch);
    if (released) {
        arena_uncharge(heap, released);
        atomic_fetch_sub_explicit(&heap->unused_bytes, released, memory_order_relaxed);
        atomic_fetch_sub_explicit(&heap->unused_huge_bytes, released, memory_order_relaxed);
    }
    return released;
}

void arena_purge_mark(struct sc_heap_s *heap, span_t *s)
{
    region_t *r = arena_region_of(heap, span_base(s));
    size_t k = (size_t)(span_base(s) - r->base) >> SPAN_SHIFT;
    r->purging[k / 64] |= (uint64_t)1 << (k % 64);
}

size_t arena_purge_flush(struct sc_heap_s *heap)
{
    size_t page = os_page_size();
    bool strict = os_strict_commit();
    size_t released = 0;
    os_release_batch_t batch = {.n = 0};
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        char *from = NULL, *to = NULL; /* the range being gathered */
        for (size_t wi = 0; wi < r->cold_words; wi++) {
            uint64_t bits = r->purging[wi];
            if (bits == 0)
                continue;
            r->purging[wi] = 0;
            r->cold[wi] |= bits;
            if (wi < r->cold_first)
                r->cold_first = wi;
            while (bits) {
                size_t k = wi * 64 + (size_t)__builtin_ctzll(bits);
                bits &= bits - 1;
                char *lo = r->base + k * SPAN_SIZE;
                span_t *s = span_at(lo);
                size_t committed = s->committed;
                size_t rw = s->rw_bytes;
                released += committed;
                atomic_store_explicit(&r->info[k], 0, memory_order_relaxed);
                /* Nobody may take the span for a live one from here on. */
                address_map_set(s, (uintptr_t)heap | MAP_RESERVED);
                owner_word_set(&s->committed, 0);
                if (strict) {
                    /* The first page stays writable (as a span's first
                     * page always is while the span is known); the rest
                     * loses its charge too. */
                    os_release(lo, page);
                    if (rw > page)
                        os_decommit(lo + page, rw - page);
                    s->rw_bytes = page;
                    continue;
                }
                /* The whole span: pages past `committed` were never
                 * touched and cost the kernel nothing to skip, and whole
                 * spans make neighbours one range, one call. */
                if (from == NULL || to != lo) {
                    release_range(&batch, from, to, false);
                    from = lo;
                }
                to = lo + SPAN_SIZE;
            }
        }
        release_range(&batch, from, to, false);
    }
    os_release_batch_flush(&batch);
    if (released) {
        arena_uncharge(heap, released);
        atomic_fetch_sub_explicit(&heap->unused_bytes, released, memory_order_relaxed);
    }
    return released;
}

span_t *arena_take_cold(struct sc_heap_s *heap)
{
    span_t *s = NULL;
    region_t *from = NULL;
    size_t k = 0;
    pthread_mutex_lock(&heap->retain_lock);
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r && !s;
         r = r->next) {
        for (size_t wi = r->cold_first; wi < r->cold_words; wi++) {
            if (r->cold[wi] == 0)
                continue;
            k = wi * 64 + (size_t)__builtin_ctzll(r->cold[wi]);
            r->cold[wi] &= r->cold[wi] - 1;
            r->cold_first = wi;
            s = span_at(r->base + k * SPAN_SIZE);
            from = r;
            break;
        }
        if (!s)
            r->cold_first = r->cold_words;
    }
    pthread_mutex_unlock(&heap->retain_lock);
    if (s == NULL)
        return NULL;
    /* The span's pages were given back; its header still says what it
     * said when the span was pooled. Make it a fresh span's, as
     * arena_take_span does (a cold span's header says nothing either). */
    headers_fresh(span_base(s), 1);
    if (!arena_commit_first_page(heap, s)) {
        pthread_mutex_lock(&heap->retain_lock);
        from->cold[k / 64] |= (uint64_t)1 << (k % 64); /* the limit refused: keep it */
        if (k / 64 < from->cold_first)
            from->cold_first = k / 64;
        pthread_mutex_unlock(&heap->retain_lock);
        return NULL;
    }
    s->heap = heap;
    atomic_store_explicit(&s->bump, span_base(s) + SPAN_LEAD, memory_order_relaxed);
    address_map_set(s, (uintptr_t)heap | MAP_SPAN);
    return s;
}

void arena_for_each_span(struct sc_heap_s *heap, arena_span_fn *fn, void *arg)
{
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r; r = r->next) {
        char *end = atomic_load_explicit(&r->bump, memory_order_relaxed);
        for (char *p = arena_first_span(r); p < end; p += SPAN_SIZE) {
            uintptr_t w = address_map_get((uintptr_t)p);
            unsigned tag = (unsigned)(w & MAP_TAGS);
            if (w == 0 || tag == MAP_RESERVED || tag == MAP_HUGE_ALIGNED)
                continue;
            fn(span_at(p), w, arg);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Marked spans                                                             */
/* ------------------------------------------------------------------------ */

void arena_mark(struct sc_heap_s *heap, span_t *s)
{
    region_t *r = arena_region_of(heap, span_base(s));
    if (r == NULL)
        return;
    size_t k = (size_t)(span_base(s) - r->base) / SPAN_SIZE;
    /* seq_cst: see span_pool_note_drained; the span's own state is read
     * by the sweep from its state word (acquire). */
    atomic_fetch_or_explicit(&r->mark_new[k / 64], (uint64_t)1 << (k % 64),
                             memory_order_seq_cst);
}

bool arena_sweep_marks(struct sc_heap_s *heap, arena_mark_fn *fn, void *arg)
{
    bool left = false;
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        for (size_t wi = 0; wi < r->cold_words; wi++) {
            /* Each bit is taken by one sweep only (the exchange), so a span
             * is looked at once per marking. */
            uint64_t old = atomic_exchange_explicit(&r->mark_old[wi], 0, memory_order_relaxed);
            while (old) {
                size_t k = wi * 64 + (size_t)__builtin_ctzll(old);
                old &= old - 1;
                fn(span_at(r->base + k * SPAN_SIZE), arg);
            }
            uint64_t young = atomic_exchange_explicit(&r->mark_new[wi], 0, memory_order_seq_cst);
            if (young) {
                atomic_fetch_or_explicit(&r->mark_old[wi], young, memory_order_relaxed);
                left = true;
            }
        }
    }
    return left;
}
