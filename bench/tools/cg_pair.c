/* cg_pair.c — the loop scripts/callgrind_pair.sh counts: 1 000 blocks of 32 bytes (argv[2]: of
 * another size) live, each freed and allocated again, argv[1] pairs in all (a multiple of 1 000).
 * Nested loops, no modulo: the loop's own cost is 8 instructions a pair, the size of loop the
 * issue's reference figures were taken with (mimalloc 58, jemalloc 77, glibc 139 there; this loop
 * reproduces them). */
#include <stdlib.h>
int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) / 1000 : 100;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32; /* callgrind_pair.sh --size */
    static void *live[1000];
    for (int k = 0; k < 1000; k++) live[k] = malloc(size);
    for (long r = 0; r < rounds; r++)
        for (int k = 0; k < 1000; k++) { free(live[k]); live[k] = malloc(size); }
    for (int k = 0; k < 1000; k++) free(live[k]);
}
