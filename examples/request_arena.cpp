/*
 * request_arena — a small multi-threaded request handler in C++ whose
 * per-request state lives in a heap of its own, dropped whole when the
 * reply is out.
 *
 *   main: builds the requests ──> 4 workers, each request:
 *                                   scalloc::heap request;           (a fresh heap)
 *                                   scalloc::resource r(request);
 *                                   state *s = request.new_object<state>(&r);
 *                                   parse into std::pmr maps, vectors, strings
 *                                   compute, copy the reply out
 *                                 } ~heap: every block at once, no ~state
 *   main: checks every reply, frees them (allocated by the workers)
 *
 * What it shows:
 *   - the bulk-reclamation idiom: the request's containers are never
 *     destructed; no destructor runs (an audit type counts them: zero) and
 *     no block is freed one by one, yet nothing leaks: each request heap's
 *     memory goes back to the OS when it is dropped;
 *   - std::pmr containers nested three deep (a map of strings to vectors
 *     of strings) all landing in the request heap through one
 *     scalloc::resource;
 *   - a long-lived heap for replies through scalloc::allocator<char>:
 *     allocated by the workers, freed by the main thread.
 *
 * Checks: every reply against the answer known from how its request was
 * generated (not by parsing it again); each request heap's statistics
 * before the drop; the process's resident memory after all the requests
 * against what the request heaps had committed; the reply heap empty at
 * the end. Exit status 0 means every check passed.
 */
#include <scalloc/scalloc.hpp>

#include <algorithm>
#include <charconv>
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory_resource>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <unistd.h>

namespace {

constexpr unsigned num_workers = 4;
constexpr unsigned num_requests = 480;

std::atomic<unsigned> failures{0};

void check(bool ok, const char *what, unsigned id)
{
    if (!ok) {
        failures.fetch_add(1, std::memory_order_relaxed);
        std::fprintf(stderr, "request_arena: check failed: %s (request %u)\n", what, id);
    }
}

/* ------------------------------------------------------------------------ */
/* Requests and their known answers                                         */
/* ------------------------------------------------------------------------ */

std::uint64_t mix64(std::uint64_t &state)
{
    std::uint64_t z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

const char *const vocabulary[] = {
    "allocator", "arena",   "block", "cache",  "destroy", "frontend", "heap",   "isolation",
    "limit",     "memory",  "page",  "pool",   "region",  "remote",   "reset",  "resident",
    "span",      "thread",  "trim",  "virtual",
};
constexpr unsigned vocabulary_size = sizeof vocabulary / sizeof vocabulary[0];

/* A request as the client sends it, and the reply it must get. */
struct request {
    std::string text;
    std::string expected;
};

/* op=sum: a list of numbers; reply: count, sum, maximum. */
request make_sum(unsigned id, std::uint64_t &rng)
{
    unsigned n = 500 + static_cast<unsigned>(mix64(rng) % 1500);
    std::string text = "id=" + std::to_string(id) + "&op=sum&values=";
    std::uint64_t sum = 0, max = 0;
    for (unsigned i = 0; i < n; i++) {
        std::uint64_t v = mix64(rng) % 1000000;
        sum += v;
        max = std::max(max, v);
        text += (i ? "," : "") + std::to_string(v);
    }
    return {text, "count=" + std::to_string(n) + " sum=" + std::to_string(sum) + " max=" + std::to_string(max)};
}

/* op=count: words; reply: each word that occurs with its count, in
 * alphabetical order. */
request make_count(unsigned id, std::uint64_t &rng)
{
    unsigned counts[vocabulary_size] = {};
    unsigned n = 250 + static_cast<unsigned>(mix64(rng) % 1000);
    std::string text = "id=" + std::to_string(id) + "&op=count&text=";
    for (unsigned i = 0; i < n; i++) {
        unsigned w = static_cast<unsigned>(mix64(rng) % vocabulary_size);
        counts[w]++;
        text += (i ? "+" : "") + std::string(vocabulary[w]);
    }
    std::string expected;
    for (unsigned w = 0; w < vocabulary_size; w++) /* the vocabulary is sorted */
        if (counts[w] != 0)
            expected += (expected.empty() ? "" : " ") + std::string(vocabulary[w]) + ":" + std::to_string(counts[w]);
    return {text, expected};
}

/* op=group: words with a numeric suffix ("heap-17"); reply: per word,
 * how many distinct suffixes it came with, and the largest. */
request make_group(unsigned id, std::uint64_t &rng)
{
    std::map<unsigned, std::map<unsigned, bool>> seen;
    unsigned n = 150 + static_cast<unsigned>(mix64(rng) % 500);
    std::string text = "id=" + std::to_string(id) + "&op=group&items=";
    for (unsigned i = 0; i < n; i++) {
        unsigned w = static_cast<unsigned>(mix64(rng) % vocabulary_size);
        unsigned suffix = static_cast<unsigned>(mix64(rng) % 300);
        seen[w][suffix] = true;
        text += (i ? "," : "") + std::string(vocabulary[w]) + "-" + std::to_string(suffix);
    }
    std::string expected;
    for (const auto &ws : seen)
        expected += (expected.empty() ? "" : " ") + std::string(vocabulary[ws.first]) + ":" +
                    std::to_string(ws.second.size()) + "/" + std::to_string(ws.second.rbegin()->first);
    return {text, expected};
}

request make_request(unsigned id)
{
    std::uint64_t rng = 0x5ca11ac0ull * (id + 1);
    switch (id % 3) {
    case 0:
        return make_sum(id, rng);
    case 1:
        return make_count(id, rng);
    default:
        return make_group(id, rng);
    }
}

/* ------------------------------------------------------------------------ */
/* The handler: everything per request lives in the request heap           */
/* ------------------------------------------------------------------------ */

std::atomic<unsigned> audit_destructors{0};

/* A record the handler keeps per parameter. Its destructor counts, to show
 * that dropping the heap runs none. */
struct audit_entry {
    audit_entry(std::size_t o, std::size_t l) : offset(o), length(l) {}
    ~audit_entry() { audit_destructors.fetch_add(1, std::memory_order_relaxed); }
    audit_entry(const audit_entry &) = default;
    audit_entry &operator=(const audit_entry &) = default;
    std::size_t offset, length;
};

/* All of a request's state. Built with new_object in the request heap and
 * never destructed. The allocator-aware members take the resource, and
 * hand it on to the strings and vectors inside them (uses-allocator
 * construction), so every block lands in the request heap. */
struct state {
    explicit state(std::pmr::memory_resource *r)
        : params(r), audit(r), numbers(r), counts(r), groups(r), reply(r)
    {
    }
    /* std::less<> lets string_views look keys up without building a
     * string. */
    std::pmr::map<std::pmr::string, std::pmr::string, std::less<>> params;
    /* A deque: growing it never moves (and so never destroys) entries. */
    std::pmr::deque<audit_entry> audit;
    std::pmr::vector<std::uint64_t> numbers;
    std::pmr::unordered_map<std::pmr::string, unsigned> counts;
    std::pmr::map<std::pmr::string, std::pmr::vector<std::pmr::string>> groups;
    std::pmr::string reply;
};

/* Splits s at sep into pieces, each made with make(piece). */
template <class F>
void split(std::string_view s, char sep, F make)
{
    std::size_t start = 0;
    while (start <= s.size()) {
        std::size_t end = s.find(sep, start);
        if (end == std::string_view::npos)
            end = s.size();
        make(s.substr(start, end - start));
        start = end + 1;
    }
}

/* The value of parameter key, empty if absent. */
std::string_view param(const state &st, std::string_view key)
{
    auto it = st.params.find(key);
    return it == st.params.end() ? std::string_view() : std::string_view(it->second);
}

template <class T>
T to_number(std::string_view s)
{
    T v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

void handle(state &st, const std::string &text)
{
    std::string_view all(text);
    split(all, '&', [&](std::string_view kv) {
        std::size_t eq = kv.find('=');
        st.params.emplace(kv.substr(0, eq), eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1));
        st.audit.emplace_back(static_cast<std::size_t>(kv.data() - all.data()), kv.size());
    });
    std::string_view op = param(st, "op");
    char num[32];
    if (op == "sum") {
        split(param(st, "values"), ',', [&](std::string_view v) { st.numbers.push_back(to_number<std::uint64_t>(v)); });
        std::uint64_t sum = 0, max = 0;
        for (std::uint64_t v : st.numbers) {
            sum += v;
            max = std::max(max, v);
        }
        std::snprintf(num, sizeof num, "%zu", st.numbers.size());
        st.reply.append("count=").append(num);
        std::snprintf(num, sizeof num, "%" PRIu64, sum);
        st.reply.append(" sum=").append(num);
        std::snprintf(num, sizeof num, "%" PRIu64, max);
        st.reply.append(" max=").append(num);
    } else if (op == "count") {
        split(param(st, "text"), '+', [&](std::string_view w) { st.counts[std::pmr::string(w, st.reply.get_allocator())]++; });
        std::pmr::vector<std::pmr::string> words(st.reply.get_allocator());
        for (const auto &kv : st.counts)
            words.push_back(kv.first);
        std::sort(words.begin(), words.end());
        for (const std::pmr::string &w : words) {
            std::snprintf(num, sizeof num, "%u", st.counts[w]);
            st.reply.append(st.reply.empty() ? "" : " ").append(w).append(":").append(num);
        }
    } else if (op == "group") {
        split(param(st, "items"), ',', [&](std::string_view item) {
            std::size_t dash = item.rfind('-');
            st.groups[std::pmr::string(item.substr(0, dash), st.reply.get_allocator())].emplace_back(item.substr(dash + 1));
        });
        for (auto &kv : st.groups) {
            std::pmr::vector<unsigned> suffixes(st.reply.get_allocator());
            for (const std::pmr::string &s : kv.second)
                suffixes.push_back(to_number<unsigned>(s));
            std::sort(suffixes.begin(), suffixes.end());
            suffixes.erase(std::unique(suffixes.begin(), suffixes.end()), suffixes.end());
            std::snprintf(num, sizeof num, ":%zu/%u", suffixes.size(), suffixes.back());
            st.reply.append(st.reply.empty() ? "" : " ").append(kv.first).append(num);
        }
    } else {
        st.reply = "error: unknown op";
    }
}

/* Replies outlive their request heap: they go to a long-lived heap. */
using reply_string = std::basic_string<char, std::char_traits<char>, scalloc::allocator<char>>;

std::size_t resident_bytes()
{
    unsigned long size = 0, resident = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr)
        return 0;
    if (std::fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    std::fclose(f);
    return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

} // namespace

int main()
{
    std::vector<request> requests;
    requests.reserve(num_requests);
    for (unsigned id = 0; id < num_requests; id++)
        requests.push_back(make_request(id));

    sc_heap_config_t reply_cfg{};
    reply_cfg.name = "replies";
    scalloc::heap replies_heap(reply_cfg);
    scalloc::allocator<char> reply_alloc(replies_heap);
    /* Pre-sized: workers assign distinct slots, nothing reallocates. */
    std::vector<reply_string> replies(num_requests, reply_string(reply_alloc));

    std::size_t rss_before = resident_bytes();
    std::atomic<unsigned> next{0};
    std::atomic<std::size_t> committed_total{0}, blocks_total{0}, peak_committed{0};

    auto worker = [&] {
        for (;;) {
            unsigned id = next.fetch_add(1, std::memory_order_relaxed);
            if (id >= num_requests)
                return;
            sc_heap_config_t cfg{};
            cfg.name = "request";
            scalloc::heap request_heap(cfg);
            scalloc::resource r(request_heap);
            state *st = request_heap.new_object<state>(&r);
            handle(*st, requests[id].text);

            check(request_heap.owns(st) && request_heap.owns(st->reply.data()), "state in the request heap", id);
            for (const auto &kv : st->params)
                check(request_heap.owns(&kv) && request_heap.owns(kv.second.data()), "parameters in the request heap",
                      id);
            sc_heap_stats_t s = request_heap.stats();
            check(s.live_blocks > st->params.size(), "live blocks counted", id);
            committed_total.fetch_add(s.committed_bytes, std::memory_order_relaxed);
            blocks_total.fetch_add(s.live_blocks, std::memory_order_relaxed);
            std::size_t peak = peak_committed.load(std::memory_order_relaxed);
            while (s.committed_bytes > peak &&
                   !peak_committed.compare_exchange_weak(peak, s.committed_bytes, std::memory_order_relaxed))
                ;

            replies[id].assign(st->reply.data(), st->reply.size());
            /* No ~state, no per-block free: the heap goes whole. */
        }
    };
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < num_workers; w++)
        workers.emplace_back(worker);
    for (std::thread &t : workers)
        t.join();
    std::size_t rss_after = resident_bytes();

    /* Every reply, against the answer known from its generation. */
    for (unsigned id = 0; id < num_requests; id++) {
        check(std::string_view(replies[id].data(), replies[id].size()) == requests[id].expected, "reply", id);
        check(replies_heap.owns(replies[id].data()), "reply in the replies heap", id);
    }
    check(audit_destructors.load() == 0, "no destructor ran for dropped state", 0);

    /* The request heaps' memory went back: had it stayed, the process
     * would have grown by what they committed in all. */
    std::size_t grown = rss_after > rss_before ? rss_after - rss_before : 0;
    std::size_t committed = committed_total.load();
    std::printf("request_arena: %u requests on %u threads, %zu blocks in request heaps, never freed one by one\n",
                num_requests, num_workers, blocks_total.load());
    std::printf("request_arena: request heaps committed %.1f MiB in all (largest %.1f MiB); "
                "resident memory grew by %.1f MiB\n",
                committed / 1048576.0, peak_committed.load() / 1048576.0, grown / 1048576.0);
    check(committed > (64u << 20), "the requests used enough memory for the check to mean something", 0);
    check(grown < committed / 4, "resident memory returned after the request heaps were dropped", 0);

    /* Replies: allocated by the workers, freed here. */
    sc_heap_stats_t before_free = replies_heap.stats();
    check(before_free.live_blocks >= num_requests, "replies live in their heap", 0);
    replies.clear();
    replies.shrink_to_fit();
    sc_heap_stats_t after_free = replies_heap.stats();
    check(after_free.live_blocks == 0, "every reply freed", 0);
    std::printf("request_arena: replies heap: %zu blocks, %zu bytes live before the main thread freed them, %zu after\n",
                before_free.live_blocks, before_free.live_bytes, after_free.live_bytes);

    unsigned failed = failures.load();
    if (failed != 0) {
        std::fprintf(stderr, "request_arena: %u checks failed\n", failed);
        return 1;
    }
    std::printf("request_arena: all replies correct\n");
    return 0;
}
