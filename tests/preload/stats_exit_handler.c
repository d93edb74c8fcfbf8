/* stats_exit_handler.c — with LABYRINTH_STATS=json (whose summary walks the pool's runs under its
 * locks), exit() from a signal handler that interrupted the allocator must still end the process:
 * it hung in 5 runs of 40 when the handler landed while the thread held a zone lock (found by
 * review). exit() is not async-signal-safe, but programs call it from handlers. 60 forked children
 * each allocate blocks of every kind in a loop until a timer's handler exits; each must end within
 * 10 s. Statistical: the old library hung about one child in eight. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "lab_check.h"

static void on_alarm(int sig)
{
    (void)sig;
    exit(0);
}

static void *short_thread(void *arg)
{
    (void)arg;
    return malloc(100);
}

static void child(unsigned seed)
{
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 0}, {0, 1000 + (seed % 7) * 317}};
    setitimer(ITIMER_REAL, &it, NULL);
    static void *v[512];
    for (;;) {
        int k = rand_r(&seed) % 512, r = rand_r(&seed) % 100;
        free(v[k]);
        v[k] = malloc(r < 60 ? (size_t)(rand_r(&seed) % 5000)
                      : r < 95 ? 40000 + (size_t)(rand_r(&seed) % 900000)
                               : ((size_t)1 << 20) + (size_t)(rand_r(&seed) % (4 << 20)));
        if (r == 0) {
            pthread_t t;
            if (pthread_create(&t, NULL, short_thread, NULL) == 0)
                pthread_join(t, NULL);
        }
        if (r == 1)
            malloc_trim(0);
    }
}

int main(void)
{
    SAY("exit() from a SIGALRM handler that interrupts the allocator, with the JSON summary on: 60 children");
    int hung = 0;
    for (unsigned i = 0; i < 60; i++) {
        pid_t pid = fork();
        if (pid == 0)
            child(i * 7919u + 1);
        CHECK(pid > 0, "fork");
        if (pid < 0)
            break;
        int st = 0;
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            if (waitpid(pid, &st, WNOHANG) == pid)
                break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - t0.tv_sec >= 10) {
                hung++;
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                break;
            }
            usleep(2000);
        }
    }
    CHECK(hung == 0, "%d of 60 children hung in exit", hung);
    return lab_finish("stats_exit_handler");
}
