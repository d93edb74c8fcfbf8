/* cxx_dlopen.c — C++ code in a library loaded with dlopen(RTLD_LOCAL) by a C program (a Python
 * extension module, a plugin): when its operator new fails, it must throw std::bad_alloc (or, for
 * the nothrow forms, return NULL), as its own runtime's operator would. Labyrinth's operators hand
 * a failure to the runtime's; dlsym(RTLD_NEXT) cannot see a runtime loaded locally, and the
 * process aborted ("no C++ runtime to throw std::bad_alloc"; found by review). */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "lab_check.h"

int main(int argc, char **argv)
{
    CHECK(argc > 1, "usage: cxx_dlopen PLUGIN");
    if (argc < 2)
        return lab_finish("cxx_dlopen");
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen: %s", dlerror());
    if (!h)
        return lab_finish("cxx_dlopen");
    int (*throws)(size_t) = (int (*)(size_t))dlsym(h, "cxx_plugin_new_throws");
    int (*nothrow)(size_t) = (int (*)(size_t))dlsym(h, "cxx_plugin_nothrow_null");
    int (*al_nothrow)(size_t) = (int (*)(size_t))dlsym(h, "cxx_plugin_aligned_nothrow_null");
    CHECK(throws && nothrow && al_nothrow, "the plugin's functions");
    if (throws && nothrow && al_nothrow) {
        SAY("new of 2^62 bytes in a library loaded with RTLD_LOCAL: bad_alloc, or NULL (nothrow)");
        CHECK(throws(1000) == 0, "new of 1000 bytes threw");
        CHECK(throws((size_t)1 << 62) == 1, "new of 2^62 bytes did not throw std::bad_alloc");
        CHECK(nothrow((size_t)1 << 62) == 1, "new (std::nothrow) of 2^62 bytes did not return NULL");
        CHECK(al_nothrow((size_t)1 << 50) == 1, "aligned new (std::nothrow) of 2^62 bytes did not return NULL");
        CHECK(nothrow(100) == 0, "new (std::nothrow) of 100 bytes returned NULL");
    }
    dlclose(h);
    return lab_finish("cxx_dlopen");
}
