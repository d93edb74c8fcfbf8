/* mstress.c — thread churn after mimalloc-bench's mstress: rounds of short-lived threads share one
 * table of blocks; each thread replaces random entries (freeing blocks that earlier, now dead,
 * threads allocated), keeps a few blocks of its own that it frees before it exits, and then dies.
 * What is measured is the allocator's thread start and exit: heap set-up, abandoning a heap whose
 * blocks are still live, and reclaiming it later. N = rounds; every round starts THREADS threads.
 */
#include <stdatomic.h>

#include "wl.h"

#define MS_SLOTS 4096
#define MS_OPS 2000   /* table replacements per thread */
#define MS_LOCAL 200  /* private blocks per thread */

static void *_Atomic ms_table[MS_SLOTS];
static atomic_long ms_allocated, ms_freed;

static void *ms_worker(void *p)
{
    uint64_t s = wl_seed((uint64_t)(uintptr_t)p);
    void *local[MS_LOCAL];
    long made = 0, freed = 0;
    for (int i = 0; i < MS_LOCAL; i++)
        local[i] = wl_block_new(16 + (size_t)(wl_rand(&s) % 240)), made++;
    for (int i = 0; i < MS_OPS; i++) {
        uint64_t r = wl_rand(&s);
        /* mostly small; one in 16 up to 8 KiB, so spans of several size classes are left behind */
        size_t n = (r & 15) ? 16 + (size_t)((r >> 8) % 500) : 16 + (size_t)((r >> 8) % 8192);
        void *b = (r >> 60) == 0 ? NULL : wl_block_new(n); /* now and then just empty a slot */
        made += b != NULL;
        void *old = atomic_exchange_explicit(&ms_table[(r >> 32) % MS_SLOTS], b, memory_order_acq_rel);
        if (old)
            wl_block_free(old), freed++;
    }
    for (int i = 0; i < MS_LOCAL; i++)
        wl_block_free(local[i]), freed++;
    atomic_fetch_add(&ms_allocated, made);
    atomic_fetch_add(&ms_freed, freed);
    return NULL;
}

int wl_mstress(int threads, long n)
{
    double t0 = wl_now();
    uintptr_t next_id = 1;
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (long round = 0; round < n; round++) {
        for (int i = 0; i < threads; i++)
            if (pthread_create(&t[i], NULL, ms_worker, (void *)next_id++))
                wl_die("mstress: pthread_create");
        for (int i = 0; i < threads; i++)
            pthread_join(t[i], NULL);
    }
    long freed_at_end = 0;
    for (int k = 0; k < MS_SLOTS; k++) {
        void *b = atomic_exchange(&ms_table[k], NULL);
        if (b)
            wl_block_free(b), freed_at_end++;
    }
    double el = wl_now() - t0;
    if (atomic_load(&ms_allocated) != atomic_load(&ms_freed) + freed_at_end)
        wl_die("mstress: %ld allocated, %ld freed", atomic_load(&ms_allocated),
               atomic_load(&ms_freed) + freed_at_end);
    free(t);
    wl_report("mstress", threads, n, el, NULL);
    return 0;
}
