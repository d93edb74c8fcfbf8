/* thread_exit.c — allocation at the edges of a thread's and the process's life: thread_local
 * destructors (__cxa_thread_atexit_impl, what C++ thread_local uses) and pthread key destructors
 * that allocate and free after the allocator may already have retired the thread's heap, blocks
 * handed out of dying threads, and atexit handlers that allocate after main returns
 * (DESIGN.md: "frees that arrive after the thread's TLS is torn down still work"), and frees
 * that come after every key destructor (glibc's own per-thread buffers) without memory growth. */
#define _GNU_SOURCE
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab_check.h"

enum { THREADS = 64, ROUNDS = 4 };

/* glibc's hook for C++ thread_local destructors; runs before the pthread key destructors. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *arg, void *dso) __attribute__((weak));
extern void *__dso_handle;

struct survivor {
    void *p;
    size_t size;
};

static pthread_key_t key;
static pthread_mutex_t survivors_lock = PTHREAD_MUTEX_INITIALIZER;
static struct survivor survivors[THREADS * (ROUNDS + 2)];
static int survivor_count;

static void keep_for_main(size_t size)
{
    void *p = malloc(size);
    CHECK(p != NULL, "malloc(%zu) in a thread destructor failed", size);
    if (!p) return;
    lab_canary_fill(p, size);
    pthread_mutex_lock(&survivors_lock);
    survivors[survivor_count++] = (struct survivor){p, size};
    pthread_mutex_unlock(&survivors_lock);
}

static void key_destructor(void *value)
{
    uintptr_t round = (uintptr_t)value;
    /* Allocate, free, and leave one block for main, in every destructor round. */
    void *scratch = malloc(100 + 1000 * round);
    free(scratch);
    keep_for_main(40 + 4000 * round);
    /* Setting the value again asks glibc for another round, so some rounds come after whatever
     * thread-exit key the allocator registered itself. */
    if (round + 1 < ROUNDS)
        pthread_setspecific(key, (void *)(round + 1));
}

static void tls_destructor(void *arg)
{
    free(arg); /* a block the thread allocated while alive */
    keep_for_main(300);
}

static void *short_thread(void *arg)
{
    (void)arg;
    pthread_setspecific(key, (void *)(uintptr_t)1);
    if (__cxa_thread_atexit_impl)
        __cxa_thread_atexit_impl(tls_destructor, malloc(77), &__dso_handle);
    void *p = malloc(5000);
    free(p);
    keep_for_main(123);
    return NULL;
}

static void at_exit_allocates(void)
{
    /* After main returned: the allocator may be printing stats or tearing down by now. */
    for (size_t n = 16; n <= (1u << 22); n *= 4) {
        void *p = malloc(n);
        if (p == NULL) {
            static const char msg[] = "FAIL: malloc in an atexit handler returned NULL\n";
            write(2, msg, sizeof msg - 1);
            _exit(1);
        }
        lab_canary_fill(p, n);
        free(p);
    }
}

/* A thread whose libc buffer (strsignal of an unknown signal: asprintf into a per-thread pointer)
 * is freed by glibc after the pthread key destructors (__libc_thread_freeres), when the
 * allocator has retired the thread's heap. That free took a heap again, which no destructor
 * then retired: 64 KiB and a heap kept for every such thread (found by review). */
static void *freeres_thread(void *arg)
{
    void *v[100];
    for (int i = 0; i < 100; i++) /* past the nursery's blocks of the class */
        v[i] = malloc(24);
    for (int i = 0; i < 100; i++)
        free(v[i]);
    CHECK(strsignal(1000 + (int)(uintptr_t)arg % 7) != NULL, "strsignal");
    return NULL;
}

enum { FREERES_THREADS = 1000 };

/* A key destructor that sets itself again up to glibc's last round and allocates in every
 * round: after the allocator's own destructor had run in that round, the malloc took a heap
 * that no destructor retired any more, and the heap, with the spans it had listed, stayed with
 * the ended thread (found by review: a heap and about 380 KiB for every such thread). */
static pthread_key_t late_key;
static int late_only_last; /* allocate in the last round only (not in every round) */

static void late_destructor(void *value)
{
    uintptr_t round = (uintptr_t)value;
    if (!late_only_last || round == PTHREAD_DESTRUCTOR_ITERATIONS) {
        void *volatile p = malloc(64 + 200 * round);
        CHECK(p != NULL, "malloc in destructor round %lu", (unsigned long)round);
        memset(p, 1, 64);
        free(p);
    }
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS + 1)
        pthread_setspecific(late_key, (void *)(round + 1));
}

static void *late_thread(void *arg)
{
    (void)arg;
    void *v[64];
    for (int i = 0; i < 64; i++) /* spans of a few classes listed in the heap */
        v[i] = malloc(16 + 48 * (size_t)i);
    for (int i = 0; i < 64; i += 2)
        free(v[i]);
    for (int i = 1; i < 64; i += 2)
        free(v[i]);
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

enum { LATE_THREADS = 500 };

/* Threads that make no allocator call of their own: the first comes in a key destructor's last
 * round (a malloc and free there, or the free of a block main allocated). Our destructor, whose
 * key was set only then, never ran for them, and the heap each took stayed with the ended
 * thread for good (found by review: 8 000 such threads, 86-90 MB against glibc's 1.7 MB). */
static pthread_key_t first_key;
static int first_free_only; /* 1: the free of main's block; 2: a page-sized malloc and free */
static void *first_block;

static void first_destructor(void *value)
{
    uintptr_t round = (uintptr_t)value;
    if (round == PTHREAD_DESTRUCTOR_ITERATIONS) {
        if (first_free_only == 1) {
            free(first_block);
        } else if (first_free_only == 2) {
            void *volatile p = malloc(200000); /* a page run: the thread's rooms, made here */
            CHECK(p != NULL, "malloc(200000) in the last destructor round");
            free(p);
        } else {
            void *volatile p = malloc(100);
            CHECK(p != NULL, "malloc in the last destructor round");
            free(p);
        }
    }
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS)
        pthread_setspecific(first_key, (void *)(round + 1));
}

static void *first_thread(void *arg)
{
    (void)arg;
    pthread_setspecific(first_key, (void *)1); /* no allocator call (a key among the first 32) */
    return NULL;
}

int main(void)
{
    SAY("%d threads whose key and thread_local destructors allocate and free during exit", THREADS);
    CHECK(pthread_key_create(&key, key_destructor) == 0, "pthread_key_create");
    atexit(at_exit_allocates);
    for (int i = 0; i < THREADS; i += 8) {
        pthread_t t[8];
        for (int k = 0; k < 8; k++)
            CHECK(pthread_create(&t[k], NULL, short_thread, NULL) == 0, "pthread_create");
        for (int k = 0; k < 8; k++)
            pthread_join(t[k], NULL);
    }
    SAY("blocks allocated in dying threads' destructors are intact and freeable by main (%d)",
        survivor_count);
    /* Per thread: one from its body, ROUNDS-1 key destructor rounds, one thread_local dtor. */
    int expected = THREADS * (1 + (ROUNDS - 1) + (__cxa_thread_atexit_impl ? 1 : 0));
    CHECK(survivor_count == expected, "%d blocks, expected %d", survivor_count, expected);
    for (int i = 0; i < survivor_count; i++) {
        size_t bad = lab_canary_check(survivors[i].p, survivors[i].size);
        CHECK(bad == SIZE_MAX, "block of %zu from a destructor damaged at %zu", survivors[i].size,
              bad);
        free(survivors[i].p);
    }
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < FREERES_THREADS; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, freeres_thread, (void *)(uintptr_t)i) == 0, "pthread_create");
        pthread_join(t, NULL);
    }
    size_t after = mallinfo2().uordblks;
    SAY("%d threads whose libc frees a buffer after the key destructors: in use %zu -> %zu KiB",
        FREERES_THREADS, before >> 10, after >> 10);
    CHECK(after < before + ((size_t)8 << 20), "memory in use grew by %zu KiB", (after - before) >> 10);
    CHECK(pthread_key_create(&late_key, late_destructor) == 0, "pthread_key_create");
    for (late_only_last = 0; late_only_last < 2; late_only_last++) {
        for (int i = 0; i < LATE_THREADS; i++) {
            pthread_t t;
            CHECK(pthread_create(&t, NULL, late_thread, NULL) == 0, "pthread_create");
            pthread_join(t, NULL);
        }
        if (lab_expect_labyrinth()) {
            /* one after another: each adopts the heap the one before gave up */
            char text[16384];
            CHECK(lab_malloc_stats_text(text, sizeof text) > 0, "malloc_stats: nothing caught");
            long heaps = lab_stats_field(text, "heaps");
            SAY("%d threads more that allocate in %s: %ld heaps made so far", LATE_THREADS,
                late_only_last ? "the last round of key destructors only" : "every round of key destructors",
                heaps);
            CHECK(heaps >= 1 && heaps < 64 * (late_only_last + 1), "%ld heaps made: the threads' heaps were not "
                  "given up", heaps);
        }
    }
    CHECK(pthread_key_create(&first_key, first_destructor) == 0, "pthread_key_create");
    for (first_free_only = 0; first_free_only < 3; first_free_only++) {
        char text[16384];
        long heaps0 = lab_malloc_stats_text(text, sizeof text) > 0 ? lab_stats_field(text, "heaps") : 0;
        malloc_trim(0);
        long rss0 = lab_rss_kib();
        for (int i = 0; i < 4 * LATE_THREADS; i++) {
            pthread_t t;
            first_block = malloc(100);
            CHECK(pthread_create(&t, NULL, first_thread, NULL) == 0, "pthread_create");
            pthread_join(t, NULL);
            if (first_free_only != 1)
                free(first_block);
        }
        malloc_trim(0);
        /* each thread's heap, or its set of rooms (about 1.25 KB: made by the frees that gave its
         * span or run back), stayed with it: 2.5 MB for these at the least */
        long grew = lab_rss_kib() - rss0;
        SAY("%d threads whose first allocator call is %s in the last round: RSS grew by %ld KiB",
            4 * LATE_THREADS, first_free_only == 2 ? "a page-sized malloc" : first_free_only ? "a free" : "a malloc",
            grew);
        CHECK(grew < 1024, "RSS grew by %ld KiB: the ended threads kept their heaps or rooms", grew);
        if (first_free_only == 2)
            continue;
        if (lab_expect_labyrinth()) {
            CHECK(lab_malloc_stats_text(text, sizeof text) > 0, "malloc_stats: nothing caught");
            long heaps = lab_stats_field(text, "heaps") - heaps0;
            SAY("... and %ld heaps made", heaps);
            CHECK(heaps >= 0 && heaps < 48, "%ld heaps made: the ended threads kept theirs", heaps);
        }
    }
    SAY("an atexit handler allocates 16 B .. 4 MiB after main returns");
    return lab_finish("thread_exit");
}
