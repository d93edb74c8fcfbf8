/* mmap.c — the memory-mapping names (mmap, mmap64, munmap, mremap, mprotect, pkey_mprotect,
 * madvise, posix_madvise, process_madvise, mlock, mlock2, munlock, mlockall, munlockall) and
 * pooled anonymous mmap (LABYRINTH_MMAP=1). Layer 5: uses core/os (raw system calls), the malloc
 * page map (read only, to refuse unmapping malloc's memory) and preload/mmap_pool (the area).
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
 *   mmap ─ poolable? ─ map_pooled: take a run, mprotect RW, clear (the lock within a bounded
 *        │             wait, else the kernel: its holder may be a stopped thread)
 *        └ MAP_FIXED over the area: fixed_locked (the pages leave the pool) └ else the kernel
 *   munmap ─ not the area: the kernel (abort if it is malloc's memory)
 *          └ unmap_locked: plan (LIVE → TRANSIT), then per segment: TRANSIT → release
 *            (mprotect NONE → CACHED, or reset → FRESH); FRESH/CACHED → nothing (already
 *            unmapped); FOREIGN/outside → the kernel
 *   mremap ─ shrink or keep in place: release the tail (the kernel needs a mapping at old only)
 *          ├ pooled and clean: grow in place over free pooled pages; move = kernel mremap into a
 *          │ pooled run (a copy if the kernel holds the region as several mappings)
 *          └ else the kernel, then the records follow (refused only for the pool's own seams
 *            in a LIVE region: moved one kernel mapping at a time, remap_split)
 *   mprotect/mlock ─ the kernel on the prefix before the first free pooled page, then ENOMEM
 *   madvise ─ the kernel on every part but free pooled pages (ENOMEM at the end, as for holes);
 *             posix_madvise, and process_madvise on this process, the same way
 * Any change of protection, locking or VMA flags taints LIVE pages: they are reset, not cached,
 * when unmapped, so no later owner inherits them.
 *
 * Locking: no system call is made with lab_mmpool_lock held. Each call on the area is an
 * operation (mm_op_t, see mmap_pool.h): locked, it waits until no page of its ranges is held by
 * another operation, claims them (BUSY) and decides; unlocked, it makes its system calls and
 * writes what they did into its pages' states; locked again, it publishes them. Calls on
 * disjoint ranges thus make their system calls side by side, and calls on overlapping ranges one
 * after the other, in an order the kernel's own mmap lock could have given them. Pages handed out
 * or taken back are TRANSIT meanwhile: unmapped, in the program's eyes, until the call returns.
 * A signal handler that interrupted this thread inside one of these calls never takes the lock
 * nor waits for pages: its mmap goes to the kernel, its munmap of pooled pages unmaps them for
 * real (they stay FOREIGN), and the rare calls that would need the free lists (MAP_FIXED or
 * MREMAP_FIXED over free pooled pages) abort with a message. No handler runs while a thread holds
 * the lock (mmap_pool.c: lab_mmpool_defer_signal puts it off until the lock is dropped), so a
 * thread a collector stops with a signal (Boehm, Mono) never keeps the others waiting; a new
 * mapping still goes to the kernel when the lock does not come soon (mm_enter_bounded). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "mmap.h"
#include "mmap_pool.h"
#include "pool.h"

#define LAB_EXPORT __attribute__((visibility("default")))
/* The entry points whose work, with pooling off, is one system call for the program: in a
 * section of their own (mmap.h: lab_sys_entry_pc), so that a signal landing in them is not taken
 * for one that interrupted the allocator. */
#define LAB_SYS_ENTRY __attribute__((section("lab_sys_entry"), noinline))
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
/* This thread is inside one of these calls (it may hold lab_mmpool_lock, or pages BUSY): a
 * handler that interrupted it must neither take the lock nor wait for pages. */
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
    lab_mmpool_lock_take();
    return true;
}

/* mm_enter, false too when the lock does not come soon (lab_mmpool_lock_take_bounded): its holder
 * is off the CPU. For a new mapping only, which then goes to the kernel. Any other call waits:
 * acting without the lock on pages another thread's call holds lost that call's bookkeeping (a
 * taint written over pages just cached left them LIVE for good: stop 47's CI). */
static inline bool mm_enter_bounded(void)
{
    if (mm_depth)
        return false;
    mm_depth = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (lab_mmpool_lock_take_bounded())
        return true;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    mm_depth = 0;
    return false;
}

static inline void mm_leave(void)
{
    lab_mmpool_lock_drop();
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

/* The state's kind, or LAB_MM_OUTSIDE / LAB_MM_NEWER as they are. */
static inline unsigned kind_of(unsigned s) { return s & (LAB_MM_OUTSIDE | LAB_MM_NEWER) ? s : s & LAB_MM_KIND; }

/* Unmapped, in the program's eyes: free or in transit, or in a chunk the caller's operation saw
 * as a hole when it began (NEWER). */
static inline bool is_hole(unsigned s)
{
    unsigned k = kind_of(s);
    return k == LAB_MM_FRESH || k == LAB_MM_CACHED || k == LAB_MM_TRANSIT || k == LAB_MM_NEWER;
}

/* The first pooled hole of [a, end) (end if none): where a kernel walk over mappings would find a
 * hole. mark: the operation's (lab_mmpool_segment), UINT64_MAX in a handler. */
static uintptr_t first_hole(uintptr_t a, uintptr_t end, uint64_t mark)
{
    for (uintptr_t p = a, q; p < end; p = q)
        if (is_hole(lab_mmpool_segment(p, end, &q, mark)))
            return p;
    return end;
}

/* True if [a, end) overlaps memory of the malloc page pool (a chunk, or a huge block). */
static bool malloc_owns(uintptr_t a, uintptr_t end)
{
    /* the chunks in the fast map's region are not in the two-level map: their fast-map entries
     * name them (pool.h), the first page's for the whole chunk */
    uintptr_t rsize = __atomic_load_n(&lab_fmap.size, __ATOMIC_ACQUIRE); /* (as lab_fmap_in) */
    if (rsize) {
        uintptr_t lo = lab_max(a, lab_fmap.base), hi = lab_min(end, lab_fmap.base + rsize);
        for (uintptr_t g = lab_align_down(lo, LAB_CHUNK_SIZE); g < hi; g += LAB_CHUNK_SIZE)
            if (lab_chunk_is_ours(lab_pagemap_lookup(g)))
                return true;
    }
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
 * operations: claimed locked, system calls unlocked, published locked */

typedef struct {
    uintptr_t lo[3], hi[3];     /* the ranges it holds BUSY, published at its end */
    bool taken[3];              /* ... a run it took (lab_mmpool_take): its own in any chunk */
    unsigned n;
    uint64_t mark;              /* lab_mmpool_begin's: chunks added later were holes then */
    size_t room;                /* cache room it reserved, pages */
    lab_mmpool_jobs_t jobs;     /* purges and a chunk release, done before it ends */
} mm_op_t;

static inline void op_init(mm_op_t *op)
{
    op->n = 0;
    op->room = 0;
    op->jobs.n = op->jobs.ran = 0;
}

static inline void op_range(mm_op_t *op, uintptr_t a, uintptr_t end, bool taken)
{
    op->lo[op->n] = a;
    op->hi[op->n] = end;
    op->taken[op->n] = taken;
    op->n++;
}

/* Entered (mm_enter): wait until no page of the op's ranges is BUSY, then begin and claim them.
 * It never waits once it holds pages, so waits cannot form a cycle. */
static void op_begin(mm_op_t *op)
{
    for (unsigned i = 0; i < op->n;) {
        if (lab_mmpool_blocked(op->lo[i], op->hi[i])) {
            lab_mmpool_wait();
            i = 0;
        } else {
            i++;
        }
    }
    op->mark = lab_mmpool_begin();
    for (unsigned i = 0; i < op->n; i++)
        lab_mmpool_claim(op->lo[i], op->hi[i]);
}

static inline void op_unlock(void) { lab_mmpool_lock_drop(); }
static inline void op_lock(void) { lab_mmpool_lock_take(); }

/* Locked: do the jobs found so far (unlocked) and record them. Returns the runs purged. */
static size_t op_jobs(mm_op_t *op)
{
    if (!op->jobs.n)
        return 0;
    op_unlock();
    lab_mmpool_jobs_run(&op->jobs);
    op_lock();
    return lab_mmpool_jobs_done(&op->jobs);
}

/* Locked: publish everything the op holds, end it and leave. */
static void op_end(mm_op_t *op)
{
    op_jobs(op);
    for (unsigned i = 0; i < op->n; i++)
        lab_mmpool_publish(op->lo[i], op->hi[i], op->taken[i] ? UINT64_MAX : op->mark);
    lab_mmpool_cache_unreserve(op->room);
    bool wake = lab_mmpool_end();
    mm_leave();
    if (wake)
        lab_mmpool_wake();
}

/* Locked: a free run of n pages for the op, TRANSIT (the area grows if it must), or 0. */
static uintptr_t op_take(mm_op_t *op, size_t n, unsigned *kind)
{
    uintptr_t a = lab_mmpool_take(n, kind);
    if (!a && lab_mmpool_grow())
        a = lab_mmpool_take(n, kind);
    if (a)
        op_range(op, a, a + (n << LAB_PAGE_SHIFT), true);
    return a;
}

/* Locked, on the op's [a, end): its LIVE pages become TRANSIT — unmapped from here on, in the
 * program's eyes — and tainted when they are to be reset rather than cached (tainted already,
 * mlockall in force, no room in the cache). */
static void plan_release(mm_op_t *op, uintptr_t a, uintptr_t end)
{
    for (uintptr_t p = a, q; p < end; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q, op->mark);
        if (kind_of(s) != LAB_MM_LIVE)
            continue;
        size_t n = (q - p) >> LAB_PAGE_SHIFT;
        bool cache = !(s & LAB_MM_TAINT) && !lab_load_relaxed(&mm_lockall) && lab_mmpool_cache_room(n, &op->jobs);
        if (cache)
            op->room += n;
        lab_mmpool_mark(p, q, LAB_MM_TRANSIT | (cache ? 0 : LAB_MM_TAINT));
    }
}

/* Unlocked: TRANSIT pages [a, end) of one chunk, the program's until the call, go back: cached
 * PROT_NONE, or (taint, or mprotect refused) reset to fresh reserved pages. 0, or -errno and
 * then they are the program's again. */
static long release(uintptr_t a, uintptr_t end, bool taint)
{
    if (!taint && k_mprotect(a, end - a, PROT_NONE) == 0) {
        lab_mmpool_mark(a, end, LAB_MM_CACHED);
        lab_pool_background_poke(); /* a sleeping purge thread gets a deadline (purge.c) */
        return 0;
    }
    long r = lab_mmpool_reset(a, end);
    if (r)
        lab_mmpool_mark(a, end, LAB_MM_LIVE | LAB_MM_TAINT);
    return r;
}

/* Unlocked: the system calls of unmapping the op's [a, end), planned (plan_release). Stops at
 * the first error; what follows it stays mapped. *gave: pooled pages were given back. */
static long unmap_run(mm_op_t *op, uintptr_t a, uintptr_t end, bool *gave)
{
    long r = 0;
    uintptr_t p = a, q;
    for (; p < end && r == 0; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q, op->mark);
        switch (kind_of(s)) {
        case LAB_MM_TRANSIT:
            r = release(p, q, s & LAB_MM_TAINT);
            *gave |= r == 0;
            break;
        case LAB_MM_FOREIGN:
            r = k_munmap(p, q - p);
            if (r == 0)
                lab_mmpool_reclaim(p, q);
            break;
        case LAB_MM_OUTSIDE:
            r = k_munmap(p, q - p);
            break;
        default:
            break; /* not mapped, as far as the program knows: nothing to do, as for a hole */
        }
    }
    for (; p < end; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q, op->mark);
        if (kind_of(s) == LAB_MM_TRANSIT)
            lab_mmpool_mark(p, q, LAB_MM_LIVE | (s & LAB_MM_TAINT));
    }
    return r;
}

/* ------------------------------------------------------------------------------------------
 * mmap */

static long map_pooled(size_t len)
{
    if (!mm_enter_bounded())
        return 0;
    mm_op_t op;
    op_init(&op);
    op_begin(&op);
    size_t n = (len + PS - 1) >> LAB_PAGE_SHIFT;
    unsigned kind;
    uintptr_t a = op_take(&op, n, &kind), end = a + (n << LAB_PAGE_SHIFT);
    lab_mmpool_maintain(lab_clock_ms(), false, &op.jobs);
    long r = 0;
    if (a) {
        op_unlock();
        if (k_mprotect(a, end - a, RW) == 0) {
            if (kind == LAB_MM_CACHED) {
                mm_clear(a, n);
                lab_add_relaxed(&st_hits, 1);
            }
            lab_mmpool_mark(a, end, LAB_MM_LIVE);
            r = (long)a;
        } else {
            lab_mmpool_mark(a, end, kind); /* still PROT_NONE: back as it was */
        }
        op_lock();
    }
    op_end(&op);
    return r;
}

/* Unlocked, before a MAP_FIXED or MREMAP_FIXED onto the op's [a, end): its pages leave the pool
 * (FOREIGN) first, so a fork child never sees them ours. Free pooled pages are unmapped here,
 * FOREIGN|TAINT: the kernel's call may fail after it unmapped its target, or before, and only a
 * real hole can be told apart afterwards (fixed_done). */
static void fixed_take(uintptr_t a, uintptr_t end, uint64_t mark)
{
    for (uintptr_t p = a, q; p < end; p = q) {
        unsigned k = kind_of(lab_mmpool_segment(p, end, &q, mark));
        if (k == LAB_MM_FRESH || k == LAB_MM_CACHED) {
            lab_mmpool_mark(p, q, LAB_MM_FOREIGN | LAB_MM_TAINT);
            k_munmap(p, q - p); /* if it fails, the kernel's call replaces them or they stay FOREIGN */
        } else if (k == LAB_MM_LIVE) {
            lab_mmpool_mark(p, q, LAB_MM_FOREIGN);
        }
    }
}

/* Unlocked, after that call: the pages fixed_take unmapped are the program's mapping now (FOREIGN)
 * or, if the call failed, reserved again as fresh pages (FOREIGN if something got there first). */
static void fixed_done(uintptr_t a, uintptr_t end, uint64_t mark, bool failed)
{
    for (uintptr_t p = a, q; p < end; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q, mark);
        if (s & (LAB_MM_OUTSIDE | LAB_MM_NEWER) || (s & LAB_MM_KIND) != LAB_MM_FOREIGN || !(s & LAB_MM_TAINT))
            continue;
        if (failed)
            lab_mmpool_reclaim(p, q);
        else
            lab_mmpool_mark(p, q, LAB_MM_FOREIGN);
    }
}

/* MAP_FIXED or MAP_FIXED_NOREPLACE over part of the area. The program's mapping replaces pooled
 * pages: they leave the pool (FOREIGN) and come back when the program unmaps them. Free pooled
 * pages are a hole by the time the kernel maps, so NOREPLACE checks only the others. */
static long fixed_locked(uintptr_t a, uintptr_t end, size_t len, int prot, int flags, int fd, long off)
{
    mm_op_t op;
    op_init(&op);
    op_range(&op, a, end, false);
    op_begin(&op);
    bool live = false;
    for (uintptr_t p = a, q; p < end; p = q)
        live |= kind_of(lab_mmpool_segment(p, end, &q, op.mark)) == LAB_MM_LIVE;
    long r = -EEXIST; /* NOREPLACE over live pages: mapped, in the program's eyes */
    if (!(flags & MAP_FIXED_NOREPLACE) || !live) {
        op_unlock();
        fixed_take(a, end, op.mark);
        r = k_mmap(a, len, prot, flags, fd, off);
        fixed_done(a, end, op.mark, MM_ERR(r));
        op_lock();
    }
    op_end(&op);
    return r;
}

/* The same from a handler that interrupted this thread's call: no lock, no free list. */
static long fixed_nested(uintptr_t a, uintptr_t end, size_t len, int prot, int flags, int fd, long off)
{
    bool live = false;
    for (uintptr_t p = a, q; p < end; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q, UINT64_MAX);
        if (is_hole(s))
            lab_fatal("MAP_FIXED over free pooled pages in a signal handler that interrupted mmap", (void *)p);
        live |= kind_of(s) == LAB_MM_LIVE;
    }
    if ((flags & MAP_FIXED_NOREPLACE) && live)
        return -EEXIST;
    lab_mmpool_mark_live(a, end);
    return k_mmap(a, len, prot, flags, fd, off);
}

static long map_fixed(uintptr_t a, size_t len, int prot, int flags, int fd, long off)
{
    uintptr_t end;
    if ((a & (PS - 1)) || !len || !mm_end(a, len, &end))
        return k_mmap(a, len, prot, flags, fd, off); /* the kernel's EINVAL */
    /* NOREPLACE over malloc's pages: mapped, so the kernel's answer (a program probing for free
     * addresses gets it; found by review: it aborted here) */
    if ((flags & MAP_FIXED_NOREPLACE) && malloc_owns(a, end))
        return -EEXIST;
    check_not_malloc("mmap(MAP_FIXED) over memory that malloc owns", a, end);
    if (!lab_mmpool_touches(a, end))
        return k_mmap(a, len, prot, flags, fd, off);
    if (mm_enter())
        return fixed_locked(a, end, len, prot, flags, fd, off);
    return fixed_nested(a, end, len, prot, flags, fd, off);
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
LAB_EXPORT LAB_SYS_ENTRY void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_ptr(k_mmap((uintptr_t)addr, len, prot, flags, fd, off));
    return mmap_slow(addr, len, prot, flags, fd, off);
}

LAB_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

/* ------------------------------------------------------------------------------------------
 * munmap */

static long unmap_locked(uintptr_t a, uintptr_t end)
{
    mm_op_t op;
    op_init(&op);
    op_range(&op, a, end, false);
    op_begin(&op);
    plan_release(&op, a, end);
    lab_mmpool_maintain(lab_clock_ms(), false, &op.jobs);
    op_unlock();
    bool gave = false;
    long r = unmap_run(&op, a, end, &gave);
    op_lock();
    op_end(&op);
    if (gave)
        lab_add_relaxed(&st_unmaps, 1);
    return r;
}

/* From a handler that interrupted this thread's call: pooled pages are unmapped for real and
 * stay FOREIGN (no list may change). */
static long unmap_nested(uintptr_t a, uintptr_t end)
{
    long r = 0;
    bool gave = false;
    for (uintptr_t p = a, q; p < end && r == 0; p = q) {
        switch (kind_of(lab_mmpool_segment(p, end, &q, UINT64_MAX))) {
        case LAB_MM_LIVE:
            if ((r = k_munmap(p, q - p)) == 0) {
                lab_mmpool_mark_live(p, q);
                gave = true;
            }
            break;
        case LAB_MM_FOREIGN:
        case LAB_MM_OUTSIDE:
            r = k_munmap(p, q - p);
            break;
        default:
            break; /* free or in transit: not mapped, as far as the program knows */
        }
    }
    if (gave)
        lab_add_relaxed(&st_unmaps, 1);
    return r;
}

static long mm_unmap(uintptr_t a, size_t len)
{
    uintptr_t end;
    if ((a & (PS - 1)) || !len || !mm_end(a, len, &end))
        return k_munmap(a, len); /* the kernel's EINVAL */
    check_not_malloc("munmap of memory that malloc owns", a, end);
    if (!lab_mmpool_touches(a, end))
        return k_munmap(a, len);
    return mm_enter() ? unmap_locked(a, end) : unmap_nested(a, end);
}

static lab_noinline int munmap_slow(void *addr, size_t len) { return ret_int(mm_unmap((uintptr_t)addr, len)); }

LAB_EXPORT LAB_SYS_ENTRY int munmap(void *addr, size_t len)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(k_munmap((uintptr_t)addr, len));
    return munmap_slow(addr, len);
}

/* ------------------------------------------------------------------------------------------
 * mremap. The locked functions below enter and return with the lock held, and drop it around
 * their system calls; the op holds the old range (and what it may grow into in place) and the
 * MREMAP_FIXED destination. */

/* Unmap the op's [a, end) as munmap would: the tail a shrinking mremap cuts off. */
static long remap_cut(mm_op_t *op, uintptr_t a, uintptr_t end)
{
    if (a >= end)
        return 0;
    plan_release(op, a, end);
    op_unlock();
    bool gave = false;
    long r = unmap_run(op, a, end, &gave);
    op_lock();
    return r;
}

/* Shrink or keep a region in place. The kernel only needs a mapping at old (k: its page's kind,
 * not a hole) and unmaps the tail as munmap does: holes in the part kept or cut do not matter. */
static long remap_shrink(mm_op_t *op, uintptr_t old, uintptr_t oend, size_t nl, unsigned k)
{
    long r = 0;
    if (k != LAB_MM_LIVE) { /* the kernel's page: let it say whether a mapping is there */
        op_unlock();
        r = k_mremap(old, PS, PS, 0, 0);
        op_lock();
    }
    if (!MM_ERR(r))
        r = remap_cut(op, old + nl, oend);
    return r ? r : (long)old;
}

/* Grow a clean pooled region in place over free pooled pages (unmapped in the program's eyes):
 * old, or 0 when it cannot. */
static long remap_in_place(mm_op_t *op, uintptr_t old, size_t ol, size_t nl)
{
    uintptr_t oend = old + ol, gend = old + nl;
    size_t cached = 0;
    for (uintptr_t p = oend, q; p < gend; p = q) {
        unsigned s = lab_mmpool_segment(p, gend, &q, op->mark);
        if (s != (LAB_MM_FRESH | LAB_MM_BUSY) && s != (LAB_MM_CACHED | LAB_MM_BUSY))
            return 0; /* not all free pooled pages (the op claimed them: they are BUSY) */
        if (s == (LAB_MM_CACHED | LAB_MM_BUSY))
            cached += (q - p) >> LAB_PAGE_SHIFT;
    }
    for (uintptr_t p = oend, q; p < gend; p = q) {
        lab_mmpool_segment(p, gend, &q, op->mark);
        lab_mmpool_mark(p, q, LAB_MM_TRANSIT);
    }
    op_unlock();
    long r = 0;
    if (k_mprotect(oend, gend - oend, RW) == 0) {
        if (cached)
            mm_clear(oend, (gend - oend) >> LAB_PAGE_SHIFT);
        for (uintptr_t p = oend, q; p < gend; p = q) {
            lab_mmpool_segment(p, gend, &q, op->mark);
            lab_mmpool_mark(p, q, LAB_MM_LIVE);
        }
        r = (long)old;
    } else {
        for (uintptr_t p = oend, q; p < gend; p = q) {
            lab_mmpool_segment(p, gend, &q, op->mark);
            lab_mmpool_reset(p, q); /* back to fresh pages, old bytes of cached ones dropped */
        }
    }
    op_lock();
    return r;
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

/* The length of the first kernel mapping of [a, a+len), whose first page is mapped: halving
 * with the one_vma probe (a few system calls; only when the kernel refused a move). */
static size_t vma_prefix(uintptr_t a, size_t len)
{
    if (one_vma(a, len))
        return len;
    size_t lo = PS, hi = len; /* [a, a+lo) lies in one mapping, [a, a+hi) does not */
    while (hi - lo > PS) {
        size_t mid = lab_align_down(lo + (hi - lo) / 2, PS);
        if (one_vma(a, mid))
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Move [from, from+len) to `to` one kernel mapping at a time (MREMAP_FIXED, and `extra`).
 * Returns the bytes moved; *err: the error that stopped it, or 0. */
static size_t move_pieces(uintptr_t from, size_t len, uintptr_t to, int extra, long *err)
{
    size_t off = 0;
    *err = 0;
    while (off < len) {
        size_t n = vma_prefix(from + off, len - off);
        long r = k_mremap(from + off, n, n, MREMAP_MAYMOVE | MREMAP_FIXED | extra, to + off);
        if (MM_ERR(r)) {
            *err = r;
            break;
        }
        off += n;
    }
    return off;
}

/* Unlocked: move [old, old+ol) to dst, ol <= nl, mapping by mapping, each keeping its own
 * protection, lock and flags, the last one grown to nl, as the kernel moves one mapping (extra:
 * MREMAP_DONTUNMAP or 0). For a region that is one pooled mapping in the program's eyes but
 * several in the kernel's (see one_vma), whose pages the program changed, so a copy would lose
 * what it set. On failure what moved is put back (refill: its room at dst is reserved again,
 * PROT_NONE); *stuck if that failed too (dst then holds some of the program's pages). */
static long remap_pieces(uintptr_t old, size_t ol, size_t nl, int extra, uintptr_t dst, bool refill, bool *stuck)
{
    const int mv = MREMAP_MAYMOVE | MREMAP_FIXED;
    const int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE;
    uintptr_t last = old;
    for (size_t n; (n = vma_prefix(last, old + ol - last)) < old + ol - last;)
        last += n;
    size_t lo = last - old, done;
    *stuck = false;
    /* the last mapping first: growing is what a limit (RLIMIT_AS, RLIMIT_MEMLOCK) may refuse */
    long r = k_mremap(last, ol - lo, nl - lo, mv | extra, dst + lo), e;
    if (MM_ERR(r))
        return r;
    if ((done = move_pieces(old, lo, dst, extra, &r)) == lo)
        return (long)dst;
    /* out of mappings half-way (vm.max_map_count): put back what moved */
    *stuck = move_pieces(dst, done, old, 0, &e) != done || MM_ERR(k_mremap(dst + lo, nl - lo, ol - lo, mv, last));
    if (refill && done)
        k_mmap(dst, done, PROT_NONE, fl, -1, 0);
    if (refill)
        k_mmap(dst + lo, nl - lo, PROT_NONE, fl, -1, 0);
    return r;
}

/* Unlocked: a pooled run the op took as the destination of a kernel move that failed. The kernel
 * unmaps a destination all at once, and may do so before it fails: a hole throughout, the run is
 * reserved again, fresh. Still mapped, it cannot be told from a mapping another thread made in
 * the hole meanwhile (a check with msync trusted it: found by review), so it stays out of the
 * pool (FOREIGN): a run's address space lost on a failed move, never another mapping taken. */
static void dst_restore(uintptr_t a, uintptr_t end, unsigned kind)
{
    (void)kind;
    lab_mmpool_reclaim(a, end);
}

/* The kernel refused (EFAULT) to move or grow the op's [old, old+ol), ol <= nl, which the pool
 * split: remap_pieces, into a pooled run if it is at most four times the largest pooled request
 * (so that its next mremap comes here again), else to nw (MREMAP_FIXED) or to space the kernel
 * picks. Locked, like remap_clean. */
static long remap_split(mm_op_t *op, uintptr_t old, size_t ol, size_t nl, int flags, uintptr_t nw)
{
    if (!(flags & MREMAP_MAYMOVE))
        return -ENOMEM; /* it cannot grow in place: what follows is taken */
    unsigned kind = 0;
    bool fixed = flags & MREMAP_FIXED, stuck = false;
    uintptr_t dst = fixed ? nw : nl <= 4 * mm_max ? op_take(op, nl >> LAB_PAGE_SHIFT, &kind) : 0; /* fits a chunk */
    bool pooled = !fixed && dst, reserved = !fixed && !dst;
    op_unlock();
    long r = 0;
    if (reserved) {
        r = k_mmap(0, nl, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        dst = (uintptr_t)r;
    }
    if (!MM_ERR(r))
        r = remap_pieces(old, ol, nl, flags & MREMAP_DONTUNMAP, dst, pooled, &stuck);
    if (pooled && !MM_ERR(r))
        lab_mmpool_mark(dst, dst + nl, LAB_MM_LIVE | LAB_MM_TAINT); /* reset, never cached */
    else if (pooled && stuck)
        lab_mmpool_mark(dst, dst + nl, LAB_MM_FOREIGN);
    else if (pooled)
        dst_restore(dst, dst + nl, kind);
    else if (reserved && MM_ERR(r) && !MM_ERR((long)dst) && !stuck)
        k_munmap(dst, nl);
    op_lock();
    return r;
}

/* Move a clean pooled region by copying it (it spans mappings the kernel will not move as one):
 * to the MREMAP_FIXED address (the caller took it out of the pool), a pooled run, or a new kernel
 * mapping. The old range is released (DONTUNMAP: emptied). */
static long remap_copy(mm_op_t *op, uintptr_t old, size_t ol, size_t nl, int flags, uintptr_t nw)
{
    uintptr_t dst = 0, oend = old + ol;
    unsigned kind = LAB_MM_FRESH;
    bool pooled = !(flags & MREMAP_FIXED) && nl <= mm_max && (dst = op_take(op, nl >> LAB_PAGE_SHIFT, &kind));
    op_unlock();
    if (pooled) {
        if (k_mprotect(dst, nl, RW) != 0) {
            lab_mmpool_mark(dst, dst + nl, kind); /* still PROT_NONE: back as it was */
            op_lock();
            return -ENOMEM;
        }
        if (kind == LAB_MM_CACHED && nl > ol)
            mm_clear(dst + ol, (nl - ol) >> LAB_PAGE_SHIFT); /* the rest is overwritten below */
        lab_mmpool_mark(dst, dst + nl, LAB_MM_LIVE);
    } else {
        long r = flags & MREMAP_FIXED ? k_mmap(nw, nl, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
                                      : k_mmap(0, nl, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (MM_ERR(r)) {
            op_lock();
            return r;
        }
        dst = (uintptr_t)r;
    }
    memcpy((void *)dst, (const void *)old, lab_min(ol, nl));
    if (flags & MREMAP_DONTUNMAP) {
        k_madvise(old, ol, MADV_DONTNEED);
        op_lock();
        return (long)dst;
    }
    op_lock();
    plan_release(op, old, oend);
    op_unlock();
    bool gave = false;
    unmap_run(op, old, oend, &gave);
    op_lock();
    return (long)dst;
}

/* mremap that grows or moves a clean pooled region (every page LIVE, untainted). Returns the new
 * address, -errno, or 0 to leave the call to the kernel (which can do it in one piece). */
static long remap_clean(mm_op_t *op, uintptr_t old, size_t ol, size_t nl, int flags, uintptr_t nw)
{
    if (!(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))) {
        long r = remap_in_place(op, old, ol, nl);
        if (r)
            return r;
        if (!(flags & MREMAP_MAYMOVE))
            return -ENOMEM;
    }
    op_unlock();
    bool one = one_vma(old, ol);
    op_lock();
    if (!one)
        return remap_copy(op, old, ol, nl, flags, nw);
    if ((flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) || nl > mm_max)
        return 0; /* the kernel moves it (out of the pool) */
    unsigned kind;
    uintptr_t dst = op_take(op, nl >> LAB_PAGE_SHIFT, &kind);
    if (!dst)
        return 0;
    op_unlock();
    /* the kernel moves the pages (no copy) over our reservation and grows the mapping there */
    long r = k_mremap(old, ol, nl, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    if ((uintptr_t)r != dst) {
        dst_restore(dst, dst + nl, kind);
    } else {
        lab_mmpool_mark(dst, dst + nl, LAB_MM_LIVE);
        for (uintptr_t p = old, q, oend = old + ol; p < oend; p = q) {
            lab_mmpool_segment(p, oend, &q, op->mark);
            lab_mmpool_reclaim(p, q); /* a hole now: reserve it again */
        }
    }
    op_lock();
    return r;
}

/* Where the kernel's mremap leaves pooled pages of the old range a hole: gone, from [old, oend). */
static void remap_gone(uintptr_t old, size_t ol, size_t nl, int flags, long r, uintptr_t *gone)
{
    gone[0] = gone[1] = 0;
    if ((uintptr_t)r != old) {
        if (!(flags & MREMAP_DONTUNMAP))
            gone[0] = old, gone[1] = old + ol;
    } else if (nl < ol) {
        gone[0] = old + nl, gone[1] = old + ol;
    }
}

/* Unlocked: every page of [a, end) is the program's pooled memory (LIVE). */
static bool all_live(uintptr_t a, uintptr_t end, uint64_t mark)
{
    for (uintptr_t p = a, q; p < end; p = q)
        if (kind_of(lab_mmpool_segment(p, end, &q, mark)) != LAB_MM_LIVE)
            return false;
    return true;
}

/* Anything else: the kernel does it, then the records follow what it did. Where it refuses only
 * because the pool split what the program holds as one mapping (EFAULT over LIVE pages), the
 * region moves piece by piece (remap_split). */
static long remap_kernel(mm_op_t *op, uintptr_t old, size_t old_len, size_t new_len, int flags, uintptr_t nw)
{
    size_t ol = lab_align_up(old_len, PS), nl = lab_align_up(new_len, PS);
    op_unlock();
    long r = k_mremap(old, old_len, new_len, flags, nw);
    /* only a move may go piece by piece: in place, the kernel's EFAULT stands */
    if (r == -EFAULT && (flags & MREMAP_MAYMOVE) && ol && ol <= nl && all_live(old, old + ol, op->mark)) {
        op_lock();
        r = remap_split(op, old, ol, nl, flags, nw);
        op_unlock();
    }
    if (!MM_ERR(r)) {
        uintptr_t gone[2];
        remap_gone(old, ol, nl, flags, r, gone);
        if ((uintptr_t)r != old && (flags & MREMAP_DONTUNMAP))
            lab_mmpool_taint(old, old + ol); /* still mapped, but its flags changed */
        for (uintptr_t p = gone[0], q; p < gone[1]; p = q) {
            unsigned k = kind_of(lab_mmpool_segment(p, gone[1], &q, op->mark));
            if (k == LAB_MM_LIVE || k == LAB_MM_FOREIGN)
                lab_mmpool_reclaim(p, q); /* a hole now: reserve it again */
        }
    }
    op_lock();
    return r;
}

/* Where the kernel's mremap needs a mapping, from old: at old alone when it shrinks or keeps the
 * region in place (moves: the part it keeps; growing: all of it), and the end of that part. */
static uintptr_t remap_needs(uintptr_t old, size_t ol, size_t nl, int flags)
{
    if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))
        return old + lab_min(ol, nl);
    return nl <= ol ? old + PS : old + ol;
}

static long remap_locked(uintptr_t old, size_t old_len, size_t new_len, int flags, uintptr_t nw, bool in_new)
{
    size_t ol = lab_align_up(old_len, PS), nl = lab_align_up(new_len, PS);
    bool moves = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP);
    uintptr_t oend = old + ol, nend = nw + nl, hi = lab_max(oend, old + PS);
    if (nl > ol && !moves && old + nl > old)
        hi = old + nl; /* what it may grow into in place */
    mm_op_t op;
    op_init(&op);
    op_range(&op, old, hi, false);
    if (in_new)
        op_range(&op, nw, nend, false);
    op_begin(&op);
    uintptr_t q, need = remap_needs(old, ol, nl, flags);
    unsigned k = kind_of(lab_mmpool_segment(old, old + PS, &q, op.mark));
    long r = 0;
    if (is_hole(k) || first_hole(old, need, op.mark) < need) {
        r = -EFAULT; /* no mapping at old, or not one over the part that must be */
    } else if (!ol && k == LAB_MM_LIVE) {
        r = -EINVAL; /* old_len 0 duplicates shared mappings only; pooled pages are private */
    } else if (!moves && nl <= ol) {
        r = remap_shrink(&op, old, oend, nl, k);
    } else {
        if (nl < ol) { /* a move that shrinks: the kernel cuts the tail first */
            r = remap_cut(&op, old + nl, oend);
            ol = old_len = nl;
            oend = old + ol;
        }
        if (!r && in_new) { /* MREMAP_FIXED over pooled pages: they leave the pool first */
            op_unlock();
            fixed_take(nw, nend, op.mark);
            op_lock();
        }
        bool clean = ol > 0;
        for (uintptr_t p = old; p < oend && clean; p = q)
            clean = lab_mmpool_segment(p, oend, &q, op.mark) == (LAB_MM_LIVE | LAB_MM_BUSY);
        if (!r && clean)
            r = remap_clean(&op, old, ol, nl, flags, nw);
        if (!r)
            r = remap_kernel(&op, old, old_len, new_len, flags, nw);
        if (in_new) {
            op_unlock();
            fixed_done(nw, nend, op.mark, MM_ERR(r));
            op_lock();
        }
    }
    op_end(&op);
    return r;
}

/* From a handler that interrupted this thread's call: the kernel, then the records follow. */
static long remap_nested(uintptr_t old, size_t old_len, size_t new_len, int flags, uintptr_t nw, bool in_new)
{
    size_t ol = lab_align_up(old_len, PS), nl = lab_align_up(new_len, PS);
    uintptr_t oend = old + ol, nend = nw + nl, q, need = remap_needs(old, ol, nl, flags);
    unsigned k = kind_of(lab_mmpool_segment(old, old + PS, &q, UINT64_MAX));
    if (is_hole(k) || first_hole(old, need, UINT64_MAX) < need)
        return -EFAULT;
    if (!ol && k == LAB_MM_LIVE)
        return -EINVAL;
    long r = 0;
    if (!(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) && nl <= ol) {
        if (k != LAB_MM_LIVE)
            r = k_mremap(old, PS, PS, 0, 0);
        if (!MM_ERR(r))
            r = unmap_nested(old + nl, oend);
        return r ? r : (long)old;
    }
    if (nl < ol) { /* the tail first, as the kernel does: free pooled pages there stay reserved */
        if ((r = unmap_nested(old + nl, oend)) != 0)
            return r;
        ol = old_len = nl;
        oend = old + ol;
    }
    if (in_new)
        for (uintptr_t p = nw; p < nend; p = q) {
            unsigned s = lab_mmpool_segment(p, nend, &q, UINT64_MAX);
            if (is_hole(s))
                lab_fatal("MREMAP_FIXED over free pooled pages in a signal handler that interrupted mmap", (void *)p);
            if (kind_of(s) == LAB_MM_LIVE)
                lab_mmpool_mark_live(p, q);
        }
    r = k_mremap(old, old_len, new_len, flags, nw); /* not in pieces: a handler takes no run */
    if (MM_ERR(r))
        return r;
    uintptr_t gone[2];
    remap_gone(old, ol, nl, flags, r, gone);
    if ((uintptr_t)r != old && (flags & MREMAP_DONTUNMAP))
        lab_mmpool_taint(old, oend);
    lab_mmpool_mark_live(gone[0], gone[1]);
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
    /* the mapping at old counts even for old_len 0 (a duplicate of a shared mapping) */
    bool in_old = lab_mmpool_touches(old, lab_max(oend, old + PS)), in_new = fixed && lab_mmpool_touches(nw, nend);
    if (!in_old && !in_new)
        return k_mremap(old, old_len, new_len, flags, nw);
    long r = mm_enter() ? remap_locked(old, old_len, new_len, flags, nw, in_new)
                        : remap_nested(old, old_len, new_len, flags, nw, in_new);
    if (in_old)
        lab_add_relaxed(&st_remaps, 1);
    return r;
}

static lab_noinline void *mremap_slow(void *old, size_t old_len, size_t new_len, int flags, void *nw)
{
    return ret_ptr(mm_remap((uintptr_t)old, old_len, new_len, flags, (uintptr_t)nw));
}

LAB_EXPORT LAB_SYS_ENTRY void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
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

/* [a, hole): the system call nr; then, if hole < end, the error the kernel gives at a hole. */
static long upto_hole(long nr, uintptr_t a, uintptr_t hole, uintptr_t end, long arg, long pkey)
{
    long r = 0;
    if (hole > a)
        r = sys6(nr, (long)a, (long)(hole - a), arg, pkey, 0, 0);
    if (r == 0 && hole < end)
        r = hole == a && (nr == SYS_mprotect || nr == SYS_pkey_mprotect) ? prot_error((int)arg) : -ENOMEM;
    return r;
}

/* Unlocked: pkey_mprotect starting on a free pooled page a, which the op holds. The kernel checks
 * the key before it looks for a mapping (EINVAL for a key not allocated, else ENOMEM): it is
 * asked on that page itself, which, if the key was good, took it and is made fresh again. */
static long pkey_check(uintptr_t a, long pkey, uint64_t mark)
{
    uintptr_t q;
    unsigned k = kind_of(lab_mmpool_segment(a, a + PS, &q, mark));
    if (k != LAB_MM_FRESH && k != LAB_MM_CACHED)
        return -ENOMEM;
    long r = sys6(SYS_pkey_mprotect, (long)a, (long)PS, PROT_NONE, pkey, 0, 0);
    if (r)
        return r;
    if (lab_mmpool_reset(a, a + PS) != 0)
        lab_mmpool_mark(a, a + PS, LAB_MM_FOREIGN); /* it keeps the key: never handed out */
    return -ENOMEM;
}

/* nr: SYS_mprotect, SYS_pkey_mprotect, SYS_mlock, SYS_mlock2 or SYS_munlock; a: page aligned.
 * taint: even on failure, as a reset where a cache would do is always safe. */
static long mm_upto_hole(long nr, uintptr_t a, uintptr_t end, long arg, long pkey, bool taint)
{
    if (!mm_enter()) { /* a handler that interrupted this thread's call */
        uintptr_t hole = first_hole(a, end, UINT64_MAX);
        if (taint)
            lab_mmpool_taint(a, hole);
        return upto_hole(nr, a, hole, end, arg, pkey);
    }
    mm_op_t op;
    op_init(&op);
    op_range(&op, a, end, false);
    op_begin(&op);
    uintptr_t hole = first_hole(a, end, op.mark);
    if (taint)
        lab_mmpool_taint(a, hole);
    op_unlock();
    long r = upto_hole(nr, a, first_hole(a, hole, op.mark), end, arg, pkey);
    if (nr == SYS_pkey_mprotect && hole == a && r == -ENOMEM)
        r = pkey_check(a, pkey, op.mark);
    op_lock();
    op_end(&op);
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

LAB_EXPORT LAB_SYS_ENTRY int mprotect(void *addr, size_t len, int prot)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(k_mprotect((uintptr_t)addr, len, prot));
    return protect_slow(SYS_mprotect, addr, len, prot, -1);
}

LAB_EXPORT LAB_SYS_ENTRY int pkey_mprotect(void *addr, size_t len, int prot, int pkey)
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

LAB_EXPORT LAB_SYS_ENTRY int mlock(const void *addr, size_t len)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(sys6(SYS_mlock, (long)addr, (long)len, 0, 0, 0, 0));
    return lockop_slow(SYS_mlock, (uintptr_t)addr, len, 0);
}

LAB_EXPORT LAB_SYS_ENTRY int mlock2(const void *addr, size_t len, unsigned int flags)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(sys6(SYS_mlock2, (long)addr, (long)len, flags, 0, 0, 0));
    return lockop_slow(SYS_mlock2, (uintptr_t)addr, len, flags);
}

LAB_EXPORT LAB_SYS_ENTRY int munlock(const void *addr, size_t len)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(sys6(SYS_munlock, (long)addr, (long)len, 0, 0, 0, 0));
    return lockop_slow(SYS_munlock, (uintptr_t)addr, len, 0);
}

/* While mlockall is in force, new mappings go to the kernel (MCL_FUTURE must lock them) and
 * unmapped pooled pages are reset rather than cached (MCL_CURRENT locked them). */
LAB_EXPORT LAB_SYS_ENTRY int mlockall(int flags)
{
    long r = sys6(SYS_mlockall, flags, 0, 0, 0, 0, 0);
    if (r == 0)
        lab_store_relaxed(&mm_lockall, 1);
    return ret_int(r);
}

LAB_EXPORT LAB_SYS_ENTRY int munlockall(void)
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

/* The madvise calls over [a, end): every part but pooled holes, which are skipped and reported at
 * the end (ENOMEM), as the kernel does for holes. */
static long advise_run(uintptr_t a, uintptr_t end, int adv, uint64_t mark)
{
    long r = 0, unmapped = 0;
    for (uintptr_t p = a, q; p < end && r == 0; p = q) {
        if (is_hole(lab_mmpool_segment(p, end, &q, mark))) {
            unmapped = -ENOMEM;
            continue;
        }
        for (uintptr_t q2; q < end && !is_hole(lab_mmpool_segment(q, end, &q2, mark));)
            q = q2;
        r = k_madvise(p, q - p, adv);
        if (r == -ENOMEM)
            unmapped = r, r = 0;
    }
    return r ? r : unmapped;
}

static long mm_advise(uintptr_t a, size_t len, int adv)
{
    uintptr_t end;
    if ((a & (PS - 1)) || !len || !mm_end(a, len, &end) || !lab_mmpool_touches(a, end))
        return k_madvise(a, len, adv);
    long r = k_madvise(a, 0, adv); /* the kernel checks the advice before anything else */
    if (r)
        return r;
    bool taint = !advice_benign(adv);
    if (!mm_enter()) { /* a handler that interrupted this thread's call */
        if (taint)
            lab_mmpool_taint(a, end);
        return advise_run(a, end, adv, UINT64_MAX);
    }
    mm_op_t op;
    op_init(&op);
    op_range(&op, a, end, false);
    op_begin(&op);
    if (taint)
        lab_mmpool_taint(a, end);
    op_unlock();
    r = advise_run(a, end, adv, op.mark);
    op_lock();
    op_end(&op);
    return r;
}

static lab_noinline int madvise_slow(void *addr, size_t len, int adv)
{
    return ret_int(mm_advise((uintptr_t)addr, len, adv));
}

LAB_EXPORT LAB_SYS_ENTRY int madvise(void *addr, size_t len, int adv)
{
    if (lab_likely(!lab_load_relaxed(&mm_on)))
        return ret_int(k_madvise((uintptr_t)addr, len, adv));
    return madvise_slow(addr, len, adv);
}

/* posix_madvise, as glibc's (POSIX_MADV_DONTNEED does nothing; the error is returned, errno
 * untouched), whose madvise is a direct system call that would not see pooled holes. */
LAB_EXPORT int posix_madvise(void *addr, size_t len, int adv)
{
    if (adv == 4) /* POSIX_MADV_DONTNEED: glibc ignores it (its MADV_DONTNEED would lose data) */
        return 0;
    long r = lab_load_relaxed(&mm_on) ? mm_advise((uintptr_t)addr, len, adv) : k_madvise((uintptr_t)addr, len, adv);
    return MM_ERR(r) ? (int)-r : 0;
}

/* 1: pidfd names this process; 0: another; -1: cannot tell (no /proc). Raw calls only. */
static int pidfd_is_self(int pidfd)
{
    char path[48] = "/proc/self/fdinfo/", buf[512];
    size_t n = 18;
    char digits[12];
    int k = 0;
    for (unsigned v = (unsigned)pidfd; k == 0 || v; v /= 10)
        digits[k++] = (char)('0' + v % 10);
    while (k)
        path[n++] = digits[--k];
    path[n] = 0;
    long fd = sys6(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0, 0, 0);
    if (MM_ERR(fd))
        return -1;
    long got = sys6(SYS_read, fd, (long)buf, sizeof buf - 1, 0, 0, 0);
    sys6(SYS_close, fd, 0, 0, 0, 0, 0);
    if (MM_ERR(got))
        return -1;
    buf[got] = 0;
    char *l = buf;
    while (strncmp(l, "Pid:", 4)) {
        l = strchr(l, '\n');
        if (!l)
            return -1;
        l++;
    }
    long pid = 0;
    char *c = l + 4;
    while (*c == ' ' || *c == '\t')
        c++;
    if (*c < '0' || *c > '9')
        return 0; /* "-1": the process is gone; not this one, which runs */
    while (*c >= '0' && *c <= '9')
        pid = pid * 10 + (*c++ - '0');
    return pid == sys6(SYS_getpid, 0, 0, 0, 0, 0, 0);
}

/* process_madvise: on the calling process itself the kernel takes any advice (MADV_GUARD_INSTALL,
 * MADV_WIPEONFORK ...), which stayed on pooled pages after munmap and reached their next owner
 * (found by review).
 * There each range goes through madvise's path (holes: ENOMEM), the bytes advised before an
 * error returned as the kernel returns them; calls on other processes go to the kernel. */
LAB_EXPORT ssize_t process_madvise(int pidfd, const struct iovec *iov, size_t vlen, int adv, unsigned int flags)
{
    if (!lab_load_relaxed(&mm_on) || flags || vlen > 1024 || pidfd_is_self(pidfd) != 1) {
        long r = sys6(SYS_process_madvise, pidfd, (long)iov, (long)vlen, adv, flags, 0);
        if (MM_ERR(r)) {
            errno = (int)-r;
            return -1;
        }
        return r;
    }
    ssize_t done = 0;
    for (size_t i = 0; i < vlen; i++) {
        long r = mm_advise((uintptr_t)iov[i].iov_base, iov[i].iov_len, adv);
        if (MM_ERR(r)) {
            if (done)
                return done;
            errno = (int)-r;
            return -1;
        }
        done += (ssize_t)iov[i].iov_len;
    }
    return done;
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

/* fork: the parent's handler takes the lock, so the child copies no bookkeeping half done; calls
 * of other threads that were in their system calls are swept in the child (lab_mmpool_fork_child).
 * From a handler that interrupted this thread's call, the lock is taken too unless that call may
 * hold it: then it stays with the call, which resumes (in the parent and in the child) when the
 * handler returns. fork_took: 0, 1 (taken), 2 (taken under an interrupted call). */
static __thread int fork_took;

void lab_mmap_fork_prepare(bool take)
{
    if (fork_took) /* written only when it changes (preload.c: fork_prepare) */
        fork_took = 0;
    if (!take || !lab_load_relaxed(&mm_on))
        return;
    if (mm_enter()) {
        fork_took = 1;
    } else if (!lab_mmpool_lock_mine()) {
        lab_mmpool_lock_take(); /* its holder is another thread, in its bookkeeping: not for long */
        fork_took = 2;
    }
}

void lab_mmap_fork_parent(void)
{
    if (fork_took == 1)
        mm_leave();
    else if (fork_took == 2)
        lab_mmpool_lock_drop();
}

void lab_mmap_fork_child(void)
{
    if (!lab_load_relaxed(&mm_on))
        return;
    lab_mmpool_fork_child(fork_took != 0); /* lab_locks_held: the pool's child handler, after this, zeroes it */
    if (fork_took == 1)
        mm_depth = 0;
}

void lab_mmap_trim(void)
{
    if (!lab_load_relaxed(&mm_on) || !mm_enter())
        return;
    mm_op_t op;
    op_init(&op);
    op_begin(&op);
    do /* until the cache is empty, or a round purged nothing (its runs stay cached) */
        lab_mmpool_maintain(0, true, &op.jobs);
    while (op_jobs(&op));
    op_end(&op);
}

uint64_t lab_mmap_purge_idle(void)
{
    if (!lab_load_relaxed(&mm_on) || !mm_enter())
        return UINT64_MAX;
    mm_op_t op;
    op_init(&op);
    op_begin(&op);
    do /* until nothing more is due (a run whose purge failed is stamped again: not due) */
        lab_mmpool_maintain(lab_clock_ms(), false, &op.jobs);
    while (op_jobs(&op));
    uint64_t due = lab_mmpool_next_due(), now = lab_clock_ms();
    op_end(&op);
    return due == UINT64_MAX ? UINT64_MAX : due > now ? due - now + 1 : 1;
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
