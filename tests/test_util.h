/*
 * Helpers shared by the scalloc contract tests: a deterministic PRNG, block
 * patterns that let any thread check a block it did not write, a recording
 * error handler, and a scale knob for slow (sanitizer, valgrind) builds.
 *
 * Everything is static so each test executable stays self-contained.
 */
#ifndef SCALLOC_TEST_UTIL_H
#define SCALLOC_TEST_UTIL_H

#include <scalloc/scalloc.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Scale                                                                    */
/* ------------------------------------------------------------------------ */

/* Percentage applied to the optional parts of a workload (loop counts that
 * only buy confidence, not coverage). SCALLOC_TEST_SCALE=25 makes slow
 * sanitizer runs shorter; values above 100 make soak runs longer. Counts that
 * the contract fixes (the stress test's million operations) ignore it. */
static inline unsigned test_scale_percent(void)
{
    const char *s = getenv("SCALLOC_TEST_SCALE");
    if (s == NULL || *s == '\0')
        return 100;
    long v = strtol(s, NULL, 10);
    if (v < 1)
        return 1;
    if (v > 10000)
        return 10000;
    return (unsigned)v;
}

/* n scaled by SCALLOC_TEST_SCALE, never below `floor`. */
static inline size_t test_scaled(size_t n, size_t floor)
{
    size_t v = n / 100 * test_scale_percent() + n % 100 * test_scale_percent() / 100;
    return v < floor ? floor : v;
}

/* ------------------------------------------------------------------------ */
/* Checks in worker threads                                                 */
/* ------------------------------------------------------------------------ */

/* Criterion's cr_assert unwinds to the test's entry with longjmp, which is
 * only valid on the thread running the test. Threads the test starts use
 * this instead: print the failure and abort, which Criterion reports as a
 * crashed test with the message on stderr. The standalone runner below uses
 * it for every check. */
#define TEST_CHECK(cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* TEST_CHECK without a message of its own: the condition says it all. */
#define TEST_ASSERT(cond) TEST_CHECK(cond, "%s", "(see condition)")

/* ------------------------------------------------------------------------ */
/* A minimal runner for the multi-thread tests                              */
/* ------------------------------------------------------------------------ */

/* Monotonic seconds, for bounding loops by time and reporting how long
 * something took (never to synchronise threads). */
#include <time.h>
static inline double test_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The test_mt_* programs run under ThreadSanitizer in CI, and Criterion
 * cannot start there: its runner maps a shared arena at a random address
 * that TSan's fixed memory layout refuses ("Could not initialize inheritable
 * arena"; Criterion issue #274). So those programs bring their own runner:
 * each case runs in a forked child (a crash or a failed TEST_CHECK fails
 * that case only, and every case starts with fresh allocator state), and the
 * exit status is non-zero if any case failed. `prog NAME...` runs the cases
 * whose names contain one of the NAMEs; `--no-fork` runs them in-process,
 * for a debugger. */
#if defined(TEST_STANDALONE_RUNNER)
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct test_case_s {
    const char *name;
    void (*fn)(void);
} test_case_t;

static int test_selected(const char *name, int argc, char **argv)
{
    int any_filter = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        any_filter = 1;
        if (strstr(name, argv[i]) != NULL)
            return 1;
    }
    return !any_filter;
}

static int test_run_cases(int argc, char **argv, const test_case_t *cases, size_t count)
{
    int fork_each = 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--no-fork") == 0)
            fork_each = 0;
    int failed = 0, ran = 0;
    for (size_t i = 0; i < count; i++) {
        if (!test_selected(cases[i].name, argc, argv))
            continue;
        ran++;
        printf("[RUN ] %s\n", cases[i].name);
        fflush(stdout);
        fflush(stderr);
        double start = test_now_seconds();
        int ok;
        if (!fork_each) {
            cases[i].fn();
            ok = 1;
        } else {
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 1;
            }
            if (pid == 0) {
                cases[i].fn();
                fflush(stdout);
                fflush(stderr);
                _exit(0);
            }
            int status = 0;
            while (waitpid(pid, &status, 0) < 0)
                ;
            ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (!ok && WIFSIGNALED(status))
                printf("[----] %s: killed by signal %d\n", cases[i].name, WTERMSIG(status));
            else if (!ok)
                printf("[----] %s: exit status %d\n", cases[i].name, WEXITSTATUS(status));
        }
        printf("[%s] %s (%.2fs)\n", ok ? "PASS" : "FAIL", cases[i].name,
               test_now_seconds() - start);
        fflush(stdout);
        failed += !ok;
    }
    printf("[====] %d ran, %d passed, %d failed\n", ran, ran - failed, failed);
    if (ran == 0) {
        printf("no test case matched\n");
        return 1;
    }
    return failed ? 1 : 0;
}

/* Informational output from a case, like cr_log_info. */
#define TEST_LOG(...)                                                                          \
    do {                                                                                       \
        printf("[----] " __VA_ARGS__);                                                         \
        putchar('\n');                                                                         \
        fflush(stdout);                                                                        \
    } while (0)
#endif /* TEST_STANDALONE_RUNNER */

/* ------------------------------------------------------------------------ */
/* Deterministic randomness                                                 */
/* ------------------------------------------------------------------------ */

/* splitmix64: tiny, good enough for picking sizes, and reproducible from a
 * seed so a failing run can be replayed. */
typedef struct test_rng_s {
    uint64_t state;
} test_rng_t;

static inline uint64_t test_rng_next(test_rng_t *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline size_t test_rng_range(test_rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)(test_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* A request size from a mix shaped like real programs: mostly small objects,
 * some medium ones, a few at the top of the class range. Never huge. */
static inline size_t test_mixed_size(test_rng_t *r)
{
    unsigned pick = (unsigned)(test_rng_next(r) % 1000);
    if (pick < 800)
        return test_rng_range(r, 0, 256);
    if (pick < 970)
        return test_rng_range(r, 257, 4096);
    if (pick < 998)
        return test_rng_range(r, 4097, 65536);
    return test_rng_range(r, 65537, SC_MAX_CLASS_SIZE);
}

/* ------------------------------------------------------------------------ */
/* Block patterns                                                           */
/* ------------------------------------------------------------------------ */

/* A block's bytes are a function of (key, offset), so whoever frees a block
 * can check that nobody else wrote into it while it was live. Blocks are
 * filled completely up to 1 KiB; larger ones get their first and last 512
 * bytes and one byte every 4 KiB, so big blocks stay cheap but both ends and
 * every page are covered. */
#define TEST_PATTERN_FULL 1024u

static inline unsigned char test_pattern_byte(uint64_t key, size_t off)
{
    uint64_t x = key ^ (off * 0x9e3779b97f4a7c15ull);
    return (unsigned char)((x >> 29) ^ (x >> 7) ^ off);
}

static inline void test_pattern_fill(void *p, size_t n, uint64_t key)
{
    unsigned char *b = p;
    if (n <= TEST_PATTERN_FULL) {
        for (size_t i = 0; i < n; i++)
            b[i] = test_pattern_byte(key, i);
        return;
    }
    for (size_t i = 0; i < TEST_PATTERN_FULL / 2; i++)
        b[i] = test_pattern_byte(key, i);
    for (size_t i = TEST_PATTERN_FULL / 2; i < n - TEST_PATTERN_FULL / 2; i += 4096)
        b[i] = test_pattern_byte(key, i);
    for (size_t i = n - TEST_PATTERN_FULL / 2; i < n; i++)
        b[i] = test_pattern_byte(key, i);
}

/* Returns the offset of the first wrong byte, or (size_t)-1 if intact. */
static inline size_t test_pattern_check(const void *p, size_t n, uint64_t key)
{
    const unsigned char *b = p;
    if (n <= TEST_PATTERN_FULL) {
        for (size_t i = 0; i < n; i++)
            if (b[i] != test_pattern_byte(key, i))
                return i;
        return (size_t)-1;
    }
    for (size_t i = 0; i < TEST_PATTERN_FULL / 2; i++)
        if (b[i] != test_pattern_byte(key, i))
            return i;
    for (size_t i = TEST_PATTERN_FULL / 2; i < n - TEST_PATTERN_FULL / 2; i += 4096)
        if (b[i] != test_pattern_byte(key, i))
            return i;
    for (size_t i = n - TEST_PATTERN_FULL / 2; i < n; i++)
        if (b[i] != test_pattern_byte(key, i))
            return i;
    return (size_t)-1;
}

#define TEST_PATTERN_OK ((size_t)-1)

/* ------------------------------------------------------------------------ */
/* Recording error handler                                                  */
/* ------------------------------------------------------------------------ */

/* What the handler saw. Counters are atomic because misuse may be detected
 * on any thread; the "last" fields are only read by tests that trigger one
 * error at a time. */
typedef struct test_error_log_s {
    atomic_int count;
    sc_error_t last_err;
    const void *last_p;
    char last_call[64];
    char last_heap[64];
} test_error_log_t;

static void test_recording_handler(sc_error_t err, const char *call, const char *heap_name,
                                   const void *p, void *arg)
{
    test_error_log_t *log = arg;
    log->last_err = err;
    log->last_p = p;
    snprintf(log->last_call, sizeof log->last_call, "%s", call ? call : "(null)");
    snprintf(log->last_heap, sizeof log->last_heap, "%s", heap_name ? heap_name : "(null)");
    atomic_fetch_add_explicit(&log->count, 1, memory_order_relaxed);
}

static inline void test_error_log_install(test_error_log_t *log)
{
    memset(log, 0, sizeof *log);
    atomic_init(&log->count, 0);
    log->last_err = SC_ERR_NONE;
    sc_set_error_handler(test_recording_handler, log);
}

static inline void test_error_log_clear(test_error_log_t *log)
{
    atomic_store(&log->count, 0);
    log->last_err = SC_ERR_NONE;
    log->last_p = NULL;
    log->last_call[0] = '\0';
    log->last_heap[0] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Blocks of mixed sizes, filled with a pattern                             */
/* ------------------------------------------------------------------------ */

typedef struct test_block_s {
    unsigned char *p;
    size_t n;
    uint64_t key;
} test_block_t;

/* count blocks of mixed sizes from h, each filled with its own pattern
 * (test_pattern_check verifies it). */
static inline void test_fill_blocks(sc_heap_t *h, test_block_t *b, size_t count, uint64_t seed)
{
    test_rng_t rng = {seed};
    for (size_t i = 0; i < count; i++) {
        size_t n = test_mixed_size(&rng);
        b[i].p = sc_alloc(h, n);
        TEST_CHECK(b[i].p != NULL, "sc_alloc(h, %zu) failed", n);
        b[i].n = n;
        b[i].key = seed * 1000003 + i;
        test_pattern_fill(b[i].p, n, b[i].key);
    }
}

/* ------------------------------------------------------------------------ */
/* Stats                                                                    */
/* ------------------------------------------------------------------------ */

static inline sc_heap_stats_t test_stats(sc_heap_t *h)
{
    sc_heap_stats_t s;
    memset(&s, 0, sizeof s);
    sc_heap_get_stats(h, &s);
    return s;
}

#endif /* SCALLOC_TEST_UTIL_H */
