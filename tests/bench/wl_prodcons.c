/*
 * producer-consumer (xmalloc style): producers allocate blocks of random
 * size (8..512 B), tag them and hand them over in batches of 64 through a
 * bounded queue; consumers check the tag and free them. Every free is
 * remote. With T threads there are max(1, T/2) producers and the rest are
 * consumers; T = 1 still needs one of each, so it runs a single pair (the
 * same as T = 2). The queue holds at most PC_BATCHES batches, which bounds
 * the live set. One op = one block produced and consumed.
 */
#include "bench_alloc.h"
#include "bench_util.h"

#include <pthread.h>

#define PC_BATCH 64
#define PC_BATCHES 64
#define PC_MIN 8
#define PC_MAX 512

typedef struct pc_batch {
    uint64_t *block[PC_BATCH];
    struct pc_batch *next; /* on the empty stack */
} pc_batch;

typedef struct pc_shared {
    bench_heap *heap;
    pthread_mutex_t lock;
    pthread_cond_t has_full;  /* consumers wait for a full batch */
    pthread_cond_t has_empty; /* producers wait for an empty buffer */
    pc_batch *full[PC_BATCHES]; /* ring of full batches */
    unsigned head, count;
    pc_batch *empty; /* stack of empty buffers */
    unsigned producers_left;
} pc_shared;

typedef struct pc_worker {
    pc_shared *sh;
    uint64_t batches; /* producers: how many to make */
    uint64_t seed;
    uint64_t done;
    uint64_t failures;
} pc_worker;

static inline uint64_t pc_tag(const void *p) { return (uint64_t)(uintptr_t)p ^ 0x5ca11ac5ca11ac00ull; }

static void *pc_producer(void *arg)
{
    pc_worker *w = arg;
    pc_shared *sh = w->sh;
    bench_thread *t = bench_thread_attach(sh->heap);
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    for (uint64_t b = 0; b < w->batches && t != NULL; b++) {
        pthread_mutex_lock(&sh->lock);
        while (sh->empty == NULL)
            pthread_cond_wait(&sh->has_empty, &sh->lock);
        pc_batch *batch = sh->empty;
        sh->empty = batch->next;
        pthread_mutex_unlock(&sh->lock);

        for (unsigned i = 0; i < PC_BATCH; i++) {
            uint64_t *p = bench_malloc(t, bench_rng_range(&rng, PC_MIN, PC_MAX));
            if (p == NULL)
                w->failures++;
            else
                p[0] = pc_tag(p);
            batch->block[i] = p;
        }
        w->done += PC_BATCH;

        pthread_mutex_lock(&sh->lock);
        sh->full[(sh->head + sh->count) % PC_BATCHES] = batch;
        sh->count++;
        pthread_cond_signal(&sh->has_full);
        pthread_mutex_unlock(&sh->lock);
    }
    if (t == NULL)
        w->failures++;
    pthread_mutex_lock(&sh->lock);
    sh->producers_left--;
    if (sh->producers_left == 0)
        pthread_cond_broadcast(&sh->has_full); /* let consumers see the end */
    pthread_mutex_unlock(&sh->lock);
    if (t != NULL)
        bench_thread_detach(t, 0);
    return NULL;
}

static void *pc_consumer(void *arg)
{
    pc_worker *w = arg;
    pc_shared *sh = w->sh;
    bench_thread *t = bench_thread_attach(sh->heap);
    if (t == NULL)
        w->failures++;
    for (;;) {
        pthread_mutex_lock(&sh->lock);
        while (sh->count == 0 && sh->producers_left > 0)
            pthread_cond_wait(&sh->has_full, &sh->lock);
        if (sh->count == 0) {
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        pc_batch *batch = sh->full[sh->head];
        sh->head = (sh->head + 1) % PC_BATCHES;
        sh->count--;
        pthread_mutex_unlock(&sh->lock);

        for (unsigned i = 0; i < PC_BATCH; i++) {
            uint64_t *p = batch->block[i];
            if (p == NULL)
                continue;
            if (p[0] != pc_tag(p))
                w->failures++;
            if (t != NULL)
                bench_free(t, p);
            w->done++;
        }

        pthread_mutex_lock(&sh->lock);
        batch->next = sh->empty;
        sh->empty = batch;
        pthread_cond_signal(&sh->has_empty);
        pthread_mutex_unlock(&sh->lock);
    }
    if (t != NULL)
        bench_thread_detach(t, 0);
    return NULL;
}

void wl_prodcons(const bench_params *p, bench_result *r)
{
    uint64_t total_batches = (p->scale == BENCH_FULL ? 4000000 : 100000) / PC_BATCH;
    unsigned producers = p->threads / 2 > 0 ? p->threads / 2 : 1;
    unsigned consumers = p->threads > producers ? p->threads - producers : 1;
    pc_shared sh = {0};
    pc_batch *buffers = bench_harness_alloc(PC_BATCHES * sizeof *buffers);
    pc_worker w[256] = {{0}};
    pthread_t ids[256];
    sh.heap = bench_heap_create();
    if (sh.heap == NULL || buffers == NULL) {
        r->failures++;
        return;
    }
    pthread_mutex_init(&sh.lock, NULL);
    pthread_cond_init(&sh.has_full, NULL);
    pthread_cond_init(&sh.has_empty, NULL);
    for (unsigned i = 0; i < PC_BATCHES; i++) {
        buffers[i].next = sh.empty;
        sh.empty = &buffers[i];
    }
    sh.producers_left = producers;
    for (unsigned i = 0; i < producers + consumers; i++) {
        w[i].sh = &sh;
        w[i].seed = p->seed * 1000 + i;
        if (i < producers)
            w[i].batches = bench_share(total_batches, producers, i);
    }
    double t0 = bench_now();
    int spawned = bench_spawn(producers, ids, pc_producer, w, sizeof w[0]) == 0;
    if (spawned && bench_spawn(consumers, ids + producers, pc_consumer, w + producers,
                               sizeof w[0]) != 0) {
        /* Consumers missing: drain here so producers can finish. */
        spawned = 0;
        pc_consumer(&w[producers]);
        bench_join(producers, ids);
    } else if (spawned) {
        bench_join(producers + consumers, ids);
    }
    r->seconds = bench_now() - t0;
    if (!spawned)
        r->failures++;
    uint64_t produced = 0, consumed = 0;
    for (unsigned i = 0; i < producers + consumers; i++) {
        if (i < producers)
            produced += w[i].done;
        else
            consumed += w[i].done;
        r->failures += w[i].failures;
    }
    if (produced != consumed)
        r->failures++;
    r->ops = consumed;
    r->expected_ops = total_batches * PC_BATCH;
    bench_extra(r, "producers", producers);
    bench_extra(r, "consumers", consumers);
    pthread_cond_destroy(&sh.has_empty);
    pthread_cond_destroy(&sh.has_full);
    pthread_mutex_destroy(&sh.lock);
    bench_harness_free(buffers, PC_BATCHES * sizeof *buffers);
    bench_heap_destroy(sh.heap);
}
