/* signal_storm.c — Labyrinth only: two threads allocate and free mixed sizes (1 B .. 200 KiB) at
 * full speed, every block filled with a canary and checked in full before it is freed, while a
 * 20 kHz timer's handler runs on them and allocates, checks and frees blocks of its own (malloc,
 * calloc, realloc and free; small, page-sized and above the span limit). Issue 5 asks for 5 s of
 * this: no hang (a watchdog thread ends a hung run with a message; glibc deadlocks here within
 * seconds), no damaged block, errno untouched.
 *
 * SIGALRM is blocked in the main thread, so the kernel delivers it to the allocating threads (a
 * process-directed signal otherwise goes to the sleeping main thread, and the handler would
 * interrupt nothing). The workers mark when they are inside malloc/free, and the test requires
 * that many handler runs did interrupt one there: the case that glibc can deadlock on and that
 * Labyrinth's signal heaps exist for. Without LAB_EXPECT_LABYRINTH it skips.
 * Usage: preload_signal_storm [seconds] (default 5). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lab_check.h"

static atomic_long handler_runs, handler_nested, handler_nulls, damaged, errno_changed, worker_ops;
static atomic_int stop;
/* Set by a worker around its malloc/free calls (only that thread and its own handler read it). */
static __thread volatile sig_atomic_t in_allocator;
static __thread int is_worker;

/* lab_canary_check for a block realloc may have moved: the first `upto` bytes at q must still be
 * the canary written for (p, n). Returns the first bad offset, or SIZE_MAX. */
static size_t canary_check_moved(const void *q, const void *p, size_t n, size_t upto)
{
    uint64_t seed = lab_canary_seed(p, n);
    const unsigned char *b = q;
    for (size_t i = 0; i < upto; i++) {
        size_t w = i & ~(size_t)7;
        unsigned char want;
        if (w + 8 <= n) {
            uint64_t v = seed + w;
            memcpy(&want, (const unsigned char *)&v + (i & 7), 1);
        } else {
            want = (unsigned char)(seed >> (i & 7));
        }
        if (b[i] != want)
            return i;
    }
    return SIZE_MAX;
}

static void on_alarm(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    if (!is_worker)
        return;
    long k = atomic_fetch_add_explicit(&handler_runs, 1, memory_order_relaxed);
    if (in_allocator)
        atomic_fetch_add_explicit(&handler_nested, 1, memory_order_relaxed);
    /* sizes: mostly small, every 7th page-sized, every 61st above the 32 KiB span limit */
    size_t n = k % 61 == 0 ? 40000 + (size_t)k % 90000 : k % 7 == 0 ? 4096 + (size_t)k % 9000 : 1 + (size_t)k % 900;
    int zeroed = k % 3 == 0;
    unsigned char *p = zeroed ? calloc(1, n) : malloc(n);
    if (!p) { /* allowed in a nested call: nothing ready without a lock or a system call */
        atomic_fetch_add_explicit(&handler_nulls, 1, memory_order_relaxed);
        return;
    }
    if (zeroed)
        for (size_t i = 0; i < n; i++)
            if (p[i]) {
                atomic_fetch_add_explicit(&damaged, 1, memory_order_relaxed);
                break;
            }
    lab_canary_fill(p, n);
    if (k % 5 == 0) {
        size_t m = k % 10 == 0 ? n * 2 + 100 : n / 2 + 1;
        unsigned char *q = realloc(p, m);
        if (q) {
            if (canary_check_moved(q, p, n, m < n ? m : n) != SIZE_MAX)
                atomic_fetch_add_explicit(&damaged, 1, memory_order_relaxed);
            p = q;
            n = m;
            lab_canary_fill(p, n);
        }
    }
    if (lab_canary_check(p, n) != SIZE_MAX)
        atomic_fetch_add_explicit(&damaged, 1, memory_order_relaxed);
    free(p);
}

static void *watchdog(void *arg)
{
    struct timespec d = {(time_t)(uintptr_t)arg, 0};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
    static const char msg[] = "FAIL signal_storm: still running long after the storm: a deadlock\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

static void *worker(void *arg)
{
    is_worker = 1;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    enum { SLOTS = 256 };
    void *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    long ops = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = lab_rand(&seed);
        unsigned i = (unsigned)(r % SLOTS);
        if (slot[i] && lab_canary_check(slot[i], len[i]) != SIZE_MAX)
            atomic_fetch_add_explicit(&damaged, 1, memory_order_relaxed);
        size_t n = (r >> 20) % 40 == 0 ? 4096 + (r >> 30) % 200000 : 1 + (r >> 30) % 1000;
        errno = 1234;
        in_allocator = 1;
        free(slot[i]);
        void *p = (r >> 8) % 4 == 0 ? calloc(1, n) : malloc(n);
        in_allocator = 0;
        if (p && errno != 1234)
            atomic_fetch_add_explicit(&errno_changed, 1, memory_order_relaxed);
        slot[i] = p;
        len[i] = n;
        if (p)
            lab_canary_fill(p, n);
        ops++;
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        if (slot[i] && lab_canary_check(slot[i], len[i]) != SIZE_MAX)
            atomic_fetch_add_explicit(&damaged, 1, memory_order_relaxed);
        free(slot[i]);
    }
    atomic_fetch_add(&worker_ops, ops);
    return NULL;
}

int main(int argc, char **argv)
{
    if (!lab_expect_labyrinth()) {
        SAY("signal_storm: promised by Labyrinth only (set LAB_EXPECT_LABYRINTH=1); skipped");
        return LAB_SKIP;
    }
    int seconds = argc > 1 ? atoi(argv[1]) : 5;
    SAY("%d s: 2 threads allocate and free at full speed while a 20 kHz timer's handler mallocs, "
        "callocs, reallocs and frees on them", seconds);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct sigaction check;
    sigaction(SIGALRM, NULL, &check);
    CHECK(check.sa_sigaction == on_alarm && (check.sa_flags & SA_SIGINFO),
          "sigaction does not report the program's own handler");
    /* the workers unblock it; the main thread (and so the kernel's choice) keeps it blocked */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    pthread_t t[2], w;
    pthread_create(&w, NULL, watchdog, (void *)(uintptr_t)(seconds + 60));
    for (uintptr_t i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(i + 1)) != 0) {
            CHECK(0, "pthread_create");
            return lab_finish("signal_storm");
        }
    struct itimerval it = {{0, 50}, {0, 50}}; /* 20 kHz */
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec d = {seconds, 0};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    long runs = atomic_load(&handler_runs), nested = atomic_load(&handler_nested);
    SAY("%ld worker operations; %ld handler runs, %ld of them interrupted malloc/free (%ld got NULL); "
        "%ld damaged blocks, %ld errno changes", atomic_load(&worker_ops), runs, nested,
        atomic_load(&handler_nulls), atomic_load(&damaged), atomic_load(&errno_changed));
    CHECK(atomic_load(&damaged) == 0, "%ld damaged blocks", atomic_load(&damaged));
    CHECK(atomic_load(&errno_changed) == 0, "errno changed by a handler %ld times", atomic_load(&errno_changed));
    /* the storm must have happened: a timer that fired rarely, or only outside the allocator,
     * would pass everything above without testing the promise */
    CHECK(runs >= 1000L * seconds, "only %ld handler runs on the workers in %d s", runs, seconds);
    CHECK(nested >= 100, "only %ld handler runs interrupted malloc/free", nested);
    return lab_finish("signal_storm");
}
