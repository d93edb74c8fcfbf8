/* xmalloc.c — producer/consumer after xmalloc-test: half the threads only allocate (blocks of
 * 16 .. 512 B in batches of 64), the other half only free them. Every block is freed by a thread
 * that never allocates, so the allocator's cross-thread free path and its ability to give the
 * memory back to the producers is all that is measured. The queue is bounded (producers wait) so
 * memory stays flat and the run measures the allocator, not how far producers run ahead.
 * N = blocks in all. */
#include "wl.h"

#define XM_BATCH 64
#define XM_QUEUE 32 /* batches waiting at most */

struct xm_batch {
    struct xm_batch *next;
    void *blk[XM_BATCH];
};

static struct {
    pthread_mutex_t m;
    pthread_cond_t not_full, not_empty;
    struct xm_batch *head;
    int queued, producers_left;
} xm = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0};

static long xm_batches_per_producer;

struct xm_arg {
    int id, producer;
    long blocks; /* allocated (producer) or freed (consumer) */
};

static void *xm_worker(void *p)
{
    struct xm_arg *a = p;
    uint64_t s = wl_seed((uint64_t)a->id + 100);
    if (a->producer) {
        for (long i = 0; i < xm_batches_per_producer; i++) {
            struct xm_batch *b = malloc(sizeof *b);
            if (!b)
                wl_die("xmalloc: malloc of a batch");
            for (int k = 0; k < XM_BATCH; k++)
                b->blk[k] = wl_block_new(16 + (size_t)(wl_rand(&s) % 497));
            a->blocks += XM_BATCH;
            pthread_mutex_lock(&xm.m);
            while (xm.queued >= XM_QUEUE)
                pthread_cond_wait(&xm.not_full, &xm.m);
            b->next = xm.head;
            xm.head = b;
            xm.queued++;
            pthread_cond_signal(&xm.not_empty);
            pthread_mutex_unlock(&xm.m);
        }
        pthread_mutex_lock(&xm.m);
        if (--xm.producers_left == 0)
            pthread_cond_broadcast(&xm.not_empty);
        pthread_mutex_unlock(&xm.m);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&xm.m);
        while (!xm.head && xm.producers_left > 0)
            pthread_cond_wait(&xm.not_empty, &xm.m);
        struct xm_batch *b = xm.head;
        if (!b) {
            pthread_mutex_unlock(&xm.m);
            return NULL;
        }
        xm.head = b->next;
        xm.queued--;
        pthread_cond_signal(&xm.not_full);
        pthread_mutex_unlock(&xm.m);
        for (int k = 0; k < XM_BATCH; k++)
            wl_block_free(b->blk[k]);
        a->blocks += XM_BATCH;
        free(b);
    }
}

int wl_xmalloc(int threads, long n)
{
    if (threads < 2)
        threads = 2; /* at least one producer and one consumer */
    int producers = threads / 2;
    xm.producers_left = producers;
    xm_batches_per_producer = n / XM_BATCH / producers + 1;
    struct xm_arg *args = calloc((size_t)threads, sizeof *args);
    for (int i = 0; i < threads; i++)
        args[i].id = i, args[i].producer = i < producers;
    double t0 = wl_now();
    wl_run_threads(threads, xm_worker, args, sizeof *args);
    double t = wl_now() - t0;
    long made = 0, freed = 0;
    for (int i = 0; i < threads; i++)
        *(args[i].producer ? &made : &freed) += args[i].blocks;
    if (made != freed || made != xm_batches_per_producer * XM_BATCH * producers || xm.head)
        wl_die("xmalloc: %ld allocated, %ld freed", made, freed);
    free(args);
    wl_report("xmalloc", threads, n, t, NULL);
    return 0;
}
