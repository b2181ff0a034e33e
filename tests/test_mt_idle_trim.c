/*
 * sc_heap_trim from one thread gives back the memory of other threads that
 * are alive but idle (scalloc.h, sc_heap_trim; lib/frontend.c, "IDLE
 * TRIM"). Checked here:
 *  - workers that allocated blocks of many classes (a fifth freed by
 *    another worker) and freed them all, then block at a barrier: after
 *    the main thread's trim the heap holds at most 256 KiB resident per
 *    frontend, and the workers go on allocating and freeing with every
 *    block's contents intact                              [idle_workers]
 *  - the same while the workers never stop: allocation bursts over many
 *    classes, each block checked before it is freed, while the main thread
 *    trims over and over; nothing is lost or handed out twice
 *                                                          [trim_while_busy]
 *  - the automatic idle trim (no sc_heap_trim call, a 1 ms purge delay)
 *    while half the workers pause and come back: contents intact, nothing
 *    lost, the heap's invariants hold           [automatic_while_pausing]
 *  - a worker whose spans a trim parked exits without allocating again,
 *    or allocates after sc_heap_reset: nothing leaks, nothing breaks
 *                                                          [parked_then_exit,
 *                                                           parked_then_reset]
 *  - a thread fills blocks over many spans, another frees them all and
 *    exits, and the first one then waits (no slow path): a third
 *    thread's allocations get its drained floating spans pooled (no trim
 *    call), after which the first thread allocates the class again with
 *    every block intact and nothing lost       [drained_of_idle_owner]
 *  - an allocation under way while the trim runs (the pop read its span
 *    before the trim parked it and finishes after): it gets the block the
 *    trim kept, whose contents survive, and every other block of the span
 *    comes back through the owner's rebuilt list, none of them twice
 *                                                          [in_flight_pop]
 * Runs under the standalone runner of test_util.h (also under TSan).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TEST_STANDALONE_RUNNER
#include "test_util.h"

#include "frontend.h"
#include "invariants.h"
#include "registry.h"
#include "span.h"

enum { WORKERS = 4, PER_CLASS = 96 };

/* Sizes over the small classes (fast path), the bigger classes (taken
 * behind the owner's gate) and pages: 16 B .. 256 KiB. */
static const size_t sizes[] = {16,   24,   48,   64,    100,   128,   200,   256,   400,
                               512,  768,  1000, 1024,  1500,  2048,  4000,  6000,  8192,
                               12000, 16384, 30000, 65536, 100000, 200000, 262144};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Idle trim needs membarrier(2); where it is refused, sc_heap_trim leaves
 * other threads' hot spans to them (documented), and the resident check
 * has nothing to measure. */
static bool membarrier_usable(void)
{
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    /* Both ends and one byte per 4 KiB: every page the block spans. */
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (unsigned char)(seed + i / 4096);
    p[n - 1] = (unsigned char)(seed ^ 0x5a);
}

static bool intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i += 4096)
        if (p[i] != (unsigned char)(seed + i / 4096))
            return false;
    return p[n - 1] == (unsigned char)(seed ^ 0x5a);
}

/* ------------------------------------------------------------------------ */

typedef struct {
    sc_heap_t *heap;
    unsigned id;
    pthread_barrier_t *barrier;
    void **blocks;   /* NSIZES * PER_CLASS, this worker's */
    void **handed;   /* every fifth, freed by the next worker */
    size_t handed_n;
    void **from_prev; /* the previous worker's handed blocks */
    size_t *from_prev_n;
} idle_worker_t;

static void *idle_worker(void *arg)
{
    idle_worker_t *w = arg;
    size_t k = 0;
    for (size_t c = 0; c < NSIZES; c++) {
        for (size_t i = 0; i < PER_CLASS; i++, k++) {
            unsigned char *p = sc_alloc(w->heap, sizes[c]);
            TEST_ASSERT(p != NULL);
            fill(p, sizes[c], (unsigned)k);
            w->blocks[k] = p;
        }
    }
    pthread_barrier_wait(w->barrier); /* 1: all allocated */
    w->handed_n = 0;
    k = 0;
    for (size_t c = 0; c < NSIZES; c++) {
        for (size_t i = 0; i < PER_CLASS; i++, k++) {
            TEST_CHECK(intact(w->blocks[k], sizes[c], (unsigned)k), "block %zu of worker %u", k,
                       w->id);
            if (k % 5 == 0)
                w->handed[w->handed_n++] = w->blocks[k];
            else
                sc_free(w->heap, w->blocks[k]);
        }
    }
    pthread_barrier_wait(w->barrier); /* 2: handed blocks published */
    for (size_t i = 0; i < *w->from_prev_n; i++)
        sc_free(w->heap, w->from_prev[i]);
    pthread_barrier_wait(w->barrier); /* 3: all freed; idle until the trim is done */
    pthread_barrier_wait(w->barrier); /* 4: the main thread trimmed and looked */
    /* Parked spans come back to the fast path; their blocks are usable. */
    k = 0;
    for (size_t c = 0; c < NSIZES; c++) {
        for (size_t i = 0; i < PER_CLASS; i++, k++) {
            unsigned char *p = sc_alloc(w->heap, sizes[c]);
            TEST_ASSERT(p != NULL);
            fill(p, sizes[c], (unsigned)(k + 7));
            w->blocks[k] = p;
        }
    }
    k = 0;
    for (size_t c = 0; c < NSIZES; c++) {
        for (size_t i = 0; i < PER_CLASS; i++, k++) {
            TEST_CHECK(intact(w->blocks[k], sizes[c], (unsigned)(k + 7)),
                       "block %zu of worker %u after the trim", k, w->id);
            sc_free(w->heap, w->blocks[k]);
        }
    }
    return NULL;
}

static void idle_workers(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, WORKERS + 1);
    idle_worker_t w[WORKERS];
    pthread_t tid[WORKERS];
    size_t total = NSIZES * PER_CLASS;
    for (unsigned i = 0; i < WORKERS; i++) {
        w[i] = (idle_worker_t){.heap = h, .id = i, .barrier = &barrier};
        w[i].blocks = calloc(total, sizeof(void *));
        w[i].handed = calloc(total, sizeof(void *));
        TEST_ASSERT(w[i].blocks != NULL && w[i].handed != NULL);
    }
    for (unsigned i = 0; i < WORKERS; i++) {
        idle_worker_t *prev = &w[(i + WORKERS - 1) % WORKERS];
        w[i].from_prev = prev->handed;
        w[i].from_prev_n = &prev->handed_n;
        TEST_ASSERT(pthread_create(&tid[i], NULL, idle_worker, &w[i]) == 0);
    }
    pthread_barrier_wait(&barrier); /* 1 */
    sc_heap_stats_t busy = test_stats(h);
    pthread_barrier_wait(&barrier); /* 2 */
    pthread_barrier_wait(&barrier); /* 3: workers idle, alive */
    sc_heap_stats_t before = test_stats(h);
    TEST_CHECK(before.live_blocks == 0, "live %zu", before.live_blocks);
    sc_heap_trim(h);
    sc_heap_stats_t after = test_stats(h);
    TEST_LOG("resident with %zu live blocks %zu KiB; all freed %zu KiB; after the trim %zu KiB "
             "(%u idle frontends)",
             busy.live_blocks, busy.resident_bytes >> 10, before.resident_bytes >> 10,
             after.resident_bytes >> 10, WORKERS);
    TEST_CHECK(after.live_blocks == 0, "live %zu", after.live_blocks);
    if (membarrier_usable()) {
        TEST_CHECK(after.resident_bytes <= (size_t)WORKERS * (256u << 10),
                   "%zu KiB resident after the trim with %u idle workers",
                   after.resident_bytes >> 10, WORKERS);
    } else {
        TEST_LOG("membarrier refused here: idle frontends keep their hot spans");
    }
    pthread_barrier_wait(&barrier); /* 4 */
    for (unsigned i = 0; i < WORKERS; i++) {
        TEST_ASSERT(pthread_join(tid[i], NULL) == 0);
        free(w[i].blocks);
        free(w[i].handed);
    }
    pthread_barrier_destroy(&barrier);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */

typedef struct {
    sc_heap_t *heap;
    unsigned id;
    size_t rounds;
    _Atomic unsigned *running;
    _Atomic size_t *progress; /* rounds done by all workers */
} busy_worker_t;

/* Bursts of one class at a time: each burst empties its hot span again,
 * which is what a trim parks; the next burst of the class takes it back. */
static void busy_round(busy_worker_t *w, test_rng_t *rng, size_t r)
{
    enum { BURST = 48 };
    void *live[BURST];
    size_t n = sizes[test_rng_range(rng, 0, NSIZES - 1)];
    size_t count = n > 16384 ? 4 : BURST;
    for (size_t i = 0; i < count; i++) {
        unsigned char *p = sc_alloc(w->heap, n);
        TEST_ASSERT(p != NULL);
        fill(p, n, (unsigned)(r * BURST + i + w->id));
        live[i] = p;
    }
    for (size_t i = 0; i < count; i++) {
        TEST_CHECK(intact(live[i], n, (unsigned)(r * BURST + i + w->id)),
                   "worker %u round %zu block %zu of %zu B", w->id, r, i, n);
        sc_free(w->heap, live[i]);
    }
    atomic_fetch_add(w->progress, 1);
}

static void *busy_worker(void *arg)
{
    busy_worker_t *w = arg;
    test_rng_t rng = {0x1234u + w->id};
    for (size_t r = 0; r < w->rounds; r++)
        busy_round(w, &rng, r);
    atomic_fetch_sub(w->running, 1);
    return NULL;
}

static void trim_while_busy(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    _Atomic unsigned running = WORKERS;
    _Atomic size_t progress = 0;
    busy_worker_t w[WORKERS];
    pthread_t tid[WORKERS];
    size_t rounds = test_scaled(3000, 200);
    for (unsigned i = 0; i < WORKERS; i++) {
        w[i] = (busy_worker_t){h, i, rounds, &running, &progress};
        TEST_ASSERT(pthread_create(&tid[i], NULL, busy_worker, &w[i]) == 0);
    }
    /* A trim per round of some worker at most: as many trims as the
     * workers make progress (a trim in a loop would set their spans up
     * afresh faster than they use them, very slowly under sanitizers). */
    size_t trims = 0;
    while (atomic_load(&running) != 0) {
        size_t seen = atomic_load(&progress);
        sc_heap_trim(h);
        trims++;
        while (atomic_load(&running) != 0 && atomic_load(&progress) == seen)
            sched_yield();
    }
    for (unsigned i = 0; i < WORKERS; i++)
        TEST_ASSERT(pthread_join(tid[i], NULL) == 0);
    TEST_LOG("%zu trims while %u workers ran %zu rounds each", trims, WORKERS, rounds);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    sc_heap_destroy(h);
}

/* The automatic idle trim (lib/registry.c) with a 1 ms purge delay: half
 * the workers allocate without pause (busy_worker), so their slow paths
 * look at the others once per delay; the other half stop every 16 rounds
 * until the steady ones made 512 more (or finished), so the looks find them
 * idle and trim them, and they come back to parked and trimmed spans
 * while looks go on. Every block is checked before it is freed. */
typedef struct {
    busy_worker_t w;
    _Atomic unsigned *steady_running;
} pausing_worker_t;

static void *pausing_worker(void *arg)
{
    pausing_worker_t *p = arg;
    test_rng_t rng = {0x4321u + p->w.id};
    for (size_t r = 0; r < p->w.rounds; r++) {
        busy_round(&p->w, &rng, r);
        if (r % 16 != 15)
            continue;
        size_t seen = atomic_load(p->w.progress);
        while (atomic_load(p->steady_running) != 0 && atomic_load(p->w.progress) < seen + 512)
            sched_yield();
    }
    atomic_fetch_sub(p->w.running, 1);
    return NULL;
}

static void automatic_while_pausing(void)
{
    sc_heap_config_t cfg = {.name = "auto-idle", .purge_delay_ms = 1};
    sc_heap_t *h = sc_heap_create(&cfg);
    TEST_ASSERT(h != NULL);
    enum { STEADY = WORKERS / 2 };
    _Atomic unsigned steady = STEADY, pausing = WORKERS - STEADY;
    _Atomic size_t progress = 0;
    size_t rounds = test_scaled(8000, 800);
    busy_worker_t w[STEADY];
    pausing_worker_t pw[WORKERS - STEADY];
    pthread_t tid[WORKERS];
    for (unsigned i = 0; i < STEADY; i++) {
        w[i] = (busy_worker_t){h, i, rounds, &steady, &progress};
        TEST_ASSERT(pthread_create(&tid[i], NULL, busy_worker, &w[i]) == 0);
    }
    for (unsigned i = 0; i < WORKERS - STEADY; i++) {
        pw[i] = (pausing_worker_t){{h, STEADY + i, rounds / 2, &pausing, &progress}, &steady};
        TEST_ASSERT(pthread_create(&tid[STEADY + i], NULL, pausing_worker, &pw[i]) == 0);
    }
    for (unsigned i = 0; i < WORKERS; i++)
        TEST_ASSERT(pthread_join(tid[i], NULL) == 0);
    sc_heap_stats_t st = test_stats(h);
    TEST_LOG("%zu rounds in all; %zu KiB resident at the end", atomic_load(&progress),
             st.resident_bytes >> 10);
    TEST_CHECK(st.live_blocks == 0, "live %zu", st.live_blocks);
    const char *broken = invariants_check_heap(h, NULL);
    TEST_CHECK(broken == NULL, "%s", broken ? broken : "");
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */

typedef struct {
    sc_heap_t *heap;
    pthread_barrier_t *barrier;
    bool alloc_after;
} parked_worker_t;

static void *parked_worker(void *arg)
{
    parked_worker_t *w = arg;
    void *b[NSIZES];
    for (size_t c = 0; c < NSIZES; c++) {
        b[c] = sc_alloc(w->heap, sizes[c]);
        TEST_ASSERT(b[c] != NULL);
        fill(b[c], sizes[c], (unsigned)c);
    }
    for (size_t c = 0; c < NSIZES; c++)
        sc_free(w->heap, b[c]);
    pthread_barrier_wait(w->barrier); /* 1: idle, every hot span empty */
    pthread_barrier_wait(w->barrier); /* 2: trimmed (and maybe reset) */
    if (w->alloc_after) {
        for (size_t c = 0; c < NSIZES; c++) {
            b[c] = sc_alloc(w->heap, sizes[c]);
            TEST_ASSERT(b[c] != NULL);
            fill(b[c], sizes[c], (unsigned)c + 3);
        }
        for (size_t c = 0; c < NSIZES; c++) {
            TEST_CHECK(intact(b[c], sizes[c], (unsigned)c + 3), "class of %zu B", sizes[c]);
            sc_free(w->heap, b[c]);
        }
    }
    return NULL; /* exit: its spans, parked or not, are handed on */
}

static void parked_run(bool reset, bool alloc_after)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    parked_worker_t w = {h, &barrier, alloc_after};
    pthread_t tid;
    TEST_ASSERT(pthread_create(&tid, NULL, parked_worker, &w) == 0);
    pthread_barrier_wait(&barrier); /* 1 */
    sc_heap_trim(h);
    sc_heap_trim(h); /* a second trim finds the spans parked already */
    if (reset)
        sc_heap_reset(h);
    pthread_barrier_wait(&barrier); /* 2 */
    TEST_ASSERT(pthread_join(tid, NULL) == 0);
    pthread_barrier_destroy(&barrier);
    sc_heap_stats_t st = test_stats(h);
    TEST_CHECK(st.live_blocks == 0, "live %zu", st.live_blocks);
    /* Everything the exited worker held is the heap's again: a trim gives
     * it all back. */
    sc_heap_trim(h);
    st = test_stats(h);
    TEST_CHECK(st.resident_bytes <= (size_t)256 << 10, "%zu KiB resident after exit and trim",
               st.resident_bytes >> 10);
    sc_heap_destroy(h);
}

static void parked_then_exit(void)
{
    parked_run(false, false);
}

static void parked_then_alloc(void)
{
    parked_run(false, true);
}

static void parked_then_reset(void)
{
    parked_run(true, true);
}

/* ------------------------------------------------------------------------ */

enum { POP_SIZE = 48, POP_BLOCKS = 40 };

typedef struct {
    sc_heap_t *heap;
    pthread_barrier_t *barrier;
    span_t *span;        /* the hot span the pop read */
    const block_t *head; /* its list's head when the pop read it */
} pop_worker_t;

static void *pop_worker(void *arg)
{
    pop_worker_t *w = arg;
    void *b[POP_BLOCKS];
    /* Fill and empty the class's hot span; an armed span that empties
     * leaves the slot and is kept, so take it back and empty it again at
     * once: it stays hot, with no block live. */
    for (int i = 0; i < POP_BLOCKS; i++)
        TEST_ASSERT((b[i] = sc_alloc(w->heap, POP_SIZE)) != NULL);
    for (int i = 0; i < POP_BLOCKS; i++)
        sc_free(w->heap, b[i]);
    void *one = sc_alloc(w->heap, POP_SIZE);
    TEST_ASSERT(one != NULL);
    sc_free(w->heap, one);
    sc_frontend_t *t = registry_thread_cache.frontend;
    span_t *s = t->small[(POP_SIZE + 15) >> 4];
    TEST_CHECK(s != &span_empty && span_owned_live(s) == 0 && s->free != NULL,
               "the hot span is empty and in its slot (live %u)", span_owned_live(s));
    /* The first half of an allocation: the span and its head are read. */
    w->span = s;
    w->head = s->free;
    pthread_barrier_wait(w->barrier); /* 1: the main thread trims */
    pthread_barrier_wait(w->barrier); /* 2: trimmed */
    TEST_CHECK(frontend_span_trimmed(s), "%s", "the trim parked the span and gave its pages back");
    /* The rest of that allocation, on the span it read. */
    block_t *got = frontend_local_pop(t, s);
    TEST_CHECK(got == w->head, "the pop took %p, not the kept head %p", (void *)got,
               (const void *)w->head);
    memset(got, 0xab, POP_SIZE);
    /* The next allocations take the owner's slow path, which puts the span
     * back with its list rebuilt: every block but `got`, each once. */
    size_t cap = span_capacity(s);
    void **more = calloc(cap, sizeof(void *));
    TEST_ASSERT(more != NULL);
    size_t in_span = 0;
    for (size_t i = 0; i < cap - 1; i++) {
        more[i] = sc_alloc(w->heap, POP_SIZE);
        TEST_ASSERT(more[i] != NULL);
        TEST_CHECK(more[i] != (void *)got, "block %zu is the live one", i);
        memset(more[i], (int)(i & 0x7f), POP_SIZE);
        in_span += span_at(more[i]) == s;
    }
    for (size_t i = 0; i < cap - 1; i++)
        for (size_t k = 0; k < POP_SIZE; k++)
            TEST_CHECK(((unsigned char *)more[i])[k] == (unsigned char)(i & 0x7f),
                       "block %zu was handed out twice", i);
    for (size_t k = 0; k < POP_SIZE; k++)
        TEST_CHECK(((unsigned char *)got)[k] == 0xab, "%s", "the live block's contents survive");
    /* Every carved block of the span came back (only the span's uncarved
     * tail and other spans serve the rest). */
    size_t carved = (size_t)(span_bump(s) - span_first_block(s)) / s->block_size;
    TEST_CHECK(in_span + 1 >= carved, "%zu of %zu carved blocks came back", in_span + 1, carved);
    for (size_t i = 0; i < cap - 1; i++)
        sc_free(w->heap, more[i]);
    sc_free(w->heap, got);
    free(more);
    pthread_barrier_wait(w->barrier); /* 3: all freed */
    pthread_barrier_wait(w->barrier); /* 4: the main thread looked */
    return NULL;
}

static void in_flight_pop(void)
{
    if (!membarrier_usable()) {
        TEST_LOG("membarrier refused here: no idle trim to race with");
        return;
    }
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    pop_worker_t w = {h, &barrier, NULL, NULL};
    pthread_t tid;
    TEST_ASSERT(pthread_create(&tid, NULL, pop_worker, &w) == 0);
    pthread_barrier_wait(&barrier); /* 1 */
    sc_heap_trim(h);
    pthread_barrier_wait(&barrier); /* 2 */
    pthread_barrier_wait(&barrier); /* 3 */
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(h, &bad);
    TEST_CHECK(broken == NULL, "span %p: %s", (void *)bad, broken ? broken : "");
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    pthread_barrier_wait(&barrier); /* 4 */
    TEST_ASSERT(pthread_join(tid, NULL) == 0);
    pthread_barrier_destroy(&barrier);
    sc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */

enum { DRAIN_BLOCKS = 4000, DRAIN_SIZE = 64, LOOKER_BLOCKS = 1000, LOOKER_SIZE = 4096 };

typedef struct {
    sc_heap_t *heap;
    unsigned char **blocks;
} drain_freer_t;

/* Frees every block of the idle owner's, then exits: its exit hands the
 * last remote batches over, so the spans are drained when it is joined. */
static void *drain_freer(void *arg)
{
    drain_freer_t *d = arg;
    for (size_t i = 0; i < DRAIN_BLOCKS; i++)
        sc_free(d->heap, d->blocks[i]);
    return NULL;
}

typedef struct {
    sc_heap_t *heap;
    span_t **spans; /* the owner's drained spans */
    size_t nspans;
    sc_frontend_t *owner;
    bool pooled;
} drain_looker_t;

static bool still_drained(const drain_looker_t *l)
{
    for (size_t i = 0; i < l->nspans; i++)
        if (span_state(l->spans[i]) == SPAN_DRAINED && span_owner(l->spans[i]) == l->owner)
            return true;
    return false;
}

/* Allocates and frees batches over many spans (slow paths, and clock
 * readings on them) until the owner's drained spans are no longer its
 * own, for at most 5 s: the look is due DRAINED_IDLE_MS after the drain. */
static void *drain_looker(void *arg)
{
    drain_looker_t *l = arg;
    void **b = malloc(LOOKER_BLOCKS * sizeof *b);
    TEST_ASSERT(b != NULL);
    double until = test_now_seconds() + 5.0;
    while (!(l->pooled = !still_drained(l)) && test_now_seconds() < until) {
        for (size_t i = 0; i < LOOKER_BLOCKS; i++) {
            b[i] = sc_alloc(l->heap, LOOKER_SIZE);
            TEST_ASSERT(b[i] != NULL);
        }
        for (size_t i = 0; i < LOOKER_BLOCKS; i++)
            sc_free(l->heap, b[i]);
    }
    free(b);
    return NULL;
}

static void drained_of_idle_owner(void)
{
    sc_heap_t *h = sc_heap_create(&(sc_heap_config_t){.name = "drained-idle"});
    TEST_ASSERT(h != NULL);
    unsigned char **blocks = malloc(DRAIN_BLOCKS * sizeof *blocks);
    span_t **spans = malloc(DRAIN_BLOCKS * sizeof *spans);
    TEST_ASSERT(blocks != NULL && spans != NULL);
    for (size_t i = 0; i < DRAIN_BLOCKS; i++) {
        blocks[i] = sc_alloc(h, DRAIN_SIZE);
        TEST_ASSERT(blocks[i] != NULL);
        fill(blocks[i], DRAIN_SIZE, (unsigned)i);
    }
    drain_freer_t d = {h, blocks};
    pthread_t tid;
    TEST_ASSERT(pthread_create(&tid, NULL, drain_freer, &d) == 0);
    TEST_ASSERT(pthread_join(tid, NULL) == 0);
    /* The owner's floating spans of the class are drained now (its hot
     * span, empty too, stays hot). */
    drain_looker_t l = {h, spans, 0, sc_heap_thread(h), false};
    for (size_t i = 0; i < DRAIN_BLOCKS; i++) {
        span_t *s = span_at(blocks[i]);
        bool seen = false;
        for (size_t j = 0; j < l.nspans && !seen; j++)
            seen = spans[j] == s;
        if (!seen && span_state(s) == SPAN_DRAINED && span_owner(s) == l.owner)
            spans[l.nspans++] = s;
    }
    TEST_LOG("%zu drained spans of the idle owner", l.nspans);
    TEST_CHECK(l.nspans >= 2, "only %zu drained spans", l.nspans);
    TEST_ASSERT(pthread_create(&tid, NULL, drain_looker, &l) == 0);
    TEST_ASSERT(pthread_join(tid, NULL) == 0);
    if (membarrier_usable())
        TEST_CHECK(l.pooled, "the idle owner's drained spans were not pooled in 5 s");
    else
        TEST_LOG("membarrier refused: drained spans wait for their owner");
    /* The owner comes back: its sets lost those spans, nothing else. */
    for (size_t i = 0; i < DRAIN_BLOCKS; i++) {
        blocks[i] = sc_alloc(h, DRAIN_SIZE);
        TEST_ASSERT(blocks[i] != NULL);
        fill(blocks[i], DRAIN_SIZE, (unsigned)i * 7u);
    }
    for (size_t i = 0; i < DRAIN_BLOCKS; i++) {
        TEST_CHECK(intact(blocks[i], DRAIN_SIZE, (unsigned)i * 7u), "block %zu changed", i);
        sc_free(h, blocks[i]);
    }
    sc_heap_stats_t st = test_stats(h);
    TEST_CHECK(st.live_blocks == 0, "live %zu", st.live_blocks);
    const char *broken = invariants_check_heap(h, NULL);
    TEST_CHECK(broken == NULL, "%s", broken ? broken : "");
    free(spans);
    free(blocks);
    sc_heap_destroy(h);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"idle_trim::idle_workers", idle_workers},
        {"idle_trim::trim_while_busy", trim_while_busy},
        {"idle_trim::automatic_while_pausing", automatic_while_pausing},
        {"idle_trim::parked_then_exit", parked_then_exit},
        {"idle_trim::parked_then_alloc", parked_then_alloc},
        {"idle_trim::parked_then_reset", parked_then_reset},
        {"idle_trim::in_flight_pop", in_flight_pop},
        {"idle_trim::drained_of_idle_owner", drained_of_idle_owner},
    };
    return test_run_cases(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
