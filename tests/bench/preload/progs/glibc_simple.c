/* glibc-simple (glibc's benchtests/bench-malloc-simple.c, also in
 * mimalloc-bench), as described there: one thread allocates a batch of
 * blocks of one size and frees them all, over and over, for batches of
 * 25, 100, 400 and 1600 blocks and sizes from 16 B to 4 KiB.
 *
 *   glibc_simple [pairs per (size, batch) point=250000]
 */
#include "prog.h"

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 250000;
    static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096};
    static const int batches[] = {25, 100, 400, 1600};
    static void *blk[1600];
    uint64_t sum = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
            int b = batches[bi];
            for (long done = 0; done < pairs; done += b) {
                for (int i = 0; i < b; i++) {
                    unsigned char *p = malloc(sizes[si]);
                    CHECK_ALLOC(p);
                    p[0] = (unsigned char)i;
                    blk[i] = p;
                }
                for (int i = 0; i < b; i++) {
                    sum += *(unsigned char *)blk[i];
                    free(blk[i]);
                }
            }
        }
    }
    printf("glibc_simple: %ld pairs per point: %llu\n", pairs, (unsigned long long)sum);
    return 0;
}
