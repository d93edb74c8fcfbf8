/* signal_drain.c — a thread's frees of an ended thread's blocks return them at once (msg_send
 * drains the ended thread's heap, core/arena.c), and that drain calls into libc (the clock),
 * where a signal handler that frees the same heap's blocks can land on the thread's own heap.
 * The slot of the message being sent was still open there: the handler appended to a message
 * already drained, whose count the drain had overwritten, and the process crashed (found by a
 * concurrency review: every run of 60 cycles). Now the slot is empty while its message is sent,
 * and the sender's heap is marked busy during the drain (the handler runs on a signal heap).
 * Each cycle: 8 threads each hold 700 small blocks; thread A allocates 7 000 blocks of 8 KiB and
 * ends; the main thread frees A's blocks 6 at a time, between them one block of each of the 8
 * threads (so that opening a message sends A's), while another thread signals it without pause
 * and the handler frees more of A's blocks. Every block freed once; blocks are checked. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>

#include "lab_check.h"

enum { NA = 4000, NH = 3000, NB = 8, PERB = 700, SIZE_A = 8192 };
static void *ablk[NA], *hblk[NH];
static atomic_int hidx;
static void *bblk[NB][PERB];
static pthread_barrier_t bar;
static atomic_int done;
static int cycles = 60;
static pthread_t main_thread;

static void *thread_a(void *x)
{
    (void)x;
    for (int i = 0; i < NA; i++)
        if ((ablk[i] = malloc(SIZE_A)))
            memset(ablk[i], 0xA5, 64);
    for (int i = 0; i < NH; i++)
        if ((hblk[i] = malloc(SIZE_A)))
            memset(hblk[i], 0x5A, 64);
    return NULL;
}

static void *thread_b(void *x)
{
    long k = (long)x;
    for (int c = 0; c < cycles; c++) {
        for (int i = 0; i < PERB; i++)
            bblk[k][i] = malloc(64);
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar);
    }
    return NULL;
}

static void handler(int sig)
{
    (void)sig;
    for (int j = 0; j < 3; j++) {
        int i = atomic_fetch_add(&hidx, 1);
        if (i < NH)
            free(hblk[i]);
    }
}

static void *signaller(void *x)
{
    (void)x;
    while (!atomic_load(&done)) {
        pthread_kill(main_thread, SIGUSR1);
        for (volatile int i = 0; i < 50; i++)
            ;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cycles = atoi(argv[1]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    main_thread = pthread_self();
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &ss, NULL);
    pthread_barrier_init(&bar, NULL, NB + 1);
    pthread_t a, b[NB], sp;
    for (long i = 0; i < NB; i++)
        CHECK(pthread_create(&b[i], NULL, thread_b, (void *)i) == 0, "pthread_create");
    CHECK(pthread_create(&sp, NULL, signaller, NULL) == 0, "pthread_create");
    long handler_frees = 0;
    for (int c = 0; c < cycles; c++) {
        pthread_barrier_wait(&bar); /* the 8 threads' blocks are ready */
        atomic_store(&hidx, 0);
        CHECK(pthread_create(&a, NULL, thread_a, NULL) == 0, "pthread_create");
        pthread_join(a, NULL); /* A's heap is abandoned */
        for (int i = 0; i < NA; i += 97)
            CHECK(ablk[i] && ((unsigned char *)ablk[i])[63] == 0xA5, "A's block %d", i);
        pthread_sigmask(SIG_UNBLOCK, &ss, NULL);
        int ai = 0, bi = 0;
        while (ai + 6 <= NA && bi < PERB) {
            for (int i = 0; i < 6; i++)
                free(ablk[ai++]);
            for (int k = 0; k < NB; k++)
                free(bblk[k][bi]);
            bi++;
        }
        pthread_sigmask(SIG_BLOCK, &ss, NULL);
        for (; ai < NA; ai++)
            free(ablk[ai]);
        for (int k = 0; k < NB; k++)
            for (int i = bi; i < PERB; i++)
                free(bblk[k][i]);
        int h = atomic_load(&hidx);
        handler_frees += h < NH ? h : NH;
        for (int i = h; i < NH; i++)
            free(hblk[i]);
        pthread_barrier_wait(&bar);
    }
    atomic_store(&done, 1);
    pthread_join(sp, NULL);
    for (int i = 0; i < NB; i++)
        pthread_join(b[i], NULL);
    printf("signal_drain: %d cycles, %ld blocks freed in the handler\n", cycles, handler_frees);
    CHECK(handler_frees > 0, "the handler never freed a block");
    return lab_finish("signal_drain");
}
