/* mmap_bench.c — ns per mmap + touch + munmap of an anonymous private read-write region, for
 * several sizes and thread counts, three ways in the same process: through the libc names (the
 * kernel; Labyrinth's pool when run with LD_PRELOAD=liblabyrinth.so LABYRINTH_MMAP=1), through
 * raw system calls (always the kernel), and the floor: the least a pool must do when pages freed
 * by munmap have to fault (mprotect read-write, clear what the last cycle wrote, touch, mprotect
 * PROT_NONE on a region of its own, raw calls) — no pooled mmap that keeps use-after-munmap faulting can beat it. The
 * three take turns in short batches (order rotated every batch) and each figure is the median
 * over its batches, so all see the same machine: on a VM the cost of these calls drifts with
 * the host's load from one minute to the next. Prints CSV,
 * the exact command on the first line; figures are reported, never asserted. touch: all = a byte
 * written in every page, first = the first byte only.
 * Usage: mmap_bench [-t MS per case] [-b MS per batch] [-s KIB,...] [-T THREADS,...] [-x all|first|both] */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "labyrinth.h"

#define MAXB 512

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job {
    size_t len;
    int touch_all, nbatch;
    double batch_s;
    pthread_barrier_t *sync;
    double ns[3][MAXB];   /* [0]: raw system calls, [1]: libc names, [2]: the floor; per batch */
    long ops[3];
    char *own;            /* the floor's region, reserved PROT_NONE */
    int failed;
};

static void touch(struct job *j, char *p)
{
    if (j->touch_all)
        for (size_t o = 0; o < j->len; o += 4096)
            ((volatile char *)p)[o] = 1;
    else
        *(volatile char *)p = 1;
}

/* The floor: what a pool must do per cycle when unmapped pages fault and reused ones read zero. */
static void floor_one(struct job *j)
{
    if (syscall(SYS_mprotect, j->own, j->len, PROT_READ | PROT_WRITE)) {
        j->failed = 1;
        return;
    }
    memset(j->own, 0, j->touch_all ? j->len : 4096); /* what the last cycle dirtied */
    touch(j, j->own);
    syscall(SYS_mprotect, j->own, j->len, PROT_NONE);
}

static void one(struct job *j, int libc)
{
    if (libc == 2) {
        floor_one(j);
        return;
    }
    char *p = libc ? mmap(NULL, j->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                   : (char *)syscall(SYS_mmap, NULL, j->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        j->failed = 1;
        return;
    }
    touch(j, p);
    if (libc)
        munmap(p, j->len);
    else
        syscall(SYS_munmap, p, j->len);
}

static void *run(void *arg)
{
    struct job *j = arg;
    /* the floor's region, one page on each side kept PROT_NONE so it is never merged with another */
    j->own = (char *)syscall(SYS_mmap, NULL, j->len + 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (j->own == MAP_FAILED) {
        fprintf(stderr, "mmap_bench: cannot reserve %zu bytes\n", j->len + 8192);
        exit(1); /* the other threads would wait for this one at the barrier */
    }
    j->own += 4096;
    for (int i = 0; i < 8; i++) /* warm: the pool's chunk, the kernel's page tables */
        for (int m = 0; m < 3; m++)
            one(j, m);
    for (int b = 0; b < j->nbatch; b++)
        for (int k = 0; k < 3; k++) {
            int libc = (b + k) % 3;
            pthread_barrier_wait(j->sync);
            double t0 = now_s(), t;
            long n = 0;
            do {
                for (int i = 0; i < 4; i++)
                    one(j, libc);
                n += 4;
                t = now_s();
            } while (t - t0 < j->batch_s && !j->failed);
            j->ns[libc][b] = (t - t0) * 1e9 / (double)n;
            j->ops[libc] += n;
        }
    syscall(SYS_munmap, j->own - 4096, j->len + 8192);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What serves the libc names here. */
static const char *libc_mode(void)
{
    int (*st)(struct labyrinth_mmap_stats *) = (int (*)(struct labyrinth_mmap_stats *))dlsym(RTLD_DEFAULT,
                                                                                              "labyrinth_mmap_stats");
    if (!st)
        return "glibc";
    struct labyrinth_mmap_stats s;
    st(&s);
    return s.enabled ? "pooled" : "labyrinth-off";
}

static int parse_list(const char *s, long *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        out[n++] = strtol(s, (char **)&s, 10);
        if (*s == ',')
            s++;
    }
    return n;
}

int main(int argc, char **argv)
{
    long sizes[16] = {4, 16, 64, 256}, threads[8] = {1, 2};
    int nsizes = 4, nthreads = 2, touch_from = 0, touch_to = 1;
    double ms = 400, batch_ms = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-t"))
            ms = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-b"))
            batch_ms = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-s"))
            nsizes = parse_list(argv[i + 1], sizes, 16);
        else if (!strcmp(argv[i], "-T"))
            nthreads = parse_list(argv[i + 1], threads, 8);
        else if (!strcmp(argv[i], "-x")) {
            touch_from = strcmp(argv[i + 1], "all") ? 0 : 1;
            touch_to = strcmp(argv[i + 1], "first") ? 1 : 0;
        } else {
            fprintf(stderr, "usage: %s [-t MS] [-b MS] [-s KIB,...] [-T THREADS,...] [-x all|first|both]\n", argv[0]);
            return 2;
        }
    }
    int nbatch = (int)(ms / batch_ms / 3);
    nbatch = nbatch < 1 ? 1 : nbatch > MAXB ? MAXB : nbatch;
    printf("# command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    const char *pre = getenv("LD_PRELOAD"), *mm = getenv("LABYRINTH_MMAP");
    printf(" (LD_PRELOAD=%s LABYRINTH_MMAP=%s)\n", pre ? pre : "", mm ? mm : "");
    printf("size_kib,threads,touch,mode,ns_per_op,ops\n");
    const char *mode[3] = {"kernel", libc_mode(), "floor"};
    int bad = 0;
    for (int touch = touch_to; touch >= touch_from; touch--)
        for (int s = 0; s < nsizes; s++)
            for (int t = 0; t < nthreads; t++) {
                int nt = (int)threads[t];
                pthread_barrier_t b;
                pthread_barrier_init(&b, NULL, (unsigned)nt);
                static struct job j[8];
                pthread_t th[8];
                for (int k = 0; k < nt; k++) {
                    memset(&j[k], 0, sizeof j[k]);
                    j[k].len = (size_t)sizes[s] << 10;
                    j[k].touch_all = touch;
                    j[k].nbatch = nbatch;
                    j[k].batch_s = batch_ms / 1e3;
                    j[k].sync = &b;
                    pthread_create(&th[k], NULL, run, &j[k]);
                }
                for (int k = 0; k < nt; k++) {
                    pthread_join(th[k], NULL);
                    bad |= j[k].failed;
                }
                pthread_barrier_destroy(&b);
                for (int libc = 0; libc < 3; libc++) {
                    double per[MAXB]; /* per batch: the threads' mean ns per operation */
                    long ops = 0;
                    for (int x = 0; x < nbatch; x++) {
                        per[x] = 0;
                        for (int k = 0; k < nt; k++)
                            per[x] += j[k].ns[libc][x] / nt;
                    }
                    for (int k = 0; k < nt; k++)
                        ops += j[k].ops[libc];
                    qsort(per, (size_t)nbatch, sizeof per[0], cmp_double);
                    double med = nbatch % 2 ? per[nbatch / 2] : (per[nbatch / 2 - 1] + per[nbatch / 2]) / 2;
                    printf("%ld,%d,%s,%s,%.0f,%ld\n", sizes[s], nt, touch ? "all" : "first", mode[libc], med, ops);
                }
                fflush(stdout);
            }
    if (bad)
        fprintf(stderr, "mmap_bench: an mmap failed\n");
    return bad;
}
