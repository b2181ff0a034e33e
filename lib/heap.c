/* Heap handles (scalloc.h, "Heaps"). */
#include "heap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "address_map.h"
#include "annotate.h"
#include "arena.h"
#include "error.h"
#include "frontend.h"
#include "huge.h"
#include "meta.h"
#include "reusable.h"
#include "os.h"
#include "registry.h"
#include "requested.h"
#include "span.h"
#include "span_pool.h"
#include "span_stack.h"


/* The first region of a heap with no region_size set: 256 MiB of address
 * space, or 1/64 of the address-space limit when one is set (ulimit -v),
 * so that a limited process still gets many heaps before regions have to
 * fall back to their smallest size. */
static size_t default_region_size(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        size_t share = (size_t)rl.rlim_cur / 64;
        if (share < DEFAULT_REGION_SIZE)
            return share > SMALLEST_DEFAULT_REGION ? share : SMALLEST_DEFAULT_REGION;
    }
    return DEFAULT_REGION_SIZE;
}
/* Id of a handle that is not a live heap; never matches a thread cache. */
#define DEAD_HEAP_ID UINT64_MAX

/* Heap handles live in type-stable memory and are reused oldest first, so
 * a stale handle keeps reporting "destroyed" for as long as possible. The
 * chunks they are cut from are listed so that fork can find every heap.
 * A chunk's handles are handed out in order as they are first needed (a
 * process with one heap touches one handle's pages, not the chunk's 256
 * KiB); `used` of them were ever handed out. All of this is under the
 * registry lock. */
typedef struct handle_chunk_s {
    struct handle_chunk_s *next;
    size_t count;
    size_t used;
    _Alignas(CACHE_LINE) struct sc_heap_s heaps[];
} handle_chunk_t;

static struct sc_heap_s *free_heaps_head, *free_heaps_tail;
static handle_chunk_t *handle_chunks;

/* Under the registry lock: a free handle goes to the back of the list, so
 * handles are reused oldest first. */
static void handle_free(struct sc_heap_s *h)
{
    h->free_next = NULL;
    if (free_heaps_tail)
        free_heaps_tail->free_next = h;
    else
        free_heaps_head = h;
    free_heaps_tail = h;
}

/* Never-used handles first (the newest chunk's next one, or a new chunk
 * once every handle was used and none is free), then freed ones, oldest
 * first: the order a list of every handle, freed ones at the back, gives. */
static struct sc_heap_s *handle_alloc(void)
{
    handle_chunk_t *chunk = handle_chunks;
    if (chunk == NULL || (chunk->used == chunk->count && free_heaps_head == NULL)) {
        chunk = meta_alloc(HANDLE_CHUNK_BYTES);
        if (chunk == NULL)
            return NULL;
        chunk->count = (HANDLE_CHUNK_BYTES - sizeof *chunk) / sizeof(struct sc_heap_s);
        chunk->used = 0;
        chunk->next = handle_chunks;
        handle_chunks = chunk;
    }
    if (chunk->used < chunk->count) {
        struct sc_heap_s *h = &chunk->heaps[chunk->used++];
        atomic_init(&h->id, DEAD_HEAP_ID);
        atomic_init(&h->state, HEAP_FREE_SLOT);
        return h;
    }
    struct sc_heap_s *h = free_heaps_head;
    free_heaps_head = h->free_next;
    if (free_heaps_head == NULL)
        free_heaps_tail = NULL;
    return h;
}

/* fork: the child must find every lock free, whatever other threads were
 * doing. Take them all before the fork (registry first, then each live
 * heap's huge lock before its grow lock: the order the library nests them
 * in) and release them on both sides. Lock-free structures need nothing: an
 * operation cut short by the fork at worst leaves a span or a block unused
 * in the child, never a broken list, because every list change is one CAS. */
static void for_each_live_heap(void (*fn)(struct sc_heap_s *))
{
    for (handle_chunk_t *c = handle_chunks; c; c = c->next)
        for (size_t i = 0; i < c->used; i++)
            if (atomic_load_explicit(&c->heaps[i].state, memory_order_relaxed) == HEAP_LIVE)
                fn(&c->heaps[i]);
}

static void lock_heap(struct sc_heap_s *h)
{
    pthread_mutex_lock(&h->huge_lock);
    pthread_mutex_lock(&h->grow_lock);
    pthread_mutex_lock(&h->retain_lock);
}

static void unlock_heap(struct sc_heap_s *h)
{
    pthread_mutex_unlock(&h->retain_lock);
    pthread_mutex_unlock(&h->grow_lock);
    pthread_mutex_unlock(&h->huge_lock);
}

static void fork_prepare(void)
{
    registry_lock();
    for_each_live_heap(lock_heap);
    arena_lock_placement();
    address_map_lock_ranges();
    meta_lock();
}

static void fork_after(void)
{
    meta_unlock();
    address_map_unlock_ranges();
    arena_unlock_placement();
    for_each_live_heap(unlock_heap);
    registry_unlock();
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_handlers_install(void)
{
    pthread_atfork(fork_prepare, fork_after, fork_after);
}

/* Whether the environment variable `name` turns a mode on for every heap
 * (set, not empty, not "0"). */
static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* The heap flags the environment adds to every heap, read once per
 * process (the environment of a running program is its own business). */
static unsigned env_heap_flags_value;
static pthread_once_t env_heap_flags_once = PTHREAD_ONCE_INIT;

static void env_heap_flags_read(void)
{
    env_heap_flags_value = (env_flag("SCALLOC_CHECKED") ? SC_HEAP_CHECKED : 0) |
                           (env_flag("SCALLOC_TRACK_REQUESTED") ? SC_HEAP_TRACK_REQUESTED : 0);
}

static unsigned env_heap_flags(void)
{
    pthread_once(&env_heap_flags_once, env_heap_flags_read);
    return env_heap_flags_value;
}

/* A heap's locks go and its handle is free for reuse (destroy, or a
 * create that failed after the locks were made). */
static void handle_retire(struct sc_heap_s *h)
{
    pthread_mutex_destroy(&h->grow_lock);
    pthread_mutex_destroy(&h->huge_lock);
    pthread_mutex_destroy(&h->retain_lock);
    registry_lock();
    handle_free(h);
    registry_unlock();
}

bool heap_check_live(const struct sc_heap_s *heap, const char *call)
{
    if (heap && atomic_load_explicit(&heap->state, memory_order_acquire) == HEAP_LIVE)
        return true;
    error_report(SC_ERR_DESTROYED_HEAP, call, heap, NULL);
    return false;
}

sc_heap_t *sc_heap_create(const sc_heap_config_t *cfg)
{
    sc_heap_config_t defaults = {0};
    if (cfg == NULL)
        cfg = &defaults;
    if (cfg->reuse_threshold > 100 ||
        (cfg->flags & ~(unsigned)(SC_HEAP_CHECKED | SC_HEAP_TRACK_REQUESTED)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!address_map_init()) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_once(&fork_once, fork_handlers_install);
    /* Other threads' trims and looks at idle frontends fence with
     * membarrier(2); registering while the program is young (usually one
     * thread: no RCU grace period to wait for) keeps that wait off a slow
     * path that holds the registry lock. Once per process. */
    os_membarrier_register();
    unsigned flags = cfg->flags | env_heap_flags();
    registry_lock();
    struct sc_heap_s *h = handle_alloc();
    if (h != NULL) {
        /* The handle is not reachable by anyone until it is returned: plain
         * initialisation of everything but the id and state words. The
         * geometry here, under the lock: the first heap of its kind fills
         * the shared table (span.h). */
        h->flags = flags;
        span_geometry_init(h);
    }
    registry_unlock();
    if (h == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    h->reuse_threshold = cfg->reuse_threshold ? cfg->reuse_threshold : DEFAULT_REUSE_THRESHOLD;
    h->limit_bytes = cfg->limit_bytes;
    h->reset_keep_bytes = cfg->reset_keep_bytes;
    h->first_region_size = cfg->region_size ? cfg->region_size : default_region_size();
    h->first_region_size = (h->first_region_size + SPAN_SIZE - 1) & ~(SPAN_SIZE - 1);
    snprintf(h->name, sizeof h->name, "%s", cfg->name ? cfg->name : "heap");
    atomic_init(&h->regions, NULL);
    pthread_mutex_init(&h->grow_lock, NULL);
    pthread_mutex_init(&h->huge_lock, NULL);
    pthread_mutex_init(&h->retain_lock, NULL);
    h->purge_delay_ms = cfg->purge_delay_ms == 0              ? DEFAULT_PURGE_DELAY_MS
                        : cfg->purge_delay_ms == SC_PURGE_NEVER ? UINT32_MAX
                                                                : cfg->purge_delay_ms;
    h->retain_bytes = cfg->retain_bytes;
    atomic_init(&h->unused_bytes, 0);
    atomic_init(&h->unused_huge_bytes, 0);
    atomic_init(&h->in_use_peak, 0);
    atomic_init(&h->in_use_peak_before, 0);
    atomic_init(&h->in_use_window, 0);
    atomic_init(&h->purge_due, 0);
    atomic_init(&h->reserved_bytes, 0);
    atomic_init(&h->trim_epoch, 0);
    atomic_init(&h->reusable_emptied, 0);
    atomic_init(&h->drained_marked, 0);
    atomic_init(&h->drained_sweep_due, 0);
    atomic_init(&h->idle_look_due, 0);
    atomic_init(&h->drained_waiting, 0);
    atomic_init(&h->drained_look_due, 0);
    atomic_init(&h->committed_bytes, 0);
    h->frontends = NULL;
    h->frontend_count = 0;
    for (unsigned c = 0; c < NUM_CLASSES; c++)
        atomic_init(&h->reusable[c].head, 0);
    for (unsigned b = 0; b < POOL_BUCKETS; b++)
        for (unsigned i = 0; i < POOL_SLOTS; i++)
            atomic_init(&h->pool[b][i].stack.head, 0);
    h->huge_free_runs = NULL;
    h->huge_blocks = h->huge_bytes = h->huge_requested = 0;
    h->huge_map_charge = 0;
    h->retired_slack = 0;
    if (!arena_init(h)) {
        handle_retire(h);
        errno = ENOMEM;
        return NULL;
    }
    annotate_heap_create(h);
    /* release: a thread that sees the heap live sees it initialised. */
    atomic_store_explicit(&h->id, registry_next_heap_id(), memory_order_release);
    atomic_store_explicit(&h->state, HEAP_LIVE, memory_order_release);
    return h;
}

void sc_heap_destroy(sc_heap_t *heap)
{
    if (heap == NULL)
        return;
    registry_lock();
    if (atomic_load_explicit(&heap->state, memory_order_relaxed) != HEAP_LIVE) {
        registry_unlock();
        error_report(SC_ERR_DESTROYED_HEAP, "sc_heap_destroy", heap, NULL);
        return;
    }
    /* From here on every thread's cache misses this heap (its id no longer matches)
     * and its frontends belong to nobody; their threads free them. */
    atomic_store_explicit(&heap->state, HEAP_DESTROYED, memory_order_release);
    atomic_store_explicit(&heap->id, DEAD_HEAP_ID, memory_order_release);
    registry_detach_heap(heap);
    registry_unlock();
    annotate_heap_drop_all(heap, false);
    /* One munmap per region, whatever the number of live blocks. */
    arena_destroy(heap);
    huge_forget_moves(heap);
    handle_retire(heap);
}

/* Pushes a span to the pool with its memory kept, outside the release
 * policy (reset's warm spans: no INFO_POOLED, not in unused_bytes; only a
 * trim gives them back). */
static void pool_put_kept(struct sc_heap_s *heap, span_t *s, unsigned slot)
{
    s->free = NULL;
    span_set_exclusive_state(s, SPAN_POOLED);
    span_stack_push(&heap->pool[span_pool_bucket(s->committed)][slot % POOL_SLOTS].stack, s);
}

void sc_heap_reset(sc_heap_t *heap)
{
    if (!heap_check_live(heap, "sc_heap_reset"))
        return;
    registry_lock();
    registry_forget_hot_spans(heap);
    requested_reset(heap);
    registry_unlock();
    annotate_heap_drop_all(heap, true);
    for (unsigned c = 0; c < NUM_CLASSES; c++)
        atomic_store_explicit(&heap->reusable[c].head, 0, memory_order_relaxed);
    for (unsigned b = 0; b < POOL_BUCKETS; b++)
        for (unsigned i = 0; i < POOL_SLOTS; i++)
            atomic_store_explicit(&heap->pool[b][i].stack.head, 0, memory_order_relaxed);
    atomic_store_explicit(&heap->unused_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&heap->unused_huge_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&heap->in_use_peak, 0, memory_order_relaxed);
    atomic_store_explicit(&heap->in_use_peak_before, 0, memory_order_relaxed);
    atomic_store_explicit(&heap->purge_due, 0, memory_order_relaxed);
    heap->huge_free_runs = NULL;
    atomic_store_explicit(&heap->reusable_emptied, 0, memory_order_relaxed);
    atomic_store_explicit(&heap->drained_marked, 0, memory_order_relaxed);
    heap->huge_blocks = heap->huge_bytes = heap->huge_requested = 0;

    /* Every region starts over: its used part goes back to the OS (memory
     * and charge; inaccessible again under a strict commit limit) and its
     * bump pointer is rewound, except that up to reset_keep_bytes of block
     * spans at the start of the newest region stay resident in the pool
     * for the next round. One call per region. */
    arena_unpoison_used(heap);
    size_t keep = heap->reset_keep_bytes;
    size_t committed = 0;
    unsigned slot = 0;
    for (region_t *r = atomic_load_explicit(&heap->regions, memory_order_relaxed); r; r = r->next) {
        char *used_end = atomic_load_explicit(&r->bump, memory_order_relaxed);
        char *start = arena_first_span(r);
        span_t *kept = NULL;
        while (keep && start < used_end) {
            uintptr_t w = address_map_get((uintptr_t)start);
            span_t *s = span_at(start);
            bool block_span = ((w & MAP_TAGS) == 0 || (w & MAP_TAGS) == MAP_SPAN) &&
                              span_kind(s) == SPAN_KIND_BLOCKS;
            if (!block_span || s->committed > keep)
                break;
            keep -= s->committed;
            committed += s->committed;
            annotate_no_access(start + SPAN_LEAD, s->rw_bytes - SPAN_LEAD);
            address_map_set(s, (uintptr_t)heap | MAP_SPAN);
            atomic_store_explicit(&s->stack_next, kept, memory_order_relaxed);
            kept = s;
            start += SPAN_SIZE;
        }
        if (used_end > start) {
            if (os_strict_commit())
                os_decommit(start, (size_t)(used_end - start));
            else
                os_release(start, (size_t)(used_end - start));
            address_map_set_range(start, (size_t)(used_end - start), (uintptr_t)heap | MAP_RESERVED);
        }
        arena_rewind(r, start);
        while (kept) {
            span_t *next = atomic_load_explicit(&kept->stack_next, memory_order_relaxed);
            pool_put_kept(heap, kept, slot++);
            kept = next;
        }
        /* The descriptor, its tables and the first pages written so far. */
        committed += r->meta_committed +
                     atomic_load_explicit(&r->headers_committed, memory_order_relaxed);
    }
    atomic_store_explicit(&heap->committed_bytes, committed, memory_order_relaxed);
}

void sc_heap_trim(sc_heap_t *heap)
{
    if (!heap_check_live(heap, "sc_heap_trim"))
        return;
    /* The calling thread's own hot spans that hold nothing go first. Other
     * threads' go below where they are away from their slow paths; the
     * others trim themselves on their next slow path (or when they exit),
     * seeing the epoch move. */
    atomic_fetch_add_explicit(&heap->trim_epoch, 1, memory_order_relaxed);
    sc_frontend_t *own = registry_thread_cache.frontend;
    bool own_valid = registry_thread_cache.heap == heap && registry_frontend_valid(own, heap);
    if (own_valid)
        frontend_trim(own);
    /* Threads away from their slow paths have their empty hot spans'
     * pages given back and their batches handed over here (frontend.c,
     * "IDLE TRIM"); checked and tracking heaps' frontends wait for their
     * owners. */
    if ((heap->flags & (SC_HEAP_CHECKED | SC_HEAP_TRACK_REQUESTED)) == 0)
        registry_trim_idle(heap, own_valid ? own : NULL);
    /* What can hold memory outside the pool is a fully free span on a
     * reusable stack (EMPTY): to the pool first; then everything the
     * release policy retains goes back at once: the pool's spans (whole,
     * first pages too) and free huge runs' pages. A floating span of
     * another thread with every block free (DRAINED, kept for its class,
     * or FLOATING) stays with its owner, which pools it when it next
     * looks; its memory goes now. */
    reusable_sweep_empty(heap);
    span_pool_cool(heap, true);
    span_pool_trim_drained(heap);
}

const char *sc_heap_name(const sc_heap_t *heap)
{
    return heap ? heap->name : "?";
}
