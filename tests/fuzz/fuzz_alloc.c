/* fuzz_alloc.c — reads bytes as a program of malloc/calloc/realloc/free/aligned/usable-size
 * operations on 64 slots, run through the core's lab_* names (linked directly). Every block is
 * filled with a pattern derived from its slot and size and checked before it is freed or resized;
 * calloc must give zeros. Built two ways: a libFuzzer target (clang, -fsanitize=fuzzer,address,
 * the core instrumented for coverage) and a replay program (any compiler) that runs the committed
 * corpus, as a unit test. Each operation is 4 bytes: op<<4|size selector, size lo, size hi, slot. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Under AddressSanitizer the bytes between the requested size and the usable size of each live
 * block are poisoned: a block handed out over another live block's tail, or the allocator writing
 * into a live block, is reported at once. They are unpoisoned before the block goes back (the
 * allocator writes its links into free blocks, and realloc copies the old usable size). */
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
static void tail_poison(void *p, size_t n)
{
    size_t u = lab_usable_size(p);
    if (u > n)
        ASAN_POISON_MEMORY_REGION((uint8_t *)p + n, u - n);
}
static void tail_unpoison(void *p)
{
    if (p)
        ASAN_UNPOISON_MEMORY_REGION(p, lab_usable_size(p));
}
#else
static void tail_poison(void *p, size_t n) { (void)p, (void)n; }
static void tail_unpoison(void *p) { (void)p; }
#endif

#define SLOTS 64

static uint8_t pat(unsigned slot, size_t n) { return (uint8_t)(slot * 37u + n * 11u + 1u); }

/* the whole block for small sizes, the edges and a stride for big ones (speed) */
#define STRIDE 4093

static void fill(uint8_t *p, unsigned slot, size_t n)
{
    if (n <= 4096) {
        memset(p, pat(slot, n), n);
    } else {
        for (size_t i = 0; i < n; i += STRIDE)
            p[i] = pat(slot, n);
        p[n - 1] = pat(slot, n);
    }
}

/* The first `upto` bytes of a block filled for size n still hold the pattern. */
static void check_prefix(const uint8_t *p, unsigned slot, size_t n, size_t upto)
{
    size_t step = n <= 4096 ? 1 : STRIDE;
    for (size_t i = 0; i < upto; i += step)
        if (p[i] != pat(slot, n))
            abort();
    if (upto == n && n > 4096 && p[n - 1] != pat(slot, n))
        abort();
}

static void check(const uint8_t *p, unsigned slot, size_t n)
{
    check_prefix(p, slot, n, n);
    if (p && (!lab_owns(p) || lab_usable_size(p) < n))
        abort();
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

static void slot_free(uint8_t **slot, size_t *sz, unsigned s)
{
    if (slot[s]) {
        check(slot[s], s, sz[s]);
        tail_unpoison(slot[s]);
        lab_free(slot[s]);
        slot[s] = NULL;
        sz[s] = 0;
    }
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
        case 2: /* calloc, sometimes as count x element size */
            slot_free(slot, sz, s);
            if (op == 2) {
                size_t el = (size_t)1 << (d[3] >> 6);
                n = n / el * el;
                slot[s] = lab_calloc(n / el, el);
            } else {
                slot[s] = lab_malloc(n);
            }
            if (!slot[s])
                abort();
            if (op == 2)
                for (size_t k = 0; k < n; k += (n > 4096 ? 997 : 1))
                    if (slot[s][k])
                        abort();
            sz[s] = n;
            fill(slot[s], s, n);
            tail_poison(slot[s], n);
            break;
        case 3: { /* realloc keeps the common prefix; realloc(p, 0) frees and gives NULL */
            if (slot[s])
                check(slot[s], s, sz[s]);
            tail_unpoison(slot[s]);
            uint8_t *q = lab_realloc(slot[s], n);
            if (n == 0 && slot[s]) {
                if (q)
                    abort();
                slot[s] = NULL;
                sz[s] = 0;
                break;
            }
            if (!q)
                abort();
            if (slot[s])
                check_prefix(q, s, sz[s], sz[s] < n ? sz[s] : n);
            slot[s] = q;
            sz[s] = n;
            fill(q, s, n);
            tail_poison(q, n);
            break;
        }
        case 4: { /* aligned, 16 B .. 4 MiB */
            size_t align = (size_t)16 << (d[1] % 19);
            slot_free(slot, sz, s);
            n %= 70000;
            slot[s] = lab_malloc_aligned(align, n);
            if (!slot[s] || ((uintptr_t)slot[s] & (align - 1)))
                abort();
            sz[s] = n;
            fill(slot[s], s, n);
            tail_poison(slot[s], n);
            break;
        }
        case 5: /* usable size, ownership, and a foreign free that must be ignored */
            if (slot[s])
                check(slot[s], s, sz[s]);
            if (d[1] == 0xFF) {
                uint8_t local[32];
                lab_free(local);
                errno = 0;
                if (lab_realloc(local, 64) || errno != EINVAL)
                    abort();
            }
            break;
        default: /* free */
            slot_free(slot, sz, s);
            break;
        }
    }
    for (unsigned s = 0; s < SLOTS; s++)
        slot_free(slot, sz, s);
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
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0, got;
        do {
            if (len == cap) {
                cap = cap ? cap * 2 : 4096;
                buf = realloc(buf, cap);
                if (!buf)
                    return 1;
            }
            got = fread(buf + len, 1, cap - len, f);
            len += got;
        } while (got);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        n++;
    }
    printf("fuzz replay: %d inputs, all checks passed\n", n);
    return n ? 0 : 1;
}
#endif
