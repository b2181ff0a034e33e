/* The consistency check of a heap at rest (invariants.h). */
#include "invariants.h"

#include "annotate.h"
#include "arena.h"
#include "frontend.h"
#include "span.h"

typedef struct check_s {
    const char *error;
    span_t *bad;
} check_t;

/* Follows a list of s, counting its blocks; every block must be a carved
 * block start of s. A list longer than the capacity has a cycle. */
static bool walk_list(span_t *s, block_t *b, uint32_t *count)
{
    uint32_t n = 0;
    for (; b; b = block_next(b)) {
        if ((uintptr_t)b >> SPAN_SHIFT != (uintptr_t)span_base(s) >> SPAN_SHIFT ||
            !span_is_block_start(s, (uintptr_t)b) || ++n > span_capacity(s))
            return false;
    }
    *count = n;
    return true;
}

static const char *check_span(span_t *s)
{
    uint64_t w = atomic_load_explicit(&s->remote, memory_order_acquire);
    unsigned st = remote_state(w);
    if (!span_state_in_use(st) && st != SPAN_DRAINED)
        return NULL; /* free: nothing of its blocks is kept */
    if (st == SPAN_DRAINED && span_was_trimmed(s))
        return NULL; /* its pages went back: its lists are never used again */
    if (st == SPAN_HOT && frontend_span_trimmed(s))
        return NULL; /* the same, until its owner takes it back */
    uint32_t cap = span_capacity(s);
    uint32_t carved = (uint32_t)((size_t)(span_bump(s) - span_first_block(s)) / s->block_size);
    if (span_bump(s) > s->bump_end || carved > cap)
        return "bump pointer past the span's blocks";
    /* The owner's copies of the block-start test's words (types.h, line 0)
     * are the words other threads' frees read (line 1). */
    if (s->owner_magic != s->divide_magic ||
        owner_word_peek(&s->owner_carved) != owner_word_peek(&s->carved_limit))
        return "owner's block-start words differ from the span's";
    uint32_t remote = 0, local = 0;
    if (!walk_list(s, remote_head(s, w), &remote))
        return "remote list holds a block that is not a carved block of the span (or a cycle)";
    if (st == SPAN_HOT || st == SPAN_FLOATING || st == SPAN_DRAINED) {
        /* Owned: the counts word and the local list add up. */
        if (span_owner(s) == NULL)
            return "owned span without an owner";
        if (!walk_list(s, s->free, &local))
            return "local free list holds a block that is not a carved block of the span (or a cycle)";
        uint32_t used = span_used(s);
        if (used + local != carved)
            return "used + local free blocks != carved blocks";
        if (remote != remote_count(w))
            return "remote list length != remote count";
        if (remote > used)
            return "more remote frees than blocks handed out";
        if (st == SPAN_DRAINED && remote != used)
            return "DRAINED span with a live block";
        if (st == SPAN_HOT && (int64_t)owner_word_get(&s->counts) < 0)
            return "HOT span below its event level";
    } else {
        /* Ownerless (DETACHED, REUSABLE): the count covers the list and
         * the never-carved blocks. */
        if (span_owner(s) != NULL)
            return "ownerless span with an owner";
        if (remote + (cap - carved) != remote_count(w))
            return "ownerless span: list + uncarved blocks != free count";
        if (st == SPAN_REUSABLE && remote_count(w) < span_reuse_count(s))
            return "REUSABLE span below the reuse threshold";
        if (st == SPAN_DETACHED && remote_count(w) >= span_detached_reuse_count(s))
            return "DETACHED span past its reuse threshold";
    }
    return NULL;
}

static void check_one(span_t *s, uintptr_t word, void *arg)
{
    check_t *c = arg;
    (void)word;
    if (c->error == NULL && span_kind(s) == SPAN_KIND_BLOCKS) {
        c->error = check_span(s);
        if (c->error)
            c->bad = s;
    }
}

const char *invariants_check_heap(struct sc_heap_s *heap, span_t **bad)
{
    check_t c = {NULL, NULL};
    arena_for_each_span(heap, check_one, &c);
    /* Every resident page lies where the heap keeps pages: otherwise
     * statistics miss it and the release policy never gives it back. */
    if (c.error == NULL) {
        size_t kept = arena_resident_bytes(heap);
        if (kept != arena_resident_bytes_anywhere(heap))
            c.error = "a page is resident outside every span's committed or retained extent";
    }
    if (bad)
        *bad = c.bad;
    return c.error;
}
