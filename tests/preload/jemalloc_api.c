/* jemalloc_api.c — jemalloc's own allocation calls under the preload (preload/jemalloc_api.c):
 * linked against libjemalloc where it is installed (as Debian's redis is), every call must still
 * reach Labyrinth, blocks must be usable, aligned and zeroed as the flags ask, and blocks of
 * malloc must go through them and back (found by review: sdallocx and rallocx of malloc's blocks
 * crashed inside the real jemalloc). Looked up by name, so that it builds without jemalloc too.
 * Skipped where malloc's object does not define them (glibc alone). */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>

#include "lab_check.h"

/* weak: bound to the first definition in lookup order (the preload's, or jemalloc's when the
 * program runs without it), NULL where none is loaded */
extern void *mallocx(size_t size, int flags) __attribute__((weak));
extern void *rallocx(void *ptr, size_t size, int flags) __attribute__((weak));
extern size_t xallocx(void *ptr, size_t size, size_t extra, int flags) __attribute__((weak));
extern size_t sallocx(const void *ptr, int flags) __attribute__((weak));
extern void dallocx(void *ptr, int flags) __attribute__((weak));
extern void sdallocx(void *ptr, size_t size, int flags) __attribute__((weak));
extern size_t nallocx(size_t size, int flags) __attribute__((weak));

#define LG_ALIGN(la) ((int)(la))
#define ZERO 0x40

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* mallocx's blocks in a new thread against the sizes nallocx told the main thread: at least
 * that usable, and written in full, then checked (an overrun shows in the neighbour's bytes) */
static void *nallocx_thread(void *arg)
{
    const size_t *told = arg;
    enum { NN = 300 };
    static unsigned char *b[NN];
    for (unsigned i = 0; i < NN; i++) {
        size_t n = i < 200 ? 1 + i * 7 : 30000 + (i - 200) * 4099;
        b[i] = mallocx(n, 0);
        CHECK(b[i] && sallocx(b[i], 0) >= told[i], "mallocx(%zu) in a new thread: %zu usable, nallocx said %zu", n,
              b[i] ? sallocx(b[i], 0) : 0, told[i]);
        CHECK(nallocx(n, 0) == told[i], "nallocx(%zu) %zu here, %zu in the main thread", n, nallocx(n, 0), told[i]);
        if (b[i])
            memset(b[i], (int)(i & 0xff), told[i]);
    }
    for (unsigned i = 0; i < NN; i++) {
        size_t bad = 0;
        for (size_t k = 0; b[i] && k < told[i]; k++)
            bad += b[i][k] != (unsigned char)(i & 0xff);
        CHECK(bad == 0, "block %u: %zu bytes overwritten by a neighbour", i, bad);
        dallocx(b[i], 0);
    }
    return NULL;
}

int main(void)
{
#if LAB_JEMALLOC_LINKED
    /* jemalloc's mallctl is not the preload's: a call keeps the library needed (--as-needed) */
    extern int mallctl(const char *, void *, size_t *, void *, size_t);
    unsigned na = 0;
    size_t sz = sizeof na;
    bool je = mallctl("arenas.narenas", &na, &sz, NULL, 0) == 0;
#else
    bool je = false;
#endif
    static const char *const names[] = {"mallocx", "rallocx", "xallocx", "sallocx", "dallocx", "sdallocx", "nallocx"};
    bool all = true;
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        all &= lab_provided(names[i]) != NULL;
    if (!all) {
        SAY("jemalloc's calls not all from malloc's object (%s): %s",
            je ? "linked against jemalloc" : "jemalloc not linked", lab_expect_labyrinth() ? "failed" : "skipped");
        return lab_expect_labyrinth() ? lab_finish("jemalloc_api") : LAB_SKIP;
    }
    SAY("jemalloc's calls from malloc's object (%s)", je ? "linked against jemalloc too" : "jemalloc not linked");
    static const size_t sizes[] = {1, 24, 100, 1000, 5000, 40000, 300000, 3u << 20};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        /* malloc's block through jemalloc's calls */
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        memset(p, 0xab, n);
        CHECK(sallocx(p, 0) == malloc_usable_size(p), "sallocx %zu", n);
        CHECK(xallocx(p, n, 0, 0) >= n, "xallocx %zu", n);
        p = rallocx(p, 2 * n, 0);
        CHECK(p != NULL && p[n - 1] == 0xab && p[0] == 0xab, "rallocx kept contents, %zu", n);
        sdallocx(p, 2 * n, 0);
        /* aligned and zeroed */
        for (unsigned la = 4; la <= 16; la += 6) {
            unsigned char *q = mallocx(n, LG_ALIGN(la) | ZERO);
            CHECK(q != NULL && ((uintptr_t)q & (((uintptr_t)1 << la) - 1)) == 0, "mallocx(%zu, 2^%u)", n, la);
            CHECK(q && all_zero(q, sallocx(q, 0)), "mallocx zeroed, %zu", n);
            CHECK(q && nallocx(n, LG_ALIGN(la)) >= n, "nallocx %zu", n);
            memset(q, 0xcd, n);
            size_t before = sallocx(q, 0);
            q = rallocx(q, 3 * n, LG_ALIGN(la) | ZERO);
            CHECK(q != NULL && ((uintptr_t)q & (((uintptr_t)1 << la) - 1)) == 0, "rallocx aligned, %zu", n);
            CHECK(q && q[n - 1] == 0xcd && all_zero(q + before, sallocx(q, 0) - before), "rallocx zero tail, %zu", n);
            dallocx(q, 0);
        }
        void *m = mallocx(n, 0);
        CHECK(m && nallocx(n, 0) == sallocx(m, 0), "nallocx %zu: %zu, mallocx's block %zu", n, nallocx(n, 0),
              m ? sallocx(m, 0) : 0);
        dallocx(m, 0);
    }
    /* zeroed without an alignment, over memory a freed block wrote: every byte up to sallocx
     * reads zero, before and after rallocx grows it (a page-sized block from the run room can
     * be longer than asked, and calloc clears only what was asked) */
    static const size_t zsizes[][2] = {{294912, 266240}, {4096, 3900}, {40000, 36000}};
    for (unsigned i = 0; i < sizeof zsizes / sizeof zsizes[0]; i++) {
        unsigned char *d = malloc(zsizes[i][0]);
        CHECK(d != NULL, "malloc(%zu)", zsizes[i][0]);
        if (d)
            memset(d, 0xee, zsizes[i][0]);
        free(d);
        unsigned char *z = mallocx(zsizes[i][1], ZERO);
        CHECK(z && all_zero(z, sallocx(z, 0)), "mallocx(%zu, ZERO) over a freed block's data: not all of its %zu "
              "bytes read zero", zsizes[i][1], z ? sallocx(z, 0) : 0);
        z = z ? rallocx(z, zsizes[i][0] + 5000, ZERO) : NULL;
        CHECK(z && all_zero(z, zsizes[i][0] + 5000), "rallocx(%zu, ZERO): not all zero", zsizes[i][0] + 5000);
        dallocx(z, 0);
    }
    /* nallocx is the size mallocx makes, whatever the thread's state: a new thread's first
     * blocks (the nursery's, exact sizes) hold as many bytes as the main thread was told, and
     * programs write that many (found by review: told 960, given 944, the heap corrupted) */
    enum { NN = 300 };
    static size_t told[NN];
    for (unsigned i = 0; i < NN; i++)
        told[i] = nallocx(i < 200 ? 1 + i * 7 : 30000 + (i - 200) * 4099, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, nallocx_thread, told) == 0, "pthread_create");
    pthread_join(t, NULL);
    CHECK(nallocx((size_t)1 << 36, 0) >= (size_t)1 << 36, "nallocx(2^36) %zu: a size, not made",
          nallocx((size_t)1 << 36, 0));
    /* 0 for a size no block can have (PTRDIFF_MAX rounds up past it: found by review) */
    CHECK(nallocx(PTRDIFF_MAX, 0) == 0, "nallocx(PTRDIFF_MAX) %zu", nallocx(PTRDIFF_MAX, 0));
    /* a small size aligned past a page: the run's size, as mallocx makes it */
    void *al = mallocx(100, LG_ALIGN(13));
    CHECK(al && sallocx(al, 0) == nallocx(100, LG_ALIGN(13)), "nallocx(100, 8 KiB aligned) %zu, mallocx's %zu",
          nallocx(100, LG_ALIGN(13)), al ? sallocx(al, 0) : 0);
    dallocx(al, 0);
    /* a block of mallocx goes to free and malloc_usable_size too */
    void *r = mallocx(777, 0);
    CHECK(r && malloc_usable_size(r) >= 777, "malloc_usable_size of mallocx's block");
    free(r);
    return lab_finish("jemalloc_api");
}
