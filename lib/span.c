/* Span header setup and the span life cycle (span.h, types.h). */
#include "span.h"

#include "annotate.h"
#include "arena.h"
#include "os.h"
#include "size_class.h"

/* bump == bump_end and free == NULL: allocation from it always falls to
 * the slow path, which replaces it. */
span_t span_empty;


/* Bytes a span of cap blocks of bs bytes keeps between its header and its
 * first block: the checked-mode bitmap and the requested-size table (each a
 * multiple of 8), rounded up to SPAN_LEAD so that blocks keep the
 * alignment aligned allocation relies on. At most a few KiB (16-byte blocks
 * in a 32 KiB real span: 2 KiB of table), so the metadata lies in the first
 * commit step and the rest of the real span is committed as carving
 * reaches it, as in a plain heap. */
static size_t span_meta_bytes(unsigned flags, size_t bs, uint32_t cap)
{
    size_t bytes = 0;
    if (flags & SC_HEAP_CHECKED)
        bytes += span_bitmap_bytes(cap);
    if (flags & (SC_HEAP_CHECKED | SC_HEAP_TRACK_REQUESTED))
        bytes += span_slack_table_bytes(bs, cap);
    return (bytes + SPAN_LEAD - 1) & ~(SPAN_LEAD - 1);
}

/* The band of real span sizes of blocks of bs bytes (tuning.h). */
static unsigned class_band(size_t bs)
{
    if (bs * REAL_SPAN_SMALLEST_BLOCKS <= REAL_SPAN_MIN)
        return 0;
    unsigned band = 1;
    /* A band's top class keeps one block fewer (tuning.h, REAL_SPAN_MIN). */
    while (REAL_SPAN_BAND(band) < SPAN_SIZE && bs * REAL_SPAN_MIN_BLOCKS > REAL_SPAN_BAND(band))
        band++;
    return band;
}

/* Blocks of bs bytes in a real span of band `band` (at least the class's
 * own band). */
static uint32_t class_capacity(unsigned flags, size_t bs, unsigned band)
{
    size_t target = REAL_SPAN_BAND(band);
    if (target > SPAN_SIZE)
        target = SPAN_SIZE;
    size_t cap = (target - SPAN_LEAD) / bs;
    /* What a checked or tracking span keeps before its blocks must fit. */
    while (cap > 1 && SPAN_LEAD + span_meta_bytes(flags, bs, (uint32_t)cap) + cap * bs > SPAN_SIZE)
        cap--;
    return (uint32_t)(cap ? cap : 1);
}

/* One class's geometry with real spans of band `band`. */
static void geometry_fill(unsigned flags, span_geometry_t *g, size_t bs, unsigned band)
{
    size_t page = os_page_size();
    uint32_t cap = class_capacity(flags, bs, band);
    size_t first = SPAN_LEAD + span_meta_bytes(flags, bs, cap);
    size_t real = (first + (size_t)cap * bs + page - 1) & ~(page - 1);
    /* The first step (metadata and first block); carving commits the
     * rest as it goes. */
    size_t step = (first + bs + COMMIT_STEP - 1) & ~(COMMIT_STEP - 1);
    g->capacity = cap;
    g->first = (uint32_t)first;
    g->real = (uint32_t)real;
    g->first_step = (uint32_t)(step > real ? real : step);
    g->divide_magic = span_divide_magic(bs);
}

/* THE SHARED GEOMETRY TABLES. A class's geometry depends only on whether
 * the heap is checked and whether it tracks requested sizes, so the heaps
 * of one kind share one table (4.5 KiB) instead of each holding a copy
 * (6 KiB with its reuse counts) in its handle: a program with a thousand
 * heaps kept 6 MiB of identical tables resident, and as much again after
 * destroying them (handles are reused, not unmapped). A table and its
 * filled flag are written by the first heap of its kind, under the lock
 * that serialises heap creation (heap.c), so a later creator sees them
 * through that lock; every other reader reads the table through a heap
 * published after the fill (release), which orders the fill first.
 * Indexed by the two flags' bits (geometry_kind). */
static span_geometry_t shared_geometry[4][GROWN_SPAN_LEVELS + 1][NUM_CLASSES];
static bool shared_geometry_filled[4];

static unsigned geometry_kind(unsigned flags)
{
    return ((flags & SC_HEAP_CHECKED) ? 1u : 0u) | ((flags & SC_HEAP_TRACK_REQUESTED) ? 2u : 0u);
}

static void geometry_table_fill(unsigned flags, span_geometry_t (*table)[NUM_CLASSES])
{
    /* Grown spans (tuning.h, GROWN_SPAN_AFTER) for the smallest band of
     * plain heaps only: a checked or tracking span's tables grow with its
     * blocks, and those heaps are not the ones whose speed counts. */
    bool plain = (flags & (SC_HEAP_CHECKED | SC_HEAP_TRACK_REQUESTED)) == 0;
    for (unsigned cls = 0; cls < NUM_CLASSES; cls++) {
        size_t bs = size_class_block_size(cls);
        unsigned band = class_band(bs);
        geometry_fill(flags, &table[0][cls], bs, band);
        /* Level l: l bands up (128 KiB, 512 KiB), the sizes of the pool's
         * buckets, so a grown span pooled serves the classes of its band.
         * Classes up to 4 KiB grow; those of them that start in the second
         * band (over 256 B) stop where the smallest band's stop, at the
         * GROWN_SPAN_LEVELS-th band (512 KiB). */
        for (unsigned level = 1; level <= GROWN_SPAN_LEVELS; level++) {
            unsigned grown = band + level < GROWN_SPAN_LEVELS ? band + level : GROWN_SPAN_LEVELS;
            if (plain && bs * REAL_SPAN_MIN_BLOCKS <= REAL_SPAN_MIN)
                geometry_fill(flags, &table[level][cls], bs, grown);
            else
                table[level][cls] = table[0][cls];
        }
    }
}

void span_geometry_init(struct sc_heap_s *heap)
{
    unsigned kind = geometry_kind(heap->flags);
    if (!shared_geometry_filled[kind]) {
        geometry_table_fill(heap->flags, shared_geometry[kind]);
        shared_geometry_filled[kind] = true;
    }
    heap->geometry = (const span_geometry_t(*)[NUM_CLASSES])shared_geometry[kind];
}

/* Free blocks at which a span of cap blocks of bs bytes is reusable: the
 * heap's reuse threshold of them, or REUSE_ENOUGH_BYTES of free blocks if
 * that is fewer, at least 1. Per heap (the threshold is configurable), so
 * not in the shared geometry; a span set-up computes it. */
static uint32_t span_class_reuse_count(const struct sc_heap_s *heap, uint32_t cap, size_t bs)
{
    uint64_t reuse = ((uint64_t)cap * heap->reuse_threshold + 99) / 100;
    uint64_t enough = (REUSE_ENOUGH_BYTES + bs - 1) / bs;
    if (enough < reuse)
        reuse = enough;
    return (uint32_t)(reuse ? reuse : 1);
}

size_t span_keep_bytes(const struct sc_heap_s *heap, unsigned cls, unsigned level)
{
    return heap->geometry[level][cls].real;
}

bool span_class_can_grow(const struct sc_heap_s *heap, unsigned cls)
{
    return heap->geometry[1][cls].real > heap->geometry[0][cls].real;
}

unsigned span_grown_level(const span_t *s)
{
    const struct sc_heap_s *heap = s->heap;
    unsigned cls = span_class(s);
    if (!span_class_can_grow(heap, cls))
        return 0;
    /* Capacities grow with the level: a span's tells its level. */
    uint32_t cap = span_capacity(s);
    unsigned level = GROWN_SPAN_LEVELS;
    while (level > 0 && heap->geometry[level][cls].capacity != cap)
        level--;
    return level;
}

size_t span_real_bytes(const span_t *s)
{
    return span_keep_bytes(s->heap, span_class(s), span_grown_level(s));
}

bool span_init_blocks(span_t *s, struct sc_heap_s *heap, unsigned cls, unsigned level)
{
    const span_geometry_t *g = &heap->geometry[level][cls];
    size_t need = g->first_step;
    if (s->committed > g->real && s->committed > need) {
        /* A warm span from the pool that served a bigger class: what this
         * class will never touch goes back, so committed stays exact. */
        arena_give_back(heap, s, g->real > need ? g->real : need);
    }
    if (!arena_commit(heap, s, need))
        return false;
    size_t bs = size_class_block_size(cls);
    s->free = NULL;
    s->kept_empty = 0;
    span_set_bump(s, span_base(s) + g->first);
    owner_word_set(&s->carved_limit, 0);
    owner_word_set(&s->owner_carved, 0);
    span_set_used_level(s, 0, SPAN_LEVEL_NEVER);
    s->bump_end = span_base(s) + g->first + (size_t)g->capacity * bs;
    s->block_size = (uint32_t)bs;
    span_set_capacity(s, g->capacity);
    s->divide_magic = g->divide_magic;
    s->owner_magic = g->divide_magic;
    span_set_reuse_count(s, span_class_reuse_count(heap, g->capacity, bs));
    span_set_class(s, (uint16_t)cls);
    span_set_kind(s, SPAN_KIND_BLOCKS);
    s->heap = heap;
    atomic_store_explicit(&s->remote, remote_word(SPAN_HOT, s, NULL, 0), memory_order_release);
    return true;
}

/* Moves never-used blocks from the bump pointer onto the local free list:
 * as many as fit in `bytes` (at least one), committing as it goes. */
static enum carve_result carve_bytes(span_t *s, size_t bytes)
{
    char *p = span_bump(s);
    if (p >= s->bump_end)
        return CARVE_FULL;
    size_t bs = s->block_size;
    char *base = span_base(s);
    /* Where the batch may end: `bytes` on but at least one block, never
     * past the real span's blocks (bump_end - p is a multiple of bs). No
     * division: the blocks are counted by linking them. */
    char *stop = p + (bytes > bs ? bytes : bs);
    if (stop > s->bump_end)
        stop = s->bump_end;
    if ((size_t)(stop - base) > s->committed) {
        /* Commit the next step (never past the real span); at the heap's
         * limit, carve only what is committed already, if anything. */
        size_t page = os_page_size();
        size_t real = ((size_t)(s->bump_end - base) + page - 1) & ~(page - 1);
        size_t want = ((size_t)(stop - base) + COMMIT_STEP - 1) & ~(COMMIT_STEP - 1);
        if (want > real)
            want = real;
        if (!arena_commit(s->heap, s, want)) {
            stop = base + s->committed;
            if (stop < p + bs)
                return CARVE_NO_COMMIT;
        }
    }
    /* Link the batch in address order so allocation walks memory forward.
     * Never-used blocks are off limits to the caller until handed out (a
     * tail short of a block too: it is the next batch's). */
    annotate_no_access(p, (size_t)(stop - p));
    char *last = p, *next = p + bs;
    for (char *link_end = stop - bs; next <= link_end; next += bs) {
        block_set_next((block_t *)last, (block_t *)next);
        last = next;
    }
    block_set_next((block_t *)last, s->free);
    s->free = (block_t *)p;
    span_set_bump(s, last + bs);
    /* The carved bytes times divide_magic (types.h, carved_limit). */
    uint64_t carved = (uint64_t)(last + bs - span_first_block(s)) * s->divide_magic;
    owner_word_set(&s->carved_limit, carved);
    owner_word_set(&s->owner_carved, carved);
    return CARVE_OK;
}

enum carve_result span_carve(span_t *s)
{
    return carve_bytes(s, CARVE_BYTES);
}

size_t span_touched_bytes(const span_t *s)
{
    if (span_kind(s) != SPAN_KIND_BLOCKS)
        return SPAN_LEAD;
    size_t bumped = (size_t)((uintptr_t)span_bump(s) - (uintptr_t)span_base(s));
    if (bumped > SPAN_SIZE)
        return SPAN_LEAD; /* not a block span's bump */
    return bumped < s->committed ? bumped : s->committed;
}

void span_carve_touched(span_t *s, size_t touched)
{
    size_t at = (size_t)(span_bump(s) - span_base(s));
    if (touched > s->committed)
        touched = s->committed; /* set-up gave a bigger class's tail back */
    if (touched <= at + CARVE_BYTES)
        return; /* the first slow path carves CARVE_BYTES anyway */
    size_t most = (size_t)CARVE_TOUCHED_BLOCKS * s->block_size;
    if (most < CARVE_BYTES)
        most = CARVE_BYTES;
    (void)carve_bytes(s, touched - at < most ? touched - at : most);
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
                                                  remote_word(remote_state(w), s, NULL, 0) |
                                                      (w & REMOTE_GEN_MASK),
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            break;
    }
    block_t *head = remote_head(s, w);
    /* used and room both fall by the count taken; the level stays. */
    owner_word_add(&s->counts, 0 - remote_count(w) * COUNTS_UNIT);
    /* Callers take the list when the local one is empty, so it just
     * becomes the local list. */
    SC_ASSERT(s->free == NULL);
    s->free = head;
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

uint32_t span_detached_reuse_count(const span_t *s)
{
    uint32_t share = span_capacity(s) / DETACHED_REUSE_SHARE;
    if (share == 0)
        share = 1;
    uint32_t reuse = span_reuse_count(s);
    return reuse < share ? reuse : share;
}

/* A span that left DETACHED (or its owner) for REUSABLE with `count` free
 * blocks keeps the lower threshold it got there by until it is set up
 * afresh (tuning.h, DETACHED_REUSE_SHARE). Written by the thread whose CAS
 * made it REUSABLE, before it pushes the span: no other thread reads the
 * count of a REUSABLE span, and the taker sees it after the push. */
static void reusable_keep_threshold(span_t *s, uint32_t count)
{
    if (count < span_reuse_count(s))
        span_set_reuse_count(s, span_detached_reuse_count(s));
}

/* The state an ownerless span moves to when its free count becomes
 * `count`. */
static unsigned settled_state(const span_t *s, unsigned state, uint32_t count)
{
    if (state == SPAN_DETACHED) {
        if (count == span_capacity(s))
            return SPAN_POOLED;
        if (count >= span_detached_reuse_count(s))
            return SPAN_REUSABLE;
    } else if (state == SPAN_REUSABLE && count == span_capacity(s)) {
        return SPAN_EMPTY;
    }
    return state;
}

/* The last block of list b, which holds `count` blocks. */
static const block_t *list_tail(const block_t *b, uint32_t count)
{
    const block_t *tail;
    uint32_t walked = span_list_length(b, &tail);
    SC_ASSERT(walked == count);
    (void)walked;
    (void)count;
    return tail;
}

unsigned span_give_up(span_t *s)
{
    /* Fold the local list and the never-carved blocks into the count; the
     * local list joins the remote list so the next owner finds every free
     * block in one place. A DRAINED span's lists are not read: it is free
     * anyway, and a trim may have given their pages back (reading them
     * would map them again). */
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_relaxed);
    bool drained = remote_state(w) == SPAN_DRAINED || remote_state(w) == SPAN_DRAINING;
    const block_t *tail = NULL;
    block_t *local = drained ? NULL : s->free;
    uint32_t uncarved = (uint32_t)((size_t)(s->bump_end - span_bump(s)) / s->block_size);
    /* The local list holds every carved block not handed out (used counts
     * the handed-out ones, remote frees included), so its length is known
     * without a walk; the walk, which touches every free block, is only
     * needed for its tail, to join the remote list behind it, when the
     * span keeps live blocks and other threads freed some of its blocks.
     * A span whose every block is free goes to the pool, which sets it up
     * afresh. */
    uint32_t carved = span_capacity(s) - uncarved;
    uint32_t local_count = local ? carved - span_used(s) : 0;
    s->free = NULL;
    span_set_owner(s, NULL);
    /* acquire (here and on a failed CAS): the remote list may be walked
     * below, through links other threads wrote before their CAS. */
    w = atomic_load_explicit(&s->remote, memory_order_acquire);
    const block_t *remote_tail = NULL;
    unsigned to;
    uint32_t count = 0;
    for (;;) {
        unsigned st = remote_state(w);
        if (st == SPAN_DRAINED || st == SPAN_DRAINING) {
            /* Emptied by remote frees: to the pool, or to the trimmer
             * releasing it (which pools it). */
            return span_claim_owned_empty(s, true) ? SPAN_POOLED : 0;
        }
        SC_ASSERT(st == SPAN_HOT || st == SPAN_FLOATING);
        count = remote_count(w) + local_count + uncarved;
        SC_ASSERT(count <= span_capacity(s));
        block_t *head = remote_head(s, w);
        to = settled_state(s, SPAN_DETACHED, count);
        if (local && to != SPAN_POOLED) {
            /* The lists join behind the tail of one of them, found by
             * walking it: the shorter one. The remote list's tail stays put
             * while other threads push at its head, so a retry keeps it.
             * At thread exit in churn (4 threads) the local lists held
             * 183 k blocks in all, the remote lists 83 k, the shorter of
             * each pair 60 k. */
            if (head != NULL && tail == NULL && remote_tail == NULL) {
                if (remote_count(w) < local_count)
                    remote_tail = list_tail(head, remote_count(w));
                else
                    tail = list_tail(local, local_count);
            }
            if (remote_tail != NULL) {
                block_set_next((block_t *)remote_tail, local); /* head stays the remote list's */
            } else {
                if (head != NULL)
                    block_set_next((block_t *)tail, head);
                head = local;
            }
        }
        uint64_t next = to == SPAN_POOLED ? remote_word(SPAN_POOLED, s, NULL, 0)
                                          : remote_word(to, s, head, count);
        /* release: whoever takes the span next (a remote freer, a taker of
         * the reusable stack or the pool) sees our header and links;
         * acquire: the remote freers' links we hand on are ours to pass. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w, next,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    if (to == SPAN_REUSABLE)
        reusable_keep_threshold(s, count);
    return to;
}

/* The owner's change of its own span's state, from `from` to `to`, the
 * remote list and count as they are; a span made HOT gets the next
 * generation (it wraps within the field). false if the span was not in
 * `from`. acq_rel: a trimmer that finds the span FLOATING or DRAINED
 * (acquire) reads the owner's `used` and writes of this moment or later
 * before it judges the span empty or gives its pages back (release side);
 * making a DRAINED span HOT again sees what a trimmer did to it (pages,
 * committed) before the owner looks (acquire side). */
static bool owned_state_change(span_t *s, unsigned from, unsigned to)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_relaxed);
    for (;;) {
        if (remote_state(w) != from)
            return false;
        uint64_t next = (w & ~REMOTE_STATE_MASK) | to;
        if (to == SPAN_HOT)
            next += (uint64_t)1 << REMOTE_GEN_SHIFT;
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w, next, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return true;
    }
}

bool span_set_owned_state(span_t *s, unsigned from, unsigned to)
{
    SC_ASSERT((from == SPAN_HOT && to == SPAN_FLOATING) || (from == SPAN_FLOATING && to == SPAN_HOT));
    return owned_state_change(s, from, to);
}

bool span_keep_empty(span_t *s)
{
    return owned_state_change(s, SPAN_FLOATING, SPAN_DRAINED);
}

bool span_reclaim_kept(span_t *s)
{
    return owned_state_change(s, SPAN_DRAINED, SPAN_HOT);
}

bool span_was_trimmed(const span_t *s)
{
    return s->committed <= os_page_size(); /* span_trim_drained_end's cut */
}

bool span_claim_owned_empty(span_t *s, bool leaving)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    for (;;) {
        unsigned st = remote_state(w);
        SC_ASSERT(st == SPAN_HOT || st == SPAN_FLOATING || st == SPAN_DRAINED || st == SPAN_DRAINING);
        uint64_t next;
        if (st == SPAN_DRAINING) {
            if (!leaving)
                return false;
            next = (w & ~REMOTE_STATE_MASK) | SPAN_ORPHANED;
        } else {
            next = remote_word(SPAN_POOLED, s, NULL, 0);
        }
        /* acq_rel: a trimmer that finds ORPHANED gets the header as we
         * left it; we get what a DRAINED span's trimmer wrote (acquire on
         * failure, for the next look). */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            return st != SPAN_DRAINING;
    }
}

void span_rebuild_free_list(span_t *s, const block_t *live)
{
    /* The remote frees are taken as the owner always takes them (their
     * count off `used`); the lists themselves, cut short, are dropped: the
     * walk below links every block they held. */
    s->free = NULL;
    (void)span_take_remote(s, 1);
    if (span_used(s) == 0)
        live = NULL;
    size_t bs = s->block_size;
    char *first = span_first_block(s);
    block_t *head = NULL;
    /* Top down, so that the list runs in address order. */
    for (char *p = span_bump(s); p - first >= (ptrdiff_t)bs;) {
        p -= bs;
        if ((const block_t *)p == live)
            continue;
        block_set_next((block_t *)p, head);
        head = (block_t *)p;
    }
    s->free = head;
}

bool span_trim_drained_begin(span_t *s)
{
    /* acquire: pairs with the release of the owner's HOT -> FLOATING, so
     * that `used` below is the owner's of then or later. */
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    for (;;) {
        unsigned st = remote_state(w);
        /* A FLOATING span whose every block is free is as good as DRAINED:
         * its owner allocates from it only after making it HOT by CAS
         * (which this CAS makes fail, or fails), and its `used` only falls
         * while it floats, so a stale read errs towards "not empty". Its
         * last free was the owner's below the span's event level, or a
         * remote free counted after the owner set that level. */
        if (st != SPAN_DRAINED &&
            !(st == SPAN_FLOATING && remote_count(w) >= span_used_peek(s)))
            return false;
        /* acquire: the owner's and the freers' writes to the span come
         * before ours. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w,
                                                  (w & ~REMOTE_STATE_MASK) | SPAN_DRAINING,
                                                  memory_order_acquire, memory_order_acquire))
            return true;
    }
}

void span_trim_drained_release(span_t *s, os_release_batch_t *b)
{
    /* Every block is free and the owner leaves the span alone while it is
     * DRAINING, so all its pages can go, the first one too: the header is
     * in the header table, and whoever uses the span next sets it up
     * afresh (the owner that takes it back sees it trimmed, or the pool's
     * next taker), which rewrites what a checked or tracking span keeps at
     * its start. rw_bytes and the block fields stay as they are; committed
     * falls to the first page, which stays charged while the span is known
     * (types.h) but is not resident until it is written again. */
    size_t page = os_page_size();
    annotate_no_access(span_base(s) + SPAN_LEAD, s->rw_bytes - SPAN_LEAD);
    os_release_batch_add(b, span_base(s), s->rw_bytes);
    arena_uncommit(s->heap, s, page);
}

bool span_trim_drained_end(span_t *s)
{
    /* acquire (here and on a failed CAS): an owner that left while we held
     * the span (ORPHANED) wrote its header last; we pool the span next. */
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    for (;;) {
        if (remote_state(w) == SPAN_ORPHANED)
            return true;
        SC_ASSERT(remote_state(w) == SPAN_DRAINING);
        /* release: the owner that sees DRAINED sees the memory gone and
         * the accounting done. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w,
                                                  (w & ~REMOTE_STATE_MASK) | SPAN_DRAINED,
                                                  memory_order_release, memory_order_acquire))
            return false;
    }
}

bool span_claim_if_empty(span_t *s)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    while (remote_state(w) == SPAN_EMPTY) {
        /* acquire: what the last freer wrote is ours with the span. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w, remote_word(SPAN_POOLED, s, NULL, 0),
                                                  memory_order_acquire, memory_order_acquire))
            return true;
    }
    return false;
}

enum span_claim span_claim_reusable(span_t *s)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    for (;;) {
        unsigned st = remote_state(w);
        /* Only REUSABLE and EMPTY spans are pushed on a reusable stack, and
         * only a popper (us, now) moves them off those states. */
        SC_ASSERT(st == SPAN_REUSABLE || st == SPAN_EMPTY);
        if (st != SPAN_REUSABLE && st != SPAN_EMPTY)
            return SPAN_CLAIM_LOST;
        /* acquire: the freers' list links are visible; a REUSABLE span
         * stays claimable against late remote frees, which this CAS
         * orders: after it they count into a HOT span. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w, remote_word(SPAN_HOT, s, NULL, 0),
                                                  memory_order_acquire, memory_order_acquire)) {
            if (st == SPAN_EMPTY)
                return SPAN_CLAIM_EMPTY;
            /* Every block not counted free is live. */
            s->free = remote_head(s, w);
            span_set_used_level(s, span_capacity(s) - remote_count(w), SPAN_LEVEL_NEVER);
            return SPAN_CLAIM_BLOCKS;
        }
    }
}

sc_error_t span_free_remote(span_t *s, block_t *head, block_t *tail, uint32_t n, unsigned *moved_to)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_relaxed);
    unsigned st, to;
    uint32_t count;
    for (;;) {
        st = remote_state(w);
        if (!span_state_in_use(st))
            return SC_ERR_DOUBLE_FREE; /* every block of the span is free */
        count = remote_count(w) + n;
        block_t *old = remote_head(s, w);
        if (count > span_capacity(s) || old == head)
            return SC_ERR_DOUBLE_FREE;
        block_set_next(tail, old);
        /* A HOT span only counts: its owner takes the frees back when it
         * runs out. A FLOATING span whose last blocks these are becomes
         * DRAINED, which its owner pools when it next looks (its owner no
         * longer allocates from it, so `used` only falls: a stale read is
         * too high and can only delay that, and the generation in the word
         * makes this CAS fail if the span was hot in between). An ownerless
         * span settles here, in constant time, by the thread that freed its
         * last block. */
        if (st == SPAN_HOT)
            to = st;
        else if (st == SPAN_FLOATING)
            to = count >= span_used_peek(s) ? SPAN_DRAINED : st;
        else
            to = settled_state(s, st, count);
        uint64_t next = to == SPAN_POOLED ? remote_word(SPAN_POOLED, s, NULL, 0)
                                          : remote_word(to, s, head, count) | (w & REMOTE_GEN_MASK);
        /* release: the blocks' links are visible to whoever takes the list;
         * acquire: a transition we make sees what the previous holder wrote
         * before letting the span go. */
        if (atomic_compare_exchange_weak_explicit(&s->remote, &w, next,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if (st == SPAN_DETACHED && to == SPAN_REUSABLE)
        reusable_keep_threshold(s, count);
    *moved_to = to != st ? to : 0;
    return SC_ERR_NONE;
}

