/* signal_reentry.c — Labyrinth only: a signal handler that allocates while the interrupted thread
 * is inside malloc or free. DESIGN.md promises that nested calls take only the lock-free reserve
 * paths (they may return NULL, never deadlock or corrupt). glibc does not promise this (malloc is
 * not async-signal-safe and can deadlock here), so the test skips without LAB_EXPECT_LABYRINTH. */
#define _GNU_SOURCE
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lab_check.h"

enum { SLOTS = 512 };

static atomic_long handler_calls, handler_nulls, handler_bad;
static atomic_int stop;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    size_t n = 16 + (size_t)(atomic_load_explicit(&handler_calls, memory_order_relaxed) % 500);
    void *p = malloc(n);
    if (p == NULL) {
        atomic_fetch_add(&handler_nulls, 1);
    } else {
        lab_canary_fill(p, n);
        if (lab_canary_check(p, n) != SIZE_MAX)
            atomic_fetch_add(&handler_bad, 1);
        free(p);
    }
    atomic_fetch_add(&handler_calls, 1);
    errno = saved;
}

static void *pester(void *arg)
{
    pthread_t target = *(pthread_t *)arg;
    struct timespec pause = {0, 20000};
    while (!atomic_load(&stop)) {
        pthread_kill(target, SIGUSR1);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(void)
{
    if (!lab_expect_labyrinth()) {
        SAY("signal_reentry: only promised by labyrinth (set LAB_EXPECT_LABYRINTH=1); skipped");
        return LAB_SKIP;
    }
    SAY("malloc/free in a signal handler that interrupts malloc/free: no deadlock, no damage");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    alarm(40); /* a deadlock ends the process with SIGALRM: a failure with a name */

    pthread_t self = pthread_self(), t;
    CHECK(pthread_create(&t, NULL, pester, &self) == 0, "pthread_create");
    void *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    uint64_t seed = 77;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long ops = 0;
    do {
        for (int k = 0; k < 1000; k++, ops++) {
            unsigned i = (unsigned)(lab_rand(&seed) % SLOTS);
            if (slot[i]) {
                size_t bad = lab_canary_check(slot[i], size[i]);
                CHECK(bad == SIZE_MAX, "block of %zu damaged at %zu", size[i], bad);
                free(slot[i]);
            }
            uint64_t r = lab_rand(&seed);
            size[i] = r % 50 == 0 ? 20000 + r % 200000 : 1 + r % 1000;
            slot[i] = malloc(size[i]);
            if (slot[i]) lab_canary_fill(slot[i], size[i]);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        /* At least 2 s, and on a loaded machine longer, until the handler has run often. */
    } while (now.tv_sec - start.tv_sec < 2 ||
             (atomic_load(&handler_calls) < 1000 && now.tv_sec - start.tv_sec < 20));
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    alarm(0);
    SAY("%ld operations, %ld handler runs (%ld got NULL)", ops, atomic_load(&handler_calls),
        atomic_load(&handler_nulls));
    CHECK(atomic_load(&handler_bad) == 0, "%ld handler blocks damaged", atomic_load(&handler_bad));
    CHECK(atomic_load(&handler_calls) >= 1000, "the handler ran only %ld times in 20 s",
          atomic_load(&handler_calls));
    return lab_finish("signal_reentry");
}
