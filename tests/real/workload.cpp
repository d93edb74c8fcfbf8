// workload.cpp — a C++ workload for tests/real/cxx.sh: std::string, std::vector, std::map,
// std::unordered_map, shared_ptr and threads, so operator new/delete (sized and aligned) reach the
// preloaded malloc and free. Deterministic; prints checksums only.
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

struct alignas(64) Padded {
    uint64_t v[8];
};

static uint64_t work(unsigned seed)
{
    uint64_t h = 0xcbf29ce484222325ull, x = seed * 2654435761u + 1;
    std::map<std::string, std::vector<int>> tree;
    std::unordered_map<uint64_t, std::shared_ptr<std::string>> table;
    std::vector<std::unique_ptr<Padded>> padded;
    for (int i = 0; i < 60000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        std::string key = "k" + std::to_string(x % 5000);
        tree[key].push_back(i);
        table[x % 20000] = std::make_shared<std::string>(1 + x % 300, char('a' + i % 26));
        if (i % 7 == 0) {
            padded.push_back(std::make_unique<Padded>());
            padded.back()->v[0] = x;
        }
        if (i % 5 == 0)
            table.erase((x >> 7) % 20000);
    }
    for (auto &kv : tree)
        h = mix(h, kv.first.size() * 131 + kv.second.size());
    for (auto &p : padded) {
        h = mix(h, p->v[0]);
        if (reinterpret_cast<uintptr_t>(p.get()) % 64 != 0)
            h = 0; // a misaligned over-aligned new changes the checksum
    }
    uint64_t sizes = 0;
    for (auto &kv : table)
        sizes += kv.second->size();
    return mix(h, sizes * 1000003 + table.size());
}

int main()
{
    uint64_t results[4];
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; t++)
        threads.emplace_back([t, &results] { results[t] = work(t + 1); });
    for (auto &t : threads)
        t.join();
    for (unsigned t = 0; t < 4; t++)
        std::printf("thread %u: %016llx\n", t, static_cast<unsigned long long>(results[t]));
    std::printf("main: %016llx\n", static_cast<unsigned long long>(work(99)));
    return 0;
}
