/* signal_apis.c — the names of libc besides sigaction() and signal() that install a handler:
 * sigset, bsd_signal, ssignal, sysv_signal, __sysv_signal and __sigaction. Inside libc they call
 * libc's own sigaction, past the preload's, so a handler set through them ran without its
 * wrapper: a sigset() handler that mallocs, firing while the program mallocs, hung or broke the
 * heap within seconds (found by review). Checked for each: the kernel's handler is the preload's
 * wrapper (read with the raw system call); the old handler reported is the program's, never the
 * wrapper; each keeps glibc's semantics (sysv_signal one-shot and not masked, sigset's SIG_HOLD
 * and its result, EINVAL); and a 20 kHz timer whose handler mallocs and frees runs beside a loop
 * that does the same, every block checked. On glibc alone the wrapper check and the timer's part
 * are skipped (its malloc is not safe in handlers: it aborts there), and so is the EINVAL for
 * sigset(sig, SIG_ERR), which glibc installs as a handler. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "lab_check.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* sigset & co.: what is tested */

extern sighandler_t bsd_signal(int, sighandler_t);
extern sighandler_t ssignal(int, sighandler_t);
extern sighandler_t sysv_signal(int, sighandler_t);
extern sighandler_t __sysv_signal(int, sighandler_t);
extern int __sigaction(int, const struct sigaction *, struct sigaction *);

/* The kernel's view of a disposition (struct k_sigaction of x86-64). */
struct ksig {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

static struct ksig kernel_of(int sig)
{
    struct ksig k;
    memset(&k, 0, sizeof k);
    CHECK(syscall(SYS_rt_sigaction, sig, NULL, &k, 8) == 0, "rt_sigaction(%d)", sig);
    return k;
}

/* The kernel's handler for sig is the preload's wrapper (code of liblabyrinth). */
static void check_wrapped(int sig, const char *api)
{
    if (!lab_expect_labyrinth())
        return;
    struct ksig k = kernel_of(sig);
    Dl_info info;
    CHECK(dladdr(k.handler, &info) && info.dli_fname && strstr(info.dli_fname, "liblabyrinth"),
          "%s: the kernel runs %p (%s), not the preload's wrapper", api, k.handler,
          info.dli_fname ? info.dli_fname : "?");
}

static volatile sig_atomic_t hits;
static void h1(int sig) { (void)sig; hits++; }
static void h2(int sig) { (void)sig; hits++; }

/* The handler of the storm: blocks of a few sizes, filled and checked, freed again. */
static volatile sig_atomic_t storm_hits;
static void storm_handler(int sig)
{
    (void)sig;
    for (int i = 0; i < 3; i++) {
        size_t n = 24 + (size_t)i * 700;
        unsigned char *p = malloc(n);
        if (!p)
            continue; /* a nested call may return NULL (README: signal handlers) */
        memset(p, 0xa5, n);
        for (size_t j = 0; j < n; j++)
            if (p[j] != 0xa5)
                _exit(4);
        free(p);
    }
    storm_hits++;
}

/* install the storm's handler for SIGALRM through api, run the timer beside a malloc loop; a
 * one-shot handler (System V's) is set again, and its timer started again, by the loop once it
 * has run (set again by the handler itself, a signal may find the default action first) */
static void storm(const char *api, sighandler_t (*install)(int, sighandler_t))
{
    int oneshot = strstr(api, "sysv") != NULL;
    CHECK(install(SIGALRM, storm_handler) != SIG_ERR, "%s(SIGALRM)", api);
    check_wrapped(SIGALRM, api);
    storm_hits = 0;
    sig_atomic_t armed = 0;
    struct itimerval it = {{0, oneshot ? 0 : 50}, {0, 50}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    enum { K = 512 };
    static unsigned char *keep[K];
    static size_t len[K];
    unsigned x = 12345;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long rounds = 0;
    do {
        for (int i = 0; i < 4096; i++, rounds++) {
            x = x * 1103515245u + 12345u;
            unsigned k = (x >> 8) % K;
            if (keep[k]) {
                for (size_t j = 0; j < len[k]; j++)
                    CHECK(keep[k][j] == (unsigned char)k, "%s: block %u damaged at %zu", api, k, j);
                free(keep[k]);
            }
            len[k] = 1 + (x >> 16) % 3000;
            keep[k] = malloc(len[k]);
            CHECK(keep[k] != NULL, "%s: malloc(%zu)", api, len[k]);
            memset(keep[k], (int)k, len[k]);
            if (oneshot && armed != storm_hits) {
                armed = storm_hits;
                CHECK(install(SIGALRM, storm_handler) == SIG_DFL, "%s: not reset by a delivery", api);
                CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 1500000000L);
    struct itimerval off = {{0, 0}, {0, 0}};
    CHECK(setitimer(ITIMER_REAL, &off, NULL) == 0, "setitimer off");
    for (int k = 0; k < K; k++)
        free(keep[k]), keep[k] = NULL;
    CHECK(signal(SIGALRM, SIG_IGN) != SIG_ERR, "signal(SIGALRM, SIG_IGN)");
    printf("signal_apis: %s: %d handler runs beside %ld mallocs\n", api, (int)storm_hits, rounds);
    CHECK(storm_hits > 100, "%s: the timer's handler ran %d times", api, (int)storm_hits);
}

static sighandler_t via_sigaction(int sig, sighandler_t h)
{
    struct sigaction a, old;
    memset(&a, 0, sizeof a);
    a.sa_handler = h;
    sigemptyset(&a.sa_mask);
    return __sigaction(sig, &a, &old) != 0 ? SIG_ERR : old.sa_handler;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    free(malloc(100)); /* the allocator is live */

    /* each name: the wrapper installed, the program's handler reported back */
    struct {
        const char *name;
        sighandler_t (*install)(int, sighandler_t);
    } apis[] = {{"sigset", sigset},           {"bsd_signal", bsd_signal},       {"ssignal", ssignal},
                {"sysv_signal", sysv_signal}, {"__sysv_signal", __sysv_signal}, {"__sigaction", via_sigaction}};
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
        CHECK(signal(SIGUSR1, h1) != SIG_ERR, "signal(SIGUSR1)");
        sighandler_t old = apis[i].install(SIGUSR1, h2);
        CHECK(old == h1, "%s: the old handler reported is %p, not the program's %p", apis[i].name,
              (void *)old, (void *)h1);
        check_wrapped(SIGUSR1, apis[i].name);
        struct sigaction a;
        CHECK(sigaction(SIGUSR1, NULL, &a) == 0, "sigaction(SIGUSR1, NULL)");
        CHECK(a.sa_handler == h2, "%s: sigaction reports %p, not the handler set", apis[i].name,
              (void *)a.sa_handler);
        hits = 0;
        raise(SIGUSR1);
        CHECK(hits == 1, "%s: the handler ran %d times", apis[i].name, (int)hits);
        old = apis[i].install(SIGUSR1, h1);
        CHECK(old == h2 || (old == SIG_DFL && strstr(apis[i].name, "sysv")),
              "%s: set again, the old handler reported is %p", apis[i].name, (void *)old);
    }

    /* sysv_signal: one-shot (SA_RESETHAND), not masked while it runs (SA_NODEFER), no restart */
    CHECK(sysv_signal(SIGUSR2, h1) != SIG_ERR, "sysv_signal(SIGUSR2)");
    struct sigaction a;
    CHECK(sigaction(SIGUSR2, NULL, &a) == 0, "sigaction(SIGUSR2, NULL)");
    CHECK((a.sa_flags & (SA_RESETHAND | SA_NODEFER)) == (SA_RESETHAND | SA_NODEFER) && !(a.sa_flags & SA_RESTART),
          "sysv_signal: flags %#x", (unsigned)a.sa_flags);
    hits = 0;
    raise(SIGUSR2);
    CHECK(hits == 1, "sysv_signal: the handler ran %d times", (int)hits);
    CHECK(sigaction(SIGUSR2, NULL, &a) == 0 && a.sa_handler == SIG_DFL, "sysv_signal: not reset after a delivery");
    CHECK(sysv_signal(0, h1) == SIG_ERR && errno == EINVAL, "sysv_signal(0): EINVAL");

    /* sigset: SIG_HOLD blocks and reports the handler; setting one unblocks and reports SIG_HOLD */
    CHECK(sigset(SIGUSR2, h2) == SIG_DFL, "sigset(SIGUSR2, h2): the default before");
    CHECK(sigset(SIGUSR2, SIG_HOLD) == h2, "sigset(SIG_HOLD): the handler in force");
    sigset_t now;
    CHECK(sigprocmask(SIG_BLOCK, NULL, &now) == 0 && sigismember(&now, SIGUSR2), "sigset(SIG_HOLD): not blocked");
    CHECK(sigset(SIGUSR2, SIG_HOLD) == SIG_HOLD, "sigset(SIG_HOLD) again: SIG_HOLD");
    hits = 0;
    raise(SIGUSR2); /* pending while held */
    CHECK(hits == 0, "sigset(SIG_HOLD): the handler ran");
    CHECK(sigset(SIGUSR2, h1) == SIG_HOLD, "sigset(h1) after SIG_HOLD: SIG_HOLD");
    CHECK(hits == 1, "sigset(h1): the pending signal ran %d handlers", (int)hits);
    CHECK(sigprocmask(SIG_BLOCK, NULL, &now) == 0 && !sigismember(&now, SIGUSR2), "sigset(h1): still blocked");
    CHECK(sigset(NSIG + 1, h1) == SIG_ERR && errno == EINVAL, "sigset(NSIG + 1): EINVAL");
    if (!lab_expect_labyrinth())
        return lab_finish("signal_apis");
    CHECK(sigset(SIGUSR2, SIG_ERR) == SIG_ERR && errno == EINVAL, "sigset(SIG_ERR): EINVAL");

    /* handlers that malloc, set through each name, firing while the program mallocs */
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
        storm(apis[i].name, apis[i].install);
    return lab_finish("signal_apis");
}
