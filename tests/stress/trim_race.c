/* trim_race.c — malloc_trim(0) in a loop while producers allocate bursts of small blocks (whole
 * spans of them), hand most of them to consumers that check and free them, free the rest
 * themselves a little later, and now and then sleep. malloc_trim gives back, without their
 * owner, the spans of a producer whose blocks have all been freed elsewhere (arena.c,
 * lab_arena_return_idle): this races it against the owner's own allocations and local frees.
 * Now and then a burst ends with a page-sized block of a page count that is not a power of two:
 * its run goes to the run room of the thread that frees it (pool.c), which the trimmer takes
 * while that thread idles or allocates. Every block carries a canary checked before it is freed:
 * a span or run given back while one of its blocks was still live, or handed out twice, shows up
 * as damage.
 * Usage: stress_trim_race [producers] [consumers] [seconds] [quiet].
 * quiet: no malloc_trim thread; with Labyrinth's purge thread running (LABYRINTH_BACKGROUND_PURGE),
 * its wake-ups are counted: messages that come and go while their owners take them may wake it
 * about once per purge delay, not once per message (a version that let every message wake it
 * while it waited out a delay woke about 3500 times in 3 s here), so at most 20 times a delay. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lab_check.h"

enum { QUEUE = 8192, BURST = 1500, KEEP = 256, MAX_THREADS = 16 };

struct block {
    void *p;
    size_t size;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t nonempty, nonfull;
    size_t head, count;
    struct block items[QUEUE];
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {{0}}};

static double seconds = 3.0;
static bool quiet; /* steady small blocks, no pauses, no malloc_trim: see the usage above */
static atomic_int producers_left;
static atomic_long made, freed_remote, trims;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check_and_free(struct block b, const char *how)
{
    size_t bad = lab_canary_check(b.p, b.size);
    CHECK(bad == SIZE_MAX, "%s block %p size %zu damaged at byte %zu", how, b.p, b.size, bad);
    free(b.p);
}

static void put(struct block b)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == QUEUE)
        pthread_cond_wait(&q.nonfull, &q.lock);
    q.items[(q.head + q.count++) % QUEUE] = b;
    pthread_cond_signal(&q.nonempty);
    pthread_mutex_unlock(&q.lock);
}

/* false when every producer has finished and the queue is empty */
static bool take(struct block *b)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && atomic_load(&producers_left) > 0)
        pthread_cond_wait(&q.nonempty, &q.lock);
    bool ok = q.count > 0;
    if (ok) {
        *b = q.items[q.head];
        q.head = (q.head + 1) % QUEUE;
        q.count--;
        pthread_cond_signal(&q.nonfull);
    }
    pthread_mutex_unlock(&q.lock);
    return ok;
}

static void *producer(void *arg)
{
    uint64_t seed = 0x7E1Aull * ((uint64_t)(uintptr_t)arg + 1);
    static const size_t sizes[] = {16, 48, 64, 200, 1000};
    struct block keep[KEEP] = {{0}};
    double end = now() + seconds;
    while (now() < end) {
        uint64_t pick = lab_rand(&seed);
        /* quiet: sizes whose spans stay in use, so the pool has nothing to purge and the purge
         * thread sleeps with nothing to wait for, where only a message can wake it */
        size_t size = sizes[pick % (quiet ? 3 : 5)];
        /* every other burst is sent whole: its full spans come back entirely from consumers */
        bool send_all = (pick >> 8) & 1;
        for (int i = 0; i < BURST; i++) {
            struct block b = {malloc(size), size};
            CHECK(b.p != NULL, "malloc(%zu) failed", size);
            if (!b.p)
                continue;
            lab_canary_fill(b.p, b.size);
            atomic_fetch_add(&made, 1);
            uint64_t r = lab_rand(&seed);
            if (send_all || r % 10 != 0) {
                put(b);
                continue;
            }
            /* kept a while, then freed here: local frees into spans the trimmer looks at */
            unsigned slot = (unsigned)((r >> 8) % KEEP);
            if (keep[slot].p)
                check_and_free(keep[slot], "kept");
            keep[slot] = b;
        }
        if (!quiet && (pick >> 16) % 4 == 0) {
            /* 9, 25, 41 or 57 pages less 100 bytes: runs, never a whole order; few sizes, so
             * that the rooms' runs are taken again as well as taken away */
            size_t big = (9 + 16 * (size_t)((pick >> 24) % 4)) * 4096 - 100;
            struct block b = {malloc(big), big};
            CHECK(b.p != NULL, "malloc(%zu) failed", big);
            if (b.p) {
                lab_canary_fill(b.p, b.size);
                atomic_fetch_add(&made, 1);
                unsigned slot = (unsigned)((pick >> 40) % KEEP);
                if ((pick >> 20) & 1) {
                    put(b); /* into a consumer's run room */
                } else {
                    if (keep[slot].p)
                        check_and_free(keep[slot], "kept");
                    keep[slot] = b;
                }
            }
        }
        if (!quiet && lab_rand(&seed) % 4 == 0)
            usleep(500); /* idle: only malloc_trim can move what was freed to us */
    }
    for (unsigned i = 0; i < KEEP; i++)
        if (keep[i].p)
            check_and_free(keep[i], "kept");
    if (atomic_fetch_sub(&producers_left, 1) == 1) {
        pthread_mutex_lock(&q.lock);
        pthread_cond_broadcast(&q.nonempty);
        pthread_mutex_unlock(&q.lock);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    struct block b;
    while (take(&b)) {
        check_and_free(b, "received");
        atomic_fetch_add(&freed_remote, 1);
    }
    return NULL;
}

static void *trimmer(void *arg)
{
    (void)arg;
    atomic_store(&trims, lab_trim_while(&producers_left));
    return NULL;
}

int main(int argc, char **argv)
{
    int np = argc > 1 ? atoi(argv[1]) : 3, nc = argc > 2 ? atoi(argv[2]) : 2;
    if (argc > 3)
        seconds = atof(argv[3]);
    quiet = argc > 4 && !strcmp(argv[4], "quiet");
    np = np < 1 ? 1 : np > MAX_THREADS ? MAX_THREADS : np;
    nc = nc < 1 ? 1 : nc > MAX_THREADS ? MAX_THREADS : nc;
    SAY("%d producers, %d consumers, %s, %.1f s; canary checked before every free", np, nc,
        quiet ? "no malloc_trim" : "a thread calling malloc_trim(0) without pause", seconds);
    long woke0 = quiet ? lab_thread_switches("labyrinth-purge") : 0;
    atomic_store(&producers_left, np);
    pthread_t t[2 * MAX_THREADS + 1];
    int n = 0;
    for (int i = 0; i < np; i++)
        CHECK(pthread_create(&t[n++], NULL, producer, (void *)(uintptr_t)i) == 0, "pthread_create");
    for (int i = 0; i < nc; i++)
        CHECK(pthread_create(&t[n++], NULL, consumer, NULL) == 0, "pthread_create");
    if (!quiet)
        CHECK(pthread_create(&t[n++], NULL, trimmer, NULL) == 0, "pthread_create");
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    SAY("%ld blocks, %ld freed by a consumer, %ld trims", atomic_load(&made), atomic_load(&freed_remote),
        atomic_load(&trims));
    CHECK(atomic_load(&freed_remote) > 0 && (quiet || atomic_load(&trims) > 0), "nothing raced");
    if (quiet && lab_expect_labyrinth() && lab_threads_named("labyrinth-purge") == 1) {
        const char *d = getenv("LABYRINTH_PURGE_DELAY_MS");
        double delay = d ? atof(d) / 1000 : 1.0;
        long woke = lab_thread_switches("labyrinth-purge") - woke0;
        SAY("the purge thread woke %ld times in %.1f s (purge delay %.3f s)", woke, seconds, delay);
        CHECK(woke >= 0 && woke <= (long)(20 * (seconds / delay + 1)), "the purge thread woke %ld times", woke);
    }
    return lab_finish("trim_race");
}
