/* The process-wide address map. */
#include "address_map.h"

#include <sys/mman.h>

#include "os.h"

_Atomic uintptr_t *address_map;

static pthread_once_t map_once = PTHREAD_ONCE_INIT;
/* When the map could only be reserved read-only (strict overcommit refuses
 * a 512 MiB writable reservation), pages are made writable as regions are
 * registered. Reads of never-written pages see zeros either way. */
static bool map_read_only;

static void address_map_create(void)
{
    size_t bytes = MAP_ENTRIES * sizeof(uintptr_t);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        p = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
        if (p == MAP_FAILED)
            return;
        map_read_only = true;
    }
    address_map = p;
}

bool address_map_init(void)
{
    pthread_once(&map_once, address_map_create);
    return address_map != NULL;
}

bool address_map_set_range(const void *base, size_t size, uintptr_t word)
{
    size_t first = (uintptr_t)base >> SPAN_SHIFT;
    size_t count = size >> SPAN_SHIFT;
    if (map_read_only && word != 0) {
        size_t page = os_page_size();
        uintptr_t lo = (uintptr_t)&address_map[first] & ~(uintptr_t)(page - 1);
        uintptr_t hi = ((uintptr_t)&address_map[first + count] + page - 1) & ~(uintptr_t)(page - 1);
        if (!os_commit((void *)lo, hi - lo))
            return false;
    }
    for (size_t i = 0; i < count; i++)
        atomic_store_explicit(&address_map[first + i], word, memory_order_release);
    return true;
}
