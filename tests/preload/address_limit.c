/* address_limit.c — under `ulimit -v` (RLIMIT_AS) the allocator must keep working and fail cleanly:
 * small and large requests eventually return NULL with ENOMEM instead of crashing, and memory
 * freed afterwards can be allocated again (DESIGN.md: the page map must not reserve hundreds of
 * MiB, "strict overcommit and ulimit -v must keep working"; issue 5, real exhaustion). malloc runs
 * out at four sizes; then calloc, posix_memalign and aligned_alloc, and realloc growing a block
 * (whose contents a failed realloc must leave alone); the blocks held are checked before they are
 * freed; at the end, 8 MiB after everything was freed, 30 times, while another thread allocates.
 * Runs in a child so the limit stays there. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"

enum { HEADROOM_MIB = 96, MAX_BLOCKS = 1 << 22 };

static long vm_size_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", 0);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return strtol(buf, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Allocate blocks of `size` until malloc says no; returns how many, or -1 on a wrong errno. The
 * pointer array is allocated up front, before the limit bites. */
static long exhaust(void **blocks, size_t size, int *bad_errno)
{
    long n = 0;
    while (n < MAX_BLOCKS) {
        errno = 0;
        void *p = malloc(size);
        if (p == NULL) {
            *bad_errno = errno != ENOMEM ? errno : 0;
            return n;
        }
        ((unsigned char *)p)[0] = 1; /* a block handed out must be usable */
        ((unsigned char *)p)[size - 1] = 2;
        blocks[n++] = p;
    }
    return n;
}

static void release(void **blocks, long n)
{
    for (long i = 0; i < n; i++)
        free(blocks[i]);
}

/* One of the other entry points until it says no; every block gets a canary, checked at the end.
 * Returns how many it got, -1 on a wrong errno or return code, -2 on a damaged block. */
static long exhaust_entry(void **blocks, int entry, size_t size)
{
    long n = 0;
    while (n < MAX_BLOCKS) {
        void *p = NULL;
        errno = 0;
        if (entry == 0) {
            p = calloc(1, size);
            if (p && (((unsigned char *)p)[0] || ((unsigned char *)p)[size - 1]))
                return -2;
        } else if (entry == 1) {
            int rc = posix_memalign(&p, 4096, size);
            if ((rc == 0) != (p != NULL) || (rc != 0 && rc != ENOMEM))
                return -1;
        } else {
            p = aligned_alloc(65536, size);
        }
        if (!p) {
            if (entry != 1 && errno != ENOMEM)
                return -1;
            break;
        }
        lab_canary_fill(p, size);
        blocks[n++] = p;
    }
    for (long i = 0; i < n; i++)
        if (lab_canary_check(blocks[i], size) != SIZE_MAX)
            return -2;
    return n;
}

/* The first n bytes of a block grown by realloc still hold `byte` (sampled every page and the last). */
static int holds(const unsigned char *p, size_t n, unsigned char byte)
{
    for (size_t i = 0; i < n; i += 4096)
        if (p[i] != byte)
            return 0;
    return p[n - 1] == byte;
}

/* realloc one block up in 1 MiB steps until it fails: every step keeps the contents, and the
 * failure leaves the block as it was. 0, or 1: no first block, 2: the failure was wrong or the
 * block damaged, 3: never ran out, 4: a step lost the contents. */
static int grow_until_enomem(void)
{
    size_t n = 1 << 20;
    unsigned char *p = malloc(n);
    if (!p)
        return 1;
    memset(p, 0xA7, n);
    for (;;) {
        errno = 0;
        unsigned char *q = realloc(p, n + (1 << 20));
        if (!q) {
            int ok = errno == ENOMEM && holds(p, n, 0xA7);
            char msg[96];
            int len = snprintf(msg, sizeof msg, "  realloc growth: NULL+ENOMEM at %zu MiB, block intact\n", n >> 20);
            if (ok)
                write(1, msg, (size_t)len);
            free(p);
            return ok ? 0 : 2;
        }
        if (!holds(q, n, 0xA7)) {
            free(q);
            return 4;
        }
        p = q;
        memset(p + n, 0xA7, 1 << 20);
        n += 1 << 20;
        if (n > ((size_t)8 << 30)) {
            free(p);
            return 3;
        }
    }
}

static volatile int churn_stop;
/* page-sized blocks allocated and freed, 8 at a time, until told to stop (up to 1 MiB: a huge
 * block may hold a cached mapping up to 4 MiB longer, and eight such took a third of the
 * headroom) */
static void *churn(void *arg)
{
    (void)arg;
    uint64_t x = 7;
    while (!churn_stop) {
        void *p[8];
        for (int i = 0; i < 8; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            p[i] = malloc(32768 + (size_t)(x % ((1 << 20) - 32768)));
        }
        for (int i = 0; i < 8; i++)
            free(p[i]);
    }
    return NULL;
}

/* Exit codes: 0 ok, 10+k: round k never ran out, 20+k: wrong errno, 30+k: nothing allocated
 * after the previous round freed everything, 40: setup. */
static int child(void)
{
    static const size_t sizes[] = {64, 3000, 100000, 3u << 20};
    void **blocks = malloc(MAX_BLOCKS * sizeof *blocks);
    if (!blocks) return 40;
    memset(blocks, 0, MAX_BLOCKS * sizeof *blocks);
    long vm = vm_size_kib();
    struct rlimit rl = {(rlim_t)(vm + HEADROOM_MIB * 1024) * 1024, (rlim_t)(vm + HEADROOM_MIB * 1024) * 1024};
    if (vm < 0 || setrlimit(RLIMIT_AS, &rl) != 0) return 40;
    for (int k = 0; k < (int)(sizeof sizes / sizeof sizes[0]); k++) {
        int bad_errno = 0;
        long n = exhaust(blocks, sizes[k], &bad_errno);
        if (n >= MAX_BLOCKS) return 10 + k;
        if (bad_errno) return 20 + k;
        if (n == 0) return 30 + k;
        char msg[160];
        int len = snprintf(msg, sizeof msg, "  blocks of %zu B: NULL+ENOMEM after %ld (%ld MiB)\n",
                           sizes[k], n, (long)((size_t)n * sizes[k] >> 20));
        write(1, msg, (size_t)len);
        release(blocks, n);
    }
    static const char *names[] = {"calloc", "posix_memalign", "aligned_alloc"};
    for (int e = 0; e < 3; e++) {
        long n = exhaust_entry(blocks, e, 24000);
        if (n == -1) return 50 + e;
        if (n == -2) return 60 + e;
        if (n == 0 || n >= MAX_BLOCKS) return 70 + e;
        char msg[160];
        int len = snprintf(msg, sizeof msg, "  %s of 24000 B: NULL+ENOMEM after %ld, blocks intact\n", names[e], n);
        write(1, msg, (size_t)len);
        release(blocks, n);
    }
    int g = grow_until_enomem();
    if (g) return 80 + g;
    /* Everything freed: a modest allocation must succeed again. */
    void *p = malloc(1u << 20);
    if (!p) return 34;
    free(p);
    /* and a huge one, while another thread allocates: its mapping, refused, must wait for the
     * zone that thread holds to unmap the free chunks (it only tried, and the malloc failed in
     * 7 rounds of 30 with hundreds of MiB free: found by review) */
    pthread_t t;
    if (pthread_create(&t, NULL, churn, NULL) != 0) return 40;
    int failed = 0;
    for (int round = 0; round < 30; round++) {
        long n = exhaust(blocks, 65536, &(int){0});
        release(blocks, n);
        void *b = malloc(8u << 20);
        failed += b == NULL;
        free(b);
    }
    churn_stop = 1;
    pthread_join(t, NULL);
    if (failed) {
        char msg[120];
        int len = snprintf(msg, sizeof msg, "  8 MiB after everything freed, beside a thread allocating: "
                           "failed %d of 30\n", failed);
        write(1, msg, (size_t)len);
        return 90;
    }
    return 0;
}

int main(void)
{
    SAY("with RLIMIT_AS = current size + %d MiB: malloc fails with ENOMEM, never crashes, and "
        "recovers after free", HEADROOM_MIB);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        _exit(child());
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/waitpid");
    if (WIFSIGNALED(status))
        CHECK(0, "child killed by signal %d under the address-space limit", WTERMSIG(status));
    else if (WEXITSTATUS(status) >= 30 && WEXITSTATUS(status) < 40 && !lab_strict())
        /* jemalloc keeps freed memory cached per size class, so after the 64-byte round it has no
         * address space left for 3000-byte blocks: by its design, not a bug. glibc and Labyrinth
         * (which must release its cached chunks before reporting ENOMEM) are held to it. */
        SAY("  note: no recovery after free (exit %d); accepted for %s", WEXITSTATUS(status),
            lab_malloc_provider());
    else
        CHECK(WEXITSTATUS(status) == 0,
              "child exit %d (10+k: size k never ran out, 20+k: errno not ENOMEM, 30+k: nothing "
              "could be allocated after freeing, 40: setup, 50+e: entry e (calloc, posix_memalign, "
              "aligned_alloc) failed without ENOMEM, 60+e: its blocks damaged, 70+e: it never or "
              "always failed, 81-84: realloc growth, 90: a huge block after freeing, beside a thread "
              "allocating)", WEXITSTATUS(status));
    return lab_finish("address_limit");
}
