/* reuse_age.c — how recently freed are the blocks malloc hands back? Larson's loop (THREADS
 * threads replace random slots of one shared table of 16 384 blocks with fresh ones of MIN..MAX
 * bytes, freeing what they displace, so half the frees at two threads are of another thread's
 * blocks) with each thread remembering, in a table of its own, when it freed each address. For
 * every block malloc returns, the age is how many of the thread's operations ago the thread freed
 * that address; a block the thread did not free (fresh memory, or one it never had) is "other". A
 * block freed a few calls earlier is still in the core's cache; one freed thousands of calls
 * earlier is not. Prints the share of mallocs in each age bucket.
 *   reuse_age [THREADS [OPS [MIN [MAX]]]]   (defaults 2 4000000 16 1024; OPS in all)
 * scripts/reuse_age.sh runs it under each allocator. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 16384
#define SEEN_BITS 20 /* the thread's memory of its frees: 2^20 addresses, the newest kept */
#define BUCKETS 7

static void *_Atomic table[SLOTS];
static long rounds;
static size_t min_size, span;
static const long edge[BUCKETS - 1] = {16, 64, 256, 1024, 8192, 1L << 62};
static const char *name[BUCKETS] = {"<16", "16-63", "64-255", "256-1023", "1024-8191", ">=8192", "other"};
static atomic_long total[BUCKETS];

struct seen {
    uintptr_t addr;
    long when;
};

static unsigned slot_of(uintptr_t a)
{
    return (uint32_t)((uint32_t)(a >> 4) * 0x9e3779b1u) >> (32 - SEEN_BITS);
}

static void *worker(void *arg)
{
    uint64_t s = ((uint64_t)(uintptr_t)arg + 1) * 0x9e3779b97f4a7c15ull | 1;
    struct seen *seen = calloc((size_t)1 << SEEN_BITS, sizeof *seen);
    long count[BUCKETS] = {0};
    if (!seen)
        abort();
    for (long i = 0; i < rounds; i++) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        uint64_t r = s * 0x2545f4914f6cdd1dull;
        size_t n = min_size + (size_t)(r % span);
        uint64_t *q = malloc(n);
        if (!q) {
            fprintf(stderr, "reuse_age: malloc(%zu) failed\n", n);
            exit(1);
        }
        struct seen *e = &seen[slot_of((uintptr_t)q)];
        int b = BUCKETS - 1;
        if (e->addr == (uintptr_t)q)
            for (b = 0; i - e->when >= edge[b]; b++)
                ;
        count[b]++;
        q[0] = n, q[1] = ~(uint64_t)(uintptr_t)q; /* written as a program writes a new block */
        uint64_t *old = atomic_exchange(&table[(r >> 32) % SLOTS], q);
        if (old) {
            if (old[1] != ~(uint64_t)(uintptr_t)old || old[0] < min_size || old[0] >= min_size + span) {
                fprintf(stderr, "reuse_age: block %p damaged\n", (void *)old);
                exit(1);
            }
            struct seen *o = &seen[slot_of((uintptr_t)old)];
            o->addr = (uintptr_t)old, o->when = i;
            free(old);
        }
    }
    for (int b = 0; b < BUCKETS; b++)
        atomic_fetch_add(&total[b], count[b]);
    free(seen);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long ops = argc > 2 ? atol(argv[2]) : 4000000;
    long lo = argc > 3 ? atol(argv[3]) : 16, hi = argc > 4 ? atol(argv[4]) : 1024;
    if (threads < 1 || threads > 256 || ops < threads || lo < 16 || hi < lo || hi > (1L << 20)) {
        fprintf(stderr, "usage: reuse_age [THREADS (1-256) [OPS [MIN (>= 16) [MAX (<= 1 MiB)]]]]\n");
        return 2;
    }
    rounds = ops / threads, min_size = (size_t)lo, span = (size_t)(hi - lo + 1);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!t)
        return 1;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0)
            return 1;
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < SLOTS; k++)
        free(atomic_exchange(&table[k], NULL));
    long all = 0;
    for (int b = 0; b < BUCKETS; b++)
        all += total[b];
    for (int b = 0; b < BUCKETS; b++)
        printf("%s%s %.1f", b ? "  " : "", name[b], 100.0 * (double)total[b] / (double)all);
    printf("\n");
    free(t);
    return 0;
}
