/*
 * The thread registry: which frontend a thread uses for a heap, creating
 * it on first use, and tearing a thread's frontends down when it exits.
 * The links between heaps, threads and frontends change only under the
 * registry lock, on rare events (first use, thread exit, heap destroy);
 * finding the frontend of the heap used last is one compare.
 */
#ifndef SCALLOC_REGISTRY_H
#define SCALLOC_REGISTRY_H

#include "types.h"

/* initial-exec: a fixed offset from the thread pointer, no call to
 * __tls_get_addr on the fast path. */
extern SC_INTERNAL _Thread_local thread_cache_t registry_thread_cache
    __attribute__((tls_model("initial-exec")));

/* The calling thread's state (NULL before its first frontend). */
extern SC_INTERNAL _Thread_local thread_state_t *registry_current_thread
    __attribute__((tls_model("initial-exec")));

/* A frontend of no heap, all hot spans empty: what the thread cache holds
 * before a thread's first lookup, and what destroyed heaps' frontends look
 * like. Every allocation from it and every free through it takes the slow
 * path. */
extern SC_INTERNAL sc_frontend_t registry_dead_frontend;

/* The calling thread's frontend for heap, created if needed. NULL if the
 * heap is not live (reported for `call`) or memory ran out (errno). */
sc_frontend_t *registry_lookup(struct sc_heap_s *heap, const char *call);

/* Whether t is the calling thread's live frontend for heap (a cache hit can
 * return a dead one: see thread_cache_t). */
static inline bool registry_frontend_valid(const sc_frontend_t *t, const struct sc_heap_s *heap)
{
    return t->heap == heap && heap != NULL;
}

/* Whether t belongs to the calling thread. */
static inline bool registry_owns_frontend(const sc_frontend_t *t)
{
    /* A frontend on the free list has no thread: it matches only a thread
     * that never used scalloc, and then its empty hot spans and missing heap
     * send every call to a slow path that reports the destroyed heap. */
    return t != NULL && t->thread == registry_current_thread;
}

/* Whether the calling thread's state was torn down at its exit already
 * (a later call comes from another key's destructor or libc's own exit). */
extern SC_INTERNAL _Thread_local bool registry_thread_exited
    __attribute__((tls_model("initial-exec")));

/* sc_alloc / sc_free for such a thread: a frontend for the one call, torn
 * down right after it (its spans handed on as at a thread's exit), so no
 * state is left that no destructor would free. */
void *registry_alloc_after_exit(struct sc_heap_s *heap, size_t n);
void registry_free_after_exit(struct sc_heap_s *heap, void *p);

void registry_lock(void);
void registry_unlock(void);

/* Under the registry lock: detaches every frontend of heap (being
 * destroyed); their threads free them later. */
void registry_detach_heap(struct sc_heap_s *heap);

/* Under the registry lock: gives up every hot span of every frontend of
 * heap without touching the spans (reset rebuilds the heap underneath). */
void registry_forget_hot_spans(struct sc_heap_s *heap);

/* sc_heap_trim's part in other threads' frontends: gives back the pages of
 * the empty hot spans of every frontend of heap but `own` whose thread is
 * away from its slow paths (frontend.c, "IDLE TRIM"), in groups, under the
 * registry lock. Not for checked or tracking heaps. */
void registry_trim_idle(struct sc_heap_s *heap, const sc_frontend_t *own);

/* The automatic idle trim (registry.c): on an allocation slow path of
 * own's thread (own a live frontend of a live heap), once per clock
 * reading of own's (every HOT_RETIRE_CHECK_EVERY slow paths), whether the
 * other frontends of its heap get an idle trim now. Cheap when own read
 * no new time. */
void registry_idle_look_slow(sc_frontend_t *own, uint32_t now);

static inline void registry_idle_look(sc_frontend_t *own)
{
    uint32_t now = atomic_load_explicit(&own->active_ms, memory_order_relaxed);
    if (unlikely(now != own->idle_look_seen))
        registry_idle_look_slow(own, now);
}

/* A new process-unique heap id (never 0, never UINT64_MAX). */
uint64_t registry_next_heap_id(void);

#endif /* SCALLOC_REGISTRY_H */
