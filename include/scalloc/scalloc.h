/*
 * scalloc — explicit, isolated heaps built on the scalloc allocation
 * algorithm (virtual spans, a lock-free span pool, thread-local frontends).
 *
 * A program creates heaps (one per subsystem, tenant, request...) and
 * allocates from them from any thread. libc malloc is untouched: scalloc
 * never interposes on it, and both coexist in one process.
 *
 *     sc_heap_t *h = sc_heap_create(NULL);        // default settings
 *     char *s = sc_alloc(h, 100);                  // any thread
 *     sc_free(h, s);                               // any thread
 *     sc_heap_destroy(h);                          // everything at once
 *
 * Thread safety, unless a call says otherwise: every call may run
 * concurrently with any other call on the same or other heaps, from any
 * thread. The exceptions are the whole-heap operations sc_heap_destroy and
 * sc_heap_reset, which need the caller to guarantee that no other thread uses
 * that heap during the call (see each).
 *
 * Errors: requests that cannot be met return NULL and set errno (ENOMEM,
 * EINVAL). Misuse (freeing a pointer the heap does not own, double free,
 * using a destroyed heap, a frontend from the wrong thread) is reported to
 * the error handler (sc_set_error_handler). The default handler prints one
 * line to stderr and aborts; an installed handler may return, and then the
 * call that detected the misuse does nothing.
 */
#ifndef SCALLOC_SCALLOC_H
#define SCALLOC_SCALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SCALLOC_VERSION_MAJOR 0
#define SCALLOC_VERSION_MINOR 1
#define SCALLOC_VERSION_PATCH 0

#if defined(__GNUC__)
#define SC_API __attribute__((visibility("default")))
#define SC_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#else
#define SC_API
#define SC_MALLOC_LIKE
#endif

/* The four calls of the fast path are called without the PLT where the
 * compiler can (GCC's noplt): a position-independent program then calls
 * them through its GOT in one instruction instead of a call and a jump.
 * The symbols are bound at load time instead of on first call; a static
 * link turns the call back into a direct one. */
#if defined(__has_attribute)
#if __has_attribute(noplt)
#define SC_FAST_CALL __attribute__((noplt))
#endif
#endif
#ifndef SC_FAST_CALL
#define SC_FAST_CALL
#endif

/* An isolated heap. Opaque; created by sc_heap_create. */
typedef struct sc_heap_s sc_heap_t;

/* One thread's frontend for one heap (its hot spans, one per size class).
 * Belongs to the thread that obtained it with sc_heap_thread and may only be
 * used by that thread; it becomes invalid when that thread exits or the heap
 * is destroyed. */
typedef struct sc_frontend_s sc_thread_t;

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

enum sc_heap_flags {
    SC_HEAP_DEFAULT = 0,
    /* Checked mode: every free is verified exhaustively (a double free of
     * any block is reported, not only the cheap cases). Slower. The
     * environment variable SCALLOC_CHECKED=1 turns it on for every heap. */
    SC_HEAP_CHECKED = 1u << 0,
    /* Exact requested bytes: every class block remembers the size it was
     * asked for, so sc_heap_get_stats reports requested_bytes exactly
     * (requested_exact = 1). Costs a table of 1 byte per block below 256
     * bytes (2 below 64 KiB, 4 above; at most a page more per span) and
     * sends every allocation and free of the heap through the slow path
     * (README, "Performance"). Checked
     * heaps track requested sizes too. The environment variable
     * SCALLOC_TRACK_REQUESTED=1 turns it on for every heap. */
    SC_HEAP_TRACK_REQUESTED = 1u << 1,
};

typedef struct sc_heap_config_s {
    /* Shown in statistics and error messages; copied. NULL = "heap". */
    const char *name;
    /* Bytes of address space to reserve for the heap's first arena region;
     * 0 = default (256 MiB, or 1/64 of an address-space limit set with
     * ulimit -v when that is smaller). Only address space: nothing is committed or
     * resident until used. The heap adds regions as it grows, so this is
     * not a cap; where the address space is limited (ulimit -v, valgrind)
     * smaller regions are taken instead. */
    size_t region_size;
    /* Percentage (1..100) of a span's objects that must be free before an
     * exhausted span is reused for allocation; 0 = default (80). A span
     * whose free objects add up to 64 KiB is reused then even below the
     * percentage (spans of objects over 4 KiB: one free 64 KiB object is
     * worth a refill). A span whose thread exited is reused from an
     * eighth free (or this percentage, if lower). */
    unsigned reuse_threshold;
    /* Hard cap on the heap's committed bytes; 0 = no limit. Allocations
     * that would exceed it return NULL with errno = ENOMEM. */
    size_t limit_bytes;
    /* Bytes of free spans sc_heap_reset keeps resident for reuse; 0 = none. */
    size_t reset_keep_bytes;
    /* SC_HEAP_* flags; an unknown flag makes sc_heap_create fail with
     * EINVAL. */
    unsigned flags;
    /* The release policy. Free memory (empty spans, whose pages any class
     * can reuse, and the pages of freed huge blocks, which any later huge
     * block reuses, in place where it fits or moved into it by one mremap
     * per run of spans) stays committed for reuse without page faults, and
     * goes back to the OS in bulk (contiguous ranges in
     * one call) once it stayed unused for purge_delay_ms (at least 1 MiB
     * at a time, or retain_bytes if smaller: less waits for more to age,
     * up to one and a half delays), or, oldest first, when the heap's
     * unused committed bytes pass retain_bytes. A thread's span whose
     * blocks other threads freed, and an empty span a thread keeps for
     * its classes after its own frees, go back in place between one and
     * two delays later if the owner has not taken them back meanwhile (an
     * owner blocked or done allocating), and the owner sets them up
     * afresh when it does; so do the hot spans of a thread that made no
     * allocation slow path for a whole delay (sc_heap_trim's idle trim,
     * run by another thread's allocation slow path). Spans that other
     * threads' frees emptied do not wait for the delay to be reused:
     * if their owner reaches no allocation slow path for 4 ms, another
     * thread's slow path pools them for every thread (a thread that
     * built a structure and waits while others take it apart does not
     * keep its memory from them). The heap
     * applies the policy on its slow paths (a span pooled or taken, a huge
     * block freed or allocated, and at most every 100 ms on each thread's
     * allocation slow paths); there is no background thread, so a heap
     * nobody touches keeps what it retained until its next such call, a
     * trim or destroy. sc_heap_trim, reaching limit_bytes and
     * sc_heap_destroy give everything back at once. */
    /* Milliseconds free memory waits before it goes back; 0 = default
     * (100: ten times mimalloc's 10 ms purge delay, so that a program
     * cycling through requests every few tens of ms reuses its pages
     * instead of giving them back and faulting them in each cycle; a
     * hundredth of jemalloc's 10 s decay, so that memory a program is done
     * with is back within a fraction of a second). SC_PURGE_NEVER: only the
     * bound, trim, the limit and destroy give memory back. */
    unsigned purge_delay_ms;
    /* Bound on the heap's unused committed bytes, applied when the heap
     * allocates (a span taken, a huge block allocated): past it, the
     * oldest go back at once, as much as is over it (at least 1 MiB at a
     * time, so that a heap hovering at its bound gives back in batches);
     * the rest stays for what the heap allocates next. A heap that is only
     * freeing is left to the delay, so that it gives memory back in a few
     * large ranges. 0 = default: the bound is the room between what the
     * heap holds (in use, and in free spans) and its high-water of use
     * over the last 100-200 ms plus a sixteenth of what it uses, at least
     * 4 MiB, and applies to the pages of free huge runs only: a heap below its recent peak keeps what it freed for its next
     * huge blocks (which take kept pages wherever they lie, moved by the
     * kernel without a page fault), so its resident bytes stay within a
     * sixteenth of that peak. Free spans, which any class reuses, wait for
     * the delay, so a program that frees a batch and allocates the next
     * keeps it warm however big it is. Any other value bounds all unused bytes: 1 gives
     * memory back whenever the heap allocates (about the old behaviour: a
     * system call per event); SIZE_MAX: no bound, only the delay. */
    size_t retain_bytes;
} sc_heap_config_t;

/* purge_delay_ms: never give free memory back by time alone. */
#define SC_PURGE_NEVER ((unsigned)-1)

/* ------------------------------------------------------------------------ */
/* Heaps                                                                    */
/* ------------------------------------------------------------------------ */

/* Creates an isolated heap. cfg may be NULL for defaults; it is copied.
 * Returns NULL with errno = ENOMEM when no address space can be reserved,
 * EINVAL for an invalid configuration. Thread-safe. The process's first
 * call registers it for membarrier(2), which trims and looks at idle
 * threads use: made while the process has one thread, that costs a system
 * call; with more threads the kernel waits for an RCU grace period
 * (about 12 ms measured here), once per process. */
SC_API sc_heap_t *sc_heap_create(const sc_heap_config_t *cfg);

/* Frees every block of the heap at once and gives its memory and address
 * range back to the OS. The cost does not depend on the number of live
 * blocks (one munmap per region).
 *
 * Lifecycle rules (also for sc_heap_reset):
 *  - the caller guarantees that no other thread allocates from, frees into,
 *    or otherwise uses the heap while the call runs, and (for destroy) that
 *    nothing uses it afterwards: blocks and frontends of a destroyed heap
 *    are gone;
 *  - threads that used the heap may keep running, use other heaps, create
 *    new heaps (a new heap may reuse the old one's address and handle) and
 *    exit at any time, also during the call: scalloc handles their
 *    per-thread state itself;
 *  - using the handle after destroy is reported (SC_ERR_DESTROYED_HEAP) for
 *    as long as the handle's memory has not been reused by a new heap;
 *    handles are reused oldest first to make that window long.
 * NULL: no-op. */
SC_API void sc_heap_destroy(sc_heap_t *heap);

/* Frees every block of the heap and keeps it usable (its frontends too).
 * Up to cfg.reset_keep_bytes of free spans stay resident; the rest is given
 * back to the OS and the heap's address space is rewound. Same rules as
 * sc_heap_destroy: no other thread may use the heap during the call;
 * afterwards every thread may use it again. Pointers into the heap from
 * before the reset are dangling. */
SC_API void sc_heap_reset(sc_heap_t *heap);

/* Gives the physical memory of the heap's free spans back to the OS now,
 * whatever the release policy would wait for: the span pool (including
 * header pages), empty reusable spans, free huge runs' pages, the calling
 * thread's own empty hot and floating spans, and every other thread's
 * spans that its own or other threads' frees emptied and that it keeps
 * for their size class (the owner sets such a span up afresh when it uses
 * it again). First it hands the calling thread's waiting remote frees (see
 * sc_free) to their spans, and those of every other thread that is not in
 * one of the heap's slow paths at the time.
 * Other threads' hot spans with no live block give their pages back too,
 * unless the thread is in a slow path of the heap right then: each stays
 * the thread's, which sets it up afresh on its next slow path, and keeps
 * resident only the pages of at most one block of up to 1 KiB (one an
 * allocation running at that moment may take). This needs membarrier(2)
 * (Linux 4.14 and later); where the kernel or a seccomp filter refuses it,
 * and in checked and tracking heaps, another thread's hot spans and
 * waiting frees are that thread's alone: it gives back its empty ones on
 * its next allocation slow path after this call, its own sc_heap_trim or
 * its exit. A thread's slow path that starts while another thread trims
 * its frontend waits for that (a few system calls). Without this call, a
 * thread that made no allocation slow path for a whole purge_delay_ms
 * gets the same trim of its hot spans from another thread's allocation
 * slow path (at most once per delay for the heap; not with
 * SC_PURGE_NEVER, not in checked or tracking heaps).
 * Thread-safe; may run while other threads allocate from the heap. */
SC_API void sc_heap_trim(sc_heap_t *heap);

/* The heap's name as configured. */
SC_API const char *sc_heap_name(const sc_heap_t *heap);

/* The calling thread's frontend for the heap, created on first use.
 * Returns NULL with errno = ENOMEM if it cannot be created. Threads are not
 * limited in number: a frontend is created per thread and heap on first
 * use and torn down when its thread exits (its spans are handed on, none
 * leaked) or when the heap is destroyed. A thread may still call sc_alloc,
 * sc_calloc and sc_free after that teardown (from a
 * thread-specific-data destructor, or libc freeing its own thread data
 * under a malloc shim): each such call works through a frontend made for
 * it and torn down right after it. fork: the child may keep using
 * (and destroy) the heaps it inherited, whatever other threads were doing;
 * their frontends' spans stay theirs in the child. */
SC_API sc_thread_t *sc_heap_thread(sc_heap_t *heap);

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */
/* ------------------------------------------------------------------------ */

/* Allocates n bytes, 16-byte aligned. n = 0 returns a unique pointer that
 * must be freed. Returns NULL with errno = ENOMEM when the request cannot be
 * met (larger than the machine's memory and swap, over the heap's limit,
 * address space exhausted). */
SC_API SC_FAST_CALL SC_MALLOC_LIKE void *sc_alloc(sc_heap_t *heap, size_t n);

/* Frees p, allocated from heap by any thread. NULL is a no-op. A pointer the
 * heap does not own, an interior pointer, or a double free (of the block
 * freed last into its span, or into a span with no live block; checked
 * heaps find every one) is reported to the error handler.
 * Frees into spans of other threads: the calling thread collects them per
 * span and hands each batch over with one atomic operation, when the batch
 * is full, on its next allocation slow path, on sc_heap_trim or
 * sc_heap_get_stats from it, and when it exits. Until then the blocks are
 * free for every purpose the program sees (statistics count them freed),
 * but their span cannot be reused as a whole. */
SC_API SC_FAST_CALL void sc_free(sc_heap_t *heap, void *p);

/* Like sc_alloc / sc_free through an explicit frontend obtained with
 * sc_heap_thread by the calling thread; skips the heap's lookup (a few
 * instructions less than sc_alloc / sc_free). Using another thread's
 * frontend is reported (SC_ERR_WRONG_THREAD); so is a frontend whose heap
 * was destroyed. */
SC_API SC_FAST_CALL SC_MALLOC_LIKE void *sc_thread_alloc(sc_thread_t *t, size_t n);
SC_API SC_FAST_CALL void sc_thread_free(sc_thread_t *t, void *p);

/* count * size bytes, zeroed. Overflow: NULL with errno = ENOMEM. */
SC_API SC_MALLOC_LIKE void *sc_calloc(sc_heap_t *heap, size_t count, size_t size);

/* Resizes p to n bytes, preserving contents up to the smaller size.
 * p = NULL allocates. n = 0 frees p and returns a fresh minimal block (as
 * sc_alloc(heap, 0)), so the result is never NULL on success. The block
 * stays in place when n fits its usable size and is more than half of it
 * (any n that fits, for blocks of at most 256 bytes), except that a huge block shrunk to a class size
 * moves to that class (unless it is huge only for its alignment); a huge
 * block (above SC_MAX_CLASS_SIZE) also grows or shrinks in place when the
 * spans after it allow. Otherwise it moves:
 * a much smaller request goes to a smaller block, and a moved block has the
 * default 16-byte alignment (as with realloc, an sc_aligned_alloc block
 * keeps its alignment only while it stays in place). On failure returns
 * NULL with errno = ENOMEM and p is untouched. */
SC_API void *sc_realloc(sc_heap_t *heap, void *p, size_t n);

/* n bytes aligned to `alignment`, any power of two. Not a power of two:
 * NULL with errno = EINVAL. Freed with sc_free. */
SC_API SC_MALLOC_LIKE void *sc_aligned_alloc(sc_heap_t *heap, size_t alignment, size_t n);

/* Bytes usable at p (at least what was requested, and at least
 * sc_good_size of it). Reports misuse for a pointer that is not a live
 * block of heap, and returns 0 then. */
SC_API size_t sc_usable_size(sc_heap_t *heap, const void *p);

/* The usable size sc_alloc(heap, n) gives: n rounded up to its size
 * class, or for huge sizes up to where the block's last page ends. Lets
 * callers such as SQLite's xRoundup ask for what they will get. The one
 * exception is a plain heap's request of 4 KiB or more whose class has no
 * free block at hand while one of the next two classes has one: the
 * request gets that block, already in memory, rather than touching new
 * pages, and sc_usable_size says so (at most two classes up: at most
 * 1.5 times sc_good_size). Checked and tracking heaps never do. 0 if n
 * cannot be met by any heap (larger than the machine's memory and swap). */
SC_API size_t sc_good_size(size_t n);

/* Whether p lies in a block or region of heap. O(1); any pointer value is
 * safe to ask about (NULL, libc pointers, stack, garbage). */
SC_API int sc_heap_owns(const sc_heap_t *heap, const void *p);

/* The heap whose address space holds p, or NULL. O(1), any pointer value. */
SC_API sc_heap_t *sc_heap_of(const void *p);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum sc_error_e {
    SC_ERR_NONE = 0,
    SC_ERR_FOREIGN_POINTER,  /* pointer not in any block of this heap */
    SC_ERR_OTHER_HEAP,       /* pointer belongs to a different heap */
    SC_ERR_INTERIOR_POINTER, /* pointer inside a block, not its start */
    SC_ERR_DOUBLE_FREE,      /* block is already free */
    SC_ERR_DESTROYED_HEAP,   /* heap handle used after sc_heap_destroy */
    SC_ERR_WRONG_THREAD,     /* frontend used by a thread that does not own it */
    SC_ERR_CORRUPTION,       /* allocator metadata was overwritten */
} sc_error_t;

/* Called on misuse. `call` names the API call ("sc_free"), `heap_name` the
 * heap's name (or "?"), `p` the pointer involved. If the handler returns,
 * the call does nothing. */
typedef void sc_error_handler_t(sc_error_t err, const char *call,
                                const char *heap_name, const void *p,
                                void *arg);

/* Installs fn (NULL restores the default: print one line and abort).
 * Process-wide. */
SC_API void sc_set_error_handler(sc_error_handler_t *fn, void *arg);

/* A short English description of err. */
SC_API const char *sc_error_string(sc_error_t err);

/* ------------------------------------------------------------------------ */
/* Introspection                                                            */
/* ------------------------------------------------------------------------ */

#define SC_NUM_CLASSES 64

typedef struct sc_class_stats_s {
    size_t block_size;   /* usable bytes of a block of this class */
    size_t live_blocks;  /* allocated and not freed */
    size_t spans;        /* spans currently serving this class */
} sc_class_stats_t;

typedef struct sc_heap_stats_s {
    size_t live_blocks;      /* blocks allocated and not freed */
    size_t live_bytes;       /* usable bytes of those blocks */
    /* Bytes asked for by the live blocks (for a block resized in place by
     * sc_realloc: the latest size). Exact when requested_exact is 1: for
     * heaps with SC_HEAP_TRACK_REQUESTED or SC_HEAP_CHECKED. Other heaps
     * keep requests exactly for huge blocks only and count class blocks at
     * their usable size (their fast paths store nothing per block). */
    size_t requested_bytes;
    int requested_exact;
    size_t huge_blocks;      /* live blocks above the largest class */
    size_t huge_bytes;
    size_t reserved_bytes;   /* address space reserved for the heap */
    size_t committed_bytes;  /* address space made usable (counts toward limit) */
    /* Physical memory backing the heap now: the kernel's figure (mincore)
     * over the pages the heap keeps (spans' committed bytes, free pages
     * it retains, its regions' tables), so its cost follows the memory the
     * heap holds, not the address space it ever used. Pages of a block
     * nobody touched yet are not counted. */
    size_t resident_bytes;
    size_t spans_hot;
    size_t spans_floating;
    size_t spans_reusable;
    size_t spans_free;       /* in the span pool, or empty and kept by a frontend for its class */
    size_t frontends;        /* live thread frontends */
    sc_class_stats_t classes[SC_NUM_CLASSES];
} sc_heap_stats_t;

/* Fills *out with the heap's statistics. May run while other threads use
 * the heap; figures are then a snapshot that is exact once they stop. */
SC_API void sc_heap_get_stats(sc_heap_t *heap, sc_heap_stats_t *out);

typedef enum sc_stats_format_e { SC_STATS_TEXT = 0, SC_STATS_JSON = 1 } sc_stats_format_t;

/* Writes the statistics to f as a table or as JSON. */
SC_API void sc_heap_print_stats(sc_heap_t *heap, FILE *f, sc_stats_format_t format);

/* Calls fn(block, usable_size, arg) for every live block of the heap,
 * including huge blocks and blocks in other threads' spans. No thread may
 * allocate from or free into the heap during the visit; fn must not either.
 * Returning non-zero from fn stops the visit. */
typedef int sc_visit_fn(void *block, size_t usable_size, void *arg);
SC_API void sc_heap_visit(sc_heap_t *heap, sc_visit_fn *fn, void *arg);

/* Largest size served from size classes; above it blocks are huge. */
#define SC_MAX_CLASS_SIZE ((size_t)1 << 20)

#ifdef __cplusplus
}
#endif

#endif /* SCALLOC_SCALLOC_H */
