/* calloc_zero.c — calloc returns zeroed memory even when it reuses blocks the program dirtied:
 * fill blocks with 0xAA, free them, calloc the same sizes and check every byte. An allocator that
 * trusts "fresh pages are zero" for recycled memory fails here. Small, page-sized and large sizes. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lab_check.h"

static size_t first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return i;
    return SIZE_MAX;
}

static void round_trip(const char *kind, size_t size, int count)
{
    enum { MAX = 64 };
    unsigned char *blocks[MAX];
    if (count > MAX) count = MAX;
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < count; i++) {
            blocks[i] = malloc(size);
            CHECK(blocks[i] != NULL, "%s: malloc(%zu)", kind, size);
            /* Dirty the whole usable size: a calloc that only clears the request would leave the
             * tail dirty, and a later realloc in place would expose it. */
            if (blocks[i]) memset(blocks[i], 0xAA, malloc_usable_size(blocks[i]));
        }
        for (int i = count - 1; i >= 0; i--)
            free(blocks[i]);
        for (int i = 0; i < count; i++) {
            blocks[i] = calloc(1, size);
            CHECK(blocks[i] != NULL, "%s: calloc(1, %zu)", kind, size);
            if (!blocks[i]) continue;
            size_t bad = first_nonzero(blocks[i], size);
            CHECK(bad == SIZE_MAX, "%s: calloc(1, %zu) round %d block %d: byte %zu is 0x%02x",
                  kind, size, r, i, bad, bad == SIZE_MAX ? 0 : blocks[i][bad]);
        }
        for (int i = 0; i < count; i++) {
            /* Dirty again before freeing, for the next round's calloc. */
            if (blocks[i]) memset(blocks[i], 0xAA, size);
            free(blocks[i]);
        }
    }
}

int main(void)
{
    SAY("calloc zeroes reused small blocks (16 B .. 2 KiB)");
    static const size_t small[] = {1, 16, 24, 100, 128, 500, 1024, 2000};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        round_trip("small", small[i], 64);
    SAY("calloc zeroes reused page-sized blocks (4 KiB .. 256 KiB)");
    static const size_t pages[] = {4096, 8192, 12288, 40000, 65536, 262144};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++)
        round_trip("page", pages[i], 32);
    SAY("calloc zeroes reused large blocks (1 MiB .. 8 MiB)");
    static const size_t large[] = {1u << 20, (3u << 20) + 100, 8u << 20};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
        round_trip("large", large[i], 4);

    SAY("calloc after realloc-shrink: the shrunk tail is not leaked into the next calloc");
    for (int i = 0; i < 100; i++) {
        unsigned char *p = malloc(4000);
        memset(p, 0xAA, 4000);
        p = realloc(p, 100);
        free(p);
        unsigned char *q = calloc(1, 4000);
        CHECK(q && first_nonzero(q, 4000) == SIZE_MAX, "calloc after realloc shrink not zero");
        free(q);
    }
    return lab_finish("calloc_zero");
}
