/* signal_longjmp.c — a timeout's shape: a SIGALRM handler that leaves by siglongjmp, out of a
 * loop that makes one memory-mapping call (mprotect, mmap + munmap, madvise), which Labyrinth
 * interposes. The signal lands in its interposed entry point most of the time; that is no
 * allocator call, so the handler must not run on a signal heap, and the thread must allocate as
 * before once it is out: malloc(2 MiB) (which a signal heap always refuses) and 100 000 blocks
 * of 64 bytes must all succeed. With the previous library the thread stayed on the signal heap
 * for good (found by review: the 2 MiB failed, and 68 256 of the small ones). Runs on glibc too.
 *   signal_longjmp mprotect|mmap|madvise */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>

#include "lab_check.h"

static sigjmp_buf jump_out;
static int which; /* 0 mprotect, 1 mmap + munmap, 2 madvise */
static void on_alarm(int sig)
{
    (void)sig;
    siglongjmp(jump_out, 1);
}

int main(int argc, char **argv)
{
    static const char *const calls_of[] = {"mprotect", "mmap", "madvise"};
    which = -1;
    for (int i = 0; i < 3; i++)
        if (argc > 1 && !strcmp(argv[1], calls_of[i]))
            which = i;
    if (which < 0) {
        fprintf(stderr, "usage: %s mprotect|mmap|madvise\n", argv[0]);
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
    char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(page != MAP_FAILED, "mmap");
    volatile long calls = 0;
    if (!sigsetjmp(jump_out, 1)) {
        struct itimerval it = {{0, 0}, {0, 2000}};
        CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
        for (;; calls++)
            switch (which) {
            case 0: mprotect(page, 4096, calls & 1 ? PROT_READ : PROT_READ | PROT_WRITE); break;
            case 1: munmap(mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 8192); break;
            default: madvise(page, 4096, MADV_DONTNEED); break;
            }
    }
    SAY("signal_longjmp %s: the timeout left its handler by siglongjmp after %ld calls", argv[1], (long)calls);
    void *big = malloc(2 << 20);
    CHECK(big != NULL, "malloc(2 MiB) failed after the timeout");
    enum { N = 100000 };
    void **small = malloc(N * sizeof *small);
    CHECK(small != NULL, "malloc of the pointer array failed");
    long failed = 0;
    for (int i = 0; small && i < N; i++)
        failed += (small[i] = malloc(64)) == NULL;
    CHECK(failed == 0, "%ld of %d malloc(64) failed after the timeout", failed, N);
    for (int i = 0; small && i < N; i++)
        free(small[i]);
    free(small);
    free(big);
    return lab_finish("signal_longjmp");
}
