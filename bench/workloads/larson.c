/* larson.c — server simulation after Larson and Krishnan's benchmark: worker threads replace
 * random slots of one shared table with fresh blocks of random size (16 B .. 1 KiB) and free what
 * they displaced, so most blocks die on a thread other than the one that allocated them, as with
 * requests handed between server threads. The exchange is atomic, so the figure is the
 * allocator's (remote frees, heap contention), not a lock's. N = replacements in all. */
#include <stdatomic.h>

#include "wl.h"

#define LARSON_SLOTS 16384

static void *_Atomic larson_table[LARSON_SLOTS];
static long larson_rounds;

struct larson_arg {
    int id;
    long allocated, freed;
};

static void *larson_worker(void *p)
{
    struct larson_arg *a = p;
    uint64_t s = wl_seed((uint64_t)a->id);
    /* counted in locals: the threads' arguments share cache lines, and counters written there
     * at every step would measure that false sharing, not the allocator */
    long allocated = 0, freed = 0;
    for (long i = 0; i < larson_rounds; i++) {
        uint64_t r = wl_rand(&s);
        void *b = wl_block_new(16 + (size_t)(r % 1009));
        allocated++;
        void *old = atomic_exchange_explicit(&larson_table[(r >> 32) % LARSON_SLOTS], b, memory_order_acq_rel);
        if (old) {
            wl_block_free(old);
            freed++;
        }
    }
    a->allocated = allocated, a->freed = freed;
    return NULL;
}

int wl_larson(int threads, long n)
{
    struct larson_arg *args = calloc((size_t)threads, sizeof *args);
    for (int i = 0; i < threads; i++)
        args[i].id = i;
    larson_rounds = n / threads;
    double t0 = wl_now();
    wl_run_threads(threads, larson_worker, args, sizeof *args);
    long allocated = 0, freed = 0;
    for (int i = 0; i < threads; i++)
        allocated += args[i].allocated, freed += args[i].freed;
    for (int k = 0; k < LARSON_SLOTS; k++) {
        void *b = atomic_exchange(&larson_table[k], NULL);
        if (b)
            wl_block_free(b), freed++;
    }
    double t = wl_now() - t0;
    if (allocated != freed || allocated != larson_rounds * threads)
        wl_die("larson: %ld allocated, %ld freed", allocated, freed);
    free(args);
    wl_report("larson", threads, n, t, NULL);
    return 0;
}
