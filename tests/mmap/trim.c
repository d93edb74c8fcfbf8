/* trim.c — malloc_trim(0) empties the pooled-mmap cache (LABYRINTH_MMAP=1). munmap of pooled
 * pages keeps them, still resident, for the next pooled mmap; README: cached pages go back to the
 * kernel beyond the cache's cap at once, idle past the purge delay at the next call or from the
 * purge thread, and "all of them on malloc_trim(0)". ctest sets a 60 s purge delay, no purge
 * thread and a 64 MiB cap, so here only malloc_trim can give them back. Checked:
 *   - 64 regions of 256 KiB mapped, written and unmapped stay resident (cached): the pool's
 *     counters show 16 MiB cached;
 *   - malloc_trim(0): at most an eighth of their pages still resident (mincore of the unmapped
 *     ranges, which the pool keeps reserved), RSS down by at least 12 of the 16 MiB, and the
 *     counters show the cache emptied (cached 0, 16 MiB more purged).
 * Pooled only (LAB_EXPECT_MMAP=1); without the pool there is nothing cached to give back (77). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lab_check.h"
#include "labyrinth.h"

#define PG ((size_t)4096)
enum { MAPS = 64, LEN = 256 << 10 };
#define TOTAL ((size_t)MAPS * LEN)

static char *m[MAPS];

/* Pages of the unmapped ranges still resident (a range the kernel no longer maps counts none). */
static size_t resident(void)
{
    static unsigned char vec[LEN / PG]; /* static: no allocation */
    size_t pages = 0;
    for (int i = 0; i < MAPS; i++) {
        if (mincore(m[i], LEN, vec) != 0)
            continue;
        for (size_t k = 0; k < sizeof vec; k++)
            pages += vec[k] & 1;
    }
    return pages;
}

int main(void)
{
    const char *e = getenv("LAB_EXPECT_MMAP");
    int expect = e && !strcmp(e, "1");
    int (*stats)(struct labyrinth_mmap_stats *) =
        (int (*)(struct labyrinth_mmap_stats *))dlsym(RTLD_DEFAULT, "labyrinth_mmap_stats");
    struct labyrinth_mmap_stats s0, s1, s2;
    if (!stats || stats(&s0) != 0 || !s0.enabled) {
        if (expect) {
            CHECK(0, "LAB_EXPECT_MMAP=1 but the mmap pool is %s", stats ? "off" : "missing");
            return lab_finish("mmap trim");
        }
        SAY("mmap trim: no pooled mmap, nothing cached to trim; skipped");
        return LAB_SKIP;
    }
    SAY("%d regions of %d KiB mapped, written, unmapped: cached; malloc_trim(0) gives them all back",
        MAPS, LEN >> 10);
    for (int i = 0; i < MAPS; i++) {
        void *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED, "mmap of %d KiB failed", LEN >> 10);
        if (p == MAP_FAILED)
            return lab_finish("mmap trim");
        m[i] = p;
        memset(m[i], 0x7b, LEN);
    }
    long rss_mapped = lab_rss_kib();
    for (int i = 0; i < MAPS; i++)
        CHECK(munmap(m[i], LEN) == 0, "munmap failed");
    long rss_cached = lab_rss_kib();
    size_t all = TOTAL / PG, left = resident();
    stats(&s1);
    SAY("unmapped: %zu of %zu pages still resident, RSS %ld -> %ld KiB, cache %zu KiB", left, all, rss_mapped,
        rss_cached, s1.cached_bytes >> 10);
    CHECK(left >= all * 7 / 8, "the unmapped pages were not kept cached (%zu of %zu resident)", left, all);
    CHECK(s1.cached_bytes >= TOTAL, "the pool shows %zu KiB cached, not %zu", s1.cached_bytes >> 10, TOTAL >> 10);

    malloc_trim(0);
    long rss_trimmed = lab_rss_kib();
    left = resident();
    stats(&s2);
    SAY("malloc_trim(0): %zu pages resident, RSS %ld KiB, cache %zu KiB, %llu KiB more purged", left, rss_trimmed,
        s2.cached_bytes >> 10, (unsigned long long)((s2.purged_bytes - s1.purged_bytes) >> 10));
    CHECK(left < all / 8, "malloc_trim(0) left %zu of %zu cached pages resident", left, all);
    CHECK(rss_cached - rss_trimmed >= (long)(TOTAL * 3 / 4 >> 10), "RSS fell by only %ld KiB",
          rss_cached - rss_trimmed);
    CHECK(s2.cached_bytes == 0, "the pool still shows %zu KiB cached", s2.cached_bytes >> 10);
    CHECK(s2.purged_bytes - s1.purged_bytes >= TOTAL, "the counters show %llu KiB purged, not %zu",
          (unsigned long long)((s2.purged_bytes - s1.purged_bytes) >> 10), TOTAL >> 10);
    return lab_finish("mmap trim");
}
