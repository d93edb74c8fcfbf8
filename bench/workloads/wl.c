/* wl.c — whole-program allocator workloads, one binary, run under each allocator by LD_PRELOAD.
 * Each mode checks its own result (exit 1 on a wrong one) and prints one line `elapsed_s=<t>`.
 *   wl larson T N     server simulation: T threads replace random slots of a shared table
 *   wl ring T N       producer/consumer ring: half of each batch is freed by the next thread
 *   wl churn N        heavy-tailed size churn in one thread (alloc-test style)
 *   wl large N        64 KiB .. 32 MiB blocks and realloc growth
 *   wl strbuild N     a string builder that lives on realloc
 *   wl packets N      2 threads: one allocates a page per packet, one frees; the labyrinth page
 *                     API with LAB_GFP_ATOMIC when the preloaded library has it, else malloc(4096)
 * The patterns follow classic allocator benchmarks; the code is written here. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void die(const char *m)
{
    fprintf(stderr, "wl: %s\n", m);
    exit(1);
}

static uint8_t tagof(const void *p, size_t n) { return (uint8_t)(((uintptr_t)p >> 4) ^ n ^ 0xa5); }

static void *xalloc(size_t n)
{
    uint8_t *p = malloc(n);
    if (!p)
        die("malloc failed");
    p[0] = p[n - 1] = tagof(p, n);
    return p;
}

static void xfree(void *q, size_t n)
{
    uint8_t *p = q;
    if (p[0] != tagof(p, n) || p[n - 1] != tagof(p, n))
        die("corrupted block");
    free(p);
}

/* ---- larson: a shared table of slots, each thread replaces random ones ---- */
#define LSLOTS 8192
static void *lslot[LSLOTS];
static size_t llen[LSLOTS];
static pthread_mutex_t llock[64];
static long lrounds;

static void *larson_worker(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    for (long i = 0; i < lrounds; i++) {
        uint64_t r = rng(&s);
        size_t n = 16 + r % 1000;
        void *p = xalloc(n);
        unsigned k = (unsigned)(r >> 20) % LSLOTS;
        pthread_mutex_lock(&llock[k % 64]);
        void *old = lslot[k];
        size_t on = llen[k];
        lslot[k] = p;
        llen[k] = n;
        pthread_mutex_unlock(&llock[k % 64]);
        if (old)
            xfree(old, on);
    }
    return NULL;
}

static void run_larson(int t, long n)
{
    for (int i = 0; i < 64; i++)
        pthread_mutex_init(&llock[i], NULL);
    lrounds = n / t;
    pthread_t th[256];
    for (int i = 0; i < t; i++)
        pthread_create(&th[i], NULL, larson_worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < t; i++)
        pthread_join(th[i], NULL);
    for (int k = 0; k < LSLOTS; k++)
        if (lslot[k])
            xfree(lslot[k], llen[k]);
}

/* ---- ring: batches handed to the next thread ---- */
#define RBATCH 256
typedef struct rnode {
    struct rnode *next;
    void *blk[RBATCH];
    size_t len[RBATCH];
} rnode_t;
typedef struct {
    pthread_mutex_t m;
    rnode_t *head;
    int queued;          /* batches waiting: at most RQUEUE, so the ring measures the allocator
                            and not how far a producer can run ahead of its consumer */
} rbox_t;
#define RQUEUE 4
static rbox_t *rboxes;
static int rthreads;
static long rrounds;
static atomic_int rfinished; /* threads done producing; each keeps consuming until all are */

static size_t rpick(uint64_t *s)
{
    uint64_t x = rng(s);
    return x % 100 < 80 ? 16 + x % 256 : x % 100 < 97 ? 256 + x % 2048 : 4096 + x % 30000;
}

static void rdrain(int id)
{
    pthread_mutex_lock(&rboxes[id].m);
    rnode_t *n = rboxes[id].head;
    rboxes[id].head = NULL;
    rboxes[id].queued = 0;
    pthread_mutex_unlock(&rboxes[id].m);
    while (n) {
        rnode_t *next = n->next;
        for (int i = 0; i < RBATCH; i++)
            xfree(n->blk[i], n->len[i]);
        free(n);
        n = next;
    }
}

static void *ring_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t s = (uint64_t)id * 0x9e3779b97f4a7c15u + 7;
    void *mine[RBATCH];
    size_t ml[RBATCH];
    for (long r = 0; r < rrounds; r++) {
        rnode_t *g = malloc(sizeof *g);
        if (!g)
            die("malloc failed");
        for (int i = 0; i < RBATCH; i++) {
            ml[i] = rpick(&s);
            mine[i] = xalloc(ml[i]);
            g->len[i] = rpick(&s);
            g->blk[i] = xalloc(g->len[i]);
        }
        for (int i = 0; i < RBATCH; i++)
            xfree(mine[i], ml[i]);
        rbox_t *to = &rboxes[(id + 1) % rthreads];
        for (;;) {
            pthread_mutex_lock(&to->m);
            if (to->queued < RQUEUE) {
                g->next = to->head;
                to->head = g;
                to->queued++;
                pthread_mutex_unlock(&to->m);
                break;
            }
            pthread_mutex_unlock(&to->m);
            rdrain(id); /* keep our own consumer side moving while we wait */
            sched_yield();
        }
        rdrain(id);
    }
    /* done producing: keep consuming until every producer is done, so nobody waits on us */
    atomic_fetch_add(&rfinished, 1);
    while (atomic_load(&rfinished) < rthreads) {
        rdrain(id);
        sched_yield();
    }
    rdrain(id);
    return NULL;
}

static void run_ring(int t, long n)
{
    rthreads = t;
    rrounds = n / t;
    rboxes = calloc((size_t)t, sizeof *rboxes);
    for (int i = 0; i < t; i++)
        pthread_mutex_init(&rboxes[i].m, NULL);
    atomic_store(&rfinished, 0);
    pthread_t th[256];
    for (int i = 0; i < t; i++)
        pthread_create(&th[i], NULL, ring_worker, (void *)(intptr_t)i);
    for (int i = 0; i < t; i++)
        pthread_join(th[i], NULL);
    free(rboxes);
}

/* ---- churn: heavy-tailed sizes, random lifetimes, one thread ---- */
static void run_churn(long n)
{
    enum { LIVE = 20000 };
    static void *p[LIVE];
    static size_t l[LIVE];
    uint64_t s = 42;
    for (long i = 0; i < n; i++) {
        uint64_t r = rng(&s);
        unsigned k = (unsigned)(r % LIVE);
        if (p[k])
            xfree(p[k], l[k]);
        /* mostly tiny, a long tail: size = 8 << (geometric) + noise */
        unsigned e = (unsigned)__builtin_ctzll((r >> 16) | (1ull << 14));
        l[k] = ((size_t)8 << e) + (r >> 40) % 64;
        p[k] = xalloc(l[k]);
    }
    for (int k = 0; k < LIVE; k++)
        if (p[k])
            xfree(p[k], l[k]);
}

/* ---- large: big blocks and realloc growth ---- */
static void run_large(long n)
{
    uint64_t s = 9;
    for (long i = 0; i < n; i++) {
        size_t sz = (size_t)64 << 10 << (rng(&s) % 10); /* 64 KiB .. 32 MiB */
        uint8_t *p = xalloc(sz);
        memset(p, 1, sz < (1u << 20) ? sz : (1u << 20));
        p[0] = p[sz - 1] = tagof(p, sz);
        xfree(p, sz);
        /* grow one block by 64 KiB steps to 4 MiB */
        if (i % 16 == 0) {
            size_t cur = 64 << 10;
            uint8_t *q = xalloc(cur);
            while (cur < (4u << 20)) {
                size_t next = cur + (64 << 10);
                uint8_t want = q[0];
                q = realloc(q, next);
                if (!q)
                    die("realloc failed");
                if (q[0] != want)
                    die("realloc lost contents");
                cur = next;
                q[0] = q[cur - 1] = tagof(q, cur);
            }
            xfree(q, cur);
        }
    }
}

/* ---- strbuild: append to strings that live on realloc ---- */
static void run_strbuild(long n)
{
    enum { STRS = 64 };
    char *str[STRS] = {0};
    size_t len[STRS] = {0}, cap[STRS] = {0};
    uint64_t s = 5, total = 0;
    for (long i = 0; i < n; i++) {
        unsigned k = (unsigned)(rng(&s) % STRS);
        size_t add = 1 + rng(&s) % 40;
        if (len[k] + add + 1 > cap[k]) {
            cap[k] = len[k] + add + 1 + (len[k] >> 3);
            str[k] = realloc(str[k], cap[k]);
            if (!str[k])
                die("realloc failed");
        }
        memset(str[k] + len[k], 'a' + (int)(add % 26), add);
        len[k] += add;
        str[k][len[k]] = 0;
        total += add;
        if (len[k] > (1u << 20)) { /* a finished string */
            if (strlen(str[k]) != len[k])
                die("string corrupted");
            free(str[k]);
            str[k] = NULL;
            len[k] = cap[k] = 0;
        }
    }
    for (int k = 0; k < STRS; k++) {
        if (str[k] && strlen(str[k]) != len[k])
            die("string corrupted");
        free(str[k]);
    }
    (void)total;
}

/* ---- packets: a receive thread allocates pages, a transmit thread frees them ---- */
typedef void *(*alloc_pages_fn)(void *, unsigned, unsigned);
typedef void (*free_pages_fn)(void *, void *, unsigned);
static alloc_pages_fn lab_alloc;
static free_pages_fn lab_free_fn;
static void *lab_pool;
#define PQ 4096
static void *_Atomic pq[PQ];
static long pcount;
static atomic_long pdone;

static void *pkt_get(void)
{
    for (;;) {
        void *p = lab_alloc ? lab_alloc(lab_pool, 0, 1 /* LAB_GFP_ATOMIC */) : malloc(4096);
        if (p)
            return p;
        sched_yield(); /* ATOMIC ran dry: wait for the transmitter */
    }
}

static void *pkt_tx(void *arg)
{
    (void)arg;
    for (long i = 0; i < pcount; i++) {
        void *p;
        while (!(p = atomic_exchange(&pq[i % PQ], NULL)))
            ;
        if (((uint64_t *)p)[0] != (uint64_t)i || ((uint64_t *)p)[511] != (uint64_t)i)
            die("packet corrupted");
        if (lab_free_fn)
            lab_free_fn(lab_pool, p, 0);
        else
            free(p);
    }
    atomic_store(&pdone, 1);
    return NULL;
}

static void run_packets(long n)
{
    lab_alloc = (alloc_pages_fn)dlsym(RTLD_DEFAULT, "labyrinth_alloc_pages");
    lab_free_fn = (free_pages_fn)dlsym(RTLD_DEFAULT, "labyrinth_free_pages");
    void *(*deflt)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "labyrinth_default");
    if (!lab_alloc || !lab_free_fn || !deflt)
        lab_alloc = NULL, lab_free_fn = NULL;
    else
        lab_pool = deflt();
    pcount = n;
    pthread_t tx;
    pthread_create(&tx, NULL, pkt_tx, NULL);
    for (long i = 0; i < n; i++) {
        uint64_t *p = pkt_get();
        p[0] = p[511] = (uint64_t)i;
        while (atomic_load(&pq[i % PQ]))
            ;
        atomic_store(&pq[i % PQ], p);
    }
    pthread_join(tx, NULL);
    if (!atomic_load(&pdone))
        die("transmitter did not finish");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: wl larson|ring T N | churn|large|strbuild|packets N\n");
        return 2;
    }
    const char *m = argv[1];
    double t0 = now();
    if (!strcmp(m, "larson") && argc > 3)
        run_larson(atoi(argv[2]), atol(argv[3]));
    else if (!strcmp(m, "ring") && argc > 3)
        run_ring(atoi(argv[2]), atol(argv[3]));
    else if (!strcmp(m, "churn"))
        run_churn(atol(argv[2]));
    else if (!strcmp(m, "large"))
        run_large(atol(argv[2]));
    else if (!strcmp(m, "strbuild"))
        run_strbuild(atol(argv[2]));
    else if (!strcmp(m, "packets"))
        run_packets(atol(argv[2]));
    else {
        fprintf(stderr, "wl: unknown mode %s\n", m);
        return 2;
    }
    printf("elapsed_s=%.6f\n", now() - t0);
    return 0;
}
