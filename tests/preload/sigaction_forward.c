/* sigaction_forward.c — a program that defines sigaction and __sigaction itself and forwards them
 * to the next definition (dlsym(RTLD_NEXT, "__sigaction")), as Erlang's beam.smp does to add
 * SA_ONSTACK, then installs handlers through signal(), sigset(), bsd_signal() and sigaction().
 * Labyrinth's own functions called sigaction through the PLT, which bound to the program's: its
 * forward came back to Labyrinth's __sigaction, which called the program's again, until the stack
 * overflowed (found by review: erl, erlc and escript died at start; the JDK's libjsig.so deadlocked
 * the same way on its own mutex). Built with -rdynamic, so that the program's definitions are in
 * the global scope. Passes on glibc alone too. It also defines memalign, forwarded to
 * __libc_memalign (below). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>

#include "lab_check.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* sigset: what is tested */

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static int depth, deepest, calls;

static int forward(int sig, const struct sigaction *act, struct sigaction *old)
{
    static sigaction_fn next;
    if (!next)
        next = (sigaction_fn)dlsym(RTLD_NEXT, "__sigaction");
    if (!next)
        next = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    calls++;
    if (++depth > deepest)
        deepest = depth;
    if (depth > 8) { /* a loop: stop it before the stack does */
        depth--;
        errno = ELOOP;
        return -1;
    }
    int r = next(sig, act, old);
    depth--;
    return r;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) { return forward(sig, act, old); }
int __sigaction(int sig, const struct sigaction *act, struct sigaction *old) { return forward(sig, act, old); }

/* The same with memalign forwarded to __libc_memalign, as old malloc hooks did: Labyrinth's
 * __libc_memalign called memalign through the PLT too (and __libc_pvalloc, __posix_memalign). */
extern void *__libc_memalign(size_t, size_t);
static int m_depth, m_deepest;

void *memalign(size_t align, size_t n)
{
    if (++m_depth > m_deepest)
        m_deepest = m_depth;
    void *p = m_depth > 8 ? NULL : __libc_memalign(align, n);
    m_depth--;
    return p;
}

static volatile sig_atomic_t got;
static void on_usr1(int sig) { (void)sig; got++; }

extern sighandler_t bsd_signal(int, sighandler_t);

int main(void)
{
    void *m = memalign(64, 100);
    CHECK(m != NULL && ((uintptr_t)m & 63) == 0, "memalign(64, 100) through __libc_memalign: %p", m);
    free(m);
    SAY("memalign forwarded to __libc_memalign: nested %d deep at most", m_deepest);
    CHECK(m_deepest == 1, "the program's memalign was re-entered %d deep: a loop", m_deepest);
    CHECK(signal(SIGUSR1, on_usr1) != SIG_ERR, "signal(): %s", strerror(errno));
    raise(SIGUSR1);
    CHECK(sigset(SIGUSR2, on_usr1) != SIG_ERR, "sigset(): %s", strerror(errno));
    raise(SIGUSR2);
    CHECK(bsd_signal(SIGUSR1, on_usr1) != SIG_ERR, "bsd_signal(): %s", strerror(errno));
    raise(SIGUSR1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0, "sigaction(): %s", strerror(errno));
    raise(SIGUSR2);
    SAY("%d calls of the program's sigaction, nested %d deep at most; %d signals handled", calls, deepest, (int)got);
    CHECK(deepest <= 1, "the program's sigaction was re-entered %d deep: a call went round in a loop", deepest);
    CHECK(got == 4, "%d of 4 signals reached the handler", (int)got);
    return lab_finish("sigaction_forward");
}
