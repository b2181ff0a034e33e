/* Metadata memory (meta.h). */
#include "meta.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "os.h"
#include "tuning.h"

#define META_CLASSES (META_MAX_SHIFT - META_MIN_SHIFT + 1)

typedef struct meta_free_s {
    struct meta_free_s *next;
} meta_free_t;

static pthread_mutex_t meta_mutex = PTHREAD_MUTEX_INITIALIZER;
static meta_free_t *free_lists[META_CLASSES];
static char *chunk_cur, *chunk_end; /* carving: what is left of the newest chunk */

void meta_lock(void) { pthread_mutex_lock(&meta_mutex); }
void meta_unlock(void) { pthread_mutex_unlock(&meta_mutex); }

static unsigned meta_class(size_t size)
{
    unsigned shift = META_MIN_SHIFT;
    while (((size_t)1 << shift) < size)
        shift++;
    return shift - META_MIN_SHIFT;
}

static size_t block_align(size_t bytes)
{
    size_t page = os_page_size();
    return bytes < page ? bytes : page;
}

/* Under the lock: a block of `bytes` cut from the newest chunk, or NULL if
 * it does not fit there. */
static void *cut(size_t bytes)
{
    size_t align = block_align(bytes);
    uintptr_t p = ((uintptr_t)chunk_cur + align - 1) & ~(uintptr_t)(align - 1);
    if (chunk_cur == NULL || p + bytes > (uintptr_t)chunk_end)
        return NULL;
    chunk_cur = (char *)(p + bytes);
    return (void *)p;
}

/* Under the lock: a fresh block of class cls. When the newest chunk is too
 * full, what is left of it goes to the free lists in the largest blocks
 * that fit (nothing is lost) and a new chunk is mapped. */
static void *carve(unsigned cls)
{
    size_t bytes = (size_t)1 << (cls + META_MIN_SHIFT);
    void *p = cut(bytes);
    if (p != NULL)
        return p;
    for (unsigned c = cls; c-- > 0;) {
        meta_free_t *f;
        while ((f = cut((size_t)1 << (c + META_MIN_SHIFT))) != NULL) {
            f->next = free_lists[c];
            free_lists[c] = f;
        }
    }
    char *chunk = os_alloc_metadata(META_CHUNK);
    if (chunk == NULL)
        return NULL;
    chunk_cur = chunk;
    chunk_end = chunk + META_CHUNK;
    return cut(bytes);
}

void *meta_alloc(size_t size)
{
    if (size > ((size_t)1 << META_MAX_SHIFT))
        return os_alloc_metadata(size); /* fresh mappings read as zero */
    unsigned cls = meta_class(size);
    pthread_mutex_lock(&meta_mutex);
    void *p = free_lists[cls];
    bool reused = p != NULL;
    if (reused)
        free_lists[cls] = free_lists[cls]->next;
    else
        p = carve(cls);
    pthread_mutex_unlock(&meta_mutex);
    /* A block never handed out lies in a fresh mapping and reads as zero:
     * clearing it would only make all its pages resident (a 256 KiB block
     * of heap handles of which a program uses one). */
    if (reused)
        memset(p, 0, (size_t)1 << (cls + META_MIN_SHIFT));
    return p;
}

void meta_free(void *p, size_t size)
{
    if (p == NULL)
        return;
    if (size > ((size_t)1 << META_MAX_SHIFT)) {
        os_free_metadata(p, size);
        return;
    }
    unsigned cls = meta_class(size);
    meta_free_t *f = p;
    pthread_mutex_lock(&meta_mutex);
    f->next = free_lists[cls];
    free_lists[cls] = f;
    pthread_mutex_unlock(&meta_mutex);
}
