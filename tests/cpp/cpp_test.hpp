/*
 * A small test runner for the C++ tests, in the spirit of the standalone
 * runner in tests/test_util.h (which is C and uses <stdatomic.h>, so C++
 * cannot include it).
 *
 * Why not Criterion: Debian's libcriterion-dev works from C++, but its
 * runner cannot start under ThreadSanitizer (see tests/CMakeLists.txt), and
 * under valgrind its worker processes would need their own valgrind. These
 * tests run under ASan, TSan and valgrind, so they bring this runner:
 *
 *   - each case runs in a forked child: a crash or a failed CHECK fails
 *     that case only, and every case starts with fresh allocator state;
 *   - CHECK and CHECKF work on any thread (they print and abort), so cases check
 *     inside the threads they start;
 *   - in AddressSanitizer builds, LeakSanitizer runs after every case, so a
 *     case that leaks libc memory fails (a forked child leaves with _exit,
 *     which skips the check LSan would do at exit);
 *   - `prog NAME...` runs the cases whose names contain a NAME;
 *     `--skip=NAME` leaves out the cases whose names contain NAME;
 *     `--no-fork` runs them in-process (debugger, valgrind); cases named
 *     xfail_* run only when named: they show that a failure is reported;
 *   - the exit status is non-zero if any case failed or none ran.
 */
#ifndef SCALLOC_CPP_TEST_HPP
#define SCALLOC_CPP_TEST_HPP

#include <scalloc/scalloc.h>

#include <chrono>
#include <cstdarg>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#if defined(SCALLOC_SANITIZE_ADDRESS)
#include <sanitizer/lsan_interface.h>
#endif

/* Whether any sanitizer runtime is linked in: cases that squeeze the
 * address space (setrlimit) cannot run beside a sanitizer's shadow. */
#if defined(SCALLOC_SANITIZE_ADDRESS) || defined(SCALLOC_SANITIZE_THREAD) || \
    defined(SCALLOC_SANITIZE_UNDEFINED)
#define CPP_TEST_SANITIZED 1
#else
#define CPP_TEST_SANITIZED 0
#endif

namespace cpptest {

struct test_case {
    const char *name;
    void (*fn)();
};

inline std::vector<test_case> &registry()
{
    static std::vector<test_case> cases;
    return cases;
}

struct registrar {
    registrar(const char *name, void (*fn)()) { registry().push_back({name, fn}); }
};

[[noreturn]] inline void check_failed(const char *file, int line, const char *cond, const std::string &msg)
{
    std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, cond, msg.empty() ? "" : ": ",
                 msg.c_str());
    std::fflush(stderr);
    std::abort();
}

/* printf-style message for a failed check. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
inline std::string
format(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

inline void log(const std::string &line)
{
    std::printf("[----] %s\n", line.c_str());
    std::fflush(stdout);
}

/* Runs fn(0) .. fn(n - 1) on n threads that all start work together (a
 * gate, not a sleep: each waits until every thread exists), and joins
 * them. */
inline void run_threads(unsigned n, const std::function<void(unsigned)> &fn)
{
    std::mutex m;
    std::condition_variable cv;
    unsigned arrived = 0;
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (unsigned i = 0; i < n; i++) {
        threads.emplace_back([&, i] {
            {
                std::unique_lock<std::mutex> lock(m);
                if (++arrived == n)
                    cv.notify_all();
                else
                    cv.wait(lock, [&] { return arrived == n; });
            }
            fn(i);
        });
    }
    for (std::thread &t : threads)
        t.join();
}

/* SCALLOC_TEST_SCALE (percent, as in tests/test_util.h) shortens loops
 * that only buy confidence, for valgrind and sanitizer runs. */
inline std::size_t scaled(std::size_t n, std::size_t floor)
{
    const char *s = std::getenv("SCALLOC_TEST_SCALE");
    long pct = s != nullptr && *s != '\0' ? std::strtol(s, nullptr, 10) : 100;
    if (pct < 1)
        pct = 1;
    std::size_t v = n / 100 * static_cast<std::size_t>(pct);
    return v < floor ? floor : v;
}

inline sc_heap_stats_t stats(sc_heap_t *h)
{
    sc_heap_stats_t s;
    std::memset(&s, 0, sizeof s);
    sc_heap_get_stats(h, &s);
    return s;
}

/* After a case: in ASan builds, whether LeakSanitizer finds a leak now. */
inline bool leaks_found()
{
#if defined(SCALLOC_SANITIZE_ADDRESS)
    return __lsan_do_recoverable_leak_check() != 0;
#else
    return false;
#endif
}

inline bool selected(const char *name, int argc, char **argv)
{
    bool any_filter = false;
    for (int i = 1; i < argc; i++) {
        if (std::strncmp(argv[i], "--skip=", 7) == 0 && std::strstr(name, argv[i] + 7) != nullptr)
            return false;
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        any_filter = true;
        if (std::strstr(name, argv[i]) != nullptr)
            return true;
    }
    return !any_filter && std::strncmp(name, "xfail_", 6) != 0;
}

inline int run(int argc, char **argv)
{
    bool fork_each = true;
    for (int i = 1; i < argc; i++)
        if (std::strcmp(argv[i], "--no-fork") == 0)
            fork_each = false;
    int failed = 0, ran = 0;
    for (const test_case &c : registry()) {
        if (!selected(c.name, argc, argv))
            continue;
        ran++;
        std::printf("[RUN ] %s\n", c.name);
        std::fflush(stdout);
        std::fflush(stderr);
        auto start = std::chrono::steady_clock::now();
        bool ok;
        if (!fork_each) {
            c.fn();
            ok = !leaks_found();
        } else {
            pid_t pid = fork();
            if (pid < 0) {
                std::perror("fork");
                return 1;
            }
            if (pid == 0) {
                c.fn();
                int rc = 0;
                if (leaks_found()) {
                    std::fprintf(stderr, "%s: LeakSanitizer found leaks after the case\n", c.name);
                    rc = 3;
                }
                std::fflush(stdout);
                std::fflush(stderr);
                _exit(rc);
            }
            int status = 0;
            while (waitpid(pid, &status, 0) < 0)
                ;
            ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (!ok && WIFSIGNALED(status))
                std::printf("[----] %s: killed by signal %d\n", c.name, WTERMSIG(status));
            else if (!ok)
                std::printf("[----] %s: exit status %d\n", c.name, WEXITSTATUS(status));
        }
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("[%s] %s (%.2fs)\n", ok ? "PASS" : "FAIL", c.name, secs);
        std::fflush(stdout);
        failed += !ok;
    }
    std::printf("[====] %d ran, %d passed, %d failed\n", ran, ran - failed, failed);
    if (ran == 0) {
        std::printf("no test case matched\n");
        return 1;
    }
    return failed != 0 ? 1 : 0;
}

} // namespace cpptest

#define CPP_TEST(name)                                                                         \
    static void cpptest_case_##name();                                                         \
    static const cpptest::registrar cpptest_registrar_##name(#name, cpptest_case_##name);      \
    static void cpptest_case_##name()

#define CPP_TEST_MAIN()                                                                        \
    int main(int argc, char **argv) { return cpptest::run(argc, argv); }

/* CHECK(cond): on failure prints the place and the condition and aborts
 * (on any thread). CHECKF(cond, "printf format", args...) adds a message. */
#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            cpptest::check_failed(__FILE__, __LINE__, #cond, std::string());                   \
    } while (0)

#define CHECKF(cond, ...)                                                                      \
    do {                                                                                       \
        if (!(cond))                                                                           \
            cpptest::check_failed(__FILE__, __LINE__, #cond, cpptest::format(__VA_ARGS__));    \
    } while (0)

/* CHECK_THROWS(Exception, statement): the statement throws Exception (or a
 * class derived from it). */
#define CHECK_THROWS(Exc, ...)                                                                 \
    do {                                                                                       \
        bool cpptest_thrown = false;                                                           \
        try {                                                                                  \
            __VA_ARGS__;                                                                       \
        } catch (const Exc &) {                                                                \
            cpptest_thrown = true;                                                             \
        }                                                                                      \
        if (!cpptest_thrown)                                                                   \
            cpptest::check_failed(__FILE__, __LINE__, #__VA_ARGS__, "did not throw " #Exc);    \
    } while (0)

#endif /* SCALLOC_CPP_TEST_HPP */
