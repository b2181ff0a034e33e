/*
 * The shadow-model sequence of test_model.c with frees and reallocs from
 * other threads: scalloc.h's "Allocation" (sc_free and sc_realloc "from
 * any thread") and "Introspection" (stats "exact once they stop"), under
 * the file comment's thread-safety rule.
 *
 * The main thread runs the model: a table of slots, each empty or holding a
 * live block with its requested size, alignment and content key. Besides
 * allocating, resizing and freeing itself, it hands blocks to 2-4 worker
 * threads through queues. A worker checks the block it receives (contents,
 * usable size, ownership) and then either frees it (a remote free, often
 * into a span whose owner is the main thread) or resizes it with
 * sc_realloc (a realloc by a thread that did not allocate the block),
 * rewrites it and hands it back. Periodically the main thread waits until
 * every handed block has been dealt with and checks the whole model against
 * the heap: contents, no overlap, stats live_blocks and live_bytes.
 *
 * Contract lines checked here:
 *  - blocks keep their contents across hand-offs, remote frees and remote
 *    reallocs; usable sizes and ownership hold in every thread   [handoff_*]
 *  - a huge block shrunk by another thread stays in place, and a block
 *    resized by another thread keeps its prefix                  [handoff_*]
 *  - whenever the threads are quiet, stats live_blocks / live_bytes
 *    equal the model exactly                                     [handoff_*]
 *  - in a tracking heap (SC_HEAP_TRACK_REQUESTED), stats requested_bytes
 *    equals the sum of the model's requests whenever the threads are
 *    quiet, with frees and reallocs from other threads, and still after
 *    the workers exited (their counters fold into the heap)  [tracked_*]
 *
 * Runs under the standalone runner of test_util.h (also under TSan):
 * `PROGRAM [NAME...] [--no-fork]`.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>

#define TEST_STANDALONE_RUNNER
#include "test_util.h"

#define MiB ((size_t)1 << 20)

enum {
    SLOTS = 128,
    MAX_WORKERS = 4,
    QUEUE = SLOTS + 1, /* never full: at most SLOTS blocks are in flight */
    VERIFY_EVERY = 64,
};

#define LIVE_CAP ((size_t)256 << 20)
#define MAX_SIZE ((size_t)16 << 20)

typedef struct block_s {
    unsigned char *p;
    size_t n;
    size_t align;
    uint64_t key;
    int zeroed;
} block_t;

/* ------------------------------------------------------------------------ */
/* Contents (as in test_model.c: dense first KiB, a byte every 512, last    */
/* 256 bytes; the offsets depend on n only)                                 */
/* ------------------------------------------------------------------------ */

static size_t next_offset(size_t n, size_t i)
{
    size_t tail = n > 256 ? n - 256 : 0;
    if (i < 1024 || i >= tail)
        return i + 1;
    size_t next = i + 512;
    return next < tail ? next : tail;
}

static void block_write(unsigned char *p, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i = next_offset(n, i))
        p[i] = test_pattern_byte(key, i);
}

/* First wrong byte below `limit` among those written for n bytes. */
static size_t block_check(const unsigned char *p, size_t n, uint64_t key, size_t limit)
{
    if (limit > n)
        limit = n;
    for (size_t i = 0; i < limit; i = next_offset(n, i))
        if (p[i] != test_pattern_byte(key, i))
            return i;
    return TEST_PATTERN_OK;
}

static size_t zero_check(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return i;
    return TEST_PATTERN_OK;
}

/* Everything a live block must satisfy, from any thread. */
static void check_block(sc_heap_t *h, const block_t *b, const char *who)
{
    size_t usable = sc_usable_size(h, b->p);
    TEST_CHECK(usable >= b->n, "%s: %p usable %zu < requested %zu", who, (void *)b->p, usable,
               b->n);
    size_t align = b->align < 16 ? 16 : b->align;
    TEST_CHECK((uintptr_t)b->p % align == 0, "%s: %p not aligned to %zu", who, (void *)b->p,
               align);
    TEST_CHECK(sc_heap_of(b->p) == h && sc_heap_owns(h, b->p), "%s: %p not attributed to its heap",
               who, (void *)b->p);
    if (b->n)
        TEST_CHECK(sc_heap_of(b->p + b->n - 1) == h, "%s: last byte of %p not attributed", who,
                   (void *)b->p);
    size_t bad = b->zeroed ? zero_check(b->p, b->n) : block_check(b->p, b->n, b->key, b->n);
    TEST_CHECK(bad == TEST_PATTERN_OK, "%s: %p (%zu bytes, align %zu%s) wrong at byte %zu", who,
               (void *)b->p, b->n, b->align, b->zeroed ? ", calloc" : "", bad);
}

static size_t pick_size(test_rng_t *r)
{
    unsigned pick = (unsigned)(test_rng_next(r) % 1000);
    if (pick < 600)
        return test_rng_range(r, 0, 256);
    if (pick < 850)
        return test_rng_range(r, 257, 8192);
    if (pick < 960)
        return test_rng_range(r, 8193, SC_MAX_CLASS_SIZE);
    if (pick < 995)
        return test_rng_range(r, SC_MAX_CLASS_SIZE + 1, 4 * MiB);
    return test_rng_range(r, 4 * MiB, MAX_SIZE);
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct queue_s {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    block_t items[QUEUE];
    size_t head, count;
} queue_t;

static void queue_init(queue_t *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    q->head = q->count = 0;
}

static void queue_destroy(queue_t *q)
{
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->nonempty);
}

static void queue_push(queue_t *q, block_t b)
{
    pthread_mutex_lock(&q->lock);
    TEST_CHECK(q->count < QUEUE, "queue overflow");
    q->items[(q->head + q->count) % QUEUE] = b;
    q->count++;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

/* Blocks until an item is there. */
static block_t queue_pop(queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0)
        pthread_cond_wait(&q->nonempty, &q->lock);
    block_t b = q->items[q->head];
    q->head = (q->head + 1) % QUEUE;
    q->count--;
    pthread_mutex_unlock(&q->lock);
    return b;
}

/* Returns 0 if the queue is empty. */
static int queue_try_pop(queue_t *q, block_t *out)
{
    pthread_mutex_lock(&q->lock);
    int got = q->count > 0;
    if (got) {
        *out = q->items[q->head];
        q->head = (q->head + 1) % QUEUE;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return got;
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct shared_s {
    sc_heap_t *heap;
    queue_t inbox[MAX_WORKERS];
    queue_t returns;
    /* Blocks handed out and not yet freed or returned; the main thread
     * waits for zero before checking the whole model. */
    pthread_mutex_t lock;
    pthread_cond_t quiet;
    size_t in_flight;
} shared_t;

static shared_t shared;

typedef struct worker_arg_s {
    unsigned index;
    uint64_t seed;
    unsigned long frees, reallocs, in_place_huge;
} worker_arg_t;

static void done_one(void)
{
    pthread_mutex_lock(&shared.lock);
    shared.in_flight--;
    if (shared.in_flight == 0)
        pthread_cond_broadcast(&shared.quiet);
    pthread_mutex_unlock(&shared.lock);
}

static void *worker_main(void *arg)
{
    worker_arg_t *a = arg;
    sc_heap_t *h = shared.heap;
    test_rng_t rng = {a->seed};
    sc_thread_t *t = a->index % 2 ? sc_heap_thread(h) : NULL;
    TEST_CHECK(a->index % 2 == 0 || t != NULL, "worker %u: sc_heap_thread failed", a->index);
    uint64_t key = (uint64_t)(a->index + 1) << 56;
    for (;;) {
        block_t b = queue_pop(&shared.inbox[a->index]);
        if (b.p == NULL)
            break; /* stop */
        check_block(h, &b, "worker received");
        if (test_rng_next(&rng) % 10 < 7) {
            if (t)
                sc_thread_free(t, b.p);
            else
                sc_free(h, b.p);
            a->frees++;
            done_one();
            continue;
        }
        /* Resize it here, rewrite it, hand it back. */
        size_t usable = sc_usable_size(h, b.p);
        int huge = usable > SC_MAX_CLASS_SIZE || b.align > 128;
        size_t n;
        int expect_same = 0;
        if (huge && b.n > SC_MAX_CLASS_SIZE + 1 && test_rng_next(&rng) % 2) {
            n = test_rng_range(&rng, SC_MAX_CLASS_SIZE + 1, b.n);
            expect_same = 1;
        } else {
            n = pick_size(&rng);
            if (n > 4 * MiB)
                n = 4 * MiB;
        }
        errno = 0;
        unsigned char *q = sc_realloc(h, b.p, n);
        TEST_CHECK(q != NULL, "worker %u: sc_realloc(%zu -> %zu) failed, errno %d", a->index,
                   b.n, n, errno);
        if (expect_same)
            TEST_CHECK(q == b.p, "worker %u: huge shrink %zu -> %zu moved %p to %p", a->index,
                       b.n, n, (void *)b.p, (void *)q);
        a->in_place_huge += expect_same;
        size_t keep = b.n < n ? b.n : n;
        size_t bad = b.zeroed ? zero_check(q, keep) : block_check(q, b.n, b.key, keep);
        TEST_CHECK(bad == TEST_PATTERN_OK, "worker %u: realloc %zu -> %zu lost byte %zu",
                   a->index, b.n, n, bad);
        block_t back = {.p = q, .n = n, .align = 16, .key = key++, .zeroed = 0};
        block_write(q, n, back.key);
        check_block(h, &back, "worker resized");
        a->reallocs++;
        queue_push(&shared.returns, back);
        done_one();
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

typedef struct model_s {
    block_t slots[SLOTS];
    size_t live;
    size_t live_requested;
    unsigned flags; /* the heap's SC_HEAP_* flags */
    test_rng_t rng;
    uint64_t next_key;
    unsigned workers;
    unsigned long handed, returned;
} model_t;

static void put_back(model_t *m, block_t b)
{
    for (size_t i = 0; i < SLOTS; i++) {
        size_t k = (i + (size_t)(test_rng_next(&m->rng) % SLOTS)) % SLOTS;
        if (m->slots[k].p == NULL) {
            m->slots[k] = b;
            m->live++;
            m->live_requested += b.n;
            return;
        }
    }
    check_block(shared.heap, &b, "returned, no room");
    sc_free(shared.heap, b.p);
}

static void drain_returns(model_t *m)
{
    block_t b;
    while (queue_try_pop(&shared.returns, &b)) {
        m->returned++;
        put_back(m, b);
    }
}

static void wait_quiet(model_t *m)
{
    pthread_mutex_lock(&shared.lock);
    while (shared.in_flight > 0)
        pthread_cond_wait(&shared.quiet, &shared.lock);
    pthread_mutex_unlock(&shared.lock);
    drain_returns(m);
}

static int extent_cmp(const void *a, const void *b)
{
    const block_t *x = a, *y = b;
    return (uintptr_t)x->p < (uintptr_t)y->p ? -1 : (uintptr_t)x->p > (uintptr_t)y->p;
}

static void verify_model(model_t *m, unsigned long step)
{
    static block_t sorted[SLOTS];
    size_t count = 0, usable_total = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        if (m->slots[i].p == NULL)
            continue;
        check_block(shared.heap, &m->slots[i], "main verify");
        sorted[count] = m->slots[i];
        sorted[count].n = sc_usable_size(shared.heap, m->slots[i].p);
        usable_total += sorted[count].n;
        count++;
    }
    TEST_CHECK(count == m->live, "step %lu: model count %zu != %zu", step, count, m->live);
    qsort(sorted, count, sizeof sorted[0], extent_cmp);
    for (size_t i = 1; i < count; i++)
        TEST_CHECK((uintptr_t)sorted[i - 1].p + sorted[i - 1].n <= (uintptr_t)sorted[i].p,
                   "step %lu: blocks %p (+%zu) and %p overlap", step, (void *)sorted[i - 1].p,
                   sorted[i - 1].n, (void *)sorted[i].p);
    sc_heap_stats_t st = test_stats(shared.heap);
    TEST_CHECK(st.live_blocks == count, "step %lu: stats live_blocks %zu, model %zu", step,
               st.live_blocks, count);
    TEST_CHECK(st.live_bytes == usable_total, "step %lu: stats live_bytes %zu, model %zu", step,
               st.live_bytes, usable_total);
    if (m->flags & SC_HEAP_TRACK_REQUESTED)
        TEST_CHECK(st.requested_exact && st.requested_bytes == m->live_requested,
                   "step %lu: stats requested_bytes %zu (exact %d), model %zu", step,
                   st.requested_bytes, st.requested_exact, m->live_requested);
}

static void main_allocate(model_t *m, size_t i)
{
    test_rng_t *r = &m->rng;
    size_t n = pick_size(r);
    if (n > MiB && m->live_requested + n > LIVE_CAP)
        n = test_rng_range(r, 0, 1024);
    block_t b = {.n = n, .align = 16, .key = m->next_key++};
    unsigned kind = (unsigned)(test_rng_next(r) % 10);
    errno = 0;
    if (kind < 6) {
        b.p = sc_alloc(shared.heap, n);
    } else if (kind < 7) {
        b.p = sc_calloc(shared.heap, 1, n);
        b.zeroed = 1;
    } else {
        unsigned shift = test_rng_next(r) % 20 == 0 ? (unsigned)test_rng_range(r, 21, 26)
                                                    : (unsigned)test_rng_range(r, 4, 14);
        b.align = (size_t)1 << shift;
        if (b.align >= 4 * MiB && n > MiB)
            b.n = n = test_rng_range(r, 0, MiB);
        b.p = sc_aligned_alloc(shared.heap, b.align, n);
    }
    TEST_CHECK(b.p != NULL, "main: allocation of %zu (kind %u, align %zu) failed, errno %d", n,
               kind, b.align, errno);
    if (b.zeroed)
        check_block(shared.heap, &b, "main calloc");
    b.zeroed = b.zeroed && test_rng_next(r) % 2; /* half stay zero for the worker to see */
    if (!b.zeroed)
        block_write(b.p, n, b.key);
    m->slots[i] = b;
    m->live++;
    m->live_requested += n;
    check_block(shared.heap, &b, "main allocated");
}

static void main_take(model_t *m, size_t i)
{
    m->live--;
    m->live_requested -= m->slots[i].n;
    m->slots[i] = (block_t){0};
}

static void main_realloc(model_t *m, size_t i)
{
    block_t *b = &m->slots[i];
    size_t n = pick_size(&m->rng);
    if (n > MiB && m->live_requested - b->n + n > LIVE_CAP)
        n = b->n;
    unsigned char *q = sc_realloc(shared.heap, b->p, n);
    TEST_CHECK(q != NULL, "main: sc_realloc(%zu -> %zu) failed", b->n, n);
    size_t keep = b->n < n ? b->n : n;
    size_t bad = b->zeroed ? zero_check(q, keep) : block_check(q, b->n, b->key, keep);
    TEST_CHECK(bad == TEST_PATTERN_OK, "main: realloc %zu -> %zu lost byte %zu", b->n, n, bad);
    m->live_requested += n - b->n;
    *b = (block_t){.p = q, .n = n, .align = 16, .key = m->next_key++};
    block_write(q, n, b->key);
    check_block(shared.heap, b, "main resized");
}

static void run_handoff(unsigned workers, uint64_t seed, unsigned flags)
{
    static model_t m;
    memset(&m, 0, sizeof m);
    m.rng.state = seed;
    m.next_key = seed << 32;
    m.workers = workers;
    m.flags = flags;
    sc_heap_config_t cfg = {.name = "mt-model", .flags = flags};
    shared.heap = sc_heap_create(&cfg);
    TEST_ASSERT(shared.heap != NULL);
    for (unsigned w = 0; w < workers; w++)
        queue_init(&shared.inbox[w]);
    queue_init(&shared.returns);
    pthread_mutex_init(&shared.lock, NULL);
    pthread_cond_init(&shared.quiet, NULL);
    shared.in_flight = 0;

    pthread_t tids[MAX_WORKERS];
    static worker_arg_t args[MAX_WORKERS];
    for (unsigned w = 0; w < workers; w++) {
        args[w] = (worker_arg_t){.index = w, .seed = seed * 31 + w};
        TEST_CHECK(pthread_create(&tids[w], NULL, worker_main, &args[w]) == 0,
                   "pthread_create failed");
    }

#if defined(SCALLOC_SANITIZE_THREAD) || defined(SCALLOC_SANITIZE_ADDRESS)
    unsigned long steps = test_scaled(2000, 300);
#else
    unsigned long steps = test_scaled(8000, 300);
#endif
    for (unsigned long step = 0; step < steps; step++) {
        drain_returns(&m);
        size_t i = (size_t)(test_rng_next(&m.rng) % SLOTS);
        unsigned pick = (unsigned)(test_rng_next(&m.rng) % 100);
        if (m.slots[i].p == NULL) {
            main_allocate(&m, i);
        } else if (pick < 40) {
            /* Hand it to a worker. */
            block_t b = m.slots[i];
            check_block(shared.heap, &b, "main before hand-off");
            main_take(&m, i);
            pthread_mutex_lock(&shared.lock);
            shared.in_flight++;
            pthread_mutex_unlock(&shared.lock);
            queue_push(&shared.inbox[test_rng_next(&m.rng) % workers], b);
            m.handed++;
        } else if (pick < 60) {
            main_realloc(&m, i);
        } else {
            check_block(shared.heap, &m.slots[i], "main before free");
            sc_free(shared.heap, m.slots[i].p);
            main_take(&m, i);
        }
        if (step % VERIFY_EVERY == VERIFY_EVERY - 1) {
            wait_quiet(&m);
            verify_model(&m, step);
        }
    }
    wait_quiet(&m);
    verify_model(&m, steps);
    for (unsigned w = 0; w < workers; w++)
        queue_push(&shared.inbox[w], (block_t){0});
    unsigned long frees = 0, reallocs = 0, in_place = 0;
    for (unsigned w = 0; w < workers; w++) {
        pthread_join(tids[w], NULL);
        frees += args[w].frees;
        reallocs += args[w].reallocs;
        in_place += args[w].in_place_huge;
    }
    drain_returns(&m);
    verify_model(&m, steps + 1);
    TEST_LOG("%u workers, seed %llu: %lu steps, %lu blocks handed over: %lu freed and %lu "
             "resized by workers (%lu huge shrinks in place), %lu returned",
             workers, (unsigned long long)seed, steps, m.handed, frees, reallocs, in_place,
             m.returned);
    TEST_CHECK(frees > 0 && reallocs > 0, "the workers never freed or never resized");
    for (size_t i = 0; i < SLOTS; i++)
        if (m.slots[i].p) {
            sc_free(shared.heap, m.slots[i].p);
            main_take(&m, i);
        }
    sc_heap_stats_t st = test_stats(shared.heap);
    TEST_CHECK(st.live_blocks == 0 && st.live_bytes == 0, "%zu blocks left", st.live_blocks);
    sc_heap_destroy(shared.heap);
    for (unsigned w = 0; w < workers; w++)
        queue_destroy(&shared.inbox[w]);
    queue_destroy(&shared.returns);
    pthread_mutex_destroy(&shared.lock);
    pthread_cond_destroy(&shared.quiet);
}

static void mt_model_handoff_2_workers(void)
{
    run_handoff(2, 11, 0);
}

static void mt_model_handoff_3_workers(void)
{
    run_handoff(3, 0xc0ffee, 0);
}

static void mt_model_handoff_4_workers(void)
{
    run_handoff(4, 4444, 0);
}

static void mt_model_tracked_3_workers(void)
{
    run_handoff(3, 0x7ac4, SC_HEAP_TRACK_REQUESTED);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"mt_model::handoff_2_workers", mt_model_handoff_2_workers},
        {"mt_model::handoff_3_workers", mt_model_handoff_3_workers},
        {"mt_model::handoff_4_workers", mt_model_handoff_4_workers},
        {"mt_model::tracked_3_workers", mt_model_tracked_3_workers},
    };
    return test_run_cases(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
