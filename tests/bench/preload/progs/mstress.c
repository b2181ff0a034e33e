/* mstress (the "mstress" stress test of mimalloc-bench, test-stress.c in
 * mimalloc), as described there: rounds of short-lived threads allocate
 * objects of mostly small and some large sizes into thread-local arrays
 * (grown with realloc), free random ones, and swap objects with a shared
 * transfer array, so objects outlive their threads and are freed by
 * others. Every object carries a cookie checked when it is freed.
 *
 *   mstress [threads=8] [rounds=10] [steps per thread and round=40000]
 */
#include <pthread.h>
#include <stdatomic.h>

#include "prog.h"

#define TRANSFERS 1000

static _Atomic(uintptr_t *) transfer[TRANSFERS];
static int threads = 8, rounds = 10;
static long steps = 40000;
static _Atomic uint64_t total_items, total_words;

/* An object of `words` words: its size and a magic byte in the first word,
 * the complement of its size in the last. */
static uintptr_t *item_alloc(size_t words)
{
    uintptr_t *p = malloc(words * sizeof(uintptr_t));
    CHECK_ALLOC(p);
    p[0] = ((uintptr_t)words << 8) | 0xA5;
    if (words > 1)
        p[words - 1] = ~(uintptr_t)words;
    return p;
}

static void item_free(uintptr_t *p)
{
    if (p == NULL)
        return;
    size_t words = (size_t)(p[0] >> 8);
    if ((p[0] & 0xFF) != 0xA5 || words == 0 || words > (1u << 20) ||
        (words > 1 && p[words - 1] != ~(uintptr_t)words))
        DIE("mstress: object %p corrupted", (void *)p);
    free(p);
}

static size_t pick_words(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    if (r % 100 == 0)
        return 1000 + (size_t)((r >> 8) % 20000); /* 8-170 KiB */
    if (r % 10 == 0)
        return 1 + (size_t)((r >> 8) % 1000);     /* up to 8 KiB */
    return 1 + (size_t)((r >> 8) % 16);           /* up to 128 B */
}

typedef struct {
    int id, round;
} arg_t;

static void *worker(void *argp)
{
    arg_t *a = argp;
    uint64_t rng = (uint64_t)a->id * 7919 + (uint64_t)a->round * 104729 + 1;
    size_t cap = 64, n = 0;
    uintptr_t **local = malloc(cap * sizeof *local);
    CHECK_ALLOC(local);
    uint64_t items = 0, words_total = 0;
    for (long s = 0; s < steps; s++) {
        uint64_t r = rng_next(&rng);
        if (n == cap) {
            cap *= 2;
            local = realloc(local, cap * sizeof *local);
            CHECK_ALLOC(local);
        }
        size_t w = pick_words(&rng);
        local[n++] = item_alloc(w);
        items++;
        words_total += w;
        if (r % 3 == 0 && n > 0) { /* free a random one */
            size_t k = (size_t)(rng_next(&rng) % n);
            item_free(local[k]);
            local[k] = local[--n];
        }
        if (r % 20 == 0 && n > 0) { /* swap one with the transfer array */
            size_t k = (size_t)(rng_next(&rng) % n);
            size_t t = (size_t)(rng_next(&rng) % TRANSFERS);
            uintptr_t *old = atomic_exchange(&transfer[t], local[k]);
            if (old)
                local[k] = old;
            else
                local[k] = local[--n];
        }
    }
    for (size_t k = 0; k < n; k++)
        item_free(local[k]);
    free(local);
    atomic_fetch_add(&total_items, items);
    atomic_fetch_add(&total_words, words_total);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) threads = atoi(argv[1]);
    if (argc > 2) rounds = atoi(argv[2]);
    if (argc > 3) steps = atol(argv[3]);
    if (threads < 1 || threads > 256)
        DIE("threads 1..256");
    pthread_t th[256];
    arg_t args[256];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < threads; i++) {
            args[i].id = i;
            args[i].round = r;
            pthread_create(&th[i], NULL, worker, &args[i]);
        }
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
    }
    for (int t = 0; t < TRANSFERS; t++)
        item_free(atomic_exchange(&transfer[t], NULL));
    printf("mstress: %d threads x %d rounds: %llu objects, %llu words\n", threads, rounds,
           (unsigned long long)total_items, (unsigned long long)total_words);
    return 0;
}
