/* The process-wide address map. */
#include "address_map.h"


#include "os.h"

_Atomic uintptr_t *address_map;

static pthread_once_t map_once = PTHREAD_ONCE_INIT;
/* When the map could only be reserved read-only (strict overcommit refuses
 * a 512 MiB writable reservation), pages are made writable as regions are
 * registered. Reads of never-written pages see zeros either way. */
static bool map_read_only;

static void address_map_create(void)
{
    bool writable = false;
    void *p = os_reserve_table(MAP_ENTRIES * sizeof(uintptr_t), &writable);
    if (p == NULL)
        return;
    map_read_only = !writable;
    address_map = p;
}

bool address_map_init(void)
{
    pthread_once(&map_once, address_map_create);
    return address_map != NULL;
}

/* Whole-range changes (a region registered or dropped) are rare and take
 * this lock, so that releasing a page of zeros below cannot race with a
 * region being registered on the same page. Single-word changes need no
 * lock: they only happen inside registered regions, whose words are never
 * zero, so a page holding one is never released. */
static pthread_mutex_t range_lock = PTHREAD_MUTEX_INITIALIZER;

/* After a range was cleared: map pages that hold only zeros go back to the
 * OS (they read as zeros again), so that creating and destroying many
 * heaps does not leave the map's pages resident. */
static void release_zero_pages(size_t first, size_t count)
{
    size_t page = os_page_size();
    size_t per_page = page / sizeof(uintptr_t);
    size_t lo = first / per_page, hi = (first + count + per_page - 1) / per_page;
    for (size_t pg = lo; pg < hi; pg++) {
        _Atomic uintptr_t *words = &address_map[pg * per_page];
        bool zero = true;
        for (size_t i = 0; i < per_page && zero; i++)
            zero = atomic_load_explicit(&words[i], memory_order_relaxed) == 0;
        if (zero)
            os_release((void *)words, page);
    }
}

void address_map_lock_ranges(void) { pthread_mutex_lock(&range_lock); }
void address_map_unlock_ranges(void) { pthread_mutex_unlock(&range_lock); }

bool address_map_set_range(const void *base, size_t size, uintptr_t word)
{
    size_t first = (uintptr_t)base >> SPAN_SHIFT;
    size_t count = size >> SPAN_SHIFT;
    pthread_mutex_lock(&range_lock);
    if (map_read_only && word != 0) {
        size_t page = os_page_size();
        uintptr_t lo = (uintptr_t)&address_map[first] & ~(uintptr_t)(page - 1);
        uintptr_t hi = ((uintptr_t)&address_map[first + count] + page - 1) & ~(uintptr_t)(page - 1);
        if (!os_commit((void *)lo, hi - lo)) {
            pthread_mutex_unlock(&range_lock);
            return false;
        }
    }
    for (size_t i = 0; i < count; i++)
        atomic_store_explicit(&address_map[first + i], word, memory_order_release);
    if (word == 0)
        release_zero_pages(first, count);
    pthread_mutex_unlock(&range_lock);
    return true;
}
