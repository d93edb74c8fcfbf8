/* secure_maps.c — Labyrinth only, run with LABYRINTH_SECURE=1: secure mode's guard pages (each
 * a PROT_NONE page that splits its span's mapping in three) stay within an eighth of the kernel's
 * limit on mappings (vm.max_map_count), so a program with many spans can still map memory and
 * start threads (found by review: a guard for every span used the limit up past about 32 000
 * spans, and pthread_create failed). 8 KiB blocks, three to a span, for more spans than the
 * guards may have; the process's mappings counted in /proc/self/maps, then a thread started.
 * Skips (77) without LAB_EXPECT_LABYRINTH or without LABYRINTH_SECURE=1. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>

#include "lab_check.h"

static size_t read_max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    unsigned long v = 65530;
    if (f) {
        if (fscanf(f, "%lu", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

static size_t count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    size_t n = 0;
    int c;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void *nop(void *arg) { return arg; }

int main(void)
{
    const char *sec = getenv("LABYRINTH_SECURE");
    if (!lab_expect_labyrinth() || !sec || strcmp(sec, "1") != 0)
        return LAB_SKIP;
    size_t max = read_max_map_count(), cap = max / 8, spans = cap + 1000, n = spans * 3;
    if (max > 1000000)
        return LAB_SKIP; /* a raised limit: the test would need gigabytes */
    size_t before = count_maps();
    char **p = malloc(n * sizeof *p);
    CHECK(p != NULL, "malloc of the table");
    if (!p)
        return lab_finish("secure_maps");
    for (size_t i = 0; i < n; i++) {
        p[i] = malloc(8192);
        CHECK(p[i] != NULL, "malloc(8192) #%zu", i);
        if (p[i])
            p[i][0] = p[i][8191] = (char)i;
    }
    size_t maps = count_maps();
    SAY("%zu blocks of 8 KiB (about %zu spans): %zu mappings, %zu before; limit %zu", n, spans, maps, before, max);
    /* two mappings more per guard at most, and the guards at most an eighth of the limit */
    CHECK(maps <= before + 2 * cap + 100, "%zu mappings for %zu spans: the guards were not bounded (limit %zu)", maps,
          spans, max);
    pthread_t t;
    int e = pthread_create(&t, NULL, nop, NULL);
    CHECK(e == 0, "pthread_create: %s", strerror(e));
    if (e == 0)
        pthread_join(t, NULL);
    for (size_t i = 0; i < n; i++) {
        if (p[i])
            CHECK(p[i][0] == (char)i && p[i][8191] == (char)i, "block %zu overwritten", i);
        free(p[i]);
    }
    free(p);
    return lab_finish("secure_maps");
}
