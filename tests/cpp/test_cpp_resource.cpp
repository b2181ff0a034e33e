/*
 * scalloc::resource (include/scalloc/scalloc.hpp): a std::pmr
 * memory_resource over a heap.
 *
 * Contract lines checked here:
 *  - pmr vector, map, unordered_map, string, deque, list, nested through
 *    uses-allocator construction, keep every block in the heap and give
 *    them all back                                           [pmr_containers_in_heap]
 *  - several threads fill pmr containers on one resource at once, one
 *    shared container among them, other threads destroy them
 *                                                            [pmr_containers_from_threads]
 *  - do_allocate honours every power-of-two alignment (1 B .. 4 MiB, past
 *    the 2 MiB span), and over-aligned element types     [every_alignment]
 *  - do_is_equal: true for resources over the same heap, false otherwise;
 *    pmr containers move buffers between equal resources and copy
 *    between unequal ones                                    [is_equal_and_moves]
 *  - std::pmr pool and monotonic resources work on top of it, their
 *    chunks in the heap                                      [upstream_of_pmr_resources]
 *  - at limit_bytes allocation throws std::bad_alloc and the heap is
 *    usable again afterwards                                 [limit_throws_bad_alloc]
 */
#include <scalloc/scalloc.hpp>

#include "cpp_test.hpp"

#include <cinttypes>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

std::string expected_string(std::uint64_t key)
{
    char head[40];
    std::snprintf(head, sizeof head, "pmr-%" PRIu64 "-", key);
    return head + std::string(30 + key % 53, static_cast<char>('a' + key % 26));
}

/* Compares without allocating (the heap may be full). */
bool is_expected(const std::pmr::string &s, std::uint64_t key)
{
    return std::string_view(s.data(), s.size()) == expected_string(key);
}

/* One of each pmr container, all on one resource. */
struct bundle {
    explicit bundle(std::pmr::memory_resource *r) : vec(r), map(r), umap(r), str(r), deq(r), lst(r), nested(r) {}
    std::pmr::vector<std::uint64_t> vec;
    std::pmr::map<std::uint64_t, std::pmr::string> map;
    std::pmr::unordered_map<std::uint64_t, std::pmr::string> umap;
    std::pmr::string str;
    std::pmr::deque<std::uint64_t> deq;
    std::pmr::list<std::pmr::string> lst;
    /* Uses-allocator construction: keys, vectors and their strings get
     * the resource without being told. */
    std::pmr::map<std::pmr::string, std::pmr::vector<std::pmr::string>> nested;
};

void fill(bundle &b, std::uint64_t base, std::size_t n)
{
    for (std::uint64_t k = base; k < base + n; k++) {
        std::string e = expected_string(k);
        b.vec.push_back(k * 3);
        b.map.emplace(k, e);
        b.umap.emplace(k, e);
        b.str.push_back(static_cast<char>('A' + k % 26));
        b.deq.push_back(k);
        b.lst.emplace_back(e);
        if (k % 8 == 0)
            b.nested[std::pmr::string(e)].emplace_back(e);
        else
            b.nested[std::pmr::string(expected_string(k & ~std::uint64_t(7)))].emplace_back(e);
    }
}

void verify(const bundle &b, const scalloc::heap &h, std::uint64_t base, std::size_t n)
{
    CHECK(b.vec.size() == n && b.map.size() == n && b.umap.size() == n);
    CHECK(b.str.size() == n && b.deq.size() == n && b.lst.size() == n);
    CHECK(h.owns(b.vec.data()) && h.owns(b.str.data()));
    for (std::size_t i = 0; i < n; i++)
        CHECK(b.vec[i] == (base + i) * 3 && b.deq[i] == base + i);
    std::uint64_t k = base;
    for (const auto &kv : b.map) {
        CHECK(kv.first == k && is_expected(kv.second, k));
        CHECK(h.owns(&kv) && h.owns(kv.second.data()));
        k++;
    }
    for (const auto &kv : b.umap)
        CHECK(is_expected(kv.second, kv.first) && h.owns(&kv) && h.owns(kv.second.data()));
    k = base;
    for (const std::pmr::string &s : b.lst) {
        CHECK(is_expected(s, k) && h.owns(&s) && h.owns(s.data()));
        k++;
    }
    std::size_t inner = 0;
    for (const auto &kv : b.nested) {
        CHECK(h.owns(&kv) && h.owns(kv.first.data()) && h.owns(kv.second.data()));
        CHECK(kv.second.get_allocator().resource() == b.nested.get_allocator().resource());
        for (const std::pmr::string &s : kv.second) {
            CHECK(h.owns(s.data()));
            inner++;
        }
    }
    CHECK(inner == n);
}

} // namespace

CPP_TEST(pmr_containers_in_heap)
{
    sc_heap_config_t cfg{};
    cfg.name = "pmr";
    cfg.flags = SC_HEAP_CHECKED;
    scalloc::heap h(cfg);
    scalloc::resource r(h);
    CHECK(r.get() == h.get());
    const std::size_t n = cpptest::scaled(3000, 200);
    {
        bundle b(&r);
        fill(b, 5000, n);
        verify(b, h, 5000, n);
        sc_heap_stats_t s = h.stats();
        /* At least a node or buffer per element of map, unordered_map,
         * list, plus their strings. */
        CHECKF(s.live_blocks >= 6 * n, "%zu live blocks for %zu elements", s.live_blocks, n);
    }
    CHECKF(h.stats().live_blocks == 0, "%zu left", h.stats().live_blocks);
}

CPP_TEST(pmr_containers_from_threads)
{
    sc_heap_config_t cfg{};
    cfg.name = "pmr-threads";
    cfg.flags = SC_HEAP_CHECKED;
    scalloc::heap h(cfg);
    scalloc::resource r(h);
    const unsigned threads = 8;
    const std::size_t n = cpptest::scaled(1500, 100);

    std::vector<std::unique_ptr<bundle>> bundles(threads);
    std::mutex shared_lock;
    std::pmr::unordered_map<std::uint64_t, std::pmr::string> shared(&r);

    cpptest::run_threads(threads, [&](unsigned t) {
        bundles[t] = std::make_unique<bundle>(&r);
        fill(*bundles[t], t * 1000000ull, n);
        for (std::uint64_t k = 0; k < n; k++) {
            std::lock_guard<std::mutex> lock(shared_lock);
            shared.emplace(t * 1000000ull + k, expected_string(t * 1000000ull + k));
        }
    });
    CHECK(shared.size() == threads * n);

    /* Other threads check and destroy: frees from a thread that did not
     * allocate. */
    cpptest::run_threads(threads, [&](unsigned t) {
        unsigned victim = (t + 3) % threads;
        verify(*bundles[victim], h, victim * 1000000ull, n);
        bundles[victim].reset();
    });
    for (const auto &kv : shared)
        CHECK(is_expected(kv.second, kv.first) && h.owns(kv.second.data()));
    /* Swapped with an empty map, the temporary takes the bucket array
     * with it (clear() alone keeps it). */
    shared.clear();
    std::pmr::unordered_map<std::uint64_t, std::pmr::string>(&r).swap(shared);
    CHECKF(h.stats().live_blocks == 0, "%zu left", h.stats().live_blocks);
}

namespace {

template <std::size_t N>
struct alignas(N) aligned_t {
    std::size_t value;
};

template <std::size_t N>
void check_pmr_alignment(scalloc::resource &r, const scalloc::heap &h)
{
    std::pmr::vector<aligned_t<N>> v(&r);
    std::pmr::list<aligned_t<N>> l(&r);
    for (std::size_t i = 0; i < 30; i++) {
        v.push_back(aligned_t<N>{i});
        l.push_back(aligned_t<N>{i});
    }
    CHECK(reinterpret_cast<std::uintptr_t>(v.data()) % N == 0 && h.owns(v.data()));
    for (const aligned_t<N> &e : l)
        CHECK(reinterpret_cast<std::uintptr_t>(&e) % N == 0 && h.owns(&e));
}

} // namespace

CPP_TEST(every_alignment)
{
    scalloc::heap h;
    scalloc::resource r(h);
    std::pmr::memory_resource &mr = r;
    /* Every power of two from 1 byte to 4 MiB (twice the span size), with
     * sizes below, at and above the alignment. */
    for (std::size_t align = 1; align <= (std::size_t(4) << 20); align *= 2) {
        for (std::size_t size : {std::size_t(1), align / 2 + 1, align, 3 * align + 5}) {
            void *p = mr.allocate(size, align);
            CHECKF(reinterpret_cast<std::uintptr_t>(p) % align == 0, "size %zu align %zu at %p", size, align, p);
            CHECK(h.owns(p));
            std::memset(p, 0x5a, size);
            mr.deallocate(p, size, align);
        }
    }
    check_pmr_alignment<32>(r, h);
    check_pmr_alignment<256>(r, h);
    check_pmr_alignment<1024>(r, h);
    check_pmr_alignment<4096>(r, h);
    CHECK(h.stats().live_blocks == 0);
}

CPP_TEST(is_equal_and_moves)
{
    scalloc::heap ha, hb;
    scalloc::resource ra1(ha), ra2(ha.get()), rb(hb);
    scalloc::resource copy = rb;
    CHECK(ra1 == ra1);
    CHECK(ra1 == ra2 && ra2 == ra1); /* two objects, one heap */
    CHECK(ra1.is_equal(ra2));
    CHECK(ra1 != rb);
    CHECK(copy == rb);
    CHECK(ra1 != *std::pmr::new_delete_resource());
    CHECK(*std::pmr::new_delete_resource() != ra1);
    std::pmr::monotonic_buffer_resource mono(&ra1);
    CHECK(!ra1.is_equal(mono));

    {
        /* Equal resources: move assignment takes the buffer. */
        std::pmr::vector<int> a(&ra1), b(&ra2);
        a.assign(1000, 3);
        const int *buffer = a.data();
        b = std::move(a);
        CHECK(b.data() == buffer);

        /* Unequal: polymorphic_allocator does not propagate, so the target
         * keeps its resource and copies into its own heap. */
        std::pmr::vector<int> c(&rb);
        c = std::move(b);
        CHECK(c.get_allocator().resource() == &rb);
        CHECK(c.data() != buffer && hb.owns(c.data()) && c.size() == 1000 && c[999] == 3);

        /* Move construction with a resource over the same heap steals,
         * over another heap copies. */
        std::pmr::string s1(expected_string(1), &ra1);
        const char *sbuf = s1.data();
        std::pmr::string s2(std::move(s1), &ra2);
        CHECK(s2.data() == sbuf);
        std::pmr::string s3(std::move(s2), &rb);
        CHECK(hb.owns(s3.data()) && is_expected(s3, 1));

        std::pmr::map<int, std::pmr::string> m1(&ra1), m2(&ra2), m3(&rb);
        for (int i = 0; i < 100; i++)
            m1.emplace(i, expected_string(static_cast<std::uint64_t>(i)));
        const void *node = &*m1.begin();
        m2 = std::move(m1);
        CHECK(&*m2.begin() == node);
        m3 = m2;
        for (const auto &kv : m3)
            CHECK(hb.owns(&kv) && hb.owns(kv.second.data()));
        /* Swap is defined for equal allocators only. */
        std::pmr::map<int, std::pmr::string> m4(&ra1);
        m4.swap(m2);
        CHECK(&*m4.begin() == node && m2.empty());
    }
    CHECK(ha.stats().live_blocks == 0 && hb.stats().live_blocks == 0);
}

CPP_TEST(upstream_of_pmr_resources)
{
    scalloc::heap h;
    scalloc::resource r(h);
    {
        std::pmr::synchronized_pool_resource pool(&r);
        std::pmr::monotonic_buffer_resource mono(&r);
        cpptest::run_threads(4, [&](unsigned t) {
            std::pmr::vector<std::pmr::string> v(&pool);
            for (std::uint64_t k = 0; k < 500; k++)
                v.emplace_back(expected_string(t * 1000 + k));
            for (std::uint64_t k = 0; k < 500; k++)
                CHECK(is_expected(v[k], t * 1000 + k) && h.owns(v[k].data()));
        });
        std::pmr::list<std::pmr::string> l(&mono);
        for (std::uint64_t k = 0; k < 500; k++)
            l.emplace_back(expected_string(k));
        for (const std::pmr::string &s : l)
            CHECK(h.owns(&s) && h.owns(s.data()));
        CHECK(h.stats().live_blocks > 0);
    }
    /* The pool and monotonic resources gave their chunks back. */
    CHECKF(h.stats().live_blocks == 0, "%zu left", h.stats().live_blocks);
}

CPP_TEST(limit_throws_bad_alloc)
{
    sc_heap_config_t cfg{};
    cfg.name = "pmr-limited";
    cfg.limit_bytes = 4u << 20;
    scalloc::heap h(cfg);
    scalloc::resource r(h);

    std::pmr::list<std::pmr::string> l(&r);
    bool thrown = false;
    std::uint64_t k = 0;
    while (!thrown) {
        try {
            l.emplace_back(expected_string(k));
            k++;
        } catch (const std::bad_alloc &) {
            thrown = true;
        }
        CHECK(k < (1u << 20)); /* the limit must stop it */
    }
    CHECK(l.size() == k);
    std::uint64_t j = 0;
    for (const std::pmr::string &s : l)
        CHECK(is_expected(s, j++));
    CHECK(h.stats().committed_bytes <= cfg.limit_bytes);
    cpptest::log(cpptest::format("bad_alloc after %" PRIu64 " strings", k));

    std::pmr::memory_resource &mr = r;
    CHECK_THROWS(std::bad_alloc, (void)mr.allocate(8u << 20, 64));
    l.clear();
    /* At default alignment. An over-aligned request of this size can
     * still fail here with nothing live: sc_aligned_alloc at the limit
     * does not first give back the pool's warm spans as sc_alloc does (a
     * library bug, reported with issue 15, not this layer's to test). */
    void *p = mr.allocate(1u << 20);
    CHECK(h.owns(p));
    mr.deallocate(p, 1u << 20);
}

CPP_TEST_MAIN()
