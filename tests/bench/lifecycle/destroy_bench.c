/*
 * destroy_bench: the cost of throwing a heap away (issue 4 §2:
 * "sc_heap_destroy costs the same whatever the number of live blocks:
 * measure destroy of a heap holding 1 million live objects allocated by 8
 * threads, against freeing them one by one and against mi_heap_destroy").
 *
 * 8 threads allocate 1 million objects of mixed small sizes (16..1024
 * bytes, mostly small; --size fixes one size) into one heap, writing into
 * each, and exit (or, with --alive, wait until the teardown is over, which
 * is issue 13's case: frontends still alive). Then, timed:
 *   destroy     sc_heap_destroy with every object live;
 *   free each   sc_free of every object from the main thread (in
 *               allocation order), then sc_heap_destroy of the empty heap.
 * Right after each destroy, in the same process, the kernel's floor: one
 * munmap of a mapping as big as the heap's RSS was (RSS full - RSS before),
 * every page written; the row shows it and the median of destroy / munmap
 * per run (issue 13: at most 1.25x).
 * Built as destroy_bench_mimalloc (DESTROY_BENCH_MIMALLOC), the same with
 * mimalloc, whose heaps belong to one thread each: every thread fills a
 * heap of its own from mi_heap_new and stays alive, then
 *   mi_heap_destroy  each thread destroys its heap (all at once; the time
 *                    is from the start signal until the last one is done);
 *   mi_free each     the main thread frees every object with mi_free.
 * Each measurement runs in a fresh child process, 5 times; the table shows
 * the median, and the process's RSS before the heap was created, when full,
 * and after the teardown.
 *
 *   destroy_bench [--objects N] [--threads T] [--reps R] [--size BYTES]
 *                 [--alive] [--no-mimalloc]
 *
 * Issue 13's figure: destroy_bench --size 64 --alive.
 *
 * destroy_bench runs destroy_bench_mimalloc (found next to itself) for the
 * mimalloc rows unless --no-mimalloc is given.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef DESTROY_BENCH_MIMALLOC
#include <mimalloc.h>
#else
#include <scalloc/scalloc.h>
#endif

#include "lifecycle_bench.h"

enum { MAX_THREADS = 64, MAX_REPS = 101 };

typedef struct options_s {
    size_t objects;
    unsigned threads;
    unsigned reps;
    size_t size;     /* every object this size; 0: mixed 16..1024 */
    int alive;       /* the threads stay alive through the teardown */
    int rows_only;
    int no_mimalloc;
} options_t;

typedef struct sample_s {
    int ok;
    double seconds;       /* the timed teardown */
    double extra_seconds; /* free each: the destroy of the empty heap */
    double munmap_seconds; /* destroy: one munmap of as many touched bytes */
    size_t rss_before, rss_full, rss_after;
} sample_t;

static options_t opt;
/* Every object's address, filled by the threads (each its own range). The
 * array is mapped and touched before the baseline RSS is taken. */
static void **objects;

static size_t object_size(lb_rng_t *r)
{
    if (opt.size)
        return opt.size;
    unsigned pick = (unsigned)(lb_rng_next(r) % 100);
    if (pick < 70)
        return lb_rng_range(r, 16, 128);
    if (pick < 95)
        return lb_rng_range(r, 129, 512);
    return lb_rng_range(r, 513, 1024);
}

static size_t range_begin(unsigned t)
{
    return opt.objects / opt.threads * t;
}

static size_t range_end(unsigned t)
{
    return t + 1 == opt.threads ? opt.objects : opt.objects / opt.threads * (t + 1);
}

/* What a warm-up thread touches: a block of a heap made for the warm-up
 * (scalloc), or nothing. */
static void *warm_up_heap;
static void *warm_up_create(void);
static void warm_up_touch(void *heap);
static void warm_up_destroy(void *heap);

static void *idle_main(void *arg)
{
    warm_up_touch(warm_up_heap);
    return arg;
}

/* Starts and joins as many threads as the measurement will, before the
 * baseline: glibc keeps the stacks of joined threads for reuse, and their
 * pages are the process's, not the heap's. For scalloc they also use a
 * warm-up heap, destroyed before the baseline, so that the library's
 * one-time start-up (the address map, the first metadata chunk with thread
 * states, frontends and heap handles) is in the baseline too: RSS after
 * the teardown then shows what the measured heap left behind. */
static void warm_up_threads(void)
{
    pthread_t tids[MAX_THREADS];
    warm_up_heap = warm_up_create();
    for (unsigned t = 0; t < opt.threads; t++)
        if (pthread_create(&tids[t], NULL, idle_main, NULL) != 0)
            return;
    for (unsigned t = 0; t < opt.threads; t++)
        pthread_join(tids[t], NULL);
    warm_up_destroy(warm_up_heap);
}

/* ------------------------------------------------------------------------ */
/* scalloc                                                                  */
/* ------------------------------------------------------------------------ */
#ifndef DESTROY_BENCH_MIMALLOC

/* The kernel's floor for giving `bytes` of touched memory back: one munmap
 * of a mapping of that size with every page written, timed. */
static double munmap_floor(size_t bytes)
{
    size_t page = 4096;
    bytes = (bytes + page - 1) & ~(page - 1);
    if (bytes == 0)
        return 0;
    unsigned char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    for (size_t i = 0; i < bytes; i += page)
        p[i] = 1;
    double t0 = lb_now();
    munmap(p, bytes);
    return lb_now() - t0;
}

static void *warm_up_create(void)
{
    return sc_heap_create(NULL);
}

static void warm_up_touch(void *heap)
{
    if (heap)
        sc_free(heap, sc_alloc(heap, 64));
}

static void warm_up_destroy(void *heap)
{
    if (heap)
        sc_heap_destroy(heap);
}

/* --alive: the filling threads wait here until the teardown is over. */
static pthread_barrier_t sc_filled, sc_torn_down;

typedef struct fill_arg_s {
    sc_heap_t *heap;
    unsigned index;
    int failed;
} fill_arg_t;

static void *fill_main(void *arg)
{
    fill_arg_t *a = arg;
    lb_rng_t rng = {a->index + 1};
    for (size_t i = range_begin(a->index); i < range_end(a->index); i++) {
        size_t n = object_size(&rng);
        unsigned char *p = sc_alloc(a->heap, n);
        if (p == NULL) {
            a->failed = 1;
            return NULL;
        }
        memset(p, (int)(i & 0xff), n < 16 ? n : 16);
        objects[i] = p;
    }
    if (opt.alive) {
        pthread_barrier_wait(&sc_filled);
        pthread_barrier_wait(&sc_torn_down);
    }
    return NULL;
}

static pthread_t fill_tids[MAX_THREADS];
static fill_arg_t fill_args[MAX_THREADS];

static sc_heap_t *fill_heap(void)
{
    sc_heap_config_t cfg = {.name = "destroy_bench"};
    sc_heap_t *h = sc_heap_create(&cfg);
    if (h == NULL)
        return NULL;
    if (opt.alive) {
        pthread_barrier_init(&sc_filled, NULL, opt.threads + 1);
        pthread_barrier_init(&sc_torn_down, NULL, opt.threads + 1);
    }
    for (unsigned t = 0; t < opt.threads; t++) {
        fill_args[t] = (fill_arg_t){h, t, 0};
        if (pthread_create(&fill_tids[t], NULL, fill_main, &fill_args[t]) != 0)
            return NULL;
    }
    int failed = 0;
    if (opt.alive) {
        pthread_barrier_wait(&sc_filled);
    } else {
        for (unsigned t = 0; t < opt.threads; t++)
            pthread_join(fill_tids[t], NULL);
    }
    for (unsigned t = 0; t < opt.threads; t++)
        failed |= fill_args[t].failed;
    if (failed) {
        fprintf(stderr, "allocation failed while filling the heap\n");
        return NULL;
    }
    sc_heap_stats_t st;
    sc_heap_get_stats(h, &st);
    if (st.live_blocks != opt.objects) {
        fprintf(stderr, "heap holds %zu live blocks, expected %zu\n", st.live_blocks,
                opt.objects);
        return NULL;
    }
    return h;
}

static sample_t measure(int variant)
{
    sample_t s;
    memset(&s, 0, sizeof s);
    s.rss_before = lb_proc_mem().rss;
    sc_heap_t *h = fill_heap();
    if (h == NULL)
        return s;
    s.rss_full = lb_proc_mem().rss;
    double t0 = lb_now();
    if (variant == 0) {
        sc_heap_destroy(h);
        s.seconds = lb_now() - t0;
    } else {
        for (size_t i = 0; i < opt.objects; i++)
            sc_free(h, objects[i]);
        s.seconds = lb_now() - t0;
        double t1 = lb_now();
        sc_heap_destroy(h);
        s.extra_seconds = lb_now() - t1;
    }
    if (opt.alive) {
        pthread_barrier_wait(&sc_torn_down);
        for (unsigned t = 0; t < opt.threads; t++)
            pthread_join(fill_tids[t], NULL);
        pthread_barrier_destroy(&sc_filled);
        pthread_barrier_destroy(&sc_torn_down);
    }
    s.rss_after = lb_proc_mem().rss;
    if (variant == 0 && s.rss_full > s.rss_before)
        s.munmap_seconds = munmap_floor(s.rss_full - s.rss_before);
    s.ok = 1;
    return s;
}

static const char *allocator_name = "scalloc";
static const char *variant_names[2] = {"sc_heap_destroy", "sc_free each, then destroy"};

/* ------------------------------------------------------------------------ */
/* mimalloc                                                                 */
/* ------------------------------------------------------------------------ */
#else

static void *warm_up_create(void)
{
    return NULL;
}

static void warm_up_touch(void *heap)
{
    (void)heap;
}

static void warm_up_destroy(void *heap)
{
    (void)heap;
}

static pthread_barrier_t filled, go, done;
static int mi_variant;
static double thread_seconds[MAX_THREADS];
static int mi_failed;

static void *mi_thread_main(void *arg)
{
    unsigned index = (unsigned)(uintptr_t)arg;
    mi_heap_t *heap = mi_heap_new();
    lb_rng_t rng = {index + 1};
    for (size_t i = range_begin(index); i < range_end(index); i++) {
        size_t n = object_size(&rng);
        unsigned char *p = heap ? mi_heap_malloc(heap, n) : NULL;
        if (p == NULL) {
            mi_failed = 1;
            break;
        }
        memset(p, (int)(i & 0xff), 16);
        objects[i] = p;
    }
    pthread_barrier_wait(&filled);
    pthread_barrier_wait(&go);
    if (mi_variant == 0) {
        /* mimalloc heaps can only be destroyed by their own thread. */
        double t0 = lb_now();
        if (heap)
            mi_heap_destroy(heap);
        thread_seconds[index] = lb_now() - t0;
        pthread_barrier_wait(&done);
    } else {
        pthread_barrier_wait(&done); /* main freed everything */
        if (heap)
            mi_heap_delete(heap);
    }
    return NULL;
}

static sample_t measure(int variant)
{
    sample_t s;
    memset(&s, 0, sizeof s);
    mi_variant = variant;
    pthread_barrier_init(&filled, NULL, opt.threads + 1);
    pthread_barrier_init(&go, NULL, opt.threads + 1);
    pthread_barrier_init(&done, NULL, opt.threads + 1);
    s.rss_before = lb_proc_mem().rss;
    pthread_t tids[MAX_THREADS];
    for (unsigned t = 0; t < opt.threads; t++)
        if (pthread_create(&tids[t], NULL, mi_thread_main, (void *)(uintptr_t)t) != 0)
            return s;
    pthread_barrier_wait(&filled);
    if (mi_failed)
        fprintf(stderr, "mimalloc allocation failed\n");
    s.rss_full = lb_proc_mem().rss;
    double t0 = lb_now();
    pthread_barrier_wait(&go);
    if (variant == 0) {
        pthread_barrier_wait(&done);
        s.seconds = lb_now() - t0;
        double sum = 0;
        for (unsigned t = 0; t < opt.threads; t++)
            sum += thread_seconds[t];
        s.extra_seconds = sum;
    } else {
        for (size_t i = 0; i < opt.objects; i++)
            mi_free(objects[i]);
        s.seconds = lb_now() - t0;
        pthread_barrier_wait(&done);
    }
    for (unsigned t = 0; t < opt.threads; t++)
        pthread_join(tids[t], NULL);
    s.rss_after = lb_proc_mem().rss;
    s.ok = !mi_failed;
    pthread_barrier_destroy(&filled);
    pthread_barrier_destroy(&go);
    pthread_barrier_destroy(&done);
    return s;
}

static const char *allocator_name = "mimalloc";
static const char *variant_names[2] = {"mi_heap_destroy (each thread its own heap)",
                                       "mi_free each"};
#endif

/* ------------------------------------------------------------------------ */
/* Driver                                                                   */
/* ------------------------------------------------------------------------ */

/* One measurement in a fresh process, so every repetition starts from the
 * same state and its RSS figures are its own. */
static sample_t measure_in_child(int variant)
{
    sample_t s;
    memset(&s, 0, sizeof s);
    int fd[2];
    if (pipe(fd) != 0)
        return s;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return s;
    if (pid == 0) {
        close(fd[0]);
        warm_up_threads();
        sample_t mine = measure(variant);
        ssize_t w = write(fd[1], &mine, sizeof mine);
        _exit(w == (ssize_t)sizeof mine ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &s, sizeof s);
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof s || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        memset(&s, 0, sizeof s);
    return s;
}

static void report(int variant)
{
    double t[MAX_REPS] = {0}, extra[MAX_REPS] = {0}, before[MAX_REPS] = {0},
           full[MAX_REPS] = {0}, after[MAX_REPS] = {0}, diff[MAX_REPS] = {0},
           floor_ms[MAX_REPS] = {0}, ratio[MAX_REPS] = {0};
    unsigned n = 0;
    for (unsigned r = 0; r < opt.reps; r++) {
        sample_t s = measure_in_child(variant);
        if (!s.ok) {
            printf("| %s | %s | failed | | | | | | |\n", allocator_name, variant_names[variant]);
            return;
        }
        t[n] = s.seconds * 1e3;
        extra[n] = s.extra_seconds * 1e3;
        before[n] = lb_mib(s.rss_before);
        full[n] = lb_mib(s.rss_full);
        after[n] = lb_mib(s.rss_after);
        diff[n] = ((double)s.rss_after - (double)s.rss_before) / 1024.0;
        floor_ms[n] = s.munmap_seconds * 1e3;
        ratio[n] = s.munmap_seconds > 0 ? s.seconds / s.munmap_seconds : 0;
        n++;
    }
    double tmin = t[0], tmax = t[0];
    for (unsigned i = 1; i < n; i++) {
        tmin = t[i] < tmin ? t[i] : tmin;
        tmax = t[i] > tmax ? t[i] : tmax;
    }
    char note[96] = "";
#ifdef DESTROY_BENCH_MIMALLOC
    if (variant == 0)
        snprintf(note, sizeof note, "threads' own times summed: %.2f ms", lb_median(extra, n));
#else
    if (variant == 1)
        snprintf(note, sizeof note, "then destroy of the empty heap: %.3f ms",
                 lb_median(extra, n));
#endif
    double full_mib = lb_median(full, n) - lb_median(before, n);
    printf("| %s | %s | %.3f | %.3f..%.3f | %.1f | %.1f | %.1f | %+.0f | %s |\n", allocator_name,
           variant_names[variant], lb_median(t, n), tmin, tmax, lb_median(before, n),
           lb_median(full, n), lb_median(after, n), lb_median(diff, n), note);
    if (floor_ms[0] > 0) {
        /* Timed in the same process right after each destroy. */
        double fmin = floor_ms[0], fmax = floor_ms[0];
        for (unsigned i = 1; i < n; i++) {
            fmin = floor_ms[i] < fmin ? floor_ms[i] : fmin;
            fmax = floor_ms[i] > fmax ? floor_ms[i] : fmax;
        }
        printf("| kernel | one munmap of %.1f MiB touched (the heap's RSS) | %.3f | %.3f..%.3f | | "
               "| | | destroy / munmap: median %.2fx |\n",
               full_mib, lb_median(floor_ms, n), fmin, fmax, lb_median(ratio, n));
    }
    fflush(stdout);
}

#ifndef DESTROY_BENCH_MIMALLOC
/* Runs destroy_bench_mimalloc from this program's directory, if there. */
static void run_mimalloc_rows(char **argv)
{
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 64);
    if (len <= 0)
        return;
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return;
    strcpy(slash + 1, "destroy_bench_mimalloc");
    if (access(self, X_OK) != 0) {
        printf("| mimalloc | (destroy_bench_mimalloc not built) | | | | | | | |\n");
        return;
    }
    char objects_arg[32], threads_arg[32], reps_arg[32], size_arg[32];
    snprintf(objects_arg, sizeof objects_arg, "--objects=%zu", opt.objects);
    snprintf(threads_arg, sizeof threads_arg, "--threads=%u", opt.threads);
    snprintf(reps_arg, sizeof reps_arg, "--reps=%u", opt.reps);
    snprintf(size_arg, sizeof size_arg, "--size=%zu", opt.size);
    char *args[] = {self, objects_arg, threads_arg, reps_arg, size_arg, "--rows-only", NULL};
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execv(self, args);
        _exit(127);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    (void)argv;
}
#endif

int main(int argc, char **argv)
{
    opt = (options_t){.objects = 1000000, .threads = 8, .reps = 5};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (lb_option(argc, argv, &i, "--objects", &v))
            opt.objects = (size_t)lb_parse_count("--objects", v);
        else if (lb_option(argc, argv, &i, "--threads", &v))
            opt.threads = (unsigned)lb_parse_count("--threads", v);
        else if (lb_option(argc, argv, &i, "--reps", &v))
            opt.reps = (unsigned)lb_parse_count("--reps", v);
        else if (lb_option(argc, argv, &i, "--size", &v))
            opt.size = (size_t)lb_parse_count("--size", v);
        else if (strcmp(argv[i], "--alive") == 0)
            opt.alive = 1;
        else if (strcmp(argv[i], "--rows-only") == 0)
            opt.rows_only = 1;
        else if (strcmp(argv[i], "--no-mimalloc") == 0)
            opt.no_mimalloc = 1;
        else {
            fprintf(stderr,
                    "usage: %s [--objects N] [--threads T] [--reps R] [--size BYTES] [--alive] "
                    "[--no-mimalloc]\n",
                    argv[0]);
            return 2;
        }
    }
    if (opt.threads < 1 || opt.threads > MAX_THREADS || opt.reps < 1 || opt.reps > MAX_REPS ||
        opt.objects < opt.threads) {
        fprintf(stderr, "need 1..%d threads, 1..%d reps, at least one object per thread\n",
                MAX_THREADS, MAX_REPS);
        return 2;
    }
    /* Mapped and touched now, so it is part of every baseline. */
    objects = mmap(NULL, opt.objects * sizeof *objects, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (objects == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(objects, 0, opt.objects * sizeof *objects);

    if (!opt.rows_only) {
        char sizes[64];
        if (opt.size)
            snprintf(sizes, sizeof sizes, "%zu bytes", opt.size);
        else
            snprintf(sizes, sizeof sizes, "16..1024 bytes");
        printf("destroy_bench: %zu live objects of %s allocated by %u threads (%s during the "
               "teardown); times in ms, median of %u runs, each in a fresh process; RSS in MiB\n\n",
               opt.objects, sizes, opt.threads, opt.alive ? "alive" : "exited", opt.reps);
        printf("| allocator | teardown | time ms | min..max ms | RSS before create | RSS full "
               "| RSS after | after - before KiB | note |\n");
        printf("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    }
    report(0);
    report(1);
#ifndef DESTROY_BENCH_MIMALLOC
    if (!opt.no_mimalloc)
        run_mimalloc_rows(argv);
#endif
    return 0;
}
