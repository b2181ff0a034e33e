/*
 * scalloc.hpp without exceptions and without RTTI (this file is built with
 * -fno-exceptions -fno-rtti; tests/cpp/CMakeLists.txt).
 *
 * Contract lines checked here:
 *  - the header compiles, and heap, allocator and resource work, with
 *    containers over them                                    [works_without_exceptions]
 *  - resource equality falls back to identity without RTTI    [resource_equality_without_rtti]
 *  - every failure that would throw prints one clear line on stderr and
 *    aborts: an allocator or resource at the heap's limit, heap::alloc,
 *    heap creation with a bad config                         [failure_aborts_with_message]
 */
#include <scalloc/scalloc.hpp>

#include "cpp_test.hpp"

#include <csignal>
#include <map>
#include <memory_resource>
#include <string>
#include <vector>

#if SCALLOC_HPP_EXCEPTIONS || SCALLOC_HPP_RTTI
#error "test_cpp_noexcept must be built with -fno-exceptions -fno-rtti"
#endif

CPP_TEST(works_without_exceptions)
{
    scalloc::heap h;
    std::vector<int, scalloc::allocator<int>> v(h);
    for (int i = 0; i < 10000; i++)
        v.push_back(i);
    CHECK(h.owns(v.data()) && v[9999] == 9999);

    scalloc::resource r(h);
    std::pmr::map<int, std::pmr::string> m(&r);
    for (int i = 0; i < 100; i++)
        m.emplace(i, std::pmr::string(50, 'x'));
    for (const auto &kv : m)
        CHECK(h.owns(&kv) && h.owns(kv.second.data()));

    std::pmr::memory_resource &mr = r;
    void *p = mr.allocate(100, 4096);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 4096 == 0 && h.owns(p));
    mr.deallocate(p, 100, 4096);
    auto *s = h.new_object<std::pmr::string>(80, 'y', &r);
    CHECK(h.owns(s) && h.owns(s->data()));
}

CPP_TEST(resource_equality_without_rtti)
{
    scalloc::heap h;
    scalloc::resource a(h), b(h);
    CHECK(a == a);
    /* Without dynamic_cast another resource cannot be told apart from a
     * foreign one: unequal, which only makes pmr moves copy. */
    CHECK(a != b);
    std::pmr::vector<int> va(&a), vb(&b);
    va.assign(100, 1);
    vb = std::move(va);
    CHECK(vb.size() == 100 && h.owns(vb.data()));
}

namespace {

/* Runs fn in a child with stderr into a pipe; returns what it wrote, and
 * whether it died of SIGABRT. */
std::string run_expecting_abort(void (*fn)(), bool &aborted)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        fn();
        _exit(0); /* not reached if fn aborts as it must */
    }
    close(fds[1]);
    std::string out;
    char buf[512];
    ssize_t got;
    while ((got = read(fds[0], buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(got));
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    return out;
}

sc_heap_config_t limited()
{
    sc_heap_config_t cfg{};
    cfg.name = "limited";
    cfg.limit_bytes = 2u << 20;
    return cfg;
}

void grow_vector()
{
    scalloc::heap h{limited()};
    std::vector<char, scalloc::allocator<char>> v(h);
    for (std::size_t i = 0; i < (64u << 20); i++)
        v.push_back('a');
}

void grow_pmr()
{
    scalloc::heap h{limited()};
    scalloc::resource r(h);
    std::pmr::vector<std::pmr::string> v(&r);
    for (std::size_t i = 0; i < (1u << 20); i++)
        v.emplace_back(100, 'b');
}

void heap_alloc()
{
    scalloc::heap h{limited()};
    (void)h.alloc(16u << 20);
}

void bad_config()
{
    sc_heap_config_t cfg{};
    cfg.name = "bad";
    cfg.reuse_threshold = 200;
    scalloc::heap h(cfg);
}

} // namespace

CPP_TEST(failure_aborts_with_message)
{
    struct expectation {
        void (*fn)();
        const char *message;
    };
    const expectation cases[] = {
        {grow_vector, "scalloc: scalloc::allocator::allocate(heap \"limited\", "},
        {grow_pmr, "scalloc: scalloc::resource::allocate(heap \"limited\", "},
        {heap_alloc, "scalloc: scalloc::heap::alloc(heap \"limited\", 16777216 bytes) failed: Cannot allocate memory; aborting"},
        {bad_config, "scalloc: sc_heap_create(\"bad\") failed: Invalid argument; aborting"},
    };
    for (const expectation &e : cases) {
        bool aborted = false;
        std::string err = run_expecting_abort(e.fn, aborted);
        CHECKF(aborted, "expected SIGABRT, stderr: %s", err.c_str());
        CHECKF(err.find(e.message) != std::string::npos, "expected \"%s\" on stderr, got \"%s\"", e.message,
               err.c_str());
        /* One line, ending the message (valgrind may add its own lines
         * after it; the message itself has one newline). */
        std::size_t at = err.find(e.message);
        std::size_t nl = err.find('\n', at);
        CHECK(nl != std::string::npos && err.find("aborting", at) < nl);
        cpptest::log(err.substr(at, nl - at));
    }
}

CPP_TEST_MAIN()
