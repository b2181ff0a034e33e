/*
 * A program outside the scalloc tree that only sees the installed package:
 * it must compile against the installed header and link against the
 * installed library, found through pkg-config or find_package. Exit status
 * 0 means every step worked.
 */
#include <scalloc/scalloc.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    sc_heap_t *heap = sc_heap_create(NULL);
    if (heap == NULL) {
        fprintf(stderr, "consumer: sc_heap_create failed\n");
        return 1;
    }

    enum { NUM_BLOCKS = 64 };
    unsigned char *blocks[NUM_BLOCKS];
    for (size_t i = 0; i < NUM_BLOCKS; i++) {
        size_t size = 16 * (i + 1);
        blocks[i] = sc_alloc(heap, size);
        if (blocks[i] == NULL) {
            fprintf(stderr, "consumer: sc_alloc(%zu) failed\n", size);
            return 1;
        }
        /* Write the whole block, so a block that is too small or overlaps
         * another one shows up in the check below. */
        memset(blocks[i], (int)i, size);
    }
    for (size_t i = 0; i < NUM_BLOCKS; i++) {
        size_t size = 16 * (i + 1);
        for (size_t j = 0; j < size; j++) {
            if (blocks[i][j] != (unsigned char)i) {
                fprintf(stderr, "consumer: block %zu corrupted at byte %zu\n", i, j);
                return 1;
            }
        }
        sc_free(heap, blocks[i]);
    }

    sc_heap_destroy(heap);
    printf("consumer: scalloc %d.%d.%d ok\n", SCALLOC_VERSION_MAJOR,
           SCALLOC_VERSION_MINOR, SCALLOC_VERSION_PATCH);
    return 0;
}
