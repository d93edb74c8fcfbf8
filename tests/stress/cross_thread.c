/* cross_thread.c — many threads allocate blocks of mixed sizes (8 B .. 256 KiB, a few of 4 MiB),
 * keep some, and hand the rest to other threads, which check and free them: the remote-free path
 * of DESIGN.md. Every block carries a canary derived from its address and size, checked before it
 * is freed, so a block given out twice or overlapping another shows up as damage.
 * Usage: stress_cross_thread [threads (8..32)] [seconds]. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "lab_check.h"

enum { MAX_THREADS = 32, MAILBOX = 512, KEEP = 128 };

struct block {
    void *p;
    size_t size;
};

/* A mutex-protected mailbox per thread: the test's own synchronisation must be beyond doubt so
 * that any damage is the allocator's. */
struct mailbox {
    pthread_mutex_t lock;
    size_t count;
    struct block items[MAILBOX];
} __attribute__((aligned(64)));

static struct mailbox boxes[MAX_THREADS];
static int nthreads = 16;
static double seconds = 3.0;
static atomic_long total_ops, remote_frees, huge_allocs;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t pick_size(uint64_t *seed)
{
    uint64_t r = lab_rand(seed);
    unsigned kind = (unsigned)(r % 1000);
    if (kind < 1)
        return (4u << 20) + (size_t)(r >> 40) % 4096; /* a few huge ones */
    if (kind < 20)
        return 32768 + (size_t)(r >> 32) % (256 * 1024 - 32768);
    if (kind < 150)
        return 1024 + (size_t)(r >> 32) % 31744;
    return 8 + (size_t)(r >> 32) % 1016;
}

static void check_and_free(struct block b, const char *how)
{
    size_t bad = lab_canary_check(b.p, b.size);
    CHECK(bad == SIZE_MAX, "%s block %p size %zu damaged at byte %zu", how, b.p, b.size, bad);
    free(b.p);
}

static void drain(int self)
{
    struct block local[MAILBOX];
    pthread_mutex_lock(&boxes[self].lock);
    size_t n = boxes[self].count;
    memcpy(local, boxes[self].items, n * sizeof local[0]);
    boxes[self].count = 0;
    pthread_mutex_unlock(&boxes[self].lock);
    for (size_t i = 0; i < n; i++)
        check_and_free(local[i], "received");
    atomic_fetch_add(&remote_frees, (long)n);
}

static int send_to(int to, struct block b)
{
    pthread_mutex_lock(&boxes[to].lock);
    int ok = boxes[to].count < MAILBOX;
    if (ok)
        boxes[to].items[boxes[to].count++] = b;
    pthread_mutex_unlock(&boxes[to].lock);
    return ok;
}

static void *worker(void *arg)
{
    int self = (int)(uintptr_t)arg;
    uint64_t seed = 0xC0FFEEull * (uint64_t)(self + 1);
    struct block keep[KEEP] = {{0}};
    double end = now() + seconds;
    long ops = 0;
    while ((ops & 255) != 0 || now() < end) {
        struct block b = {NULL, pick_size(&seed)};
        b.p = malloc(b.size);
        CHECK(b.p != NULL, "malloc(%zu) failed", b.size);
        if (!b.p) continue;
        CHECK(malloc_usable_size(b.p) >= b.size, "usable %zu < %zu", malloc_usable_size(b.p), b.size);
        if (b.size >= (4u << 20))
            atomic_fetch_add(&huge_allocs, 1);
        lab_canary_fill(b.p, b.size);
        ops++;
        uint64_t r = lab_rand(&seed);
        if (r % 2 == 0) {
            /* Hand it to another thread, which frees it: a remote free. */
            int to = (int)((r >> 8) % (uint64_t)nthreads);
            if (to == self)
                to = (to + 1) % nthreads;
            if (send_to(to, b))
                continue;
        }
        unsigned slot = (unsigned)((r >> 16) % KEEP);
        if (keep[slot].p)
            check_and_free(keep[slot], "kept");
        keep[slot] = b;
        if ((ops & 31) == 0)
            drain(self);
    }
    for (unsigned i = 0; i < KEEP; i++)
        if (keep[i].p)
            check_and_free(keep[i], "kept");
    drain(self);
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) nthreads = atoi(argv[1]);
    if (argc > 2) seconds = atof(argv[2]);
    if (nthreads < 2) nthreads = 2;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    SAY("%d threads, %.1f s: mixed sizes 8 B .. 256 KiB (+4 MiB), half freed by another thread, "
        "canary checked before every free", nthreads, seconds);
    for (int i = 0; i < nthreads; i++)
        pthread_mutex_init(&boxes[i].lock, NULL);
    pthread_t t[MAX_THREADS];
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
            CHECK(0, "pthread_create %d failed", i);
            return lab_finish("cross_thread");
        }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    /* Blocks sent to a thread after its final drain are still waiting: check and free them. */
    for (int i = 0; i < nthreads; i++)
        drain(i);
    SAY("%ld allocations, %ld freed by another thread, %ld of 4 MiB", atomic_load(&total_ops),
        atomic_load(&remote_frees), atomic_load(&huge_allocs));
    CHECK(atomic_load(&remote_frees) > 0, "no cross-thread frees happened");
    return lab_finish("cross_thread");
}
