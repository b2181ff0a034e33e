/* cache-scratch (Berger et al., Hoard, ASPLOS 2000): passive false
 * sharing. The main thread allocates one small object per thread and hands
 * it over; each thread frees it, then repeatedly allocates an object of the
 * same size, writes it many times, and frees it. An allocator that gives a
 * thread memory from the cache line of another thread's object makes the
 * writes slow.
 *
 *   cache_scratch [threads=4] [iterations=2000] [size=8] [writes=20000]
 */
#include <pthread.h>

#include "prog.h"

static int iterations = 2000, writes = 20000;
static size_t objsize = 8;
static uint64_t sums[64];

typedef struct {
    long id;
    char *obj;
} arg_t;

static void *worker(void *argp)
{
    arg_t *a = argp;
    free(a->obj);
    uint64_t sum = 0;
    for (int it = 0; it < iterations; it++) {
        volatile char *p = malloc(objsize);
        CHECK_ALLOC(p);
        for (size_t j = 0; j < objsize; j++)
            p[j] = 0;
        for (int w = 0; w < writes; w++)
            for (size_t j = 0; j < objsize; j++)
                p[j] = (char)(p[j] + 1 + (char)w);
        for (size_t j = 0; j < objsize; j++)
            sum += (unsigned char)p[j];
        free((void *)p);
    }
    sums[a->id] = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        iterations = atoi(argv[2]);
    if (argc > 3)
        objsize = (size_t)atol(argv[3]);
    if (argc > 4)
        writes = atoi(argv[4]);
    if (threads < 1 || threads > 64 || objsize < 1)
        DIE("threads 1..64, size >= 1");
    pthread_t th[64];
    arg_t args[64];
    for (int i = 0; i < threads; i++) {
        args[i].id = i;
        args[i].obj = malloc(objsize);
        CHECK_ALLOC(args[i].obj);
        memset(args[i].obj, i, objsize);
    }
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker, &args[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++)
        sum += sums[i];
    printf("cache_scratch: %d threads x %d iterations x %d writes of %zu bytes: %llu\n", threads,
           iterations, writes, objsize, (unsigned long long)sum);
    return 0;
}
