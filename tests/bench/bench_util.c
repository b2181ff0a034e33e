#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

void bench_extra(bench_result *r, const char *key, double value)
{
    if (r->nextra >= BENCH_MAX_EXTRA)
        return;
    snprintf(r->extra[r->nextra].key, sizeof r->extra[r->nextra].key, "%s", key);
    r->extra[r->nextra].value = value;
    r->nextra++;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool bench_parse_args(int argc, char **argv, const bench_workload *workloads, size_t count,
                      unsigned max_threads, const bench_workload **wl, bench_params *p)
{
    if (argc < 3 || argc > 5)
        return false;
    *wl = NULL;
    for (size_t i = 0; i < count; i++)
        if (strcmp(argv[1], workloads[i].name) == 0)
            *wl = &workloads[i];
    char *end;
    unsigned long threads = strtoul(argv[2], &end, 10);
    if (*wl == NULL || *end != '\0' || threads < 1 || threads > max_threads)
        return false;
    p->threads = (unsigned)threads;
    p->scale = BENCH_FULL;
    if (argc >= 4) {
        if (strcmp(argv[3], "quick") == 0)
            p->scale = BENCH_QUICK;
        else if (strcmp(argv[3], "full") != 0)
            return false;
    }
    p->seed = argc == 5 ? strtoull(argv[4], NULL, 10) : 1;
    return true;
}

long bench_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t flen = strlen(field);
    long value = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            sscanf(line + flen + 1, "%ld", &value);
            break;
        }
    }
    fclose(f);
    return value;
}

void *bench_harness_alloc(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void bench_harness_free(void *p, size_t bytes)
{
    if (p != NULL)
        munmap(p, bytes == 0 ? 1 : bytes);
}

int bench_spawn(unsigned n, pthread_t *ids, void *(*fn)(void *), void *args, size_t stride)
{
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&ids[i], NULL, fn, (char *)args + i * stride) != 0) {
            bench_join(i, ids);
            return -1;
        }
    }
    return 0;
}

void bench_join(unsigned n, pthread_t *ids)
{
    for (unsigned i = 0; i < n; i++)
        pthread_join(ids[i], NULL);
}

int bench_run_threads(unsigned n, void *(*fn)(void *), void *args, size_t stride)
{
    pthread_t ids[256];
    if (n > 256)
        return -1;
    if (bench_spawn(n, ids, fn, args, stride) != 0)
        return -1;
    bench_join(n, ids);
    return 0;
}

size_t bench_hist_size(bench_rng *rng, const bench_size_bucket *hist, size_t count)
{
    unsigned pick = (unsigned)(bench_rng_next(rng) % 1000);
    for (size_t b = 0; b < count; b++) {
        if (pick < hist[b].weight)
            return bench_rng_range(rng, hist[b].lo, hist[b].hi);
        pick -= hist[b].weight;
    }
    return hist[0].lo;
}

void bench_touch_pages(unsigned char *p, size_t n, unsigned char mark)
{
    for (size_t off = 0; off < n; off += 4096)
        p[off] = mark;
    p[n - 1] = mark;
}

int bench_check_pages(const unsigned char *p, size_t n, unsigned char mark)
{
    for (size_t off = 0; off < n; off += 4096)
        if (p[off] != mark)
            return 0;
    return p[n - 1] == mark;
}

int bench_print_result(const char *allocator, const bench_workload *wl, const bench_params *p,
                       const bench_result *r, long base_kib, long hwm_kib)
{
    double ops_per_s = r->seconds > 0 ? (double)r->ops / r->seconds : 0;
    double rss_per_live =
        r->live_peak > 0 ? (double)(hwm_kib - base_kib) * 1024.0 / (double)r->live_peak : 0;
    printf("result\tallocator=%s workload=%s threads=%u scale=%s seed=%llu seconds=%.6f"
           " ops=%llu expected_ops=%llu ops_per_s=%.1f peak_rss_kb=%ld base_rss_kb=%ld"
           " live_peak_kb=%.1f rss_per_live=%.4f failures=%llu",
           allocator, wl->name, p->threads, p->scale == BENCH_FULL ? "full" : "quick",
           (unsigned long long)p->seed, r->seconds, (unsigned long long)r->ops,
           (unsigned long long)r->expected_ops, ops_per_s, hwm_kib, base_kib,
           (double)r->live_peak / 1024.0, rss_per_live, (unsigned long long)r->failures);
    for (int i = 0; i < r->nextra; i++)
        printf(" %s=%.6g", r->extra[i].key, r->extra[i].value);
    printf("\n");
    fflush(stdout);
    if (r->failures != 0 || r->ops != r->expected_ops) {
        fprintf(stderr, "%s %s threads=%u: %llu failures, %llu of %llu ops\n", allocator,
                wl->name, p->threads, (unsigned long long)r->failures,
                (unsigned long long)r->ops, (unsigned long long)r->expected_ops);
        return 1;
    }
    return 0;
}
