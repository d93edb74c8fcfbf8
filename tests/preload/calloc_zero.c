/* calloc_zero.c — calloc returns zeroed memory even when it reuses blocks the program dirtied:
 * fill blocks with 0xAA, free them, calloc the same sizes and check every byte. An allocator that
 * trusts "fresh pages are zero" for recycled memory fails here. Small, page-sized and large sizes.
 * All of a block's usable size reads zero, not only the bytes asked for. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
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

/* memset that the compiler cannot drop as a dead store before a free */
static void dirty(unsigned char *p, size_t n)
{
    volatile unsigned char *v = p;
    for (size_t i = 0; i < n; i++)
        v[i] = 0xAA;
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
            /* the whole usable size, as glibc, jemalloc, mimalloc and tcmalloc clear it: a
             * program may take malloc_usable_size for the block's size */
            size_t bad = first_nonzero(blocks[i], malloc_usable_size(blocks[i]));
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

/* The page pool serves a length from a freed run up to an eighth longer: the run's surplus
 * pages came back as the last block left them. */
static void *shorter_than_freed(void *arg)
{
    (void)arg;
    for (size_t pg = 9; pg <= 200; pg = pg * 3 / 2) {
        size_t big = pg * 4096, n = big - 4096 - 100;
        unsigned char *p = malloc(big), *after = malloc(big); /* after: p's run cannot grow */
        CHECK(p && after, "malloc(%zu)", big);
        if (!p || !after) continue;
        dirty(p, malloc_usable_size(p));
        free(p);
        unsigned char *q = calloc(1, n);
        CHECK(q != NULL, "calloc(1, %zu)", n);
        size_t u = q ? malloc_usable_size(q) : 0, bad = q ? first_nonzero(q, u) : SIZE_MAX;
        CHECK(bad == SIZE_MAX, "calloc(1, %zu) after a free of %zu: usable %zu, byte %zu is 0x%02x", n, big, u, bad,
              bad == SIZE_MAX ? 0 : q[bad]);
        free(q);
        free(after);
    }
    return NULL;
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

    SAY("calloc of a page-sized block a page shorter than a freed one: all of its usable size reads zero");
    /* in a new thread: its page runs freed wait in its own room, not among this one's */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, shorter_than_freed, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);

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
