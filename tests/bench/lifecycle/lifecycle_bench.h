/*
 * Helpers shared by the lifecycle benchmarks (huge_loop, destroy_bench,
 * big_heap): process memory figures from /proc, a monotonic clock, medians,
 * and a deterministic generator. Header-only so each program stays one file
 * plus this.
 */
#ifndef SCALLOC_LIFECYCLE_BENCH_H
#define SCALLOC_LIFECYCLE_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LB_KiB ((size_t)1 << 10)
#define LB_MiB ((size_t)1 << 20)
#define LB_GiB ((size_t)1 << 30)

/* Process memory, in bytes, from /proc/self/status. */
typedef struct lb_proc_mem_s {
    size_t rss;     /* VmRSS: resident now */
    size_t hwm;     /* VmHWM: peak resident */
    size_t vm;      /* VmSize: address space now */
    size_t vm_peak; /* VmPeak: peak address space */
} lb_proc_mem_t;

static inline lb_proc_mem_t lb_proc_mem(void)
{
    lb_proc_mem_t m = {0, 0, 0, 0};
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return m;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long kib;
        if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
            m.rss = (size_t)kib * LB_KiB;
        else if (sscanf(line, "VmHWM: %lu kB", &kib) == 1)
            m.hwm = (size_t)kib * LB_KiB;
        else if (sscanf(line, "VmSize: %lu kB", &kib) == 1)
            m.vm = (size_t)kib * LB_KiB;
        else if (sscanf(line, "VmPeak: %lu kB", &kib) == 1)
            m.vm_peak = (size_t)kib * LB_KiB;
    }
    fclose(f);
    return m;
}

/* MemAvailable from /proc/meminfo in bytes (0 if unknown). */
static inline size_t lb_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t avail = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long kib;
        if (sscanf(line, "MemAvailable: %lu kB", &kib) == 1)
            avail = (size_t)kib * LB_KiB;
    }
    fclose(f);
    return avail;
}

static inline double lb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double lb_mib(size_t bytes)
{
    return (double)bytes / (double)LB_MiB;
}

static int lb_double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static inline double lb_median(double *v, size_t n)
{
    qsort(v, n, sizeof v[0], lb_double_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* splitmix64, seeded: runs are repeatable. */
typedef struct lb_rng_s {
    uint64_t state;
} lb_rng_t;

static inline uint64_t lb_rng_next(lb_rng_t *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline size_t lb_rng_range(lb_rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)(lb_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]: stores VALUE, advances *i
 * past it and returns 1; 0 if argv[*i] is another option. */
static inline int lb_option(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len) != 0)
        return 0;
    if (argv[*i][len] == '=') {
        *value = argv[*i] + len + 1;
        return 1;
    }
    if (argv[*i][len] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", name);
        exit(2);
    }
    *value = argv[++*i];
    return 1;
}

static inline unsigned long long lb_parse_count(const char *name, const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0') {
        fprintf(stderr, "%s: not a number: %s\n", name, s);
        exit(2);
    }
    return v;
}

#endif /* SCALLOC_LIFECYCLE_BENCH_H */
