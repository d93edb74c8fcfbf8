/* fuzz_alloc.c — reads bytes as a program of malloc/calloc/realloc/free/aligned/usable-size
 * operations on 64 slots, run through the core's lab_* names (linked directly). Every block is
 * filled with a pattern derived from its slot and size and checked before it is freed or resized;
 * calloc must give zeros. Built two ways: a libFuzzer target (clang, -fsanitize=fuzzer,address)
 * and a replay program (any compiler) that runs the committed corpus, as a unit test. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define SLOTS 64

static uint8_t pat(unsigned slot, size_t n) { return (uint8_t)(slot * 37u + n * 11u + 1u); }

static void fill(uint8_t *p, unsigned slot, size_t n)
{
    /* the whole block for small sizes, the edges and a stride for big ones (speed) */
    if (n <= 4096) {
        memset(p, pat(slot, n), n);
    } else {
        for (size_t i = 0; i < n; i += 4093)
            p[i] = pat(slot, n);
        p[n - 1] = pat(slot, n);
    }
}

static void check(const uint8_t *p, unsigned slot, size_t n)
{
    if (n <= 4096) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pat(slot, n))
                abort();
    } else {
        for (size_t i = 0; i < n; i += 4093)
            if (p[i] != pat(slot, n))
                abort();
        if (p[n - 1] != pat(slot, n))
            abort();
    }
}

static size_t size_of(const uint8_t *d)
{
    /* mostly small, sometimes page-sized, rarely huge */
    unsigned sel = d[0] % 16;
    size_t v = (size_t)d[1] | (size_t)d[2] << 8;
    if (sel < 10)
        return v % 1024;
    if (sel < 14)
        return v % 40000;
    if (sel < 15)
        return v * 16 % 300000;
    return 1048576 + v * 64;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    uint8_t *slot[SLOTS] = {0};
    size_t sz[SLOTS] = {0};
    for (size_t i = 0; i + 4 <= len; i += 4) {
        const uint8_t *d = data + i;
        unsigned op = d[0] >> 4 & 7, s = d[3] % SLOTS;
        size_t n = size_of(d);
        switch (op) {
        case 0:
        case 1: /* malloc */
        case 2: /* calloc */
            if (slot[s]) {
                check(slot[s], s, sz[s]);
                lab_free(slot[s]);
            }
            slot[s] = op == 2 ? lab_calloc(1, n) : lab_malloc(n);
            if (!slot[s])
                abort();
            if (op == 2)
                for (size_t k = 0; k < n; k += (n > 4096 ? 997 : 1))
                    if (slot[s][k])
                        abort();
            sz[s] = n;
            fill(slot[s], s, n);
            break;
        case 3: { /* realloc keeps the common prefix */
            uint8_t *q = lab_realloc(slot[s], n);
            if (n == 0) {
                slot[s] = NULL;
                sz[s] = 0;
                break;
            }
            if (!q)
                abort();
            if (slot[s]) {
                /* every byte fill() wrote below the new size must have moved with the block */
                size_t keep = sz[s] < n ? sz[s] : n, step = sz[s] <= 4096 ? 1 : 4093;
                for (size_t k = 0; k < keep; k += step)
                    if (q[k] != pat(s, sz[s]))
                        abort();
            }
            slot[s] = q;
            sz[s] = n;
            fill(q, s, n);
            break;
        }
        case 4: { /* aligned */
            size_t align = (size_t)16 << (d[1] % 10);
            if (slot[s]) {
                check(slot[s], s, sz[s]);
                lab_free(slot[s]);
            }
            slot[s] = lab_malloc_aligned(align, n % 70000);
            if (!slot[s] || ((uintptr_t)slot[s] & (align - 1)))
                abort();
            sz[s] = n % 70000;
            fill(slot[s], s, sz[s]);
            break;
        }
        case 5: /* usable size */
            if (slot[s] && lab_usable_size(slot[s]) < sz[s])
                abort();
            break;
        default: /* free */
            if (slot[s]) {
                check(slot[s], s, sz[s]);
                lab_free(slot[s]);
                slot[s] = NULL;
            }
            break;
        }
    }
    for (unsigned s = 0; s < SLOTS; s++)
        if (slot[s]) {
            check(slot[s], s, sz[s]);
            lab_free(slot[s]);
        }
    return 0;
}

#ifdef LAB_FUZZ_REPLAY
/* Replay: run every file named on the command line through the same function. */
int main(int argc, char **argv)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        static uint8_t buf[1 << 16];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, len);
        n++;
    }
    printf("fuzz replay: %d inputs, all checks passed\n", n);
    return 0;
}
#endif
