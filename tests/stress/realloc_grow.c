/* realloc_grow.c — the string-builder and vector patterns: one buffer grown by realloc in small
 * steps (16 B to 1 MiB) and large ones (64 KiB to 256 MiB), then shrunk back, contents checked
 * throughout. An allocator that copies a huge block on every step takes minutes here (glibc and
 * jemalloc: about a second), so ctest's TIMEOUT doubles as the performance guard. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <time.h>

#include "lab_check.h"

static unsigned char mark(size_t offset) { return (unsigned char)((offset >> 12) * 7 + 1); }

static void grow(size_t step, size_t max)
{
    unsigned char *p = NULL;
    size_t n = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    while (n < max) {
        unsigned char *q = realloc(p, n + step);
        CHECK(q != NULL, "realloc(%zu) failed", n + step);
        if (!q) break;
        p = q;
        /* The first byte of every 4 KiB of the kept part, spot-checked now and then. */
        if ((n / step) % 257 == 0)
            for (size_t i = 0; i < n; i += 4096)
                if (p[i] != mark(i)) {
                    CHECK(0, "grow by %zu: byte %zu lost at size %zu", step, i, n);
                    break;
                }
        for (size_t i = n; i < n + step; i++)
            p[i] = mark(i);
        n += step;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] != mark(i)) {
            CHECK(0, "grow by %zu: byte %zu wrong at the end", step, i);
            break;
        }
    /* And back down, halving; the kept prefix must survive every shrink. */
    while (n > step) {
        n /= 2;
        p = realloc(p, n);
        CHECK(p != NULL && malloc_usable_size(p) >= n, "shrink to %zu", n);
        if (!p) return;
        for (size_t i = 0; i < n; i += 4096)
            if (p[i] != mark(i)) {
                CHECK(0, "shrink to %zu lost byte %zu", n, i);
                break;
            }
    }
    free(p);
    clock_gettime(CLOCK_MONOTONIC, &b);
    SAY("  grown by %zu B steps to %zu KiB and shrunk back in %.2f s", step, max >> 10,
        (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9);
}

int main(int argc, char **argv)
{
    size_t big = (size_t)(argc > 1 ? atol(argv[1]) : 256) << 20;
    SAY("one buffer grown by realloc in small and large steps, then shrunk, contents kept");
    grow(16, 1u << 20);
    grow(1000, 8u << 20);
    grow(65536, big);
    return lab_finish("realloc_grow");
}
