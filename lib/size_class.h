/*
 * Size classes: 16..256 bytes in 16-byte steps, then four classes per
 * doubling up to 1 MiB (320, 384, 448, 512, 640, ...). The finer steps above
 * 256 keep internal waste under 25% where the original scalloc's powers of
 * two wasted up to 50%. Every class size is a multiple of 16, so every block
 * is 16-byte aligned. size -> class is O(1): a table for n <= 1024, a bit
 * scan above. Finer steps near powers of two were measured and not kept:
 * less rounding, more classes whose free blocks each thread keeps apart
 * (README, Limitations, "Size classes").
 */
#ifndef SCALLOC_SIZE_CLASS_H
#define SCALLOC_SIZE_CLASS_H

#include <stddef.h>
#include <stdint.h>

#define SIZE_CLASS_COUNT 64
#define SIZE_CLASS_TABLE_MAX 1024
#define SIZE_CLASS_MAX ((size_t)1 << 20)

extern const uint32_t size_class_sizes[SIZE_CLASS_COUNT]
    __attribute__((visibility("hidden")));
extern const uint8_t size_class_small_table[SIZE_CLASS_TABLE_MAX / 16 + 1]
    __attribute__((visibility("hidden")));

/* Class of a request of n bytes; n <= SIZE_CLASS_MAX. n = 0 is class 0. */
static inline unsigned size_class_of(size_t n)
{
    if (__builtin_expect(n <= SIZE_CLASS_TABLE_MAX, 1))
        return size_class_small_table[(n + 15) >> 4];
    /* n - 1 lies in [2^b, 2^(b+1)); the two bits below the top one pick
     * the quarter of that doubling. Class 16 is the first above 256. */
    size_t m = n - 1;
    unsigned b = 63u - (unsigned)__builtin_clzll((unsigned long long)m);
    return 16u + (b - 8u) * 4u + (unsigned)((m >> (b - 2u)) & 3u);
}

static inline size_t size_class_block_size(unsigned cls)
{
    return size_class_sizes[cls];
}

#endif /* SCALLOC_SIZE_CLASS_H */
