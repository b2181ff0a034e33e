/* Every entry point of the malloc family, as a program would call it; run
 * under the shim by ctest (LD_PRELOAD=libscalloc_preload.so,
 * SCALLOC_PRELOAD_EXPECT=1). Its expectations are the shim's, which glibc
 * malloc meets too (the other peers differ: 8-byte alignment for small
 * blocks, memalign with an alignment that is not a power of two...):
 *
 *   LD_PRELOAD=.../libscalloc_preload.so SCALLOC_PRELOAD_EXPECT=1 ./preload_selftest
 *
 * With SCALLOC_PRELOAD_EXPECT=1 it also checks that malloc comes from the
 * shim and that freeing a pointer the heap does not own is survived. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(c)                                                                              \
    do {                                                                                      \
        if (!(c)) {                                                                           \
            fprintf(stderr, "selftest: %s:%d: %s\n", __FILE__, __LINE__, #c);                 \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

/* volatile: the compiler must not see (and warn about) impossible sizes. */
static volatile size_t huge_n = SIZE_MAX, half_n = SIZE_MAX / 2, odd_align = 24;

static int aligned_to(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

#define NKEYS 100
static pthread_key_t keys[NKEYS];

static void *thread_main(void *arg)
{
    /* Many keys: the second-level key tables of glibc are calloc'ed. */
    for (int i = 0; i < NKEYS; i++)
        pthread_setspecific(keys[i], arg);
    void **blocks = arg;
    for (int i = 0; i < 1000; i++)
        free(blocks[i]); /* the main thread's blocks */
    char *p = malloc(100);
    CHECK(p != NULL);
    return p; /* freed by main */
}

static void key_dtor(void *v) { (void)v; free(malloc(32)); }

int main(void)
{
    const char *expect = getenv("SCALLOC_PRELOAD_EXPECT");
    int shim = expect && strcmp(expect, "1") == 0;

    if (shim) {
        Dl_info info;
        CHECK(dladdr((void *)(uintptr_t)&malloc, &info) != 0 && info.dli_fname &&
              strstr(info.dli_fname, "scalloc_preload") != NULL);
    }

    /* malloc / free / usable size */
    void *z = malloc(0);
    CHECK(z != NULL);
    free(z);
    free(NULL);
    for (size_t n = 1; n < ((size_t)8 << 20); n = n * 3 + 1) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL && aligned_to(p, 16));
        CHECK(malloc_usable_size(p) >= n);
        memset(p, 0xab, n);
        free(p);
    }
    CHECK(malloc_usable_size(NULL) == 0);
    errno = 0;
    CHECK(malloc(huge_n) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(half_n) == NULL && errno == ENOMEM);

    /* calloc */
    unsigned char *c = calloc(1000, 100);
    CHECK(c != NULL);
    int zero = 1;
    for (size_t i = 0; i < 100000; i++)
        zero &= c[i] == 0;
    CHECK(zero);
    memset(c, 1, 100000);
    free(c);
    c = calloc(1000, 100); /* reused memory must be zeroed too */
    zero = 1;
    for (size_t i = 0; i < 100000; i++)
        zero &= c[i] == 0;
    CHECK(zero);
    free(c);
    errno = 0;
    CHECK(calloc(half_n, 3) == NULL && errno == ENOMEM);

    /* realloc */
    char *r = realloc(NULL, 10);
    CHECK(r != NULL);
    memcpy(r, "0123456789", 10);
    r = realloc(r, 100000);
    CHECK(r && memcmp(r, "0123456789", 10) == 0);
    r = realloc(r, 5);
    CHECK(r && memcmp(r, "01234", 5) == 0);
    r = realloc(r, (size_t)3 << 20);
    CHECK(r && memcmp(r, "01234", 5) == 0);
    errno = 0;
    char *r2 = realloc(r, half_n);
    CHECK(r2 == NULL && errno == ENOMEM && memcmp(r, "01234", 5) == 0);
    errno = 0;
    char *volatile kept = r; /* (gcc cannot tell that the failed call kept r) */
    r2 = reallocarray(kept, half_n, 4);
    CHECK(r2 == NULL && errno == ENOMEM);
    r = reallocarray(kept, 10, 10);
    CHECK(r && memcmp(r, "01234", 5) == 0);
    free(r);

    /* aligned families */
    void *a = NULL;
    CHECK(posix_memalign(&a, odd_align / 8, 10) == EINVAL && a == NULL);
    CHECK(posix_memalign(&a, odd_align / 6, 10) == EINVAL); /* not a multiple of sizeof(void *) */
    for (size_t al = sizeof(void *); al <= ((size_t)4 << 20); al *= 2) {
        a = NULL;
        CHECK(posix_memalign(&a, al, 100) == 0 && a && aligned_to(a, al));
        free(a);
        a = aligned_alloc(al, al * 2);
        CHECK(a && aligned_to(a, al));
        free(a);
        a = memalign(al, 7);
        CHECK(a && aligned_to(a, al));
        free(a);
    }
    if (shim) { /* glibc 2.36 takes it as memalign does; 2.38 refuses it too */
        errno = 0;
        CHECK(aligned_alloc(odd_align, 48) == NULL && errno == EINVAL);
    }
    a = memalign(odd_align, 10); /* glibc: rounded up to 32 */
    CHECK(a && aligned_to(a, 32));
    free(a);
    long page = sysconf(_SC_PAGESIZE);
    a = valloc(10);
    CHECK(a && aligned_to(a, (size_t)page));
    free(a);
    a = pvalloc(10);
    CHECK(a && aligned_to(a, (size_t)page) && malloc_usable_size(a) >= (size_t)page);
    free(a);
    CHECK(posix_memalign(&a, 64, half_n) == ENOMEM);

    /* threads: remote frees, many pthread keys, a key destructor that
     * allocates during thread exit */
    for (int i = 0; i < NKEYS; i++)
        CHECK(pthread_key_create(&keys[i], i == NKEYS - 1 ? key_dtor : NULL) == 0);
    for (int round = 0; round < 20; round++) {
        void **blocks = malloc(1000 * sizeof *blocks);
        for (int i = 0; i < 1000; i++)
            blocks[i] = malloc((size_t)(16 + i * 7));
        pthread_t th;
        CHECK(pthread_create(&th, NULL, thread_main, blocks) == 0);
        void *ret = NULL;
        pthread_join(th, &ret);
        CHECK(ret != NULL);
        free(ret);
        free(blocks);
    }

    /* fork: the child allocates and frees the parent's blocks */
    char *before = strdup("inherited");
    pid_t pid = fork();
    if (pid == 0) {
        int ok = strcmp(before, "inherited") == 0;
        free(before);
        for (int i = 0; i < 10000; i++)
            free(malloc((size_t)i));
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(before);

    if (shim) {
        /* Not the heap's: ignored and counted (one line at exit). */
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        free((char *)m + 16);
        CHECK(malloc_usable_size((char *)m + 16) == 0);
        errno = 0;
        CHECK(realloc((char *)m + 16, 10) == NULL && errno == ENOMEM);
        munmap(m, 4096);
    }

    if (failures)
        fprintf(stderr, "selftest: %d failures\n", failures);
    else
        printf("selftest: ok\n");
    return failures != 0;
}
