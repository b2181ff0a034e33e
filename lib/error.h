/* Reporting misuse to the error handler (scalloc.h, "Errors"). */
#ifndef SCALLOC_ERROR_H
#define SCALLOC_ERROR_H

#include "types.h"

/* Reports err for `call` on heap (may be NULL) and pointer p. Returns if
 * the installed handler returns; the caller then does nothing. */
void error_report(sc_error_t err, const char *call, const struct sc_heap_s *heap,
                  const void *p) __attribute__((cold, noinline));

/* An internal invariant broke: print and abort, whatever the handler. */

#endif /* SCALLOC_ERROR_H */
