/* clock_main.c — run with clock_wrap.so preloaded beside the allocator, in either order: threads
 * allocate small, page-sized and huge blocks, malloc_trim purges, and the program reads the clock
 * itself, through the wrapper. Ending at all is the test (a hang is ctest's timeout); the wrapper
 * must have been called, or the test proves nothing. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <time.h>

#include "lab_check.h"

static void *work(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        size_t n = i % 50 == 0 ? (size_t)3 << 20 : i % 7 == 0 ? 200000 : 16 + (size_t)i % 900;
        char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        if (p)
            p[0] = p[n - 1] = 1;
        free(p);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, work, NULL) == 0, "pthread_create");
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    malloc_trim(0);
    struct timespec ts;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0, "clock_gettime");
    long (*calls)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "clock_wrap_calls");
    CHECK(calls != NULL && calls() > 0, "the clock_gettime wrapper was not preloaded");
    return lab_finish("clock_wrap");
}
