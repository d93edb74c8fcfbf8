/* dlopen_tls.c — the dynamic loader as a user of the allocator: dlopen, run threads that touch
 * the library's dynamic TLS (each thread's block allocated by the loader, 256-byte aligned, on
 * first access, and freed when the thread exits, after the allocator's own thread-exit work may
 * have run), dlclose, 60 times over. Also a thread that lives across a dlclose and a new
 * dlopen, using both loads. Every value written through the library is checked. Argument: the library's path. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

#include "lab_check.h"

typedef uint64_t (*touch_fn)(uint64_t seed, int *align_ok, int *ok);

static uint64_t expect(uint64_t seed, uint64_t count)
{
    uint64_t h = seed;
    for (size_t k = 0; k < 6000; k++)
        h = h * 31 + (unsigned char)(seed + k);
    return h + count;
}

struct job {
    touch_fn touch;
    uint64_t seed;
    int rounds;
    int bad;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    for (int r = 0; r < j->rounds; r++) {
        int align_ok = 0, ok = 0;
        uint64_t h = j->touch(j->seed + (uint64_t)r, &align_ok, &ok);
        if (h != expect(j->seed + (uint64_t)r, (uint64_t)r + 1) || !align_ok || !ok)
            j->bad++;
        /* allocations of the thread's own between the library's */
        void *p = malloc(64 + (size_t)r * 8);
        free(p);
    }
    return NULL;
}

struct across {
    struct job job;
    pthread_barrier_t closed, reopened;
};

/* Ten rounds, a pause while main closes and reopens the library, ten rounds on the new one (a
 * new module: its TLS starts over, so the counts start over too). */
static void *across_worker(void *arg)
{
    struct across *a = arg;
    worker(&a->job);
    pthread_barrier_wait(&a->closed);
    pthread_barrier_wait(&a->reopened);
    if (a->job.touch)
        worker(&a->job);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIBRARY\n", argv[0]);
        return 2;
    }
    SAY("dlopen, 4 threads on the library's dynamic TLS (256-byte aligned), dlclose: 60 times");
    int bad = 0, loads = 0;
    for (int round = 0; round < 60; round++) {
        void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        CHECK(lib != NULL, "dlopen: %s", dlerror());
        if (!lib)
            break;
        loads++;
        touch_fn touch = (touch_fn)(uintptr_t)dlsym(lib, "lib_touch");
        CHECK(touch != NULL, "dlsym: %s", dlerror());
        if (!touch) {
            dlclose(lib);
            break;
        }
        pthread_t t[4];
        struct job jobs[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (struct job){touch, (uint64_t)(round * 1000 + i * 100), 20, 0};
            CHECK(pthread_create(&t[i], NULL, worker, &jobs[i]) == 0, "pthread_create");
        }
        /* the main thread's own TLS block for this load, while the others run */
        struct job mine = {touch, (uint64_t)round * 7 + 3, 5, 0};
        worker(&mine);
        bad += mine.bad;
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            bad += jobs[i].bad;
        }
        CHECK(dlclose(lib) == 0, "dlclose: %s", dlerror());
    }
    CHECK(bad == 0, "%d checks of the library's TLS or its constructor's blocks failed", bad);
    CHECK(loads == 60, "only %d loads", loads);

    SAY("a thread alive across dlclose and a new dlopen: its old TLS block is dropped, a new one made");
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(lib != NULL, "dlopen: %s", dlerror());
    if (lib) {
        struct across a = {.job = {(touch_fn)(uintptr_t)dlsym(lib, "lib_touch"), 42, 10, 0}};
        pthread_barrier_init(&a.closed, NULL, 2);
        pthread_barrier_init(&a.reopened, NULL, 2);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, across_worker, &a) == 0, "pthread_create");
        pthread_barrier_wait(&a.closed); /* its first 10 rounds are done */
        CHECK(dlclose(lib) == 0, "dlclose: %s", dlerror());
        lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        CHECK(lib != NULL, "dlopen again: %s", dlerror());
        a.job.touch = lib ? (touch_fn)(uintptr_t)dlsym(lib, "lib_touch") : NULL;
        pthread_barrier_wait(&a.reopened);
        pthread_join(t, NULL);
        CHECK(a.job.bad == 0, "%d checks failed across the reload", a.job.bad);
        if (lib)
            dlclose(lib);
    }
    if (lab_expect_labyrinth())
        CHECK(strstr(lab_malloc_provider(), "labyrinth") != NULL, "malloc is %s", lab_malloc_provider());
    if (atomic_load(&lab_failures)) {
        fprintf(stderr, "dlopen_tls: %d check(s) failed\n", atomic_load(&lab_failures));
        return 1;
    }
    SAY("dlopen_tls: all checks passed");
    return 0;
}
