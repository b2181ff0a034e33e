/*
 * scalloc::allocator<T> (include/scalloc/scalloc.hpp) under the standard
 * containers.
 *
 * Contract lines checked here:
 *  - the traits a standard allocator needs; equal iff same heap, across
 *    rebinds and conversions                                 [allocator_traits_and_equality]
 *  - vector, map, unordered_map, string, deque, list keep every block in
 *    the heap (sc_heap_owns on every element and buffer; live blocks in
 *    sc_heap_get_stats) and give them all back             [containers_in_heap]
 *  - several threads fill containers on one heap at once, one shared
 *    container among them, and other threads destroy them (frees from
 *    other threads)                                          [containers_from_threads]
 *  - alignof(T) above 16 is honoured up to 4 KiB, in vector, list, map
 *    and deque nodes                                         [over_aligned_types]
 *  - move, swap and copy between containers of the same heap and of
 *    different heaps: the allocator propagates, blocks stay in the heap
 *    their allocator names, checked heaps see no foreign free
 *                                                            [move_swap_copy_*]
 *  - std::scoped_allocator_adaptor carries the heap into nested
 *    containers                                              [scoped_allocator_nested]
 *  - at a heap's limit_bytes allocation throws std::bad_alloc, containers
 *    keep their contents, and the heap works again once memory is freed;
 *    an overflowing count throws std::bad_array_new_length   [limit_throws_bad_alloc]
 */
#include <scalloc/scalloc.hpp>

#include "cpp_test.hpp"

#include <cinttypes>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <scoped_allocator>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace {

template <class T>
using alloc = scalloc::allocator<T>;
using sstring = std::basic_string<char, std::char_traits<char>, alloc<char>>;
template <class T>
using svector = std::vector<T, alloc<T>>;
template <class K, class V>
using smap = std::map<K, V, std::less<K>, alloc<std::pair<const K, V>>>;
template <class K, class V>
using sumap = std::unordered_map<K, V, std::hash<K>, std::equal_to<K>, alloc<std::pair<const K, V>>>;
template <class T>
using sdeque = std::deque<T, alloc<T>>;
template <class T>
using slist = std::list<T, alloc<T>>;

/* A string longer than any small-string buffer, so that it owns a heap
 * block, whose content follows from key. */
std::string expected_string(std::uint64_t key)
{
    char head[40];
    std::snprintf(head, sizeof head, "value-%" PRIu64 "-", key);
    return head + std::string(32 + key % 61, static_cast<char>('a' + key % 26));
}

sstring long_string(const alloc<char> &a, std::uint64_t key)
{
    std::string e = expected_string(key);
    return sstring(e.data(), e.size(), a);
}

/* Compares without allocating in the string's heap (which may be full). */
bool is_long_string(const sstring &s, std::uint64_t key)
{
    return std::string_view(s.data(), s.size()) == expected_string(key);
}

std::uint64_t value_of(std::uint64_t key) { return key * 0x9e3779b97f4a7c15ull ^ (key >> 3); }

/* One of each container, all on one heap. */
struct bundle {
    explicit bundle(sc_heap_t *h) : vec(h), map(h), umap(h), str(h), deq(h), lst(h) {}
    svector<std::uint64_t> vec;
    smap<std::uint64_t, sstring> map;
    sumap<std::uint64_t, std::uint64_t> umap;
    sstring str;
    sdeque<std::uint64_t> deq;
    slist<sstring> lst;
};

/* Keys base .. base + n - 1 into every container of b. */
void fill(bundle &b, std::uint64_t base, std::size_t n)
{
    alloc<char> a(b.str.get_allocator());
    for (std::uint64_t k = base; k < base + n; k++) {
        b.vec.push_back(value_of(k));
        b.map.emplace(k, long_string(a, k));
        b.umap.emplace(k, value_of(k));
        b.str.push_back(static_cast<char>('A' + k % 26));
        if (k % 2 == 0)
            b.deq.push_back(value_of(k));
        else
            b.deq.push_front(value_of(k));
        b.lst.push_back(long_string(a, k));
    }
}

/* Every element as fill left it, and every block in heap h. */
void verify(const bundle &b, sc_heap_t *h, std::uint64_t base, std::size_t n)
{
    CHECK(b.vec.size() == n && b.map.size() == n && b.umap.size() == n);
    CHECK(b.str.size() == n && b.deq.size() == n && b.lst.size() == n);
    CHECK(sc_heap_owns(h, b.vec.data()));
    CHECK(sc_heap_owns(h, b.str.data()));
    for (std::size_t i = 0; i < n; i++) {
        CHECK(b.vec[i] == value_of(base + i));
        CHECK(b.str[i] == static_cast<char>('A' + (base + i) % 26));
    }
    std::uint64_t k = base;
    for (const auto &kv : b.map) {
        CHECK(kv.first == k);
        CHECK(is_long_string(kv.second, k));
        CHECK(sc_heap_owns(h, &kv));
        CHECK(sc_heap_owns(h, kv.second.data()));
        k++;
    }
    for (const auto &kv : b.umap) {
        CHECK(kv.second == value_of(kv.first));
        CHECK(kv.first >= base && kv.first < base + n);
        CHECK(sc_heap_owns(h, &kv));
    }
    /* The deque: odd keys were pushed to the front, so it reads the odd
     * keys backwards and then the even keys forwards. */
    std::vector<std::uint64_t> expect;
    for (std::uint64_t j = base + n; j-- > base;)
        if (j % 2 != 0)
            expect.push_back(value_of(j));
    for (std::uint64_t j = base; j < base + n; j++)
        if (j % 2 == 0)
            expect.push_back(value_of(j));
    std::size_t i = 0;
    for (const std::uint64_t &v : b.deq) {
        CHECK(v == expect[i]);
        CHECK(sc_heap_owns(h, &v));
        i++;
    }
    k = base;
    for (const sstring &s : b.lst) {
        CHECK(is_long_string(s, k));
        CHECK(sc_heap_owns(h, &s));
        CHECK(sc_heap_owns(h, s.data()));
        k++;
    }
}

/* A lower bound on the blocks a filled bundle holds: one per map, list and
 * unordered_map node, one per long string, one buffer each for the vector,
 * the string and the deque. */
std::size_t min_blocks(std::size_t n) { return 5 * n + 3; }

sc_heap_config_t checked_config(const char *name)
{
    sc_heap_config_t cfg{};
    cfg.name = name;
    cfg.flags = SC_HEAP_CHECKED; /* every foreign or double free is caught */
    return cfg;
}

} // namespace

CPP_TEST(allocator_traits_and_equality)
{
    using A = alloc<int>;
    using traits = std::allocator_traits<A>;
    static_assert(std::is_same_v<traits::value_type, int>, "");
    static_assert(traits::propagate_on_container_copy_assignment::value, "");
    static_assert(traits::propagate_on_container_move_assignment::value, "");
    static_assert(traits::propagate_on_container_swap::value, "");
    static_assert(!traits::is_always_equal::value, "");
    static_assert(std::is_same_v<traits::rebind_alloc<double>, alloc<double>>, "");
    static_assert(std::is_nothrow_copy_constructible_v<A>, "");
    static_assert(std::is_nothrow_move_constructible_v<A>, "");
    static_assert(std::is_nothrow_constructible_v<A, const alloc<double> &>, "");

    scalloc::heap h1, h2;
    A a1(h1);
    A a1raw(h1.get());
    alloc<double> d1(a1);
    traits::rebind_alloc<char> c1(a1);
    CHECK(a1 == a1raw);
    CHECK(a1 == d1 && d1 == a1);
    CHECK(c1 == a1);
    CHECK(a1.get() == h1.get() && d1.get() == h1.get());
    A a2(h2);
    CHECK(a1 != a2);
    CHECK(!(a1 == a2));
    CHECK(d1 != a2);

    /* Copies keep the heap; copy construction of a container keeps it
     * too (select_on_container_copy_construction is the default). */
    A copy = a2;
    CHECK(copy == a2);
    CHECK(traits::select_on_container_copy_construction(a2) == a2);

    int *p = a1.allocate(0);
    CHECK(p != nullptr);
    a1.deallocate(p, 0);
    int *q = a1.allocate(10);
    CHECK(h1.owns(q) && !h2.owns(q));
    a1.deallocate(q, 10);
    CHECK(a1.max_size() == static_cast<std::size_t>(-1) / sizeof(int));
    CHECK(h1.stats().live_blocks == 0);
}

CPP_TEST(containers_in_heap)
{
    sc_heap_config_t cfg = checked_config("containers");
    scalloc::heap h(cfg);
    const std::size_t n = cpptest::scaled(3000, 200);
    {
        bundle b(h.get());
        fill(b, 1000, n);
        verify(b, h.get(), 1000, n);
        sc_heap_stats_t s = h.stats();
        CHECKF(s.live_blocks >= min_blocks(n), "%zu live blocks, at least %zu expected", s.live_blocks,
               min_blocks(n));
        CHECK(s.live_bytes >= n * (sizeof(std::uint64_t) * 3 + 32));

        /* Erasing gives blocks back one by one. */
        std::size_t before = h.stats().live_blocks;
        for (std::uint64_t k = 1000; k < 1000 + n / 2; k++) {
            b.map.erase(k);
            b.umap.erase(k);
        }
        CHECK(h.stats().live_blocks < before);
    }
    sc_heap_stats_t end = h.stats();
    CHECKF(end.live_blocks == 0, "%zu blocks left", end.live_blocks);
    CHECK(end.live_bytes == 0);
}

CPP_TEST(containers_from_threads)
{
    sc_heap_config_t cfg = checked_config("threads");
    scalloc::heap h(cfg);
    const unsigned threads = 8;
    const std::size_t n = cpptest::scaled(2000, 100);

    std::vector<std::unique_ptr<bundle>> bundles(threads);
    std::mutex shared_lock;
    slist<sstring> shared(h);
    smap<std::uint64_t, unsigned> shared_map(h);

    /* Each thread fills its own containers and, under a lock, two shared
     * ones, all at the same time on the same heap. */
    cpptest::run_threads(threads, [&](unsigned t) {
        bundles[t] = std::make_unique<bundle>(h.get());
        fill(*bundles[t], t * 1000000ull, n);
        alloc<char> a(h);
        for (std::uint64_t k = 0; k < n; k++) {
            sstring s = long_string(a, t * 1000000ull + k);
            std::lock_guard<std::mutex> lock(shared_lock);
            shared.push_back(std::move(s));
            shared_map.emplace(t * 1000000ull + k, t);
        }
    });
    CHECK(shared.size() == threads * n && shared_map.size() == threads * n);
    CHECK(h.stats().live_blocks >= threads * min_blocks(n));

    /* Thread t checks and destroys thread t+1's containers: every one of
     * their blocks is freed by a thread that did not allocate it. */
    cpptest::run_threads(threads, [&](unsigned t) {
        unsigned victim = (t + 1) % threads;
        verify(*bundles[victim], h.get(), victim * 1000000ull, n);
        bundles[victim].reset();
    });

    for (const sstring &s : shared)
        CHECK(h.owns(&s) && h.owns(s.data()));
    for (const auto &kv : shared_map)
        CHECK(kv.second == kv.first / 1000000ull);
    /* Frees from the main thread of blocks the workers allocated. */
    shared.clear();
    shared_map.clear();
    sc_heap_stats_t s = h.stats();
    CHECKF(s.live_blocks == 0, "%zu blocks left", s.live_blocks);
}

namespace {

template <std::size_t N>
struct alignas(N) aligned_t {
    std::size_t value;
    unsigned char pad[N / 2];
};

template <std::size_t N>
void check_alignment(scalloc::heap &h)
{
    using T = aligned_t<N>;
    static_assert(alignof(T) == N, "");
    auto aligned = [&](const void *p) {
        return reinterpret_cast<std::uintptr_t>(p) % N == 0 && h.owns(p);
    };
    const std::size_t n = 40;

    svector<T> vec(h);
    for (std::size_t i = 0; i < n; i++) {
        vec.push_back(T{i, {}});
        CHECKF(aligned(vec.data()), "vector of alignment %zu at %p", N, static_cast<void *>(vec.data()));
    }
    slist<T> lst(h);
    smap<std::size_t, T> map(h);
    sdeque<T> deq(h);
    for (std::size_t i = 0; i < n; i++) {
        lst.push_back(T{i, {}});
        map.emplace(i, T{i, {}});
        deq.push_front(T{i, {}});
    }
    std::size_t i = 0;
    for (const T &t : lst) {
        CHECKF(aligned(&t) && t.value == i, "list of alignment %zu", N);
        i++;
    }
    for (const auto &kv : map)
        CHECKF(aligned(&kv.second) && kv.second.value == kv.first, "map of alignment %zu", N);
    i = n;
    for (const T &t : deq) {
        CHECKF(aligned(&t) && t.value == --i, "deque of alignment %zu", N);
    }
    /* And the allocator alone, for a few counts. */
    alloc<T> a(h);
    for (std::size_t count : {std::size_t(0), std::size_t(1), std::size_t(3), std::size_t(100)}) {
        T *p = a.allocate(count);
        CHECK(aligned(p));
        a.deallocate(p, count);
    }
}

} // namespace

CPP_TEST(over_aligned_types)
{
    scalloc::heap h;
    check_alignment<32>(h);
    check_alignment<64>(h);
    check_alignment<128>(h);
    check_alignment<256>(h);
    check_alignment<512>(h);
    check_alignment<1024>(h);
    check_alignment<2048>(h);
    check_alignment<4096>(h);
    CHECK(h.stats().live_blocks == 0);
}

CPP_TEST(move_swap_copy_same_heap)
{
    sc_heap_config_t cfg = checked_config("same");
    scalloc::heap h(cfg);
    {
        svector<int> a(h), b(h);
        for (int i = 0; i < 1000; i++)
            a.push_back(i);
        const int *buffer = a.data();
        b = std::move(a);
        CHECK(b.data() == buffer); /* equal allocators: the buffer moves */
        CHECK(b.size() == 1000 && b[999] == 999);

        svector<int> c(h);
        c.push_back(-1);
        const int *cbuf = c.data();
        std::swap(b, c);
        CHECK(c.data() == buffer && b.data() == cbuf);

        smap<int, sstring> m1(h), m2(h);
        for (int i = 0; i < 100; i++)
            m1.emplace(i, long_string(alloc<char>(h), static_cast<std::uint64_t>(i)));
        const void *node = &*m1.begin();
        m2 = std::move(m1);
        CHECK(&*m2.begin() == node);

        sstring s1 = long_string(alloc<char>(h), 7);
        const char *sbuf = s1.data();
        sstring s2(std::move(s1));
        CHECK(s2.data() == sbuf);

        svector<int> copy(c);
        CHECK(copy.get_allocator() == c.get_allocator());
        CHECK(copy == c && copy.data() != c.data() && h.owns(copy.data()));
    }
    CHECK(h.stats().live_blocks == 0);
}

CPP_TEST(move_swap_copy_between_heaps)
{
    sc_heap_config_t ca = checked_config("A");
    sc_heap_config_t cb = checked_config("B");
    scalloc::heap ha(ca), hb(cb);
    {
        /* Move assignment: the allocator comes along (POCMA), so the
         * target takes the source's buffer and its heap; the target's old
         * buffer goes back to its own heap. */
        svector<int> va(ha), vb(hb);
        for (int i = 0; i < 500; i++) {
            va.push_back(i);
            vb.push_back(-i);
        }
        const int *abuf = va.data();
        vb = std::move(va);
        CHECK(vb.get_allocator() == alloc<int>(ha));
        CHECK(vb.data() == abuf && ha.owns(vb.data()));
        CHECK(hb.stats().live_blocks == 0);

        /* Swap: the allocators swap with the buffers (POCS). */
        svector<int> vc(hb);
        vc.assign(300, 7);
        const int *cbuf = vc.data();
        vb.swap(vc);
        CHECK(vb.get_allocator() == alloc<int>(hb) && vb.data() == cbuf && hb.owns(vb.data()));
        CHECK(vc.get_allocator() == alloc<int>(ha) && vc.data() == abuf && ha.owns(vc.data()));
        CHECK(vc.size() == 500 && vc[499] == 499 && vb.size() == 300);

        /* Copy assignment: the allocator comes along (POCCA): the copy
         * lives in the source's heap. */
        svector<int> vd(hb);
        vd.assign(10, 1);
        vd = vc;
        CHECK(vd.get_allocator() == alloc<int>(ha) && ha.owns(vd.data()) && vd == vc);

        /* Copy and move construction with an explicit allocator put the
         * elements in that allocator's heap. */
        svector<int> ve(vc, alloc<int>(hb));
        CHECK(hb.owns(ve.data()) && ve == vc);
        svector<int> vf(std::move(vd), alloc<int>(hb));
        CHECK(hb.owns(vf.data()) && vf == vc);

        /* Node containers: nodes keep their address (and heap) across a
         * move or swap between heaps. */
        smap<int, sstring> ma(ha), mb(hb);
        sumap<int, int> ua(ha), ub(hb);
        slist<sstring> la(ha), lb(hb);
        sdeque<int> da(ha), db(hb);
        for (int i = 0; i < 200; i++) {
            ma.emplace(i, long_string(alloc<char>(ha), static_cast<std::uint64_t>(i)));
            mb.emplace(-i, long_string(alloc<char>(hb), static_cast<std::uint64_t>(i) + 1000));
            ua.emplace(i, i);
            ub.emplace(i, -i);
            la.push_back(long_string(alloc<char>(ha), static_cast<std::uint64_t>(i)));
            lb.push_back(long_string(alloc<char>(hb), static_cast<std::uint64_t>(i)));
            da.push_back(i);
            db.push_front(i);
        }
        const void *ma_node = &*ma.begin();
        mb = std::move(ma);
        CHECK(&*mb.begin() == ma_node && ha.owns(mb.begin()->second.data()));
        ub = std::move(ua);
        for (const auto &kv : ub)
            CHECK(ha.owns(&kv) && kv.first == kv.second);
        const void *la_node = &la.front();
        const void *lb_node = &lb.front();
        la.swap(lb);
        CHECK(&la.front() == lb_node && &lb.front() == la_node);
        CHECK(hb.owns(&la.front()) && ha.owns(&lb.front()));
        da.swap(db);
        CHECK(hb.owns(&da.front()) && ha.owns(&db.front()) && da.front() == 199);

        /* Strings, long and short. */
        sstring sa = long_string(alloc<char>(ha), 1);
        sstring sb(hb);
        sb = std::move(sa);
        CHECK(ha.owns(sb.data()) && is_long_string(sb, 1));
        sstring sc{alloc<char>(hb)};
        sc = sb; /* POCCA: the copy lives in heap A */
        CHECK(ha.owns(sc.data()) && sc == sb);
        CHECK(sc.get_allocator() == alloc<char>(ha));
    }
    /* Every block went back to the heap it came from (a free into the
     * wrong one would have been reported by these checked heaps). */
    CHECKF(ha.stats().live_blocks == 0, "A: %zu left", ha.stats().live_blocks);
    CHECKF(hb.stats().live_blocks == 0, "B: %zu left", hb.stats().live_blocks);
}

CPP_TEST(scoped_allocator_nested)
{
    scalloc::heap h;
    /* scoped_allocator_adaptor hands the heap on to the elements: keys,
     * the vectors and the strings inside them all land in h. */
    using inner_string = sstring;
    using inner_vec = std::vector<inner_string, std::scoped_allocator_adaptor<alloc<inner_string>>>;
    using outer_alloc = std::scoped_allocator_adaptor<alloc<std::pair<const inner_string, inner_vec>>>;
    using outer_map = std::map<inner_string, inner_vec, std::less<inner_string>, outer_alloc>;
    {
        outer_map m{outer_alloc(alloc<std::pair<const inner_string, inner_vec>>(h))};
        for (int i = 0; i < 50; i++) {
            char key[64];
            std::snprintf(key, sizeof key, "a key long enough for a heap block, number %d", i);
            auto it = m.emplace(std::piecewise_construct, std::forward_as_tuple(key), std::forward_as_tuple()).first;
            for (int j = 0; j < 10; j++)
                it->second.emplace_back(40 + static_cast<std::size_t>(j), static_cast<char>('a' + j));
        }
        CHECK(m.size() == 50);
        for (const auto &kv : m) {
            CHECK(h.owns(&kv) && h.owns(kv.first.data()));
            CHECK(h.owns(kv.second.data()) && kv.second.size() == 10);
            for (const inner_string &s : kv.second)
                CHECK(h.owns(s.data()) && s.get_allocator() == alloc<char>(h));
        }
    }
    CHECK(h.stats().live_blocks == 0);
}

CPP_TEST(limit_throws_bad_alloc)
{
    sc_heap_config_t cfg{};
    cfg.name = "limited";
    cfg.limit_bytes = 4u << 20;
    scalloc::heap h(cfg);
    alloc<std::uint64_t> a(h);

    /* A vector grows until its next buffer is over the limit; the failed
     * growth leaves it as it was (the strong guarantee). */
    svector<std::uint64_t> vec(h);
    bool thrown = false;
    std::size_t size_at_throw = 0;
    for (std::uint64_t i = 0; i < (64u << 20) / sizeof(std::uint64_t) && !thrown; i++) {
        try {
            vec.push_back(value_of(i));
        } catch (const std::bad_alloc &) {
            thrown = true;
            size_at_throw = static_cast<std::size_t>(i);
        }
    }
    CHECK(thrown);
    CHECK(vec.size() == size_at_throw);
    for (std::size_t i = 0; i < vec.size(); i++)
        CHECK(vec[i] == value_of(i));
    cpptest::log(cpptest::format("vector: bad_alloc at %zu elements (%zu bytes)", size_at_throw,
                                 size_at_throw * sizeof(std::uint64_t)));

    /* A map fills the rest node by node, until one node fails. */
    smap<std::uint64_t, sstring> map(h);
    thrown = false;
    std::uint64_t inserted = 0;
    while (!thrown) {
        try {
            map.emplace(inserted, long_string(alloc<char>(h), inserted));
            inserted++;
        } catch (const std::bad_alloc &) {
            thrown = true;
        }
        CHECK(inserted < (4u << 20)); /* bounded: the limit must stop it */
    }
    CHECK(map.size() == inserted);
    for (const auto &kv : map)
        CHECK(is_long_string(kv.second, kv.first));
    CHECK(h.stats().committed_bytes <= cfg.limit_bytes);

    /* Freed memory can be used again. */
    vec = svector<std::uint64_t>(h);
    map.clear();
    svector<std::uint64_t> again(h);
    again.resize((1u << 20) / sizeof(std::uint64_t), 5);
    CHECK(h.owns(again.data()) && again.back() == 5);

    /* Counts whose bytes overflow, and byte counts nothing can meet. */
    CHECK_THROWS(std::bad_array_new_length, (void)a.allocate(a.max_size() + 1));
    CHECK_THROWS(std::bad_alloc, (void)a.allocate(a.max_size() / 2));
    CHECK_THROWS(std::bad_alloc, (void)alloc<char>(h).allocate(8u << 20));
}

CPP_TEST_MAIN()
