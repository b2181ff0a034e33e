/* The error handler and messages (error.h). */
#include "error.h"

#include <stdio.h>
#include <stdlib.h>

static _Atomic(sc_error_handler_t *) error_handler;
static _Atomic(void *) error_handler_arg;

void sc_set_error_handler(sc_error_handler_t *fn, void *arg)
{
    /* The argument is stored first and the handler published with release,
     * so a reporter that loads the handler with acquire gets its argument. */
    atomic_store_explicit(&error_handler_arg, arg, memory_order_relaxed);
    atomic_store_explicit(&error_handler, fn, memory_order_release);
}

const char *sc_error_string(sc_error_t err)
{
    switch (err) {
    case SC_ERR_NONE: return "no error";
    case SC_ERR_FOREIGN_POINTER: return "pointer was not allocated by this heap";
    case SC_ERR_OTHER_HEAP: return "pointer belongs to another heap";
    case SC_ERR_INTERIOR_POINTER: return "pointer is not the start of a block";
    case SC_ERR_DOUBLE_FREE: return "block is already free (double free)";
    case SC_ERR_DESTROYED_HEAP: return "heap was destroyed";
    case SC_ERR_WRONG_THREAD: return "frontend used from a thread that does not own it";
    case SC_ERR_CORRUPTION: return "allocator metadata is corrupted";
    }
    return "unknown error";
}

void error_report(sc_error_t err, const char *call, const struct sc_heap_s *heap,
                  const void *p)
{
    /* A destroyed heap's handle keeps its name until it is reused. */
    const char *name = heap ? heap->name : "?";
    sc_error_handler_t *fn = atomic_load_explicit(&error_handler, memory_order_acquire);
    if (fn) {
        fn(err, call, name, p, atomic_load_explicit(&error_handler_arg, memory_order_relaxed));
        return;
    }
    fprintf(stderr, "scalloc: %s(heap \"%s\", %p): %s\n", call, name, p, sc_error_string(err));
    fflush(stderr);
    abort();
}

#ifdef SCALLOC_DEBUG
_Noreturn void sc_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "scalloc: internal invariant broken at %s:%d: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}
#endif
