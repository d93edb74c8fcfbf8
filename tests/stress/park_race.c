/* park_race.c — threads that allocate a batch of blocks and free it all, round after round (each
 * round's frees empty their classes' current spans, which Labyrinth parks: core/arena.c, parked
 * spans), while another thread calls malloc_trim(0) without pause, which gives every other
 * thread's parked spans back to the pool (lab_arena_return_idle), racing the owners taking them
 * back for their next round. Some rounds end with a short sleep, so that a trim finds the spans
 * parked. Every block carries a canary, checked before it is freed: a span given back under an
 * owner that had taken it back shows up as damage (or as a block handed out twice, whose canaries
 * then overwrite each other); a version whose trims took the parked word without the exchange
 * crashed in its first second.
 * Usage: stress_park_race [threads] [seconds]. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lab_check.h"

enum { ROUND = 400, MAX_THREADS = 16 };

static double seconds = 3.0;
static atomic_int workers_left;
static atomic_long rounds, trims;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *worker(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    void *p[ROUND];
    size_t n[ROUND];
    double end = now() + seconds;
    long r = 0;
    while (now() < end) {
        for (int i = 0; i < ROUND; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            /* blocks up to 8 KiB (spans of 32 KiB, which park), mostly small */
            n[i] = (s >> 60) ? 16 + (size_t)((s >> 20) % 1024) : 1024 + (size_t)((s >> 20) % 7168);
            p[i] = malloc(n[i]);
            CHECK(p[i] != NULL, "malloc(%zu)", n[i]);
            if (!p[i])
                return NULL;
            lab_canary_fill(p[i], n[i]);
        }
        for (int i = 0; i < ROUND; i++) {
            size_t bad = lab_canary_check(p[i], n[i]);
            CHECK(bad == SIZE_MAX, "block %p size %zu damaged at byte %zu", p[i], n[i], bad);
            free(p[i]);
        }
        if (++r % 8 == 0)
            usleep(200);
    }
    atomic_fetch_add(&rounds, r);
    atomic_fetch_sub(&workers_left, 1);
    return NULL;
}

static void *trimmer(void *arg)
{
    (void)arg;
    atomic_store(&trims, lab_trim_while(&workers_left));
    return NULL;
}

int main(int argc, char **argv)
{
    int nt = argc > 1 ? atoi(argv[1]) : 3;
    if (argc > 2)
        seconds = atof(argv[2]);
    nt = nt < 1 ? 1 : nt > MAX_THREADS ? MAX_THREADS : nt;
    SAY("%d threads freeing whole batches, a thread calling malloc_trim(0) without pause, %.1f s", nt, seconds);
    atomic_store(&workers_left, nt);
    pthread_t t[MAX_THREADS + 1];
    for (int i = 0; i < nt; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0, "pthread_create");
    CHECK(pthread_create(&t[nt], NULL, trimmer, NULL) == 0, "pthread_create");
    for (int i = 0; i <= nt; i++)
        pthread_join(t[i], NULL);
    SAY("%ld rounds of %d blocks, %ld trims", atomic_load(&rounds), ROUND, atomic_load(&trims));
    CHECK(atomic_load(&rounds) > 0 && atomic_load(&trims) > 0, "nothing raced");
    return lab_finish("park_race");
}
