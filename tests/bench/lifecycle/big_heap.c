/*
 * big_heap: one heap, default settings, holding N GiB of live 16-byte
 * objects (issue 4 §1: "a single heap is not capped by a fixed region: one
 * heap can keep growing to the machine's memory (a benchmark shows one heap
 * holding 16 GiB of live 16-byte objects)").
 *
 * T threads (default 1) allocate N GiB / 16 objects from one heap created
 * with sc_heap_create(NULL), writing into each so that it is resident. A
 * row is printed at every GiB: time, the heap's committed, resident and
 * reserved bytes, and the process's RSS. Then sc_heap_visit counts the
 * objects and checks what each holds, and sc_heap_destroy gives it all
 * back (timed, RSS after).
 *
 *   big_heap [--gib N] [--threads T] [--force]
 *
 * Refuses to start when /proc/meminfo's MemAvailable cannot hold N GiB plus
 * a margin, unless --force is given (the kernel would kill the run, or
 * worse, something else).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <scalloc/scalloc.h>
#include <stdatomic.h>

#include "lifecycle_bench.h"

enum { MAX_THREADS = 64, OBJECT = 16 };

typedef struct shared_s {
    sc_heap_t *heap;
    size_t total;            /* objects to allocate in all */
    unsigned threads;
    _Atomic size_t allocated; /* objects allocated so far, all threads */
    _Atomic int failed;
    int failed_errno;
} shared_t;

static shared_t sh;

typedef struct worker_s {
    unsigned index;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    size_t begin = sh.total / sh.threads * w->index;
    size_t end = w->index + 1 == sh.threads ? sh.total : sh.total / sh.threads * (w->index + 1);
    sc_thread_t *t = sc_heap_thread(sh.heap);
    if (t == NULL) {
        sh.failed_errno = errno;
        atomic_store(&sh.failed, 1);
        return NULL;
    }
    for (size_t i = begin; i < end; i++) {
        uint64_t *p = sc_thread_alloc(t, OBJECT);
        if (p == NULL) {
            sh.failed_errno = errno;
            atomic_store(&sh.failed, 1);
            return NULL;
        }
        p[0] = i;
        p[1] = ~(uint64_t)i;
        if ((i & 0xffff) == 0) {
            atomic_fetch_add_explicit(&sh.allocated, 0x10000, memory_order_relaxed);
            if (atomic_load_explicit(&sh.failed, memory_order_relaxed))
                return NULL;
        }
    }
    return NULL;
}

typedef struct visit_s {
    size_t count;
    size_t bad;
    size_t total;
} visit_t;

static int visit_one(void *block, size_t usable, void *arg)
{
    visit_t *v = arg;
    const uint64_t *p = block;
    v->count++;
    if (usable < OBJECT || p[0] >= v->total || p[1] != ~p[0])
        v->bad++;
    return 0;
}

static void print_row(const char *when, double seconds)
{
    sc_heap_stats_t st;
    sc_heap_get_stats(sh.heap, &st);
    lb_proc_mem_t m = lb_proc_mem();
    printf("| %s | %.2f | %.1f | %.2f | %.2f | %.2f | %.0f | %.2f |\n", when,
           (double)st.live_bytes / (double)LB_GiB, seconds,
           (double)st.committed_bytes / (double)LB_GiB, (double)st.resident_bytes / (double)LB_GiB,
           (double)m.rss / (double)LB_GiB, (double)st.reserved_bytes / (double)LB_GiB,
           st.live_bytes ? (double)st.resident_bytes / (double)st.live_bytes : 0.0);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    double gib = 16;
    unsigned threads = 1;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (lb_option(argc, argv, &i, "--gib", &v)) {
            gib = strtod(v, NULL);
        } else if (lb_option(argc, argv, &i, "--threads", &v)) {
            threads = (unsigned)lb_parse_count("--threads", v);
        } else if (strcmp(argv[i], "--force") == 0) {
            force = 1;
        } else {
            fprintf(stderr, "usage: %s [--gib N] [--threads T] [--force]\n", argv[0]);
            return 2;
        }
    }
    if (gib <= 0 || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "need --gib > 0 and 1..%d threads\n", MAX_THREADS);
        return 2;
    }
    size_t bytes = (size_t)(gib * (double)LB_GiB);
    /* 16-byte objects in small-class spans cost a little more than their
     * bytes (span headers, page tables): ask for 8% and 512 MiB more. */
    size_t need = bytes + bytes / 12 + 512 * LB_MiB;
    size_t avail = lb_mem_available();
    if (!force && avail && need > avail) {
        fprintf(stderr,
                "big_heap: %.1f GiB of objects needs about %.1f GiB, and MemAvailable is "
                "%.1f GiB; use a smaller --gib (or --force)\n",
                gib, (double)need / (double)LB_GiB, (double)avail / (double)LB_GiB);
        return 3;
    }

    sh.total = bytes / OBJECT;
    sh.threads = threads;
    lb_proc_mem_t m0 = lb_proc_mem();
    sh.heap = sc_heap_create(NULL); /* no configuration at all */
    if (sh.heap == NULL) {
        fprintf(stderr, "sc_heap_create failed: errno %d\n", errno);
        return 1;
    }
    printf("big_heap: %.2f GiB of 16-byte objects (%zu objects) in one default heap, %u "
           "thread%s; MemAvailable %.1f GiB\n\n",
           gib, sh.total, threads, threads == 1 ? "" : "s", (double)avail / (double)LB_GiB);
    printf("| point | live GiB | time s | committed GiB | heap resident GiB | process RSS GiB "
           "| reserved GiB | resident / live |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");

    pthread_t tids[MAX_THREADS];
    worker_t args[MAX_THREADS];
    double t0 = lb_now();
    for (unsigned i = 0; i < threads; i++) {
        args[i].index = i;
        if (pthread_create(&tids[i], NULL, worker_main, &args[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    /* Progress from the main thread: a row per GiB, read without stopping
     * the workers (a snapshot, exact once they are done). Polling the
     * counter is reporting only; completion is decided by the joins. */
    size_t per_gib = LB_GiB / OBJECT, next = per_gib;
    while (next < sh.total && !atomic_load(&sh.failed)) {
        if (atomic_load_explicit(&sh.allocated, memory_order_relaxed) >= next) {
            char when[32];
            snprintf(when, sizeof when, "%zu GiB allocated", next / per_gib);
            print_row(when, lb_now() - t0);
            next += per_gib;
        } else {
            struct timespec nap = {0, 20 * 1000 * 1000};
            nanosleep(&nap, NULL);
        }
    }
    for (unsigned i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    double alloc_s = lb_now() - t0;
    print_row(atomic_load(&sh.failed) ? "**allocation failed**" : "all allocated", alloc_s);
    if (atomic_load(&sh.failed)) {
        sc_heap_stats_t st;
        sc_heap_get_stats(sh.heap, &st);
        printf("\nallocation failed with errno %d (%s) after %.2f GiB live\n", sh.failed_errno,
               strerror(sh.failed_errno), (double)st.live_bytes / (double)LB_GiB);
    }

    visit_t v = {0, 0, sh.total};
    double tv = lb_now();
    sc_heap_visit(sh.heap, visit_one, &v);
    double visit_s = lb_now() - tv;
    sc_heap_stats_t st;
    sc_heap_get_stats(sh.heap, &st);
    lb_proc_mem_t full = lb_proc_mem();
    double td = lb_now();
    sc_heap_destroy(sh.heap);
    double destroy_s = lb_now() - td;
    lb_proc_mem_t after = lb_proc_mem();

    printf("\n| figure | value |\n|---|---:|\n");
    printf("| objects live (stats) | %zu |\n", st.live_blocks);
    printf("| objects visited / wrong contents | %zu / %zu |\n", v.count, v.bad);
    printf("| allocation time | %.1f s (%.1f ns per object) |\n", alloc_s,
           alloc_s * 1e9 / (double)(st.live_blocks ? st.live_blocks : 1));
    printf("| visit time | %.1f s |\n", visit_s);
    printf("| committed / resident | %.2f / %.2f GiB |\n",
           (double)st.committed_bytes / (double)LB_GiB, (double)st.resident_bytes / (double)LB_GiB);
    printf("| process RSS before / full / after destroy | %.0f / %.0f / %.0f MiB |\n",
           lb_mib(m0.rss), lb_mib(full.rss), lb_mib(after.rss));
    printf("| process peak RSS (VmHWM) | %.2f GiB |\n", (double)after.hwm / (double)LB_GiB);
    printf("| sc_heap_destroy | %.3f s |\n", destroy_s);
    int ok = !atomic_load(&sh.failed) && st.live_blocks == sh.total && v.count == sh.total &&
             v.bad == 0;
    printf("\n%s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
