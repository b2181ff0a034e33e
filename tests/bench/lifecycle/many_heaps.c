/*
 * many_heaps: what a heap costs a program that keeps many of them (a heap
 * per tenant, per connection, per request): resident memory per heap once
 * it is created, once one 32 B block was allocated from it, and what stays
 * resident after every heap was destroyed, for two rounds (the second shows
 * whether what stays is reused or piles up).
 *
 *   many_heaps [--heaps N] [--rounds R]
 *
 * Built as many_heaps_mimalloc (MANY_HEAPS_MIMALLOC), the same with
 * mi_heap_new / mi_heap_malloc / mi_heap_destroy. One thread; RSS is
 * VmRSS, so it includes everything the allocator touched for the heaps:
 * handles, per-thread state, address maps, the blocks' pages.
 */
#include "lifecycle_bench.h"

#ifdef MANY_HEAPS_MIMALLOC
#include <mimalloc.h>
typedef mi_heap_t heap_t;
#define ALLOCATOR "mimalloc heaps"
static heap_t *heap_new(void) { return mi_heap_new(); }
static void *heap_alloc(heap_t *h, size_t n) { return mi_heap_malloc(h, n); }
static void heap_destroy(heap_t *h) { mi_heap_destroy(h); }
#else
#include <scalloc/scalloc.h>
typedef sc_heap_t heap_t;
#define ALLOCATOR "scalloc"
static heap_t *heap_new(void) { return sc_heap_create(NULL); }
static void *heap_alloc(heap_t *h, size_t n) { return sc_alloc(h, n); }
static void heap_destroy(heap_t *h) { sc_heap_destroy(h); }
#endif

static double kib_per(size_t after, size_t before, size_t n)
{
    return after > before ? (double)(after - before) / LB_KiB / (double)n : 0.0;
}

int main(int argc, char **argv)
{
    size_t heaps = 1000, rounds = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--heaps") == 0 && i + 1 < argc)
            heaps = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--heaps N] [--rounds R]\n", argv[0]);
            return 64;
        }
    }
    if (heaps == 0 || rounds == 0) {
        fprintf(stderr, "many_heaps: --heaps and --rounds must be at least 1\n");
        return 64;
    }
    heap_t **h = calloc(heaps, sizeof *h);
    if (h == NULL) {
        perror("many_heaps");
        return 1;
    }
    size_t start = lb_proc_mem().rss;
    printf("| allocator | round | heaps | KiB per heap, created | KiB per heap, one 32 B block each | KiB over the start after destroying all |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (size_t r = 0; r < rounds; r++) {
        size_t before = lb_proc_mem().rss;
        for (size_t i = 0; i < heaps; i++) {
            h[i] = heap_new();
            if (h[i] == NULL) {
                fprintf(stderr, "many_heaps: heap %zu of %zu: creation failed\n", i, heaps);
                return 1;
            }
        }
        size_t created = lb_proc_mem().rss;
        for (size_t i = 0; i < heaps; i++) {
            unsigned char *p = heap_alloc(h[i], 32);
            if (p == NULL) {
                fprintf(stderr, "many_heaps: allocation in heap %zu failed\n", i);
                return 1;
            }
            memset(p, 0x5a, 32);
        }
        size_t used = lb_proc_mem().rss;
        for (size_t i = 0; i < heaps; i++)
            heap_destroy(h[i]);
        size_t after = lb_proc_mem().rss;
        printf("| %s | %zu | %zu | %.1f | %.1f | %zu |\n", ALLOCATOR, r + 1, heaps,
               kib_per(created, before, heaps), kib_per(used, created, heaps),
               after > start ? (after - start) / LB_KiB : 0);
    }
    free(h);
    return 0;
}
