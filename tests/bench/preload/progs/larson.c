/* larson (Larson and Krishnan, "Memory Allocation for Long-Running Server
 * Applications", ISMM 1998), as described there: each thread owns an array
 * of slots holding blocks of random sizes and, at every step, frees the
 * block of a random slot and allocates a new one in its place. After a
 * fixed number of steps the thread exits and a new thread takes over its
 * slots, so the first frees of every round are of a dead thread's blocks.
 * Fixed work (the original runs for a fixed time).
 *
 *   larson [threads=4] [rounds=8] [steps per round=400000] [slots=1000]
 *          [min size=8] [max size=1000]
 */
#include <pthread.h>

#include "prog.h"

typedef struct {
    long id;
    int round;
    unsigned char **slot;
    size_t *size;
    uint64_t *tag;
    uint64_t sum;
} lineage_t;

static int rounds = 8, slots = 1000;
static long steps = 400000;
static size_t min_size = 8, max_size = 1000;

static void *worker(void *argp)
{
    lineage_t *l = argp;
    uint64_t rng = (uint64_t)l->id * 1000003 + (uint64_t)l->round;
    for (long s = 0; s < steps; s++) {
        uint64_t r = rng_next(&rng);
        int k = (int)(r % (uint64_t)slots);
        if (!check_mark(l->slot[k], l->size[k], l->tag[k]))
            DIE("larson: block %p corrupted", (void *)l->slot[k]);
        l->sum += l->size[k];
        free(l->slot[k]);
        size_t n = min_size + (size_t)((r >> 32) % (max_size - min_size + 1));
        unsigned char *p = malloc(n);
        CHECK_ALLOC(p);
        l->tag[k] = rng_next(&rng);
        put_mark(p, n, l->tag[k]);
        l->slot[k] = p;
        l->size[k] = n;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2) rounds = atoi(argv[2]);
    if (argc > 3) steps = atol(argv[3]);
    if (argc > 4) slots = atoi(argv[4]);
    if (argc > 5) min_size = (size_t)atol(argv[5]);
    if (argc > 6) max_size = (size_t)atol(argv[6]);
    if (threads < 1 || threads > 64 || slots < 1 || min_size < 1 || max_size < min_size)
        DIE("bad arguments");
    lineage_t l[64];
    uint64_t rng = 42;
    for (int i = 0; i < threads; i++) {
        l[i].id = i;
        l[i].sum = 0;
        l[i].slot = malloc(sizeof *l[i].slot * (size_t)slots);
        l[i].size = malloc(sizeof *l[i].size * (size_t)slots);
        l[i].tag = malloc(sizeof *l[i].tag * (size_t)slots);
        CHECK_ALLOC(l[i].slot);
        CHECK_ALLOC(l[i].size);
        CHECK_ALLOC(l[i].tag);
        for (int k = 0; k < slots; k++) {
            size_t n = min_size + (size_t)(rng_next(&rng) % (max_size - min_size + 1));
            l[i].slot[k] = malloc(n);
            CHECK_ALLOC(l[i].slot[k]);
            l[i].size[k] = n;
            l[i].tag[k] = rng_next(&rng);
            put_mark(l[i].slot[k], n, l[i].tag[k]);
        }
    }
    pthread_t th[64];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < threads; i++) {
            l[i].round = r;
            pthread_create(&th[i], NULL, worker, &l[i]);
        }
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
    }
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        for (int k = 0; k < slots; k++) {
            if (!check_mark(l[i].slot[k], l[i].size[k], l[i].tag[k]))
                DIE("larson: block corrupted at the end");
            sum += l[i].size[k];
            free(l[i].slot[k]);
        }
        sum += l[i].sum;
        free(l[i].slot);
        free(l[i].size);
        free(l[i].tag);
    }
    printf("larson: %d threads x %d rounds x %ld steps: %llu\n", threads, rounds, steps,
           (unsigned long long)sum);
    return 0;
}
