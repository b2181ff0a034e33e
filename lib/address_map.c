/* The process-wide address map and span header table (address_map.h). */
#include "address_map.h"

#include "os.h"

_Atomic uintptr_t *address_map;
uintptr_t span_table_origin;

static pthread_once_t map_once = PTHREAD_ONCE_INIT;
/* When the map and the table (one mapping) could only be reserved
 * read-only (strict overcommit refuses a big writable reservation), pages
 * are made writable as regions are registered. Reads of never-written
 * pages see zeros either way. */
static bool read_only;
/* The addresses the header table covers: [table_lo, table_hi). The whole
 * user address space, or under an address-space limit a window of the
 * limit's size that every region is placed in. */
static uintptr_t table_lo, table_hi;

/* Where a window goes when the whole table cannot be reserved: an eighth
 * of the way up the 47-bit user address space, far above the program and
 * its brk heap and far below where the kernel puts mappings by default
 * (from the top down), so the window stays free of other mappings. */
#define WINDOW_BASE ((uintptr_t)1 << (ADDRESS_BITS - 3))

/* Reserves the map and, right after it in the same mapping (one system
 * call), the header table for the spans of [lo, hi). */
static bool map_and_table_reserve(uintptr_t lo, uintptr_t hi)
{
    size_t map_bytes = MAP_ENTRIES * sizeof(uintptr_t);
    size_t table_bytes = (size_t)((hi - lo) >> SPAN_SHIFT) << SPAN_HEADER_SHIFT;
    bool writable = false;
    char *p = os_reserve_table(map_bytes + table_bytes, &writable);
    if (p == NULL)
        return false;
    read_only = !writable;
    table_lo = lo;
    table_hi = hi;
    span_table_origin = (uintptr_t)(p + map_bytes) - ((lo >> SPAN_SHIFT) << SPAN_HEADER_SHIFT);
    address_map = (_Atomic uintptr_t *)(void *)p;
    return true;
}

static void address_map_create(void)
{
    /* The table for the whole user address space (8 GiB of address space),
     * else for a window as big as the address-space limit allows spans to
     * be. */
    if (map_and_table_reserve(0, (uintptr_t)1 << ADDRESS_BITS))
        return;
    size_t limit = os_address_space_limit();
    if (limit == SIZE_MAX)
        return;
    size_t window = limit < ((size_t)1 << (ADDRESS_BITS - 3)) ? limit : (size_t)1 << (ADDRESS_BITS - 3);
    window = (window + SPAN_SIZE - 1) & ~(SPAN_SIZE - 1);
    (void)map_and_table_reserve(WINDOW_BASE, WINDOW_BASE + window);
}

bool address_map_init(void)
{
    pthread_once(&map_once, address_map_create);
    return address_map != NULL;
}

bool address_map_window(char **lo, char **hi)
{
    if (table_lo == 0 && table_hi == (uintptr_t)1 << ADDRESS_BITS)
        return false;
    *lo = (char *)table_lo;
    *hi = (char *)table_hi;
    return true;
}

/* Whole-range changes (a region registered or dropped) are rare and take
 * this lock, so that releasing a page of zeros below cannot race with a
 * region being registered on the same page. Single-word changes need no
 * lock: they only happen inside registered regions, whose words are never
 * zero, so a page holding one is never released. */
static pthread_mutex_t range_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether the map words of spans [first, first + count) are all 0. */
static bool words_zero(size_t first, size_t count)
{
    for (size_t i = first; i < first + count && i < MAP_ENTRIES; i++)
        if (atomic_load_explicit(&address_map[i], memory_order_relaxed) != 0)
            return false;
    return true;
}

/* Pages [first_page, last_page) of a table whose page pg holds the entries
 * of spans [pg * per_page, (pg + 1) * per_page): those whose spans all have
 * word 0 join batch b, neighbouring pages as one range. */
static void release_pages_of_unused_spans(os_release_batch_t *b, char *table, size_t per_page,
                                          size_t first_page, size_t last_page)
{
    size_t page = os_page_size();
    char *run = NULL;
    for (size_t pg = first_page; pg < last_page; pg++) {
        char *at = table + pg * page;
        if (words_zero(pg * per_page, per_page)) {
            if (run == NULL)
                run = at;
            continue;
        }
        if (run)
            os_release_batch_add(b, run, (size_t)(at - run));
        run = NULL;
    }
    if (run)
        os_release_batch_add(b, run, (size_t)(table + last_page * page - run));
}

/* After a range was cleared: map pages that hold only zeros go back to the
 * OS (they read as zeros again), and so do the header table's pages whose
 * spans are none of any heap any more, so that creating and destroying
 * many heaps does not leave either resident. */
static void release_zero_pages(size_t first, size_t count)
{
    os_release_batch_t batch = {.n = 0}; /* both tables' pages in one call */
    size_t page = os_page_size();
    size_t per_page = page / sizeof(uintptr_t);
    release_pages_of_unused_spans(&batch, (char *)address_map, per_page, first / per_page,
                                  (first + count + per_page - 1) / per_page);
    /* The table's page pg (counted from span 0, whatever part of the
     * address space the table covers) holds page >> SPAN_HEADER_SHIFT
     * headers. */
    per_page = page >> SPAN_HEADER_SHIFT;
    size_t lo = first / per_page, hi = (first + count + per_page - 1) / per_page;
    size_t table_first = (table_lo >> SPAN_SHIFT) / per_page;
    size_t table_end = (table_hi >> SPAN_SHIFT) / per_page;
    if (lo < table_first)
        lo = table_first;
    if (hi > table_end)
        hi = table_end;
    if (lo < hi)
        release_pages_of_unused_spans(&batch, (char *)span_table_origin, per_page, lo, hi);
    os_release_batch_flush(&batch);
}

void address_map_lock_ranges(void) { pthread_mutex_lock(&range_lock); }
void address_map_unlock_ranges(void) { pthread_mutex_unlock(&range_lock); }

/* Under range_lock: makes [lo, hi) writable (rounded out to pages) where
 * it was reserved read-only. */
static bool make_writable(uintptr_t lo, uintptr_t hi)
{
    if (!read_only)
        return true;
    size_t page = os_page_size();
    lo &= ~(uintptr_t)(page - 1);
    hi = (hi + page - 1) & ~(uintptr_t)(page - 1);
    return os_commit((void *)lo, hi - lo);
}

bool address_map_set_range(const void *base, size_t size, uintptr_t word)
{
    size_t first = (uintptr_t)base >> SPAN_SHIFT;
    size_t count = size >> SPAN_SHIFT;
    pthread_mutex_lock(&range_lock);
    if (word != 0 && !make_writable((uintptr_t)&address_map[first],
                                    (uintptr_t)&address_map[first + count])) {
        pthread_mutex_unlock(&range_lock);
        return false;
    }
    for (size_t i = 0; i < count; i++)
        atomic_store_explicit(&address_map[first + i], word, memory_order_release);
    if (word == 0)
        release_zero_pages(first, count);
    pthread_mutex_unlock(&range_lock);
    return true;
}

bool address_map_headers_writable(const void *base, size_t size)
{
    pthread_mutex_lock(&range_lock);
    bool ok = make_writable((uintptr_t)span_at(base),
                            (uintptr_t)span_at((const char *)base + size));
    pthread_mutex_unlock(&range_lock);
    return ok;
}
