/* calloc_sparse.c — a block written in a few of its pages, freed and calloc'ed again: zero
 * throughout, and (Labyrinth) the pages never written stay untouched unless LABYRINTH_PAGEMAP=0
 * says not to ask the kernel which were, in which case all are cleared (mode "ask": at least 100
 * of the 128 pages absent, `mincore`; mode "off": none absent). git merge and commit do this with
 * 512 KiB; a memset of the reused run used to fault in all of it. Written in full, freed and
 * calloc'ed again: zero. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lab_check.h"

enum { PAGES = 128 };

static size_t first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return i;
    return SIZE_MAX;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ask";
    const size_t n = PAGES * 4096 - 32;
    SAY("calloc(%zu) over a block written in every 16th page (%s)", n, mode);
    unsigned char *p = calloc(1, n);
    CHECK(p != NULL, "calloc");
    if (!p)
        return 1;
    for (size_t i = 0; i < n; i += 16 * 4096)
        p[i] = 0xa5;
    free(p);
    unsigned char *q = calloc(1, n);
    CHECK(q != NULL, "calloc again");
    if (!q)
        return 1;
    size_t k = lab_pages_absent(q, n);
    SAY("  %zu of %d pages absent before they are read", k, PAGES);
    if (lab_expect_labyrinth()) {
        if (!strcmp(mode, "off"))
            CHECK(k == 0, "LABYRINTH_PAGEMAP=0: every page cleared, %zu absent", k);
        else
            CHECK(k != SIZE_MAX && k >= 100, "only the written pages cleared: %zu absent", k);
    }
    CHECK(first_nonzero(q, n) == SIZE_MAX, "calloc again: byte %zu not zero", first_nonzero(q, n));
    memset(q, 0x5a, n);
    free(q);
    unsigned char *r = calloc(1, n);
    CHECK(r != NULL && first_nonzero(r, n) == SIZE_MAX, "calloc after a block written in full");
    free(r);
    return lab_failures ? 1 : 0;
}
