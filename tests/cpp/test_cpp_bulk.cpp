/*
 * Dropping a heap whole (include/scalloc/scalloc.hpp, "Dropping a heap
 * whole"): containers built in a heap are never destructed; the heap's
 * destructor (or reset) reclaims everything at once.
 *
 * In ASan builds the runner runs LeakSanitizer after every case, so "no
 * leak" is checked, not assumed; leak_check_is_live shows that the check
 * does catch a real leak.
 *
 * Contract lines checked here:
 *  - allocator containers (and the container objects themselves, made
 *    with new_object) filled from several threads, never destroyed, the
 *    heap dropped: no destructor runs, no leak         [drop_allocator_containers]
 *  - the same with std::pmr containers over scalloc::resource
 *                                                            [drop_pmr_containers]
 *  - reset() as the per-round drop of a long-lived heap: no destructor,
 *    committed memory does not grow round after round   [reset_rounds]
 *  - LeakSanitizer reports a real leak in this runner     [leak_check_is_live]
 */
#include <scalloc/scalloc.hpp>

#include "cpp_test.hpp"

#include <atomic>
#include <deque>
#include <list>
#include <map>
#include <memory_resource>
#include <string>
#include <unordered_map>
#include <vector>

#include <fcntl.h>

namespace {

template <class T>
using alloc = scalloc::allocator<T>;
using sstring = std::basic_string<char, std::char_traits<char>, alloc<char>>;

std::atomic<unsigned> destructors{0};

/* An element whose destructor would be counted if it ever ran. */
struct tracer {
    explicit tracer(std::uint64_t v) : value(v) {}
    tracer(const tracer &o) = default;
    tracer &operator=(const tracer &) = default;
    ~tracer() { destructors.fetch_add(1, std::memory_order_relaxed); }
    std::uint64_t value;
};

/* Everything one thread builds; lives in the heap itself. */
struct state {
    explicit state(sc_heap_t *h) : vec(h), map(h), umap(h), deq(h), lst(h), text(h) {}
    std::vector<tracer, alloc<tracer>> vec;
    std::map<std::uint64_t, sstring, std::less<std::uint64_t>, alloc<std::pair<const std::uint64_t, sstring>>> map;
    std::unordered_map<std::uint64_t, tracer, std::hash<std::uint64_t>, std::equal_to<std::uint64_t>,
                       alloc<std::pair<const std::uint64_t, tracer>>>
        umap;
    std::deque<tracer, alloc<tracer>> deq;
    std::list<sstring, alloc<sstring>> lst;
    sstring text;
};

void build(state &s, std::uint64_t base, std::size_t n)
{
    alloc<char> a(s.text.get_allocator());
    for (std::uint64_t k = base; k < base + n; k++) {
        s.vec.emplace_back(k);
        s.map.emplace(k, sstring(48 + k % 32, static_cast<char>('a' + k % 26), a));
        s.umap.emplace(k, tracer(k));
        s.deq.emplace_back(k);
        s.lst.emplace_back(40, 'x', a);
        s.text.append("some words ");
    }
}

} // namespace

CPP_TEST(drop_allocator_containers)
{
    const unsigned threads = 6;
    const std::size_t n = cpptest::scaled(3000, 200);
    unsigned before;
    {
        scalloc::heap h;
        std::vector<state *> states(threads);
        cpptest::run_threads(threads, [&](unsigned t) {
            states[t] = h.new_object<state>(h.get());
            build(*states[t], t * 100000ull, n);
        });
        before = destructors.load();
        std::size_t blocks = 0;
        for (unsigned t = 0; t < threads; t++) {
            const state &s = *states[t];
            CHECK(h.owns(&s) && h.owns(s.vec.data()) && h.owns(s.text.data()));
            CHECK(s.map.size() == n && s.lst.size() == n && s.umap.size() == n);
            for (const auto &kv : s.map)
                CHECK(h.owns(&kv) && h.owns(kv.second.data()));
            blocks += 4 * n;
        }
        sc_heap_stats_t st = h.stats();
        CHECKF(st.live_blocks >= blocks, "%zu live blocks, %zu expected at least", st.live_blocks, blocks);
        cpptest::log(cpptest::format("dropping %zu live blocks (%zu bytes) with the heap", st.live_blocks,
                                     st.live_bytes));
        /* The containers are never destructed: ~heap drops them all. */
    }
    CHECK(destructors.load() == before);
}

CPP_TEST(drop_pmr_containers)
{
    using nested_t = std::pmr::map<std::pmr::string, std::pmr::vector<std::pmr::string>>;
    const unsigned threads = 6;
    const std::size_t n = cpptest::scaled(2000, 200);
    {
        scalloc::heap h;
        scalloc::resource r(h);
        std::vector<nested_t *> maps(threads);
        std::vector<std::pmr::unordered_map<std::uint64_t, std::pmr::deque<tracer>> *> umaps(threads);
        std::vector<std::pmr::list<tracer> *> lists(threads);
        cpptest::run_threads(threads, [&](unsigned t) {
            maps[t] = h.new_object<nested_t>(&r);
            umaps[t] = h.new_object<std::pmr::unordered_map<std::uint64_t, std::pmr::deque<tracer>>>(&r);
            lists[t] = h.new_object<std::pmr::list<tracer>>(&r);
            char key[80];
            for (std::uint64_t k = 0; k < n; k++) {
                std::snprintf(key, sizeof key, "thread %u, key %llu, long enough for a block", t,
                              static_cast<unsigned long long>(k / 4));
                (*maps[t])[key].emplace_back(60, 'v');
                (*umaps[t])[k % 100].emplace_back(k);
                lists[t]->emplace_back(k);
            }
        });
        unsigned before = destructors.load();
        for (unsigned t = 0; t < threads; t++) {
            CHECK(h.owns(maps[t]) && lists[t]->size() == n);
            for (const auto &kv : *maps[t]) {
                CHECK(h.owns(kv.first.data()) && h.owns(kv.second.data()));
                for (const std::pmr::string &s : kv.second)
                    CHECK(h.owns(s.data()));
            }
            for (const auto &kv : *umaps[t])
                CHECK(h.owns(&kv) && h.owns(&kv.second.front()));
        }
        CHECK(h.stats().live_blocks > threads * n);
        CHECK(destructors.load() == before);
        /* ~heap: everything above goes at once. */
    }
}

CPP_TEST(reset_rounds)
{
    sc_heap_config_t cfg{};
    cfg.name = "rounds";
    cfg.reset_keep_bytes = 1u << 20;
    scalloc::heap h(cfg);
    const int rounds = static_cast<int>(cpptest::scaled(60, 10));
    std::size_t first_peak = 0, last_peak = 0;
    for (int round = 0; round < rounds; round++) {
        state *s = h.new_object<state>(h.get());
        build(*s, static_cast<std::uint64_t>(round) * 1000, 2000);
        CHECK(s->map.size() == 2000);
        std::size_t committed = h.stats().committed_bytes;
        if (round == 0)
            first_peak = committed;
        last_peak = committed;
        /* (Growing the vector destroyed moved-from elements; count from
         * here.) */
        unsigned before = destructors.load();
        h.reset(); /* *s is gone, never destructed */
        CHECK(destructors.load() == before);
        sc_heap_stats_t st = h.stats();
        CHECK(st.live_blocks == 0 && st.live_bytes == 0);
    }
    /* Each round needs the same memory: reset must have given it back or
     * kept it for reuse, not let it pile up. */
    CHECKF(last_peak <= first_peak + (1u << 20), "committed at the peak: round 1 %zu, round %d %zu",
           first_peak, rounds, last_peak);
}

#if defined(SCALLOC_SANITIZE_ADDRESS)
namespace {
/* The leaked pointer, hidden from LeakSanitizer's scan by a mask. */
std::uintptr_t hidden_leak;
constexpr std::uintptr_t mask = 0x5555555555555555ull;
} // namespace
#endif

CPP_TEST(leak_check_is_live)
{
#if defined(SCALLOC_SANITIZE_ADDRESS)
    hidden_leak = reinterpret_cast<std::uintptr_t>(new std::string(100, 'l')) ^ mask;
    /* LeakSanitizer prints a report for the leak it must find: keep it
     * out of the log. */
    std::fflush(stderr);
    int saved = dup(2);
    int devnull = open("/dev/null", O_WRONLY);
    CHECK(saved >= 0 && devnull >= 0);
    dup2(devnull, 2);
    bool found = cpptest::leaks_found();
    dup2(saved, 2);
    close(devnull);
    close(saved);
    CHECKF(found, "LeakSanitizer missed a leaked std::string");
    delete reinterpret_cast<std::string *>(hidden_leak ^ mask);
    /* With it freed, the runner's check after the case finds nothing. */
#else
    cpptest::log("skipped: not an AddressSanitizer build");
#endif
}

CPP_TEST_MAIN()
