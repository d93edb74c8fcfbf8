/* semantics.c — the kernel's contracts for anonymous mmap, munmap, mremap, mprotect and madvise,
 * checked the same way whether the calls reach the kernel directly (no preload), through
 * Labyrinth with LABYRINTH_MMAP off, or through the pool (LABYRINTH_MMAP=1). ctest runs it all
 * three ways; with LAB_EXPECT_MMAP=1 it also requires, through labyrinth_mmap_stats, that the pool
 * really served mappings and reused unmapped pages (LAB_EXPECT_PURGE=1: and purged some).
 * Faults are probed in-process with a SIGSEGV handler and sigsetjmp; fork checks run in children.
 * Usage: semantics [section...]  (default: all; see `sections` below) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"
#include "labyrinth.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

#define PG ((size_t)4096)
#define RW (PROT_READ | PROT_WRITE)

static int expect_mmap;   /* LAB_EXPECT_MMAP=1: the pool must be in use */

/* ------------------------------------------------------------------------------------------
 * helpers */

static char *map_rw(size_t len)
{
    void *p = mmap(NULL, len, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static sigjmp_buf probe_env;
static volatile sig_atomic_t probing;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    (void)uc;
    if (probing)
        siglongjmp(probe_env, 1);
    signal(sig, SIG_DFL); /* a real crash of the test itself */
    raise(sig);
}

/* fn (or, with SA_SIGINFO in flags, fn3) for sig; block_all: every other signal blocked meanwhile. */
static void handle_with(int sig, void (*fn)(int), void (*fn3)(int, siginfo_t *, void *), int flags, bool block_all)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (flags & SA_SIGINFO)
        sa.sa_sigaction = fn3;
    else
        sa.sa_handler = fn;
    sa.sa_flags = flags;
    if (block_all)
        sigfillset(&sa.sa_mask);
    else
        sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void faults_install(void)
{
    handle_with(SIGSEGV, NULL, on_fault, SA_SIGINFO | SA_NODEFER, false);
    handle_with(SIGBUS, NULL, on_fault, SA_SIGINFO | SA_NODEFER, false);
}

/* fn for sig, restarting interrupted calls; block_all: every other signal blocked meanwhile. */
static void handle(int sig, void (*fn)(int), bool block_all) { handle_with(sig, fn, NULL, SA_RESTART, block_all); }

/* 1 if the byte at p can be read (write: read and written back unchanged). */
static int accessible(volatile char *p, int write)
{
    probing = 1;
    if (sigsetjmp(probe_env, 1)) {
        probing = 0;
        return 0;
    }
    char c = *p;
    if (write)
        *p = c;
    probing = 0;
    return 1;
}

static int readable(void *p) { return accessible(p, 0); }
static int writable(void *p) { return accessible(p, 1); }

static size_t first_nonzero(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return i;
    return SIZE_MAX;
}

/* A pattern that depends on the seed and the offset, never zero. */
static void fill(char *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t v = (seed * 0x9E3779B97F4A7C15ull + i) | 1;
        memcpy(p + i, &v, 8);
    }
}

/* Check [p+from, p+to) against fill(p, ..., seed); returns the first bad offset or SIZE_MAX. */
static size_t check_fill_part(const char *p, size_t from, size_t to, uint64_t seed)
{
    for (size_t i = from; i + 8 <= to; i += 8) {
        uint64_t v = (seed * 0x9E3779B97F4A7C15ull + i) | 1, got;
        memcpy(&got, p + i, 8);
        if (got != v)
            return i;
    }
    return SIZE_MAX;
}

static size_t check_fill(const char *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t v = (seed * 0x9E3779B97F4A7C15ull + i) | 1, got;
        memcpy(&got, p + i, 8);
        if (got != v)
            return i;
    }
    return SIZE_MAX;
}

/* The permissions /proc/self/maps shows for the mapping holding p ("" if none). */
static void maps_perms(const void *p, char out[8])
{
    out[0] = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && (uintptr_t)p >= lo && (uintptr_t)p < hi) {
            strcpy(out, perms);
            break;
        }
    }
    fclose(f);
}

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

#define CHECK_ERR(call, want)                                                                  \
    do {                                                                                       \
        errno = 0;                                                                             \
        long r_ = (long)(call);                                                                \
        int e_ = errno;                                                                        \
        CHECK(r_ == -1 && e_ == (want), "%s: returned %ld errno %d (%s), wanted -1 errno %d (%s)", \
              #call, r_, e_, strerror(e_), want, strerror(want));                             \
    } while (0)

/* ------------------------------------------------------------------------------------------
 * sections */

/* Pages read zero when handed out, after many rounds of dirtying and unmapping the same sizes
 * (all touched, half touched, one byte touched), some mappings kept alive across rounds. */
static void t_zero_reuse(void)
{
    SAY("zero-fill on reuse: 300 rounds of sizes 4 KiB .. 1 MiB + 4 KiB, dirtied before munmap");
    static const size_t sizes[] = {PG, 3 * PG, 4 * PG, 16 * PG, 17 * PG, 64 * PG, 256 * PG, 257 * PG};
    char *keep[8] = {0};
    size_t keep_len[8] = {0};
    for (int round = 0; round < 300; round++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t len = sizes[k];
            char *p = map_rw(len);
            CHECK(p != NULL, "mmap %zu: %s", len, strerror(errno));
            if (!p)
                return;
            size_t nz = first_nonzero(p, len);
            CHECK(nz == SIZE_MAX, "round %d size %zu: byte %zu of a new mapping is %d", round, len, nz,
                  nz == SIZE_MAX ? 0 : p[nz]);
            int how = (round + (int)k) % 3;
            if (how == 0)
                memset(p, 0xA5, len);
            else if (how == 1)
                memset(p, 0x5A, len / 2);
            else
                p[len - 1] = 1;
            if ((round + k) % 11 == 0) { /* live for a while */
                int slot = (int)(k % 8);
                if (keep[slot]) {
                    CHECK(keep[slot][keep_len[slot] - 1] != 0 || keep[slot][0] != 0, "a kept mapping lost its data");
                    munmap(keep[slot], keep_len[slot]);
                }
                keep[slot] = p;
                keep_len[slot] = len;
                continue;
            }
            CHECK(munmap(p, len) == 0, "munmap: %s", strerror(errno));
        }
    }
    for (int i = 0; i < 8; i++)
        if (keep[i])
            munmap(keep[i], keep_len[i]);
}

static void t_unmap_faults(void)
{
    SAY("munmap: the whole region, and exactly the part unmapped, fault afterwards");
    char *p = map_rw(16 * PG);
    CHECK(p != NULL, "mmap");
    if (!p)
        return;
    fill(p, 16 * PG, 1);
    CHECK(munmap(p, 16 * PG) == 0, "munmap");
    CHECK(!readable(p) && !readable(p + 15 * PG), "an unmapped region is still readable");
    CHECK(munmap(p, 16 * PG) == 0, "munmap of an unmapped range must succeed: %s", strerror(errno));

    p = map_rw(8 * PG);
    fill(p, 8 * PG, 2);
    CHECK(munmap(p + 2 * PG, 2 * PG) == 0 && munmap(p + 6 * PG, PG) == 0, "partial munmap: %s", strerror(errno));
    for (size_t i = 0; i < 8; i++) {
        int gone = i == 2 || i == 3 || i == 6;
        CHECK(readable(p + i * PG) == !gone, "page %zu after partial munmap: readable %d", i, readable(p + i * PG));
        if (!gone) /* the kept pages keep their bytes */
            CHECK(check_fill_part(p, i * PG, (i + 1) * PG, 2) == SIZE_MAX, "page %zu lost its data", i);
    }
    /* a munmap over mapped and unmapped parts at once */
    CHECK(munmap(p, 8 * PG) == 0, "munmap over holes: %s", strerror(errno));
    for (int i = 0; i < 8; i++)
        CHECK(!readable(p + i * PG), "page %d still readable after munmap of all", i);
    /* the unmapped address range never reads as someone else's data: a new mapping there is zero */
    char *secret = map_rw(4 * PG);
    memset(secret, 'S', 4 * PG);
    munmap(secret, 4 * PG);
    for (int i = 0; i < 64; i++) {
        char *q = map_rw(4 * PG);
        if (q == secret)
            CHECK(first_nonzero(q, 4 * PG) == SIZE_MAX, "a reused address shows the old bytes");
        void *m = malloc(4 * PG);
        CHECK(!m || (char *)m + 4 * PG <= secret || (char *)m >= secret + 4 * PG || q == secret,
              "malloc returned unmapped pooled memory while it is unmapped");
        free(m);
        munmap(q, 4 * PG);
    }
    CHECK(!readable(secret), "the secret region became readable again");
}

static void t_mremap(void)
{
    SAY("mremap: shrink, grow in place, grow and move, MREMAP_FIXED, DONTUNMAP, errors");
    /* shrink */
    char *p = map_rw(8 * PG);
    fill(p, 8 * PG, 3);
    char *q = mremap(p, 8 * PG, 3 * PG, 0);
    CHECK(q == p, "shrink moved or failed: %p %s", (void *)q, strerror(errno));
    CHECK(check_fill(p, 3 * PG, 3) == SIZE_MAX, "shrink lost data");
    CHECK(!readable(p + 3 * PG) && !readable(p + 7 * PG), "the cut tail is still readable");
    munmap(p, 3 * PG);

    /* grow in place into pages this mapping just gave up */
    p = map_rw(8 * PG);
    fill(p, 8 * PG, 4);
    munmap(p + 4 * PG, 4 * PG);
    q = mremap(p, 4 * PG, 8 * PG, 0);
    if (q == MAP_FAILED) {
        CHECK(errno == ENOMEM, "grow in place: errno %d", errno);
        CHECK(!expect_mmap, "grow in place over free pooled pages failed");
        munmap(p, 4 * PG);
    } else {
        CHECK(q == p, "grow without MAYMOVE moved");
        CHECK(check_fill(p, 4 * PG, 4) == SIZE_MAX, "grow in place lost data");
        CHECK(first_nonzero(p + 4 * PG, 4 * PG) == SIZE_MAX, "grown pages are not zero");
        CHECK(writable(p + 7 * PG), "grown pages are not writable");
        munmap(p, 8 * PG);
    }

    /* grow with MAYMOVE, small and past LABYRINTH_MMAP_MAX */
    for (size_t to = 64 * PG; to <= 1024 * PG; to *= 16) {
        p = map_rw(4 * PG);
        fill(p, 4 * PG, 5);
        char *blocker = map_rw(PG); /* likely right after p: growing in place is less likely */
        q = mremap(p, 4 * PG, to, MREMAP_MAYMOVE);
        CHECK(q != MAP_FAILED, "grow with MAYMOVE to %zu: %s", to, strerror(errno));
        if (q != MAP_FAILED) {
            CHECK(check_fill(q, 4 * PG, 5) == SIZE_MAX, "moved mapping lost data");
            CHECK(first_nonzero(q + 4 * PG, to - 4 * PG) == SIZE_MAX, "grown part not zero");
            memset(q + to - PG, 7, PG);
            if (q != p && (p + 4 * PG <= q || p >= q + to))
                CHECK(!readable(p), "the old address is readable after a move");
            munmap(q, to);
        }
        munmap(blocker, PG);
    }

    /* MREMAP_FIXED onto another mapping of ours */
    p = map_rw(4 * PG);
    char *t = map_rw(6 * PG);
    fill(p, 4 * PG, 6);
    memset(t, 'T', 6 * PG);
    q = mremap(p, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, t + PG);
    CHECK(q == t + PG, "MREMAP_FIXED: %p (%s)", (void *)q, strerror(errno));
    if (q == t + PG) {
        CHECK(check_fill(q, 4 * PG, 6) == SIZE_MAX, "MREMAP_FIXED lost data");
        CHECK(t[0] == 'T' && t[5 * PG] == 'T', "MREMAP_FIXED touched the pages around it");
        CHECK(!readable(p), "old address readable after MREMAP_FIXED");
    }
    munmap(t, 6 * PG);
    CHECK(!readable(t + 2 * PG), "munmap after MREMAP_FIXED left pages");

    /* DONTUNMAP: the old range stays mapped and reads zero */
    p = map_rw(4 * PG);
    fill(p, 4 * PG, 7);
    q = mremap(p, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
    if (q == MAP_FAILED) {
        SAY("  MREMAP_DONTUNMAP: %s (kernel too old?); skipped", strerror(errno));
        munmap(p, 4 * PG);
    } else {
        CHECK(check_fill(q, 4 * PG, 7) == SIZE_MAX, "DONTUNMAP: data did not move");
        CHECK(readable(p) && first_nonzero(p, 4 * PG) == SIZE_MAX, "DONTUNMAP: old range not empty");
        munmap(p, 4 * PG);
        munmap(q, 4 * PG);
    }

    /* errors */
    p = map_rw(4 * PG);
    munmap(p + 2 * PG, PG);
    CHECK_ERR(mremap(p, 4 * PG, 8 * PG, MREMAP_MAYMOVE), EFAULT);
    CHECK(readable(p) && !readable(p + 2 * PG), "a failed mremap changed the mapping");
    CHECK_ERR(mremap(p + 1, PG, 2 * PG, MREMAP_MAYMOVE), EINVAL);
    CHECK_ERR(mremap(p, PG, 0, MREMAP_MAYMOVE), EINVAL);
    CHECK_ERR(mremap(p, PG, 2 * PG, 0x80), EINVAL);
    CHECK_ERR(mremap(p, PG, PG, MREMAP_FIXED, p + 8 * PG), EINVAL);
    CHECK_ERR(mremap(p + 2 * PG, PG, 2 * PG, MREMAP_MAYMOVE), EFAULT); /* unmapped */
    munmap(p, 4 * PG);
    CHECK_ERR(mremap(p, PG, 2 * PG, MREMAP_MAYMOVE), EFAULT);
}

static void t_mprotect(void)
{
    SAY("mprotect: read-only and none fault as they should, holes give ENOMEM, errors");
    char *p = map_rw(4 * PG);
    fill(p, 4 * PG, 8);
    CHECK(mprotect(p, 4 * PG, PROT_READ) == 0, "mprotect READ: %s", strerror(errno));
    CHECK(readable(p) && !writable(p) && !writable(p + 3 * PG), "PROT_READ: not read-only");
    CHECK(mprotect(p, 2 * PG, PROT_NONE) == 0, "mprotect NONE");
    CHECK(!readable(p) && !readable(p + PG) && readable(p + 2 * PG), "PROT_NONE: wrong pages fault");
    CHECK(mprotect(p, 4 * PG, RW) == 0, "mprotect RW");
    CHECK(writable(p) && writable(p + 3 * PG) && check_fill(p, 4 * PG, 8) == SIZE_MAX, "RW again: data or access lost");
    CHECK(mprotect(p, 0, PROT_NONE) == 0 && writable(p), "mprotect of length 0");
    CHECK_ERR(mprotect(p + 1, PG, PROT_READ), EINVAL);
    CHECK_ERR(mprotect(p, PG, 0x1000 | PROT_READ), EINVAL);
    /* a hole: pages before it change, pages after it do not */
    CHECK(munmap(p + 2 * PG, PG) == 0, "munmap");
    CHECK_ERR(mprotect(p, 4 * PG, PROT_READ), ENOMEM);
    CHECK(readable(p) && !writable(p) && !writable(p + PG), "pages before the hole were not changed");
    CHECK(writable(p + 3 * PG), "the page after the hole was changed");
    CHECK(!readable(p + 2 * PG), "mprotect made an unmapped page accessible");
    /* unmapped pages stay unmapped */
    munmap(p, 4 * PG);
    CHECK_ERR(mprotect(p, PG, RW), ENOMEM);
    CHECK_ERR(mprotect(p, PG, 0x1000), EINVAL);
    CHECK(!readable(p), "mprotect of an unmapped page made it readable");
    /* what a program did to its pages is not inherited by the next mapping */
    for (int i = 0; i < 20; i++) {
        char *q = map_rw(4 * PG);
        char perms[8];
        maps_perms(q, perms);
        CHECK(!strcmp(perms, "rw-p"), "a new mapping has permissions '%s'", perms);
        CHECK(writable(q + 3 * PG) && first_nonzero(q, 4 * PG) == SIZE_MAX, "new mapping not zero/writable");
        memset(q, 1, 4 * PG);
        if (i % 2)
            mprotect(q, 2 * PG, PROT_READ | PROT_EXEC);
        else
            mprotect(q + PG, PG, PROT_NONE);
        munmap(q, 4 * PG);
    }
    /* JIT style: write code, make it executable, run it */
    unsigned char *code = (unsigned char *)map_rw(PG);
    code[0] = 0xB8; /* mov eax, 42 */
    code[1] = 42;
    code[2] = code[3] = code[4] = 0;
    code[5] = 0xC3; /* ret */
    CHECK(mprotect(code, PG, PROT_READ | PROT_EXEC) == 0, "mprotect RX");
    int (*fn)(void) = (int (*)(void))(uintptr_t)code;
    CHECK(fn() == 42, "JIT code did not run");
    munmap(code, PG);
}

static void t_map_fixed(void)
{
    SAY("MAP_FIXED and MAP_FIXED_NOREPLACE over mapped and unmapped pages");
    char *p = map_rw(8 * PG);
    fill(p, 8 * PG, 9);
    char *r = mmap(p + 2 * PG, 2 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(r == p + 2 * PG, "MAP_FIXED: %s", strerror(errno));
    CHECK(first_nonzero(r, 2 * PG) == SIZE_MAX, "MAP_FIXED pages are not zero");
    CHECK(check_fill_part(p, 0, 2 * PG, 9) == SIZE_MAX, "MAP_FIXED clobbered the pages before");
    CHECK(check_fill_part(p, 4 * PG, 8 * PG, 9) == SIZE_MAX, "MAP_FIXED clobbered the pages after");
    /* a shared mapping in the middle, seen by a child */
    char *s = mmap(p + 5 * PG, PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(s == p + 5 * PG, "MAP_FIXED shared: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        memset(s, 'C', PG);
        p[0] = 'X'; /* private: the parent must not see it */
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && s[0] == 'C' && s[PG - 1] == 'C', "the child's write to the shared page is not seen");
    CHECK(p[0] != 'X', "the child's write to a private page leaked to the parent");
    CHECK(munmap(p, 8 * PG) == 0, "munmap: %s", strerror(errno));
    for (int i = 0; i < 8; i++)
        CHECK(!readable(p + i * PG), "page %d readable after munmap", i);
    /* the same addresses again: new mappings are private, zero and read-write */
    for (int i = 0; i < 10; i++) {
        char *q = map_rw(8 * PG);
        CHECK(first_nonzero(q, 8 * PG) == SIZE_MAX, "a mapping after MAP_FIXED is not zero");
        char perms[8];
        maps_perms(q + 5 * PG, perms);
        CHECK(!strcmp(perms, "rw-p"), "a mapping after MAP_FIXED shared has '%s'", perms);
        munmap(q, 8 * PG);
    }
    /* NOREPLACE: mapped → EEXIST; just unmapped → succeeds */
    p = map_rw(4 * PG);
    CHECK_ERR(mmap(p + PG, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), EEXIST);
    munmap(p + PG, PG);
    r = mmap(p + PG, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(r == p + PG, "MAP_FIXED_NOREPLACE over an unmapped page: %p %s", (void *)r, strerror(errno));
    if (r == p + PG)
        CHECK(writable(r) && first_nonzero(r, PG) == SIZE_MAX, "NOREPLACE page not zero");
    munmap(p, 4 * PG);
    /* NOREPLACE over malloc's memory: mapped, so EEXIST as the kernel says, and the block kept
     * (a program probing addresses must not be stopped; found by review: pooled mmap aborted with
     * "mmap(MAP_FIXED) over memory that malloc owns") */
    static const size_t sizes[] = {300 * 1024, 100};
    for (size_t i = 0; i < 2; i++) {
        char *b = malloc(sizes[i]);
        CHECK(b != NULL, "malloc(%zu)", sizes[i]);
        if (!b)
            continue;
        memset(b, 0x3c, sizes[i]);
        char *pg = (char *)(((uintptr_t)b + PG - 1) & ~(uintptr_t)(PG - 1));
        if (sizes[i] < PG)
            pg = (char *)((uintptr_t)b & ~(uintptr_t)(PG - 1));
        CHECK_ERR(mmap(pg, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), EEXIST);
        size_t bad = 0;
        for (size_t k = 0; k < sizes[i]; k++)
            bad += (unsigned char)b[k] != 0x3c;
        CHECK(bad == 0, "MAP_FIXED_NOREPLACE over a block of %zu changed %zu of its bytes", sizes[i], bad);
        free(b);
    }
}

static void t_fork(void)
{
    SAY("fork: shared anonymous memory is shared, private memory is copied");
    char *s = mmap(NULL, 16 * PG, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *p = map_rw(16 * PG);
    CHECK(s != MAP_FAILED && p, "mmap");
    fill(p, 16 * PG, 10);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = check_fill(p, 16 * PG, 10) == SIZE_MAX;
        fill(s, 16 * PG, 11);
        memset(p, 0, 16 * PG);
        /* the child maps and unmaps too */
        for (int i = 0; i < 50; i++) {
            char *q = map_rw(8 * PG);
            ok &= q && first_nonzero(q, 8 * PG) == SIZE_MAX;
            if (q) {
                memset(q, 3, 8 * PG);
                munmap(q, 8 * PG);
            }
        }
        _exit(ok ? 0 : 3);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %d", st);
    CHECK(check_fill(s, 16 * PG, 11) == SIZE_MAX, "the child's writes to shared memory are not seen");
    CHECK(check_fill(p, 16 * PG, 10) == SIZE_MAX, "the child's writes to private memory leaked");
    munmap(s, 16 * PG);
    munmap(p, 16 * PG);

    /* MADV_WIPEONFORK set on a mapping must not follow its pages to the next mapping */
    p = map_rw(4 * PG);
    if (madvise(p, 4 * PG, MADV_WIPEONFORK) != 0) {
        SAY("  MADV_WIPEONFORK: %s; skipped", strerror(errno));
        munmap(p, 4 * PG);
        return;
    }
    munmap(p, 4 * PG);
    for (int i = 0; i < 8; i++) {
        char *q = map_rw(4 * PG);
        fill(q, 4 * PG, 12);
        pid = fork();
        if (pid == 0)
            _exit(check_fill(q, 4 * PG, 12) == SIZE_MAX ? 0 : 4);
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a new mapping was wiped in the child (inherited WIPEONFORK)");
        munmap(q, 4 * PG);
    }
}

static void t_madvise(void)
{
    SAY("madvise: DONTNEED reads zero, holes give ENOMEM, errors");
    char *p = map_rw(4 * PG);
    fill(p, 4 * PG, 13);
    CHECK(madvise(p, 4 * PG, MADV_DONTNEED) == 0, "DONTNEED: %s", strerror(errno));
    CHECK(first_nonzero(p, 4 * PG) == SIZE_MAX, "DONTNEED pages do not read zero");
    fill(p, 4 * PG, 14);
    CHECK(madvise(p, 4 * PG, MADV_FREE) == 0, "MADV_FREE: %s", strerror(errno));
    fill(p, 4 * PG, 15);
    CHECK(check_fill(p, 4 * PG, 15) == SIZE_MAX, "pages written after MADV_FREE lost data");
    munmap(p + PG, PG);
    CHECK_ERR(madvise(p, 4 * PG, MADV_DONTNEED), ENOMEM);
    CHECK(first_nonzero(p, PG) == SIZE_MAX && first_nonzero(p + 2 * PG, 2 * PG) == SIZE_MAX,
          "DONTNEED over a hole skipped mapped pages");
    CHECK(!readable(p + PG), "madvise made a hole readable");
    CHECK_ERR(madvise(p, 4 * PG, 9999), EINVAL);
    CHECK_ERR(madvise(p + 1, PG, MADV_DONTNEED), EINVAL);
    CHECK(madvise(p, 0, MADV_DONTNEED) == 0, "madvise length 0");
    munmap(p, 4 * PG);
    CHECK_ERR(madvise(p, PG, MADV_DONTNEED), ENOMEM);
    CHECK_ERR(madvise(p, PG, MADV_WIPEONFORK), ENOMEM);
    CHECK(!readable(p), "madvise of an unmapped page made it readable");
}

static void t_mlock(void)
{
    SAY("mlock: locked pages are unlocked by munmap and not inherited");
    long before = status_kib("VmLck");
    char *p = map_rw(16 * PG);
    if (before < 0 || mlock(p, 16 * PG) != 0) {
        SAY("  mlock: %s; skipped", before < 0 ? "no VmLck" : strerror(errno));
        munmap(p, 16 * PG);
        return;
    }
    CHECK(status_kib("VmLck") >= before + 64, "mlock did not lock");
    munmap(p, 16 * PG);
    CHECK(status_kib("VmLck") == before, "munmap left %ld KiB locked", status_kib("VmLck") - before);
    for (int i = 0; i < 4; i++) {
        char *q = map_rw(16 * PG);
        memset(q, 1, 16 * PG);
        munmap(q, 16 * PG);
    }
    CHECK(status_kib("VmLck") == before, "new mappings are locked");
    p = map_rw(4 * PG);
    munmap(p + 2 * PG, PG);
    CHECK_ERR(mlock(p, 4 * PG), ENOMEM);
    munlock(p, 2 * PG);
    munmap(p, 4 * PG);
    CHECK(status_kib("VmLck") == before, "mlock over a hole left pages locked");
}

static void t_errors(void)
{
    SAY("errno on bad arguments, as the kernel sets it");
    CHECK_ERR(mmap(NULL, 0, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), EINVAL);
    CHECK_ERR(mmap(NULL, SIZE_MAX, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), ENOMEM);
    CHECK_ERR(mmap(NULL, (size_t)1 << 62, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), ENOMEM);
    CHECK_ERR(mmap(NULL, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1), EINVAL);
    CHECK_ERR(mmap(NULL, PG, RW, MAP_ANONYMOUS, -1, 0), EINVAL);
    CHECK_ERR(mmap(NULL, PG, RW, MAP_PRIVATE, 12345, 0), EBADF);
    CHECK_ERR(mmap((void *)(uintptr_t)0x10001, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), EINVAL);
    char *p = map_rw(2 * PG);
    CHECK_ERR(munmap(p + 1, PG), EINVAL);
    CHECK_ERR(munmap(p, 0), EINVAL);
    CHECK_ERR(munmap(p, SIZE_MAX), EINVAL);
    CHECK(munmap(p, 2 * PG) == 0, "munmap");
    /* other flags reach the kernel untouched and work */
    p = mmap(NULL, 8 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    CHECK(p != MAP_FAILED && first_nonzero(p, 8 * PG) == SIZE_MAX, "MAP_POPULATE");
    munmap(p, 8 * PG);
    p = mmap(NULL, 8 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(p != MAP_FAILED && first_nonzero(p, 8 * PG) == SIZE_MAX, "MAP_NORESERVE");
    munmap(p, 8 * PG);
    p = mmap(NULL, 8 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED && readable(p) && !writable(p), "a PROT_READ mapping");
    munmap(p, 8 * PG);
}

/* munmap of memory that malloc owns aborts with a clear message when pooling is on */
static void t_malloc_munmap(void)
{
    if (!expect_mmap)
        return;
    SAY("munmap of malloc's memory aborts with a message (LABYRINTH_MMAP=1)");
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        char *m = malloc(64 * PG);
        uintptr_t a = ((uintptr_t)m + PG - 1) & ~(PG - 1);
        munmap((void *)a, PG);
        _exit(0);
    }
    close(fds[1]);
    char buf[512] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "munmap of malloc memory: status %d", st);
    CHECK(n > 0 && strstr(buf, "labyrinth: munmap of memory that malloc owns"), "message: '%s'", buf);
}

/* ---- threads: mapping, checking and unmapping at once ---- */

#define T_SLOTS 12
static void *thread_body(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 7919 + 1, rng = seed;
    char *slot[T_SLOTS] = {0};
    size_t len[T_SLOTS] = {0};
    uint64_t tag[T_SLOTS] = {0};
    for (int it = 0; it < 1500; it++) {
        int k = (int)(lab_rand(&rng) % T_SLOTS);
        if (slot[k]) {
            size_t bad = check_fill(slot[k], len[k], tag[k]);
            CHECK(bad == SIZE_MAX, "thread %lu: mapping %p lost data at %zu", (unsigned long)(uintptr_t)arg,
                  (void *)slot[k], bad);
            if (len[k] > PG && (it & 1)) { /* half first, then the rest */
                size_t h = (len[k] / PG / 2) * PG;
                CHECK(munmap(slot[k] + h, len[k] - h) == 0, "partial munmap");
                CHECK(munmap(slot[k], h) == 0, "munmap");
            } else {
                CHECK(munmap(slot[k], len[k]) == 0, "munmap");
            }
        }
        len[k] = (1 + lab_rand(&rng) % 32) * PG;
        slot[k] = map_rw(len[k]);
        CHECK(slot[k] != NULL, "mmap in a thread: %s", strerror(errno));
        if (!slot[k])
            break;
        size_t nz = first_nonzero(slot[k], len[k]);
        CHECK(nz == SIZE_MAX, "thread: a new mapping has a non-zero byte at %zu", nz);
        tag[k] = lab_rand(&rng);
        fill(slot[k], len[k], tag[k]);
    }
    for (int k = 0; k < T_SLOTS; k++)
        if (slot[k]) {
            CHECK(check_fill(slot[k], len[k], tag[k]) == SIZE_MAX, "lost data at the end");
            munmap(slot[k], len[k]);
        }
    return NULL;
}

static void t_threads(void)
{
    SAY("threads: 4 threads mapping, filling, checking and unmapping at once");
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, thread_body, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

/* ---- overlapping calls from several threads: while each owner maps, fills, checks, remaps,
 * re-protects and unmaps its regions, the others mprotect them read-write and madvise them
 * (calls that change no byte) at the same moment, whatever the regions have become by then:
 * mapped, half unmapped, holes, another thread's. Meanwhile the main thread forks: each child
 * finds every region that was left alone at the fork intact, unmaps all of them and those in
 * the middle of a change (they fault after), and maps on its own without hanging. At the end no
 * region handed out is readable with its bytes. ---- */

#define R_THREADS 4
#define R_SLOTS 6
#define R_LOG 4000

struct r_slot {
    char *p;
    size_t len;
    uint64_t tag;
    int mixed;               /* MAP_FIXED or mprotect inside: the kernel may hold it as several
                                mappings, which its mremap refuses to move or grow (EFAULT) */
    _Atomic uint64_t any;    /* address | pages while mapped: for the other threads to poke at */
    _Atomic uint64_t stable; /* the same while the owner leaves it alone: for a fork child */
    _Atomic uint64_t held;   /* the same while no call of the owner's gives address space back:
                                a fork child may unmap it (any may name a hole by then, where the
                                kernel may have put the pool's own metadata: found so) */
    _Atomic uint64_t stag;   /* its tag, stored before stable */
};
static struct r_slot r_slot[R_THREADS][R_SLOTS];
static struct {
    uintptr_t a;
    size_t len;
    uint64_t tag;
} r_log[R_THREADS][R_LOG]; /* every region as it was handed out or changed */
static int r_nlog[R_THREADS];
static atomic_int r_done;
/* Set once every thread exists: a thread started early would unmap regions whose addresses the
 * kernel may then give to a later thread's stack, which glibc keeps mapped after the join, and
 * the final check would find those addresses readable. */
static atomic_int r_go;

static uint64_t r_pack(const char *p, size_t len) { return (uint64_t)(uintptr_t)p | (len / PG); }
static char *r_addr(uint64_t v) { return (char *)(uintptr_t)(v & ~(uint64_t)(PG - 1)); }
static size_t r_len(uint64_t v) { return (size_t)(v & (PG - 1)) * PG; }

static void r_publish(int t, struct r_slot *s)
{
    if (r_nlog[t] < R_LOG) {
        r_log[t][r_nlog[t]].a = (uintptr_t)s->p;
        r_log[t][r_nlog[t]].len = s->len;
        r_log[t][r_nlog[t]].tag = s->tag;
        r_nlog[t]++;
    }
    atomic_store(&s->any, r_pack(s->p, s->len));
    atomic_store(&s->stag, s->tag);
    atomic_store(&s->stable, r_pack(s->p, s->len));
    atomic_store(&s->held, r_pack(s->p, s->len));
}

static void r_forget(struct r_slot *s)
{
    atomic_store(&s->stable, 0);
    atomic_store(&s->held, 0);
    atomic_store(&s->any, 0);
    s->p = NULL;
}

/* Poke at some thread's region, maybe past its end: no byte changes; only holes fail. */
static void r_poke(uint64_t *rng)
{
    uint64_t v = atomic_load(&r_slot[lab_rand(rng) % R_THREADS][lab_rand(rng) % R_SLOTS].any);
    if (!v)
        return;
    char *p = r_addr(v) + (lab_rand(rng) % 2) * PG;
    size_t len = r_len(v);
    int op = (int)(lab_rand(rng) % 3);
    errno = 0;
    int r = op == 0 ? mprotect(p, len, RW) : madvise(p, len, op == 1 ? MADV_WILLNEED : MADV_NORMAL);
    CHECK(r == 0 || errno == ENOMEM, "race: poke %d at %p+%zu: %s", op, (void *)p, len, strerror(errno));
}

static bool r_map(int t, struct r_slot *s, uint64_t *rng)
{
    s->len = (1 + lab_rand(rng) % 24) * PG;
    s->tag = lab_rand(rng);
    s->mixed = 0;
    s->p = map_rw(s->len);
    CHECK(s->p != NULL, "race: mmap %zu: %s", s->len, strerror(errno));
    if (!s->p)
        return false;
    size_t nz = first_nonzero(s->p, s->len);
    CHECK(nz == SIZE_MAX, "race: a new mapping has a non-zero byte at %zu", nz);
    fill(s->p, s->len, s->tag);
    r_publish(t, s);
    return true;
}

/* Check the owner's region s, then do one thing to it; o is another of its slots. */
static void r_act(int t, struct r_slot *s, struct r_slot *o, uint64_t *rng)
{
    size_t bad = check_fill(s->p, s->len, s->tag), n = s->len / PG, nl;
    CHECK(bad == SIZE_MAX, "race: thread %d: region %p lost data at %zu", t, (void *)s->p, bad);
    atomic_store(&s->stable, 0);
    char *q;
    unsigned act = (unsigned)(lab_rand(rng) % 8);
    if (act == 0 || act == 1 || act == 2 || act == 4 || act == 7) /* these may give address space back */
        atomic_store(&s->held, 0);
    switch (act) {
    case 0: /* munmap, the second half first */
        if (n > 1)
            CHECK(munmap(s->p + n / 2 * PG, s->len - n / 2 * PG) == 0, "race: munmap: %s", strerror(errno));
        CHECK(munmap(s->p, n > 1 ? n / 2 * PG : s->len) == 0, "race: munmap: %s", strerror(errno));
        r_forget(s);
        return;
    case 1: /* grow, moving if it must: the bytes follow, the new part reads zero */
        if (s->mixed || n > 96)
            break;
        nl = s->len + (1 + lab_rand(rng) % 8) * PG;
        q = mremap(s->p, s->len, nl, MREMAP_MAYMOVE);
        CHECK(q != MAP_FAILED, "race: mremap grow: %s", strerror(errno));
        if (q == MAP_FAILED)
            break;
        CHECK(check_fill(q, s->len, s->tag) == SIZE_MAX, "race: mremap grow lost data");
        CHECK(first_nonzero(q + s->len, nl - s->len) == SIZE_MAX, "race: mremap: the grown part is not zero");
        s->p = q;
        s->len = nl;
        fill(q, nl, s->tag);
        break;
    case 2: /* shrink in place */
        if (n < 2)
            break;
        nl = (1 + lab_rand(rng) % (n - 1)) * PG;
        q = mremap(s->p, s->len, nl, 0);
        CHECK(q == s->p, "race: mremap shrink: %p %s", (void *)q, strerror(errno));
        if (q == s->p)
            s->len = nl;
        break;
    case 3: /* MAP_FIXED over its middle page: zero there */
        q = mmap(s->p + n / 2 * PG, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        CHECK(q == s->p + n / 2 * PG, "race: MAP_FIXED: %s", strerror(errno));
        CHECK(q == MAP_FAILED || first_nonzero(q, PG) == SIZE_MAX, "race: MAP_FIXED page not zero");
        CHECK(check_fill_part(s->p, 0, n / 2 * PG, s->tag) == SIZE_MAX, "race: MAP_FIXED clobbered the pages before");
        fill(s->p, s->len, s->tag);
        s->mixed = 1;
        break;
    case 4: /* unmap, then map the same place again with MAP_FIXED_NOREPLACE (unless taken meanwhile) */
        CHECK(munmap(s->p, s->len) == 0, "race: munmap: %s", strerror(errno));
        q = mmap(s->p, s->len, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (q == MAP_FAILED) {
            CHECK(errno == EEXIST, "race: MAP_FIXED_NOREPLACE over an unmapped region: %s", strerror(errno));
            r_forget(s);
            return;
        }
        CHECK(q == s->p && first_nonzero(q, s->len) == SIZE_MAX, "race: MAP_FIXED_NOREPLACE: %p, or not zero", (void *)q);
        s->p = q;
        s->mixed = 0; /* one kernel mapping */
        fill(s->p, s->len, s->tag);
        break;
    case 5: /* read-only for a moment (the others may make it read-write again), then read-write */
        CHECK(mprotect(s->p, s->len, PROT_READ) == 0, "race: mprotect READ: %s", strerror(errno));
        CHECK(check_fill(s->p, s->len, s->tag) == SIZE_MAX, "race: read-only region lost data");
        CHECK(mprotect(s->p, s->len, RW) == 0, "race: mprotect RW: %s", strerror(errno));
        s->mixed = 1;
        break;
    case 6: /* MADV_DONTNEED: reads zero after */
        CHECK(madvise(s->p, s->len, MADV_DONTNEED) == 0, "race: DONTNEED: %s", strerror(errno));
        CHECK(first_nonzero(s->p, s->len) == SIZE_MAX, "race: DONTNEED pages do not read zero");
        fill(s->p, s->len, s->tag);
        break;
    case 7: /* MREMAP_FIXED onto another region of its own, whose tail it then unmaps */
        if (s->mixed || o == s || !o->p || o->len < s->len)
            break;
        atomic_store(&o->stable, 0);
        atomic_store(&o->held, 0);
        q = mremap(s->p, s->len, s->len, MREMAP_MAYMOVE | MREMAP_FIXED, o->p);
        CHECK(q == o->p, "race: MREMAP_FIXED: %s", strerror(errno));
        if (q != o->p) {
            r_publish(t, o);
            break;
        }
        CHECK(check_fill(q, s->len, s->tag) == SIZE_MAX, "race: MREMAP_FIXED lost data");
        if (o->len > s->len)
            CHECK(munmap(o->p + s->len, o->len - s->len) == 0, "race: munmap: %s", strerror(errno));
        r_forget(o);
        atomic_store(&s->any, 0);
        s->p = q;
        break;
    }
    r_publish(t, s);
}

static void *r_body(void *arg)
{
    int t = (int)(uintptr_t)arg;
    uint64_t rng = (uint64_t)t * 104729 + 17;
    struct r_slot *mine = r_slot[t];
    while (!atomic_load(&r_go))
        sched_yield();
    for (int it = 0; it < 2000; it++) {
        struct r_slot *s = &mine[lab_rand(&rng) % R_SLOTS];
        if (!s->p) {
            if (!r_map(t, s, &rng))
                break;
        } else {
            r_act(t, s, &mine[lab_rand(&rng) % R_SLOTS], &rng);
        }
        r_poke(&rng);
        r_poke(&rng);
    }
    for (int k = 0; k < R_SLOTS; k++)
        if (mine[k].p) {
            CHECK(check_fill(mine[k].p, mine[k].len, mine[k].tag) == SIZE_MAX, "race: lost data at the end");
            atomic_store(&mine[k].stable, 0);
            CHECK(munmap(mine[k].p, mine[k].len) == 0, "race: munmap: %s", strerror(errno));
            r_forget(&mine[k]);
        }
    atomic_fetch_add(&r_done, 1);
    return NULL;
}

/* A thread that only pokes, until the owners are done. */
static void *r_poker(void *arg)
{
    uint64_t rng = (uintptr_t)arg;
    while (atomic_load(&r_done) < R_THREADS)
        r_poke(&rng);
    return NULL;
}

/* p's page holds the bytes one of the regions logged over it last had (fill's pattern). */
static bool r_holds_pattern(const char *p)
{
    for (int t = 0; t < R_THREADS; t++)
        for (int i = 0; i < r_nlog[t]; i++) {
            const char *a = (const char *)r_log[t][i].a;
            if (p >= a && p < a + r_log[t][i].len &&
                check_fill_part(a, (size_t)(p - a), (size_t)(p - a) + PG, r_log[t][i].tag) == SIZE_MAX)
                return true;
        }
    return false;
}

/* The line of /proc/self/maps that holds a, on stderr (a failure's context). */
static void print_mapping(uintptr_t a)
{
    static char line[4096];
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= a && a < hi)
            fprintf(stderr, "  %s", line);
    }
    fclose(f);
}

/* In a child forked while the threads run: every region left alone at the fork is intact and can
 * be unmapped (it faults after); so can what was in the middle of a change that keeps its
 * address space (held); new mappings work. */
static int r_child(void)
{
    signal(SIGALRM, SIG_DFL);
    alarm(60); /* a call waiting for ever on a vanished thread's pages kills the child */
    int bad = 0;
    for (int t = 0; t < R_THREADS; t++)
        for (int k = 0; k < R_SLOTS; k++) {
            uint64_t v = atomic_load(&r_slot[t][k].stable);
            if (!v)
                continue;
            char *p = r_addr(v);
            bad |= (check_fill(p, r_len(v), atomic_load(&r_slot[t][k].stag)) != SIZE_MAX) << 0;
            bad |= (munmap(p, r_len(v)) != 0) << 1;
            bad |= (readable(p) || readable(p + r_len(v) - PG)) << 2;
        }
    for (int t = 0; t < R_THREADS; t++)
        for (int k = 0; k < R_SLOTS; k++) {
            uint64_t v = atomic_load(&r_slot[t][k].held);
            if (v) {
                bad |= (munmap(r_addr(v), r_len(v)) != 0) << 3;
                bad |= readable(r_addr(v)) << 4;
            }
        }
    uint64_t rng = 99;
    for (int i = 0; i < 50; i++) {
        size_t len = (1 + lab_rand(&rng) % 32) * PG;
        char *q = map_rw(len);
        bad |= (!q || first_nonzero(q, len) != SIZE_MAX) << 5;
        if (q) {
            memset(q, 7, len);
            bad |= (munmap(q, len) != 0) << 6;
        }
    }
    return bad;
}

static void t_race(void)
{
    SAY("race: 4 threads remap, re-protect and unmap their regions while they and a fifth mprotect and "
        "madvise them; forks meanwhile");
    int (*stats)(struct labyrinth_mmap_stats *) =
        (int (*)(struct labyrinth_mmap_stats *))dlsym(RTLD_DEFAULT, "labyrinth_mmap_stats");
    struct labyrinth_mmap_stats before, after;
    if (stats)
        stats(&before);
    memset(r_slot, 0, sizeof r_slot);
    memset(r_nlog, 0, sizeof r_nlog);
    atomic_store(&r_done, 0);
    atomic_store(&r_go, 0);
    pthread_t th[R_THREADS + 1];
    for (uintptr_t i = 0; i < R_THREADS; i++)
        pthread_create(&th[i], NULL, r_body, (void *)i);
    pthread_create(&th[R_THREADS], NULL, r_poker, (void *)(uintptr_t)12345);
    atomic_store(&r_go, 1);
    int forks = 0;
    while (atomic_load(&r_done) < R_THREADS && forks < 40) {
        usleep(3000);
        pid_t pid = fork();
        if (pid == 0)
            _exit(r_child());
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "race: fork child: %s %d",
              WIFSIGNALED(st) ? "killed by signal" : "exit status (bits: data, munmap, readable, munmap, readable, "
                                                     "mmap, munmap)",
              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        forks++;
    }
    for (int i = 0; i <= R_THREADS; i++)
        pthread_join(th[i], NULL);
    /* every region handed out is unmapped now: none may be readable with its bytes (the kernel
     * may have put another mapping in a hole the test left: the pool's own metadata, found so) */
    size_t left = 0, other = 0;
    uintptr_t first = 0, first_other = 0;
    for (int t = 0; t < R_THREADS; t++)
        for (int i = 0; i < r_nlog[t]; i++)
            for (int end = 0; end < 2; end++) {
                char *p = (char *)r_log[t][i].a + (end ? r_log[t][i].len - PG : 0);
                if (!readable(p))
                    continue;
                bool ours = r_holds_pattern(p);
                first = first || !ours ? first : (uintptr_t)p;
                first_other = first_other || ours ? first_other : (uintptr_t)p;
                left += ours;
                other += !ours;
            }
    CHECK(left == 0, "race: %zu pages readable with their bytes after every region was unmapped (the first at %#lx)",
          left, (unsigned long)first);
    if (left)
        print_mapping(first);
    if (other) {
        SAY("  %zu pages of the regions' ends hold another mapping now (not the test's bytes), the first:", other);
        print_mapping(first_other);
    }
    if (stats) {
        stats(&after);
        CHECK(after.live_bytes == before.live_bytes, "race: the pool counts %zd bytes more live than before",
              (ssize_t)(after.live_bytes - before.live_bytes));
    }
    SAY("  %d forks", forks);
}

/* ---- a signal handler that maps and unmaps, interrupting the same calls ---- */

static char *victims[64];
static volatile int nvictims, handler_runs, handler_bad;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    handler_runs++;
    char *q = mmap(NULL, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q != MAP_FAILED) {
        for (size_t i = 0; i < 4 * PG; i += 512)
            handler_bad |= q[i] != 0;
        q[0] = 1;
        handler_bad |= munmap(q, 4 * PG) != 0;
    }
    if (nvictims > 0) {
        char *v = victims[--nvictims];
        handler_bad |= munmap(v, 2 * PG) != 0;
    }
    errno = saved;
}

static void t_signals(void)
{
    SAY("signals: a 1 kHz handler maps and unmaps while the program does the same");
    for (int i = 0; i < 64; i++) {
        victims[i] = map_rw(2 * PG);
        memset(victims[i], 'v', 2 * PG);
    }
    char *saved[64];
    memcpy(saved, victims, sizeof saved);
    nvictims = 64;
    handle(SIGALRM, on_alarm, false);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    for (int i = 0; i < 5000 || handler_runs < 64; i++) {
        char *p = map_rw(4 * PG);
        CHECK(p != NULL, "mmap");
        if (!p)
            break;
        if (p[PG] != 0 || p[3 * PG + 7] != 0)
            CHECK(0, "a new mapping is not zero (signals)");
        p[0] = 2;
        munmap(p, 4 * PG);
        if (i > 2000000)
            break;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    CHECK(!handler_bad, "the handler saw a non-zero page or a failed munmap");
    for (int i = nvictims; i < 64; i++)
        CHECK(!readable(saved[i]), "a region the handler unmapped is readable");
    for (int i = 0; i < nvictims; i++)
        munmap(saved[i], 2 * PG);
    SAY("  handler ran %d times", handler_runs);
    /* the pool still works after the handler's calls */
    for (int i = 0; i < 100; i++) {
        char *p = map_rw(2 * PG);
        CHECK(p && first_nonzero(p, 2 * PG) == SIZE_MAX, "after signals: not zero");
        memset(p, 1, 2 * PG);
        munmap(p, 2 * PG);
    }
}

/* ---- edges of mremap, MAP_FIXED and pkey_mprotect where the pool once differed from the kernel ---- */

/* mremap of a region whose protection the program changed, after the pool's own moves left
 * mappings the kernel cannot merge under the addresses it hands out next: the kernel holds the
 * region as one mapping and moves or grows it. */
static void e_tainted_remap(void)
{
    for (int round = 0; round < 2; round++) {
        char *a = map_rw(2 * PG), *blocker = map_rw(PG);
        memset(a, 1, 2 * PG);
        memset(blocker, 1, PG);
        char *d = mremap(a, 2 * PG, 3 * PG, MREMAP_MAYMOVE); /* moved (blocker), by the kernel */
        CHECK(d != MAP_FAILED, "edges: mremap grow: %s", strerror(errno));
        char *e = map_rw(3 * PG);
        memset(e, 1, 3 * PG);
        char *r = round ? mremap(d, 3 * PG, 6 * PG, MREMAP_MAYMOVE) : NULL; /* grown in place, maybe */
        if (round) {
            CHECK(r != MAP_FAILED, "edges: mremap grow: %s", strerror(errno));
            munmap(e, 3 * PG);
        } else {
            munmap(d, 3 * PG);
            munmap(e, 3 * PG);
            r = map_rw(6 * PG); /* likely where d and e were */
        }
        fill(r, 6 * PG, 40 + round);
        CHECK(mprotect(r, 6 * PG, PROT_READ) == 0, "edges: mprotect READ: %s", strerror(errno));
        char *s = mremap(r, 6 * PG, 64 * PG, MREMAP_MAYMOVE);
        CHECK(s != MAP_FAILED, "edges: mremap of a read-only region (round %d): %s", round, strerror(errno));
        if (s != MAP_FAILED) {
            CHECK(check_fill(s, 6 * PG, 40 + round) == SIZE_MAX, "edges: the moved read-only region lost data");
            CHECK(readable(s + PG) && !writable(s + PG) && !writable(s + 5 * PG), "edges: it is not read-only");
            CHECK(readable(s + 63 * PG) && first_nonzero(s + 6 * PG, 58 * PG) == SIZE_MAX, "edges: grown part");
            if (s != r && (s + 64 * PG <= r || s >= r + 6 * PG))
                CHECK(!readable(r), "edges: the old address is readable after the move");
            r = s;
            s = mremap(r, 64 * PG, 80 * PG, MREMAP_MAYMOVE); /* and again */
            CHECK(s != MAP_FAILED, "edges: second mremap: %s", strerror(errno));
            if (s != MAP_FAILED)
                r = s;
            CHECK(check_fill(r, 6 * PG, 40 + round) == SIZE_MAX, "edges: the second move lost data");
            munmap(r, s != MAP_FAILED ? 80 * PG : 64 * PG);
        } else {
            munmap(r, 6 * PG);
        }
        munmap(blocker, PG);
    }
}

/* Shrinking or keeping the size needs a mapping at old only: holes in the rest do not matter. */
static void e_remap_holes(void)
{
    char *p = map_rw(4 * PG);
    fill(p, 4 * PG, 44);
    munmap(p + PG, PG);
    char *q = mremap(p, 4 * PG, PG, 0);
    CHECK(q == p, "edges: shrink over a hole: %p %s", (void *)q, strerror(errno));
    CHECK(check_fill(p, PG, 44) == SIZE_MAX && !readable(p + 2 * PG) && !readable(p + 3 * PG),
          "edges: shrink over a hole: wrong pages kept");
    munmap(p, PG);
    p = map_rw(4 * PG);
    fill(p, 4 * PG, 45);
    munmap(p + 2 * PG, PG);
    q = mremap(p, 4 * PG, 4 * PG, 0);
    CHECK(q == p, "edges: same size over a hole: %p %s", (void *)q, strerror(errno));
    CHECK(readable(p + 3 * PG) && !readable(p + 2 * PG), "edges: same size over a hole changed the pages");
    CHECK_ERR(mremap(p + 2 * PG, 2 * PG, PG, 0), EFAULT); /* no mapping at old */
    /* a move that shrinks: the tail is cut first, holes in it do not matter */
    char *t = map_rw(2 * PG);
    q = mremap(p, 4 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, t);
    CHECK(q == t, "edges: MREMAP_FIXED shrink over a hole: %p %s", (void *)q, strerror(errno));
    if (q == t)
        CHECK(check_fill(t, 2 * PG, 45) == SIZE_MAX && !readable(p) && !readable(p + 3 * PG), "edges: FIXED shrink");
    munmap(p, 4 * PG);
    munmap(t, 2 * PG);
}

/* old_len 0 duplicates a shared mapping, wherever the program placed it; a private one: EINVAL;
 * nothing mapped at old: EFAULT. */
static void e_remap_dup(void)
{
    char *p = map_rw(4 * PG);
    int fd = memfd_create("semantics", 0);
    CHECK(fd >= 0 && ftruncate(fd, PG) == 0, "edges: memfd: %s", strerror(errno));
    char *s = mmap(p + PG, PG, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    CHECK(s == p + PG, "edges: MAP_FIXED shared: %s", strerror(errno));
    strcpy(s, "shared");
    char *d = mremap(s, 0, PG, MREMAP_MAYMOVE | MREMAP_FIXED, p + 3 * PG);
    CHECK(d == p + 3 * PG && !strcmp(d, "shared"), "edges: duplicate (FIXED) of a shared page: %s", strerror(errno));
    char *d2 = mremap(s, 0, PG, MREMAP_MAYMOVE);
    CHECK(d2 != MAP_FAILED && !strcmp(d2, "shared"), "edges: duplicate of a shared page: %s", strerror(errno));
    if (d2 != MAP_FAILED) {
        d2[0] = 'S';
        CHECK(s[0] == 'S', "edges: the duplicate is not shared");
        munmap(d2, PG);
    }
    CHECK_ERR(mremap(p, 0, PG, MREMAP_MAYMOVE), EINVAL);
    munmap(p, 4 * PG);
    CHECK_ERR(mremap(p, 0, PG, MREMAP_MAYMOVE), EFAULT);
    close(fd);
}

/* A MAP_FIXED or MREMAP_FIXED that fails leaves unmapped pages unmapped. */
static void e_fixed_fails(void)
{
    char *q = map_rw(4 * PG);
    memset(q, 0x5a, 4 * PG);
    munmap(q, 4 * PG);
    CHECK_ERR(mmap(q + PG, PG, RW, MAP_PRIVATE | MAP_FIXED, 12345, 0), EBADF);
    CHECK_ERR(mprotect(q + PG, PG, RW), ENOMEM);
    CHECK(!readable(q + PG), "edges: a failed MAP_FIXED made the page readable");
    char *r = mmap(q + PG, PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(r == q + PG, "edges: NOREPLACE after a failed MAP_FIXED: %p %s", (void *)r, strerror(errno));
    if (r == q + PG)
        CHECK(first_nonzero(r, PG) == SIZE_MAX, "edges: the page shows the old bytes");
    munmap(q, 4 * PG);
    char *k = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(k, PG); /* an unmapped address */
    CHECK_ERR(mremap(k, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, q + 2 * PG), EFAULT);
    CHECK_ERR(mprotect(q + 2 * PG, PG, RW), ENOMEM);
    CHECK(!readable(q + 2 * PG), "edges: a failed MREMAP_FIXED made the page readable");
}

/* The kernel checks the key before it looks for a mapping. */
static void e_pkey(void)
{
    /* q first: mapped after p went, it could take p's place (and p would be mapped) */
    char *q = map_rw(2 * PG);
    char *p = map_rw(2 * PG);
    munmap(p, 2 * PG);
    errno = 0;
    if (pkey_mprotect(p, PG, PROT_READ, 15) == 0 || errno == ENOSYS) {
        SAY("  pkey_mprotect: %s; skipped", strerror(errno));
        munmap(q, 2 * PG);
        return;
    }
    CHECK(errno == EINVAL, "edges: pkey_mprotect of an unmapped page, key not allocated: %s", strerror(errno));
    if (pkey_mprotect(q + PG, PG, RW, 0) == 0) { /* key 0 is good where the kernel has keys */
        CHECK_ERR(pkey_mprotect(p, PG, PROT_READ, 0), ENOMEM);
        CHECK(!readable(p), "edges: pkey_mprotect made an unmapped page readable");
    }
    munmap(q, 2 * PG);
    q = map_rw(2 * PG);
    char perms[8];
    maps_perms(q, perms);
    CHECK(!strcmp(perms, "rw-p") && writable(q), "edges: a new mapping after pkey_mprotect has '%s'", perms);
    munmap(q, 2 * PG);
}

static void t_edges(void)
{
    SAY("edges: mremap of re-protected regions, over holes, of old_len 0; failed FIXED calls; pkeys");
    e_tainted_remap();
    e_remap_holes();
    e_remap_dup();
    e_fixed_fails();
    e_pkey();
}

/* ---- the pool must have been used (LAB_EXPECT_MMAP=1), or not (preloaded, off) ---- */

static void t_pool_active(void)
{
    int (*stats)(struct labyrinth_mmap_stats *) =
        (int (*)(struct labyrinth_mmap_stats *))dlsym(RTLD_DEFAULT, "labyrinth_mmap_stats");
    if (!stats) {
        CHECK(!expect_mmap, "LAB_EXPECT_MMAP=1 but labyrinth_mmap_stats is not there (not preloaded?)");
        SAY("pool: not preloaded (the kernel served every call)");
        return;
    }
    struct labyrinth_mmap_stats s;
    stats(&s);
    SAY("pool: enabled %lu, pooled %lu, cache hits %lu, kernel %lu, fallbacks %lu, unmaps %lu, remaps %lu, "
        "purged %lu KiB, live %zu KiB, cached %zu KiB, reserved %zu KiB",
        (unsigned long)s.enabled, (unsigned long)s.pooled_maps, (unsigned long)s.cache_hits,
        (unsigned long)s.kernel_maps, (unsigned long)s.fallbacks, (unsigned long)s.pooled_unmaps,
        (unsigned long)s.remaps, (unsigned long)(s.purged_bytes >> 10), s.live_bytes >> 10, s.cached_bytes >> 10,
        s.reserved_bytes >> 10);
    if (!expect_mmap) {
        CHECK(s.enabled == 0 && s.pooled_maps == 0, "pooling is on without LABYRINTH_MMAP=1");
        return;
    }
    CHECK(s.enabled == 1, "LABYRINTH_MMAP=1 did not enable pooling");
    CHECK(s.pooled_maps > 1000, "only %lu mappings were pooled", (unsigned long)s.pooled_maps);
    CHECK(s.pooled_unmaps > 1000, "only %lu pooled unmaps", (unsigned long)s.pooled_unmaps);
    CHECK(s.remaps > 0, "no mremap reached the pool");
    const char *ep = getenv("LAB_EXPECT_PURGE");
    if (ep && !strcmp(ep, "1")) /* purge delay 0: the cache is emptied at every call */
        CHECK(s.purged_bytes > 0, "nothing was purged");
    else
        CHECK(s.cache_hits > 100, "unmapped pages were reused only %lu times", (unsigned long)s.cache_hits);
}

/* ---- idle (run only when named; LABYRINTH_BACKGROUND_PURGE=1, a short delay): 8 MiB pooled,
 * written and unmapped sit in the cache; with no call of the family after that, only sleep and
 * mincore, the purge thread must give them back to the kernel within 3 s ---- */

enum { IDLE_MAPS = 16, IDLE_LEN = 512 << 10 };

/* Pages of the unmapped ranges still resident (a range no longer mapped at all counts as none). */
static size_t idle_resident(char *const *m)
{
    static unsigned char vec[IDLE_LEN / PG]; /* static: no allocation */
    size_t pages = 0;
    for (int i = 0; i < IDLE_MAPS; i++) {
        if (mincore(m[i], IDLE_LEN, vec) != 0)
            continue;
        for (size_t k = 0; k < sizeof vec; k++)
            pages += vec[k] & 1;
    }
    return pages;
}

static void t_idle(void)
{
    if (!expect_mmap) {
        SAY("idle: the pool's own promise, not the kernel's: skipped");
        return;
    }
    /* the purge thread starts from an allocation slow path once malloc's pool has mapped 1 MiB */
    for (int i = 0; i < 64; i++)
        free(malloc(64 << 10));
    CHECK(lab_wait_threads_named("labyrinth-purge", 1, 2000) == 1, "no purge thread running");
    static char *m[IDLE_MAPS];
    for (int i = 0; i < IDLE_MAPS; i++) {
        m[i] = map_rw(IDLE_LEN);
        CHECK(m[i] != NULL, "mmap of %d KiB failed", IDLE_LEN >> 10);
        if (!m[i])
            return;
        memset(m[i], 0x6d, IDLE_LEN);
    }
    for (int i = 0; i < IDLE_MAPS; i++)
        CHECK(munmap(m[i], IDLE_LEN) == 0, "munmap failed: %s", strerror(errno));
    size_t all = (size_t)IDLE_MAPS * (IDLE_LEN / PG), left = idle_resident(m);
    SAY("idle: 8 MiB pooled, written, unmapped: %zu of %zu pages still resident (cached)", left, all);
    CHECK(left >= all * 7 / 8, "the unmapped pages were not kept cached (%zu of %zu resident)", left, all);
    int waited = 0;
    struct timespec t = {0, 20 * 1000000L};
    while (waited < 3000 && (left = idle_resident(m)) >= all / 8) {
        nanosleep(&t, NULL);
        waited += 20;
    }
    SAY("idle: then no call for %d ms: %zu pages resident", waited, left);
    CHECK(left < all / 8, "the idle cache kept %zu of %zu pages for 3 s", left, all);
    int (*stats)(struct labyrinth_mmap_stats *) =
        (int (*)(struct labyrinth_mmap_stats *))dlsym(RTLD_DEFAULT, "labyrinth_mmap_stats");
    struct labyrinth_mmap_stats s;
    /* a run is counted just after the kernel took its pages: the last may lag a moment */
    bool counted = false;
    for (int i = 0; stats && i < 50 && !counted; i++) {
        counted = stats(&s) == 0 && s.purged_bytes >= (size_t)IDLE_MAPS * IDLE_LEN * 7 / 8;
        if (!counted)
            nanosleep(&t, NULL);
    }
    CHECK(counted, "the pool's counters do not show the cache purged");
}

/* ------------------------------------------------------------------------------------------
 * process_madvise on this process (any advice is accepted there) and posix_madvise: as madvise,
 * the advice stays with the region and holes are holes (found by review: MADV_WIPEONFORK given
 * this way reached the region's next pooled owner) */

/* process_madvise on another process goes to the kernel, which answers for that process's
 * memory and takes only the advice it allows there (MADV_COLD, not MADV_DONTNEED: EINVAL). Taken
 * for this process's own (the pidfd not told apart), MADV_DONTNEED would succeed and empty this
 * process's region. */
static void t_process_madvise_other(void)
{
    char *p = map_rw(16 * PG);
    CHECK(p != NULL, "mmap");
    if (!p)
        return;
    fill(p, 16 * PG, 3);
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0, "pipe");
    pid_t c = fork();
    if (c == 0) {
        char b = 0;
        _exit(write(ready[1], &b, 1) == 1 && read(go[0], &b, 1) >= 0 ? 0 : 1);
    }
    char b = 0;
    CHECK(read(ready[0], &b, 1) == 1, "the child did not get ready");
    int pidfd = (int)syscall(SYS_pidfd_open, c, 0);
    struct iovec iov = {p, 16 * PG};
    errno = 0;
    ssize_t r = pidfd < 0 ? -1 : process_madvise(pidfd, &iov, 1, MADV_COLD, 0);
    if (r < 0 && (pidfd < 0 || errno == ENOSYS || errno == EINVAL || errno == EPERM)) {
        SAY("process_madvise on a child: not allowed here (%s): skipped", strerror(errno));
    } else {
        SAY("process_madvise on a child: the kernel answers, this process's region untouched");
        CHECK(r == (ssize_t)(16 * PG), "process_madvise(COLD) on the child returned %zd: %s", r, strerror(errno));
        errno = 0;
        CHECK(process_madvise(pidfd, &iov, 1, MADV_DONTNEED, 0) == -1 && errno == EINVAL,
              "process_madvise(DONTNEED) on the child did not fail with EINVAL (errno %d)", errno);
        CHECK(check_fill(p, 16 * PG, 3) == SIZE_MAX, "advice to the child emptied this process's region");
    }
    if (pidfd >= 0)
        close(pidfd);
    CHECK(write(go[1], &b, 1) == 1, "write");
    int st = 0;
    waitpid(c, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed");
    close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
    munmap(p, 16 * PG);
}

static void t_process_madvise(void)
{
    SAY("process_madvise: WIPEONFORK on this process stays with its region; holes give ENOMEM");
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    char *p = map_rw(16 * PG);
    CHECK(p != NULL, "mmap");
    if (pidfd < 0 || !p) {
        SAY("process_madvise: no pidfd_open here: skipped");
        return;
    }
    struct iovec iov = {p, 16 * PG};
    ssize_t r = process_madvise(pidfd, &iov, 1, MADV_WIPEONFORK, 0);
    if (r < 0 && (errno == ENOSYS || errno == EINVAL || errno == EPERM)) {
        SAY("process_madvise: not allowed here (%s): skipped", strerror(errno));
        close(pidfd);
        munmap(p, 16 * PG);
        return;
    }
    CHECK(r == (ssize_t)(16 * PG), "process_madvise(WIPEONFORK) returned %zd: %s", r, strerror(errno));
    munmap(p, 16 * PG);
    /* the hole it left: ENOMEM, as for any unmapped range */
    CHECK(process_madvise(pidfd, &iov, 1, MADV_NORMAL, 0) == -1 && errno == ENOMEM,
          "process_madvise over an unmapped range did not fail with ENOMEM");
    CHECK(posix_madvise(p, 16 * PG, POSIX_MADV_WILLNEED) == ENOMEM,
          "posix_madvise over an unmapped range did not return ENOMEM");
    /* the next regions of that size: a fork child sees what they hold */
    for (int i = 0; i < 8; i++) {
        char *q = map_rw(16 * PG);
        CHECK(q != NULL, "mmap");
        if (!q)
            break;
        fill(q, 16 * PG, 21);
        pid_t c = fork();
        if (c == 0)
            _exit(check_fill(q, 16 * PG, 21) == SIZE_MAX ? 0 : 1);
        int st = 0;
        waitpid(c, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a fork child saw a later region wiped (%s)",
              q == p ? "the same range" : "another range");
        munmap(q, 16 * PG);
    }
    close(pidfd);
    t_process_madvise_other();
}

/* ------------------------------------------------------------------------------------------
 * suspend: a collector stops a thread with a signal wherever it is (Boehm GC, Mono), then maps
 * memory itself: the kernel never makes it wait for the stopped thread, so neither may the pool
 * (found by review: the mutator stopped holding the pool's lock, the collector's mmap waited) */

#define SUSPEND_ROUNDS 20000
static sem_t sus_ack;
static volatile sig_atomic_t sus_resume;
static atomic_int sus_stop;

static void sus_stop_handler(int sig)
{
    (void)sig;
    int e = errno;
    sem_post(&sus_ack);
    sigset_t m;
    sigfillset(&m);
    sigdelset(&m, SIGUSR2);
    while (!sus_resume)
        sigsuspend(&m);
    sus_resume = 0;
    sem_post(&sus_ack);
    errno = e;
}

static void sus_resume_handler(int sig)
{
    (void)sig;
    sus_resume = 1;
}

static void sus_deadlock(int sig)
{
    (void)sig;
    static const char m[] = "FAIL: suspend: the collector's mmap, munmap, mprotect or madvise waited 20 s for a "
                            "stopped thread\n";
    if (write(2, m, sizeof m - 1) < 0)
        _exit(3);
    _exit(3);
}

static void *sus_mutator(void *arg)
{
    (void)arg;
    while (!atomic_load(&sus_stop)) {
        char *x = map_rw(4 * PG);
        if (x) {
            x[0] = 1;
            munmap(x + PG, PG); /* a hole: more bookkeeping under the lock */
            munmap(x, 4 * PG);
        }
    }
    return NULL;
}

static void t_suspend(void)
{
    SAY("suspend: a thread stopped by a signal %d times, the stopper maps memory meanwhile", SUSPEND_ROUNDS);
    sem_init(&sus_ack, 0, 0);
    handle(SIGUSR1, sus_stop_handler, true);
    handle(SIGUSR2, sus_resume_handler, true);
    handle(SIGALRM, sus_deadlock, true);
    pthread_t t;
    /* the collector's own region, mapped while no thread is stopped (pooled): it changes its
     * protection, advises and replaces it while the mutator is stopped, as a collector does with
     * its heap (Boehm's dirty bits: mprotect; its unmapped blocks: madvise, munmap) */
    char *own = map_rw(8 * PG);
    CHECK(own != NULL, "mmap");
    CHECK(pthread_create(&t, NULL, sus_mutator, NULL) == 0, "pthread_create");
    for (int i = 0; i < SUSPEND_ROUNDS; i++) {
        pthread_kill(t, SIGUSR1);
        while (sem_wait(&sus_ack) != 0)
            ;
        alarm(20);
        char *c = map_rw(8 * PG);
        CHECK(c != NULL, "the collector's mmap failed: %s", strerror(errno));
        if (c) {
            c[0] = 1;
            munmap(c, 8 * PG);
        }
        if (own && i % 4 == 0) {
            CHECK(mprotect(own, 8 * PG, PROT_READ) == 0 && mprotect(own, 8 * PG, RW) == 0,
                  "the collector's mprotect failed: %s", strerror(errno));
            own[PG] = 2;
            CHECK(madvise(own, 8 * PG, MADV_DONTNEED) == 0 && own[PG] == 0, "the collector's madvise failed");
            CHECK(munmap(own, 8 * PG) == 0, "the collector's munmap failed: %s", strerror(errno));
            own = map_rw(8 * PG);
            CHECK(own != NULL, "the collector's mmap failed: %s", strerror(errno));
        }
        alarm(0);
        pthread_kill(t, SIGUSR2);
        while (sem_wait(&sus_ack) != 0)
            ;
    }
    atomic_store(&sus_stop, 1);
    pthread_join(t, NULL);
    if (own)
        munmap(own, 8 * PG);
    signal(SIGALRM, SIG_DFL);
}

/* ------------------------------------------------------------------------------------------
 * queued: real-time signals, each with its own value, sent to a thread that maps and unmaps
 * pooled memory all the time. Those that come while it holds the pool's lock are put off until it
 * drops it (lab_mmpool_defer_signal): each must still arrive once, with its value, and the
 * thread's mask must be as before at the end. */

#define Q_SIGNALS 4000
static atomic_int q_stop;
static atomic_long q_sum;
static atomic_int q_count, q_bad;
static sem_t q_handled; /* posted by each handler (sem_post is async-signal-safe) */

/* Wait until the handler of the signal just sent ran: false after 10 s (a signal lost). Sleeping,
 * so that on a loaded machine the thread that must handle it gets the CPU. */
static bool q_wait(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    while (sem_timedwait(&q_handled, &ts) != 0)
        if (errno != EINTR)
            return false;
    return true;
}

static void q_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig != SIGRTMIN || si->si_code != SI_QUEUE || si->si_value.sival_int < 1 ||
        si->si_value.sival_int > Q_SIGNALS)
        atomic_fetch_add(&q_bad, 1);
    atomic_fetch_add(&q_sum, si->si_value.sival_int);
    atomic_fetch_add(&q_count, 1);
    sem_post(&q_handled);
}

/* A one-shot handler (SA_RESETHAND), which sets itself again: its signal is never put off, since
 * the copy queued again would meet the default action (for SIGUSR1: the end of the process). */
static void q_oneshot_arm(void);
static void q_oneshot(int sig)
{
    (void)sig;
    q_oneshot_arm();
    atomic_fetch_add(&q_count, 1);
    sem_post(&q_handled);
}

static void q_oneshot_arm(void) { handle_with(SIGUSR1, q_oneshot, NULL, SA_RESETHAND | SA_RESTART, false); }

static void *q_mapper(void *arg)
{
    (void)arg;
    sigset_t before, after;
    pthread_sigmask(SIG_SETMASK, NULL, &before);
    /* the pool's statistics: a walk of its page states under its lock, so that many signals come
     * while the lock is held */
    int (*stats)(struct labyrinth_mmap_stats *) =
        (int (*)(struct labyrinth_mmap_stats *))dlsym(RTLD_DEFAULT, "labyrinth_mmap_stats");
    struct labyrinth_mmap_stats st;
    static char *held[2048]; /* 32 MiB pooled: a longer walk */
    for (int k = 0; k < 2048; k++)
        held[k] = map_rw(4 * PG);
    for (unsigned i = 0; !atomic_load(&q_stop); i++) {
        size_t len = (1 + i % 4) * PG;
        char *p = map_rw(len);
        if (p) {
            p[0] = 1;
            munmap(p, len);
        }
        if (stats)
            stats(&st);
    }
    for (int k = 0; k < 2048; k++)
        if (held[k])
            munmap(held[k], 4 * PG);
    /* every signal handled by now (the sender waited for them): the mask the thread began with */
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    return (void *)(uintptr_t)(sigismember(&after, SIGRTMIN) != sigismember(&before, SIGRTMIN));
}

static void t_queued(void)
{
    SAY("queued: %d real-time signals with values to a thread that maps and unmaps meanwhile", Q_SIGNALS);
    sem_init(&q_handled, 0, 0);
    handle_with(SIGRTMIN, NULL, q_handler, SA_SIGINFO | SA_RESTART, false);
    atomic_store(&q_stop, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, q_mapper, NULL) == 0, "pthread_create");
    long want = 0;
    for (int i = 1; i <= Q_SIGNALS; i++) {
        union sigval v = {.sival_int = i};
        while (pthread_sigqueue(t, SIGRTMIN, v) != 0) /* EAGAIN: the queue is full, wait */
            sched_yield();
        want += i;
        /* one at a time, each after a pause of its own: they come at any point of the thread's
         * work, not at its return from the last one's handler */
        if (!q_wait())
            break;
        for (volatile unsigned d = (unsigned)(i * 2654435761u) % 4096; d; d--) {
        }
    }
    atomic_store(&q_stop, 1);
    void *mask_changed = NULL;
    pthread_join(t, &mask_changed);
    CHECK(atomic_load(&q_count) == Q_SIGNALS && atomic_load(&q_sum) == want && !atomic_load(&q_bad),
          "queued: %d of %d signals arrived (%d with a wrong code or value), values sum %ld, want %ld",
          atomic_load(&q_count), Q_SIGNALS, atomic_load(&q_bad), (long)atomic_load(&q_sum), want);
    CHECK(!mask_changed, "queued: the thread's signal mask lost or kept SIGRTMIN");
    signal(SIGRTMIN, SIG_DFL);

    /* one-shot handlers: each signal handled before the next is sent */
    q_oneshot_arm();
    atomic_store(&q_count, 0);
    atomic_store(&q_stop, 0);
    CHECK(pthread_create(&t, NULL, q_mapper, NULL) == 0, "pthread_create");
    int sent = 0;
    while (sent < Q_SIGNALS / 4) {
        pthread_kill(t, SIGUSR1);
        sent++;
        if (!q_wait())
            break;
    }
    atomic_store(&q_stop, 1);
    pthread_join(t, NULL);
    CHECK(atomic_load(&q_count) == sent, "queued: %d of %d one-shot signals handled", atomic_load(&q_count), sent);
    signal(SIGUSR1, SIG_DFL);
    sem_destroy(&q_handled);
}

static const struct {
    const char *name;
    void (*fn)(void);
} sections[] = {
    {"zero", t_zero_reuse},     {"unmap", t_unmap_faults}, {"mremap", t_mremap},   {"mprotect", t_mprotect},
    {"fixed", t_map_fixed},     {"fork", t_fork},          {"madvise", t_madvise}, {"mlock", t_mlock},
    {"errors", t_errors},       {"malloc", t_malloc_munmap}, {"threads", t_threads}, {"race", t_race},
    {"signals", t_signals},     {"edges", t_edges},        {"idle", t_idle},       {"suspend", t_suspend},
    {"process_madvise", t_process_madvise}, {"queued", t_queued},
};

int main(int argc, char **argv)
{
    const char *e = getenv("LAB_EXPECT_MMAP");
    expect_mmap = e && !strcmp(e, "1");
    faults_install();
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        int run = argc < 2 && sections[i].fn != t_idle; /* idle: only when named */
        for (int a = 1; a < argc; a++)
            run |= !strcmp(argv[a], sections[i].name);
        if (run)
            sections[i].fn();
    }
    if (argc < 2)
        t_pool_active();
    return lab_finish("mmap semantics");
}
