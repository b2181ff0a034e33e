/*
 * Compiled, not run, by header_check.sh with every C++ compiler found, in
 * C++17 and C++20, with and without exceptions and RTTI, under
 * -Wall -Wextra -Wpedantic -Werror: the header must stay warning-free in
 * users' builds, whichever compiler they use. Everything here is used, so
 * that each template is instantiated and checked.
 */
#include <scalloc/scalloc.hpp>

#include <deque>
#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

template <class T>
using alloc = scalloc::allocator<T>;

struct alignas(64) wide {
    char bytes[64];
};

int use_everything();
int use_everything()
{
    scalloc::heap h;
    sc_heap_config_t cfg{};
    cfg.name = "check";
    scalloc::heap configured(cfg);
    scalloc::heap moved(std::move(configured));
    configured = std::move(moved);

    std::vector<int, alloc<int>> v(h);
    std::map<int, int, std::less<int>, alloc<std::pair<const int, int>>> m(h.get());
    std::unordered_map<int, int, std::hash<int>, std::equal_to<int>, alloc<std::pair<const int, int>>> u(h);
    std::basic_string<char, std::char_traits<char>, alloc<char>> s(h);
    std::deque<wide, alloc<wide>> d(h);
    std::list<int, alloc<int>> l(h);
    v.push_back(1);
    m[1] = 2;
    u[2] = 3;
    s.append(40, 'x');
    d.emplace_back();
    l.push_back(4);
    alloc<double> other(v.get_allocator());
    bool same = other == v.get_allocator() && !(other != alloc<char>(h));

#if SCALLOC_HPP_HAS_PMR
    scalloc::resource r(h), r2(h.get());
    std::pmr::vector<std::pmr::string> pv(&r);
    pv.emplace_back(50, 'y');
    same = same && r == r2;
    void *p = static_cast<std::pmr::memory_resource &>(r).allocate(10, 256);
    static_cast<std::pmr::memory_resource &>(r).deallocate(p, 10, 256);
#endif
    void *q = h.alloc(10);
    h.free(q);
    q = h.alloc(10, std::nothrow);
    h.free(q);
    q = h.aligned_alloc(128, 10);
    h.free(q);
    wide *w = h.new_object<wide>();
    h.delete_object(w);
    h.trim();
    sc_heap_stats_t st = h.stats();
    const char *name = h.name();
    bool owns = h.owns(q);
    scalloc::heap adopted = scalloc::heap::adopt(configured.release());
    adopted.reset();
    return static_cast<int>(st.live_blocks) + (same ? 1 : 0) + (owns ? 1 : 0) + name[0] + (adopted ? 1 : 0);
}
