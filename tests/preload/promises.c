/* promises.c — promises of the README that no other test could fail (found by a review that broke
 * the library on purpose, one change at a time, and kept the changes no test noticed). Labyrinth
 * only. One mode a run:
 *   huge_expires   (LABYRINTH_PURGE_DELAY_MS=100, BACKGROUND_PURGE=1) a freed 8 MiB block's
 *                  cached mapping goes back to the OS once idle past the delay, with no allocator
 *                  call after the free (not only at malloc_trim or when fresh pages are faulted);
 *   delay_kept     (LABYRINTH_PURGE_DELAY_MS=60000, BACKGROUND_PURGE=1) the option is applied:
 *                  64 MiB of page-sized blocks freed are still resident 3 s later (the default
 *                  1 s delay would have purged them), and malloc_trim gives them back;
 *   huge_shrink    a 64 MiB block written in full, realloc'd to 4 MiB in place: the rest goes
 *                  back to the OS at once;
 *   small_shrink   a 30 000-byte block realloc'd to 100 bytes moves to a small class (it does not
 *                  keep its 32 KiB). */
#define _GNU_SOURCE
#include <unistd.h>

#include "lab_check.h"

static void sleep_ms(int ms) { usleep((useconds_t)ms * 1000u); }

static void huge_expires(void)
{
    char *volatile p = malloc(8u << 20);
    CHECK(p != NULL, "malloc(8 MiB)");
    if (!p)
        return;
    memset(p, 1, 8u << 20);
    free(malloc(200 << 10)); /* a slow path with 8 MiB mapped: the purge thread starts */
    long live = lab_rss_kib();
    free(p);
    long after = live;
    /* no allocator call from here on (stdio would make one): RSS read with open and read */
    for (int i = 0; i < 40 && after > live - 6 * 1024; i++) {
        sleep_ms(100);
        after = lab_rss_kib();
    }
    SAY("freed 8 MiB block, no call after: RSS %ld KiB live, %ld KiB up to 4 s later (delay 100 ms)", live, after);
    CHECK(after <= live - 6 * 1024, "the huge block's cached mapping stayed resident: %ld -> %ld KiB", live, after);
}

static void delay_kept(void)
{
    enum { N = 256 };
    static char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(256 << 10);
        CHECK(p[i] != NULL, "malloc(256 KiB)");
        if (p[i])
            memset(p[i], 1, 256 << 10);
    }
    for (int i = 0; i < N; i++)
        free(p[i]);
    long freed = lab_rss_kib();
    for (int i = 0; i < 30; i++) { /* slow paths that give the purge its chances */
        sleep_ms(100);
        free(malloc(200 << 10));
    }
    long later = lab_rss_kib();
    malloc_trim(0);
    long trimmed = lab_rss_kib();
    SAY("64 MiB freed: RSS %ld KiB, %ld KiB 3 s later (delay 60 s), %ld KiB after malloc_trim", freed, later, trimmed);
    CHECK(later >= freed - 8 * 1024, "purged before the 60 s delay: %ld -> %ld KiB", freed, later);
    CHECK(trimmed <= freed - 48 * 1024, "malloc_trim gave back too little: %ld -> %ld KiB", freed, trimmed);
}

static void huge_shrink(void)
{
    size_t big = 64u << 20, small = 4u << 20;
    char *p = malloc(big);
    CHECK(p != NULL, "malloc(64 MiB)");
    if (!p)
        return;
    memset(p, 1, big);
    long before = lab_rss_kib();
    char *q = realloc(p, small);
    long after = lab_rss_kib();
    SAY("realloc 64 MiB -> 4 MiB: RSS %ld KiB -> %ld KiB", before, after);
    CHECK(q && q[small - 1] == 1 && q[0] == 1, "realloc lost the contents");
    CHECK(before - after >= 48 * 1024, "the rest stayed resident: %ld -> %ld KiB", before, after);
    free(q);
}

static void small_shrink(void)
{
    char *p = malloc(30000);
    CHECK(p != NULL, "malloc(30000)");
    if (!p)
        return;
    memset(p, 7, 30000);
    char *q = realloc(p, 100);
    size_t u = q ? malloc_usable_size(q) : 0;
    SAY("realloc 30000 -> 100: usable %zu", u);
    CHECK(q && q[0] == 7 && q[99] == 7, "realloc lost the contents");
    CHECK(u < 1024, "the block kept %zu bytes", u);
    free(q);
}

int main(int argc, char **argv)
{
    if (!lab_expect_labyrinth()) {
        SAY("promises: Labyrinth's own; skipped");
        return LAB_SKIP;
    }
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "huge_expires"))
        huge_expires();
    else if (!strcmp(m, "delay_kept"))
        delay_kept();
    else if (!strcmp(m, "huge_shrink"))
        huge_shrink();
    else if (!strcmp(m, "small_shrink"))
        small_shrink();
    else
        CHECK(0, "usage: promises huge_expires|delay_kept|huge_shrink|small_shrink");
    return lab_finish("promises");
}
