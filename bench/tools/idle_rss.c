/* idle_rss.c — what a pool of worker threads keeps resident once the work is done: THREADS
 * threads each allocate BLOCKS blocks (three in four of 16 B - 1 KiB, one in four of 16 B -
 * 32 KiB), write them, free them all, ROUNDS times; then they wait, alive, as a server's workers
 * wait for the next request. Prints the process's RSS (KiB, /proc/self/statm) after the work, every
 * half second of IDLE_S seconds of waiting, and after malloc_trim(0).
 *   idle_rss [THREADS [ROUNDS [BLOCKS [IDLE_S]]]]   (defaults 32 20 400 6)
 * scripts/idle_rss.sh runs it under each allocator. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_barrier_t done, leave;
static int rounds = 20, blocks = 400;

static void *worker(void *arg)
{
    unsigned s = (unsigned)(size_t)arg * 7919u + 1;
    void **p = calloc((size_t)blocks, sizeof *p);
    if (!p)
        abort();
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < blocks; i++) {
            s = s * 1103515245u + 12345u;
            size_t n = 16 + (s >> 8) % ((s & 3) ? 1024 : 32768);
            if (!(p[i] = malloc(n)))
                abort();
            memset(p[i], 1, n);
        }
        for (int i = 0; i < blocks; i++)
            free(p[i]);
    }
    free(p);
    pthread_barrier_wait(&done);
    pthread_barrier_wait(&leave);
    return NULL;
}

static long rss_kib(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = -1;
    if (f)
        fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 32, idle = argc > 4 ? atoi(argv[4]) : 6;
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (argc > 3)
        blocks = atoi(argv[3]);
    if (threads < 1 || threads > 1024 || rounds < 1 || blocks < 1 || idle < 0)
        return 2;
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!t)
        return 1;
    pthread_barrier_init(&done, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&leave, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(size_t)i))
            return 1;
    pthread_barrier_wait(&done);
    printf("work %ld", rss_kib());
    for (int k = 1; k <= 2 * idle; k++) {
        usleep(500000);
        printf(" %.1fs %ld", k / 2.0, rss_kib());
    }
    malloc_trim(0);
    printf(" trim %ld\n", rss_kib());
    pthread_barrier_wait(&leave);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return 0;
}
