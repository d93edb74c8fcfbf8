/* jemalloc_api.c — jemalloc's own allocation calls (mallocx, rallocx, xallocx, sallocx, dallocx,
 * sdallocx, nallocx) onto core/alloc. Layer 5 (preload).
 *
 * A program linked against jemalloc that calls them would otherwise reach the real jemalloc with
 * blocks the preload made: sdallocx and rallocx crashed in it, sallocx answered for a block it
 * never made (found by review). With these, every such call stays in Labyrinth. The flags are
 * jemalloc's: the low 6 bits the log2 of an alignment (MALLOCX_LG_ALIGN), 0x40 zeroed memory
 * (MALLOCX_ZERO); the thread-cache and arena bits are accepted and ignored (there are no arenas
 * to choose). mallctl and its family are not exported: a program that queries jemalloc still gets
 * the real jemalloc's answers (of its own, idle, heap), and one that looks for jemalloc by those
 * names does not take Labyrinth for it. */
#include <string.h>

#include "alloc.h"

#define LAB_EXPORT __attribute__((visibility("default")))

#define JE_LG_ALIGN_MASK 0x3fu
#define JE_ZERO 0x40u

/* The alignment a flags word asks for; 0: none beyond malloc's. */
static inline size_t je_align(int flags)
{
    unsigned lg = (unsigned)flags & JE_LG_ALIGN_MASK;
    return lg ? (size_t)1 << lg : 0;
}

static void *je_alloc(size_t n, int flags)
{
    size_t align = je_align(flags);
    if (align >= (size_t)1 << 62)
        return NULL;
    if (flags & JE_ZERO) {
        /* the whole usable size, as jemalloc's (rallocx counts on it): calloc clears only n
         * bytes, and a block's tail past them may hold a freed block's data (a page-sized one
         * from the thread's run room is up to an eighth longer than asked; found by review) */
        void *p = align ? lab_malloc_aligned(align, n) : lab_calloc(1, n);
        if (p) {
            size_t done = align ? 0 : n;
            memset((char *)p + done, 0, lab_usable_size(p) - done);
        }
        return p;
    }
    return align ? lab_malloc_aligned(align, n) : lab_malloc(n);
}

/* size 0 is undefined in jemalloc; here it is malloc(0)'s unique block */
LAB_EXPORT void *mallocx(size_t size, int flags) { return je_alloc(size, flags); }

LAB_EXPORT void *rallocx(void *ptr, size_t size, int flags)
{
    size_t align = je_align(flags), old = lab_usable_size(ptr);
    if (!size)
        size = 1; /* never a free: rallocx always returns a block */
    void *q = NULL;
    if (!align || align <= 16) {
        q = lab_realloc(ptr, size);
    } else if (((uintptr_t)ptr & (align - 1)) == 0 && size <= old) {
        q = ptr; /* already aligned and large enough */
    } else {
        q = lab_malloc_aligned(align, size);
        if (q) {
            memcpy(q, ptr, old < size ? old : size);
            lab_free(ptr);
        }
    }
    if (q && (flags & JE_ZERO)) {
        size_t now = lab_usable_size(q);
        if (now > old)
            memset((char *)q + old, 0, now - old);
    }
    return q;
}

/* Resized in place only: this allocator grows no block in place through this call, so the
 * block's size stays what it is (what jemalloc answers when it cannot either). */
LAB_EXPORT size_t xallocx(void *ptr, size_t size, size_t extra, int flags)
{
    (void)size, (void)extra, (void)flags;
    return lab_usable_size(ptr);
}

LAB_EXPORT size_t sallocx(const void *ptr, int flags)
{
    (void)flags;
    return lab_usable_size(ptr);
}

LAB_EXPORT void dallocx(void *ptr, int flags)
{
    (void)flags;
    lab_free(ptr);
}

/* the size is a hint only, as for C++'s sized delete */
LAB_EXPORT void sdallocx(void *ptr, size_t size, int flags)
{
    (void)size, (void)flags;
    lab_free(ptr);
}

/* What mallocx(size, flags) would make: a block made and given back (nothing is kept, and a
 * prediction apart from the allocator could drift from it); 0 if it cannot be made. */
LAB_EXPORT size_t nallocx(size_t size, int flags)
{
    void *p = je_alloc(size, flags & ~(int)JE_ZERO);
    if (!p)
        return 0;
    size_t n = lab_usable_size(p);
    lab_free(p);
    return n;
}
