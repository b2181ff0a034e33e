/*
 * libFuzzer target for the whole public API of scalloc, checked against a
 * shadow model.
 *
 * The input is read as a program: a sequence of operations on up to
 * MAX_HEAPS heaps (create with varied configurations, allocate of any size
 * and alignment, calloc, realloc chains, free, hand blocks to worker threads,
 * reset, trim, destroy, misuse, probes of foreign pointers). After every
 * operation the model checks what the library says: block contents (each
 * block carries a pattern derived from its id, verified before every free and
 * realloc and at reset and destroy), usable size, alignment, ownership
 * (sc_heap_owns, sc_heap_of), statistics (live blocks, limits), the set of
 * blocks sc_heap_visit reports, error reports for misuse, and errno on
 * failure. Any disagreement aborts with a line that starts "fuzz_heap: FAIL"
 * and names the operation, so a crashing input is its own bug report.
 *
 * Encoding (make_corpus.py writes it; keep both in step). Bytes past the end
 * of the input read as 0. One operation is an op byte, mapped through
 * OP_TABLE (op byte % 32), then its arguments:
 *   CREATE     cfg cfg2            flags, limit, region, reuse, keep; cfg2 bit 0:
 *                                  an invalid config (expects EINVAL)
 *   DESTROY    heap
 *   ALLOC      heap variant size   variant bit 0: through sc_thread_alloc
 *   ALIGNED    heap align size     align < 240: see alignment_shift; else invalid
 *   CALLOC     heap count size
 *   REALLOC    slot heap size      slot 255: realloc(NULL) on heap; size
 *                                  byte 0 of a zero-size marker: see read_size
 *   FREE       slot variant        variant bit 0: through sc_thread_free
 *   HANDOFF    slot action [size]  action bit 0: worker; action >> 1: task
 *   RESET      heap
 *   TRIM       heap
 *   CHECK      heap flags          quiesce, stats, visit, overlap, print
 *   MISUSE     kind heap slot      quiesce, then one misuse expecting a report
 *   VERIFY     slot off
 *   SYNC       flags               quiesce; bit 0: also join the workers
 *   PROBE      8 bytes             ownership of garbage, libc and stack pointers
 *   IMPOSSIBLE heap kind slot      requests that must fail with ENOMEM/EINVAL
 * A size is a class byte and 1 to 4 bytes (read_size). `heap` and `slot`
 * bytes are taken modulo what exists, so every input is a valid program.
 *
 * Work per input is bounded (MAX_OPS operations, LIVE_BYTES_CAP bytes live,
 * MAX_BLOCKS blocks); requests past a bound are skipped, not failed. Worker
 * threads start on the first hand-off and are joined at the end of the input,
 * so every input runs on its own threads, and which blocks are handed over
 * (and when they come back) depends only on the input.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalloc/scalloc.h"
#include "invariants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

#define MAX_HEAPS 4
#define MAX_BLOCKS 1024
#define MAX_OPS 1500
#define NUM_WORKERS 2
#define QUEUE_CAP 32
#define MAX_TASKS (NUM_WORKERS * QUEUE_CAP)
#define MAX_DEAD_HANDLES 16
/* Bytes requested by live blocks (the main thread's and those in flight). */
#define LIVE_BYTES_CAP (256 * MiB)
#define MAX_REQUEST (64 * MiB)
#define MAX_ALIGN GiB
/* Alignments of 64 MiB and more reserve that much address space each. */
#define BIG_ALIGN (64 * MiB)
#define MAX_BIG_ALIGN_BLOCKS 4
/* Blocks up to this size carry their pattern in every byte; larger ones at
 * both ends and in a sample every SAMPLE_STRIDE (touching every page of a
 * 64 MiB block would cost more than everything else an input does). */
#define FULL_PATTERN_MAX (256 * KiB)
#define SAMPLE_EDGE (16 * KiB)
#define SAMPLE_STRIDE (64 * KiB)
#define SAMPLE_LEN 64
/* Address space per region, for bounds on region descriptor pages. */
#define MIN_REGION (8 * MiB)
#define SPAN (2 * MiB)

/* ------------------------------------------------------------------------ */
/* Failure reports                                                          */
/* ------------------------------------------------------------------------ */

/* FUZZ_HEAP_TRACE=1 prints each operation as it starts and the main
 * thread's blocks as they come and go (for triage and for turning an input
 * into a C reproducer). FUZZ_HEAP_WORKAROUNDS=1 steps around library bugs
 * the fuzzer found and that are fixed now (see `workarounds`), to fuzz an
 * older library past them. */
static bool trace;

/* While set, known library bugs that would stop every fuzzing run are
 * stepped around (each place says which; the inputs that found them are in
 * tests/fuzz/crashes/, and replaying them checks the fixes). All of them
 * are fixed in lib/ now, so this is off unless asked for. */
static bool workarounds = false;

/* What the main thread is doing, for failure messages. */
static size_t current_op_index;
static const char *current_op_name = "setup";

static _Noreturn __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "fuzz_heap: FAIL (op %zu %s): %s\n", current_op_index, current_op_name, msg);
    fflush(stderr);
    abort();
}

/* ------------------------------------------------------------------------ */
/* Input reader                                                             */
/* ------------------------------------------------------------------------ */

typedef struct reader_s {
    const uint8_t *data;
    size_t size, pos;
} reader_t;

static uint8_t u8(reader_t *r)
{
    return r->pos < r->size ? r->data[r->pos++] : 0;
}

static uint32_t u16(reader_t *r)
{
    uint32_t lo = u8(r);
    return lo | (uint32_t)u8(r) << 8;
}

static uint32_t u32(reader_t *r)
{
    uint32_t lo = u16(r);
    return lo | u16(r) << 16;
}

static uint64_t u64(reader_t *r)
{
    uint64_t lo = u32(r);
    return lo | (uint64_t)u32(r) << 32;
}

/* Sizes where size classes, spans and pages change; read_size adds a small
 * delta to them. */
static const size_t edge_sizes[] = {
    0,          1,           16,          128,        256,       1024,
    4 * KiB,    32 * KiB,    64 * KiB,    256 * KiB,  MiB,       SPAN - 128,
    SPAN,       2 * SPAN - 128, 2 * SPAN, 16 * MiB,   MAX_REQUEST - 4 * KiB, MAX_REQUEST,
};
#define NUM_EDGE_SIZES (sizeof edge_sizes / sizeof edge_sizes[0])

/* A request size, biased toward small: half the class bytes give 0..255,
 * then up to 64 KiB, near an edge, up to 2 MiB, up to 64 MiB. */
static size_t read_size(reader_t *r)
{
    uint8_t k = u8(r);
    if (k < 128)
        return u8(r);
    if (k < 176)
        return u16(r);
    if (k < 208) {
        size_t base = edge_sizes[u8(r) % NUM_EDGE_SIZES];
        long delta = (long)(k & 7) - 3;
        if (k & 8)
            delta *= 16;
        if (delta < 0 && (size_t)-delta > base)
            return 0;
        size_t n = base + (size_t)delta;
        return n > MAX_REQUEST ? MAX_REQUEST : n;
    }
    if (k < 240)
        return u32(r) & (SPAN - 1);
    if (k == 255)
        return MAX_REQUEST;
    return u32(r) & (MAX_REQUEST - 1);
}

/* ------------------------------------------------------------------------ */
/* Block patterns                                                           */
/* ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A block's pattern, in chunks of PATTERN_CHUNK bytes: each chunk starts
 * with a stamp word of the seed and the chunk's number, and goes on with a
 * template that depends on the seed and the position in the chunk. Blocks
 * differ everywhere (different seeds), so an overlap shows; chunks of one
 * block differ in their stamps, so a copy shifted by whole chunks shows too.
 * The template lets fills and checks run as memcpy and memcmp, which ASan
 * checks once per call instead of once per word. */
#define PATTERN_CHUNK 4096

static uint64_t chunk_stamp(uint64_t seed, size_t chunk)
{
    return mix64(seed ^ ((uint64_t)chunk * 0xd6e8feb86659fd93ull));
}

static uint64_t template_word(uint64_t seed, size_t w)
{
    return seed ^ ((uint64_t)w * 0x9e3779b97f4a7c15ull);
}

/* The template for seed, at least `len` bytes of it (per thread: workers
 * check blocks too). */
static _Thread_local unsigned char template_bytes[PATTERN_CHUNK];
static _Thread_local uint64_t template_seed;
static _Thread_local size_t template_len;

static const unsigned char *pattern_template(uint64_t seed, size_t len)
{
    if (template_seed != seed || template_len < len) {
        size_t words = (len + 7) / 8;
        for (size_t w = 0; w < words; w++) {
            uint64_t v = template_word(seed, w);
            memcpy(template_bytes + 8 * w, &v, sizeof v);
        }
        template_seed = seed;
        template_len = words * 8;
    }
    return template_bytes;
}

static uint8_t pattern_byte(uint64_t seed, size_t off)
{
    size_t j = off % PATTERN_CHUNK;
    uint64_t v = j < 8 ? chunk_stamp(seed, off / PATTERN_CHUNK) : template_word(seed, j / 8);
    unsigned char b[8];
    memcpy(b, &v, sizeof b);
    return b[j % 8];
}

/* Fills [from, to) of p with the pattern (check false), or returns the
 * first offset there that differs from it (SIZE_MAX: none). */
static size_t pattern_range(unsigned char *p, size_t from, size_t to, uint64_t seed, bool check)
{
    const unsigned char *t = pattern_template(seed, to < PATTERN_CHUNK ? to : PATTERN_CHUNK);
    size_t off = from;
    while (off < to) {
        size_t chunk = off / PATTERN_CHUNK, j = off % PATTERN_CHUNK;
        size_t end = (chunk + 1) * PATTERN_CHUNK < to ? (chunk + 1) * PATTERN_CHUNK : to;
        if (j < 8) {
            uint64_t stamp = chunk_stamp(seed, chunk);
            unsigned char sb[8];
            memcpy(sb, &stamp, sizeof sb);
            for (; j < 8 && off < end; j++, off++) {
                if (!check)
                    p[off] = sb[j];
                else if (p[off] != sb[j])
                    return off;
            }
            if (off == end)
                continue;
        }
        size_t len = end - off;
        if (!check) {
            memcpy(p + off, t + j, len);
        } else if (memcmp(p + off, t + j, len) != 0) {
            for (size_t i = 0; i < len; i++)
                if (p[off + i] != t[j + i])
                    return off + i;
        }
        off = end;
    }
    return SIZE_MAX;
}

/* Applies fill (check == false) or check to the pattern ranges of a block
 * of n bytes, clipped to its first `clip` bytes. Returns the first bad
 * offset, or SIZE_MAX. */
static size_t pattern_apply(unsigned char *p, size_t n, size_t clip, uint64_t seed, bool check)
{
    if (clip > n)
        clip = n;
    size_t ranges[2 + 2 * (MAX_REQUEST / SAMPLE_STRIDE) + 2][2];
    size_t count = 0;
    if (n <= FULL_PATTERN_MAX) {
        ranges[count][0] = 0;
        ranges[count++][1] = n;
    } else {
        ranges[count][0] = 0;
        ranges[count++][1] = SAMPLE_EDGE;
        for (size_t off = SAMPLE_STRIDE; off + SAMPLE_LEN <= n - SAMPLE_EDGE; off += SAMPLE_STRIDE) {
            /* The sample's place within its stride moves with the seed, so
             * that over many blocks every page offset is looked at. */
            size_t at = off + (size_t)(seed % (SAMPLE_STRIDE / 64)) * 64 % (SAMPLE_STRIDE - SAMPLE_LEN);
            at &= ~(size_t)7;
            if (at + SAMPLE_LEN > n - SAMPLE_EDGE)
                break;
            ranges[count][0] = at;
            ranges[count++][1] = at + SAMPLE_LEN;
        }
        ranges[count][0] = n - SAMPLE_EDGE;
        ranges[count++][1] = n;
    }
    for (size_t i = 0; i < count; i++) {
        size_t from = ranges[i][0], to = ranges[i][1] < clip ? ranges[i][1] : clip;
        if (from >= to)
            continue;
        size_t bad = pattern_range(p, from, to, seed, check);
        if (bad != SIZE_MAX)
            return bad;
    }
    return SIZE_MAX;
}

static const unsigned char zero_page[4096];

static size_t first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t off = 0; off < n; off += sizeof zero_page) {
        size_t chunk = n - off < sizeof zero_page ? n - off : sizeof zero_page;
        if (memcmp(p + off, zero_page, chunk) != 0) {
            for (size_t i = 0; i < chunk; i++)
                if (p[off + i] != 0)
                    return off + i;
        }
    }
    return SIZE_MAX;
}

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

typedef struct model_block_s {
    unsigned char *p;
    size_t n;          /* bytes requested */
    uint64_t id;       /* seeds the pattern; new id after each realloc */
    size_t align;      /* alignment it has (16: plain allocation) */
    int heap;          /* index in heaps[] */
    /* Above SC_MAX_CLASS_SIZE when made, or by an alignment over 128 (the
     * library serves those as huge blocks); both stay with the block while
     * sc_realloc keeps it in place. */
    bool huge, aligned_huge;
} model_block_t;

typedef struct model_heap_s {
    sc_heap_t *h;
    sc_thread_t *front;     /* the main thread's frontend, once asked for */
    bool live;
    bool checked;
    size_t limit;
    size_t reset_keep;
    size_t blocks;          /* blocks in the main thread's list */
    size_t requested;       /* their requested bytes */
    size_t in_flight;       /* blocks handed to workers, until the quiesce */
} model_heap_t;

static model_heap_t heaps[MAX_HEAPS];
static model_block_t blocks[MAX_BLOCKS];
static size_t nblocks;
static size_t live_bytes;       /* requested bytes, in flight included */
static size_t big_align_blocks; /* live blocks aligned to BIG_ALIGN or more */
static uint64_t next_id;
static unsigned heap_serial;
static sc_heap_t *dead_handles[MAX_DEAD_HANDLES];
static size_t ndead;

/* Live block addresses, to catch the same address handed out twice even for
 * zero-byte blocks (which carry no pattern). Linear probing with deletion by
 * backward shift. */
#define PTRSET_SIZE 4096
static void *ptrset[PTRSET_SIZE];

static size_t ptrset_home(const void *p)
{
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull) >> 52) & (PTRSET_SIZE - 1);
}

static bool ptrset_insert(void *p)
{
    size_t i = ptrset_home(p);
    while (ptrset[i]) {
        if (ptrset[i] == p)
            return false;
        i = (i + 1) & (PTRSET_SIZE - 1);
    }
    ptrset[i] = p;
    return true;
}

static void ptrset_remove(void *p)
{
    size_t i = ptrset_home(p);
    while (ptrset[i] != p) {
        if (ptrset[i] == NULL)
            fail("model: %p not in the live set", p);
        i = (i + 1) & (PTRSET_SIZE - 1);
    }
    ptrset[i] = NULL;
    /* Move later entries of the run back so lookups do not stop early. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & (PTRSET_SIZE - 1);
        if (ptrset[j] == NULL)
            return;
        size_t home = ptrset_home(ptrset[j]);
        /* Entry j may move to i if its home is not in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            ptrset[i] = ptrset[j];
            ptrset[j] = NULL;
            i = j;
        }
    }
}

static bool ptrset_contains(const void *p)
{
    size_t i = ptrset_home(p);
    while (ptrset[i]) {
        if (ptrset[i] == p)
            return true;
        i = (i + 1) & (PTRSET_SIZE - 1);
    }
    return false;
}

static void describe(const model_block_t *b, char *out, size_t len)
{
    snprintf(out, len, "block id %llu (heap %d, %zu bytes at %p, align %zu)",
             (unsigned long long)b->id, b->heap, b->n, (void *)b->p, b->align);
}

/* Contents of b against its pattern; `when` says what is about to happen. */
static void verify_contents(const model_block_t *b, const char *when)
{
    size_t bad = pattern_apply(b->p, b->n, b->n, mix64(b->id), true);
    if (bad != SIZE_MAX) {
        char d[160];
        describe(b, d, sizeof d);
        fail("%s: %s: byte %zu is 0x%02x, expected 0x%02x", when, d, bad, b->p[bad],
             pattern_byte(mix64(b->id), bad));
    }
}

static bool heap_is_live_handle(const sc_heap_t *h)
{
    for (int i = 0; i < MAX_HEAPS; i++)
        if (heaps[i].live && heaps[i].h == h)
            return true;
    return false;
}

/* What must hold for a live block of heap h, from any thread: alignment,
 * usable size, ownership. `others` also checks that the other live heaps do
 * not claim it (main thread only: it reads the heap table). */
static void check_block_facts(const model_block_t *b, sc_heap_t *h, bool others, const char *what)
{
    char d[160];
    size_t align = b->align < 16 ? 16 : b->align;
    if ((uintptr_t)b->p % align != 0) {
        describe(b, d, sizeof d);
        fail("%s: %s is not aligned to %zu", what, d, align);
    }
    size_t usable = sc_usable_size(h, b->p);
    if (usable < b->n) {
        describe(b, d, sizeof d);
        fail("%s: %s: sc_usable_size is %zu", what, d, usable);
    }
    if (!sc_heap_owns(h, b->p) || sc_heap_of(b->p) != h) {
        describe(b, d, sizeof d);
        fail("%s: %s: sc_heap_owns %d, sc_heap_of %p, heap %p", what, d, sc_heap_owns(h, b->p),
             (void *)sc_heap_of(b->p), (void *)h);
    }
    if (b->n > 1 && (sc_heap_of(b->p + b->n - 1) != h || !sc_heap_owns(h, b->p + b->n - 1))) {
        describe(b, d, sizeof d);
        fail("%s: %s: its last byte is not the heap's (sc_heap_of %p)", what, d,
             (void *)sc_heap_of(b->p + b->n - 1));
    }
    if (!others)
        return;
    for (int i = 0; i < MAX_HEAPS; i++) {
        if (heaps[i].live && heaps[i].h != h && sc_heap_owns(heaps[i].h, b->p)) {
            describe(b, d, sizeof d);
            fail("%s: %s is also owned by heap %d", what, d, i);
        }
    }
}

static void add_block(model_block_t b, const char *what)
{
    if (!ptrset_insert(b.p)) {
        char d[160];
        describe(&b, d, sizeof d);
        fail("%s: %s: the address is already a live block", what, d);
    }
    if (nblocks == MAX_BLOCKS)
        fail("model: block table full");
    blocks[nblocks++] = b;
    heaps[b.heap].blocks++;
    heaps[b.heap].requested += b.n;
    live_bytes += b.n;
    if (b.align >= BIG_ALIGN)
        big_align_blocks++;
}

/* Forgets block i (freed, handed over, or gone with its heap). */
static model_block_t take_block(size_t i)
{
    model_block_t b = blocks[i];
    ptrset_remove(b.p);
    heaps[b.heap].blocks--;
    heaps[b.heap].requested -= b.n;
    live_bytes -= b.n;
    if (b.align >= BIG_ALIGN)
        big_align_blocks--;
    blocks[i] = blocks[--nblocks];
    return b;
}

/* A new block: checked, filled with its pattern, added to the model. */
/* The block sc_realloc(old, n) returned at q, with id: in place it keeps
 * what it was; moved, it is a plain allocation. */
static model_block_t realloc_result(const model_block_t *old, unsigned char *q, size_t n,
                                    uint64_t id)
{
    if (q == old->p)
        return (model_block_t){q, n, id, old->align, old->heap, old->huge, old->aligned_huge};
    return (model_block_t){q, n, id, 16, old->heap, n > SC_MAX_CLASS_SIZE, false};
}

static void add_new_block(model_block_t b, const char *what)
{
    int hi = b.heap;
    size_t n = b.n, align = b.align;
    unsigned char *p = b.p;
    if (trace)
        fprintf(stderr, "fuzz_heap:   %s(heap %d, %zu bytes, align %zu) = %p, id %llu\n", what, hi,
                n, align, (void *)p, (unsigned long long)b.id);
    check_block_facts(&b, heaps[hi].h, true, what);
    pattern_apply(b.p, b.n, b.n, mix64(b.id), false);
    add_block(b, what);
}

static void new_block(unsigned char *p, size_t n, size_t align, int hi, const char *what)
{
    add_new_block((model_block_t){p, n, next_id++, align, hi, n > SC_MAX_CLASS_SIZE || align > 128,
                                  align > 128},
                  what);
}

/* ------------------------------------------------------------------------ */
/* Error reports                                                            */
/* ------------------------------------------------------------------------ */

/* Reports are expected only around a misuse the calling thread commits on
 * purpose; any other report is a failure. */
static _Thread_local bool expecting_report;
static _Thread_local sc_error_t last_report;
static _Thread_local unsigned report_count;

static void on_error(sc_error_t err, const char *call, const char *heap_name, const void *p,
                     void *arg)
{
    (void)arg;
    if (call == NULL || heap_name == NULL)
        fail("error report without a call name or heap name (error %d)", (int)err);
    if (!expecting_report)
        fail("unexpected error report: %s(heap \"%s\", %p): %s", call, heap_name, p,
             sc_error_string(err));
    last_report = err;
    report_count++;
}

static void expect_begin(void)
{
    expecting_report = true;
    last_report = SC_ERR_NONE;
    report_count = 0;
}

/* Ends an expected misuse: exactly one report, with the error wanted (or
 * `alt`, when two descriptions fit the same misuse). */
static void expect_end(sc_error_t want, sc_error_t alt, const char *what)
{
    expecting_report = false;
    if (report_count != 1 || (last_report != want && last_report != alt))
        fail("%s: expected one report of \"%s\", got %u (last: \"%s\")", what,
             sc_error_string(want), report_count, sc_error_string(last_report));
}

/* ------------------------------------------------------------------------ */
/* Worker threads                                                           */
/* ------------------------------------------------------------------------ */

enum task_action {
    TASK_FREE,           /* sc_free */
    TASK_REALLOC,        /* sc_realloc, the block comes back */
    TASK_THREAD_FREE,    /* sc_thread_free through the worker's frontend */
    TASK_REALLOC_FREE,   /* sc_realloc then sc_free */
    TASK_WRONG_FRONTEND, /* use the main thread's frontend: misuse, then free */
    TASK_ACTIONS
};

typedef struct task_s {
    model_block_t block;     /* as handed over */
    int action;
    size_t new_n;
    uint64_t new_id;
    sc_heap_t *heap;
    bool limited;
    sc_thread_t *main_front;
    size_t reserved;         /* live_bytes held for it until the quiesce */
    /* Written by the worker, read by main after the quiesce. */
    bool kept;
    model_block_t result;
} task_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    pthread_t threads[NUM_WORKERS];
    bool running, stop;
    size_t queue[NUM_WORKERS][QUEUE_CAP]; /* indices into tasks[] */
    size_t queued[NUM_WORKERS], taken[NUM_WORKERS];
    size_t pending;                       /* queued and not finished */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .work = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static task_t tasks[MAX_TASKS];
static size_t ntasks;

static void run_task(task_t *t)
{
    model_block_t *b = &t->block;
    char d[160];
    verify_contents(b, "worker, before its task");
    switch (t->action) {
    case TASK_FREE:
        sc_free(t->heap, b->p);
        t->kept = false;
        return;
    case TASK_THREAD_FREE: {
        sc_thread_t *f = sc_heap_thread(t->heap);
        if (f == NULL)
            fail("worker: sc_heap_thread returned NULL (errno %d)", errno);
        sc_thread_free(f, b->p);
        t->kept = false;
        return;
    }
    case TASK_REALLOC:
    case TASK_REALLOC_FREE: {
        errno = 0;
        unsigned char *q = sc_realloc(t->heap, b->p, t->new_n);
        if (q == NULL) {
            if (!t->limited || errno != ENOMEM) {
                describe(b, d, sizeof d);
                fail("worker: sc_realloc(%s, %zu) failed, errno %d", d, t->new_n, errno);
            }
            verify_contents(b, "worker, after a failed sc_realloc");
            t->result = *b;
        } else {
            size_t keep = b->n < t->new_n ? b->n : t->new_n;
            size_t bad = pattern_apply(q, b->n, keep, mix64(b->id), true);
            if (bad != SIZE_MAX) {
                describe(b, d, sizeof d);
                fail("worker: sc_realloc(%s, %zu) = %p lost byte %zu", d, t->new_n, (void *)q, bad);
            }
            model_block_t nb = realloc_result(b, q, t->new_n, t->new_id);
            check_block_facts(&nb, t->heap, false, "worker, after sc_realloc");
            pattern_apply(q, nb.n, nb.n, mix64(nb.id), false);
            t->result = nb;
        }
        if (t->action == TASK_REALLOC) {
            t->kept = true;
        } else {
            verify_contents(&t->result, "worker, before freeing its realloc");
            sc_free(t->heap, t->result.p);
            t->kept = false;
        }
        return;
    }
    case TASK_WRONG_FRONTEND: {
        expect_begin();
        void *x = sc_thread_alloc(t->main_front, 16);
        expect_end(SC_ERR_WRONG_THREAD, SC_ERR_WRONG_THREAD,
                   "worker: sc_thread_alloc with the main thread's frontend");
        if (x != NULL)
            fail("worker: sc_thread_alloc with a foreign frontend returned %p", x);
        expect_begin();
        sc_thread_free(t->main_front, b->p);
        expect_end(SC_ERR_WRONG_THREAD, SC_ERR_WRONG_THREAD,
                   "worker: sc_thread_free with the main thread's frontend");
        verify_contents(b, "worker, after a refused sc_thread_free");
        sc_free(t->heap, b->p);
        t->kept = false;
        return;
    }
    }
    fail("worker: unknown task %d", t->action);
}

static void *worker_main(void *arg)
{
    size_t w = (size_t)(uintptr_t)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stop && pool.taken[w] == pool.queued[w])
            pthread_cond_wait(&pool.work, &pool.lock);
        if (pool.taken[w] == pool.queued[w])
            break; /* stopping, and nothing left */
        task_t *t = &tasks[pool.queue[w][pool.taken[w]++]];
        pthread_mutex_unlock(&pool.lock);
        run_task(t);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

static void workers_start(void)
{
    if (pool.running)
        return;
    pool.stop = false;
    for (size_t w = 0; w < NUM_WORKERS; w++) {
        int rc = pthread_create(&pool.threads[w], NULL, worker_main, (void *)(uintptr_t)w);
        if (rc != 0)
            fail("pthread_create: %s", strerror(rc));
    }
    pool.running = true;
}

/* Waits until the workers finished every task, then takes their results
 * into the model in task order (so the model's order does not depend on
 * scheduling). Afterwards no thread but main touches any heap. */
static void quiesce(void)
{
    if (ntasks == 0)
        return;
    pthread_mutex_lock(&pool.lock);
    while (pool.pending != 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    for (size_t w = 0; w < NUM_WORKERS; w++)
        pool.queued[w] = pool.taken[w] = 0;
    pthread_mutex_unlock(&pool.lock);
    size_t n = ntasks;
    ntasks = 0;
    for (size_t i = 0; i < n; i++) {
        task_t *t = &tasks[i];
        heaps[t->block.heap].in_flight--;
        live_bytes -= t->reserved;
        if (t->kept)
            add_block(t->result, "block back from a worker");
    }
}

static void workers_join(void)
{
    quiesce();
    if (!pool.running)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.stop = true;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    for (size_t w = 0; w < NUM_WORKERS; w++)
        pthread_join(pool.threads[w], NULL);
    pool.running = false;
    pool.stop = false;
}

/* ------------------------------------------------------------------------ */
/* Heap-level checks                                                        */
/* ------------------------------------------------------------------------ */

/* Upper bound on the metadata a heap keeps charged whatever it holds, even
 * after a reset: a descriptor page per region (regions are at least
 * MIN_REGION), and the header table pages of the spans it ever bumped (a
 * header per 2 MiB span, and a page at either end of each region's run of
 * headers, which a neighbour may share). */
static size_t descriptor_slack(const sc_heap_stats_t *st)
{
    size_t regions = st->reserved_bytes / MIN_REGION + 1;
    return regions * 3 * 4096 + st->reserved_bytes / SPAN_SIZE * sizeof(span_t);
}

/* Statistics of heap hi against the model; only when no worker holds one of
 * its blocks, so the figures are exact. */
static void check_stats(int hi)
{
    model_heap_t *m = &heaps[hi];
    if (!m->live || m->in_flight != 0)
        return;
    sc_heap_stats_t st;
    sc_heap_get_stats(m->h, &st);
    if (st.live_blocks != m->blocks)
        fail("heap %d: stats say %zu live blocks, the model has %zu", hi, st.live_blocks, m->blocks);
    /* The expensive span-by-span consistency check (lib/invariants.h). */
    span_t *bad = NULL;
    const char *broken = invariants_check_heap(m->h, &bad);
    if (broken)
        fail("heap %d: span %p: %s", hi, (void *)bad, broken);
    /* Library bug, fixed (crashes/stats-requested-stale-after-realloc.bin):
     * a huge block that sc_realloc kept in place kept its old requested size
     * in the statistics, so requested_bytes could fall below the model's. */
    if ((st.requested_bytes < m->requested && !workarounds) || st.live_bytes < st.requested_bytes)
        fail("heap %d: stats say %zu requested and %zu live bytes, the model has %zu requested",
             hi, st.requested_bytes, st.live_bytes, m->requested);
    if (st.huge_blocks > st.live_blocks || st.huge_bytes > st.live_bytes)
        fail("heap %d: %zu huge blocks (%zu bytes) of %zu live (%zu bytes)", hi, st.huge_blocks,
             st.huge_bytes, st.live_blocks, st.live_bytes);
    if (m->limit && st.committed_bytes > m->limit + descriptor_slack(&st))
        fail("heap %d: %zu bytes committed over a limit of %zu", hi, st.committed_bytes, m->limit);
    if (st.committed_bytes > st.reserved_bytes)
        fail("heap %d: %zu bytes committed of %zu reserved", hi, st.committed_bytes,
             st.reserved_bytes);
}

/* After a refusal on a limited heap: the limit must really be near. A
 * request needs at most its size, a span and an alignment's header pages
 * beyond what is committed; much less committed than that means the heap
 * lost track of its commit charge. */
static void check_refusal(int hi, size_t n, size_t align, const char *what)
{
    model_heap_t *m = &heaps[hi];
    if (m->in_flight != 0)
        return; /* workers may hold charge for a moment */
    sc_heap_stats_t st;
    sc_heap_get_stats(m->h, &st);
    size_t need = n + 2 * SPAN + (align > SPAN ? 2 * 4096 : 0) + descriptor_slack(&st);
    if (st.committed_bytes + need < m->limit)
        fail("%s: %zu bytes refused on heap %d with %zu of its %zu-byte limit committed", what, n,
             hi, st.committed_bytes, m->limit);
}

typedef struct extent_s {
    uintptr_t start, end;
    size_t block;
} extent_t;

static extent_t extents[MAX_BLOCKS + 1];
static size_t nvisited;
static bool visit_overflow;

static int on_visit(void *block, size_t usable, void *arg)
{
    (void)arg;
    if (nvisited == MAX_BLOCKS + 1) {
        visit_overflow = true;
        return 1;
    }
    extents[nvisited++] = (extent_t){(uintptr_t)block, (uintptr_t)block + usable, 0};
    return 0;
}

static int cmp_extent(const void *a, const void *b)
{
    const extent_t *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* sc_heap_visit must report exactly the model's blocks of the heap, each
 * once, at their usable sizes. Main thread, after a quiesce. */
static void check_visit(int hi)
{
    model_heap_t *m = &heaps[hi];
    nvisited = 0;
    visit_overflow = false;
    sc_heap_visit(m->h, on_visit, NULL);
    if (visit_overflow || nvisited != m->blocks)
        fail("heap %d: sc_heap_visit reported %s%zu blocks, the model has %zu", hi,
             visit_overflow ? "more than " : "", nvisited, m->blocks);
    qsort(extents, nvisited, sizeof extents[0], cmp_extent);
    for (size_t i = 0; i < nvisited; i++) {
        void *p = (void *)extents[i].start;
        size_t usable = (size_t)(extents[i].end - extents[i].start);
        /* Distinct live blocks of this heap, as many as the model has: the
         * same set. */
        if (i > 0 && extents[i - 1].start == extents[i].start)
            fail("heap %d: sc_heap_visit reported %p twice", hi, p);
        if (!ptrset_contains(p) || sc_heap_of(p) != m->h)
            fail("heap %d: sc_heap_visit reported %p, not a live block of the heap", hi, p);
        if (usable != sc_usable_size(m->h, p))
            fail("heap %d: sc_heap_visit says %p has %zu usable bytes, sc_usable_size %zu", hi, p,
                 usable, sc_usable_size(m->h, p));
    }
}

/* No two live blocks may overlap, counting each at its usable size. */
static void check_no_overlap(void)
{
    for (size_t i = 0; i < nblocks; i++) {
        size_t usable = sc_usable_size(heaps[blocks[i].heap].h, blocks[i].p);
        extents[i] = (extent_t){(uintptr_t)blocks[i].p, (uintptr_t)blocks[i].p + usable, i};
    }
    qsort(extents, nblocks, sizeof extents[0], cmp_extent);
    for (size_t i = 1; i < nblocks; i++) {
        if (extents[i].start < extents[i - 1].end) {
            char a[160], b[160];
            describe(&blocks[extents[i - 1].block], a, sizeof a);
            describe(&blocks[extents[i].block], b, sizeof b);
            fail("%s (usable to %#lx) overlaps %s", a, (unsigned long)extents[i - 1].end, b);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Heaps                                                                    */
/* ------------------------------------------------------------------------ */

static FILE *null_out;

static int create_heap(uint8_t cfg, uint8_t cfg2)
{
    int hi = -1;
    for (int i = 0; i < MAX_HEAPS && hi < 0; i++)
        if (!heaps[i].live)
            hi = i;
    if (hi < 0)
        return -1;
    static const size_t limits[4] = {0, 2 * MiB, 8 * MiB, 48 * MiB};
    /* Small regions first: the default heap (config 0) grows through
     * several, and destroying it is cheap under ASan, which clears the
     * shadow of every byte reserved. 0 is the library's default (256 MiB),
     * 1 the smallest it rounds up to. */
    static const size_t regions[4] = {8 * MiB, 0, 1, 64 * MiB};
    static const unsigned reuse[4] = {0, 1, 50, 100};
    char name[32];
    snprintf(name, sizeof name, "fuzz-%u", heap_serial++);
    sc_heap_config_t c = {
        .name = (cfg2 & 2) ? NULL : name,
        .region_size = regions[(cfg >> 3) & 3],
        .reuse_threshold = reuse[(cfg >> 5) & 3],
        .limit_bytes = limits[(cfg >> 1) & 3],
        .reset_keep_bytes = (cfg & 0x80) ? 4 * MiB : 0,
        .flags = (cfg & 1) ? SC_HEAP_CHECKED : SC_HEAP_DEFAULT,
    };
    if (cfg2 & 1) {
        /* An invalid configuration must be refused, and nothing else. */
        c.reuse_threshold = 101 + (cfg2 >> 2);
        errno = 0;
        sc_heap_t *bad = sc_heap_create(&c);
        if (bad != NULL || errno != EINVAL)
            fail("sc_heap_create with reuse_threshold %u: %p, errno %d", c.reuse_threshold,
                 (void *)bad, errno);
        return -1;
    }
    errno = 0;
    sc_heap_t *h = sc_heap_create(&c);
    if (h == NULL)
        fail("sc_heap_create failed, errno %d", errno);
    if (heap_is_live_handle(h))
        fail("sc_heap_create returned the live heap %p again", (void *)h);
    const char *got = sc_heap_name(h);
    if (got == NULL || strcmp(got, c.name ? c.name : "heap") != 0)
        fail("sc_heap_name is \"%s\", expected \"%s\"", got ? got : "(null)",
             c.name ? c.name : "heap");
    heaps[hi] = (model_heap_t){.h = h, .live = true, .checked = (cfg & 1) != 0,
                               .limit = c.limit_bytes, .reset_keep = c.reset_keep_bytes};
    for (size_t i = 0; i < ndead; i++)
        if (dead_handles[i] == h)
            dead_handles[i] = dead_handles[--ndead];
    check_stats(hi);
    return hi;
}

/* The live heap picked by byte b (the next live one at or after b % MAX);
 * with none live, a default heap is created when `create` is set. */
static int pick_heap(uint8_t b, bool create)
{
    for (int k = 0; k < MAX_HEAPS; k++) {
        int i = (b + k) % MAX_HEAPS;
        if (heaps[i].live)
            return i;
    }
    return create ? create_heap(0, 0) : -1;
}

static sc_thread_t *main_front(int hi)
{
    model_heap_t *m = &heaps[hi];
    if (m->front == NULL) {
        m->front = sc_heap_thread(m->h);
        if (m->front == NULL)
            fail("sc_heap_thread(heap %d) returned NULL, errno %d", hi, errno);
    }
    return m->front;
}

/* Verifies every block of heap hi and drops them from the model; their
 * addresses go to `addrs` (up to MAX_BLOCKS) for checks after the call. */
static size_t drop_heap_blocks(int hi, unsigned char **addrs, const char *when)
{
    size_t count = 0;
    for (size_t i = nblocks; i-- > 0;) {
        if (blocks[i].heap != hi)
            continue;
        verify_contents(&blocks[i], when);
        check_block_facts(&blocks[i], heaps[hi].h, false, when);
        addrs[count++] = take_block(i).p;
    }
    return count;
}

static unsigned char *dropped[MAX_BLOCKS];

static void destroy_heap(int hi)
{
    quiesce();
    model_heap_t *m = &heaps[hi];
    check_stats(hi);
    size_t count = drop_heap_blocks(hi, dropped, "before sc_heap_destroy");
    sc_heap_t *h = m->h;
    sc_heap_destroy(h);
    *m = (model_heap_t){0};
    /* The range went back to the OS: nobody owns those addresses now. */
    for (size_t i = 0; i < count; i++)
        if (sc_heap_of(dropped[i]) != NULL)
            fail("sc_heap_of(%p) is %p after its heap was destroyed", (void *)dropped[i],
                 (void *)sc_heap_of(dropped[i]));
    if (ndead == MAX_DEAD_HANDLES)
        ndead--;
    dead_handles[ndead++] = h;
}

static void reset_heap(int hi)
{
    quiesce();
    model_heap_t *m = &heaps[hi];
    check_stats(hi);
    size_t count = drop_heap_blocks(hi, dropped, "before sc_heap_reset");
    sc_heap_reset(m->h);
    for (size_t i = 0; i < count; i++)
        if (sc_heap_of(dropped[i]) != m->h)
            fail("sc_heap_of(%p) is %p after a reset of its heap %p", (void *)dropped[i],
                 (void *)sc_heap_of(dropped[i]), (void *)m->h);
    check_stats(hi);
    sc_heap_stats_t st;
    sc_heap_get_stats(m->h, &st);
    if (st.live_blocks != 0 || st.live_bytes != 0 || st.huge_blocks != 0)
        fail("heap %d after reset: %zu live blocks, %zu bytes, %zu huge", hi, st.live_blocks,
             st.live_bytes, st.huge_blocks);
    if (st.committed_bytes > m->reset_keep + descriptor_slack(&st))
        fail("heap %d after reset: %zu bytes still committed (keep %zu)", hi, st.committed_bytes,
             m->reset_keep);
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

enum op {
    OP_CREATE, OP_DESTROY, OP_ALLOC, OP_ALIGNED, OP_CALLOC, OP_REALLOC, OP_FREE, OP_HANDOFF,
    OP_RESET, OP_TRIM, OP_CHECK, OP_MISUSE, OP_VERIFY, OP_SYNC, OP_PROBE, OP_IMPOSSIBLE,
    NUM_OPS
};

static const char *const op_names[NUM_OPS] = {
    "create", "destroy", "alloc", "aligned", "calloc", "realloc", "free", "handoff",
    "reset", "trim", "check", "misuse", "verify", "sync", "probe", "impossible",
};

/* op byte % 32 -> operation: the common ones take several entries. */
static const uint8_t op_table[32] = {
    OP_ALLOC,   OP_ALLOC,   OP_ALLOC,   OP_ALLOC,   OP_ALLOC,    OP_ALLOC,
    OP_FREE,    OP_FREE,    OP_FREE,    OP_FREE,    OP_FREE,
    OP_REALLOC, OP_REALLOC, OP_REALLOC, OP_REALLOC,
    OP_ALIGNED, OP_ALIGNED, OP_CALLOC,  OP_CALLOC,
    OP_HANDOFF, OP_HANDOFF, OP_HANDOFF,
    OP_CREATE,  OP_DESTROY, OP_RESET,   OP_TRIM,     OP_CHECK,
    OP_MISUSE,  OP_VERIFY,  OP_SYNC,    OP_PROBE,    OP_IMPOSSIBLE,
};

/* Whether a new block of n bytes fits the per-input bounds. */
static bool room_for(size_t n)
{
    return nblocks + ntasks < MAX_BLOCKS && n <= MAX_REQUEST && live_bytes + n <= LIVE_BYTES_CAP;
}

/* Library bugs near a heap's limit (fixed; stepped around with workarounds):
 * - (tests/fuzz/crashes/limit-spin-class-alloc.bin) a class-sized
 *   allocation whose span could not commit its next carve step spun forever
 *   in frontend_alloc_slow (the span was given up as reusable and adopted
 *   again);
 * - (tests/fuzz/crashes/aligned-limit-free-run-loop.bin) an alignment above
 *   a span whose moved header page could not be committed made
 *   huge_alloc_aligned keep the slack inside the run but still cut `after`
 *   spans from past the run's end: free runs overlapped or linked to
 *   themselves and a later huge allocation looped in run_take_free (only
 *   where the region lay so that there was slack, so only some runs hung).
 * With workarounds, such requests are skipped when the heap is within
 * reach of its limit, and workers do not allocate on limited heaps. */
static bool limit_spin_risk(int hi, size_t n, size_t align)
{
    model_heap_t *m = &heaps[hi];
    bool class_request = n <= SC_MAX_CLASS_SIZE && align <= 128;
    if (!workarounds || m->limit == 0 || !(class_request || align > SPAN))
        return false;
    sc_heap_stats_t st;
    sc_heap_get_stats(m->h, &st);
    return st.committed_bytes + 2 * SPAN + descriptor_slack(&st) > m->limit;
}

/* A failed request on heap hi: allowed only as ENOMEM on a limited heap. */
static void refused(int hi, size_t n, size_t align, const char *what)
{
    if (trace)
        fprintf(stderr, "fuzz_heap:   %s(heap %d, %zu bytes, align %zu) refused, errno %d\n", what,
                hi, n, align, errno);
    if (heaps[hi].limit == 0 || errno != ENOMEM)
        fail("%s of %zu bytes (align %zu) on heap %d failed, errno %d", what, n, align, hi, errno);
    check_refusal(hi, n, align, what);
}

static void op_alloc(reader_t *r)
{
    int hi = pick_heap(u8(r), true);
    uint8_t variant = u8(r);
    size_t n = read_size(r);
    if (hi < 0 || !room_for(n) || limit_spin_risk(hi, n, 16))
        return;
    errno = 0;
    unsigned char *p = (variant & 1) ? sc_thread_alloc(main_front(hi), n) : sc_alloc(heaps[hi].h, n);
    if (p == NULL)
        refused(hi, n, 16, (variant & 1) ? "sc_thread_alloc" : "sc_alloc");
    else
        new_block(p, n, 16, hi, "sc_alloc");
}

static const size_t invalid_alignments[] = {
    0, 3, 24, 48, 100, 4097, MiB + 16, 3 * GiB, SIZE_MAX, SIZE_MAX / 2, ((size_t)1 << 63) + 1,
};
#define NUM_INVALID_ALIGNMENTS (sizeof invalid_alignments / sizeof invalid_alignments[0])

/* log2 of the alignment an align byte below 240 asks for: mostly up to a
 * page, some up to 8 MiB, few up to MAX_ALIGN. The largest reserve address
 * space of their size, which every later statistics call walks (resident
 * bytes) and destroy clears in ASan's shadow: kept rare for speed. */
static unsigned alignment_shift(uint8_t a)
{
    if (a < 128)
        return a % 13u;
    if (a < 232)
        return 13u + (a - 128u) % 11u;
    return 24u + (a - 232u) % 7u;
}

static void op_aligned(reader_t *r)
{
    int hi = pick_heap(u8(r), true);
    uint8_t a = u8(r);
    size_t n = read_size(r);
    if (hi < 0)
        return;
    if (a >= 240) {
        size_t align = invalid_alignments[(a - 240) % NUM_INVALID_ALIGNMENTS];
        errno = 0;
        void *p = sc_aligned_alloc(heaps[hi].h, align, n);
        if (p != NULL || errno != EINVAL)
            fail("sc_aligned_alloc(align %zu, %zu): %p, errno %d; expected NULL and EINVAL", align,
                 n, p, errno);
        return;
    }
    size_t align = (size_t)1 << alignment_shift(a);
    if (!room_for(n) || (align >= BIG_ALIGN && big_align_blocks >= MAX_BIG_ALIGN_BLOCKS) ||
        limit_spin_risk(hi, n, align))
        return;
    errno = 0;
    unsigned char *p = sc_aligned_alloc(heaps[hi].h, align, n);
    if (p == NULL)
        refused(hi, n, align, "sc_aligned_alloc");
    else
        new_block(p, n, align, hi, "sc_aligned_alloc");
}

static void op_calloc(reader_t *r)
{
    int hi = pick_heap(u8(r), true);
    size_t count = u8(r);
    size_t size = read_size(r);
    if (hi < 0)
        return;
    if (count > 1 && size > MAX_REQUEST / count)
        size = size % (MAX_REQUEST / count + 1);
    size_t n = count * size;
    if (!room_for(n) || limit_spin_risk(hi, n, 16))
        return;
    errno = 0;
    unsigned char *p = sc_calloc(heaps[hi].h, count, size);
    if (p == NULL) {
        refused(hi, n, 16, "sc_calloc");
        return;
    }
    size_t bad = first_nonzero(p, n);
    if (bad != SIZE_MAX)
        fail("sc_calloc(%zu, %zu) = %p: byte %zu is 0x%02x, not zero", count, size, (void *)p, bad,
             p[bad]);
    new_block(p, n, 16, hi, "sc_calloc");
}

/* The main-thread block picked by byte b, or SIZE_MAX when there is none. */
static size_t pick_block(uint8_t b)
{
    return nblocks ? b % nblocks : SIZE_MAX;
}

/* scalloc.h: sc_realloc keeps a block in place when n fits its usable size
 * and is more than half of it (or at most 256 bytes), except that a huge
 * block shrunk to a class size moves, unless it is huge only for its
 * alignment. (tests/fuzz/crashes/realloc-*-moves.bin: inputs that found
 * the library moving blocks the header then promised to keep.) */
static bool realloc_must_stay(const model_block_t *old, size_t usable, size_t n)
{
    if (n == 0 || n > usable || !(n > usable / 2 || usable <= 256))
        return false;
    return !old->huge || n > SC_MAX_CLASS_SIZE || old->aligned_huge;
}

static void op_realloc(reader_t *r)
{
    uint8_t slot = u8(r);
    uint8_t hb = u8(r);
    size_t n = read_size(r);
    size_t i = pick_block(slot);
    if (slot == 255 || i == SIZE_MAX) {
        int hi = pick_heap(hb, true);
        if (hi < 0 || !room_for(n) || limit_spin_risk(hi, n, 16))
            return;
        errno = 0;
        unsigned char *p = sc_realloc(heaps[hi].h, NULL, n);
        if (p == NULL)
            refused(hi, n, 16, "sc_realloc(NULL)");
        else
            new_block(p, n, 16, hi, "sc_realloc(NULL)");
        return;
    }
    model_block_t old = blocks[i];
    if ((n > old.n && !room_for(n - old.n)) || limit_spin_risk(old.heap, n, 16))
        return;
    sc_heap_t *h = heaps[old.heap].h;
    verify_contents(&old, "before sc_realloc");
    size_t old_usable = sc_usable_size(h, old.p);
    if (trace)
        fprintf(stderr, "fuzz_heap:   sc_realloc(heap %d, %p, %zu), id %llu\n", old.heap,
                (void *)old.p, n, (unsigned long long)old.id);
    errno = 0;
    unsigned char *q = sc_realloc(h, old.p, n);
    char d[160];
    if (q == NULL) {
        refused(old.heap, n, 16, "sc_realloc");
        verify_contents(&old, "after a failed sc_realloc");
        return;
    }
    take_block(i);
    size_t keep = old.n < n ? old.n : n;
    size_t bad = pattern_apply(q, old.n, keep, mix64(old.id), true);
    if (bad != SIZE_MAX) {
        describe(&old, d, sizeof d);
        fail("sc_realloc(%s, %zu) = %p lost byte %zu", d, n, (void *)q, bad);
    }
    if (q != old.p && realloc_must_stay(&old, old_usable, n)) {
        describe(&old, d, sizeof d);
        fail("sc_realloc(%s, %zu) moved to %p though %zu bytes were usable", d, n, (void *)q,
             old_usable);
    }
    add_new_block(realloc_result(&old, q, n, next_id++), "sc_realloc");
}

static void op_free(reader_t *r)
{
    size_t i = pick_block(u8(r));
    uint8_t variant = u8(r);
    if (i == SIZE_MAX)
        return;
    verify_contents(&blocks[i], "before sc_free");
    model_block_t b = take_block(i);
    if (trace)
        fprintf(stderr, "fuzz_heap:   sc_free(heap %d, %p), id %llu\n", b.heap, (void *)b.p,
                (unsigned long long)b.id);
    if (variant & 1)
        sc_thread_free(main_front(b.heap), b.p);
    else
        sc_free(heaps[b.heap].h, b.p);
    /* The address stays in the heap's range after a free. */
    if (sc_heap_of(b.p) != heaps[b.heap].h)
        fail("sc_heap_of(%p) is %p after a free, not its heap", (void *)b.p, (void *)sc_heap_of(b.p));
    if (variant & 2)
        sc_free(heaps[b.heap].h, NULL); /* a no-op */
}

static void op_handoff(reader_t *r)
{
    uint8_t slot = u8(r);
    uint8_t action = u8(r);
    size_t i = pick_block(slot);
    size_t w = action & 1;
    int act = (action >> 1) % TASK_ACTIONS;
    size_t n = 0;
    if (act == TASK_REALLOC || act == TASK_REALLOC_FREE)
        n = read_size(r);
    if (i == SIZE_MAX)
        return;
    if (ntasks == MAX_TASKS || pool.queued[w] == QUEUE_CAP) {
        quiesce();
        i = pick_block(slot);
        if (i == SIZE_MAX)
            return;
    }
    size_t reserve = n > blocks[i].n ? n - blocks[i].n : 0;
    if (reserve && live_bytes + reserve > LIVE_BYTES_CAP)
        return;
    if (nblocks + ntasks >= MAX_BLOCKS)
        return;
    workers_start();
    int hi = blocks[i].heap;
    if (workarounds && heaps[hi].limit != 0 && (act == TASK_REALLOC || act == TASK_REALLOC_FREE))
        act = TASK_FREE;
    sc_thread_t *mf = act == TASK_WRONG_FRONTEND ? main_front(hi) : NULL;
    model_block_t b = take_block(i);
    task_t *t = &tasks[ntasks];
    *t = (task_t){.block = b, .action = act, .new_n = n, .new_id = next_id++,
                  .heap = heaps[hi].h, .limited = heaps[hi].limit != 0, .main_front = mf,
                  .reserved = b.n + reserve};
    /* The block's bytes stay counted until the quiesce, grown by the realloc. */
    live_bytes += t->reserved;
    heaps[hi].in_flight++;
    pthread_mutex_lock(&pool.lock);
    pool.queue[w][pool.queued[w]++] = ntasks++;
    pool.pending++;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
}

static void op_check(reader_t *r)
{
    int hi = pick_heap(u8(r), false);
    uint8_t flags = u8(r);
    quiesce();
    for (int k = 0; k < MAX_HEAPS; k++)
        check_stats(k);
    check_no_overlap();
    if (hi < 0)
        return;
    check_visit(hi);
    if (flags & 1)
        sc_heap_print_stats(heaps[hi].h, null_out, (flags & 2) ? SC_STATS_JSON : SC_STATS_TEXT);
}

static void op_verify(reader_t *r)
{
    size_t i = pick_block(u8(r));
    uint32_t off = u16(r);
    if (i == SIZE_MAX)
        return;
    model_block_t *b = &blocks[i];
    sc_heap_t *h = heaps[b->heap].h;
    verify_contents(b, "verify");
    check_block_facts(b, h, true, "verify");
    if (b->n > 0) {
        unsigned char *inside = b->p + off % b->n;
        if (sc_heap_of(inside) != h || !sc_heap_owns(h, inside))
            fail("sc_heap_of(%p), inside a block of heap %d, is %p", (void *)inside, b->heap,
                 (void *)sc_heap_of(inside));
    }
}

static void op_sync(reader_t *r)
{
    if (u8(r) & 1)
        workers_join(); /* the workers' frontends are torn down */
    else
        quiesce();
    for (int k = 0; k < MAX_HEAPS; k++)
        check_stats(k);
}

static int static_object;

/* Ownership answers for pointers that are not blocks. Any pointer value is
 * safe to ask about; heap_of must name a live heap or none, and owns must
 * agree with it. */
static void op_probe(reader_t *r)
{
    uint64_t g = u64(r);
    int local = 0;
    void *libc = malloc(1 + (g & 255));
    if (libc == NULL)
        fail("malloc failed");
    const void *foreign[] = {libc, &local, &static_object, NULL, (void *)(uintptr_t)-1};
    for (size_t k = 0; k < sizeof foreign / sizeof foreign[0]; k++) {
        if (sc_heap_of(foreign[k]) != NULL)
            fail("sc_heap_of(%p), not a scalloc pointer, is %p", foreign[k],
                 (void *)sc_heap_of(foreign[k]));
        for (int i = 0; i < MAX_HEAPS; i++)
            if (heaps[i].live && sc_heap_owns(heaps[i].h, foreign[k]))
                fail("heap %d owns %p, not a scalloc pointer", i, foreign[k]);
    }
    free(libc);
    /* Garbage as it comes, and near a live block. */
    const void *garbage[2] = {(const void *)(uintptr_t)g, NULL};
    if (nblocks) {
        const model_block_t *b = &blocks[g % nblocks];
        garbage[1] = (const void *)((uintptr_t)b->p + (uintptr_t)(int16_t)(g >> 16));
    }
    for (size_t k = 0; k < 2; k++) {
        sc_heap_t *owner = sc_heap_of(garbage[k]);
        /* Above the 47-bit user address space nothing can be a heap's. */
        if (owner != NULL && (uintptr_t)garbage[k] >> 47 != 0)
            fail("sc_heap_of(%p), outside the user address space, is %p", garbage[k],
                 (void *)owner);
        if (owner != NULL && !heap_is_live_handle(owner))
            fail("sc_heap_of(%p) is %p, not a live heap", garbage[k], (void *)owner);
        for (int i = 0; i < MAX_HEAPS; i++)
            if (heaps[i].live && sc_heap_owns(heaps[i].h, garbage[k]) != (owner == heaps[i].h))
                fail("sc_heap_owns(heap %d, %p) is %d but sc_heap_of is %p", i, garbage[k],
                     sc_heap_owns(heaps[i].h, garbage[k]), (void *)owner);
    }
}

/* Requests no heap can meet (larger than the address space) or that are
 * invalid: NULL with the right errno, and any block involved untouched. */
static const size_t impossible_sizes[] = {
    SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2 + 1, (size_t)1 << 47, ((size_t)1 << 47) + 4096,
};
#define NUM_IMPOSSIBLE_SIZES (sizeof impossible_sizes / sizeof impossible_sizes[0])

static void expect_refused(void *p, int want_errno, const char *what, size_t a, size_t b)
{
    if (p != NULL || errno != want_errno)
        fail("%s(%zu, %zu) = %p, errno %d; expected NULL and errno %d", what, a, b, p, errno,
             want_errno);
}

static void op_impossible(reader_t *r)
{
    int hi = pick_heap(u8(r), true);
    uint8_t kind = u8(r);
    uint8_t slot = u8(r);
    if (hi < 0)
        return;
    sc_heap_t *h = heaps[hi].h;
    size_t big = impossible_sizes[(kind >> 3) % NUM_IMPOSSIBLE_SIZES];
    errno = 0;
    switch (kind % 6) {
    case 0:
        expect_refused(sc_alloc(h, big), ENOMEM, "sc_alloc", big, 0);
        break;
    case 1: {
        /* count * size wraps around. */
        size_t count = (size_t)1 << (33 + (kind >> 3) % 30);
        size_t size = SIZE_MAX / count + 1 + (slot & 15);
        expect_refused(sc_calloc(h, count, size), ENOMEM, "sc_calloc", count, size);
        break;
    }
    case 2: {
        /* No overflow, but at least `big` bytes in all. */
        size_t count = 1 + (slot & 7);
        size_t each = big / count + (big % count != 0);
        expect_refused(sc_calloc(h, count, each), ENOMEM, "sc_calloc", count, each);
        break;
    }
    case 3: {
        size_t align = (kind & 8) ? (size_t)1 << 63 : (size_t)1 << 47;
        expect_refused(sc_aligned_alloc(h, align, 1 + slot), ENOMEM, "sc_aligned_alloc", align,
                       1 + (size_t)slot);
        break;
    }
    case 4:
        expect_refused(sc_thread_alloc(main_front(hi), big), ENOMEM, "sc_thread_alloc", big, 0);
        break;
    case 5: {
        size_t i = pick_block(slot);
        if (i == SIZE_MAX)
            break;
        model_block_t *b = &blocks[i];
        errno = 0;
        expect_refused(sc_realloc(heaps[b->heap].h, b->p, big), ENOMEM, "sc_realloc", b->n, big);
        verify_contents(b, "after an impossible sc_realloc");
        check_block_facts(b, heaps[b->heap].h, true, "after an impossible sc_realloc");
        break;
    }
    }
}

/* Interior pointer inside block b: an offset that is never a block start. */
static unsigned char *interior_of(const model_block_t *b, sc_heap_t *h, uint8_t k)
{
    size_t usable = sc_usable_size(h, b->p);
    if (k & 0x80 && usable >= 32)
        return b->p + 16 * (1 + (k & 0x7f) % (usable / 16 - 1));
    return b->p + 1 + k % 15;
}

static void op_misuse(reader_t *r)
{
    uint8_t kind = u8(r);
    int hi = pick_heap(u8(r), true);
    uint8_t slot = u8(r);
    if (hi < 0)
        return;
    /* No worker may touch a heap during a misuse: a double free must not
     * hit a block a worker got meanwhile. */
    quiesce();
    sc_heap_t *h = heaps[hi].h;
    int local = 0;
    switch (kind % 8) {
    case 0: {
        void *libc = malloc(64);
        if (libc == NULL)
            fail("malloc failed");
        expect_begin();
        sc_free(h, libc);
        expect_end(SC_ERR_FOREIGN_POINTER, SC_ERR_FOREIGN_POINTER, "sc_free of a libc pointer");
        free(libc);
        break;
    }
    case 1:
        expect_begin();
        sc_free(h, &local);
        expect_end(SC_ERR_FOREIGN_POINTER, SC_ERR_FOREIGN_POINTER, "sc_free of a stack address");
        expect_begin();
        size_t usable = sc_usable_size(h, &local);
        expect_end(SC_ERR_FOREIGN_POINTER, SC_ERR_FOREIGN_POINTER,
                   "sc_usable_size of a stack address");
        if (usable != 0)
            fail("sc_usable_size of a stack address is %zu", usable);
        break;
    case 2: {
        size_t i = pick_block(slot);
        if (i == SIZE_MAX)
            break;
        model_block_t *b = &blocks[i];
        sc_heap_t *bh = heaps[b->heap].h;
        unsigned char *inner = interior_of(b, bh, kind);
        expect_begin();
        sc_free(bh, inner);
        expect_end(SC_ERR_INTERIOR_POINTER, SC_ERR_INTERIOR_POINTER, "sc_free of an interior pointer");
        expect_begin();
        void *q = sc_realloc(bh, inner, 32);
        expect_end(SC_ERR_INTERIOR_POINTER, SC_ERR_INTERIOR_POINTER,
                   "sc_realloc of an interior pointer");
        if (q != NULL)
            fail("sc_realloc of an interior pointer returned %p", q);
        verify_contents(b, "after freeing an interior pointer");
        break;
    }
    case 3: {
        size_t i = pick_block(slot);
        if (i == SIZE_MAX || blocks[i].heap == hi)
            break;
        model_block_t *b = &blocks[i];
        expect_begin();
        sc_free(h, b->p);
        expect_end(SC_ERR_OTHER_HEAP, SC_ERR_OTHER_HEAP, "sc_free of another heap's block");
        expect_begin();
        size_t usable = sc_usable_size(h, b->p);
        expect_end(SC_ERR_OTHER_HEAP, SC_ERR_OTHER_HEAP, "sc_usable_size of another heap's block");
        if (usable != 0)
            fail("sc_usable_size of another heap's block is %zu", usable);
        verify_contents(b, "after freeing it through another heap");
        break;
    }
    case 4: {
        /* Exhaustive double-free detection is promised in checked mode. */
        size_t i = pick_block(slot);
        if (i == SIZE_MAX || !heaps[blocks[i].heap].checked)
            break;
        verify_contents(&blocks[i], "before a double free");
        model_block_t b = take_block(i);
        sc_heap_t *bh = heaps[b.heap].h;
        bool huge = b.n > SC_MAX_CLASS_SIZE || b.align > 128;
        sc_free(bh, b.p);
        expect_begin();
        sc_free(bh, b.p);
        /* A huge block's range may have merged into a free run, which has
         * no block there to call free any more. */
        expect_end(SC_ERR_DOUBLE_FREE, huge ? SC_ERR_FOREIGN_POINTER : SC_ERR_DOUBLE_FREE,
                   "double free in a checked heap");
        break;
    }
    case 5: {
        /* A destroyed handle that no live heap reuses. */
        sc_heap_t *dead = NULL;
        for (size_t k = 0; k < ndead && dead == NULL; k++)
            if (!heap_is_live_handle(dead_handles[k]))
                dead = dead_handles[k];
        if (dead == NULL)
            break;
        expect_begin();
        void *p = sc_alloc(dead, 16);
        expect_end(SC_ERR_DESTROYED_HEAP, SC_ERR_DESTROYED_HEAP, "sc_alloc on a destroyed heap");
        if (p != NULL)
            fail("sc_alloc on a destroyed heap returned %p", p);
        expect_begin();
        sc_heap_trim(dead);
        expect_end(SC_ERR_DESTROYED_HEAP, SC_ERR_DESTROYED_HEAP, "sc_heap_trim on a destroyed heap");
        expect_begin();
        sc_heap_destroy(dead);
        expect_end(SC_ERR_DESTROYED_HEAP, SC_ERR_DESTROYED_HEAP,
                   "sc_heap_destroy on a destroyed heap");
        break;
    }
    case 6: {
        /* A pointer near a block of a checked heap that is not a live
         * block start: checked mode must refuse it whatever it hits. */
        size_t i = pick_block(slot);
        if (i == SIZE_MAX || !heaps[blocks[i].heap].checked)
            break;
        model_block_t *b = &blocks[i];
        unsigned char *g = b->p + (long)(int8_t)kind * 16 + (kind & 3);
        if (ptrset_contains(g) || sc_heap_of(g) != heaps[b->heap].h)
            break;
        expect_begin();
        sc_free(heaps[b->heap].h, g);
        expecting_report = false;
        if (report_count != 1)
            fail("sc_free(%p), no live block, in a checked heap: %u reports", (void *)g,
                 report_count);
        verify_contents(b, "after freeing a pointer near it");
        break;
    }
    case 7: {
        /* Garbage outside every heap. */
        unsigned char *g = (unsigned char *)(uintptr_t)(((uint64_t)slot << 40) | ((uint64_t)kind << 16) | 0x10);
        if (sc_heap_of(g) != NULL)
            break;
        expect_begin();
        sc_free(h, g);
        expect_end(SC_ERR_FOREIGN_POINTER, SC_ERR_FOREIGN_POINTER, "sc_free of garbage");
        break;
    }
    }
}

/* ------------------------------------------------------------------------ */
/* The driver                                                               */
/* ------------------------------------------------------------------------ */

static void setup_once(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    sc_set_error_handler(on_error, NULL);
    const char *t = getenv("FUZZ_HEAP_TRACE");
    trace = t && *t && strcmp(t, "0") != 0;
    const char *w = getenv("FUZZ_HEAP_WORKAROUNDS");
    workarounds = w && *w && strcmp(w, "0") != 0;
    null_out = fopen("/dev/null", "w");
    if (null_out == NULL)
        fail("cannot open /dev/null");
}

/* Ends an input: every block verified, every heap destroyed, every thread
 * joined, so the next input starts from nothing. */
static void finish_input(void)
{
    current_op_name = "end of input";
    workers_join();
    for (int i = 0; i < MAX_HEAPS; i++)
        if (heaps[i].live)
            destroy_heap(i);
    if (nblocks != 0 || live_bytes != 0 || big_align_blocks != 0)
        fail("model: %zu blocks, %zu bytes left after destroying every heap", nblocks, live_bytes);
    ndead = 0;
    next_id = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    reader_t r = {data, size, 0};
    for (current_op_index = 0; r.pos < r.size && current_op_index < MAX_OPS; current_op_index++) {
        int op = op_table[u8(&r) % 32];
        current_op_name = op_names[op];
        if (trace)
            fprintf(stderr, "fuzz_heap: op %zu %s at byte %zu (%zu blocks, %zu bytes live)\n",
                    current_op_index, current_op_name, r.pos - 1, nblocks, live_bytes);
        switch (op) {
        case OP_CREATE: {
            uint8_t cfg = u8(&r);
            create_heap(cfg, u8(&r));
            break;
        }
        case OP_DESTROY: {
            int hi = pick_heap(u8(&r), false);
            if (hi >= 0)
                destroy_heap(hi);
            break;
        }
        case OP_ALLOC: op_alloc(&r); break;
        case OP_ALIGNED: op_aligned(&r); break;
        case OP_CALLOC: op_calloc(&r); break;
        case OP_REALLOC: op_realloc(&r); break;
        case OP_FREE: op_free(&r); break;
        case OP_HANDOFF: op_handoff(&r); break;
        case OP_RESET: {
            int hi = pick_heap(u8(&r), false);
            if (hi >= 0)
                reset_heap(hi);
            break;
        }
        case OP_TRIM: {
            int hi = pick_heap(u8(&r), false);
            if (hi >= 0) {
                sc_heap_trim(heaps[hi].h);
                check_stats(hi);
            }
            break;
        }
        case OP_CHECK: op_check(&r); break;
        case OP_MISUSE: op_misuse(&r); break;
        case OP_VERIFY: op_verify(&r); break;
        case OP_SYNC: op_sync(&r); break;
        case OP_PROBE: op_probe(&r); break;
        case OP_IMPOSSIBLE: op_impossible(&r); break;
        }
    }
    finish_input();
    return 0;
}
