/*
 * scalloc.hpp — the scalloc heaps in C++ idioms (header-only, C++17).
 *
 *     scalloc::heap h;                                  // sc_heap_create
 *     std::vector<int, scalloc::allocator<int>> v(h);   // blocks in h
 *     scalloc::resource r(h);
 *     std::pmr::map<std::pmr::string, int> m(&r);       // blocks in h
 *     // ... from any thread ...
 *     // ~heap(): sc_heap_destroy, every block at once
 *
 * What is here:
 *   scalloc::heap          owns one sc_heap_t (RAII, move-only);
 *   scalloc::allocator<T>  a standard allocator over a heap;
 *   scalloc::resource      a std::pmr::memory_resource over a heap.
 *
 * Allocators and resources hold the sc_heap_t handle, not the scalloc::heap
 * object: moving the scalloc::heap that owns the handle keeps them valid;
 * destroying it invalidates them and every block they gave out.
 *
 * Thread safety is the C library's (scalloc.h): every allocator and
 * resource may allocate and free from any thread at once; the heap's
 * destructor, reset() and move assignment are whole-heap operations that no
 * other thread may overlap.
 *
 * Dropping a heap whole. A heap's destructor frees its blocks without
 * running any destructor. Objects that own nothing but blocks of that heap
 * (containers using allocator or resource over it, all the way down) may
 * therefore be left undestroyed and dropped with the heap:
 *
 *     {
 *         scalloc::heap request;
 *         scalloc::resource r(request);
 *         auto *state = request.new_object<std::pmr::map<std::pmr::string,
 *                                           std::pmr::vector<int>>>(&r);
 *         // ... fill *state, answer ...
 *     }   // no ~map, no per-node free: the whole heap goes at once
 *
 * This is only correct when those objects hold no other resource (libc
 * memory, files, locks) that their destructors would release.
 *
 * Failure. Allocation that fails throws std::bad_alloc; creating a heap
 * throws std::bad_alloc when memory or address space is lacking (ENOMEM)
 * and std::system_error carrying errno otherwise (EINVAL: bad config).
 * Without exceptions (-fno-exceptions) each of these prints one line to
 * stderr and aborts instead.
 */
#ifndef SCALLOC_SCALLOC_HPP
#define SCALLOC_SCALLOC_HPP

#if !defined(__cplusplus) || __cplusplus < 201703L
#error "scalloc.hpp needs C++17 (-std=c++17 or later); C programs include scalloc.h"
#endif

#include <scalloc/scalloc.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

/* libc++ before 16 has only <experimental/memory_resource>; there the
 * resource class is left out rather than the whole header failing. */
#if __has_include(<memory_resource>)
#include <memory_resource>
#define SCALLOC_HPP_HAS_PMR 1
#else
#define SCALLOC_HPP_HAS_PMR 0
#endif

/* Exceptions may be compiled out (-fno-exceptions): failures then abort. */
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define SCALLOC_HPP_EXCEPTIONS 1
#else
#define SCALLOC_HPP_EXCEPTIONS 0
#endif

/* dynamic_cast needs RTTI; without it resource equality falls back to
 * identity (correct, only slower: pmr containers then copy instead of
 * stealing between two resources over the same heap). */
#if defined(__cpp_rtti) || defined(__GXX_RTTI)
#define SCALLOC_HPP_RTTI 1
#else
#define SCALLOC_HPP_RTTI 0
#endif

namespace scalloc {

/* sc_alloc's guarantee (scalloc.h): every block is 16-byte aligned, so only
 * stricter alignments need sc_aligned_alloc. */
inline constexpr std::size_t default_alignment = 16;

namespace detail {

/* The heap name for messages, safe for a null handle. */
inline const char *name_of(const sc_heap_t *h) noexcept
{
    return h != nullptr ? sc_heap_name(h) : "(none)";
}

/* An allocation from heap h of n bytes (for `what`) could not be met. */
[[noreturn]] inline void throw_bad_alloc(const char *what, const sc_heap_t *h, std::size_t n)
{
#if SCALLOC_HPP_EXCEPTIONS
    (void)what;
    (void)h;
    (void)n;
    throw std::bad_alloc();
#else
    int err = errno;
    std::fprintf(stderr, "scalloc: %s(heap \"%s\", %zu bytes) failed: %s; aborting (no C++ exceptions)\n",
                 what, name_of(h), n, std::strerror(err != 0 ? err : ENOMEM));
    std::abort();
#endif
}

/* An element count whose byte size overflows size_t. */
[[noreturn]] inline void throw_bad_array_length(const char *what, const sc_heap_t *h, std::size_t n)
{
#if SCALLOC_HPP_EXCEPTIONS
    (void)what;
    (void)h;
    (void)n;
    throw std::bad_array_new_length();
#else
    std::fprintf(stderr, "scalloc: %s(heap \"%s\", %zu elements) failed: size overflows; aborting (no C++ exceptions)\n",
                 what, name_of(h), n);
    std::abort();
#endif
}

/* sc_heap_create failed with err. ENOMEM is an allocation failure like any
 * other, so it is std::bad_alloc; anything else (EINVAL) says what errno
 * said. */
[[noreturn]] inline void throw_create_failed(int err, const sc_heap_config_t *cfg)
{
    const char *name = cfg != nullptr && cfg->name != nullptr ? cfg->name : "heap";
#if SCALLOC_HPP_EXCEPTIONS
    (void)name;
    if (err == ENOMEM || err == 0)
        throw std::bad_alloc();
    throw std::system_error(err, std::generic_category(), "sc_heap_create");
#else
    std::fprintf(stderr, "scalloc: sc_heap_create(\"%s\") failed: %s; aborting (no C++ exceptions)\n", name,
                 std::strerror(err != 0 ? err : ENOMEM));
    std::abort();
#endif
}

/* n bytes aligned to `alignment` (a power of two) from h, or nullptr. */
inline void *allocate_aligned(sc_heap_t *h, std::size_t n, std::size_t alignment) noexcept
{
    if (alignment <= default_alignment)
        return sc_alloc(h, n);
    return sc_aligned_alloc(h, alignment, n);
}

} // namespace detail

/* ------------------------------------------------------------------------ */
/* heap                                                                     */
/* ------------------------------------------------------------------------ */

/* Owns one sc_heap_t: created by the constructor, destroyed (every block at
 * once) by the destructor. Move-only; a moved-from heap holds nothing, its
 * get() is nullptr and its destructor does nothing. */
class heap {
public:
    /* A heap with the default configuration. */
    heap() : h_(create(nullptr)) {}

    /* A heap configured by cfg (copied, name included). */
    explicit heap(const sc_heap_config_t &cfg) : h_(create(&cfg)) {}

    /* Takes ownership of a handle from sc_heap_create (nullptr: empty). */
    static heap adopt(sc_heap_t *h) noexcept { return heap(h, adopt_tag{}); }

    heap(const heap &) = delete;
    heap &operator=(const heap &) = delete;

    heap(heap &&other) noexcept : h_(std::exchange(other.h_, nullptr)) {}

    /* Destroys the heap held so far (a whole-heap operation: no other
     * thread may use it), then takes other's. */
    heap &operator=(heap &&other) noexcept
    {
        if (this != &other) {
            sc_heap_destroy(h_);
            h_ = std::exchange(other.h_, nullptr);
        }
        return *this;
    }

    /* sc_heap_destroy: every block goes at once, no destructor runs. No
     * other thread may use the heap during or after it. */
    ~heap() { sc_heap_destroy(h_); }

    /* The handle, for the C API; nullptr once moved from or released. */
    sc_heap_t *get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }

    /* Gives up ownership: the caller destroys the returned handle. */
    sc_heap_t *release() noexcept { return std::exchange(h_, nullptr); }

    /* n bytes, 16-byte aligned; throws std::bad_alloc when they cannot be
     * had (the heap's limit, memory). Free with free(). */
    void *alloc(std::size_t n)
    {
        void *p = sc_alloc(h_, n);
        if (p == nullptr)
            detail::throw_bad_alloc("scalloc::heap::alloc", h_, n);
        return p;
    }

    /* As alloc(n), but nullptr (errno set) instead of throwing. */
    void *alloc(std::size_t n, const std::nothrow_t &) noexcept { return sc_alloc(h_, n); }

    /* n bytes aligned to `alignment` (any power of two); throws
     * std::bad_alloc on failure, a bad alignment included. */
    void *aligned_alloc(std::size_t alignment, std::size_t n)
    {
        void *p = sc_aligned_alloc(h_, alignment, n);
        if (p == nullptr)
            detail::throw_bad_alloc("scalloc::heap::aligned_alloc", h_, n);
        return p;
    }

    /* Frees a block of this heap, allocated by any thread; nullptr is a
     * no-op. A pointer the heap does not own is reported as sc_free does. */
    void free(void *p) noexcept { sc_free(h_, p); }

    /* Constructs a T in the heap (any alignof(T)). It may be left for the
     * heap's destructor to drop whole (see the top of this file) or
     * destroyed with delete_object. */
    template <class T, class... Args>
    T *new_object(Args &&...args)
    {
        void *p = detail::allocate_aligned(h_, sizeof(T), alignof(T));
        if (p == nullptr)
            detail::throw_bad_alloc("scalloc::heap::new_object", h_, sizeof(T));
#if SCALLOC_HPP_EXCEPTIONS
        try {
            return ::new (p) T(std::forward<Args>(args)...);
        } catch (...) {
            sc_free(h_, p);
            throw;
        }
#else
        return ::new (p) T(std::forward<Args>(args)...);
#endif
    }

    /* Runs ~T and frees the block of an object from new_object. */
    template <class T>
    void delete_object(T *p) noexcept
    {
        if (p != nullptr) {
            p->~T();
            sc_free(h_, p);
        }
    }

    /* sc_heap_reset: frees every block (no destructor runs), keeps the heap
     * usable. No other thread may use the heap during the call. */
    void reset() noexcept { sc_heap_reset(h_); }

    /* sc_heap_trim: gives unused physical memory back now. */
    void trim() noexcept { sc_heap_trim(h_); }

    /* sc_heap_get_stats: a snapshot, exact once other threads stop. */
    sc_heap_stats_t stats() const noexcept
    {
        sc_heap_stats_t s;
        std::memset(&s, 0, sizeof s);
        sc_heap_get_stats(h_, &s);
        return s;
    }

    /* The configured name. */
    const char *name() const noexcept { return sc_heap_name(h_); }

    /* Whether p lies in this heap (any pointer value; O(1)). */
    bool owns(const void *p) const noexcept { return sc_heap_owns(h_, p) != 0; }

private:
    struct adopt_tag {};
    heap(sc_heap_t *h, adopt_tag) noexcept : h_(h) {}

    static sc_heap_t *create(const sc_heap_config_t *cfg)
    {
        errno = 0;
        sc_heap_t *h = sc_heap_create(cfg);
        if (h == nullptr)
            detail::throw_create_failed(errno, cfg);
        return h;
    }

    sc_heap_t *h_;
};

/* ------------------------------------------------------------------------ */
/* allocator<T>                                                             */
/* ------------------------------------------------------------------------ */

/* A standard allocator whose blocks come from one heap. Copies, rebinds
 * and converted allocators share that heap and compare equal; allocators
 * over different heaps compare unequal. Containers carry it along on copy
 * assignment, move assignment and swap (propagate_* are true), so a
 * container's blocks always live in the heap its allocator names, and move
 * assignment between heaps never copies elements.
 *
 * Any thread may allocate and deallocate through it at once; a block may be
 * deallocated by another thread than the one that allocated it. */
template <class T>
class allocator {
public:
    using value_type = T;
    using size_type = std::size_t;
    using difference_type = std::ptrdiff_t;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;
    using is_always_equal = std::false_type;

    template <class U>
    struct rebind {
        using other = allocator<U>;
    };

    /* Implicit, like std::pmr::polymorphic_allocator from a resource, so
     * that `std::vector<int, scalloc::allocator<int>> v(h);` reads well. */
    allocator(heap &h) noexcept : h_(h.get()) {}
    allocator(sc_heap_t *h) noexcept : h_(h) {}

    template <class U>
    allocator(const allocator<U> &other) noexcept : h_(other.get())
    {
    }

    allocator(const allocator &) noexcept = default;
    allocator &operator=(const allocator &) noexcept = default;

    /* n objects of T, aligned for T (over-aligned types included); throws
     * std::bad_alloc (std::bad_array_new_length on overflow). */
    T *allocate(std::size_t n)
    {
        if (n > max_size())
            detail::throw_bad_array_length("scalloc::allocator::allocate", h_, n);
        std::size_t bytes = n * sizeof(T);
        void *p = detail::allocate_aligned(h_, bytes, alignof(T));
        if (p == nullptr)
            detail::throw_bad_alloc("scalloc::allocator::allocate", h_, bytes);
        return static_cast<T *>(p);
    }

    void deallocate(T *p, std::size_t) noexcept { sc_free(h_, p); }

    std::size_t max_size() const noexcept { return std::numeric_limits<std::size_t>::max() / sizeof(T); }

    /* The heap's handle. */
    sc_heap_t *get() const noexcept { return h_; }

private:
    sc_heap_t *h_;
};

template <class T, class U>
bool operator==(const allocator<T> &a, const allocator<U> &b) noexcept
{
    return a.get() == b.get();
}

template <class T, class U>
bool operator!=(const allocator<T> &a, const allocator<U> &b) noexcept
{
    return a.get() != b.get();
}

/* ------------------------------------------------------------------------ */
/* resource                                                                 */
/* ------------------------------------------------------------------------ */

#if SCALLOC_HPP_HAS_PMR
/* A std::pmr::memory_resource whose blocks come from one heap: any
 * power-of-two alignment, any thread. Resources over the same heap compare
 * equal (so pmr containers move blocks between them without copying). It
 * holds only the handle: copies are cheap and equal. */
class resource final : public std::pmr::memory_resource {
public:
    explicit resource(heap &h) noexcept : h_(h.get()) {}
    explicit resource(sc_heap_t *h) noexcept : h_(h) {}
    resource(const resource &) noexcept = default;
    resource &operator=(const resource &) noexcept = default;

    /* The heap's handle. */
    sc_heap_t *get() const noexcept { return h_; }

protected:
    void *do_allocate(std::size_t bytes, std::size_t alignment) override
    {
        void *p = detail::allocate_aligned(h_, bytes, alignment);
        if (p == nullptr)
            detail::throw_bad_alloc("scalloc::resource::allocate", h_, bytes);
        return p;
    }

    void do_deallocate(void *p, std::size_t, std::size_t) override { sc_free(h_, p); }

    bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override
    {
        if (this == &other)
            return true;
#if SCALLOC_HPP_RTTI
        const resource *o = dynamic_cast<const resource *>(&other);
        return o != nullptr && o->h_ == h_;
#else
        return false;
#endif
    }

private:
    sc_heap_t *h_;
};
#endif /* SCALLOC_HPP_HAS_PMR */

} // namespace scalloc

#endif /* SCALLOC_SCALLOC_HPP */
