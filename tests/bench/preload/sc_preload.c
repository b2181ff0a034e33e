/*
 * libscalloc_preload.so: the whole malloc family of a process on ONE scalloc
 * heap, for running unmodified programs under scalloc with LD_PRELOAD:
 *
 *     LD_PRELOAD=/path/libscalloc_preload.so program args...
 *
 * A benchmark tool, not part of the library: scalloc itself never replaces
 * malloc (DESIGN.md). This shim is how outside reviewers will run it, so we
 * run it the same way (tests/bench/preload/run.sh).
 *
 * - One process-wide heap ("preload"), created on the first call.
 * - Bootstrap: calls made while the heap is being created, or while a thread
 *   sets up its frontend (sc_heap_create reads /proc with fopen; a pthread
 *   key's second-level table is calloc'ed), are served from a static bump
 *   arena and never freed; free() ignores those pointers, realloc() copies
 *   them out.
 * - Pointers the heap does not own (neither bootstrap nor heap): free()
 *   ignores them, realloc() returns NULL with ENOMEM, malloc_usable_size()
 *   returns 0; each is counted and one line is printed at exit.
 * - Other misuse found by scalloc (double free, interior pointer, corrupted
 *   metadata) prints one line and aborts, as glibc does.
 * - realloc(p, 0) with p != NULL frees p and returns NULL (glibc's
 *   behaviour; sc_realloc would return a minimal block).
 * - SCALLOC_PRELOAD_STATS=1: the heap's statistics and the shim's counters
 *   on stderr at exit.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <scalloc/scalloc.h>

#define EXPORT __attribute__((visibility("default")))
#define TLS_IE __attribute__((tls_model("initial-exec")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Not declared by glibc's headers any more (removed from the API in 2.26,
 * still called by old programs). */
EXPORT void cfree(void *p);
/* From <malloc.h>, declared here to keep the includes minimal. */
EXPORT void *memalign(size_t alignment, size_t n);
EXPORT void *valloc(size_t n);
EXPORT void *pvalloc(size_t n);
EXPORT size_t malloc_usable_size(void *p);
EXPORT int malloc_trim(size_t pad);
EXPORT void malloc_stats(void);

/* ------------------------------------------------------------------------ */
/* Bootstrap arena                                                          */
/* ------------------------------------------------------------------------ */

#define BOOT_SIZE ((size_t)1 << 20)
#define BOOT_HDR 16 /* each block is preceded by its size */

static _Alignas(4096) unsigned char boot_arena[BOOT_SIZE];
static _Atomic size_t boot_used;
static _Atomic size_t boot_allocs;
static _Atomic size_t boot_failed;

static inline int boot_owns(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return a >= (uintptr_t)boot_arena && a < (uintptr_t)boot_arena + BOOT_SIZE;
}

/* n bytes aligned to align (a power of two), zeroed (the arena is .bss and
 * never reused). Never freed. */
static void *boot_alloc(size_t align, size_t n)
{
    if (align < 16)
        align = 16;
    if (n > BOOT_SIZE) {
        atomic_fetch_add_explicit(&boot_failed, 1, memory_order_relaxed);
        errno = ENOMEM;
        return NULL;
    }
    size_t old = atomic_load_explicit(&boot_used, memory_order_relaxed);
    for (;;) {
        size_t start = (old + BOOT_HDR + align - 1) & ~(align - 1);
        size_t end = start + ((n + 15) & ~(size_t)15);
        if (end > BOOT_SIZE || align > BOOT_SIZE) {
            atomic_fetch_add_explicit(&boot_failed, 1, memory_order_relaxed);
            errno = ENOMEM;
            return NULL;
        }
        if (atomic_compare_exchange_weak_explicit(&boot_used, &old, end, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            unsigned char *p = boot_arena + start;
            memcpy(p - sizeof(size_t), &n, sizeof n);
            atomic_fetch_add_explicit(&boot_allocs, 1, memory_order_relaxed);
            return p;
        }
    }
}

static size_t boot_size(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - sizeof(size_t), sizeof n);
    return n;
}

/* ------------------------------------------------------------------------ */
/* The heap and each thread's setup                                         */
/* ------------------------------------------------------------------------ */

static sc_heap_t *_Atomic the_heap;
static _Atomic int init_state; /* 0 none, 1 in progress, 2 done */
static int print_stats;
/* Its destructor marks the thread as exiting (see free). Created right
 * after scalloc's own thread key, so it runs after scalloc's in each round
 * of thread-exit destructors. */
static pthread_key_t exit_key;

/* The heap, once this thread has its frontend: the fast paths read only
 * this. NULL before, so the first call of each thread takes thread_setup,
 * and NULL again once the thread is exiting. */
static _Thread_local sc_heap_t *tls_heap TLS_IE;
/* Set while this thread creates the heap or its frontend: any call it makes
 * meanwhile is served by the bootstrap arena. */
static _Thread_local int tls_in_setup TLS_IE;
/* Set by exit_key's destructor. */
static _Thread_local int tls_exiting TLS_IE;

static _Atomic size_t foreign_free, foreign_realloc, foreign_usable;

/* Blocks freed where no frontend can be used for them: by a thread in the
 * middle of its setup, or by an exiting thread. libc frees memory after
 * every thread-exit destructor has run (the second-level tables of pthread
 * keys, resolver and strerror buffers); an sc_free there would give the
 * thread a new scalloc frontend that nothing tears down any more, and its
 * batch of remote frees would never be handed over. Such blocks wait on
 * this stack (linked through their first word) until a thread with a
 * frontend frees them: a new thread in its setup, an exiting thread before
 * its frontend is gone, malloc_trim, or the report at exit. Push-only plus
 * take-all, so no ABA. */
static void *_Atomic orphans;
static _Atomic size_t orphans_total;

static void orphan_push(void *p)
{
    void *old = atomic_load_explicit(&orphans, memory_order_relaxed);
    do
        memcpy(p, &old, sizeof old);
    while (!atomic_compare_exchange_weak_explicit(&orphans, &old, p, memory_order_release,
                                                  memory_order_relaxed));
    atomic_fetch_add_explicit(&orphans_total, 1, memory_order_relaxed);
}

/* Frees every waiting block through the calling thread's frontend. */
static void orphans_drain(sc_heap_t *h)
{
    if (atomic_load_explicit(&orphans, memory_order_relaxed) == NULL)
        return;
    void *p = atomic_exchange_explicit(&orphans, NULL, memory_order_acquire);
    while (p) {
        void *next;
        memcpy(&next, p, sizeof next);
        sc_free(h, p);
        p = next;
    }
}

static void on_error(sc_error_t err, const char *call, const char *heap_name, const void *p,
                     void *arg)
{
    (void)arg;
    if (err == SC_ERR_FOREIGN_POINTER && strcmp(call, "sc_free") == 0) {
        if (!boot_owns(p))
            atomic_fetch_add_explicit(&foreign_free, 1, memory_order_relaxed);
        return; /* free does nothing */
    }
    if (err == SC_ERR_FOREIGN_POINTER && strcmp(call, "sc_realloc") == 0) {
        atomic_fetch_add_explicit(&foreign_realloc, 1, memory_order_relaxed);
        errno = ENOMEM;
        return; /* sc_realloc returns NULL, p stays as it was */
    }
    fprintf(stderr, "scalloc-preload: %s(heap \"%s\", %p): %s\n", call, heap_name, p,
            sc_error_string(err));
    fflush(stderr);
    abort();
}

static void thread_exiting(void *arg)
{
    (void)arg;
    sc_heap_t *h = tls_heap;
    tls_exiting = 1;
    tls_heap = NULL;
    /* scalloc's destructor ran before this one in this round: this sc_free
     * gives the thread a frontend again, and scalloc's key with it, so the
     * next round tears it down. */
    if (h)
        orphans_drain(h);
}

static void heap_init(void)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&init_state, &expected, 1)) {
        tls_in_setup = 1;
        const char *s = getenv("SCALLOC_PRELOAD_STATS");
        print_stats = s && *s && strcmp(s, "0") != 0;
        sc_set_error_handler(on_error, NULL);
        sc_heap_config_t cfg = {.name = "preload"};
        sc_heap_t *h = sc_heap_create(&cfg);
        /* The first frontend creates scalloc's pthread key: as early as
         * possible, so that its index stays below 32 and no thread's
         * pthread_setspecific for it has to calloc a second-level table. */
        if (h == NULL || sc_heap_thread(h) == NULL || pthread_key_create(&exit_key, thread_exiting) != 0) {
            static const char msg[] = "scalloc-preload: cannot create the heap\n";
            if (write(2, msg, sizeof msg - 1) < 0) {
            }
            abort();
        }
        atomic_store_explicit(&the_heap, h, memory_order_release);
        atomic_store_explicit(&init_state, 2, memory_order_release);
        tls_in_setup = 0;
        return;
    }
    /* Another thread creates it (it serves its own nested calls from the
     * bootstrap arena, so it cannot be waiting for us). */
    while (atomic_load_explicit(&init_state, memory_order_acquire) != 2)
        sched_yield();
}

/* The heap for this thread's call, or NULL: the call must be served from
 * the bootstrap arena (nested in a setup). An exiting thread gets the heap
 * but keeps taking this path. */
static __attribute__((noinline)) sc_heap_t *thread_setup(void)
{
    if (tls_in_setup)
        return NULL;
    if (atomic_load_explicit(&init_state, memory_order_acquire) != 2) {
        heap_init();
        if (tls_in_setup) /* cannot happen: heap_init clears it */
            return NULL;
    }
    sc_heap_t *h = atomic_load_explicit(&the_heap, memory_order_acquire);
    if (tls_exiting)
        return h;
    /* Creating the frontend creates the thread's scalloc state, whose
     * pthread_setspecific may calloc: nested calls go to the arena. */
    tls_in_setup = 1;
    sc_thread_t *t = sc_heap_thread(h);
    int ok = t != NULL && pthread_setspecific(exit_key, (void *)1) == 0;
    tls_in_setup = 0;
    if (!ok)
        return NULL;
    tls_heap = h;
    orphans_drain(h);
    return h;
}

/* Run before main (and before most other constructors): the heap and the
 * main thread's frontend exist before the program creates pthread keys. */
__attribute__((constructor)) static void shim_init(void)
{
    if (tls_heap == NULL)
        thread_setup();
}

static inline sc_heap_t *heap_get(void)
{
    sc_heap_t *h = tls_heap;
    if (likely(h != NULL))
        return h;
    return thread_setup();
}

/* The heap for a pointer-taking call (free, realloc, usable size): once
 * created it is usable by any thread, setup or not, for pointers it owns.
 * NULL before it exists. */
static inline sc_heap_t *heap_peek(void)
{
    return atomic_load_explicit(&the_heap, memory_order_acquire);
}

/* ------------------------------------------------------------------------ */
/* The malloc family                                                        */
/* ------------------------------------------------------------------------ */

static int is_pow2(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

EXPORT void *malloc(size_t n)
{
    sc_heap_t *h = heap_get();
    if (likely(h != NULL))
        return sc_alloc(h, n);
    return boot_alloc(16, n);
}

/* free without this thread's heap: bootstrap blocks, foreign pointers, a
 * thread in its setup or exiting. Out of line, so that free's own path is
 * a load, a test and a tail call (no frame). */
static __attribute__((noinline)) void free_without_heap(void *p)
{
    if (p == NULL || boot_owns(p))
        return;
    sc_heap_t *h = heap_peek();
    if (h == NULL || !sc_heap_owns(h, p)) {
        atomic_fetch_add_explicit(&foreign_free, 1, memory_order_relaxed);
        return;
    }
    if (tls_in_setup || tls_exiting) {
        orphan_push(p);
        return;
    }
    h = heap_get();
    if (h == NULL) {
        orphan_push(p);
        return;
    }
    sc_free(h, p);
}

EXPORT void free(void *p)
{
    sc_heap_t *h = tls_heap;
    if (likely(h != NULL)) {
        sc_free(h, p); /* foreign pointers: on_error */
        return;
    }
    free_without_heap(p);
}

EXPORT void cfree(void *p) { free(p); }

EXPORT void *calloc(size_t count, size_t size)
{
    sc_heap_t *h = heap_get();
    if (likely(h != NULL))
        return sc_calloc(h, count, size);
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return boot_alloc(16, n); /* zeroed */
}

EXPORT void *realloc(void *p, size_t n)
{
    if (p == NULL)
        return malloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (unlikely(boot_owns(p))) {
        size_t old = boot_size(p);
        void *q = malloc(n);
        if (q)
            memcpy(q, p, old < n ? old : n);
        return q;
    }
    sc_heap_t *h = heap_get();
    if (unlikely(h == NULL)) {
        h = heap_peek();
        if (h != NULL && sc_heap_owns(h, p)) {
            /* Nested in a setup: move out by hand rather than recurse. */
            size_t old = sc_usable_size(h, p);
            void *q = boot_alloc(16, n);
            if (q) {
                memcpy(q, p, old < n ? old : n);
                orphan_push(p);
            }
            return q;
        }
    }
    if (unlikely(h == NULL)) {
        atomic_fetch_add_explicit(&foreign_realloc, 1, memory_order_relaxed);
        errno = ENOMEM;
        return NULL;
    }
    return sc_realloc(h, p, n); /* foreign pointers: on_error */
}

EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

/* align: a power of two. */
static void *aligned(size_t align, size_t n)
{
    sc_heap_t *h = heap_get();
    if (likely(h != NULL))
        return align <= 16 ? sc_alloc(h, n) : sc_aligned_alloc(h, align, n);
    return boot_alloc(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (!is_pow2(align) || align % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned(align, n);
    if (p == NULL) {
        int e = errno ? errno : ENOMEM;
        errno = saved;
        return e;
    }
    errno = saved;
    *out = p;
    return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, n);
}

/* glibc: any alignment, rounded up to a power of two. */
EXPORT void *memalign(size_t align, size_t n)
{
    if (align > ((size_t)1 << (sizeof(size_t) * 8 - 1))) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_pow2(align)) {
        size_t a = 16;
        while (a < align)
            a <<= 1;
        align = a;
    }
    return aligned(align, n);
}

static size_t page_size(void)
{
    static _Atomic size_t page;
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (p == 0) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

EXPORT void *valloc(size_t n) { return aligned(page_size(), n); }

EXPORT void *pvalloc(size_t n)
{
    size_t page = page_size();
    if (n > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    n = n ? (n + page - 1) & ~(page - 1) : page;
    return aligned(page, n);
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    if (boot_owns(p))
        return boot_size(p);
    sc_heap_t *h = heap_peek();
    if (h == NULL || !sc_heap_owns(h, p)) {
        atomic_fetch_add_explicit(&foreign_usable, 1, memory_order_relaxed);
        return 0;
    }
    return sc_usable_size(h, p);
}

EXPORT int malloc_trim(size_t pad)
{
    (void)pad;
    sc_heap_t *h = heap_get();
    if (h == NULL)
        return 0;
    if (!tls_exiting)
        orphans_drain(h);
    sc_heap_trim(h);
    return 1;
}

static void print_counters(void)
{
    fprintf(stderr,
            "scalloc-preload: bootstrap %zu blocks, %zu bytes, %zu refused; %zu frees deferred; "
            "foreign pointers: free %zu, realloc %zu, malloc_usable_size %zu\n",
            atomic_load(&boot_allocs), atomic_load(&boot_used), atomic_load(&boot_failed),
            atomic_load(&orphans_total),
            atomic_load(&foreign_free), atomic_load(&foreign_realloc),
            atomic_load(&foreign_usable));
}

EXPORT void malloc_stats(void)
{
    sc_heap_t *h = heap_peek();
    if (h)
        sc_heap_print_stats(h, stderr, SC_STATS_TEXT);
    print_counters();
}

__attribute__((destructor)) static void at_exit_report(void)
{
    sc_heap_t *h = heap_peek();
    if (h && tls_heap == h)
        orphans_drain(h);
    if (print_stats) {
        if (h)
            sc_heap_print_stats(h, stderr, SC_STATS_TEXT);
        print_counters();
        return;
    }
    if (atomic_load(&foreign_free) || atomic_load(&foreign_realloc) ||
        atomic_load(&foreign_usable) || atomic_load(&boot_failed))
        print_counters();
}
