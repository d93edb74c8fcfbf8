/* big_after_runs.c — GNU sort's merge, as far as the allocator sees it: sixteen blocks of 260 KiB
 * written and freed, then three of 1.3 MiB (above the page-sized range), one of them resized a
 * few times, and one calloc of as much. Under Labyrinth (LAB_EXPECT_LABYRINTH=1) the big blocks
 * take the pages the sixteen had, resident already (mincore, before they are written), where
 * mappings of their own would fault fresh pages in beside them: at most one of the three may find
 * no such run (the sixteen lie in three chunks), and the pages it faults in are matched by as many
 * of the sixteen's left idle, given back at once: the pages resident over the sixteen's and the
 * three's ranges, once all are written, stay within the sixteen's count (232 pages above it
 * before the trade). Contents and the calloc's zeroes are checked
 * under any allocator. Run in a process of its own, so the pool holds nothing else that could
 * split the freed runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lab_check.h"

static int page_cmp(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

/* Resident pages over the union of n ranges (mincore, a page at a time; SIZE_MAX if it fails
 * for another reason than a page not mapped). */
static size_t resident_union(void *const *p, const size_t *len, int n)
{
    static uintptr_t pages[4096];
    size_t k = 0, resident = 0;
    for (int i = 0; i < n; i++)
        for (uintptr_t a = (uintptr_t)p[i] & ~(uintptr_t)4095; a < (uintptr_t)p[i] + len[i]; a += 4096)
            if (k < sizeof pages / sizeof pages[0])
                pages[k++] = a;
    qsort(pages, k, sizeof pages[0], page_cmp);
    for (size_t i = 0; i < k; i++) {
        unsigned char v;
        if (i && pages[i] == pages[i - 1])
            continue;
        if (mincore((void *)pages[i], 4096, &v) == 0)
            resident += v & 1;
        else if (errno != ENOMEM) /* ENOMEM: not mapped (glibc unmaps big blocks) */
            return SIZE_MAX;
    }
    return resident;
}

int main(void)
{
    enum { N = 16, BIG = 3 };
    const size_t small = 262176, big = 1398112;
    unsigned char *p[N], *b[BIG];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(small);
        CHECK(p[i] != NULL, "malloc(%zu)", small);
        memset(p[i], 0x5A, small);
    }
    for (int i = 0; i < N; i++)
        free(p[i]);
    size_t absent = 0;
    for (int i = 0; i < BIG; i++) {
        b[i] = malloc(big);
        CHECK(b[i] != NULL, "malloc(%zu)", big);
        absent += lab_pages_absent(b[i], big);
        memset(b[i], i + 1, big);
    }
    SAY("three blocks of %zu KiB after sixteen of %zu KiB freed: %zu of %zu pages not resident "
        "before they were written", big >> 10, small >> 10, absent, BIG * ((big + 4095) / 4096));
    if (lab_expect_labyrinth())
        CHECK(absent <= (big + 4095) / 4096, "the big blocks faulted fresh pages: %zu absent", absent);
    void *ranges[N + BIG];
    size_t lens[N + BIG];
    for (int i = 0; i < N + BIG; i++)
        ranges[i] = i < N ? (void *)p[i] : (void *)b[i - N], lens[i] = i < N ? small : big;
    size_t after = resident_union(ranges, lens, N + BIG);
    SAY("pages resident over the sixteen's ranges and the three's: %zu (the sixteen's: %zu)", after,
        N * ((small + 4095) / 4096 + 1));
    if (lab_expect_labyrinth())
        CHECK(after <= N * ((small + 4095) / 4096 + 1), "idle pages kept beside fresh ones: %zu resident", after);
    /* such a block resizes with its contents: a little (in place or not), then onto a mapping */
    const size_t sizes[] = {big + 100000, big - 300000, 3 << 20, big};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t keep = s == 0 ? big : sizes[s - 1] < big ? sizes[s - 1] : big;
        unsigned char *q = realloc(b[0], sizes[s]);
        CHECK(q != NULL, "realloc(%zu)", sizes[s]);
        if (!q)
            break;
        b[0] = q;
        for (size_t k = 0; k < keep && k < sizes[s]; k += 4093)
            CHECK(q[k] == 1, "realloc to %zu: byte %zu changed", sizes[s], k);
        memset(q, 1, sizes[s]);
    }
    for (int i = 0; i < BIG; i++) {
        for (size_t k = 0; k < big; k += 4093)
            CHECK(b[i][k] == i + 1, "block %d byte %zu changed", i, k);
        free(b[i]);
    }
    unsigned char *z = calloc(1, big);
    CHECK(z != NULL, "calloc(%zu)", big);
    for (size_t k = 0; z && k < big; k++)
        if (z[k]) {
            CHECK(0, "calloc(%zu): byte %zu not zero", big, k);
            break;
        }
    free(z);
    return lab_finish("big_after_runs");
}
