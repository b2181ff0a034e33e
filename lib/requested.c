/* Requested-size tracking: the per-span slack table and the counters
 * (requested.h). */
#include "requested.h"

#include "annotate.h"

void requested_span_init(span_t *s)
{
    annotate_span_meta(requested_table_of(s), span_slack_table_bytes(s->block_size, span_capacity(s)));
}

size_t requested_heap_slack(const struct sc_heap_s *heap)
{
    size_t sum = heap->retired_slack;
    for (sc_frontend_t *f = heap->frontends; f; f = f->heap_next)
        sum += atomic_load_explicit(&f->slack, memory_order_relaxed);
    return sum;
}

void requested_retire(sc_frontend_t *t)
{
    t->heap->retired_slack += atomic_load_explicit(&t->slack, memory_order_relaxed);
    atomic_store_explicit(&t->slack, 0, memory_order_relaxed);
}

void requested_reset(struct sc_heap_s *heap)
{
    heap->retired_slack = 0;
    heap->retired_slack = 0 - requested_heap_slack(heap);
}
