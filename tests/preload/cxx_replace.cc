// cxx_replace.cc — a program that replaces only the base forms of operator new and delete
// (new(size_t), delete(void *)), as the standard allows: every other form must reach them (array
// new calls new, sized, array and nothrow deletes call delete). Its new puts a 16-byte header in
// front of the block, so a block freed anywhere but its own delete is an invalid free (found by
// review: `delete obj`, a sized delete by default since C++14, went to the preload's). Counts
// every call; exits non-zero on a failure. Passes on glibc alone too.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>

#include "cxx_check.h"

// g++ warns that a program replacing delete(void *) should replace the sized form too: not
// needing to is what this test checks
#pragma GCC diagnostic ignored "-Wsized-deallocation"

static long news, deletes, live;
static const std::uint64_t MAGIC = 0x6c61627972696e74ull;

void *operator new(std::size_t n)
{
    auto *h = static_cast<std::uint64_t *>(std::malloc(n + 16));
    if (!h)
        throw std::bad_alloc();
    h[0] = MAGIC;
    h[1] = n;
    news++, live++;
    return h + 2;
}

void operator delete(void *p) noexcept
{
    if (!p)
        return;
    auto *h = static_cast<std::uint64_t *>(p) - 2;
    if (h[0] != MAGIC) {
        std::printf("FAIL: delete of a block this new did not make\n");
        std::exit(1);
    }
    h[0] = 0;
    deletes++, live--;
    std::free(h);
}

struct Node {
    Node *next;
    long v[5];
};



int main()
{
    // under Labyrinth the derived forms are the preload's (the base forms the program's): the
    // case under test
    const char *e = std::getenv("LAB_EXPECT_LABYRINTH");
    if (e && std::strcmp(e, "1") == 0) {
        for (const char *n : {"_ZdlPvm", "_Znam", "_ZdaPv"})
            CHECK(std::strstr(lib_of(n), "liblabyrinth") != nullptr);
        CHECK(std::strstr(lib_of("_Znwm"), "liblabyrinth") == nullptr);
    }
    Node *head = nullptr;
    for (int i = 0; i < 1000; i++) { // plain new, then sized delete (compiler-emitted)
        Node *n = new Node;
        n->next = head;
        head = n;
    }
    while (head) {
        Node *n = head->next;
        delete head;
        head = n;
    }
    CHECK(news == 1000 && deletes == 1000);
    for (int i = 0; i < 100; i++) { // array new and delete[] (sized or not)
        Node *a = new Node[3];
        char *c = new char[40];
        delete[] a;
        delete[] c;
    }
    CHECK(news == 1200 && deletes == 1200);
    Node *t = new (std::nothrow) Node; // nothrow new and delete
    CHECK(t != nullptr);
    ::operator delete(t, std::nothrow);
    char *u = new (std::nothrow) char[10];
    ::operator delete[](u, std::nothrow);
    ::operator delete(new Node, sizeof(Node)); // sized delete called directly
    ::operator delete[](new char[7], std::size_t(7));
    CHECK(news == 1204 && deletes == 1204);
    CHECK(live == 0);
    std::printf("news %ld deletes %ld live %ld\n", news, deletes, live);
    return failures ? 1 : 0;
}
