/* test_faults.c — OS-layer failure injection against the malloc family under its core names (issue
 * 5, "faults"): with every Nth mapping failing, or every mapping once a byte budget is mapped,
 * every entry point (malloc, calloc, realloc, aligned allocation; small, page-sized and huge)
 * returns a block or NULL with errno ENOMEM, never crashes; no block is lost (every live block
 * keeps its contents, a failed realloc leaves its block as it was, and once everything is freed
 * and trimmed the pool holds no more pages in use than before); and allocation works again once
 * mappings succeed. The core is linked directly (cmocka; the test's own malloc is glibc's). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc.h"
#include "labyrinth.h"
#include "os.h"

/* ThreadSanitizer (scripts/sanitize.sh) makes every access dear: fewer requests there. */
#if defined(__SANITIZE_THREAD__)
#define ROUNDS 800
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ROUNDS 800
#endif
#endif
#ifndef ROUNDS
#define ROUNDS 2500
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A pattern tied to the block's identity (not its address: realloc may move it): every 1021st
 * byte (each page is written, a block moved by the wrong amount fails) and the last. */
static void fill(void *p, size_t n, uint32_t id)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i += 1021)
        b[i] = (uint8_t)(i * 31 + id);
    b[n - 1] = (uint8_t)(id ^ 0xA5);
}

/* The first `upto` bytes of a block filled as (n, id) are as fill left them. */
static bool prefix_intact(const void *p, size_t upto, size_t n, uint32_t id)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < upto && i < n - 1; i += 1021)
        if (b[i] != (uint8_t)(i * 31 + id))
            return false;
    return true;
}

static bool intact(const void *p, size_t n, uint32_t id)
{
    return prefix_intact(p, n, n, id) && ((const uint8_t *)p)[n - 1] == (uint8_t)(id ^ 0xA5);
}

/* Pages of the default pool handed out (mapped minus free), after giving back what can be. */
static size_t pages_in_use(void)
{
    lab_trim();
    struct lab_alloc_stats st;
    lab_alloc_stats(&st);
    return st.pool.mapped_pages - st.pool.free_total;
}

struct block {
    void *p;
    size_t n;
    uint32_t id;
};

enum { LIVE = 512 };

/* One random request through one of the entry points; the result is checked and kept in *b (whose
 * previous block it may free or resize). Returns 1 if the request failed (NULL + ENOMEM). */
static int one_request(struct block *b, uint64_t *seed, uint32_t id)
{
    uint64_t r = rnd(seed);
    unsigned kind = (unsigned)(r % 6);
    size_t n;
    unsigned sz = (unsigned)((r >> 8) % 16);
    if (sz < 8)
        n = 1 + (r >> 16) % 1024;                   /* small, direct table */
    else if (sz < 11)
        n = 1025 + (r >> 16) % (31 * KiB);          /* small, classes      */
    else if (sz < 15)
        n = 32 * KiB + (r >> 16) % (1 * MiB);       /* page-sized runs     */
    else
        n = 1 * MiB + 1 + (r >> 16) % (3 * MiB);    /* huge mappings       */
    if (kind == 5 && b->p) {
        /* realloc: on failure the block must be left exactly as it was */
        errno = 0;
        void *q = lab_realloc(b->p, n);
        if (!q) {
            assert_int_equal(errno, ENOMEM);
            assert_true(intact(b->p, b->n, b->id));
            return 1;
        }
        assert_true(n < b->n ? prefix_intact(q, n, b->n, b->id) : intact(q, b->n, b->id));
        b->p = q;
        b->n = n;
        fill(q, n, b->id);
        return 0;
    }
    if (b->p) {
        assert_true(intact(b->p, b->n, b->id));
        lab_free(b->p);
        b->p = NULL;
    }
    errno = 0;
    void *p;
    size_t align = 0;
    if (kind == 0 || kind == 5) {
        p = lab_malloc(n);
    } else if (kind == 1 || kind == 2) {
        p = lab_calloc(1 + (r >> 40) % 3, n);
        n *= 1 + (r >> 40) % 3;
        if (p) {
            const uint8_t *z = p;
            for (size_t i = 0; i < n; i += 509)
                assert_int_equal(z[i], 0);
            assert_int_equal(z[n - 1], 0);
        }
    } else {
        align = (size_t)32 << ((r >> 44) % 18); /* 32 B .. 4 MiB */
        p = lab_malloc_aligned(align, n);
        if (p)
            assert_int_equal((uintptr_t)p % align, 0);
    }
    if (!p) {
        assert_int_equal(errno, ENOMEM);
        return 1;
    }
    b->p = p;
    b->n = n;
    b->id = id;
    fill(p, n, id);
    return 0;
}

static void release_all(struct block *live, int count)
{
    for (int i = 0; i < count; i++) {
        if (live[i].p) {
            assert_true(intact(live[i].p, live[i].n, live[i].id));
            lab_free(live[i].p);
            live[i].p = NULL;
        }
    }
}

/* Every Nth mapping fails (N = 2, 3, 7): requests of every kind and size go on for a while; some
 * fail, the rest work; nothing is damaged or lost. */
static void test_every_nth_map_fails(void **state)
{
    (void)state;
    static struct block live[LIVE];
    size_t used0 = pages_in_use();
    static const unsigned every[] = {2, 3, 7};
    for (unsigned k = 0; k < 3; k++) {
        uint64_t seed = 0x1234567 + k;
        int fails = 0, oks = 0;
        lab_os_inject_failures(every[k], 0);
        for (uint32_t i = 0; i < ROUNDS; i++) {
            /* give memory back now and then, so that new mappings are needed (and fail) */
            if (i % 400 == 399)
                lab_trim();
            if (one_request(&live[rnd(&seed) % LIVE], &seed, i))
                fails++;
            else
                oks++;
        }
        lab_os_inject_failures(0, 0);
        print_message("every %u-th mapping failing: %d requests failed with ENOMEM, %d served\n", every[k],
                      fails, oks);
        assert_true(fails > 0);
        assert_true(oks > 0);
        release_all(live, LIVE);
        /* allocation works again, every kind */
        for (uint32_t i = 0; i < 200; i++)
            assert_int_equal(one_request(&live[i % LIVE], &seed, i), 0);
        release_all(live, LIVE);
    }
    size_t used1 = pages_in_use();
    print_message("pages in use: %zu before, %zu after\n", used0, used1);
    assert_true(used1 <= used0);
}

/* Every mapping fails once more than a budget is mapped: each entry point, with each size, runs
 * until it gets NULL + ENOMEM; the blocks it got are intact; after freeing them the same request
 * succeeds again without the budget. */
static void test_byte_budget(void **state)
{
    (void)state;
    static const size_t sizes[] = {64, 3000, 100 * KiB, 3 * MiB};
    enum { MAX = 1 << 20 };
    void **blocks = calloc(MAX, sizeof *blocks);
    assert_non_null(blocks);
    size_t used0 = pages_in_use();
    for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (unsigned entry = 0; entry < 3; entry++) {
            size_t n = sizes[s];
            struct lab_os_counters c;
            lab_trim();
            lab_os_counters(&c);
            lab_os_inject_failures(0, c.mapped_bytes + 24 * MiB);
            int count = 0;
            void *p;
            for (;;) {
                errno = 0;
                p = entry == 0 ? lab_malloc(n) : entry == 1 ? lab_calloc(n, 1) : lab_malloc_aligned(64, n);
                if (!p || count == MAX)
                    break;
                fill(p, n, (uint32_t)count);
                blocks[count++] = p;
            }
            assert_null(p);
            assert_int_equal(errno, ENOMEM);
            /* realloc of a live block beyond the budget fails and leaves it alone */
            errno = 0;
            assert_null(lab_realloc(blocks[0], 64 * MiB));
            assert_int_equal(errno, ENOMEM);
            for (int i = 0; i < count; i++) {
                assert_true(intact(blocks[i], n, (uint32_t)i));
                lab_free(blocks[i]);
            }
            lab_os_inject_failures(0, 0);
            print_message("budget of 24 MiB, %zu-byte blocks through entry %u: ENOMEM after %d blocks\n", n, entry,
                          count);
            assert_true(count > 0);
            p = lab_malloc(n);
            assert_non_null(p);
            lab_free(p);
        }
    }
    free(blocks);
    size_t used1 = pages_in_use();
    print_message("pages in use: %zu before, %zu after\n", used0, used1);
    assert_true(used1 <= used0);
}

/* Every mapping fails: once the pool's free pages are gone, small requests fail too (a new span
 * needs pages), with ENOMEM; the blocks they got stay intact, and after freeing them new spans can
 * be made again. */
static void test_small_exhaustion(void **state)
{
    (void)state;
    /* the pool may hold nothing now (the tests above made it release its cached chunks): a
     * page-sized block refills it to its high watermark, and that is what small blocks get */
    lab_free(lab_malloc(256 * KiB));
    lab_os_inject_failures(1, 0);
    void *head = NULL;
    long count = 0;
    for (;;) {
        errno = 0;
        void **b = lab_malloc(48);
        if (!b) {
            assert_int_equal(errno, ENOMEM);
            break;
        }
        memset(b, 0x3C, 48);
        b[0] = head;
        head = b;
        assert_true(++count < (1L << 26));
    }
    errno = 0;
    assert_null(lab_calloc(1, 48));
    assert_int_equal(errno, ENOMEM);
    lab_os_inject_failures(0, 0);
    print_message("every mapping failing: %ld small blocks, then ENOMEM\n", count);
    assert_true(count > 0);
    while (head) {
        void **b = head;
        head = b[0];
        for (int i = 8; i < 48; i++)
            assert_int_equal(((uint8_t *)b)[i], 0x3C);
        lab_free(b);
    }
    void *p = lab_malloc(48);
    assert_non_null(p);
    lab_free(p);
}

/* A refill that needs several chunks when the kernel refuses the second: it ends with ENOMEM
 * (or what it got), never unmapping the chunks it has just mapped to map them again, for ever
 * (found by review: labyrinth_pool_init of a reserve larger than RLIMIT_AS allowed spun, as did
 * DEFAULT allocations of a pool whose refills aim high). A hang is killed by the alarm. */
static void test_refill_refused_ends(void **state)
{
    (void)state;
    alarm(60);
    struct lab_os_counters c;
    lab_trim();
    lab_os_counters(&c);
    /* room for a 2 MiB chunk even when its mapping needs 2 MiB more to be aligned; not for 16 */
    lab_os_inject_failures(0, c.mapped_bytes + 5 * MiB);
    labyrinth_t big;
    memset(&big, 0, sizeof big);
    struct labyrinth_pool_opts ob = {.reserve_pages = 8192}; /* 32 MiB up front: cannot fit */
    assert_int_equal(labyrinth_pool_init(&big, &ob), -ENOMEM);
    labyrinth_t rx;
    memset(&rx, 0, sizeof rx);
    /* the README's pool: its refill wants two chunks, one is enough for it (0), unless the
     * metadata needed a mapping of its own first (-ENOMEM); it must return either way */
    struct labyrinth_pool_opts orx = {.reserve_pages = 256};
    int e = labyrinth_pool_init(&rx, &orx);
    assert_true(e == 0 || e == -ENOMEM);
    if (e == 0)
        labyrinth_pool_destroy(&rx);
    labyrinth_t hi;
    memset(&hi, 0, sizeof hi);
    struct labyrinth_pool_opts oh = {.high_pages = 4096}; /* refills aim at 16 MiB free */
    lab_os_inject_failures(0, 0);
    assert_int_equal(labyrinth_pool_init(&hi, &oh), 0);
    lab_os_counters(&c);
    lab_os_inject_failures(0, c.mapped_bytes + 12 * MiB);
    long n = 0;
    errno = 0;
    while (labyrinth_alloc_page(&hi, LAB_GFP_DEFAULT))
        n++;
    assert_int_equal(errno, ENOMEM);
    print_message("DEFAULT pages under a 12 MiB budget: %ld, then ENOMEM\n", n);
    assert_true(n > 0);
    lab_os_inject_failures(0, 0);
    labyrinth_pool_destroy(&hi);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_nth_map_fails),
        cmocka_unit_test(test_byte_budget),
        cmocka_unit_test(test_small_exhaustion),
        cmocka_unit_test(test_refill_refused_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
