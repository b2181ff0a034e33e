/*
 * Run under valgrind memcheck by tests/memcheck/run.sh against a build with
 * -DSCALLOC_VALGRIND=ON: each mode makes one mistake that memcheck must
 * report (the memory checkers' part of scalloc.h's "Errors", see
 * tests/test_annotations.c for ASan): a write to a freed block, a write past the end
 * of a block into a free neighbour, a read of a block of a destroyed heap.
 * Mode "clean" makes none and must run without a report.
 */
#include <scalloc/scalloc.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "clean";
    sc_heap_t *h = sc_heap_create(NULL);
    if (h == NULL)
        return 2;
    char *p = sc_alloc(h, 64);
    char *q = sc_alloc(h, 64);
    if (p == NULL || q == NULL)
        return 2;
    memset(p, 1, 64);
    memset(q, 2, 64);
    volatile char *v;
    if (strcmp(mode, "use-after-free") == 0) {
        sc_free(h, p);
        v = p;
        v[40] = 3;
    } else if (strcmp(mode, "overflow") == 0) {
        /* q's neighbour after it has never been handed out. */
        v = q;
        v[sc_usable_size(h, q)] = 4;
    } else if (strcmp(mode, "destroyed") == 0) {
        char *big = sc_alloc(h, 100);
        memset(big, 5, 100);
        sc_heap_destroy(h);
        h = NULL;
        v = big;
        printf("%d\n", v[10]);
    }
    if (h) {
        sc_free(h, q);
        if (strcmp(mode, "use-after-free") != 0)
            sc_free(h, p);
        sc_heap_destroy(h);
    }
    return 0;
}
