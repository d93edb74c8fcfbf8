/* mmap_pool.h — the area behind pooled anonymous mmap (LABYRINTH_MMAP): chunks of address space
 * reserved PROT_NONE, one state byte per page, free runs in size bins, the cache of unmapped
 * pages and its purging, and the protocol that lets operations make their system calls without
 * the lock. Layer 5 (preload): uses core/os and core/lock.h only (never the malloc pool, whose
 * locks a signal handler may find held); preload/mmap.c, the libc names, is its one user.
 * Each call says when it may be made: "locked" (lab_mmpool_lock held), "unlocked" (not held: it
 * makes system calls), "lock-free" (either way).
 *
 * A page of the area is in one of five states (the state byte's kind):
 *   FRESH   free: reserved PROT_NONE and untouched since (reads zero, costs no memory)
 *   CACHED  free: PROT_NONE, unmapped by the program; may hold its old bytes, which are cleared
 *           when the page is handed out again (mmap.c) — so a write that raced the munmap is
 *           wiped too; counted against LABYRINTH_MMAP_CACHE and purged after the purge delay
 *   LIVE    the program's: made read-write for a pooled mmap (TAINT: the program changed its
 *           protection, lock or flags, so it is reset, never cached, when unmapped)
 *   FOREIGN not ours for now: a hole the kernel made (mremap, MAP_FIXED, a failed call), or a
 *           mapping the program placed there; passed to the kernel, taken back when unmapped
 *   TRANSIT ours, but neither free nor the program's: an operation is handing it out, taking it
 *           back or purging it (unmapped, in the program's eyes); its protection is unknown
 * Free runs of one state are kept maximal (coalesced), so a run ends where the state changes;
 * a page is in a free run exactly when its byte is FRESH or CACHED (no other bit).
 *
 * Operations in flight (BUSY). No system call is made with the lock held. An operation takes the
 * lock, waits (lab_mmpool_wait) until no page of its ranges is BUSY, begins, and claims its
 * ranges: every page of them in the area becomes BUSY (free ones are taken out of their runs
 * first). It then drops the lock for its system calls, and writes what they did into its BUSY
 * pages' kinds (the state it will publish, see lab_mmpool_publish) — those pages are its alone,
 * so that needs no lock. Last, locked again, it publishes them and ends, which wakes waiters.
 * Pages it needs later (a free run to hand out, a cached run to purge) are taken out of their
 * runs as TRANSIT|BUSY, which no other operation can then find. The kind of a BUSY page is never
 * FRESH or CACHED unless its kernel state is that of a free page: a fork child that finds
 * operations of vanished threads can then publish their pages as they stand (a sweep). */
#ifndef LAB_MMAP_POOL_H
#define LAB_MMAP_POOL_H

#include "lock.h"

enum {
    LAB_MM_FRESH = 0,
    LAB_MM_CACHED = 1,
    LAB_MM_LIVE = 2,
    LAB_MM_FOREIGN = 3,
    LAB_MM_TRANSIT = 4,
    LAB_MM_KIND = 7,      /* mask of the five states above */
    LAB_MM_TAINT = 8,     /* with LIVE (and TRANSIT on the way from LIVE: reset, not cached); with
                             FOREIGN|BUSY: free pages an operation unmapped before a MAP_FIXED or
                             MREMAP_FIXED there, reserved again if that call fails */
    LAB_MM_BUSY = 16,     /* an operation in flight holds the page */
    LAB_MM_OUTSIDE = 32,  /* lab_mmpool_segment only: the pages are in no chunk of the area */
    LAB_MM_NEWER = 64,    /* lab_mmpool_segment only: in a chunk added after the caller began */
};

lab_internal extern lab_lock_t lab_mmpool_lock;
/* Take or drop lab_mmpool_lock (always through these: a fork handler asks lab_mmpool_lock_mine).
 * lab_mmpool_lock_mine: this thread may hold it (it holds it, or is taking or dropping it). */
lab_internal void lab_mmpool_lock_take(void);
/* lab_mmpool_lock_take, but false instead of a long wait (its holder may be off the CPU). */
lab_internal bool lab_mmpool_lock_take_bounded(void);
lab_internal void lab_mmpool_lock_drop(void);
lab_internal bool lab_mmpool_lock_mine(void);
/* From the signal wrapper (signals.c), uctx its ucontext_t: true if this thread holds or takes
 * the lock, and the signal was put off until it drops it (the handler must not run now). */
lab_internal bool lab_mmpool_defer_signal(int sig, void *info, void *uctx);

/* Chunk size: 8 MiB, or four times the largest pooled request when that is bigger. */
lab_internal void lab_mmpool_setup(size_t max_bytes, size_t cache_bytes, unsigned purge_delay_ms);

/* ---- the lock and operations in flight ---- */

/* Locked: true if a page of [a, end) is BUSY (the caller must lab_mmpool_wait and look again). */
lab_internal bool lab_mmpool_blocked(uintptr_t a, uintptr_t end);
/* Locked: drop the lock until an operation ends, then take it again. */
lab_internal void lab_mmpool_wait(void);
/* Locked: this thread's operation is in flight from now on; returns its mark for
 * lab_mmpool_segment (chunks added later are NEWER to it). */
lab_internal uint64_t lab_mmpool_begin(void);
/* Locked, after lab_mmpool_begin and with no page of [a, end) BUSY: make them all BUSY. */
lab_internal void lab_mmpool_claim(uintptr_t a, uintptr_t end);
/* Locked: give back the BUSY pages of [a, end) in chunks older than mark (the caller's own):
 * FRESH or CACHED join the free runs, LIVE and FOREIGN stay so, TRANSIT becomes LIVE|TAINT. */
lab_internal void lab_mmpool_publish(uintptr_t a, uintptr_t end, uint64_t mark);
/* Locked: the operation is over. True if others wait: call lab_mmpool_wake once unlocked. */
lab_internal bool lab_mmpool_end(void);
lab_internal void lab_mmpool_wake(void);

/* ---- looking at and marking pages ---- */

/* Lock-free: true if [a, end) may overlap the area (false: it certainly does not). */
lab_internal bool lab_mmpool_touches(uintptr_t a, uintptr_t end);
/* Lock-free for reading: the state byte of page a (LAB_MM_OUTSIDE when in no chunk, LAB_MM_NEWER
 * when in a chunk added after mark; UINT64_MAX: never NEWER), and in *seg_end the end (<= end)
 * of the run of pages from a that share it. */
lab_internal unsigned lab_mmpool_segment(uintptr_t a, uintptr_t end, uintptr_t *seg_end, uint64_t mark);
/* Lock-free, on pages the caller holds BUSY (or, in a signal handler, pages that are not free):
 * every page of [a, end), which must lie in one chunk, takes the state `state`; BUSY is kept. */
lab_internal void lab_mmpool_mark(uintptr_t a, uintptr_t end, unsigned state);
/* Lock-free, from a handler's call: the pages of [a, end) (any range) that are LIVE when written
 * become FOREIGN (BUSY kept); each byte by a compare-and-swap, as the claims and publications of
 * other threads' operations on the same pages are, so that neither side's write is lost. */
lab_internal void lab_mmpool_mark_live(uintptr_t a, uintptr_t end);
/* Lock-free, as lab_mmpool_mark_live: OR LAB_MM_TAINT into the LIVE pages of [a, end). */
lab_internal void lab_mmpool_taint(uintptr_t a, uintptr_t end);

/* ---- handing out and taking back ---- */

/* Locked: a free run of npages, now TRANSIT|BUSY (still PROT_NONE); *kind says whether it was
 * CACHED or FRESH. Prefers cached pages, then fresh ones. 0 when none is free. */
lab_internal uintptr_t lab_mmpool_take(size_t npages, unsigned *kind);
/* Locked: reserve one more chunk. The lock is dropped for the system calls and taken again.
 * false if none could be had. */
lab_internal bool lab_mmpool_grow(void);

/* Unlocked, on BUSY pages [a, end) of one chunk the program had mapped: reset them to fresh
 * reserved pages (MAP_FIXED PROT_NONE over them: the pages and any flags the program set are
 * dropped), then FRESH. If that fails, unmap them and reserve them again (lab_mmpool_reclaim).
 * 0, or -errno when nothing changed. */
lab_internal long lab_mmpool_reset(uintptr_t a, uintptr_t end);
/* Unlocked, on BUSY pages [a, end) of one chunk that are a hole now (the kernel unmapped them):
 * reserve them again (never over anything that got there first), then FRESH, else FOREIGN. */
lab_internal void lab_mmpool_reclaim(uintptr_t a, uintptr_t end);

/* ---- the cache: purging runs and releasing chunks, as jobs done unlocked ---- */

#define LAB_MMPOOL_JOBS 12
typedef struct {
    unsigned n, ran; /* jobs found, jobs done (lab_mmpool_jobs_run) */
    struct {
        uintptr_t a, end;
        void *chunk;  /* release: the chunk given back (another may be reserved at a meanwhile) */
        bool release; /* give the whole chunk at a back to the kernel; else purge the run */
        bool ok;
    } job[LAB_MMPOOL_JOBS];
} lab_mmpool_jobs_t;

/* Locked: room in the cache for npages more, taking the oldest cached runs out to be purged (a
 * few at most, added to jobs); true, and the room is reserved until lab_mmpool_cache_unreserve,
 * or false if the pages should be reset instead of cached. */
lab_internal bool lab_mmpool_cache_room(size_t npages, lab_mmpool_jobs_t *jobs);
lab_internal void lab_mmpool_cache_unreserve(size_t npages);
/* Locked: take cached runs idle past the delay (a bounded number; with force, any) and a wholly
 * free chunk beyond the one kept as jobs. */
lab_internal void lab_mmpool_maintain(uint64_t now_ms, bool force, lab_mmpool_jobs_t *jobs);
/* Locked: when the oldest cached run becomes due for purging (ms clock), UINT64_MAX with none. */
lab_internal uint64_t lab_mmpool_next_due(void);
/* Unlocked: do the jobs not done yet. */
lab_internal void lab_mmpool_jobs_run(lab_mmpool_jobs_t *jobs);
/* Locked, once every job ran: record the results and publish the pages; jobs is empty again.
 * Returns the number of runs purged. */
lab_internal size_t lab_mmpool_jobs_done(lab_mmpool_jobs_t *jobs);

/* ---- fork ---- */

/* In the child, in the fork handler. took: the parent's handler took the lock, so no operation
 * was half-way through the bookkeeping; the lock is reset here. Else the fork came from a signal
 * handler that interrupted this thread while it held the lock; that call resumes when the handler
 * returns, and the lock is left to it. Operations of the threads the child does not have are
 * swept (lab_mmpool_publish) as soon as this thread has none in flight. */
lab_internal void lab_mmpool_fork_child(bool took);

struct lab_mmpool_counts {
    size_t live_pages, cached_pages, reserved_pages, chunks;
    uint64_t purged_pages, chunks_released;
};
/* Locked. */
lab_internal void lab_mmpool_counts(struct lab_mmpool_counts *out);

#endif
