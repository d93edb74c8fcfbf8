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
 * or aligned delete's size and alignment are hints only: the block's own descriptor decides.
 *
 * Replacement: a program may define only the base forms (operator new(size_t), operator
 * delete(void *) and their aligned twins); the standard then has the others call them (array new
 * calls new, sized and array delete call delete). The executable comes first in symbol lookup, so
 * its base forms win, but ours of the other forms came before the runtime's, which do that
 * calling: a `delete obj` (sized, by default since C++14) freed through us a block the program's
 * new had made its own way (found by review: `malloc(n + 16) + 16`, then "invalid free"). So once,
 * at the first call of a derived form, the base forms' addresses as the dynamic linker bound them
 * are compared with ours; if any differs, every derived form goes to the runtime's own definition
 * of that form, which calls the program's. Limit: a replacement in a shared library (Boehm GC's
 * libgccpp) comes after the preload in lookup order and is not seen (README). */
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

/* ---- replaced base forms (above) ---- */
enum { F_ZNAM, F_ZNWM_NT, F_ZNAM_NT, F_ZNAM_AL, F_ZNWM_AL_NT, F_ZNAM_AL_NT, F_ZDAPV, F_ZDLPVM, F_ZDAPVM,
       F_ZDLPV_NT, F_ZDAPV_NT, F_ZDAPV_AL, F_ZDLPVM_AL, F_ZDAPVM_AL, F_ZDLPV_AL_NT, F_ZDAPV_AL_NT, F_N };
static const char *const fwd_name[F_N] = {
    "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t", "_ZdaPv", "_ZdlPvm",
    "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t", "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t"};
static void *fwd_fn[F_N]; /* the runtime's definitions, found at the first call of each */
#define FWD_NONE ((void *)1)
static int fwd_state = -1; /* -1: not looked at yet; 0: the base forms are ours; 1: replaced */

void *_Znwm(size_t n);
void *_ZnwmSt11align_val_t(size_t n, size_t al);
void _ZdlPv(void *p);
void _ZdlPvSt11align_val_t(void *p, size_t al);
/* the same definitions by names no one can interpose: their addresses are ours */
extern void *own_znwm(size_t n) __attribute__((alias("_Znwm"), visibility("hidden")));
extern void *own_znwm_al(size_t n, size_t al) __attribute__((alias("_ZnwmSt11align_val_t"), visibility("hidden")));
extern void own_zdlpv(void *p) __attribute__((alias("_ZdlPv"), visibility("hidden")));
extern void own_zdlpv_al(void *p, size_t al) __attribute__((alias("_ZdlPvSt11align_val_t"), visibility("hidden")));

/* The array forms may be replaced alone too ([new.delete.array]): the runtime's sized and
 * nothrow array forms then call the program's (found by review: a program replacing only new[]
 * and delete[] had `delete[]` of a class with a destructor, a sized delete[], freed through us,
 * and `new (std::nothrow) char[n]` made by us, its delete[] freeing 16 bytes before the block: an
 * abort, or a live neighbour freed with no word). */
void *_Znam(size_t n);
void *_ZnamSt11align_val_t(size_t n, size_t al);
void _ZdaPv(void *p);
void _ZdaPvSt11align_val_t(void *p, size_t al);
extern void *own_znam(size_t n) __attribute__((alias("_Znam"), visibility("hidden")));
extern void *own_znam_al(size_t n, size_t al) __attribute__((alias("_ZnamSt11align_val_t"), visibility("hidden")));
extern void own_zdapv(void *p) __attribute__((alias("_ZdaPv"), visibility("hidden")));
extern void own_zdapv_al(void *p, size_t al) __attribute__((alias("_ZdaPvSt11align_val_t"), visibility("hidden")));

/* The replaceable forms' addresses as bound (through the GOT: they are exported, so
 * interposable) */
static void *(*volatile bound_znwm)(size_t) = _Znwm;
static void *(*volatile bound_znwm_al)(size_t, size_t) = _ZnwmSt11align_val_t;
static void (*volatile bound_zdlpv)(void *) = _ZdlPv;
static void (*volatile bound_zdlpv_al)(void *, size_t) = _ZdlPvSt11align_val_t;
static void *(*volatile bound_znam)(size_t) = _Znam;
static void *(*volatile bound_znam_al)(size_t, size_t) = _ZnamSt11align_val_t;
static void (*volatile bound_zdapv)(void *) = _ZdaPv;
static void (*volatile bound_zdapv_al)(void *, size_t) = _ZdaPvSt11align_val_t;

static lab_noinline lab_cold bool fwd_look(void)
{
    int st = bound_znwm != own_znwm || bound_znwm_al != own_znwm_al || bound_zdlpv != own_zdlpv ||
             bound_zdlpv_al != own_zdlpv_al || bound_znam != own_znam || bound_znam_al != own_znam_al ||
             bound_zdapv != own_zdapv || bound_zdapv_al != own_zdapv_al;
    lab_store_relaxed(&fwd_state, st);
    return st;
}

/* The runtime's definition of derived form f if the program replaced a base form, else NULL
 * (also when no runtime defines it: then ours serves, as before). */
static lab_noinline lab_cold void *fwd_slow(unsigned f)
{
    if (!(lab_load_relaxed(&fwd_state) > 0 || fwd_look()))
        return NULL;
    void *fn = lab_load_relaxed(&fwd_fn[f]);
    if (!fn) { /* looked up once: FWD_NONE when no runtime defines it (a static libstdc++) */
        fn = runtime_symbol(fwd_name[f]);
        lab_store_relaxed(&fwd_fn[f], fn ? fn : FWD_NONE);
    }
    return fn == FWD_NONE ? NULL : fn;
}

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
    /* the standard requires a power of two: anything else (0 too: found by review) is the
     * caller's bug, refused here */
    if (!align || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return lab_malloc_aligned(align, n);
}

/* The size an aligned new that failed passes on to the runtime's, for its new_handler loop and
 * its bad_alloc: libstdc++ 12 rounds the size up to the alignment first, and a size near
 * SIZE_MAX wrapped to 0 there, whose block it returned (found by review; glibc alone too). Any
 * size no block can have fails the same way. */
static inline size_t new_aligned_size(size_t n) { return n > PTRDIFF_MAX ? (size_t)PTRDIFF_MAX + 1 : n; }

/* ---- new ---- */
LAB_EXPORT void *_Znwm(size_t n)
{
    void *p = lab_malloc_fast(n);
    return lab_likely(p != NULL) ? p : znwm_slow(n);
}

/* A derived form: its own body below while the base forms are ours; else (or before they are
 * looked at) a tail call to its forwarder, which calls the runtime's definition if a base form is
 * replaced, its own body if not. The fast path keeps no frame. */
#define DERIVED_NEW(name, f, type, params, args, body)                                                       \
    static inline void *name##_own(params) { body }                                                          \
    static lab_noinline lab_cold void *name##_fwd(params)                                                    \
    {                                                                                                        \
        void *fn_ = fwd_slow(f);                                                                             \
        return fn_ ? ((type)fn_)(args) : name##_own(args);                                                   \
    }                                                                                                        \
    LAB_EXPORT void *name(params)                                                                            \
    {                                                                                                        \
        if (lab_unlikely(lab_load_relaxed(&fwd_state) != 0))                                                 \
            return name##_fwd(args);                                                                         \
        return name##_own(args);                                                                             \
    }
#define P(...) __VA_ARGS__

DERIVED_NEW(_Znam, F_ZNAM, new_fn, size_t n, n, void *p = lab_malloc_fast(n);
            return lab_likely(p != NULL) ? p : znam_slow(n);)
DERIVED_NEW(_ZnwmRKSt9nothrow_t, F_ZNWM_NT, new_nt_fn, P(size_t n, const void *nt), P(n, nt),
            void *p = lab_malloc_fast(n);
            return lab_likely(p != NULL) ? p : znwm_nt_slow(n, nt);)
DERIVED_NEW(_ZnamRKSt9nothrow_t, F_ZNAM_NT, new_nt_fn, P(size_t n, const void *nt), P(n, nt),
            void *p = lab_malloc_fast(n);
            return lab_likely(p != NULL) ? p : znam_nt_slow(n, nt);)

LAB_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t al)
{
    void *p = new_aligned(n, al);
    return lab_likely(p != NULL) ? p : NEXT(new_al_fn, "_ZnwmSt11align_val_t", new_aligned_size(n), al);
}

DERIVED_NEW(_ZnamSt11align_val_t, F_ZNAM_AL, new_al_fn, P(size_t n, size_t al), P(n, al),
            void *p = new_aligned(n, al);
            return lab_likely(p != NULL) ? p : NEXT(new_al_fn, "_ZnamSt11align_val_t", new_aligned_size(n), al);)
DERIVED_NEW(_ZnwmSt11align_val_tRKSt9nothrow_t, F_ZNWM_AL_NT, new_al_nt_fn, P(size_t n, size_t al, const void *nt),
            P(n, al, nt), void *p = new_aligned(n, al);
            size_t m = new_aligned_size(n);
            return lab_likely(p != NULL) ? p : NEXT_NT(new_al_nt_fn, "_ZnwmSt11align_val_tRKSt9nothrow_t", m, al, nt);)
DERIVED_NEW(_ZnamSt11align_val_tRKSt9nothrow_t, F_ZNAM_AL_NT, new_al_nt_fn, P(size_t n, size_t al, const void *nt),
            P(n, al, nt), void *p = new_aligned(n, al);
            size_t m = new_aligned_size(n);
            return lab_likely(p != NULL) ? p : NEXT_NT(new_al_nt_fn, "_ZnamSt11align_val_tRKSt9nothrow_t", m, al, nt);)

/* ---- delete: every form is free; sizes and alignments are not trusted ---- */
typedef void (*del_fn)(void *);
typedef void (*del_x_fn)(void *, size_t);
typedef void (*del_xy_fn)(void *, size_t, size_t);
typedef void (*del_nt_fn)(void *, const void *);
typedef void (*del_al_nt_fn)(void *, size_t, const void *);

/* The derived deletes' slow path (a base form is replaced, or not looked at yet): the runtime's
 * own definition, else free. A tail call from the fast path, which thus keeps no frame. */
static lab_noinline lab_cold void del_fwd(unsigned f, void *p, size_t x, size_t y)
{
    void *fn = fwd_slow(f);
    if (!fn) {
        lab_free(p);
        return;
    }
    switch (f) {
    case F_ZDAPV:
        ((del_fn)fn)(p);
        break;
    case F_ZDLPVM:
    case F_ZDAPVM:
    case F_ZDAPV_AL:
        ((del_x_fn)fn)(p, x);
        break;
    case F_ZDLPVM_AL:
    case F_ZDAPVM_AL:
        ((del_xy_fn)fn)(p, x, y);
        break;
    case F_ZDLPV_NT:
    case F_ZDAPV_NT:
        ((del_nt_fn)fn)(p, (const void *)x);
        break;
    default: /* the aligned nothrow forms */
        ((del_al_nt_fn)fn)(p, x, (const void *)y);
        break;
    }
}

#define DEL(f, p, x, y)                                                                                      \
    do {                                                                                                     \
        if (lab_unlikely(lab_load_relaxed(&fwd_state) != 0))                                                 \
            del_fwd(f, p, (size_t)(x), (size_t)(y));                                                         \
        else                                                                                                 \
            lab_free(p);                                                                                     \
    } while (0)

LAB_EXPORT void _ZdlPv(void *p) { lab_free(p); }
LAB_EXPORT void _ZdaPv(void *p) { DEL(F_ZDAPV, p, 0, 0); }
LAB_EXPORT void _ZdlPvm(void *p, size_t n) { DEL(F_ZDLPVM, p, n, 0); }
LAB_EXPORT void _ZdaPvm(void *p, size_t n) { DEL(F_ZDAPVM, p, n, 0); }
LAB_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) { DEL(F_ZDLPV_NT, p, (uintptr_t)nt, 0); }
LAB_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) { DEL(F_ZDAPV_NT, p, (uintptr_t)nt, 0); }
LAB_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t al) { (void)al, lab_free(p); }
LAB_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t al) { DEL(F_ZDAPV_AL, p, al, 0); }
LAB_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al) { DEL(F_ZDLPVM_AL, p, n, al); }
LAB_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al) { DEL(F_ZDAPVM_AL, p, n, al); }
LAB_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)
{
    DEL(F_ZDLPV_AL_NT, p, al, (uintptr_t)nt);
}
LAB_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)
{
    DEL(F_ZDAPV_AL_NT, p, al, (uintptr_t)nt);
}
