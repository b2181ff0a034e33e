/*
 * Spans: the header, the remote word (state + remote free list + count),
 * and the transitions of the span life cycle (types.h, "THE SPAN LIFE
 * CYCLE"). Functions say who may call them: the owner (the frontend holding
 * the span HOT), an exclusive holder (popped from a stack or the pool), or
 * any thread.
 */
#ifndef SCALLOC_SPAN_H
#define SCALLOC_SPAN_H

#include "types.h"

/* remote word: state in bits 0..3, remote list head as an offset from the
 * span start in bits 4..24 (0 = empty: offset 0 is the header), count of
 * free blocks not on the owner's local list in bits 25..45. */
#define REMOTE_STATE_MASK ((uint64_t)0xF)
#define REMOTE_HEAD_SHIFT 4
#define REMOTE_COUNT_SHIFT 25
#define REMOTE_FIELD_MASK ((uint64_t)0x1FFFFF)

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
    return off ? (block_t *)((char *)s + off) : NULL;
}

static inline uint64_t remote_word(unsigned state, const span_t *s, const block_t *head,
                                   uint32_t count)
{
    uint64_t off = head ? (uint64_t)((const char *)head - (const char *)s) : 0;
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

/* Owner: moves its span from state `from` to `to` (HOT <-> FLOATING), the
 * remote list and count staying as they are. false if another thread
 * drained it first. */
bool span_set_owned_state(span_t *s, unsigned from, unsigned to);

/* Owner: blocks of s still allocated (for HOT and FLOATING spans). */
static inline uint32_t span_owned_live(const span_t *s)
{
    uint32_t used = atomic_load_explicit(&((span_t *)s)->used, memory_order_relaxed);
    uint32_t freed = remote_count(atomic_load_explicit(&((span_t *)s)->remote, memory_order_acquire));
    return used > freed ? used - freed : 0;
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
 * offset of its first block: inside the carved part and a whole number of blocks
 * from the first. The divisibility test multiplies by ceil(2^64 /
 * block_size) instead of dividing (exact for offsets below 2^32). */
static inline bool span_is_block_start_at(const span_t *s, uintptr_t a, size_t blocks_offset)
{
    uint64_t rel = (uint64_t)(a - ((uintptr_t)s + blocks_offset));
    return rel < atomic_load_explicit(&s->carved, memory_order_relaxed) &&
           rel * s->divide_magic <= s->divide_limit;
}

/* The first block of a block span: after the header and, in a checked or
 * tracking heap, the span's metadata (span.c). Derived from facts fixed
 * while the span serves its class, so the header needs no field for it. */
static inline char *span_first_block(const span_t *s)
{
    return s->bump_end - (size_t)span_capacity(s) * s->block_size;
}

/* Index of block b in s (0 for the first block). */
static inline size_t span_block_index(const span_t *s, const block_t *b)
{
    return (size_t)((const char *)b - span_first_block(s)) / s->block_size;
}

static inline bool span_is_block_start(const span_t *s, uintptr_t a)
{
    return span_is_block_start_at(s, a, (size_t)(span_first_block(s) - (const char *)s));
}

/* The same for a span whose blocks follow the header directly: every span
 * of a heap that is neither checked nor tracking. The free fast path only
 * meets those (other heaps' spans are never tagged for it) and saves
 * computing the first block. */
static inline bool span_is_block_start_plain(const span_t *s, uintptr_t a)
{
    return span_is_block_start_at(s, a, SPAN_HEADER_SIZE);
}


/* Exclusive holder: makes s a HOT span of class cls for heap (committing
 * its real span). false with nothing changed when the heap's limit or the
 * kernel refuses the commit. */
bool span_init_blocks(span_t *s, struct sc_heap_s *heap, unsigned cls);

/* Owner: moves a batch of never-used blocks onto the local free list. */
enum carve_result {
    CARVE_OK,
    CARVE_FULL,      /* the real span is fully carved */
    CARVE_NO_COMMIT, /* blocks are left, but the heap's limit (or the
                        kernel) refused to commit the next step */
};
enum carve_result span_carve(span_t *s);

/* Owner: if at least min_count blocks were freed remotely, takes them all
 * onto the local free list with one exchange. */
bool span_take_remote(span_t *s, uint32_t min_count);

/* Owner: gives a HOT or FLOATING span up (its thread exits, or a trim): its
 * local free blocks and uncarved blocks are counted into the remote word
 * and the span is DETACHED, or reusable, or goes to the pool if all is
 * free. */
void span_give_up(span_t *s, unsigned pool_slot);

/* Any thread: takes a reusable span of class cls from the heap and makes it
 * HOT for the caller; NULL if there is none. */
span_t *span_adopt_reusable(struct sc_heap_s *heap, unsigned cls);

/* Any thread but the owner: frees block b of s onto the remote list,
 * driving the life cycle. Returns SC_ERR_NONE or SC_ERR_DOUBLE_FREE
 * (nothing changed then). */
sc_error_t span_free_remote(span_t *s, block_t *b, unsigned pool_slot);

/* Exclusive holder: gives the physical memory of the span's blocks back
 * (everything past the header page). */
void span_release(span_t *s);

/* Number of blocks on a list (owner, or exclusive holder). */
uint32_t span_list_length(const block_t *b, const block_t **tail);

#endif /* SCALLOC_SPAN_H */
