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
#include <errno.h>
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

/* jemalloc's contract: mallocx(n) makes a block of nallocx(n) bytes, and programs write up to
 * that many (found by review: nallocx made and freed a block, whose size depended on the
 * thread's state, a nursery block's 944 bytes one time and a span's 960 the next; a program
 * wrote 960 into a block of 944). So the request is nallocx's size, whatever path serves it. */
static void *je_alloc(size_t n, int flags)
{
    size_t align = je_align(flags);
    if (align >= (size_t)1 << 62)
        return NULL;
    size_t good = lab_good_size(n, align);
    if (!good) {
        errno = ENOMEM;
        return NULL;
    }
    if (flags & JE_ZERO) {
        /* the whole usable size, as jemalloc's (rallocx counts on it), as calloc clears it; an
         * aligned block's pages that were never written are left as they are (an aligned 1 GiB
         * block was faulted in whole: found by review) */
        if (!align)
            return lab_calloc(1, good);
        void *p = lab_malloc_aligned(align, good);
        if (p)
            lab_zero_range(p, lab_usable_size(p));
        return p;
    }
    return align ? lab_malloc_aligned(align, good) : lab_malloc(good);
}

/* size 0 is undefined in jemalloc; here it is malloc(0)'s unique block */
LAB_EXPORT void *mallocx(size_t size, int flags) { return je_alloc(size, flags); }

LAB_EXPORT void *rallocx(void *ptr, size_t size, int flags)
{
    size_t align = je_align(flags), old = lab_usable_size(ptr);
    if (!size)
        size = 1; /* never a free: rallocx always returns a block */
    size = lab_good_size(size, align); /* nallocx's size (je_alloc) */
    if (!size) {
        errno = ENOMEM;
        return NULL;
    }
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
        if (now > old) /* (pages a huge block grew by that were never written are left) */
            lab_zero_range((char *)q + old, now - old);
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

/* What mallocx(size, flags) makes (je_alloc asks for this size), computed: 0 past PTRDIFF_MAX. */
LAB_EXPORT size_t nallocx(size_t size, int flags)
{
    size_t align = je_align(flags);
    return align >= (size_t)1 << 62 ? 0 : lab_good_size(size, align);
}
