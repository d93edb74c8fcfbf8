/* reserve_overflow.c — more chunks than the fast map's region holds (run with
 * LABYRINTH_RESERVE_GB=1: 511 chunk slots): 1 300 page-sized blocks of 1 MiB need about 650
 * chunks, so some lie inside the region and some outside it, and two threads free each other's
 * small blocks among them. Every block keeps its contents, reports its usable size, and is freed
 * (locally, remotely, through realloc) without a crash or a false abort; then it all runs again
 * on the memory given back. Other allocators just run it. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lab_check.h"

enum { BIG = 1300, SMALL = 20000 };

static void *small[SMALL];

static void *free_half(void *arg)
{
    /* the other thread's blocks: remote frees, interleaved with this thread's own */
    (void)arg;
    for (int i = 0; i < SMALL; i += 2) {
        void *own = malloc(48);
        CHECK(own != NULL, "malloc(48) failed");
        CHECK(lab_canary_check(small[i], 40) == SIZE_MAX, "small block %d damaged", i);
        free(small[i]);
        small[i] = NULL;
        free(own);
    }
    return NULL;
}

static void round_trip(int round)
{
    static unsigned char *big[BIG];
    for (int i = 0; i < SMALL; i++) {
        small[i] = malloc(40);
        CHECK(small[i] != NULL, "malloc(40) failed");
        if (small[i])
            lab_canary_fill(small[i], 40);
    }
    for (int i = 0; i < BIG; i++) {
        size_t n = (1u << 20) - (size_t)(i % 3) * 4096; /* whole-order and odd page counts */
        big[i] = malloc(n);
        CHECK(big[i] != NULL, "round %d: malloc(%zu) #%d failed", round, n, i);
        if (!big[i])
            return;
        CHECK(malloc_usable_size(big[i]) >= n, "usable size %zu < %zu", malloc_usable_size(big[i]), n);
        big[i][0] = (unsigned char)i;
        big[i][n - 1] = (unsigned char)(i * 7);
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_half, NULL) == 0, "pthread_create failed");
    for (int i = 1; i < SMALL; i += 2) {
        CHECK(lab_canary_check(small[i], 40) == SIZE_MAX, "small block %d damaged", i);
        free(small[i]);
    }
    pthread_join(t, NULL);
    for (int i = 0; i < BIG; i++) {
        size_t n = (1u << 20) - (size_t)(i % 3) * 4096;
        CHECK(big[i][0] == (unsigned char)i && big[i][n - 1] == (unsigned char)(i * 7), "block %d damaged", i);
        if (i % 4 == 0) {
            unsigned char *q = realloc(big[i], n / 2); /* shrinks in place or moves */
            CHECK(q != NULL && q[0] == (unsigned char)i, "realloc shrink of block %d failed", i);
            big[i] = q;
        }
    }
    for (int i = BIG - 1; i >= 0; i -= 2)
        free(big[i]);
    for (int i = BIG - 2; i >= 0; i -= 2)
        free(big[i]);
    malloc_trim(0);
}

int main(void)
{
    SAY("reserve_overflow: %d blocks of 1 MiB and %d small ones, twice (provider %s)", BIG, SMALL,
        lab_malloc_provider());
    round_trip(0);
    round_trip(1);
    return lab_finish("reserve_overflow");
}
