/*
 * huge_loop: the huge-buffer replacement loop of issue 3 ("a loop that
 * replaces one of 20 buffers with a new 5-25 MiB buffer 100,000 times keeps
 * the heap's reserved address space bounded and its resident memory within
 * about 2x the live bytes"), with scalloc and with glibc malloc run the same
 * way, each in a process of its own.
 *
 * Every new buffer is touched the way a program filling it would be: the
 * first and last 64 KiB written in full and one byte in every 4 KiB page in
 * between, so all of its pages are resident.
 *
 *   huge_loop [--iterations N] [--buffers B] [--seed S]
 *             [--allocator scalloc|glibc|both]
 *
 * Prints a markdown table: live bytes at the end, peak and final RSS (the
 * process's VmHWM / VmRSS, net of its RSS before the first buffer), their
 * ratio to the live bytes, the heap's reserved address space (scalloc), the
 * process's peak address space, and the time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <scalloc/scalloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lifecycle_bench.h"

#define MIN_BUFFER (5 * LB_MiB)
#define MAX_BUFFER (25 * LB_MiB)
#define MAX_BUFFERS 1000
#define EDGE (64 * LB_KiB)

typedef struct result_s {
    int ok;
    unsigned long long iterations;
    size_t live_end;       /* requested bytes live at the end */
    size_t live_max;
    size_t rss_start;      /* before the first buffer */
    size_t rss_peak;       /* VmHWM */
    size_t rss_end;
    size_t rss_max_sampled; /* largest VmRSS seen while running */
    size_t reserved_max;   /* scalloc: heap reserved_bytes, largest seen */
    size_t reserved_end;
    size_t vm_start, vm_peak;
    double seconds;
} result_t;

typedef struct options_s {
    unsigned long long iterations;
    unsigned buffers;
    uint64_t seed;
} options_t;

/* The two allocators behind one face. */
typedef struct allocator_s {
    const char *name;
    void *(*alloc)(void *ctx, size_t n);
    void (*release)(void *ctx, void *p);
    void *ctx;
} allocator_t;

static void *scalloc_alloc(void *ctx, size_t n)
{
    return sc_alloc(ctx, n);
}

static void scalloc_release(void *ctx, void *p)
{
    sc_free(ctx, p);
}

static void *glibc_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return malloc(n);
}

static void glibc_release(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void touch(unsigned char *p, size_t n, unsigned char value)
{
    memset(p, value, EDGE);
    for (size_t i = EDGE; i < n - EDGE; i += 4096)
        p[i] = value;
    memset(p + n - EDGE, value, EDGE);
}

static result_t run(const options_t *o, int use_scalloc)
{
    result_t r;
    memset(&r, 0, sizeof r);
    sc_heap_t *heap = NULL;
    allocator_t a;
    if (use_scalloc) {
        sc_heap_config_t cfg = {.name = "huge_loop"};
        heap = sc_heap_create(&cfg);
        if (heap == NULL) {
            fprintf(stderr, "sc_heap_create failed: errno %d\n", errno);
            return r;
        }
        a = (allocator_t){"scalloc", scalloc_alloc, scalloc_release, heap};
    } else {
        a = (allocator_t){"glibc", glibc_alloc, glibc_release, NULL};
    }
    static unsigned char *buf[MAX_BUFFERS];
    static size_t size[MAX_BUFFERS];
    lb_rng_t rng = {o->seed};
    lb_proc_mem_t m0 = lb_proc_mem();
    r.rss_start = m0.rss;
    r.vm_start = m0.vm;
    double t0 = lb_now();
    size_t live = 0;
    for (unsigned i = 0; i < o->buffers; i++) {
        size[i] = lb_rng_range(&rng, MIN_BUFFER, MAX_BUFFER);
        buf[i] = a.alloc(a.ctx, size[i]);
        if (buf[i] == NULL) {
            fprintf(stderr, "%s: initial buffer %u of %zu bytes failed\n", a.name, i, size[i]);
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
            fprintf(stderr, "%s: buffer %u corrupted at iteration %llu\n", a.name, k, it);
            return r;
        }
        a.release(a.ctx, buf[k]);
        live -= size[k];
        size[k] = lb_rng_range(&rng, MIN_BUFFER, MAX_BUFFER);
        buf[k] = a.alloc(a.ctx, size[k]);
        if (buf[k] == NULL) {
            fprintf(stderr, "%s: allocation of %zu bytes failed at iteration %llu (errno %d)\n",
                    a.name, size[k], it, errno);
            return r;
        }
        touch(buf[k], size[k], (unsigned char)(it + 1));
        live += size[k];
        if (live > r.live_max)
            r.live_max = live;
        if (it % 256 == 0 || it + 1 == o->iterations) {
            lb_proc_mem_t m = lb_proc_mem();
            if (m.rss > r.rss_max_sampled)
                r.rss_max_sampled = m.rss;
            if (heap) {
                sc_heap_stats_t st;
                sc_heap_get_stats(heap, &st);
                if (st.reserved_bytes > r.reserved_max)
                    r.reserved_max = st.reserved_bytes;
            }
        }
    }
    r.seconds = lb_now() - t0;
    lb_proc_mem_t m1 = lb_proc_mem();
    r.rss_end = m1.rss;
    r.rss_peak = m1.hwm;
    r.vm_peak = m1.vm_peak;
    r.live_end = live;
    r.iterations = o->iterations;
    if (heap) {
        sc_heap_stats_t st;
        sc_heap_get_stats(heap, &st);
        r.reserved_end = st.reserved_bytes;
        sc_heap_destroy(heap);
    }
    r.ok = 1;
    return r;
}

/* Runs one allocator in a child process (fresh RSS peak, glibc state and
 * address space) and reads its result back through a pipe. */
static result_t run_in_child(const options_t *o, int use_scalloc)
{
    result_t r;
    memset(&r, 0, sizeof r);
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
        result_t mine = run(o, use_scalloc);
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
        fprintf(stderr, "%s run failed (status %#x)\n", use_scalloc ? "scalloc" : "glibc",
                status);
        memset(&r, 0, sizeof r);
    }
    return r;
}

static void print_row(const char *name, const result_t *r)
{
    if (!r->ok) {
        printf("| %s | failed | | | | | | | |\n", name);
        return;
    }
    size_t peak = r->rss_peak - r->rss_start;
    size_t end = r->rss_end - r->rss_start;
    char reserved[64] = "n/a";
    if (r->reserved_max)
        snprintf(reserved, sizeof reserved, "%.0f (end %.0f)", lb_mib(r->reserved_max),
                 lb_mib(r->reserved_end));
    printf("| %s | %llu | %.0f | %.0f | %.2f | %.0f | %.2f | %s | %.0f | %.1f |\n", name,
           r->iterations, lb_mib(r->live_end), lb_mib(peak), (double)peak / (double)r->live_max,
           lb_mib(end), (double)end / (double)r->live_end, reserved,
           lb_mib(r->vm_peak - r->vm_start), r->seconds);
}

int main(int argc, char **argv)
{
    options_t o = {.iterations = 100000, .buffers = 20, .seed = 42};
    const char *which = "both";
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (lb_option(argc, argv, &i, "--iterations", &v))
            o.iterations = lb_parse_count("--iterations", v);
        else if (lb_option(argc, argv, &i, "--buffers", &v))
            o.buffers = (unsigned)lb_parse_count("--buffers", v);
        else if (lb_option(argc, argv, &i, "--seed", &v))
            o.seed = lb_parse_count("--seed", v);
        else if (lb_option(argc, argv, &i, "--allocator", &v))
            which = v;
        else {
            fprintf(stderr,
                    "usage: %s [--iterations N] [--buffers B] [--seed S] "
                    "[--allocator scalloc|glibc|both]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.buffers == 0 || o.buffers > MAX_BUFFERS) {
        fprintf(stderr, "--buffers must be 1..%d\n", MAX_BUFFERS);
        return 2;
    }
    int run_sc = strcmp(which, "scalloc") == 0 || strcmp(which, "both") == 0;
    int run_glibc = strcmp(which, "glibc") == 0 || strcmp(which, "both") == 0;
    if (!run_sc && !run_glibc) {
        fprintf(stderr, "--allocator: scalloc, glibc or both\n");
        return 2;
    }
    printf("huge_loop: %u buffers of %zu..%zu MiB, one replaced per iteration, seed %llu; "
           "RSS net of the process's RSS before the first buffer\n\n",
           o.buffers, MIN_BUFFER / LB_MiB, MAX_BUFFER / LB_MiB, (unsigned long long)o.seed);
    printf("| allocator | iterations | live MiB (end) | peak RSS MiB | peak RSS / peak live "
           "| final RSS MiB | final RSS / live | heap reserved MiB (max) | process VM peak "
           "MiB | time s |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    int failed = 0;
    if (run_sc) {
        result_t r = run_in_child(&o, 1);
        print_row("scalloc", &r);
        failed |= !r.ok;
        fflush(stdout);
    }
    if (run_glibc) {
        result_t r = run_in_child(&o, 0);
        print_row("glibc malloc", &r);
        failed |= !r.ok;
    }
    return failed;
}
