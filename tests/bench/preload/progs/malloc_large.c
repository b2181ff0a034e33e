/* malloc-large (mimalloc-bench's "malloc-large"), as described there: large
 * buffers replaced in a loop. Here 8 live buffers of 2-32 MiB; every step
 * frees a random one and allocates another, writing one byte in every page
 * of it, so each new buffer's pages are really backed.
 *
 *   malloc_large [steps=150] [live=8]
 */
#include "prog.h"

#define MIB ((size_t)1 << 20)

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 150;
    int live = argc > 2 ? atoi(argv[2]) : 8;
    if (live < 1 || live > 64)
        DIE("live 1..64");
    unsigned char *buf[64] = {0};
    size_t size[64] = {0};
    uint64_t rng = 7, sum = 0;
    for (long s = 0; s < steps; s++) {
        int k = (int)(rng_next(&rng) % (uint64_t)live);
        if (buf[k]) {
            if (buf[k][0] != (unsigned char)size[k] || buf[k][size[k] - 1] != (unsigned char)k)
                DIE("malloc_large: buffer corrupted");
            free(buf[k]);
        }
        size_t n = 2 * MIB + (size_t)(rng_next(&rng) % (30 * MIB));
        unsigned char *p = malloc(n);
        CHECK_ALLOC(p);
        for (size_t off = 0; off < n; off += 4096)
            p[off] = (unsigned char)(off >> 12);
        p[0] = (unsigned char)n;
        p[n - 1] = (unsigned char)k;
        buf[k] = p;
        size[k] = n;
        sum += n;
    }
    for (int k = 0; k < live; k++)
        free(buf[k]);
    printf("malloc_large: %ld buffers, %llu bytes\n", steps, (unsigned long long)sum);
    return 0;
}
