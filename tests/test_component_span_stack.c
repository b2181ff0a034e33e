/*
 * Component test of the span stack (lib/span_stack.h), the lock-free
 * Treiber stack under the span pool and the reusable sets (types.h, "THE
 * SPAN POOL"). It is tested here on its own, below the public API, with
 * real spans: 2 MiB aligned spans taken from a heap's arena
 * (arena_take_span), whose headers hold the stack links, on stacks of the
 * test's own (not the heap's pool), so nothing else touches them.
 *
 * Checked here:
 *  - a stack is LIFO: spans come off in the reverse order of their pushes,
 *    and an empty stack pops NULL, fresh or emptied after use  [lifo_order]
 *  - the head word packs a span address and a 38-bit tag that round-trip,
 *    including tags that straddle the two fields, and wrap at 2^38
 *                                                      [word_packing]
 *  - every pop bumps the tag by one, pushes keep it, so the head after
 *    "pop A, pop B, push A" differs from the head before it although A is
 *    on top both times: a CAS prepared before cannot succeed (the ABA
 *    case, made deterministic)                        [aba_tag_changes]
 *  - under contention (several threads popping and pushing the same few
 *    spans, also two at a time and back in the other order), no span is
 *    ever held by two threads at once, pops never return a foreign
 *    pointer, and at the end every span is on the stack exactly once
 *                                                   [aba_under_contention]
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "arena.h"
#include "span_stack.h"
#include "test_util.h"

/* Real spans of a fresh heap: 2 MiB aligned, header page committed. The
 * heap is the spans' owner for the address map; it never sees them on any
 * of its stacks, so destroying it at the end simply unmaps them. */
static void take_spans(sc_heap_t *heap, span_t **spans, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        spans[i] = arena_take_span(heap);
        cr_assert_not_null(spans[i], "arena_take_span failed for span %zu", i);
        cr_assert_eq((uintptr_t)span_base(spans[i]) & SPAN_MASK, 0, "span %p is not 2 MiB aligned",
                     (void *)spans[i]);
        for (size_t k = 0; k < i; k++)
            cr_assert_neq(spans[i], spans[k], "the arena handed out span %p twice",
                          (void *)spans[i]);
    }
}

static uint64_t head_tag(span_stack_t *st)
{
    return span_stack_word_tag(atomic_load(&st->head));
}

Test(component_span_stack, lifo_order)
{
    enum { N = 8 };
    sc_heap_t *heap = sc_heap_create(NULL);
    cr_assert_not_null(heap);
    span_t *spans[N];
    take_spans(heap, spans, N);

    span_stack_t st;
    atomic_init(&st.head, 0);
    cr_assert_null(span_stack_pop(&st), "a fresh stack popped a span");
    cr_assert_null(span_stack_pop(&st), "a fresh stack popped a span on the second try");

    for (size_t i = 0; i < N; i++)
        span_stack_push(&st, spans[i]);
    for (size_t i = N; i-- > 0;) {
        span_t *s = span_stack_pop(&st);
        cr_assert_eq(s, spans[i], "pop %zu returned %p, expected %p (pushed %zu-th)", N - 1 - i,
                     (void *)s, (void *)spans[i], i);
    }
    /* Emptied after use: the tag is non-zero now, the span part is not. */
    cr_assert_neq(head_tag(&st), 0, "pops left the tag at 0");
    cr_assert_null(span_stack_pop(&st), "an emptied stack popped a span");

    /* Interleaved: push 0 1, pop (1), push 2 3, pop pop pop = 3 2 0. */
    span_stack_push(&st, spans[0]);
    span_stack_push(&st, spans[1]);
    cr_assert_eq(span_stack_pop(&st), spans[1]);
    span_stack_push(&st, spans[2]);
    span_stack_push(&st, spans[3]);
    cr_assert_eq(span_stack_pop(&st), spans[3]);
    cr_assert_eq(span_stack_pop(&st), spans[2]);
    cr_assert_eq(span_stack_pop(&st), spans[0]);
    cr_assert_null(span_stack_pop(&st));

    /* Two stacks do not share anything: a span moved from one to the other
     * is only on the second. */
    span_stack_t other;
    atomic_init(&other.head, 0);
    span_stack_push(&st, spans[4]);
    span_t *moved = span_stack_pop(&st);
    span_stack_push(&other, moved);
    cr_assert_null(span_stack_pop(&st));
    cr_assert_eq(span_stack_pop(&other), spans[4]);
    cr_assert_null(span_stack_pop(&other));
    sc_heap_destroy(heap);
}

Test(component_span_stack, word_packing)
{
    sc_heap_t *heap = sc_heap_create(NULL);
    cr_assert_not_null(heap);
    span_t *s;
    take_spans(heap, &s, 1);
    /* The tag's low 21 bits sit below the span address, the rest above the
     * 47-bit address space: 38 bits in all. */
    const uint64_t tag_bits = SPAN_SHIFT + (64 - ADDRESS_BITS);
    cr_assert_eq(tag_bits, 38);
    const uint64_t tags[] = {0,
                             1,
                             SPAN_MASK,
                             (uint64_t)SPAN_MASK + 1,
                             (uint64_t)SPAN_MASK + 2,
                             (uint64_t)1 << 30,
                             ((uint64_t)1 << tag_bits) - 1};
    span_t *spans[] = {s, NULL};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
            uint64_t w = span_stack_word(spans[k], tags[i]);
            cr_assert_eq(span_stack_word_span(w), spans[k], "tag %#llx: span %p came back as %p",
                         (unsigned long long)tags[i], (void *)spans[k],
                         (void *)span_stack_word_span(w));
            cr_assert_eq(span_stack_word_tag(w), tags[i], "tag %#llx came back as %#llx",
                         (unsigned long long)tags[i],
                         (unsigned long long)span_stack_word_tag(w));
        }
        /* One past the largest tag wraps to 0 without touching the span. */
        uint64_t w = span_stack_word(spans[k], (uint64_t)1 << tag_bits);
        cr_assert_eq(span_stack_word_span(w), spans[k]);
        cr_assert_eq(span_stack_word_tag(w), 0);
    }
    sc_heap_destroy(heap);
}

Test(component_span_stack, aba_tag_changes)
{
    enum { N = 3 };
    sc_heap_t *heap = sc_heap_create(NULL);
    cr_assert_not_null(heap);
    span_t *spans[N];
    take_spans(heap, spans, N);
    span_t *a = spans[0], *b = spans[1], *c = spans[2];
    span_stack_t st;
    atomic_init(&st.head, 0);
    span_stack_push(&st, c);
    span_stack_push(&st, b);
    span_stack_push(&st, a); /* a, b, c */

    /* Pushes keep the tag, each pop adds one. */
    uint64_t t0 = head_tag(&st);
    cr_assert_eq(t0, 0, "pushes changed the tag of a fresh stack to %llu",
                 (unsigned long long)t0);

    /* A popper reads the head (a) and a's link (b), then stalls. */
    uint64_t stale = atomic_load(&st.head);
    span_t *stale_next = atomic_load(&a->stack_next);
    cr_assert_eq(span_stack_word_span(stale), a);
    cr_assert_eq(stale_next, b);

    /* Meanwhile: pop a, pop b, push a. a is on top again, but over c. */
    cr_assert_eq(span_stack_pop(&st), a);
    cr_assert_eq(head_tag(&st), t0 + 1);
    cr_assert_eq(span_stack_pop(&st), b);
    cr_assert_eq(head_tag(&st), t0 + 2);
    span_stack_push(&st, a);
    cr_assert_eq(head_tag(&st), t0 + 2, "a push changed the tag");
    uint64_t now = atomic_load(&st.head);
    cr_assert_eq(span_stack_word_span(now), a);

    /* The stalled popper's CAS (head a -> b, as span_stack_pop prepares
     * it) must fail: b is held by whoever popped it. */
    uint64_t expected = stale;
    uint64_t want = span_stack_word(stale_next, span_stack_word_tag(stale) + 1);
    cr_assert_neq(now, stale, "same head word after pop, pop, push: ABA undetected");
    cr_assert_not(atomic_compare_exchange_strong(&st.head, &expected, want),
                  "a CAS prepared before pop, pop, push succeeded");
    cr_assert_eq(atomic_load(&st.head), now);

    /* The stack is intact: a, c. */
    cr_assert_eq(span_stack_pop(&st), a);
    cr_assert_eq(span_stack_pop(&st), c);
    cr_assert_null(span_stack_pop(&st));
    sc_heap_destroy(heap);
}

/* ------------------------------------------------------------------------ */
/* Contention                                                               */
/* ------------------------------------------------------------------------ */

enum { CONTENDED_SPANS = 3, CONTENDERS = 4 };

static span_stack_t contended;
static span_t *contended_spans[CONTENDED_SPANS];
/* 1 while some thread holds the span (popped and not pushed back). */
static atomic_int held[CONTENDED_SPANS];
static pthread_barrier_t contenders_go;
static size_t contended_rounds;

typedef struct contender_s {
    unsigned index;
    size_t pops, pushes, empty_pops;
} contender_t;

static size_t span_index(const span_t *s)
{
    for (size_t i = 0; i < CONTENDED_SPANS; i++)
        if (contended_spans[i] == s)
            return i;
    return SIZE_MAX;
}

/* Takes a span off the contended stack and marks it held by us; a span
 * another thread still holds, or a pointer that is none of ours, is the
 * stack's failure. NULL when the stack was empty. */
static span_t *contender_pop(contender_t *c)
{
    span_t *s = span_stack_pop(&contended);
    if (s == NULL) {
        c->empty_pops++;
        return NULL;
    }
    size_t i = span_index(s);
    TEST_CHECK(i != SIZE_MAX, "thread %u popped %p, which is none of the stack's spans",
               c->index, (void *)s);
    TEST_CHECK(atomic_exchange(&held[i], 1) == 0,
               "thread %u popped span %zu while another thread held it (ABA)", c->index, i);
    c->pops++;
    return s;
}

static void contender_push(contender_t *c, span_t *s)
{
    size_t i = span_index(s);
    TEST_CHECK(atomic_exchange(&held[i], 0) == 1, "thread %u pushed span %zu it did not hold",
               c->index, i);
    span_stack_push(&contended, s);
    c->pushes++;
}

static void *contender_main(void *arg)
{
    contender_t *c = arg;
    test_rng_t rng = {c->index * 7919 + 1};
    pthread_barrier_wait(&contenders_go);
    for (size_t r = 0; r < contended_rounds; r++) {
        unsigned pick = (unsigned)(test_rng_next(&rng) % 8);
        if (pick < 5) {
            /* Pop one and push it back. */
            span_t *s = contender_pop(c);
            if (s)
                contender_push(c, s);
        } else {
            /* Pop two and push them back in pop order, so that the stack's
             * order changes under other poppers: the pattern ABA needs. */
            span_t *x = contender_pop(c);
            span_t *y = contender_pop(c);
            if (pick == 7)
                sched_yield(); /* widen the window other poppers race in */
            if (x)
                contender_push(c, x);
            if (y)
                contender_push(c, y);
        }
    }
    return NULL;
}

Test(component_span_stack, aba_under_contention, .timeout = 120)
{
    sc_heap_t *heap = sc_heap_create(NULL);
    cr_assert_not_null(heap);
    take_spans(heap, contended_spans, CONTENDED_SPANS);
    atomic_init(&contended.head, 0);
    for (size_t i = 0; i < CONTENDED_SPANS; i++) {
        atomic_init(&held[i], 0);
        span_stack_push(&contended, contended_spans[i]);
    }
    contended_rounds = test_scaled(200000, 20000);
    pthread_barrier_init(&contenders_go, NULL, CONTENDERS);
    pthread_t tids[CONTENDERS];
    static contender_t args[CONTENDERS];
    for (unsigned i = 0; i < CONTENDERS; i++) {
        args[i] = (contender_t){i, 0, 0, 0};
        cr_assert_eq(pthread_create(&tids[i], NULL, contender_main, &args[i]), 0);
    }
    for (unsigned i = 0; i < CONTENDERS; i++)
        pthread_join(tids[i], NULL);
    pthread_barrier_destroy(&contenders_go);

    size_t pops = 0, pushes = 0, empty = 0;
    for (unsigned i = 0; i < CONTENDERS; i++) {
        pops += args[i].pops;
        pushes += args[i].pushes;
        empty += args[i].empty_pops;
    }
    cr_log_info("%d threads, %d spans: %zu pops, %zu pushes, %zu pops found the stack empty",
                CONTENDERS, CONTENDED_SPANS, pops, pushes, empty);
    cr_assert_eq(pops, pushes);
    cr_assert_geq(pops, contended_rounds, "too few pops to say anything (%zu)", pops);
    /* Every span accounted for, none twice, nothing else on the stack. */
    unsigned seen[CONTENDED_SPANS] = {0};
    for (size_t k = 0; k <= CONTENDED_SPANS; k++) {
        span_t *s = span_stack_pop(&contended);
        if (s == NULL)
            break;
        size_t i = span_index(s);
        cr_assert_neq(i, SIZE_MAX, "the stack ends with a foreign span %p", (void *)s);
        cr_assert_eq(atomic_load(&held[i]), 0, "span %zu on the stack but marked held", i);
        seen[i]++;
    }
    cr_assert_null(span_stack_pop(&contended), "more spans on the stack than were pushed");
    for (size_t i = 0; i < CONTENDED_SPANS; i++)
        cr_assert_eq(seen[i], 1, "span %zu is on the stack %u times at the end", i, seen[i]);
    sc_heap_destroy(heap);
}
