/*
 * layout_probe: what the address-space layout of spans costs a program that
 * reads its objects at random, without any allocator in the way.
 *
 * N pieces of 32 KiB (a real span of the small classes) are written once,
 * either each at the start of its own 2 MiB (scalloc's layout: one virtual
 * span per real span) or back to back (a layout that packs real spans), and
 * then read one byte at a time at random offsets. Both touch the same bytes
 * and the same number of pages; the sparse layout needs one page-table page
 * (and one page-directory entry in the walker's caches) per piece, the
 * packed one one per 64 pieces. Transparent huge pages are turned off for
 * the mapping, as scalloc does.
 *
 *   layout_probe [--pieces 128,512,1024,2048] [--reads N] [--reps R]
 *
 * Prints one markdown row per piece count: ns per random read, sparse and
 * packed (the best of R repetitions of N reads each).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PIECE ((size_t)32 << 10)
#define SPAN ((size_t)2 << 20)

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ns per read over n pieces `stride` bytes apart. */
static double probe(size_t n, size_t stride, long reads)
{
    size_t bytes = n * stride + SPAN;
    char *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    char *base = (char *)(((uintptr_t)map + SPAN - 1) & ~(uintptr_t)(SPAN - 1));
    madvise(base, n * stride, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < n; i++)
        memset(base + i * stride, (int)(i & 0xff) | 1, PIECE);
    uint64_t x = 88172645463325252ull, sum = 0;
    double t0 = now_seconds();
    for (long r = 0; r < reads; r++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum += (unsigned char)base[(x % n) * stride + (x >> 32) % PIECE];
    }
    double t = now_seconds() - t0;
    munmap(map, bytes);
    if (sum == 0)
        fprintf(stderr, "layout_probe: read nothing\n");
    return t * 1e9 / (double)reads;
}

int main(int argc, char **argv)
{
    const char *pieces = "128,512,1024,2048";
    long reads = 20000000;
    int reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--pieces") == 0)
            pieces = argv[i + 1];
        else if (strcmp(argv[i], "--reads") == 0)
            reads = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [--pieces N,N...] [--reads N] [--reps R]\n", argv[0]);
            return 64;
        }
    }
    if (reads < 1 || reps < 1) {
        fprintf(stderr, "layout_probe: --reads and --reps must be positive\n");
        return 64;
    }
    printf("| pieces of 32 KiB | data | sparse: one per 2 MiB (ns/read) | packed (ns/read) | sparse / packed |\n");
    printf("|---:|---:|---:|---:|---:|\n");
    for (const char *p = pieces; *p;) {
        size_t n = strtoul(p, NULL, 10);
        if (n == 0) {
            fprintf(stderr, "layout_probe: bad --pieces\n");
            return 64;
        }
        double sparse = 0, packed = 0;
        for (int r = 0; r < reps; r++) {
            double s = probe(n, SPAN, reads), c = probe(n, PIECE, reads);
            if (r == 0 || s < sparse)
                sparse = s;
            if (r == 0 || c < packed)
                packed = c;
        }
        printf("| %zu | %zu MiB | %.2f | %.2f | %.2f |\n", n, n * PIECE >> 20, sparse, packed,
               sparse / packed);
        const char *comma = strchr(p, ',');
        p = comma ? comma + 1 : p + strlen(p);
    }
    return 0;
}
