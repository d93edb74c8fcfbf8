/* common.h — compiler helpers, constants and small atomics shared by every core layer.
 * Layer: below core/os. Includes nothing of the project; may be included by every file. */
#ifndef LAB_COMMON_H
#define LAB_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "labyrinth.h"

#define lab_likely(x)   __builtin_expect(!!(x), 1)
#define lab_unlikely(x) __builtin_expect(!!(x), 0)
#define lab_noinline    __attribute__((noinline))
#define lab_cold        __attribute__((cold))
#define lab_inline      static inline __attribute__((always_inline))
#define lab_internal    __attribute__((visibility("hidden")))
#define lab_aligned(n)  __attribute__((aligned(n)))
/* Large zero-filled tables go to .lbss, which follows .bss: the small variables a process start
 * writes then share a page or two instead of being strewn between the tables, each on a page
 * of its own (three page faults more at every start, at about 10 us each on these VMs). */
#define lab_big_bss     __attribute__((section(".lbss")))

/* 1 in ThreadSanitizer's builds (the unit tests'), which change a few protocols (pool_impl.h,
 * arena.c). */
#if defined(__SANITIZE_THREAD__)
#define LAB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LAB_TSAN 1
#endif
#endif
#ifndef LAB_TSAN
#define LAB_TSAN 0
#endif

#define LAB_CACHE_LINE   64
#define LAB_CHUNK_SHIFT  21
#define LAB_CHUNK_SIZE   ((size_t)1 << LAB_CHUNK_SHIFT)              /* 2 MiB */
#define LAB_CHUNK_PAGES  (LAB_CHUNK_SIZE >> LAB_PAGE_SHIFT)          /* 512   */
#define LAB_ADDR_BITS    47                                          /* user space on x86-64 */

#define lab_align_up(x, a)   (((x) + ((a) - 1)) & ~((a) - 1))
#define lab_align_down(x, a) ((x) & ~((a) - 1))
#define lab_min(a, b) ((a) < (b) ? (a) : (b))
#define lab_max(a, b) ((a) > (b) ? (a) : (b))

/* Relaxed atomics: counters and flags whose readers need no ordering with other memory. */
#define lab_load_relaxed(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define lab_store_relaxed(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define lab_add_relaxed(p, v)    __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define lab_sub_relaxed(p, v)    __atomic_fetch_sub((p), (v), __ATOMIC_RELAXED)
#define lab_barrier()            __asm__ __volatile__("" ::: "memory")

lab_inline unsigned lab_log2_floor(size_t x) { return 63u - (unsigned)__builtin_clzl(x); }
lab_inline unsigned lab_log2_ceil(size_t x) { return x <= 1 ? 0 : 64u - (unsigned)__builtin_clzl(x - 1); }

/* The purge thread's watch over something an owner that may idle holds (v: a list head or a
 * hash of one; 0: nothing held). true: v has stayed the same for a whole delay, so the owner
 * has not touched it: take it (the watch starts over). Otherwise *next is lowered to when to look
 * again. *seen and *seen_ms (0: not watching) are the watcher's own. */
lab_inline bool lab_idle_watch(uint64_t v, uint64_t *seen, uint64_t *seen_ms, uint64_t now, unsigned delay,
                               uint64_t *next)
{
    if (!v) {
        *seen_ms = 0;
    } else if (v != *seen || !*seen_ms) {
        /* new, or changed since: watch from now */
        *seen = v;
        *seen_ms = now;
        *next = lab_min(*next, (uint64_t)delay + 1);
    } else if (now >= *seen_ms + delay) {
        *seen_ms = 0;
        return true;
    } else {
        *next = lab_min(*next, *seen_ms + delay - now + 1);
    }
    return false;
}

/* Report a fatal misuse and abort: write(2) only, never anything that allocates. */
lab_internal __attribute__((noreturn, cold)) void lab_fatal(const char *what, const void *addr);
/* One line on stderr, "labyrinth: <msg>[ <addr>]\n", through write(2). */
lab_internal void lab_message(const char *msg, const void *addr);
/* Format v in decimal into buf (at least 24 bytes); returns the length. */
lab_internal size_t lab_fmt_u64(char *buf, uint64_t v);
/* Monotonic clock in milliseconds (vDSO, no system call on x86-64). */
lab_internal uint64_t lab_clock_ms(void);

#endif
