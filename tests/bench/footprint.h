/* The footprint study (footprint.c, footprint_walk.c, wl_server.c). */
#ifndef BENCH_FOOTPRINT_H
#define BENCH_FOOTPRINT_H

#include <stdio.h>

#include "bench_util.h"

/* Workloads of the study beyond the suite's (wl_server.c). */
bench_workload_fn wl_server, wl_demo_cache, wl_tiny;

/* Instrumented scalloc only (footprint_walk.c): prints the breakdown of the
 * last workload's heap, at its peak, at its marks and at its end, as
 * Markdown. */
void fp_report(FILE *f, const char *workload, unsigned threads, const char *scale,
               unsigned long long seed);

#endif
