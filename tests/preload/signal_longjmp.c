/* signal_longjmp.c — a timeout's shape: a handler that leaves by siglongjmp. Once out, the
 * thread must allocate as before: malloc(2 MiB) (which a signal heap always refuses) and 100 000
 * blocks of 64 bytes must all succeed. With the previous libraries the thread stayed on a signal
 * heap for good (found by review: the 2 MiB failed, and about 68 000 of the small ones). Modes:
 *   mprotect, mmap, madvise  a SIGALRM timeout out of a loop that makes one memory-mapping call
 *                            (mmap + munmap for mmap), which Labyrinth interposes: the signal
 *                            lands in its entry point most of the time, no allocator call, so
 *                            the handler must not even run on a signal heap;
 *   usable                   out of a loop of malloc_usable_size: the allocator's code, so the
 *                            handler runs on a signal heap, and the thread must come back to
 *                            its own heap once the handler is seen to be left;
 *   nested                   sixteen real-time signals, each from a 320 us timer of its own
 *                            (one every 20 us in all), whose handler returns nine times in ten
 *                            and leaves by siglongjmp the tenth, 3000 times: signals land in the
 *                            wrappers of handlers returning, and chains of handlers nest past
 *                            the eight records, one in two left by one siglongjmp out of ten
 *                            (statistical: its first form, one SA_NODEFER signal, failed three
 *                            runs in four with the library before records);
 *   thread_exit              40 threads in turn, each spinning in malloc_usable_size under a
 *                            20 us timer of its own until its handler, finding itself on a
 *                            signal heap (malloc(2 MiB) refused), leaves by siglongjmp; the
 *                            thread then ends at once. Its signal heap must come back: the
 *                            handlers' malloc(64) must never fail (with the previous library
 *                            the ended threads kept all 16, and 22 of 40 handlers got NULL).
 *                            Labyrinth only (elsewhere no handler is on a signal heap).
 * The others run on glibc too.
 *   signal_longjmp mprotect|mmap|madvise|usable|nested|thread_exit */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>

#include "lab_check.h"

static sigjmp_buf jump_out;
static int which; /* 0 mprotect, 1 mmap + munmap, 2 madvise, 3 malloc_usable_size, 4 nested */
static void on_alarm(int sig)
{
    (void)sig;
    siglongjmp(jump_out, 1);
}

/* nested: every tenth call while armed leaves. Its first form, one 20 us timer whose handler was
 * set with SA_NODEFER, nested the one signal without bound: once delivering a signal took longer
 * than the period (a slow page fault on a stack page not yet touched, a thread seldom on a CPU),
 * the kernel delivered the next one at the handler's first instruction, again and again, until
 * the stack overflowed: under Labyrinth in about one run in twenty on an idle host, under glibc
 * beside two busy loops. Sixteen signals, each blocked while its handler runs, nest sixteen deep
 * at most. Handlers seldom nest more than three deep by chance, so twice in every NEST_EVERY calls a
 * chain begins: each handler in it waits until one nested on it has returned, down to the tenth,
 * past the eight records the library keeps (core/pool_purge.c). The first chain's deepest
 * returns, and the chain unwinds; the second's leaves by siglongjmp (its tenth call is a tenth),
 * out of all ten at once. */
enum { NEST_SIGNALS = 16, NEST_ROUND_NS = 320000, NEST_EVERY = 50, NEST_DEEP = 10 };
static volatile int armed, depth, deepest, chain_to, returned_at;
static volatile unsigned long ticks, ticks_beyond, chains, per_signal[NEST_SIGNALS];
static void on_tick(int sig)
{
    if (sig >= SIGRTMIN && sig < SIGRTMIN + NEST_SIGNALS)
        per_signal[sig - SIGRTMIN]++;
    int d = ++depth; /* (balanced by every nested handler that returns) */
    if (d > deepest)
        deepest = d;
    ticks_beyond += d > 8;
    unsigned long n = ++ticks;
    if (armed && n % 10 == 0) {
        armed = 0;
        chain_to = 0;
        siglongjmp(jump_out, 1);
    }
    /* (a chain's calls are one after the other: begun on a count of 1 mod 10, nine of them
     * return, and the tenth leaves) */
    if (armed && !chain_to && (n % NEST_EVERY == 1 || n % NEST_EVERY == 21)) {
        chain_to = d + (n % NEST_EVERY == 1 ? NEST_DEEP - 2 : NEST_DEEP - 1);
        chains++;
    }
    if (d < chain_to) {
        /* until one nested on this one returns (a signal comes every 20 us), or the chain ends
         * (a leave), or no signal came for a millisecond of this thread's own time (every signal
         * blocked: the chain ends; on the wall clock, a thread taken off the CPU for as long, on
         * a loaded host, ended its chain for that) */
        returned_at = d;
        struct timespec t0, now;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        long waited;
        do {
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
            waited = (now.tv_sec - t0.tv_sec) * 1000000000L + now.tv_nsec - t0.tv_nsec;
        } while (returned_at != d + 1 && d < chain_to && waited < 1000000);
        if (waited >= 1000000)
            chain_to = 0;
    } else if (chain_to) {
        chain_to = 0; /* the deepest: the chain unwinds */
    }
    returned_at = d;
    depth--;
}

static void nested(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_tick;
    sigemptyset(&sa.sa_mask);
    timer_t t[NEST_SIGNALS];
    for (int i = 0; i < NEST_SIGNALS; i++) {
        CHECK(sigaction(SIGRTMIN + i, &sa, NULL) == 0, "sigaction");
        struct sigevent sev = {0};
        sev.sigev_notify = SIGEV_SIGNAL;
        sev.sigev_signo = SIGRTMIN + i;
        CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t[i]) == 0, "timer_create");
    }
    for (int i = 0; i < NEST_SIGNALS; i++) { /* one after the other, a period apart */
        struct itimerspec its = {{0, NEST_ROUND_NS}, {0, NEST_ROUND_NS / NEST_SIGNALS * (i + 1)}};
        CHECK(timer_settime(t[i], 0, &its, NULL) == 0, "timer_settime");
    }
    volatile unsigned long x = 0;
    for (volatile int i = 0; i < 3000; i++) {
        if (sigsetjmp(jump_out, 1)) {
            depth = 0; /* the longjmp left every handler: none runs here */
            returned_at = 0;
            continue;
        }
        armed = 1;
        for (;;)
            x++;
    }
    for (int i = 0; i < NEST_SIGNALS; i++)
        CHECK(timer_delete(t[i]) == 0, "timer_delete");
    SAY("signal_longjmp nested: 3000 handlers left by siglongjmp among %lu; %lu chains; nested %d deep at "
        "most, %lu handlers past eight", (unsigned long)ticks, (unsigned long)chains, deepest,
        (unsigned long)ticks_beyond);
    if (deepest <= 8)
        for (int k = 0; k < NEST_SIGNALS; k++)
            SAY("  SIGRTMIN+%d: %lu handlers", k, (unsigned long)per_signal[k]);
}

/* nested's processes: a few under Labyrinth never nest a handler past eight, however long they
 * run (beside three busy loops, 4 of about 60 processes, one of them for 30 000 leaves and
 * 8 000 chains: 5-8 deep at most, every chain ended by its millisecond without a signal, though
 * all sixteen signals kept coming; under glibc 0 of 40; a run of the whole suite met one). The timers'
 * expirations and the handlers' waits settle into a rhythm where no signal lands in a wait;
 * what sets a process into it was not found, and a new process seldom is. So a process that
 * met no nesting past eight runs the mode again in a new process (exec), up to NEST_TRIES in
 * all, and the mode fails only when none did. */
enum { NEST_TRIES = 4 };
static void nested_tries(char **argv)
{
    const char *t = getenv("LAB_NESTED_TRY");
    int tried = t ? atoi(t) : 1;
    nested();
    if (deepest > 8)
        return;
    if (tried >= NEST_TRIES) {
        CHECK(deepest > 8, "no handler nested past eight in %d processes: the records' limit untested", tried);
        return;
    }
    SAY("signal_longjmp nested: try %d of %d nested no handler past eight: again in a new process", tried,
        NEST_TRIES);
    char next[16];
    snprintf(next, sizeof next, "%d", tried + 1);
    setenv("LAB_NESTED_TRY", next, 1);
    execv("/proc/self/exe", argv);
    CHECK(0, "execv /proc/self/exe failed");
}

static int check_allocating(void);

/* thread_exit */
static __thread sigjmp_buf thread_jump;
static __thread volatile int thread_armed;
static long left_by_longjmp, handler_nulls;
static void on_thread_tick(int sig)
{
    (void)sig;
    void *q = malloc(64);
    if (!q)
        __atomic_add_fetch(&handler_nulls, 1, __ATOMIC_RELAXED);
    free(q);
    void *big = malloc(2 << 20);
    if (big) {
        free(big);
        return;
    }
    if (thread_armed) { /* on a signal heap */
        thread_armed = 0;
        __atomic_add_fetch(&left_by_longjmp, 1, __ATOMIC_RELAXED);
        siglongjmp(thread_jump, 1);
    }
}

static void *ending_thread(void *arg)
{
    (void)arg;
    void *p = malloc(100);
    struct sigevent sev = {0};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGUSR1;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0, "timer_create");
    struct itimerspec its = {{0, 20000}, {0, 20000}};
    if (!sigsetjmp(thread_jump, 1)) {
        thread_armed = 1;
        timer_settime(t, 0, &its, NULL);
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        volatile size_t sum = 0;
        do { /* (a thread whose handler never found itself on a signal heap gives up) */
            for (int i = 0; i < 100000; i++)
                sum += malloc_usable_size(p);
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while (now.tv_sec - t0.tv_sec < 2);
    }
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(t, 0, &off, NULL);
    timer_delete(t);
    return NULL; /* p stays: the thread ends at once */
}

static int thread_exit_mode(void)
{
    if (!lab_expect_labyrinth()) {
        SAY("signal_longjmp thread_exit: signal heaps are Labyrinth's; skipped");
        return LAB_SKIP;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_thread_tick;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    for (int i = 0; i < 40; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, ending_thread, NULL) == 0, "pthread_create");
        pthread_join(t, NULL);
    }
    SAY("signal_longjmp thread_exit: %ld of 40 threads left a handler on a signal heap by siglongjmp and "
        "ended; handlers' malloc(64) refused %ld times", left_by_longjmp, handler_nulls);
    CHECK(left_by_longjmp > 0, "no handler ran on a signal heap: nothing tested");
    CHECK(handler_nulls == 0, "%ld handlers got NULL from malloc(64): signal heaps kept by ended threads",
          handler_nulls);
    return check_allocating();
}

/* Out of the handlers: the thread allocates as before. */
static int check_allocating(void)
{
    void *big = malloc(2 << 20);
    CHECK(big != NULL, "malloc(2 MiB) failed after the handlers");
    enum { N = 100000 };
    void **small = malloc(N * sizeof *small);
    CHECK(small != NULL, "malloc of the pointer array failed");
    long failed = 0;
    for (int i = 0; small && i < N; i++)
        failed += (small[i] = malloc(64)) == NULL;
    CHECK(failed == 0, "%ld of %d malloc(64) failed after the handlers", failed, N);
    for (int i = 0; small && i < N; i++)
        free(small[i]);
    free(small);
    free(big);
    return lab_finish("signal_longjmp");
}

int main(int argc, char **argv)
{
    static const char *const calls_of[] = {"mprotect", "mmap", "madvise", "usable", "nested", "thread_exit"};
    which = -1;
    for (int i = 0; i < 6; i++)
        if (argc > 1 && !strcmp(argv[1], calls_of[i]))
            which = i;
    if (which < 0) {
        fprintf(stderr, "usage: %s mprotect|mmap|madvise|usable|nested|thread_exit\n", argv[0]);
        return 2;
    }
    if (which == 5)
        return thread_exit_mode();
    if (which == 4) {
        nested_tries(argv);
        return check_allocating();
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
    char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(page != MAP_FAILED, "mmap");
    void *blk = malloc(100);
    volatile long calls = 0;
    if (!sigsetjmp(jump_out, 1)) {
        struct itimerval it = {{0, 0}, {0, 2000}};
        CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
        for (;; calls++)
            switch (which) {
            case 0: mprotect(page, 4096, calls & 1 ? PROT_READ : PROT_READ | PROT_WRITE); break;
            case 1: munmap(mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 8192); break;
            case 2: madvise(page, 4096, MADV_DONTNEED); break;
            default: calls += malloc_usable_size(blk) == 0; break;
            }
    }
    SAY("signal_longjmp %s: the timeout left its handler by siglongjmp after %ld calls", argv[1], (long)calls);
    free(blk);
    return check_allocating();
}
