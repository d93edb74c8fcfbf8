/* ctor_main.c — start-up: blocks allocated in a shared library's constructor (ctor_lib.c), before
 * main(), keep their contents and can be freed and reallocated by main like any others. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>

#include "lab_check.h"

extern void *ctor_blocks[6];
extern size_t ctor_sizes[6];
extern char *ctor_string;

int main(void)
{
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
