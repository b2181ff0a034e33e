/*
 * lua_host — a Lua 5.4 host where every lua_State lives in a scalloc heap
 * of its own.
 *
 * lua_newstate takes an allocator function and an opaque pointer; the host
 * passes sc_realloc/sc_free behind that hook, and the state's heap in the
 * pointer. Every byte the interpreter allocates for that state (the state
 * itself, strings, tables, closures, stacks) then comes from its heap, so:
 *   - the heap's statistics are the state's memory use: the program checks
 *     them against the blocks the hook handed out, and, since each heap
 *     tracks requested sizes (SC_HEAP_TRACK_REQUESTED), checks that its
 *     requested bytes equal Lua's own count of the bytes it asked for;
 *   - states on different threads never share allocator memory;
 *   - when the state is closed the heap is destroyed and everything it held
 *     goes back to the OS at once.
 *
 * Several threads each run one state through a real workload (a prime
 * sieve, word frequencies, string building and sorting, closures, garbage
 * pressure); the host recomputes every answer in C and exits non-zero if
 * any differs. With -v it also prints each heap's sc_heap_print_stats
 * table before the state is closed.
 */
#include <scalloc/scalloc.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NUM_STATES = 4, NUM_WORDS = 20000 };

static int verbose;
/* Keeps the -v tables of different threads from interleaving. */
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

/* What the hook hands to Lua: the state's heap, and the blocks and usable
 * bytes the hook believes are live, counted on the side so the heap's own
 * statistics can be checked against them. One state runs on one thread,
 * so plain counters suffice. */
struct lua_heap {
    sc_heap_t *heap;
    size_t blocks;
    size_t usable_bytes;
};

/* The allocator hook of lua_newstate. Lua frees with nsize == 0 and
 * otherwise asks for a block of nsize bytes in place of ptr (ptr == NULL
 * for a new block; osize then encodes the object type, which a heap per
 * state does not need). sc_realloc never fails when shrinking, as Lua
 * requires. */
static void *heap_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lua_heap *lh = ud;
    (void)osize;
    if (ptr != NULL && nsize == 0) {
        lh->blocks--;
        lh->usable_bytes -= sc_usable_size(lh->heap, ptr);
        sc_free(lh->heap, ptr);
        return NULL;
    }
    if (nsize == 0)
        return NULL; /* Lua "frees" NULL: nothing to do */
    size_t old_usable = ptr != NULL ? sc_usable_size(lh->heap, ptr) : 0;
    void *p = sc_realloc(lh->heap, ptr, nsize);
    if (p == NULL)
        return NULL; /* ptr is untouched, and so are the counters */
    if (ptr == NULL)
        lh->blocks++;
    lh->usable_bytes += sc_usable_size(lh->heap, p) - old_usable;
    return p;
}

/* Shared by the script (passed as an argument) and the C check, so both
 * draw words from the same list. */
static const char VOCABULARY[] =
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua enim ad minim veniam "
    "quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo";

/* The workload. Arguments: the state's number and the vocabulary. */
static const char SCRIPT[] =
    "local id, vocabulary_text = ...\n"
    "local limit = 50000 + 10000 * id\n"
    "\n"
    "-- Primes below limit with a sieve: one large table.\n"
    "local composite, count, sum = {}, 0, 0\n"
    "for n = 2, limit - 1 do\n"
    "  if not composite[n] then\n"
    "    count, sum = count + 1, sum + n\n"
    "    for m = n * n, limit - 1, n do composite[m] = true end\n"
    "  end\n"
    "end\n"
    "composite = nil\n"
    "\n"
    "-- Word frequencies over a 64-bit LCG (integers wrap as in C).\n"
    "local vocabulary = {}\n"
    "for w in vocabulary_text:gmatch('%a+') do vocabulary[#vocabulary + 1] = w end\n"
    "local x = id\n"
    "local freq, words = {}, {}\n"
    "for i = 1, NUM_WORDS do\n"
    "  x = x * 6364136223846793005 + 1442695040888963407\n"
    "  local w = vocabulary[(x >> 33) % #vocabulary + 1]\n"
    "  freq[w] = (freq[w] or 0) + 1\n"
    "  words[i] = w .. '-' .. i % 97\n"
    "end\n"
    "local top, top_count = nil, 0\n"
    "for w, c in pairs(freq) do\n"
    "  if c > top_count or (c == top_count and w < top) then top, top_count = w, c end\n"
    "end\n"
    "\n"
    "-- Sort the strings, check the order, join them into one big string.\n"
    "table.sort(words)\n"
    "for i = 2, #words do assert(words[i - 1] <= words[i], 'sort out of order') end\n"
    "local joined = table.concat(words, ',')\n"
    "\n"
    "-- Closures: memoised Fibonacci and a chain of 1000 composed functions.\n"
    "local function memoize(f)\n"
    "  local cache = {}\n"
    "  return function(n)\n"
    "    local v = cache[n]\n"
    "    if v == nil then v = f(n); cache[n] = v end\n"
    "    return v\n"
    "  end\n"
    "end\n"
    "local fib\n"
    "fib = memoize(function(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end)\n"
    "local function compose(f, g) return function(v) return f(g(v)) end end\n"
    "local function inc(v) return v + 1 end\n"
    "local chain = inc\n"
    "for _ = 2, 1000 do chain = compose(inc, chain) end\n"
    "\n"
    "-- Garbage: many short-lived tables and strings, then a full collection.\n"
    "local kept = 0\n"
    "for i = 1, 100000 do\n"
    "  local t = { i, tostring(i), { i * 2 } }\n"
    "  if i % 1000 == 0 then kept = kept + #t[2] end\n"
    "end\n"
    "collectgarbage('collect')\n"
    "\n"
    "return count, sum, top, top_count, #joined, fib(90), chain(0), kept\n";

/* What the script must return, computed independently in C. */
struct expected {
    long long prime_count, prime_sum;
    char top_word[16]; /* as long as a vocabulary entry below */
    long long top_count;
    long long joined_length;
    long long fib90, chain, kept;
};

static void compute_expected(int id, struct expected *e)
{
    long long limit = 50000 + 10000LL * id;
    unsigned char *composite = calloc((size_t)limit, 1);
    if (composite == NULL) {
        perror("calloc");
        exit(1);
    }
    e->prime_count = e->prime_sum = 0;
    for (long long n = 2; n < limit; n++) {
        if (composite[n])
            continue;
        e->prime_count++;
        e->prime_sum += n;
        for (long long m = n * n; m < limit; m += n)
            composite[m] = 1;
    }
    free(composite);

    /* Split the vocabulary the way gmatch('%a+') does. */
    char vocab[64][16];
    size_t nv = 0;
    for (const char *p = VOCABULARY; *p != '\0' && nv < 64;) {
        size_t len = 0;
        while (*p == ' ')
            p++;
        while (*p != '\0' && *p != ' ') {
            if (len + 1 < sizeof vocab[nv])
                vocab[nv][len++] = *p;
            p++;
        }
        vocab[nv][len] = '\0';
        if (len > 0)
            nv++;
    }
    long long freq[64] = {0};
    uint64_t x = (uint64_t)id;
    e->joined_length = NUM_WORDS - 1; /* the commas */
    for (int i = 1; i <= NUM_WORDS; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        size_t w = (size_t)((x >> 33) % nv);
        freq[w]++;
        char suffix[8];
        e->joined_length += (long long)strlen(vocab[w]) + 1 +
                            snprintf(suffix, sizeof suffix, "%d", i % 97);
    }
    /* Most frequent; ties go to the word that sorts first, as in the
     * script (Lua compares strings with strcoll, which is strcmp in the C
     * locale this program never leaves). */
    size_t best = 0;
    for (size_t w = 1; w < nv; w++) {
        if (freq[w] > freq[best] ||
            (freq[w] == freq[best] && strcmp(vocab[w], vocab[best]) < 0))
            best = w;
    }
    memcpy(e->top_word, vocab[best], sizeof e->top_word);
    e->top_count = freq[best];

    long long a = 0, b = 1;
    for (int i = 0; i < 90; i++) {
        long long t = a + b;
        a = b;
        b = t;
    }
    e->fib90 = a;
    e->chain = 1000;
    e->kept = 0;
    for (int i = 1000; i <= 100000; i += 1000) {
        char digits[16];
        e->kept += snprintf(digits, sizeof digits, "%d", i);
    }
}

/* One state's run, filled in by its thread and reported by main. */
struct state_run {
    int id;
    int ok;
    char error[256];
    size_t lua_bytes;           /* Lua's own count before lua_close */
    sc_heap_stats_t before;     /* the heap before lua_close */
    sc_heap_stats_t after;      /* and after: must hold nothing */
};

static void fail(struct state_run *run, const char *what)
{
    if (run->ok)
        snprintf(run->error, sizeof run->error, "%s", what);
    run->ok = 0;
}

static void check_integer(struct state_run *run, lua_State *L, int index,
                          long long expected, const char *what)
{
    int is_int = 0;
    long long got = (long long)lua_tointegerx(L, index, &is_int);
    if (!is_int || got != expected) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: got %lld, expected %lld", what, got, expected);
        fail(run, msg);
    }
}

static void *run_state(void *arg)
{
    struct state_run *run = arg;
    run->ok = 1;

    char name[16];
    snprintf(name, sizeof name, "lua-%d", run->id);
    /* Tracking requested sizes makes the heap's requested_bytes exact, so
     * it can be held against Lua's own count below. */
    sc_heap_config_t cfg = {.name = name, .flags = SC_HEAP_TRACK_REQUESTED};
    struct lua_heap lh = {.heap = sc_heap_create(&cfg)};
    sc_heap_t *heap = lh.heap;
    if (heap == NULL) {
        fail(run, "sc_heap_create failed");
        return NULL;
    }
    lua_State *L = lua_newstate(heap_lua_alloc, &lh);
    if (L == NULL) {
        fail(run, "lua_newstate failed");
        sc_heap_destroy(heap);
        return NULL;
    }
    /* The state itself was the first block allocated through the hook. */
    if (sc_heap_of(L) != heap)
        fail(run, "lua_State is not in its heap");

    /* Half the states use Lua's generational collector: a different
     * pattern of frees for the heap. */
    if (run->id % 2 == 1)
        lua_gc(L, LUA_GCGEN, 0, 0);
    luaL_openlibs(L);
    lua_pushinteger(L, NUM_WORDS);
    lua_setglobal(L, "NUM_WORDS");

    struct expected e;
    compute_expected(run->id, &e);

    if (luaL_loadbufferx(L, SCRIPT, sizeof SCRIPT - 1, "=workload", "t") != LUA_OK) {
        fail(run, lua_tostring(L, -1));
    } else {
        lua_pushinteger(L, run->id);
        lua_pushstring(L, VOCABULARY);
        if (lua_pcall(L, 2, 8, 0) != LUA_OK) {
            fail(run, lua_tostring(L, -1));
        } else {
            check_integer(run, L, 1, e.prime_count, "prime count");
            check_integer(run, L, 2, e.prime_sum, "prime sum");
            const char *top = lua_tostring(L, 3);
            if (top == NULL || strcmp(top, e.top_word) != 0)
                fail(run, "most frequent word differs");
            check_integer(run, L, 4, e.top_count, "top word count");
            check_integer(run, L, 5, e.joined_length, "joined length");
            check_integer(run, L, 6, e.fib90, "fib(90)");
            check_integer(run, L, 7, e.chain, "closure chain");
            check_integer(run, L, 8, e.kept, "kept digits");
        }
    }
    lua_settop(L, 0);

    /* Lua counts the bytes it asked for: the heap's requested bytes must
     * be exactly that. Its live bytes count blocks at their usable size
     * (the request rounded up to its size class); the hook counted the
     * same blocks on the side, and the two must agree exactly. */
    run->lua_bytes = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    sc_heap_get_stats(heap, &run->before);
    if (run->before.live_blocks != lh.blocks)
        fail(run, "heap live blocks differ from the blocks Lua holds");
    if (run->before.live_bytes != lh.usable_bytes)
        fail(run, "heap live bytes differ from the usable size of Lua's blocks");
    if (!run->before.requested_exact || run->before.requested_bytes != run->lua_bytes)
        fail(run, "heap requested bytes differ from Lua's count of the bytes it asked for");
    if (run->before.live_bytes < run->lua_bytes)
        fail(run, "heap live bytes below what Lua asked for");
    if (verbose) {
        pthread_mutex_lock(&print_lock);
        sc_heap_print_stats(heap, stdout, SC_STATS_TEXT);
        printf("\n");
        pthread_mutex_unlock(&print_lock);
    }

    lua_close(L);
    sc_heap_get_stats(heap, &run->after);
    if (run->after.live_blocks != 0 || lh.blocks != 0)
        fail(run, "blocks left in the heap after lua_close");
    sc_heap_destroy(heap);
    return NULL;
}

int main(int argc, char **argv)
{
    verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    struct state_run runs[NUM_STATES];
    pthread_t threads[NUM_STATES];
    for (int i = 0; i < NUM_STATES; i++) {
        memset(&runs[i], 0, sizeof runs[i]);
        runs[i].id = i;
        if (pthread_create(&threads[i], NULL, run_state, &runs[i]) != 0) {
            fprintf(stderr, "lua_host: cannot start thread %d\n", i);
            return 1;
        }
    }
    for (int i = 0; i < NUM_STATES; i++)
        pthread_join(threads[i], NULL);

    printf("lua_host: %d Lua states on %d threads, one scalloc heap each\n\n",
           NUM_STATES, NUM_STATES);
    printf("  %-6s %-12s %10s %10s %11s %11s %11s %11s  %s\n", "state", "gc",
           "lua bytes", "requested", "live blocks", "live bytes", "committed", "resident",
           "after close");
    int failed = 0;
    for (int i = 0; i < NUM_STATES; i++) {
        const struct state_run *r = &runs[i];
        printf("  lua-%-2d %-12s %10zu %10zu %11zu %11zu %11zu %11zu  %zu blocks\n", r->id,
               r->id % 2 ? "generational" : "incremental", r->lua_bytes,
               r->before.requested_bytes, r->before.live_blocks, r->before.live_bytes, r->before.committed_bytes,
               r->before.resident_bytes, r->after.live_blocks);
    }
    for (int i = 0; i < NUM_STATES; i++) {
        if (!runs[i].ok) {
            fprintf(stderr, "lua_host: state %d failed: %s\n", i, runs[i].error);
            failed = 1;
        }
    }
    printf("\n%s\n", failed ? "FAILED" : "OK: every result checked, every heap destroyed");
    return failed;
}
