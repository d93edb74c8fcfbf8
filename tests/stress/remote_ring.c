/* remote_ring.c — threads in a ring: each allocates batches of mixed sizes, frees half itself and
 * hands the other half to the next thread, which frees them. Spans fill up on the owner while
 * remote frees pour in, so the owner's "mark full" races the first remote free's notice — the
 * window that once let a remote free relink a span the owner was still taking off its list.
 * Checks a canary in every block before it is freed. Args: threads rounds. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 256

typedef struct node {
    struct node *next;
    void *blk[BATCH];
    size_t len[BATCH];
} node_t;

typedef struct {
    pthread_mutex_t m;
    node_t *head;
} box_t;

static box_t *boxes;
static int nthreads;
static long rounds;
static pthread_barrier_t bar;
static long errors;

static size_t pick(unsigned *seed)
{
    unsigned x = (unsigned)rand_r(seed);
    return x % 100 < 80 ? 16 + x % 256 : x % 100 < 97 ? 256 + x % 2048 : 4096 + x % 30000;
}

static uint8_t tag(const void *p, size_t n) { return (uint8_t)(((uintptr_t)p >> 4) ^ n ^ 0x5a); }

static void *fill(size_t n)
{
    uint8_t *p = malloc(n);
    if (!p) {
        fprintf(stderr, "malloc(%zu) failed\n", n);
        exit(1);
    }
    p[0] = tag(p, n);
    p[n - 1] = tag(p, n);
    return p;
}

static void check_free(void *q, size_t n)
{
    uint8_t *p = q;
    if (p[0] != tag(p, n) || p[n - 1] != tag(p, n))
        __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
    free(p);
}

static void drain(int id)
{
    pthread_mutex_lock(&boxes[id].m);
    node_t *n = boxes[id].head;
    boxes[id].head = NULL;
    pthread_mutex_unlock(&boxes[id].m);
    while (n) {
        node_t *next = n->next;
        for (int i = 0; i < BATCH; i++)
            check_free(n->blk[i], n->len[i]);
        free(n);
        n = next;
    }
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned seed = (unsigned)id * 2654435761u + 1;
    void *mine[BATCH];
    size_t mlen[BATCH];
    for (long r = 0; r < rounds; r++) {
        node_t *g = malloc(sizeof *g);
        for (int i = 0; i < BATCH; i++) {
            mlen[i] = pick(&seed);
            mine[i] = fill(mlen[i]);
            g->len[i] = pick(&seed);
            g->blk[i] = fill(g->len[i]);
        }
        for (int i = 0; i < BATCH; i++)
            check_free(mine[i], mlen[i]);
        box_t *to = &boxes[(id + 1) % nthreads];
        pthread_mutex_lock(&to->m);
        g->next = to->head;
        to->head = g;
        pthread_mutex_unlock(&to->m);
        drain(id);
    }
    pthread_barrier_wait(&bar);
    drain(id);
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atoi(argv[1]) : 8;
    rounds = argc > 2 ? atol(argv[2]) : 500;
    boxes = calloc((size_t)nthreads, sizeof *boxes);
    for (int i = 0; i < nthreads; i++)
        pthread_mutex_init(&boxes[i].m, NULL);
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    pthread_t t[256];
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < nthreads; i++)
            pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
        for (int i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
    }
    printf("remote_ring: %d threads x %ld rounds x 3, %ld canary errors\n", nthreads, rounds, errors);
    return errors ? 1 : 0;
}
