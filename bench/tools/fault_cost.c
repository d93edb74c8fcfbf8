/* fault_cost.c — what a page fault costs on this machine, the figure behind LABYRINTH_THP:
 * microseconds to make 1 MiB of fresh anonymous memory usable by touching each 4 KiB page (one
 * fault each), by MADV_POPULATE_WRITE and then touching (one system call), and to touch a fresh
 * 2 MiB region advised MADV_HUGEPAGE (one fault for a huge page when the kernel has one; it
 * reports whether it did). Each figure is the median of REPS rounds of mmap, fill, munmap.
 * Those regions are mapped and unmapped again and again, so the kernel hands back the memory it
 * has just had back. --grow MIB measures a heap growing instead: MIB MiB in one fresh mapping,
 * every 4 KiB touched, once advised MADV_HUGEPAGE and once MADV_NOHUGEPAGE, alternating for
 * ROUNDS rounds, each printed (the first is the one a process growing beside programs that do
 * not use huge pages meets: memory the kernel must find, and on a VM the host back, first).
 *   fault_cost [REPS]   (default 101)
 *   fault_cost --grow MIB [ROUNDS]   (default 3 rounds) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum { TOUCH, POPULATE, HUGE, MODES };
static const char *const mode_name[MODES] = {"4 KiB faults", "MADV_POPULATE_WRITE", "one huge page"};

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One round: map twice the length (to find a length-aligned start), make `len` usable, unmap.
 * Returns microseconds; *huge_kb gets the region's AnonHugePages for the HUGE mode. */
static double round_us(int mode, size_t len, long *huge_kb)
{
    char *m = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("fault_cost: mmap");
        exit(1);
    }
    char *p = (char *)(((unsigned long)m + len - 1) & ~(len - 1));
    double t0 = now_us();
    if (mode == POPULATE && madvise(p, len, MADV_POPULATE_WRITE) != 0)
        perror("fault_cost: MADV_POPULATE_WRITE");
    if (mode == HUGE && madvise(p, len, MADV_HUGEPAGE) != 0)
        perror("fault_cost: MADV_HUGEPAGE");
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    double t = now_us() - t0;
    if (huge_kb) {
        *huge_kb = 0;
        FILE *f = fopen("/proc/self/smaps", "r");
        char line[256];
        int in = 0;
        while (f && fgets(line, sizeof line, f)) {
            unsigned long lo, hi;
            char c;
            if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3)
                in = (unsigned long)p >= lo && (unsigned long)p < hi;
            else if (in && !strncmp(line, "AnonHugePages:", 14))
                *huge_kb += atol(line + 14);
        }
        if (f)
            fclose(f);
    }
    munmap(m, 2 * len);
    return t;
}

/* One fresh mapping of mib MiB (2 MiB-aligned), advised, every 4 KiB page touched: us per 2 MiB. */
static double grow_us(size_t mib, int huge)
{
    size_t len = mib << 20, align = (size_t)2 << 20;
    char *m = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("fault_cost: mmap");
        exit(1);
    }
    char *p = (char *)(((unsigned long)m + align - 1) & ~(align - 1));
    if (madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0)
        perror("fault_cost: madvise");
    double t0 = now_us();
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    double t = now_us() - t0;
    munmap(m, len + align);
    return t / (double)(len / align);
}

static int grow(int argc, char **argv)
{
    long mib = argc > 2 ? atol(argv[2]) : 0;
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    if (mib < 2 || rounds < 1) {
        fprintf(stderr, "usage: fault_cost --grow MIB [ROUNDS]   (MIB >= 2)\n");
        return 2;
    }
    for (int r = 0; r < rounds; r++) {
        double h = grow_us((size_t)mib, 1), s = grow_us((size_t)mib, 0);
        printf("grow %ld MiB, round %d: huge pages %9.1f us per 2 MiB, small pages %9.1f us per 2 MiB\n", mib, r,
               h, s);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--grow"))
        return grow(argc, argv);
    int reps = argc > 1 ? atoi(argv[1]) : 101;
    if (reps < 1) {
        fprintf(stderr, "usage: fault_cost [REPS]\n");
        return 2;
    }
    double *t = malloc(sizeof *t * (size_t)reps);
    if (!t)
        return 1;
    for (int mode = 0; mode < MODES; mode++) {
        size_t len = mode == HUGE ? (size_t)2 << 20 : (size_t)1 << 20;
        long huge_kb = 0, got = 0;
        for (int r = 0; r < reps; r++) {
            t[r] = round_us(mode, len, mode == HUGE ? &huge_kb : NULL);
            got += huge_kb >= 2048;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp);
        double med = t[reps / 2];
        printf("%-20s %9.1f us per %s, %7.2f us per 4 KiB page", mode_name[mode], med, mode == HUGE ? "2 MiB" : "1 MiB",
               med / (double)(len >> 12));
        if (mode == HUGE)
            printf(" (a huge page in %ld of %d rounds)", got, reps);
        printf("\n");
    }
    free(t);
    return 0;
}
