/* Statistics, printing and block visiting (scalloc.h, "Introspection"). */
#include <inttypes.h>
#include <string.h>

#include "address_map.h"
#include "annotate.h"
#include "arena.h"
#include "error.h"
#include "frontend.h"
#include "heap.h"
#include "huge.h"
#include "meta.h"
#include "os.h"
#include "registry.h"
#include "requested.h"
#include "size_class.h"
#include "span.h"

/* Live blocks of a block span: HOT spans count what their owner handed out
 * and did not free locally, less what other threads freed since; other
 * states count every block not counted free in the remote word. */
static size_t span_live_blocks(span_t *s, unsigned state, uint64_t w)
{
    if (state == SPAN_HOT || state == SPAN_FLOATING) {
        uint32_t used = span_used_peek(s);
        return used > remote_count(w) ? used - remote_count(w) : 0;
    }
    if (state == SPAN_DETACHED || state == SPAN_REUSABLE)
        return span_capacity(s) > remote_count(w) ? span_capacity(s) - remote_count(w) : 0;
    return 0;
}

static void count_span(span_t *s, uintptr_t word, void *arg)
{
    sc_heap_stats_t *st = arg;
    (void)word;
    /* The state first (acquire): the header fields read below were written
     * before the state that publishes them. */
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    unsigned state = remote_state(w);
    if (state == 0 || span_kind(s) != SPAN_KIND_BLOCKS)
        return;
    switch (state) {
    case SPAN_HOT: st->spans_hot++; break;
    case SPAN_FLOATING:
    case SPAN_DETACHED: st->spans_floating++; break;
    case SPAN_REUSABLE: st->spans_reusable++; break;
    default: st->spans_free++; return;
    }
    if (span_class(s) < SC_NUM_CLASSES) {
        sc_class_stats_t *cs = &st->classes[span_class(s)];
        cs->spans++;
        cs->live_blocks += span_live_blocks(s, state, w);
    }
}

void sc_heap_get_stats(sc_heap_t *heap, sc_heap_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!heap_check_live(heap, "sc_heap_get_stats"))
        return;
    bool tracked = requested_enabled(heap);
    /* The caller's own remote batches go to their spans first, so that a
     * thread that freed everything sees every span where it belongs. */
    sc_frontend_t *own = registry_thread_cache.frontend;
    if (registry_thread_cache.heap == heap && registry_frontend_valid(own, heap))
        frontend_remote_flush(own);
    /* The slack counters before the spans: while other threads run, a
     * block allocated in between adds usable bytes but no slack, so the
     * snapshot errs towards more requested bytes, never towards a wrapped
     * sum (clamped below). */
    /* Blocks waiting in frontends' remote batches are freed for the
     * program but still counted live in their spans: subtract them, read
     * before the spans (a batch handed over in between is then counted
     * freed twice at worst, clamped below, while threads run). */
    size_t pending[SC_NUM_CLASSES] = {0};
    registry_lock();
    out->frontends = heap->frontend_count;
    size_t slack = tracked ? requested_heap_slack(heap) : 0;
    for (sc_frontend_t *f = heap->frontends; f; f = f->heap_next) {
        for (unsigned i = 0; i < REMOTE_SLOTS; i++) {
            /* Owner words read while the owner may change them: a slot
             * being reused may pair a count with the wrong span, which
             * only matters while threads run. */
            span_t *s = (span_t *)(uintptr_t)owner_word_peek(&f->remote[i].span);
            uint64_t n = owner_word_peek(&f->remote[i].count);
            if (s != NULL && n > 0 && span_class(s) < SC_NUM_CLASSES)
                pending[span_class(s)] += (size_t)n;
        }
    }
    registry_unlock();
    arena_for_each_span(heap, count_span, out);
    for (unsigned c = 0; c < SC_NUM_CLASSES; c++) {
        sc_class_stats_t *cs = &out->classes[c];
        cs->live_blocks -= pending[c] < cs->live_blocks ? pending[c] : cs->live_blocks;
        cs->block_size = size_class_block_size(c);
        out->live_blocks += cs->live_blocks;
        out->live_bytes += cs->live_blocks * cs->block_size;
    }
    huge_stats(heap, &out->huge_blocks, &out->huge_bytes, &out->requested_bytes);
    /* Class blocks: usable bytes less their slack in tracking heaps; at
     * their usable size elsewhere (nothing is stored per block). */
    out->requested_bytes += out->live_bytes - (slack < out->live_bytes ? slack : out->live_bytes);
    out->requested_exact = tracked;
    out->live_blocks += out->huge_blocks;
    out->live_bytes += out->huge_bytes;
    out->reserved_bytes = atomic_load_explicit(&heap->reserved_bytes, memory_order_relaxed);
    out->committed_bytes = atomic_load_explicit(&heap->committed_bytes, memory_order_relaxed);
    out->resident_bytes = arena_resident_bytes(heap);
}

/* Writes s as the body of a JSON string (quotes, backslashes and control
 * characters escaped). */
static void json_string_body(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void sc_heap_print_stats(sc_heap_t *heap, FILE *f, sc_stats_format_t format)
{
    sc_heap_stats_t st;
    sc_heap_get_stats(heap, &st);
    const char *name = sc_heap_name(heap);
    if (format == SC_STATS_JSON) {
        fputs("{\"heap\":\"", f);
        json_string_body(f, name);
        fprintf(f, "\",\"live_blocks\":%zu,\"live_bytes\":%zu,"
                   "\"requested_bytes\":%zu,\"requested_exact\":%s,"
                   "\"huge_blocks\":%zu,\"huge_bytes\":%zu,"
                   "\"reserved_bytes\":%zu,\"committed_bytes\":%zu,\"resident_bytes\":%zu,"
                   "\"spans\":{\"hot\":%zu,\"floating\":%zu,\"reusable\":%zu,\"free\":%zu},"
                   "\"frontends\":%zu,\"classes\":[",
                st.live_blocks, st.live_bytes, st.requested_bytes,
                st.requested_exact ? "true" : "false", st.huge_blocks,
                st.huge_bytes, st.reserved_bytes, st.committed_bytes, st.resident_bytes,
                st.spans_hot, st.spans_floating, st.spans_reusable, st.spans_free, st.frontends);
        bool first = true;
        for (unsigned c = 0; c < SC_NUM_CLASSES; c++) {
            const sc_class_stats_t *cs = &st.classes[c];
            if (cs->live_blocks == 0 && cs->spans == 0)
                continue;
            fprintf(f, "%s{\"block_size\":%zu,\"live_blocks\":%zu,\"spans\":%zu}",
                    first ? "" : ",", cs->block_size, cs->live_blocks, cs->spans);
            first = false;
        }
        fprintf(f, "]}\n");
        return;
    }
    fprintf(f, "heap \"%s\": %zu live blocks, %zu live bytes (%zu huge in %zu blocks), %zu frontends\n",
            name, st.live_blocks, st.live_bytes, st.huge_bytes, st.huge_blocks, st.frontends);
    fprintf(f, "  requested: %zu bytes%s\n", st.requested_bytes,
            st.requested_exact ? "" : " (class blocks at usable size: not a tracking heap)");
    fprintf(f, "  memory: %zu reserved, %zu committed, %zu resident\n", st.reserved_bytes,
            st.committed_bytes, st.resident_bytes);
    fprintf(f, "  spans: %zu hot, %zu floating, %zu reusable, %zu free\n", st.spans_hot,
            st.spans_floating, st.spans_reusable, st.spans_free);
    fprintf(f, "  %10s %12s %8s\n", "class", "live blocks", "spans");
    for (unsigned c = 0; c < SC_NUM_CLASSES; c++) {
        const sc_class_stats_t *cs = &st.classes[c];
        if (cs->live_blocks == 0 && cs->spans == 0)
            continue;
        fprintf(f, "  %10zu %12zu %8zu\n", cs->block_size, cs->live_blocks, cs->spans);
    }
}

/* Visiting: a bitmap of the free blocks of one span, then every carved
 * block not in it. */
struct visit_state {
    sc_visit_fn *fn;
    void *arg;
    uint64_t *bits;
    int stopped;
};

static void mark_free(const span_t *s, const block_t *b, uint64_t *bits)
{
    char *first = span_first_block(s);
    for (; b; b = block_next((block_t *)b)) {
        size_t i = (size_t)((const char *)b - first) / s->block_size;
        bits[i / 64] |= (uint64_t)1 << (i % 64);
    }
}

/* Blocks of s waiting in other threads' batches (the heap is at rest). */
static uint32_t batched_blocks(const span_t *s)
{
    uint32_t n = 0;
    registry_lock();
    for (sc_frontend_t *f = s->heap->frontends; f; f = f->heap_next) {
        remote_batch_t *r = frontend_remote_slot(f, s);
        if (remote_batch_span(r) == s)
            n += (uint32_t)owner_word_peek(&r->count);
    }
    registry_unlock();
    return n;
}

/* A hot span an idle trim gave the pages of (frontend.c, IDLE TRIM): its
 * lists end early, and at most one block is live, the head of its list of
 * then. */
static void visit_trimmed(span_t *s, struct visit_state *v)
{
    const block_t *head = frontend_trimmed_head(s);
    uint32_t freed = remote_count(atomic_load_explicit(&s->remote, memory_order_acquire)) +
                     batched_blocks(s);
    if (head != NULL && span_used_peek(s) > freed)
        v->stopped = v->fn((void *)head, s->block_size, v->arg);
}

static void visit_span(span_t *s, uintptr_t word, void *arg)
{
    struct visit_state *v = arg;
    (void)word;
    if (v->stopped)
        return;
    unsigned st = span_state(s);
    if (span_kind(s) == SPAN_KIND_HUGE) {
        if (st == SPAN_HOT)
            v->stopped = v->fn(atomic_load_explicit(&s->bump, memory_order_relaxed),
                               huge_usable_size(s), v->arg);
        return;
    }
    if (span_kind(s) != SPAN_KIND_BLOCKS || !span_state_in_use(st))
        return;
    if (st == SPAN_HOT && frontend_span_trimmed(s)) {
        visit_trimmed(s, v);
        return;
    }
    size_t words = (span_capacity(s) + 63) / 64;
    memset(v->bits, 0, words * sizeof(uint64_t));
    mark_free(s, s->free, v->bits);
    mark_free(s, remote_head(s, atomic_load_explicit(&s->remote, memory_order_acquire)), v->bits);
    /* Blocks other threads freed and have not handed over yet are free
     * too. The heap is at rest (no thread frees meanwhile), so their
     * batches stand still. */
    registry_lock();
    for (sc_frontend_t *f = s->heap->frontends; f; f = f->heap_next) {
        remote_batch_t *r = frontend_remote_slot(f, s);
        if (remote_batch_span(r) == s)
            mark_free(s, r->head, v->bits);
    }
    registry_unlock();
    char *first = span_first_block(s);
    size_t carved = (size_t)(span_bump(s) - first) / s->block_size;
    for (size_t i = 0; i < carved && !v->stopped; i++)
        if (!(v->bits[i / 64] >> (i % 64) & 1))
            v->stopped = v->fn(first + i * s->block_size, s->block_size, v->arg);
}

void sc_heap_visit(sc_heap_t *heap, sc_visit_fn *fn, void *arg)
{
    if (!heap_check_live(heap, "sc_heap_visit") || fn == NULL)
        return;
    /* One bit per block of the fullest span (16-byte blocks). */
    size_t bytes = (SPAN_SIZE / 16 / 8 + 4095) & ~(size_t)4095;
    uint64_t *bits = meta_alloc(bytes);
    if (bits == NULL)
        return;
    struct visit_state v = {fn, arg, bits, 0};
    arena_for_each_span(heap, visit_span, &v);
    meta_free(bits, bytes);
}
