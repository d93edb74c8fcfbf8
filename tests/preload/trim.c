/* trim.c — freed memory goes back to the kernel: after 256 MiB of blocks (small, page-sized and
 * huge) are touched and freed, malloc_trim(0) must bring RSS back near where it started
 * (DESIGN.md, "Returning memory": malloc_trim(0) purges now). Checked where malloc_trim comes
 * from the allocator itself; jemalloc leaves it to glibc, which cannot trim jemalloc's memory. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include "lab_check.h"

static void churn(size_t block, size_t total)
{
    size_t n = total / block;
    void **blocks = malloc(n * sizeof *blocks);
    CHECK(blocks != NULL, "malloc of the pointer array");
    if (!blocks) return;
    for (size_t i = 0; i < n; i++) {
        blocks[i] = malloc(block);
        CHECK(blocks[i] != NULL, "malloc(%zu)", block);
        if (blocks[i]) memset(blocks[i], 0x5c, block); /* touch every page */
    }
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    free(blocks);
}

int main(void)
{
    if (!lab_provided("malloc_trim")) {
        SAY("trim: malloc_trim is not the allocator's own; skipped");
        return LAB_SKIP;
    }
    long base = lab_rss_kib();
    static const size_t sizes[] = {48, 3000, 40000, 300000, 6u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        SAY("256 MiB in blocks of %zu bytes touched and freed, then malloc_trim(0)", sizes[i]);
        churn(sizes[i], 256u << 20);
        long before = lab_rss_kib();
        malloc_trim(0);
        long after = lab_rss_kib();
        SAY("  RSS: %ld KiB at start, %ld KiB after free, %ld KiB after malloc_trim(0)", base,
            before, after);
        CHECK(after >= 0 && after < base + 48 * 1024,
              "blocks of %zu: RSS %ld KiB after malloc_trim(0), started at %ld KiB", sizes[i], after,
              base);
    }
    return lab_finish("trim");
}
