/* sh6bench (MicroQuill's SmartHeap benchmark, also in mimalloc-bench), as
 * described there: each thread repeatedly allocates a batch of blocks of
 * varying sizes, frees them in an order that changes from round to round
 * (reverse, every other one then the rest, forward) and allocates again, so
 * free lists are exercised in every order.
 *
 *   sh6bench [threads=2] [rounds=4000] [batch=2000] [max size=1000]
 */
#include <pthread.h>

#include "prog.h"

static int rounds = 4000, batch = 2000;
static size_t max_size = 1000;
static uint64_t sums[64];

static void *worker(void *arg)
{
    long id = (long)arg;
    unsigned char **blk = malloc(sizeof *blk * (size_t)batch);
    size_t *len = malloc(sizeof *len * (size_t)batch);
    CHECK_ALLOC(blk);
    CHECK_ALLOC(len);
    uint64_t sum = 0;
    size_t sz = 1;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < batch; i++) {
            sz = (sz * 7 + 13) % max_size + 2; /* 2.. max+1: two distinct marks */
            blk[i] = malloc(sz);
            CHECK_ALLOC(blk[i]);
            len[i] = sz;
            blk[i][0] = (unsigned char)(i + r);
            blk[i][sz - 1] = (unsigned char)(i - r);
        }
        int mode = r % 3;
#define RELEASE(i)                                                                            \
    do {                                                                                      \
        if (blk[i][0] != (unsigned char)((i) + r) ||                                          \
            blk[i][len[i] - 1] != (unsigned char)((i) - r))                                   \
            DIE("sh6bench: block corrupted");                                                 \
        sum += len[i];                                                                        \
        free(blk[i]);                                                                         \
    } while (0)
        if (mode == 0) {
            for (int i = batch - 1; i >= 0; i--)
                RELEASE(i);
        } else if (mode == 1) {
            for (int i = 0; i < batch; i += 2)
                RELEASE(i);
            for (int i = 1; i < batch; i += 2)
                RELEASE(i);
        } else {
            for (int i = 0; i < batch; i++)
                RELEASE(i);
        }
    }
    free(blk);
    free(len);
    sums[id] = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2) rounds = atoi(argv[2]);
    if (argc > 3) batch = atoi(argv[3]);
    if (argc > 4) max_size = (size_t)atol(argv[4]);
    if (threads < 1 || threads > 64 || batch < 1 || max_size < 1)
        DIE("bad arguments");
    pthread_t th[64];
    for (long i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker, (void *)i);
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        sum += sums[i];
    }
    printf("sh6bench: %d threads x %d rounds x %d blocks: %llu\n", threads, rounds, batch,
           (unsigned long long)sum);
    return 0;
}
