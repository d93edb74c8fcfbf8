/* large.c — large blocks after mimalloc-bench's malloc-large: each thread keeps 8 live blocks of
 * 64 KiB .. 32 MiB (log-uniform) and replaces a random one per step, touching its first 64 KiB and
 * its last page, as a program reading a file into a buffer would before it knows it needs more;
 * every 8th step grows a buffer from 64 KiB to 32 MiB by realloc (x1.5 a time) and checks that the
 * contents moved with it. Whether big frees are cached, unmapped or mremap'd decides the figure
 * (page faults are dear on these VMs). N = steps per thread. */
#include "wl.h"

#define LARGE_LIVE 8
#define LARGE_MIN ((size_t)64 << 10)
#define LARGE_MAX ((size_t)32 << 20)
#define LARGE_TOUCH ((size_t)64 << 10)

static void large_touch(unsigned char *p, size_t n, unsigned char v)
{
    memset(p, v, n < LARGE_TOUCH ? n : LARGE_TOUCH);
    memset(p + n - 4096, v, 4096);
}

static void large_verify(const unsigned char *p, size_t n, unsigned char v)
{
    size_t head = n < LARGE_TOUCH ? n : LARGE_TOUCH;
    for (size_t i = 0; i < head; i += 512)
        if (p[i] != v)
            wl_die("large: byte %zu of %zu changed", i, n);
    if (p[n - 1] != v || p[n - 4096] != v)
        wl_die("large: tail of %zu changed", n);
}

static void *large_worker(void *arg)
{
    struct wl_task *a = arg;
    uint64_t s = wl_seed((uint64_t)a->id + 300);
    unsigned char *live[LARGE_LIVE] = {0};
    size_t len[LARGE_LIVE] = {0};
    for (long i = 0; i < a->n; i++) {
        unsigned k = (unsigned)(wl_rand(&s) % LARGE_LIVE);
        if (live[k]) {
            large_verify(live[k], len[k], (unsigned char)(k + 1));
            free(live[k]);
        }
        /* log-uniform in [64 KiB, 32 MiB): 2^(16 + u*9) */
        double u = (double)(wl_rand(&s) >> 11) / 9007199254740992.0;
        size_t n = (size_t)((double)LARGE_MIN * __builtin_exp2(u * 9.0)) & ~(size_t)4095;
        live[k] = malloc(n);
        if (!live[k])
            wl_die("large: malloc(%zu) returned NULL", n);
        len[k] = n;
        large_touch(live[k], n, (unsigned char)(k + 1));
        if (i % 8 == 0) {
            size_t cur = LARGE_MIN;
            unsigned char *g = malloc(cur);
            if (!g)
                wl_die("large: malloc(%zu) returned NULL", cur);
            memset(g, 0x5a, 4096);
            while (cur < LARGE_MAX) {
                size_t next = cur + cur / 2;
                g = realloc(g, next);
                if (!g)
                    wl_die("large: realloc(%zu) returned NULL", next);
                if (g[0] != 0x5a || g[4095] != 0x5a || g[cur - 1] != (cur == LARGE_MIN ? g[cur - 1] : 0x33))
                    wl_die("large: realloc to %zu lost the contents", next);
                g[next - 1] = 0x33; /* one write per step, at the new end: growth, not filling */
                cur = next;
            }
            free(g);
        }
    }
    for (int k = 0; k < LARGE_LIVE; k++)
        if (live[k]) {
            large_verify(live[k], len[k], (unsigned char)(k + 1));
            free(live[k]);
        }
    return NULL;
}

int wl_large(int threads, long n)
{
    return wl_run_tasks("large", threads, n, large_worker);
}
