/* signal_flip.c — a handler set with SA_SIGINFO is always called with its siginfo: one thread
 * switches SIGUSR1 between an SA_SIGINFO handler and a plain one while another sends it to a
 * third, at full speed, for LAB_FLIP_MS milliseconds (3 000). The preload's wrapper reads the
 * program's handler and its flags as one word; read apart, it paired one sigaction's handler
 * with the other's flags now and then, and called the SA_SIGINFO handler without a siginfo
 * (found by review: a few calls in 100 000). Passes on glibc alone too. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>

#include "lab_check.h"

static atomic_long good, bad, plain;
static atomic_int stop, receiver;

static void on_info(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char here;
    /* a real siginfo sits on this signal's frame, just above the handler's own */
    uintptr_t d = (uintptr_t)si - (uintptr_t)&here;
    if (sig == SIGUSR1 && d < (1u << 16) && si->si_signo == SIGUSR1)
        atomic_fetch_add_explicit(&good, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&bad, 1, memory_order_relaxed);
}

static void on_plain(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&plain, 1, memory_order_relaxed);
}

static void *receive(void *arg)
{
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    atomic_store(&receiver, (int)syscall(SYS_gettid));
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        ;
    return NULL;
}

static void *send_to_receiver(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        syscall(SYS_tgkill, getpid(), atomic_load(&receiver), SIGUSR1);
    return NULL;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

int main(void)
{
    const char *e = getenv("LAB_FLIP_MS");
    long ms = e ? atol(e) : 3000;
    struct sigaction with_info, without;
    memset(&with_info, 0, sizeof with_info);
    memset(&without, 0, sizeof without);
    with_info.sa_sigaction = on_info;
    with_info.sa_flags = SA_SIGINFO;
    without.sa_handler = on_plain;
    CHECK(sigaction(SIGUSR1, &with_info, NULL) == 0, "sigaction");
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL); /* only the receiver takes it */
    pthread_t r, w;
    CHECK(pthread_create(&r, NULL, receive, NULL) == 0, "pthread_create");
    while (!atomic_load(&receiver))
        usleep(100);
    CHECK(pthread_create(&w, NULL, send_to_receiver, NULL) == 0, "pthread_create");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long flips = 0;
    while (ms_since(&t0) < ms && !atomic_load(&bad)) {
        for (int i = 0; i < 1000; i++) {
            sigaction(SIGUSR1, &with_info, NULL);
            sigaction(SIGUSR1, &without, NULL);
        }
        flips += 1000;
    }
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    SAY("%ld switches: SA_SIGINFO handler called %ld times with its siginfo, %ld without; plain %ld",
        flips, atomic_load(&good), atomic_load(&bad), atomic_load(&plain));
    CHECK(atomic_load(&good) > 0 && atomic_load(&plain) > 0, "a handler never ran");
    CHECK(atomic_load(&bad) == 0, "the SA_SIGINFO handler was called without its siginfo %ld times",
          atomic_load(&bad));
    return lab_finish("signal_flip");
}
