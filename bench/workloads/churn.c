/* churn.c — size-distribution churn after alloc-test and glibc's t-test: each thread keeps a
 * table of 20,000 live blocks and replaces random entries with blocks of heavy-tailed size (most
 * under 100 B, one in a few thousand of 128-256 KiB), growing or shrinking one in eight with
 * realloc instead. The long tail is what fragments heaps and pushes requests across the
 * small/page/huge boundaries. N = operations per thread. */
#include "wl.h"

#define CHURN_LIVE 20000

/* 8 << k with P(k) halving at each step (k <= 14), plus up to as much again: heavy-tailed,
 * 16 B .. 256 KiB - 1 */
static size_t churn_size(uint64_t r)
{
    unsigned k = (unsigned)__builtin_ctzll((r >> 20) | (1ull << 14));
    size_t n = ((size_t)8 << k) + (size_t)((r >> 44) % ((size_t)8 << k));
    return n < WL_MIN_BLOCK ? WL_MIN_BLOCK : n;
}

static void *churn_worker(void *p)
{
    struct wl_task *a = p;
    void **live = calloc(CHURN_LIVE, sizeof *live);
    if (!live)
        wl_die("churn: calloc");
    uint64_t s = wl_seed((uint64_t)a->id + 200);
    for (long i = 0; i < a->n; i++) {
        uint64_t r = wl_rand(&s);
        unsigned k = (unsigned)(r % CHURN_LIVE);
        size_t n = churn_size(wl_rand(&s));
        if (live[k] && (r >> 61) == 0) {
            /* realloc keeps the old prefix: its size word and the check of the first 16 bytes */
            size_t old = wl_block_check(live[k]);
            uint64_t head = ((uint64_t *)live[k])[1];
            void *q = realloc(live[k], n);
            if (!q)
                wl_die("churn: realloc(%zu) returned NULL", n);
            if (((uint64_t *)q)[0] != old || ((uint64_t *)q)[1] != head)
                wl_die("churn: realloc %zu -> %zu lost the contents", old, n);
            live[k] = wl_block_mark(q, n);
        } else {
            if (live[k])
                wl_block_free(live[k]);
            live[k] = wl_block_new(n);
        }
    }
    for (int k = 0; k < CHURN_LIVE; k++)
        if (live[k])
            wl_block_free(live[k]);
    free(live);
    return NULL;
}

int wl_churn(int threads, long n)
{
    return wl_run_tasks("churn", threads, n, churn_worker);
}
