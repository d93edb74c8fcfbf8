/* fork_storm.c — fork() while threads allocate and free: the child inherits the allocator's locks
 * and lists mid-update, so its atfork handlers must leave them usable (issue 5: 1 000 forks of a
 * process whose 4–8 threads allocate). Each child allocates, frees (including a block its parent
 * allocated before the fork), starts a thread that allocates, and _exit(0)s; a deadlocked child is
 * killed by its own alarm(), so a hang shows as a failure, not only as a timeout. Up to `inflight`
 * children run at once (reaped oldest first), so that 1 000 forks fit in CI's time on 2 cores.
 * ctest runs it with Labyrinth's background purge started at once and purging every few ms, so
 * that forks also catch that thread at work: the parent must have one, and every child must
 * start its own when it allocates.
 * Usage: preload_fork_storm [forks] [threads] [inflight]   (default 1000 8 16). */
#define _GNU_SOURCE
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"

enum { MAX_THREADS = 64, MAX_INFLIGHT = 64, SLOTS = 256, CHILD_ALARM_S = 30 };

static atomic_int stop;
static atomic_long thread_ops;
/* Threads between entering malloc/free and leaving it, sampled at each fork: the storm must
 * actually catch threads inside the allocator, or it proves nothing. */
static atomic_int inside;
/* Labyrinth's purge thread is expected (LABYRINTH_BACKGROUND_PURGE set, not 0). */
static int want_purge_thread;

static void *churn(void *arg)
{
    uint64_t seed = 0x9e3779b9u + (uintptr_t)arg;
    void *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    long ops = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned i = (unsigned)(lab_rand(&seed) % SLOTS);
        if (slot[i] && lab_canary_check(slot[i], size[i]) != SIZE_MAX)
            CHECK(0, "thread %lu: block of %zu damaged", (unsigned long)(uintptr_t)arg, size[i]);
        uint64_t r = lab_rand(&seed);
        size_t n = r % 64 == 0 ? 40000 + r % 400000 : 1 + r % 3000;
        atomic_fetch_add_explicit(&inside, 1, memory_order_relaxed);
        free(slot[i]);
        void *p = malloc(n);
        atomic_fetch_sub_explicit(&inside, 1, memory_order_relaxed);
        slot[i] = p;
        size[i] = n;
        if (p)
            lab_canary_fill(p, n);
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
    alarm(CHILD_ALARM_S);
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
    for (int i = 0; i < 64; i++) {
        if (lab_canary_check(blocks[i], (size_t)(i % 8 == 7 ? 200000 : 16 + 37 * i)) != SIZE_MAX)
            _exit(6);
        free(blocks[i]);
    }
    /* A new thread in the child must also be able to allocate (glibc allows pthread_create in a
     * child of a threaded process; the allocator must too, with the dead threads' heaps gone). */
    pthread_t t;
    void *handed = malloc(300), *r = NULL;
    if (pthread_create(&t, NULL, child_thread, handed) != 0 || pthread_join(t, &r) != 0)
        _exit(4);
    if (want_purge_thread) {
        /* the child starts its purge thread on an allocation that reaches the pool's slow path;
         * the blocks above may all have come from caches the fork copied, so hold enough 64 KiB
         * blocks to empty this thread's cache of such runs first */
        void *hold[64];
        for (int i = 0; i < 64; i++)
            hold[i] = malloc(65536);
        for (int i = 0; i < 64; i++)
            free(hold[i]);
        if (lab_wait_threads_named("labyrinth-purge", 1, 10000) != 1)
            _exit(7);
    }
    _exit(r != NULL ? 0 : 5);
}

struct running {
    pid_t pid;
    int index;
    void *block;
    size_t size;
};

/* Wait for one child and check how it ended and that the parent's copy of its block is intact. */
static int reap(struct running *c)
{
    int status = 0;
    pid_t w;
    while ((w = waitpid(c->pid, &status, 0)) < 0 && errno == EINTR)
        ;
    int ok = 0;
    if (w != c->pid)
        CHECK(0, "waitpid(%d) failed", (int)c->pid);
    else if (WIFSIGNALED(status))
        CHECK(0, "child %d killed by signal %d%s", c->index, WTERMSIG(status),
              WTERMSIG(status) == SIGALRM ? " (hung: deadlock after fork?)" : "");
    else if (WEXITSTATUS(status) != 0)
        CHECK(0, "child %d exited %d (2: parent's block damaged, 3: malloc failed, 4/5: thread in "
                 "child, 6: child's own block damaged, 7: no purge thread of its own)", c->index,
              WEXITSTATUS(status));
    else
        ok = 1;
    CHECK(lab_canary_check(c->block, c->size) == SIZE_MAX, "parent's block damaged after fork %d", c->index);
    free(c->block);
    return ok;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 1000;
    int threads = argc > 2 ? atoi(argv[2]) : 8;
    int inflight = argc > 3 ? atoi(argv[3]) : 16;
    if (forks < 1 || threads < 1 || threads > MAX_THREADS || inflight < 1 || inflight > MAX_INFLIGHT) {
        fprintf(stderr, "usage: %s [forks] [threads 1..%d] [inflight 1..%d]\n", argv[0], MAX_THREADS, MAX_INFLIGHT);
        return 2;
    }
    const char *bp = getenv("LABYRINTH_BACKGROUND_PURGE");
    want_purge_thread = lab_expect_labyrinth() && bp && strcmp(bp, "0") != 0;
    SAY("%d forks while %d threads allocate (up to %d children at once); every child allocates, "
        "frees, starts a thread and exits 0%s", forks, threads, inflight,
        want_purge_thread ? "; the background purge runs in the parent and in every child" : "");
    pthread_t t[MAX_THREADS];
    for (uintptr_t i = 0; i < (uintptr_t)threads; i++)
        if (pthread_create(&t[i], NULL, churn, (void *)i) != 0) {
            CHECK(0, "pthread_create failed");
            return lab_finish("fork_storm");
        }
    struct running run[MAX_INFLIGHT];
    int head = 0, count = 0, ok = 0, caught = 0;
    for (int f = 0; f < forks || count > 0;) {
        if (f < forks && count < inflight) {
            size_t n = 100 + (size_t)f * 97 % 300000;
            void *mine = malloc(n);
            CHECK(mine != NULL, "parent malloc failed");
            if (!mine)
                break;
            lab_canary_fill(mine, n);
            caught += atomic_load_explicit(&inside, memory_order_relaxed) > 0;
            pid_t pid = fork();
            if (pid == 0)
                child(mine, n);
            CHECK(pid > 0, "fork %d failed", f);
            if (pid < 0) {
                free(mine);
                break;
            }
            run[(head + count) % MAX_INFLIGHT] = (struct running){pid, f, mine, n};
            count++;
            f++;
        } else {
            ok += reap(&run[head]);
            head = (head + 1) % MAX_INFLIGHT;
            count--;
        }
    }
    while (count > 0) { /* after a failed fork */
        ok += reap(&run[head]);
        head = (head + 1) % MAX_INFLIGHT;
        count--;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    SAY("%d/%d children exited cleanly; at %d forks a thread was inside malloc/free; the threads did "
        "%ld operations meanwhile", ok, forks, caught, atomic_load(&thread_ops));
    CHECK(ok == forks, "only %d of %d children exited cleanly", ok, forks);
    if (want_purge_thread)
        CHECK(lab_wait_threads_named("labyrinth-purge", 1, 10000) == 1, "the parent has no purge thread");
    /* With the threads preempted at random points, most forks find one inside the allocator; far
     * fewer would mean the threads were not running, and the storm tested nothing. */
    CHECK(caught >= forks / 10, "only %d of %d forks caught a thread inside malloc/free", caught, forks);
    return lab_finish("fork_storm");
}
