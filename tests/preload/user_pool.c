/* user_pool.c — user pools (labyrinth_pool_init) and the background purge.
 *   user_pool idle   a user pool (purge delay 100 ms) hands out 64 MiB of 2 MiB runs, every page
 *                    written, then gets them all back; after that the program makes no allocator
 *                    call, it only sleeps and asks the kernel (mincore) how many of those pages
 *                    are still resident. Fewer than an eighth must be within 3 s: the purge thread
 *                    purges user pools as well as the malloc pool. (Before, a user pool was purged
 *                    only by its own later calls, so an idle one kept every page: this mode
 *                    failed.) ctest sets LABYRINTH_BACKGROUND_PURGE=1, and again 16
 *                    (preload.user_pool_starts_thread): then only the user pool maps enough to
 *                    start the thread, which it must do.
 *   user_pool idle_senders
 *                    as idle, but the purge thread asleep with nothing to do first (the pool's
 *                    runs all handed out, then 1.5 s of sleep), and the 32 MiB freed by 16
 *                    threads whose first page-API call is that free: each gets its room then,
 *                    and the run in it must wake the thread (before, nothing did, and the pages
 *                    stayed resident for good: found by review).
 *   user_pool idle_exclusive
 *                    the same with LAB_GFP_EXCLUSIVE runs freed by the main thread: they go to
 *                    their zone's shared lists, not to a room, and that must wake it too.
 *   user_pool churn  300 user pools made, used and destroyed while the purge thread purges them
 *                    every few milliseconds (delay 1 ms): destroy must wait for a purge in
 *                    progress, and a purge must never reach a pool being torn down.
 *   user_pool churn_rooms
 *                    the same for 1 500 pools with malloc's purge delay 1 ms too (ctest), so
 *                    that the purge thread also takes the runs this thread's room keeps of each
 *                    pool while it sleeps, and sometimes while the pool is being destroyed: the
 *                    taking must never reach a pool torn down (it wrote into the next pool's
 *                    descriptors once: "double free" aborts, about one run in ten).
 * Labyrinth only (the pool API is its own): skipped where labyrinth_pool_init is not provided. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include "../../core/include/labyrinth.h"
#include "lab_check.h"

#define RUN_ORDER 9 /* 2 MiB */
#define RUN_BYTES (LAB_PAGE_SIZE << RUN_ORDER)
#define RUNS 32     /* 64 MiB */

static int (*p_init)(labyrinth_t *, const struct labyrinth_pool_opts *);
static void (*p_destroy)(labyrinth_t *);
static void *(*p_alloc)(labyrinth_t *, unsigned, lab_gfp_t);
static void (*p_free)(labyrinth_t *, void *, unsigned);
static int (*p_stats)(labyrinth_t *, struct labyrinth_pool_stats *);

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* Pages of the runs still resident (an unmapped run counts as given back). */
static size_t resident_pages(void *const *runs, int n)
{
    static unsigned char vec[RUN_BYTES / LAB_PAGE_SIZE]; /* static: no allocation, no stack */
    size_t pages = 0;
    for (int i = 0; i < n; i++) {
        if (mincore(runs[i], RUN_BYTES, vec) != 0)
            continue; /* ENOMEM: no longer mapped */
        for (size_t k = 0; k < sizeof vec; k++)
            pages += vec[k] & 1;
    }
    return pages;
}

static void idle_mode(void)
{
    static labyrinth_t pool;
    static void *runs[RUNS];
    struct labyrinth_pool_opts o = {.purge_delay_ms = 100};
    CHECK(p_init(&pool, &o) == 0, "labyrinth_pool_init failed");
    for (int i = 0; i < RUNS; i++) {
        runs[i] = p_alloc(&pool, RUN_ORDER, 0);
        CHECK(runs[i] != NULL, "run %d of 2 MiB: no memory", i);
        if (!runs[i])
            return;
        memset(runs[i], 0x3c, RUN_BYTES);
    }
    size_t before = resident_pages(runs, RUNS), all = (size_t)RUNS * (RUN_BYTES / LAB_PAGE_SIZE);
    SAY("64 MiB of a user pool written: %zu of %zu pages resident", before, all);
    CHECK(before >= all * 7 / 8, "the written runs are not resident (%zu of %zu pages)", before, all);
    CHECK(lab_wait_threads_named("labyrinth-purge", 1, 2000) == 1, "no purge thread running");
    for (int i = 0; i < RUNS; i++)
        p_free(&pool, runs[i], RUN_ORDER);
    /* from here on: sleep and mincore only, until the pages are back or 3 s have passed */
    size_t left = before;
    int waited = 0;
    while (waited < 3000 && (left = resident_pages(runs, RUNS)) >= all / 8) {
        sleep_ms(20);
        waited += 20;
    }
    SAY("freed, then idle: %zu pages resident after %d ms", left, waited);
    CHECK(left < all / 8, "an idle user pool kept %zu of %zu freed pages for 3 s", left, all);
    /* the purge counts each run right after its madvise: a read in between may miss the last
     * one, so look again for a moment */
    struct labyrinth_pool_stats st;
    for (int t = 0; t < 50; t++) {
        CHECK(p_stats(&pool, &st) == 0, "labyrinth_pool_stats failed");
        if (st.purged_pages > 0 || st.unmapped_chunks > 0)
            break;
        sleep_ms(20);
    }
    SAY("pool stats: purged %zu pages, unmapped %zu chunks", st.purged_pages, st.unmapped_chunks);
    CHECK(st.purged_pages > 0 || st.unmapped_chunks > 0, "the pool's counters show no purge");
    p_destroy(&pool);
}

/* idle_senders / idle_exclusive */
#define SENDERS 16
static labyrinth_t quiet_pool;
static void *quiet_runs[SENDERS];
static pthread_barrier_t quiet_bar;

static void *quiet_sender(void *arg)
{
    pthread_barrier_wait(&quiet_bar); /* the purge thread asleep */
    p_free(&quiet_pool, quiet_runs[(uintptr_t)arg], RUN_ORDER); /* this thread's first page call */
    pthread_barrier_wait(&quiet_bar); /* freed; then alive and idle until the check is done */
    pthread_barrier_wait(&quiet_bar);
    return NULL;
}

static void quiet_mode(bool exclusive)
{
    struct labyrinth_pool_opts o = {.purge_delay_ms = 100};
    CHECK(p_init(&quiet_pool, &o) == 0, "labyrinth_pool_init failed");
    for (int i = 0; i < SENDERS; i++) {
        quiet_runs[i] = p_alloc(&quiet_pool, RUN_ORDER, exclusive ? LAB_GFP_EXCLUSIVE : 0);
        CHECK(quiet_runs[i] != NULL, "run %d of 2 MiB: no memory", i);
        if (!quiet_runs[i])
            return;
        memset(quiet_runs[i], 0x5a, RUN_BYTES);
    }
    size_t all = (size_t)SENDERS * (RUN_BYTES / LAB_PAGE_SIZE), before = resident_pages(quiet_runs, SENDERS);
    CHECK(before >= all * 7 / 8, "the written runs are not resident (%zu of %zu pages)", before, all);
    pthread_t t[SENDERS];
    pthread_barrier_init(&quiet_bar, NULL, exclusive ? 1 : SENDERS + 1);
    for (uintptr_t i = 0; !exclusive && i < SENDERS; i++)
        CHECK(pthread_create(&t[i], NULL, quiet_sender, (void *)i) == 0, "pthread_create");
    CHECK(lab_wait_threads_named("labyrinth-purge", 1, 2000) == 1, "no purge thread running");
    sleep_ms(1500); /* nothing to purge: the thread goes to sleep with no deadline */
    if (exclusive) {
        for (int i = 0; i < SENDERS; i++)
            p_free(&quiet_pool, quiet_runs[i], RUN_ORDER);
    } else {
        pthread_barrier_wait(&quiet_bar);
        pthread_barrier_wait(&quiet_bar);
    }
    size_t left = before;
    int waited = 0;
    while (waited < 3000 && (left = resident_pages(quiet_runs, SENDERS)) >= all / 8) {
        sleep_ms(20);
        waited += 20;
    }
    SAY("%s freed 32 MiB, then idle: %zu of %zu pages resident after %d ms",
        exclusive ? "EXCLUSIVE runs" : "16 threads' first calls", left, all, waited);
    CHECK(left < all / 8, "the freed runs stayed resident (%zu of %zu pages after 3 s)", left, all);
    if (!exclusive) {
        pthread_barrier_wait(&quiet_bar);
        for (int i = 0; i < SENDERS; i++)
            pthread_join(t[i], NULL);
    }
    p_destroy(&quiet_pool);
}

static void churn_mode(int rounds)
{
    static labyrinth_t pool;
    static void *pages[64];
    uint64_t rng = 0x5eed;
    for (int round = 0; round < rounds; round++) {
        struct labyrinth_pool_opts o = {.purge_delay_ms = 1};
        if (p_init(&pool, &o) != 0) {
            CHECK(0, "labyrinth_pool_init failed in round %d", round);
            return;
        }
        for (int i = 0; i < 64; i++) {
            pages[i] = p_alloc(&pool, (unsigned)(i % 4), 0);
            CHECK(pages[i] != NULL, "round %d: no page", round);
            if (pages[i])
                memset(pages[i], round & 0xff, LAB_PAGE_SIZE);
        }
        for (int i = 0; i < 64; i++)
            if (pages[i])
                p_free(&pool, pages[i], (unsigned)(i % 4));
        sleep_ms((long)(lab_rand(&rng) % 4)); /* sometimes past the delay: the thread purges */
        p_destroy(&pool);
    }
    SAY("%d user pools made, used, left to the purge thread and destroyed", rounds);
    CHECK(lab_threads_named("labyrinth-purge") == 1, "no purge thread running");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "idle";
    p_init = (int (*)(labyrinth_t *, const struct labyrinth_pool_opts *))lab_provided("labyrinth_pool_init");
    if (!p_init) {
        printf("labyrinth_pool_init not provided: skipped\n");
        return lab_expect_labyrinth() ? 1 : LAB_SKIP;
    }
    p_destroy = (void (*)(labyrinth_t *))dlsym(RTLD_DEFAULT, "labyrinth_pool_destroy");
    p_alloc = (void *(*)(labyrinth_t *, unsigned, lab_gfp_t))dlsym(RTLD_DEFAULT, "labyrinth_alloc_pages");
    p_free = (void (*)(labyrinth_t *, void *, unsigned))dlsym(RTLD_DEFAULT, "labyrinth_free_pages");
    p_stats = (int (*)(labyrinth_t *, struct labyrinth_pool_stats *))dlsym(RTLD_DEFAULT, "labyrinth_pool_stats");
    if (!p_destroy || !p_alloc || !p_free || !p_stats) {
        CHECK(0, "the pool API is incomplete");
        return lab_finish("user_pool");
    }
    if (strcmp(mode, "churn") == 0)
        churn_mode(300);
    else if (strcmp(mode, "churn_rooms") == 0)
        churn_mode(1500);
    else if (strcmp(mode, "idle_senders") == 0 || strcmp(mode, "idle_exclusive") == 0)
        quiet_mode(strcmp(mode, "idle_exclusive") == 0);
    else
        idle_mode();
    return lab_finish(argv[0]);
}
