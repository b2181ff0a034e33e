/*
 * Component test of the span state machine (lib/span.h, lib/span.c;
 * types.h, "THE SPAN LIFE CYCLE"): every transition of the remote word,
 * allowed and forbidden, made directly on real spans below the frontend.
 * A span is taken from a heap's arena (arena_take_span) and set up with
 * span_init_blocks; the test then plays every role itself: the owner
 * (carving, popping and pushing the local list, floating, giving up), the
 * other threads (span_free_remote), the trimmer (span_trim_drained_*) and
 * the takers of the reusable stacks (span_claim_*). No frontend or stack
 * ever sees these spans.
 *
 * The states: HOT, FLOATING, DRAINED, DRAINING, ORPHANED (owned, or
 * leaving their owner), DETACHED, REUSABLE, EMPTY (ownerless), POOLED.
 *
 * Allowed transitions checked (state, remote count and list, generation,
 * the owner's `used`, the moved_to output and return values):
 *   init -> HOT                                          [init_is_hot]
 *   HOT <-> FLOATING, the generation bumped on the way back, so a remote
 *   free prepared while the span floated fails after    [hot_floating_generation]
 *   HOT + remote frees stay HOT; span_take_remote takes them all
 *                                                    [hot_remote_free_and_take]
 *   FLOATING + remote frees: FLOATING, then DRAINED with the last live block
 *                                                       [floating_drains]
 *   DRAINED -> DRAINING -> DRAINED (trim), DRAINING -> ORPHANED (owner
 *   leaves), ORPHANED ends with the trimmer         [drained_trim_and_orphan]
 *   HOT, FLOATING (nothing live), DRAINED -> POOLED by the owner
 *                                                       [owner_pools_empty]
 *   span_give_up: HOT or FLOATING -> DETACHED, REUSABLE or POOLED by the
 *   free count; DRAINED -> POOLED; DRAINING -> ORPHANED     [give_up_*]
 *   DETACHED + remote frees: DETACHED, REUSABLE at the detached reuse
 *   count (an eighth, or the reuse count if fewer; lowered to it), POOLED
 *   at the capacity; REUSABLE + remote frees: REUSABLE, EMPTY
 *                                                    [ownerless_settle*]
 *   REUSABLE -> HOT (its free blocks the local list), EMPTY -> HOT (set up
 *   afresh), EMPTY -> POOLED                              [claim_*]
 *   a span set up again on resident pages links a bounded batch of its
 *   blocks at once, the rest as they are needed [warm_setup_carves_a_bounded_batch]
 *
 * Forbidden transitions checked, from every state, with the remote word
 * unchanged afterwards and the state's allowed transition still working:
 *   span_set_owned_state from any state but the one named: false;
 *   span_claim_if_empty but from EMPTY: false; span_trim_drained_begin but
 *   from DRAINED (or a FLOATING span with every block free): false; span_free_remote into a free span (EMPTY, POOLED,
 *   DRAINED, DRAINING, ORPHANED), past the capacity, or of the remote
 *   list's head: SC_ERR_DOUBLE_FREE; span_claim_owned_empty of a DRAINING
 *   span by a staying owner: false; span_take_remote below its threshold:
 *   false; span_claim_reusable of a span that is not REUSABLE or EMPTY:
 *   SPAN_CLAIM_LOST, or the internal assertion's abort in a SCALLOC_DEBUG
 *   build                                                 [forbidden_*]
 *   Calls whose precondition the callers guarantee and only SC_ASSERT
 *   checks (span_give_up, span_claim_owned_empty, span_trim_drained_end
 *   from the wrong state, span_set_owned_state with a pair other than HOT
 *   <-> FLOATING) abort in a SCALLOC_DEBUG build  [asserted_preconditions]
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "annotate.h"
#include "arena.h"
#include "size_class.h"
#include "span.h"
#include "test_util.h"

/* 256-byte blocks: a 32 KiB real span of 127 blocks, reusable at 102 free
 * with the default threshold (at 15 once given up), so every count below
 * and above the reuse counts and the capacity is a few blocks away. */
#define TEST_CLASS_SIZE 256

static const char *state_name(unsigned st)
{
    static const char *names[] = {"0",          "HOT",     "FLOATING", "REUSABLE",
                                  "EMPTY",      "POOLED",  "DETACHED", "DRAINED",
                                  "DRAINING",   "ORPHANED"};
    return st < sizeof names / sizeof names[0] ? names[st] : "?";
}

static uint64_t word_of(span_t *s)
{
    return atomic_load(&s->remote);
}

static uint64_t gen_of(uint64_t w)
{
    return w >> REMOTE_GEN_SHIFT;
}

#define assert_state(s, want)                                                                  \
    cr_assert_eq(span_state(s), (unsigned)(want), "state %s, expected %s",                    \
                 state_name(span_state(s)), state_name(want))

/* ------------------------------------------------------------------------ */
/* Playing the owner and the other threads                                  */
/* ------------------------------------------------------------------------ */

/* The trimmer's side after span_trim_drained_begin: the span's pages go
 * (a batch of one, flushed), then span_trim_drained_end. */
static bool trim_end(span_t *s)
{
    os_release_batch_t b = {.n = 0};
    span_trim_drained_release(s, &b);
    os_release_batch_flush(&b);
    return span_trim_drained_end(s);
}

static sc_heap_t *the_heap;

static void setup(void)
{
    the_heap = sc_heap_create(NULL);
    cr_assert_not_null(the_heap);
}

static void teardown(void)
{
    sc_heap_destroy(the_heap);
}

TestSuite(component_span_states, .init = setup, .fini = teardown);

/* A span of the test class, HOT, exclusively the test's. */
static span_t *hot_span(void)
{
    span_t *s = arena_take_span(the_heap);
    cr_assert_not_null(s);
    unsigned cls = size_class_of(TEST_CLASS_SIZE);
    cr_assert(span_init_blocks(s, the_heap, cls, 0), "span_init_blocks refused");
    cr_assert_eq(s->block_size, TEST_CLASS_SIZE);
    /* The counts this test relies on: a few blocks between 0, the reuse
     * count and the capacity. */
    cr_assert_geq(span_capacity(s), 8);
    cr_assert_geq(span_detached_reuse_count(s), 4);
    cr_assert_leq(s->reuse_count + 4, span_capacity(s));
    return s;
}

/* The owner hands out a block: from the local list, carving when empty. */
static block_t *owner_alloc(span_t *s)
{
    if (s->free == NULL)
        cr_assert_eq(span_carve(s), CARVE_OK, "the span has no block left to carve");
    block_t *b = s->free;
    s->free = block_next(b);
    span_count_out(s);
    return b;
}

/* The owner frees one of its blocks locally. */
static void owner_free(span_t *s, block_t *b)
{
    block_set_next(b, s->free);
    s->free = b;
    (void)span_count_in(s);
}

/* Another thread frees blocks[0..n) as one batch. */
static sc_error_t remote_free(span_t *s, block_t **blocks, uint32_t n, unsigned *moved)
{
    for (uint32_t i = 0; i + 1 < n; i++)
        block_set_next(blocks[i], blocks[i + 1]);
    *moved = 12345; /* must be overwritten */
    return span_free_remote(s, blocks[0], blocks[n - 1], n, moved);
}

/* Frees n blocks from the end of live[0..*count) remotely; expects success
 * and returns moved_to. */
static unsigned remote_free_last(span_t *s, block_t **live, uint32_t *count, uint32_t n)
{
    cr_assert_geq(*count, n);
    unsigned moved;
    sc_error_t e = remote_free(s, live + *count - n, n, &moved);
    cr_assert_eq(e, SC_ERR_NONE, "span_free_remote of %u blocks refused (%s) in state %s", n,
                 sc_error_string(e), state_name(span_state(s)));
    *count -= n;
    return moved;
}

static uint32_t list_length(block_t *b)
{
    return span_list_length(b, NULL);
}

static bool list_contains(block_t *list, const block_t *b)
{
    for (; list; list = block_next(list))
        if (list == b)
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* A span in each state, reached by allowed transitions only                */
/* ------------------------------------------------------------------------ */

enum { MAX_LIVE = 512 };

typedef struct built_s {
    span_t *s;
    block_t *live[MAX_LIVE]; /* blocks allocated and not freed */
    uint32_t count;
} built_t;

static void build_hot(built_t *b, uint32_t live)
{
    b->s = hot_span();
    b->count = 0;
    for (uint32_t i = 0; i < live; i++)
        b->live[b->count++] = owner_alloc(b->s);
}

static void build(built_t *b, unsigned st)
{
    unsigned moved;
    uint32_t cap, reuse;
    switch (st) {
    case SPAN_HOT:
        build_hot(b, 3);
        break;
    case SPAN_FLOATING:
        build_hot(b, 3);
        cr_assert(span_set_owned_state(b->s, SPAN_HOT, SPAN_FLOATING));
        break;
    case SPAN_DRAINED:
        build(b, SPAN_FLOATING);
        moved = remote_free_last(b->s, b->live, &b->count, b->count);
        cr_assert_eq(moved, SPAN_DRAINED);
        break;
    case SPAN_DRAINING:
        build(b, SPAN_DRAINED);
        cr_assert(span_trim_drained_begin(b->s));
        break;
    case SPAN_ORPHANED:
        build(b, SPAN_DRAINING);
        cr_assert_not(span_claim_owned_empty(b->s, true));
        break;
    case SPAN_DETACHED:
        /* Two blocks short of the detached reuse count once given up. */
        build_hot(b, 0);
        cap = span_capacity(b->s);
        reuse = span_detached_reuse_count(b->s);
        for (uint32_t i = 0; i < cap - reuse + 2; i++)
            b->live[b->count++] = owner_alloc(b->s);
        cr_assert_eq(span_give_up(b->s), SPAN_DETACHED);
        break;
    case SPAN_REUSABLE:
        build(b, SPAN_DETACHED);
        cr_assert_eq(remote_free_last(b->s, b->live, &b->count, 2), SPAN_REUSABLE);
        break;
    case SPAN_EMPTY:
        build(b, SPAN_REUSABLE);
        cr_assert_eq(remote_free_last(b->s, b->live, &b->count, b->count), SPAN_EMPTY);
        break;
    case SPAN_POOLED:
        build_hot(b, 0);
        cr_assert(span_claim_owned_empty(b->s, false));
        break;
    default:
        cr_assert_fail("no such state %u", st);
    }
    assert_state(b->s, st);
}

static const unsigned all_states[] = {SPAN_HOT,      SPAN_FLOATING, SPAN_DRAINED,
                                      SPAN_DRAINING, SPAN_ORPHANED, SPAN_DETACHED,
                                      SPAN_REUSABLE, SPAN_EMPTY,    SPAN_POOLED};
#define ALL_STATES (sizeof all_states / sizeof all_states[0])

/* ------------------------------------------------------------------------ */
/* Allowed transitions                                                      */
/* ------------------------------------------------------------------------ */

Test(component_span_states, init_is_hot)
{
    span_t *s = arena_take_span(the_heap);
    cr_assert_not_null(s);
    cr_assert(span_init_blocks(s, the_heap, size_class_of(TEST_CLASS_SIZE), 0));
    uint64_t w = word_of(s);
    assert_state(s, SPAN_HOT);
    cr_assert_eq(remote_count(w), 0);
    cr_assert_null(remote_head(s, w));
    cr_assert_eq(span_used(s), 0);
    cr_assert_null(s->free, "a fresh span has a local list before carving");
    cr_assert_eq(span_kind(s), SPAN_KIND_BLOCKS);
    cr_assert_eq(s->heap, the_heap);
    /* Used, emptied and pooled by its owner, then taken from the pool by
     * someone who sets it up for another class: POOLED -> HOT, clean. */
    block_t *b = owner_alloc(s);
    cr_assert_not_null(b);
    owner_free(s, b);
    cr_assert(span_claim_owned_empty(s, false));
    assert_state(s, SPAN_POOLED);
    cr_assert(span_init_blocks(s, the_heap, size_class_of(64), 0));
    assert_state(s, SPAN_HOT);
    cr_assert_eq(s->block_size, 64);
    cr_assert_eq(span_used(s), 0);
    cr_assert_null(s->free);
    cr_assert_eq(remote_count(word_of(s)), 0);
    cr_assert_null(remote_head(s, word_of(s)));
}

Test(component_span_states, hot_floating_generation)
{
    built_t b;
    build_hot(&b, 4);
    span_t *s = b.s;
    /* A remote free first, so that count and list must survive the moves. */
    cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), 0);
    uint64_t w0 = word_of(s);
    cr_assert_eq(remote_count(w0), 1);

    cr_assert(span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING));
    uint64_t w1 = word_of(s);
    assert_state(s, SPAN_FLOATING);
    cr_assert_eq(w1 & ~REMOTE_STATE_MASK, w0 & ~REMOTE_STATE_MASK,
                 "floating changed more than the state");

    /* A remote freer prepares its CAS now, while the span floats... */
    uint64_t stale = word_of(s);
    cr_assert(span_set_owned_state(s, SPAN_FLOATING, SPAN_HOT));
    uint64_t w2 = word_of(s);
    assert_state(s, SPAN_HOT);
    cr_assert_eq(gen_of(w2), gen_of(w1) + 1, "back to HOT without a new generation");
    cr_assert_eq(remote_count(w2), remote_count(w0));
    cr_assert_eq(remote_head(s, w2), remote_head(s, w0));
    cr_assert(span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING));
    /* ... and after HOT and FLOATING again its word is not the span's:
     * the generation tells the two floating periods apart. */
    cr_assert_eq(remote_state(stale), remote_state(word_of(s)));
    cr_assert_neq(stale, word_of(s), "FLOATING, HOT, FLOATING gave the same word (ABA)");
    uint64_t expected = stale;
    cr_assert_not(atomic_compare_exchange_strong(&s->remote, &expected,
                                                 remote_word(SPAN_DRAINED, s, NULL, 0)),
                  "a CAS prepared in an earlier floating period succeeded");
    assert_state(s, SPAN_FLOATING);
}

Test(component_span_states, hot_remote_free_and_take)
{
    built_t b;
    build_hot(&b, 10);
    span_t *s = b.s;
    uint32_t used = span_used(s);
    cr_assert_eq(used, 10);
    block_t *first[3] = {b.live[9], b.live[8], b.live[7]};
    block_t *second[2] = {b.live[6], b.live[5]};
    unsigned moved;
    cr_assert_eq(remote_free(s, first, 3, &moved), SC_ERR_NONE);
    cr_assert_eq(moved, 0, "a remote free moved a HOT span to %s", state_name(moved));
    uint64_t w = word_of(s);
    assert_state(s, SPAN_HOT);
    cr_assert_eq(remote_count(w), 3);
    cr_assert_eq(remote_head(s, w), first[0]);
    cr_assert_null(block_next(first[2]), "the first batch's tail links to something");
    /* The second batch goes in front of the first, in one list. */
    cr_assert_eq(remote_free(s, second, 2, &moved), SC_ERR_NONE);
    cr_assert_eq(moved, 0);
    w = word_of(s);
    cr_assert_eq(remote_count(w), 5);
    cr_assert_eq(remote_head(s, w), second[0]);
    cr_assert_eq(block_next(second[1]), first[0]);
    cr_assert_eq(list_length(remote_head(s, w)), 5);
    /* The owner's count is untouched by remote frees. */
    cr_assert_eq(span_used(s), used);
    cr_assert_eq(span_owned_live(s), 5);

    /* The owner takes them back once its local list is empty, and only
     * when enough are waiting. */
    while (s->free != NULL)
        b.live[b.count++] = owner_alloc(s);
    used = span_used(s);
    uint64_t before = word_of(s);
    cr_assert_not(span_take_remote(s, 6), "took 5 remote frees with a threshold of 6");
    cr_assert_eq(word_of(s), before);
    cr_assert_null(s->free);
    uint64_t gen = gen_of(before);
    cr_assert(span_take_remote(s, 5));
    w = word_of(s);
    assert_state(s, SPAN_HOT);
    cr_assert_eq(remote_count(w), 0);
    cr_assert_null(remote_head(s, w));
    cr_assert_eq(gen_of(w), gen, "taking the remote list changed the generation");
    cr_assert_eq(span_used(s), used - 5);
    cr_assert_eq(list_length(s->free), 5);
    for (int i = 0; i < 3; i++)
        cr_assert(list_contains(s->free, first[i]));
    for (int i = 0; i < 2; i++)
        cr_assert(list_contains(s->free, second[i]));
    /* Nothing waiting: nothing to take, even with no threshold. */
    block_t *keep = s->free;
    s->free = NULL;
    cr_assert_not(span_take_remote(s, 0));
    cr_assert_not(span_take_remote(s, 1));
    s->free = keep;
}

Test(component_span_states, floating_drains)
{
    built_t b;
    build_hot(&b, 3);
    span_t *s = b.s;
    cr_assert(span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING));
    uint64_t gen = gen_of(word_of(s));
    cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), 0);
    assert_state(s, SPAN_FLOATING);
    cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), 0);
    assert_state(s, SPAN_FLOATING);
    /* The last live block: DRAINED, which the freer reports. */
    cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), SPAN_DRAINED);
    uint64_t w = word_of(s);
    assert_state(s, SPAN_DRAINED);
    cr_assert_eq(remote_count(w), 3);
    cr_assert_eq(list_length(remote_head(s, w)), 3);
    cr_assert_eq(gen_of(w), gen, "draining changed the generation");
    /* A local free also counts: 2 live, one freed locally, one remotely. */
    built_t c;
    build_hot(&c, 2);
    owner_free(c.s, c.live[--c.count]);
    cr_assert(span_set_owned_state(c.s, SPAN_HOT, SPAN_FLOATING));
    cr_assert_eq(remote_free_last(c.s, c.live, &c.count, 1), SPAN_DRAINED);
}

Test(component_span_states, drained_trim_and_orphan)
{
    built_t b;
    build(&b, SPAN_DRAINED);
    span_t *s = b.s;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    cr_assert_gt(s->committed, page, "a drained span with only its header committed");
    uint64_t w = word_of(s);
    /* A trim takes it and gives it back, memory released. */
    cr_assert(span_trim_drained_begin(s));
    assert_state(s, SPAN_DRAINING);
    cr_assert_eq(word_of(s) & ~REMOTE_STATE_MASK, w & ~REMOTE_STATE_MASK);
    cr_assert_not(trim_end(s), "the owner did not leave, yet the trimmer pools");
    assert_state(s, SPAN_DRAINED);
    cr_assert_eq(s->committed, page, "%zu bytes still committed after a trim", s->committed);
    cr_assert_eq(word_of(s) & ~REMOTE_STATE_MASK, w & ~REMOTE_STATE_MASK);

    /* Its owner leaves while a trim holds it: ORPHANED, and the trimmer
     * pools it. */
    cr_assert(span_trim_drained_begin(s));
    cr_assert_not(span_claim_owned_empty(s, true), "a leaving owner pooled a DRAINING span");
    assert_state(s, SPAN_ORPHANED);
    cr_assert(trim_end(s), "the trimmer did not learn the owner left");
    assert_state(s, SPAN_ORPHANED);
}

Test(component_span_states, owner_pools_empty)
{
    built_t b;
    /* HOT with nothing live. */
    build_hot(&b, 2);
    owner_free(b.s, b.live[1]);
    owner_free(b.s, b.live[0]);
    cr_assert(span_claim_owned_empty(b.s, false));
    uint64_t w = word_of(b.s);
    assert_state(b.s, SPAN_POOLED);
    cr_assert_eq(remote_count(w), 0);
    cr_assert_null(remote_head(b.s, w));
    /* FLOATING with nothing live, leaving or not. */
    for (int leaving = 0; leaving < 2; leaving++) {
        build_hot(&b, 0);
        cr_assert(span_set_owned_state(b.s, SPAN_HOT, SPAN_FLOATING));
        cr_assert(span_claim_owned_empty(b.s, leaving));
        assert_state(b.s, SPAN_POOLED);
    }
    /* DRAINED, by an owner that stays. */
    build(&b, SPAN_DRAINED);
    cr_assert(span_claim_owned_empty(b.s, false));
    w = word_of(b.s);
    assert_state(b.s, SPAN_POOLED);
    cr_assert_eq(remote_count(w), 0, "a pooled span keeps a remote count");
    cr_assert_null(remote_head(b.s, w), "a pooled span keeps a remote list");
}

/* Gives up a HOT (or FLOATING) span with `live` blocks allocated, one of
 * them freed remotely first, and checks what it becomes. */
static void give_up_case(uint32_t live, bool floating, unsigned want)
{
    built_t b;
    build_hot(&b, live);
    span_t *s = b.s;
    uint32_t cap = span_capacity(s);
    uint32_t remote = 0;
    if (b.count > 0) {
        cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), 0);
        remote = 1;
    }
    if (floating)
        cr_assert(span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING));
    uint32_t local = list_length(s->free);
    unsigned to = span_give_up(s);
    uint64_t w = word_of(s);
    cr_assert_eq(to, want, "%u live of %u (reuse at %u free): gave up to %s, expected %s",
                 b.count, cap, span_detached_reuse_count(s), state_name(to), state_name(want));
    assert_state(s, want);
    cr_assert_null(span_owner(s));
    cr_assert_null(s->free, "the local list stayed after giving up");
    if (want == SPAN_POOLED) {
        cr_assert_eq(remote_count(w), 0);
        cr_assert_null(remote_head(s, w));
        return;
    }
    /* Free blocks: everything but the live ones, uncarved blocks counted
     * but not listed; the list is the local list plus the remote one. */
    cr_assert_eq(remote_count(w), cap - b.count);
    cr_assert_eq(list_length(remote_head(s, w)), local + remote);
    for (uint32_t i = 0; i < b.count; i++)
        cr_assert_not(list_contains(remote_head(s, w), b.live[i]), "live block %u listed free",
                      i);
}

Test(component_span_states, give_up_by_free_count)
{
    span_t *probe = hot_span();
    uint32_t cap = span_capacity(probe), reuse = span_detached_reuse_count(probe);
    for (int floating = 0; floating < 2; floating++) {
        /* Free count below the detached reuse count: DETACHED. */
        give_up_case(cap - reuse + 2, floating, SPAN_DETACHED);
        give_up_case(cap, floating, SPAN_DETACHED);
        /* At or above it: REUSABLE. */
        give_up_case(cap - reuse + 1, floating, SPAN_REUSABLE);
        give_up_case(2, floating, SPAN_REUSABLE);
        /* Everything free: straight to the pool. */
        give_up_case(1, floating, SPAN_POOLED);
        give_up_case(0, floating, SPAN_POOLED);
    }
}

Test(component_span_states, give_up_drained_and_draining)
{
    built_t b;
    build(&b, SPAN_DRAINED);
    cr_assert_eq(span_give_up(b.s), SPAN_POOLED);
    assert_state(b.s, SPAN_POOLED);
    /* While a trim holds it, the leaving owner hands it to the trimmer. */
    build(&b, SPAN_DRAINING);
    cr_assert_eq(span_give_up(b.s), 0);
    assert_state(b.s, SPAN_ORPHANED);
    cr_assert(trim_end(b.s));
}

Test(component_span_states, ownerless_settle_detached)
{
    built_t b;
    build(&b, SPAN_DETACHED); /* two short of reusable */
    span_t *s = b.s;
    uint32_t cap = span_capacity(s);
    uint32_t reuse = span_detached_reuse_count(s);
    cr_assert_lt(reuse, s->reuse_count, "the class's threshold should be above an eighth");
    cr_assert_eq(remote_count(word_of(s)), reuse - 2);
    cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), 0);
    assert_state(s, SPAN_DETACHED);
    cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), SPAN_REUSABLE);
    assert_state(s, SPAN_REUSABLE);
    cr_assert_eq(remote_count(word_of(s)), reuse);
    cr_assert_eq(s->reuse_count, reuse, "the lower threshold should stay with the span");

    /* From DETACHED straight to the pool when one batch frees the rest. */
    build(&b, SPAN_DETACHED);
    s = b.s;
    cr_assert_eq(remote_free_last(s, b.live, &b.count, b.count), SPAN_POOLED);
    uint64_t w = word_of(s);
    assert_state(s, SPAN_POOLED);
    cr_assert_eq(remote_count(w), 0);
    cr_assert_null(remote_head(s, w));
    (void)cap;
}

Test(component_span_states, ownerless_settle_reusable)
{
    built_t b;
    build(&b, SPAN_REUSABLE);
    span_t *s = b.s;
    uint32_t cap = span_capacity(s);
    cr_assert_geq(b.count, 2);
    cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), 0);
    assert_state(s, SPAN_REUSABLE);
    cr_assert_eq(remote_free_last(s, b.live, &b.count, b.count), SPAN_EMPTY);
    uint64_t w = word_of(s);
    assert_state(s, SPAN_EMPTY);
    cr_assert_eq(remote_count(w), cap, "an EMPTY span counts %u free of %u", remote_count(w),
                 cap);
}

Test(component_span_states, claim_reusable_and_empty)
{
    built_t b;
    build(&b, SPAN_REUSABLE);
    span_t *s = b.s;
    uint64_t w = word_of(s);
    block_t *head = remote_head(s, w);
    uint32_t listed = list_length(head);
    cr_assert_eq(span_claim_reusable(s), SPAN_CLAIM_BLOCKS);
    assert_state(s, SPAN_HOT);
    cr_assert_eq(s->free, head, "the free blocks are not the new local list");
    cr_assert_eq(list_length(s->free), listed);
    cr_assert_eq(span_used(s), b.count, "used %u after the claim, %u blocks live",
                 span_used(s), b.count);
    cr_assert_eq(remote_count(word_of(s)), 0);
    cr_assert_null(remote_head(s, word_of(s)));
    /* The claimer owns it now: it allocates the listed blocks, then carves
     * the rest, and every block is handed out once. */
    uint32_t cap = span_capacity(s);
    for (uint32_t i = b.count; i < cap; i++) {
        block_t *x = owner_alloc(s);
        for (uint32_t k = 0; k < b.count; k++)
            cr_assert_neq(x, b.live[k], "a live block handed out again");
        b.live[b.count++] = x;
    }
    cr_assert_eq(span_carve(s), CARVE_FULL);

    build(&b, SPAN_EMPTY);
    cr_assert_eq(span_claim_reusable(b.s), SPAN_CLAIM_EMPTY);
    assert_state(b.s, SPAN_HOT);
    build(&b, SPAN_EMPTY);
    cr_assert(span_claim_if_empty(b.s));
    w = word_of(b.s);
    assert_state(b.s, SPAN_POOLED);
    cr_assert_eq(remote_count(w), 0);
    cr_assert_null(remote_head(b.s, w));
}

/* ------------------------------------------------------------------------ */
/* Forbidden transitions                                                    */
/* ------------------------------------------------------------------------ */

/* After refusals, the span still takes the transition its state allows:
 * the refusals changed nothing a later step depends on. */
static void allowed_step(built_t *b, unsigned st)
{
    span_t *s = b->s;
    switch (st) {
    case SPAN_HOT:
        cr_assert(span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING));
        break;
    case SPAN_FLOATING:
        cr_assert(span_set_owned_state(s, SPAN_FLOATING, SPAN_HOT));
        break;
    case SPAN_DRAINED:
        cr_assert(span_trim_drained_begin(s));
        break;
    case SPAN_DRAINING:
        cr_assert_not(trim_end(s));
        assert_state(s, SPAN_DRAINED);
        break;
    case SPAN_ORPHANED:
        cr_assert(trim_end(s));
        break;
    case SPAN_DETACHED:
        cr_assert_eq(remote_free_last(s, b->live, &b->count, 2), SPAN_REUSABLE);
        break;
    case SPAN_REUSABLE:
        cr_assert_eq(span_claim_reusable(s), SPAN_CLAIM_BLOCKS);
        break;
    case SPAN_EMPTY:
        cr_assert(span_claim_if_empty(s));
        break;
    case SPAN_POOLED:
        cr_assert(span_init_blocks(s, the_heap, size_class_of(TEST_CLASS_SIZE), 0));
        assert_state(s, SPAN_HOT);
        break;
    }
}

#define assert_unchanged(s, w0, what)                                                          \
    cr_assert_eq(word_of(s), (w0), "%s from %s changed the remote word (now %s)", (what),     \
                 state_name(remote_state(w0)), state_name(span_state(s)))

Test(component_span_states, forbidden_owned_state_changes)
{
    for (size_t i = 0; i < ALL_STATES; i++) {
        unsigned st = all_states[i];
        built_t b;
        build(&b, st);
        uint64_t w0 = word_of(b.s);
        if (st != SPAN_HOT) {
            cr_assert_not(span_set_owned_state(b.s, SPAN_HOT, SPAN_FLOATING),
                          "HOT -> FLOATING accepted from %s", state_name(st));
            assert_unchanged(b.s, w0, "HOT -> FLOATING");
        }
        if (st != SPAN_FLOATING) {
            cr_assert_not(span_set_owned_state(b.s, SPAN_FLOATING, SPAN_HOT),
                          "FLOATING -> HOT accepted from %s", state_name(st));
            assert_unchanged(b.s, w0, "FLOATING -> HOT");
        }
        allowed_step(&b, st);
    }
}

Test(component_span_states, forbidden_claims_and_trims)
{
    for (size_t i = 0; i < ALL_STATES; i++) {
        unsigned st = all_states[i];
        built_t b;
        build(&b, st);
        uint64_t w0 = word_of(b.s);
        if (st != SPAN_EMPTY) {
            cr_assert_not(span_claim_if_empty(b.s), "span_claim_if_empty accepted %s",
                          state_name(st));
            assert_unchanged(b.s, w0, "span_claim_if_empty");
        }
        if (st != SPAN_DRAINED) {
            cr_assert_not(span_trim_drained_begin(b.s), "span_trim_drained_begin accepted %s",
                          state_name(st));
            assert_unchanged(b.s, w0, "span_trim_drained_begin");
        }
        if (st == SPAN_DRAINING) {
            /* An owner that stays must wait for the trimmer. */
            cr_assert_not(span_claim_owned_empty(b.s, false));
            assert_unchanged(b.s, w0, "span_claim_owned_empty by a staying owner");
        }
        allowed_step(&b, st);
    }
}

Test(component_span_states, forbidden_remote_frees)
{
    for (size_t i = 0; i < ALL_STATES; i++) {
        unsigned st = all_states[i];
        built_t b;
        build(&b, st);
        span_t *s = b.s;
        uint64_t w0 = word_of(s);
        uint32_t cap = span_capacity(s);
        /* Any carved block will do: the refusal must come before the list
         * is touched. */
        block_t *x = (block_t *)span_first_block(s);
        block_t *link = block_next(x);
        unsigned moved = 0;
        if (!span_state_in_use(st)) {
            /* Every block of the span is free already. */
            sc_error_t e = span_free_remote(s, x, x, 1, &moved);
            cr_assert_eq(e, SC_ERR_DOUBLE_FREE, "a remote free into a %s span: %s",
                         state_name(st), sc_error_string(e));
            assert_unchanged(s, w0, "span_free_remote");
            cr_assert_eq(block_next(x), link, "a refused free wrote the block's link");
            allowed_step(&b, st);
            continue;
        }
        /* In use: more blocks than the span can have free... */
        uint32_t n = cap - remote_count(w0) + 1;
        sc_error_t e = span_free_remote(s, x, x, n, &moved);
        cr_assert_eq(e, SC_ERR_DOUBLE_FREE, "%u blocks freed into %s with %u of %u free: %s", n,
                     state_name(st), remote_count(w0), cap, sc_error_string(e));
        assert_unchanged(s, w0, "span_free_remote past the capacity");
        cr_assert_eq(block_next(x), link, "a refused free wrote the block's link");
        /* ... or the block at the head of the remote list again. */
        block_t *head = remote_head(s, w0);
        if (head == NULL) {
            cr_assert_eq(remote_free_last(s, b.live, &b.count, 1), 0);
            w0 = word_of(s);
            head = remote_head(s, w0);
        }
        link = block_next(head);
        e = span_free_remote(s, head, head, 1, &moved);
        cr_assert_eq(e, SC_ERR_DOUBLE_FREE, "the remote list's head freed again into %s: %s",
                     state_name(st), sc_error_string(e));
        assert_unchanged(s, w0, "span_free_remote of the remote head");
        cr_assert_eq(block_next(head), link);
        allowed_step(&b, st);
    }
}

Test(component_span_states, forbidden_take_remote)
{
    /* The owner's take below its threshold, in both owned states. */
    for (int floating = 0; floating < 2; floating++) {
        built_t b;
        build_hot(&b, 6);
        span_t *s = b.s;
        while (s->free != NULL)
            b.live[b.count++] = owner_alloc(s);
        cr_assert_eq(remote_free_last(s, b.live, &b.count, 2), 0);
        if (floating)
            cr_assert(span_set_owned_state(s, SPAN_HOT, SPAN_FLOATING));
        uint64_t w0 = word_of(s);
        uint32_t used = span_used(s);
        cr_assert_not(span_take_remote(s, 3));
        assert_unchanged(s, w0, "span_take_remote below its threshold");
        cr_assert_null(s->free);
        cr_assert_eq(span_used(s), used);
        cr_assert(span_take_remote(s, 2), "the take at the threshold was refused");
    }
}

/* Runs f(s) in a child process and reports how it ended: 0 if it returned
 * the refusal and left the word as it was, 1 if it did something else, or
 * -signal if it was killed. SC_ASSERT aborts, which a parent cannot survive
 * in-process. */
static int in_child(span_t *s, int (*f)(span_t *s, uint64_t w0))
{
    uint64_t w0 = word_of(s);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The expected assertion message would read as a failure in the
         * test log; the parent says what went wrong if anything did. */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        _exit(f(s, w0));
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int claim_reusable_refused(span_t *s, uint64_t w0)
{
    return span_claim_reusable(s) == SPAN_CLAIM_LOST && word_of(s) == w0 ? 0 : 1;
}

Test(component_span_states, forbidden_claim_reusable)
{
    /* Only REUSABLE and EMPTY spans sit on a reusable stack. From any other
     * state the claim is refused: SPAN_CLAIM_LOST with nothing changed, or,
     * where SC_ASSERT is compiled in, the assertion's abort. */
    for (size_t i = 0; i < ALL_STATES; i++) {
        unsigned st = all_states[i];
        if (st == SPAN_REUSABLE || st == SPAN_EMPTY)
            continue;
        built_t b;
        build(&b, st);
        int r = in_child(b.s, claim_reusable_refused);
#ifdef SCALLOC_DEBUG
        cr_assert_eq(r, -SIGABRT, "claiming a %s span did not trip the assertion (%d)",
                     state_name(st), r);
#else
        cr_assert_eq(r, 0, "claiming a %s span was not refused (%d)", state_name(st), r);
#endif
        assert_state(b.s, st);
        allowed_step(&b, st);
    }
}

#ifdef SCALLOC_DEBUG
static int call_give_up(span_t *s, uint64_t w0)
{
    (void)w0;
    (void)span_give_up(s);
    return 1;
}

static int call_claim_owned_empty(span_t *s, uint64_t w0)
{
    (void)w0;
    (void)span_claim_owned_empty(s, false);
    return 1;
}

static int call_trim_drained_end(span_t *s, uint64_t w0)
{
    (void)w0;
    (void)span_trim_drained_end(s);
    return 1;
}

static int call_bad_owned_pair(span_t *s, uint64_t w0)
{
    (void)w0;
    (void)span_set_owned_state(s, SPAN_HOT, SPAN_POOLED);
    return 1;
}
#endif

Test(component_span_states, asserted_preconditions)
{
#ifndef SCALLOC_DEBUG
    cr_skip_test("needs a SCALLOC_DEBUG build: these preconditions are the callers' to keep "
                 "and only SC_ASSERT checks them");
#else
    static const unsigned ownerless[] = {SPAN_DETACHED, SPAN_REUSABLE, SPAN_EMPTY, SPAN_POOLED,
                                         SPAN_ORPHANED};
    for (size_t i = 0; i < sizeof ownerless / sizeof ownerless[0]; i++) {
        built_t b;
        build(&b, ownerless[i]);
        cr_assert_eq(in_child(b.s, call_give_up), -SIGABRT, "span_give_up of a %s span",
                     state_name(ownerless[i]));
        cr_assert_eq(in_child(b.s, call_claim_owned_empty), -SIGABRT,
                     "span_claim_owned_empty of a %s span", state_name(ownerless[i]));
    }
    for (size_t i = 0; i < ALL_STATES; i++) {
        unsigned st = all_states[i];
        if (st == SPAN_DRAINING || st == SPAN_ORPHANED)
            continue;
        built_t b;
        build(&b, st);
        cr_assert_eq(in_child(b.s, call_trim_drained_end), -SIGABRT,
                     "span_trim_drained_end of a %s span", state_name(st));
    }
    built_t b;
    build(&b, SPAN_HOT);
    cr_assert_eq(in_child(b.s, call_bad_owned_pair), -SIGABRT, "HOT -> POOLED by the owner");
#endif
}

/* A span set up again on resident pages links at once only as many blocks
 * as the cache keeps until they are handed out: CARVE_TOUCHED_BLOCKS of
 * them, or CARVE_BYTES' worth of small ones, never more than were touched;
 * the rest are carved as the list runs out, and every block still comes
 * out once. */
Test(component_span_states, warm_setup_carves_a_bounded_batch)
{
    static const size_t sizes[] = {16, 64, 256, 1024, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned cls = size_class_of(sizes[i]);
        span_t *s = arena_take_span(the_heap);
        cr_assert_not_null(s);
        cr_assert(span_init_blocks(s, the_heap, cls, 0));
        size_t bs = s->block_size;
        uint32_t capacity = span_capacity(s);
        /* Every block carved (every page touched), then the span set up
         * again for the same class, as a warm span from the pool is. */
        while (span_carve(s) == CARVE_OK)
            ;
        size_t touched = span_touched_bytes(s);
        cr_assert(span_init_blocks(s, the_heap, cls, 0));
        span_carve_touched(s, touched);
        uint32_t want = CARVE_TOUCHED_BLOCKS;
        if (want < CARVE_BYTES / bs)
            want = (uint32_t)(CARVE_BYTES / bs);
        if (want > capacity)
            want = capacity;
        cr_assert_eq(span_list_length(s->free, NULL), want,
                     "%zu B blocks: %u linked at set-up, want %u of %u", bs,
                     span_list_length(s->free, NULL), want, capacity);
        /* The rest come from carving, each block once. */
        uint32_t total = 0;
        for (;;) {
            total += span_list_length(s->free, NULL);
            s->free = NULL;
            if (span_carve(s) != CARVE_OK)
                break;
        }
        cr_assert_eq(total, capacity, "%zu B blocks: %u handed out of %u", bs, total, capacity);
    }
}
