/*
 * Entry point of one allocator's driver binary (scalloc_bench_<name>): runs
 * one workload once, in this fresh process, and prints one result line that
 * the suite driver (scalloc_bench) parses. A fresh process per run is what
 * makes VmHWM the peak RSS of that run alone.
 *
 *   scalloc_bench_<name> WORKLOAD THREADS [quick|full] [SEED]
 *   scalloc_bench_<name> --info      allocator, API, version, malloc owner
 *   scalloc_bench_<name> --list      workload names
 *
 * Exit status: 0 sane, 1 verification failed or ops did not add up,
 * 2 workload not supported by this allocator, 64 usage.
 */
#include "bench_alloc.h"
#include "bench_util.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_MAX_THREADS 256

static const bench_workload workloads[] = {
    BENCH_COMMON_WORKLOADS,
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* The shared object that defines the process's malloc: the proof that the
 * glibc and scalloc binaries measure glibc malloc, and that the others did
 * replace it (which is why they are separate binaries). */
static const char *malloc_owner(void)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL)
        return "unknown";
    return info.dli_fname;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s WORKLOAD THREADS [quick|full] [SEED] | --info | --list\n",
            argv0);
    fprintf(stderr, "workloads:\n");
    for (size_t i = 0; i < NWORKLOADS; i++)
        fprintf(stderr, "  %-14s %s\n", workloads[i].name, workloads[i].what);
    return 64;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--info") == 0) {
        char version[128];
        printf("allocator\t%s\n", BENCH_ALLOCATOR_NAME);
        printf("api\t%s\n", BENCH_API_NAME);
        printf("version\t%s\n", bench_allocator_version(version, sizeof version));
        printf("can_destroy\t%d\n", BENCH_CAN_DESTROY);
        printf("malloc_owner\t%s\n", malloc_owner());
#ifdef BENCH_SANITIZED
        printf("sanitized\t1\n");
#else
        printf("sanitized\t0\n");
#endif
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < NWORKLOADS; i++)
            printf("%s\t%s\n", workloads[i].name, workloads[i].what);
        return 0;
    }
    const bench_workload *wl;
    bench_params p = {0};
    if (!bench_parse_args(argc, argv, workloads, NWORKLOADS, BENCH_MAX_THREADS, &wl, &p))
        return usage(argv[0]);

    static bench_result r; /* static: large, and zeroed */
    /* What the process holds before the workload (binary, libraries,
     * allocator start-up): taken off peak RSS for RSS/live, so that small
     * live sets are not judged by the size of libc. */
    long base = bench_status_kib("VmRSS");
    wl->run(&p, &r);
    if (r.unsupported) {
        printf("unsupported\tallocator=%s workload=%s\n", BENCH_ALLOCATOR_NAME, wl->name);
        return 2;
    }
    long hwm = bench_status_kib("VmHWM");
    return bench_print_result(BENCH_ALLOCATOR_NAME, wl, &p, &r, base, hwm);
}
