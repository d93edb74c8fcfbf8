/* huge_lend.c — page-sized blocks carved over pages never touched while the huge cache keeps a
 * freed 4 MiB block's mapping populated (sort -S 4M: its buffer freed, then its 256 KiB merge
 * buffers). Under Labyrinth (LAB_EXPECT_LABYRINTH=1) the cache's pages move onto each block
 * (pool_huge.c: lending): they are resident before the block is written (page faults spared),
 * where fresh pages would fault in one by one. A calloc'd block over fresh pages, the cache
 * holding a written block's, reads zero all the same (lending is not for ZERO runs), and a huge
 * block after the lends still works. Contents are checked under any allocator. A process of its
 * own. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lab_check.h"

/* a calloc'd block over fresh pages while the cache holds a freed block's written pages */
static void calloc_zero(size_t huge, size_t block)
{
    unsigned char *h = lab_take(huge, "huge_lend");
    lab_fill_check(h, huge, 0xAB, "a 4 MiB block before a calloc");
    free(h);
    unsigned char *z = calloc(1, block);
    CHECK(z != NULL, "calloc(%zu)", block);
    if (!z)
        return;
    size_t nonzero = 0;
    for (size_t k = 0; k < block; k++)
        nonzero += z[k] != 0;
    CHECK(nonzero == 0, "calloc'd block: %zu bytes not zero", nonzero);
    free(z);
}

int main(void)
{
    enum { N = 7 };
    const size_t huge = (4u << 20) + 32, block = 262176; /* sort's sizes: 1025 and 65 pages */
    calloc_zero(huge, block);
    unsigned char *h = lab_take(huge, "huge_lend"), *p[N];
    lab_fill_check(h, huge, 0x11, "the 4 MiB block");
    free(h);
    size_t absent_all = 0;
    for (int i = 0; i < N; i++) {
        p[i] = lab_take(block, "huge_lend");
        size_t absent = lab_pages_absent(p[i], block);
        absent_all += absent;
        SAY("256 KiB block %d after a 4 MiB one was freed: %zu of %zu pages not resident", i, absent,
            (block + 4095) / 4096);
        lab_fill_check(p[i], block, 0x20 + i, "a 256 KiB block");
    }
    if (lab_expect_labyrinth())
        CHECK(absent_all <= 2 * N, "the cached mapping's pages were not lent: %zu pages of %d blocks absent",
              absent_all, N);
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < block; k += 4093)
            CHECK(p[i][k] == 0x20 + i, "block %d byte %zu changed", i, k);
    for (int i = 0; i < N; i++)
        free(p[i]);
    h = lab_take(huge, "huge_lend");
    lab_fill_check(h, huge, 0x5C, "a 4 MiB block after the lends");
    free(h);
    return lab_finish("huge_lend");
}
