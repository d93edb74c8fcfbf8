/* handler_last_round.c — a signal handler run in glibc's last round of key destructors, after
 * the allocator retired the thread's heap, allocates: a small block (a heap is taken for the
 * blocks of that round alone, core/arena.c lab_heap_past_last_round) and page-sized blocks
 * that make the pool map past LABYRINTH_BACKGROUND_PURGE. No thread may be started from the
 * handler (core/pool.h: no purge and no thread start in a handler); the retirement such a
 * block took in the handler dropped the thread's handler records, and the purge thread was
 * started from inside it (found by review). The blocks are checked and freed by main. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>

#include "lab_check.h"

enum { BIG = 40, BIG_SIZE = 300 << 10 };
static pthread_key_t key;
static int threads_before, threads_after;
static char *small, *big[BIG];

/* the process's thread count, with open and read only (async-signal-safe) */
static int thread_count(void)
{
    char b[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof b - 1);
    if (fd >= 0)
        close(fd);
    b[n > 0 ? n : 0] = 0;
    char *p = strstr(b, "Threads:");
    return p ? atoi(p + 8) : -1;
}

static void on_usr1(int sig)
{
    (void)sig;
    threads_before = thread_count();
    small = malloc(32);
    if (small)
        memset(small, 0x11, 32);
    for (int i = 0; i < BIG; i++)
        if ((big[i] = malloc(BIG_SIZE)))
            memset(big[i], 0x22, BIG_SIZE);
    threads_after = thread_count();
}

static void destructor(void *value)
{
    uintptr_t round = (uintptr_t)value;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS)
        pthread_setspecific(key, (void *)(round + 1));
    else
        raise(SIGUSR1);
}

static void *worker(void *arg)
{
    (void)arg;
    void *volatile p = malloc(48); /* a heap, retired at the thread's exit */
    free(p);
    pthread_setspecific(key, (void *)1);
    return NULL;
}

int main(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    CHECK(pthread_key_create(&key, destructor) == 0, "pthread_key_create");
    void *volatile warm = malloc(16);
    free(warm);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    SAY("handler_last_round: threads in the handler %d before its allocations, %d after", threads_before,
        threads_after);
    CHECK(threads_before > 0 && threads_after == threads_before, "a thread was started from the handler (%d -> %d)",
          threads_before, threads_after);
    CHECK(small != NULL, "malloc(32) in the handler");
    for (int i = 0; small && i < 32; i++)
        CHECK(small[i] == 0x11, "the handler's small block changed at %d", i);
    free(small);
    for (int i = 0; i < BIG; i++) {
        CHECK(big[i] != NULL, "malloc(%d) in the handler", BIG_SIZE);
        if (big[i])
            CHECK(big[i][0] == 0x22 && big[i][BIG_SIZE - 1] == 0x22, "a page-sized block of the handler changed");
        free(big[i]);
    }
    return lab_finish("handler_last_round");
}
