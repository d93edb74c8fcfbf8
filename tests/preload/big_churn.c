/* big_churn.c — blocks of 1-2 MiB (above the page-sized range) allocated, written in full and
 * freed in random order, four live, as a program whose buffers change size from one call to the
 * next does. Under Labyrinth (LAB_EXPECT_LABYRINTH=1), once the first rounds have populated the
 * huge cache, a new block must find its pages resident (mincore before it is written): a cached
 * mapping a little larger than the block is handed out whole, where cutting it down unmapped
 * pages that the next, larger block faulted in again. Contents are checked under any
 * allocator. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lab_check.h"

int main(void)
{
    enum { LIVE = 4, WARM = 40, ROUNDS = 400 };
    unsigned char *b[LIVE] = {0};
    size_t len[LIVE] = {0}, absent = 0, pages = 0;
    uint64_t s = 88172645463325252ull;
    for (int r = 0; r < WARM + ROUNDS; r++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int k = (int)(s % LIVE);
        if (b[k])
            for (size_t i = 0; i < len[k]; i += 4093)
                CHECK(b[k][i] == (unsigned char)k + 1, "round %d: block %d byte %zu changed", r, k, i);
        free(b[k]);
        len[k] = ((size_t)1 << 20) + 4096 + (size_t)(s >> 24) % ((size_t)1 << 20);
        b[k] = malloc(len[k]);
        CHECK(b[k] != NULL, "malloc(%zu)", len[k]);
        if (!b[k])
            return lab_finish("big_churn");
        if (r >= WARM) {
            absent += lab_pages_absent(b[k], len[k]);
            pages += (len[k] + 4095) / 4096;
        }
        memset(b[k], k + 1, len[k]);
    }
    SAY("%d rounds of 1-2 MiB blocks, four live: %zu of %zu pages not resident before they were "
        "written", ROUNDS, absent, pages);
    if (lab_expect_labyrinth())
        CHECK(absent <= pages / 100, "cached mappings were cut and faulted in again: %zu pages absent", absent);
    for (int k = 0; k < LIVE; k++)
        free(b[k]);
    return lab_finish("big_churn");
}
