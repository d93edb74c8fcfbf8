/* soak.c — the steady workload of scripts/soak.sh (not a ctest test): `threads` threads keep a
 * working set of the same statistical size for `seconds` seconds. Each operation checks a block's
 * canary and frees it, or hands it to the next thread (a cross-thread free), then allocates a new
 * one of a heavy-tailed size (mostly small, some page-sized, a few above 1 MiB), or grows or
 * shrinks one with realloc; every so often a thread exits and a fresh one takes its place (its
 * blocks are inherited, so heaps are abandoned and adopted). Nothing accumulates: the live set is
 * bounded, so a flat RSS is the allocator's to keep. Exit 0 when every check passed.
 * With SOAK_MMAP=1 in the environment, blocks of a page or more are anonymous mappings instead:
 * mmap, mremap (grow, shrink, move) in place of realloc, and munmap — in two halves, the second
 * first, for every other one — in place of free, also from the thread they were handed to (the
 * soak of pooled mmap, LABYRINTH_MMAP=1).
 * Usage: stress_soak [seconds] [threads]. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lab_check.h"

enum { MAX_THREADS = 64, SLOTS = 4096, HANDOFF = 256, OPS_PER_LIFE = 400000 };

struct block {
    void *p;
    size_t n;
    bool mapped; /* an mmap of map_len(n) bytes (SOAK_MMAP) */
};

struct lane {
    struct block slot[SLOTS];     /* the working set; survives the thread that filled it */
    pthread_mutex_t lock;         /* guards inbox */
    struct block inbox[HANDOFF];  /* blocks handed over by the previous lane's thread */
    int inbox_count;
    uint64_t seed;
};

static struct lane lanes[MAX_THREADS];
static int nthreads = 4;
static volatile int stop;
static atomic_long total_ops, handed, lives, mapped_ops;
static bool use_mmap; /* SOAK_MMAP=1 */

static size_t map_len(size_t n) { return (n + 4095) & ~(size_t)4095; }

static size_t pick_size(uint64_t r)
{
    unsigned k = (unsigned)(r % 1000);
    r >>= 10;
    if (k < 700)
        return 16 + r % 240;            /* 70 %: small */
    if (k < 900)
        return 256 + r % 3840;          /* 20 %: up to 4 KiB */
    if (k < 990)
        return 4096 + r % 61440;        /*  9 %: up to 64 KiB (spans and page-sized runs) */
    if (k < 998)
        return 65536 + r % 983040;      /* 0.8 %: up to 1 MiB */
    return 1048577 + r % 3145728;       /* 0.2 %: huge mappings */
}

/* A new block of n bytes in *b, filled with its canary. */
static void block_new(struct block *b, size_t n)
{
    b->n = n;
    b->mapped = use_mmap && n >= 4096;
    if (b->mapped) {
        b->p = mmap(NULL, map_len(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(b->p != MAP_FAILED, "mmap(%zu) failed", map_len(n));
        if (b->p == MAP_FAILED)
            b->p = NULL;
        atomic_fetch_add_explicit(&mapped_ops, 1, memory_order_relaxed);
    } else {
        b->p = malloc(n);
        CHECK(b->p != NULL, "malloc(%zu) failed", n);
    }
    if (b->p)
        lab_canary_fill(b->p, n);
}

/* Resize b to n bytes: realloc, or mremap for a mapping (which stays one, at least a page). */
static void block_resize(struct block *b, size_t n)
{
    CHECK(lab_canary_check(b->p, b->n) == SIZE_MAX, "block of %zu damaged before resizing", b->n);
    void *q;
    if (b->mapped) {
        n = n < 4096 ? 4096 : n;
        q = mremap(b->p, map_len(b->n), map_len(n), MREMAP_MAYMOVE);
        CHECK(q != MAP_FAILED, "mremap(%zu -> %zu) failed", map_len(b->n), map_len(n));
        q = q == MAP_FAILED ? NULL : q;
        atomic_fetch_add_explicit(&mapped_ops, 1, memory_order_relaxed);
    } else {
        q = realloc(b->p, n);
        CHECK(q != NULL, "realloc(%zu) failed", n);
    }
    if (q) {
        b->p = q;
        b->n = n;
        lab_canary_fill(q, n); /* the canary depends on the address */
    }
}

static void check_free(struct block b)
{
    if (!b.p)
        return;
    size_t bad = lab_canary_check(b.p, b.n);
    CHECK(bad == SIZE_MAX, "block %p of %zu damaged at %zu", b.p, b.n, bad);
    if (!b.mapped) {
        free(b.p);
        return;
    }
    size_t len = map_len(b.n), half = len / 2 & ~(size_t)4095;
    if (half && ((uintptr_t)b.p >> 12) % 2) {
        CHECK(munmap((char *)b.p + half, len - half) == 0, "munmap of a mapping's second half failed");
        len = half;
    }
    CHECK(munmap(b.p, len) == 0, "munmap(%zu) failed", len);
}

static void *life(void *arg)
{
    struct lane *me = &lanes[(uintptr_t)arg], *next = &lanes[((uintptr_t)arg + 1) % (uintptr_t)nthreads];
    long ops = 0;
    while (!stop && ops < OPS_PER_LIFE) {
        /* blocks handed over by the previous lane: checked and freed here (remote frees) */
        if (ops % 64 == 0) {
            struct block got[HANDOFF];
            int n = 0;
            pthread_mutex_lock(&me->lock);
            n = me->inbox_count;
            memcpy(got, me->inbox, (size_t)n * sizeof got[0]);
            me->inbox_count = 0;
            pthread_mutex_unlock(&me->lock);
            for (int i = 0; i < n; i++)
                check_free(got[i]);
        }
        uint64_t r = lab_rand(&me->seed);
        struct block *b = &me->slot[r % SLOTS];
        r >>= 12;
        if (b->p && r % 16 == 0) {
            block_resize(b, pick_size(lab_rand(&me->seed)));
        } else {
            if (b->p && r % 4 == 1 && nthreads > 1) {
                pthread_mutex_lock(&next->lock);
                int room = next->inbox_count < HANDOFF;
                if (room)
                    next->inbox[next->inbox_count++] = *b;
                pthread_mutex_unlock(&next->lock);
                if (room) {
                    atomic_fetch_add_explicit(&handed, 1, memory_order_relaxed);
                    b->p = NULL;
                }
            }
            check_free(*b);
            block_new(b, pick_size(lab_rand(&me->seed)));
        }
        ops++;
    }
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

static void *lane_loop(void *arg)
{
    /* one lane: a thread per life, each inheriting the previous one's blocks */
    while (!stop) {
        pthread_t t;
        if (pthread_create(&t, NULL, life, arg) != 0) {
            CHECK(0, "pthread_create");
            return NULL;
        }
        pthread_join(t, NULL);
        atomic_fetch_add(&lives, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 60;
    nthreads = argc > 2 ? atoi(argv[2]) : 4;
    const char *m = getenv("SOAK_MMAP");
    use_mmap = m && *m == '1';
    if (seconds < 1 || nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "usage: %s [seconds] [threads 1..%d]\n", argv[0], MAX_THREADS);
        return 2;
    }
    SAY("soak: %d threads, %d s, working set %d blocks per thread (heavy-tailed sizes, realloc, "
        "cross-thread frees, a new thread every %d operations per lane); pid %d", nthreads, seconds,
        SLOTS, OPS_PER_LIFE, (int)getpid());
    pthread_t t[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_init(&lanes[i].lock, NULL);
        lanes[i].seed = 0x5eed0000u + (uint64_t)i * 7919;
    }
    for (uintptr_t i = 0; i < (uintptr_t)nthreads; i++)
        if (pthread_create(&t[i], NULL, lane_loop, (void *)i) != 0) {
            CHECK(0, "pthread_create");
            return lab_finish("soak");
        }
    struct timespec d = {seconds, 0};
    while (nanosleep(&d, &d) != 0)
        ;
    stop = 1;
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < nthreads; i++) {
        for (int k = 0; k < SLOTS; k++)
            check_free(lanes[i].slot[k]);
        for (int k = 0; k < lanes[i].inbox_count; k++)
            check_free(lanes[i].inbox[k]);
    }
    SAY("soak: %ld operations (%.0f/s), %ld blocks freed by another thread, %ld thread lives, %ld "
        "mmap/mremap calls", atomic_load(&total_ops), (double)atomic_load(&total_ops) / seconds,
        atomic_load(&handed), atomic_load(&lives), atomic_load(&mapped_ops));
    return lab_finish("soak");
}
