/*
 * Randomized sequences against a shadow model, over the whole of scalloc.h's
 * "Allocation" (sc_alloc, sc_thread_alloc, sc_calloc, sc_aligned_alloc,
 * sc_realloc, sc_free, sc_thread_free, sc_usable_size, sc_heap_owns,
 * sc_heap_of; sizes 0 to 64 MiB, alignments, realloc chains) and
 * "Introspection" (sc_heap_get_stats, sc_heap_visit) checked after every
 * step. The variant with frees from other threads is test_mt_model.c.
 *
 * The model is a table of slots, each either empty or holding one live block
 * with the size the caller asked for, the alignment it asked for and the key
 * its bytes were written with. Every step picks a slot and an operation
 * (sc_alloc, sc_thread_alloc, sc_calloc, sc_aligned_alloc, sc_realloc,
 * sc_free, sc_thread_free) from a seeded generator, so a failure names a
 * seed and a step that replay exactly.
 *
 * Contract lines checked here:
 *  - after every step, the block the step touched: holds what was written
 *    (after sc_realloc: the old bytes up to the smaller size), is zero after
 *    sc_calloc, sc_usable_size >= the request, alignment as asked (16 when
 *    none), sc_heap_owns / sc_heap_of name this heap for its first and last
 *    byte and the other heap does not own it                       [sequences]
 *  - sc_realloc stays in place within the same size class and when a huge
 *    block shrinks (and stays huge); contents survive every move
 *                                                                  [sequences]
 *  - periodically, for the whole model: every block intact, blocks never
 *    overlap, stats live_blocks / live_bytes equal the model, per-class
 *    live counts plus huge blocks add up, and sc_heap_visit reports
 *    exactly the model's blocks with their usable sizes            [sequences]
 *  - impossible requests inside the sequence (realloc / aligned alloc far
 *    beyond memory) return NULL/ENOMEM and leave the model intact  [sequences]
 *  - a heap emptied by the sequence has no live blocks and destroys cleanly
 *                                                                  [sequences]
 *  - in a tracking heap (SC_HEAP_TRACK_REQUESTED, and in a checked heap),
 *    stats requested_bytes equals the sum of the model's requests, through
 *    callocs, aligned allocations and reallocs in place; in a plain heap
 *    it is between that sum and live_bytes, and says it is not exact
 *                                                        [tracked_*, checked_*]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "invariants.h"
#include "test_util.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

enum {
    SLOTS = 160,
    /* Whole-model verification every this many steps (and at the end). */
    VERIFY_EVERY = 50,
    /* sc_heap_visit cross-check every this many steps. */
    VISIT_EVERY = 400,
};

/* Keeps the model's footprint bounded whatever the generator draws: a huge
 * request that would take the live total past this is redrawn small. */
#define LIVE_CAP ((size_t)448 << 20)
#define MODEL_MAX_SIZE ((size_t)64 << 20)

typedef struct slot_s {
    unsigned char *p;
    size_t n;      /* requested bytes */
    size_t align;  /* alignment asked for; 16 for plain allocations */
    uint64_t key;  /* pattern key of the bytes written */
    int zeroed;    /* from sc_calloc and not written since: all zero */
} slot_t;

typedef struct model_s {
    sc_heap_t *heap;
    sc_heap_t *other; /* a second heap, which must never own our blocks */
    sc_thread_t *frontend;
    slot_t slots[SLOTS];
    size_t live;
    size_t live_requested;
    test_rng_t rng;
    uint64_t seed;
    unsigned flags; /* the heap's SC_HEAP_* flags */
    unsigned long step;
    uint64_t next_key;
    /* What the sequence exercised, so a run that never reached a case is
     * visible in the log (and asserted for the essentials). */
    unsigned long in_place_class, in_place_huge, moved, huge_allocs, big_aligned, callocs,
        enomem;
} model_t;

/* ------------------------------------------------------------------------ */
/* Block contents                                                           */
/* ------------------------------------------------------------------------ */

/* The bytes a block of n bytes is written with: all of the first 1 KiB,
 * then one byte every 512 (every page is touched, so RSS is real), then
 * the last 256. Sparse enough that 64 MiB blocks stay cheap; the offsets
 * depend only on n, so after a resize the old offsets below the new size
 * are exactly what must have survived. */
#define DENSE_PREFIX 1024u
#define STRIDE 512u
#define DENSE_SUFFIX 256u

typedef int offset_fn(size_t off, void *arg);

/* Calls fn for every written offset of a block of n bytes below `limit`;
 * stops early and returns the offset if fn returns non-zero. */
static size_t for_each_offset(size_t n, size_t limit, offset_fn *fn, void *arg)
{
    if (limit > n)
        limit = n;
    size_t i = 0;
    for (; i < limit && i < DENSE_PREFIX; i++)
        if (fn(i, arg))
            return i;
    size_t tail = n > DENSE_SUFFIX ? n - DENSE_SUFFIX : 0;
    for (; i < limit && i < tail; i += STRIDE)
        if (fn(i, arg))
            return i;
    for (i = tail > i ? tail : i; i < limit; i++)
        if (fn(i, arg))
            return i;
    return TEST_PATTERN_OK;
}

typedef struct pattern_arg_s {
    unsigned char *p;
    uint64_t key;
} pattern_arg_t;

static int write_one(size_t off, void *arg)
{
    pattern_arg_t *a = arg;
    a->p[off] = test_pattern_byte(a->key, off);
    return 0;
}

static int differs(size_t off, void *arg)
{
    pattern_arg_t *a = arg;
    return a->p[off] != test_pattern_byte(a->key, off);
}

static void block_write(unsigned char *p, size_t n, uint64_t key)
{
    pattern_arg_t a = {p, key};
    for_each_offset(n, n, write_one, &a);
}

/* Offset of the first written byte below `limit` that is wrong, or
 * TEST_PATTERN_OK. */
static size_t block_check(const unsigned char *p, size_t n, uint64_t key, size_t limit)
{
    pattern_arg_t a = {(unsigned char *)p, key};
    return for_each_offset(n, limit, differs, &a);
}

/* Offset of the first non-zero byte of p[0..n), or TEST_PATTERN_OK. Reads
 * every byte: a calloc that skipped clearing some page must show. */
static size_t zero_check(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i < n && ((uintptr_t)(p + i) & 7); i++)
        if (p[i])
            return i;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) {
            for (size_t k = i; k < i + 8; k++)
                if (p[k])
                    return k;
        }
    }
    for (; i < n; i++)
        if (p[i])
            return i;
    return TEST_PATTERN_OK;
}

/* ------------------------------------------------------------------------ */
/* The generator                                                            */
/* ------------------------------------------------------------------------ */

/* Sizes where the allocator changes behaviour: class edges, the huge
 * threshold, span multiples. */
static const size_t edge_sizes[] = {
    0,           1,           15,          16,          17,         255,
    256,         257,         1024,        1025,        4096,       65536,
    65537,       MiB - 1,     MiB,         MiB + 1,     2 * MiB - 128,
    2 * MiB,     2 * MiB + 1, 4 * MiB,     64 * MiB,
};

static size_t pick_size(model_t *m)
{
    test_rng_t *r = &m->rng;
    unsigned pick = (unsigned)(test_rng_next(r) % 1000);
    size_t n;
    if (pick < 40)
        n = edge_sizes[test_rng_next(r) % (sizeof edge_sizes / sizeof edge_sizes[0])];
    else if (pick < 600)
        n = test_rng_range(r, 0, 256);
    else if (pick < 800)
        n = test_rng_range(r, 257, 4096);
    else if (pick < 900)
        n = test_rng_range(r, 4097, 65536);
    else if (pick < 955)
        n = test_rng_range(r, 65537, SC_MAX_CLASS_SIZE);
    else if (pick < 993)
        n = test_rng_range(r, SC_MAX_CLASS_SIZE + 1, 8 * MiB);
    else
        n = test_rng_range(r, 8 * MiB, MODEL_MAX_SIZE);
    /* Stay under the cap: redraw small instead. */
    if (n > MiB && m->live_requested + n > LIVE_CAP)
        n = test_rng_range(r, 0, 4096);
    return n;
}

/* Mostly ordinary alignments, some within a span, a few far beyond it
 * (up to 1 GiB: address space only, the block itself stays small). */
static size_t pick_alignment(model_t *m)
{
    test_rng_t *r = &m->rng;
    unsigned pick = (unsigned)(test_rng_next(r) % 1000);
    unsigned shift;
    if (pick < 50)
        shift = (unsigned)test_rng_range(r, 0, 3); /* 1..8: any power of two */
    else if (pick < 800)
        shift = (unsigned)test_rng_range(r, 4, 12); /* 16..4096 */
    else if (pick < 985)
        shift = (unsigned)test_rng_range(r, 13, 21); /* 8 KiB..2 MiB */
    else
        shift = (unsigned)test_rng_range(r, 22, 30); /* 4 MiB..1 GiB */
    return (size_t)1 << shift;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */
/* ------------------------------------------------------------------------ */

#define MODEL_ASSERT(m, cond, fmt, ...)                                                        \
    cr_assert(cond, "seed %llu step %lu: " fmt, (unsigned long long)(m)->seed, (m)->step,      \
              __VA_ARGS__)

/* The usable size a fresh block of n bytes gets: its class's block size
 * (or the huge rounding). Asked of the heap itself with a probe block, so
 * the test knows which requests share a class without knowing the table. */
static size_t probe_usable(model_t *m, size_t n)
{
    void *q = sc_alloc(m->heap, n);
    MODEL_ASSERT(m, q != NULL, "probe sc_alloc(%zu) failed", n);
    size_t u = sc_usable_size(m->heap, q);
    sc_free(m->heap, q);
    return u;
}

/* Whether the block in s is a huge block: above the largest class, or
 * placed at an alignment no class block can have (more than the span
 * header puts blocks at, i.e. beyond 128 bytes). Decided from the
 * request, so a wrong usable size cannot hide a wrong answer. */
static int slot_is_huge(const slot_t *s, size_t usable)
{
    return usable > SC_MAX_CLASS_SIZE || s->align > 128;
}

/* Everything one live block must satisfy right now. */
static void check_slot(model_t *m, size_t i, const char *what)
{
    slot_t *s = &m->slots[i];
    MODEL_ASSERT(m, s->p != NULL, "%s: slot %zu empty", what, i);
    size_t usable = sc_usable_size(m->heap, s->p);
    MODEL_ASSERT(m, usable >= s->n, "%s: slot %zu: usable %zu < requested %zu", what, i, usable,
                 s->n);
    size_t align = s->align < 16 ? 16 : s->align;
    MODEL_ASSERT(m, (uintptr_t)s->p % align == 0, "%s: slot %zu: %p not aligned to %zu", what, i,
                 (void *)s->p, align);
    MODEL_ASSERT(m, sc_heap_owns(m->heap, s->p), "%s: slot %zu: heap does not own %p", what, i,
                 (void *)s->p);
    MODEL_ASSERT(m, sc_heap_of(s->p) == m->heap, "%s: slot %zu: sc_heap_of(%p) = %p, not %p",
                 what, i, (void *)s->p, (void *)sc_heap_of(s->p), (void *)m->heap);
    MODEL_ASSERT(m, !sc_heap_owns(m->other, s->p), "%s: slot %zu: other heap owns %p", what, i,
                 (void *)s->p);
    if (s->n > 0) {
        unsigned char *last = s->p + s->n - 1;
        MODEL_ASSERT(m, sc_heap_of(last) == m->heap,
                     "%s: slot %zu: last byte %p of a %zu-byte block attributed to %p", what, i,
                     (void *)last, s->n, (void *)sc_heap_of(last));
        MODEL_ASSERT(m, sc_heap_owns(m->heap, last), "%s: slot %zu: heap does not own last byte",
                     what, i);
    }
    size_t bad = s->zeroed ? zero_check(s->p, s->n) : block_check(s->p, s->n, s->key, s->n);
    MODEL_ASSERT(m, bad == TEST_PATTERN_OK, "%s: slot %zu (%p, %zu bytes, align %zu%s): byte %zu wrong",
                 what, i, (void *)s->p, s->n, s->align, s->zeroed ? ", calloc" : "", bad);
}

typedef struct span_of_s {
    uintptr_t start;
    size_t usable;
} extent_t;

static int extent_cmp(const void *a, const void *b)
{
    uintptr_t x = ((const extent_t *)a)->start, y = ((const extent_t *)b)->start;
    return x < y ? -1 : x > y;
}

typedef struct visit_state_s {
    extent_t *sorted;
    size_t count;
    size_t visited;
    size_t unknown;
    size_t wrong_size;
} visit_state_t;

static int visit_one(void *block, size_t usable, void *arg)
{
    visit_state_t *v = arg;
    v->visited++;
    extent_t key = {(uintptr_t)block, 0};
    extent_t *e = bsearch(&key, v->sorted, v->count, sizeof *e, extent_cmp);
    if (e == NULL)
        v->unknown++;
    else if (e->usable != usable)
        v->wrong_size++;
    return 0;
}

/* The whole model against the heap. */
static void verify_model(model_t *m, int visit)
{
    static extent_t ext[SLOTS];
    size_t count = 0, usable_total = 0, huge_at_least = 0, huge_at_most = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        slot_t *s = &m->slots[i];
        if (s->p == NULL)
            continue;
        check_slot(m, i, "verify");
        size_t u = sc_usable_size(m->heap, s->p);
        ext[count++] = (extent_t){(uintptr_t)s->p, u};
        usable_total += u;
        huge_at_least += u > SC_MAX_CLASS_SIZE;
        huge_at_most += slot_is_huge(s, u);
    }
    MODEL_ASSERT(m, count == m->live, "model count %zu != %zu", count, m->live);
    qsort(ext, count, sizeof ext[0], extent_cmp);
    for (size_t i = 1; i < count; i++)
        MODEL_ASSERT(m, ext[i - 1].start + ext[i - 1].usable <= ext[i].start,
                     "blocks overlap: %#lx+%zu and %#lx", (unsigned long)ext[i - 1].start,
                     ext[i - 1].usable, (unsigned long)ext[i].start);

    sc_heap_stats_t st = test_stats(m->heap);
    MODEL_ASSERT(m, st.live_blocks == count, "stats live_blocks %zu, model %zu", st.live_blocks,
                 count);
    /* Span by span, every list and count (lib/invariants.h). */
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(m->heap, &bad);
    MODEL_ASSERT(m, broken == NULL, "span %p: %s", (void *)bad, broken);
    MODEL_ASSERT(m, st.live_bytes == usable_total,
                 "stats live_bytes %zu, sum of usable sizes %zu", st.live_bytes, usable_total);
    MODEL_ASSERT(m, st.huge_blocks >= huge_at_least && st.huge_blocks <= huge_at_most,
                 "stats huge_blocks %zu, expected %zu..%zu", st.huge_blocks, huge_at_least,
                 huge_at_most);
    size_t class_live = 0;
    for (unsigned c = 0; c < SC_NUM_CLASSES; c++)
        class_live += st.classes[c].live_blocks;
    MODEL_ASSERT(m, class_live + st.huge_blocks == st.live_blocks,
                 "per-class live %zu + huge %zu != live %zu", class_live, st.huge_blocks,
                 st.live_blocks);
    if (m->flags & (SC_HEAP_TRACK_REQUESTED | SC_HEAP_CHECKED)) {
        MODEL_ASSERT(m, st.requested_exact && st.requested_bytes == m->live_requested,
                     "stats requested_bytes %zu (exact %d), model %zu", st.requested_bytes,
                     st.requested_exact, m->live_requested);
    } else {
        MODEL_ASSERT(m, !st.requested_exact && st.requested_bytes >= m->live_requested &&
                            st.requested_bytes <= st.live_bytes,
                     "stats requested_bytes %zu (exact %d), model %zu, live %zu",
                     st.requested_bytes, st.requested_exact, m->live_requested, st.live_bytes);
    }
    MODEL_ASSERT(m, st.committed_bytes >= st.live_bytes - st.huge_bytes,
                 "committed %zu < live class bytes %zu", st.committed_bytes,
                 st.live_bytes - st.huge_bytes);

    if (visit) {
        visit_state_t v = {ext, count, 0, 0, 0};
        sc_heap_visit(m->heap, visit_one, &v);
        MODEL_ASSERT(m, v.visited == count && v.unknown == 0 && v.wrong_size == 0,
                     "sc_heap_visit: %zu blocks (model %zu), %zu unknown, %zu with wrong size",
                     v.visited, count, v.unknown, v.wrong_size);
    }
}

/* ------------------------------------------------------------------------ */
/* Steps                                                                    */
/* ------------------------------------------------------------------------ */

static void fill_slot(model_t *m, size_t i, unsigned char *p, size_t n, size_t align)
{
    slot_t *s = &m->slots[i];
    s->p = p;
    s->n = n;
    s->align = align;
    s->key = m->next_key++;
    s->zeroed = 0;
    block_write(p, n, s->key);
}

static void step_allocate(model_t *m, size_t i)
{
    test_rng_t *r = &m->rng;
    size_t n = pick_size(m);
    unsigned kind = (unsigned)(test_rng_next(r) % 10);
    unsigned char *p;
    size_t align = 16;
    errno = 0;
    if (kind < 4) {
        p = sc_alloc(m->heap, n);
    } else if (kind < 6) {
        p = sc_thread_alloc(m->frontend, n);
    } else if (kind < 7) {
        p = sc_realloc(m->heap, NULL, n);
    } else if (kind < 8) {
        /* count * size split at a random divisor-ish point. */
        size_t count = n ? test_rng_range(r, 1, n < 64 ? n : 64) : 0;
        size_t size = count ? n / count : test_rng_range(r, 0, 100);
        n = count * size;
        p = sc_calloc(m->heap, count, size);
        MODEL_ASSERT(m, p != NULL, "sc_calloc(%zu, %zu) failed, errno %d", count, size, errno);
        slot_t *s = &m->slots[i];
        *s = (slot_t){.p = p, .n = n, .align = 16, .key = 0, .zeroed = 1};
        m->live++;
        m->live_requested += n;
        m->callocs++;
        check_slot(m, i, "sc_calloc");
        /* Then written like any other block, so later reuse of its memory
         * is dirty. */
        fill_slot(m, i, p, n, 16);
        return;
    } else {
        align = pick_alignment(m);
        /* Big alignments with small sizes: the address space is what is
         * exercised, and huge blocks are costly to touch. */
        if (align >= 4 * MiB && n > 4 * MiB)
            n = test_rng_range(r, 0, 4 * MiB);
        p = sc_aligned_alloc(m->heap, align, n);
        MODEL_ASSERT(m, p != NULL, "sc_aligned_alloc(%zu, %zu) failed, errno %d", align, n,
                     errno);
        m->big_aligned += align > SC_MAX_CLASS_SIZE;
    }
    MODEL_ASSERT(m, p != NULL, "allocation of %zu bytes (kind %u) failed, errno %d", n, kind,
                 errno);
    m->huge_allocs += n > SC_MAX_CLASS_SIZE;
    fill_slot(m, i, p, n, align);
    m->live++;
    m->live_requested += n;
    check_slot(m, i, "allocate");
}

static void step_free(model_t *m, size_t i)
{
    slot_t *s = &m->slots[i];
    check_slot(m, i, "before free");
    if (test_rng_next(&m->rng) % 2)
        sc_free(m->heap, s->p);
    else
        sc_thread_free(m->frontend, s->p);
    m->live--;
    m->live_requested -= s->n;
    *s = (slot_t){0};
}

static void step_realloc(model_t *m, size_t i)
{
    slot_t *s = &m->slots[i];
    test_rng_t *r = &m->rng;
    check_slot(m, i, "before realloc");
    size_t old_n = s->n;
    size_t old_usable = sc_usable_size(m->heap, s->p);
    int huge = slot_is_huge(s, old_usable);
    unsigned pick = (unsigned)(test_rng_next(r) % 100);
    size_t n;
    if (pick < 25 && !huge) {
        /* Within the block: somewhere in [old_usable / 2, old_usable]. */
        n = test_rng_range(r, old_usable / 2, old_usable);
    } else if (pick < 35 && huge && old_n > SC_MAX_CLASS_SIZE + 1) {
        /* Huge shrink that stays huge. */
        n = test_rng_range(r, SC_MAX_CLASS_SIZE + 1, old_n);
    } else if (pick < 40) {
        /* Grow by a little: often the same class or the same huge run. */
        n = old_n + test_rng_range(r, 0, old_n / 8 + 16);
        if (n > MODEL_MAX_SIZE)
            n = MODEL_MAX_SIZE;
    } else if (pick < 42) {
        /* Impossible: must fail and leave the block alone. */
        errno = 0;
        size_t huge_n = test_rng_next(r) % 2 ? SIZE_MAX - 4096 : (size_t)1 << 62;
        void *q = sc_realloc(m->heap, s->p, huge_n);
        MODEL_ASSERT(m, q == NULL && errno == ENOMEM,
                     "sc_realloc(%p, %zu) = %p, errno %d; expected NULL/ENOMEM", (void *)s->p,
                     huge_n, q, errno);
        m->enomem++;
        check_slot(m, i, "after failed realloc");
        return;
    } else if (pick < 44) {
        n = 0;
    } else {
        n = pick_size(m);
    }
    if (n > old_n && n > MiB && m->live_requested - old_n + n > LIVE_CAP)
        n = old_n;

    /* The contract's in-place cases, decided before the call. */
    int expect_same = 0;
    if (n > 0 && n <= old_usable) {
        if (huge && n > SC_MAX_CLASS_SIZE)
            expect_same = 1; /* huge shrink that stays huge */
        else if (!huge && probe_usable(m, n) == old_usable)
            expect_same = 1; /* same size class */
    }

    unsigned char *old_p = s->p;
    uint64_t old_key = s->key;
    int old_zeroed = s->zeroed;
    errno = 0;
    unsigned char *q = sc_realloc(m->heap, s->p, n);
    MODEL_ASSERT(m, q != NULL, "sc_realloc(%p, %zu -> %zu) failed, errno %d", (void *)old_p,
                 old_n, n, errno);
    if (expect_same)
        MODEL_ASSERT(m, q == old_p,
                     "sc_realloc(%p, %zu -> %zu) moved to %p although it fits the %s block of "
                     "%zu usable bytes",
                     (void *)old_p, old_n, n, (void *)q, huge ? "huge" : "class", old_usable);
    if (q == old_p) {
        if (huge && n > SC_MAX_CLASS_SIZE)
            m->in_place_huge++;
        else
            m->in_place_class++;
    } else {
        m->moved++;
    }
    size_t keep = old_n < n ? old_n : n;
    size_t bad = old_zeroed ? zero_check(q, keep) : block_check(q, old_n, old_key, keep);
    MODEL_ASSERT(m, bad == TEST_PATTERN_OK,
                 "sc_realloc(%p -> %p, %zu -> %zu bytes): byte %zu of the kept %zu lost",
                 (void *)old_p, (void *)q, old_n, n, bad, keep);
    m->live_requested += n - old_n;
    /* A moved block promises 16-byte alignment only; one resized in place
     * keeps the alignment (and, if huge for it, stays huge). */
    fill_slot(m, i, q, n, q == old_p ? s->align : 16);
    if (q != old_p || n != old_n)
        m->huge_allocs += n > SC_MAX_CLASS_SIZE;
    check_slot(m, i, "after realloc");
}

/* An aligned allocation far beyond what any region holds must fail with
 * ENOMEM (valid alignment, impossible size). */
static void step_impossible(model_t *m)
{
    errno = 0;
    void *p = sc_aligned_alloc(m->heap, 64, SIZE_MAX / 2);
    MODEL_ASSERT(m, p == NULL && errno == ENOMEM, "sc_aligned_alloc(64, SIZE_MAX/2) = %p errno %d",
                 p, errno);
    errno = 0;
    p = sc_alloc(m->heap, SIZE_MAX - 64);
    MODEL_ASSERT(m, p == NULL && errno == ENOMEM, "sc_alloc(SIZE_MAX - 64) = %p errno %d", p,
                 errno);
    m->enomem++;
}

static void run_sequence(uint64_t seed, unsigned long steps, unsigned flags)
{
    static model_t m;
    memset(&m, 0, sizeof m);
    m.seed = seed;
    m.rng.state = seed;
    m.next_key = seed << 32;
    m.flags = flags;
    sc_heap_config_t cfg = {.name = "model", .flags = flags};
    m.heap = sc_heap_create(&cfg);
    cr_assert_not_null(m.heap);
    sc_heap_config_t other_cfg = {.name = "model-other"};
    m.other = sc_heap_create(&other_cfg);
    cr_assert_not_null(m.other);
    /* The other heap holds blocks too, so its regions exist around ours. */
    void *other_blocks[4] = {sc_alloc(m.other, 64), sc_alloc(m.other, 5000),
                             sc_alloc(m.other, 300000), sc_alloc(m.other, 3 * MiB)};
    for (int k = 0; k < 4; k++)
        cr_assert_not_null(other_blocks[k]);
    m.frontend = sc_heap_thread(m.heap);
    cr_assert_not_null(m.frontend);

    for (m.step = 0; m.step < steps; m.step++) {
        size_t i = (size_t)(test_rng_next(&m.rng) % SLOTS);
        unsigned pick = (unsigned)(test_rng_next(&m.rng) % 100);
        if (m.slots[i].p == NULL)
            step_allocate(&m, i);
        else if (pick < 35)
            step_realloc(&m, i);
        else if (pick < 99)
            step_free(&m, i);
        else
            step_impossible(&m);
        /* The other heap's blocks are none of ours, whatever happened. */
        for (int k = 0; k < 4; k++)
            MODEL_ASSERT(&m, !sc_heap_owns(m.heap, other_blocks[k]),
                         "heap owns the other heap's block %d", k);
        if (m.step % VERIFY_EVERY == VERIFY_EVERY - 1)
            verify_model(&m, m.step % VISIT_EVERY == VISIT_EVERY - 1);
    }
    verify_model(&m, 1);
    cr_log_info("seed %llu: %lu steps, %zu live at the end; realloc in place %lu (huge %lu), "
                "moved %lu; huge allocations %lu, alignments above 1 MiB %lu, callocs %lu, "
                "ENOMEM cases %lu",
                (unsigned long long)seed, steps, m.live, m.in_place_class, m.in_place_huge,
                m.moved, m.huge_allocs, m.big_aligned, m.callocs, m.enomem);
    /* A sequence that never reached the interesting cases proves little. */
    cr_assert_gt(m.in_place_class, 0, "seed %llu: no class realloc stayed in place",
                 (unsigned long long)seed);
    cr_assert_gt(m.in_place_huge, 0, "seed %llu: no huge realloc stayed in place",
                 (unsigned long long)seed);
    cr_assert_gt(m.huge_allocs, 0);
    cr_assert_gt(m.big_aligned, 0);

    /* Empty the model in a shuffled order; the heap must end empty. */
    for (size_t k = 0; k < SLOTS; k++) {
        size_t i = (size_t)(test_rng_next(&m.rng) % SLOTS);
        if (m.slots[i].p)
            step_free(&m, i);
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (m.slots[i].p)
            step_free(&m, i);
    verify_model(&m, 1);
    sc_heap_stats_t st = test_stats(m.heap);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_eq(st.huge_blocks, 0);
    cr_assert_eq(st.huge_bytes, 0);
    cr_assert_eq(st.requested_bytes, 0);
    for (int k = 0; k < 4; k++)
        sc_free(m.other, other_blocks[k]);
    sc_heap_destroy(m.heap);
    sc_heap_destroy(m.other);
}

/* Fewer steps under sanitizers and valgrind; the seeds stay the same. */
static unsigned long sequence_steps(void)
{
#if defined(SCALLOC_SANITIZE_ADDRESS) || defined(SCALLOC_SANITIZE_THREAD)
    return test_scaled(1500, 400);
#else
    return test_scaled(8000, 400);
#endif
}

Test(model, sequence_seed_1, .timeout = 240)
{
    run_sequence(1, sequence_steps(), 0);
}

Test(model, sequence_seed_2, .timeout = 240)
{
    run_sequence(0x5ca110c5ull, sequence_steps(), 0);
}

Test(model, sequence_seed_3, .timeout = 240)
{
    run_sequence(20240601, sequence_steps(), 0);
}

Test(model, sequence_seed_4, .timeout = 240)
{
    run_sequence(0xdeadbeefcafef00dull, sequence_steps(), 0);
}

/* The same sequences in a tracking heap and in a checked one: requested
 * bytes exact after every verification. */
Test(model, tracked_seed_1, .timeout = 240)
{
    run_sequence(1, sequence_steps(), SC_HEAP_TRACK_REQUESTED);
}

Test(model, tracked_seed_2, .timeout = 240)
{
    run_sequence(0x5ca110c5ull, sequence_steps(), SC_HEAP_TRACK_REQUESTED);
}

Test(model, checked_seed_3, .timeout = 240)
{
    run_sequence(20240601, sequence_steps(), SC_HEAP_CHECKED);
}
