/* ring.c — threads in a ring: each round a thread allocates 256 blocks it frees itself and 256
 * it hands to the next thread, and frees the batches the previous thread handed it. Sizes are
 * mixed (80% under 272 B, 17% up to 2.3 KiB, 3% up to 34 KiB). Unlike xmalloc every thread both
 * allocates and frees remotely, so remote frees land on heaps that are busy allocating. At most
 * 4 batches wait per thread, so the ring measures the allocator and not how far a thread can run
 * ahead of its consumer. N = rounds in all.
 * WL_RING_FENCE=1: an lfence after each handed-over block's free, so that the CPU cannot start on
 * the next blocks' loads (their cache misses) before the free has finished: how much of an
 * allocator's time here is its free keeping that overlap from happening (a mispredicted branch
 * throws the loads issued past it away), shown by comparing runs with and without it. */
#include <sched.h>
#include <stdatomic.h>

#include "wl.h"

#define RING_BATCH 256
#define RING_QUEUE 4

struct ring_node {
    struct ring_node *next;
    void *blk[RING_BATCH];
};
struct ring_box {
    pthread_mutex_t m;
    struct ring_node *head;
    int queued;
};

static struct ring_box *ring_boxes;
static int ring_threads;
static long ring_rounds;
static atomic_int ring_finished; /* threads done producing; each keeps consuming until all are */
static atomic_long ring_freed;
static int ring_fence; /* WL_RING_FENCE */

static size_t ring_size(uint64_t *s)
{
    uint64_t x = wl_rand(s);
    unsigned pct = (unsigned)(x % 100);
    x >>= 8;
    return pct < 80 ? 16 + x % 256 : pct < 97 ? 256 + x % 2048 : 4096 + x % 30000;
}

static void ring_drain(int id)
{
    struct ring_box *b = &ring_boxes[id];
    pthread_mutex_lock(&b->m);
    struct ring_node *n = b->head;
    b->head = NULL;
    b->queued = 0;
    pthread_mutex_unlock(&b->m);
    long freed = 0;
    while (n) {
        struct ring_node *next = n->next;
        for (int i = 0; i < RING_BATCH; i++) {
            wl_block_free(n->blk[i]);
            if (ring_fence)
                wl_serialize();
        }
        freed += RING_BATCH;
        free(n);
        n = next;
    }
    atomic_fetch_add_explicit(&ring_freed, freed, memory_order_relaxed);
}

static void *ring_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t s = wl_seed((uint64_t)id + 600);
    void *mine[RING_BATCH];
    for (long r = 0; r < ring_rounds; r++) {
        struct ring_node *g = malloc(sizeof *g);
        if (!g)
            wl_die("ring: malloc of a batch");
        for (int i = 0; i < RING_BATCH; i++) {
            mine[i] = wl_block_new(ring_size(&s));
            g->blk[i] = wl_block_new(ring_size(&s));
        }
        for (int i = 0; i < RING_BATCH; i++)
            wl_block_free(mine[i]);
        struct ring_box *to = &ring_boxes[(id + 1) % ring_threads];
        for (;;) {
            pthread_mutex_lock(&to->m);
            if (to->queued < RING_QUEUE) {
                g->next = to->head;
                to->head = g;
                to->queued++;
                pthread_mutex_unlock(&to->m);
                break;
            }
            pthread_mutex_unlock(&to->m);
            ring_drain(id); /* keep our own consumer side moving while we wait */
            sched_yield();
        }
        ring_drain(id);
    }
    atomic_fetch_add(&ring_finished, 1);
    while (atomic_load(&ring_finished) < ring_threads) {
        ring_drain(id);
        sched_yield();
    }
    ring_drain(id);
    return NULL;
}

int wl_ring(int threads, long n)
{
    ring_threads = threads;
    const char *fence = getenv("WL_RING_FENCE");
    ring_fence = fence && strcmp(fence, "1") == 0;
    ring_rounds = n / threads > 0 ? n / threads : 1;
    ring_boxes = calloc((size_t)threads, sizeof *ring_boxes);
    for (int i = 0; i < threads; i++)
        pthread_mutex_init(&ring_boxes[i].m, NULL);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    double t0 = wl_now();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, ring_worker, (void *)(intptr_t)i))
            wl_die("ring: pthread_create");
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double el = wl_now() - t0;
    for (int i = 0; i < threads; i++)
        ring_drain(i);
    if (atomic_load(&ring_freed) != ring_rounds * threads * RING_BATCH)
        wl_die("ring: %ld handed-over blocks freed of %ld", atomic_load(&ring_freed),
               ring_rounds * threads * RING_BATCH);
    free(t);
    free(ring_boxes);
    wl_report("ring", threads, n, el, ring_fence ? "fence=1" : NULL);
    return 0;
}
