/* thread_first.c — start-up: the program's first allocations come from threads, several at once,
 * not from the main thread. The threads are released together by a spin flag (not a pthread
 * barrier, which could allocate) so they race through creating their heaps. (glibc's
 * pthread_create itself callocs each new thread's DTV in the creating thread, so the allocator's
 * very first call is that calloc in main; no glibc program can avoid it.) */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "lab_check.h"

enum { THREADS = 8, BLOCKS = 2000 };

static atomic_int go;

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    while (!atomic_load_explicit(&go, memory_order_acquire))
        ;
    static __thread void *blocks[BLOCKS];
    uint64_t seed = 0x1234567 + id;
    for (int i = 0; i < BLOCKS; i++) {
        size_t n = 1 + lab_rand(&seed) % (i % 100 == 0 ? 300000 : 2000);
        blocks[i] = malloc(n);
        if (blocks[i] == NULL)
            return (void *)1;
        lab_canary_fill(blocks[i], n);
    }
    seed = 0x1234567 + id;
    uintptr_t bad = 0;
    for (int i = 0; i < BLOCKS; i++) {
        size_t n = 1 + lab_rand(&seed) % (i % 100 == 0 ? 300000 : 2000);
        if (lab_canary_check(blocks[i], n) != SIZE_MAX)
            bad++;
        free(blocks[i]);
    }
    return (void *)bad;
}

int main(void)
{
    /* Nothing of ours allocates before the threads do: no stdio yet (stdout's buffer is malloc'd). */
    pthread_t t[THREADS];
    int created = 0;
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) == 0)
            created++;
    atomic_store_explicit(&go, 1, memory_order_release);
    uintptr_t bad = 0;
    for (int i = 0; i < created; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += (uintptr_t)r;
    }
    SAY("first allocations of the process made by %d racing threads", THREADS);
    CHECK(created == THREADS, "only %d threads created", created);
    CHECK(bad == 0, "%lu blocks failed or were damaged", (unsigned long)bad);
    void *p = malloc(100); /* and the main thread's first allocation comes last */
    CHECK(p != NULL, "main thread malloc after the workers failed");
    free(p);
    return lab_finish("thread_first");
}
