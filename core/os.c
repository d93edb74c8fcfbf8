/* os.c — raw system calls for mapping, unmapping, advising and protecting memory.
 * Layer 1: calls nothing of Labyrinth but common.h. Uses inline `syscall` instructions so that
 * errno is untouched and nothing here can recurse into an interposed libc name. */
#define _GNU_SOURCE /* MREMAP_FIXED */
#include "os.h"
#include "lock.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sysinfo.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>

__thread int lab_locks_held;
__thread int lab_lock_quiet;
static uint64_t os_calls, os_maps, os_unmaps, os_purges, os_remaps, os_mapped_bytes;
static uint64_t os_fail_every, os_fail_after, os_map_attempts;

static inline long os_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    lab_add_relaxed(&os_calls, 1);
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
}

/* A fault-injection decision for one mapping of len bytes; true = pretend ENOMEM. */
static bool os_inject(size_t len)
{
    uint64_t every = lab_load_relaxed(&os_fail_every);
    uint64_t after = lab_load_relaxed(&os_fail_after);
    if (lab_likely(!every && !after))
        return false;
    uint64_t n = lab_add_relaxed(&os_map_attempts, 1) + 1;
    if (every && n % every == 0)
        return true;
    if (after && lab_load_relaxed(&os_mapped_bytes) + len > after)
        return true;
    return false;
}

long lab_os_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
    if (!(flags & MAP_FIXED) && os_inject(len))
        return -ENOMEM;
    long r = os_syscall6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, off);
    if (r >= 0 || r < -4095) {
        lab_add_relaxed(&os_maps, 1);
        lab_add_relaxed(&os_mapped_bytes, len);
    }
    return r;
}

long lab_os_munmap(void *addr, size_t len)
{
    long r = os_syscall6(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0);
    if (r == 0) {
        lab_add_relaxed(&os_unmaps, 1);
        lab_sub_relaxed(&os_mapped_bytes, len);
    }
    return r;
}

long (*lab_os_remap_hook)(void *old, size_t old_len, size_t new_len, int flags, void *new_addr);

long lab_os_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
    if (new_len > old_len && os_inject(new_len - old_len))
        return -ENOMEM;
    long (*hook)(void *, size_t, size_t, int, void *) = lab_load_relaxed(&lab_os_remap_hook);
    long refused = lab_unlikely(hook != NULL) ? hook(old, old_len, new_len, flags, new_addr) : 0;
    if (refused < 0)
        return refused;
    long r = os_syscall6(SYS_mremap, (long)old, (long)old_len, (long)new_len, flags, (long)new_addr, 0);
    if (r >= 0 || r < -4095) {
        lab_add_relaxed(&os_remaps, 1);
        /* with MREMAP_FIXED the range moved onto was the caller's mapping: it is gone too */
        size_t gone = old_len + ((flags & MREMAP_FIXED) ? new_len : 0);
        lab_add_relaxed(&os_mapped_bytes, new_len - gone);
    }
    return r;
}

long lab_os_madvise(void *addr, size_t len, int advice)
{
    return os_syscall6(SYS_madvise, (long)addr, (long)len, advice, 0, 0, 0);
}

long lab_os_mprotect(void *addr, size_t len, int prot)
{
    return os_syscall6(SYS_mprotect, (long)addr, (long)len, prot, 0, 0, 0);
}

long lab_os_write(int fd, const void *buf, size_t len)
{
    return os_syscall6(SYS_write, fd, (long)buf, (long)len, 0, 0, 0);
}

long lab_os_gettid(void)
{
    return os_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
}

unsigned lab_os_cpus(void)
{
    uint64_t mask[16] = {0}; /* 1 024 CPUs */
    long n = os_syscall6(SYS_sched_getaffinity, 0, (long)sizeof mask, (long)mask, 0, 0, 0);
    unsigned cpus = 0;
    for (long w = 0; n > 0 && w < n / 8; w++)
        cpus += (unsigned)__builtin_popcountll(mask[w]);
    return cpus ? cpus : 1;
}

bool lab_os_claim_ended(int *owner, int tid)
{
    if (!lab_os_thread_ended(tid) ||
        !__atomic_compare_exchange_n(owner, &tid, -1, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return false;
    /* the id given to a new thread, which took what *owner guards before the claim */
    if (lab_os_thread_ended(tid))
        return true;
    __atomic_store_n(owner, tid, __ATOMIC_RELEASE);
    return false;
}

bool lab_os_thread_ended(int tid)
{
    /* signal 0: only the checks; ESRCH: no thread of that id in this process (the pid asked
     * each time: a fork child has its own) */
    long pid = os_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
    return os_syscall6(SYS_tgkill, pid, tid, 0, 0, 0, 0) == -ESRCH;
}

static inline bool os_is_err(long r) { return r < 0 && r >= -4095; }

void *lab_os_map_aligned(size_t size, size_t align, int *err)
{
    long r = lab_os_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (os_is_err(r)) {
        *err = (int)r;
        return NULL;
    }
    uintptr_t p = (uintptr_t)r;
    if ((p & (align - 1)) == 0)
        return (void *)p;
    /* Misaligned: map size+align and trim both ends, so no address space is wasted. */
    lab_os_munmap((void *)p, size);
    size_t over = size + align;
    r = lab_os_mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (os_is_err(r)) {
        *err = (int)r;
        return NULL;
    }
    p = (uintptr_t)r;
    uintptr_t a = lab_align_up(p, align);
    if (a > p)
        lab_os_munmap((void *)p, a - p);
    if (p + over > a + size)
        lab_os_munmap((void *)(a + size), p + over - (a + size));
    return (void *)a;
}

void *lab_os_reserve(size_t len, size_t align, int prot)
{
    /* first the length alone: the kernel places a mapping of whole 2 MiB units on a 2 MiB
     * boundary where it can (and any on a page), so the usual case is one call, where mapping
     * len + align and trimming both ends took three at every process start */
    long r = os_syscall6(SYS_mmap, 0, (long)len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (os_is_err(r))
        return NULL;
    if (((uintptr_t)r & (align - 1)) == 0)
        return (void *)r;
    os_syscall6(SYS_munmap, r, (long)len, 0, 0, 0, 0);
    r = os_syscall6(SYS_mmap, 0, (long)(len + align), prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (os_is_err(r))
        return NULL;
    uintptr_t p = (uintptr_t)r, a = lab_align_up(p, align);
    if (a > p)
        os_syscall6(SYS_munmap, (long)p, (long)(a - p), 0, 0, 0, 0);
    if (p + len + align > a + len)
        os_syscall6(SYS_munmap, (long)(a + len), (long)(p + len + align - (a + len)), 0, 0, 0, 0);
    return (void *)a;
}

void lab_os_unreserve(void *addr, size_t len) { os_syscall6(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0); }

bool lab_os_address_limited(void)
{
    struct { uint64_t cur, max; } lim;
    long r = os_syscall6(SYS_prlimit64, 0, RLIMIT_AS, 0, (long)&lim, 0, 0);
    return r == 0 && lim.cur != ~(uint64_t)0;
}

int lab_os_commit(void *addr, size_t len)
{
    if (os_inject(len))
        return -ENOMEM;
    long r = os_syscall6(SYS_mprotect, (long)addr, (long)len, PROT_READ | PROT_WRITE, 0, 0, 0);
    if (r == 0) {
        lab_add_relaxed(&os_maps, 1);
        lab_add_relaxed(&os_mapped_bytes, len);
    }
    return (int)r;
}

int lab_os_decommit(void *addr, size_t len)
{
    /* one call replaces the pages (their memory is freed) with fresh reserved ones */
    long r = os_syscall6(SYS_mmap, (long)addr, (long)len, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (os_is_err(r))
        return (int)r;
    lab_add_relaxed(&os_unmaps, 1);
    lab_sub_relaxed(&os_mapped_bytes, len);
    return 0;
}

int lab_os_purge(void *addr, size_t len)
{
    lab_add_relaxed(&os_purges, 1);
    return (int)lab_os_madvise(addr, len, MADV_DONTNEED);
}

int lab_os_pages_held_pagemap(const void *addr, size_t npages, uint64_t *held)
{
    /* opened for each call: a descriptor kept open could be closed by the program (daemons close
     * every descriptor) and its number reused for a file whose bytes would read as entries */
    long fd = os_syscall6(SYS_openat, AT_FDCWD, (long)"/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0, 0, 0);
    if (fd < 0)
        return (int)fd;
    long r = 0;
    uint64_t e[64];
    uint64_t first = (uintptr_t)addr >> LAB_PAGE_SHIFT;
    for (size_t i = 0; i < npages && r >= 0; i += 64) {
        size_t k = lab_min((size_t)64, npages - i);
        r = os_syscall6(SYS_pread64, fd, (long)e, (long)(k * 8), (long)((first + i) * 8), 0, 0);
        if (r >= 0 && (size_t)r != k * 8)
            r = -EIO;
        uint64_t bits = 0;
        for (size_t j = 0; r >= 0 && j < k; j++)
            bits |= (uint64_t)((e[j] >> 62) != 0) << j; /* 63: present, 62: swapped */
        held[i / 64] = bits;
    }
    os_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
    return r < 0 ? (int)r : 0;
}

/* Whether no swap is configured (sysinfo), so that no page can be in swap. */
static bool os_no_swap(void)
{
    struct sysinfo si; /* the kernel's (linux/sysinfo.h) */
    return os_syscall6(SYS_sysinfo, (long)&si, 0, 0, 0, 0, 0) == 0 && si.totalswap == 0;
}

/* mincore: one system call and no descriptor (opening /proc/self/pagemap cost more than clearing
 * a resident 1 MiB run here: `calloc/1048576` in bench/micro). A resident page may hold data; an
 * absent one reads zero unless it is in swap, which it cannot be if no swap was configured just
 * before mincore and none just after (a page swapped out before the first look keeps swap
 * configured until swapoff has brought it back, resident; between the two looks there is no
 * time to turn swap on, swap the page out and turn swap off). With swap, /proc/self/pagemap
 * tells swapped pages from untouched ones. */
int lab_os_pages_held(const void *addr, size_t npages, uint64_t *held)
{
    if (!os_no_swap())
        return lab_os_pages_held_pagemap(addr, npages, held);
    unsigned char v[512]; /* one call for a chunk's pages (callers ask at most 512) */
    bool absent = false;
    long r = 0;
    for (size_t w = 0; w < (npages + 63) / 64; w++)
        held[w] = 0;
    for (size_t i = 0; i < npages && r == 0; i += sizeof v) {
        size_t k = lab_min(sizeof v, npages - i);
        r = os_syscall6(SYS_mincore, (long)((uintptr_t)addr + (i << LAB_PAGE_SHIFT)), (long)(k << LAB_PAGE_SHIFT),
                        (long)v, 0, 0, 0);
        for (size_t j = 0; r == 0 && j < k; j++) {
            held[(i + j) / 64] |= (uint64_t)(v[j] & 1) << ((i + j) % 64);
            absent |= !(v[j] & 1);
        }
    }
    if (r == 0 && (!absent || os_no_swap()))
        return 0;
    return lab_os_pages_held_pagemap(addr, npages, held);
}

/* mincore of the page holding addr: the system call's result, *v the kernel's byte. */
static long page_mincore(const void *addr, unsigned char *v)
{
    lab_add_relaxed(&os_calls, 1);
    return os_syscall6(SYS_mincore, (long)lab_align_down((uintptr_t)addr, LAB_PAGE_SIZE), LAB_PAGE_SIZE, (long)v, 0,
                       0, 0);
}

int lab_os_page_resident(const void *addr)
{
    unsigned char v;
    return page_mincore(addr, &v) != 0 ? -1 : v & 1;
}

bool lab_os_mapped(const void *addr)
{
    unsigned char v;
    return page_mincore(addr, &v) != -ENOMEM;
}

void lab_os_counters(struct lab_os_counters *out)
{
    out->calls = lab_load_relaxed(&os_calls);
    out->maps = lab_load_relaxed(&os_maps);
    out->unmaps = lab_load_relaxed(&os_unmaps);
    out->purges = lab_load_relaxed(&os_purges);
    out->remaps = lab_load_relaxed(&os_remaps);
    out->mapped_bytes = lab_load_relaxed(&os_mapped_bytes);
}

void lab_os_inject_failures(uint64_t every_nth_map, uint64_t fail_after_bytes)
{
    lab_store_relaxed(&os_map_attempts, 0);
    lab_store_relaxed(&os_fail_every, every_nth_map);
    lab_store_relaxed(&os_fail_after, fail_after_bytes);
}

size_t lab_os_max_map_count(void)
{
    char buf[32];
    long fd = os_syscall6(SYS_openat, AT_FDCWD, (long)"/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC, 0, 0, 0);
    if (fd < 0)
        return 65530; /* the kernel's default */
    long n = os_syscall6(SYS_read, fd, (long)buf, sizeof buf - 1, 0, 0, 0);
    os_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
    size_t v = 0;
    for (long i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (size_t)(buf[i] - '0');
    return v ? v : 65530;
}

size_t lab_os_map_count(void)
{
    char buf[4096];
    long fd = os_syscall6(SYS_openat, AT_FDCWD, (long)"/proc/self/maps", O_RDONLY | O_CLOEXEC, 0, 0, 0);
    if (fd < 0)
        return 0;
    size_t lines = 0;
    long n;
    while ((n = os_syscall6(SYS_read, fd, (long)buf, sizeof buf, 0, 0, 0)) > 0)
        for (long i = 0; i < n; i++)
            lines += buf[i] == '\n';
    os_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
    return lines;
}

/* ---- the clock, from the kernel's vDSO, not through the clock_gettime symbol ----
 * Another preloaded library may wrap clock_gettime and allocate in its wrapper: libfaketime's
 * first call looks itself up with dlsym, whose failure message is a malloc. The pool reads the
 * clock while it sets up under its lock, so that malloc waited for itself (any program with
 * libfaketime preloaded beside Labyrinth hung at its first malloc: found by review), and
 * AddressSanitizer's wrapper jumped to NULL. The vDSO's own entry point, found by its ELF symbol
 * table (the address the auxiliary vector gives), is what glibc's clock_gettime calls; without a
 * vDSO, the system call. */
typedef int (*vdso_gettime_t)(clockid_t, struct timespec *);

static int clock_syscall(clockid_t id, struct timespec *ts)
{
    return (int)os_syscall6(SYS_clock_gettime, id, (long)ts, 0, 0, 0, 0);
}

static vdso_gettime_t vdso_find(void)
{
    const unsigned char *base = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    if (!base || memcmp(base, ELFMAG, SELFMAG) != 0 || base[EI_CLASS] != ELFCLASS64)
        return NULL;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
    intptr_t bias = 0;
    bool loaded = false;
    const Elf64_Dyn *dyn = NULL;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !loaded) {
            bias = (intptr_t)base + (intptr_t)ph[i].p_offset - (intptr_t)ph[i].p_vaddr;
            loaded = true;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
        }
    }
    if (!loaded || !dyn)
        return NULL;
    const Elf64_Sym *sym = NULL;
    const char *str = NULL;
    const Elf32_Word *hash = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_SYMTAB)
            sym = (const Elf64_Sym *)(bias + (intptr_t)dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_STRTAB)
            str = (const char *)(bias + (intptr_t)dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_HASH)
            hash = (const Elf32_Word *)(bias + (intptr_t)dyn->d_un.d_ptr);
    }
    if (!sym || !str)
        return NULL;
    /* the symbol count: DT_HASH's chain count; without it, the table ends where the strings
     * begin (the linker's layout for the vDSO) */
    size_t n = hash ? hash[1] : 0;
    if (!hash && (const char *)str > (const char *)sym)
        n = (size_t)((const char *)str - (const char *)sym) / sizeof *sym;
    for (size_t i = 0; i < n && i < 4096; i++) {
        if (sym[i].st_shndx == SHN_UNDEF || ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC)
            continue;
        if (!strcmp(str + sym[i].st_name, "__vdso_clock_gettime"))
            return (vdso_gettime_t)(bias + (intptr_t)sym[i].st_value);
    }
    return NULL;
}

static vdso_gettime_t vdso_gettime; /* found at the first call (NULL: not yet) */

uint64_t lab_clock_ms(void)
{
    vdso_gettime_t f = lab_load_relaxed(&vdso_gettime);
    if (lab_unlikely(!f)) {
        f = vdso_find(); /* the same answer in every thread: a race stores it twice */
        if (!f)
            f = clock_syscall;
        lab_store_relaxed(&vdso_gettime, f);
    }
    struct timespec ts;
    if (f(CLOCK_MONOTONIC_COARSE, &ts) != 0 && clock_syscall(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t lab_fmt_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

static size_t os_fmt_hex(char *buf, uintptr_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    buf[0] = '0';
    buf[1] = 'x';
    for (size_t i = 0; i < n; i++)
        buf[2 + i] = tmp[n - 1 - i];
    return n + 2;
}

void lab_message(const char *msg, const void *addr)
{
    char line[256];
    size_t n = 0;
    const char *pre = "labyrinth: ";
    while (*pre)
        line[n++] = *pre++;
    while (*msg && n < sizeof line - 24)
        line[n++] = *msg++;
    if (addr) {
        line[n++] = ' ';
        n += os_fmt_hex(line + n, (uintptr_t)addr);
    }
    line[n++] = '\n';
    lab_os_write(2, line, n);
}

void lab_fatal(const char *what, const void *addr)
{
    lab_message(what, addr);
    /* abort() raises SIGABRT without allocating; it is async-signal-safe in glibc. */
    abort();
}

void lab_os_futex_wait(int *addr, int val)
{
    os_syscall6(SYS_futex, (long)addr, 128 /* FUTEX_WAIT_PRIVATE */, val, 0, 0, 0);
}

void lab_os_futex_wake(int *addr, int n)
{
    os_syscall6(SYS_futex, (long)addr, 129 /* FUTEX_WAKE_PRIVATE */, n, 0, 0, 0);
}

long lab_os_membarrier(void)
{
    /* 1 << 3: MEMBARRIER_CMD_PRIVATE_EXPEDITED, 1 << 4: its registration (once a process; a
     * fork child inherits it, an exec'd program starts without) */
    long r = os_syscall6(SYS_membarrier, 1 << 3, 0, 0, 0, 0, 0);
    if (r == -EPERM && os_syscall6(SYS_membarrier, 1 << 4, 0, 0, 0, 0, 0) == 0)
        r = os_syscall6(SYS_membarrier, 1 << 3, 0, 0, 0, 0, 0);
    return r;
}

void lab_os_futex_wait_ms(int *addr, int val, uint64_t ms)
{
    if (ms == UINT64_MAX) {
        lab_os_futex_wait(addr, val);
        return;
    }
    /* a relative timeout on CLOCK_MONOTONIC */
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    os_syscall6(SYS_futex, (long)addr, 128 /* FUTEX_WAIT_PRIVATE */, val, (long)&ts, 0, 0);
}
