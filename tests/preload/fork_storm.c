/* fork_storm.c — fork() while 8 threads allocate and free: the child inherits the allocator's
 * locks and lists mid-update, so its atfork handlers must leave them usable. Each of 200 children
 * allocates, frees (including a block its parent allocated before the fork) and _exit(0)s; a
 * deadlocked child is killed by its own alarm(), so a hang shows as a failure, not only a timeout. */
#define _GNU_SOURCE
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"

enum { THREADS = 8, FORKS = 200, SLOTS = 256 };

static atomic_int stop;
static atomic_long thread_ops;

static void *churn(void *arg)
{
    uint64_t seed = 0x9e3779b9u + (uintptr_t)arg;
    void *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    long ops = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned i = (unsigned)(lab_rand(&seed) % SLOTS);
        if (slot[i]) {
            if (lab_canary_check(slot[i], size[i]) != SIZE_MAX)
                CHECK(0, "thread %lu: block of %zu damaged", (unsigned long)(uintptr_t)arg, size[i]);
            free(slot[i]);
        }
        uint64_t r = lab_rand(&seed);
        size[i] = r % 64 == 0 ? 40000 + r % 400000 : 1 + r % 3000;
        slot[i] = malloc(size[i]);
        if (slot[i])
            lab_canary_fill(slot[i], size[i]);
        ops++;
    }
    for (unsigned i = 0; i < SLOTS; i++)
        free(slot[i]);
    atomic_fetch_add(&thread_ops, ops);
    return NULL;
}

static void *child_thread(void *arg)
{
    void *p = malloc(1000);
    free(arg); /* a block the child's main thread allocated */
    free(p);
    return p;
}

/* Runs in the child: only the forking thread exists here. Exit codes name what broke. */
static void child(void *from_parent, size_t parent_size)
{
    alarm(10);
    if (lab_canary_check(from_parent, parent_size) != SIZE_MAX)
        _exit(2);
    free(from_parent);
    void *blocks[64];
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)(i % 8 == 7 ? 200000 : 16 + 37 * i);
        blocks[i] = malloc(n);
        if (blocks[i] == NULL)
            _exit(3);
        lab_canary_fill(blocks[i], n);
    }
    for (int i = 0; i < 64; i++)
        free(blocks[i]);
    /* A new thread in the child must also be able to allocate (glibc allows pthread_create in a
     * child of a threaded process; the allocator must too, with the dead threads' heaps gone). */
    pthread_t t;
    void *handed = malloc(300), *r = NULL;
    if (pthread_create(&t, NULL, child_thread, handed) != 0 || pthread_join(t, &r) != 0)
        _exit(4);
    _exit(r != NULL ? 0 : 5);
}

int main(void)
{
    SAY("%d forks while %d threads allocate; every child allocates, frees and exits 0", FORKS, THREADS);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, churn, (void *)i) != 0) {
            CHECK(0, "pthread_create failed");
            return lab_finish("fork_storm");
        }
    int ok = 0;
    for (int f = 0; f < FORKS; f++) {
        size_t n = 100 + (size_t)f * 97;
        void *mine = malloc(n);
        CHECK(mine != NULL, "parent malloc failed");
        if (!mine) break;
        lab_canary_fill(mine, n);
        pid_t pid = fork();
        if (pid == 0)
            child(mine, n);
        CHECK(pid > 0, "fork %d failed", f);
        if (pid > 0) {
            int status = 0;
            pid_t w;
            while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
                ;
            if (w != pid)
                CHECK(0, "waitpid(%d) failed", (int)pid);
            else if (WIFSIGNALED(status))
                CHECK(0, "child %d killed by signal %d%s", f, WTERMSIG(status),
                      WTERMSIG(status) == SIGALRM ? " (hung for 10 s: deadlock after fork?)" : "");
            else if (WEXITSTATUS(status) != 0)
                CHECK(0, "child %d exited %d (2: parent's block damaged, 3: malloc failed, 4/5: thread in child)", f,
                      WEXITSTATUS(status));
            else
                ok++;
        }
        CHECK(lab_canary_check(mine, n) == SIZE_MAX, "parent's block damaged after fork %d", f);
        free(mine);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    SAY("%d/%d children exited cleanly; threads did %ld operations meanwhile", ok, FORKS,
        atomic_load(&thread_ops));
    return lab_finish("fork_storm");
}
