/* memory_returned.c — 1 GiB in 64-byte blocks, every block touched, all freed: the memory must go
 * back to the kernel (DESIGN.md, "Returning memory"; issue 5).
 *   memory_returned idle   no allocator call after the last free, only sleeping: RSS must drop
 *                          below 64 MiB once the purge delay has passed (the background purge;
 *                          ctest sets LABYRINTH_PURGE_DELAY_MS=200). Labyrinth only: glibc keeps
 *                          the blocks in its bins (about 1.3 GiB), as jemalloc, mimalloc and
 *                          tcmalloc keep about 1 GiB.
 *   memory_returned idle_longjmp
 *                          idle, after a signal handler has left by siglongjmp (a timeout's
 *                          classic shape) six times, from the thread's stack and from an
 *                          alternate signal stack, and out of six handlers nested in each
 *                          other: the thread that ran them must still purge, wake and start
 *                          the background thread (the wrapper's count of running handlers
 *                          once stayed raised for good, and the memory with it). Labyrinth only.
 *   memory_returned trim   malloc_trim(0) right after the last free: RSS below 64 MiB at once
 *                          (ctest sets a 60 s delay and no background thread, so only the trim
 *                          can have done it). Wherever malloc_trim is the allocator's own.
 *   memory_returned remote 256 MiB allocated by a thread that then waits, alive and idle, while
 *                          the main thread frees every block and calls malloc_trim(0): RSS below
 *                          64 MiB (glibc: yes). The blocks wait in the idle owner's messages:
 *                          malloc_trim moves them on without the owner (lab_arena_return_idle).
 *   memory_returned exited the same, but the owner thread has exited before the frees (its heap
 *                          abandoned, adopted by no thread since): malloc_trim(0) tidies it.
 *   memory_returned exited_idle
 *                          the owner frees every other block itself before it exits (its spans
 *                          half used, on its lists), the main thread the rest, then no allocator
 *                          call, only sleep: the spans must go back once their blocks are all
 *                          freed, without a thread to adopt the heap (Labyrinth only).
 *   memory_returned remote_idle
 *                          as remote, but no allocator call after the frees, only sleep: the
 *                          background thread moves the messages on once they have waited a
 *                          purge delay, then purges (Labyrinth only).
 *   memory_returned kept_idle
 *                          the background thread started and gone idle first (nothing left to
 *                          purge); then 32 threads each write and free 4 MiB of 16 KiB blocks
 *                          twice and stay alive, idle: their emptied spans, which each heap
 *                          keeps for itself and which never reach the pool, must still go back
 *                          once they have waited a purge delay (RSS below 64 MiB; Labyrinth
 *                          only). The spans' keeping must wake the idle thread: a free to the
 *                          pool, which wakes it otherwise, never comes.
 *   memory_returned rooms_idle
 *                          32 threads each write and free 64 blocks of 64 KiB, 16 of 256 KiB and
 *                          4 of 252 KiB three times and stay alive, idle: the page runs their
 *                          rooms (the per-thread run caches, about 2 MiB a thread here, and the
 *                          run rooms 1 MiB) kept must go back
 *                          once they have waited a purge delay (RSS below 16 MiB; Labyrinth
 *                          only). Their owners make no call: the background thread takes them.
 *   memory_returned rooms_trim
 *                          the same, no background thread and a 60 s delay: the main thread's
 *                          malloc_trim(0) must take the idle threads' rooms at once.
 *   memory_returned rooms_quiet
 *                          as rooms_idle, but the background thread asleep with nothing to do
 *                          first, and each thread's burst small enough (8 x 64 KiB, 2 x 256 KiB,
 *                          2 x 252 KiB)
 *                          that its rooms keep all of it: no free reaches the pool to wake the
 *                          thread; the allocations that filled the rooms must.
 *   memory_returned rooms_late
 *                          as rooms_quiet, but each thread holds its blocks for six purge
 *                          delays before it frees them: the background thread, woken by the
 *                          allocations, has looked at empty rooms and gone back to sleep for
 *                          good when the runs go into the rooms. The frees into the rooms must
 *                          wake it.
 * The blocks are chained through their first word, so the test needs no memory of its own that
 * would count in RSS; RSS is read from /proc/self/statm with read(2) (stdio would allocate). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lab_check.h"

#define MiB ((size_t)1 << 20)
enum { BLOCK = 64, LIMIT_MIB = 64 };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* 1 GiB of 64-byte blocks, each written in full; returns the chain's head (NULL on failure). */
static void *fill(size_t total)
{
    void *head = NULL;
    for (size_t done = 0; done < total; done += BLOCK) {
        void **b = malloc(BLOCK);
        if (!b) {
            CHECK(0, "malloc(%d) failed after %zu MiB", BLOCK, done >> 20);
            break;
        }
        memset(b, 0x5c, BLOCK);
        b[0] = head;
        head = b;
    }
    return head;
}

static void release(void *head)
{
    while (head) {
        void *next = *(void **)head;
        free(head);
        head = next;
    }
}

static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t owner_cond = PTHREAD_COND_INITIALIZER;
static int owner_stage; /* 1: blocks made, 2: may exit */
static void *owner_chain;

static int owner_exits; /* the owner leaves as soon as its blocks are made */
static int no_trim;     /* remote_idle: sleep instead of malloc_trim */
static int owner_half;  /* exited_idle: the owner frees every other block before it exits */

/* Free every other block of the chain (each kept block's successor). */
static void halve(void *head)
{
    for (void **b = head; b && *b; b = *b) {
        void **next = *b;
        *b = *next;
        free(next);
    }
}

static void *owner(void *arg)
{
    owner_chain = fill((size_t)(uintptr_t)arg);
    if (owner_half)
        halve(owner_chain);
    if (owner_exits)
        return NULL;
    pthread_mutex_lock(&owner_lock);
    owner_stage = 1;
    pthread_cond_broadcast(&owner_cond);
    while (owner_stage != 2)
        pthread_cond_wait(&owner_cond, &owner_lock);
    pthread_mutex_unlock(&owner_lock);
    return NULL;
}

/* Blocks of a thread that stays alive and makes no further allocator call (or that has exited),
 * freed by another. */
static int remote(void)
{
    const char *name = owner_half  ? "memory_returned exited_idle"
                       : owner_exits ? "memory_returned exited"
                       : no_trim   ? "memory_returned remote_idle"
                                   : "memory_returned remote";
    if (no_trim ? !lab_expect_labyrinth() : !lab_provided("malloc_trim")) {
        SAY("%s: %s; skipped", name,
            no_trim ? "promised by Labyrinth's background thread only" : "malloc_trim is not the allocator's own");
        return LAB_SKIP;
    }
    const size_t total = 256 * MiB;
    SAY("256 MiB in %d-byte blocks from a thread that then %s, freed by another thread, then %s: RSS "
        "must fall below %d MiB", BLOCK, owner_half ? "frees every other one and exits" : owner_exits ? "exits" : "idles",
        no_trim ? "no allocator call, only sleep" : "malloc_trim(0)", LIMIT_MIB);
    pthread_t t;
    if (pthread_create(&t, NULL, owner, (void *)(uintptr_t)total) != 0) {
        CHECK(0, "pthread_create");
        return lab_finish(name);
    }
    if (owner_exits) {
        pthread_join(t, NULL);
    } else {
        pthread_mutex_lock(&owner_lock);
        while (owner_stage != 1)
            pthread_cond_wait(&owner_cond, &owner_lock);
        pthread_mutex_unlock(&owner_lock);
    }
    long full = lab_rss_kib();
    release(owner_chain);
    long after;
    if (no_trim) {
        /* the thread waits a delay (200 ms, ctest) before it takes the messages, and another
         * before it purges; the bound is generous, the time taken is printed */
        const char *d = getenv("LABYRINTH_PURGE_DELAY_MS");
        double delay = d ? atof(d) / 1000 : 1.0, t0 = now_s();
        struct timespec step = {0, 50 * 1000 * 1000};
        while ((after = lab_rss_kib()) >= (long)LIMIT_MIB * 1024 && now_s() - t0 < 40 * delay + 10)
            nanosleep(&step, NULL);
        SAY("  RSS %ld MiB full, %ld MiB after the frees and %.2f s of sleep (purge delay %.2f s)",
            full >> 10, after >> 10, now_s() - t0, delay);
    } else {
        malloc_trim(0);
        after = lab_rss_kib();
        SAY("  RSS %ld MiB full, %ld MiB after the frees and malloc_trim(0)", full >> 10, after >> 10);
    }
    CHECK(after >= 0 && after < (long)LIMIT_MIB * 1024, "RSS %ld KiB with the owner %s, wanted below %d MiB",
          after, owner_exits ? "gone" : "idle", LIMIT_MIB);
    if (!owner_exits) {
        pthread_mutex_lock(&owner_lock);
        owner_stage = 2;
        pthread_cond_broadcast(&owner_cond);
        pthread_mutex_unlock(&owner_lock);
        pthread_join(t, NULL);
    }
    return lab_finish(name);
}

/* idle_longjmp: a handler that leaves by siglongjmp, never returning to its wrapper */
static sigjmp_buf jump_out;
static void leave_by_longjmp(int sig)
{
    (void)sig;
    siglongjmp(jump_out, 1);
}

/* ... and handlers nested NEST deep (each raises the next signal), the innermost leaving them
 * all so: more than the allocator keeps records of */
enum { NEST = 6 };
static void nest_deeper(int sig)
{
    if (sig - SIGRTMIN + 1 < NEST)
        raise(sig + 1);
    else
        siglongjmp(jump_out, 1);
}

static int kept_done; /* idlers at their idle point */

/* Steps the idle-thread modes share. The purge delay ctest set (seconds). */
static double purge_delay(void)
{
    const char *d = getenv("LABYRINTH_PURGE_DELAY_MS");
    return d ? atof(d) / 1000 : 1.0;
}

/* The background thread started (ctest: from 1 MiB mapped), done with this and gone idle. */
static void settle_idle(double delay)
{
    release(fill(16 * MiB));
    struct timespec settle = {(time_t)(6 * delay), (long)((6 * delay - (time_t)(6 * delay)) * 1e9)};
    nanosleep(&settle, NULL);
}

/* n threads running fn, returned once each has counted itself in kept_done and waits (idle,
 * alive) for owner_stage 2; false when one could not start. */
static bool idlers_start(pthread_t *t, int n, void *(*fn)(void *))
{
    for (uintptr_t i = 0; i < (uintptr_t)n; i++)
        if (pthread_create(&t[i], NULL, fn, (void *)i) != 0) {
            CHECK(0, "pthread_create");
            return false;
        }
    pthread_mutex_lock(&owner_lock);
    while (kept_done != n)
        pthread_cond_wait(&owner_cond, &owner_lock);
    pthread_mutex_unlock(&owner_lock);
    return true;
}

/* The idlers' wait, in each: counted, then idle until released. */
static void idler_wait(void)
{
    pthread_mutex_lock(&owner_lock);
    kept_done++;
    pthread_cond_broadcast(&owner_cond);
    while (owner_stage != 2) /* idle, alive, no allocator call */
        pthread_cond_wait(&owner_cond, &owner_lock);
    pthread_mutex_unlock(&owner_lock);
}

static void idlers_end(pthread_t *t, int n)
{
    pthread_mutex_lock(&owner_lock);
    owner_stage = 2;
    pthread_cond_broadcast(&owner_cond);
    pthread_mutex_unlock(&owner_lock);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* RSS once below limit_kib, sleeping meanwhile (at most 40 purge delays and 10 s from t0). */
static long rss_fall(long limit_kib, double delay, double t0)
{
    long after;
    struct timespec step = {0, 50 * 1000 * 1000};
    while ((after = lab_rss_kib()) >= limit_kib && now_s() - t0 < 40 * delay + 10)
        nanosleep(&step, NULL);
    return after;
}

enum { KEPT_THREADS = 32, KEPT_BLOCKS = 256, KEPT_SIZE = 16384 };
static void *kept_blocks[KEPT_THREADS][KEPT_BLOCKS]; /* static: nothing of the test's in RSS */

static void *kept_worker(void *arg)
{
    void **p = kept_blocks[(uintptr_t)arg];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < KEPT_BLOCKS; i++) {
            p[i] = malloc(KEPT_SIZE);
            CHECK(p[i] != NULL, "malloc(%d) failed", KEPT_SIZE);
            if (p[i])
                memset(p[i], 0x3c, KEPT_SIZE);
        }
        for (int i = 0; i < KEPT_BLOCKS; i++)
            free(p[i]);
    }
    idler_wait();
    return NULL;
}

static int kept_idle(void)
{
    const char *name = "memory_returned kept_idle";
    if (!lab_expect_labyrinth()) {
        SAY("%s: promised by Labyrinth's background thread only; skipped", name);
        return LAB_SKIP;
    }
    SAY("%d threads write and free %d MiB of %d KiB blocks twice each, then idle (the background "
        "thread idle before): RSS must fall below %d MiB", KEPT_THREADS, KEPT_BLOCKS * KEPT_SIZE >> 20,
        KEPT_SIZE >> 10, LIMIT_MIB);
    double delay = purge_delay();
    settle_idle(delay);
    pthread_t t[KEPT_THREADS];
    if (!idlers_start(t, KEPT_THREADS, kept_worker))
        return lab_finish(name);
    long full = lab_rss_kib();
    double t0 = now_s();
    long after = rss_fall((long)LIMIT_MIB * 1024, delay, t0);
    SAY("  RSS %ld MiB with every block freed, %ld MiB after %.2f s of sleep (purge delay %.2f s)",
        full >> 10, after >> 10, now_s() - t0, delay);
    CHECK(full >= (long)(KEPT_THREADS * KEPT_BLOCKS * (KEPT_SIZE >> 10)) * 3 / 4,
          "RSS %ld KiB just after the frees: the emptied spans were not kept (nothing to test)", full);
    CHECK(after >= 0 && after < (long)LIMIT_MIB * 1024, "RSS %ld KiB with the threads idle, wanted below %d MiB",
          after, LIMIT_MIB);
    idlers_end(t, KEPT_THREADS);
    return lab_finish(name);
}

/* ROOM_ODD blocks of 252 KiB too: 63 pages, not an order: runs a thread's run room keeps (all
 * four of them: at most 4 runs and 1 MiB) */
enum { ROOM_THREADS = 32, ROOM_SMALL = 64, ROOM_BIG = 16, ROOM_ODD = 4, ROOM_LIMIT_MIB = 16 };
static void *room_blocks[ROOM_THREADS][ROOM_SMALL + ROOM_BIG + ROOM_ODD];
static int room_small = ROOM_SMALL, room_big = ROOM_BIG, room_odd = ROOM_ODD, room_rounds = 3;
static double room_hold; /* seconds each thread holds its blocks before it frees them */
static pthread_barrier_t room_barrier;

static void *room_worker(void *arg)
{
    void **p = room_blocks[(uintptr_t)arg];
    for (int round = 0; round < room_rounds; round++) {
        for (int i = 0; i < room_small + room_big + room_odd; i++) {
            size_t n = i < room_small ? 64 << 10 : i < room_small + room_big ? 256 << 10 : 252 << 10;
            p[i] = malloc(n);
            CHECK(p[i] != NULL, "malloc(%zu) failed", n);
            if (p[i])
                memset(p[i], 0x5a, n);
        }
        if (room_hold > 0) {
            struct timespec hold = {(time_t)room_hold, (long)((room_hold - (time_t)room_hold) * 1e9)};
            nanosleep(&hold, NULL);
        }
        /* every thread's blocks made before any frees its own: a thread still allocating would
         * take the rooms of one that has freed and idles (before the pool maps a chunk), and
         * the rooms would not be full when the test looks */
        pthread_barrier_wait(&room_barrier);
        for (int i = 0; i < room_small + room_big + room_odd; i++)
            free(p[i]);
    }
    idler_wait();
    return NULL;
}

static int rooms(int trim, int quiet, int late)
{
    const char *name = trim ? "memory_returned rooms_trim"
                     : late ? "memory_returned rooms_late"
                     : quiet ? "memory_returned rooms_quiet" : "memory_returned rooms_idle";
    if (trim ? !lab_provided("malloc_trim") : !lab_expect_labyrinth()) {
        SAY("%s: %s; skipped", name, trim ? "malloc_trim is not the allocator's own" : "promised by Labyrinth only");
        return LAB_SKIP;
    }
    if (quiet) {
        /* a burst that fits the rooms: nothing spills to the pool, no free wakes the thread */
        room_small = 8;
        room_big = 2;
        room_odd = 2;
        room_rounds = 1;
    }
    double delay = purge_delay();
    if (late)
        room_hold = 6 * delay;
    SAY("%d threads write and free %d blocks of 64 KiB, %d of 256 KiB and %d of 252 KiB (%d times%s), then "
        "idle%s; %s: RSS must fall below %d MiB", ROOM_THREADS, room_small, room_big, room_odd, room_rounds,
        late ? ", each held six purge delays" : "",
        quiet ? " (the background thread asleep with nothing to do before)" : "",
        trim ? "malloc_trim(0) from the main thread" : "only sleep past the purge delay", ROOM_LIMIT_MIB);
    if (quiet)
        settle_idle(delay);
    pthread_t t[ROOM_THREADS];
    pthread_barrier_init(&room_barrier, NULL, ROOM_THREADS);
    if (!idlers_start(t, ROOM_THREADS, room_worker))
        return lab_finish(name);
    long full = lab_rss_kib(), after;
    double t0 = now_s();
    if (trim) {
        malloc_trim(0);
        after = lab_rss_kib();
    } else {
        after = rss_fall((long)ROOM_LIMIT_MIB * 1024, delay, t0);
    }
    SAY("  RSS %ld MiB with every block freed, %ld MiB after %s (%.2f s; purge delay %.2f s)", full >> 10,
        after >> 10, trim ? "malloc_trim(0)" : "sleep", now_s() - t0, delay);
    /* Labyrinth's rooms keep 2 MiB a thread of the 8 MiB each wrote (1 MiB, all of it, when
     * quiet), and its run room the 252 KiB blocks (1008 and 504 KiB); other allocators keep what
     * they keep: only the bound below is theirs */
    if (lab_expect_labyrinth())
        CHECK(full >= (long)ROOM_THREADS * 768, "RSS %ld KiB just after the frees: the rooms kept less "
              "than 768 KiB a thread (nothing to test)", full);
    CHECK(after >= 0 && after < (long)ROOM_LIMIT_MIB * 1024, "RSS %ld KiB with the threads idle, wanted below %d MiB",
          after, ROOM_LIMIT_MIB);
    idlers_end(t, ROOM_THREADS);
    return lab_finish(name);
}

/* kept (for options.sh, with LABYRINTH_STATS): 256 blocks of 16 KiB written and freed, twice;
 * the emptied spans stay kept at exit unless LABYRINTH_KEPT_KIB=0. */
static int kept(void)
{
    static void *p[256];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 256; i++) {
            p[i] = malloc(16384);
            CHECK(p[i] != NULL, "malloc(16384) failed");
            if (p[i])
                memset(p[i], 0x3c, 16384);
        }
        for (int i = 0; i < 256; i++)
            free(p[i]);
    }
    return lab_finish("memory_returned kept");
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "kept"))
        return kept();
    if (argc > 1 && !strcmp(argv[1], "kept_idle"))
        return kept_idle();
    if (argc > 1 && !strncmp(argv[1], "rooms_", 6)) {
        int trim = !strcmp(argv[1], "rooms_trim"), late = !strcmp(argv[1], "rooms_late");
        int quiet = late || !strcmp(argv[1], "rooms_quiet");
        if (trim || late || quiet || !strcmp(argv[1], "rooms_idle"))
            return rooms(trim, quiet, late);
    }
    if (argc > 1 && (!strcmp(argv[1], "remote") || !strcmp(argv[1], "exited") || !strcmp(argv[1], "remote_idle") ||
                     !strcmp(argv[1], "exited_idle"))) {
        owner_half = !strcmp(argv[1], "exited_idle");
        owner_exits = owner_half || !strcmp(argv[1], "exited");
        no_trim = owner_half || !strcmp(argv[1], "remote_idle");
        return remote();
    }
    int jumped = argc > 1 && !strcmp(argv[1], "idle_longjmp");
    int idle = jumped || (argc > 1 && !strcmp(argv[1], "idle"));
    if (argc < 2 || (!idle && strcmp(argv[1], "trim"))) {
        fprintf(stderr,
                "usage: %s idle|idle_longjmp|trim|remote|exited|exited_idle|remote_idle|kept|kept_idle|rooms_idle|"
                "rooms_trim|rooms_quiet|rooms_late\n",
                argv[0]);
        return 2;
    }
    if (idle && !lab_expect_labyrinth()) {
        SAY("memory_returned %s: promised by Labyrinth's background purge only; skipped", argv[1]);
        return LAB_SKIP;
    }
    if (jumped) {
        /* six times (more than the four handlers the allocator records at once), on the
         * thread's stack and on an alternate signal stack in turn */
        static char alt[64 << 10];
        stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
        CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack");
        volatile int left = 0;
        for (volatile int i = 0; i < 6; i++) {
            struct sigaction sa = {0};
            sa.sa_handler = leave_by_longjmp;
            sa.sa_flags = i % 2 ? SA_ONSTACK : 0;
            sigemptyset(&sa.sa_mask);
            CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
            if (!sigsetjmp(jump_out, 1))
                raise(SIGUSR1);
            else
                left++;
        }
        CHECK(left == 6, "the handler left by siglongjmp %d times of 6", (int)left);
        SAY("a SIGUSR1 handler ran and left by siglongjmp 6 times, 3 of them from an alternate stack");
        for (int i = 0; i < NEST; i++) {
            struct sigaction sa = {0};
            sa.sa_handler = nest_deeper;
            sigemptyset(&sa.sa_mask);
            CHECK(sigaction(SIGRTMIN + i, &sa, NULL) == 0, "sigaction");
        }
        if (!sigsetjmp(jump_out, 1))
            raise(SIGRTMIN);
        else
            left++;
        CHECK(left == 7, "the nested handlers did not leave by siglongjmp");
        SAY("%d handlers nested in each other, the innermost left them all by siglongjmp", NEST);
    }
    if (!idle && !lab_provided("malloc_trim")) {
        SAY("memory_returned trim: malloc_trim is not the allocator's own; skipped");
        return LAB_SKIP;
    }
    /* the first printf allocates stdout's buffer: before the test, not after the last free */
    SAY("1 GiB in %d-byte blocks, touched, all freed; then %s: RSS must fall below %d MiB", BLOCK,
        idle ? "no allocator call, only sleep past the purge delay" : "malloc_trim(0)", LIMIT_MIB);
    const size_t total = 1024 * MiB;
    long base = lab_rss_kib();
    double t0 = now_s();
    void *head = fill(total);
    long full = lab_rss_kib();
    double t1 = now_s();
    release(head);
    long freed = lab_rss_kib();
    double t2 = now_s();
    SAY("  %d-byte blocks: RSS %ld MiB at start, %ld MiB full (%.1f s), %ld MiB just after "
        "freeing them all (%.1f s)", BLOCK, base >> 10, full >> 10, t1 - t0, freed >> 10, t2 - t1);
    CHECK(full >= base + (long)(total >> 10) * 9 / 10, "RSS %ld KiB full: the blocks were not touched?",
          full);
    long after;
    if (idle) {
        /* Only sleeping from here on. The delay is 200 ms (ctest); the bound below is generous so
         * that a loaded machine cannot fail the test, and the time taken is printed. */
        const char *d = getenv("LABYRINTH_PURGE_DELAY_MS");
        double delay = d ? atof(d) / 1000 : 1.0, waited = 0;
        struct timespec step = {0, 50 * 1000 * 1000};
        while ((after = lab_rss_kib()) >= (long)LIMIT_MIB * 1024 && waited < 20 * delay + 10) {
            nanosleep(&step, NULL);
            waited += 0.05;
        }
        SAY("  no allocator call, %.2f s of sleep (purge delay %.2f s): RSS %ld MiB", now_s() - t2, delay,
            after >> 10);
    } else {
        malloc_trim(0);
        after = lab_rss_kib();
        SAY("  malloc_trim(0) at once: RSS %ld MiB", after >> 10);
    }
    CHECK(after >= 0 && after < (long)LIMIT_MIB * 1024, "RSS %ld KiB, wanted below %d MiB (%s)", after,
          LIMIT_MIB, idle ? "idle past the purge delay" : "after malloc_trim(0)");
    if (idle) /* measured; now the mechanism (opendir and stdio allocate) */
        CHECK(lab_wait_threads_named("labyrinth-purge", 1, 10000) == 1, "no labyrinth-purge thread");
    return lab_finish(jumped ? "memory_returned idle_longjmp" : idle ? "memory_returned idle" : "memory_returned trim");
}
