/* mmap_pool.h — the area behind pooled anonymous mmap (LABYRINTH_MMAP): chunks of address space
 * reserved PROT_NONE, one state byte per page, free runs in size bins, the cache of unmapped
 * pages and its purging. Layer 5 (preload): uses core/os and core/lock.h only (never the malloc
 * pool, whose locks a signal handler may find held); preload/mmap.c, the libc names, is its one
 * user. Unless marked "lock-free", every call needs lab_mmpool_lock held.
 *
 * A page of the area is in one of four states (the state byte):
 *   FRESH   free: reserved PROT_NONE and untouched since (reads zero, costs no memory)
 *   CACHED  free: PROT_NONE, unmapped by the program; may hold its old bytes, which are cleared
 *           when the page is handed out again (mmap.c) — so a write that raced the munmap is
 *           wiped too; counted against LABYRINTH_MMAP_CACHE and purged after the purge delay
 *   LIVE    the program's: made read-write for a pooled mmap (TAINT: the program changed its
 *           protection, lock or flags, so it is reset, never cached, when unmapped)
 *   FOREIGN not ours for now: a hole the kernel made (mremap, MAP_FIXED, a failed call), or a
 *           mapping the program placed there; passed to the kernel, taken back when unmapped
 * Free runs of one state are kept maximal (coalesced), so a run ends where the state changes. */
#ifndef LAB_MMAP_POOL_H
#define LAB_MMAP_POOL_H

#include "lock.h"

enum {
    LAB_MM_FRESH = 0,
    LAB_MM_CACHED = 1,
    LAB_MM_LIVE = 2,
    LAB_MM_FOREIGN = 3,
    LAB_MM_KIND = 3,      /* mask of the four states above */
    LAB_MM_TAINT = 4,     /* with LIVE */
    LAB_MM_OUTSIDE = 8,   /* lab_mmpool_segment only: the pages are in no chunk of the area */
};

lab_internal extern lab_lock_t lab_mmpool_lock;

/* Chunk size: 8 MiB, or four times the largest pooled request when that is bigger. */
lab_internal void lab_mmpool_setup(size_t max_bytes, size_t cache_bytes, unsigned purge_delay_ms);

/* Lock-free: true if [a, end) may overlap the area (false: it certainly does not). */
lab_internal bool lab_mmpool_touches(uintptr_t a, uintptr_t end);
/* Lock-free for reading: the state of page a (LAB_MM_OUTSIDE when in no chunk), and in *seg_end
 * the end (<= end) of the run of pages from a that share it. */
lab_internal unsigned lab_mmpool_segment(uintptr_t a, uintptr_t end, uintptr_t *seg_end);
/* Set the state byte of every page of [a, end), which must lie in one chunk, with no list
 * change: for LIVE <-> FOREIGN and TAINT only. Lock-free safe (byte stores). */
lab_internal void lab_mmpool_mark(uintptr_t a, uintptr_t end, unsigned state);
/* OR LAB_MM_TAINT into the LIVE pages of [a, end) (any range). Lock-free safe. */
lab_internal void lab_mmpool_taint(uintptr_t a, uintptr_t end);

/* A free run of npages, now LIVE (still PROT_NONE); *kind says whether it was CACHED or FRESH.
 * Prefers cached pages, then fresh ones, then reserves a new chunk. 0 when none can be had. */
lab_internal uintptr_t lab_mmpool_take(size_t npages, unsigned *kind);
/* Take the free pages of [a, end) (one chunk) out of their runs: they become LIVE. Returns the
 * number that were CACHED (their old bytes must be cleared before the program sees them). */
lab_internal size_t lab_mmpool_take_range(uintptr_t a, uintptr_t end);
/* Give [a, end) (one chunk, PROT_NONE and free in the kernel's eyes too) back as CACHED or FRESH. */
lab_internal void lab_mmpool_put(uintptr_t a, uintptr_t end, unsigned kind);

/* Reset [a, end) of one chunk to fresh reserved pages (MAP_FIXED PROT_NONE over it: the pages and
 * any flags the program set are dropped) and put it back FRESH. If that fails, unmap it and try to
 * reserve it again; a range that cannot be reserved again is left FOREIGN. 0 or -errno (then
 * nothing changed). */
lab_internal long lab_mmpool_discard(uintptr_t a, uintptr_t end);
/* [a, end) of one chunk is a hole now (the kernel unmapped it): reserve it again (never over
 * anything that got there first) and put it back FRESH, else mark it FOREIGN. */
lab_internal void lab_mmpool_reclaim(uintptr_t a, uintptr_t end);

/* Room in the cache for npages more, purging the oldest cached runs (a few at most); false if
 * the pages should be discarded instead of cached. */
lab_internal bool lab_mmpool_cache_room(size_t npages);
/* Purge cached runs idle past the delay (a bounded number per call; all with force). */
lab_internal void lab_mmpool_maintain(uint64_t now_ms, bool force);

struct lab_mmpool_counts {
    size_t live_pages, cached_pages, reserved_pages, chunks;
    uint64_t purged_pages, chunks_released;
};
lab_internal void lab_mmpool_counts(struct lab_mmpool_counts *out);

#endif
