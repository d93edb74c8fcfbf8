/* realloc_pingpong.c — pairs of threads pass one block back and forth, and each receiver reallocs
 * it to a new size (8 B .. 1 MiB, now and then 4 MiB): realloc of a block another thread allocated,
 * across every class boundary. The kept prefix must survive each move and the new size be usable.
 * Usage: stress_realloc_pingpong [pairs] [round trips per pair]. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lab_check.h"

enum { MAX_PAIRS = 8 };

struct court {
    pthread_mutex_t lock;
    pthread_cond_t turn_changed;
    int turn;           /* which side of the pair holds the ball */
    int done;
    unsigned char *ball;
    size_t size;
    unsigned generation; /* what the contents were written with */
};

struct player {
    struct court *court;
    int side;
    long rounds;
    uint64_t seed;
};

static struct court courts[MAX_PAIRS];

/* Byte i of generation gen is byte (i % 8) of the word gen * K + i / 8 (little or big endian
 * alike, since the same memcpy writes and reads it): cheap enough for 4 MiB blocks, and a copy
 * that is shifted, short or from an older generation does not match. */
static uint64_t word(size_t w, unsigned gen) { return (uint64_t)gen * 0x9E3779B97F4A7C15ull + w; }

static void fill(unsigned char *p, size_t n, unsigned gen)
{
    size_t w = 0;
    for (; (w + 1) * 8 <= n; w++) {
        uint64_t v = word(w, gen);
        memcpy(p + w * 8, &v, 8);
    }
    uint64_t v = word(w, gen);
    memcpy(p + w * 8, &v, n - w * 8);
}

static size_t first_bad(const unsigned char *p, size_t n, unsigned gen)
{
    size_t w = 0;
    for (; (w + 1) * 8 <= n; w++) {
        uint64_t v = word(w, gen);
        if (memcmp(p + w * 8, &v, 8) != 0)
            return w * 8;
    }
    uint64_t v = word(w, gen);
    return memcmp(p + w * 8, &v, n - w * 8) == 0 ? SIZE_MAX : w * 8;
}

static size_t pick_size(uint64_t *seed)
{
    uint64_t r = lab_rand(seed);
    unsigned kind = (unsigned)(r % 64);
    if (kind == 0)
        return (4u << 20) - (size_t)(r >> 40) % 100;
    if (kind < 6)
        return 65536 + (size_t)(r >> 32) % (1u << 20);
    if (kind < 24)
        return 2048 + (size_t)(r >> 32) % 62000;
    return 8 + (size_t)(r >> 32) % 2040;
}

static void *play(void *arg)
{
    struct player *me = arg;
    struct court *c = me->court;
    for (long r = 0; r < me->rounds; r++) {
        pthread_mutex_lock(&c->lock);
        while (c->turn != me->side)
            pthread_cond_wait(&c->turn_changed, &c->lock);
        pthread_mutex_unlock(&c->lock);

        /* The lock hand-off orders the other thread's writes before these reads. */
        size_t bad = first_bad(c->ball, c->size, c->generation);
        CHECK(bad == SIZE_MAX, "received block of %zu damaged at byte %zu", c->size, bad);
        size_t to = pick_size(&me->seed), keep = to < c->size ? to : c->size;
        unsigned char *moved = realloc(c->ball, to);
        CHECK(moved != NULL, "realloc(%zu -> %zu) failed", c->size, to);
        if (moved) {
            bad = first_bad(moved, keep, c->generation);
            CHECK(bad == SIZE_MAX, "realloc(%zu -> %zu) lost byte %zu", c->size, to, bad);
            CHECK(malloc_usable_size(moved) >= to, "realloc to %zu: usable %zu", to,
                  malloc_usable_size(moved));
            c->generation++;
            fill(moved, to, c->generation);
            c->ball = moved;
            c->size = to;
        }

        pthread_mutex_lock(&c->lock);
        c->turn = !me->side;
        pthread_cond_signal(&c->turn_changed);
        pthread_mutex_unlock(&c->lock);
        if (!moved)
            break;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 4;
    long rounds = argc > 2 ? atol(argv[2]) : 3000;
    if (pairs < 1 || pairs > MAX_PAIRS) pairs = 4;
    SAY("%d pairs of threads, %ld round trips each: realloc of the other thread's block, 8 B .. 4 MiB",
        pairs, rounds);
    pthread_t t[2 * MAX_PAIRS];
    struct player players[2 * MAX_PAIRS];
    for (int p = 0; p < pairs; p++) {
        struct court *c = &courts[p];
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->turn_changed, NULL);
        c->size = 100;
        c->ball = malloc(c->size);
        fill(c->ball, c->size, 0);
        for (int s = 0; s < 2; s++) {
            struct player *pl = &players[2 * p + s];
            pl->court = c;
            pl->side = s;
            pl->rounds = rounds;
            pl->seed = 0x5EEDull + (uint64_t)(2 * p + s) * 1000003;
            if (pthread_create(&t[2 * p + s], NULL, play, pl) != 0) {
                CHECK(0, "pthread_create failed");
                return lab_finish("realloc_pingpong");
            }
        }
    }
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(t[i], NULL);
    for (int p = 0; p < pairs; p++) {
        CHECK(first_bad(courts[p].ball, courts[p].size, courts[p].generation) == SIZE_MAX,
              "pair %d: final block damaged", p);
        free(courts[p].ball);
    }
    return lab_finish("realloc_pingpong");
}
