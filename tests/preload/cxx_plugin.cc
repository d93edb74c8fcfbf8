// cxx_plugin.cc — a C++ library that a C program loads with dlopen(RTLD_LOCAL), as Python loads an
// extension module: its C++ runtime is then not in the global scope (cxx_dlopen.c).
#include <cstddef>
#include <new>

void *volatile cxx_plugin_sink;

// 1 when new threw std::bad_alloc, 0 when it returned a block.
extern "C" int cxx_plugin_new_throws(std::size_t n)
{
    try {
        char *p = new char[n];
        cxx_plugin_sink = p;
        delete[] p;
        return 0;
    } catch (std::bad_alloc &) {
        return 1;
    }
}

// 1 when new (std::nothrow) returned NULL.
extern "C" int cxx_plugin_nothrow_null(std::size_t n)
{
    char *p = new (std::nothrow) char[n];
    cxx_plugin_sink = p;
    delete[] p;
    return p == nullptr;
}

// The same for an over-aligned type's nothrow new.
struct alignas(4096) cxx_plugin_page {
    char b[4096];
};
extern "C" int cxx_plugin_aligned_nothrow_null(std::size_t n)
{
    cxx_plugin_page *p = new (std::nothrow) cxx_plugin_page[n];
    cxx_plugin_sink = p;
    delete[] p;
    return p == nullptr;
}
