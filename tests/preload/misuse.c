/* misuse.c — Labyrinth only: each kind of detected misuse, run in a forked child, must end in
 * SIGABRT with a "labyrinth: ..." line naming the address: double free of a small block (local,
 * after other frees, from another thread, twice from another thread, from another thread and then
 * the owner, from another thread that keeps running and then the owner), of a page-sized and of a
 * huge block, and an interior
 * pointer of a page-sized block. A program that overwrites a freed block's key word with its own
 * data must not be stopped (no false positive). Skips (77) without LAB_EXPECT_LABYRINTH. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *shared_block;
static void *free_shared(void *arg)
{
    (void)arg;
    free(shared_block);
    return NULL;
}

/* frees the block and holds on: a thread that frees another's block may keep it for reuse */
static volatile int freed_and_holding;
static void *free_shared_hold(void *arg)
{
    (void)arg;
    free(shared_block);
    __atomic_store_n(&freed_and_holding, 1, __ATOMIC_RELEASE);
    for (;;)
        pause();
    return NULL;
}

/* frees another thread's block, allocates the same size again (likely that very block), and
 * hands the new block back: legal, whatever block it is */
static void *free_then_malloc(void *arg)
{
    (void)arg;
    free(shared_block);
    return malloc(32);
}

static void *free_shared_twice(void *arg)
{
    (void)arg;
    free(shared_block);
    free(shared_block);
    return NULL;
}

static void run(int mode)
{
    void *a = malloc(32), *b = malloc(32);
    switch (mode) {
    case 0: free(a); free(a); break;                              /* back to back */
    case 1: free(a); free(b); free(a); break;                     /* with a free between */
    case 2: {                                                      /* second free remote */
        shared_block = a;
        free(a);
        pthread_t t;
        pthread_create(&t, NULL, free_shared, NULL);
        pthread_join(t, NULL);
        break;
    }
    case 3: { void *p = malloc(100000); free(p); free(p); break; } /* page-sized */
    case 4: { void *p = malloc(8 << 20); free(p); free(p); break; } /* huge */
    case 5: { char *p = malloc(100000); free(p + 4096); break; }   /* interior, page-sized */
    case 6: {                                                      /* twice by another thread */
        shared_block = a;
        pthread_t t;
        pthread_create(&t, NULL, free_shared_twice, NULL);
        pthread_join(t, NULL);
        break;
    }
    case 8: {       /* another thread, which keeps running, then the owner while it holds it */
        shared_block = a;
        pthread_t t;
        pthread_create(&t, NULL, free_shared_hold, NULL);
        while (!__atomic_load_n(&freed_and_holding, __ATOMIC_ACQUIRE))
            sched_yield();
        free(a);
        /* had the owner taken it back, both threads could now allocate the same block */
        for (int i = 0; i < 1000; i++)
            (void)malloc(32);
        break;
    }
    case 9: { /* freed, taken back into secure mode's shuffled batch, freed again while it waits */
        enum { N = 65 }; /* a batch of 48-byte blocks is 64: the 64th malloc makes the next one */
        void *x = malloc(48), *keep[N];
        free(x);
        int handed = 0;
        for (int i = 0; i < N; i++)
            handed |= (keep[i] = malloc(48)) == x;
        if (handed) /* handed out again (always without secure mode): an ordinary double free */
            free(x);
        free(x);
        break;
    }
    case 7: {        /* another thread first (the block travels to us), then the owner again */
        shared_block = a;
        pthread_t t;
        pthread_create(&t, NULL, free_shared, NULL);
        pthread_join(t, NULL);
        free(a);
        for (int i = 0; i < 100000; i++) /* the owner takes its messages on a slow path */
            (void)malloc(32);
        break;
    }
    }
}

static int expect_abort(int mode)
{
    int fds[2];
    if (pipe(fds))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        run(mode);
        _exit(0);
    }
    close(fds[1]);
    char buf[512] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && n > 0 && strstr(buf, "labyrinth: ") && strstr(buf, "0x");
    printf("misuse mode %d: %s (%s)\n", mode, ok ? "aborted with a message" : "NOT DETECTED", n > 0 ? buf : "no message");
    return !ok;
}

int main(void)
{
    const char *e = getenv("LAB_EXPECT_LABYRINTH");
    if (!e || strcmp(e, "1")) {
        printf("misuse: skipped (Labyrinth only)\n");
        return 77;
    }
    int bad = 0;
    for (int m = 0; m <= 9; m++)
        bad += expect_abort(m);
    /* no false positive: another thread frees our block and allocates again; we free what it
     * got, many times over, and every live block stays distinct */
    enum { LIVE = 256 };
    void *live[LIVE];
    for (int i = 0; i < LIVE; i++)
        live[i] = NULL;
    for (int i = 0; i < 2000; i++) {
        shared_block = malloc(32);
        pthread_t t;
        void *got;
        pthread_create(&t, NULL, free_then_malloc, NULL);
        pthread_join(t, &got);
        memset(got, 0xa5, 32);
        free(live[i % LIVE]);
        live[i % LIVE] = got;
    }
    for (int i = 0; i < LIVE; i++)
        for (int j = i + 1; j < LIVE; j++)
            if (live[i] == live[j]) {
                printf("misuse: block %p handed out twice\n", live[i]);
                bad++;
            }
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
    /* no false positive: blocks whose second word holds arbitrary data, freed and reused */
    for (int i = 0; i < 200000; i++) {
        long *q = malloc(48);
        q[0] = i;
        q[1] = (long)0x9e3779b97f4a7c15 ^ i;
        free(q);
    }
    printf("misuse: %d undetected\n", bad);
    return bad ? 1 : 0;
}
