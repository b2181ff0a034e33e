/*
 * huge_loop: the huge-buffer replacement loop of issues 3 and 13. B buffers
 * of MIN..MAX bytes are live; each iteration frees a random one and
 * allocates a new one of a random size in its place. Every new buffer is
 * touched the way a program filling it would be: the first and last 64 KiB
 * written in full and one byte in every 4 KiB page in between, so all of
 * its pages are resident. After the loop every buffer is freed and the
 * allocator is asked to give memory back (sc_heap_trim, malloc_trim(0),
 * mi_collect(true)).
 *
 * scalloc, glibc malloc and mimalloc (a heap from mi_heap_new, through
 * huge_loop_mimalloc, which links mimalloc and is found next to this
 * program) each run in a fresh process; with --reps R the allocators
 * alternate inside each repetition and the table shows medians.
 *
 *   huge_loop [--iterations N] [--buffers B] [--min-mib M] [--max-mib M]
 *             [--seed S] [--reps R] [--allocator scalloc|glibc|mimalloc|all]
 *             [--retain-mib M] [--purge-delay-ms D]
 *
 * Defaults: 100,000 iterations of 20 buffers of 5..25 MiB (issue 3). Issue
 * 13's loop: --buffers 16 --min-mib 2 --max-mib 32 --iterations 500.
 * --retain-mib and --purge-delay-ms set the scalloc heap's release policy
 * (sc_heap_config_t retain_bytes, purge_delay_ms; default 0 = defaults).
 *
 * Columns: the loop's time (median, min..max), peak RSS (VmHWM, net of the
 * RSS before the first buffer) over the peak live bytes, final RSS (all
 * buffers live) over the live bytes, RSS after freeing everything and
 * trimming, for scalloc the heap's resident and committed bytes then and its
 * reserved address space (largest seen), and the process's peak address
 * space.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HUGE_LOOP_MIMALLOC
#include <mimalloc.h>
#else
#include <malloc.h>
#include <scalloc/scalloc.h>
#endif

#include "lifecycle_bench.h"

#define MAX_BUFFERS 1000
#define MAX_REPS 51
#define EDGE (64 * LB_KiB)

enum allocator_kind { ALLOC_SCALLOC, ALLOC_GLIBC, ALLOC_MIMALLOC, ALLOC_KINDS };
static const char *const kind_names[ALLOC_KINDS] = {"scalloc", "glibc", "mimalloc"};
static const char *const kind_labels[ALLOC_KINDS] = {"scalloc", "glibc malloc",
                                                     "mimalloc (mi_heap_new)"};

typedef struct result_s {
    int ok;
    unsigned long long iterations;
    size_t live_end;       /* requested bytes live at the end of the loop */
    size_t live_max;
    size_t rss_start;      /* before the first buffer */
    size_t rss_peak;       /* VmHWM */
    size_t rss_end;        /* all buffers live */
    size_t rss_trimmed;    /* after freeing everything and trimming */
    size_t reserved_max;   /* scalloc: heap reserved_bytes, largest seen */
    size_t heap_resident;  /* scalloc: resident_bytes after free-all + trim */
    size_t heap_committed; /* scalloc: committed_bytes then */
    size_t vm_start, vm_peak;
    double seconds;
} result_t;

typedef struct options_s {
    unsigned long long iterations;
    unsigned buffers;
    size_t min, max;
    uint64_t seed;
    unsigned reps;
    size_t retain;          /* scalloc: sc_heap_config_t.retain_bytes */
    unsigned delay_ms;      /* scalloc: sc_heap_config_t.purge_delay_ms */
} options_t;

/* The allocator under test behind one face. */
typedef struct allocator_s {
    void *(*alloc)(void *ctx, size_t n);
    void (*release)(void *ctx, void *p);
    void (*trim)(void *ctx);
    void *ctx;
} allocator_t;

#ifdef HUGE_LOOP_MIMALLOC
static void *mi_alloc_fn(void *ctx, size_t n) { return mi_heap_malloc(ctx, n); }
static void mi_release_fn(void *ctx, void *p) { (void)ctx; mi_free(p); }
static void mi_trim_fn(void *ctx) { mi_heap_collect(ctx, true); mi_collect(true); }
#else
static void *sc_alloc_fn(void *ctx, size_t n) { return sc_alloc(ctx, n); }
static void sc_release_fn(void *ctx, void *p) { sc_free(ctx, p); }
static void sc_trim_fn(void *ctx) { sc_heap_trim(ctx); }
static void *glibc_alloc_fn(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void glibc_release_fn(void *ctx, void *p) { (void)ctx; free(p); }
static void glibc_trim_fn(void *ctx) { (void)ctx; malloc_trim(0); }
#endif

static void touch(unsigned char *p, size_t n, unsigned char value)
{
    memset(p, value, EDGE);
    for (size_t i = EDGE; i < n - EDGE; i += 4096)
        p[i] = value;
    memset(p + n - EDGE, value, EDGE);
}

static result_t run(const options_t *o, enum allocator_kind kind)
{
    result_t r;
    memset(&r, 0, sizeof r);
    allocator_t a;
#ifdef HUGE_LOOP_MIMALLOC
    if (kind != ALLOC_MIMALLOC)
        return r;
    mi_heap_t *mh = mi_heap_new();
    if (mh == NULL)
        return r;
    a = (allocator_t){mi_alloc_fn, mi_release_fn, mi_trim_fn, mh};
#else
    sc_heap_t *heap = NULL;
    if (kind == ALLOC_SCALLOC) {
        sc_heap_config_t cfg = {.name = "huge_loop", .retain_bytes = o->retain,
                                .purge_delay_ms = o->delay_ms};
        heap = sc_heap_create(&cfg);
        if (heap == NULL) {
            fprintf(stderr, "sc_heap_create failed: errno %d\n", errno);
            return r;
        }
        a = (allocator_t){sc_alloc_fn, sc_release_fn, sc_trim_fn, heap};
    } else if (kind == ALLOC_GLIBC) {
        a = (allocator_t){glibc_alloc_fn, glibc_release_fn, glibc_trim_fn, NULL};
    } else {
        return r;
    }
#endif
    static unsigned char *buf[MAX_BUFFERS];
    static size_t size[MAX_BUFFERS];
    lb_rng_t rng = {o->seed};
    lb_proc_mem_t m0 = lb_proc_mem();
    r.rss_start = m0.rss;
    r.vm_start = m0.vm;
    double t0 = lb_now();
    size_t live = 0;
    for (unsigned i = 0; i < o->buffers; i++) {
        size[i] = lb_rng_range(&rng, o->min, o->max);
        buf[i] = a.alloc(a.ctx, size[i]);
        if (buf[i] == NULL) {
            fprintf(stderr, "%s: initial buffer %u of %zu bytes failed\n", kind_names[kind], i,
                    size[i]);
            return r;
        }
        touch(buf[i], size[i], (unsigned char)i);
        live += size[i];
    }
    r.live_max = live;
    for (unsigned long long it = 0; it < o->iterations; it++) {
        unsigned k = (unsigned)(lb_rng_next(&rng) % o->buffers);
        /* The old buffer must still hold what was written into it. */
        if (buf[k][0] != buf[k][size[k] - 1]) {
            fprintf(stderr, "%s: buffer %u corrupted at iteration %llu\n", kind_names[kind], k,
                    it);
            return r;
        }
        a.release(a.ctx, buf[k]);
        live -= size[k];
        size[k] = lb_rng_range(&rng, o->min, o->max);
        buf[k] = a.alloc(a.ctx, size[k]);
        if (buf[k] == NULL) {
            fprintf(stderr, "%s: allocation of %zu bytes failed at iteration %llu (errno %d)\n",
                    kind_names[kind], size[k], it, errno);
            return r;
        }
        touch(buf[k], size[k], (unsigned char)(it + 1));
        live += size[k];
        if (live > r.live_max)
            r.live_max = live;
#ifndef HUGE_LOOP_MIMALLOC
        if (heap && (it % 256 == 0 || it + 1 == o->iterations)) {
            sc_heap_stats_t st;
            sc_heap_get_stats(heap, &st);
            if (st.reserved_bytes > r.reserved_max)
                r.reserved_max = st.reserved_bytes;
        }
#endif
    }
    r.seconds = lb_now() - t0;
    lb_proc_mem_t m1 = lb_proc_mem();
    r.rss_end = m1.rss;
    r.live_end = live;
    r.iterations = o->iterations;
    for (unsigned i = 0; i < o->buffers; i++)
        a.release(a.ctx, buf[i]);
    a.trim(a.ctx);
    lb_proc_mem_t m2 = lb_proc_mem();
    r.rss_trimmed = m2.rss;
    r.rss_peak = m2.hwm;
    r.vm_peak = m2.vm_peak;
#ifndef HUGE_LOOP_MIMALLOC
    if (heap) {
        sc_heap_stats_t st;
        sc_heap_get_stats(heap, &st);
        r.heap_resident = st.resident_bytes;
        r.heap_committed = st.committed_bytes;
        sc_heap_destroy(heap);
    }
#endif
    r.ok = 1;
    return r;
}

/* The sibling binary that runs the mimalloc case (linking mimalloc replaces
 * malloc for a whole process, so it is a program of its own). */
static int sibling_path(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 64);
    if (n <= 0)
        return 0;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash == NULL)
        return 0;
    strcpy(slash + 1, "huge_loop_mimalloc");
    return access(out, X_OK) == 0;
}

/* Runs one allocator in a child process (fresh RSS peak, allocator state
 * and address space) and reads its result back through a pipe. */
static result_t run_in_child(const options_t *o, enum allocator_kind kind)
{
    result_t r;
    memset(&r, 0, sizeof r);
#ifdef HUGE_LOOP_MIMALLOC
    int own = kind == ALLOC_MIMALLOC;
#else
    int own = kind != ALLOC_MIMALLOC;
#endif
    char sibling[PATH_MAX];
    if (!own && !sibling_path(sibling, sizeof sibling))
        return r;
    int fd[2];
    if (pipe(fd) != 0) {
        perror("pipe");
        return r;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return r;
    }
    if (pid == 0) {
        close(fd[0]);
        if (!own) {
            char it[32], bu[32], mi[32], ma[32], se[32];
            snprintf(it, sizeof it, "--iterations=%llu", o->iterations);
            snprintf(bu, sizeof bu, "--buffers=%u", o->buffers);
            snprintf(mi, sizeof mi, "--min-bytes=%zu", o->min);
            snprintf(ma, sizeof ma, "--max-bytes=%zu", o->max);
            snprintf(se, sizeof se, "--seed=%llu", (unsigned long long)o->seed);
            if (dup2(fd[1], STDOUT_FILENO) < 0)
                _exit(1);
            char *args[] = {sibling, it, bu, mi, ma, se, "--child", (char *)kind_names[kind], NULL};
            execv(sibling, args);
            _exit(127);
        }
        result_t mine = run(o, kind);
        ssize_t w = write(fd[1], &mine, sizeof mine);
        _exit(w == (ssize_t)sizeof mine ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &r, sizeof r);
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s run failed (status %#x)\n", kind_names[kind], status);
        memset(&r, 0, sizeof r);
    }
    return r;
}

/* The figures print_row takes medians of. */
enum figure { FIG_SECONDS, FIG_PEAK, FIG_FINAL, FIG_TRIMMED, FIG_VM, FIG_HEAP_RESIDENT,
              FIG_HEAP_COMMITTED, FIG_RESERVED };

static double figure_of(const result_t *x, enum figure f)
{
    switch (f) {
    case FIG_SECONDS: return x->seconds;
    case FIG_PEAK: return (double)(x->rss_peak - x->rss_start) / (double)x->live_max;
    case FIG_FINAL: return (double)(x->rss_end - x->rss_start) / (double)x->live_end;
    case FIG_TRIMMED: return ((double)x->rss_trimmed - (double)x->rss_start) / (double)LB_MiB;
    case FIG_VM: return lb_mib(x->vm_peak - x->vm_start);
    case FIG_HEAP_RESIDENT: return (double)x->heap_resident / 1024.0;
    case FIG_HEAP_COMMITTED: return (double)x->heap_committed / 1024.0;
    case FIG_RESERVED: return lb_mib(x->reserved_max);
    }
    return 0;
}

static double median_of(const result_t *res, unsigned n, enum figure f)
{
    double v[MAX_REPS];
    for (unsigned i = 0; i < n; i++)
        v[i] = figure_of(&res[i], f);
    return lb_median(v, n);
}

static void print_row(enum allocator_kind kind, const result_t *res, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (!res[i].ok) {
            printf("| %s | failed | | | | | | | |\n", kind_labels[kind]);
            return;
        }
    }
    double tmin = res[0].seconds, tmax = res[0].seconds;
    for (unsigned i = 1; i < n; i++) {
        tmin = res[i].seconds < tmin ? res[i].seconds : tmin;
        tmax = res[i].seconds > tmax ? res[i].seconds : tmax;
    }
    double t = median_of(res, n, FIG_SECONDS);
    double peak = median_of(res, n, FIG_PEAK);
    double fin = median_of(res, n, FIG_FINAL);
    double trimmed = median_of(res, n, FIG_TRIMMED);
    double vm = median_of(res, n, FIG_VM);
    char heap[96] = "n/a";
    if (kind == ALLOC_SCALLOC)
        snprintf(heap, sizeof heap, "%.0f KiB / %.0f KiB / %.0f MiB",
                 median_of(res, n, FIG_HEAP_RESIDENT), median_of(res, n, FIG_HEAP_COMMITTED),
                 median_of(res, n, FIG_RESERVED));
    printf("| %s | %llu | %.3f | %.3f..%.3f | %.2f | %.2f | %+.1f | %s | %.0f |\n",
           kind_labels[kind], res[0].iterations, t, tmin, tmax, peak, fin, trimmed, heap, vm);
}

int main(int argc, char **argv)
{
    options_t o = {.iterations = 100000, .buffers = 20, .min = 5 * LB_MiB, .max = 25 * LB_MiB,
                   .seed = 42, .reps = 1};
    const char *which = "all";
    const char *child = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (lb_option(argc, argv, &i, "--iterations", &v))
            o.iterations = lb_parse_count("--iterations", v);
        else if (lb_option(argc, argv, &i, "--buffers", &v))
            o.buffers = (unsigned)lb_parse_count("--buffers", v);
        else if (lb_option(argc, argv, &i, "--min-mib", &v))
            o.min = (size_t)lb_parse_count("--min-mib", v) * LB_MiB;
        else if (lb_option(argc, argv, &i, "--max-mib", &v))
            o.max = (size_t)lb_parse_count("--max-mib", v) * LB_MiB;
        else if (lb_option(argc, argv, &i, "--min-bytes", &v))
            o.min = (size_t)lb_parse_count("--min-bytes", v);
        else if (lb_option(argc, argv, &i, "--max-bytes", &v))
            o.max = (size_t)lb_parse_count("--max-bytes", v);
        else if (lb_option(argc, argv, &i, "--seed", &v))
            o.seed = lb_parse_count("--seed", v);
        else if (lb_option(argc, argv, &i, "--reps", &v))
            o.reps = (unsigned)lb_parse_count("--reps", v);
        else if (lb_option(argc, argv, &i, "--retain-mib", &v))
            o.retain = (size_t)lb_parse_count("--retain-mib", v) * LB_MiB;
        else if (lb_option(argc, argv, &i, "--purge-delay-ms", &v))
            o.delay_ms = (unsigned)lb_parse_count("--purge-delay-ms", v);
        else if (lb_option(argc, argv, &i, "--allocator", &v))
            which = v;
        else if (lb_option(argc, argv, &i, "--child", &v))
            child = v;
        else {
            fprintf(stderr,
                    "usage: %s [--iterations N] [--buffers B] [--min-mib M] [--max-mib M] "
                    "[--seed S] [--reps R] [--allocator scalloc|glibc|mimalloc|all] "
                    "[--retain-mib M] [--purge-delay-ms D]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.buffers == 0 || o.buffers > MAX_BUFFERS || o.reps == 0 || o.reps > MAX_REPS ||
        o.min < 2 * EDGE || o.max < o.min) {
        fprintf(stderr, "need 1..%d buffers, 1..%d reps, 128 KiB <= min <= max\n", MAX_BUFFERS,
                MAX_REPS);
        return 2;
    }
    if (child) {
        /* Run by the other binary: one run, the raw result on stdout. */
        for (int k = 0; k < ALLOC_KINDS; k++) {
            if (strcmp(child, kind_names[k]) == 0) {
                result_t r = run(&o, (enum allocator_kind)k);
                return fwrite(&r, sizeof r, 1, stdout) == 1 && r.ok ? 0 : 1;
            }
        }
        return 2;
    }
    int use[ALLOC_KINDS] = {0};
    for (int k = 0; k < ALLOC_KINDS; k++)
        use[k] = strcmp(which, "all") == 0 || strcmp(which, "both") == 0 ||
                 strcmp(which, kind_names[k]) == 0;
    if (strcmp(which, "both") == 0)
        use[ALLOC_MIMALLOC] = 0; /* issue 3's pair: scalloc and glibc */
    char sibling[PATH_MAX];
#ifndef HUGE_LOOP_MIMALLOC
    if (use[ALLOC_MIMALLOC] && !sibling_path(sibling, sizeof sibling)) {
        if (strcmp(which, "mimalloc") == 0) {
            fprintf(stderr, "huge_loop_mimalloc not built next to this program\n");
            return 2;
        }
        use[ALLOC_MIMALLOC] = 0;
    }
#else
    (void)sibling;
#endif
    if (!use[0] && !use[1] && !use[2]) {
        fprintf(stderr, "--allocator: scalloc, glibc, mimalloc or all\n");
        return 2;
    }
    printf("huge_loop: %u buffers of %.2f..%.2f MiB, one replaced per iteration, seed %llu, "
           "%u run(s) per allocator, alternating; RSS net of the process's RSS before the first "
           "buffer\n\n",
           o.buffers, lb_mib(o.min), lb_mib(o.max), (unsigned long long)o.seed, o.reps);
    printf("| allocator | iterations | time s | min..max s | peak RSS / peak live "
           "| final RSS / live | RSS after free-all + trim MiB | heap resident / committed "
           "after trim, reserved max | process VM peak MiB |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---|---:|\n");
    fflush(stdout);
    static result_t res[ALLOC_KINDS][MAX_REPS];
    for (unsigned rep = 0; rep < o.reps; rep++) {
        for (int j = 0; j < ALLOC_KINDS; j++) {
            int k = (int)((rep + (unsigned)j) % ALLOC_KINDS); /* rotating order */
            if (use[k])
                res[k][rep] = run_in_child(&o, (enum allocator_kind)k);
        }
    }
    int failed = 0;
    for (int k = 0; k < ALLOC_KINDS; k++) {
        if (!use[k])
            continue;
        print_row((enum allocator_kind)k, res[k], o.reps);
        for (unsigned rep = 0; rep < o.reps; rep++)
            failed |= !res[k][rep].ok;
    }
    return failed;
}
