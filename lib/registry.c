/* The thread registry (registry.h). */
#include "registry.h"

#include <errno.h>
#include <string.h>

#include "address_map.h"
#include "arena.h"
#include "error.h"
#include "free.h"
#include "frontend.h"
#include "meta.h"
#include "os.h"
#include "requested.h"
#include "span.h"

#define HOT_EMPTY4 &span_empty, &span_empty, &span_empty, &span_empty
#define HOT_EMPTY16 HOT_EMPTY4, HOT_EMPTY4, HOT_EMPTY4, HOT_EMPTY4
#define HOT_EMPTY64 HOT_EMPTY16, HOT_EMPTY16, HOT_EMPTY16, HOT_EMPTY16
sc_frontend_t registry_dead_frontend = {
    .small = {HOT_EMPTY64, &span_empty},
    .hot = {HOT_EMPTY64},
    .slow_hot = {HOT_EMPTY64},
};
_Static_assert(NUM_CLASSES == 64, "registry_dead_frontend lists 64 hot spans");
_Static_assert(SMALL_SLOTS == 65, "registry_dead_frontend lists 65 small entries");

/* Never a heap: the cache's key before the first lookup, so that even
 * sc_alloc(NULL, n) misses it. */
static char no_heap;
#define NO_HEAP ((struct sc_heap_s *)(void *)&no_heap)

_Thread_local thread_cache_t registry_thread_cache __attribute__((tls_model("initial-exec"))) = {
    NO_HEAP, &registry_dead_frontend};
_Thread_local thread_state_t *registry_current_thread __attribute__((tls_model("initial-exec")));
#define current_thread registry_current_thread

#define THREAD_STATE_BYTES ((size_t)4096)

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t thread_exit_key;
static pthread_once_t thread_exit_once = PTHREAD_ONCE_INIT;
/* Frontends are type-stable: once created they are only ever recycled as
 * frontends, so a stale pointer compares and reads safely. */
static sc_frontend_t *free_frontends;
static _Atomic uint64_t heap_id_counter;
static _Atomic unsigned thread_counter;

void registry_lock(void) { pthread_mutex_lock(&registry_mutex); }
void registry_unlock(void) { pthread_mutex_unlock(&registry_mutex); }

uint64_t registry_next_heap_id(void)
{
    return atomic_fetch_add_explicit(&heap_id_counter, 1, memory_order_relaxed) + 1;
}

/* Never-used frontends of the last metadata chunk taken for them: handed
 * out one by one, so that a process with one thread touches the pages of
 * one frontend, not of the chunk's eleven (linking them all up front made
 * 44 KiB of a 64 KiB chunk resident for the first thread). */
static char *frontend_chunk_next, *frontend_chunk_end;

/* Under the lock: a recycled frontend, else a never-used one. */
static sc_frontend_t *frontend_alloc_struct(void)
{
    sc_frontend_t *f = free_frontends;
    if (f != NULL) {
        free_frontends = f->free_next;
        return f;
    }
    if ((size_t)(frontend_chunk_end - frontend_chunk_next) < sizeof(sc_frontend_t)) {
        size_t chunk = (size_t)64 << 10;
        char *mem = meta_alloc(chunk);
        if (mem == NULL)
            return NULL;
        frontend_chunk_next = mem;
        frontend_chunk_end = mem + chunk;
    }
    f = (sc_frontend_t *)(void *)frontend_chunk_next;
    frontend_chunk_next += sizeof(sc_frontend_t);
    return f;
}

static void frontend_free_struct(sc_frontend_t *f)
{
    f->heap = NULL;
    f->heap_id = 0;
    f->thread = NULL;
    f->free_next = free_frontends;
    free_frontends = f;
}

/* Under the lock: the thread lets go of f's spans and f leaves its heap. */
static void frontend_teardown(sc_frontend_t *f)
{
    struct sc_heap_s *heap = f->heap;
    frontend_give_up_spans(f);
    requested_retire(f);
    if (f->heap_prev)
        f->heap_prev->heap_next = f->heap_next;
    else
        heap->frontends = f->heap_next;
    if (f->heap_next)
        f->heap_next->heap_prev = f->heap_prev;
    heap->frontend_count--;
    f->heap = NULL;
}

/* Set once this thread's state was torn down at its exit: a call after
 * that (another key's destructor, libc freeing its own thread data) must
 * not leave a state behind that no destructor will see. */
_Thread_local bool registry_thread_exited __attribute__((tls_model("initial-exec")));

static void thread_exit(void *arg)
{
    thread_state_t *ts = arg;
    registry_lock();
    sc_frontend_t *f = ts->frontends;
    while (f) {
        sc_frontend_t *next = f->thread_next;
        if (f->heap)
            frontend_teardown(f);
        frontend_free_struct(f);
        f = next;
    }
    registry_unlock();
    if (ts->table != (frontend_slot_t *)(ts + 1))
        meta_free(ts->table, ts->table_size * sizeof(frontend_slot_t));
    meta_free(ts, ts->bytes);
    current_thread = NULL;
    registry_thread_cache.heap = NO_HEAP;
    registry_thread_cache.frontend = &registry_dead_frontend;
    registry_thread_exited = true;
}

/* After the exit teardown: the state the call created goes at once, and
 * the key no longer names it (a later destructor round would free it
 * again). */
static void after_exit_release(void)
{
    thread_state_t *ts = current_thread;
    if (ts == NULL)
        return;
    pthread_setspecific(thread_exit_key, NULL);
    thread_exit(ts);
}

void *registry_alloc_after_exit(struct sc_heap_s *heap, size_t n)
{
    sc_frontend_t *t = registry_lookup(heap, "sc_alloc");
    void *p = t ? frontend_alloc(t, n) : NULL;
    int saved = errno;
    after_exit_release();
    errno = saved;
    return p;
}

void registry_free_after_exit(struct sc_heap_s *heap, void *p)
{
    sc_frontend_t *t = registry_lookup(heap, "sc_free");
    if (t)
        free_dispatch(t, p, "sc_free");
    after_exit_release();
}

static void thread_exit_key_create(void)
{
    pthread_key_create(&thread_exit_key, thread_exit);
}

static thread_state_t *thread_state_get(void)
{
    thread_state_t *ts = current_thread;
    if (likely(ts != NULL))
        return ts;
    pthread_once(&thread_exit_once, thread_exit_key_create);
    /* A page: the state and a table for ~120 heaps before it grows. From
     * pooled metadata memory, so thread churn costs no system call. */
    size_t bytes = THREAD_STATE_BYTES;
    ts = meta_alloc(bytes);
    if (ts == NULL)
        return NULL;
    ts->bytes = bytes;
    ts->table = (frontend_slot_t *)(ts + 1);
    size_t slots = (bytes - sizeof *ts) / sizeof(frontend_slot_t);
    ts->table_size = 1;
    while (ts->table_size * 2 <= slots)
        ts->table_size *= 2;
    ts->pool_slot = atomic_fetch_add_explicit(&thread_counter, 1, memory_order_relaxed) % POOL_SLOTS;
    /* The destructor runs at thread exit, even for threads that never
     * call into scalloc again. */
    if (pthread_setspecific(thread_exit_key, ts) != 0) {
        meta_free(ts, bytes);
        return NULL;
    }
    current_thread = ts;
    return ts;
}

static size_t slot_index(uint64_t id, size_t size)
{
    /* Fibonacci hashing spreads consecutive ids. */
    return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (size - 1);
}

static sc_frontend_t *table_find(thread_state_t *ts, uint64_t id)
{
    size_t mask = ts->table_size - 1;
    for (size_t i = slot_index(id, ts->table_size);; i = (i + 1) & mask) {
        if (ts->table[i].heap_id == id)
            return ts->table[i].frontend;
        if (ts->table[i].heap_id == 0)
            return NULL;
    }
}

static void table_put(frontend_slot_t *table, size_t size, uint64_t id, sc_frontend_t *f)
{
    size_t mask = size - 1;
    size_t i = slot_index(id, size);
    while (table[i].heap_id != 0)
        i = (i + 1) & mask;
    table[i].heap_id = id;
    table[i].frontend = f;
}

/* Under the lock: drops frontends whose heap was destroyed from the
 * thread's list and rebuilds the table with the live ones, so a thread
 * that outlives many heaps keeps only what it uses. */
static bool thread_compact(thread_state_t *ts)
{
    size_t live = 0;
    sc_frontend_t **link = &ts->frontends;
    while (*link) {
        sc_frontend_t *f = *link;
        if (f->heap == NULL) {
            *link = f->thread_next;
            frontend_free_struct(f);
        } else {
            live++;
            link = &f->thread_next;
        }
    }
    size_t size = ts->table_size;
    while ((live + 1) * 2 > size)
        size *= 2;
    frontend_slot_t *table = ts->table;
    if (size != ts->table_size) {
        table = meta_alloc(size * sizeof(frontend_slot_t));
        if (table == NULL)
            return false;
    } else {
        memset(table, 0, size * sizeof(frontend_slot_t));
    }
    for (sc_frontend_t *f = ts->frontends; f; f = f->thread_next)
        table_put(table, size, f->heap_id, f);
    if (table != ts->table && ts->table != (frontend_slot_t *)(ts + 1))
        meta_free(ts->table, ts->table_size * sizeof(frontend_slot_t));
    ts->table = table;
    ts->table_size = size;
    ts->table_used = live;
    return true;
}

static sc_frontend_t *frontend_create(struct sc_heap_s *heap, thread_state_t *ts,
                                      uint64_t id, const char *call)
{
    registry_lock();
    if (atomic_load_explicit(&heap->state, memory_order_relaxed) != HEAP_LIVE ||
        atomic_load_explicit(&heap->id, memory_order_relaxed) != id) {
        registry_unlock();
        error_report(SC_ERR_DESTROYED_HEAP, call, heap, NULL);
        return NULL;
    }
    if ((ts->table_used + 2) * 2 > ts->table_size && !thread_compact(ts)) {
        registry_unlock();
        errno = ENOMEM;
        return NULL;
    }
    sc_frontend_t *f = frontend_alloc_struct();
    if (f == NULL) {
        registry_unlock();
        errno = ENOMEM;
        return NULL;
    }
    frontend_forget_spans(f);
    atomic_store_explicit(&f->slack, 0, memory_order_relaxed);
    f->heap = heap;
    f->heap_id = id;
    f->trim_epoch = atomic_load_explicit(&heap->trim_epoch, memory_order_relaxed);
    uint32_t now = os_coarse_ms();
    f->retire_due = now + HOT_RETIRE_MS;
    atomic_store_explicit(&f->active_ms, now, memory_order_relaxed);
    f->idle_look_seen = now;
    f->idle_trimmed = false;
    f->empty_hot_seen = 0;
    f->retire_countdown = HOT_RETIRE_CHECK_EVERY;
    f->thread = ts;
    f->pool_slot = ts->pool_slot;
    f->heap_prev = NULL;
    f->heap_next = heap->frontends;
    if (heap->frontends)
        heap->frontends->heap_prev = f;
    heap->frontends = f;
    heap->frontend_count++;
    f->thread_next = ts->frontends;
    ts->frontends = f;
    table_put(ts->table, ts->table_size, id, f);
    ts->table_used++;
    registry_unlock();
    return f;
}

sc_frontend_t *registry_lookup(struct sc_heap_s *heap, const char *call)
{
    if (heap == NULL) {
        error_report(SC_ERR_DESTROYED_HEAP, call, NULL, NULL);
        return NULL;
    }
    uint64_t id = atomic_load_explicit(&heap->id, memory_order_acquire);
    if (atomic_load_explicit(&heap->state, memory_order_acquire) != HEAP_LIVE) {
        error_report(SC_ERR_DESTROYED_HEAP, call, heap, NULL);
        return NULL;
    }
    thread_state_t *ts = thread_state_get();
    if (ts == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    sc_frontend_t *f = table_find(ts, id);
    if (f == NULL) {
        f = frontend_create(heap, ts, id, call);
        if (f == NULL)
            return NULL;
    }
    registry_thread_cache.heap = heap;
    registry_thread_cache.frontend = f;
    return f;
}

void registry_detach_heap(struct sc_heap_s *heap)
{
    /* A thread may still have f cached under this heap's address, which a
     * new heap can reuse: with no hot span and no heap, f sends it to the
     * slow path, which looks the new heap up. */
    for (sc_frontend_t *f = heap->frontends; f; f = f->heap_next) {
        frontend_forget_spans(f);
        f->heap = NULL;
    }
    heap->frontends = NULL;
    heap->frontend_count = 0;
}

void registry_forget_hot_spans(struct sc_heap_s *heap)
{
    for (sc_frontend_t *f = heap->frontends; f; f = f->heap_next)
        frontend_forget_spans(f);
}

/* Under the registry lock: whether the automatic idle trim (below) takes
 * f at `now`: its owner read the clock on no slow path for a whole delay,
 * and it was not trimmed since, or long ago. Marks it taken. */
static bool idle_pick(sc_frontend_t *f, uint32_t now, uint32_t delay)
{
    uint32_t active = atomic_load_explicit(&f->active_ms, memory_order_relaxed);
    if (time_before(now - delay, active))
        return false; /* active within the last delay */
    if (f->idle_trimmed && !time_before(f->idle_trimmed_ms, active) &&
        time_before(now - IDLE_RETRIM_DELAYS * delay, f->idle_trimmed_ms))
        return false; /* trimmed since, not long ago */
    f->idle_trimmed = true;
    f->idle_trimmed_ms = now;
    return true;
}

/* What a look at the other frontends of a heap picks them by. */
typedef struct {
    uint32_t now, delay;
    bool automatic; /* the idle trim: idle_pick decides, else every one */
    bool later;     /* the drained look: one whose owner may still come */
} look_t;

/* Takes, under the registry lock, `act` to the frontends of heap but own
 * that `pick` takes, in groups of at most FRONTEND_IDLE_GROUP. */
static void look_in_groups(struct sc_heap_s *heap, const sc_frontend_t *own,
                           bool (*pick)(sc_frontend_t *, look_t *), look_t *look,
                           void (*act)(sc_frontend_t *const *, unsigned))
{
    sc_frontend_t *group[FRONTEND_IDLE_GROUP];
    unsigned n = 0;
    registry_lock();
    for (sc_frontend_t *f = heap->frontends; f; f = f->heap_next) {
        if (f == own || !pick(f, look))
            continue;
        group[n++] = f;
        if (n == FRONTEND_IDLE_GROUP) {
            act(group, n);
            n = 0;
        }
    }
    if (n > 0)
        act(group, n);
    registry_unlock();
}

static bool trim_pick(sc_frontend_t *f, look_t *look)
{
    return !look->automatic || idle_pick(f, look->now, look->delay);
}

/* The idle trim (frontend.c, "IDLE TRIM") of the frontends of heap but
 * own (only those idle_pick takes, when `automatic`). */
static void trim_frontends(struct sc_heap_s *heap, const sc_frontend_t *own, bool automatic,
                           uint32_t now, uint32_t delay)
{
    look_t look = {.now = now, .delay = delay, .automatic = automatic};
    look_in_groups(heap, own, trim_pick, &look, frontend_trim_idle);
}

/* DRAINED SPANS OF IDLE OWNERS. A floating span that other threads' frees
 * emptied is DRAINED: it stays in its owner's floating set, and the owner
 * pools it on its next allocation slow path (frontend.c, place_span). An
 * owner that stopped allocating (a thread that built a structure other
 * threads now take apart, then waits for them) would keep it until the
 * release policy gives its pages back, while the threads that allocate
 * fault fresh spans in. So, on the same clock readings as the idle trim,
 * once per DRAINED_IDLE_MS at most and only while some frontend's drained
 * classes wait, any thread's slow path pools, behind their gates, the
 * drained spans of the other frontends whose drained classes waited
 * DRAINED_IDLE_MS or more (their owners would have pooled them on any
 * slow path since). One membarrier per look (the process registered for
 * them when its first heap was made); an owner on a slow path is left
 * alone. Not for checked or tracking heaps (their frontends wait for their
 * owners, as in the idle trim). */
static bool drained_pick(sc_frontend_t *f, look_t *look)
{
    if (atomic_load_explicit(&f->drained_classes, memory_order_relaxed) == 0)
        return false;
    if (time_before(look->now - DRAINED_IDLE_MS,
                    atomic_load_explicit(&f->drained_since, memory_order_relaxed))) {
        look->later = true; /* its owner may still come */
        return false;
    }
    return true;
}

static void drained_look(sc_frontend_t *own, uint32_t now)
{
    struct sc_heap_s *heap = own->heap;
    /* One looker per period, elected as the sweeps' are: a report the look
     * misses sets the flag again after the election cleared it. */
    if (!arena_sweep_elect(&heap->drained_waiting, &heap->drained_look_due, now, DRAINED_IDLE_MS))
        return;
    look_t look = {.now = now};
    look_in_groups(heap, own, drained_pick, &look, frontend_pool_drained_idle);
    if (look.later)
        atomic_store_explicit(&heap->drained_waiting, 1, memory_order_relaxed);
}

/* AUTOMATIC IDLE TRIM. A thread that stopped allocating (blocked,
 * waiting for work, done) keeps its hot spans, and other threads' frees
 * can empty them; only a trim gave their pages back. So the allocation
 * slow path of any thread of the heap, once per purge delay at most (the
 * first of them to take heap->idle_look_due by a CAS), looks at the other
 * frontends and gives sc_heap_trim's idle trim (frontend.c, "IDLE TRIM")
 * to those whose owner read the clock on no slow path for a whole delay
 * (it does every HOT_RETIRE_CHECK_EVERY slow paths), unless it trimmed
 * them already since they were last active and less than
 * IDLE_RETRIM_DELAYS delays ago (their hot spans may have been emptied
 * since by remote frees). An owner that comes back meanwhile is safe (the
 * gate) and pays at most a few page faults per span per look; a heap
 * whose threads all allocate makes no system call for it. Not for
 * checked or tracking heaps (their frontends wait for their owners, as in
 * sc_heap_trim) nor with SC_PURGE_NEVER (nothing goes back by time). The
 * drained look above runs first, on the same clock reading. */
void registry_idle_look_slow(sc_frontend_t *own, uint32_t now)
{
    struct sc_heap_s *heap = own->heap;
    own->idle_look_seen = now;
    /* Neither look for checked or tracking heaps: their frontends wait
     * for their owners. */
    if ((heap->flags & (SC_HEAP_CHECKED | SC_HEAP_TRACK_REQUESTED)) != 0)
        return;
    drained_look(own, now);
    uint32_t delay = heap->purge_delay_ms;
    if (delay == UINT32_MAX)
        return;
    uint32_t due = atomic_load_explicit(&heap->idle_look_due, memory_order_relaxed);
    if (time_before(now, due))
        return;
    /* relaxed: the CAS only elects one looker per delay; the registry lock
     * orders what the look reads. */
    if (!atomic_compare_exchange_strong_explicit(&heap->idle_look_due, &due, now + delay,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    /* This thread's own batches first: they may hold the last live blocks
     * of an idle owner's hot spans (a thread that frees what an idle one
     * allocated), which would then look in use and wait for the next
     * retrim. */
    frontend_remote_flush(own);
    trim_frontends(heap, own, true, now, delay);
}

void registry_trim_idle(struct sc_heap_s *heap, const sc_frontend_t *own)
{
    trim_frontends(heap, own, false, 0, 0);
}
