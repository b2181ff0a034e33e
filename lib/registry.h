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
extern _Thread_local thread_cache_t registry_thread_cache
    __attribute__((tls_model("initial-exec")));

/* The calling thread's frontend for heap, created if needed. NULL if the
 * heap is not live (reported for `call`) or memory ran out (errno). */
sc_frontend_t *registry_lookup(struct sc_heap_s *heap, const char *call);

static inline sc_frontend_t *registry_frontend(struct sc_heap_s *heap, const char *call)
{
    /* relaxed: a live heap's id does not change while it is used. */
    if (likely(registry_thread_cache.heap_id ==
               atomic_load_explicit(&heap->id, memory_order_relaxed)))
        return registry_thread_cache.frontend;
    return registry_lookup(heap, call);
}

/* Whether t belongs to the calling thread. */
bool registry_owns_frontend(const sc_frontend_t *t);

void registry_lock(void);
void registry_unlock(void);

/* Under the registry lock: detaches every frontend of heap (being
 * destroyed); their threads free them later. */
void registry_detach_heap(struct sc_heap_s *heap);

/* Under the registry lock: gives up every hot span of every frontend of
 * heap without touching the spans (reset rebuilds the heap underneath). */
void registry_forget_hot_spans(struct sc_heap_s *heap);

/* A new process-unique heap id (never 0, never UINT64_MAX). */
uint64_t registry_next_heap_id(void);

#endif /* SCALLOC_REGISTRY_H */
