/* big_cache_first.c — a block of 1-2 MiB when the pool holds used free pages (sixteen blocks of
 * 260 KiB written and freed) and the huge cache a freed 8 MiB block's mapping. Under Labyrinth
 * (LAB_EXPECT_LABYRINTH=1): a cached mapping that can hold the block comes first (python3's lists
 * grow by allocating twice the size and freeing the old; served from the pool, the block left the
 * cache's mappings resident beside it), so a 1.1 MiB block gets the 8 MiB block's address (the
 * mapping cut down to it: more than 4 MiB past it, cut at its first 2 MiB, the rest cached
 * apart); a 1.3 MiB block after it fits those 2 MiB, populated, and takes them; what it must not
 * do is grow a cached mapping smaller than itself (page faults): its pages, wherever they come
 * from (the cut mapping or the pool's used pages), are resident before it is written. Contents
 * are checked under any allocator. A process of its own, so that the freed runs lie together. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lab_check.h"

int main(void)
{
    enum { N = 16 };
    const size_t small = 262176, huge = (8u << 20) + 32, fits = 1153434, larger = 1363149;
    unsigned char *p[N];
    for (int i = 0; i < N; i++)
        memset(p[i] = lab_take(small, "big_cache_first"), 0x5A, small);
    for (int i = 0; i < N; i++)
        free(p[i]);
    unsigned char *h = lab_take(huge, "big_cache_first");
    lab_fill_check(h, huge, 1, "the 8 MiB block");
    free(h);
    unsigned char *a = lab_take(fits, "big_cache_first");
    SAY("a %zu KiB block after an 8 MiB one was freed: %s address", fits >> 10, a == h ? "the same" : "another");
    if (lab_expect_labyrinth())
        CHECK(a == h, "the cached mapping was not taken: %p, freed %p", (void *)a, (void *)h);
    lab_fill_check(a, fits, 2, "the 1.1 MiB block");
    free(a);
    unsigned char *b = lab_take(larger, "big_cache_first");
    size_t absent = lab_pages_absent(b, larger);
    SAY("a %zu KiB block after it: %s address, %zu of %zu pages not resident", larger >> 10,
        b == h ? "the same" : "another", absent, (larger + 4095) / 4096);
    if (lab_expect_labyrinth())
        CHECK(absent <= 8, "a cached mapping grew instead of populated pages being used: %zu absent", absent);
    lab_fill_check(b, larger, 3, "the 1.3 MiB block");
    free(b);
    return lab_finish("big_cache_first");
}
