/*
 * The heap's span pool and its release policy. Empty spans, usable for any
 * size class, sit on lock-free stacks (a thread pushes to and pops from its
 * own slot first, so threads returning and taking spans rarely share a
 * cache line) with their committed pages: taking one back costs no page
 * fault and no system call. Memory goes back to the kernel in bulk and on a
 * schedule, never once per event: the pool's spans and the free huge runs'
 * pages are given back once they stayed unused for the heap's purge delay,
 * or, oldest first, when the heap's unused committed bytes pass its bound;
 * given back whole (first page too, so that neighbours make one range and
 * one madvise), pool spans become cold and are taken again before fresh
 * address space. There is no background thread: the coarse clock is read
 * and the policy applied when a span is pooled or taken and when a huge
 * block is freed or allocated (slow paths only).
 */
#ifndef SCALLOC_SPAN_POOL_H
#define SCALLOC_SPAN_POOL_H

#include "types.h"

/* Exclusive holder: pushes s, an empty span that may keep committed pages
 * (a warm span, a drained one, one that was never used), to the pool. Its
 * pages stay until the release policy gives them back. */
void span_pool_put(struct sc_heap_s *heap, span_t *s, unsigned slot);

/* A pooled span (now held exclusively by the caller), or NULL. Tries the
 * caller's slot, then the others (spans that kept little memory first),
 * then the cold spans. */
span_t *span_pool_take(struct sc_heap_s *heap, unsigned slot);

/* The same for a caller that will keep `keep` bytes committed (a class's
 * real span, span_init_blocks): a pooled span that committed no more than
 * that, the biggest such first (fewest page faults), else a cold one, and
 * only then one that kept more (span_init_blocks gives its excess back
 * with a madvise); NULL if the pool is empty. */
span_t *span_pool_take_fit(struct sc_heap_s *heap, unsigned slot, size_t keep);

/* The bucket of the pool (types.h, sc_heap_s.pool) for a span that kept
 * `committed` bytes. */
unsigned span_pool_bucket(size_t committed);

/* Gives back now every page the policy retains: the pool's spans and the
 * free huge runs' pages (trim, the heap's limit). Pool spans always go
 * whole (release_headers is kept for callers; cold spans need no list). */
void span_pool_cool(struct sc_heap_s *heap, bool release_headers);

/* Applies the release policy now if something is due, or, when the caller
 * is about to use memory (`allocating`: a span taken, a huge block
 * allocated), if the heap's unused bytes are past the bound. The bound is
 * looked at only then: a heap that is only freeing shrinks and gets its
 * memory back after the delay, in a few large ranges, while a heap that
 * frees and allocates side by side must not let the free part grow. Cheap
 * when nothing is due: a clock read and a few loads. */
void span_pool_maybe_purge(struct sc_heap_s *heap, bool allocating);

/* The same at coarse time `now` (the caller's clock reading), only when
 * what is due has waited a whole delay past its time:
 * for looks at the heap that come on a schedule of their own (a thread's
 * retirement look), which should catch memory that no span pooled or taken
 * any more gives the policy a look at, without adding purges (and system
 * calls) to a heap whose pool traffic applies the policy in time. */
void span_pool_purge_overdue(struct sc_heap_s *heap, uint32_t now);

/* Records that unused memory became free for reuse at coarse time `now`:
 * the policy looks at the heap again when it is due. */
void span_pool_note_unused(struct sc_heap_s *heap, uint32_t now);

/* The bound on a heap's unused committed bytes at coarse time `now`:
 * retain_bytes, or by default the room between what the heap holds (in
 * use and in free spans) and its recent high-water of use plus a
 * RETAIN_SHARE'th of what it uses, at least RETAIN_MIN (tuning.h). */
size_t span_pool_retain_bound(struct sc_heap_s *heap, uint32_t now);

/* DRAINED SPANS. A floating span whose last blocks other threads freed
 * (DRAINED) stays with its owner, which pools it when it next looks; an
 * owner that stopped allocating (blocked, waiting for work, done but not
 * exited) never looks. So the release policy gives such a span's memory
 * back in place, as a trim does, once it has stayed DRAINED between one
 * and two purge delays: the freeing thread marks it (span_pool_note_drained)
 * and allocation slow paths sweep the marks once per delay. The owner that
 * takes it back sets it up afresh. */

/* Any thread, where a remote free made s DRAINED. */
void span_pool_note_drained(struct sc_heap_s *heap, span_t *s);

/* Allocation slow path, with the coarse clock `now`: at most once per purge
 * delay for the heap (never with SC_PURGE_NEVER), gives back the memory of
 * the spans marked before the last sweep that are still DRAINED. */
void span_pool_release_drained(struct sc_heap_s *heap, uint32_t now);

/* sc_heap_trim: gives back the memory of every DRAINED span of the heap
 * (and of floating spans with every block free), marked or not. */
void span_pool_trim_drained(struct sc_heap_s *heap);

#endif /* SCALLOC_SPAN_POOL_H */
