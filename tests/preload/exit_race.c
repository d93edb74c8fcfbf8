/* exit_race.c — the process exits while threads are still allocating: exit() runs atexit handlers
 * and library destructors (Labyrinth's stats and trim-on-exit among them) with other threads
 * inside malloc and free. Many programs end this way. Each of 30 children starts 8 churning
 * threads and returns from main; every child must exit 0 (the parent runs with
 * LABYRINTH_STATS=1 and LABYRINTH_TRIM_ON_EXIT=1 from ctest, which the children inherit). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lab_check.h"

enum { CHILDREN = 30, THREADS = 8 };

static void *churn(void *arg)
{
    uint64_t seed = 1 + (uintptr_t)arg;
    void *slot[64] = {0};
    for (;;) {
        unsigned i = (unsigned)(lab_rand(&seed) % 64);
        free(slot[i]);
        uint64_t r = lab_rand(&seed);
        slot[i] = malloc(r % 16 == 0 ? 100000 + r % 3000000 : 1 + r % 2000);
    }
    return NULL;
}

static int child(int k)
{
    alarm(20);
    pthread_t t;
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t, NULL, churn, (void *)(i + 100 * (uintptr_t)k)) != 0)
            return 3;
    /* Let them get going, then leave by returning from "main": exit() with threads running. */
    struct timespec pause = {0, 20000000 + 1000000 * (long)k};
    nanosleep(&pause, NULL);
    return 0;
}

int main(void)
{
    SAY("%d processes exit (exit(), destructors, stats) while %d threads each still allocate",
        CHILDREN, THREADS);
    for (int k = 0; k < CHILDREN; k++) {
        pid_t pid = fork();
        if (pid == 0)
            exit(child(k)); /* exit, not _exit: the destructors are the point */
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/waitpid");
        if (WIFSIGNALED(status))
            CHECK(0, "child %d died of signal %d during exit%s", k, WTERMSIG(status),
                  WTERMSIG(status) == SIGALRM ? " (hung)" : "");
        else
            CHECK(WEXITSTATUS(status) == 0, "child %d exited %d", k, WEXITSTATUS(status));
    }
    return lab_finish("exit_race");
}
