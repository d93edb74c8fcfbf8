/* cxx.c — C++ operator new and delete, straight onto core/alloc. Layer 5 (preload).
 *
 * libstdc++'s operators call malloc and free through the PLT and wrap them in a new-handler loop;
 * ours inline the allocator's fast paths instead. The symbols are the Itanium C++ ABI's mangled
 * names, defined in C so that liblabyrinth.so needs no C++ runtime. A program that defines its own
 * operators still wins (the executable comes first in symbol lookup).
 *
 * Failure: new must run the program's new-handler and throw std::bad_alloc, which C cannot do. On
 * a NULL from the allocator we hand the request to the next definition in lookup order (the C++
 * runtime's own operator, found with dlsym(RTLD_NEXT) only then, never on a fast path): it calls
 * malloc (ours) again, runs the handler, and throws or returns NULL as the standard says. A sized
 * or aligned delete's size and alignment are hints only: the block's own descriptor decides. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

#include "alloc.h"

#define LAB_EXPORT __attribute__((visibility("default")))

typedef void *(*new_fn)(size_t);
typedef void *(*new_nt_fn)(size_t, const void *);
typedef void *(*new_al_fn)(size_t, size_t);
typedef void *(*new_al_nt_fn)(size_t, size_t, const void *);

/* The C++ runtime's own definition of an operator. RTLD_NEXT sees only the global scope: a
 * runtime loaded with a plugin by dlopen(RTLD_LOCAL) (a Python extension module, a plugin host)
 * is not there, and a failed new aborted the process instead of throwing (found by review:
 * `new (std::nothrow) char[1ull << 62]` in a library loaded by ctypes). The runtimes already
 * loaded are then asked by name (RTLD_NOLOAD: never loaded here). NULL if there is none. */
static lab_noinline lab_cold void *runtime_symbol(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    static const char *const runtimes[] = {"libstdc++.so.6", "libc++.so.1"};
    for (unsigned i = 0; !f && i < sizeof runtimes / sizeof runtimes[0]; i++) {
        void *h = dlopen(runtimes[i], RTLD_LAZY | RTLD_NOLOAD);
        if (h) /* one reference more: the runtime stays loaded, as it is anyway while it calls new */
            f = dlsym(h, name);
    }
    return f;
}

static lab_noinline lab_cold void *next_symbol(const char *name)
{
    void *f = runtime_symbol(name);
    if (!f)
        lab_fatal("out of memory in operator new, and no C++ runtime to throw std::bad_alloc:", NULL);
    return f;
}

/* Each failure path asks the runtime's own operator to retry, call the handler and throw. */
#define NEXT(type, name, ...) ((type)next_symbol(name))(__VA_ARGS__)
/* The nothrow forms: with no runtime to ask, NULL is their answer anyway. */
#define NEXT_NT(type, name, ...)                                                                             \
    __extension__({                                                                                          \
        void *f_ = runtime_symbol(name);                                                                     \
        f_ ? ((type)f_)(__VA_ARGS__) : NULL;                                                                 \
    })

/* A hit is lab_malloc's, with no stack frame; a miss goes to a function of its own. */
static lab_noinline void *znwm_slow(size_t n)
{
    void *p = lab_malloc_slow(n);
    return lab_likely(p != NULL) ? p : NEXT(new_fn, "_Znwm", n);
}

static lab_noinline void *znam_slow(size_t n)
{
    void *p = lab_malloc_slow(n);
    return lab_likely(p != NULL) ? p : NEXT(new_fn, "_Znam", n);
}

static lab_noinline void *znwm_nt_slow(size_t n, const void *nt)
{
    void *p = lab_malloc_slow(n);
    return lab_likely(p != NULL) ? p : NEXT_NT(new_nt_fn, "_ZnwmRKSt9nothrow_t", n, nt);
}

static lab_noinline void *znam_nt_slow(size_t n, const void *nt)
{
    void *p = lab_malloc_slow(n);
    return lab_likely(p != NULL) ? p : NEXT_NT(new_nt_fn, "_ZnamRKSt9nothrow_t", n, nt);
}

static inline void *new_aligned(size_t n, size_t align)
{
    /* the standard requires a power of two: anything else is the caller's bug, refused here */
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    return lab_malloc_aligned(align, n);
}

/* ---- new ---- */
LAB_EXPORT void *_Znwm(size_t n)
{
    void *p = lab_malloc_fast(n);
    return lab_likely(p != NULL) ? p : znwm_slow(n);
}

LAB_EXPORT void *_Znam(size_t n)
{
    void *p = lab_malloc_fast(n);
    return lab_likely(p != NULL) ? p : znam_slow(n);
}

LAB_EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt)
{
    void *p = lab_malloc_fast(n);
    return lab_likely(p != NULL) ? p : znwm_nt_slow(n, nt);
}

LAB_EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *nt)
{
    void *p = lab_malloc_fast(n);
    return lab_likely(p != NULL) ? p : znam_nt_slow(n, nt);
}

LAB_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t al)
{
    void *p = new_aligned(n, al);
    return lab_likely(p != NULL) ? p : NEXT(new_al_fn, "_ZnwmSt11align_val_t", n, al);
}

LAB_EXPORT void *_ZnamSt11align_val_t(size_t n, size_t al)
{
    void *p = new_aligned(n, al);
    return lab_likely(p != NULL) ? p : NEXT(new_al_fn, "_ZnamSt11align_val_t", n, al);
}

LAB_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt)
{
    void *p = new_aligned(n, al);
    return lab_likely(p != NULL) ? p : NEXT_NT(new_al_nt_fn, "_ZnwmSt11align_val_tRKSt9nothrow_t", n, al, nt);
}

LAB_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt)
{
    void *p = new_aligned(n, al);
    return lab_likely(p != NULL) ? p : NEXT_NT(new_al_nt_fn, "_ZnamSt11align_val_tRKSt9nothrow_t", n, al, nt);
}

/* ---- delete: every form is free; sizes and alignments are not trusted ---- */
LAB_EXPORT void _ZdlPv(void *p) { lab_free(p); }
LAB_EXPORT void _ZdaPv(void *p) { lab_free(p); }
LAB_EXPORT void _ZdlPvm(void *p, size_t n) { (void)n, lab_free(p); }
LAB_EXPORT void _ZdaPvm(void *p, size_t n) { (void)n, lab_free(p); }
LAB_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) { (void)nt, lab_free(p); }
LAB_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) { (void)nt, lab_free(p); }
LAB_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t al) { (void)al, lab_free(p); }
LAB_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t al) { (void)al, lab_free(p); }
LAB_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al) { (void)n, (void)al, lab_free(p); }
LAB_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al) { (void)n, (void)al, lab_free(p); }
LAB_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)
{
    (void)al, (void)nt, lab_free(p);
}
LAB_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)
{
    (void)al, (void)nt, lab_free(p);
}
