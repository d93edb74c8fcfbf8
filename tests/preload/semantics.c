/* semantics.c — the glibc behaviours programs rely on without knowing it: malloc(0) is a unique
 * pointer, realloc(p, 0) frees, realloc keeps contents across every size boundary (small classes,
 * page runs, dedicated chunks), size overflow is ENOMEM, and results are 16-byte aligned (SSE code
 * and long double need it). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lab_check.h"

static void check_malloc_zero(void)
{
    SAY("malloc(0): non-NULL, unique, freeable");
    enum { N = 64 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(0);
        CHECK(p[i] != NULL, "malloc(0) returned NULL");
        for (int j = 0; j < i; j++)
            CHECK(p[i] != p[j], "malloc(0) returned %p twice", p[i]);
    }
    for (int i = 0; i < N; i++)
        free(p[i]);
}

static void check_realloc_edges(void)
{
    SAY("realloc(p, 0) frees and returns NULL; realloc(NULL, n) allocates");
    for (size_t n = 1; n <= (1u << 22); n *= 8) {
        void *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        memset(p, 1, n);
        void *q = realloc(p, 0);
        CHECK(q == NULL, "realloc(malloc(%zu), 0) = %p, glibc returns NULL", n, q);
        free(q); /* if the allocator kept a block, do not leak it into the next checks */
    }
    char *p = realloc(NULL, 1000);
    CHECK(p != NULL && malloc_usable_size(p) >= 1000, "realloc(NULL, 1000) = %p", (void *)p);
    if (p) memset(p, 2, 1000);
    free(p);
}

/* A byte pattern that differs between neighbouring bytes and between rounds, so a copy that is
 * short, shifted or from the wrong block is caught. */
static unsigned char pat(size_t i, unsigned round) { return (unsigned char)(i * 31 + (i >> 9) + round * 7 + 1); }

static void check_realloc_contents(void)
{
    SAY("realloc keeps contents on grow and shrink for size pairs 16 B .. 8 MiB");
    static const size_t sizes[] = {16,     24,     48,      100,     128,     129,     255,
                                   512,    1000,   2048,    4000,    4096,    4097,    8192,
                                   16000,  32768,  33000,   65536,   100000,  262144,  500000,
                                   1u << 20, (1u << 20) + 1, 2u << 20, 3000000, 4u << 20, 8u << 20};
    size_t n = sizeof sizes / sizeof sizes[0];
    unsigned round = 0;
    for (size_t a = 0; a < n; a++) {
        for (size_t b = 0; b < n; b++) {
            if (a == b)
                continue;
            round++;
            size_t from = sizes[a], to = sizes[b];
            unsigned char *p = malloc(from);
            CHECK(p != NULL, "malloc(%zu)", from);
            if (!p) continue;
            for (size_t i = 0; i < from; i++)
                p[i] = pat(i, round);
            /* A neighbour allocated after it, so growing in place is not always possible. */
            void *neighbour = malloc(from);
            unsigned char *q = realloc(p, to);
            CHECK(q != NULL, "realloc(%zu -> %zu) failed", from, to);
            if (q) {
                size_t keep = from < to ? from : to, bad = SIZE_MAX;
                for (size_t i = 0; i < keep && bad == SIZE_MAX; i++)
                    if (q[i] != pat(i, round))
                        bad = i;
                CHECK(bad == SIZE_MAX, "realloc(%zu -> %zu) changed byte %zu", from, to, bad);
                CHECK(malloc_usable_size(q) >= to, "realloc(%zu -> %zu) usable %zu", from, to,
                      malloc_usable_size(q));
                memset(q, 0xee, to); /* the new tail must be writable */
            }
            free(neighbour);
            free(q);
        }
    }
}

static void check_overflow(void)
{
    SAY("size overflow: malloc(SIZE_MAX), malloc(PTRDIFF_MAX+1), calloc and reallocarray -> NULL+ENOMEM");
    errno = 0;
    void *p = malloc(SIZE_MAX);
    CHECK(p == NULL && lab_errno_is(errno, ENOMEM), "malloc(SIZE_MAX) = %p errno %d", p, errno);
    errno = 0;
    p = malloc((size_t)PTRDIFF_MAX + 1);
    CHECK(p == NULL && lab_errno_is(errno, ENOMEM), "malloc(PTRDIFF_MAX+1) = %p errno %d", p, errno);
    errno = 0;
    p = malloc(SIZE_MAX - 4095);
    CHECK(p == NULL && lab_errno_is(errno, ENOMEM), "malloc(SIZE_MAX-4095) = %p errno %d", p, errno);
    static const size_t pairs[][2] = {{SIZE_MAX, 2}, {2, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32},
                                      {SIZE_MAX / 16 + 1, 16}, {65537, SIZE_MAX / 65536}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        p = calloc(pairs[i][0], pairs[i][1]);
        CHECK(p == NULL && lab_errno_is(errno, ENOMEM), "calloc(%zu, %zu) = %p errno %d", pairs[i][0],
              pairs[i][1], p, errno);
        void *old = malloc(32);
        errno = 0;
        p = reallocarray(old, pairs[i][0], pairs[i][1]);
        CHECK(p == NULL && lab_errno_is(errno, ENOMEM), "reallocarray(%zu, %zu) = %p errno %d",
              pairs[i][0], pairs[i][1], p, errno);
        free(p ? p : old);
    }
}

/* realloc to a size no block can have, of blocks of each kind (small, page-sized, a run over
 * pages sixteen 200 KiB blocks used before, huge): NULL + ENOMEM, the block intact. The page count
 * of SIZE_MAX wraps to zero, and such a run took the request for a shrink (found by review:
 * realloc(p, SIZE_MAX) returned p). First, with no cached mapping (malloc_trim), so that the
 * 1.5 MiB block is such a run. */
static void check_realloc_overflow(void)
{
    SAY("realloc(p, SIZE_MAX and near) of small, page-sized, reused-run and huge blocks -> NULL+ENOMEM");
    malloc_trim(0);
    void *runs[16];
    for (int i = 0; i < 16; i++)
        if ((runs[i] = malloc((200 << 10) + 100)))
            memset(runs[i], 1, 200 << 10);
    for (int i = 0; i < 16; i++)
        free(runs[i]);
    static const size_t kinds[] = {1536 << 10, 100, 100 << 10, 8 << 20};
    static const size_t huge_n[] = {SIZE_MAX, SIZE_MAX - 4094, (size_t)PTRDIFF_MAX + 1};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        unsigned char *b = malloc(kinds[k]);
        CHECK(b != NULL, "malloc(%zu)", kinds[k]);
        if (!b)
            continue;
        memset(b, 0x5a, kinds[k]);
        for (size_t i = 0; i < sizeof huge_n / sizeof huge_n[0]; i++) {
            errno = 0;
            void *q = realloc(b, huge_n[i]);
            CHECK(q == NULL && lab_errno_is(errno, ENOMEM), "realloc(block of %zu, %zu) = %p errno %d", kinds[k],
                  huge_n[i], q, errno);
            if (q)
                b = q;
        }
        CHECK(b[0] == 0x5a && b[kinds[k] - 1] == 0x5a, "block of %zu changed by a failed realloc", kinds[k]);
        free(b);
    }
}

static void check_usable_size(void)
{
    SAY("malloc_usable_size(NULL) == 0 and >= the request for sizes 1 .. 1 MiB");
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
    for (size_t n = 1; n <= (1u << 20); n = n < 64 ? n + 1 : n + n / 7) {
        unsigned char *p = malloc(n);
        size_t u = malloc_usable_size(p);
        CHECK(p != NULL && u >= n, "malloc(%zu) usable %zu", n, u);
        if (p && u) {
            p[0] = 1;
            p[u - 1] = 2; /* the whole usable size belongs to the caller */
        }
        free(p);
    }
}

static void check_malloc_alignment(void)
{
    SAY("every malloc result is 16-byte aligned, sizes 1 .. 70000");
    enum { KEEP = 512 };
    static void *keep[KEEP];
    int strict = lab_strict();
    for (size_t n = 1; n <= 70000; n++) {
        void *p = malloc(n);
        /* C only asks a block of n < 16 bytes to be aligned for the types that fit in it. */
        uintptr_t want = strict || n >= 16 ? 16 : n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : 1;
        CHECK(p != NULL && ((uintptr_t)p & (want - 1)) == 0, "malloc(%zu) = %p", n, p);
        if (!p) continue;
        ((unsigned char *)p)[n - 1] = (unsigned char)n;
        /* Keep a rolling window alive so results come from partly used spans, not one hot slot. */
        size_t slot = n % KEEP;
        free(keep[slot]);
        keep[slot] = p;
    }
    for (int i = 0; i < KEEP; i++)
        free(keep[i]);
}

static void check_usable_is_private(void)
{
    SAY("the whole malloc_usable_size() is the caller's: filling it never touches neighbours, "
        "sizes 1 .. 70000");
    enum { GROUP = 8 };
    for (size_t n = 1; n <= 70000; n = n < 300 ? n + 1 : n + n / 32 + 1) {
        void *p[GROUP];
        size_t usable[GROUP];
        for (int i = 0; i < GROUP; i++) {
            p[i] = malloc(n);
            usable[i] = malloc_usable_size(p[i]);
            CHECK(p[i] != NULL && usable[i] >= n, "malloc(%zu) usable %zu", n, usable[i]);
            if (p[i]) lab_canary_fill(p[i], usable[i]);
        }
        for (int i = 0; i < GROUP; i++) {
            if (!p[i]) continue;
            size_t bad = lab_canary_check(p[i], usable[i]);
            CHECK(bad == SIZE_MAX, "malloc(%zu), usable %zu: byte %zu overwritten by a neighbour",
                  n, usable[i], bad);
            free(p[i]);
        }
    }
}

int main(void)
{
    check_realloc_overflow(); /* first: no cached huge mapping yet */
    check_malloc_zero();
    check_realloc_edges();
    check_realloc_contents();
    check_overflow();
    check_usable_size();
    check_usable_is_private();
    check_malloc_alignment();
    return lab_finish("semantics");
}
