/* misuse.c — Labyrinth only: each kind of detected misuse, run in a forked child, must end in
 * SIGABRT with a "labyrinth: ..." line naming the address: double free of a small block (local,
 * after other frees, from another thread, twice from another thread, from another thread and then
 * the owner), of a page-sized and of a huge block, and an interior
 * pointer of a page-sized block. A program that overwrites a freed block's key word with its own
 * data must not be stopped (no false positive). Skips (77) without LAB_EXPECT_LABYRINTH. */
#define _GNU_SOURCE
#include <pthread.h>
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
    for (int m = 0; m <= 7; m++)
        bad += expect_abort(m);
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
