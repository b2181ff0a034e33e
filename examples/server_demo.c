/*
 * server_demo — a small multi-threaded "server" that gives each subsystem
 * its own scalloc heap.
 *
 * The pipeline:
 *
 *   listener thread ──work queue──> worker threads ──reply queue──> main thread
 *   (allocates request             (parse, cache lookup,          (checks and
 *    buffers in "net")              build reply in "net")          frees replies)
 *
 * What it shows:
 *   - one long-lived heap per subsystem ("net", "parser", "cache"), so each
 *     subsystem's memory can be counted and thrown away on its own;
 *   - blocks allocated by one thread and freed by another: request buffers
 *     (listener -> worker), replies (worker -> main), cache entries (whichever
 *     worker inserted one, whichever worker invalidates it);
 *   - a request-scoped heap per request: everything parsed for a request is
 *     allocated there and never freed one by one; sc_heap_destroy drops it
 *     all at once when the request is done;
 *   - sc_heap_get_stats and sc_heap_print_stats at the end, and
 *     sc_heap_destroy of heaps that still hold live blocks (the cache).
 *
 * Every buffer is checked against an independent recomputation, and the
 * heaps' statistics are checked against what the program knows it holds.
 * Exit status 0 means every check passed.
 */
#define _POSIX_C_SOURCE 200809L

#include <scalloc/scalloc.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    NUM_WORKERS = 4,
    NUM_REQUESTS = 4000,
    MAX_REQUEST_BYTES = 4096,
    QUEUE_CAPACITY = 64,
    CACHE_KEYS = 211,     /* distinct paths; a prime so ids spread evenly */
    CACHE_BUCKETS = 64,
    INVALIDATE_EVERY = 7, /* every 7th request is a POST that drops its entry */
};

/* Subsystem heaps, created by main before any thread starts. */
static sc_heap_t *net_heap;    /* request and reply buffers */
static sc_heap_t *parser_heap; /* each worker's reusable token index */
static sc_heap_t *cache_heap;  /* the shared response cache */

static atomic_uint failures;
static atomic_uint request_heaps_destroyed;

/* Reports a failed check; the program keeps going so that one run shows
 * every kind of failure, and exits non-zero at the end. */
static void check_failed(const char *what, uint32_t id)
{
    atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
    fprintf(stderr, "server_demo: check failed: %s (request %u)\n", what, id);
}

/* ------------------------------------------------------------------------ */
/* Deterministic request content                                            */
/* ------------------------------------------------------------------------ */

/* splitmix64: a tiny generator, so that every thread can recompute any
 * request's content from its id alone and check what it received. */
static uint64_t mix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint32_t cache_key_of(uint32_t id) { return id % CACHE_KEYS; }
static int is_post(uint32_t id) { return id % INVALIDATE_EVERY == 0; }

/* Writes request `id` as HTTP-like text into out (at least
 * MAX_REQUEST_BYTES) and returns its length. Header count and lengths vary
 * so that buffers land in many size classes. */
static size_t render_request(uint32_t id, char *out)
{
    static const char *const words[] = {
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
        "hotel", "india", "juliett", "kilo", "lima", "mike", "november",
    };
    const size_t num_words = sizeof words / sizeof words[0];
    uint64_t rng = id;
    size_t len = 0;
    int n = snprintf(out, MAX_REQUEST_BYTES,
                     "%s /item/%u?session=%08x&page=%u HTTP/1.1\r\n"
                     "Host: demo.test\r\nX-Request: %u\r\n",
                     is_post(id) ? "POST" : "GET", cache_key_of(id),
                     (unsigned)(mix64(&rng) & 0xffffffffu),
                     (unsigned)(mix64(&rng) % 50), id);
    len = (size_t)n;
    unsigned headers = (unsigned)(mix64(&rng) % 24);
    for (unsigned h = 0; h < headers; h++) {
        n = snprintf(out + len, MAX_REQUEST_BYTES - len, "X-Pad-%u:", h);
        len += (size_t)n;
        unsigned values = 1 + (unsigned)(mix64(&rng) % 8);
        for (unsigned v = 0; v < values; v++) {
            const char *w = words[mix64(&rng) % num_words];
            n = snprintf(out + len, MAX_REQUEST_BYTES - len, " %s", w);
            len += (size_t)n;
        }
        memcpy(out + len, "\r\n", 2);
        len += 2;
    }
    memcpy(out + len, "\r\n", 2);
    len += 2;
    return len; /* at most about 24 * (12 + 8 * 9) + 100 bytes: fits */
}

static int is_separator(char c)
{
    return c == ' ' || c == '\r' || c == '\n' || c == '?' || c == '&' ||
           c == '=' || c == ':';
}

/* FNV-1a over the tokens of a request, each followed by a 0 byte: the
 * worker computes it from its parsed tokens, main recomputes it from the
 * text, and the two must agree. */
static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3u;
    }
    h *= 0x100000001b3u; /* the 0 separator byte: xor with 0 changes nothing */
    return h;
}

#define HASH_SEED 0xcbf29ce484222325u

static uint64_t hash_request_text(const char *text, size_t len, unsigned *tokens)
{
    uint64_t h = HASH_SEED;
    unsigned count = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && is_separator(text[i]))
            i++;
        size_t start = i;
        while (i < len && !is_separator(text[i]))
            i++;
        if (i > start) {
            h = hash_bytes(h, text + start, i - start);
            count++;
        }
    }
    *tokens = count;
    return h;
}

/* The value cached for a key: text whose length depends on the key. */
static size_t cache_value_length(uint32_t key) { return 40 + (key * 37u) % 900; }

static void render_cache_value(uint32_t key, char *out, size_t len)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (char)('a' + (key + i) % 26);
}

/* Reply body bytes are derived from the request hash, so main can check
 * every byte without keeping anything per request. */
static size_t reply_body_length(uint64_t hash) { return 32 + (size_t)(hash % 3000); }
static unsigned char reply_body_byte(uint64_t hash, size_t i)
{
    return (unsigned char)((hash >> ((i % 8) * 8)) ^ (i * 31u));
}

/* ------------------------------------------------------------------------ */
/* Messages between threads (all allocated in the "net" heap)              */
/* ------------------------------------------------------------------------ */

struct request {
    uint32_t id;
    uint32_t len;
    char text[]; /* len bytes, not NUL-terminated */
};

struct reply {
    uint32_t id;
    uint32_t tokens;
    uint64_t hash;
    uint32_t body_len;
    unsigned char body[];
};

/* A bounded blocking queue of pointers. A mutex and condition variables are
 * plenty here: the demo is about where memory comes from, not queues. */
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    void *items[QUEUE_CAPACITY];
    unsigned head;
    unsigned count;
};

static void queue_init(struct queue *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->head = 0;
    q->count = 0;
}

static void queue_fini(struct queue *q)
{
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
}

static void queue_push(struct queue *q, void *item)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == QUEUE_CAPACITY)
        pthread_cond_wait(&q->not_full, &q->lock);
    q->items[(q->head + q->count) % QUEUE_CAPACITY] = item;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

static void *queue_pop(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0)
        pthread_cond_wait(&q->not_empty, &q->lock);
    void *item = q->items[q->head];
    q->head = (q->head + 1) % QUEUE_CAPACITY;
    q->count--;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return item;
}

static struct queue work_queue;  /* struct request *, NULL = stop */
static struct queue reply_queue; /* struct reply * */

/* ------------------------------------------------------------------------ */
/* The cache subsystem                                                      */
/* ------------------------------------------------------------------------ */

struct cache_entry {
    struct cache_entry *next;
    uint32_t key;
    uint32_t len;
    char value[];
};

static struct {
    pthread_mutex_t lock;
    struct cache_entry *buckets[CACHE_BUCKETS];
    unsigned entries;
    unsigned hits, misses, invalidations;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Looks key up; on a miss renders the value into a new entry allocated in
 * the cache heap. Checks a hit's contents: the entry may have been
 * allocated by any worker. */
static void cache_get(uint32_t key, uint32_t id)
{
    char expected[1024];
    size_t len = cache_value_length(key);
    render_cache_value(key, expected, len);

    pthread_mutex_lock(&cache.lock);
    struct cache_entry **slot = &cache.buckets[key % CACHE_BUCKETS];
    struct cache_entry *e = *slot;
    while (e != NULL && e->key != key)
        e = e->next;
    if (e != NULL) {
        cache.hits++;
        if (e->len != len || memcmp(e->value, expected, len) != 0)
            check_failed("cached value corrupted", id);
    } else {
        cache.misses++;
        e = sc_alloc(cache_heap, sizeof *e + len);
        if (e == NULL) {
            check_failed("cache allocation failed", id);
        } else {
            e->key = key;
            e->len = (uint32_t)len;
            memcpy(e->value, expected, len);
            e->next = *slot;
            *slot = e;
            cache.entries++;
        }
    }
    pthread_mutex_unlock(&cache.lock);
}

/* Drops key's entry, freeing it from this thread whoever allocated it. */
static void cache_invalidate(uint32_t key)
{
    pthread_mutex_lock(&cache.lock);
    struct cache_entry **slot = &cache.buckets[key % CACHE_BUCKETS];
    while (*slot != NULL && (*slot)->key != key)
        slot = &(*slot)->next;
    struct cache_entry *e = *slot;
    if (e != NULL) {
        *slot = e->next;
        sc_free(cache_heap, e);
        cache.entries--;
        cache.invalidations++;
    }
    pthread_mutex_unlock(&cache.lock);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

static void *listener_main(void *arg)
{
    (void)arg;
    char text[MAX_REQUEST_BYTES];
    for (uint32_t id = 0; id < NUM_REQUESTS; id++) {
        size_t len = render_request(id, text);
        struct request *req = sc_alloc(net_heap, sizeof *req + len);
        if (req == NULL) {
            check_failed("request allocation failed", id);
            continue;
        }
        req->id = id;
        req->len = (uint32_t)len;
        memcpy(req->text, text, len);
        queue_push(&work_queue, req);
    }
    for (int i = 0; i < NUM_WORKERS; i++)
        queue_push(&work_queue, NULL);
    return NULL;
}

/* A worker's token index: pointers into the request heap, kept in the
 * parser heap across requests and grown with sc_realloc. */
struct token_index {
    const char **tokens;
    size_t *lengths;
    size_t count;
    size_t capacity;
};

static int token_index_push(struct token_index *ix, const char *tok, size_t len)
{
    if (ix->count == ix->capacity) {
        size_t cap = ix->capacity ? ix->capacity * 2 : 16;
        const char **t = sc_realloc(parser_heap, ix->tokens, cap * sizeof *t);
        if (t == NULL)
            return -1;
        ix->tokens = t;
        size_t *l = sc_realloc(parser_heap, ix->lengths, cap * sizeof *l);
        if (l == NULL)
            return -1;
        ix->lengths = l;
        ix->capacity = cap;
    }
    ix->tokens[ix->count] = tok;
    ix->lengths[ix->count] = len;
    ix->count++;
    return 0;
}

/* Handles one request: everything derived from it lives in a heap of its
 * own that is destroyed, not freed piece by piece, when the reply is out. */
static void handle_request(struct request *req, struct token_index *ix)
{
    uint32_t id = req->id;
    char expected[MAX_REQUEST_BYTES];
    size_t expected_len = render_request(id, expected);
    if (req->len != expected_len || memcmp(req->text, expected, expected_len) != 0)
        check_failed("request buffer corrupted in transit", id);

    sc_heap_config_t cfg = {.name = "request"};
    sc_heap_t *rh = sc_heap_create(&cfg);
    if (rh == NULL) {
        check_failed("request heap creation failed", id);
        sc_free(net_heap, req);
        return;
    }

    /* Parse: copy each token into the request heap. */
    ix->count = 0;
    size_t i = 0;
    while (i < req->len) {
        while (i < req->len && is_separator(req->text[i]))
            i++;
        size_t start = i;
        while (i < req->len && !is_separator(req->text[i]))
            i++;
        if (i == start)
            continue;
        size_t n = i - start;
        char *tok = sc_alloc(rh, n + 1);
        if (tok == NULL || token_index_push(ix, tok, n) != 0) {
            check_failed("token allocation failed", id);
            break;
        }
        memcpy(tok, req->text + start, n);
        tok[n] = '\0';
    }
    /* The request buffer is no longer needed: free it here, in a different
     * thread from the listener that allocated it. */
    sc_free(net_heap, req);

    /* The request heap holds exactly the tokens, and nothing was freed. */
    sc_heap_stats_t rs;
    sc_heap_get_stats(rh, &rs);
    if (rs.live_blocks != ix->count)
        check_failed("request heap live block count differs from tokens", id);

    uint64_t hash = HASH_SEED;
    for (size_t t = 0; t < ix->count; t++)
        hash = hash_bytes(hash, ix->tokens[t], ix->lengths[t]);

    uint32_t key = cache_key_of(id);
    if (is_post(id))
        cache_invalidate(key);
    else
        cache_get(key, id);

    size_t body_len = reply_body_length(hash);
    struct reply *rep = sc_alloc(net_heap, sizeof *rep + body_len);
    if (rep == NULL) {
        check_failed("reply allocation failed", id);
    } else {
        rep->id = id;
        rep->tokens = (uint32_t)ix->count;
        rep->hash = hash;
        rep->body_len = (uint32_t)body_len;
        for (size_t b = 0; b < body_len; b++)
            rep->body[b] = reply_body_byte(hash, b);
    }

    /* Every token goes at once; ix->tokens now dangles and is reset on the
     * next request. */
    sc_heap_destroy(rh);
    atomic_fetch_add_explicit(&request_heaps_destroyed, 1, memory_order_relaxed);

    if (rep != NULL)
        queue_push(&reply_queue, rep);
    else
        queue_push(&reply_queue, NULL); /* main still counts one reply */
}

static void *worker_main(void *arg)
{
    (void)arg;
    struct token_index ix = {0};
    for (;;) {
        struct request *req = queue_pop(&work_queue);
        if (req == NULL)
            break;
        handle_request(req, &ix);
    }
    sc_free(parser_heap, ix.tokens);
    sc_free(parser_heap, ix.lengths);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Main: start, collect and check replies, report, tear down                */
/* ------------------------------------------------------------------------ */

static sc_heap_t *create_named_heap(const char *name)
{
    sc_heap_config_t cfg = {.name = name};
    sc_heap_t *h = sc_heap_create(&cfg);
    if (h == NULL) {
        perror("sc_heap_create");
        exit(1);
    }
    return h;
}

static int check_reply(const struct reply *rep)
{
    char text[MAX_REQUEST_BYTES];
    size_t len = render_request(rep->id, text);
    unsigned tokens;
    uint64_t hash = hash_request_text(text, len, &tokens);
    if (rep->tokens != tokens || rep->hash != hash ||
        rep->body_len != reply_body_length(hash))
        return 0;
    for (size_t b = 0; b < rep->body_len; b++)
        if (rep->body[b] != reply_body_byte(hash, b))
            return 0;
    return 1;
}

static void print_heap_row(sc_heap_t *h)
{
    sc_heap_stats_t s;
    sc_heap_get_stats(h, &s);
    printf("  %-8s %11zu %12zu %12zu %12zu\n", sc_heap_name(h), s.live_blocks,
           s.live_bytes, s.committed_bytes, s.resident_bytes);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int main(void)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    net_heap = create_named_heap("net");
    parser_heap = create_named_heap("parser");
    cache_heap = create_named_heap("cache");
    queue_init(&work_queue);
    queue_init(&reply_queue);

    pthread_t listener, workers[NUM_WORKERS];
    if (pthread_create(&listener, NULL, listener_main, NULL) != 0) {
        fprintf(stderr, "server_demo: cannot start the listener\n");
        return 1;
    }
    for (int i = 0; i < NUM_WORKERS; i++) {
        if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0) {
            fprintf(stderr, "server_demo: cannot start worker %d\n", i);
            return 1;
        }
    }

    /* Main plays the sender: it frees every reply a worker allocated. */
    unsigned verified = 0;
    uint64_t bytes_sent = 0;
    for (unsigned r = 0; r < NUM_REQUESTS; r++) {
        struct reply *rep = queue_pop(&reply_queue);
        if (rep == NULL)
            continue; /* already reported by the worker */
        if (check_reply(rep))
            verified++;
        else
            check_failed("reply does not match its request", rep->id);
        bytes_sent += rep->body_len;
        sc_free(net_heap, rep);
    }

    pthread_join(listener, NULL);
    for (int i = 0; i < NUM_WORKERS; i++)
        pthread_join(workers[i], NULL);
    queue_fini(&work_queue);
    queue_fini(&reply_queue);

    /* Once every thread is joined the statistics are exact: every request
     * and reply has been freed, every worker freed its index, and the cache
     * holds exactly its entries. */
    sc_heap_stats_t s;
    sc_heap_get_stats(net_heap, &s);
    if (s.live_blocks != 0 || s.live_bytes != 0)
        check_failed("net heap still holds blocks after the run", 0);
    sc_heap_get_stats(parser_heap, &s);
    if (s.live_blocks != 0)
        check_failed("parser heap still holds blocks after the run", 0);
    sc_heap_get_stats(cache_heap, &s);
    if (s.live_blocks != cache.entries)
        check_failed("cache heap block count differs from cache entries", 0);

    printf("scalloc server demo: %d workers, %d requests\n", NUM_WORKERS, NUM_REQUESTS);
    printf("  replies verified   %u of %d (%llu body bytes)\n", verified,
           NUM_REQUESTS, (unsigned long long)bytes_sent);
    printf("  request heaps      %u created and destroyed\n",
           atomic_load(&request_heaps_destroyed));
    printf("  cache              %u hits, %u misses, %u invalidations, %u entries\n",
           cache.hits, cache.misses, cache.invalidations, cache.entries);
    printf("\n  %-8s %11s %12s %12s %12s\n", "heap", "live blocks", "live bytes",
           "committed", "resident");
    print_heap_row(net_heap);
    print_heap_row(parser_heap);
    print_heap_row(cache_heap);
    printf("\nsc_heap_print_stats(cache):\n");
    sc_heap_print_stats(cache_heap, stdout, SC_STATS_TEXT);

    /* The cache still holds its entries: destroying the heap frees them all
     * at once, with no walk over the table. */
    sc_heap_destroy(cache_heap);
    sc_heap_destroy(parser_heap);
    sc_heap_destroy(net_heap);

    unsigned failed = atomic_load(&failures);
    printf("\n%s in %.2f s\n", failed == 0 ? "OK" : "FAILED", seconds_since(&t0));
    if (failed != 0) {
        fprintf(stderr, "server_demo: %u checks failed\n", failed);
        return 1;
    }
    return 0;
}
