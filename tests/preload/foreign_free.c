/* foreign_free.c — Labyrinth only: free() of a pointer it never handed out (a static array, the
 * stack, a raw mmap region) is ignored and counted, never followed, and malloc_usable_size() of one
 * is 0 (DESIGN.md, "page map"). Each case runs in a child, so one crash names its case and the
 * others still run. glibc and jemalloc crash or corrupt here by design, so the test skips there. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"

static _Alignas(64) unsigned char static_array[1 << 16];

/* After the bad free the allocator must still work: allocate and free a little of everything. */
static int allocator_still_works(void)
{
    for (size_t n = 8; n <= (4u << 20); n *= 4) {
        unsigned char *p = malloc(n);
        if (p == NULL)
            return 0;
        lab_canary_fill(p, n);
        if (lab_canary_check(p, n) != SIZE_MAX)
            return 0;
        free(p);
    }
    return 1;
}

typedef void *(*pointer_fn)(void);

static void *in_static(void) { return static_array + 4096; }
static void *in_static_start(void) { return static_array; }
static void *in_mmap(size_t offset)
{
    unsigned char *m = mmap(NULL, 8u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    /* Aligning to 2 MiB makes the pointer look like a chunk start, the most tempting forgery. */
    uintptr_t aligned = ((uintptr_t)m + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
    memset((void *)aligned, 0xAB, 4096);
    return (void *)(aligned + offset);
}
static void *in_mmap_chunk_start(void) { return in_mmap(0); }
static void *in_mmap_middle(void) { return in_mmap(3 * 4096 + 64); }
static void *in_text(void) { return (void *)(uintptr_t)&allocator_still_works; }
/* The address space Labyrinth reserves for its chunks (LABYRINTH_RESERVE_GB: the largest
 * inaccessible mapping of 1 GiB or more): free() looks such pointers up in its fast map without
 * a bounds check on the page, so an address there that no chunk holds must still be ignored.
 * Without a reservation (RESERVE_GB=0) the case uses the static array instead. */
static void *in_reserved(size_t from_end)
{
    FILE *f = fopen("/proc/self/maps", "r");
    uintptr_t best_lo = 0, best_hi = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && strcmp(perms, "---p") == 0 &&
            hi - lo >= (1ul << 30) && hi - lo > best_hi - best_lo)
            best_lo = lo, best_hi = hi;
    }
    if (f)
        fclose(f);
    if (!best_hi)
        return in_static();
    return (void *)(from_end ? best_hi - from_end : best_lo + 64);
}
static void *in_reserved_end(void) { return in_reserved((2u << 20) - 128); }
static void *in_reserved_start(void) { return in_reserved(0); }

/* foreign_frees of malloc_stats's summary, or -1 */
static long foreign_count(void)
{
    char text[65536];
    if (lab_malloc_stats_text(text, sizeof text) <= 0)
        return -1;
    const char *k = strstr(text, " foreign_frees ");
    return k ? strtol(k + 15, NULL, 10) : -1;
}

static const struct {
    const char *name;
    pointer_fn make;
} cases[] = {
    {"static array + 4096", in_static},
    {"static array start", in_static_start},
    {"stack", NULL}, /* made in the child's own frame, see main */
    {"mmap region at a 2 MiB boundary", in_mmap_chunk_start},
    {"mmap region, mid-page", in_mmap_middle},
    {"program text", in_text},
    {"reserved address space, its last chunk slot", in_reserved_end},
    {"reserved address space, past the chunks mapped so far", in_reserved_start},
};

int main(void)
{
    if (!lab_expect_labyrinth()) {
        SAY("foreign_free: only meaningful for labyrinth (set LAB_EXPECT_LABYRINTH=1); skipped");
        return LAB_SKIP;
    }
    /* Warm the allocator up so its page map has entries near the foreign addresses' neighbours. */
    void *warm = malloc(100);
    free(warm);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SAY("free() and malloc_usable_size() of a foreign pointer: %s", cases[i].name);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20);
            volatile unsigned char frame[256];
            frame[0] = 1;
            void *p = cases[i].make ? cases[i].make() : (void *)(frame + 16);
            if (p == NULL)
                _exit(3);
            if (malloc_usable_size(p) != 0)
                _exit(4);
            long before = foreign_count();
            free(p);
            free(p); /* twice: being ignored must not depend on state from the first time */
            /* realloc leaves it alone too: NULL, EINVAL, and counted with the frees (found by
             * review: it returned NULL without a word, and the program took it for ENOMEM) */
            errno = 0;
            if (realloc(p, 64) != NULL || errno != EINVAL)
                _exit(6);
            if (foreign_count() != before + 3)
                _exit(7);
            _exit(allocator_still_works() ? 0 : 5);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/waitpid failed");
        if (WIFSIGNALED(status))
            CHECK(0, "%s: child killed by signal %d", cases[i].name, WTERMSIG(status));
        else
            CHECK(WEXITSTATUS(status) == 0, "%s: child exit %d (3 setup, 4 usable size != 0, "
                  "5 allocator broken afterwards, 6 realloc did not fail with EINVAL, 7 not counted)",
                  cases[i].name, WEXITSTATUS(status));
    }
    return lab_finish("foreign_free");
}
