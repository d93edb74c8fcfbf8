/* clock_wrap.c — a library preloaded beside Labyrinth that wraps clock_gettime and allocates in
 * the wrapper, as libfaketime does at its first call (its dlsym's failure message is a malloc).
 * The pool read the clock through clock_gettime while it set up under its lock, so a program's
 * first malloc waited for itself (found by review: any program under faketime hung). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long calls;

long clock_wrap_calls(void) { return __atomic_load_n(&calls, __ATOMIC_RELAXED); }

int clock_gettime(clockid_t id, struct timespec *ts)
{
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    char *volatile p = malloc(100);
    if (p)
        p[0] = 1;
    free(p);
    return (int)syscall(SYS_clock_gettime, id, ts);
}
