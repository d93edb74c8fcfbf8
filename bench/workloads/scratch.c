/* scratch.c — false sharing after cache-scratch and cache-thrash: the main thread allocates one
 * small block per worker, back to back, and hands them out; each worker frees its block, then
 * over and over allocates a small block, writes it hard, checks it and frees it. An allocator
 * that gives neighbouring bytes of one cache line to different threads (actively, or passively by
 * reusing the freed handed-out blocks) makes the cores fight over the line; one that keeps
 * threads' small blocks on separate lines does not. N = allocations per thread. */
#include "wl.h"

#define SCRATCH_SIZE 8
#define SCRATCH_WRITES 500

struct scratch_arg {
    unsigned char *given;
    long rounds;
    uint64_t sum;
};

static void *scratch_worker(void *p)
{
    struct scratch_arg *a = p;
    free(a->given);
    uint64_t sum = 0;
    for (long i = 0; i < a->rounds; i++) {
        volatile unsigned char *b = malloc(SCRATCH_SIZE);
        if (!b)
            wl_die("scratch: malloc returned NULL");
        for (int k = 0; k < SCRATCH_SIZE; k++)
            b[k] = 0;
        for (int w = 0; w < SCRATCH_WRITES; w++)
            b[w % SCRATCH_SIZE]++;
        for (int k = 0; k < SCRATCH_SIZE; k++)
            sum += b[k];
        free((void *)b);
    }
    a->sum = sum;
    return NULL;
}

int wl_scratch(int threads, long n)
{
    struct scratch_arg *args = calloc((size_t)threads, sizeof *args);
    for (int i = 0; i < threads; i++) {
        args[i].given = malloc(SCRATCH_SIZE); /* neighbours, if the allocator packs them */
        if (!args[i].given)
            wl_die("scratch: malloc returned NULL");
        args[i].given[0] = (unsigned char)i;
        args[i].rounds = n;
    }
    double t0 = wl_now();
    wl_run_threads(threads, scratch_worker, args, sizeof *args);
    double t = wl_now() - t0;
    /* each round adds SCRATCH_WRITES increments in all (no byte wraps: 500/8 < 256) */
    for (int i = 0; i < threads; i++)
        if (args[i].sum != (uint64_t)n * SCRATCH_WRITES)
            wl_die("scratch: thread %d summed %llu", i, (unsigned long long)args[i].sum);
    free(args);
    wl_report("scratch", threads, n, t, NULL);
    return 0;
}
