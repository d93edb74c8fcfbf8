/* pagemix.c — page-sized blocks of random lengths: each thread keeps 64 blocks of 33 KiB .. 1 MiB
 * (uniform) live and replaces a random one each step, writing its first 4 KiB, as a server's
 * request and response buffers or a compressor's windows of varying sizes do. No block crosses
 * threads. Blocks of one length reuse each other's runs whole; lengths that vary leave runs too
 * short or too long, so what is measured is how the allocator keeps, splits and joins freed page
 * runs (and, at 2 threads, how much of that it does under a shared lock): found by review, where
 * Labyrinth's store purged and faulted pages in again at every step. N = steps per thread. */
#include "wl.h"

#define PAGEMIX_LIVE 64
#define PAGEMIX_MIN ((size_t)33 << 10)
#define PAGEMIX_SPAN (((size_t)1 << 20) - PAGEMIX_MIN)
#define PAGEMIX_WRITE 4096

static void *pagemix_worker(void *arg)
{
    struct wl_task *a = arg;
    uint64_t s = wl_seed((uint64_t)a->id + 900);
    unsigned char *live[PAGEMIX_LIVE] = {0};
    for (long i = 0; i < a->n; i++) {
        unsigned k = (unsigned)(wl_rand(&s) % PAGEMIX_LIVE);
        if (live[k]) {
            if (live[k][0] != (unsigned char)k || live[k][PAGEMIX_WRITE - 1] != (unsigned char)k)
                wl_die("pagemix: block %u changed", k);
            free(live[k]);
        }
        size_t n = PAGEMIX_MIN + (size_t)(wl_rand(&s) % PAGEMIX_SPAN);
        live[k] = malloc(n);
        if (!live[k])
            wl_die("pagemix: malloc(%zu) returned NULL", n);
        memset(live[k], (int)k, PAGEMIX_WRITE);
    }
    for (unsigned k = 0; k < PAGEMIX_LIVE; k++)
        free(live[k]);
    return NULL;
}

int wl_pagemix(int threads, long n)
{
    return wl_run_tasks("pagemix", threads, n, pagemix_worker);
}
