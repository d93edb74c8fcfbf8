/* raw_exit.c — threads that end with the exit system call itself (syscall(SYS_exit), as a runtime
 * that runs its own threads may, or a thread that ends from deep inside a library): no pthread
 * key destructor and no thread_local destructor runs, so the allocator is never told. Their heaps
 * and page rooms must be taken over by later threads (memory and heaps flat over thousands of
 * them), and the blocks they handed out must stay intact and free cleanly from another thread,
 * small and page-sized, while later threads allocate from the heaps those blocks came from. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lab_check.h"

enum { THREADS = 3000, WARM = 300, HANDED = 16, SMALL = 40 };

struct handed {
    void *small, *page;
    size_t small_n, page_n;
};
static struct handed handed[HANDED];

static void *raw_worker(void *arg)
{
    long i = (long)arg;
    void *p[SMALL];
    /* blocks of many classes, all freed but one: spans of many sizes left in the heap */
    for (int k = 0; k < SMALL; k++) {
        size_t n = 16 + (size_t)((k * 97 + i) % 2000);
        p[k] = malloc(n);
        CHECK(p[k] != NULL, "thread %ld: malloc(%zu) failed", i, n);
        if (p[k])
            memset(p[k], k, n);
    }
    struct handed *h = &handed[i % HANDED];
    h->small_n = 16 + (size_t)((i * 31) % 3000);
    h->small = malloc(h->small_n);
    h->page_n = (size_t)(20 + i % 40) << 12;
    h->page = malloc(h->page_n);
    CHECK(h->small && h->page, "thread %ld: a handed block not made", i);
    if (h->small)
        lab_canary_fill(h->small, h->small_n);
    if (h->page)
        lab_canary_fill(h->page, h->page_n);
    for (int k = 0; k < SMALL; k++)
        free(p[k]);
    /* a page-sized block written and freed here: into the thread's page room, which nobody is
       told to drain */
    size_t room_n = (size_t)(64 + i % 16) << 12;
    void *q = malloc(room_n);
    CHECK(q != NULL, "thread %ld: malloc(%zu) failed", i, room_n);
    if (q)
        memset(q, 3, room_n);
    free(q);
    syscall(SYS_exit, 0);
    return NULL;
}

/* The process's peak RSS (KiB; 0 without /proc). */
static long hwm_kib(void)
{
    char line[128];
    long v = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

int main(void)
{
    SAY("raw_exit: %d threads ending with syscall(SYS_exit), blocks handed out and freed later", THREADS);
    long hwm_warm = 0, heaps_warm = -1;
    char text[8192];
    for (long i = 0; i < THREADS; i++) {
        struct handed *h = &handed[i % HANDED];
        /* the block a thread HANDED threads ago handed out: intact, freed here */
        if (h->small) {
            CHECK(lab_canary_check(h->small, h->small_n) == SIZE_MAX, "thread %ld's small block damaged",
                  i - HANDED);
            free(h->small);
            h->small = NULL;
        }
        if (h->page) {
            CHECK(lab_canary_check(h->page, h->page_n) == SIZE_MAX, "thread %ld's page-sized block damaged",
                  i - HANDED);
            free(h->page);
            h->page = NULL;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, raw_worker, (void *)i) != 0) {
            CHECK(0, "pthread_create failed at thread %ld", i);
            break;
        }
        pthread_join(t, NULL); /* (the kernel clears the thread's id at its exit: join returns) */
        if (i == WARM) {
            hwm_warm = hwm_kib();
            if (lab_expect_labyrinth() && lab_malloc_stats_text(text, sizeof text) > 0)
                heaps_warm = lab_stats_field(text, "heaps");
        }
    }
    for (int k = 0; k < HANDED; k++) {
        free(handed[k].small);
        free(handed[k].page);
    }
    long hwm = hwm_kib();
    SAY("raw_exit: peak RSS %ld KiB after %d threads, %ld KiB after all %d", hwm_warm, WARM, hwm, THREADS);
    if (lab_expect_labyrinth()) {
        /* a heap kept for each ended thread: 380 MiB more over the rest (tried); the runs left
           in ended threads' rooms come back through stale rooms' takes as well, so a room set
           not adopted grows it by some 13 MiB only, within the bound (glibc's arenas grow by
           about 30 MiB here, jemalloc's thread caches by 600) */
        CHECK(hwm - hwm_warm < 16 * 1024, "peak RSS grew by %ld KiB over %d threads that ended",
              hwm - hwm_warm, THREADS - WARM);
        CHECK(lab_malloc_stats_text(text, sizeof text) > 0, "malloc_stats: nothing caught");
        long heaps = lab_stats_field(text, "heaps");
        SAY("raw_exit: heaps %ld after %d threads, %ld after all", heaps_warm, WARM, heaps);
        /* ended threads' heaps adopted: a few past the scan threshold (16), not one a thread */
        CHECK(heaps >= 0 && heaps < 64, "heaps %ld after %d threads that ended (%ld after %d)", heaps, THREADS,
              heaps_warm, WARM);
    }
    return lab_finish("raw_exit");
}
