/* stats_counts.c — the summary's counts against what this program did (found by review: a thread
 * that made only page-sized and huge blocks was not counted, their frees nowhere, and nothing said
 * where a class's memory went). A thread without small blocks makes and frees 20 page-sized and 3
 * huge blocks; main holds 1 000 blocks of 4 500 bytes (the 4 608-byte class, which nothing else
 * here uses) and reads malloc_stats()'s summary: the counts, and the class's line (its blocks out
 * are the ones held, its spans hold them). Labyrinth only (skipped elsewhere). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include "lab_check.h"

enum { LARGE = 20, HUGE = 3, HELD = 1000, HELD_SIZE = 4500, CLASS = 4608 };

static void *big_only(void *arg)
{
    (void)arg;
    for (int i = 0; i < LARGE; i++) {
        char *p = malloc(100000);
        CHECK(p != NULL, "malloc(100000)");
        if (p)
            p[0] = p[99999] = 1;
        free(p);
    }
    for (int i = 0; i < HUGE; i++) {
        char *p = malloc(4u << 20);
        CHECK(p != NULL, "malloc(4 MiB)");
        if (p)
            p[0] = 1;
        free(p);
    }
    return NULL;
}

static pthread_mutex_t live_hold = PTHREAD_MUTEX_INITIALIZER;
static atomic_int live_done;

/* Page-sized blocks only (no heap), then alive until main lets go. */
static void *big_then_wait(void *arg)
{
    (void)arg;
    for (int i = 0; i < LARGE; i++) {
        char *p = malloc(100000 + (size_t)i * 4096);
        CHECK(p != NULL, "malloc");
        if (p)
            p[0] = 1;
        free(p);
    }
    atomic_store(&live_done, 1);
    pthread_mutex_lock(&live_hold);
    pthread_mutex_unlock(&live_hold);
    return NULL;
}

/* The number after "key " in text (a field of the summary), or -1. */
static long field(const char *text, const char *key) { return lab_stats_field(text, key); }

int main(void)
{
    if (!lab_expect_labyrinth())
        return LAB_SKIP;
    static char text[1 << 16];
    void *held[HELD];
    for (int i = 0; i < HELD; i++) {
        held[i] = malloc(HELD_SIZE);
        CHECK(held[i] != NULL, "malloc(%d)", HELD_SIZE);
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, big_only, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);

    CHECK(lab_malloc_stats_text(text, sizeof text) > 0, "malloc_stats: nothing caught (%s)", strerror(errno));
    long large_before = field(text, "large"), frees_before = field(text, "large_frees");

    /* a thread without a heap that is still alive: its counts are in its own record (the pool's
     * room set, no atomics), summed on demand */
    pthread_t live;
    CHECK(pthread_mutex_lock(&live_hold) == 0, "lock");
    CHECK(pthread_create(&live, NULL, big_then_wait, NULL) == 0, "pthread_create");
    while (!atomic_load(&live_done))
        usleep(1000);
    static char text2[1 << 16];
    CHECK(lab_malloc_stats_text(text2, sizeof text2) > 0, "malloc_stats: nothing caught (%s)", strerror(errno));
    CHECK(field(text2, "large") >= large_before + LARGE, "live thread: large %ld, wanted at least %ld",
          field(text2, "large"), large_before + LARGE);
    CHECK(field(text2, "large_frees") >= frees_before + LARGE, "live thread: large_frees %ld, wanted at least %ld",
          field(text2, "large_frees"), frees_before + LARGE);
    pthread_mutex_unlock(&live_hold);
    pthread_join(live, NULL);

    CHECK(field(text, "large") >= LARGE, "large %ld, wanted at least %d: %.300s", field(text, "large"), LARGE, text);
    CHECK(field(text, "large_frees") >= LARGE, "large_frees %ld, wanted at least %d", field(text, "large_frees"),
          LARGE);
    CHECK(field(text, "huge") >= HUGE, "huge %ld, wanted at least %d", field(text, "huge"), HUGE);
    CHECK(field(text, "huge_frees") >= HUGE, "huge_frees %ld, wanted at least %d", field(text, "huge_frees"), HUGE);
    CHECK(field(text, "pid") == (long)getpid(), "pid %ld, not %d", field(text, "pid"), (int)getpid());
    CHECK(strstr(text, "program preload_stats_counts") != NULL, "no program name: %.400s", text);

    /* the class's line: "labyrinth stats: class size 4608, spans S, span_kib K, blocks B, out O, ..." */
    char key[64];
    snprintf(key, sizeof key, "labyrinth stats: class size %d,", CLASS);
    const char *line = strstr(text, key);
    CHECK(line != NULL, "no line for class %d: %.2000s", CLASS, text);
    if (line) {
        long spans = field(line, "spans"), kib = field(line, "span_kib"), blocks = field(line, "blocks"),
             out = field(line, "out"), out_kib = field(line, "out_kib");
        CHECK(out == HELD, "class %d: out %ld, wanted the %d blocks held", CLASS, out, HELD);
        CHECK(out_kib == (long)HELD * CLASS / 1024, "out_kib %ld", out_kib);
        CHECK(blocks >= HELD && blocks < HELD + 2 * 32768 / CLASS * spans, "blocks %ld in %ld spans", blocks, spans);
        CHECK(kib >= out_kib && kib <= out_kib + 32 * spans, "span_kib %ld for %ld KiB out in %ld spans", kib,
              out_kib, spans);
    }
    const char *runs = strstr(text, "labyrinth stats: runs span_kib ");
    CHECK(runs != NULL, "no runs line");
    if (runs) /* the classes' total: at least the held blocks */
        CHECK(field(runs, "out_kib") >= (long)HELD * CLASS / 1024, "runs: out_kib %ld", field(runs, "out_kib"));

    for (int i = 0; i < HELD; i++)
        free(held[i]);
    return lab_failures ? 1 : 0;
}
