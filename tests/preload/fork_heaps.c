/* fork_heaps.c — the heaps of threads a fork leaves behind. Only the forking thread lives on in
 * the child; the heaps of the parent's other threads are the child's to reuse: the child's atfork
 * handler marks them abandoned (lab_arena_fork_child), so the child's own threads adopt them as
 * they would the heap of a thread that has exited, instead of each making a heap of its own next
 * to heaps no thread will ever use again (a process that forks workers from a threaded parent
 * would otherwise carry the parent's dead heaps in every child, and make new ones beside them).
 * Checked here (Labyrinth only: the count of heaps is its malloc_stats line):
 *   - 8 threads allocate and free a few hundred small blocks each, then wait, alive, while the
 *     main thread forks;
 *   - in the child, 8 threads at once each allocate a block: the number of heaps malloc_stats
 *     reports must not grow (each takes one of the parent's threads' heaps);
 *   - the child exits 0, and the parent's threads carry on after the fork. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"

enum { THREADS = 8, BLOCKS = 300, CHILD_ALARM_S = 30 };

static pthread_barrier_t ready, forked;

static void *parent_thread(void *arg)
{
    (void)arg;
    void *b[BLOCKS];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < BLOCKS; i++) {
            b[i] = malloc(16 + (size_t)(i % 24) * 16);
            if (b[i])
                memset(b[i], 0x3c, 16);
        }
        for (int i = 0; i < BLOCKS; i++)
            free(b[i]);
    }
    pthread_barrier_wait(&ready);  /* the heap is made: the main thread counts, then forks */
    pthread_barrier_wait(&forked); /* alive (not in the allocator) across the fork */
    free(malloc(100));
    return NULL;
}

/* The "heaps" of malloc_stats's first line ("labyrinth stats: mallocs N, ..., heaps N,
 * signal_heaps N, ..."), which it writes to fd 2: read through a pipe. -1 if not found. */
static long heaps_now(void)
{
    static char buf[4096]; /* static: nothing allocated while counting */
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(stderr);
    int saved = dup(2);
    dup2(p[1], 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(p[0]);
    buf[n] = 0;
    const char *h = strstr(buf, ", heaps ");
    return h ? strtol(h + 8, NULL, 10) : -1;
}

static pthread_barrier_t child_all;

static void *child_thread(void *arg)
{
    (void)arg;
    char *p = malloc(100);
    if (p)
        memset(p, 0x5a, 100);
    /* all 8 hold a heap at once: none can take a heap another of them has just left */
    pthread_barrier_wait(&child_all);
    free(p);
    return p ? NULL : (void *)1;
}

/* The child: 8 threads at once, each allocating; returns the exit status. */
static int child(long parent_heaps)
{
    alarm(CHILD_ALARM_S);
    long before = heaps_now();
    if (before != parent_heaps) /* reported, not required: the parent's count just before */
        SAY("  note: %ld heaps in the parent before the fork, %ld in the child", parent_heaps, before);
    pthread_barrier_init(&child_all, NULL, THREADS);
    pthread_t t[THREADS];
    int bad = 0;
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, child_thread, NULL) != 0)
            return 10;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    if (bad)
        return 11;
    long after = heaps_now();
    SAY("child: %ld heaps before its %d threads allocated, %ld after", before, THREADS, after);
    if (before < 0 || after < 0)
        return 12;
    /* the parent's 8 threads' heaps were there for the taking */
    if (after > before) {
        fprintf(stderr, "FAIL: the child's %d threads made %ld new heaps beside the %d the parent's "
                        "threads left\n", THREADS, after - before, THREADS);
        return 13;
    }
    return 0;
}

int main(void)
{
    if (!lab_expect_labyrinth()) {
        SAY("fork_heaps: counts Labyrinth's heaps (malloc_stats); skipped");
        return LAB_SKIP;
    }
    SAY("%d threads allocate and wait; the main thread forks; the child's %d threads must adopt their heaps",
        THREADS, THREADS);
    pthread_barrier_init(&ready, NULL, THREADS + 1);
    pthread_barrier_init(&forked, NULL, THREADS + 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, parent_thread, NULL) != 0) {
            CHECK(0, "pthread_create");
            return lab_finish("fork_heaps");
        }
    pthread_barrier_wait(&ready);
    long heaps = heaps_now();
    SAY("parent: %ld heaps with its %d threads alive", heaps, THREADS);
    CHECK(heaps >= THREADS + 1, "malloc_stats reports %ld heaps (no \"heaps\" field?)", heaps);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child(heaps));
    CHECK(pid > 0, "fork failed");
    pthread_barrier_wait(&forked);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    if (pid > 0) {
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status 0x%x", st);
    }
    return lab_finish("fork_heaps");
}
