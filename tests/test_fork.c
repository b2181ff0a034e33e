/*
 * fork: scalloc.h, "Heaps", sc_heap_thread ("fork: the child may keep using
 * (and destroy) the heaps it inherited, whatever other threads were doing;
 * their frontends' spans stay theirs in the child"). A fork while a remote
 * batch waits is test_mt_remote_batches.c.
 *
 * Worker threads allocate, publish, check and free blocks of a shared heap
 * in a loop, create and destroy heaps of their own, trim and read stats:
 * everything that takes a lock or is half-way through an update. The main
 * thread forks while they run (they start their loop at a barrier with the
 * main thread and keep looping until it has forked, up to a bound), again
 * and again. Each child, single-threaded as fork makes it:
 *   - checks and frees the blocks the workers had published, allocates and
 *     frees in the inherited heaps, reads their stats, trims them;
 *   - destroys them with blocks still live;
 *   - creates a new heap, uses it from itself and from new threads, and
 *     destroys it;
 *   - exits with _exit(0). An alarm turns a deadlock into SIGALRM.
 * The parent checks each child's exit status, and that its own heaps are
 * intact after all the forks.
 *
 * Contract lines checked here:
 *  - the child can allocate, free, trim, read stats and destroy inherited
 *    heaps, and create and use new heaps, also from new threads, whatever
 *    the parent's other threads were doing at the fork        [fork_while_threads_allocate]
 *  - blocks published before the fork are intact in the child, and the
 *    inherited heap's live count is consistent with them       [fork_while_threads_allocate]
 *  - the parent's heaps are unaffected by the children           [fork_while_threads_allocate]
 *  - a heap used only by the forking thread works in the child, also
 *    when forked repeatedly from children (grandchildren)       [fork_single_thread_chain]
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#define MiB ((size_t)1 << 20)

enum {
    WORKERS = 3,
    SLOTS = 512,          /* published blocks per worker */
    MIN_ITERATIONS = 2000,
    MAX_ITERATIONS = 2000000, /* bound if the fork is slow to come */
    MAIN_BLOCKS = 2000,
    CHILD_ALARM_S = 60,
};

/* A published block. Whoever exchanges p for NULL owns the block. Its size
 * is kept in its first 8 bytes, and the rest is a pattern keyed by its
 * address, so a taker needs nothing but the pointer (a slot's other fields
 * could already belong to the next block). */
typedef struct slot_s {
    _Atomic(unsigned char *) p;
} slot_t;

static slot_t slots[WORKERS][SLOTS];
static sc_heap_t *shared_heap;
static pthread_barrier_t round_start, round_end;
static atomic_int forked;       /* the main thread has forked this round */
static atomic_int stop_workers; /* no more rounds */
static atomic_long concurrent_rounds;

static size_t fork_size(test_rng_t *r)
{
    unsigned pick = (unsigned)(test_rng_next(r) % 1000);
    if (pick < 700)
        return test_rng_range(r, 0, 256);
    if (pick < 950)
        return test_rng_range(r, 257, 16384);
    if (pick < 995)
        return test_rng_range(r, 16385, SC_MAX_CLASS_SIZE);
    return test_rng_range(r, SC_MAX_CLASS_SIZE + 1, 3 * MiB);
}

/* Writes a published block's contents: n (at least 16) is stored first. */
static void block_fill(unsigned char *p, size_t n)
{
    memcpy(p, &n, sizeof n);
    test_pattern_fill(p + 8, n - 8, (uint64_t)(uintptr_t)p);
}

static void block_verify(sc_heap_t *h, const unsigned char *p)
{
    size_t n;
    memcpy(&n, p, sizeof n);
    TEST_CHECK(n >= 16 && n <= 4 * MiB, "published block %p: size word %zu overwritten",
               (const void *)p, n);
    TEST_CHECK(sc_usable_size(h, p) >= n, "published block %p: usable %zu < %zu",
               (const void *)p, sc_usable_size(h, p), n);
    size_t bad = test_pattern_check(p + 8, n - 8, (uint64_t)(uintptr_t)p);
    TEST_CHECK(bad == TEST_PATTERN_OK, "published block %p (%zu bytes) corrupted at %zu",
               (const void *)p, n, bad + 8);
}

/* Takes the block out of slot s if there is one: checks and frees it. */
static void take_and_free(sc_heap_t *h, slot_t *s, sc_thread_t *t)
{
    unsigned char *p = atomic_exchange_explicit(&s->p, NULL, memory_order_acquire);
    if (p == NULL)
        return;
    block_verify(h, p);
    if (t)
        sc_thread_free(t, p);
    else
        sc_free(h, p);
}

static void *worker_main(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    test_rng_t rng = {index + 1};
    sc_thread_t *t = index % 2 ? sc_heap_thread(shared_heap) : NULL;
    for (;;) {
        pthread_barrier_wait(&round_start);
        if (atomic_load(&stop_workers))
            break;
        long i = 0;
        for (; i < MAX_ITERATIONS; i++) {
            if (i >= MIN_ITERATIONS && atomic_load_explicit(&forked, memory_order_relaxed))
                break;
            unsigned op = (unsigned)(test_rng_next(&rng) % 100);
            slot_t *s = &slots[index][test_rng_next(&rng) % SLOTS];
            if (op < 2) {
                /* A heap of its own, created and destroyed: the registry
                 * and region reservation take locks. */
                sc_heap_t *own = sc_heap_create(NULL);
                TEST_CHECK(own != NULL, "worker %u: sc_heap_create failed", index);
                for (int k = 0; k < 8; k++)
                    TEST_CHECK(sc_alloc(own, fork_size(&rng)) != NULL, "own heap alloc");
                sc_heap_destroy(own);
            } else if (op < 3) {
                sc_heap_trim(shared_heap);
            } else if (op < 4) {
                (void)test_stats(shared_heap);
            } else if (op < 12) {
                /* Someone else's block: a remote free. */
                take_and_free(shared_heap, &slots[(index + 1) % WORKERS][test_rng_next(&rng) % SLOTS],
                              NULL);
            } else if (atomic_load_explicit(&s->p, memory_order_relaxed) != NULL) {
                take_and_free(shared_heap, s, t);
            } else {
                size_t n = fork_size(&rng);
                n = n < 16 ? 16 : n;
                unsigned char *p;
                if (op < 16)
                    p = sc_aligned_alloc(shared_heap, (size_t)64 << (op % 8), n);
                else if (op < 20)
                    p = sc_calloc(shared_heap, 1, n);
                else
                    p = t ? sc_thread_alloc(t, n) : sc_alloc(shared_heap, n);
                TEST_CHECK(p != NULL, "worker %u: allocation of %zu failed", index, n);
                block_fill(p, n);
                atomic_store_explicit(&s->p, p, memory_order_release);
            }
        }
        if (i < MAX_ITERATIONS)
            atomic_fetch_add(&concurrent_rounds, 1);
        pthread_barrier_wait(&round_end);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The child                                                                */
/* ------------------------------------------------------------------------ */

static void *child_thread_main(void *arg)
{
    sc_heap_t *h = arg;
    test_rng_t rng = {99};
    void *blocks[200];
    for (int i = 0; i < 200; i++) {
        size_t n = fork_size(&rng);
        blocks[i] = sc_alloc(h, n);
        TEST_CHECK(blocks[i] != NULL, "child's thread: alloc of %zu failed", n);
        memset(blocks[i], 0x21, n);
    }
    for (int i = 0; i < 200; i++)
        sc_free(h, blocks[i]);
    return NULL;
}

typedef struct main_block_s {
    unsigned char *p;
    size_t n;
    uint64_t key;
} main_block_t;

static main_block_t main_blocks[MAIN_BLOCKS];

static void check_main_blocks(const char *who)
{
    for (size_t i = 0; i < MAIN_BLOCKS; i++) {
        size_t bad = test_pattern_check(main_blocks[i].p, main_blocks[i].n, main_blocks[i].key);
        TEST_CHECK(bad == TEST_PATTERN_OK, "%s: main heap block %zu corrupted at %zu", who, i,
                   bad);
    }
}

/* Everything the child does; any failure aborts it. */
static void child_work(sc_heap_t *main_heap, int round)
{
    alarm(CHILD_ALARM_S);
    test_rng_t rng = {1000 + (uint64_t)round};

    /* The published blocks are intact, and the heap's count agrees: the
     * main thread's one block, and each worker may have had one block in
     * flight (allocated but not yet published, or taken but not yet
     * freed). */
    size_t published = 0;
    for (unsigned w = 0; w < WORKERS; w++)
        for (size_t k = 0; k < SLOTS; k++)
            published += atomic_load(&slots[w][k].p) != NULL;
    sc_heap_stats_t st = test_stats(shared_heap);
    TEST_CHECK(st.live_blocks >= published + 1 && st.live_blocks <= published + 1 + WORKERS,
               "child: inherited heap counts %zu live blocks, %zu published", st.live_blocks,
               published);
    for (unsigned w = 0; w < WORKERS; w++)
        for (size_t k = 0; k < SLOTS; k += 2)
            take_and_free(shared_heap, &slots[w][k], NULL);

    /* Allocate and free in the inherited heaps, all kinds of sizes. */
    static void *mine[2000];
    for (int i = 0; i < 2000; i++) {
        size_t n = fork_size(&rng);
        mine[i] = i % 2 ? sc_alloc(shared_heap, n) : sc_alloc(main_heap, n);
        TEST_CHECK(mine[i] != NULL, "child: alloc of %zu failed", n);
        memset(mine[i], 0x12, n);
    }
    for (int i = 0; i < 2000; i += 2)
        sc_free(main_heap, mine[i]);
    check_main_blocks("child");
    for (size_t i = 0; i < MAIN_BLOCKS; i += 3)
        sc_free(main_heap, main_blocks[i].p);
    sc_heap_trim(shared_heap);
    sc_heap_trim(main_heap);
    (void)test_stats(main_heap);

    /* Destroy both with blocks live (the other half of mine, the other
     * published blocks, two thirds of the main blocks). */
    sc_heap_destroy(shared_heap);
    sc_heap_destroy(main_heap);

    /* A new heap, from this thread and from new ones. */
    sc_heap_t *fresh = sc_heap_create(NULL);
    TEST_CHECK(fresh != NULL, "child: sc_heap_create failed");
    pthread_t tids[2];
    for (int i = 0; i < 2; i++)
        TEST_CHECK(pthread_create(&tids[i], NULL, child_thread_main, fresh) == 0,
                   "child: pthread_create failed");
    child_thread_main(fresh);
    for (int i = 0; i < 2; i++)
        pthread_join(tids[i], NULL);
    sc_heap_stats_t fst = test_stats(fresh);
    TEST_CHECK(fst.live_blocks == 0, "child: fresh heap has %zu live blocks", fst.live_blocks);
    sc_heap_destroy(fresh);
}

static void expect_child_ok(pid_t pid, const char *what, int round)
{
    int status = 0;
    pid_t got;
    do
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    cr_assert_eq(got, pid, "waitpid failed");
    if (WIFSIGNALED(status))
        cr_assert_fail("%s %d: child killed by signal %d%s (its message, if any, is on stderr)",
                       what, round, WTERMSIG(status),
                       WTERMSIG(status) == SIGALRM ? " (SIGALRM: deadlocked or hung)" : "");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s %d: child exit status %d",
              what, round, WEXITSTATUS(status));
}

Test(fork, fork_while_threads_allocate, .timeout = 240)
{
    sc_heap_config_t shared_cfg = {.name = "fork-shared"};
    shared_heap = sc_heap_create(&shared_cfg);
    sc_heap_config_t main_cfg = {.name = "fork-main"};
    sc_heap_t *main_heap = sc_heap_create(&main_cfg);
    cr_assert(shared_heap && main_heap);
    test_rng_t rng = {7};
    for (size_t i = 0; i < MAIN_BLOCKS; i++) {
        main_blocks[i].n = fork_size(&rng);
        main_blocks[i].p = sc_alloc(main_heap, main_blocks[i].n);
        cr_assert_not_null(main_blocks[i].p);
        main_blocks[i].key = 0xf0f0000 + i;
        test_pattern_fill(main_blocks[i].p, main_blocks[i].n, main_blocks[i].key);
    }
    /* The main thread holds a frontend of the shared heap too. */
    void *main_shared = sc_alloc(shared_heap, 1000);
    cr_assert_not_null(main_shared);

    pthread_barrier_init(&round_start, NULL, WORKERS + 1);
    pthread_barrier_init(&round_end, NULL, WORKERS + 1);
    pthread_t tids[WORKERS];
    for (unsigned i = 0; i < WORKERS; i++)
        cr_assert_eq(pthread_create(&tids[i], NULL, worker_main, (void *)(uintptr_t)i), 0);

    int rounds = (int)test_scaled(12, 4);
    for (int round = 0; round < rounds; round++) {
        atomic_store(&forked, 0);
        pthread_barrier_wait(&round_start);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            child_work(main_heap, round);
            _exit(0);
        }
        atomic_store(&forked, 1);
        cr_assert_geq(pid, 0, "fork failed: errno %d", errno);
        expect_child_ok(pid, "round", round);
        pthread_barrier_wait(&round_end);
    }
    atomic_store(&stop_workers, 1);
    pthread_barrier_wait(&round_start);
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(tids[i], NULL);
    cr_log_info("%d forks; in %ld of %d worker rounds the fork came while the worker was "
                "still looping",
                rounds, atomic_load(&concurrent_rounds), rounds * WORKERS);

    /* The parent's heaps are intact. */
    check_main_blocks("parent");
    size_t published = 0;
    for (unsigned w = 0; w < WORKERS; w++)
        for (size_t k = 0; k < SLOTS; k++)
            if (atomic_load(&slots[w][k].p)) {
                published++;
                take_and_free(shared_heap, &slots[w][k], NULL);
            }
    sc_heap_stats_t st = test_stats(shared_heap);
    cr_assert_eq(st.live_blocks, 1, "shared heap: %zu live blocks after freeing the %zu published",
                 st.live_blocks, published);
    sc_free(shared_heap, main_shared);
    cr_assert_eq(test_stats(main_heap).live_blocks, MAIN_BLOCKS);
    for (size_t i = 0; i < MAIN_BLOCKS; i++)
        sc_free(main_heap, main_blocks[i].p);
    cr_assert_eq(test_stats(main_heap).live_blocks, 0);
    sc_heap_destroy(shared_heap);
    sc_heap_destroy(main_heap);
    pthread_barrier_destroy(&round_start);
    pthread_barrier_destroy(&round_end);
}

/* ------------------------------------------------------------------------ */

/* Each generation checks its parent's blocks, adds its own and forks the
 * next; the last one destroys the heap. */
static void generation(sc_heap_t *h, void **blocks, int depth, int max_depth)
{
    for (int g = 0; g < depth; g++)
        for (int k = 0; k < 100; k++) {
            size_t bad = test_pattern_check(blocks[g * 100 + k], 300 + (size_t)k, (uint64_t)g * 1000 + (uint64_t)k);
            TEST_CHECK(bad == TEST_PATTERN_OK, "generation %d: block %d of generation %d corrupted",
                       depth, k, g);
        }
    for (int k = 0; k < 100; k++) {
        blocks[depth * 100 + k] = sc_alloc(h, 300 + (size_t)k);
        TEST_CHECK(blocks[depth * 100 + k] != NULL, "generation %d: alloc failed", depth);
        test_pattern_fill(blocks[depth * 100 + k], 300 + (size_t)k, (uint64_t)depth * 1000 + (uint64_t)k);
    }
    void *huge = sc_alloc(h, 5 * MiB);
    TEST_CHECK(huge != NULL, "generation %d: huge alloc failed", depth);
    sc_free(h, huge);
    if (depth == max_depth) {
        sc_heap_stats_t st = test_stats(h);
        TEST_CHECK(st.live_blocks == (size_t)(depth + 1) * 100, "last generation: %zu live blocks",
                   st.live_blocks);
        sc_heap_destroy(h);
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    TEST_CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        generation(h, blocks, depth + 1, max_depth);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    TEST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "generation %d failed (status %#x)", depth + 1, status);
}

Test(fork, fork_single_thread_chain, .timeout = 120)
{
    enum { DEPTH = 6 };
    static void *blocks[(DEPTH + 1) * 100];
    sc_heap_t *h = sc_heap_create(NULL);
    cr_assert_not_null(h);
    generation(h, blocks, 0, DEPTH);
    /* Generation 0's blocks are still ours. */
    for (int k = 0; k < 100; k++)
        cr_assert_eq(test_pattern_check(blocks[k], 300 + (size_t)k, (uint64_t)k), TEST_PATTERN_OK);
    cr_assert_eq(test_stats(h).live_blocks, 100);
    sc_heap_destroy(h);
}
