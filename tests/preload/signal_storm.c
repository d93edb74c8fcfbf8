/* signal_storm.c — Labyrinth only: two threads allocate and free mixed sizes (16 B .. 200 KiB)
 * at full speed with canaries, while a 20 kHz timer's handler, delivered to either thread,
 * allocates, checks and frees blocks of its own (small, page-sized, calloc, realloc). No hang
 * (ctest's timeout), no damaged block, errno untouched by the handler. DESIGN.md promises this
 * through signal heaps; glibc can deadlock here, so without LAB_EXPECT_LABYRINTH it skips. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static atomic_long handler_runs, handler_nulls, damaged, errno_changed;
static atomic_int stop;

static uint8_t tag(const void *p, size_t n) { return (uint8_t)(((uintptr_t)p >> 4) ^ n ^ 0x3c); }

static void on_alarm(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    long k = atomic_fetch_add(&handler_runs, 1);
    size_t n = k % 7 == 0 ? 40000 + (size_t)k % 9000 : 16 + (size_t)k % 900;
    uint8_t *p = (k % 3 == 0) ? calloc(1, n) : malloc(n);
    if (!p) {
        atomic_fetch_add(&handler_nulls, 1);
        return;
    }
    if (k % 3 == 0 && (p[0] || p[n - 1]))
        atomic_fetch_add(&damaged, 1);
    memset(p, tag(p, n), n);
    if (k % 5 == 0) {
        uint8_t *q = realloc(p, n * 2);
        if (q) {
            if (q[0] != tag(p, n) || q[n - 1] != tag(p, n))
                atomic_fetch_add(&damaged, 1);
            p = q;
            n *= 2;
            memset(p, tag(p, n), n);
        }
    }
    if (p[0] != tag(p, n) || p[n - 1] != tag(p, n))
        atomic_fetch_add(&damaged, 1);
    free(p);
}

static void *worker(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    enum { SLOTS = 256 };
    void *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        unsigned i = (unsigned)(s % SLOTS);
        if (slot[i]) {
            uint8_t *p = slot[i];
            if (p[0] != tag(p, len[i]) || p[len[i] - 1] != tag(p, len[i]))
                atomic_fetch_add(&damaged, 1);
            free(p);
        }
        len[i] = (s >> 20) % 40 == 0 ? 4096 + (s >> 30) % 200000 : 1 + (s >> 30) % 1000;
        errno = 1234;
        uint8_t *p = malloc(len[i]);
        if (errno != 1234 && p)
            atomic_fetch_add(&errno_changed, 1);
        if (p)
            p[0] = p[len[i] - 1] = tag(p, len[i]);
        slot[i] = p;
    }
    for (unsigned i = 0; i < SLOTS; i++)
        free(slot[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *e = getenv("LAB_EXPECT_LABYRINTH");
    if (!e || strcmp(e, "1")) {
        printf("signal_storm: skipped (Labyrinth only)\n");
        return 77;
    }
    int seconds = argc > 1 ? atoi(argv[1]) : 3;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct sigaction check;
    sigaction(SIGALRM, NULL, &check);
    if (check.sa_sigaction != on_alarm || !(check.sa_flags & SA_SIGINFO)) {
        printf("signal_storm: sigaction does not report the program's own handler\n");
        return 1;
    }
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, (void *)(i + 1));
    struct itimerval it = {{0, 50}, {0, 50}}; /* 20 kHz */
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec d = {seconds, 0};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("signal_storm: %ld handler runs, %ld got NULL, %ld damaged, %ld errno changes\n",
           atomic_load(&handler_runs), atomic_load(&handler_nulls), atomic_load(&damaged),
           atomic_load(&errno_changed));
    int bad = atomic_load(&damaged) || atomic_load(&errno_changed) || atomic_load(&handler_runs) < 1000;
    return bad ? 1 : 0;
}
