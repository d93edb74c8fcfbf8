/* signal_nest.c — handlers that interrupt each other while the threads they interrupt are inside
 * the allocator. Three timers (SIGALRM, SIGUSR1, SIGUSR2, 37-59 us) fire on two threads that
 * allocate and free blocks with a canary in every byte; each handler mallocs, callocs, reallocs
 * and frees, checking every block. A handler that interrupts the allocator runs on a signal heap;
 * one that interrupted such a handler's wrapper where the wrapper calls into libc (errno's
 * address, the sigreturn trampoline) ran on the thread's heap still half changed below, and the
 * heaps broke (found by review under LABYRINTH_SECURE=1, whose batch refill is a long window: 9
 * of 16 runs of two such programs failed). Runs for LAB_NEST_SECONDS (6) seconds; the count of
 * handler runs and of NULLs (a nested call may get none) is printed. Without the preload glibc's
 * malloc is not safe in handlers: the test skips. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "lab_check.h"

static atomic_long runs, nulls;
static atomic_int stop;

static void die(const char *m)
{
    if (write(2, m, strlen(m)) < 0)
        _exit(3);
    abort();
}

static void handler(int sig)
{
    int e = errno;
    long k = atomic_fetch_add(&runs, 1);
    size_t n = 16 + (size_t)(k * 131 + sig * 7) % 3000;
    unsigned char *p = malloc(n);
    if (!p) {
        nulls++;
        errno = e;
        return;
    }
    memset(p, sig, n);
    unsigned char *q = calloc(1, n / 2 + 1);
    if (q)
        for (size_t i = 0; i < n / 2 + 1; i++)
            if (q[i])
                die("FAIL: a handler's calloc block is not zero\n");
    unsigned char *r = realloc(p, n * 2);
    if (r)
        p = r;
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)sig)
            die("FAIL: a handler's block changed\n");
    free(q);
    free(p);
    errno = e;
}

static void *churn(void *arg)
{
    uint64_t s = (uintptr_t)arg * 99991 + 1;
    enum { K = 128 };
    unsigned char *b[K] = {0};
    size_t len[K] = {0};
    while (!atomic_load(&stop)) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        unsigned i = (unsigned)(s % K);
        if (b[i]) {
            for (size_t j = 0; j < len[i]; j++)
                if (b[i][j] != (unsigned char)(i ^ len[i]))
                    die("FAIL: a thread's block changed\n");
            free(b[i]);
        }
        len[i] = 1 + (size_t)(s >> 24) % ((s & 1) ? 600 : 70000);
        b[i] = (s & 2) ? malloc(len[i]) : realloc(NULL, len[i]);
        if (!b[i])
            die("FAIL: malloc\n");
        memset(b[i], (unsigned char)(i ^ len[i]), len[i]);
    }
    for (unsigned i = 0; i < K; i++)
        free(b[i]);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!lab_expect_labyrinth()) {
        printf("signal_nest: glibc's malloc is not safe in handlers; skipped\n");
        return 77;
    }
    const char *env = getenv("LAB_NEST_SECONDS");
    int seconds = env ? atoi(env) : 6;
    static const int sigs[3] = {SIGALRM, SIGUSR1, SIGUSR2};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++)
        CHECK(sigaction(sigs[i], &sa, NULL) == 0, "sigaction");
    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, churn, (void *)(i + 1)) == 0, "pthread_create");
    timer_t tm[3];
    for (int i = 0; i < 3; i++) {
        struct sigevent ev;
        memset(&ev, 0, sizeof ev);
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = sigs[i];
        CHECK(timer_create(CLOCK_MONOTONIC, &ev, &tm[i]) == 0, "timer_create");
        struct itimerspec its = {{0, 37000 + i * 11000}, {0, 37000 + i * 11000}};
        CHECK(timer_settime(tm[i], 0, &its, NULL) == 0, "timer_settime");
    }
    sigset_t m; /* the signals go to the two threads */
    sigemptyset(&m);
    for (int i = 0; i < 3; i++)
        sigaddset(&m, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &m, NULL);
    sleep((unsigned)seconds);
    for (int i = 0; i < 3; i++)
        timer_delete(tm[i]);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("signal_nest: %ld handler runs, %ld NULLs\n", atomic_load(&runs), atomic_load(&nulls));
    CHECK(atomic_load(&runs) > 1000, "the handlers ran %ld times", atomic_load(&runs));
    return lab_finish("signal_nest");
}
