/*
 * Harness shared by the workloads: parameters, results, timing, RSS,
 * random numbers and harness memory. Nothing here goes through the
 * allocator under test: harness arrays come straight from mmap so that they
 * cost the same in every driver binary and never disturb the allocator's
 * state.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How big a run is: the full suite or the quick sanity pass. */
typedef enum bench_scale { BENCH_QUICK = 0, BENCH_FULL = 1 } bench_scale;

typedef struct bench_params {
    unsigned threads;
    bench_scale scale;
    uint64_t seed;
} bench_params;

#define BENCH_MAX_EXTRA 16

typedef struct bench_result {
    uint64_t ops;          /* operations done; each workload defines "op" */
    uint64_t expected_ops; /* what the parameters ask for; must equal ops */
    double seconds;        /* timed part only */
    size_t live_peak;      /* peak bytes requested and not yet freed; 0 = n/a */
    uint64_t failures;     /* verification failures (NULL, bad contents...) */
    int unsupported;       /* the allocator cannot run this workload */
    int nextra;
    struct {
        char key[32];
        double value;
    } extra[BENCH_MAX_EXTRA];
} bench_result;

typedef void bench_workload_fn(const bench_params *p, bench_result *r);

typedef struct bench_workload {
    const char *name;
    const char *what; /* one line for --help and reports */
    bench_workload_fn *run;
} bench_workload;

/* The workloads, each in its own wl_*.c. */
bench_workload_fn wl_threadtest, wl_larson, wl_prodcons, wl_cache_thrash, wl_cache_scratch,
    wl_mixed, wl_churn, wl_frag, wl_destroy, wl_free_each;

/* Reads WORKLOAD THREADS [quick|full] [SEED] (argv[1..]) against the
 * `count` workloads: *wl and *p on success, false on any bad argument (the
 * caller prints its usage). */
bool bench_parse_args(int argc, char **argv, const bench_workload *workloads, size_t count,
                      unsigned max_threads, const bench_workload **wl, bench_params *p);

void bench_extra(bench_result *r, const char *key, double value);

double bench_now(void);

/* Fields of /proc/self/status in KiB ("VmHWM", "VmRSS"); 0 when unreadable. */
long bench_status_kib(const char *field);

/* Prints the "result" line of a run of workload wl under allocator
 * `allocator` (its key=value fields, the workload's extras last), given
 * the process's VmRSS before the run and its VmHWM after. Returns the exit
 * status: 0, or 1 (with a line on stderr) when the run failed or did not
 * do the operations it should have. */
int bench_print_result(const char *allocator, const bench_workload *wl, const bench_params *p,
                       const bench_result *r, long base_kib, long hwm_kib);

/* Zeroed harness memory from mmap, and its release. */
void *bench_harness_alloc(size_t bytes);
void bench_harness_free(void *p, size_t bytes);

/* xoshiro-style generators are overkill here: xorshift64* is fast, good
 * enough for picking slots and sizes, and reproducible from a seed. */
typedef struct bench_rng {
    uint64_t s;
} bench_rng;

static inline void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    /* splitmix64 step so that nearby seeds give unrelated streams */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    r->s = (z ^ (z >> 31)) | 1;
}

static inline uint64_t bench_rng_next(bench_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

/* Uniform in [lo, hi]. The modulo bias is irrelevant at these ranges. */
static inline size_t bench_rng_range(bench_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(bench_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* Starts n threads running fn(arg + i * stride) and joins them all.
 * Returns 0, or -1 if a thread could not be created (the ones that were
 * are still joined). */
int bench_run_threads(unsigned n, void *(*fn)(void *), void *args, size_t stride);

/* Spawning without joining, for workloads whose main thread takes part. */
int bench_spawn(unsigned n, pthread_t *ids, void *(*fn)(void *), void *args, size_t stride);
void bench_join(unsigned n, pthread_t *ids);

/* Splits total work over n workers: worker i's share. */
static inline uint64_t bench_share(uint64_t total, unsigned n, unsigned i)
{
    return total / n + (i < total % n ? 1 : 0);
}

/* A size histogram: buckets [lo, hi] with weights in tenths of a percent
 * (summing to 1000). */
typedef struct bench_size_bucket {
    size_t lo, hi;
    unsigned weight;
} bench_size_bucket;

/* A size drawn from the histogram's `count` buckets. */
size_t bench_hist_size(bench_rng *rng, const bench_size_bucket *hist, size_t count);

/* Writes `mark` into every page of [p, p + n) and its last byte, and
 * checks that they still hold it (1) or not (0): touching every page makes
 * a workload's RSS real, checking it catches a block handed out twice. */
void bench_touch_pages(unsigned char *p, size_t n, unsigned char mark);
int bench_check_pages(const unsigned char *p, size_t n, unsigned char mark);

/* The workloads every driver offers, as bench_workload initialisers. */
#define BENCH_COMMON_WORKLOADS                                                                   \
    {"threadtest", "batches of 64 B allocated and freed by each thread", wl_threadtest},        \
    {"larson", "server simulation, random slots, handed to a new thread each round",           \
     wl_larson},                                                                                \
    {"prodcons", "producers allocate, consumers free: every free remote", wl_prodcons},         \
    {"cache-thrash", "active false sharing: 8 B objects written hard", wl_cache_thrash},        \
    {"cache-scratch", "passive false sharing: remote-freed neighbours reused",                  \
     wl_cache_scratch},                                                                         \
    {"mixed", "8 B..160 KiB size histogram, ring of live objects per thread", wl_mixed},        \
    {"churn", "threads die, objects outlive them, contents verified", wl_churn},                \
    {"frag", "fill 64 B, free 90% at random, allocate 512 B, trim", wl_frag},                   \
    {"destroy", "N blocks from T threads, released by destroying the heap", wl_destroy},        \
    {"free-each", "N blocks from T threads, released by freeing each", wl_free_each}

#endif /* BENCH_UTIL_H */
