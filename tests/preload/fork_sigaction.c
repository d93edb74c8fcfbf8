/* fork_sigaction.c — a shell sets the same signal handlers around every command it forks, in the
 * parent and in the child. Labyrinth interposes sigaction() (preload/signals.c); setting a
 * handler the table already holds must write none of its pages, since every page written after a
 * fork is a copy-on-write fault, in the parent and again in the child. Checked here: after a
 * fork, in the child and in the parent, installing the handlers already in force costs no minor
 * page fault in at least one of six rounds on each side (with any allocator; Labyrinth's wrapper
 * once wrote its handler table and took the heaps' lock at every call: 2 or 3 faults a side in
 * every round), and the handlers still run. */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"

static volatile sig_atomic_t hits;

static void on_usr1(int sig)
{
    (void)sig;
    hits++;
    free(malloc(64)); /* a handler that allocates (as shells' SIGCHLD handlers do) */
}

static long lab_min_long(long a, long b) { return a < b ? a : b; }

static long minflt(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

static int set(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(sig, &sa, NULL);
}

/* Reads a byte of every page of every loaded object: after a fork the child has no page-table
 * entries for file pages it has not touched yet, and executing such code (the allocator's, libc's)
 * would count as minor faults too. Pages only read stay shared: a write to one still faults. */
static int touch_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size, (void)arg;
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_R))
            continue;
        uintptr_t lo = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(page - 1);
        for (uintptr_t a = lo; a < info->dlpi_addr + ph->p_vaddr + ph->p_memsz; a += (uintptr_t)page)
            (void)*(volatile const char *)a;
    }
    return 0;
}

/* Writes 32 KiB of stack below the caller: those pages are copied (after a fork) before the
 * calls measured, whose frames lie within them. */
static __attribute__((noinline)) void touch_stack(void)
{
    volatile char pad[32 << 10];
    for (size_t i = 0; i < sizeof pad; i += 512)
        pad[i] = (char)i;
}

/* Minor faults taken by setting SIGUSR1 and SIGUSR2 to on_usr1 again, three times each (after the
 * stack below is written, every object's pages read, a first getrusage and a handler-less
 * sigaction, so that only writes to the allocator's data can fault), or -1 if a call failed. */
static long faults_of_resetting(void)
{
    touch_stack();
    dl_iterate_phdr(touch_object, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    if (sigaction(SIGURG, &sa, NULL) != 0)
        return -1;
    long before = minflt();
    for (int i = 0; i < 3; i++)
        if (set(SIGUSR1, on_usr1) != 0 || set(SIGUSR2, on_usr1) != 0)
            return -1;
    return minflt() - before;
}

int main(void)
{
    SAY("after fork(), setting the handlers already in force writes no page, in the child and the parent");
    void *keep = malloc(100);
    CHECK(set(SIGUSR1, on_usr1) == 0 && set(SIGUSR2, on_usr1) == 0, "sigaction failed");
    /* the fewest faults of ROUNDS forks on each side: a page of the stack or of the loader may
     * still fault once in a round, more so on a loaded machine, under glibc's malloc as under
     * Labyrinth, where a wrapper that writes its pages faults in every round */
    enum { ROUNDS = 6, CHILD_FAILED = 100 };
    long least_parent = 1000, least_child = 1000;
    for (int round = 0; round < ROUNDS; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            long f = faults_of_resetting();
            raise(SIGUSR1);
            _exit(f < 0 ? CHILD_FAILED + 1 : hits != 1 ? CHILD_FAILED + 2 : (int)lab_min_long(f, 99));
        }
        CHECK(pid > 0, "fork failed");
        if (pid < 0)
            break;
        long f = faults_of_resetting();
        CHECK(f >= 0, "round %d: sigaction failed in the parent", round);
        least_parent = f >= 0 && f < least_parent ? f : least_parent;
        int st = 0;
        pid_t w;
        while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
            ;
        int code = w == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        CHECK(code >= 0 && code < CHILD_FAILED, "round %d: child ended with %d (101: sigaction failed, 102: "
              "the handler did not run)", round, code);
        if (code >= 0 && code < least_child)
            least_child = code;
    }
    SAY("fewest minor faults re-setting the handlers in %d rounds: %ld in the parent, %ld in the child",
        ROUNDS, least_parent, least_child);
    CHECK(least_parent == 0 && least_child == 0, "setting the handlers in force after a fork should write "
          "no page (fewest faults: parent %ld, child %ld)", least_parent, least_child);
    long before = hits;
    raise(SIGUSR2);
    CHECK(hits == before + 1, "the handler did not run in the parent");
    free(keep);
    return lab_finish("fork_sigaction");
}
