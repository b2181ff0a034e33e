/*
 * fragmentation: fill the heap with small blocks (64 B), free 90% of them
 * at random, allocate blocks of another size class (512 B, half the freed
 * bytes), then trim. The survivors are spread over nearly every page, so
 * an allocator can only give back what it can reuse across classes or what
 * lies on pages with no survivor at all. Finally everything is freed and
 * trimmed again. The main thread reads RSS (VmRSS) between phases while the
 * workers wait at a barrier, and reports it against the live bytes.
 * One op = one allocation or one free.
 */
#include "bench_alloc.h"
#include "bench_util.h"

#include <pthread.h>
#include <stdio.h>

#define FRAG_SMALL 64
#define FRAG_OTHER 512
#define FRAG_PHASES 5

static const char *const frag_phase_name[FRAG_PHASES] = {"fill", "free90", "other", "trim",
                                                         "end"};

typedef struct frag_shared {
    bench_heap *heap;
    pthread_barrier_t done;  /* workers finished a phase */
    pthread_barrier_t go_on; /* main has measured; next phase */
} frag_shared;

typedef struct frag_worker {
    frag_shared *sh;
    uint64_t small_count;
    uint64_t seed;
    size_t live[FRAG_PHASES]; /* this thread's live bytes after each phase */
    uint64_t done;
    uint64_t failures;
} frag_worker;

static void frag_phase_end(frag_shared *sh)
{
    pthread_barrier_wait(&sh->done);
    pthread_barrier_wait(&sh->go_on);
}

static void *frag_thread(void *arg)
{
    frag_worker *w = arg;
    frag_shared *sh = w->sh;
    bench_thread *t = bench_thread_attach(sh->heap);
    uint64_t n = w->small_count;
    uint64_t n_other = (n - n / 10) * FRAG_SMALL / 2 / FRAG_OTHER;
    size_t small_bytes = n * sizeof(void *), other_bytes = (n_other + 1) * sizeof(void *);
    unsigned char **small = bench_harness_alloc(small_bytes);
    unsigned char **other = bench_harness_alloc(other_bytes);
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    int ok = t != NULL && small != NULL && other != NULL;
    size_t live = 0;
    if (!ok)
        w->failures++;

    /* fill */
    for (uint64_t i = 0; ok && i < n; i++) {
        small[i] = bench_malloc(t, FRAG_SMALL);
        if (small[i] == NULL) {
            w->failures++;
            continue;
        }
        small[i][0] = (unsigned char)i;
        live += FRAG_SMALL;
        w->done++;
    }
    w->live[0] = live;
    frag_phase_end(sh);

    /* free90: a random 90%, chosen by a partial shuffle */
    uint64_t keep = n / 10;
    for (uint64_t i = 0; ok && i < n - keep; i++) {
        uint64_t j = i + bench_rng_next(&rng) % (n - i);
        unsigned char *victim = small[j];
        small[j] = small[i];
        small[i] = NULL;
        if (victim != NULL) {
            bench_free(t, victim);
            live -= FRAG_SMALL;
            w->done++;
        }
    }
    w->live[1] = live;
    frag_phase_end(sh);

    /* other: a different size class, half the freed bytes */
    for (uint64_t i = 0; ok && i < n_other; i++) {
        other[i] = bench_malloc(t, FRAG_OTHER);
        if (other[i] == NULL) {
            w->failures++;
            continue;
        }
        other[i][FRAG_OTHER - 1] = (unsigned char)i;
        live += FRAG_OTHER;
        w->done++;
    }
    w->live[2] = live;
    frag_phase_end(sh);

    /* trim: the thread's share; main trims the heap before measuring */
    if (ok)
        bench_thread_trim(t);
    w->live[3] = live;
    frag_phase_end(sh);

    /* end: free everything, trim again */
    for (uint64_t i = n - keep; ok && i < n; i++) {
        if (small[i] != NULL) {
            bench_free(t, small[i]);
            live -= FRAG_SMALL;
            w->done++;
        }
    }
    for (uint64_t i = 0; ok && i < n_other; i++) {
        if (other[i] != NULL) {
            if (other[i][FRAG_OTHER - 1] != (unsigned char)i)
                w->failures++;
            bench_free(t, other[i]);
            live -= FRAG_OTHER;
            w->done++;
        }
    }
    if (ok)
        bench_thread_trim(t);
    w->live[4] = live;
    frag_phase_end(sh);

    bench_harness_free(small, small_bytes);
    bench_harness_free(other, other_bytes);
    if (t != NULL)
        bench_thread_detach(t, 0);
    return NULL;
}

void wl_frag(const bench_params *p, bench_result *r)
{
    uint64_t total_small = p->scale == BENCH_FULL ? 512 * 1024 : 32 * 1024;
    unsigned n = p->threads;
    frag_shared sh;
    frag_worker w[256] = {{0}};
    pthread_t ids[256];
    sh.heap = bench_heap_create();
    if (sh.heap == NULL) {
        r->failures++;
        return;
    }
    pthread_barrier_init(&sh.done, NULL, n + 1);
    pthread_barrier_init(&sh.go_on, NULL, n + 1);
    uint64_t expected = 0;
    for (unsigned i = 0; i < n; i++) {
        w[i].sh = &sh;
        w[i].small_count = bench_share(total_small, n, i);
        w[i].seed = p->seed * 1000 + i;
        uint64_t s = w[i].small_count;
        uint64_t other = (s - s / 10) * FRAG_SMALL / 2 / FRAG_OTHER;
        expected += 2 * s + 2 * other; /* each block allocated and freed */
    }
    bench_extra(r, "rss_base_kb", (double)bench_status_kib("VmRSS"));
    if (bench_spawn(n, ids, frag_thread, w, sizeof w[0]) != 0) {
        /* Cannot happen at these thread counts; a stuck barrier would hang. */
        r->failures++;
        pthread_barrier_destroy(&sh.done);
        pthread_barrier_destroy(&sh.go_on);
        return;
    }
    double work = 0, trim = 0;
    double t0 = bench_now();
    for (int phase = 0; phase < FRAG_PHASES; phase++) {
        pthread_barrier_wait(&sh.done);
        double t1 = bench_now();
        if (phase == 3)
            trim += t1 - t0; /* the threads' own trims */
        else
            work += t1 - t0;
        if (phase == 3 || phase == 4)
            bench_heap_trim(sh.heap);
        double t2 = bench_now();
        trim += t2 - t1;
        size_t live = 0;
        for (unsigned i = 0; i < n; i++)
            live += w[i].live[phase];
        char key[32];
        snprintf(key, sizeof key, "rss_%s_kb", frag_phase_name[phase]);
        bench_extra(r, key, (double)bench_status_kib("VmRSS"));
        snprintf(key, sizeof key, "live_%s_kb", frag_phase_name[phase]);
        bench_extra(r, key, (double)live / 1024.0);
        if (live > r->live_peak)
            r->live_peak = live;
        t0 = bench_now();
        pthread_barrier_wait(&sh.go_on);
    }
    bench_join(n, ids);
    r->seconds = work;
    bench_extra(r, "trim_s", trim);
    for (unsigned i = 0; i < n; i++) {
        r->ops += w[i].done;
        r->failures += w[i].failures;
    }
    r->expected_ops = expected;
    pthread_barrier_destroy(&sh.done);
    pthread_barrier_destroy(&sh.go_on);
    bench_heap_destroy(sh.heap);
}
