// cxx_replace_array.cc — a program that replaces only the array forms of operator new and delete
// (new[](size_t), delete[](void *) and their aligned twins), as [new.delete.array] allows: the
// sized and nothrow array forms must reach them. Its new[] puts a header in front of the block,
// so a block freed anywhere but its own delete[] is an invalid free, and a block its delete[] did
// not make is caught by the magic word (found by review: the preload's own sized delete[] freed a
// header-less pointer and aborted; its nothrow new[] made a block whose delete[] then freed the 16
// bytes before it: an abort, or, with a replacement that keeps no magic word, a live neighbour
// freed without a word). Counts every call; exits non-zero on a failure. Passes on glibc alone.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#pragma GCC diagnostic ignored "-Wsized-deallocation"

static long news, deletes, news_al, deletes_al;
static const std::uint64_t MAGIC = 0x4152524159424c4bull;

void *operator new[](std::size_t n)
{
    auto *h = static_cast<std::uint64_t *>(std::malloc(n + 16));
    if (!h)
        throw std::bad_alloc();
    h[0] = MAGIC;
    h[1] = n;
    news++;
    return h + 2;
}

void operator delete[](void *p) noexcept
{
    if (!p)
        return;
    auto *h = static_cast<std::uint64_t *>(p) - 2;
    if (h[0] != MAGIC) {
        std::printf("FAIL: delete[] of a block this new[] did not make\n");
        std::exit(1);
    }
    h[0] = 0;
    deletes++;
    std::free(h);
}

void *operator new[](std::size_t n, std::align_val_t al)
{
    std::size_t a = static_cast<std::size_t>(al);
    char *raw = static_cast<char *>(std::aligned_alloc(a, ((n + a + a - 1) / a) * a));
    if (!raw)
        throw std::bad_alloc();
    auto *h = reinterpret_cast<std::uint64_t *>(raw + a) - 2;
    h[0] = MAGIC;
    h[1] = a;
    news_al++;
    return raw + a;
}

void operator delete[](void *p, std::align_val_t al) noexcept
{
    if (!p)
        return;
    auto *h = static_cast<std::uint64_t *>(p) - 2;
    if (h[0] != MAGIC) {
        std::printf("FAIL: aligned delete[] of a block this aligned new[] did not make\n");
        std::exit(1);
    }
    h[0] = 0;
    deletes_al++;
    std::free(static_cast<char *>(p) - static_cast<std::size_t>(al));
}

struct Counted { // a destructor: delete[] passes the size (sized delete[], with -fsized-deallocation)
    long v[3];
    Counted() { v[0] = 1; }
    ~Counted() { v[0] = 0; }
};

struct alignas(64) Wide { // over-aligned with a destructor: the sized aligned delete[]
    long v[3];
    Wide() { v[0] = 2; }
    ~Wide() { v[0] = 0; }
};

static void escape(void *p) { asm volatile("" : : "r"(p) : "memory"); }

int main()
{
    for (int i = 0; i < 200; i++) // past the thread's first blocks of the size
        escape(std::malloc(16));
    enum { ROUNDS = 100 };
    for (int i = 0; i < ROUNDS; i++) {
        Counted *c = new Counted[5];
        escape(c);
        delete[] c;
        char *nt = new (std::nothrow) char[16];
        escape(nt);
        delete[] nt;
        Wide *w = new Wide[3];
        escape(w);
        delete[] w;
    }
    std::printf("new[] %ld, delete[] %ld, aligned new[] %ld, aligned delete[] %ld\n", news, deletes, news_al,
                deletes_al);
    bool ok = news == 2 * ROUNDS && deletes == 2 * ROUNDS && news_al == ROUNDS && deletes_al == ROUNDS;
    std::printf(ok ? "cxx_replace_array: all checks passed\n" : "FAIL: calls did not reach the program's forms\n");
    return !ok;
}
