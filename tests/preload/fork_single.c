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
 *     the single-threaded path both are the same (about 8 here), with it about 3 against 8;
 *   - with Labyrinth: a single-threaded fork() writes none of the library's own pages (its .data
 *     and .bss), in the child nor in the parent: each such write is a copy-on-write fault (a
 *     compare-and-swap that fails writes too). /proc/self/pagemap tells: a private page written
 *     since the fork is no longer shared with the other process. A fork with two threads, whose
 *     handlers rewrite the locks there, shows that the pagemap can tell. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
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

/* ---- the library's own pages across fork() ---- */

enum { LIB_PAGES_MAX = 1024 };
static uintptr_t lib_pages[LIB_PAGES_MAX];
static int lib_npages;

/* The pages of the writable mappings of the object that provides malloc: its file's with 'w',
 * and the anonymous one right after them (the rest of its .bss). */
static void find_lib_pages(void)
{
    char want[PATH_MAX], line[PATH_MAX + 128];
    if (!realpath(lab_malloc_provider(), want))
        return;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    uintptr_t prev_end = 0;
    int prev_lib = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        int at = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &at) < 3 || at == 0)
            continue;
        char *path = line + at;
        path[strcspn(path, "\n")] = 0;
        int lib = strcmp(path, want) == 0, bss = !*path && prev_lib && lo == prev_end;
        if ((lib || bss) && perms[1] == 'w')
            for (uintptr_t a = lo; a < hi && lib_npages < LIB_PAGES_MAX; a += 4096)
                lib_pages[lib_npages++] = a;
        prev_lib = lib;
        prev_end = hi;
    }
    fclose(f);
}

/* How many of lib_pages are private pages of this process alone (pagemap: present, anonymous,
 * exclusively mapped): written since the fork. No allocation, no stdio (it runs in the child). */
static int lib_pages_written(int pm)
{
    int n = 0;
    for (int i = 0; i < lib_npages; i++) {
        uint64_t e = 0;
        if (pread(pm, &e, sizeof e, (off_t)(lib_pages[i] / 4096 * sizeof e)) == (ssize_t)sizeof e &&
            (e >> 63 & 1) && !(e >> 61 & 1) && (e >> 56 & 1))
            n++;
    }
    return n;
}

/* One fork(): the child counts the library's pages it wrote in the fork, reports through a pipe
 * and waits while the parent counts its own; *child and *parent get the counts (-1: failed). */
static void fork_lib_pages(int *child, int *parent)
{
    int pm = open("/proc/self/pagemap", O_RDONLY), up[2], down[2];
    *child = *parent = -1;
    if (pm < 0 || pipe(up) != 0 || pipe(down) != 0) {
        if (pm >= 0)
            close(pm);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int n = lib_pages_written(pm);
        char go;
        if (write(up[1], &n, sizeof n) != (ssize_t)sizeof n || read(down[0], &go, 1) != 1)
            _exit(1);
        _exit(0);
    }
    if (pid > 0 && read(up[0], child, sizeof *child) == (ssize_t)sizeof *child)
        *parent = lib_pages_written(pm);
    if (pid > 0) {
        if (write(down[1], "g", 1) != 1)
            kill(pid, SIGKILL);
        (void)wait_ok(pid);
    }
    close(pm);
    close(up[0]), close(up[1]), close(down[0]), close(down[1]);
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
    find_lib_pages();
    int child1, parent1, child2 = -1, parent2 = -1;
    fork_lib_pages(&child1, &parent1);
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
    fork_lib_pages(&child2, &parent2);
    pthread_mutex_lock(&idle_mu);
    idle_stop = 1;
    pthread_cond_broadcast(&idle_cv);
    pthread_mutex_unlock(&idle_mu);
    pthread_join(t, NULL);
    SAY("parent's minor faults across fork(), median of %d: %ld single-threaded, %ld with two threads",
        FORKS, single, multi);
    SAY("the library's %d writable pages written across fork(): single-threaded %d in the child, %d "
        "in the parent; with two threads %d and %d", lib_npages, child1, parent1, child2, parent2);
    if (lab_expect_labyrinth()) {
        CHECK(single + 3 <= multi, "a single-threaded fork() should write none of the allocator's "
                                   "pages (%ld faults against %ld with two threads)", single, multi);
        CHECK(lib_npages > 0, "the library's writable mappings were not found in /proc/self/maps");
        if (child2 > 0 && parent2 > 0) {
            CHECK(child1 == 0 && parent1 == 0, "a single-threaded fork() wrote %d of the library's pages "
                  "in the child and %d in the parent (each a copy-on-write fault)", child1, parent1);
        } else {
            SAY("the pagemap shows no page written by a fork with two threads: not checked here");
        }
    }
    return lab_finish("fork_single");
}
