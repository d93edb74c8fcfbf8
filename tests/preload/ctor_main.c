/* ctor_main.c — start-up: blocks allocated in a shared library's constructor (ctor_lib.c), before
 * main(), keep their contents and can be freed and reallocated by main like any others. With
 * `reserve0` (run with LABYRINTH_RESERVE_GB=0): the options hold though that constructor ran
 * before the allocator's own (the program's libraries are initialised before a preloaded one)
 * and made the malloc pool: no region of address space is reserved. Read in the allocator's
 * constructor alone, the option came too late (found by review, in every C++ program). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "lab_check.h"

extern void *ctor_blocks[6];
extern size_t ctor_sizes[6];
extern char *ctor_string;

/* Mappings of 1 GiB or more in this process (the region is 1 GiB at the least). */
static int big_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && b - a >= (1ul << 30))
            n++;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "reserve0") == 0) {
        if (!lab_expect_labyrinth())
            return LAB_SKIP;
        SAY("LABYRINTH_RESERVE_GB=0 holds though a library's constructor allocated first");
        int n = big_mappings();
        CHECK(n == 0, "%d mappings of 1 GiB or more", n);
    }
    SAY("blocks allocated in a library constructor before main: present, intact, freeable");
    for (int i = 0; i < 6; i++) {
        unsigned char *p = ctor_blocks[i];
        CHECK(p != NULL, "constructor's malloc(%zu) failed", ctor_sizes[i]);
        if (!p) continue;
        CHECK(malloc_usable_size(p) >= ctor_sizes[i], "block %d usable %zu < %zu", i,
              malloc_usable_size(p), ctor_sizes[i]);
        size_t bad = SIZE_MAX;
        for (size_t j = 0; j < ctor_sizes[i] && bad == SIZE_MAX; j++)
            if (p[j] != (unsigned char)(0x40 + i))
                bad = j;
        CHECK(bad == SIZE_MAX, "block %d (size %zu) byte %zu changed", i, ctor_sizes[i], bad);
        p = realloc(p, ctor_sizes[i] * 2 + 16);
        CHECK(p != NULL, "realloc of constructor block %d failed", i);
        free(p);
    }
    CHECK(ctor_string && strcmp(ctor_string, "allocated in a library constructor") == 0,
          "strdup'd string from the constructor damaged");
    return lab_finish("ctor_main");
}
