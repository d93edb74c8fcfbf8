/* big_after_runs.c — GNU sort's merges, as far as the allocator sees them: blocks of 256 KiB
 * written and freed, then longer ones written, and one calloc of as much. Under Labyrinth
 * (LAB_EXPECT_LABYRINTH=1) the longer blocks take the pages the short ones had, resident already
 * (mincore, before they are written), where pages of their own would be faulted in beside them.
 * A block cannot cross a chunk (2 MiB), so some may find no such room; the pages they fault in
 * are matched by as many of the short ones' left idle, given back at once: the pages resident
 * over all the blocks' ranges, once all are written, stay within the short ones' count.
 *   big   sixteen freed, three of 1.3 MiB (above the page-sized range; one may find no room),
 *         one of them resized a few times (232 pages above the bound before the trade)
 *   runs  sixteen freed, nine of 455 KiB, page-sized runs longer than any before (one may find
 *         no room; 213 pages above before the thread's run room joined the store)
 *   gaps  twenty-one, every seventh kept, eight of 455 KiB (two find no room; 45 pages above
 *         before the trade for runs)
 * Contents and the calloc's zeroes are checked under any allocator. Run in a process of its own,
 * so the pool holds nothing else that could split the freed runs.
 *   preload_big_after_runs big|runs|gaps */
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

struct mode {
    const char *name;
    int n, keep, big_n, fresh_max; /* short blocks, every keep-th kept (0: none), long ones, how
                                      many of those may find no room */
    size_t big;
};

static const struct mode modes[] = {
    {"big", 16, 0, 3, 1, 1398112},
    {"runs", 16, 0, 9, 1, 466048},
    {"gaps", 21, 7, 8, 2, 466048},
};

static int kept(const struct mode *m, int i) { return m->keep && i % m->keep == m->keep / 2; }

int main(int argc, char **argv)
{
    enum { N_MAX = 21, BIG_MAX = 9 };
    const struct mode *m = &modes[0];
    for (size_t k = 0; argc > 1 && k < sizeof modes / sizeof modes[0]; k++)
        if (strcmp(argv[1], modes[k].name) == 0)
            m = &modes[k];
    const int N = m->n, BIG = m->big_n;
    const size_t small = 262176, big = m->big, small_pages = (small + 4095) / 4096 + 1;
    unsigned char *p[N_MAX], *b[BIG_MAX];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(small);
        CHECK(p[i] != NULL, "malloc(%zu)", small);
        memset(p[i], 0x5A, small);
    }
    for (int i = 0; i < N; i++)
        if (!kept(m, i))
            free(p[i]);
    size_t absent = 0;
    for (int i = 0; i < BIG; i++) {
        b[i] = malloc(big);
        CHECK(b[i] != NULL, "malloc(%zu)", big);
        absent += lab_pages_absent(b[i], big);
        memset(b[i], i + 1, big);
    }
    SAY("%s: %d blocks of %zu KiB after %d of %zu KiB: %zu of %zu pages not resident before they were "
        "written", m->name, BIG, big >> 10, N, small >> 10, absent, BIG * ((big + 4095) / 4096));
    if (lab_expect_labyrinth())
        CHECK(absent <= m->fresh_max * ((big + 4095) / 4096), "the long blocks faulted fresh pages: %zu absent",
              absent);
    void *ranges[N_MAX + BIG_MAX];
    size_t lens[N_MAX + BIG_MAX];
    for (int i = 0; i < N + BIG; i++)
        ranges[i] = i < N ? (void *)p[i] : (void *)b[i - N], lens[i] = i < N ? small : big;
    size_t after = resident_union(ranges, lens, N + BIG);
    SAY("pages resident over the short blocks' ranges and the long ones': %zu (the short ones': %zu)", after,
        N * small_pages);
    if (lab_expect_labyrinth())
        CHECK(after <= N * small_pages, "idle pages kept beside fresh ones: %zu resident", after);
    /* such a block resizes with its contents: a little (in place or not), then onto a mapping */
    const size_t sizes[] = {big + 100000, big - 300000, 3 << 20, big};
    for (size_t s = 0; m->big_n == 3 && s < sizeof sizes / sizeof sizes[0]; s++) {
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
    for (int i = 0; i < N; i++)
        if (kept(m, i)) {
            CHECK(p[i][0] == 0x5A && p[i][small - 1] == 0x5A, "kept block %d changed", i);
            free(p[i]);
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
