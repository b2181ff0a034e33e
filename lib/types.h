/*
 * scalloc internal types — how the pieces fit together.
 *
 * HEAPS AND REGIONS. A heap (sc_heap_s) owns one or more arena regions:
 * large ranges of address space reserved PROT_NONE + MAP_NORESERVE, so that
 * reserving costs nothing and no overcommit setting matters. A region is cut
 * into 2 MiB virtual spans, aligned to 2 MiB, handed out by a bump pointer;
 * the first span(s) of each region hold the region's descriptor and its
 * per-span tables (span info and cold bits, arena.h). Outside a strict
 * commit limit a region is writable from the start (NORESERVE: free until
 * touched), so bumping a span costs no system call; its pages become
 * resident only when touched. Committed bytes are what the heap charges to
 * itself and its limit for the spans it uses or keeps. Heaps grow by adding
 * regions (each twice the previous one), so one heap can grow to the
 * machine's memory while thousands of heaps each reserve only a little.
 *
 * THE ADDRESS MAP. One process-wide table (address_map.h) holds one word per
 * 2 MiB of the user address space. It answers "which heap, which span" for
 * any pointer value in O(1) without touching the pointer's memory, which is
 * what makes sc_heap_of and the checks in sc_free safe for garbage. A word is
 * 0 (not ours), a heap pointer tagged MAP_SPAN (a span with a valid header)
 * or MAP_RESERVED (inside a region but no header: region descriptor, huge
 * continuation, not yet bumped), MAP_HUGE_ALIGNED (the first data span of
 * an over-aligned huge block), or an untagged frontend pointer: that
 * frontend owns the span (HOT or FLOATING) in a heap that is neither
 * checked nor tracking. The free fast path is one compare of that word
 * against the caller's frontend; everything else goes to the free
 * dispatcher (free.h), which reads the word once and classifies.
 *
 * SPANS. A span serves one size class. Only its real span — the blocks the
 * class needs, from SPAN_LEAD bytes in — is ever touched. Blocks have no
 * headers; a block's span is the 2 MiB that holds it. Each span header has
 * four cache lines (a power of two, for the table below): the first is
 * written by the owning thread on every allocation and free (local free
 * list, bump pointer, the counts word: `used` and the room to the next
 * life-cycle event) and read by nobody else on a fast path; the second
 * holds what every free reads, the owner's and other threads' (class,
 * sizes, heap, the block-start test's words), written on set-up and
 * carving only; the third holds `remote`, the only word other threads
 * write; the fourth is padding. With the owner's words and the facts that
 * remote frees read in one line, every remote free's read moved that line
 * to the freeing thread's cache and the owner's next allocation had to
 * take it back (its counts add stalled on it). Apart, producer-consumer
 * runs 29-48% faster at 1-8 threads, larson within 5% (README, Design
 * "Span headers"). The owner's frees read only the first line: it keeps
 * its own copies of the block-start test's two words there.
 *
 * THE SPAN HEADER TABLE. Headers do not live in their spans but side by
 * side in one process-wide table beside the address map, indexed like it:
 * the header of the span at address a is at a fixed origin plus
 * (a >> 21) << 8 (span_at), and a header's span is found the same way
 * back (span_base), so neither direction reads memory. A header at the
 * start of every 2 MiB would put the fast paths' hot line of every span
 * into the same few sets of every cache level and give each its own page:
 * a program touching a few hundred spans at random (frees scattered over a
 * heap, blocks handed between threads) misses in cache and TLB on headers
 * alone. In the table, neighbouring spans' headers share pages and spread
 * over the cache sets. The table is address space only (256 bytes per
 * 2 MiB, 16 GiB for the 47-bit user space, MAP_NORESERVE); its pages are
 * touched, and charged to the heap as committed, as the heap's spans are
 * bumped (arena.c). Where that much address space cannot be reserved
 * (ulimit -v), the table covers a window the size of the limit and every
 * region is placed inside it (address_map.c, arena.c). A span's first page
 * still stays committed while the span is known (the "first page" below):
 * it holds the span's first blocks.
 *
 * THE SPAN LIFE CYCLE. `remote` packs the span state, the remote free list
 * head (as an offset in the span), a count of free blocks the owner does
 * not hold and a generation; every transition is one CAS on it, in span.c
 * (or span_pool.c for pooling):
 *   HOT       a frontend allocates from it. The owner's frees are local (no
 *             atomics), other threads' frees are counted on the remote list
 *             and the owner takes them back when its local list runs out.
 *             Armed (frontend.c), the owner's free that empties it takes
 *             it off the hot slot, FLOATING and then kept as below.
 *   FLOATING  exhausted; it stays with its owner, in the owner's floating
 *             set for the class, with the same map word as a hot span, so
 *             the owner's frees take the fast path. The counts word stops
 *             the owner's free that makes the span reusable (it moves to
 *             the front of the set, where the next refill takes it back,
 *             HOT, before any other span) or empty (kept for the class, as
 *             DRAINED below, within a bound per frontend; else to the pool).
 *   DRAINED   a FLOATING span whose last blocks came back by remote frees:
 *             the freeing thread marks it (the owner no longer allocates
 *             from it, so the `used` it reads can only be stale upwards, and
 *             the generation, bumped when the owner makes a floating span
 *             hot again, defeats ABA), the owner pools it when it next looks
 *             (refill, trim, exit), and sc_heap_trim from any thread gives
 *             its memory back meanwhile (DRAINING while it does; ORPHANED if
 *             the owner exits then, and the trimmer pools it). The owner
 *             marks the empty spans it keeps for their class DRAINED too,
 *             and a trimmer takes a FLOATING span with every block free as
 *             if it were (its last free came below the event level).
 *   DETACHED  its owner's thread exited: every free is remote and counted.
 *             Reaching one block in DETACHED_REUSE_SHARE free (or the reuse
 *             threshold, if that is fewer) makes it
 *   REUSABLE  it is pushed on its heap's reusable stack for the class
 *             (reusable.h) and is taken (made HOT by CAS) before any fresh
 *             span. If its last block is freed there, it becomes
 *   EMPTY     fully free, still on the stack, its memory kept: a taker sets
 *             it up afresh; sc_heap_trim moves it to the pool.
 *   POOLED    in the heap's span pool, usable for any class.
 * A DETACHED span whose count reaches its capacity goes straight to the
 * pool, from the thread that freed the last block, in constant time.
 *
 * THE SPAN POOL. Per heap, several lock-free Treiber stacks ("slots"), each
 * on its own cache line, per bucket of committed bytes; a thread pushes and
 * pops its own slot first. Stack heads are tagged words (span address | ABA
 * counter): spans are 2 MiB aligned so the low 21 bits and the bits above
 * the 47-bit user address space hold a counter. The same stack type holds
 * each class's reusable set.
 *
 * THE RELEASE POLICY (span_pool.h). Pooled spans and free huge runs keep
 * their committed pages for reuse; they go back to the OS in bulk, whole
 * contiguous ranges per call, when they stayed unused past the heap's purge
 * delay or (oldest first) when the heap allocates while its unused bytes
 * are past the bound. Given back whole, pool spans become COLD: no header,
 * a bit in their region's cold bitmap, taken before fresh address space.
 * The coarse clock is read on slow paths only; there is no thread of its
 * own.
 *
 * FRONTENDS. One per (thread, heap): the thread's hot span per class (and,
 * for sizes up to SMALL_MAX, a table indexed by size / 16 that gives it in
 * one load), its floating sets, and its batches of remote frees: a free
 * into a span the frontend does not own waits in a small direct-mapped
 * table of per-span batches and reaches the span with one CAS per batch
 * (frontend.c, "REMOTE BATCHES"). Found by sc_alloc through a one-entry
 * thread-local cache (heap, frontend), then a small per-thread table keyed
 * by the heap's unique id. Frontends live in type-stable memory (never
 * unmapped) so that stale pointers can be compared safely. Links between
 * threads, heaps and frontends change only under the registry lock
 * (frontend creation, thread exit, heap destroy), never on the hot path.
 *
 * LAYERS. Each module uses only modules below it; lib/README.md has the
 * order and tests/check_layering.sh checks it.
 */
#ifndef SCALLOC_TYPES_H
#define SCALLOC_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalloc/scalloc.h"
#include "size_class.h"
#include "tuning.h"

/* Library-internal symbols: direct (not GOT) access from the fast paths. */
#define SC_INTERNAL __attribute__((visibility("hidden")))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Internal invariants: checked in a SCALLOC_DEBUG build (cmake
 * -DSCALLOC_DEBUG=ON, and the sanitizer builds), compiled out otherwise.
 * A failure prints the condition and its place and aborts (error.c). */
#ifdef SCALLOC_DEBUG
_Noreturn void sc_assert_fail(const char *cond, const char *file, int line);
#define SC_ASSERT(c) (likely(c) ? (void)0 : sc_assert_fail(#c, __FILE__, __LINE__))
#else
#define SC_ASSERT(c) ((void)0)
#endif


#define CACHE_LINE 64

#define SPAN_SHIFT 21
#define SPAN_SIZE ((size_t)1 << SPAN_SHIFT)
#define SPAN_MASK (SPAN_SIZE - 1)
/* Bytes at the start of a span's memory before its blocks (after them the
 * checked bitmap and requested-size table of a checked or tracking heap's
 * span, span.c, span_first_block) or before a huge block's data. The span
 * header is not there but in the span header table (THE SPAN HEADER
 * TABLE above); the lead keeps every block and huge block 128-byte aligned
 * away from the span start, so that the start never is one. */
#define SPAN_LEAD ((size_t)2 * CACHE_LINE)
/* User addresses are below 2^47 on x86-64 and aarch64 (48-bit VA). */
#define ADDRESS_BITS 47
#define MAP_ENTRIES ((size_t)1 << (ADDRESS_BITS - SPAN_SHIFT))

/* One count of size classes, one largest class size: the public header's
 * names, the size-class table's, and the frontend's, tied together. */
#define NUM_CLASSES SC_NUM_CLASSES
_Static_assert(SIZE_CLASS_COUNT == SC_NUM_CLASSES, "size_class.h and scalloc.h disagree on the class count");
_Static_assert(SIZE_CLASS_MAX == SC_MAX_CLASS_SIZE, "size_class.h and scalloc.h disagree on the largest class");
_Static_assert(SIZE_CLASS_TABLE_MAX == SMALL_MAX, "the frontend's small table covers the class table's sizes");

typedef struct block_s {
    struct block_s *next;
} block_t;

/* Span states, kept in the low bits of span_t.remote (see "THE SPAN LIFE
 * CYCLE" above). */
enum span_state {
    SPAN_HOT = 1,       /* owned; its frontend allocates from it */
    SPAN_FLOATING = 2,  /* owned; exhausted, refilling in its owner's set */
    SPAN_REUSABLE = 3,  /* ownerless, on the heap's reusable stack */
    SPAN_EMPTY = 4,     /* ownerless, every block free, still on that stack */
    SPAN_POOLED = 5,    /* in the span pool, usable for any class */
    SPAN_DETACHED = 6,  /* ownerless (its thread exited), refilling */
    SPAN_DRAINED = 7,   /* owned, floating, emptied by a remote free: the
                           owner pools it when it next looks */
    SPAN_DRAINING = 8,  /* ... while sc_heap_trim gives its memory back */
    SPAN_ORPHANED = 9,  /* ... and its owner left: the trimmer pools it */
};

/* What a span is used for (immutable while it is). */
enum span_kind {
    SPAN_KIND_BLOCKS = 1, /* blocks of one size class */
    SPAN_KIND_HUGE = 2,   /* first span of a huge block or a free run:
                             bump = data start, bump_end = data end,
                             capacity = spans in the run, state HOT while
                             live and POOLED while free; stack_next links
                             free runs */
};

struct sc_heap_s;
struct sc_frontend_s;

/* A word that only its owner thread writes and that other threads only
 * read (statistics, remote frees; at rest exact). The owner's update must
 * be one plain add, not a relaxed atomic load and store (gcc does not fuse
 * those), so it is a plain integer; readers use a relaxed atomic load of it
 * (span.h, owner_word_peek). On x86-64 and aarch64 an aligned 64-bit store
 * is single-copy atomic, so a reader sees an old or a new value, never a
 * torn one; a stale value is what any concurrent reader of a moving count
 * gets.
 * ThreadSanitizer builds use a C11 atomic instead so that the tool sees
 * every access as atomic and keeps checking everything else. */
#if defined(__SANITIZE_THREAD__)
#define SC_OWNER_WORD_ATOMIC 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SC_OWNER_WORD_ATOMIC 1
#endif
#endif
#ifdef SC_OWNER_WORD_ATOMIC
typedef _Atomic uint64_t owner_word_t;
#else
typedef uint64_t owner_word_t;
#endif

/* Reading and writing owner words. */
static inline uint64_t owner_word_get(const owner_word_t *w)
{
#ifdef SC_OWNER_WORD_ATOMIC
    return atomic_load_explicit((owner_word_t *)w, memory_order_relaxed);
#else
    return *w;
#endif
}

static inline void owner_word_set(owner_word_t *w, uint64_t v)
{
#ifdef SC_OWNER_WORD_ATOMIC
    atomic_store_explicit(w, v, memory_order_relaxed);
#else
    __atomic_store_n(w, v, __ATOMIC_RELAXED);
#endif
}

/* Adds d and returns the new value: one add instruction in the plain case. */
static inline uint64_t owner_word_add(owner_word_t *w, uint64_t d)
{
#ifdef SC_OWNER_WORD_ATOMIC
    uint64_t v = atomic_load_explicit(w, memory_order_relaxed) + d;
    atomic_store_explicit(w, v, memory_order_relaxed);
    return v;
#else
    return *w += d;
#endif
}

/* The same with release order: the owner's accesses before it (a free's
 * push) are seen by whoever reads the new value with owner_word_acquire,
 * for they may then hand the span on (a remote freer that finds the span
 * drained by it, then a thread that pools it for an idle owner). On x86-64
 * every store is a release store once the compiler keeps the order, so the
 * add stays one instruction; elsewhere it is a release store. */
static inline uint64_t owner_word_add_release(owner_word_t *w, uint64_t d)
{
#if defined(SC_OWNER_WORD_ATOMIC)
    uint64_t v = atomic_load_explicit(w, memory_order_relaxed) + d;
    atomic_store_explicit(w, v, memory_order_release);
    return v;
#elif defined(__x86_64__)
    atomic_signal_fence(memory_order_release);
    return *w += d;
#else
    uint64_t v = *w + d;
    __atomic_store_n(w, v, __ATOMIC_RELEASE);
    return v;
#endif
}

/* Another thread's read that pairs with owner_word_add_release. */
static inline uint64_t owner_word_acquire(const owner_word_t *w)
{
#ifdef SC_OWNER_WORD_ATOMIC
    return atomic_load_explicit((owner_word_t *)w, memory_order_acquire);
#else
    return __atomic_load_n(w, __ATOMIC_ACQUIRE);
#endif
}

static inline uint64_t owner_word_peek(const owner_word_t *w)
{
#ifdef SC_OWNER_WORD_ATOMIC
    return atomic_load_explicit((owner_word_t *)w, memory_order_relaxed);
#else
    return __atomic_load_n(w, __ATOMIC_RELAXED);
#endif
}


typedef struct span_s {
    /* --- line 0: the owner's. Written by the frontend that owns the span
     * (HOT or FLOATING) or by an exclusive holder (a span taken from the
     * pool or a stack) on every allocation and free; other threads read
     * these words only for statistics and trims, never on a fast path. */
    block_t *free;            /* local free list: owner only */
    /* Next block never handed out. Atomic (relaxed: a plain mov) because
     * statistics read it while the owner carves. */
    _Atomic(char *) bump;
    /* The owner's counts in one word (span.h, "THE COUNTS WORD"): `used`
     * (blocks handed out and not freed locally, remote frees included) in
     * the low bits, and above them the room left before the next free
     * that must look at the span's life cycle (negative: that free came).
     * One add updates both, so the fast paths pay one instruction, and
     * other threads read an exact `used` from one word. */
    owner_word_t counts;
    /* Links in the owner's floating set for the class (owner only). */
    struct span_s *set_next, *set_prev;
    /* The owner's copies of divide_magic and carved_limit (line 1), for
     * the block-start test of its own fast-path frees (span.h,
     * span_is_block_start_plain): written with the originals, read by the
     * owner only, so that its frees read this line alone. Measured under
     * cachegrind, 600,000 blocks of 16-256 B freed by their owner in random
     * order: sc_free's D1 read misses 579,446 reading line 1, 295,029 with
     * the copies, the same instructions. */
    uint64_t owner_magic;
    owner_word_t owner_carved;
    /* Owner only: nonzero while the span waits, empty, at the front of its
     * owner's floating set (frontend.c, "KEPT EMPTY SPANS"): 1 when kept,
     * 2 once a retirement look saw it there. */
    uint8_t kept_empty;
    /* --- line 1: what every free by another thread reads (the owner's
     * slow paths too).
     * The immutable facts (kind, class, sizes, heap) are set before the
     * span is published with release and read by others after an acquire;
     * carved_limit changes when the owner carves, owner and reuse_count
     * rarely. Nobody writes this line per operation, so it stays shared in
     * every freeing thread's cache. */
    _Alignas(CACHE_LINE) uint32_t block_size; /* bytes per block (class size) */
    /* capacity, size_class and kind are set by the span's exclusive holder
     * and read by statistics while other threads run: relaxed atomics
     * (plain movs), read through span_capacity() and friends. */
    _Atomic uint32_t capacity; /* blocks in the real span; spans in a huge run */
    union {
        /* Block spans: the block-start test without a division (span.h,
         * span_is_block_start_at): floor(2^64 / block_size) + 1. */
        uint64_t divide_magic;
        /* A huge block's header: the bytes the caller asked for. */
        size_t huge_requested;
    };
    struct sc_heap_s *heap;   /* owning heap, fixed for the span's life */
    /* Carved bytes (from the first block) times divide_magic, modulo 2^64:
     * an offset q from the first block is a carved block start iff
     * q * divide_magic < carved_limit (span.h, span_is_block_start_at).
     * Written by the owner when it carves, read by remote frees: an owner
     * word, so that the owner's fast path compares it straight from
     * memory; 64 bits (the value fits 32) to compare it with the 64-bit
     * product. */
    union {
        owner_word_t carved_limit;
        /* A huge block's header: the bytes from the header that may hold a
         * former block's data (huge.c, huge_clear_for_calloc). */
        size_t huge_dirty_end;
    };
    _Atomic uint16_t size_class;
    _Atomic uint8_t kind;     /* enum span_kind */
    /* Free blocks at which an ownerless span is reusable (and a floating
     * one its owner's to refill): the class's reuse threshold from set-up,
     * lowered until the next set-up on a span that became REUSABLE from
     * DETACHED_REUSE_SHARE free (span.c, reusable_keep_threshold). Relaxed
     * atomic: remote frees read it while that thread writes it. */
    _Atomic uint32_t reuse_count;
    /* End of the real span's blocks; less capacity * block_size, the first
     * block (span_first_block). */
    char *bump_end;
    /* The frontend that owns the span (HOT or FLOATING), else NULL. Set by
     * the owner or an exclusive holder; read by frees on other threads only
     * to compare with their own frontend (relaxed). */
    _Atomic(struct sc_frontend_s *) owner;
    /* --- line 2: written by any thread, only by CAS, or by an exclusive
     * holder on slow paths. */
    _Alignas(CACHE_LINE) _Atomic uint64_t remote;
    /* Link on a span stack (pool or reusable); written by the span's
     * exclusive holder before a release push, read by poppers that may race
     * with a later push (hence atomic, relaxed). */
    _Atomic(struct span_s *) stack_next;
    /* committed: bytes from the span start charged to the heap (its
     * committed_bytes and limit); released spans keep only the first page.
     * rw_bytes: bytes from the span start that are read-write. Released
     * pages stay read-write (MADV_DONTNEED, no VMA split), so rw_bytes can
     * exceed committed. Written by the exclusive holder only; committed is
     * an owner word because statistics read it while the holder changes it
     * (sc_heap_get_stats' resident walk, arena_resident_bytes). */
    owner_word_t committed;
    size_t rw_bytes;
    /* Coarse ms at which a remote free last made the span DRAINED
     * (span_pool_note_drained; relaxed): the release policy's sweep gives a
     * drained span's memory back only once it stayed so a whole delay. */
    _Atomic uint32_t drained_ms;
    /* --- line 3: padding, so that the header's size is a power of two
     * (the header table is indexed by shifting). */
    _Alignas(CACHE_LINE) char pad[CACHE_LINE];
} span_t;

_Static_assert(sizeof(span_t) == 4 * CACHE_LINE, "span header is four cache lines");
/* The lines' roles (above): what the owner writes per operation apart from
 * what other threads' frees read, and both apart from `remote`. */
#define SPAN_LINE_OF(field) (offsetof(span_t, field) / CACHE_LINE)
_Static_assert(SPAN_LINE_OF(free) == 0 && SPAN_LINE_OF(counts) == 0 && SPAN_LINE_OF(bump) == 0 &&
                   SPAN_LINE_OF(owner_magic) == 0 && SPAN_LINE_OF(owner_carved) == 0,
               "the owner's per-operation words share line 0");
_Static_assert(SPAN_LINE_OF(kind) == 1 && SPAN_LINE_OF(size_class) == 1 &&
                   SPAN_LINE_OF(divide_magic) == 1 && SPAN_LINE_OF(carved_limit) == 1 &&
                   SPAN_LINE_OF(heap) == 1 && SPAN_LINE_OF(owner) == 1 &&
                   SPAN_LINE_OF(block_size) == 1 && SPAN_LINE_OF(capacity) == 1,
               "what other threads' frees read shares line 1");
_Static_assert(SPAN_LINE_OF(remote) == 2, "remote has line 2");
#undef SPAN_LINE_OF
/* log2 of the header size: the header table (address_map.h) is indexed by
 * shifting. */
#define SPAN_HEADER_SHIFT 8
_Static_assert(sizeof(span_t) == (size_t)1 << SPAN_HEADER_SHIFT, "header size is a power of two");

static inline uint32_t span_capacity(const span_t *s)
{
    return atomic_load_explicit(&((span_t *)s)->capacity, memory_order_relaxed);
}

static inline void span_set_capacity(span_t *s, uint32_t v)
{
    atomic_store_explicit(&s->capacity, v, memory_order_relaxed);
}

static inline uint32_t span_reuse_count(const span_t *s)
{
    return atomic_load_explicit(&((span_t *)s)->reuse_count, memory_order_relaxed);
}

static inline void span_set_reuse_count(span_t *s, uint32_t v)
{
    atomic_store_explicit(&s->reuse_count, v, memory_order_relaxed);
}

static inline unsigned span_class(const span_t *s)
{
    return atomic_load_explicit(&((span_t *)s)->size_class, memory_order_relaxed);
}

static inline void span_set_class(span_t *s, unsigned v)
{
    atomic_store_explicit(&s->size_class, (uint16_t)v, memory_order_relaxed);
}

static inline unsigned span_kind(const span_t *s)
{
    return atomic_load_explicit(&((span_t *)s)->kind, memory_order_relaxed);
}

static inline void span_set_kind(span_t *s, unsigned v)
{
    atomic_store_explicit(&s->kind, (uint8_t)v, memory_order_relaxed);
}

/* A lock-free LIFO of spans: head is (span address | tag). */
typedef struct span_stack_s {
    _Atomic uint64_t head;
} span_stack_t;

typedef struct pool_slot_s {
    _Alignas(CACHE_LINE) span_stack_t stack;
    char pad[CACHE_LINE - sizeof(span_stack_t)];
} pool_slot_t;

/* Descriptor of one arena region, stored at the start of the region's first
 * span(s) ("meta spans"), followed by the region's per-span tables. */
typedef struct region_s {
    char *base;                 /* 2 MiB aligned, = this descriptor's span */
    size_t size;                /* bytes reserved */
    _Atomic(char *) bump;       /* next virtual span never handed out */
    struct region_s *next;      /* the heap's regions, newest first */
    void *mapping;              /* what os_reserve_aligned mapped, for destroy */
    size_t mapping_size;
    size_t spans;               /* size / SPAN_SIZE */
    size_t meta_spans;          /* spans at base holding this and the tables */
    /* Bytes of header table pages charged as committed (arena.c,
     * headers_charge): the pages up to the last bumped span's header. */
    _Atomic size_t headers_committed;
    size_t meta_committed;      /* bytes of them charged as committed */
    /* One word per span of the region (arena.c, "span info"): for a span
     * that is free but keeps committed pages (pooled, or part of a free huge
     * run), when it became unused, how many pages from its start are
     * committed, and flags. Pool spans' words are written by the span's
     * exclusive holder (relaxed: the pool's release push / acquire pop order
     * them); huge spans' under the heap's retain_lock; scans read them
     * relaxed as estimates. */
    _Atomic uint64_t *info;
    /* Bit per span, under the heap's retain_lock: cold (free, all its pages
     * given back including the header, not on any stack; taken before fresh
     * address space) and purging (being given back right now). */
    uint64_t *cold;
    uint64_t *purging;
    /* Bits per span (arena.h, "Marked spans"), any thread (relaxed RMW):
     * spans marked since the last sweep (mark_new), and those the sweep
     * before saw as new (mark_old), which the next sweep looks at:
     * floating spans that remote frees DRAINED, whose memory goes if still
     * DRAINED (span_pool.c, span_pool_release_drained). A bit may outlive
     * the state; the sweep looks at the span. */
    _Atomic uint64_t *mark_new;
    _Atomic uint64_t *mark_old;
    size_t cold_words;          /* words in each bitmap */
    size_t cold_first;          /* no cold bit below this word (retain_lock) */
} region_t;

enum heap_state { HEAP_FREE_SLOT = 0, HEAP_LIVE = 1, HEAP_DESTROYED = 2 };

typedef struct sc_frontend_s sc_frontend_t;

/* A size class's span geometry in one kind of heap: where its blocks
 * start (after a checked or tracking heap's metadata), how many fit and
 * what the real span touches. Fixed by the heap's flags, so computed once
 * per kind of heap (span.c, span_geometry_init) and shared, instead of on
 * every span set-up. */
typedef struct {
    uint32_t capacity;    /* blocks in the real span */
    uint32_t first;       /* offset of the first block from the span start */
    uint32_t real;        /* bytes from the span start the real span
                             touches, rounded up to pages */
    uint32_t first_step;  /* bytes committed at set-up (metadata and the
                             first block); carving commits the rest */
    uint64_t divide_magic;/* span_divide_magic of the class's size */
} span_geometry_t;

struct sc_heap_s {
    /* Unique for the life of the process; a heap handle reused after
     * destroy gets a new id, which invalidates thread-local caches. */
    _Atomic uint64_t id;
    _Atomic int state;          /* enum heap_state */
    unsigned flags;
    uint32_t reuse_threshold;   /* percent */
    size_t limit_bytes;
    size_t reset_keep_bytes;
    size_t first_region_size;
    char name[48];

    /* Regions: the current (newest) one is bumped lock-free; adding one
     * takes grow_lock. */
    _Atomic(region_t *) regions;
    pthread_mutex_t grow_lock;
    size_t next_region_size;

    /* Accounting of address space (atomic: updated by any thread on span
     * level events, never per block). */
    _Atomic size_t reserved_bytes;
    _Atomic size_t committed_bytes;

    /* Bumped by sc_heap_trim; each frontend compares it with the value it
     * saw last on its slow paths and trims its own hot spans when it moved
     * (hot spans are theirs alone to touch). */
    _Atomic uint64_t trim_epoch;

    /* Reusable spans whose last block was freed while they sat on their
     * stack (EMPTY) since the stacks were last swept: the next allocation
     * slow path moves them to the pool, where the release policy sees
     * them (frontend.c, reusable_sweep_empty). */
    _Atomic size_t reusable_emptied;

    /* Drained spans (region_t.mark_new): nonzero
     * while some may be marked, and the coarse ms from which the next
     * sweep may run (once per purge delay). */
    _Atomic uint32_t drained_marked;
    _Atomic uint32_t drained_sweep_due;

    /* Frontends of this heap, under the registry lock. */
    sc_frontend_t *frontends;
    size_t frontend_count;
    /* The coarse ms from which the next automatic idle trim may look at
     * the other frontends (registry.c); taken by a CAS. */
    _Atomic uint32_t idle_look_due;
    /* DRAINED SPANS OF IDLE OWNERS (registry.c): set when a frontend's
     * first drained class since its owner last looked was reported,
     * cleared by the look's election (arena_sweep_elect); and the coarse ms
     * from which the next look may run, taken by a CAS. */
    _Atomic uint32_t drained_waiting;
    _Atomic uint32_t drained_look_due;

    /* Reusable spans, one stack per class. */
    span_stack_t reusable[NUM_CLASSES];

    /* The span pool: a stack per slot for each size bucket of committed
     * bytes the pooled spans kept (span_pool.c), so that a taker that
     * knows what its class needs gets a span that needs no cutting down
     * (which would cost a madvise), and warm big spans stay for big
     * classes. */
    pool_slot_t pool[POOL_BUCKETS][POOL_SLOTS];

    /* Each class's span geometry under this heap's flags, by growth level
     * (geometry[level][cls]): [0] its own real span, [1..GROWN_SPAN_LEVELS]
     * its grown ones (tuning.h, GROWN_SPAN_AFTER; the same as [0] where the
     * class does not grow). A table shared by every heap with the same
     * flags (span.c, "THE SHARED GEOMETRY TABLES"). */
    const span_geometry_t (*geometry)[NUM_CLASSES];

    /* The release policy (span_pool.c, arena.c): free spans and free huge
     * runs keep their committed pages for reuse; they go back to the OS in
     * bulk once they stayed unused for purge_delay_ms, or when unused_bytes
     * passes the bound (retain_bytes, or the default). */
    uint32_t purge_delay_ms;    /* UINT32_MAX: never by time */
    size_t retain_bytes;        /* 0: the default bound (span_pool.c) */
    /* Committed bytes that are free for reuse and could go back: pooled
     * spans' committed bytes and free huge runs' pages (less each run's
     * first page). Any thread, atomic. */
    _Atomic size_t unused_bytes;
    /* The part of unused_bytes in free huge runs (what the default bound
     * applies to). */
    _Atomic size_t unused_huge_bytes;
    /* The high-water of the bytes in use (committed - unused) in the
     * current window of RETAIN_PEAK_WINDOW_MS and in the one before, and
     * when the current one began: the default bound lets free huge pages
     * stay while the heap is below its recent peak (span_pool.c). Hints:
     * relaxed atomics, any thread. */
    _Atomic size_t in_use_peak, in_use_peak_before;
    _Atomic uint32_t in_use_window;
    /* When the oldest unused memory becomes due: PURGE_ARMED | coarse ms,
     * or 0 when nothing waits (span_pool.c). */
    _Atomic uint64_t purge_due;
    /* Guards the regions' span info of huge runs, the cold and purging
     * bits, and the purge itself (one purger at a time; others skip it). */
    pthread_mutex_t retain_lock;

    /* Huge blocks: free runs of spans, address ordered, coalesced; huge
     * allocation is rare and expensive anyway, so a mutex guards them. */
    pthread_mutex_t huge_lock;
    span_t *huge_free_runs;
    size_t huge_blocks;         /* under huge_lock */
    size_t huge_bytes;          /* usable bytes, under huge_lock */
    size_t huge_requested;      /* under huge_lock */
    /* Map entries the heap's page moves may have added, charged to the
     * process's budget (os_map_budget_take); under huge_lock. */
    size_t huge_map_charge;
    /* Tracking heaps: the slack counters of frontends that left, and the
     * offset that makes the sum zero after a reset (requested.h). Under
     * the registry lock. */
    size_t retired_slack;

    /* Link in the global list of free heap handles. */
    struct sc_heap_s *free_next;
};

typedef struct thread_state_s thread_state_t;

#define SMALL_SLOTS (SMALL_MAX / 16 + 1)

/* Remote frees collected per destination span before one CAS hands the
 * batch over (frontend.c, "REMOTE BATCHES"; sizes in tuning.h). */

/* One slot. `span` and `count` are written by the frontend's owner only
 * and read by statistics (owner words: span.h), which count the blocks
 * waiting here as freed. */
typedef struct remote_batch_s {
    owner_word_t span;          /* span_t *; 0: slot empty */
    block_t *head, *tail;       /* the blocks, linked through their first word */
    owner_word_t count;
} remote_batch_t;

struct sc_frontend_s {
    /* What the allocation fast path reads: small[(n + 15) >> 4] is the hot
     * span of the class of n (n <= SMALL_MAX; bigger blocks come off hot[]
     * behind the owner's gate, frontend_alloc_gated), hot[] the hot span
     * of each class. Never NULL: the empty span when none. A checked or tracking
     * heap keeps both all empty and allocates from slow_hot on its slow
     * path (check.h, requested.h). */
    span_t *small[SMALL_SLOTS];
    span_t *hot[NUM_CLASSES];
    span_t *slow_hot[NUM_CLASSES];
    /* Per class, the owner's floating spans, oldest first: a circular
     * doubly linked list through span_t.set_next/set_prev (the tail is
     * head->set_prev), so an emptied span leaves it in O(1). Taken before
     * any span from elsewhere once enough of their blocks are free. Owner
     * only. A floating span's map word is the frontend, as a hot span's, so
     * the owner's frees into it take the fast path. */
    span_t *floating[NUM_CLASSES];
    /* How many spans each floating set holds (owner only): a class with
     * GROWN_SPAN_AFTER of them gets grown spans, with twice as many spans
     * grown once more (tuning.h). */
    uint32_t floating_spans[NUM_CLASSES];
    struct sc_heap_s *heap;     /* NULL once the heap was destroyed */
    uint64_t heap_id;
    thread_state_t *thread;     /* owning thread */
    unsigned pool_slot;         /* preferred span pool slot */
    uint64_t trim_epoch;        /* heap's trim_epoch when last trimmed */
    /* Retiring empty hot spans (frontend.c, frontend_retire_empty_hot):
     * coarse ms of the next look, and the classes whose hot span was
     * empty at the last one. Owner only. */
    uint32_t retire_due;
    uint32_t retire_countdown;  /* slow paths until the clock is read */
    /* AUTOMATIC IDLE TRIM (registry.c): the coarse ms of the owner's last
     * clock reading on its allocation slow path (written by the owner,
     * relaxed; read by other threads to tell an idle owner), the reading
     * the owner's own look last acted on (owner only), and when another
     * thread last trimmed this frontend as idle, if ever (both under the
     * registry lock). */
    _Atomic uint32_t active_ms;
    uint32_t idle_look_seen;
    uint32_t idle_trimmed_ms;
    bool idle_trimmed;
    uint64_t empty_hot_seen;
    /* Committed bytes of the floating spans kept empty for their class
     * (frontend.c, "KEPT EMPTY SPANS"), and the classes that may have
     * some. Owner only. */
    size_t kept_empty_bytes;
    uint64_t kept_empty_classes;
    /* What they may commit (tuning.h, FRONTEND_KEEP_EMPTY_BYTES), and the
     * spans that went to the pool for want of it since the last look.
     * Owner only. */
    size_t keep_budget;
    uint32_t keep_overflow;
    /* Armed hot spans (frontend.c, "ARMED HOT SPANS"): allocation slow
     * paths and free events so far, and per class the count when a kept
     * span of the class was last taken back. Owner only. */
    uint32_t slow_ticks;
    uint32_t reclaim_tick[NUM_CLASSES];
    /* Tracking heaps: slack of the blocks this frontend allocated less the
     * slack of those it freed, modulo 2^64 (requested.h). Written by the
     * owner only (relaxed load + store), read by statistics. */
    _Atomic size_t slack;
    /* Remote frees not yet handed to their spans, and their bytes in all
     * (owner only; not 0 exactly when a block waits). */
    remote_batch_t remote[REMOTE_SLOTS];
    uint32_t remote_pending_bytes;
    /* Classes in which other threads' frees drained a floating span of
     * this frontend (bit c: class c): set by them (atomic OR), taken by
     * the owner on its slow paths, which then pools those spans. */
    _Atomic uint64_t drained_classes;
    /* The coarse ms when drained_classes last went from none to some (a
     * hint: racing reporters may leave an earlier or later time). Read by
     * other threads' looks at idle owners (registry.c). */
    _Atomic uint32_t drained_since;
    /* Classes of which other threads began a batch of frees into this
     * frontend's spans since the owner's last retirement look (bit c:
     * class c): set by them (relaxed OR, at most once per batch they
     * start), taken by the owner at its looks into remote_classes_before
     * (owner only). A class in either gets no grown spans (frontend.c,
     * class_grow_level): a hint, never a guarantee. */
    _Atomic uint64_t remote_classes;
    uint64_t remote_classes_before;
    /* IDLE TRIM (frontend.c): another thread's sc_heap_trim gives back the
     * pages of this frontend's empty hot spans while its thread is away
     * from the slow paths. busy: the owner is on a slow path (written by
     * the owner only); trim_closed: a trimmer is at work here, and the
     * owner's slow paths wait for it; gate_depth: the owner's nesting of
     * slow paths (owner only). parked[c] is a hot span the trimmer took off
     * the fast path's slots (classes in parked_classes; those whose pages
     * it gave back also in trimmed_classes): written by the trimmer, read
     * and cleared by the owner, both behind the gate. */
    _Atomic uint32_t busy;
    _Atomic uint32_t trim_closed;
    uint32_t gate_depth;
    uint64_t parked_classes;
    uint64_t trimmed_classes;
    span_t *parked[NUM_CLASSES];
    /* For a trimmed class: the head of the span's free list when its pages
     * went, the one block an allocation under way may have taken. */
    const block_t *parked_head[NUM_CLASSES];
    /* Links, under the registry lock. */
    sc_frontend_t *heap_next, *heap_prev;
    sc_frontend_t *thread_next;
    sc_frontend_t *free_next;   /* type-stable free list of frontends */
};

/* heap id -> frontend, in a thread's own table. */
typedef struct frontend_slot_s {
    uint64_t heap_id;           /* 0 = empty */
    sc_frontend_t *frontend;
} frontend_slot_t;

/* Per-thread state: the frontends this thread created, and a table to find
 * them by heap id. Only the thread itself reads its table; links change
 * under the registry lock. */
struct thread_state_s {
    sc_frontend_t *frontends;   /* list via thread_next, under registry lock */
    frontend_slot_t *table;     /* open addressing, power-of-two size */
    size_t table_size;
    size_t table_used;
    size_t bytes;               /* mapping size of this state + table */
    unsigned pool_slot;
};

/* The one-entry cache sc_alloc checks first: the heap used last and this
 * thread's frontend for it. A heap handle can be reused after destroy, so a
 * hit may find a dead frontend; destroy empties dead frontends' hot spans,
 * which sends the next allocation to the slow path, where the frontend is
 * checked against the heap. Starts as (NULL, the dead frontend). */
typedef struct thread_cache_s {
    struct sc_heap_s *heap;
    sc_frontend_t *frontend;
} thread_cache_t;

#endif /* SCALLOC_TYPES_H */
