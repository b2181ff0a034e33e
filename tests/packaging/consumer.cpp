/*
 * A C++ program outside the scalloc tree that only sees the installed
 * package: it must compile against the installed scalloc.hpp (C++17) and
 * link against the installed library, found through pkg-config or
 * find_package. Exit status 0 means every step worked.
 */
#include <scalloc/scalloc.hpp>

#include <cstdio>
#include <map>
#include <memory_resource>
#include <string>
#include <thread>
#include <vector>

int main()
{
    scalloc::heap heap;
    std::vector<int, scalloc::allocator<int>> numbers(heap);

    /* Blocks allocated on other threads, all in the one heap. */
    scalloc::resource resource(heap);
    std::pmr::map<int, std::pmr::string> names(&resource);
    std::thread worker([&] {
        for (int i = 0; i < 1000; i++)
            numbers.push_back(i);
    });
    worker.join();
    for (int i = 0; i < 100; i++)
        names.emplace(i, std::pmr::string(40, static_cast<char>('a' + i % 26)));

    long sum = 0;
    for (int n : numbers)
        sum += n;
    bool ok = sum == 999L * 1000 / 2 && heap.owns(numbers.data());
    for (const auto &kv : names)
        ok = ok && heap.owns(kv.second.data()) && kv.second.size() == 40;
    if (!ok) {
        std::fprintf(stderr, "consumer_cpp: wrong contents or blocks outside the heap\n");
        return 1;
    }
    std::printf("consumer_cpp: scalloc %d.%d.%d ok, %zu blocks live in heap \"%s\"\n", SCALLOC_VERSION_MAJOR,
                SCALLOC_VERSION_MINOR, SCALLOC_VERSION_PATCH, heap.stats().live_blocks, heap.name());
    return 0;
}
