/* start_pages.c — a short single-threaded program leaves the default pool's struct past its second
 * page untouched. Every process pays a page fault (10-15 us on these VMs) for each page of the
 * allocator's metadata it touches, and the struct (10 KiB, the first block of metadata, so it
 * starts a page) is laid out for that: what a process's first calls and the clock tick's look at
 * the peak read is on its first page (its second holds the store's lists of runs of 129-255
 * pages, which a carve's remainders soon fill). The peak look summed the run zones' free pages
 * through run_zone[], on the third page, in every process, run zones or not: a fault for eight
 * NULLs (found with perf record -e page-faults on git --version). The program makes small and
 * page-sized blocks for longer than a few clock ticks (the peak look runs once a tick), frees
 * them, and asks mincore whether the struct's third page was ever touched. Run zones are made
 * only for threads that meet on a lock (none here). Mode api_first: a program whose first call
 * is labyrinth_default() finds the pool starting a page too. Labyrinth only: the struct is found
 * through labyrinth_default()'s private handle.
 *   start_pages malloc|api_first */
#define _GNU_SOURCE
#include <time.h>

#include "../../core/include/labyrinth.h"
#include "lab_check.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    labyrinth_t *(*p_default)(void) = (labyrinth_t * (*)(void)) lab_provided("labyrinth_default");
    if (!lab_expect_labyrinth() || !p_default)
        return LAB_SKIP;
    if (argc > 1 && !strcmp(argv[1], "api_first")) {
        /* the page API asked for before any malloc: the pool is still the first block of
         * metadata (set up before the thread's rooms, which took that place and put the pool
         * 1 280 bytes in, off the page its layout counts on) */
        labyrinth_t *h = p_default();
        CHECK(h != NULL && h->impl != NULL && ((uintptr_t)h->impl & 4095) == 0,
              "the default pool asked for first does not start a page (%p)", h ? h->impl : NULL);
        SAY("start_pages api_first: the default pool at %p", h ? h->impl : NULL);
        return lab_failures ? 1 : 0;
    }
    /* small blocks of every direct size, and page-sized blocks of 10 and 25 pages, for at least
     * 50 ms: a dozen coarse clock ticks and more */
    static void *small[1024];
    size_t rounds = 0;
    double t0 = now_s();
    while (now_s() - t0 < 0.05 || rounds < 200) {
        for (size_t i = 0; i < 1024; i++)
            small[i] = malloc(16 + (i * 37 + rounds) % 1009);
        void *big[4];
        for (size_t i = 0; i < 4; i++) {
            big[i] = malloc(i & 1 ? 40000 : 100000);
            CHECK(big[i] != NULL, "malloc of a page-sized block failed");
            if (big[i])
                ((char *)big[i])[0] = 1;
        }
        for (size_t i = 0; i < 4; i++)
            free(big[i]);
        for (size_t i = 0; i < 1024; i++)
            free(small[i]);
        rounds++;
    }
    /* looked up only now: a program that only calls malloc never calls it */
    labyrinth_t *handle = p_default();
    CHECK(handle != NULL && handle->impl != NULL, "no default pool");
    if (handle == NULL || handle->impl == NULL)
        return 1;
    uintptr_t pool = (uintptr_t)handle->impl;
    CHECK((pool & 4095) == 0, "the default pool does not start a page (%#lx)", (unsigned long)pool);
    size_t third = lab_pages_absent((void *)(pool + 8192), 4096);
    SAY("start_pages: %zu rounds over %.0f ms; the pool struct's third page %s", rounds, (now_s() - t0) * 1000,
        third == 1 ? "untouched" : "touched");
    CHECK(third == 1, "the pool struct's third page was touched (the run zones' list)");
    return lab_failures ? 1 : 0;
}
