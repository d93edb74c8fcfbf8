/* dladdr_names.c — Labyrinth only: each allocation name the program calls really resolves into
 * liblabyrinth.so, both as the program's own reference (&malloc, bound through its GOT) and as
 * dlsym(RTLD_DEFAULT) finds it (how libraries that look names up at run time see it). A name left
 * to glibc would split the heap in two. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>

#include "lab_check.h"

static void expect_labyrinth_object(const char *name, const char *how, void *addr)
{
    Dl_info info;
    int ok = addr != NULL && dladdr(addr, &info) != 0 && info.dli_fname != NULL;
    CHECK(ok, "%s (%s): dladdr(%p) found no object", name, how, addr);
    if (!ok) return;
    SAY("  %-20s %-6s -> %s", name, how, info.dli_fname);
    CHECK(strstr(info.dli_fname, "labyrinth") != NULL, "%s (%s) resolves to %s", name, how,
          info.dli_fname);
}

int main(void)
{
    if (!lab_expect_labyrinth()) {
        SAY("dladdr_names: only meaningful for labyrinth (set LAB_EXPECT_LABYRINTH=1); skipped");
        return LAB_SKIP;
    }
    SAY("each allocation name resolves to an object whose path contains \"labyrinth\"");
    static const struct {
        const char *name;
        void *addr;
    } names[] = {
        {"malloc", (void *)&malloc},
        {"free", (void *)&free},
        {"calloc", (void *)&calloc},
        {"realloc", (void *)&realloc},
        {"posix_memalign", (void *)&posix_memalign},
        {"aligned_alloc", (void *)&aligned_alloc},
        {"memalign", (void *)&memalign},
        {"valloc", (void *)&valloc},
        {"pvalloc", (void *)&pvalloc},
        {"malloc_usable_size", (void *)&malloc_usable_size},
        {"reallocarray", (void *)&reallocarray},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        expect_labyrinth_object(names[i].name, "&name", names[i].addr);
        expect_labyrinth_object(names[i].name, "dlsym", dlsym(RTLD_DEFAULT, names[i].name));
    }
    return lab_finish("dladdr_names");
}
