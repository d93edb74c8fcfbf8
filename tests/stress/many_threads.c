/* many_threads.c — hundreds of threads alive at once, each with its own heap: every thread
 * allocates, waits until all have, then frees its right neighbour's blocks (remote frees into a
 * heap whose owner is alive but idle) and exits without freeing its own leftovers, which the next
 * generation frees. Finds limits on the number of heaps and races between heap creation.
 * Usage: stress_many_threads [threads] [generations]. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "lab_check.h"

enum { MAX_THREADS = 1024, BLOCKS = 64 };

struct block {
    void *p;
    size_t size;
};

static int nthreads = 512;
static struct block blocks[MAX_THREADS][BLOCKS];
static struct block leftovers[MAX_THREADS];
static pthread_barrier_t all_allocated;

static void check_and_free(struct block b)
{
    if (b.p == NULL) return;
    size_t bad = lab_canary_check(b.p, b.size);
    CHECK(bad == SIZE_MAX, "block %p of %zu damaged at %zu", b.p, b.size, bad);
    free(b.p);
}

static void *worker(void *arg)
{
    int self = (int)(uintptr_t)arg;
    uint64_t seed = 0xFEED + (uint64_t)self * 31337;
    /* The previous generation's thread in this slot left one block: free it here. */
    check_and_free(leftovers[self]);
    for (int i = 0; i < BLOCKS; i++) {
        uint64_t r = lab_rand(&seed);
        size_t n = r % 32 == 0 ? 8192 + r % 60000 : 8 + r % 600;
        blocks[self][i] = (struct block){malloc(n), n};
        CHECK(blocks[self][i].p != NULL, "thread %d: malloc(%zu) failed", self, n);
        if (blocks[self][i].p) lab_canary_fill(blocks[self][i].p, n);
    }
    leftovers[self].size = 100 + (size_t)self;
    leftovers[self].p = malloc(leftovers[self].size);
    if (leftovers[self].p) lab_canary_fill(leftovers[self].p, leftovers[self].size);
    pthread_barrier_wait(&all_allocated);
    int right = (self + 1) % nthreads;
    for (int i = 0; i < BLOCKS; i++) {
        check_and_free(blocks[right][i]);
        blocks[right][i].p = NULL;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) nthreads = atoi(argv[1]);
    int generations = argc > 2 ? atoi(argv[2]) : 4;
    if (nthreads < 2 || nthreads > MAX_THREADS) nthreads = 512;
    SAY("%d generations of %d simultaneous threads; each frees its neighbour's blocks", generations,
        nthreads);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    static pthread_t t[MAX_THREADS];
    for (int g = 0; g < generations; g++) {
        pthread_barrier_init(&all_allocated, NULL, (unsigned)nthreads);
        int created = 0;
        for (int i = 0; i < nthreads; i++)
            if (pthread_create(&t[i], &attr, worker, (void *)(uintptr_t)i) == 0)
                created++;
        CHECK(created == nthreads, "only %d of %d threads created", created, nthreads);
        if (created != nthreads) return lab_finish("many_threads"); /* the barrier would hang */
        for (int i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&all_allocated);
    }
    for (int i = 0; i < nthreads; i++)
        check_and_free(leftovers[i]);
    return lab_finish("many_threads");
}
