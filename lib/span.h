/*
 * Spans: the header, the remote word (state + remote free list + count),
 * and the transitions of the span life cycle (types.h, "THE SPAN LIFE
 * CYCLE"). Functions say who may call them: the owner (the frontend holding
 * the span HOT), an exclusive holder (popped from a stack or the pool), or
 * any thread.
 */
#ifndef SCALLOC_SPAN_H
#define SCALLOC_SPAN_H

#include "address_map.h"
#include "os.h"
#include "types.h"

/* THE COUNTS WORD. used = counts mod 2^21 (capacities are below 2^21);
 * room = counts / 2^21 as a signed number = used - level - 1, where level
 * is the `used` at which the owner's free must call frontend_free_event.
 * Adding COUNTS_UNIT counts one block out (room and used up by one);
 * subtracting it counts one back, and the result is negative exactly when
 * room went below zero. used never borrows from room: the owner only
 * counts back blocks it counted out. */
#define COUNTS_USED_BITS 21
#define COUNTS_USED_MASK (((uint64_t)1 << COUNTS_USED_BITS) - 1)
#define COUNTS_UNIT (((uint64_t)1 << COUNTS_USED_BITS) + 1)

/* The event level of HOT spans: no count reaches it, so the owner's frees
 * into its hot spans never stop at an event. */
#define SPAN_LEVEL_NEVER (-(INT64_C(1) << 30))

/* Owner: counts a block out (allocation). */
static inline void span_count_out(span_t *s)
{
    owner_word_add(&s->counts, COUNTS_UNIT);
}

/* Owner: counts a block back in (a local free); true if room went below
 * zero, i.e. the free reached the event level. */
static inline bool span_count_in(span_t *s)
{
    /* release: a remote freer that reads this count and drains the span
     * hands it on (span_free_remote, span_used_peek) after this free. */
    return (int64_t)owner_word_add_release(&s->counts, 0 - COUNTS_UNIT) < 0;
}

/* Owner: blocks handed out and not freed locally (remote frees included). */
static inline uint32_t span_used(const span_t *s)
{
    return (uint32_t)(owner_word_get(&s->counts) & COUNTS_USED_MASK);
}

/* The same, read by another thread: exact as of the owner's last update. */
static inline uint32_t span_used_peek(const span_t *s)
{
    /* acquire: pairs with span_count_in (the owner's frees come first). */
    return (uint32_t)(owner_word_acquire(&s->counts) & COUNTS_USED_MASK);
}

/* Owner: sets used and the event level. */
static inline void span_set_used_level(span_t *s, uint32_t used, int64_t level)
{
    uint64_t room = (uint64_t)((int64_t)used - level - 1);
    owner_word_set(&s->counts, room * ((uint64_t)1 << COUNTS_USED_BITS) + used);
}

/* remote word: state in bits 0..3, remote list head as an offset from the
 * span start in bits 4..24 (0 = empty: offset 0 is the header), count of
 * free blocks not on the owner's local list in bits 25..45, and in bits
 * 46..63 a generation that the owner bumps each time it makes a floating
 * span HOT again, so that a remote freer's CAS prepared while the span
 * floated (with the owner's `used` of then) fails if the span has been
 * hot since. */
#define REMOTE_STATE_MASK ((uint64_t)0xF)
#define REMOTE_HEAD_SHIFT 4
#define REMOTE_COUNT_SHIFT 25
#define REMOTE_FIELD_MASK ((uint64_t)0x1FFFFF)
#define REMOTE_GEN_SHIFT 46
#define REMOTE_GEN_MASK (~(uint64_t)0 << REMOTE_GEN_SHIFT)

static inline unsigned remote_state(uint64_t w)
{
    return (unsigned)(w & REMOTE_STATE_MASK);
}

static inline uint32_t remote_count(uint64_t w)
{
    return (uint32_t)((w >> REMOTE_COUNT_SHIFT) & REMOTE_FIELD_MASK);
}

static inline block_t *remote_head(span_t *s, uint64_t w)
{
    uint64_t off = (w >> REMOTE_HEAD_SHIFT) & REMOTE_FIELD_MASK;
    return off ? (block_t *)(span_base(s) + off) : NULL;
}

static inline uint64_t remote_word(unsigned state, const span_t *s, const block_t *head,
                                   uint32_t count)
{
    (void)s; /* head lies in s's 2 MiB: its offset is its low bits */
    uint64_t off = head ? (uint64_t)((uintptr_t)head & SPAN_MASK) : 0;
    return (uint64_t)state | (off << REMOTE_HEAD_SHIFT) |
           ((uint64_t)count << REMOTE_COUNT_SHIFT);
}

static inline char *span_bump(const span_t *s)
{
    return atomic_load_explicit(&s->bump, memory_order_relaxed);
}

static inline void span_set_bump(span_t *s, char *p)
{
    atomic_store_explicit(&s->bump, p, memory_order_relaxed);
}

static inline sc_frontend_t *span_owner(const span_t *s)
{
    return atomic_load_explicit(&((span_t *)s)->owner, memory_order_relaxed);
}

static inline void span_set_owner(span_t *s, sc_frontend_t *t)
{
    atomic_store_explicit(&s->owner, t, memory_order_relaxed);
}

/* Whether a span in this state may hold allocated blocks. */
static inline bool span_state_in_use(unsigned st)
{
    return st == SPAN_HOT || st == SPAN_FLOATING || st == SPAN_DETACHED || st == SPAN_REUSABLE;
}

/* Owner: moves its span from HOT to FLOATING, or from FLOATING back to
 * HOT, the remote list and count staying as they are. false if the span
 * was not in `from` (a floating span a remote free emptied is DRAINED, or
 * a trimming thread holds it: DRAINING). */
bool span_set_owned_state(span_t *s, unsigned from, unsigned to);

/* Owner of a FLOATING span with no live block that it keeps for its class
 * (frontend.c, "KEPT EMPTY SPANS"): marks it DRAINED, so that a trim from
 * any thread may give its memory back meanwhile (span_trim_drained_*).
 * false if it is not FLOATING any more (a remote free drained it). */
bool span_keep_empty(span_t *s);

/* Owner of a DRAINED span it kept: makes it HOT again, its lists as they
 * are (bumping the generation, as for a floating span made hot). false if
 * a trimming thread holds it (DRAINING). The caller then looks whether the
 * trim gave its memory back meanwhile (span_was_trimmed). */
bool span_reclaim_kept(span_t *s);

/* Whether a DRAINED span's memory was given back by a trim: its pages past
 * the header read as zeros, so its lists must not be used. */
bool span_was_trimmed(const span_t *s);

/* Owner of a span with no live block (HOT, FLOATING or DRAINED): marks it
 * POOLED, after which the caller puts it in the pool (span_pool_put).
 * false if a trimming thread is releasing its memory right now (DRAINING):
 * then the caller leaves it where it is and looks again later, or, with
 * `leaving` (its thread exits), hands it to that thread, which pools it. */
bool span_claim_owned_empty(span_t *s, bool leaving);

/* Any thread (sc_heap_trim): if s is DRAINED, or FLOATING with every
 * block free (the owner's last free came below its event level, after
 * remote frees it had not seen), takes it from its owner for as long as it
 * takes to give its memory back (DRAINING) and returns true;
 * span_trim_drained_end gives it back, DRAINED. */
bool span_trim_drained_begin(span_t *s);

/* Owner, on the slow path: the pages of hot span s were given back while
 * every block was free but `live`, a block an allocation under way took
 * from it then (frontend.c, IDLE TRIM), so its lists may end early at a
 * zeroed link. Drops the remote list (its blocks count as freed) and links
 * every carved block but `live` onto the local list; with no live block
 * left (`live` was freed by another thread meanwhile), that one too. */
void span_rebuild_free_list(span_t *s, const block_t *live);

/* Adds the memory of a DRAINING span (all its pages) to b and takes all
 * but its first page off the heap's committed bytes. */
void span_trim_drained_release(span_t *s, os_release_batch_t *b);

/* After b was flushed: returns the span to DRAINED (its owner may then set
 * it up again, so not before its pages are gone); true if its owner left
 * meanwhile, and the caller must pool it. */
bool span_trim_drained_end(span_t *s);

/* Blocks of s still allocated (for HOT and FLOATING spans): exact for the
 * owner; another thread (an idle trim) reads the remote count first and
 * `used` after it, so that a free in between errs towards "live". */
static inline uint32_t span_owned_live(const span_t *s)
{
    uint32_t freed = remote_count(atomic_load_explicit(&((span_t *)s)->remote, memory_order_acquire));
    uint32_t used = span_used_peek(s);
    return used > freed ? used - freed : 0;
}

/* Exclusive holder (a span no other thread can reach: fresh, a huge run's
 * header under the huge lock, reset): sets its state with no remote list
 * and no count. release: whoever finds the span after the holder publishes
 * it sees the header written before. */
static inline void span_set_exclusive_state(span_t *s, unsigned state)
{
    atomic_store_explicit(&s->remote, remote_word(state, s, NULL, 0), memory_order_release);
}

static inline unsigned span_state(span_t *s)
{
    return remote_state(atomic_load_explicit(&s->remote, memory_order_acquire));
}

/* A span with no free block and nothing to carve: a frontend's hot slot
 * points here while it has no span for the class, so the fast path needs
 * no NULL test. Never written. */
extern span_t span_empty;

/* Whether a is the start of a block this span has handed out, given the
 * offset of its first block: a whole number of blocks from the first, and
 * inside the carved part. One multiply and one compare do both. With
 * magic = floor(2^64 / bs) + 1 and step = bs * magic mod 2^64 (between 1
 * and bs), an offset q = k * bs has q * magic mod 2^64 = k * step, below
 * carved_limit = carved * step (= carved * bs * magic mod 2^64, how
 * span.c writes it) exactly when k < carved; any other q of
 * the span (0 < q mod bs, or q "negative": a before the first block) gives
 * at least 2^64 / bs - 2^14 > 2^40, far above any carved_limit (< 2^22).
 * Callers guarantee a lies in the span's 2 MiB, so a's offset in it is
 * its low bits. */
static inline bool span_is_block_start_at(const span_t *s, uintptr_t a, size_t blocks_offset)
{
    uint64_t q = (uint64_t)((a & SPAN_MASK) - blocks_offset);
    return q * s->divide_magic < owner_word_peek(&s->carved_limit);
}

/* The multiplier of span_is_block_start_at for a block size. */
static inline uint64_t span_divide_magic(size_t bs)
{
    uint64_t q = UINT64_MAX / bs;
    if (UINT64_MAX % bs == bs - 1)
        q++; /* bs divides 2^64 */
    return q + 1;
}

/* The first block of a block span: after the header and, in a checked or
 * tracking heap, the span's metadata (span.c). Derived from facts fixed
 * while the span serves its class, so the header needs no field for it. */
static inline char *span_first_block(const span_t *s)
{
    return s->bump_end - (size_t)span_capacity(s) * s->block_size;
}

/* Bytes of checked-mode bitmap a span of `capacity` blocks needs (a
 * multiple of 8; check.h). */
static inline size_t span_bitmap_bytes(uint32_t capacity)
{
    return ((size_t)capacity + 63) / 64 * 8;
}

/* Entry width of a tracking span's slack table (requested.h): a block's
 * slack is below its size (a request of 0 bytes gets the smallest class),
 * so it fits the smallest unsigned type that holds the block size. */
static inline size_t span_slack_entry_bytes(size_t block_size)
{
    if (block_size <= UINT8_MAX)
        return 1;
    if (block_size <= UINT16_MAX)
        return 2;
    return 4;
}

/* Bytes of slack table a span of `capacity` blocks needs (a multiple of 8). */
static inline size_t span_slack_table_bytes(size_t block_size, uint32_t capacity)
{
    return (span_slack_entry_bytes(block_size) * capacity + 7) & ~(size_t)7;
}

/* Index of block b in s (0 for the first block). */
static inline size_t span_block_index(const span_t *s, const block_t *b)
{
    return (size_t)((const char *)b - span_first_block(s)) / s->block_size;
}

static inline bool span_is_block_start(const span_t *s, uintptr_t a)
{
    return span_is_block_start_at(s, a, (size_t)(span_first_block(s) - span_base(s)));
}

/* The same, by the span's owner (from its copies of the two words, on
 * the header's first line), for a span whose blocks follow the lead
 * directly: every span of a heap that is neither checked nor tracking. The
 * free fast path only meets those (other heaps' spans are never tagged for
 * it) and saves computing the first block. The offset is taken modulo the
 * span, after the lead is subtracted (one instruction fewer than masking
 * first): an a inside the lead gives q in [2 MiB - SPAN_LEAD, 2 MiB), at or
 * past capacity * block_size, which the test refuses like any q beyond the
 * carved blocks. */
static inline bool span_is_block_start_plain(const span_t *s, uintptr_t a)
{
    uint64_t q = (uint64_t)((a - SPAN_LEAD) & SPAN_MASK);
    return q * s->owner_magic < owner_word_get(&s->owner_carved);
}


/* Exclusive holder: makes s a HOT span of class cls for heap (committing
 * its real span), grown to `level` (0: the class's own size; up to
 * GROWN_SPAN_LEVELS, tuning.h; a class that cannot grow has the same
 * geometry at every level). false with nothing changed when the heap's
 * limit or the kernel refuses the commit. */
bool span_init_blocks(span_t *s, struct sc_heap_s *heap, unsigned cls, unsigned level);

/* The committed bytes a span of class cls grown to `level` may keep when
 * it is set up (its real span): a pooled span with no more than this needs
 * no cutting back (span_pool_take_fit). */
size_t span_keep_bytes(const struct sc_heap_s *heap, unsigned cls, unsigned level);

/* Whether spans of class cls in heap have grown geometries (a plain heap's
 * classes of the smallest band). */
bool span_class_can_grow(const struct sc_heap_s *heap, unsigned cls);

/* The level block span s was set up grown to (0: not grown); and its real
 * span's bytes. */
unsigned span_grown_level(const span_t *s);
size_t span_real_bytes(const span_t *s);

/* Points heap->geometry at the shared table for the heap's flags, filling
 * it for the first heap of its kind (span.c, "THE SHARED GEOMETRY
 * TABLES"). Heap creation only, before any span is set up, under the lock
 * that serialises heap creation (the registry lock, heap.c). */
void span_geometry_init(struct sc_heap_s *heap);

/* Owner: moves a batch of never-used blocks onto the local free list. */
enum carve_result {
    CARVE_OK,
    CARVE_FULL,      /* the real span is fully carved */
    CARVE_NO_COMMIT, /* blocks are left, but the heap's limit (or the
                        kernel) refused to commit the next step */
};
enum carve_result span_carve(span_t *s);

/* Exclusive holder, before span_init_blocks: the bytes from the span start
 * that s's last use as a block span wrote and that are still committed
 * (resident, unless the kernel swapped them): its old bump pointer, capped
 * by committed. A fresh or cold span's is its header. */
size_t span_touched_bytes(const span_t *s);

/* Owner of a span just set up: carves at once the blocks that lie in the
 * first `touched` bytes (span_touched_bytes before the set-up), up to
 * CARVE_TOUCHED_BLOCKS of them. Those pages are resident already, so
 * linking them costs no memory, and a span of big blocks then needs no
 * slow path per CARVE_BYTES to hand them out; a span of small blocks gets
 * no more links than the cache keeps until they are handed out. */
void span_carve_touched(span_t *s, size_t touched);

/* Owner, with an empty local list: if at least min_count blocks were
 * freed remotely, takes them all as the local free list with one CAS. */
bool span_take_remote(span_t *s, uint32_t min_count);

/* Owner: gives a HOT or FLOATING span up (its thread exits, or a trim):
 * its local free blocks and uncarved blocks are counted into the remote
 * word, and the span becomes DETACHED, REUSABLE or POOLED, which is
 * returned: the caller puts a REUSABLE span on its reusable stack and a
 * POOLED one in the pool. The owner's map word must be gone already. */
unsigned span_give_up(span_t *s);

/* The free blocks from which a DETACHED span is REUSABLE: one in
 * DETACHED_REUSE_SHARE, or its reuse count if that is fewer (tuning.h). */
uint32_t span_detached_reuse_count(const span_t *s);

/* Holder of a span just popped from a reusable stack: if it is EMPTY,
 * marks it POOLED (for span_pool_put) and returns true. */
bool span_claim_if_empty(span_t *s);

/* A span just popped from a reusable stack, made HOT for the popper. */
enum span_claim {
    SPAN_CLAIM_BLOCKS, /* REUSABLE: its free blocks are the local list */
    SPAN_CLAIM_EMPTY,  /* EMPTY: every block free; set it up afresh */
    SPAN_CLAIM_LOST,   /* not a stacked state (cannot happen) */
};
enum span_claim span_claim_reusable(span_t *s);

/* Any thread but the owner: frees the n blocks head..tail (linked through
 * their first word) of s onto its remote list with one CAS, driving the
 * life cycle of an ownerless span. *moved_to is the state the span moved
 * to (REUSABLE: the caller pushes it on its reusable stack; POOLED: the
 * caller pools it; EMPTY: it stays on its stack), or 0. Returns
 * SC_ERR_NONE, or SC_ERR_DOUBLE_FREE with nothing changed (the span is
 * free already, the count would pass the capacity, or head is the remote
 * list's head). */
sc_error_t span_free_remote(span_t *s, block_t *head, block_t *tail, uint32_t n, unsigned *moved_to);


/* Number of blocks on a list (owner, or exclusive holder). */
uint32_t span_list_length(const block_t *b, const block_t **tail);

#endif /* SCALLOC_SPAN_H */
