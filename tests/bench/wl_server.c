/*
 * Two workloads of the footprint study (footprint.c, results/footprint.md),
 * written against the bench adapter like the suite's, so the same source
 * runs on scalloc, its instrumented adapter and the peers:
 *
 * server      issue 14's server-like load: T threads keep 64 MiB live in
 *             all (full scale) of mixed sizes 16 B-256 KiB, replace random
 *             blocks, and hand a fifth of the blocks they drop to the next
 *             thread, which frees them. Then every block is freed and the
 *             heap trimmed while the workers are alive but idle (a mark:
 *             the instrumented adapter walks the heap there; VmRSS is
 *             recorded as rss_idle_kb). Live bytes count blocks in flight
 *             between threads too. One op = one replaced block.
 * demo-cache  examples/server_demo's cache heap: T workers serve 4,000
 *             requests for 211 keys in turn; a GET of a missing key allocates its
 *             entry (56-956 B), every 7th request drops its key's entry,
 *             freed by whichever worker serves it. Entries stay live at the
 *             end, as in the demo. One op = one request.
 * tiny        one heap, one 16-byte block allocated and freed by each of T
 *             threads: what an allocator costs before it holds anything
 *             (its metadata, first span, per-thread state). One op = one
 *             block.
 * Every block is written once per page and at its end, and checked before
 * it is freed.
 */
#include "bench_alloc.h"
#include "bench_util.h"
#include "footprint.h"

#include <sched.h>
#include <stdatomic.h>

#ifndef BENCH_HAVE_MARK
static inline void bench_heap_mark(bench_heap *h, const char *label)
{
    (void)h;
    (void)label;
}
#endif

/* ------------------------------------------------------------------------ */
/* server                                                                   */
/* ------------------------------------------------------------------------ */

/* Weights in tenths of a percent (sum 1000): wl_mixed's histogram, from
 * 16 B and with its top bucket reaching 256 KiB. Mean about 3.3 KiB. */
static const bench_size_bucket server_hist[] = {
    {16, 32, 300},         {33, 64, 200},         {65, 128, 150},
    {129, 256, 100},       {257, 512, 80},        {513, 1024, 60},
    {1025, 4096, 50},      {4097, 16384, 35},     {16385, 65536, 15},
    {65537, 256 * 1024, 10},
};
#define SERVER_BUCKETS (sizeof server_hist / sizeof server_hist[0])
#define SERVER_SLOTS 65536   /* per thread: far more than the live target needs */
/* Blocks in flight to one thread: few, so that a receiver descheduled for
 * a while (more threads than cores) does not make the live set grow; a
 * full mailbox makes the sender free the block itself. */
#define SERVER_MAILBOX 256
#define SERVER_REMOTE_EVERY 5

typedef struct server_block {
    unsigned char *p;
    size_t size;
    unsigned char mark;
} server_block;

typedef struct server_mailbox {
    pthread_mutex_t lock;
    server_block *items;
    size_t count;
} server_mailbox;

typedef struct server_shared {
    bench_heap *heap;
    unsigned threads;
    pthread_barrier_t stopped;  /* workers: no more hand-overs after this */
    pthread_barrier_t idle;     /* workers + main: everything freed */
    pthread_barrier_t go;       /* workers + main: main has trimmed */
    server_mailbox *mail;
    /* Bytes live in the whole heap, blocks in flight included: one shared
     * counter (two atomic adds per step are nothing next to the page
     * touches), and its peak. */
    _Atomic size_t live, live_peak;
} server_shared;

typedef struct server_worker {
    server_shared *sh;
    unsigned id;
    size_t live_target;
    uint64_t steps;
    uint64_t seed;
    uint64_t done;
    uint64_t failures;
} server_worker;

static size_t server_size(bench_rng *rng)
{
    return bench_hist_size(rng, server_hist, SERVER_BUCKETS);
}

static int server_check(const server_block *b)
{
    return bench_check_pages(b->p, b->size, b->mark);
}

static void server_release(server_worker *w, bench_thread *t, const server_block *b)
{
    if (!server_check(b))
        w->failures++;
    bench_free(t, b->p);
    atomic_fetch_sub_explicit(&w->sh->live, b->size, memory_order_relaxed);
}

/* Frees what other threads handed to w. */
static void server_drain(server_worker *w, bench_thread *t, server_block *tmp)
{
    server_mailbox *mb = &w->sh->mail[w->id];
    pthread_mutex_lock(&mb->lock);
    size_t n = mb->count;
    for (size_t i = 0; i < n; i++)
        tmp[i] = mb->items[i];
    mb->count = 0;
    pthread_mutex_unlock(&mb->lock);
    for (size_t i = 0; i < n; i++)
        server_release(w, t, &tmp[i]);
}

/* Drops block b: every SERVER_REMOTE_EVERY-th goes to the next thread. */
static void server_drop(server_worker *w, bench_thread *t, const server_block *b, uint64_t k)
{
    if (w->sh->threads > 1 && k % SERVER_REMOTE_EVERY == 0) {
        server_mailbox *mb = &w->sh->mail[(w->id + 1) % w->sh->threads];
        pthread_mutex_lock(&mb->lock);
        int queued = mb->count < SERVER_MAILBOX;
        if (queued)
            mb->items[mb->count++] = *b;
        pthread_mutex_unlock(&mb->lock);
        if (queued)
            return;
    }
    server_release(w, t, b);
}

static int server_new(server_worker *w, bench_thread *t, bench_rng *rng, server_block *b,
                      uint64_t k)
{
    b->size = server_size(rng);
    b->mark = (unsigned char)(k * 131 + w->id);
    b->p = bench_malloc(t, b->size);
    if (b->p == NULL) {
        w->failures++;
        b->size = 0;
        return 0;
    }
    bench_touch_pages(b->p, b->size, b->mark);
    size_t live = atomic_fetch_add_explicit(&w->sh->live, b->size, memory_order_relaxed) + b->size;
    size_t peak = atomic_load_explicit(&w->sh->live_peak, memory_order_relaxed);
    while (live > peak && !atomic_compare_exchange_weak_explicit(&w->sh->live_peak, &peak, live,
                                                                 memory_order_relaxed,
                                                                 memory_order_relaxed))
        ;
    return 1;
}

static void *server_thread(void *arg)
{
    server_worker *w = arg;
    server_shared *sh = w->sh;
    bench_thread *t = bench_thread_attach(sh->heap);
    size_t slots_bytes = SERVER_SLOTS * sizeof(server_block);
    size_t tmp_bytes = SERVER_MAILBOX * sizeof(server_block);
    server_block *slots = bench_harness_alloc(slots_bytes);
    server_block *tmp = bench_harness_alloc(tmp_bytes);
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    size_t live = 0, used = 0;
    uint64_t k = 0;
    if (t == NULL || slots == NULL || tmp == NULL) {
        w->failures++;
    } else {
        /* Fill up to this thread's share of the live target. */
        while (live < w->live_target && used < SERVER_SLOTS) {
            if (server_new(w, t, &rng, &slots[used], k++))
                live += slots[used].size;
            used++;
        }
        /* Replace random blocks: drop random ones until the next block
         * fits the target, so live stays within a block of it instead of
         * drifting as a random walk of sizes would. */
        for (uint64_t s = 0; s < w->steps && used > 0; s++) {
            server_block next;
            if (!server_new(w, t, &rng, &next, k++))
                next.p = NULL;
            server_block *b;
            unsigned tries = 0;
            do {
                b = &slots[bench_rng_next(&rng) % used];
                if (b->p != NULL) {
                    live -= b->size;
                    server_drop(w, t, b, k);
                    b->p = NULL;
                }
            } while (live + next.size > w->live_target && ++tries < 64);
            *b = next;
            if (b->p != NULL)
                live += b->size;
            if ((s & 63) == 0)
                server_drain(w, t, tmp);
            w->done++;
        }
    }
    /* Free everything: after `stopped` nobody hands over any more. */
    pthread_barrier_wait(&sh->stopped);
    if (t != NULL && tmp != NULL) {
        server_drain(w, t, tmp);
        for (size_t i = 0; i < used; i++)
            if (slots[i].p != NULL)
                server_release(w, t, &slots[i]);
    }
    /* Idle but alive while main trims and looks. */
    pthread_barrier_wait(&sh->idle);
    pthread_barrier_wait(&sh->go);
    bench_harness_free(slots, slots_bytes);
    bench_harness_free(tmp, tmp_bytes);
    if (t != NULL)
        bench_thread_detach(t, 0);
    return NULL;
}

void wl_server(const bench_params *p, bench_result *r)
{
    size_t live_total = p->scale == BENCH_FULL ? (size_t)64 << 20 : (size_t)4 << 20;
    uint64_t total = p->scale == BENCH_FULL ? 1000000 : 40000;
    unsigned n = p->threads;
    server_shared sh = {0};
    server_worker w[256] = {{0}};
    pthread_t ids[256];
    sh.heap = bench_heap_create();
    sh.threads = n;
    atomic_init(&sh.live, 0);
    atomic_init(&sh.live_peak, 0);
    size_t mail_bytes = n * sizeof(server_mailbox);
    sh.mail = bench_harness_alloc(mail_bytes);
    if (sh.heap == NULL || sh.mail == NULL) {
        r->failures++;
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_init(&sh.mail[i].lock, NULL);
        sh.mail[i].items = bench_harness_alloc(SERVER_MAILBOX * sizeof(server_block));
        if (sh.mail[i].items == NULL)
            r->failures++;
    }
    pthread_barrier_init(&sh.stopped, NULL, n);
    pthread_barrier_init(&sh.idle, NULL, n + 1);
    pthread_barrier_init(&sh.go, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        w[i].sh = &sh;
        w[i].id = i;
        w[i].live_target = live_total / n;
        w[i].steps = bench_share(total, n, i);
        w[i].seed = p->seed * 1000 + i;
    }
    double t0 = bench_now();
    if (bench_spawn(n, ids, server_thread, w, sizeof w[0]) != 0) {
        /* Cannot happen at these thread counts; a stuck barrier would hang. */
        r->failures++;
        return;
    }
    pthread_barrier_wait(&sh.idle);
    r->seconds = bench_now() - t0;
    bench_heap_trim(sh.heap);
    bench_extra(r, "rss_idle_kb", (double)bench_status_kib("VmRSS"));
    bench_heap_mark(sh.heap, "free-all + trim, workers idle");
    pthread_barrier_wait(&sh.go);
    bench_join(n, ids);
    for (unsigned i = 0; i < n; i++) {
        r->ops += w[i].done;
        r->failures += w[i].failures;
        pthread_mutex_destroy(&sh.mail[i].lock);
        bench_harness_free(sh.mail[i].items, SERVER_MAILBOX * sizeof(server_block));
    }
    r->expected_ops = total;
    r->live_peak = atomic_load(&sh.live_peak);
    bench_harness_free(sh.mail, mail_bytes);
    pthread_barrier_destroy(&sh.stopped);
    pthread_barrier_destroy(&sh.idle);
    pthread_barrier_destroy(&sh.go);
    bench_heap_destroy(sh.heap);
}

/* ------------------------------------------------------------------------ */
/* demo-cache                                                               */
/* ------------------------------------------------------------------------ */

/* examples/server_demo.c's constants and entry sizes. */
#define DEMO_REQUESTS 4000
#define DEMO_KEYS 211
#define DEMO_BUCKETS 64
#define DEMO_INVALIDATE_EVERY 7

typedef struct demo_entry {
    struct demo_entry *next;
    uint32_t key;
    uint32_t len;
    char value[];
} demo_entry;

typedef struct demo_shared {
    bench_heap *heap;
    pthread_mutex_t lock;
    demo_entry *buckets[DEMO_BUCKETS];
    size_t live, live_peak;
    _Atomic uint32_t next_id;
    uint32_t requests;
} demo_shared;

typedef struct demo_worker {
    demo_shared *sh;
    unsigned id, threads;
    uint64_t done;
    uint64_t failures;
} demo_worker;

static size_t demo_value_length(uint32_t key) { return 40 + (key * 37u) % 900; }

static void demo_render(uint32_t key, char *out, size_t len)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (char)('a' + (key + i) % 26);
}

static int demo_value_ok(const demo_entry *e)
{
    char expected[1024];
    demo_render(e->key, expected, e->len);
    for (size_t i = 0; i < e->len; i++)
        if (e->value[i] != expected[i])
            return 0;
    return 1;
}

static void *demo_thread(void *arg)
{
    demo_worker *w = arg;
    demo_shared *sh = w->sh;
    bench_thread *t = bench_thread_attach(sh->heap);
    if (t == NULL)
        w->failures++;
    /* Requests are served in turn, worker id % T: the demo's queue hands
     * them to whichever worker is free, so every worker meets every key;
     * taking turns does the same deterministically (and a worker that
     * could not attach still passes its turns on). */
    for (;;) {
        uint32_t id = atomic_load_explicit(&sh->next_id, memory_order_acquire);
        if (id >= sh->requests)
            break;
        if (id % w->threads != w->id) {
            sched_yield();
            continue;
        }
        if (t == NULL) {
            atomic_store_explicit(&sh->next_id, id + 1, memory_order_release);
            continue;
        }
        uint32_t key = id % DEMO_KEYS;
        pthread_mutex_lock(&sh->lock);
        demo_entry **slot = &sh->buckets[key % DEMO_BUCKETS];
        while (*slot != NULL && (*slot)->key != key)
            slot = &(*slot)->next;
        demo_entry *e = *slot;
        if (id % DEMO_INVALIDATE_EVERY == 0) {
            if (e != NULL) {
                if (!demo_value_ok(e))
                    w->failures++;
                *slot = e->next;
                sh->live -= sizeof *e + e->len;
                bench_free(t, e);
            }
        } else if (e != NULL) {
            if (!demo_value_ok(e))
                w->failures++;
        } else {
            size_t len = demo_value_length(key);
            e = bench_malloc(t, sizeof *e + len);
            if (e == NULL) {
                w->failures++;
            } else {
                e->key = key;
                e->len = (uint32_t)len;
                demo_render(key, e->value, len);
                e->next = NULL;
                *slot = e;
                sh->live += sizeof *e + len;
                if (sh->live > sh->live_peak)
                    sh->live_peak = sh->live;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        w->done++;
        /* release: the next worker sees the cache as this one left it. */
        atomic_store_explicit(&sh->next_id, id + 1, memory_order_release);
    }
    if (t != NULL)
        bench_thread_detach(t, 0);
    return NULL;
}

void wl_demo_cache(const bench_params *p, bench_result *r)
{
    static demo_shared sh; /* static: zeroed, and the buckets are big */
    demo_worker w[256] = {{0}};
    sh.heap = bench_heap_create();
    if (sh.heap == NULL) {
        r->failures++;
        return;
    }
    pthread_mutex_init(&sh.lock, NULL);
    sh.requests = DEMO_REQUESTS;
    atomic_init(&sh.next_id, 0);
    for (unsigned i = 0; i < p->threads; i++) {
        w[i].sh = &sh;
        w[i].id = i;
        w[i].threads = p->threads;
    }
    double t0 = bench_now();
    if (bench_run_threads(p->threads, demo_thread, w, sizeof w[0]) != 0)
        r->failures++;
    r->seconds = bench_now() - t0;
    size_t entries = 0;
    for (unsigned b = 0; b < DEMO_BUCKETS; b++)
        for (demo_entry *e = sh.buckets[b]; e != NULL; e = e->next)
            entries++;
    bench_extra(r, "entries", (double)entries);
    bench_extra(r, "live_end_bytes", (double)sh.live);
    for (unsigned i = 0; i < p->threads; i++) {
        r->ops += w[i].done;
        r->failures += w[i].failures;
    }
    r->expected_ops = DEMO_REQUESTS;
    r->live_peak = sh.live_peak;
    /* As in the demo: the heap is destroyed with the entries live. With an
     * allocator that cannot destroy, free them first. */
    bench_thread *main_t = BENCH_CAN_DESTROY ? NULL : bench_thread_attach(sh.heap);
    for (unsigned b = 0; b < DEMO_BUCKETS; b++) {
        demo_entry *e = sh.buckets[b];
        sh.buckets[b] = NULL;
        while (e != NULL && main_t != NULL) {
            demo_entry *next = e->next;
            bench_free(main_t, e);
            e = next;
        }
    }
    if (main_t != NULL)
        bench_thread_detach(main_t, 0);
    pthread_mutex_destroy(&sh.lock);
    bench_heap_destroy(sh.heap);
}

/* ------------------------------------------------------------------------ */
/* tiny                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct tiny_worker {
    bench_heap *heap;
    uint64_t done;
    uint64_t failures;
} tiny_worker;

static void *tiny_thread(void *arg)
{
    tiny_worker *w = arg;
    bench_thread *t = bench_thread_attach(w->heap);
    unsigned char *p = t != NULL ? bench_malloc(t, 16) : NULL;
    if (p == NULL) {
        w->failures++;
    } else {
        bench_touch_pages(p, 16, 0x5a);
        if (p[0] != 0x5a || p[15] != 0x5a)
            w->failures++;
        bench_free(t, p);
        w->done++;
    }
    if (t != NULL)
        bench_thread_detach(t, 0);
    return NULL;
}

void wl_tiny(const bench_params *p, bench_result *r)
{
    tiny_worker w[256] = {{0}};
    bench_heap *heap = bench_heap_create();
    if (heap == NULL) {
        r->failures++;
        return;
    }
    for (unsigned i = 0; i < p->threads; i++)
        w[i].heap = heap;
    double t0 = bench_now();
    if (bench_run_threads(p->threads, tiny_thread, w, sizeof w[0]) != 0)
        r->failures++;
    r->seconds = bench_now() - t0;
    for (unsigned i = 0; i < p->threads; i++) {
        r->ops += w[i].done;
        r->failures += w[i].failures;
    }
    r->expected_ops = p->threads;
    r->live_peak = 16 * (size_t)p->threads;
    bench_heap_destroy(heap);
}
