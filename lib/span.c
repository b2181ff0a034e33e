/* Span header setup and the span life cycle (span.h, types.h). */
#include "span.h"

#include "annotate.h"
#include "arena.h"
#include "check.h"
#include "frontend.h"
#include "os.h"
#include "requested.h"
#include "size_class.h"
#include "span_pool.h"
#include "span_stack.h"

/* bump == bump_end and free == NULL: allocation from it always falls to
 * the slow path, which replaces it. */
span_t span_empty;

/* Real span size per class: small classes get 32 KiB (~2,000 blocks of
 * 16 B: few span changes, little memory per thread and class); bigger ones
 * at least 8 blocks, up to the whole 2 MiB span. */
#define REAL_SPAN_MIN ((size_t)32 << 10)
#define REAL_SPAN_MIN_BLOCKS 8

/* A span's real span is committed (made read-write and charged to the
 * heap's limit) in steps of this many bytes as carving reaches it, so a
 * class with 1 MiB real spans does not charge 1 MiB for its first block. */
#define COMMIT_STEP ((size_t)64 << 10)

/* Carving hands out at most this many bytes of new blocks at a time, so a
 * fresh span's pages are touched as they are needed, not all at once. */
#define CARVE_BYTES ((size_t)4096)

/* Bytes a span of cap blocks of bs bytes keeps between its header and its
 * first block: the checked-mode bitmap and the requested-size table (each a
 * multiple of 8), rounded up to SPAN_HEADER_SIZE so that blocks keep the
 * alignment aligned allocation relies on. At most a few KiB (16-byte blocks
 * in a 32 KiB real span: 2 KiB of table), so the metadata lies in the first
 * commit step and the rest of the real span is committed as carving
 * reaches it, as in a plain heap. */
static size_t span_meta_bytes(const struct sc_heap_s *heap, size_t bs, uint32_t cap)
{
    size_t bytes = 0;
    if (check_enabled(heap))
        bytes += check_bitmap_bytes(cap);
    if (requested_enabled(heap))
        bytes += requested_table_bytes(bs, cap);
    return (bytes + SPAN_HEADER_SIZE - 1) & ~(SPAN_HEADER_SIZE - 1);
}

static uint32_t class_capacity(const struct sc_heap_s *heap, size_t bs)
{
    size_t target = REAL_SPAN_MIN;
    if (bs * REAL_SPAN_MIN_BLOCKS > target)
        target = bs * REAL_SPAN_MIN_BLOCKS;
    if (target > SPAN_SIZE)
        target = SPAN_SIZE;
    size_t cap = (target - SPAN_HEADER_SIZE) / bs;
    /* What a checked or tracking span keeps before its blocks must fit. */
    while (cap > 1 && SPAN_HEADER_SIZE + span_meta_bytes(heap, bs, (uint32_t)cap) + cap * bs > SPAN_SIZE)
        cap--;
    return (uint32_t)(cap ? cap : 1);
}

bool span_init_blocks(span_t *s, struct sc_heap_s *heap, unsigned cls)
{
    size_t bs = size_class_block_size(cls);
    bool checked = check_enabled(heap);
    uint32_t cap = class_capacity(heap, bs);
    size_t page = os_page_size();
    size_t first = SPAN_HEADER_SIZE + span_meta_bytes(heap, bs, cap);
    size_t real = (first + (size_t)cap * bs + page - 1) & ~(page - 1);
    /* The first step (metadata and first block included); carving commits
     * the rest as it goes. */
    size_t need = (first + bs + COMMIT_STEP - 1) & ~(COMMIT_STEP - 1);
    if (need > real)
        need = real;
    if (s->committed > real && s->committed > need) {
        /* A warm span from the pool that served a bigger class: what this
         * class will never touch goes back, so committed stays exact. */
        arena_give_back(heap, s, real > need ? real : need);
    }
    if (!arena_commit(heap, s, need))
        return false;
    s->free = NULL;
    span_set_bump(s, (char *)s + first);
    counter_set(&s->carved, 0);
    counter_set(&s->used, 0);
    s->bump_end = (char *)s + first + (size_t)cap * bs;
    s->block_size = (uint32_t)bs;
    span_set_capacity(s, cap);
    s->divide_magic = UINT64_MAX / bs + 1;
    s->divide_limit = s->divide_magic - 1;
    uint64_t reuse = ((uint64_t)cap * heap->reuse_threshold + 99) / 100;
    s->reuse_count = (uint32_t)(reuse ? reuse : 1);
    span_set_class(s, (uint16_t)cls);
    span_set_kind(s, SPAN_KIND_BLOCKS);
    s->heap = heap;
    if (checked)
        check_span_init(s);
    if (requested_enabled(heap))
        requested_span_init(s);
    atomic_store_explicit(&s->remote, remote_word(SPAN_HOT, s, NULL, 0), memory_order_release);
    return true;
}

enum carve_result span_carve(span_t *s)
{
    char *p = span_bump(s);
    if (p >= s->bump_end)
        return CARVE_FULL;
    size_t bs = s->block_size;
    size_t n = CARVE_BYTES / bs;
    if (n == 0)
        n = 1;
    size_t left = (size_t)(s->bump_end - p) / bs;
    if (n > left)
        n = left;
    size_t end = (size_t)(p + n * bs - (char *)s);
    if (end > s->committed) {
        /* Commit the next step (never past the real span); at the heap's
         * limit, carve only what is committed already, if anything. */
        size_t page = os_page_size();
        size_t real = ((size_t)(s->bump_end - (char *)s) + page - 1) & ~(page - 1);
        size_t want = (end + COMMIT_STEP - 1) & ~(COMMIT_STEP - 1);
        if (want > real)
            want = real;
        if (!arena_commit(s->heap, s, want)) {
            size_t fits = s->committed > (size_t)(p - (char *)s)
                              ? (s->committed - (size_t)(p - (char *)s)) / bs
                              : 0;
            if (fits == 0)
                return CARVE_NO_COMMIT;
            n = fits;
        }
    }
    /* Link the batch in address order so allocation walks memory forward.
     * Never-used blocks are off limits to the caller until handed out. */
    block_t *first = (block_t *)p;
    annotate_no_access(p, n * bs);
    for (size_t i = 0; i + 1 < n; i++)
        block_set_next((block_t *)(p + i * bs), (block_t *)(p + (i + 1) * bs));
    block_set_next((block_t *)(p + (n - 1) * bs), s->free);
    s->free = first;
    span_set_bump(s, p + n * bs);
    counter_set(&s->carved, (uint32_t)(p + n * bs - span_first_block(s)));
    return CARVE_OK;
}

bool span_take_remote(span_t *s, uint32_t min_count)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_relaxed);
    for (;;) {
        if (remote_count(w) < min_count || remote_count(w) == 0)
            return false;
        /* acquire: the freers' writes of the blocks' next links (made
         * before their release CAS) are visible before we walk the list. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w,
                                                  remote_word(SPAN_HOT, s, NULL, 0),
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            break;
    }
    block_t *head = remote_head(s, w);
    counter_set(&s->used, counter_get(&s->used) - remote_count(w));
    if (s->free) {
        const block_t *tail;
        span_list_length(s->free, &tail);
        block_set_next((block_t *)tail, head);
    } else {
        s->free = head;
    }
    return true;
}

uint32_t span_list_length(const block_t *b, const block_t **tail)
{
    uint32_t n = 0;
    const block_t *last = NULL;
    for (; b; b = block_next((block_t *)b)) {
        last = b;
        n++;
    }
    if (tail)
        *tail = last;
    return n;
}

/* The state a non-hot span moves to when its free count becomes `count`. */
static unsigned settled_state(const span_t *s, unsigned state, uint32_t count)
{
    if (state == SPAN_DETACHED) {
        if (count == span_capacity(s))
            return SPAN_POOLED;
        if (count >= s->reuse_count)
            return SPAN_REUSABLE;
    } else if (state == SPAN_REUSABLE && count == span_capacity(s)) {
        return SPAN_RELEASING;
    }
    return state;
}

/* The thread whose free drained an owned floating span gives its pages
 * back. It may touch nothing else of the span: the header belongs to the
 * owner, which pools the span when it next looks. rw_bytes does not change
 * while the span floats. */
static void span_drain(span_t *s)
{
    size_t page = os_page_size();
    if (s->rw_bytes > page)
        os_release((char *)s + page, s->rw_bytes - page);
}

/* Completes a transition made by CAS: puts the span where its new state
 * says. Called by the one thread whose CAS made the transition. */
static void span_settle(span_t *s, unsigned from, unsigned to, unsigned pool_slot)
{
    if (from == to)
        return;
    struct sc_heap_s *heap = s->heap;
    switch (to) {
    case SPAN_DRAINING: {
        /* Until DRAINED is set the owner leaves the span alone, so the
         * pages go back before anyone can reuse them. */
        span_drain(s);
        /* acquire (load and failed CAS): an ORPHANED mark hands us the span
         * with everything its owner wrote to it before letting go. */
        uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
        for (;;) {
            if (remote_state(w) == SPAN_ORPHANED) {
                span_pool_put(heap, s, pool_slot); /* the owner exited */
                return;
            }
            /* release: the owner that sees DRAINED sees the pages gone. */
            if (atomic_compare_exchange_weak_explicit(
                    &s->remote, &w, (w & ~REMOTE_STATE_MASK) | SPAN_DRAINED,
                    memory_order_release, memory_order_acquire))
                return;
        }
    }
    case SPAN_POOLED:
        span_pool_put(heap, s, pool_slot);
        break;
    case SPAN_REUSABLE:
        span_stack_push(&heap->reusable[span_class(s)], s);
        break;
    case SPAN_RELEASING: {
        /* The span is on the reusable stack, where a popper may find it at
         * any time; it only looks at the state word, so releasing the
         * memory here is safe. Then hand it over: EMPTY if it is still on
         * the stack, or to the pool if a popper already dropped it. */
        span_release(s);
        /* acquire: as for DRAINING above, an ORPHANED mark hands the span
         * over with what the popper wrote. */
        uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
        for (;;) {
            unsigned st = remote_state(w);
            if (st == SPAN_ORPHANED) {
                span_pool_put(heap, s, pool_slot);
                return;
            }
            /* release: the popper that sees EMPTY sees a released span. */
            if (atomic_compare_exchange_weak_explicit(
                    &s->remote, &w, remote_word(SPAN_EMPTY, s, NULL, span_capacity(s)),
                    memory_order_release, memory_order_acquire))
                return;
        }
    }
    default:
        break;
    }
}

void span_give_up(span_t *s, unsigned pool_slot)
{
    /* Fold the local list and the never-carved blocks into the count; the
     * local list joins the remote list so the next owner finds every free
     * block in one place. */
    const block_t *tail = NULL;
    block_t *local = s->free;
    uint32_t local_count = span_list_length(local, &tail);
    uint32_t uncarved = (uint32_t)((size_t)(s->bump_end - span_bump(s)) / s->block_size);
    s->free = NULL;
    span_set_owner(s, NULL);
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_relaxed);
    unsigned to;
    for (;;) {
        if (remote_state(w) == SPAN_DRAINED) {
            /* Emptied and released by another thread: only pooling is
             * left, and only the owner (we) could do it. */
            span_pool_put(s->heap, s, pool_slot);
            return;
        }
        if (remote_state(w) == SPAN_DRAINING) {
            /* Still being released: hand it to the draining thread. */
            if (atomic_compare_exchange_weak_explicit(
                    &s->remote, &w, (w & ~REMOTE_STATE_MASK) | SPAN_ORPHANED,
                    memory_order_acq_rel, memory_order_relaxed))
                return;
            continue;
        }
        uint32_t count = remote_count(w) + local_count + uncarved;
        block_t *head = remote_head(s, w);
        if (local) {
            block_set_next((block_t *)tail, head);
            head = local;
        }
        to = settled_state(s, SPAN_DETACHED, count);
        uint64_t next = remote_word(to == SPAN_POOLED ? SPAN_POOLED : to, s,
                                    to == SPAN_POOLED ? NULL : head, count);
        /* release: whoever takes the span next sees our header and links;
         * acquire on failure is not needed, the loop re-reads the word. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w, next,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    span_settle(s, SPAN_DETACHED, to, pool_slot);
}

bool span_set_owned_state(span_t *s, unsigned from, unsigned to)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_relaxed);
    for (;;) {
        if (remote_state(w) != from)
            return false;
        /* relaxed: only the state bits change; the list and count that
         * remote frees publish are left as they are and not read here. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w,
                                                  (w & ~REMOTE_STATE_MASK) | to,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

span_t *span_adopt_reusable(struct sc_heap_s *heap, unsigned cls)
{
    for (;;) {
        span_t *s = span_stack_pop(&heap->reusable[cls]);
        if (s == NULL)
            return NULL;
        uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
        for (;;) {
            unsigned st = remote_state(w);
            uint64_t next;
            if (st == SPAN_REUSABLE || st == SPAN_EMPTY)
                next = remote_word(SPAN_HOT, s, NULL, 0);
            else if (st == SPAN_RELEASING)
                next = remote_word(SPAN_ORPHANED, s, NULL, remote_count(w));
            else
                break; /* cannot happen: only the states above are stacked */
            /* acquire: the freers' list links and the releaser's work are
             * visible; release: an ORPHANED mark hands the span over. */
            if (atomic_compare_exchange_weak_explicit(&s->remote, &w, next,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire)) {
                if (st == SPAN_RELEASING)
                    break; /* the releasing thread pools it */
                if (st == SPAN_EMPTY) {
                    /* Released and fully free: start over as a fresh span
                     * (committing its real span again). */
                    if (!span_init_blocks(s, heap, cls)) {
                        span_pool_put(heap, s, cls);
                        return NULL;
                    }
                } else {
                    /* Every block not counted free is live. */
                    s->free = remote_head(s, w);
                    counter_set(&s->used, span_capacity(s) - remote_count(w));
                }
                return s;
            }
        }
    }
}

sc_error_t span_free_remote(span_t *s, block_t *b, unsigned pool_slot)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_relaxed);
    unsigned st, to;
    bool annotated = false;
    for (;;) {
        st = remote_state(w);
        if (!span_state_in_use(st))
            return SC_ERR_DOUBLE_FREE; /* every block of the span is free */
        uint32_t count = remote_count(w) + 1;
        block_t *head = remote_head(s, w);
        if (count > span_capacity(s) || head == b)
            return SC_ERR_DOUBLE_FREE;
        if (!annotated) { /* once, however often the CAS is retried */
            annotate_free(s->heap, b, s->block_size);
            annotated = true;
        }
        block_set_next(b, head);
        /* An owned span only counts; its owner decides what becomes of it,
         * except that the free emptying a FLOATING span drains it. Its
         * owner no longer allocates from it, so `used` only falls; a stale
         * read is too high and can only delay the drain, never drain a
         * span with a live block. */
        if (st == SPAN_HOT)
            to = st;
        else if (st == SPAN_FLOATING)
            to = count >= atomic_load_explicit(&s->used, memory_order_relaxed) ? SPAN_DRAINING : st;
        else
            to = settled_state(s, st, count);
        uint64_t next = to == SPAN_POOLED ? remote_word(SPAN_POOLED, s, NULL, 0)
                                          : remote_word(to, s, b, count);
        /* release: b's link is visible to whoever takes the list;
         * acquire: a transition we make sees the header the owner wrote
         * before floating the span. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w, next,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if (to != st)
        span_settle(s, st, to, pool_slot);
    return SC_ERR_NONE;
}

void span_release(span_t *s)
{
    /* Everything committed past the header page: the span may have served
     * a bigger class before, and madvise skips pages never touched. */
    size_t page = os_page_size();
    annotate_no_access((char *)s + SPAN_HEADER_SIZE, s->rw_bytes - SPAN_HEADER_SIZE);
    if (s->rw_bytes > page)
        os_release((char *)s + page, s->rw_bytes - page);
    arena_uncommit(s->heap, s, page);
    span_set_bump(s, (char *)s + SPAN_HEADER_SIZE);
    counter_set(&s->carved, 0);
    counter_set(&s->used, 0);
    s->free = NULL;
}
