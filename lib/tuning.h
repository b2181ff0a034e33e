/*
 * Every tunable of the library, each with what it trades. Nothing else in
 * lib/ defines a number a user of the design might want to change; the
 * structural constants (span size, address bits, header size) live in
 * types.h, the size classes in size_class.h.
 */
#ifndef SCALLOC_TUNING_H
#define SCALLOC_TUNING_H

#include <stddef.h>

/* --- Frontend ------------------------------------------------------------ */

/* Sizes up to this many bytes find their hot span in one load from the
 * frontend's table indexed by (n + 15) / 16 (types.h, sc_frontend_s.small).
 * Larger: a class lookup first. More: a bigger table per frontend. */
#define SMALL_MAX 1024

/* Remote frees wait in a frontend's batches (frontend.c, "REMOTE BATCHES"):
 * REMOTE_SLOTS spans can be collected for at once (direct mapped by span
 * address); a batch goes at REMOTE_SLOT_MAX blocks, all of them once
 * REMOTE_PENDING_BYTES of blocks wait. More and longer batches: fewer
 * CASes on spans' remote words, but more blocks that keep their span from
 * being reused until the next flush, and a bigger frontend (32 bytes a
 * slot). The waiting blocks are freed memory that nobody can reuse, so the
 * bound is in bytes, not blocks (1,024 blocks were up to 16 KiB of 16 B
 * blocks but 4 MiB of 4 KiB ones). prodcons (scalloc_bench_scalloc
 * prodcons T full, 7 alternating runs, peak RSS): 16 threads 15.2-16.7 MB
 * with 1,024 blocks, 13.3-15.0 with 64 KiB, 13.1-14.7 with 16 KiB,
 * 15.4-16.6 with 256 KiB; 8 threads 9.6-10.8 / 8.0-9.4 / 8.0-9.1 /
 * 9.7-10.7; 4 threads alike. Instructions (callgrind, 1,024 blocks / 64
 * KiB / 16 KiB): prodcons 16 threads 785 / 803 / 972 M (the smaller bound
 * flushes every batch far more often), churn 4 threads 944 / 935 / 956 M,
 * larson 4 threads 516 / 516 / 517 M. */
#define REMOTE_SLOTS 64
#define REMOTE_SLOT_MAX 64
#define REMOTE_PENDING_BYTES (64u << 10)

/* How many floating spans a refill looks at: enough to find reusable ones
 * soon, few enough that a thread holding thousands of long-lived spans
 * pays a bounded price per refill (spans looked at go to the back). */
#define FLOATING_SCAN 8

/* An exhausted hot span takes its remote frees back when at least
 * 1/TAKE_REMOTE_SHARE of its blocks wait there; fewer would bring the
 * owner back to the slow path almost at once, so the span floats instead
 * and refills in peace. */
#define TAKE_REMOTE_SHARE 16

/* A request of a class with blocks of at least BORROW_MIN_BLOCK bytes
 * whose hot span has no free block on its list takes a free block of one
 * of the next BORROW_CLASSES classes' hot spans if there is one
 * (frontend.c, "BORROWING"), so that a thread's neighbouring big classes
 * share one high-water mark instead of each keeping its own. The mixed
 * workload's peak RSS (scalloc_bench_scalloc mixed T full, T = 1/2/4/8,
 * median of 3 runs): 10.3 / 18.1 / 31.5 / 57 MB without; 16 KiB and 2
 * classes: 7.6 / 13.3 / 23.5 / 43.2; 4 KiB and 2: 7.5 / 12.5 / 22.4 /
 * 41.5; 4 KiB and 4: 7.2 / 12.3 / 22.2 / 37-40; 1025 B and 2: 7.9 / 13.1
 * / 23.1 / 41.5 (more rounding).
 * More classes: up to twice the request per block (four classes are a
 * doubling); a smaller minimum: more rounding where a block is less than a
 * page and borrowing saves no page. */
#define BORROW_MIN_BLOCK ((size_t)4 << 10)
#define BORROW_CLASSES 2u

/* Classes with blocks of at least FREE_FIRST_MIN_BLOCK bytes take the
 * free blocks of their first floating span before carving never-used ones
 * in their hot span (frontend.c, floating_free_first): where a block is a
 * page or more, carving touches a new page per block. For every class
 * (0 here), 5 alternating runs each of scalloc_bench_scalloc at 1 and 4
 * threads: peak RSS within 5% either way on larson, churn, prodcons, frag,
 * mixed and threadtest, throughput within the runs' noise (larson 4
 * threads 0.93x, prodcons 1 thread 1.16x), so small classes keep carving
 * first: a span change costs more than a page a small block rarely
 * touches. */
#define FREE_FIRST_MIN_BLOCK ((size_t)4 << 10)

/* --- Spans ---------------------------------------------------------------- */

/* Real span size, by band of block sizes: REAL_SPAN_MIN bytes for blocks
 * up to REAL_SPAN_MIN / REAL_SPAN_SMALLEST_BLOCKS (small classes: ~2,000
 * blocks of 16 B, few span changes, little memory per thread and class), then
 * each band 2^REAL_SPAN_BAND_SHIFT times the one before, up to the whole
 * 2 MiB span, so every span has at least REAL_SPAN_MIN_BLOCKS blocks
 * (blocks over 256 KiB: fewer; a class of exactly a band's bytes / 8, as
 * 4 KiB, 16 KiB and 64 KiB, one fewer, for the header: counting the header
 * in moved those three to the next band, which made glibc's malloc-simple
 * loop through the preload library 336 M -> 276 M instructions but 4-thread
 * churn's peak RSS 15-18 MB -> 18-20 MB, 5 runs each, so they stay). Every class of a band has the same real
 * span size, which is also a bucket bound of the span pool: a warm span
 * that served one class of the band serves any other without giving a
 * tail back (a madvise per reuse when each class had its own size).
 * Bigger: fewer slow paths, more memory held per (thread, class). */
#define REAL_SPAN_MIN ((size_t)32 << 10)
#define REAL_SPAN_MIN_BLOCKS 8
/* ... except the smallest band, which takes only classes that fill it with
 * REAL_SPAN_SMALLEST_BLOCKS blocks (up to 256 B); classes of 320 B - 4 KiB
 * start at 128 KiB. A span's free list is LIFO, but only within the span:
 * a class whose live blocks lie in several spans allocates from its hot
 * span while its freshest frees wait in the floating ones, so the blocks it
 * hands out are colder. larson (8-1000 B, 1,000 random slots a thread) kept
 * 3-5 spans of each class over 640 B at 32 KiB: 54% of its pops missed L1
 * (cachegrind, 2.1 M of 4 M; tcmalloc, whose thread cache is LIFO per class,
 * 19%), D1 misses 13.3 M -> 9.7 M with this rule (tcmalloc 9.7 M), and
 * throughput at 1 and 4 threads +25-40% (7 alternating runs: 1 thread 67.9 -> 96.7 M
 * ops/s, 4 threads 57.4 -> 81.2), peak RSS 3.9 -> 3.7 MB and 10.1 -> 9.4 MB:
 * fewer partly used spans. With 64 blocks (up to 512 B) 93.4 and 74.9; with
 * 32 (1 KiB) 65.1 and 65.5. Pages are still committed as carving reaches
 * them, so a class with few live blocks touches no more than before. */
#define REAL_SPAN_SMALLEST_BLOCKS 128
#define REAL_SPAN_BAND_SHIFT 2
/* Real span bytes of band i (0 = REAL_SPAN_MIN). */
#define REAL_SPAN_BAND(i) (REAL_SPAN_MIN << (REAL_SPAN_BAND_SHIFT * (i)))

/* Grown spans (frontend.c, class_grow_level): a thread whose floating set
 * of a class of blocks up to 4 KiB holds GROWN_SPAN_AFTER spans or more, every
 * one its refill looked at full (no block came back) and no remote free
 * begun into them over its last two retirement looks, sets up its next spans
 * of the class from the pool or fresh address space one band bigger
 * (128 KiB instead of 32 KiB, 512 KiB instead of 128 KiB), and with four
 * times GROWN_SPAN_AFTER floating two bands bigger, up to 512 KiB:
 * GROWN_SPAN_LEVELS levels, in plain heaps (span.c, span_geometry_init). Each real span sits alone in its 2 MiB of address space, with a
 * page-table page of its own (README, Limitations), so a class whose live
 * blocks pile up pays for its number of spans: page walks, span changes,
 * the kernel's work to unmap them. A thread whose blocks come back (a
 * ring, a producer whose consumers free them) keeps small spans, which
 * frees empty sooner. A span stays a fraction of what the class holds in
 * the thread (the first 512 KiB one after 1.6 MiB of full spans): a
 * thread's last span of a class is partly used at its peak, and a round
 * that takes its spans in another order leaves one of the last round's
 * warm in the pool, so bigger spans sooner cost peak RSS: 512 KiB after 8
 * spans instead of 16 measured threadtest's 4-thread peak committed
 * 6.2 -> 8.1 MiB (tests/bench: 25,000 live 64 B blocks a thread).
 * Measured, one level (scalloc_bench_scalloc W T full, 7
 * alternating runs, 1 / 4 threads): free-each +13% / +14%, frag +11% /
 * +14%, threadtest +3% / +7% (peak RSS -2% / +4%: the last span of a
 * round is bigger), the other workloads within noise; destroy_bench
 * --size 64 --alive 2.4x -> 1.6x one munmap. The second level, against
 * one (5 alternating runs, 1 / 4 threads): threadtest +5% / +4%,
 * free-each +5% / +9%, frag +5% / +6%, larson +7% / +5%, the others
 * within noise; instructions -0.7% (threadtest) and -1.1% (free-each,
 * frag), so the rest is the page tables; peak RSS threadtest-1 +5% (one
 * more partly used 512 KiB span), larson-1 +4%, the others within 4%
 * either way; destroy_bench --size 64 --alive 1.47-1.90x -> 1.30-1.43x.
 * 128 KiB for every span of
 * the band instead: larson's and churn's 4-thread peak RSS +17% and +14%;
 * without the remote test, producer-consumer's +8-16%. Fewer spans before
 * growing: more memory for classes with few live blocks; more: more spans
 * for those with many. */
#define GROWN_SPAN_AFTER 4
#define GROWN_SPAN_LEVELS 2

/* A real span is committed (charged to the heap's limit) in steps of this
 * many bytes as carving reaches it: a class with 1 MiB real spans does not
 * charge 1 MiB for its first block. Smaller: more charge updates. */
#define COMMIT_STEP ((size_t)64 << 10)

/* Carving hands out at most this many bytes of new blocks at a time, so a
 * fresh span's pages are touched as they are needed. Bigger: fewer slow
 * paths, more pages touched ahead of use. */
#define CARVE_BYTES ((size_t)4096)

/* A span set up again on pages that are still resident carves at once at
 * most this many of its blocks (or CARVE_BYTES, if that is more), not every
 * touched block: carving writes each block's link, and a list longer than
 * the L1 cache holds is read back from L2 as it is handed out (threadtest,
 * 64 B blocks in 32 KiB spans: L1 read misses in sc_alloc 5.9 M -> 1.1 M
 * per 6 M allocations). Big blocks still get many per carve. */
#define CARVE_TOUCHED_BLOCKS 64

/* A floating span that its owner's frees empty stays in the owner's
 * floating set, first in line for its class (or, set up afresh, for
 * another class of the thread's whose real span it fits), while the
 * frontend's kept empty spans stay within its budget (real span bytes);
 * beyond it, and at the second retirement look (HOT_RETIRE_MS) that finds
 * it still unused, it goes to the pool. A program that allocates a batch
 * and frees it, over and over, then reuses the same spans with their free
 * lists as they are: no pool round trip (two clock reads, and atomics
 * every thread of the heap writes), no set-up, no carving per batch. A
 * trim by any thread gives kept spans' memory back.
 *
 * The budget starts at FRONTEND_KEEP_EMPTY_BYTES. Each span the frontend
 * takes from the pool or fresh address space after one of its own went to
 * the pool for want of budget (since the last look) adds that span's
 * bytes, up to FRONTEND_KEEP_EMPTY_MAX: the thread cycles more spans than
 * it keeps, and the pool would only hold them warm for it meanwhile. A
 * look that retires kept spans unused halves it again; one that retires
 * every kept span sets it back to the minimum (a few big grown spans
 * retire in one look). Bigger minimum:
 * more memory a thread holds for its classes whether it cycles or not;
 * bigger maximum: bigger batches cycle without the pool, more memory an
 * idle thread holds until its next looks or a trim. sh6bench through the
 * preload library, 2 threads: 230 ms at 256 KiB fixed, 162 ms at 1 MiB
 * fixed, 158 ms at 4 MiB fixed; grown, up to 1 MiB: 164 ms, up to 4 MiB:
 * 156 ms (mimalloc 180 ms). The cap was 1 MiB until threadtest (6.4 MB
 * cycled per batch by one thread) showed what it costs: every span past
 * the cap went to the pool and was set up and carved again each batch,
 * 457 M instructions against 417 M at 8 MiB, 148 against 163 M ops/s
 * (mimalloc 159), while peak RSS stayed put (the spans are in use each
 * batch either way; preload sh6bench, python3, larson, mleak within 0.4
 * MiB, mstress 232 -> 208 MiB). What an idle thread holds goes back after
 * one to two purge delays (kept spans are noted as drained, frontend.c,
 * KEPT EMPTY SPANS), at its exit or at a trim. */
/* A frontend whose floating spans other threads' frees drained, and whose
 * owner reached no slow path for this long since, gets them pooled by
 * another thread's slow path (registry.c, "DRAINED SPANS OF IDLE OWNERS");
 * such looks come at most once per this period per heap. Shorter: spans
 * back in use sooner, more looks (a membarrier each) at owners that were
 * only between slow paths. */
#define DRAINED_IDLE_MS 4u

/* A floating span that other threads' frees drained is kept by its owner
 * for its class (within the keep budget, below) if its real span is at
 * most this many bytes, else pooled (frontend.c, drained_keep_or_pool).
 * Producer-consumer with one producer (tests/bench/syscalls.sh --threads 1
 * --workloads prodcons, 5 runs each): 34-44 calls when all were pooled
 * (cuts of 128 KiB spans for the small classes, a madvise each), 30-33
 * with the smallest band kept (mimalloc 37-40); keeping every band also
 * made 30-32 but raised its peak RSS with the producers (mean of 8
 * alternating runs, 2 sets: +6-9% at 8 threads, +12% at 16), the
 * smallest band only: +1-3% at 1 and 4 threads, -3% at 16. Bigger: fewer
 * cuts, each producer holding spans the others would take. */
#define DRAINED_KEEP_MAX REAL_SPAN_MIN

#define FRONTEND_KEEP_EMPTY_BYTES ((size_t)256 << 10)
#define FRONTEND_KEEP_EMPTY_MAX ((size_t)8 << 20)

/* A hot span whose owner's free empties it leaves the hot slot (kept for
 * its class, where any thread's trim gives its memory back) unless it was
 * taken back from there at most this many allocation slow paths and free
 * events of its frontend ago: then it stays hot, unarmed until the next
 * retirement look, so that a loop that allocates and frees one block pays
 * one slow path per look, not one per block. Bigger: more classes cycled
 * at once pass as such a loop (and keep their hot span past a trim by
 * another thread); smaller: more slow paths for programs that empty and
 * refill a few classes' spans in turn. */
#define HOT_REFILL_TICKS 16u

/* Every HOT_RETIRE_MS (coarse clock), the allocation slow path looks at
 * its frontend's hot spans: one whose blocks are all free now and were
 * at the last look too goes to the span pool, where any class of its band
 * reuses it and the release policy sees it. A hot span's free blocks are
 * its class's alone; without this, a thread whose requests wander over
 * many classes keeps a span per class it ever used, empty or not.
 * Shorter: spans move more often between classes; longer: more memory
 * held by classes the thread stopped using. */
#define HOT_RETIRE_MS 100u
/* ... the clock being read on one slow path in HOT_RETIRE_CHECK_EVERY. */
#define HOT_RETIRE_CHECK_EVERY 32u

/* The automatic idle trim (registry.c) trims a frontend that stayed idle
 * again at most every IDLE_RETRIM_DELAYS purge delays. */
#define IDLE_RETRIM_DELAYS 8u

/* A span its owner gave up (thread exit) is DETACHED while fewer than one
 * block in DETACHED_REUSE_SHARE is free, and REUSABLE from there (or from
 * the reuse threshold, if that is fewer), at the give-up or at the remote
 * free that gets it there; it keeps that lower threshold until it is set
 * up afresh, so its next owners refill it too. The next threads of its
 * class fill its holes instead of taking new memory, and the first span
 * change of whoever takes it buys that many blocks at least. Until stop 35
 * a span waited DETACHED below the reuse threshold for 10-20 ms first
 * (so that a span whose blocks were about to die went to the pool whole);
 * without it, peak RSS medians of 9 alternating runs of
 * `scalloc_bench_scalloc W T full`: churn 8,856 -> 7,432 KB at 1 thread,
 * 11,436 -> 10,056 KB at 2 (its generations of threads last about 5 ms,
 * under the wait), larson 3,796 -> 3,656 KB at 1 and 5,844 -> 5,320 KB
 * at 2, 4-16 threads of both within their spread; throughput within its
 * spread (README, Performance, stop 35). Bigger share: spans with fewer
 * holes are taken (more span changes per block); smaller: nearly full
 * spans of exited threads stay out of use until other threads free their
 * blocks. 16 moved churn (1, 2, 4 threads) and larson (1, 2) within their
 * spread (9 and 7 alternating runs); 4 raised 1-thread churn's peak RSS
 * 7,488 -> 7,744 KB and moved the rest within the spread. */
#define DETACHED_REUSE_SHARE 8u

/* --- Heaps, regions, the pool and the release policy ---------------------- */

/* Default share of a span's blocks that must be free before it is reused
 * (sc_heap_config_t.reuse_threshold). Lower: spans are reused sooner
 * (less memory), with fewer free blocks each (more span changes). */
#define DEFAULT_REUSE_THRESHOLD 80u

/* ... or once its free blocks add up to REUSE_ENOUGH_BYTES, if that is
 * fewer blocks (span.c, span_geometry_init): the threshold bounds how
 * often the owner's slow path runs per block it hands out, which matters
 * for small blocks; a refill that yields one block of 64 KiB costs little
 * next to writing the block. It applies to spans of 128 KiB and more
 * (blocks over 4 KiB): spans of 8 KiB blocks are reused from 8 free of 15
 * instead of 12, of 16 KiB blocks from 4 of 7 instead of 6, of 64 KiB
 * blocks and more from one. server, the footprint
 * study's workload (4 threads, 64 MiB live of 16 B-256 KiB), peak RSS:
 * 174-181 MB -> 143-156 MB (5 alternating runs; 256 KiB: 145-154 MB), 1
 * thread 189 -> 137 MB (glibc 91 MB); instructions -0.2%. Smaller: spans
 * of big blocks are refilled with fewer free blocks each. */
#define REUSE_ENOUGH_BYTES ((size_t)64 << 10)

/* How long free memory stays committed for reuse before it goes back
 * (sc_heap_config_t.purge_delay_ms; scalloc.h says why 100 ms). Longer:
 * fewer page faults for programs that free and allocate in waves, memory
 * back later. */
#define DEFAULT_PURGE_DELAY_MS 100u

/* The default bound on unused committed bytes (it applies to free huge runs'
 * pages; free spans wait for the delay): the room between what the heap
 * holds (in use and in free spans) and its high-water of use over the last
 * one to two RETAIN_PEAK_WINDOW_MS plus a RETAIN_SHARE'th of what it uses,
 * never less than RETAIN_MIN. So a heap below its recent peak keeps the
 * pages it freed for what it allocates next (huge blocks take kept pages
 * wherever they are: huge.c, "MOVING WARM PAGES"), and its resident bytes
 * stay within a sixteenth of that peak; memory it no longer cycles still
 * goes back after the delay. With moving pages, on issue 13's loop
 * (tests/bench/lifecycle/huge_loop --buffers 16 --min-mib 2 --max-mib 32
 * --iterations 500): an eighth of the bytes in use (the default before)
 * 0.77-0.88 s, 425-436 k page faults, peak RSS 1.01-1.02x peak live (without
 * moves: 1.14 s, 1.10x); a quarter: 0.51-0.54 s, 278-293 k, 1.02x; the
 * high-water and an eighth: 0.32-0.39 s, 153 k, 1.11x; the high-water and a
 * sixteenth: 0.34-0.38 s, 169-181 k, 1.07x (glibc 0.49 s, 275 k faults,
 * 1.22x). Free spans count against the room: without that, python3 with
 * PYTHONMALLOC=malloc through the preload library peaked at 98-105 MB
 * against 90-92 MB before (93 MB with it). A purge forced by the bound gives
 * back what is over it, at least PURGE_MIN_BYTES (span_pool.c, purge), so a
 * heap hovering at its bound gives memory back in batches, not per span,
 * and keeps what it cycles through next. Giving back down to half the
 * bound (until stop 29) threw away pages the next buffers took again: the
 * loop above 0.41-0.65 s a rep and 527 k page faults for 3 reps, against
 * 0.26-0.29 s and 365 k now; peak RSS 1.07x -> 1.09x peak live. */
#define RETAIN_SHARE 16
#define RETAIN_PEAK_WINDOW_MS 100u
#define RETAIN_MIN ((size_t)4 << 20)

/* A purge by age waits until at least PURGE_MIN_BYTES have aged (or the
 * heap's retain_bytes, if smaller), half a delay at a time, and purges by
 * age come at most twice per delay (span_pool.c, purge): memory that
 * becomes unused a span at a time goes back in batches, a span waiting up
 * to one and a half delays. Bigger: fewer system calls, more free memory
 * held; smaller: a purge (and later the page faults) per span or two.
 * prodcons with one producer, tests/bench/syscalls.sh: 53-68 calls before,
 * 30 with 1 MiB (mimalloc 37-74). */
#define PURGE_MIN_BYTES ((size_t)1 << 20)

/* The span pool: POOL_SLOTS lock-free stacks per bucket (threads push and
 * pop their own slot first: less contention, more memory spread over
 * stacks), POOL_BUCKETS buckets by committed bytes (span_pool.c), so that
 * a small class does not take a span with a big committed tail. */
#define POOL_SLOTS 8
/* A small class that finds only bigger warm spans in the pool cuts this
 * many down at once, in one system call, and pools the others for the
 * small classes after it (span_pool.c, cut_batch). Bigger: fewer calls
 * when big spans outnumber small ones, more big spans given back that a
 * big class might have wanted. */
#define POOL_CUT_BATCH 8
#define POOL_BUCKETS 4

/* A heap's first region: DEFAULT_REGION_SIZE of address space, or 1/64 of
 * an address-space limit (ulimit -v) but at least SMALLEST_DEFAULT_REGION,
 * so a limited process still gets many heaps. Regions double as a heap
 * grows, between REGION_MIN_SIZE and REGION_MAX_SIZE. Bigger: fewer
 * regions per heap, more address space per heap. */
#define DEFAULT_REGION_SIZE ((size_t)256 << 20)
#define SMALLEST_DEFAULT_REGION ((size_t)8 << 20)
#define REGION_MIN_SIZE ((size_t)8 << 20)
#define REGION_MAX_SIZE ((size_t)64 << 30)

/* Huge blocks placed where free runs kept too few pages take the pages of
 * other free runs' spans instead of faulting in fresh ones (huge.c, "MOVING
 * WARM PAGES"): an mremap moves a span's page tables in microseconds where
 * faulting 2 MiB in costs about 0.7 ms here. Each move may add two entries
 * to the process's map table, whose default limit (vm.max_map_count) is
 * 65,530; a heap's moves are charged to a process-wide budget of
 * MOVE_MAP_BUDGET entries until they add up to two per span of its address
 * space (moves cut mappings at span boundaries and at a span's kept pages
 * only, so no heap can hold more) and given back when it is destroyed.
 * Past the budget blocks fault their pages in as before. Bigger: more
 * heaps keep moving, less room for the program's own mappings. */
#define MOVE_MAP_BUDGET ((size_t)16384)

/* Metadata slabs (meta.c): size classes from 2^META_MIN_SHIFT to
 * 2^META_MAX_SHIFT bytes, carved from META_CHUNK mappings. */
#define META_MIN_SHIFT 6  /* 64 B */
#define META_MAX_SHIFT 18 /* 256 KiB */
#define META_CHUNK ((size_t)1 << 20)

/* Heap handles are cut from chunks of this many bytes (heap.c); they are
 * never unmapped, so a stale handle stays safe to test. */
#define HANDLE_CHUNK_BYTES ((size_t)256 << 10)

#endif /* SCALLOC_TUNING_H */
