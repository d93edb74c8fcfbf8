/* fork_in_handler.c — fork() from a signal handler that interrupted the allocator, as a program
 * that spawns a helper from a timer or SIGCHLD handler does. A 2 ms timer's handler forks (the
 * child exits at once, as POSIX asks of a child that has not exec'd yet) while the program
 * allocates and frees 3 MiB blocks (the huge cache's lock held for much of the time) and, with
 * `threads`, two more threads allocate small and page-sized blocks. The fork's handlers took
 * every lock of the allocator; one this thread already held was waited for forever (found by
 * review: the single-threaded program hung within two seconds, every time). Passes if it ends.
 * `threads_mmap`: `threads` with LABYRINTH_MMAP=1 (ctest): a handler that interrupted a thread
 * holding a zone lock waited for the mmap pool's lock, held by another thread's fork, which
 * waited for that zone lock (found by review: hung 5 runs in 5). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "lab_check.h"

static atomic_long forks, failed_children;
static atomic_int stop;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    if (p > 0) {
        int st = 0;
        if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            atomic_fetch_add(&failed_children, 1);
        atomic_fetch_add(&forks, 1);
    }
    errno = saved;
}

static void *churn(void *arg)
{
    uint64_t s = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *keep[64] = {0};
    while (!atomic_load(&stop)) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        unsigned k = (unsigned)(s % 64);
        free(keep[k]);
        size_t n = (s >> 8) % 8 ? 16 + (s >> 16) % 2000 : 40000 + (s >> 16) % 200000;
        keep[k] = malloc(n);
        CHECK(keep[k] != NULL, "malloc(%zu)", n);
        if (keep[k])
            memset(keep[k], 1, 16);
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 && strncmp(argv[1], "threads", 7) == 0; /* threads, threads_mmap */
    SAY("a timer's handler forks while the program allocates 3 MiB blocks%s",
        threads ? ", two threads small and page-sized ones" : "");
    pthread_t t[2];
    for (int i = 0; threads && i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0, "pthread_create");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
    struct itimerval it = {{0, 2000}, {0, 2000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long rounds = 0;
    do {
        for (int i = 0; i < 100; i++) {
            char *p = malloc((size_t)3 << 20);
            CHECK(p != NULL, "malloc(3 MiB)");
            if (p) {
                p[0] = 1;
                p[((size_t)3 << 20) - 1] = 2;
            }
            free(p);
        }
        rounds++;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 < 2000);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; threads && i < 2; i++)
        pthread_join(t[i], NULL);
    SAY("%ld rounds of 100 blocks, %ld forks from the handler", rounds, atomic_load(&forks));
    CHECK(atomic_load(&forks) > 0, "no fork ran");
    CHECK(atomic_load(&failed_children) == 0, "%ld children failed", atomic_load(&failed_children));
    return lab_finish(argc > 1 ? argv[1] : "fork_in_handler");
}
