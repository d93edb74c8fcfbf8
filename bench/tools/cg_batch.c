/* cg_batch.c — the loop `scripts/callgrind_pair.sh --batch SIZE` counts: 256 blocks of SIZE bytes
 * allocated, then all freed in the order they came, argv[1] blocks in all (a multiple of 256).
 * For blocks of a few KiB a round empties whole spans, so the count shows what a span's round
 * trip costs (the micro suite's batch_fifo times the same pattern). */
#include <stdlib.h>
int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) / 256 : 100;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 4096;
    static void *p[256];
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 256; i++)
            p[i] = malloc(size);
        for (int i = 0; i < 256; i++)
            free(p[i]);
    }
    return 0;
}
