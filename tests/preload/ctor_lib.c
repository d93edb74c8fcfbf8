/* ctor_lib.c — a shared library whose constructor allocates before main() runs, and before the
 * preloaded allocator's own constructor: glibc initialises this library (a dependency of the
 * program) ahead of the LD_PRELOAD'ed one, as LD_DEBUG=files shows. So Labyrinth must initialise
 * itself on demand from its first call. Used by ctor_main.c. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

void *ctor_blocks[6];
size_t ctor_sizes[6] = {1, 24, 1000, 5000, 100000, 3u << 20};
char *ctor_string;

/* Priority 101 is the earliest a program may ask for: before every default constructor. */
__attribute__((constructor(101))) static void ctor_allocate(void)
{
    for (int i = 0; i < 6; i++) {
        unsigned char *p = malloc(ctor_sizes[i]);
        if (p)
            memset(p, 0x40 + i, ctor_sizes[i]);
        ctor_blocks[i] = p;
    }
    /* Grow one of them, and leave a calloc'd and a strdup'd block for main to check. */
    ctor_blocks[1] = realloc(ctor_blocks[1], 200);
    if (ctor_blocks[1])
        memset((char *)ctor_blocks[1] + 24, 0x41, 200 - 24);
    ctor_sizes[1] = 200;
    ctor_string = strdup("allocated in a library constructor");
}

__attribute__((destructor)) static void ctor_release(void)
{
    /* Frees after main has returned, while the allocator may be tearing down its own stats. */
    free(ctor_string);
}
