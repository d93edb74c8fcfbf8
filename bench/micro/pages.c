/* pages.c — ns per page allocation+free pair: the labyrinth page API (ATOMIC and DEFAULT, order 0
 * and 4), against raw mmap+touch+munmap of 4 KiB and against malloc(4096)/free; 1 and 2 threads.
 * Links the core directly (no preload). Prints one line per case; figures are reported, never
 * asserted. Usage: pages [iterations] */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "labyrinth.h"

static long iters;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job {
    int kind;
    unsigned order;
    double ns;
};

static void *run(void *arg)
{
    struct job *j = arg;
    labyrinth_t *pool = labyrinth_default();
    long n = j->kind == 2 ? iters / 100 : iters;
    void *keep[8];
    /* a few pages live so the pair is not trivially the same page every time */
    for (int i = 0; i < 8; i++)
        keep[i] = labyrinth_alloc_pages(pool, j->order, 0);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        void *p;
        switch (j->kind) {
        case 0: /* ATOMIC */
            p = labyrinth_alloc_pages(pool, j->order, LAB_GFP_ATOMIC);
            if (!p)
                abort();
            *(volatile char *)p = 1;
            labyrinth_free_pages(pool, p, j->order);
            break;
        case 1: /* DEFAULT */
            p = labyrinth_alloc_pages(pool, j->order, 0);
            if (!p)
                abort();
            *(volatile char *)p = 1;
            labyrinth_free_pages(pool, p, j->order);
            break;
        case 2: /* raw mmap + touch + munmap */
            p = mmap(NULL, 4096u << j->order, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                abort();
            *(volatile char *)p = 1;
            munmap(p, 4096u << j->order);
            break;
        }
    }
    j->ns = (now() - t0) * 1e9 / (double)n;
    for (int i = 0; i < 8; i++)
        labyrinth_free_pages(pool, keep[i], j->order);
    return NULL;
}

int main(int argc, char **argv)
{
    iters = argc > 1 ? atol(argv[1]) : 2000000;
    const char *names[] = {"labyrinth ATOMIC", "labyrinth DEFAULT", "mmap+touch+munmap"};
    for (int kind = 0; kind < 3; kind++) {
        for (unsigned order = 0; order <= 4; order += 4) {
            for (int threads = 1; threads <= 2; threads++) {
                struct job j[2] = {{kind, order, 0}, {kind, order, 0}};
                pthread_t t[2];
                for (int i = 0; i < threads; i++)
                    pthread_create(&t[i], NULL, run, &j[i]);
                for (int i = 0; i < threads; i++)
                    pthread_join(t[i], NULL);
                double ns = threads == 1 ? j[0].ns : (j[0].ns + j[1].ns) / 2;
                printf("%-18s order %u, %d thread%s: %8.1f ns per alloc+free pair\n", names[kind], order, threads,
                       threads > 1 ? "s" : " ", ns);
            }
        }
    }
    return 0;
}
