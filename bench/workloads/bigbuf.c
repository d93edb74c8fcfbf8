/* bigbuf.c — buffers of 0.25 .. 4.25 MiB (uniform), written in full, four live per thread; each
 * step frees a random one (its contents checked) and allocates the next at another size, as a
 * decompressor, an image decoder or a build step reading files of varying sizes into buffers
 * does. Every block is above the page-sized runs' 1 MiB or close to it, so what is measured is
 * how the allocator keeps and reuses big freed memory: a fresh mapping per block faults every
 * page in again (page faults are dear on these VMs); keeping all of it costs resident memory.
 * N = steps per thread. */
#include "wl.h"

#define BIGBUF_LIVE 4
#define BIGBUF_MIN ((size_t)256 << 10)
#define BIGBUF_SPAN ((size_t)4 << 20)

static void bigbuf_check(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += 4093)
        if (p[i] != v)
            wl_die("bigbuf: byte %zu of %zu changed", i, n);
    if (p[n - 1] != v)
        wl_die("bigbuf: last byte of %zu changed", n);
}

static void *bigbuf_worker(void *arg)
{
    struct wl_task *a = arg;
    uint64_t s = wl_seed((uint64_t)a->id + 700);
    unsigned char *live[BIGBUF_LIVE] = {0};
    size_t len[BIGBUF_LIVE] = {0};
    unsigned char val[BIGBUF_LIVE] = {0}; /* the byte each block was filled with, kept apart */
    for (long i = 0; i < a->n; i++) {
        unsigned k = (unsigned)(wl_rand(&s) % BIGBUF_LIVE);
        unsigned char v = (unsigned char)(i + 1);
        if (live[k]) {
            bigbuf_check(live[k], len[k], val[k]);
            free(live[k]);
        }
        size_t n = BIGBUF_MIN + (size_t)(wl_rand(&s) % BIGBUF_SPAN);
        live[k] = malloc(n);
        if (!live[k])
            wl_die("bigbuf: malloc(%zu) returned NULL", n);
        len[k] = n;
        val[k] = v ? v : 1;
        memset(live[k], val[k], n);
    }
    for (int k = 0; k < BIGBUF_LIVE; k++)
        if (live[k]) {
            bigbuf_check(live[k], len[k], val[k]);
            free(live[k]);
        }
    return NULL;
}

int wl_bigbuf(int threads, long n)
{
    return wl_run_tasks("bigbuf", threads, n, bigbuf_worker);
}
