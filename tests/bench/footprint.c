/*
 * The footprint study's driver: one workload, once, in this process.
 *
 *   scalloc_footprint  WORKLOAD THREADS [quick|full] [SEED]
 *       scalloc through the instrumented adapter (adapters/alloc_footprint.h):
 *       prints the breakdown of committed - live at the peak, at the
 *       workload's marks and at the end (Markdown), then the result line.
 *   footprint_<name>   WORKLOAD THREADS [quick|full] [SEED]
 *       the same workloads through the suite's adapter for <name> (scalloc,
 *       glibc, mimalloc): only the result line, whose peak_rss_kb (VmHWM) is
 *       the allocator's peak RSS for the workload. The suite's workloads give
 *       the same figures through scalloc_bench_<name>; these binaries add the
 *       study's own (server, demo-cache).
 *
 * Exit status: 0 sane, 1 verification failed or ops did not add up, 64 usage.
 */
#include "bench_alloc.h"
#include "bench_util.h"
#include "footprint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bench_workload workloads[] = {
    BENCH_COMMON_WORKLOADS,
    {"server", "64 MiB live of 16 B..256 KiB, a fifth freed by another thread, idle trim",
     wl_server},
    {"demo-cache", "examples/server_demo's cache heap: 211 keys, every 7th request drops one",
     wl_demo_cache},
    {"tiny", "one 16 B block from each thread: the cost of an empty heap", wl_tiny},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s WORKLOAD THREADS [quick|full] [SEED]\nworkloads:\n", argv0);
    for (size_t i = 0; i < NWORKLOADS; i++)
        fprintf(stderr, "  %-14s %s\n", workloads[i].name, workloads[i].what);
    return 64;
}

int main(int argc, char **argv)
{
    const bench_workload *wl;
    bench_params p = {0};
    if (!bench_parse_args(argc, argv, workloads, NWORKLOADS, 256, &wl, &p))
        return usage(argv[0]);

    static bench_result r; /* static: large, and zeroed */
    long base = bench_status_kib("VmRSS");
    wl->run(&p, &r);
    long hwm = bench_status_kib("VmHWM");
#if defined(BENCH_ALLOCATOR_FOOTPRINT)
    fp_report(stdout, wl->name, p.threads, p.scale == BENCH_FULL ? "full" : "quick",
              (unsigned long long)p.seed);
#endif
    return bench_print_result(BENCH_ALLOCATOR_NAME, wl, &p, &r, base, hwm);
}
