/* signal_defer.c — a page-sized block freed by a handler that interrupted the allocator is
 * deferred (on a signal heap its free may not lock or unmap: core/alloc.c lab_defer_free), and
 * the thread's next malloc past the fast path frees it first. Page-sized mallocs have an entry
 * of their own (alloc_page_sized); it must run the deferred frees too, or a thread that goes on
 * making page-sized blocks keeps every one its handlers freed. Each round the main thread makes
 * a block of SIZE and waits, inside the allocator (malloc_usable_size of another block, so that
 * the timer's handler interrupts allocator code), until the handler has freed it; the next round's
 * malloc of SIZE must get that block back (the thread's room hands back the run freed last),
 * which it can only once the deferred free ran. Timing decides which rounds the handler
 * interrupts inside the allocator, so only most rounds are required to reuse their block. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/time.h>

#include "lab_check.h"

enum { ROUNDS = 400 };
static void *_Atomic slot;
static atomic_int handled;

static void on_alarm(int sig)
{
    (void)sig;
    void *p = atomic_exchange(&slot, NULL);
    if (p) {
        free(p);
        atomic_fetch_add(&handled, 1);
    }
}

static int run(size_t size)
{
    void *other = malloc(100), *prev = NULL;
    int reused = 0;
    for (int r = 0; r < ROUNDS; r++) {
        void *p = malloc(size);
        CHECK(p != NULL, "malloc(%zu)", size);
        if (!p)
            break;
        reused += p == prev;
        memset(p, 0x5a, 64);
        prev = p;
        atomic_store(&slot, p);
        while (atomic_load(&slot))
            (void)malloc_usable_size(other);
    }
    free(other);
    SAY("signal_defer: size %zu: %d of %d rounds got the block the handler freed", size, reused, ROUNDS);
    return reused;
}

int main(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
    struct itimerval it = {{0, 200}, {0, 200}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    /* a power of two of pages and a run of nine: the two ways a page-sized block is made */
    int a = run(65536), b = run(9 * 4096);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    CHECK(atomic_load(&handled) == 2 * ROUNDS, "every block freed by the handler");
    if (lab_expect_labyrinth()) {
        CHECK(a > ROUNDS / 2, "64 KiB: only %d of %d rounds reused the block freed in the handler", a, ROUNDS);
        CHECK(b > ROUNDS / 2, "36 KiB: only %d of %d rounds reused the block freed in the handler", b, ROUNDS);
    }
    return lab_finish("signal_defer");
}
