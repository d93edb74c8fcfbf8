/* micro.c — allocator micro-benchmarks in C, run through Google Benchmark by gbench.h. One
 * binary for every allocator (LD_PRELOAD); the labyrinth page API is looked up with dlsym, and
 * allocators without it get aligned_alloc of the same size as their baseline.
 * Run: micro [--benchmark_filter=...] [--benchmark_format=json] */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gbench.h"

#define BATCH 1000

static const int64_t small_sizes[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, -1};
static const int64_t page_sizes[] = {4096, 16384, 65536, 262144, 1048576, -1};

/* malloc+free pairs with a window of 64 live blocks */
static void bm_malloc_free(gb_state_t *st)
{
    size_t n = (size_t)gb_range(st, 0);
    void *live[64] = {0};
    unsigned k = 0;
    while (gb_keep_running_batch(st, BATCH))
        for (int i = 0; i < BATCH; i++, k++) {
            free(live[k & 63]);
            live[k & 63] = malloc(n);
            gb_do_not_optimize(live[k & 63]);
        }
    for (int i = 0; i < 64; i++)
        free(live[i]);
}

/* 256 blocks allocated, then freed in the same order (FIFO) or reversed (LIFO) */
static void batch(gb_state_t *st, int lifo)
{
    size_t n = (size_t)gb_range(st, 0);
    void *p[256];
    while (gb_keep_running_batch(st, 256)) {
        for (int i = 0; i < 256; i++) {
            p[i] = malloc(n);
            gb_do_not_optimize(p[i]);
        }
        for (int i = 0; i < 256; i++)
            free(p[lifo ? 255 - i : i]);
    }
}
static void bm_batch_lifo(gb_state_t *st) { batch(st, 1); }
static void bm_batch_fifo(gb_state_t *st) { batch(st, 0); }

static void bm_calloc(gb_state_t *st)
{
    size_t n = (size_t)gb_range(st, 0);
    while (gb_keep_running_batch(st, BATCH))
        for (int i = 0; i < BATCH; i++) {
            void *p = calloc(1, n);
            gb_do_not_optimize(p);
            free(p);
        }
}

/* a buffer grown by 16-byte appends up to the argument, then freed */
static void bm_realloc_grow(gb_state_t *st)
{
    size_t max = (size_t)gb_range(st, 0);
    while (gb_keep_running_batch(st, 1)) {
        char *p = NULL;
        for (size_t n = 16; n <= max; n += 16) {
            p = realloc(p, n);
            p[n - 1] = 1;
        }
        free(p);
    }
}

static void bm_posix_memalign(gb_state_t *st)
{
    size_t align = (size_t)gb_range(st, 0);
    while (gb_keep_running_batch(st, BATCH))
        for (int i = 0; i < BATCH; i++) {
            void *p;
            if (posix_memalign(&p, align, 100))
                gb_skip(st, "posix_memalign failed");
            gb_do_not_optimize(p);
            free(p);
        }
}

/* producer/consumer: thread 0 allocates into a ring, thread 1 frees (cross-thread frees) */
#define RING 1024
static void *_Atomic ring[RING];
static void bm_producer_consumer(gb_state_t *st)
{
    size_t n = (size_t)gb_range(st, 0);
    unsigned k = 0;
    int producer = gb_thread_index(st) == 0;
    while (gb_keep_running_batch(st, BATCH))
        for (int i = 0; i < BATCH; i++, k++) {
            if (producer) {
                void *p = malloc(n);
                void *old = atomic_exchange(&ring[k % RING], p);
                free(old); /* when the consumer lags, the producer frees (keeps it bounded) */
            } else {
                free(atomic_exchange(&ring[k % RING], NULL));
            }
        }
}

/* the page API: labyrinth_alloc_pages when preloaded, aligned_alloc of the same size otherwise */
typedef void *(*alloc_pages_t)(void *, unsigned, unsigned);
typedef void (*free_pages_t)(void *, void *, unsigned);
static void pages(gb_state_t *st, unsigned gfp)
{
    unsigned order = (unsigned)gb_range(st, 0);
    alloc_pages_t ap = (alloc_pages_t)dlsym(RTLD_DEFAULT, "labyrinth_alloc_pages");
    free_pages_t fp = (free_pages_t)dlsym(RTLD_DEFAULT, "labyrinth_free_pages");
    void *(*deflt)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "labyrinth_default");
    void *pool = deflt ? deflt() : NULL;
    size_t size = (size_t)4096 << order;
    gb_set_label(st, ap && pool ? "labyrinth page API" : "aligned_alloc baseline");
    while (gb_keep_running_batch(st, BATCH))
        for (int i = 0; i < BATCH; i++) {
            void *p;
            if (ap && pool) {
                p = ap(pool, order, gfp);
                if (!p) {
                    gb_skip(st, "ENOMEM");
                    return;
                }
                *(volatile char *)p = 1;
                fp(pool, p, order);
            } else {
                p = aligned_alloc(size, size);
                *(volatile char *)p = 1;
                free(p);
            }
        }
}
static void bm_pages_default(gb_state_t *st) { pages(st, 0); }
static void bm_pages_atomic(gb_state_t *st) { pages(st, 1 /* LAB_GFP_ATOMIC */); }

int main(int argc, char **argv)
{
    static const int64_t orders[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1};
    static const int64_t aligns[] = {16, 64, 4096, 65536, -1};
    static const int64_t grow[] = {4096, 65536, -1};
    static const int64_t pc[] = {64, 1024, -1};
    gb_register("malloc_free", bm_malloc_free, small_sizes, NULL, 0);
    gb_register("malloc_free_pages", bm_malloc_free, page_sizes, NULL, 0);
    gb_register("batch_lifo", bm_batch_lifo, small_sizes, NULL, 0);
    gb_register("batch_fifo", bm_batch_fifo, small_sizes, NULL, 0);
    gb_register("calloc", bm_calloc, small_sizes, NULL, 0);
    gb_register("realloc_grow", bm_realloc_grow, grow, NULL, 0);
    gb_register("posix_memalign", bm_posix_memalign, aligns, NULL, 0);
    gb_register("producer_consumer", bm_producer_consumer, pc, NULL, 2);
    gb_register("pages_default", bm_pages_default, orders, NULL, 0);
    gb_register("pages_atomic", bm_pages_atomic, orders, NULL, 0);
    return gb_main(argc, argv);
}
