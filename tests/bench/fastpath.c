/*
 * Fast-path program for callgrind: N alloc+free pairs of 32 B in one
 * function, fastpath_measured_<mode>, so that fastpath.sh can count the
 * instructions of exactly that function (callgrind --toggle-collect) for
 * two values of N and take the difference, which cancels set-up and the
 * slow paths of the first pairs.
 *
 *   fastpath[_<peer>] MODE N     run N pairs (N a multiple of 1000)
 *   fastpath[_<peer>] --modes    the modes this allocator has, with the API
 *
 * Modes: alt   - allocate, free, allocate, free...
 *        batch - allocate 1000, free them in LIFO order, repeat
 *        thread-alt, thread-batch (scalloc) - the same through
 *                sc_thread_alloc/sc_thread_free
 *
 * Every pointer escapes (a volatile store, or the batch array), so no
 * compiler may fold an allocation with its free. Built once per allocator,
 * like the benchmark drivers, because several peers replace malloc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAIR_SIZE 32
#define BATCH 1000

#if defined(BENCH_ALLOCATOR_SCALLOC)
#include <scalloc/scalloc.h>
static sc_heap_t *fp_heap;
static sc_thread_t *fp_thread;
#define FP_NAME "scalloc"
#define FP_API "sc_alloc/sc_free"
#define FP_ALLOC(n) sc_alloc(fp_heap, (n))
#define FP_FREE(p) sc_free(fp_heap, (p))
#define FP_HAS_THREAD_API 1
#define FP_THREAD_API "sc_thread_alloc/sc_thread_free"
#define FP_TALLOC(n) sc_thread_alloc(fp_thread, (n))
#define FP_TFREE(p) sc_thread_free(fp_thread, (p))
static int fp_setup(void)
{
    fp_heap = sc_heap_create(NULL);
    fp_thread = fp_heap != NULL ? sc_heap_thread(fp_heap) : NULL;
    return fp_thread != NULL ? 0 : -1;
}
#elif defined(BENCH_ALLOCATOR_GLIBC)
#define FP_NAME "glibc"
#define FP_API "malloc/free"
#define FP_ALLOC(n) malloc(n)
#define FP_FREE(p) free(p)
static int fp_setup(void) { return 0; }
#elif defined(BENCH_ALLOCATOR_MIMALLOC)
#include <mimalloc.h>
static mi_heap_t *fp_heap;
#define FP_NAME "mimalloc"
#define FP_API "mi_heap_malloc/mi_free"
#define FP_ALLOC(n) mi_heap_malloc(fp_heap, (n))
#define FP_FREE(p) mi_free(p)
static int fp_setup(void)
{
    fp_heap = mi_heap_new();
    return fp_heap != NULL ? 0 : -1;
}
#elif defined(BENCH_ALLOCATOR_TCMALLOC)
#include <gperftools/tcmalloc.h>
#define FP_NAME "tcmalloc"
#define FP_API "tc_malloc/tc_free"
#define FP_ALLOC(n) tc_malloc(n)
#define FP_FREE(p) tc_free(p)
static int fp_setup(void) { return 0; }
#elif defined(BENCH_ALLOCATOR_JEMALLOC)
#include <jemalloc/jemalloc.h>
static int fp_alloc_flags, fp_free_flags;
#define FP_NAME "jemalloc"
#define FP_API "mallocx/dallocx, arena + tcache"
#define FP_ALLOC(n) mallocx((n), fp_alloc_flags)
#define FP_FREE(p) dallocx((p), fp_free_flags)
static int fp_setup(void)
{
    unsigned arena, tcache;
    size_t len = sizeof arena;
    if (mallctl("arenas.create", &arena, &len, NULL, 0) != 0)
        return -1;
    len = sizeof tcache;
    if (mallctl("tcache.create", &tcache, &len, NULL, 0) != 0)
        return -1;
    fp_alloc_flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE(tcache);
    fp_free_flags = MALLOCX_TCACHE(tcache);
    return 0;
}
#else
#error "define one BENCH_ALLOCATOR_<NAME>"
#endif

static void *volatile fp_sink;
static void *fp_batch[BATCH];

/* Not static, never inlined: callgrind finds them by name. */
void fastpath_measured_alt(uint64_t pairs);
void fastpath_measured_batch(uint64_t pairs);

__attribute__((noinline)) void fastpath_measured_alt(uint64_t pairs)
{
    for (uint64_t i = 0; i < pairs; i++) {
        void *p = FP_ALLOC(PAIR_SIZE);
        fp_sink = p;
        FP_FREE(p);
    }
}

__attribute__((noinline)) void fastpath_measured_batch(uint64_t pairs)
{
    for (uint64_t b = 0; b < pairs / BATCH; b++) {
        for (unsigned i = 0; i < BATCH; i++)
            fp_batch[i] = FP_ALLOC(PAIR_SIZE);
        for (unsigned i = BATCH; i-- > 0;)
            FP_FREE(fp_batch[i]);
    }
}

#ifdef FP_HAS_THREAD_API
void fastpath_measured_thread_alt(uint64_t pairs);
void fastpath_measured_thread_batch(uint64_t pairs);

__attribute__((noinline)) void fastpath_measured_thread_alt(uint64_t pairs)
{
    for (uint64_t i = 0; i < pairs; i++) {
        void *p = FP_TALLOC(PAIR_SIZE);
        fp_sink = p;
        FP_TFREE(p);
    }
}

__attribute__((noinline)) void fastpath_measured_thread_batch(uint64_t pairs)
{
    for (uint64_t b = 0; b < pairs / BATCH; b++) {
        for (unsigned i = 0; i < BATCH; i++)
            fp_batch[i] = FP_TALLOC(PAIR_SIZE);
        for (unsigned i = BATCH; i-- > 0;)
            FP_TFREE(fp_batch[i]);
    }
}
#endif

static const struct {
    const char *mode;
    const char *api;
    void (*run)(uint64_t);
} fp_modes[] = {
    {"alt", FP_API, fastpath_measured_alt},
    {"batch", FP_API, fastpath_measured_batch},
#ifdef FP_HAS_THREAD_API
    {"thread-alt", FP_THREAD_API, fastpath_measured_thread_alt},
    {"thread-batch", FP_THREAD_API, fastpath_measured_thread_batch},
#endif
};
#define FP_NMODES (sizeof fp_modes / sizeof fp_modes[0])

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--modes") == 0) {
        for (size_t i = 0; i < FP_NMODES; i++)
            printf("%s\t%s\t%s\n", FP_NAME, fp_modes[i].mode, fp_modes[i].api);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODE PAIRS | --modes\n", argv[0]);
        return 64;
    }
    uint64_t pairs = strtoull(argv[2], NULL, 10);
    for (size_t i = 0; i < FP_NMODES; i++) {
        if (strcmp(argv[1], fp_modes[i].mode) != 0)
            continue;
        if (pairs % BATCH != 0) {
            fprintf(stderr, "%s: PAIRS must be a multiple of %d\n", argv[0], BATCH);
            return 64;
        }
        if (fp_setup() != 0) {
            fprintf(stderr, "%s: allocator set-up failed\n", argv[0]);
            return 1;
        }
        fp_modes[i].run(pairs);
        return 0;
    }
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], argv[1]);
    return 64;
}
