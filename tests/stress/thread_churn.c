/* thread_churn.c — 10 000 short-lived threads, created and joined in waves of a few, passing
 * blocks to each other through a shared exchange, so heaps are abandoned at thread exit with
 * live blocks in them and adopted later (DESIGN.md, "Threads"; issue 5: RSS stays flat). The
 * live set is bounded (the exchange holds at most 4096 blocks), so RSS may grow while the
 * exchange and the pool warm up, and must then stay flat: over the second half of the run it
 * may not exceed its value at half-way by more than 5 % + 1 MiB (a leak of half a KiB per
 * thread, 2.4 MiB over the second half, would). Measured every 10 %, after malloc_trim(0), so
 * that memory still waiting for the purge delay does not count (the peak is also printed
 * without it). Usage: stress_thread_churn [threads] [alive at a time]. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

#include "lab_check.h"

enum { EXCHANGE = 4096, PER_THREAD = 200 };

struct block {
    void *p;
    size_t size;
};

static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block exchange[EXCHANGE];
static size_t exchange_count;
static atomic_long passed_on;

static size_t pick_size(uint64_t *seed)
{
    uint64_t r = lab_rand(seed);
    if (r % 100 == 0)
        return 16384 + (size_t)(r >> 32) % 100000;
    return 8 + (size_t)(r >> 32) % 2000;
}

static void check_and_free(struct block b)
{
    size_t bad = lab_canary_check(b.p, b.size);
    CHECK(bad == SIZE_MAX, "block %p size %zu damaged at byte %zu", b.p, b.size, bad);
    free(b.p);
}

static void *short_life(void *arg)
{
    uint64_t seed = 0xABCDEFull + (uintptr_t)arg * 7919;
    struct block mine[PER_THREAD];
    int n = 0;
    /* Take over (and free) up to 32 blocks that earlier, possibly dead, threads left behind. */
    struct block taken[32];
    int t = 0;
    pthread_mutex_lock(&exchange_lock);
    while (t < 32 && exchange_count > 0)
        taken[t++] = exchange[--exchange_count];
    pthread_mutex_unlock(&exchange_lock);
    for (int i = 0; i < t; i++)
        check_and_free(taken[i]);
    for (; n < PER_THREAD; n++) {
        mine[n].size = pick_size(&seed);
        mine[n].p = malloc(mine[n].size);
        CHECK(mine[n].p != NULL, "malloc(%zu) failed", mine[n].size);
        if (!mine[n].p) break;
        lab_canary_fill(mine[n].p, mine[n].size);
    }
    /* Free most of them here, leave about a sixth to outlive this thread. */
    long given = 0;
    for (int i = 0; i < n; i++) {
        if (i % 6 == 0) {
            pthread_mutex_lock(&exchange_lock);
            int room = exchange_count < EXCHANGE;
            if (room)
                exchange[exchange_count++] = mine[i];
            pthread_mutex_unlock(&exchange_lock);
            if (room) {
                given++;
                continue;
            }
        }
        check_and_free(mine[i]);
    }
    atomic_fetch_add(&passed_on, given);
    return NULL;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 10000;
    int wave = argc > 2 ? atoi(argv[2]) : 4;
    if (wave < 1 || wave > 64) wave = 4;
    SAY("%ld threads in waves of %d, passing blocks between them; RSS must level off", total, wave);
    long half_rss = -1, late_peak = 0, peak = 0;
    pthread_t t[64];
    for (long done = 0; done < total;) {
        int k = 0;
        for (; k < wave && done + k < total; k++)
            if (pthread_create(&t[k], NULL, short_life, (void *)(uintptr_t)(done + k)) != 0) {
                CHECK(0, "pthread_create failed after %ld threads", done + k);
                break;
            }
        for (int i = 0; i < k; i++)
            pthread_join(t[i], NULL);
        if (k == 0) break;
        done += k;
        long rss = lab_rss_kib();
        if (rss > peak) peak = rss;
        if (done * 10 / total != (done - k) * 10 / total) {
            /* every tenth: what is kept, not what the purge has yet to reach (free memory
             * goes back only after the purge delay, and the background purge runs late on a
             * loaded machine): malloc_trim first */
            malloc_trim(0);
            long kept = lab_rss_kib();
            if (half_rss >= 0 && kept > late_peak) late_peak = kept;
            if (half_rss < 0 && done >= total / 2)
                half_rss = kept;
            SAY("  %ld threads: RSS %ld KiB, %ld KiB after malloc_trim(0)", done, rss, kept);
        }
    }
    malloc_trim(0);
    long final_rss = lab_rss_kib();
    pthread_mutex_lock(&exchange_lock);
    while (exchange_count > 0)
        check_and_free(exchange[--exchange_count]);
    pthread_mutex_unlock(&exchange_lock);
    SAY("RSS after trims: at half-way %ld KiB, highest after it %ld KiB, at the end %ld KiB; peak %ld KiB; %ld "
        "blocks outlived their thread", half_rss, late_peak, final_rss, peak, atomic_load(&passed_on));
    CHECK(half_rss > 0 && final_rss > 0, "could not read /proc/self/statm");
    long bound = half_rss + half_rss / 20 + 1024;
    CHECK(late_peak <= bound && final_rss <= bound,
          "RSS not flat: %ld KiB at half-way, up to %ld KiB later (bound %ld KiB)", half_rss,
          late_peak > final_rss ? late_peak : final_rss, bound);
    return lab_finish("thread_churn");
}
