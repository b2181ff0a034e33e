/*
 * class_phases: a thread whose requests move on to other size classes and
 * never come back (issue 14 §2: "a per-thread cap on spans kept hot for
 * classes the thread no longer uses").
 *
 * One thread works in P phases of D ms each. Phase k keeps a ring of 64
 * live blocks of k * 4 KiB + 4 KiB .. + 8 KiB (new block for the oldest,
 * every page written), then frees its ring; the next phase uses bigger
 * classes. The live set is the same in every phase, so what the process
 * holds beyond it is what the allocator keeps for classes nobody asks for
 * any more. At the end of each phase (its ring still live): the process's
 * RSS, net of the RSS before the heap or the first block; and the peak
 * RSS (VmHWM) of the run, net. scalloc (a heap from
 * sc_heap_create(NULL)) and glibc malloc each run in a child process of
 * their own, alternating with --reps.
 *
 *   class_phases [--phases P] [--phase-ms D] [--reps R]
 *                [--allocator scalloc|glibc|both]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <scalloc/scalloc.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lifecycle_bench.h"

enum { RING = 64, MAX_PHASES = 64, MAX_REPS = 21 };

typedef struct run_result_s {
    double ops;                     /* allocations per second */
    size_t peak_net;                /* peak RSS (VmHWM), net */
    size_t final_net;               /* RSS at the end of the last phase, net */
    size_t after_phase[MAX_PHASES]; /* net RSS at the end of each phase */
    int failed;
} run_result_t;

static void *scalloc_heap;

static void *block_alloc(int use_scalloc, size_t n)
{
    return use_scalloc ? sc_alloc(scalloc_heap, n) : malloc(n);
}

static void block_free(int use_scalloc, void *p)
{
    if (use_scalloc)
        sc_free(scalloc_heap, p);
    else
        free(p);
}

static run_result_t run(int use_scalloc, unsigned phases, double phase_s)
{
    run_result_t r;
    memset(&r, 0, sizeof r);
    size_t base = lb_proc_mem().rss;
    if (use_scalloc && (scalloc_heap = sc_heap_create(NULL)) == NULL) {
        r.failed = 1;
        return r;
    }
    void *ring[RING] = {0};
    lb_rng_t rng = {42};
    double t0 = lb_now(), allocs = 0;
    for (unsigned ph = 0; ph < phases; ph++) {
        size_t lo = 4096 + (size_t)ph * 4096;
        double start = lb_now();
        for (size_t i = 0; lb_now() - start < phase_s; i++) {
            for (unsigned k = 0; k < 256; k++) {
                size_t j = (i * 256 + k) % RING;
                block_free(use_scalloc, ring[j]);
                size_t n = lb_rng_range(&rng, lo, lo + 4095);
                ring[j] = block_alloc(use_scalloc, n);
                if (ring[j] == NULL) {
                    r.failed = 1;
                    return r;
                }
                memset(ring[j], (int)(k & 0xff), n);
                allocs++;
            }
        }
        /* At the end of the phase, its ring still live. */
        size_t rss = lb_proc_mem().rss;
        r.after_phase[ph] = rss > base ? rss - base : 0;
        for (unsigned j = 0; j < RING; j++) {
            block_free(use_scalloc, ring[j]);
            ring[j] = NULL;
        }
    }
    size_t hwm = lb_proc_mem().hwm;
    r.peak_net = hwm > base ? hwm - base : 0;
    r.ops = allocs / (lb_now() - t0);
    r.final_net = r.after_phase[phases - 1];
    if (use_scalloc)
        sc_heap_destroy(scalloc_heap);
    return r;
}

/* Runs one allocator in a child process; its result comes back through a
 * pipe. */
static run_result_t run_in_child(int use_scalloc, unsigned phases, double phase_s)
{
    run_result_t r;
    memset(&r, 0, sizeof r);
    r.failed = 1;
    int fd[2];
    if (pipe(fd) != 0)
        return r;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        run_result_t mine = run(use_scalloc, phases, phase_s);
        ssize_t w = write(fd[1], &mine, sizeof mine);
        _exit(w == (ssize_t)sizeof mine ? 0 : 1);
    }
    close(fd[1]);
    if (pid > 0) {
        ssize_t got = read(fd[0], &r, sizeof r);
        int status = 0;
        waitpid(pid, &status, 0);
        if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            r.failed = 1;
    }
    close(fd[0]);
    return r;
}

int main(int argc, char **argv)
{
    unsigned phases = 12, reps = 3;
    double phase_ms = 300;
    const char *which = "both";
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (lb_option(argc, argv, &i, "--phases", &v))
            phases = (unsigned)lb_parse_count("--phases", v);
        else if (lb_option(argc, argv, &i, "--phase-ms", &v))
            phase_ms = (double)lb_parse_count("--phase-ms", v);
        else if (lb_option(argc, argv, &i, "--reps", &v))
            reps = (unsigned)lb_parse_count("--reps", v);
        else if (lb_option(argc, argv, &i, "--allocator", &v))
            which = v;
        else {
            fprintf(stderr,
                    "usage: %s [--phases P] [--phase-ms D] [--reps R] "
                    "[--allocator scalloc|glibc|both]\n",
                    argv[0]);
            return 64;
        }
    }
    if (phases == 0 || phases > MAX_PHASES || reps == 0 || reps > MAX_REPS) {
        fprintf(stderr, "class_phases: --phases 1..%d, --reps 1..%d\n", MAX_PHASES, MAX_REPS);
        return 64;
    }
    int want[2] = {strcmp(which, "glibc") != 0, strcmp(which, "scalloc") != 0};
    const char *names[2] = {"scalloc", "glibc malloc"};
    double peak[2][MAX_REPS], final[2][MAX_REPS], ops[2][MAX_REPS];
    run_result_t last[2];
    memset(last, 0, sizeof last);
    for (unsigned rep = 0; rep < reps; rep++) {
        for (int a = 0; a < 2; a++) {
            if (!want[a])
                continue;
            run_result_t r = run_in_child(a == 0, phases, phase_ms / 1e3);
            if (r.failed) {
                fprintf(stderr, "class_phases: %s run failed\n", names[a]);
                return 1;
            }
            peak[a][rep] = lb_mib(r.peak_net);
            final[a][rep] = lb_mib(r.final_net);
            ops[a][rep] = r.ops / 1e6;
            last[a] = r;
        }
    }
    printf("class_phases: %u phases of %.0f ms, a ring of %d live blocks of 4..8 KiB more "
           "each phase (live set %.1f..%.1f MiB), every page written; RSS net of the "
           "process's before the first block; median of %u run(s), alternating\n\n",
           phases, phase_ms, RING, lb_mib((size_t)RING * 6144),
           lb_mib((size_t)RING * (4096 * (size_t)phases + 2048)), reps);
    printf("| allocator | Mallocs/s | peak RSS MiB | RSS at the end of the last phase MiB "
           "|\n|---|---:|---:|---:|\n");
    for (int a = 0; a < 2; a++)
        if (want[a])
            printf("| %s | %.2f | %.1f | %.1f |\n", names[a], lb_median(ops[a], reps),
                   lb_median(peak[a], reps), lb_median(final[a], reps));
    printf("\nRSS at the end of each phase, its ring live (MiB, last run):\n\n| phase | block sizes |");
    for (int a = 0; a < 2; a++)
        if (want[a])
            printf(" %s |", names[a]);
    printf("\n|---:|---|");
    for (int a = 0; a < 2; a++)
        if (want[a])
            printf("---:|");
    printf("\n");
    for (unsigned ph = 0; ph < phases; ph++) {
        printf("| %u | %zu..%zu B |", ph, (size_t)4096 + ph * (size_t)4096,
               (size_t)8191 + ph * (size_t)4096);
        for (int a = 0; a < 2; a++)
            if (want[a])
                printf(" %.1f |", lb_mib(last[a].after_phase[ph]));
        printf("\n");
    }
    return 0;
}
