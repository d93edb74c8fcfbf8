/* micro.c — allocator micro-benchmarks in C, run through Google Benchmark by gbench.h. One binary
 * for every allocator (LD_PRELOAD); the JSON context names the allocator that actually serves
 * malloc (found with dladdr, so a preload that silently failed is visible). The labyrinth page
 * API is looked up with dlsym; allocators without it get aligned_alloc of the same size, their
 * nearest equivalent, as the baseline. Figures are ns per operation (real time).
 * Run: micro [--benchmark_filter=RE] [--benchmark_format=json] [--benchmark_min_time=S] */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gbench.h"

#define BATCH 1000

/* ---- malloc + free ---- */

/* One pair per iteration with a window of 64 live blocks. The malloc after a free still gets the
 * block just freed under most allocators (measured: glibc, mimalloc, tcmalloc and Labyrinth on
 * 99.9-100% of calls): this is the hot LIFO case, with 64 blocks resident. */
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

/* 256 blocks allocated, then freed in the order they came (FIFO) or reversed (LIFO); one
 * iteration = one malloc and one free. */
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

/* calloc + a read of the last byte + free: page-sized callocs show whether the allocator knows
 * which pages are already zero. */
static void bm_calloc(gb_state_t *st)
{
    size_t n = (size_t)gb_range(st, 0);
    while (gb_keep_running_batch(st, BATCH))
        for (int i = 0; i < BATCH; i++) {
            char *p = calloc(1, n);
            gb_do_not_optimize_u64((uint64_t)p[n - 1]);
            free(p);
        }
}

/* A buffer grown from 16 bytes to the argument in steps of max/1024 (at least 16 bytes), then
 * freed; one iteration = one realloc. */
static void bm_realloc_grow(gb_state_t *st)
{
    size_t max = (size_t)gb_range(st, 0);
    size_t step = max / 1024 > 16 ? max / 1024 : 16;
    int64_t steps = (int64_t)((max - 16) / step + 1);
    while (gb_keep_running_batch(st, steps)) {
        char *p = NULL;
        for (size_t n = 16; n <= max; n += step) {
            p = realloc(p, n);
            if (!p) {
                gb_skip(st, "realloc returned NULL");
                return;
            }
            p[n - 1] = 1;
        }
        free(p);
    }
}

static void bm_posix_memalign(gb_state_t *st)
{
    size_t align = (size_t)gb_range(st, 0), size = (size_t)gb_range(st, 1);
    while (gb_keep_running_batch(st, BATCH))
        for (int i = 0; i < BATCH; i++) {
            void *p;
            if (posix_memalign(&p, align, size)) {
                gb_skip(st, "posix_memalign failed");
                return;
            }
            gb_do_not_optimize(p);
            free(p);
        }
}

/* ---- cross-thread frees ---- */

/* Thread 2k allocates, thread 2k+1 frees, through a single-producer ring per pair; both run the
 * same number of iterations, so each run ends with its ring empty. Each thread's iteration is
 * its half of one block moved, and Google Benchmark divides the wall time by both threads'
 * iterations: the time per block moved is twice the figure it reports. */
#define PC_RING 4096
#define PC_PAIRS 4
static struct {
    _Alignas(64) _Atomic unsigned long head;
    _Alignas(64) _Atomic unsigned long tail;
    _Alignas(64) void *slot[PC_RING];
} pc_ring[PC_PAIRS];

static void pc_wait(unsigned *spins)
{
    if (++*spins > 128) /* more threads than cores: let the other side run */
        sched_yield(), *spins = 0;
}

static void bm_producer_consumer(gb_state_t *st)
{
    size_t n = (size_t)gb_range(st, 0);
    int me = gb_thread_index(st);
    if (gb_thread_count(st) % 2 || me / 2 >= PC_PAIRS) {
        gb_skip(st, "needs an even number of threads, at most 8");
        return;
    }
    __typeof__(&pc_ring[0]) r = &pc_ring[me / 2];
    while (gb_keep_running_batch(st, BATCH)) {
        for (int i = 0; i < BATCH; i++) {
            unsigned spins = 0;
            if (me % 2 == 0) {
                void *p = malloc(n);
                *(volatile char *)p = 1;
                unsigned long h = atomic_load_explicit(&r->head, memory_order_relaxed);
                while (h - atomic_load_explicit(&r->tail, memory_order_acquire) >= PC_RING)
                    pc_wait(&spins);
                r->slot[h % PC_RING] = p;
                /* release: the slot is written before the consumer can see the new head */
                atomic_store_explicit(&r->head, h + 1, memory_order_release);
            } else {
                unsigned long t = atomic_load_explicit(&r->tail, memory_order_relaxed);
                while (atomic_load_explicit(&r->head, memory_order_acquire) == t)
                    pc_wait(&spins);
                free(r->slot[t % PC_RING]);
                /* release: the slot is read before the producer may overwrite it */
                atomic_store_explicit(&r->tail, t + 1, memory_order_release);
            }
        }
    }
}

/* ---- the labyrinth page API ---- */

typedef void *(*pages_alloc_fn)(void *, unsigned, unsigned);
typedef void (*pages_free_fn)(void *, void *, unsigned);
static pages_alloc_fn lab_alloc_pages;
static pages_free_fn lab_free_pages;
static void *lab_pool;

static void pages_resolve(void)
{
    void *(*deflt)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "labyrinth_default");
    lab_alloc_pages = (pages_alloc_fn)dlsym(RTLD_DEFAULT, "labyrinth_alloc_pages");
    lab_free_pages = (pages_free_fn)dlsym(RTLD_DEFAULT, "labyrinth_free_pages");
    lab_pool = deflt ? deflt() : NULL;
    if (!lab_alloc_pages || !lab_free_pages || !lab_pool)
        lab_alloc_pages = NULL, lab_free_pages = NULL, lab_pool = NULL;
}

/* An allocation of 2^order pages, its first byte written, and its free. ATOMIC may find nothing
 * ready (it never maps memory); such misses fall back to one DEFAULT allocation, as a driver
 * refills from process context, and are counted (atomic_miss, per iteration). */
static void pages(gb_state_t *st, unsigned gfp)
{
    unsigned order = (unsigned)gb_range(st, 0);
    size_t size = (size_t)4096 << order;
    double misses = 0;
    if (!lab_alloc_pages) {
        gb_set_label(st, "aligned_alloc baseline");
        while (gb_keep_running_batch(st, BATCH))
            for (int i = 0; i < BATCH; i++) {
                char *p = aligned_alloc(size, size);
                if (!p) {
                    gb_skip(st, "aligned_alloc returned NULL");
                    return;
                }
                *(volatile char *)p = 1;
                free(p);
            }
        return;
    }
    gb_set_label(st, "labyrinth page API");
    lab_free_pages(lab_pool, lab_alloc_pages(lab_pool, order, 0), order); /* warm: pages exist */
    while (gb_keep_running_batch(st, BATCH))
        for (int i = 0; i < BATCH; i++) {
            char *p = lab_alloc_pages(lab_pool, order, gfp);
            if (!p) {
                misses++;
                p = lab_alloc_pages(lab_pool, order, 0);
                if (!p) {
                    gb_skip(st, "labyrinth_alloc_pages(DEFAULT) returned NULL");
                    return;
                }
            }
            *(volatile char *)p = 1;
            lab_free_pages(lab_pool, p, order);
        }
    gb_counter(st, "atomic_miss", misses, GB_COUNTER_PER_ITER);
}
static void bm_pages_default(gb_state_t *st) { pages(st, 0); }
static void bm_pages_atomic(gb_state_t *st) { pages(st, 1 /* LAB_GFP_ATOMIC */); }

/* ---- which allocator is this ---- */

static void tag_allocator(void)
{
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    const char *path = m && dladdr(m, &info) && info.dli_fname ? info.dli_fname : "?";
    const char *name = getenv("LAB_BENCH_ALLOCATOR");
    if (!name || !*name)
        name = strstr(path, "labyrinth") ? "labyrinth"
             : strstr(path, "jemalloc")  ? "jemalloc"
             : strstr(path, "mimalloc")  ? "mimalloc"
             : strstr(path, "tcmalloc")  ? "tcmalloc"
             : strstr(path, "libc.so")   ? "glibc"
                                         : "unknown";
    gb_context("allocator", name);
    gb_context("malloc_from", path);
    const char *(*ver)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "labyrinth_version");
    if (ver)
        gb_context("labyrinth_version", ver());
    gb_context("page_api", lab_alloc_pages ? "labyrinth" : "aligned_alloc");
}

int main(int argc, char **argv)
{
    pages_resolve();
    tag_allocator();

    /* 16-byte steps to 128, then four sizes per doubling (every class boundary of Labyrinth's
     * table up to 1 KiB, every other one to 8 KiB, every one above) */
    gb_bench_t *b = gb_register("malloc_free", bm_malloc_free);
    for (int64_t n = 16; n <= 128; n += 16)
        gb_arg(b, n);
    for (int64_t base = 128; base < 32768; base *= 2)
        for (int q = 1; q <= 4; q++)
            gb_arg(b, base + base / 4 * q);
    b = gb_register("malloc_free_mt", bm_malloc_free);
    gb_arg(b, 64), gb_arg(b, 1024), gb_arg(b, 16384);
    gb_bench_threads(b, 2);
    b = gb_register("malloc_free_pages", bm_malloc_free);
    for (int64_t n = 4096; n <= (1 << 20); n *= 2)
        gb_arg(b, n);
    /* page-sized blocks of a page count that is not a power of two (runs, not orders) */
    b = gb_register("malloc_free_runs", bm_malloc_free);
    gb_arg(b, 36 << 10), gb_arg(b, 100 << 10), gb_arg(b, 200000), gb_arg(b, 600 << 10);

    gb_bench_t *lifo = gb_register("batch_lifo", bm_batch_lifo), *fifo = gb_register("batch_fifo", bm_batch_fifo);
    for (int64_t n = 16; n <= 32768; n *= 4)
        gb_arg(lifo, n), gb_arg(fifo, n);

    b = gb_register("calloc", bm_calloc);
    gb_arg(b, 16), gb_arg(b, 256), gb_arg(b, 4096), gb_arg(b, 65536), gb_arg(b, 1 << 20);
    b = gb_register("realloc_grow", bm_realloc_grow);
    gb_arg(b, 4096), gb_arg(b, 65536), gb_arg(b, 1 << 20), gb_arg(b, 16 << 20);
    b = gb_register("posix_memalign", bm_posix_memalign);
    static const int64_t aligns[] = {16, 64, 4096, 65536};
    for (int i = 0; i < 4; i++)
        gb_args2(b, aligns[i], 100), gb_args2(b, aligns[i], 8192);

    b = gb_register("producer_consumer", bm_producer_consumer);
    gb_arg(b, 64), gb_arg(b, 1024), gb_arg(b, 4096);
    gb_bench_threads(b, 2);

    gb_bench_t *pd = gb_register("pages_default", bm_pages_default), *pa = gb_register("pages_atomic", bm_pages_atomic);
    for (int64_t order = 0; order <= 9; order++)
        gb_arg(pd, order), gb_arg(pa, order);
    return gb_main(argc, argv);
}
