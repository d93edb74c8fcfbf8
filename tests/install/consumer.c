/* consumer.c — a program built against an installed Labyrinth (tests/install/install.sh): the
 * README's page-pool example, run. Exits 0 when a pool of its own hands out and takes back a page
 * under ATOMIC until the pool's mapped pages run out (ATOMIC maps none): ENOMEM. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <labyrinth.h>

static labyrinth_t rx_pool;

int main(void)
{
    struct labyrinth_pool_opts o = {.reserve_pages = 8};
    int r = labyrinth_pool_init(&rx_pool, &o);
    if (r != 0) {
        fprintf(stderr, "consumer: labyrinth_pool_init: %d\n", r);
        return 1;
    }
    static void *bufs[1 << 16];
    int n = 0;
    while (n < (1 << 16) && (bufs[n] = labyrinth_alloc_page(&rx_pool, LAB_GFP_ATOMIC)) != NULL) {
        memset(bufs[n], 0xab, 4096);
        n++;
    }
    int e = errno;
    for (int i = 0; i < n; i++)
        labyrinth_free_pages(&rx_pool, bufs[i], 0);
    if (n == 0 || n == (1 << 16) || e != ENOMEM) {
        fprintf(stderr, "consumer: %d ATOMIC pages before failure (errno %d)\n", n, e);
        return 1;
    }
    printf("consumer: %d ATOMIC pages, then ENOMEM\n", n);
    return 0;
}
