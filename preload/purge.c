/* purge.c — the background purge thread: gives free memory that has stayed idle past the purge
 * delay back to the OS while the program makes no allocator call. Layer 5: the pool decides when
 * (core/pool_purge.c: lab_pool_background_*), this file only makes the thread.
 *
 * The pool calls purge_start from an allocation slow path, with no allocator lock held and outside
 * signal handlers, once the default pool has mapped LABYRINTH_BACKGROUND_PURGE MiB (processes that
 * stay smaller never get a thread). Never from a free: glibc frees thread stacks' TLS with its
 * stack-cache lock held, and pthread_create takes that lock. The caller may be deep inside the
 * arena with its heap's lists half-changed, and pthread_create allocates (the new thread's DTV):
 * while it runs, this thread allocates from a signal heap (core/arena.h), which never touches the
 * interrupted heap, and every signal is blocked. The thread blocks every signal for good, has a
 * small stack, and is detached; the child of a fork starts its own when it next allocates. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "arena.h"
#include "mmap.h"
#include "purge.h"

/* Whether the purge thread is the process's only live thread: /proc/self/stat's num_threads (the
 * 18th field after the command's closing parenthesis) is 1, or 2 with the main thread ended (the
 * state, the first field, is the main thread's: Z). false when it cannot be read. */
static bool purge_alone(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    char state = p && p[1] == ' ' ? p[2] : 0;
    for (int field = 0; p && field < 18; field++)
        p = strchr(p + 1, ' ');
    long threads = p ? strtol(p + 1, NULL, 10) : 0;
    return threads == 1 || (threads == 2 && state == 'Z');
}

/* A process ends when its last thread does, and glibc's pthread_exit (or a thread's return) of
 * the last thread calls exit(0). This thread is a thread too: with it alive, a program whose
 * last thread ended that way never ended (found by review: `pthread_exit` at the end of main, a
 * thread that forks and returns in the child; no signal reached it, all blocked here). So once
 * no thread with a heap or a room set is left (the last one's exit wakes this one), it looks
 * whether it is alone, again after 2, 4, ... up to 1 000 ms while that lasts (a thread that
 * never allocated, or made only huge blocks, may still run), and does what glibc would have done. */
static unsigned purge_watch_alone(unsigned wait_ms)
{
    /* a thread that made only page-sized blocks has a room set and no heap: with such a thread
     * alive the look came every second for as long as it lived (found by review) */
    if (lab_arena_heaps_live() || lab_pool_rooms_others())
        return 0;
    if (purge_alone())
        exit(0);
    return wait_ms ? lab_min(2 * wait_ms, 1000u) : 2;
}

static void *purge_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "labyrinth-purge", 0, 0, 0); /* what `top -H` and /proc/.../comm show */
    /* Besides purging, it gives back memory freed to threads that idle (the arena tells when to
     * look again). It sleeps for good (until a free or poke) only after a whole delay in which
     * nothing was freed or poked: a program whose messages come and go wakes it once a delay,
     * not at every message. */
    uint64_t last = lab_pool_background_gen();
    unsigned alone_ms = 0;
    for (;;) {
        alone_ms = purge_watch_alone(alone_ms);
        uint64_t gen = lab_pool_background_gen();
        uint64_t wake = lab_arena_return_idle_aged();
        if (wake == UINT64_MAX && gen != last)
            wake = lab_pool_default_delay();
        /* pooled mmap's cache (LABYRINTH_MMAP) too: pages unmapped by a program that then makes
         * no call of the family would otherwise stay resident */
        wake = lab_min(wake, lab_mmap_purge_idle());
        /* runs cached in the rooms of threads that make no call any more */
        wake = lab_min(wake, lab_pool_rooms_return_idle());
        if (alone_ms)
            wake = lab_min(wake, alone_ms);
        last = gen;
        lab_pool_background_round(wake, gen);
    }
    return NULL;
}

static bool purge_start(void)
{
    lab_sig_reserve(2); /* at least one signal heap for pthread_create's allocations (below) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread; no handler meanwhile */
    lab_heap_t *prev = lab_sig_enter();
    pthread_attr_t attr;
    pthread_t t;
    int err = pthread_attr_init(&attr);
    if (err == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* purging needs little stack */
        err = pthread_attr_setstacksize(&attr, (size_t)256 << 10);
        if (err == 0)
            err = pthread_create(&t, &attr, purge_main, NULL);
        /* a static TLS too large for that stack: a large one, still given explicitly (with no
         * size glibc reads its default under a lock it also holds while it allocates) */
        if (err == EINVAL && pthread_attr_setstacksize(&attr, (size_t)16 << 20) == 0)
            err = pthread_create(&t, &attr, purge_main, NULL);
        pthread_attr_destroy(&attr);
    }
    lab_sig_exit(prev);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err == 0;
}

void lab_purge_init(unsigned long mib)
{
    size_t pages = mib >= (SIZE_MAX >> 20) ? SIZE_MAX : (size_t)mib << (20 - LAB_PAGE_SHIFT);
    lab_pool_background_init(mib ? purge_start : NULL, pages);
}
