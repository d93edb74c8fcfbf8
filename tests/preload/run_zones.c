/* run_zones.c — threads whose page-sized blocks meet on the store's lock move them to run zones of
 * their own (core/pool.c): blocks keep their contents across the move and across threads, a block
 * freed by another thread goes back to the zone that made it, fork() while threads allocate in
 * run zones leaves the child able to allocate at once (the fork handler locks and resets every
 * zone's lock, or a child waits for ever on one an allocating thread held), and after every
 * block is freed malloc_trim gives the zones' chunks back. A hung child is killed by its own
 * alarm and counts as a failure. Labyrinth only (skipped elsewhere).
 * Usage: preload_run_zones [forks]   (default 60). */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lab_check.h"

enum { THREADS = 3, LIVE = 24, KEEP = 6, CHILD_ALARM_S = 20 };

struct churn {
    unsigned id;
    char *keep[KEEP]; /* made last, in the zone the thread ended in: main frees them */
    size_t keep_n[KEEP];
};

static size_t page_sized(uint64_t *seed) { return 40000 + lab_rand(seed) % 400000; }

/* A canary over a block's first and last 4 KiB: over all of it, the threads spent their time
 * writing and reading and met on the lock too rarely to move. */
static void ends_fill(char *p, size_t n)
{
    lab_canary_fill(p, 4096);
    lab_canary_fill(p + n - 4096, 4096);
}

static bool ends_ok(const char *p, size_t n)
{
    return lab_canary_check(p, 4096) == SIZE_MAX && lab_canary_check(p + n - 4096, 4096) == SIZE_MAX;
}

static atomic_int stop;
/* A block each thread hands over now and then (exchanged in, the old one freed): a fork child
 * frees the ones it finds, each into the zone its thread made it in, under that zone's lock. */
static _Atomic(char *) handed[THREADS];

/* A handed block: its length in its first word, the canary after it. */
static char *handed_make(size_t n)
{
    char *h = malloc(n);
    CHECK(h != NULL, "malloc(%zu)", n);
    if (h) {
        memcpy(h, &n, sizeof n);
        ends_fill(h + 16, n - 16);
    }
    return h;
}

static bool handed_ok(const char *h)
{
    size_t n;
    memcpy(&n, h, sizeof n);
    return n >= 40000 && n < 440000 && ends_ok(h + 16, n - 16);
}

static void *churn(void *arg)
{
    struct churn *c = arg;
    uint64_t seed = 0x51ed27u + c->id;
    char *live[LIVE] = {0};
    size_t len[LIVE] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned k = (unsigned)(lab_rand(&seed) % LIVE);
        if (live[k] && !ends_ok(live[k], len[k]))
            CHECK(0, "thread %u: block of %zu damaged", c->id, len[k]);
        free(live[k]);
        len[k] = page_sized(&seed);
        live[k] = malloc(len[k]);
        CHECK(live[k] != NULL, "malloc(%zu)", len[k]);
        if (live[k])
            ends_fill(live[k], len[k]);
        if (k == 0)
            free(atomic_exchange(&handed[c->id], handed_make(page_sized(&seed))));
    }
    for (unsigned k = 0; k < LIVE; k++)
        free(live[k]);
    for (unsigned k = 0; k < KEEP; k++) {
        c->keep_n[k] = page_sized(&seed);
        c->keep[k] = malloc(c->keep_n[k]);
        CHECK(c->keep[k] != NULL, "malloc(%zu)", c->keep_n[k]);
        if (c->keep[k])
            ends_fill(c->keep[k], c->keep_n[k]);
    }
    return NULL;
}

static void *child_thread(void *arg)
{
    uint64_t seed = (uintptr_t)arg;
    for (int i = 0; i < 50; i++) {
        size_t n = page_sized(&seed);
        char *p = malloc(n);
        if (!p)
            return (void *)1;
        p[0] = p[n - 1] = 1;
        free(p);
    }
    return NULL;
}

/* The child: page-sized blocks from the forking thread (whose zone may be a run zone) and from a
 * new thread, then _exit. 0 when all went well. */
static int child_main(unsigned i)
{
    alarm(CHILD_ALARM_S);
    for (unsigned t = 0; t < THREADS; t++) {
        char *h = atomic_exchange(&handed[t], NULL);
        if (h && !handed_ok(h))
            return 4;
        free(h);
    }
    if (child_thread((void *)(uintptr_t)(i + 1)))
        return 1;
    pthread_t t;
    void *ret;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(i + 1000)) != 0 || pthread_join(t, &ret) != 0)
        return 2;
    return ret ? 3 : 0;
}

static long stats_field(const char *key)
{
    static char text[1 << 16];
    if (lab_malloc_stats_text(text, sizeof text) <= 0)
        return -1;
    return lab_stats_field(text, key);
}

int main(int argc, char **argv)
{
    if (!lab_expect_labyrinth())
        return LAB_SKIP;
    int forks = argc > 1 ? atoi(argv[1]) : 60;
    struct churn c[THREADS];
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        c[i] = (struct churn){.id = i};
        CHECK(pthread_create(&t[i], NULL, churn, &c[i]) == 0, "pthread_create");
    }
    /* three threads at once meet on the lock within milliseconds; a busy host makes it later */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long zones = 0;
    do {
        usleep(20000);
        zones = stats_field("run_zones");
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (zones < 1 && now.tv_sec - t0.tv_sec < 30);
    CHECK(zones >= 1, "no run zone made in 30 s of three threads' page-sized blocks (run_zones %ld)", zones);

    int bad = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_main((unsigned)i));
        CHECK(pid > 0, "fork");
        int st;
        if (pid > 0 && waitpid(pid, &st, 0) == pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            if (bad++ < 5)
                CHECK(0, "child %d: %s %d", i, WIFSIGNALED(st) ? "killed by signal" : "exit",
                      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
    }
    CHECK(bad == 0, "%d of %d children failed", bad, forks);

    atomic_store(&stop, 1);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (unsigned i = 0; i < THREADS; i++) {
        char *h = atomic_exchange(&handed[i], NULL);
        CHECK(!h || handed_ok(h), "thread %u's handed block damaged", i);
        free(h);
    }
    for (unsigned i = 0; i < THREADS; i++)
        for (unsigned k = 0; k < KEEP; k++) {
            if (c[i].keep[k] && !ends_ok(c[i].keep[k], c[i].keep_n[k]))
                CHECK(0, "thread %u's kept block %u damaged", i, k);
            free(c[i].keep[k]); /* from another thread: back to its own zone */
        }
    malloc_trim(0);
    /* every block freed: the run zones' chunks are unmapped by the trim (it walks every zone) */
    long mapped = stats_field("mapped_kib");
    CHECK(mapped >= 0 && mapped < 8 * 1024, "mapped_kib %ld after every page-sized block was freed and trimmed",
          mapped);
    return lab_failures ? 1 : 0;
}
