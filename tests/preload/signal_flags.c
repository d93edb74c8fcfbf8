/* signal_flags.c — the flags glibc's signal() gives a handler, kept under the preload, which
 * interposes signal() and sigaction() (preload/signals.c): SA_RESTART unless siginterrupt(sig, 1)
 * came first, the signal in its own mask, and a read() that SIGALRM interrupts failing with EINTR
 * once siginterrupt asked for it (the preload's signal() set SA_RESTART always, so the read
 * hung: found by running CPython's test suite). siginterrupt(sig, 0) restores SA_RESTART. Passes
 * on glibc alone too. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/time.h>

#include "lab_check.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* siginterrupt: what is tested */

static volatile sig_atomic_t hits;
static void on_alarm(int sig) { (void)sig; hits++; }

static struct sigaction now_of(int sig)
{
    struct sigaction a;
    memset(&a, 0, sizeof a);
    CHECK(sigaction(sig, NULL, &a) == 0, "sigaction(%d, NULL)", sig);
    return a;
}

/* A read of an empty pipe with a 50 ms timer: -1 (the errno) if interrupted, else 1 when the
 * handler's own write ended it (restarted, the call went on and read the byte). */
static int pipe_fd[2];
static void on_alarm_write(int sig)
{
    (void)sig;
    hits++;
    char c = 'x';
    if (write(pipe_fd[1], &c, 1) != 1)
        _exit(3);
}

static long timed_read(void)
{
    struct itimerval it = {.it_value = {.tv_usec = 50000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    char c;
    ssize_t r = read(pipe_fd[0], &c, 1);
    return r < 0 ? -errno : r;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    free(malloc(100)); /* the allocator is live */
    CHECK(pipe(pipe_fd) == 0, "pipe");

    /* plain signal(): BSD semantics */
    CHECK(signal(SIGUSR1, on_alarm) != SIG_ERR, "signal(SIGUSR1)");
    struct sigaction a = now_of(SIGUSR1);
    CHECK(a.sa_flags & SA_RESTART, "signal(): SA_RESTART missing (flags %#x)", (unsigned)a.sa_flags);
    CHECK(sigismember(&a.sa_mask, SIGUSR1) == 1, "signal(): the signal is not in its own mask");
    CHECK(a.sa_handler == on_alarm, "signal(): sigaction reports another handler");
    raise(SIGUSR1);
    CHECK(hits == 1, "the handler ran %d times", (int)hits);

    /* siginterrupt(sig, 1) before signal(): no SA_RESTART, and the timer interrupts a read */
    CHECK(siginterrupt(SIGALRM, 1) == 0, "siginterrupt(SIGALRM, 1)");
    CHECK(signal(SIGALRM, on_alarm_write) != SIG_ERR, "signal(SIGALRM)");
    a = now_of(SIGALRM);
    CHECK(!(a.sa_flags & SA_RESTART), "siginterrupt(1), signal(): SA_RESTART set (flags %#x)",
          (unsigned)a.sa_flags);
    long r = timed_read();
    CHECK(r == -EINTR, "siginterrupt(1): read returned %ld, not -EINTR", r);
    if (r == 1)
        printf("signal_flags: the read was restarted\n");
    else if (r == -EINTR) {
        char c;
        CHECK(read(pipe_fd[0], &c, 1) == 1, "the handler's byte"); /* drained for the next read */
    }

    /* siginterrupt(sig, 0): SA_RESTART back, on the handler in force and for the next signal() */
    CHECK(siginterrupt(SIGALRM, 0) == 0, "siginterrupt(SIGALRM, 0)");
    a = now_of(SIGALRM);
    CHECK(a.sa_flags & SA_RESTART, "siginterrupt(0): SA_RESTART missing (flags %#x)", (unsigned)a.sa_flags);
    CHECK(a.sa_handler == on_alarm_write, "siginterrupt changed the handler");
    CHECK(signal(SIGALRM, on_alarm_write) != SIG_ERR, "signal(SIGALRM) again");
    a = now_of(SIGALRM);
    CHECK(a.sa_flags & SA_RESTART, "siginterrupt(0), signal(): SA_RESTART missing");
    r = timed_read();
    CHECK(r == 1, "restarted read returned %ld, not the handler's byte", r);

    CHECK(siginterrupt(0, 1) == -1 && errno == EINVAL, "siginterrupt(0) accepted");
    CHECK(siginterrupt(NSIG, 1) == -1 && errno == EINVAL, "siginterrupt(NSIG) accepted");
    printf("signal_flags: %d handler runs\n", (int)hits);
    return lab_finish("signal_flags");
}
