/*
 * scalloc::heap (include/scalloc/scalloc.hpp): the RAII owner of one
 * sc_heap_t.
 *
 * Contract lines checked here:
 *  - the default constructor gives a default heap, the config constructor
 *    a configured one (name copied)                          [construct_default_and_configured]
 *  - creation failure throws: std::system_error carrying errno for a bad
 *    configuration, std::bad_alloc when address space is lacking
 *                                                            [create_failure_*]
 *  - move-only; a moved-from heap's get() is nullptr and its destructor
 *    does nothing; move assignment destroys the heap held before
 *                                                            [move_only]
 *  - alloc / free / aligned_alloc / reset / trim / stats / name / owns
 *    do what the C calls do, alloc throws at the limit     [members]
 *  - new_object / delete_object: any alignment, a throwing constructor
 *    frees its block                                         [new_object]
 *  - adopt / release hand a raw handle in and out            [adopt_release]
 *  - the runner reports a failed check (xfail_, run by ctest with
 *    WILL_FAIL)                                              [xfail_check_fails]
 */
#include <scalloc/scalloc.hpp>

#include "cpp_test.hpp"

#include <cerrno>
#include <new>
#include <stdexcept>
#include <system_error>
#include <type_traits>

#include <sys/resource.h>

static_assert(!std::is_copy_constructible_v<scalloc::heap>, "heap is move-only");
static_assert(!std::is_copy_assignable_v<scalloc::heap>, "heap is move-only");
static_assert(std::is_nothrow_move_constructible_v<scalloc::heap>, "moving a heap cannot fail");
static_assert(std::is_nothrow_move_assignable_v<scalloc::heap>, "moving a heap cannot fail");
static_assert(std::is_nothrow_destructible_v<scalloc::heap>, "");

CPP_TEST(construct_default_and_configured)
{
    scalloc::heap plain;
    CHECK(plain.get() != nullptr);
    CHECK(static_cast<bool>(plain));
    CHECK(std::strcmp(plain.name(), "heap") == 0);

    char name[] = "configured";
    sc_heap_config_t cfg{};
    cfg.name = name;
    cfg.limit_bytes = 64u << 20;
    cfg.flags = SC_HEAP_CHECKED;
    scalloc::heap configured(cfg);
    name[0] = 'X'; /* the heap keeps its own copy */
    CHECKF(std::strcmp(configured.name(), "configured") == 0, "name %s", configured.name());
    CHECK(configured.get() != plain.get());

    void *p = configured.alloc(100);
    CHECK(configured.owns(p));
    CHECK(!plain.owns(p));
    CHECK(sc_heap_of(p) == configured.get());
    configured.free(p);
}

CPP_TEST(create_failure_bad_config_is_system_error)
{
    sc_heap_config_t cfg{};
    cfg.name = "bad";
    cfg.reuse_threshold = 101; /* 1..100 */
    bool thrown = false;
    try {
        scalloc::heap h(cfg);
    } catch (const std::system_error &e) {
        thrown = true;
        CHECKF(e.code().value() == EINVAL, "errno %d", e.code().value());
        CHECK(e.code().category() == std::generic_category());
        CHECK(e.code() == std::errc::invalid_argument);
    }
    CHECK(thrown);

    cfg.reuse_threshold = 0;
    cfg.flags = 1u << 30; /* unknown flag */
    CHECK_THROWS(std::system_error, scalloc::heap h(cfg));
}

/* sc_heap_create fails with ENOMEM only when no address space can be had,
 * so squeeze the address space with RLIMIT_AS (in the forked child this
 * case runs in). A sanitizer's runtime cannot work under such a limit, so
 * the case only checks in plain builds. */
CPP_TEST(create_failure_no_address_space_is_bad_alloc)
{
#if CPP_TEST_SANITIZED
    cpptest::log("skipped: a sanitizer runtime cannot run under RLIMIT_AS");
#else
    /* The first heap maps the process-wide address map, which is not the
     * point here: create it before the limit. */
    scalloc::heap first;
    struct rlimit lim;
    CHECK(getrlimit(RLIMIT_AS, &lim) == 0);
    /* The current size plus a little: no room for any heap region. */
    FILE *f = std::fopen("/proc/self/statm", "r");
    CHECK(f != nullptr);
    unsigned long pages = 0;
    CHECK(std::fscanf(f, "%lu", &pages) == 1);
    std::fclose(f);
    lim.rlim_cur = pages * static_cast<unsigned long>(sysconf(_SC_PAGESIZE)) + (1u << 20);
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
    std::size_t failures = 0;
    /* Bounded: each try would leave a heap only if it succeeded. */
    for (int i = 0; i < 4; i++) {
        try {
            scalloc::heap h;
        } catch (const std::bad_alloc &) {
            failures++;
        }
    }
    CHECKF(failures == 4, "%zu of 4 creations failed", failures);
#endif
}

CPP_TEST(move_only)
{
    scalloc::heap a;
    sc_heap_t *raw = a.get();
    void *p = a.alloc(64);

    scalloc::heap b(std::move(a));
    CHECK(a.get() == nullptr); /* NOLINT(bugprone-use-after-move): the contract */
    CHECK(!a);
    CHECK(b.get() == raw);
    CHECK(b.owns(p));
    {
        /* A moved-from heap's destructor does nothing: b still works. */
        scalloc::heap dead(std::move(b));
        b = std::move(dead);
    }
    CHECK(b.get() == raw);
    b.free(p);

    /* Move assignment destroys the heap held before: its blocks are gone
     * and its address range no longer maps to it. */
    scalloc::heap c;
    void *q = c.alloc(64);
    CHECK(sc_heap_of(q) == c.get());
    c = std::move(b);
    CHECK(c.get() == raw);
    CHECK(sc_heap_of(q) == nullptr);

    /* Self-move leaves the heap as it was (through a reference, so that
     * the compiler does not warn about an obvious self-move). */
    scalloc::heap &same = c;
    c = std::move(same);
    CHECK(c.get() == raw);
    void *r = c.alloc(10);
    CHECK(c.owns(r));
    c.free(r);
}

CPP_TEST(members)
{
    sc_heap_config_t cfg{};
    cfg.name = "members";
    cfg.limit_bytes = 8u << 20;
    scalloc::heap h(cfg);

    sc_heap_stats_t s0 = h.stats();
    CHECK(s0.live_blocks == 0);

    void *small = h.alloc(100);
    void *aligned = h.aligned_alloc(4096, 100);
    CHECK(reinterpret_cast<std::uintptr_t>(aligned) % 4096 == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(small) % scalloc::default_alignment == 0);
    std::memset(small, 1, 100);
    std::memset(aligned, 2, 100);
    sc_heap_stats_t s1 = h.stats();
    CHECKF(s1.live_blocks == 2, "%zu live", s1.live_blocks);
    CHECK(h.owns(small) && h.owns(aligned));

    /* Over the limit: alloc throws, the nothrow form returns nullptr. */
    CHECK_THROWS(std::bad_alloc, (void)h.alloc(16u << 20));
    errno = 0;
    CHECK(h.alloc(16u << 20, std::nothrow) == nullptr);
    CHECK(errno == ENOMEM);
    /* A bad alignment is a failure too (EINVAL). */
    CHECK_THROWS(std::bad_alloc, (void)h.aligned_alloc(48, 16));
    CHECK(h.stats().live_blocks == 2);

    h.free(small);
    h.free(aligned);
    h.free(nullptr);
    CHECK(h.stats().live_blocks == 0);

    /* reset: every block gone at once, the heap stays usable. */
    for (int i = 0; i < 1000; i++)
        (void)h.alloc(static_cast<std::size_t>(i) * 8);
    CHECK(h.stats().live_blocks == 1000);
    h.reset();
    CHECK(h.stats().live_blocks == 0);
    void *again = h.alloc(32);
    CHECK(h.owns(again));
    h.free(again);

    /* trim: resident memory does not grow from it, and with 4 MiB of
     * freed blocks it shrinks. */
    std::vector<void *> blocks;
    for (int i = 0; i < 64; i++) {
        void *b = h.alloc(64u << 10);
        std::memset(b, 3, 64u << 10);
        blocks.push_back(b);
    }
    for (void *b : blocks)
        h.free(b);
    std::size_t before = h.stats().resident_bytes;
    h.trim();
    std::size_t after = h.stats().resident_bytes;
    CHECKF(after < before, "resident %zu -> %zu", before, after);
}

namespace {

int constructed = 0;
int destroyed = 0;

struct counted {
    explicit counted(int v) : value(v) { constructed++; }
    ~counted() { destroyed++; }
    counted(const counted &) = delete;
    counted &operator=(const counted &) = delete;
    int value;
};

struct alignas(256) over_aligned {
    unsigned char bytes[300];
};

struct throws_in_ctor {
    explicit throws_in_ctor(int) { throw std::runtime_error("no"); }
};

} // namespace

CPP_TEST(new_object)
{
    scalloc::heap h;
    counted *c = h.new_object<counted>(42);
    CHECK(c->value == 42);
    CHECK(constructed == 1 && destroyed == 0);
    CHECK(h.owns(c));
    h.delete_object(c);
    CHECK(destroyed == 1);
    h.delete_object(static_cast<counted *>(nullptr));
    CHECK(destroyed == 1);

    for (int i = 0; i < 20; i++) {
        over_aligned *o = h.new_object<over_aligned>();
        CHECK(reinterpret_cast<std::uintptr_t>(o) % 256 == 0);
        CHECK(h.owns(o));
        h.delete_object(o);
    }

    /* A constructor that throws: the block goes back, the exception on. */
    std::size_t live = h.stats().live_blocks;
    CHECK_THROWS(std::runtime_error, (void)h.new_object<throws_in_ctor>(1));
    CHECK(h.stats().live_blocks == live);

    /* Left for the heap's destructor: no destructor runs. */
    for (int i = 0; i < 10; i++)
        (void)h.new_object<counted>(i);
    CHECK(constructed == 11 && destroyed == 1);
}

CPP_TEST(adopt_release)
{
    sc_heap_t *raw = sc_heap_create(nullptr);
    CHECK(raw != nullptr);
    {
        scalloc::heap owner = scalloc::heap::adopt(raw);
        CHECK(owner.get() == raw);
        void *p = owner.alloc(10);
        CHECK(sc_heap_owns(raw, p));
        sc_heap_t *back = owner.release();
        CHECK(back == raw);
        CHECK(owner.get() == nullptr);
    } /* released: nothing destroyed here */
    void *q = sc_alloc(raw, 10);
    CHECK(q != nullptr);
    sc_heap_destroy(raw);

    scalloc::heap empty = scalloc::heap::adopt(nullptr);
    CHECK(!empty);
}

/* Not run by default: `test_cpp_heap xfail_` must fail (ctest WILL_FAIL),
 * which shows that a failed CHECK fails the run. */
CPP_TEST(xfail_check_fails)
{
    scalloc::heap h;
    CHECKF(h.get() == nullptr, "deliberate failure on heap %s", h.name());
}

CPP_TEST_MAIN()
