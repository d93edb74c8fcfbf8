/* fork_single.c — fork() from a process with one thread, as shells, make and test drivers do it
 * hundreds of times a second. Labyrinth's atfork handlers lock and unlock nothing when glibc says
 * the process has never had a second thread (every lock written is a copy-on-write fault after
 * the fork, in the parent and again in the child), and the full locking when it has. Checked here:
 *   - children (and their children: a child is single-threaded again) allocate and free small,
 *     page-sized and huge blocks, free blocks their parent allocated, start a thread, and exit 0;
 *     the parent's blocks stay intact;
 *   - the same once a second thread exists (the full path);
 *   - with Labyrinth: a single-threaded fork() costs the parent fewer minor page faults than one
 *     with a second thread alive (the median of 15 forks each; the counts, not times). Without
 *     the single-threaded path both are the same (about 8 here), with it about 3 against 8. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"

enum { FORKS = 15, CHILD_ALARM_S = 30 };

static const size_t sizes[] = {24, 100, 640, 3000, 20000, 65536, 300000, 4u << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static long minflt(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

static void *thread_alloc(void *arg)
{
    void *p = malloc(777);
    free(arg);
    free(p);
    return p;
}

/* Allocate every size, check, free; free what the parent handed down. 0 or the failure's code. */
static int exercise(void **inherited)
{
    for (unsigned i = 0; i < NSIZES; i++) {
        if (lab_canary_check(inherited[i], sizes[i]) != SIZE_MAX)
            return 2;
        free(inherited[i]);
    }
    void *b[NSIZES];
    for (unsigned i = 0; i < NSIZES; i++) {
        if (!(b[i] = malloc(sizes[i])))
            return 3;
        lab_canary_fill(b[i], sizes[i]);
    }
    for (unsigned i = 0; i < NSIZES; i++) {
        if (lab_canary_check(b[i], sizes[i]) != SIZE_MAX)
            return 4;
        free(b[i]);
    }
    return 0;
}

static void fill(void **b)
{
    for (unsigned i = 0; i < NSIZES; i++) {
        b[i] = malloc(sizes[i]);
        if (b[i])
            lab_canary_fill(b[i], sizes[i]);
    }
}

static int wait_ok(pid_t pid)
{
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    return w == pid && WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* In the child: exercise, fork a grandchild that does the same, start a thread, exit. */
static void child(void **inherited)
{
    alarm(CHILD_ALARM_S);
    int r = exercise(inherited);
    if (r)
        _exit(r);
    void *mine[NSIZES];
    fill(mine);
    pid_t g = fork();
    if (g == 0) {
        _exit(exercise(mine));
    }
    if (g < 0 || (r = wait_ok(g)) != 0)
        _exit(g < 0 ? 5 : 10 + r % 10);
    for (unsigned i = 0; i < NSIZES; i++)
        free(mine[i]);
    pthread_t t;
    void *handed = malloc(300), *res = NULL;
    if (pthread_create(&t, NULL, thread_alloc, handed) != 0 || pthread_join(t, &res) != 0 || !res)
        _exit(6);
    _exit(0);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* FORKS forks; returns the median of the parent's minor faults across fork(). */
static long fork_round(const char *what)
{
    long faults[FORKS];
    for (int f = 0; f < FORKS; f++) {
        void *b[NSIZES];
        fill(b);
        long before = minflt();
        pid_t pid = fork();
        if (pid == 0)
            child(b);
        faults[f] = minflt() - before;
        CHECK(pid > 0, "%s: fork %d failed", what, f);
        if (pid < 0)
            break;
        int r = wait_ok(pid);
        CHECK(r == 0, "%s: child %d ended with %d (2: parent's block damaged, 3: malloc failed, 4: "
                      "own block damaged, 5/1x: grandchild, 6: thread, 10x: signal)", what, f, r);
        for (unsigned i = 0; i < NSIZES; i++) {
            CHECK(lab_canary_check(b[i], sizes[i]) == SIZE_MAX, "%s: parent's block of %zu damaged", what, sizes[i]);
            free(b[i]);
        }
    }
    qsort(faults, FORKS, sizeof faults[0], cmp_long);
    return faults[FORKS / 2];
}

static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static int idle_stop, idle_ready;

/* The second thread: allocates (so it has a heap), then sleeps until told to stop. */
static void *idle_thread(void *arg)
{
    (void)arg;
    void *p = malloc(5000);
    pthread_mutex_lock(&idle_mu);
    idle_ready = 1;
    pthread_cond_broadcast(&idle_cv);
    while (!idle_stop)
        pthread_cond_wait(&idle_cv, &idle_mu);
    pthread_mutex_unlock(&idle_mu);
    free(p);
    return NULL;
}

int main(void)
{
    SAY("fork() of a single-threaded process, then of one with a second thread: children and "
        "grandchildren allocate, free inherited blocks and start threads");
    long single = fork_round("single-threaded");
    pthread_t t;
    if (pthread_create(&t, NULL, idle_thread, NULL) != 0) {
        CHECK(0, "pthread_create failed");
        return lab_finish("fork_single");
    }
    pthread_mutex_lock(&idle_mu);
    while (!idle_ready)
        pthread_cond_wait(&idle_cv, &idle_mu);
    pthread_mutex_unlock(&idle_mu);
    long multi = fork_round("two threads");
    pthread_mutex_lock(&idle_mu);
    idle_stop = 1;
    pthread_cond_broadcast(&idle_cv);
    pthread_mutex_unlock(&idle_mu);
    pthread_join(t, NULL);
    SAY("parent's minor faults across fork(), median of %d: %ld single-threaded, %ld with two threads",
        FORKS, single, multi);
    if (lab_expect_labyrinth())
        CHECK(single + 3 <= multi, "a single-threaded fork() should write none of the allocator's "
                                   "pages (%ld faults against %ld with two threads)", single, multi);
    return lab_finish("fork_single");
}
