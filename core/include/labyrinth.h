/* labyrinth.h — the public C API of the Labyrinth page pool.
 *
 * A pool hands out runs of 2^order OS pages (order 0..9: 4 KiB .. 2 MiB), each naturally aligned to
 * its size. Flags follow the Linux kernel's GFP vocabulary. The process has one default pool (the
 * one behind malloc when liblabyrinth.so is preloaded); users may declare their own:
 *
 *     static labyrinth_t rx_pool;
 *     struct labyrinth_pool_opts o = { .reserve_pages = 256 };
 *     labyrinth_pool_init(&rx_pool, &o);
 *     void *pkt = labyrinth_alloc_page(&rx_pool, LAB_GFP_ATOMIC);   // never blocks, no syscall
 *     ...
 *     labyrinth_free_pages(&rx_pool, pkt, 0);
 */
#ifndef LABYRINTH_H
#define LABYRINTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LAB_API __attribute__((visibility("default")))
#else
#define LAB_API
#endif

#define LAB_PAGE_SHIFT 12
#define LAB_PAGE_SIZE  (1ul << LAB_PAGE_SHIFT)
#define LAB_MAX_ORDER  9                      /* 2^9 pages = 2 MiB */
#define LAB_NR_ORDERS  (LAB_MAX_ORDER + 1)

typedef unsigned lab_gfp_t;
#define LAB_GFP_DEFAULT   0u      /* may take locks, map memory, purge; never uses the reserve   */
#define LAB_GFP_ATOMIC    (1u<<0) /* never blocks, never makes a system call; may use the reserve;
                                     async-signal-safe; NULL (errno ENOMEM) when nothing is free
                                     without a wait: the store's lock is only tried, so a call
                                     may fail while another thread holds it with pages there */
#define LAB_GFP_ZERO      (1u<<1) /* the pages read as zero                                       */
#define LAB_GFP_EXCLUSIVE (1u<<2) /* the pages belong to the calling thread: only it frees them,
                                     and a fork()ed child sees them wiped, never their contents  */

/* Options for a user pool. Zero in any field picks the default named beside it. */
struct labyrinth_pool_opts {
    size_t   reserve_pages;   /* MIN watermark: pages only LAB_GFP_ATOMIC may take (default 0)   */
    size_t   low_pages;       /* below this many free pages a DEFAULT caller refills (reserve+64)*/
    size_t   high_pages;      /* refills go up to this many free pages (low + 256)               */
    size_t   max_pages;       /* cap on pages the pool maps, 0 = no cap                          */
    unsigned purge_delay_ms;  /* free runs idle this long are purged (1000); ~0u = never purge  */
    unsigned flags;           /* LAB_POOL_* below (0)                                            */
    size_t   huge_after_pages;/* LAB_POOL_HUGE: from the chunk mapped once this many pages are   */
                              /* mapped (0: from the first)                                      */
};

/* Chunks (2 MiB) are advised MADV_HUGEPAGE when mapped: the kernel backs each with one
 * transparent huge page at its first touch, so one page fault and one TLB entry serve 512 pages
 * (page faults are dear on VMs). The first purge in a chunk turns it back to small pages for good
 * (MADV_NOHUGEPAGE, or khugepaged would fill the purged pages in again). The malloc pool has it
 * once LABYRINTH_THP MiB are mapped (0, the default: never), and then only while it has a chunk
 * mapped for each heap drawing on it (thousands of threads that each touch a few pages would
 * otherwise make every chunk resident whole). */
#define LAB_POOL_HUGE (1u<<0)

/* A pool. Complete so that users can declare one statically; its fields are private. A pool that
 * is all zero (never initialised): allocation and stats calls fail with EINVAL, freeing pages to
 * it aborts with a message, trim and destroy do nothing. */
struct labyrinth {
    uint64_t magic;
    void    *impl;
    unsigned id;
};
typedef struct labyrinth labyrinth_t;

/* Counters of one pool, a snapshot. */
struct labyrinth_pool_stats {
    size_t free_pages[LAB_NR_ORDERS]; /* pages free in the shared lists, by order                */
    size_t free_runs_pages;           /* pages free in the coalesced run store                   */
    size_t free_total;                /* all free pages the pool can hand out (not in rooms)     */
    size_t reserve_pages;             /* the reserve (MIN watermark)                             */
    size_t reserve_level;             /* how much of the reserve is there now                    */
    size_t low_pages, high_pages, max_pages;
    size_t mapped_pages;              /* pages in chunks the pool has mapped now                 */
    size_t peak_used_pages;           /* most pages out of the free lists at once (handed out or
                                         in threads' rooms; sampled on slow paths and here)      */
    size_t purged_pages;              /* pages given back to the OS with MADV_DONTNEED, in all   */
    size_t unmapped_chunks;           /* chunks given back with munmap, in all                   */
    size_t thp_chunks;                /* LAB_POOL_HUGE: chunks mapped with the huge-page advice  */
    size_t thp_demoted;               /* ... of which a purge turned back to small pages         */
    uint64_t hits_room;               /* allocations served from the calling thread's room       */
    uint64_t hits_shared;             /* ... from the pool's lock-free lists                     */
    uint64_t hits_reserve;            /* ... that dipped below MIN (ATOMIC only)                 */
    uint64_t hits_slow;               /* ... from the locked run store (coalesce/split/map)      */
    uint64_t refills;                 /* watermark refills                                       */
    uint64_t failures;                /* allocations that returned NULL                          */
};

LAB_API labyrinth_t *labyrinth_default(void);
/* 0, or -EINVAL (bad options), -ENOMEM (the reserve could not be mapped), -EBUSY (the handle
 * holds a live pool: destroy it first). */
LAB_API int   labyrinth_pool_init(labyrinth_t *pool, const struct labyrinth_pool_opts *opts);
LAB_API void  labyrinth_pool_destroy(labyrinth_t *pool);
LAB_API void *labyrinth_alloc_pages(labyrinth_t *pool, unsigned order, lab_gfp_t gfp);
LAB_API void *labyrinth_alloc_page(labyrinth_t *pool, lab_gfp_t gfp);
LAB_API void  labyrinth_free_pages(labyrinth_t *pool, void *pages, unsigned order);
/* Purge every free page of the pool now (the runs cached in every thread's rooms included); returns
 * pages purged. */
LAB_API size_t labyrinth_pool_trim(labyrinth_t *pool);
/* Fill *out; 0, or -EINVAL for an uninitialised pool. */
LAB_API int   labyrinth_pool_stats(labyrinth_t *pool, struct labyrinth_pool_stats *out);
/* Library version string, e.g. "0.1.0". */
LAB_API const char *labyrinth_version(void);

/* Pooled anonymous mmap (LABYRINTH_MMAP=1; liblabyrinth.so only, look it up with dlsym when the
 * library may not be preloaded). A snapshot of its counters. */
struct labyrinth_mmap_stats {
    uint64_t enabled;        /* 1 when LABYRINTH_MMAP is in force                              */
    uint64_t pooled_maps;    /* mmap calls served from the pool                                */
    uint64_t cache_hits;     /* ... of which reused cached pages (no page faults for them)     */
    uint64_t kernel_maps;    /* mmap calls passed to the kernel (not poolable)                 */
    uint64_t fallbacks;      /* poolable calls that still went to the kernel (a failure, or a
                                signal handler that interrupted this thread's mmap)            */
    uint64_t pooled_unmaps;  /* munmap or mremap-shrink calls that gave pooled pages back      */
    uint64_t remaps;         /* mremap calls on pooled pages                                   */
    uint64_t purged_bytes;   /* cached bytes given back to the OS, in all                      */
    size_t   live_bytes;     /* pooled bytes mapped by the program now                         */
    size_t   cached_bytes;   /* unmapped pooled bytes kept for reuse now                       */
    size_t   reserved_bytes; /* address space reserved for the pool now                        */
};
/* Fill *out; 0. */
LAB_API int labyrinth_mmap_stats(struct labyrinth_mmap_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* LABYRINTH_H */
