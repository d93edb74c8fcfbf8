/* exit_sends_home.c — blocks a thread freed for another, and still held when it exits, go home.
 * A thread's frees of other threads' small blocks wait in that thread: up to 16 a class on its
 * reuse list (for its own next mallocs) and the rest in open messages to the owner (sent at 62
 * blocks). README: they wait "until it exits or calls malloc_trim". So at its exit the thread's
 * heap is tidied (heap_tidy in lab_heap_thread_exit): the lists and the open messages go to the
 * owners. Without that they stay in the abandoned heap, whose next adopter may be long in coming,
 * and the owner never sees those blocks again: its spans stay part used for good, and it maps
 * new ones for what it allocates next.
 * Checked here (LABYRINTH_NURSERY=0 from ctest, so that every block comes from a span; 208-byte
 * blocks, a size nothing else here uses):
 *   - the main thread allocates 4096 blocks and a second thread frees them all and exits (16 go
 *     on its reuse list, 65 messages of 62 are sent, 50 blocks are left in an open message);
 *   - after the join, the main thread allocates 4096 + 512 blocks of the size (the 512: past the
 *     never-used tail of the last span): every one of the 4096 freed addresses must be among them
 *     (Labyrinth: its spans are kept by the owner's heap, whole; other allocators only print it).
 * The main thread makes no other allocation meanwhile and nothing calls malloc_trim (which tidies
 * abandoned heaps too: memory_returned's "exited" mode). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "lab_check.h"

enum { BLOCKS = 4096, EXTRA = 512, SIZE = 208, SLOTS = 16384 /* a power of two, > 2 * BLOCKS */ };

static void *orig[BLOCKS], *again[BLOCKS + EXTRA];

/* The original addresses, an open-addressing set (static: the test allocates nothing of its own). */
static uintptr_t set[SLOTS];

static size_t slot_of(uintptr_t a) { return (size_t)((a >> 4) * 0x9E3779B97F4A7C15ull >> 50) & (SLOTS - 1); }

static void set_add(uintptr_t a)
{
    size_t i = slot_of(a);
    while (set[i] && set[i] != a)
        i = (i + 1) & (SLOTS - 1);
    set[i] = a;
}

static int set_has(uintptr_t a)
{
    for (size_t i = slot_of(a); set[i]; i = (i + 1) & (SLOTS - 1))
        if (set[i] == a)
            return 1;
    return 0;
}

static void *freer(void *arg)
{
    (void)arg;
    for (int i = 0; i < BLOCKS; i++)
        free(orig[i]);
    return NULL; /* its reuse list and last message are still held here */
}

int main(void)
{
    SAY("main allocates %d blocks of %d B, a thread frees them all and exits; then main allocates %d: "
        "all %d freed addresses must come back", BLOCKS, SIZE, BLOCKS + EXTRA, BLOCKS);
    for (int i = 0; i < BLOCKS; i++) {
        orig[i] = malloc(SIZE);
        CHECK(orig[i] != NULL, "malloc(%d) failed", SIZE);
        if (!orig[i])
            return lab_finish("exit_sends_home");
        memset(orig[i], 0x2e, SIZE);
        set_add((uintptr_t)orig[i]);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, freer, NULL) != 0) {
        CHECK(0, "pthread_create");
        return lab_finish("exit_sends_home");
    }
    pthread_join(t, NULL);
    int found = 0;
    for (int i = 0; i < BLOCKS + EXTRA; i++) {
        again[i] = malloc(SIZE);
        CHECK(again[i] != NULL, "malloc(%d) failed", SIZE);
        if (!again[i])
            break;
        memset(again[i], 0x3f, SIZE);
        found += set_has((uintptr_t)again[i]);
    }
    SAY("%d of the %d addresses the exited thread freed were handed out again", found, BLOCKS);
    if (lab_expect_labyrinth())
        CHECK(found == BLOCKS, "%d blocks the exited thread freed never came back to their owner", BLOCKS - found);
    for (int i = 0; i < BLOCKS + EXTRA; i++)
        free(again[i]);
    return lab_finish("exit_sends_home");
}
