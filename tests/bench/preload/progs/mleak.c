/* mleak: many short-lived threads. Threads start, allocate, and exit, a few
 * at a time; each frees most of what it allocated, hands some blocks to the
 * main thread (freed there after the join: frees of a dead thread's
 * blocks) and leaks one block for good. What an allocator keeps per thread
 * must not pile up: peak RSS should not grow with the number of threads.
 *
 *   mleak [threads in all=2000] [at once=4] [blocks per thread=300]
 */
#include <pthread.h>

#include "prog.h"

#define HANDED 8

typedef struct {
    long id;
    int blocks;
    unsigned char *handed[HANDED];
    size_t handed_size[HANDED];
    uint64_t sum;
} arg_t;

static void *worker(void *argp)
{
    arg_t *a = argp;
    uint64_t rng = (uint64_t)a->id + 99;
    unsigned char **blk = malloc(sizeof *blk * (size_t)a->blocks);
    size_t *len = malloc(sizeof *len * (size_t)a->blocks);
    CHECK_ALLOC(blk);
    CHECK_ALLOC(len);
    for (int i = 0; i < a->blocks; i++) {
        size_t n = 16 + (size_t)(rng_next(&rng) % 2048);
        blk[i] = malloc(n);
        CHECK_ALLOC(blk[i]);
        len[i] = n;
        put_mark(blk[i], n, (uint64_t)a->id * 1000 + (uint64_t)i);
    }
    a->sum = 0;
    for (int i = 0; i < a->blocks; i++) {
        if (!check_mark(blk[i], len[i], (uint64_t)a->id * 1000 + (uint64_t)i))
            DIE("mleak: block corrupted");
        a->sum += len[i];
        if (i < HANDED) {
            a->handed[i] = blk[i];
            a->handed_size[i] = len[i];
        } else if (i == HANDED) {
            /* leaked on purpose */
        } else {
            free(blk[i]);
        }
    }
    free(blk);
    free(len);
    return NULL;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 2000;
    int at_once = argc > 2 ? atoi(argv[2]) : 4;
    int blocks = argc > 3 ? atoi(argv[3]) : 300;
    if (at_once < 1 || at_once > 64 || blocks <= HANDED)
        DIE("bad arguments");
    pthread_t th[64];
    arg_t args[64];
    uint64_t sum = 0;
    for (long started = 0; started < total;) {
        int k = 0;
        for (; k < at_once && started < total; k++, started++) {
            args[k].id = started;
            args[k].blocks = blocks;
            pthread_create(&th[k], NULL, worker, &args[k]);
        }
        for (int i = 0; i < k; i++) {
            pthread_join(th[i], NULL);
            sum += args[i].sum;
            for (int j = 0; j < HANDED; j++) {
                if (!check_mark(args[i].handed[j], args[i].handed_size[j],
                                (uint64_t)args[i].id * 1000 + (uint64_t)j))
                    DIE("mleak: handed block corrupted");
                free(args[i].handed[j]);
            }
        }
    }
    printf("mleak: %ld threads x %d blocks: %llu\n", total, blocks, (unsigned long long)sum);
    return 0;
}
