/* mmap.h — what preload.c needs of the interposed memory-mapping names (preload/mmap.c):
 * start-up, fork, trimming and statistics. Layer 5. */
#ifndef LAB_MMAP_H
#define LAB_MMAP_H

#include "common.h"

/* Pooling on or off (LABYRINTH_MMAP), its size limit and cache cap in bytes, the purge delay.
 * Called once from the constructor, before any pooled call; verbose: say why it stays off. */
lab_internal void lab_mmap_init(bool on, size_t max_bytes, size_t cache_bytes, unsigned purge_delay_ms,
                                bool verbose);
lab_internal void lab_mmap_fork_prepare(bool take); /* take: the pool's lock (else none) */
lab_internal void lab_mmap_fork_parent(void);
lab_internal void lab_mmap_fork_child(void);
/* Purge every cached page now (malloc_trim, LABYRINTH_TRIM_ON_EXIT). */
lab_internal void lab_mmap_trim(void);
/* The purge thread's share: purge the cached pages idle past the delay; returns the ms until the
 * next cached run is due (UINT64_MAX: none, or pooling off). */
lab_internal uint64_t lab_mmap_purge_idle(void);
/* Whether pc is in one of the interposed memory-mapping names' own entry points (mmap.c's
 * LAB_SYS_ENTRY: with pooling off, the program's system call and nothing of the allocator's;
 * with it on, a test and a jump to the work, which is elsewhere): a signal that lands there
 * did not interrupt the allocator (found by review: a timeout's siglongjmp out of a handler that
 * interrupted mprotect left the thread on a signal heap for good, its large mallocs failing). */
extern const char __start_lab_sys_entry[] __attribute__((visibility("hidden")));
extern const char __stop_lab_sys_entry[] __attribute__((visibility("hidden")));
static inline bool lab_sys_entry_pc(uintptr_t pc)
{
    return pc >= (uintptr_t)__start_lab_sys_entry && pc < (uintptr_t)__stop_lab_sys_entry;
}

#endif
