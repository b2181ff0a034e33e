/* Shared bits of the preload benchmark programs: standalone C programs that
 * use only plain malloc/free, so that LD_PRELOAD routes them to whichever
 * allocator is under test. Each does a fixed amount of work, verifies what
 * it wrote, and prints one line whose checksum depends only on the work
 * (never on addresses or timing), so run.sh can compare it across
 * allocators. Exit status 0 = every check passed. */
#ifndef PRELOAD_PROG_H
#define PRELOAD_PROG_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: good enough, one word of state, any seed. */
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * UINT64_C(0x100000001B3);
}

#define DIE(...)                                                                              \
    do {                                                                                      \
        fprintf(stderr, __VA_ARGS__);                                                         \
        fputc('\n', stderr);                                                                  \
        exit(1);                                                                              \
    } while (0)

#define CHECK_ALLOC(p)                                                                        \
    do {                                                                                      \
        if ((p) == NULL)                                                                      \
            DIE("%s:%d: allocation failed", __FILE__, __LINE__);                             \
    } while (0)

/* Writes a mark derived from (tag, size) at both ends of a block of n >= 1
 * bytes (and the tag itself at offset 8 when n >= 24); check_mark verifies it. */
static inline void put_mark(unsigned char *p, size_t n, uint64_t tag)
{
    p[0] = (unsigned char)(tag ^ n);
    p[n - 1] = (unsigned char)((tag >> 8) ^ (n >> 3));
    if (n >= 24)
        memcpy(p + 8, &tag, 8);
}

static inline int check_mark(const unsigned char *p, size_t n, uint64_t tag)
{
    if (p[0] != (unsigned char)(tag ^ n) || p[n - 1] != (unsigned char)((tag >> 8) ^ (n >> 3)))
        return 0;
    if (n >= 24) {
        uint64_t t;
        memcpy(&t, p + 8, 8);
        if (t != tag)
            return 0;
    }
    return 1;
}

#endif
