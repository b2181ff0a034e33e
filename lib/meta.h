/*
 * Metadata memory: thread states, their heap tables, frontend and heap
 * handle chunks, sc_heap_visit's bitmap. Blocks of a power-of-two size
 * (64 B .. 256 KiB) are carved from 1 MiB chunks of plain read-write memory
 * and recycled through a free list per size, never unmapped: once a
 * process has warmed up, a thread that starts, uses a heap and exits costs
 * no system call for scalloc's metadata (issue 13: one mmap and munmap per
 * thread state before). Larger requests map memory of their own. Rare
 * events only: one mutex guards it all.
 */
#ifndef SCALLOC_META_H
#define SCALLOC_META_H

#include <stddef.h>

/* size bytes of zeroed memory, aligned to the smaller of its rounded size
 * and the page; NULL if memory ran out. */
void *meta_alloc(size_t size);

/* Returns a block from meta_alloc(size) (the same size). */
void meta_free(void *p, size_t size);

/* fork: held across it, so the child finds the lock free. */
void meta_lock(void);
void meta_unlock(void);

#endif /* SCALLOC_META_H */
