/* cg_pair.c — the loop scripts/callgrind_pair.sh counts: 1 000 blocks of 32 bytes (argv[2]: of
 * another size) live, each freed and allocated again, argv[1] pairs in all (a multiple of 1 000).
 * Nested loops, no modulo: the loop's own cost is 8 instructions a pair, the size of loop the
 * issue's reference figures were taken with (mimalloc 58, jemalloc 77, glibc 139 there; this loop
 * reproduces them). argv[3] (another number live) or argv[4] (an alignment: posix_memalign
 * instead of malloc) run a loop of their own, which leaves that one as it is. */
#include <stdlib.h>

static int other_loop(long pairs, size_t size, int n, size_t align)
{
    static void *live[1000];
    if (n < 1 || n > 1000)
        return 2;
    for (int k = 0; k < n; k++)
        if (align ? posix_memalign(&live[k], align, size) : !(live[k] = malloc(size)))
            return 1;
    for (long r = 0; r < pairs / n; r++)
        for (int k = 0; k < n; k++) {
            free(live[k]);
            if (align ? posix_memalign(&live[k], align, size) : !(live[k] = malloc(size)))
                return 1;
        }
    for (int k = 0; k < n; k++)
        free(live[k]);
    return 0;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) / 1000 : 100;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32; /* callgrind_pair.sh --size */
    if (argc > 3) /* --live, --align */
        return other_loop(rounds * 1000, size, atoi(argv[3]), argc > 4 ? (size_t)atol(argv[4]) : 0);
    static void *live[1000];
    for (int k = 0; k < 1000; k++) live[k] = malloc(size);
    for (long r = 0; r < rounds; r++)
        for (int k = 0; k < 1000; k++) { free(live[k]); live[k] = malloc(size); }
    for (int k = 0; k < 1000; k++) free(live[k]);
}
