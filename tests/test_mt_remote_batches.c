/*
 * Remote frees in batches (scalloc.h, sc_free: "Frees into spans of other
 * threads"): a thread's frees of blocks it does not own wait in its
 * frontend and reach their spans with one CAS per batch. Checked here:
 *  - statistics and sc_heap_visit count a waiting block as freed at once,
 *    while the freeing thread is alive and idle            [stats_exact_while_waiting]
 *  - a batch is handed over when its slot is full           [full_slot]
 *  - ... and every batch once REMOTE_PENDING_BYTES of blocks wait,
 *    so big blocks do not wait by the thousand; one block bigger
 *    than the bound goes at once                             [byte_bound]
 *  - ... by the freeing thread's trim                       [trim]
 *  - ... by its next allocation slow path                   [alloc_slow_path]
 *  - ... at its exit, half full                             [thread_exit]
 *  - sc_heap_reset and sc_heap_destroy drop waiting batches, and the
 *    freeing thread goes on (or exits) safely               [reset, destroy]
 *  - a fork while a batch waits: the child's statistics are exact and it
 *    frees the rest                                         [fork]
 *  - a floating span emptied by remote frees is DRAINED; a trim from any
 *    thread gives its memory back, its owner pools it       [drained_floating]
 *  - a drained span of the smallest band is kept by its owner for its
 *    class and handed out again from its remote list, every block once;
 *    a drained span of a bigger band goes to the pool  [drained_kept_for_class]
 *  - a double free inside a batch is reported, the rest freed [double_free]
 *
 * Each case: the main thread allocates blocks (they live in its spans), a
 * worker frees some of them and then waits at a barrier, alive and idle,
 * while the main thread looks at the span's remote word and the stats.
 * Runs under the standalone runner of test_util.h (also under TSan).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>

#define TEST_STANDALONE_RUNNER
#include "test_util.h"

#include "frontend.h"
#include "invariants.h"
#include "os.h"
#include "span.h"

static size_t os_page_size_for_test(void)
{
    return os_page_size();
}

enum { BLOCKS = 200, SIZE = 64 };

static void *blocks[BLOCKS];

/* Blocks waiting in t's batches (the slots' counts). */
static unsigned waiting_blocks(sc_frontend_t *t)
{
    unsigned n = 0;
    for (unsigned i = 0; i < REMOTE_SLOTS; i++)
        n += (unsigned)owner_word_get(&t->remote[i].count);
    return n;
}

typedef enum { AFTER_NOTHING, AFTER_TRIM, AFTER_ALLOC_SLOW, AFTER_DOUBLE_FREE } worker_then_t;

typedef struct worker_s {
    sc_heap_t *heap;
    size_t from, count;      /* blocks[from .. from + count) to free */
    worker_then_t then;
    pthread_barrier_t *hold; /* NULL: free and exit */
    sc_frontend_t *frontend;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    w->frontend = sc_heap_thread(w->heap);
    for (size_t i = w->from; i < w->from + w->count; i++)
        sc_free(w->heap, blocks[i]);
    if (w->then == AFTER_DOUBLE_FREE)
        sc_free(w->heap, blocks[w->from + w->count - 1]);
    if (w->then == AFTER_TRIM)
        sc_heap_trim(w->heap);
    if (w->then == AFTER_ALLOC_SLOW) {
        void *big = sc_alloc(w->heap, (size_t)3 << 20); /* always the slow path */
        TEST_ASSERT(big != NULL);
        sc_free(w->heap, big);
    }
    if (w->hold) {
        pthread_barrier_wait(w->hold); /* freed */
        pthread_barrier_wait(w->hold); /* main looked (and maybe reset or destroyed) */
        if (w->then == AFTER_NOTHING && w->heap != NULL) {
            /* Still usable after whatever main did (a reset). */
            void *p = sc_alloc(w->heap, SIZE);
            if (p)
                sc_free(w->heap, p);
        }
    }
    return NULL;
}

static span_t *span_of(const void *p)
{
    return span_at(p);
}

static uint32_t remote_of(const void *p)
{
    return remote_count(atomic_load_explicit(&span_of(p)->remote, memory_order_acquire));
}

static sc_heap_t *alloc_blocks(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    for (size_t i = 0; i < BLOCKS; i++) {
        blocks[i] = sc_alloc(h, SIZE);
        TEST_ASSERT(blocks[i] != NULL);
    }
    /* All in one span of the main thread, so one batch collects them. */
    TEST_ASSERT(span_of(blocks[0]) == span_of(blocks[BLOCKS - 1]));
    return h;
}

/* Starts a worker that frees `count` blocks, does `then`, and waits. */
static pthread_t start(worker_t *w, pthread_barrier_t *hold)
{
    pthread_barrier_init(hold, NULL, 2);
    w->hold = hold;
    pthread_t tid;
    TEST_ASSERT(pthread_create(&tid, NULL, worker, w) == 0);
    pthread_barrier_wait(hold); /* freed */
    return tid;
}

static void finish(pthread_t tid, pthread_barrier_t *hold)
{
    pthread_barrier_wait(hold);
    pthread_join(tid, NULL);
    pthread_barrier_destroy(hold);
}

static void free_rest(sc_heap_t *h, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        sc_free(h, blocks[i]);
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(h, &bad);
    TEST_CHECK(broken == NULL, "%s (span %p)", broken, (void *)bad);
}

static int count_block(void *block, size_t usable, void *arg)
{
    (void)block;
    (void)usable;
    ++*(size_t *)arg;
    return 0;
}

static void stats_exact_while_waiting(void)
{
    sc_heap_t *h = alloc_blocks();
    pthread_barrier_t hold;
    worker_t w = {h, 0, 10, AFTER_NOTHING, NULL, NULL};
    pthread_t tid = start(&w, &hold);
    TEST_CHECK(remote_of(blocks[0]) == 0, "%u blocks handed over already", remote_of(blocks[0]));
    TEST_CHECK(waiting_blocks(w.frontend) == 10, "%u blocks waiting", waiting_blocks(w.frontend));
    sc_heap_stats_t st = test_stats(h);
    TEST_CHECK(st.live_blocks == BLOCKS - 10, "live %zu", st.live_blocks);
    TEST_CHECK(st.live_bytes == (BLOCKS - 10) * SIZE, "live bytes %zu", st.live_bytes);
    /* sc_heap_visit agrees: the waiting blocks are not live. */
    size_t visited = 0;
    sc_heap_visit(h, count_block, &visited);
    TEST_CHECK(visited == BLOCKS - 10, "visit reported %zu blocks", visited);
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(h, &bad);
    TEST_CHECK(broken == NULL, "with a batch waiting: %s (span %p)", broken, (void *)bad);
    finish(tid, &hold);
    free_rest(h, 10, BLOCKS);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    sc_heap_destroy(h);
}

static void full_slot(void)
{
    sc_heap_t *h = alloc_blocks();
    pthread_barrier_t hold;
    worker_t w = {h, 0, REMOTE_SLOT_MAX + 3, AFTER_NOTHING, NULL, NULL};
    pthread_t tid = start(&w, &hold);
    TEST_CHECK(remote_of(blocks[0]) == REMOTE_SLOT_MAX, "%u handed over", remote_of(blocks[0]));
    TEST_CHECK(waiting_blocks(w.frontend) == 3, "%u waiting", waiting_blocks(w.frontend));
    finish(tid, &hold);
    free_rest(h, REMOTE_SLOT_MAX + 3, BLOCKS);
    sc_heap_destroy(h);
}

/* Blocks of BIG bytes, spread over spans of the main thread. */
enum { BIG = 8192, BIG_BLOCKS = REMOTE_PENDING_BYTES / BIG + 2 };
_Static_assert((size_t)BIG_BLOCKS <= (size_t)BLOCKS, "blocks[] holds the big blocks");

/* Sum of the remote counts of the distinct spans of blocks[0 .. n). */
static uint32_t handed_over(size_t n)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = span_of(blocks[j]) == span_of(blocks[i]);
        if (!seen)
            sum += remote_of(blocks[i]);
    }
    return sum;
}

static void byte_bound(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    for (size_t i = 0; i < BIG_BLOCKS; i++) {
        blocks[i] = sc_alloc(h, BIG);
        TEST_ASSERT(blocks[i] != NULL);
    }
    pthread_barrier_t hold;
    worker_t w = {h, 0, BIG_BLOCKS, AFTER_NOTHING, NULL, NULL};
    pthread_t tid = start(&w, &hold);
    /* The block that reached the bound sent every batch; the last two
     * wait. */
    TEST_CHECK(waiting_blocks(w.frontend) == 2, "%u blocks waiting", waiting_blocks(w.frontend));
    TEST_CHECK(w.frontend->remote_pending_bytes == 2 * BIG, "%u bytes waiting",
               w.frontend->remote_pending_bytes);
    TEST_CHECK(handed_over(BIG_BLOCKS) == BIG_BLOCKS - 2, "%u handed over", handed_over(BIG_BLOCKS));
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    finish(tid, &hold);

    /* One block bigger than the bound: handed over by its own free. */
    blocks[0] = sc_alloc(h, 2 * REMOTE_PENDING_BYTES);
    TEST_ASSERT(blocks[0] != NULL);
    worker_t one = {h, 0, 1, AFTER_NOTHING, NULL, NULL};
    tid = start(&one, &hold);
    TEST_CHECK(waiting_blocks(one.frontend) == 0, "%u blocks waiting", waiting_blocks(one.frontend));
    TEST_CHECK(remote_of(blocks[0]) == 1, "%u handed over", remote_of(blocks[0]));
    finish(tid, &hold);
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(h, &bad);
    TEST_CHECK(broken == NULL, "%s (span %p)", broken, (void *)bad);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    sc_heap_destroy(h);
}

static void handed_over_by(worker_then_t then)
{
    sc_heap_t *h = alloc_blocks();
    pthread_barrier_t hold;
    worker_t w = {h, 0, 10, then, NULL, NULL};
    pthread_t tid = start(&w, &hold);
    TEST_CHECK(remote_of(blocks[0]) == 10, "%u handed over", remote_of(blocks[0]));
    TEST_CHECK(waiting_blocks(w.frontend) == 0, "%u waiting", waiting_blocks(w.frontend));
    TEST_CHECK(test_stats(h).live_blocks == BLOCKS - 10, "live %zu", test_stats(h).live_blocks);
    finish(tid, &hold);
    free_rest(h, 10, BLOCKS);
    sc_heap_destroy(h);
}

static void trim(void)
{
    handed_over_by(AFTER_TRIM);
}

static void alloc_slow_path(void)
{
    handed_over_by(AFTER_ALLOC_SLOW);
}

static void thread_exit(void)
{
    sc_heap_t *h = alloc_blocks();
    worker_t w = {h, 0, 10, AFTER_NOTHING, NULL, NULL};
    pthread_t tid;
    TEST_ASSERT(pthread_create(&tid, NULL, worker, &w) == 0);
    pthread_join(tid, NULL);
    TEST_CHECK(remote_of(blocks[0]) == 10, "%u handed over at exit", remote_of(blocks[0]));
    TEST_CHECK(test_stats(h).live_blocks == BLOCKS - 10, "live %zu", test_stats(h).live_blocks);
    free_rest(h, 10, BLOCKS);
    sc_heap_trim(h);
    sc_heap_stats_t st = test_stats(h);
    TEST_CHECK(st.live_blocks == 0 && st.spans_hot + st.spans_floating + st.spans_reusable == 0,
               "live %zu, spans in use %zu", st.live_blocks,
               st.spans_hot + st.spans_floating + st.spans_reusable);
    sc_heap_destroy(h);
}

static void reset(void)
{
    sc_heap_t *h = alloc_blocks();
    pthread_barrier_t hold;
    worker_t w = {h, 0, 10, AFTER_NOTHING, NULL, NULL};
    pthread_t tid = start(&w, &hold);
    sc_heap_reset(h); /* every block free, the waiting batch dropped */
    TEST_CHECK(waiting_blocks(w.frontend) == 0, "%u still waiting", waiting_blocks(w.frontend));
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    finish(tid, &hold); /* the worker allocates and frees again */
    /* The heap works as new: the span that held the dropped batch serves
     * fresh blocks without the old ones on its lists. */
    for (size_t i = 0; i < BLOCKS; i++) {
        blocks[i] = sc_alloc(h, SIZE);
        TEST_ASSERT(blocks[i] != NULL);
        for (size_t j = 0; j < i; j++)
            TEST_ASSERT(blocks[j] != blocks[i]);
    }
    free_rest(h, 0, BLOCKS);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    sc_heap_destroy(h);
}

static void destroy(void)
{
    sc_heap_t *h = alloc_blocks();
    pthread_barrier_t hold;
    worker_t w = {h, 0, 10, AFTER_NOTHING, NULL, NULL};
    pthread_t tid = start(&w, &hold);
    sc_heap_destroy(h); /* with a batch waiting in the worker */
    w.heap = NULL;      /* the worker exits without touching it */
    finish(tid, &hold);
    /* A new heap in the old handle's place is clean. */
    sc_heap_t *again = sc_heap_create(NULL);
    void *p = sc_alloc(again, SIZE);
    TEST_ASSERT(p != NULL);
    sc_free(again, p);
    TEST_CHECK(test_stats(again).live_blocks == 0, "live %zu", test_stats(again).live_blocks);
    sc_heap_destroy(again);
}

static void fork_case(void)
{
    sc_heap_t *h = alloc_blocks();
    pthread_barrier_t hold;
    worker_t w = {h, 0, 10, AFTER_NOTHING, NULL, NULL};
    pthread_t tid = start(&w, &hold);
    fflush(stdout);
    pid_t pid = fork();
    TEST_ASSERT(pid >= 0);
    if (pid == 0) {
        /* The worker's batch is in the child's copy of its frontend, which
         * no thread will flush: statistics still count it as freed. */
        sc_heap_stats_t st = test_stats(h);
        if (st.live_blocks != BLOCKS - 10)
            _exit(2);
        free_rest(h, 10, BLOCKS);
        if (test_stats(h).live_blocks != 0)
            _exit(3);
        void *p = sc_alloc(h, SIZE);
        if (p == NULL)
            _exit(4);
        sc_free(h, p);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    TEST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    finish(tid, &hold);
    free_rest(h, 10, BLOCKS);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    sc_heap_destroy(h);
}

typedef struct drain_s {
    sc_heap_t *heap;
    void **blocks;
    size_t count;
    pthread_barrier_t *hold;
} drain_t;

static void *drain_worker(void *arg)
{
    drain_t *d = arg;
    for (size_t i = 0; i < d->count; i++)
        sc_free(d->heap, d->blocks[i]);
    sc_heap_trim(d->heap);           /* hands the batches over */
    pthread_barrier_wait(d->hold);   /* freed */
    pthread_barrier_wait(d->hold);   /* main looked */
    return NULL;
}

/* The span of many[0], floating now that many[n - 1] lies in a later one,
 * and how many of the blocks (from the start) lie in it. */
static span_t *first_of_fill(void *const *many, size_t n, size_t *in_first)
{
    span_t *first = span_of(many[0]);
    TEST_ASSERT(span_of(many[n - 1]) != first);
    TEST_ASSERT(span_state(first) == SPAN_FLOATING);
    size_t k = 0;
    while (k < n && span_of(many[k]) == first)
        k++;
    *in_first = k;
    return first;
}

static void drained_floating(void)
{
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    /* Fill one span and start the next: the first floats. */
    enum { N = 4000 };
    static void *many[N];
    for (size_t i = 0; i < N; i++) {
        many[i] = sc_alloc(h, 32);
        TEST_ASSERT(many[i] != NULL);
    }
    size_t in_first;
    span_t *first = first_of_fill(many, N, &in_first);
    /* A worker frees every block of the first span and hands them over. */
    pthread_barrier_t hold;
    pthread_barrier_init(&hold, NULL, 2);
    drain_t d = {h, many, in_first, &hold};
    pthread_t tid;
    TEST_ASSERT(pthread_create(&tid, NULL, drain_worker, &d) == 0);
    pthread_barrier_wait(&hold);
    /* The worker's trim (it is not the owner) handed the batches over,
     * which drained the span, and then gave the span's memory back. */
    TEST_CHECK(span_state(first) == SPAN_DRAINED, "state %u", span_state(first));
    TEST_CHECK(first->committed <= os_page_size_for_test(), "%zu bytes still committed",
               first->committed);
    pthread_barrier_wait(&hold);
    pthread_join(tid, NULL);
    pthread_barrier_destroy(&hold);
    /* The owner (main) pools it when it next looks: on its trim, which
     * also makes pooled spans cold (their first page goes too). */
    sc_heap_trim(h);
    uintptr_t word = address_map_get((uintptr_t)span_base(first));
    TEST_CHECK((word & MAP_TAGS) == MAP_RESERVED ||
                   ((word & MAP_TAGS) == MAP_SPAN && span_state(first) == SPAN_POOLED),
               "map word %#lx", (unsigned long)word);
    for (size_t i = in_first; i < N; i++)
        sc_free(h, many[i]);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    sc_heap_destroy(h);
}

typedef struct {
    sc_heap_t *heap;
    void **blocks;
    size_t count;
} exit_drain_t;

/* Frees the blocks and exits: the exit hands the batches over (no trim,
 * which would give the drained span's memory back). */
static void *exit_drain_worker(void *arg)
{
    exit_drain_t *d = arg;
    for (size_t i = 0; i < d->count; i++)
        sc_free(d->heap, d->blocks[i]);
    return NULL;
}

static int address_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return x < y ? -1 : x > y;
}

/* Owner main fills spans of class `size`, a worker frees every block of
 * the first (floating) one and exits; main's next slow path settles it.
 * Returns the span and how many blocks it had. */
static span_t *drain_first_span(sc_heap_t *h, size_t size, void **many, size_t n, size_t *in_first)
{
    for (size_t i = 0; i < n; i++) {
        many[i] = sc_alloc(h, size);
        TEST_ASSERT(many[i] != NULL);
        memset(many[i], 0xa5, size);
    }
    size_t k;
    span_t *first = first_of_fill(many, n, &k);
    exit_drain_t d = {h, many, k};
    pthread_t tid;
    TEST_ASSERT(pthread_create(&tid, NULL, exit_drain_worker, &d) == 0);
    TEST_ASSERT(pthread_join(tid, NULL) == 0);
    TEST_CHECK(span_state(first) == SPAN_DRAINED, "state %u", span_state(first));
    /* A slow path of main's (a class it has no span of yet). */
    void *other = sc_alloc(h, 5000);
    TEST_ASSERT(other != NULL);
    sc_free(h, other);
    *in_first = k;
    return first;
}

static void drained_kept_for_class(void)
{
    enum { N = 4000 };
    static void *fill[N], *again[N], *sorted[2 * N];
    sc_heap_t *h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    sc_frontend_t *self = sc_heap_thread(h);
    size_t in_first;
    /* 32 B blocks: the smallest band (32 KiB real spans). */
    span_t *first = drain_first_span(h, 32, fill, N, &in_first);
    TEST_CHECK(span_state(first) == SPAN_DRAINED && first->kept_empty && span_owner(first) == self,
               "not kept: state %u, kept %u", span_state(first), (unsigned)first->kept_empty);
    /* The next blocks of the class fill the hot span, then come from the
     * kept one: every one of its blocks, none twice. */
    size_t from_first = 0;
    for (size_t i = 0; i < N; i++) {
        again[i] = sc_alloc(h, 32);
        TEST_ASSERT(again[i] != NULL);
        from_first += span_of(again[i]) == first;
    }
    TEST_CHECK(from_first == in_first, "%zu of the kept span's %zu blocks handed out again",
               from_first, in_first);
    size_t live = 0;
    for (size_t i = in_first; i < N; i++)
        sorted[live++] = fill[i];
    for (size_t i = 0; i < N; i++)
        sorted[live++] = again[i];
    qsort(sorted, live, sizeof sorted[0], address_cmp);
    for (size_t i = 1; i < live; i++)
        TEST_CHECK(sorted[i] != sorted[i - 1], "block %p handed out twice", sorted[i]);
    for (size_t i = in_first; i < N; i++)
        TEST_CHECK(((unsigned char *)fill[i])[31] == 0xa5, "block %zu changed", i);
    for (size_t i = 0; i < live; i++)
        sc_free(h, sorted[i]);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    const char *broken = invariants_check_heap(h, NULL);
    TEST_CHECK(broken == NULL, "%s", broken ? broken : "");
    sc_heap_destroy(h);

    /* 512 B blocks: a bigger band (128 KiB real spans) is not kept; it goes
     * to the pool (where the slow path's own class may take it at once). */
    h = sc_heap_create(NULL);
    TEST_ASSERT(h != NULL);
    self = sc_heap_thread(h);
    first = drain_first_span(h, 512, fill, N, &in_first);
    /* Pooled, it may have been taken for the slow path's class (and kept
     * for that one when its block was freed): only not kept for 512 B. */
    TEST_CHECK(!(span_state(first) == SPAN_DRAINED && span_owner(first) == self &&
                 first->block_size == 512),
               "a 128 KiB drained span was kept for its class");
    for (size_t i = in_first; i < N; i++)
        sc_free(h, fill[i]);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    broken = invariants_check_heap(h, NULL);
    TEST_CHECK(broken == NULL, "%s", broken ? broken : "");
    sc_heap_destroy(h);
}

static test_error_log_t errors;

static void double_free(void)
{
    test_error_log_install(&errors);
    sc_heap_t *h = alloc_blocks();
    pthread_barrier_t hold;
    worker_t w = {h, 0, 10, AFTER_DOUBLE_FREE, NULL, NULL};
    pthread_t tid = start(&w, &hold);
    TEST_CHECK(atomic_load(&errors.count) == 1, "%d errors", atomic_load(&errors.count));
    TEST_CHECK(errors.last_err == SC_ERR_DOUBLE_FREE, "error %d", (int)errors.last_err);
    TEST_CHECK(errors.last_p == blocks[9], "reported %p, not %p", errors.last_p, blocks[9]);
    TEST_CHECK(test_stats(h).live_blocks == BLOCKS - 10, "live %zu", test_stats(h).live_blocks);
    finish(tid, &hold);
    TEST_CHECK(remote_of(blocks[0]) == 10, "%u handed over", remote_of(blocks[0]));
    free_rest(h, 10, BLOCKS);
    TEST_CHECK(test_stats(h).live_blocks == 0, "live %zu", test_stats(h).live_blocks);
    sc_set_error_handler(NULL, NULL);
    sc_heap_destroy(h);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"batches::stats_exact_while_waiting", stats_exact_while_waiting},
        {"batches::full_slot", full_slot},
        {"batches::byte_bound", byte_bound},
        {"batches::trim", trim},
        {"batches::alloc_slow_path", alloc_slow_path},
        {"batches::thread_exit", thread_exit},
        {"batches::reset", reset},
        {"batches::destroy", destroy},
        {"batches::fork", fork_case},
        {"batches::drained_floating", drained_floating},
        {"batches::drained_kept_for_class", drained_kept_for_class},
        {"batches::double_free", double_free},
    };
    return test_run_cases(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
