/* areplay.c — replays an allocation trace written by libatrace.so (bench/tools/atrace.c) under
 * whatever allocator is preloaded, in one thread, in the recorded order, and prints one line:
 *   events=N replayed_s=T minor_faults=F maxrss_kib=R rss_growth_kib=G live_end=L
 * The blocks are written as the touch mode says: none (only what the allocator writes itself),
 * head (the first 16 bytes, as a program that fills in a header), or all (every byte, the
 * default: the pages a program that uses its blocks in full would fault in). The trace is read
 * and indexed before the clock starts, so minor_faults counts the allocator's pages and the
 * blocks' own; maxrss_kib is the process's peak (the trace's memory included, alike for every
 * allocator), rss_growth_kib that peak less the resident memory just before the replay (the
 * trace's arrays, which stay resident throughout): the allocator's own peak, blocks included,
 * however large the trace. Blocks the trace frees or reallocates without having allocated them (the dynamic
 * loader's, made before the recording began) are skipped. Exit status 1 on a bad trace or a
 * failed allocation the recording did not fail.
 *   areplay TRACE [none|head|all] */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char op;
    uintptr_t ret, old;
    size_t size, align;
} ev_t;

/* recorded address -> the replay's block (open addressing; slot 0 key means empty) */
typedef struct {
    uintptr_t key;
    void *val;
} slot_t;

static slot_t *table;
static size_t table_mask;

static slot_t *slot_find(uintptr_t key, int insert)
{
    size_t i = (size_t)((key >> 4) * 0x9e3779b97f4a7c15ull) & table_mask;
    for (;;) {
        slot_t *s = &table[i];
        if (s->key == key)
            return s;
        if (s->key == 0)
            return insert ? s : NULL;
        i = (i + 1) & table_mask;
    }
}

static void *map_zero(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "areplay: cannot map %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

/* Resident KiB now (/proc/self/statm's second field, in pages). The unit tests read it the
 * same way; this tool builds on its own (cmake -S bench), so it keeps its own copy. */
static long rss_now_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: areplay TRACE [none|head|all]\n");
        return 2;
    }
    int touch = 2;
    if (argc > 2)
        touch = !strcmp(argv[2], "none") ? 0 : !strcmp(argv[2], "head") ? 1 : 2;
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    /* read it all first: the events in an array mapped (and faulted in) before the clock starts */
    size_t cap = 1 << 16, n = 0;
    ev_t *ev = map_zero(cap * sizeof *ev);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (n == cap) {
            ev_t *bigger = map_zero(2 * cap * sizeof *ev);
            memcpy(bigger, ev, cap * sizeof *ev);
            munmap(ev, cap * sizeof *ev);
            ev = bigger;
            cap *= 2;
        }
        ev_t *e = &ev[n];
        memset(e, 0, sizeof *e);
        e->op = line[0];
        int ok;
        switch (e->op) {
        case 'm':
        case 'c':
            ok = sscanf(line + 1, "%lx %zu", &e->ret, &e->size) == 2;
            break;
        case 'r':
            ok = sscanf(line + 1, "%lx %lx %zu", &e->ret, &e->old, &e->size) == 3;
            break;
        case 'a':
            ok = sscanf(line + 1, "%lx %zu %zu", &e->ret, &e->align, &e->size) == 3;
            break;
        case 'f':
            ok = sscanf(line + 1, "%lx", &e->ret) == 1;
            break;
        default:
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "areplay: %s: bad line %zu: %s", argv[1], n + 1, line);
            return 1;
        }
        n++;
    }
    fclose(f);
    size_t tsize = 1024;
    while (tsize < 2 * n)
        tsize *= 2;
    table = map_zero(tsize * sizeof *table);
    table_mask = tsize - 1;

    struct rusage r0, r1;
    long rss0 = rss_now_kib();
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s();
    size_t live = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        ev_t *e = &ev[i];
        void *p = NULL;
        size_t size = e->size;
        if (e->op == 'f') {
            slot_t *s = slot_find(e->ret, 0);
            if (s && s->val) {
                free(s->val);
                s->val = NULL;
                live--;
            }
            continue;
        }
        if (e->op == 'r' && e->old) {
            slot_t *s = slot_find(e->old, 0);
            if (!s || !s->val) {
                p = malloc(size); /* the old block was not recorded: a fresh one */
            } else {
                p = realloc(s->val, size);
                if (p || size == 0) {
                    s->val = NULL;
                    live--;
                }
            }
        } else if (e->op == 'm' || e->op == 'r') {
            p = malloc(size);
        } else if (e->op == 'c') {
            p = calloc(1, size);
        } else {
            /* memalign takes any alignment and rounds it up to a power of two: so does this */
            size_t a = sizeof(void *);
            while (a < e->align && a <= SIZE_MAX / 2)
                a *= 2;
            if (posix_memalign(&p, a, size) != 0)
                p = NULL;
        }
        if (!p) {
            if (e->ret && size)
                failed++;
            continue;
        }
        if (touch == 2)
            memset(p, 1, size);
        else if (touch == 1)
            memset(p, 1, size < 16 ? size : 16);
        if (e->ret) {
            slot_t *s = slot_find(e->ret, 1);
            s->key = e->ret;
            if (s->val) /* the recording lost a free (a child's, or after the last flush) */
                free(s->val);
            else
                live++;
            s->val = p;
        } else {
            free(p); /* the recorded call failed; this one did not */
        }
    }
    double t = now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    printf("events=%zu replayed_s=%.6f minor_faults=%ld maxrss_kib=%ld rss_growth_kib=%ld live_end=%zu\n", n,
           t, r1.ru_minflt - r0.ru_minflt, r1.ru_maxrss, r1.ru_maxrss > rss0 ? r1.ru_maxrss - rss0 : 0, live);
    if (failed) {
        fprintf(stderr, "areplay: %zu allocations failed that the recording did not\n", failed);
        return 1;
    }
    return 0;
}
