/* xmalloc-test (Lever and Boreham, "malloc() Performance in a Multithreaded
 * Linux Environment", 2000), as described there: producer threads allocate
 * blocks and hand them to consumer threads, which free them; every free is
 * of another thread's block. Here: P producers, P consumers, a shared queue
 * of batches of 64 blocks, mixed sizes (mostly small, some up to 4 KiB).
 *
 *   xmalloc_test [pairs=2] [blocks per producer=1000000]
 */
#include <pthread.h>

#include "prog.h"

#define BATCH 64
#define QCAP 256

typedef struct {
    void *p[BATCH];
    size_t n[BATCH];
    uint64_t tag[BATCH];
} batch_t;

static batch_t *queue[QCAP];
static size_t qhead, qtail, qcount;
static int producers_left;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnonempty = PTHREAD_COND_INITIALIZER, qnonfull = PTHREAD_COND_INITIALIZER;
static long per_producer = 1000000;
static uint64_t sums[64];
static long freed[64];

static size_t pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    unsigned k = (unsigned)(r & 15);
    if (k < 10)
        return 8 + (r >> 8) % 120;        /* 8..127 */
    if (k < 14)
        return 128 + (r >> 8) % 896;      /* ..1023 */
    return 1024 + (r >> 8) % 3072;        /* ..4095 */
}

static void *producer(void *arg)
{
    long id = (long)arg;
    uint64_t rng = 1000 + (uint64_t)id;
    for (long done = 0; done < per_producer; done += BATCH) {
        batch_t *b = malloc(sizeof *b);
        CHECK_ALLOC(b);
        for (int i = 0; i < BATCH; i++) {
            size_t n = pick_size(&rng);
            uint64_t tag = rng_next(&rng);
            unsigned char *p = malloc(n);
            CHECK_ALLOC(p);
            put_mark(p, n, tag);
            b->p[i] = p;
            b->n[i] = n;
            b->tag[i] = tag;
        }
        pthread_mutex_lock(&qlock);
        while (qcount == QCAP)
            pthread_cond_wait(&qnonfull, &qlock);
        queue[qtail] = b;
        qtail = (qtail + 1) % QCAP;
        qcount++;
        pthread_cond_signal(&qnonempty);
        pthread_mutex_unlock(&qlock);
    }
    pthread_mutex_lock(&qlock);
    producers_left--;
    pthread_cond_broadcast(&qnonempty);
    pthread_mutex_unlock(&qlock);
    return NULL;
}

static void *consumer(void *arg)
{
    long id = (long)arg;
    uint64_t sum = 0;
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (qcount == 0 && producers_left > 0)
            pthread_cond_wait(&qnonempty, &qlock);
        if (qcount == 0) {
            pthread_mutex_unlock(&qlock);
            break;
        }
        batch_t *b = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qcount--;
        pthread_cond_signal(&qnonfull);
        pthread_mutex_unlock(&qlock);
        for (int i = 0; i < BATCH; i++) {
            if (!check_mark(b->p[i], b->n[i], b->tag[i]))
                DIE("xmalloc_test: block %p of %zu bytes corrupted", b->p[i], b->n[i]);
            sum += b->n[i]; /* order-independent */
            free(b->p[i]);
            freed[id]++;
        }
        free(b);
    }
    sums[id] = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2)
        per_producer = atol(argv[2]);
    if (pairs < 1 || pairs > 32)
        DIE("pairs: 1..32");
    per_producer = (per_producer + BATCH - 1) / BATCH * BATCH;
    producers_left = pairs;
    pthread_t th[64];
    for (long i = 0; i < pairs; i++) {
        pthread_create(&th[i], NULL, producer, (void *)i);
        pthread_create(&th[pairs + i], NULL, consumer, (void *)i);
    }
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(th[i], NULL);
    uint64_t sum = 0;
    long n = 0;
    for (int i = 0; i < pairs; i++) {
        sum += sums[i];
        n += freed[i];
    }
    if (n != per_producer * pairs)
        DIE("xmalloc_test: freed %ld of %ld", n, per_producer * pairs);
    printf("xmalloc_test: %d producers, %ld blocks, %llu bytes\n", pairs, n,
           (unsigned long long)sum);
    return 0;
}
