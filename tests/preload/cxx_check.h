// cxx_check.h — what the C++ preload tests share: a check that counts failures (printed, not
// thrown: the test's own allocations stay few) and the file that defines a symbol.
#ifndef LAB_CXX_CHECK_H
#define LAB_CXX_CHECK_H

#include <dlfcn.h>

#include <cstdio>

static int failures;
#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            std::printf("FAIL line %d: %s\n", __LINE__, #c);                       \
            failures++;                                                            \
        }                                                                          \
    } while (0)

// The file that defines sym as the dynamic linker binds it, or "?".
static const char *lib_of(const char *sym)
{
    void *f = dlsym(RTLD_DEFAULT, sym);
    Dl_info info;
    if (!f || !dladdr(f, &info) || !info.dli_fname)
        return "?";
    return info.dli_fname;
}

#endif
