/* mmap.c — the memory-mapping names (mmap, mmap64, munmap, mremap, mprotect, pkey_mprotect,
 * madvise, mlock, mlock2, munlock, mlockall, munlockall) and pooled anonymous mmap
 * (LABYRINTH_MMAP=1). Layer 5: uses core/os (raw system calls), the malloc page map (read only,
 * to refuse unmapping malloc's memory) and preload/mmap_pool (the area).
 *
 * Off (the default), every name is one flag test and the raw system call, errno set as libc sets
 * it. On, a private anonymous read-write mapping with no address, no file and no exotic flag, of
 * at most LABYRINTH_MMAP_MAX bytes, is carved from the area: pages reserved PROT_NONE and made
 * read-write by mprotect. munmap makes them PROT_NONE again (so any later access faults) and
 * keeps them, CACHED, for the next pooled mmap, which clears the bytes the previous owner left
 * (only resident pages are read; swapped-out ones are dropped with MADV_DONTNEED). The kernel's
 * semantics hold for every call on pooled pages; anything this file does not model goes to the
 * kernel, and the pages it touches leave the pool (FOREIGN) until the program unmaps them.
 *
 * Call tree (on):
 *   mmap ─ poolable? ─ map_pooled: lock, purge idle cache, take a run, mprotect RW, clear
 *        └ MAP_FIXED over the area: map_fixed (the pages leave the pool) └ else the kernel
 *   munmap ─ not the area: the kernel (abort if it is malloc's memory)
 *          └ per segment: LIVE → release (mprotect NONE → CACHED, or reset → FRESH);
 *            FRESH/CACHED → nothing (already unmapped); FOREIGN/outside → the kernel
 *   mremap ─ pooled and clean: shrink = release the tail; grow in place over free pooled pages;
 *            move = kernel mremap into a pooled run (a copy if the kernel holds the region as
 *            several mappings) └ else the kernel, then the records follow
 *   mprotect/mlock ─ the kernel on the prefix before the first free pooled page, then ENOMEM
 *   madvise ─ the kernel on every part but free pooled pages (ENOMEM at the end, as for holes)
 * Any change of protection, locking or VMA flags taints LIVE pages: they are reset, not cached,
 * when unmapped, so no later owner inherits them.
 *
 * Locking: one lock (lab_mmpool_lock), held across the system calls of an operation — the kernel
 * serialises these calls on its mmap lock anyway. A signal handler that interrupted this thread
 * while it held the lock never waits for it: its mmap goes to the kernel, its munmap of pooled
 * pages unmaps them for real (they stay FOREIGN), and the rare calls that would need the free
 * lists (MAP_FIXED or MREMAP_FIXED over free pooled pages) abort with a message. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/syscall.h>

#include "mmap.h"
#include "mmap_pool.h"
#include "pool.h"

#define LAB_EXPORT __attribute__((visibility("default")))
#define PS LAB_PAGE_SIZE
#define MM_ERR(r) ((unsigned long)(r) > -4096ul)
#define RW (PROT_READ | PROT_WRITE)

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef PROT_SEM
#define PROT_SEM 0x8
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

static int mm_on;           /* LABYRINTH_MMAP, set once by the constructor */
static size_t mm_max;       /* largest pooled request, bytes, a page multiple */
static int mm_lockall;      /* mlockall in force: new mappings go to the kernel (MCL_FUTURE) */
/* This thread holds lab_mmpool_lock (or is about to take it): a handler must not wait for it. */
static __thread int mm_depth;

static uint64_t st_pooled, st_hits, st_kernel, st_fallbacks, st_unmaps, st_remaps;

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    return lab_os_raw6(n, a, b, c, d, e, f);
}

static inline void *ret_ptr(long r)
{
    if (lab_unlikely(MM_ERR(r))) {
        errno = (int)-r;
        return MAP_FAILED;
    }
    return (void *)r;
}

static inline int ret_int(long r)
{
    if (lab_unlikely(MM_ERR(r))) {
        errno = (int)-r;
        return -1;
    }
    return (int)r;
}

static inline long k_mmap(uintptr_t a, size_t len, int prot, int flags, int fd, long off)
{
    return sys6(SYS_mmap, (long)a, (long)len, prot, flags, fd, off);
}
static inline long k_munmap(uintptr_t a, size_t len) { return sys6(SYS_munmap, (long)a, (long)len, 0, 0, 0, 0); }
static inline long k_mprotect(uintptr_t a, size_t len, int prot)
{
    return sys6(SYS_mprotect, (long)a, (long)len, prot, 0, 0, 0);
}
static inline long k_madvise(uintptr_t a, size_t len, int adv)
{
    return sys6(SYS_madvise, (long)a, (long)len, adv, 0, 0, 0);
}
static inline long k_mremap(uintptr_t old, size_t ol, size_t nl, int flags, uintptr_t nw)
{
    return sys6(SYS_mremap, (long)old, (long)ol, (long)nl, flags, (long)nw, 0);
}

static inline bool mm_enter(void)
{
    if (mm_depth)
        return false;
    mm_depth = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* set before the lock is taken: a handler sees it */
    lab_lock(&lab_mmpool_lock);
    return true;
}

static inline void mm_leave(void)
{
    lab_unlock(&lab_mmpool_lock);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    mm_depth = 0;
}

/* The page-aligned end of [a, a+len), false on overflow (the kernel then gives the error). */
static inline bool mm_end(uintptr_t a, size_t len, uintptr_t *end)
{
    size_t l = lab_align_up(len, PS);
    *end = a + l;
    return l >= len && *end >= a;
}

static inline bool is_free(unsigned s) { return s == LAB_MM_FRESH || s == LAB_MM_CACHED; }

/* The first free pooled page of [a, end) (end if none): where a kernel walk over mappings
 * would find a hole. */
static uintptr_t first_free(uintptr_t a, uintptr_t end)
{
    for (uintptr_t p = a, q; p < end; p = q)
        if (is_free(lab_mmpool_segment(p, end, &q)))
            return p;
    return end;
}

/* True if [a, end) overlaps memory of the malloc page pool (a chunk, or a huge block). */
static bool malloc_owns(uintptr_t a, uintptr_t end)
{
    const uintptr_t l1_span = (uintptr_t)1 << (LAB_CHUNK_SHIFT + LAB_PM_L2_BITS);
    for (uintptr_t g = lab_align_down(a, LAB_CHUNK_SIZE); g < end && g >= lab_align_down(a, LAB_CHUNK_SIZE);) {
        if (g >> LAB_ADDR_BITS)
            break;
        lab_chunk_t **l2 = lab_pagemap_l2(g);
        if (!l2) {
            g = (g | (l1_span - 1)) + 1;
            continue;
        }
        lab_chunk_t *c = lab_pagemap_l2_get(l2, g);
        if (lab_chunk_is_ours(c)) {
            uintptr_t hi = c->base + (c->kind == LAB_CHUNK_HUGE ? c->size : LAB_CHUNK_SIZE);
            if (a < hi && end > c->base)
                return true;
        }
        g += LAB_CHUNK_SIZE;
    }
    return false;
}

static void check_not_malloc(const char *what, uintptr_t a, uintptr_t end)
{
    if (lab_unlikely(malloc_owns(a, end)))
        lab_fatal(what, (void *)a);
}

/* ------------------------------------------------------------------------------------------
 * clearing reused pages */

/* Zero one resident page, reading before writing: false if it already read zero (it was not
 * written by its last owner, or is the shared zero page), and then it is not written. */
static bool page_clear(uintptr_t pg)
{
    const uint64_t *w = (const uint64_t *)pg;
    for (size_t i = 0; i < PS / 8; i += 8)
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) {
            memset((char *)pg + i * 8, 0, PS - i * 8);
            return true;
        }
    return false;
}

/* Make n pages at a (read-write now) read zero. Resident pages the last owner wrote are cleared in
 * place (no page fault for the next one). The others are dropped with MADV_DONTNEED: pages not
 * resident may be in swap (mincore cannot tell), and resident pages that read zero were not used,
 * so keeping them would only cost a scan at every reuse. Dropping pages that are not present
 * costs no TLB flush. */
static void mm_clear(uintptr_t a, size_t n)
{
    unsigned char vec[256];
    for (size_t i = 0; i < n; i += 256) {
        size_t m = lab_min(n - i, (size_t)256);
        uintptr_t p = a + (i << LAB_PAGE_SHIFT);
        if (MM_ERR(sys6(SYS_mincore, (long)p, (long)(m << LAB_PAGE_SHIFT), (long)vec, 0, 0, 0))) {
            memset((void *)p, 0, m << LAB_PAGE_SHIFT);
            continue;
        }
        /* vec[j] bit 1: drop page j */
        size_t runs = 0, first = m, last = 0;
        for (size_t j = 0; j < m; j++) {
            bool drop = !(vec[j] & 1) || !page_clear(p + (j << LAB_PAGE_SHIFT));
            vec[j] = drop ? 2 : 0;
            if (drop) {
                runs += j == 0 || !vec[j - 1];
                first = lab_min(first, j);
                last = j;
            }
        }
        if (runs > 8) { /* many holes: one call over all of them (cleared pages between go too) */
            k_madvise(p + (first << LAB_PAGE_SHIFT), (last - first + 1) << LAB_PAGE_SHIFT, MADV_DONTNEED);
            continue;
        }
        for (size_t j = 0, k; j < m; j = k) {
            for (k = j + 1; k < m && vec[k] == vec[j];)
                k++;
            if (vec[j])
                k_madvise(p + (j << LAB_PAGE_SHIFT), (k - j) << LAB_PAGE_SHIFT, MADV_DONTNEED);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * mmap */

static long map_pooled(size_t len)
{
    if (!mm_enter())
        return 0;
    lab_mmpool_maintain(lab_clock_ms(), false);
    size_t n = (len + PS - 1) >> LAB_PAGE_SHIFT;
    unsigned kind;
    uintptr_t a = lab_mmpool_take(n, &kind);
    long r = 0;
    if (a) {
        if (k_mprotect(a, n << LAB_PAGE_SHIFT, RW) == 0) {
            if (kind == LAB_MM_CACHED) {
                mm_clear(a, n);
                lab_add_relaxed(&st_hits, 1);
            }
            r = (long)a;
        } else {
            lab_mmpool_put(a, a + (n << LAB_PAGE_SHIFT), kind); /* still PROT_NONE: unchanged */
        }
    }
    mm_leave();
    return r;
}

/* MAP_FIXED or MAP_FIXED_NOREPLACE over part of the area. The program's mapping replaces pooled
 * pages: they leave the pool (FOREIGN) and come back when the program unmaps them. */
static long map_fixed(uintptr_t a, size_t len, int prot, int flags, int fd, long off)
{
    uintptr_t end;
    if ((a & (PS - 1)) || !len || !mm_end(a, len, &end))
        return k_mmap(a, len, prot, flags, fd, off); /* the kernel's EINVAL */
    check_not_malloc("mmap(MAP_FIXED) over memory that malloc owns", a, end);
    if (!lab_mmpool_touches(a, end))
        return k_mmap(a, len, prot, flags, fd, off);
    bool locked = mm_enter();
    bool live = false, free = false, other = false;
    for (uintptr_t p = a, q; p < end; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q);
        live |= (s & LAB_MM_KIND) == LAB_MM_LIVE;
        free |= is_free(s);
        other |= s == LAB_MM_FOREIGN || s == LAB_MM_OUTSIDE;
    }
    long r;
    bool noreplace = flags & MAP_FIXED_NOREPLACE;
    if (free && !locked)
        lab_fatal("MAP_FIXED over free pooled pages in a signal handler that interrupted mmap", (void *)a);
    if (noreplace && live) {
        r = -EEXIST; /* mapped, in the program's eyes */
    } else {
        /* NOREPLACE over nothing but our reservation: replace it in one step. NOREPLACE over ours
         * and other pages: unmap ours, and let the kernel check the others. */
        bool one_step = noreplace && free && !other, unmap_ours = noreplace && free && other;
        for (uintptr_t p = a, q; p < end; p = q) {
            unsigned s = lab_mmpool_segment(p, end, &q);
            if (is_free(s)) {
                lab_mmpool_take_range(p, q);
                if (unmap_ours)
                    k_munmap(p, q - p);
            }
            if (s != LAB_MM_OUTSIDE && s != LAB_MM_FOREIGN)
                lab_mmpool_mark(p, q, LAB_MM_FOREIGN);
        }
        r = k_mmap(a, len, prot, one_step ? (flags & ~MAP_FIXED_NOREPLACE) | MAP_FIXED : flags, fd, off);
        if (MM_ERR(r) && unmap_ours) /* take back what is still a hole; a mapping stays FOREIGN */
            for (uintptr_t p = a, q; p < end; p = q)
                if (lab_mmpool_segment(p, end, &q) == LAB_MM_FOREIGN)
                    lab_mmpool_reclaim(p, q);
    }
    if (locked)
        mm_leave();
    return r;
}

static long mm_map(uintptr_t addr, size_t len, int prot, int flags, int fd, long off)
{
    if (!addr && fd == -1 && !off && prot == RW && (flags & ~MAP_NORESERVE) == (MAP_PRIVATE | MAP_ANONYMOUS) &&
        len - 1 < mm_max && !lab_load_relaxed(&mm_lockall)) {
        long r = map_pooled(len);
        if (r) {
            lab_add_relaxed(&st_pooled, 1);
            return r;
        }
        lab_add_relaxed(&st_fallbacks, 1);
        return k_mmap(addr, len, prot, flags, fd, off);
    }
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
        return map_fixed(addr, len, prot, flags, fd, off);
    lab_add_relaxed(&st_kernel, 1);
    return k_mmap(addr, len, prot, flags, fd, off);
}

static lab_noinline void *mmap_slow(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return ret_ptr(mm_map((uintptr_t)addr, len, prot, flags, fd, off));
}

/* Off: the flag test and the system call. On: the out-of-line path, as a tail call. */
LAB_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_ptr(k_mmap((uintptr_t)addr, len, prot, flags, fd, off));
    return mmap_slow(addr, len, prot, flags, fd, off);
}

LAB_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

/* ------------------------------------------------------------------------------------------
 * munmap */

/* LIVE pages [a, end) of one chunk are unmapped by the program: cache them PROT_NONE, or (tainted,
 * cache full, mprotect refused) reset them to fresh reserved pages. 0 or -errno. */
static long release(uintptr_t a, uintptr_t end, bool taint)
{
    size_t n = (end - a) >> LAB_PAGE_SHIFT;
    if (!taint && !lab_load_relaxed(&mm_lockall) && lab_mmpool_cache_room(n) && k_mprotect(a, end - a, PROT_NONE) == 0) {
        lab_mmpool_put(a, end, LAB_MM_CACHED);
        return 0;
    }
    return lab_mmpool_discard(a, end);
}

static long mm_unmap(uintptr_t a, size_t len)
{
    uintptr_t end;
    if ((a & (PS - 1)) || !len || !mm_end(a, len, &end))
        return k_munmap(a, len); /* the kernel's EINVAL */
    check_not_malloc("munmap of memory that malloc owns", a, end);
    if (!lab_mmpool_touches(a, end))
        return k_munmap(a, len);
    bool locked = mm_enter();
    if (locked)
        lab_mmpool_maintain(lab_clock_ms(), false);
    long r = 0;
    bool gave = false;
    for (uintptr_t p = a, q; p < end && r == 0; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q);
        switch (s) {
        case LAB_MM_FRESH:
        case LAB_MM_CACHED:
            break; /* not mapped, as far as the program knows: nothing to do, as for a hole */
        case LAB_MM_LIVE:
        case LAB_MM_LIVE | LAB_MM_TAINT:
            if (locked) {
                r = release(p, q, s & LAB_MM_TAINT);
            } else if ((r = k_munmap(p, q - p)) == 0) {
                lab_mmpool_mark(p, q, LAB_MM_FOREIGN); /* in a handler: no list may change */
            }
            gave |= r == 0;
            break;
        case LAB_MM_FOREIGN:
            r = k_munmap(p, q - p);
            if (r == 0 && locked)
                lab_mmpool_reclaim(p, q);
            break;
        default:
            r = k_munmap(p, q - p);
            break;
        }
    }
    if (locked)
        mm_leave();
    if (gave)
        lab_add_relaxed(&st_unmaps, 1);
    return r;
}

static lab_noinline int munmap_slow(void *addr, size_t len) { return ret_int(mm_unmap((uintptr_t)addr, len)); }

LAB_EXPORT int munmap(void *addr, size_t len)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(k_munmap((uintptr_t)addr, len));
    return munmap_slow(addr, len);
}

/* ------------------------------------------------------------------------------------------
 * mremap */

/* Shrink, keep, or grow in place over free pooled pages (unmapped in the program's eyes) a clean
 * pooled region: the new address (old), or 0 when it cannot grow in place. Locked. */
static long remap_in_place(uintptr_t old, size_t ol, size_t nl)
{
    uintptr_t oend = old + ol, gend = old + nl;
    if (nl == ol)
        return (long)old;
    if (nl < ol) {
        long r = 0;
        for (uintptr_t p = gend, q; p < oend && r == 0; p = q) {
            lab_mmpool_segment(p, oend, &q);
            r = release(p, q, false);
        }
        return r ? r : (long)old;
    }
    for (uintptr_t p = oend, q; p < gend; p = q)
        if (!is_free(lab_mmpool_segment(p, gend, &q)))
            return 0;
    size_t cached = 0;
    for (uintptr_t p = oend, q; p < gend; p = q) {
        lab_mmpool_segment(p, gend, &q);
        cached += lab_mmpool_take_range(p, q);
    }
    if (k_mprotect(oend, gend - oend, RW) == 0) {
        if (cached)
            mm_clear(oend, (gend - oend) >> LAB_PAGE_SHIFT);
        return (long)old;
    }
    for (uintptr_t p = oend, q; p < gend; p = q) {
        lab_mmpool_segment(p, gend, &q);
        lab_mmpool_discard(p, q); /* back to fresh pages, old bytes of cached ones dropped */
    }
    return 0;
}

/* Is [a, a+len) one mapping of the kernel's? A pooled region need not be: cached runs coalesced
 * here may be mappings the kernel cannot merge (another anon_vma, a region moved in by mremap),
 * and the kernel's mremap refuses to move across them (EFAULT). The probe asks to grow the range
 * by a page in place: EFAULT if it spans mappings; else ENOMEM (the next page is taken) or done
 * (a hole followed: the page is given back at once). */
static bool one_vma(uintptr_t a, size_t len)
{
    long r = k_mremap(a, len, len + PS, 0, 0);
    if (r == (long)a)
        k_mremap(a, len + PS, len, 0, 0);
    return r != -EFAULT;
}

/* Move a clean pooled region by copying it (it spans mappings the kernel will not move as one):
 * to the MREMAP_FIXED address (the caller has taken it out of the pool), a pooled run, or a new
 * kernel mapping. The old range is released (DONTUNMAP: emptied). Locked. */
static long remap_copy(uintptr_t old, size_t ol, size_t nl, int flags, uintptr_t nw)
{
    uintptr_t dst = 0;
    unsigned kind = LAB_MM_FRESH;
    if (flags & MREMAP_FIXED) {
        long r = k_mmap(nw, nl, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (MM_ERR(r))
            return r;
        dst = nw;
    } else if (nl <= mm_max && (dst = lab_mmpool_take(nl >> LAB_PAGE_SHIFT, &kind)) != 0) {
        if (k_mprotect(dst, nl, RW) != 0) {
            lab_mmpool_put(dst, dst + nl, kind);
            return -ENOMEM;
        }
        if (kind == LAB_MM_CACHED && nl > ol)
            mm_clear(dst + ol, (nl - ol) >> LAB_PAGE_SHIFT); /* the rest is overwritten below */
    } else {
        long r = k_mmap(0, nl, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (MM_ERR(r))
            return r;
        dst = (uintptr_t)r;
    }
    memcpy((void *)dst, (const void *)old, lab_min(ol, nl));
    if (flags & MREMAP_DONTUNMAP) {
        k_madvise(old, ol, MADV_DONTNEED);
    } else {
        for (uintptr_t p = old, q, oend = old + ol; p < oend; p = q) {
            lab_mmpool_segment(p, oend, &q);
            release(p, q, false);
        }
    }
    return (long)dst;
}

/* mremap of a clean pooled region (every page LIVE, untainted). Returns the new address, -errno,
 * or 0 to leave the call to the kernel (which can do it in one piece). Locked. */
static long remap_clean(uintptr_t old, size_t ol, size_t nl, int flags, uintptr_t nw)
{
    if (!(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))) {
        long r = remap_in_place(old, ol, nl);
        if (r)
            return r;
        if (!(flags & MREMAP_MAYMOVE))
            return -ENOMEM;
    }
    if (!one_vma(old, ol))
        return remap_copy(old, ol, nl, flags, nw);
    if ((flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) || nl > mm_max)
        return 0; /* the kernel moves it (out of the pool) */
    unsigned kind;
    uintptr_t dst = lab_mmpool_take(nl >> LAB_PAGE_SHIFT, &kind);
    if (!dst)
        return 0;
    /* the kernel moves the pages (no copy) over our reservation and grows the mapping there */
    long r = k_mremap(old, ol, nl, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    if ((uintptr_t)r != dst) {
        /* the destination may or may not have been unmapped: never reuse it blindly */
        lab_mmpool_mark(dst, dst + nl, LAB_MM_FOREIGN);
        return r;
    }
    for (uintptr_t p = old, q, oend = old + ol; p < oend; p = q) {
        lab_mmpool_segment(p, oend, &q);
        lab_mmpool_reclaim(p, q); /* a hole now: reserve it again */
    }
    return r;
}

/* MREMAP_FIXED into the area: the pooled pages there leave the pool (the kernel, or remap_copy,
 * maps over them). */
static void remap_dest_leaves(uintptr_t nw, uintptr_t nend, bool locked)
{
    for (uintptr_t p = nw, q; p < nend; p = q) {
        unsigned s = lab_mmpool_segment(p, nend, &q);
        if (is_free(s)) {
            if (!locked)
                lab_fatal("MREMAP_FIXED over free pooled pages in a signal handler that interrupted mmap", (void *)p);
            lab_mmpool_take_range(p, q);
        }
        if (s != LAB_MM_OUTSIDE && s != LAB_MM_FOREIGN)
            lab_mmpool_mark(p, q, LAB_MM_FOREIGN);
    }
}

/* Anything else: the kernel does it, then the records follow what it did. */
static long remap_kernel(uintptr_t old, size_t old_len, size_t new_len, int flags, uintptr_t nw, bool locked)
{
    size_t ol = lab_align_up(old_len, PS), nl = lab_align_up(new_len, PS);
    uintptr_t oend = old + ol;
    long r = k_mremap(old, old_len, new_len, flags, nw);
    if (MM_ERR(r))
        return r;
    uintptr_t gone = 0, gone_end = 0;
    if ((uintptr_t)r != old) {
        if (flags & MREMAP_DONTUNMAP)
            lab_mmpool_taint(old, oend); /* still mapped, but its flags changed */
        else
            gone = old, gone_end = oend;
    } else if (nl < ol) {
        gone = old + nl, gone_end = oend;
    }
    for (uintptr_t p = gone, q; p < gone_end; p = q) {
        unsigned s = lab_mmpool_segment(p, gone_end, &q);
        if (s == LAB_MM_OUTSIDE || is_free(s))
            continue;
        if (locked)
            lab_mmpool_reclaim(p, q); /* a hole now: reserve it again */
        else
            lab_mmpool_mark(p, q, LAB_MM_FOREIGN);
    }
    return r;
}

static long mm_remap(uintptr_t old, size_t old_len, size_t new_len, int flags, uintptr_t nw)
{
    size_t ol = lab_align_up(old_len, PS), nl = lab_align_up(new_len, PS);
    bool fixed = flags & MREMAP_FIXED, maymove = flags & MREMAP_MAYMOVE, dontunmap = flags & MREMAP_DONTUNMAP;
    uintptr_t oend = old + ol, nend = nw + nl;
    /* the kernel's own argument errors: it refuses these before touching anything */
    bool bad = (flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP)) || (fixed && !maymove) ||
               (dontunmap && (!maymove || ol != nl)) || (old & (PS - 1)) || !nl || ol < old_len ||
               nl < new_len || oend < old ||
               (fixed && ((nw & (PS - 1)) || nend < nw || (nw < oend && old < nend)));
    if (bad)
        return k_mremap(old, old_len, new_len, flags, nw);
    check_not_malloc("mremap of memory that malloc owns", old, oend);
    if (fixed)
        check_not_malloc("mremap over memory that malloc owns", nw, nend);
    bool in_old = lab_mmpool_touches(old, oend), in_new = fixed && lab_mmpool_touches(nw, nend);
    if (!in_old && !in_new)
        return k_mremap(old, old_len, new_len, flags, nw);
    if (!ol && in_old)
        return -EINVAL; /* old_len 0 duplicates shared mappings only; pooled pages are private */
    bool locked = mm_enter();
    bool clean = ol > 0, hole = false;
    for (uintptr_t p = old, q; p < oend; p = q) {
        unsigned s = lab_mmpool_segment(p, oend, &q);
        hole |= is_free(s);
        clean &= s == LAB_MM_LIVE;
    }
    long r = 0;
    if (hole) {
        r = -EFAULT; /* the old range is not one mapping: part of it is unmapped */
    } else {
        if (in_new)
            remap_dest_leaves(nw, nend, locked);
        if (clean && locked)
            r = remap_clean(old, ol, nl, flags, nw);
        if (!r)
            r = remap_kernel(old, old_len, new_len, flags, nw, locked);
    }
    if (locked)
        mm_leave();
    if (in_old)
        lab_add_relaxed(&st_remaps, 1);
    return r;
}

static lab_noinline void *mremap_slow(void *old, size_t old_len, size_t new_len, int flags, void *nw)
{
    return ret_ptr(mm_remap((uintptr_t)old, old_len, new_len, flags, (uintptr_t)nw));
}

LAB_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *nw = NULL;
    if ((unsigned)flags > 7) /* as glibc 2.36: unknown flags fail before the system call */
        return ret_ptr(-EINVAL);
    if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) { /* glibc reads the fifth argument only then */
        va_list ap;
        va_start(ap, flags);
        nw = va_arg(ap, void *);
        va_end(ap);
    }
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_ptr(k_mremap((uintptr_t)old, old_len, new_len, flags, (uintptr_t)nw));
    return mremap_slow(old, old_len, new_len, flags, nw);
}

/* ------------------------------------------------------------------------------------------
 * mprotect, pkey_mprotect, mlock, mlock2, munlock: applied up to the first free pooled page
 * (the kernel stops at a hole too, keeping what it changed before it), then ENOMEM. */

/* The error mprotect gives for prot when its range starts on a hole. */
static long prot_error(int prot)
{
    int grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
    if (grows == (PROT_GROWSDOWN | PROT_GROWSUP) || ((prot & ~grows) & ~(RW | PROT_EXEC | PROT_SEM)))
        return -EINVAL;
    return -ENOMEM;
}

/* nr: SYS_mprotect, SYS_pkey_mprotect, SYS_mlock, SYS_mlock2 or SYS_munlock; a: page aligned. */
static long mm_upto_hole(long nr, uintptr_t a, uintptr_t end, long arg, long pkey, bool taint)
{
    bool locked = mm_enter();
    uintptr_t hole = first_free(a, end);
    long r = 0;
    if (hole > a)
        r = sys6(nr, (long)a, (long)(hole - a), arg, pkey, 0, 0);
    if (taint) /* even on failure: a reset where a cache would do is always safe */
        lab_mmpool_taint(a, hole);
    if (r == 0 && hole < end)
        r = hole == a && (nr == SYS_mprotect || nr == SYS_pkey_mprotect) ? prot_error((int)arg) : -ENOMEM;
    if (locked)
        mm_leave();
    return r;
}

static long mm_protect(long nr, uintptr_t a, size_t len, int prot, int pkey)
{
    uintptr_t end;
    if ((a & (PS - 1)) || !len || !mm_end(a, len, &end) || !lab_mmpool_touches(a, end))
        return sys6(nr, (long)a, (long)len, prot, pkey, 0, 0);
    return mm_upto_hole(nr, a, end, prot, pkey, prot != RW || nr == SYS_pkey_mprotect);
}

static lab_noinline int protect_slow(long nr, void *addr, size_t len, int prot, int pkey)
{
    return ret_int(mm_protect(nr, (uintptr_t)addr, len, prot, pkey));
}

LAB_EXPORT int mprotect(void *addr, size_t len, int prot)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(k_mprotect((uintptr_t)addr, len, prot));
    return protect_slow(SYS_mprotect, addr, len, prot, -1);
}

LAB_EXPORT int pkey_mprotect(void *addr, size_t len, int prot, int pkey)
{
    long nr = pkey == -1 ? SYS_mprotect : SYS_pkey_mprotect; /* as glibc: -1 is plain mprotect */
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(sys6(nr, (long)addr, (long)len, prot, pkey, 0, 0));
    return protect_slow(nr, addr, len, prot, pkey);
}

/* mlock & co. round the start down and the length up themselves. */
static lab_noinline int lockop_slow(long nr, uintptr_t addr, size_t len, long flags);
static long mm_lockop(long nr, uintptr_t addr, size_t len, long flags)
{
    uintptr_t a = lab_align_down(addr, PS), end;
    if (!len || len + (addr - a) < len || !mm_end(a, len + (addr - a), &end) || !lab_mmpool_touches(a, end))
        return sys6(nr, (long)addr, (long)len, flags, 0, 0, 0);
    if (nr == SYS_mlock2 && (flags & ~(long)MLOCK_ONFAULT))
        return -EINVAL;
    return mm_upto_hole(nr, a, end, flags, 0, nr != SYS_munlock);
}

static lab_noinline int lockop_slow(long nr, uintptr_t addr, size_t len, long flags)
{
    return ret_int(mm_lockop(nr, addr, len, flags));
}

LAB_EXPORT int mlock(const void *addr, size_t len)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(sys6(SYS_mlock, (long)addr, (long)len, 0, 0, 0, 0));
    return lockop_slow(SYS_mlock, (uintptr_t)addr, len, 0);
}

LAB_EXPORT int mlock2(const void *addr, size_t len, unsigned int flags)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(sys6(SYS_mlock2, (long)addr, (long)len, flags, 0, 0, 0));
    return lockop_slow(SYS_mlock2, (uintptr_t)addr, len, flags);
}

LAB_EXPORT int munlock(const void *addr, size_t len)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(sys6(SYS_munlock, (long)addr, (long)len, 0, 0, 0, 0));
    return lockop_slow(SYS_munlock, (uintptr_t)addr, len, 0);
}

/* While mlockall is in force, new mappings go to the kernel (MCL_FUTURE must lock them) and
 * unmapped pooled pages are reset rather than cached (MCL_CURRENT locked them). */
LAB_EXPORT int mlockall(int flags)
{
    long r = sys6(SYS_mlockall, flags, 0, 0, 0, 0, 0);
    if (r == 0)
        lab_store_relaxed(&mm_lockall, 1);
    return ret_int(r);
}

LAB_EXPORT int munlockall(void)
{
    long r = sys6(SYS_munlockall, 0, 0, 0, 0, 0, 0);
    if (r == 0)
        lab_store_relaxed(&mm_lockall, 0);
    return ret_int(r);
}

/* ------------------------------------------------------------------------------------------
 * madvise */

/* Advice that changes no flag of the mapping and leaves its pages readable as they were (or zero). */
static bool advice_benign(int adv)
{
    switch (adv) {
    case MADV_NORMAL:
    case MADV_WILLNEED:
    case MADV_DONTNEED:
    case MADV_FREE:
    case 20: /* MADV_COLD */
    case 21: /* MADV_PAGEOUT */
    case 22: /* MADV_POPULATE_READ */
    case 23: /* MADV_POPULATE_WRITE */
    case 24: /* MADV_DONTNEED_LOCKED */
        return true;
    default:
        return false;
    }
}

static long mm_advise(uintptr_t a, size_t len, int adv)
{
    uintptr_t end;
    if ((a & (PS - 1)) || !len || !mm_end(a, len, &end) || !lab_mmpool_touches(a, end))
        return k_madvise(a, len, adv);
    long r = k_madvise(a, 0, adv); /* the kernel checks the advice before anything else */
    if (r)
        return r;
    bool locked = mm_enter();
    bool taint = !advice_benign(adv);
    long unmapped = 0;
    for (uintptr_t p = a, q; p < end && r == 0; p = q) {
        if (is_free(lab_mmpool_segment(p, end, &q))) {
            unmapped = -ENOMEM; /* skipped like a hole, reported at the end like one */
            continue;
        }
        for (uintptr_t q2; q < end && !is_free(lab_mmpool_segment(q, end, &q2));)
            q = q2;
        if (taint)
            lab_mmpool_taint(p, q);
        r = k_madvise(p, q - p, adv);
        if (r == -ENOMEM)
            unmapped = r, r = 0;
    }
    if (locked)
        mm_leave();
    return r ? r : unmapped;
}

static lab_noinline int madvise_slow(void *addr, size_t len, int adv)
{
    return ret_int(mm_advise((uintptr_t)addr, len, adv));
}

LAB_EXPORT int madvise(void *addr, size_t len, int adv)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(k_madvise((uintptr_t)addr, len, adv));
    return madvise_slow(addr, len, adv);
}

/* ------------------------------------------------------------------------------------------
 * start-up, fork, trim, statistics */

void lab_mmap_init(bool on, size_t max_bytes, size_t cache_bytes, unsigned purge_delay_ms, bool verbose)
{
    if (!on)
        return;
    long pers = sys6(SYS_personality, 0xffffffffl, 0, 0, 0, 0, 0);
    if (!MM_ERR(pers) && (pers & READ_IMPLIES_EXEC)) {
        /* the kernel would add PROT_EXEC to every readable mapping; pooled pages would not have it */
        if (verbose)
            lab_message("LABYRINTH_MMAP left off: READ_IMPLIES_EXEC personality", NULL);
        return;
    }
    mm_max = lab_align_down(lab_min(max_bytes, (size_t)256 << 20), PS);
    lab_mmpool_setup(mm_max, cache_bytes, purge_delay_ms);
    lab_store_relaxed(&mm_on, 1);
}

/* fork from a handler that interrupted this thread's mmap: the lock stays with that call, which
 * resumes (in the parent and in the child) when the handler returns */
static bool fork_took;

void lab_mmap_fork_prepare(void)
{
    fork_took = lab_load_relaxed(&mm_on) && mm_enter();
}

void lab_mmap_fork_parent(void)
{
    if (fork_took)
        mm_leave();
}

void lab_mmap_fork_child(void)
{
    if (!fork_took)
        return;
    lab_lock_reset(&lab_mmpool_lock); /* lab_locks_held: the pool's child handler, after this, zeroes it */
    mm_depth = 0;
}

void lab_mmap_trim(void)
{
    if (!lab_load_relaxed(&mm_on) || !mm_enter())
        return;
    lab_mmpool_maintain(0, true);
    mm_leave();
}

LAB_EXPORT int labyrinth_mmap_stats(struct labyrinth_mmap_stats *out)
{
    memset(out, 0, sizeof *out);
    out->enabled = (uint64_t)lab_load_relaxed(&mm_on);
    out->pooled_maps = lab_load_relaxed(&st_pooled);
    out->cache_hits = lab_load_relaxed(&st_hits);
    out->kernel_maps = lab_load_relaxed(&st_kernel);
    out->fallbacks = lab_load_relaxed(&st_fallbacks);
    out->pooled_unmaps = lab_load_relaxed(&st_unmaps);
    out->remaps = lab_load_relaxed(&st_remaps);
    if (out->enabled && mm_enter()) {
        struct lab_mmpool_counts c;
        lab_mmpool_counts(&c);
        mm_leave();
        out->purged_bytes = c.purged_pages << LAB_PAGE_SHIFT;
        out->live_bytes = c.live_pages << LAB_PAGE_SHIFT;
        out->cached_bytes = c.cached_pages << LAB_PAGE_SHIFT;
        out->reserved_bytes = c.reserved_pages << LAB_PAGE_SHIFT;
    }
    return 0;
}
