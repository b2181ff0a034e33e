/*
 * The instrumented scalloc adapter (adapters/alloc_footprint.h) and the heap
 * walk that breaks a heap's committed bytes down by where they go.
 *
 * Why a walk and not sc_heap_get_stats: the statistics say how many bytes
 * are live and committed, not why the difference is committed. The walk
 * reads the internal structures (read-only): every region's spans in
 * address order, each span's header, its state in the remote word, its
 * local and remote free lists, and mincore for what is resident. That is
 * only sound while nothing changes them, so every walk first stops the
 * world: it raises fp_stop, waits until no thread is inside an allocator
 * call (each call marks its thread inside; a thread that sees fp_stop
 * waits before it enters), and holds the registry lock, which keeps
 * exiting threads from tearing their frontends down meanwhile.
 *
 * Where committed - live goes, for each block span in use (HOT, FLOATING,
 * DETACHED, REUSABLE), in the span's own byte order:
 *   [0, first block)            metadata (header; checked/tracking tables)
 *   [first block, bump)         carved: live blocks and free blocks
 *   [bump, min(committed, end)) uncarved tail: committed, never carved
 *   [end of the blocks, committed)  span end past the last block
 * Spans in the pool count whole as warm (memory kept) or cold (released:
 * the header page); huge blocks as usable and slack. Live class blocks are
 * split into the bytes requested (from this adapter's shadow table) and
 * rounding to the class. The rows sum to the heap's committed counter; the
 * report says by how much they miss if they do.
 */
#include "bench_alloc.h"
#include "bench_util.h"
#include "footprint.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "address_map.h"
#include "annotate.h"
#include "frontend.h"
#include "os.h"
#include "registry.h"
#include "size_class.h"
#include "span.h"
#include "types.h"

#define FP_CLASSES (NUM_CLASSES + 1) /* the size classes, then huge blocks */
#define FP_HUGE NUM_CLASSES

struct bench_heap {
    sc_heap_t *sc;
};

struct bench_thread {
    /* 1 while the thread is in an allocator call (seq_cst, see fp_enter). */
    _Atomic int inside;
    bench_heap *heap;
    /* Requested bytes of the blocks this thread allocated less those of the
     * blocks it freed, per class: only this thread writes them, inside a
     * call; walks read them while it is stopped outside. */
    int64_t requested[FP_CLASSES];
    struct bench_thread *next, *prev;
};

/* ------------------------------------------------------------------------ */
/* Stopping the world                                                       */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t fp_threads_lock = PTHREAD_MUTEX_INITIALIZER;
static bench_thread *fp_threads;          /* attached threads, under the lock */
static int64_t fp_retired[FP_CLASSES];    /* detached threads' counters */
static _Atomic int fp_stop;
/* One walk (or trim) at a time. */
static pthread_mutex_t fp_walk_lock = PTHREAD_MUTEX_INITIALIZER;

/* Dekker with fp_quiesce: the thread publishes `inside` before it reads
 * fp_stop, the walker publishes fp_stop before it reads `inside` (both
 * seq_cst), so at least one of them sees the other. */
static void fp_enter(bench_thread *t)
{
    for (;;) {
        atomic_store(&t->inside, 1);
        if (!atomic_load(&fp_stop))
            return;
        atomic_store(&t->inside, 0);
        while (atomic_load_explicit(&fp_stop, memory_order_acquire))
            sched_yield();
    }
}

static void fp_leave(bench_thread *t)
{
    /* release: what the call wrote (counters, shadow) is visible to a
     * walker that sees the thread outside. */
    atomic_store_explicit(&t->inside, 0, memory_order_release);
}

/* Caller holds fp_walk_lock. Returns with the world stopped, the threads
 * list and the registry locked. */
static void fp_quiesce(void)
{
    atomic_store(&fp_stop, 1);
    pthread_mutex_lock(&fp_threads_lock);
    for (bench_thread *t = fp_threads; t; t = t->next)
        while (atomic_load(&t->inside))
            sched_yield();
    registry_lock();
}

static void fp_resume(void)
{
    registry_unlock();
    pthread_mutex_unlock(&fp_threads_lock);
    atomic_store(&fp_stop, 0);
}

/* ------------------------------------------------------------------------ */
/* The shadow table: requested size per block start                         */
/* ------------------------------------------------------------------------ */

/* Two levels, like the address map: one pointer per 2 MiB of user address
 * space, then one 32-bit size per 16 bytes of that span (every block start
 * is 16-byte aligned). Both are reserved MAP_NORESERVE and only the parts
 * touched become resident; they are harness memory, not the heap's. */
#define FP_TOP ((size_t)1 << (ADDRESS_BITS - SPAN_SHIFT))
#define FP_PER_SPAN (SPAN_SIZE / 16)
static _Atomic(uint32_t *) *fp_shadow;

static void *fp_reserve(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static _Atomic uint32_t *fp_shadow_slot(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    _Atomic(uint32_t *) *top = &fp_shadow[(a >> SPAN_SHIFT) & (FP_TOP - 1)];
    uint32_t *span = atomic_load_explicit(top, memory_order_acquire);
    if (span == NULL) {
        uint32_t *fresh = fp_reserve(FP_PER_SPAN * sizeof(uint32_t));
        if (fresh == NULL) {
            fprintf(stderr, "footprint: cannot map the shadow table\n");
            abort();
        }
        if (atomic_compare_exchange_strong_explicit(top, &span, fresh, memory_order_acq_rel,
                                                    memory_order_acquire))
            span = fresh;
        else
            munmap(fresh, FP_PER_SPAN * sizeof(uint32_t));
    }
    /* relaxed entries: the program's own hand-over of a block orders its
     * allocation before its free, as for the allocator's metadata. */
    return (_Atomic uint32_t *)&span[(a & SPAN_MASK) >> 4];
}

static unsigned fp_class_of(size_t n)
{
    return n <= SIZE_CLASS_MAX ? size_class_of(n) : FP_HUGE;
}

/* ------------------------------------------------------------------------ */
/* The walk                                                                 */
/* ------------------------------------------------------------------------ */

enum fp_row {
    ROW_LIVE,
    ROW_ROUND,
    ROW_FREE_HOT,
    ROW_FREE_FLOATING,
    ROW_FREE_DETACHED,
    ROW_FREE_REUSABLE,
    ROW_TAIL_HOT,
    ROW_TAIL_OTHER,
    ROW_SPAN_END,
    ROW_META_SPAN,
    ROW_META_REGION,
    ROW_POOL_WARM,
    ROW_DRAINED,
    ROW_COLD,
    ROW_HUGE_ROUND,
    ROW_HUGE_SLACK,
    ROWS
};

static const char *const fp_row_name[ROWS] = {
    [ROW_LIVE] = "live: requested bytes",
    [ROW_ROUND] = "rounding to the class (usable - requested)",
    [ROW_FREE_HOT] = "free blocks in hot spans",
    [ROW_FREE_FLOATING] = "free blocks in floating spans",
    [ROW_FREE_DETACHED] = "free blocks in detached spans",
    [ROW_FREE_REUSABLE] = "free blocks in reusable spans",
    [ROW_TAIL_HOT] = "uncarved tails of hot spans (committed, never carved)",
    [ROW_TAIL_OTHER] = "uncarved tails of other spans in use",
    [ROW_SPAN_END] = "span ends past the last block (page rounding)",
    [ROW_META_SPAN] = "metadata: span headers (and checked/tracking tables)",
    [ROW_META_REGION] = "metadata: region descriptors, span header tables",
    [ROW_POOL_WARM] = "warm pool spans (empty, memory kept)",
    [ROW_DRAINED] = "drained spans awaiting their owner (emptied by remote frees)",
    [ROW_COLD] = "cold/other: released spans' header pages, free huge runs",
    [ROW_HUGE_ROUND] = "huge blocks: rounding (usable - requested)",
    [ROW_HUGE_SLACK] = "huge blocks: slack (committed - usable)",
};

typedef struct fp_bytes {
    size_t committed, resident;
} fp_bytes;

/* Per class, spans in use only. */
typedef struct fp_class {
    unsigned spans[4]; /* hot, floating, detached, reusable */
    size_t committed, resident, usable_live, free_bytes, tail, live_blocks;
    int64_t requested;
} fp_class;

#define FP_OCC 6
static const char *const fp_occ_name[FP_OCC] = {"0", "(0, 10%]", "(10, 25%]",
                                                "(25, 50%]", "(50, 80%]", "(80, 100%]"};

typedef struct fp_snapshot {
    int taken;
    char label[64];
    fp_bytes row[ROWS];
    fp_bytes beyond;        /* resident past a span's committed bytes (should be 0) */
    fp_class cls[FP_CLASSES];
    size_t heap_committed;  /* the heap's counter */
    size_t heap_resident;   /* mincore over the regions' used parts */
    long vm_rss_kb;
    size_t requested, usable; /* live class blocks */
    size_t spans[4], spans_pool_warm, spans_drained, spans_other, regions, frontends;
    size_t hot_empty, hot_empty_committed, hot_empty_resident;
    size_t occ_spans[FP_OCC], occ_committed[FP_OCC], occ_free[FP_OCC];
    size_t mismatches;      /* spans whose walked lists disagree with their counts */
    /* Outside the heap's committed bytes: the process-wide address map's
     * resident pages, and the frontends' own size. */
    size_t map_resident, frontend_bytes;
} fp_snapshot;

typedef struct fp_span_view {
    char *base;
    size_t page;
    unsigned char vec[SPAN_SIZE / 4096];
    int have_vec;
} fp_span_view;

/* Resident bytes of [a, b), offsets in the span, from its mincore vector. */
static size_t fp_res(const fp_span_view *v, size_t a, size_t b)
{
    if (!v->have_vec || b <= a)
        return 0;
    size_t total = 0;
    for (size_t pg = a / v->page; pg * v->page < b; pg++) {
        if (!(v->vec[pg] & 1))
            continue;
        size_t lo = pg * v->page > a ? pg * v->page : a;
        size_t hi = (pg + 1) * v->page < b ? (pg + 1) * v->page : b;
        total += hi - lo;
    }
    return total;
}

static void fp_add(fp_bytes *r, size_t committed, size_t resident)
{
    r->committed += committed;
    r->resident += resident;
}

/* Walks free list b of s: counts its blocks and their resident bytes;
 * stops (and says so) at anything that is not a carved block of s. */
static size_t fp_walk_list(const fp_span_view *v, span_t *s, block_t *b, size_t first,
                           size_t carved_end, size_t limit, size_t *resident, int *bad)
{
    size_t n = 0;
    for (; b != NULL; b = block_next(b)) {
        size_t off = (size_t)((char *)b - v->base);
        if (off < first || off >= carved_end || (off - first) % s->block_size != 0 ||
            n >= limit) {
            *bad = 1;
            break;
        }
        *resident += fp_res(v, off, off + s->block_size);
        n++;
    }
    return n;
}

static void fp_walk_blocks(fp_snapshot *out, span_t *s, fp_span_view *v)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    unsigned st = remote_state(w);
    size_t committed = s->committed;
    v->have_vec = mincore(v->base, SPAN_SIZE, v->vec) == 0;
    size_t res_committed = fp_res(v, 0, committed);
    fp_add(&out->beyond, 0, fp_res(v, committed, SPAN_SIZE));
    if (!span_state_in_use(st)) {
        if (st == SPAN_POOLED && s->committed > os_page_size()) { /* pages kept */
            fp_add(&out->row[ROW_POOL_WARM], committed, res_committed);
            out->spans_pool_warm++;
        } else if (st == SPAN_DRAINING || st == SPAN_DRAINED || st == SPAN_ORPHANED) {
            /* Emptied by other threads' frees; its owner pools it when it
             * next looks (sc_heap_trim gives its memory back meanwhile). */
            fp_add(&out->row[ROW_DRAINED], committed, res_committed);
            out->spans_drained++;
        } else {
            fp_add(&out->row[ROW_COLD], committed, res_committed);
            out->spans_other++;
        }
        return;
    }
    unsigned idx = st == SPAN_HOT ? 0 : st == SPAN_FLOATING ? 1 : st == SPAN_DETACHED ? 2 : 3;
    out->spans[idx]++;
    size_t bs = s->block_size, cap = span_capacity(s);
    size_t first = (size_t)(span_first_block(s) - v->base);
    size_t carved_n = (size_t)(span_bump(s) - span_first_block(s)) / bs;
    size_t carved_end = first + carved_n * bs;
    size_t end = (size_t)(s->bump_end - v->base);
    size_t live, expect_free;
    uint32_t count = remote_count(w);
    if (st == SPAN_HOT || st == SPAN_FLOATING) {
        uint32_t used = span_used_peek(s);
        live = used > count ? used - count : 0;
    } else {
        live = cap > count ? cap - count : 0;
    }
    expect_free = carved_n > live ? carved_n - live : 0;

    size_t res_free = 0;
    int bad = 0;
    size_t walked = fp_walk_list(v, s, s->free, first, carved_end, carved_n, &res_free, &bad);
    walked += fp_walk_list(v, s, remote_head(s, w), first, carved_end, carved_n, &res_free, &bad);
    /* A hot span an idle trim gave the pages of has lists cut short until
     * its owner takes it back (lib/frontend.c, IDLE TRIM). */
    if ((bad || walked != expect_free) && !(st == SPAN_HOT && frontend_span_trimmed(s)))
        out->mismatches++;

    size_t meta = first < committed ? first : committed;
    size_t carved_hi = carved_end < committed ? carved_end : committed;
    size_t tail_hi = end < committed ? end : committed;
    size_t tail = tail_hi > carved_hi ? tail_hi - carved_hi : 0;
    size_t past = committed > (tail_hi > carved_hi ? tail_hi : carved_hi)
                      ? committed - (tail_hi > carved_hi ? tail_hi : carved_hi)
                      : 0;
    size_t res_carved = fp_res(v, first, carved_hi);
    size_t res_live = res_carved > res_free ? res_carved - res_free : 0;
    size_t free_bytes = expect_free * bs;

    fp_add(&out->row[ROW_META_SPAN], meta, fp_res(v, 0, meta));
    static const enum fp_row free_row[4] = {ROW_FREE_HOT, ROW_FREE_FLOATING, ROW_FREE_DETACHED,
                                            ROW_FREE_REUSABLE};
    fp_add(&out->row[free_row[idx]], free_bytes, res_free);
    fp_add(&out->row[idx == 0 ? ROW_TAIL_HOT : ROW_TAIL_OTHER], tail,
           fp_res(v, carved_hi, carved_hi + tail));
    fp_add(&out->row[ROW_SPAN_END], past, fp_res(v, committed - past, committed));
    /* Live usable bytes go to ROW_LIVE for now; split into requested and
     * rounding once the per-class requested bytes are known. */
    fp_add(&out->row[ROW_LIVE], live * bs, res_live);
    out->usable += live * bs;

    unsigned c = span_class(s);
    if (c < NUM_CLASSES) {
        fp_class *k = &out->cls[c];
        k->spans[idx]++;
        k->committed += committed;
        k->resident += res_committed;
        k->usable_live += live * bs;
        k->live_blocks += live;
        k->free_bytes += free_bytes;
        k->tail += tail;
    }
    if (st == SPAN_HOT && live == 0) {
        out->hot_empty++;
        out->hot_empty_committed += committed;
        out->hot_empty_resident += res_committed;
    }
    unsigned occ = live == 0 ? 0 : live * 10 <= cap ? 1 : live * 4 <= cap ? 2
                 : live * 2 <= cap ? 3 : live * 5 <= cap * 4 ? 4 : 5;
    out->occ_spans[occ]++;
    out->occ_committed[occ] += committed;
    out->occ_free[occ] += free_bytes + tail;
}

/* Resident bytes of [p, p + n) (page aligned p), any length. */
static size_t fp_res_range(char *p, size_t n)
{
    return n ? os_resident_bytes(p, n) : 0;
}

static void fp_walk_huge(fp_snapshot *out, span_t *s, size_t page)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    size_t committed = s->committed;
    size_t committed_pages = (committed + page - 1) / page * page;
    if (remote_state(w) != SPAN_HOT) { /* a free run: its header page */
        fp_add(&out->row[ROW_COLD], committed, fp_res_range(span_base(s), committed_pages));
        out->spans_other++;
        return;
    }
    char *data = span_bump(s);
    size_t usable = (size_t)(s->bump_end - data);
    size_t lead = (size_t)(data - span_base(s));
    size_t res_all = fp_res_range(span_base(s), committed_pages);
    size_t res_lead = fp_res_range(span_base(s), (lead + page - 1) / page * page);
    /* The huge block's live part first; requested vs rounding is split by
     * class counters below, like class blocks. */
    out->cls[FP_HUGE].usable_live += usable;
    out->cls[FP_HUGE].live_blocks++;
    out->cls[FP_HUGE].committed += committed;
    out->cls[FP_HUGE].resident += res_all;
    fp_add(&out->row[ROW_HUGE_ROUND], usable, res_all > res_lead ? res_all - res_lead : 0);
    fp_add(&out->row[ROW_HUGE_SLACK], committed > usable ? committed - usable : 0, res_lead);
}

/* The walk proper; the world is stopped. */
static void fp_walk(bench_heap *h, fp_snapshot *out, const char *label)
{
    struct sc_heap_s *heap = h->sc;
    static fp_span_view view; /* static: big, and one walk at a time */
    memset(out, 0, sizeof *out);
    out->taken = 1;
    snprintf(out->label, sizeof out->label, "%s", label);
    size_t page = os_page_size();
    view.page = page;
    for (bench_thread *t = fp_threads; t; t = t->next)
        for (unsigned c = 0; c < FP_CLASSES; c++)
            out->cls[c].requested += t->requested[c];
    for (unsigned c = 0; c < FP_CLASSES; c++)
        out->cls[c].requested += fp_retired[c];

    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_acquire); r;
         r = r->next) {
        char *bump = atomic_load_explicit(&r->bump, memory_order_relaxed);
        out->regions++;
        size_t headers = atomic_load_explicit(&r->headers_committed, memory_order_relaxed);
        fp_add(&out->row[ROW_META_REGION], r->meta_committed + headers,
               fp_res_range(r->base, r->meta_committed) +
                   fp_res_range((char *)((uintptr_t)span_at(r->base) & ~(uintptr_t)(page - 1)),
                                headers));
        out->heap_resident += fp_res_range(r->base, (size_t)(bump - r->base));
        for (char *p = r->base + r->meta_spans * SPAN_SIZE; p < bump; p += SPAN_SIZE) {
            uintptr_t word = address_map_get((uintptr_t)p);
            uintptr_t tag = word & MAP_TAGS;
            /* Not a span with a header: cold spans (nothing committed),
             * the continuation spans of huge runs (their head counts them). */
            if (word == 0 || tag == MAP_RESERVED || tag == MAP_HUGE_ALIGNED)
                continue;
            span_t *s = span_at(p);
            view.base = p;
            if (span_kind(s) == SPAN_KIND_BLOCKS) {
                fp_walk_blocks(out, s, &view);
            } else if (span_kind(s) == SPAN_KIND_HUGE) {
                fp_walk_huge(out, s, page);
            } else { /* taken, never set up */
                fp_add(&out->row[ROW_COLD], s->committed, fp_res_range(p, page));
                out->spans_other++;
            }
        }
    }

    /* Live class bytes: requested, and the rounding to the class. */
    size_t requested = 0;
    for (unsigned c = 0; c < NUM_CLASSES; c++)
        requested += out->cls[c].requested > 0 ? (size_t)out->cls[c].requested : 0;
    out->requested = requested;
    fp_bytes live = out->row[ROW_LIVE];
    size_t round = live.committed > requested ? live.committed - requested : 0;
    /* Resident: the live blocks' resident bytes, shared in proportion
     * (which bytes of a block are touched is the program's business). */
    size_t round_res = live.committed ? (size_t)((double)live.resident * (double)round /
                                                 (double)live.committed)
                                      : 0;
    out->row[ROW_ROUND] = (fp_bytes){round, round_res};
    out->row[ROW_LIVE] = (fp_bytes){live.committed - round, live.resident - round_res};
    /* Huge blocks the same way. */
    fp_class *hc = &out->cls[FP_HUGE];
    size_t hreq = hc->requested > 0 ? (size_t)hc->requested : 0;
    if (hreq > hc->usable_live)
        hreq = hc->usable_live;
    fp_bytes *hr = &out->row[ROW_HUGE_ROUND];
    size_t hreq_res = hr->committed ? (size_t)((double)hr->resident * (double)hreq /
                                               (double)hr->committed)
                                    : 0;
    out->row[ROW_LIVE].committed += hreq;
    out->row[ROW_LIVE].resident += hreq_res;
    hr->committed -= hreq;
    hr->resident -= hreq_res;

    out->heap_committed = atomic_load_explicit(&heap->committed_bytes, memory_order_relaxed);
    out->frontends = heap->frontend_count;
    out->frontend_bytes = heap->frontend_count * sizeof(sc_frontend_t);
    out->map_resident = fp_res_range((char *)address_map, MAP_ENTRIES * sizeof(uintptr_t));
    out->vm_rss_kb = bench_status_kib("VmRSS");
}

/* ------------------------------------------------------------------------ */
/* Snapshots kept                                                           */
/* ------------------------------------------------------------------------ */

#define FP_MARKS 4
static fp_snapshot fp_peak, fp_end, fp_mark[FP_MARKS], fp_scratch;
static unsigned fp_nmarks, fp_walks;
/* Walk for the peak when committed bytes pass this. */
static _Atomic size_t fp_trigger;

static void fp_snapshot_now(bench_heap *h, fp_snapshot *out, const char *label)
{
    fp_quiesce();
    fp_walk(h, out, label);
    fp_walks++;
    fp_resume();
}

/* After an allocation: a walk if committed bytes reached a new high by a
 * step (1/64, at least 64 KiB), so the last such walk is within a step of
 * the peak and the walks cost O(log peak). Whoever finds a walk running
 * leaves it be (and waits in its next call). */
static void fp_maybe_peak(bench_heap *h)
{
    size_t c = atomic_load_explicit(&h->sc->committed_bytes, memory_order_relaxed);
    if (c <= atomic_load_explicit(&fp_trigger, memory_order_relaxed))
        return;
    if (pthread_mutex_trylock(&fp_walk_lock) != 0)
        return;
    c = atomic_load_explicit(&h->sc->committed_bytes, memory_order_relaxed);
    if (c > atomic_load_explicit(&fp_trigger, memory_order_relaxed)) {
        fp_snapshot_now(h, &fp_scratch, "peak committed");
        if (fp_scratch.heap_committed >= fp_peak.heap_committed)
            fp_peak = fp_scratch;
        size_t step = fp_scratch.heap_committed / 64;
        if (step < ((size_t)64 << 10))
            step = (size_t)64 << 10;
        atomic_store_explicit(&fp_trigger, fp_scratch.heap_committed + step,
                              memory_order_relaxed);
    }
    pthread_mutex_unlock(&fp_walk_lock);
}

/* ------------------------------------------------------------------------ */
/* The adapter                                                              */
/* ------------------------------------------------------------------------ */

bench_heap *fp_heap_create(void)
{
    if (fp_shadow == NULL) {
        fp_shadow = fp_reserve(FP_TOP * sizeof *fp_shadow);
        if (fp_shadow == NULL)
            return NULL;
    }
    bench_heap *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    sc_heap_config_t cfg = {0};
    cfg.name = "bench";
    h->sc = sc_heap_create(&cfg);
    if (h->sc == NULL) {
        free(h);
        return NULL;
    }
    memset(&fp_peak, 0, sizeof fp_peak);
    memset(&fp_end, 0, sizeof fp_end);
    memset(fp_retired, 0, sizeof fp_retired);
    fp_nmarks = fp_walks = 0;
    atomic_store(&fp_trigger, 0);
    return h;
}

void fp_heap_destroy(bench_heap *h)
{
    pthread_mutex_lock(&fp_walk_lock);
    fp_snapshot_now(h, &fp_end, "end (before destroy)");
    sc_heap_destroy(h->sc);
    pthread_mutex_unlock(&fp_walk_lock);
    free(h);
}

bench_thread *fp_thread_attach(bench_heap *h)
{
    bench_thread *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->heap = h;
    pthread_mutex_lock(&fp_threads_lock);
    t->next = fp_threads;
    if (fp_threads)
        fp_threads->prev = t;
    fp_threads = t;
    pthread_mutex_unlock(&fp_threads_lock);
    return t;
}

void fp_thread_detach(bench_thread *t)
{
    pthread_mutex_lock(&fp_threads_lock);
    for (unsigned c = 0; c < FP_CLASSES; c++)
        fp_retired[c] += t->requested[c];
    if (t->prev)
        t->prev->next = t->next;
    else
        fp_threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&fp_threads_lock);
    free(t);
}

void *fp_malloc(bench_thread *t, size_t n)
{
    fp_enter(t);
    void *p = sc_alloc(t->heap->sc, n);
    if (p != NULL) {
        atomic_store_explicit(fp_shadow_slot(p), n > UINT32_MAX ? UINT32_MAX : (uint32_t)n,
                              memory_order_relaxed);
        t->requested[fp_class_of(n)] += (int64_t)n;
    }
    fp_leave(t);
    fp_maybe_peak(t->heap);
    return p;
}

void fp_free(bench_thread *t, void *p)
{
    fp_enter(t);
    if (p != NULL) {
        /* Before the free: once it is freed another thread may reuse it. */
        uint32_t n = atomic_load_explicit(fp_shadow_slot(p), memory_order_relaxed);
        t->requested[fp_class_of(n)] -= (int64_t)n;
    }
    sc_free(t->heap->sc, p);
    fp_leave(t);
}

void fp_heap_trim(bench_heap *h)
{
    /* Callers need not be attached threads: exclude walks instead. */
    pthread_mutex_lock(&fp_walk_lock);
    sc_heap_trim(h->sc);
    pthread_mutex_unlock(&fp_walk_lock);
}

void fp_heap_mark(bench_heap *h, const char *label)
{
    pthread_mutex_lock(&fp_walk_lock);
    if (fp_nmarks < FP_MARKS)
        fp_snapshot_now(h, &fp_mark[fp_nmarks++], label);
    pthread_mutex_unlock(&fp_walk_lock);
}

/* ------------------------------------------------------------------------ */
/* The report                                                               */
/* ------------------------------------------------------------------------ */

static double kib(size_t b) { return (double)b / 1024.0; }

static size_t fp_overhead(const fp_snapshot *s)
{
    size_t total = 0;
    for (unsigned r = ROW_LIVE + 1; r < ROWS; r++)
        total += s->row[r].committed;
    return total;
}

static size_t fp_row_sum(const fp_snapshot *s, int resident)
{
    size_t total = 0;
    for (unsigned r = 0; r < ROWS; r++)
        total += resident ? s->row[r].resident : s->row[r].committed;
    return total;
}

static int fp_class_cmp(const void *a, const void *b, const fp_snapshot *s)
{
    const fp_class *x = &s->cls[*(const unsigned *)a], *y = &s->cls[*(const unsigned *)b];
    int64_t ox = (int64_t)x->committed - x->requested, oy = (int64_t)y->committed - y->requested;
    return ox < oy ? 1 : ox > oy ? -1 : 0;
}

static const fp_snapshot *fp_sort_snapshot;
static int fp_class_qsort(const void *a, const void *b)
{
    return fp_class_cmp(a, b, fp_sort_snapshot);
}

static void fp_print_classes(FILE *f, const fp_snapshot *s, unsigned top)
{
    unsigned order[FP_CLASSES], n = 0;
    for (unsigned c = 0; c < FP_CLASSES; c++)
        if (s->cls[c].committed > 0)
            order[n++] = c;
    fp_sort_snapshot = s;
    qsort(order, n, sizeof order[0], fp_class_qsort);
    fprintf(f, "\nTop classes at the peak by committed - requested (spans in use; KiB):\n\n");
    fprintf(f, "| class | spans hot/float/det/reus | committed | resident | requested | "
               "rounding | free blocks | uncarved tail | committed - requested |\n");
    fprintf(f, "|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (unsigned i = 0; i < n && i < top; i++) {
        const fp_class *k = &s->cls[order[i]];
        size_t req = k->requested > 0 ? (size_t)k->requested : 0;
        char name[32];
        if (order[i] == FP_HUGE)
            snprintf(name, sizeof name, "huge");
        else
            snprintf(name, sizeof name, "%zu B", size_class_block_size(order[i]));
        fprintf(f, "| %s | %u/%u/%u/%u | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", name,
                k->spans[0], k->spans[1], k->spans[2], k->spans[3], kib(k->committed),
                kib(k->resident), kib(req), kib(k->usable_live > req ? k->usable_live - req : 0),
                kib(k->free_bytes), kib(k->tail),
                kib(k->committed > req ? k->committed - req : 0));
    }
}

/* The classes by block size range: where span size and class spacing
 * matter (small classes have 32 KiB real spans, big ones 8 blocks). */
static void fp_print_ranges(FILE *f, const fp_snapshot *s)
{
    static const struct {
        const char *name;
        size_t hi;
    } ranges[] = {{"16-256 B", 256}, {"257 B-4 KiB", 4096}, {"4-32 KiB", 32768},
                  {"32 KiB-1 MiB", SIZE_CLASS_MAX}};
    fprintf(f, "\nSpans in use at the peak by block size (KiB):\n\n");
    fprintf(f, "| blocks | spans | committed | resident | requested | rounding | free blocks "
               "| uncarved tail |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    unsigned c = 0;
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        fp_class sum;
        memset(&sum, 0, sizeof sum);
        size_t req = 0;
        for (; c < NUM_CLASSES && size_class_block_size(c) <= ranges[r].hi; c++) {
            const fp_class *k = &s->cls[c];
            for (unsigned i = 0; i < 4; i++)
                sum.spans[i] += k->spans[i];
            sum.committed += k->committed;
            sum.resident += k->resident;
            sum.usable_live += k->usable_live;
            sum.free_bytes += k->free_bytes;
            sum.tail += k->tail;
            req += k->requested > 0 ? (size_t)k->requested : 0;
        }
        fprintf(f, "| %s | %u | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", ranges[r].name,
                sum.spans[0] + sum.spans[1] + sum.spans[2] + sum.spans[3], kib(sum.committed),
                kib(sum.resident), kib(req), kib(sum.usable_live > req ? sum.usable_live - req : 0),
                kib(sum.free_bytes), kib(sum.tail));
    }
}

void fp_report(FILE *f, const char *workload, unsigned threads, const char *scale,
               unsigned long long seed)
{
    const fp_snapshot *cols[2 + FP_MARKS];
    unsigned ncols = 0;
    cols[ncols++] = &fp_peak;
    for (unsigned i = 0; i < fp_nmarks; i++)
        cols[ncols++] = &fp_mark[i];
    cols[ncols++] = &fp_end;
    fprintf(f, "### %s, %u threads\n\n", workload, threads);
    fprintf(f, "`scalloc_footprint %s %u %s %llu` (%u walks)\n\n", workload, threads, scale,
            seed, fp_walks);
    fprintf(f, "| KiB | ");
    for (unsigned i = 0; i < ncols; i++)
        fprintf(f, "%s: committed | resident | ", cols[i]->label);
    fprintf(f, "\n|---|");
    for (unsigned i = 0; i < ncols; i++)
        fprintf(f, "---:|---:|");
    fprintf(f, "\n");
    for (unsigned r = 0; r < ROWS; r++) {
        fprintf(f, "| %s | ", fp_row_name[r]);
        for (unsigned i = 0; i < ncols; i++)
            fprintf(f, "%.0f | %.0f | ", kib(cols[i]->row[r].committed),
                    kib(cols[i]->row[r].resident));
        fprintf(f, "\n");
    }
    fprintf(f, "| **committed - live** | ");
    for (unsigned i = 0; i < ncols; i++)
        fprintf(f, "**%.0f** | %.0f | ", kib(fp_overhead(cols[i])),
                kib(fp_row_sum(cols[i], 1) - cols[i]->row[ROW_LIVE].resident));
    fprintf(f, "\n| heap committed counter; resident (mincore over the regions) | ");
    for (unsigned i = 0; i < ncols; i++)
        fprintf(f, "%.0f | %.0f | ", kib(cols[i]->heap_committed), kib(cols[i]->heap_resident));
    fprintf(f, "\n\n");

    const fp_snapshot *p = &fp_peak;
    for (unsigned i = 0; i < ncols; i++) {
        const fp_snapshot *s = cols[i];
        long miss = (long)s->heap_committed - (long)fp_row_sum(s, 0);
        char miss_text[96];
        if (miss == 0)
            snprintf(miss_text, sizeof miss_text, "the rows add up to the committed counter");
        else
            snprintf(miss_text, sizeof miss_text, "the rows miss the committed counter by %ld B",
                     miss);
        fprintf(f, "- %s: spans in use %zu hot, %zu floating, %zu detached, %zu reusable; "
                   "%zu warm in the pool, %zu drained, %zu other; %zu regions, %zu frontends; "
                   "empty hot spans %zu (%.0f KiB committed, %.0f resident); "
                   "%s; process VmRSS %ld KiB",
                s->label, s->spans[0], s->spans[1], s->spans[2], s->spans[3],
                s->spans_pool_warm, s->spans_drained, s->spans_other, s->regions, s->frontends, s->hot_empty,
                kib(s->hot_empty_committed), kib(s->hot_empty_resident),
                miss_text, s->vm_rss_kb);
        fprintf(f, "; outside the heap: address map %.0f KiB resident, frontends %.0f KiB",
                kib(s->map_resident), kib(s->frontend_bytes));
        if (s->beyond.resident)
            fprintf(f, "; %.0f KiB resident past spans' committed bytes", kib(s->beyond.resident));
        if (s->mismatches)
            fprintf(f, "; %zu spans' free lists disagree with their counts", s->mismatches);
        fprintf(f, ".\n");
    }
    fprintf(f, "\nSpans in use at the peak by the share of their blocks live:\n\n");
    fprintf(f, "| live share | spans | committed KiB | free + uncarved KiB |\n|---|---:|---:|---:|\n");
    for (unsigned o = 0; o < FP_OCC; o++)
        fprintf(f, "| %s | %zu | %.0f | %.0f |\n", fp_occ_name[o], p->occ_spans[o],
                kib(p->occ_committed[o]), kib(p->occ_free[o]));
    fp_print_ranges(f, p);
    fp_print_classes(f, p, 8);
    fprintf(f, "\n");
}
