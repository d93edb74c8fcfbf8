/* os.h — the OS layer: the only code in Labyrinth that talks to the kernel.
 * Layer 1 (lowest). Every call is a raw system call (never the libc names, which preload
 * interposes); errors come back as -errno and errno is never touched. */
#ifndef LAB_OS_H
#define LAB_OS_H

#include "common.h"

/* mmap; returns the address or -errno (as a pointer-sized integer). */
lab_internal long lab_os_mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
lab_internal long lab_os_munmap(void *addr, size_t len);
/* mremap; with MREMAP_FIXED, new_addr must be a range the caller mapped (it is replaced). */
lab_internal long lab_os_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr);
lab_internal long lab_os_madvise(void *addr, size_t len, int advice);
lab_internal long lab_os_mprotect(void *addr, size_t len, int prot);
/* The kernel's limit on a process's mappings (vm.max_map_count; its default when unreadable). */
lab_internal size_t lab_os_max_map_count(void);
/* The process's mappings now (the lines of /proc/self/maps), or 0 when unreadable. */
lab_internal size_t lab_os_map_count(void);
lab_internal long lab_os_write(int fd, const void *buf, size_t len);
lab_internal long lab_os_gettid(void);
/* The CPUs the calling thread may run on (sched_getaffinity; 1 if it cannot tell). */
lab_internal unsigned lab_os_cpus(void);
/* Whether no thread of id tid is left in this process (false when the kernel cannot tell). */
lab_internal bool lab_os_thread_ended(int tid);
/* The claim of something a thread owns, *owner its id (atomic), tid as read: true, with *owner
 * -1, when that thread has ended and the caller won; false, *owner as it was, otherwise. */
lab_internal bool lab_os_claim_ended(int *owner, int tid);

/* One system call, inline, uncounted and never failed on purpose: for passing a program's own
 * memory calls through to the kernel (preload/mmap.c), where the cost must stay the bare call's.
 * Returns the kernel's value (-errno on failure). */
lab_inline long lab_os_raw6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
}

/* Read-write private anonymous memory of size bytes aligned to align (a power of two >= 4 KiB).
 * NULL on failure with *err = -errno. */
lab_internal void *lab_os_map_aligned(size_t size, size_t align, int *err);
/* Address space only: len bytes aligned to align, unaccounted (MAP_NORESERVE), not counted as
 * mapped, with prot PROT_NONE (or PROT_READ: reads zero). NULL on failure. The fast map's region
 * and the fast map itself (core/pool_map.c) are reserved so. */
lab_internal void *lab_os_reserve(size_t len, size_t align, int prot);
lab_internal void lab_os_unreserve(void *addr, size_t len);
/* True if the process's address space is limited (RLIMIT_AS, `ulimit -v`): a reservation would
 * then spend the limit on address space that holds no memory. */
lab_internal bool lab_os_address_limited(void);
/* Make reserved pages read-write (counted as a mapping, and failed like one by fault injection);
 * 0 or -errno. They read zero the first time. */
lab_internal int lab_os_commit(void *addr, size_t len);
/* Give committed pages back for good and make them reserved again (counted as an unmapping). */
lab_internal int lab_os_decommit(void *addr, size_t len);
/* Give pages back to the OS but keep the range mapped (reads zero afterwards). */
lab_internal int lab_os_purge(void *addr, size_t len);

/* Which of npages pages from addr (page aligned, npages <= 512) may hold data: those present or
 * swapped out; any other has not been touched since it was mapped or purged, and reads zero.
 * Sets a bit per page in held[]; 0, or -errno (a sandbox): the caller must then take every page
 * as holding data. Where no swap is configured, sysinfo and mincore (and sysinfo again if a page
 * is absent); else /proc/self/pagemap (openat, pread, close). */
lab_internal int lab_os_pages_held(const void *addr, size_t npages, uint64_t *held);
/* The same answer from /proc/self/pagemap alone (present or swapped): lab_os_pages_held's way
 * where swap is configured. */
lab_internal int lab_os_pages_held_pagemap(const void *addr, size_t npages, uint64_t *held);

/* Whether the page holding addr is resident (mincore): 1, 0, or -1 if the kernel does not say.
 * One system call. */
lab_internal int lab_os_page_resident(const void *addr);

/* Whether anything is mapped at the page holding addr (mincore: ENOMEM on a hole). */
lab_internal bool lab_os_mapped(const void *addr);

/* Counters and fault injection (tests). Every call above counts; a test may make the Nth and
 * every Nth mapping fail with ENOMEM, or every mapping once more than a byte budget is mapped. */
struct lab_os_counters {
    uint64_t calls;         /* system calls made through this layer */
    uint64_t maps, unmaps, purges, remaps;
    uint64_t mapped_bytes;  /* currently mapped through lab_os_map_aligned / mmap */
};
lab_internal void lab_os_counters(struct lab_os_counters *out);
lab_internal void lab_os_inject_failures(uint64_t every_nth_map, uint64_t fail_after_bytes);
/* Tests: called with lab_os_mremap's arguments just before the system call (NULL: none), to see
 * what other threads would see while the kernel moves or frees the pages; a negative errno it
 * returns is the call's result instead (the kernel's refusal), 0 lets the call go on. */
lab_internal extern long (*lab_os_remap_hook)(void *old, size_t old_len, size_t new_len, int flags, void *new_addr);



/* Futex wait/wake on a 32-bit word (private futex); used by lock.h only. */
lab_internal void lab_os_futex_wait(int *addr, int val);
lab_internal void lab_os_futex_wake(int *addr, int n);
/* The same wait with a deadline: at most ms milliseconds (UINT64_MAX: none); the pool's purge. */
lab_internal void lab_os_futex_wait_ms(int *addr, int val, uint64_t ms);

/* A full memory barrier run on every thread of the process that is running now (membarrier,
 * private expedited; registered at the first call): lets a rare side pair with a plain store
 * and load on the hot side (Dekker). 0 on success, -errno where the kernel has none. */
lab_internal long lab_os_membarrier(void);
#endif
