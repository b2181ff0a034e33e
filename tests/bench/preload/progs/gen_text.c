/* Writes a deterministic text file for the everyday-tool runs (sort, gzip,
 * xz): lines of 1-12 pseudo-random words from a small vocabulary, with a
 * number in most lines, until `bytes` bytes are written to stdout.
 *
 *   gen_text BYTES [seed=1]
 */
#include "prog.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        DIE("usage: gen_text BYTES [seed]");
    long long want = atoll(argv[1]);
    uint64_t rng = argc > 2 ? (uint64_t)atoll(argv[2]) : 1;
    static const char *const syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi",
                                      "bra", "chu", "dre", "fli", "gno", "pha", "str", "qu",
                                      "x", "y", "om", "el", "an", "is", "ur"};
    const int nsyl = (int)(sizeof syl / sizeof *syl);
    static char line[1024];
    long long written = 0;
    while (written < want) {
        uint64_t r = rng_next(&rng);
        int words = 1 + (int)(r % 12), len = 0;
        for (int w = 0; w < words; w++) {
            uint64_t q = rng_next(&rng);
            int syls = 1 + (int)(q % 4);
            for (int s = 0; s < syls; s++) {
                const char *t = syl[(q >> (8 + 5 * s)) % (uint64_t)nsyl];
                size_t tl = strlen(t);
                memcpy(line + len, t, tl);
                len += (int)tl;
            }
            line[len++] = ' ';
        }
        if ((r >> 40) % 4 != 0)
            len += sprintf(line + len, "%llu", (unsigned long long)((r >> 20) % 1000000));
        line[len++] = '\n';
        fwrite(line, 1, (size_t)len, stdout);
        written += len;
    }
    return 0;
}
