/* test_pool.c — unit tests of the labyrinth page pool (core linked directly, cmocka).
 * Covers the contract of labyrinth.h: alignment, reuse, coalescing, watermarks, the reserve,
 * ATOMIC (exhaustion, no system calls, signal handlers), EXCLUSIVE across fork, fault injection,
 * purging, and misuse aborting with a message. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sanitizer.h"

#include "labyrinth.h"
#include "os.h"
#include "pool.h"

static size_t rss_pages(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    size_t size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%zu %zu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss;
}

static uint64_t os_calls(void)
{
    struct lab_os_counters c;
    lab_os_counters(&c);
    return c.calls;
}

static uint64_t os_maps(void)
{
    struct lab_os_counters c;
    lab_os_counters(&c);
    return c.maps;
}

static void fill(void *p, size_t len, uint8_t v) { memset(p, v, len); }

static int check(const void *p, size_t len, uint8_t v)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i += 512)
        if (b[i] != v || b[len - 1] != v)
            return 0;
    return 1;
}

/* lab_os_pages_held (mincore where no swap is configured) and its pagemap way give the same
 * answer, the one the pages' history gives: written, read only (the zero page mapped) and written
 * then purged pages, beside untouched ones, over more pages than mincore's vector takes at once. */
static void test_pages_held_ways_agree(void **state)
{
    (void)state;
    enum { N = 300 };
    uint8_t *p = mmap(NULL, N * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    static const unsigned written[] = {0, 5, 63, 64, 65, 127, 128, 129, 200, 255, 256, 299};
    static const unsigned read_only[] = {10, 130};
    uint64_t want[(N + 63) / 64] = {0};
    for (size_t i = 0; i < sizeof written / sizeof written[0]; i++) {
        p[(size_t)written[i] * 4096 + 100] = 1;
        want[written[i] / 64] |= (uint64_t)1 << (written[i] % 64);
    }
    for (size_t i = 0; i < sizeof read_only / sizeof read_only[0]; i++) {
        assert_int_equal(((volatile uint8_t *)p)[(size_t)read_only[i] * 4096], 0);
        want[read_only[i] / 64] |= (uint64_t)1 << (read_only[i] % 64);
    }
    assert_int_equal(madvise(p + 5 * 4096, 4096, MADV_DONTNEED), 0); /* written, then purged */
    want[0] &= ~((uint64_t)1 << 5);
    uint64_t held[(N + 63) / 64], exact[(N + 63) / 64];
    memset(held, 0xee, sizeof held);
    memset(exact, 0xee, sizeof exact);
    assert_int_equal(lab_os_pages_held(p, N, held), 0);
    assert_int_equal(lab_os_pages_held_pagemap(p, N, exact), 0);
    for (size_t w = 0; w < (N + 63) / 64; w++) {
        uint64_t tail = w == N / 64 ? ((uint64_t)1 << (N % 64)) - 1 : ~(uint64_t)0;
        assert_int_equal(held[w] & tail, want[w]);
        assert_int_equal(exact[w] & tail, want[w]);
    }
    munmap(p, N * 4096);
}

/* ---- alignment, reuse, coalescing ---- */

/* lab_os_reserve: aligned whatever the kernel's placement (a first mapping of the length alone
 * lands on a page, or on 2 MiB for whole 2 MiB units: 4 and 8 MiB alignments take the second way
 * often), all of it mapped (mincore answers for reserved pages), none of it after unreserve. */
static void test_os_reserve_aligned(void **state)
{
    (void)state;
    const size_t lens[] = {4096, 2u << 20, 6u << 20}, aligns[] = {4096, 2u << 20, 4u << 20, 8u << 20};
    unsigned char vec[1536];
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++)
            for (int k = 0; k < 8; k++) {
                size_t len = lens[i], align = aligns[j];
                uint8_t *r = lab_os_reserve(len, align, PROT_NONE);
                assert_non_null(r);
                assert_int_equal((uintptr_t)r & (align - 1), 0);
                assert_int_equal(mincore(r, len, vec), 0);
                lab_os_unreserve(r, len);
                assert_int_equal(mincore(r, len, vec), -1);
                assert_int_equal(errno, ENOMEM);
            }
}

static void test_alignment_every_order(void **state)
{
    (void)state;
    labyrinth_t *pool = labyrinth_default();
    assert_non_null(pool);
    for (unsigned o = 0; o <= LAB_MAX_ORDER; o++) {
        for (int gfpi = 0; gfpi < 3; gfpi++) {
            lab_gfp_t gfp = gfpi == 0 ? LAB_GFP_DEFAULT : gfpi == 1 ? LAB_GFP_ZERO : LAB_GFP_EXCLUSIVE;
            void *p = labyrinth_alloc_pages(pool, o, gfp);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p & ((LAB_PAGE_SIZE << o) - 1), 0);
            size_t len = LAB_PAGE_SIZE << o;
            if (gfp & LAB_GFP_ZERO)
                assert_true(check(p, len, 0));
            fill(p, len, (uint8_t)o);
            assert_true(check(p, len, (uint8_t)o));
            labyrinth_free_pages(pool, p, o);
        }
    }
}

static void test_reuse_and_zero(void **state)
{
    (void)state;
    labyrinth_t *pool = labyrinth_default();
    void *a = labyrinth_alloc_page(pool, 0);
    fill(a, LAB_PAGE_SIZE, 0xAB);
    labyrinth_free_pages(pool, a, 0);
    void *b = labyrinth_alloc_page(pool, 0);
    assert_ptr_equal(a, b); /* the room hands back the page just freed */
    labyrinth_free_pages(pool, b, 0);
    void *z = labyrinth_alloc_page(pool, LAB_GFP_ZERO);
    assert_true(check(z, LAB_PAGE_SIZE, 0)); /* even when the reused page was dirty */
    labyrinth_free_pages(pool, z, 0);
}

static void test_coalesce_to_order9(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    /* exactly one chunk: the pool can only serve order 9 again by coalescing */
    struct labyrinth_pool_opts o = {.reserve_pages = 0, .low_pages = 1, .high_pages = 512, .max_pages = 512};
    assert_int_equal(labyrinth_pool_init(&pool, &o), 0);
    void *pages[512];
    for (int i = 0; i < 512; i++) {
        pages[i] = labyrinth_alloc_page(&pool, 0);
        assert_non_null(pages[i]);
    }
    assert_null(labyrinth_alloc_page(&pool, LAB_GFP_ATOMIC));
    assert_int_equal(errno, ENOMEM);
    for (int i = 0; i < 512; i++)
        labyrinth_free_pages(&pool, pages[i], 0);
    uint64_t maps = os_maps();
    void *big = labyrinth_alloc_pages(&pool, 9, 0);
    assert_non_null(big);
    assert_int_equal(os_maps(), maps); /* no new mapping was needed */
    assert_int_equal((uintptr_t)big & ((2u << 20) - 1), 0);
    labyrinth_free_pages(&pool, big, 9);
    labyrinth_pool_destroy(&pool);
}

/* ---- watermarks and the reserve ---- */

static void test_watermark_refill(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    struct labyrinth_pool_opts o = {.reserve_pages = 16, .low_pages = 600, .high_pages = 1000};
    assert_int_equal(labyrinth_pool_init(&pool, &o), 0);
    struct labyrinth_pool_stats st;
    labyrinth_pool_stats(&pool, &st);
    assert_true(st.free_total >= 1000); /* filled to HIGH up front */
    uint64_t refills = st.refills;
    void *p[600];
    for (int i = 0; i < 600; i++)
        assert_non_null(p[i] = labyrinth_alloc_page(&pool, 0));
    labyrinth_pool_stats(&pool, &st);
    assert_true(st.refills > refills);    /* dropping below LOW refilled */
    assert_true(st.free_total >= 600 - 64); /* toward HIGH (the room holds a batch) */
    for (int i = 0; i < 600; i++)
        labyrinth_free_pages(&pool, p[i], 0);
    labyrinth_pool_destroy(&pool);
}

static void test_reserve_default_vs_atomic(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    struct labyrinth_pool_opts o = {.reserve_pages = 64, .low_pages = 64, .high_pages = 512, .max_pages = 512};
    assert_int_equal(labyrinth_pool_init(&pool, &o), 0);
    void *p[600];
    int n = 0;
    while ((p[n] = labyrinth_alloc_page(&pool, 0)) != NULL)
        n++;
    assert_int_equal(errno, ENOMEM);
    struct labyrinth_pool_stats st;
    labyrinth_pool_stats(&pool, &st);
    assert_true(st.free_total >= 64);         /* DEFAULT left the reserve alone */
    assert_int_equal(st.reserve_level, 64);
    int m = 0;
    while ((p[n + m] = labyrinth_alloc_page(&pool, LAB_GFP_ATOMIC)) != NULL)
        m++;
    assert_int_equal(errno, ENOMEM);          /* ATOMIC exhaustion fails fast */
    assert_true(m >= 64);
    labyrinth_pool_stats(&pool, &st);
    assert_true(st.hits_reserve > 0);
    assert_true(st.failures >= 2);
    for (int i = 0; i < n + m; i++)
        labyrinth_free_pages(&pool, p[i], 0);
    labyrinth_pool_destroy(&pool);
}

/* The reserve stays where every thread's ATOMIC calls reach it and no DEFAULT call does: a burst
 * of ATOMIC pages into it, freed by the same thread, goes back to the shared lists, not into
 * that thread's room (found by review: another thread's ATOMIC calls then got 4 of the 64
 * reserve pages, and this thread's DEFAULT calls took 60 of them). */
struct reserve_taker {
    labyrinth_t *pool;
    int got;
};

static void *reserve_taker_thread(void *arg)
{
    struct reserve_taker *t = arg;
    void *p[128];
    while (t->got < 128 && (p[t->got] = labyrinth_alloc_page(t->pool, LAB_GFP_ATOMIC)) != NULL)
        t->got++;
    for (int i = 0; i < t->got; i++)
        labyrinth_free_pages(t->pool, p[i], 0);
    return NULL;
}

static void test_reserve_stays_shared(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    struct labyrinth_pool_opts o = {.reserve_pages = 64, .max_pages = 512};
    assert_int_equal(labyrinth_pool_init(&pool, &o), 0);
    static void *p[600];
    int n = 0;
    while (n < 600 && (p[n] = labyrinth_alloc_page(&pool, LAB_GFP_DEFAULT)) != NULL)
        n++;
    void *burst[60];
    for (int i = 0; i < 60; i++)
        assert_non_null(burst[i] = labyrinth_alloc_page(&pool, LAB_GFP_ATOMIC));
    for (int i = 0; i < 60; i++)
        labyrinth_free_pages(&pool, burst[i], 0);
    struct reserve_taker t = {.pool = &pool};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reserve_taker_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    print_message("DEFAULT took %d pages; another thread's ATOMIC calls then got %d\n", n, t.got);
    assert_true(t.got >= 64);
    errno = 0;
    void *d = labyrinth_alloc_page(&pool, LAB_GFP_DEFAULT);
    assert_null(d); /* the reserve is all that is left */
    assert_int_equal(errno, ENOMEM);
    for (int i = 0; i < n; i++)
        labyrinth_free_pages(&pool, p[i], 0);
    labyrinth_pool_destroy(&pool);
}

/* A DEFAULT room refill from the shared lists takes no more than what is above the reserve: with
 * the reserve on the shared lists (ATOMIC pages freed), a thread whose room is empty allocates
 * until ENOMEM after another thread freed pages onto them too, and the reserve is all there after (a batch that ignored it passed every
 * test: found by mutation testing). */
struct page_batch {
    labyrinth_t *pool;
    void **p;
    int n;
};

static void *free_batch_thread(void *arg)
{
    struct page_batch *b = arg;
    for (int i = 0; i < b->n; i++)
        labyrinth_free_pages(b->pool, b->p[i], 0);
    return NULL; /* its room goes to the shared lists at exit */
}

static void *take_all_thread(void *arg)
{
    struct page_batch *b = arg;
    b->n = 0;
    while (b->n < 600 && (b->p[b->n] = labyrinth_alloc_page(b->pool, LAB_GFP_DEFAULT)) != NULL)
        b->n++;
    return NULL;
}

static void test_default_refill_keeps_reserve(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    struct labyrinth_pool_opts o = {.reserve_pages = 64, .low_pages = 64, .high_pages = 512, .max_pages = 512};
    assert_int_equal(labyrinth_pool_init(&pool, &o), 0);
    static void *p[600], *q[600];
    struct page_batch a = {.pool = &pool, .p = p};
    take_all_thread(&a);
    /* the reserve taken by ATOMIC calls and freed: below the reserve, onto the shared lists */
    void *r[64];
    for (int i = 0; i < 64; i++)
        assert_non_null(r[i] = labyrinth_alloc_page(&pool, LAB_GFP_ATOMIC));
    for (int i = 0; i < 64; i++)
        labyrinth_free_pages(&pool, r[i], 0);
    /* 100 of them go back through another thread's room: on the shared lists (under their cap,
     * so none is coalesced into the store), where C's refills find them */
    struct page_batch back = {.pool = &pool, .p = p, .n = 100};
    pthread_t t;
    assert_true(a.n >= 100);
    assert_int_equal(pthread_create(&t, NULL, free_batch_thread, &back), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    struct page_batch c = {.pool = &pool, .p = q};
    assert_int_equal(pthread_create(&t, NULL, take_all_thread, &c), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    struct labyrinth_pool_stats st;
    labyrinth_pool_stats(&pool, &st);
    print_message("DEFAULT took %d pages, then %d after they went back; free %zu, reserve %zu\n", a.n, c.n,
                  st.free_total, st.reserve_level);
    assert_true(st.free_total >= 64);
    assert_int_equal(st.reserve_level, 64);
    for (int i = 0; i < c.n; i++)
        labyrinth_free_pages(&pool, q[i], 0);
    for (int i = 100; i < a.n; i++)
        labyrinth_free_pages(&pool, p[i], 0);
    labyrinth_pool_destroy(&pool);
}

/* ---- ATOMIC makes no system call ---- */

/* A user pool with a reserve and room above LOW, for the ATOMIC tests. */
static void atomic_pool_init(labyrinth_t *pool)
{
    memset(pool, 0, sizeof *pool);
    struct labyrinth_pool_opts o = {.reserve_pages = 128, .low_pages = 256, .high_pages = 1024};
    assert_int_equal(labyrinth_pool_init(pool, &o), 0);
}

static void atomic_workload(labyrinth_t *pool, int rounds)
{
    void *p[64];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 64; i++)
            p[i] = labyrinth_alloc_pages(pool, (unsigned)(i % 4), LAB_GFP_ATOMIC | (i % 3 ? 0 : LAB_GFP_ZERO));
        for (int i = 0; i < 64; i++)
            if (p[i])
                labyrinth_free_pages(pool, p[i], (unsigned)(i % 4));
    }
}

static void test_atomic_no_syscall_counter(void **state)
{
    (void)state;
    labyrinth_t pool;
    atomic_pool_init(&pool);
    uint64_t before = os_calls();
    atomic_workload(&pool, 200);
    assert_int_equal(os_calls(), before);
    labyrinth_pool_destroy(&pool);
}

/* An ATOMIC call finds the pool's pages wherever this thread's rooms keep them: a capped pool's
 * only chunk freed as one order-9 run into the room, then smaller orders, each with no system
 * call (found by review: order 0 failed with all 512 pages free in the order-9 room). */
static void test_atomic_drains_own_room(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    struct labyrinth_pool_opts o = {.max_pages = 512};
    assert_int_equal(labyrinth_pool_init(&pool, &o), 0);
    void *big = labyrinth_alloc_pages(&pool, 9, LAB_GFP_ATOMIC);
    assert_non_null(big);
    labyrinth_free_pages(&pool, big, 9);
    uint64_t before = os_calls();
    for (unsigned order = 0; order < 9; order++) {
        void *p = labyrinth_alloc_pages(&pool, order, LAB_GFP_ATOMIC);
        assert_non_null(p);
        labyrinth_free_pages(&pool, p, order);
    }
    assert_int_equal(os_calls(), before);
    labyrinth_pool_destroy(&pool);
}

/* A thread that only ever allocates ATOMIC (a receive loop) gets a room too, made without a
 * system call, and gives its pages back when it exits: before, every one of its allocations took a
 * page from the shared lists with its own CAS. */
struct atomic_only {
    labyrinth_t *pool;
    uint64_t calls; /* the OS layer's system calls while it ran its loop */
    int failed;
};

static void *atomic_only_thread(void *arg)
{
    struct atomic_only *a = arg;
    uint64_t before = os_calls();
    for (int r = 0; r < 2000; r++) {
        void *p = labyrinth_alloc_pages(a->pool, 0, LAB_GFP_ATOMIC);
        if (!p) {
            a->failed++;
            continue;
        }
        *(volatile char *)p = 1;
        labyrinth_free_pages(a->pool, p, 0);
    }
    a->calls = os_calls() - before;
    return NULL;
}

static void test_atomic_only_thread_room(void **state)
{
    (void)state;
    labyrinth_t pool;
    atomic_pool_init(&pool);
    /* pages on the pool's lists for ATOMIC to find (this thread's room keeps some too) */
    void *p[256];
    for (int i = 0; i < 256; i++)
        assert_non_null(p[i] = labyrinth_alloc_pages(&pool, 0, LAB_GFP_DEFAULT));
    for (int i = 0; i < 256; i++)
        labyrinth_free_pages(&pool, p[i], 0);
    struct labyrinth_pool_stats st0, st1;
    labyrinth_pool_stats(&pool, &st0);
    struct atomic_only a = {.pool = &pool};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, atomic_only_thread, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    labyrinth_pool_stats(&pool, &st1);
    assert_int_equal(a.failed, 0);
    assert_int_equal(a.calls, 0);
    /* all but the first allocation and the room's refills came from its room */
    assert_true(st1.hits_room - st0.hits_room >= 1900);
    /* its room went back to the pool's lists when it exited: nothing stranded */
    assert_int_equal(st1.free_total, st0.free_total);
    labyrinth_pool_destroy(&pool);
}

/* In a child under a seccomp filter that kills the process on any memory-management or futex
 * system call: ATOMIC allocation and free must run to completion. */
static void test_atomic_no_syscall_seccomp(void **state)
{
    (void)state;
    labyrinth_t pool;
    atomic_pool_init(&pool);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 6, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_munmap, 5, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 4, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mremap, 3, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 2, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        };
        struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
            _exit(3);
        atomic_workload(&pool, 500);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    labyrinth_pool_destroy(&pool);
}

/* A lock an ATOMIC caller gives back while another thread waits for it: no futex call (the
 * contract of LAB_GFP_ATOMIC, kept under contention too: found by review), and the waiter still
 * gets the lock, within its next look (LAB_LOCK_WAIT_MS). The first half in a child that any
 * futex call kills; the second with a real waiter, which hangs if no look comes. */
static lab_lock_t quiet_lock = LAB_LOCK_INIT;
static void *quiet_waiter(void *arg)
{
    (void)arg;
    lab_lock(&quiet_lock);
    lab_unlock(&quiet_lock);
    return NULL;
}

static void child_must_pass(int (*fn)(void *), void *arg);

/* The calling process (a test's child) under seccomp filter f of n instructions; 0 on success. */
static int seccomp_install(struct sock_filter *f, unsigned short n)
{
    struct sock_fprog prog = {.len = n, .filter = f};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static int child_quiet_unlock(void *arg)
{
    (void)arg;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    if (seccomp_install(f, sizeof f / sizeof f[0]))
        return 3;
    lab_lock_t l = LAB_LOCK_INIT;
    if (!lab_lock_try(&l))
        return 4;
    __atomic_store_n(&l.v, 2, __ATOMIC_RELAXED); /* as a waiter marks it */
    lab_lock_quiet++;
    lab_unlock(&l);
    lab_lock_quiet--;
    return l.v == 0 && lab_locks_held == 0 ? 0 : 5;
}

static void test_atomic_unlock_no_futex(void **state)
{
    (void)state;
    child_must_pass(child_quiet_unlock, NULL); /* killed at a futex call */
    /* a real waiter, asleep on the lock when the quiet unlock leaves out its wake-up */
    lab_lock(&quiet_lock);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, quiet_waiter, NULL), 0);
    while (__atomic_load_n(&quiet_lock.v, __ATOMIC_RELAXED) != 2)
        usleep(100);
    usleep(2000); /* asleep in the futex by now */
    lab_lock_quiet++;
    lab_unlock(&quiet_lock);
    lab_lock_quiet--;
    pthread_join(t, NULL); /* hangs if the waiter never looks again */
    assert_int_equal(__atomic_load_n(&quiet_lock.v, __ATOMIC_RELAXED), 0);
}

/* ---- threads ---- */

#define T_THREADS 6
#define T_SLOTS 256
static void *volatile t_slots[T_SLOTS];
static volatile unsigned t_orders[T_SLOTS];
static pthread_mutex_t t_lock = PTHREAD_MUTEX_INITIALIZER;
static int t_errors;

static void *thread_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    labyrinth_t *pool = labyrinth_default();
    for (int i = 0; i < 20000; i++) {
        unsigned o = (unsigned)rand_r(&seed) % 4;
        if (rand_r(&seed) % 16 == 0)
            o = 4 + (unsigned)rand_r(&seed) % 6;
        void *p = labyrinth_alloc_pages(pool, o, rand_r(&seed) % 2 ? LAB_GFP_ATOMIC : 0);
        if (!p)
            continue;
        uint8_t tag = (uint8_t)((uintptr_t)p >> 12);
        ((volatile uint8_t *)p)[0] = tag;
        ((volatile uint8_t *)p)[(LAB_PAGE_SIZE << o) - 1] = tag;
        unsigned slot = (unsigned)rand_r(&seed) % T_SLOTS;
        pthread_mutex_lock(&t_lock);
        void *old = t_slots[slot];
        unsigned oo = t_orders[slot];
        t_slots[slot] = p;
        t_orders[slot] = o;
        pthread_mutex_unlock(&t_lock);
        if (old) {
            /* freed by a thread that may not have allocated it */
            uint8_t ot = (uint8_t)((uintptr_t)old >> 12);
            if (((uint8_t *)old)[0] != ot || ((uint8_t *)old)[(LAB_PAGE_SIZE << oo) - 1] != ot)
                __atomic_add_fetch(&t_errors, 1, __ATOMIC_RELAXED);
            labyrinth_free_pages(pool, old, oo);
        }
    }
    return NULL;
}

static void test_threads_cross_free(void **state)
{
    (void)state;
    pthread_t t[T_THREADS];
    for (uintptr_t i = 0; i < T_THREADS; i++)
        pthread_create(&t[i], NULL, thread_worker, (void *)(i * 7919 + 1));
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(t_errors, 0);
    for (int i = 0; i < T_SLOTS; i++)
        if (t_slots[i])
            labyrinth_free_pages(labyrinth_default(), t_slots[i], t_orders[i]);
}

/* ---- other threads' rooms: taken by labyrinth_pool_trim ---- */

static labyrinth_t room_pool;
static pthread_mutex_t room_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t room_cond = PTHREAD_COND_INITIALIZER;
static int room_stage; /* 1: the owner's runs are in its room; 2: it may go on; 3: it has */
static int room_errors;

static void room_stage_set(int v)
{
    pthread_mutex_lock(&room_lock);
    room_stage = v;
    pthread_cond_broadcast(&room_cond);
    pthread_mutex_unlock(&room_lock);
}

static void room_stage_wait(int v)
{
    pthread_mutex_lock(&room_lock);
    while (room_stage != v)
        pthread_cond_wait(&room_cond, &room_lock);
    pthread_mutex_unlock(&room_lock);
}

static void *room_owner(void *arg)
{
    (void)arg;
    void *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = labyrinth_alloc_pages(&room_pool, 4, 0);
        if (!p[i])
            __atomic_add_fetch(&room_errors, 1, __ATOMIC_RELAXED);
    }
    for (int i = 0; i < 8; i++)
        if (p[i])
            labyrinth_free_pages(&room_pool, p[i], 4); /* 8 of the order's 16 places: all stay */
    room_stage_set(1);
    room_stage_wait(2);
    /* the room was emptied behind the owner's back: it must go on as before */
    for (int i = 0; i < 8; i++) {
        p[i] = labyrinth_alloc_pages(&room_pool, 4, 0);
        if (!p[i])
            __atomic_add_fetch(&room_errors, 1, __ATOMIC_RELAXED);
        else
            memset(p[i], 0x77, LAB_PAGE_SIZE << 4);
    }
    for (int i = 0; i < 8; i++)
        if (p[i])
            labyrinth_free_pages(&room_pool, p[i], 4);
    room_stage_set(3);
    return NULL;
}

/* A thread's room keeps its runs from the pool's counts; another thread's trim takes them. */
static void test_trim_takes_other_rooms(void **state)
{
    (void)state;
    memset(&room_pool, 0, sizeof room_pool);
    assert_int_equal(labyrinth_pool_init(&room_pool, NULL), 0);
    room_stage = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, room_owner, NULL), 0);
    room_stage_wait(1);
    struct labyrinth_pool_stats before, after;
    assert_int_equal(labyrinth_pool_stats(&room_pool, &before), 0);
    labyrinth_pool_trim(&room_pool);
    assert_int_equal(labyrinth_pool_stats(&room_pool, &after), 0);
    print_message("free pages outside rooms: %zu before the trim, %zu after\n", before.free_total, after.free_total);
    assert_true(after.free_total >= before.free_total + 8 * 16);
    room_stage_set(2);
    room_stage_wait(3);
    pthread_join(t, NULL);
    assert_int_equal(room_errors, 0);
    labyrinth_pool_destroy(&room_pool);
}

static void child_must_pass(int (*fn)(void *), void *arg);

/* In a child whose seccomp filter fails membarrier (an old kernel, a sandbox): a trim leaves the
 * other thread's room alone, and the owner goes on with it afterwards. */
static int child_trim_no_membarrier(void *arg)
{
    (void)arg;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    if (seccomp_install(f, sizeof f / sizeof f[0]))
        return 3;
    memset(&room_pool, 0, sizeof room_pool);
    if (labyrinth_pool_init(&room_pool, NULL) != 0)
        return 4;
    room_stage = 0;
    room_errors = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, room_owner, NULL) != 0)
        return 5;
    room_stage_wait(1);
    struct labyrinth_pool_stats before, after;
    labyrinth_pool_stats(&room_pool, &before);
    labyrinth_pool_trim(&room_pool);
    labyrinth_pool_stats(&room_pool, &after);
    int rc = 0;
#ifndef LAB_UNDER_TSAN /* TSan builds take rooms with a try-lock, no membarrier */
    if (after.free_total >= before.free_total + 8 * 16)
        rc = 6; /* taken without the barrier that makes it safe */
#endif
    room_stage_set(2);
    room_stage_wait(3);
    pthread_join(t, NULL);
    if (room_errors)
        rc = 7;
    labyrinth_pool_destroy(&room_pool);
    return rc;
}

static void test_trim_without_membarrier(void **state)
{
    (void)state;
    child_must_pass(child_trim_no_membarrier, NULL);
}

/* In a child whose seccomp filter refuses MADV_WIPEONFORK (a kernel before 4.14, a sandbox):
 * EXCLUSIVE pages, which a fork child must never see, are refused (NULL) rather than handed out
 * from a chunk without the advice; ordinary pages still come. The advice's result was ignored. */
static int child_no_wipeonfork(void *arg)
{
    (void)arg;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_WIPEONFORK, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    if (seccomp_install(f, sizeof f / sizeof f[0]))
        return 3;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    if (labyrinth_pool_init(&pool, NULL) != 0)
        return 4;
    int rc = 0;
    void *x = labyrinth_alloc_pages(&pool, 0, LAB_GFP_EXCLUSIVE);
    if (x) {
        rc = 5; /* EXCLUSIVE pages from a chunk a fork child would see */
        labyrinth_free_pages(&pool, x, 0);
    }
    void *n = labyrinth_alloc_pages(&pool, 0, 0);
    if (!n)
        rc = rc ? rc : 6;
    else
        labyrinth_free_pages(&pool, n, 0);
    labyrinth_pool_destroy(&pool);
    return rc;
}

static void test_exclusive_needs_wipeonfork(void **state)
{
    (void)state;
    child_must_pass(child_no_wipeonfork, NULL);
}

static void *dead_owner(void *arg)
{
    (void)arg;
    void *p[8];
    for (int i = 0; i < 8; i++)
        if (!(p[i] = labyrinth_alloc_pages(&room_pool, 4, 0)))
            __atomic_add_fetch(&room_errors, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++)
        if (p[i])
            labyrinth_free_pages(&room_pool, p[i], 4); /* they stay in this thread's room */
    room_stage_set(1);
    room_stage_wait(2);
    return NULL;
}

/* An idle thread's room holds runs of a user pool that is then destroyed: the purge thread's
 * watch must drop them, not look at them again once a delay for good. */
static void test_idle_rooms_of_destroyed_pool(void **state)
{
    (void)state;
    labyrinth_default();
    lab_pool_set_default_delay(1);
    memset(&room_pool, 0, sizeof room_pool);
    assert_int_equal(labyrinth_pool_init(&room_pool, NULL), 0);
    room_stage = 0;
    room_errors = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dead_owner, NULL), 0);
    room_stage_wait(1);
    labyrinth_pool_destroy(&room_pool);
    /* round 1 sees the runs, round 2 (a delay later) takes the room; from then on nothing may
     * be watched (without the forgetting, rounds alternate: watched again, taken again) */
    uint64_t next = 0;
    int watched_after = 0;
    for (int i = 0; i < 6; i++) {
        /* a delay and more on the pool's clock between rounds: it is the coarse clock, which
         * moves in ticks (4 ms here) and was seen to stand still for 9 ms of sleeps in a row
         * (three rounds of 3 ms then saw one instant and took the room only at the fourth) */
        uint64_t t0 = lab_clock_ms();
        for (int w = 0; w < 2000 && lab_clock_ms() < t0 + 2; w++) {
            struct timespec ms1 = {0, 1000 * 1000};
            nanosleep(&ms1, NULL);
        }
        next = lab_pool_rooms_return_idle();
        if (i >= 2 && next != UINT64_MAX)
            watched_after++;
    }
    room_stage_set(2);
    pthread_join(t, NULL);
    lab_pool_set_default_delay(1000);
    print_message("rounds 3-6 that still watched a room: %d\n", watched_after);
    assert_int_equal(watched_after, 0);
    assert_int_equal(room_errors, 0);
}

enum { RACE_LIVE = 24 };
static volatile int race_done;

/* Runs of orders 0-6 allocated and freed through the thread's room, each marked at three places
 * with a byte of its own (random) and checked before its free: a run handed out twice (a room
 * list changed by the owner and a taker at once) shows as a mark overwritten. */
static void *race_owner(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *live[RACE_LIVE] = {0};
    unsigned ord[RACE_LIVE] = {0};
    uint8_t tags[RACE_LIVE] = {0};
    for (int i = 0; i < 200000; i++) {
        unsigned k = (unsigned)rand_r(&seed) % RACE_LIVE;
        if (live[k]) {
            uint8_t *b = live[k];
            size_t n = LAB_PAGE_SIZE << ord[k];
            uint8_t tag = tags[k];
            if (b[0] != tag || b[n / 2] != tag || b[n - 1] != tag)
                __atomic_add_fetch(&room_errors, 1, __ATOMIC_RELAXED);
            labyrinth_free_pages(&room_pool, b, ord[k]);
            live[k] = NULL;
        }
        unsigned o = (unsigned)rand_r(&seed) % 7;
        uint8_t *b = labyrinth_alloc_pages(&room_pool, o, rand_r(&seed) % 4 ? 0 : LAB_GFP_ATOMIC);
        if (!b)
            continue;
        size_t n = LAB_PAGE_SIZE << o;
        uint8_t tag = (uint8_t)rand_r(&seed);
        b[0] = b[n / 2] = b[n - 1] = tag;
        tags[k] = tag;
        live[k] = b;
        ord[k] = o;
    }
    for (unsigned k = 0; k < RACE_LIVE; k++)
        if (live[k])
            labyrinth_free_pages(&room_pool, live[k], ord[k]);
    return NULL;
}

/* The trim's taking alone, without its purge (whose page faults would keep the owners out of
 * their rooms most of the time); returns the pages taken. */
static void *race_taker(void *arg)
{
    (void)arg;
    size_t pages = 0;
    while (!__atomic_load_n(&race_done, __ATOMIC_ACQUIRE))
        pages += lab_pool_rooms_take(lab_pool_of(&room_pool));
    return (void *)pages;
}

/* Owners at work in their rooms while another thread takes their runs without pause. */
static void test_trim_races_room_owners(void **state)
{
    (void)state;
    memset(&room_pool, 0, sizeof room_pool);
    assert_int_equal(labyrinth_pool_init(&room_pool, NULL), 0);
    room_errors = 0;
    race_done = 0;
    pthread_t own[2], taker;
    assert_int_equal(pthread_create(&taker, NULL, race_taker, NULL), 0);
    for (uintptr_t i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&own[i], NULL, race_owner, (void *)(i * 104729 + 3)), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(own[i], NULL);
    __atomic_store_n(&race_done, 1, __ATOMIC_RELEASE);
    void *taken;
    pthread_join(taker, &taken);
    print_message("%zu pages taken from the owners' rooms while they ran\n", (size_t)taken);
    assert_int_equal(room_errors, 0);
    assert_true((size_t)taken > 0);
    labyrinth_pool_destroy(&room_pool);
}

/* ---- signals: ATOMIC in a handler that interrupts the pool ---- */

static labyrinth_t *sig_pool;
static volatile long sig_count, sig_got, sig_bad;

static void sig_handler(int sig)
{
    (void)sig;
    int saved = errno;
    void *p = labyrinth_alloc_pages(sig_pool, sig_count % 3, LAB_GFP_ATOMIC);
    if (p) {
        memset(p, 0x5A, 64);
        if (((uint8_t *)p)[63] != 0x5A)
            sig_bad++;
        labyrinth_free_pages(sig_pool, p, sig_count % 3);
        sig_got++;
    }
    sig_count++;
    errno = saved;
}

static void test_signal_handler_atomic(void **state)
{
    (void)state;
    sig_pool = labyrinth_default();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    void *held[32] = {0};
    unsigned i = 0;
    do {
        unsigned slot = i % 32, o = i % 5;
        if (held[slot]) {
            if (((uint8_t *)held[slot])[0] != (uint8_t)slot)
                sig_bad++;
            labyrinth_free_pages(sig_pool, held[slot], (slot % 5));
        }
        o = slot % 5;
        held[slot] = labyrinth_alloc_pages(sig_pool, o, i % 2 ? LAB_GFP_ATOMIC : 0);
        if (held[slot])
            ((uint8_t *)held[slot])[0] = (uint8_t)slot;
        i++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 2000000000L);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_DFL);
    for (int s = 0; s < 32; s++)
        if (held[s])
            labyrinth_free_pages(sig_pool, held[s], (unsigned)(s % 5));
    print_message("signals: %ld handled, %ld allocated in the handler, %u main-loop rounds\n", sig_count, sig_got, i);
    assert_true(sig_count > 100);
    assert_true(sig_got > 0);
    assert_int_equal(sig_bad, 0);
}

/* ---- EXCLUSIVE ---- */

/* Runs fn(arg) in a fork child; the child's exit status (fn's result) must be 0. */
static void child_must_pass(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static int child_all_zero(void *arg)
{
    const uint8_t *p = arg;
    for (size_t i = 0; i < (LAB_PAGE_SIZE << 2); i++)
        if (p[i] != 0)
            return 1;
    return 0;
}

#ifndef LAB_UNDER_TSAN
/* blocks filled with 0x5a: their first and last bytes must still be there */
struct kept {
    void **blk;
    const unsigned *ord;
    int n;
};
static int child_kept(void *arg)
{
    const struct kept *k = arg;
    for (int i = 0; i < k->n; i++)
        if (((uint8_t *)k->blk[i])[0] != 0x5a || ((uint8_t *)k->blk[i])[(LAB_PAGE_SIZE << k->ord[i]) - 1] != 0x5a)
            return 1;
    return 0;
}
#endif

static void test_exclusive_wiped_in_child(void **state)
{
    (void)state;
#ifdef LAB_UNDER_TSAN
    skip();
#endif
    labyrinth_t *pool = labyrinth_default();
    uint8_t *p = labyrinth_alloc_pages(pool, 2, LAB_GFP_EXCLUSIVE);
    assert_non_null(p);
    memset(p, 0x77, LAB_PAGE_SIZE << 2);
    child_must_pass(child_all_zero, p);
    assert_int_equal(p[100], 0x77); /* the parent keeps its contents */
    labyrinth_free_pages(pool, p, 2);
}

/* Runs of the exclusive zone never come back to DEFAULT callers, and the other way round: a run
 * carved from the middle of an exclusive chunk once carried the NORMAL zone number (descriptors
 * start zeroed), went to the normal room and shared lists when freed, and was handed to DEFAULT
 * callers (wiped in every fork child) and drained into the other zone's store (two stores, two
 * locks: the same pages handed out twice). */
static void test_exclusive_stays_exclusive(void **state)
{
    (void)state;
    labyrinth_t *pool = labyrinth_default();
    enum { N = 48 };
    void *ex[N], *nm[N];
    unsigned ord[N];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            ord[i] = (unsigned)(i % 4);
            ex[i] = labyrinth_alloc_pages(pool, ord[i], LAB_GFP_EXCLUSIVE);
            assert_non_null(ex[i]);
        }
        for (int i = 0; i < N; i++)
            labyrinth_free_pages(pool, ex[i], ord[i]);
        for (int i = 0; i < N; i++) {
            nm[i] = labyrinth_alloc_pages(pool, ord[i], LAB_GFP_DEFAULT);
            assert_non_null(nm[i]);
            memset(nm[i], 0x5a, LAB_PAGE_SIZE << ord[i]);
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                uintptr_t a = (uintptr_t)nm[i], b = (uintptr_t)ex[j];
                assert_false(a < b + (LAB_PAGE_SIZE << ord[j]) && b < a + (LAB_PAGE_SIZE << ord[i]));
            }
#ifndef LAB_UNDER_TSAN
        /* what a user sees: a DEFAULT page must keep its contents in a fork child */
        struct kept k = {nm, ord, N};
        child_must_pass(child_kept, &k);
#endif
        for (int i = 0; i < N; i++)
            labyrinth_free_pages(pool, nm[i], ord[i]);
    }
}

/* Runs fn in a child; expects SIGABRT and a "labyrinth:" line on stderr. */
static void expect_abort(void (*fn)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        fn();
        _exit(0);
    }
    close(fds[1]);
    char buf[512] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "labyrinth: "));
    assert_non_null(strstr(buf, "0x"));
}

static void *excl_page;
static void *free_excl_thread(void *arg)
{
    (void)arg;
    labyrinth_free_pages(labyrinth_default(), excl_page, 0);
    return NULL;
}

static void misuse_exclusive_other_thread(void)
{
    excl_page = labyrinth_alloc_page(labyrinth_default(), LAB_GFP_EXCLUSIVE);
    pthread_t t;
    pthread_create(&t, NULL, free_excl_thread, NULL);
    pthread_join(t, NULL);
}

/* An EXCLUSIVE page of a thread that has exited, freed by the next thread, to which glibc gives
 * the same descriptor and so the same pthread_self() (found by review: not caught when that was
 * the owner's mark) */
static void *alloc_excl_thread(void *arg)
{
    (void)arg;
    excl_page = labyrinth_alloc_page(labyrinth_default(), LAB_GFP_EXCLUSIVE);
    return (void *)pthread_self();
}

static void misuse_exclusive_next_thread(void)
{
    pthread_t t;
    void *first;
    pthread_create(&t, NULL, alloc_excl_thread, NULL);
    pthread_join(t, &first);
    pthread_create(&t, NULL, free_excl_thread, NULL);
    (void)first; /* the same as t when glibc reused the descriptor, as it does here */
    pthread_join(t, NULL);
}

static void misuse_double_free(void)
{
    void *p = labyrinth_alloc_page(labyrinth_default(), 0);
    labyrinth_free_pages(labyrinth_default(), p, 0);
    labyrinth_free_pages(labyrinth_default(), p, 0);
}

static void misuse_wrong_order(void)
{
    void *p = labyrinth_alloc_pages(labyrinth_default(), 2, 0);
    labyrinth_free_pages(labyrinth_default(), p, 1);
}

static void misuse_misaligned(void)
{
    char *p = labyrinth_alloc_pages(labyrinth_default(), 1, 0);
    labyrinth_free_pages(labyrinth_default(), p + 64, 1);
}

static void misuse_foreign(void)
{
    static char buf[8192];
    labyrinth_free_pages(labyrinth_default(), buf, 0);
}

static void misuse_other_pool(void)
{
    static labyrinth_t other;
    labyrinth_pool_init(&other, NULL);
    void *p = labyrinth_alloc_page(labyrinth_default(), 0);
    labyrinth_free_pages(&other, p, 0);
}

static void test_misuse_aborts(void **state)
{
    (void)state;
    expect_abort(misuse_double_free);
    expect_abort(misuse_wrong_order);
    expect_abort(misuse_misaligned);
    expect_abort(misuse_foreign);
    expect_abort(misuse_other_pool);
    expect_abort(misuse_exclusive_other_thread);
    expect_abort(misuse_exclusive_next_thread);
}

/* A second init of a live pool's handle is refused (it replaced the pool, whose pages, room slot
 * and mappings were lost: found by review); after destroy the handle can be set up again. */
static void test_double_init_busy(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    assert_int_equal(labyrinth_pool_init(&pool, NULL), 0);
    void *p = labyrinth_alloc_page(&pool, LAB_GFP_DEFAULT);
    assert_non_null(p);
    assert_int_equal(labyrinth_pool_init(&pool, NULL), -EBUSY);
    assert_int_equal(labyrinth_pool_init(labyrinth_default(), NULL), -EBUSY);
    labyrinth_free_pages(&pool, p, 0); /* still the first pool's page */
    labyrinth_pool_destroy(&pool);
    assert_int_equal(labyrinth_pool_init(&pool, NULL), 0);
    labyrinth_pool_destroy(&pool);
}

/* The peak of pages out of the free lists never falls, ATOMIC calls included (found by review:
 * 400 pages held read 400, then 37 once they were freed). */
static void test_peak_never_falls(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    assert_int_equal(labyrinth_pool_init(&pool, NULL), 0);
    static void *v[400];
    for (int i = 0; i < 400; i++)
        assert_non_null(v[i] = labyrinth_alloc_page(&pool, LAB_GFP_ATOMIC));
    struct labyrinth_pool_stats st;
    assert_int_equal(labyrinth_pool_stats(&pool, &st), 0);
    size_t held = st.peak_used_pages;
    for (int i = 0; i < 400; i++)
        labyrinth_free_pages(&pool, v[i], 0);
    assert_int_equal(labyrinth_pool_stats(&pool, &st), 0);
    print_message("peak while 400 pages were held: %zu; after they were freed: %zu\n", held, st.peak_used_pages);
    assert_true(held >= 400);
    assert_true(st.peak_used_pages >= held);
    labyrinth_pool_destroy(&pool);
}

/* The counters over both zones: EXCLUSIVE pages come from a zone of their own, whose free pages
 * were counted as in use (found by review: one EXCLUSIVE page allocated and freed showed a peak
 * of 512 pages, and free_total left out the zone's 511 free ones). Here 3 pages at most are out
 * at once, and everything is free again after the frees. */
/* lab_dirty_count (pool_impl.h, which tests do not include) against a count bit by bit, over
 * ranges of every start and length in maps of every density: words all set or all clear take a
 * shortcut, the others an inline popcount (libgcc's call was a twentieth of `wl pagemix`'s
 * instructions). */
unsigned lab_dirty_count(lab_chunk_t *c, unsigned i, unsigned end);

static void test_dirty_count_any_range(void **state)
{
    (void)state;
    lab_chunk_t *c = aligned_alloc(64, lab_align_up(sizeof *c, 64)); /* its 64-byte alignment */
    assert_non_null(c);
    memset(c, 0, sizeof *c);
    uint64_t r = 0x243f6a8885a308d3ull;
    for (unsigned density = 0; density <= 8; density++) {
        for (unsigned w = 0; w < LAB_CHUNK_PAGES / 64; w++) {
            uint64_t v = 0;
            for (unsigned b = 0; b < 64; b++) {
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                v |= (uint64_t)((r >> 33) % 8 < density) << b;
            }
            c->dirty[w] = v;
        }
        for (unsigned t = 0; t < 3000; t++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            unsigned i = (unsigned)(r >> 33) % LAB_CHUNK_PAGES;
            unsigned end = i + (unsigned)(r >> 45) % (LAB_CHUNK_PAGES - i + 1);
            unsigned want = 0;
            for (unsigned k = i; k < end; k++)
                want += (unsigned)(c->dirty[k / 64] >> (k % 64)) & 1u;
            if (lab_dirty_count(c, i, end) != want)
                fail_msg("density %u/8, pages [%u, %u): %u counted, %u set", density, i, end,
                         lab_dirty_count(c, i, end), want);
        }
    }
    free(c);
}

static void test_stats_exclusive_zone(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    assert_int_equal(labyrinth_pool_init(&pool, NULL), 0);
    void *n = labyrinth_alloc_page(&pool, 0), *e = labyrinth_alloc_pages(&pool, 1, LAB_GFP_EXCLUSIVE);
    assert_non_null(n);
    assert_non_null(e);
    struct labyrinth_pool_stats st;
    assert_int_equal(labyrinth_pool_stats(&pool, &st), 0);
    print_message("1 + 2 pages out: mapped %zu, free %zu, peak %zu\n", st.mapped_pages, st.free_total,
                  st.peak_used_pages);
    assert_true(st.mapped_pages - st.free_total >= 3); /* (the rooms' pages count as out) */
    labyrinth_free_pages(&pool, e, 1);
    labyrinth_free_pages(&pool, n, 0);
    labyrinth_pool_trim(&pool); /* the room's page back on the lists */
    assert_int_equal(labyrinth_pool_stats(&pool, &st), 0);
    print_message("all freed: mapped %zu, free %zu, peak %zu\n", st.mapped_pages, st.free_total, st.peak_used_pages);
    assert_int_equal(st.free_total, st.mapped_pages);
    size_t listed = st.free_runs_pages;
    for (unsigned o = 0; o < LAB_NR_ORDERS; o++)
        listed += st.free_pages[o];
    assert_int_equal(listed, st.free_total);
    /* the room's batch is what was ever out beyond the three pages */
    assert_true(st.peak_used_pages < 64);
    labyrinth_pool_destroy(&pool);
}

static void test_bad_input(void **state)
{
    (void)state;
    errno = 0;
    assert_null(labyrinth_alloc_pages(labyrinth_default(), 10, 0));
    assert_int_equal(errno, EINVAL);
    static labyrinth_t never_initialised;
    errno = 0;
    assert_null(labyrinth_alloc_page(&never_initialised, LAB_GFP_ATOMIC));
    assert_int_equal(errno, EINVAL);
    assert_null(labyrinth_alloc_page(NULL, 0));
    assert_int_equal(errno, EINVAL);
    struct labyrinth_pool_stats st;
    assert_int_equal(labyrinth_pool_stats(&never_initialised, &st), -EINVAL);
    labyrinth_t bad;
    struct labyrinth_pool_opts o = {.reserve_pages = 100, .low_pages = 10};
    assert_int_equal(labyrinth_pool_init(&bad, &o), -EINVAL);
    /* a flag that is not one of LAB_POOL_* (found by review: accepted) */
    struct labyrinth_pool_opts f = {.flags = 0x80};
    assert_int_equal(labyrinth_pool_init(&bad, &f), -EINVAL);
}

/* ---- faults ---- */

static void test_injected_failures(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    struct labyrinth_pool_opts o = {.low_pages = 1, .high_pages = 1};
    assert_int_equal(labyrinth_pool_init(&pool, &o), 0);
    lab_os_inject_failures(1, 0); /* every mapping fails */
    void *p[2048];
    int n = 0, fails = 0;
    for (int i = 0; i < 2048; i++) {
        errno = 0;
        p[n] = labyrinth_alloc_pages(&pool, 3, 0);
        if (p[n])
            n++;
        else {
            assert_int_equal(errno, ENOMEM);
            fails++;
        }
    }
    assert_true(fails > 0);
    lab_os_inject_failures(0, 0);
    void *q = labyrinth_alloc_pages(&pool, 9, 0); /* usable again once maps succeed */
    assert_non_null(q);
    memset(q, 1, 2u << 20);
    labyrinth_free_pages(&pool, q, 9);
    for (int i = 0; i < n; i++)
        labyrinth_free_pages(&pool, p[i], 3);
    labyrinth_pool_destroy(&pool);
}

/* ---- purge ---- */

static void test_purge_returns_rss(void **state)
{
    (void)state;
#ifdef LAB_UNDER_TSAN
    skip();
#endif
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    assert_int_equal(labyrinth_pool_init(&pool, NULL), 0);
    enum { N = 64 }; /* 64 x 2 MiB = 128 MiB */
    void *p[N];
    size_t before = rss_pages();
    for (int i = 0; i < N; i++) {
        p[i] = labyrinth_alloc_pages(&pool, 9, 0);
        assert_non_null(p[i]);
        memset(p[i], 1, 2u << 20);
    }
    size_t full = rss_pages();
    assert_true(full - before >= N * 512 * 9 / 10);
    for (int i = 0; i < N; i++)
        labyrinth_free_pages(&pool, p[i], 9);
    size_t purged = labyrinth_pool_trim(&pool);
    size_t after = rss_pages();
    print_message("rss pages: before %zu, full %zu, after trim %zu (purged %zu)\n", before, full, after, purged);
#ifdef LAB_SHADOW_DIV
    before += (full - before) / LAB_SHADOW_DIV;
#endif
    assert_true(after < before + 1024);
    labyrinth_pool_destroy(&pool);
}

/* A user pool with this purge delay and 16 runs of 2 MiB from it, every page touched. */
static void pool_with_dirty_runs(labyrinth_t *pool, unsigned delay_ms, void *p[16])
{
    memset(pool, 0, sizeof *pool);
    struct labyrinth_pool_opts o = {.purge_delay_ms = delay_ms};
    assert_int_equal(labyrinth_pool_init(pool, &o), 0);
    for (int i = 0; i < 16; i++) {
        p[i] = labyrinth_alloc_pages(pool, 9, 0);
        assert_non_null(p[i]);
        memset(p[i], 1, 2u << 20);
    }
}

static void test_purge_after_delay(void **state)
{
    (void)state;
    labyrinth_t pool;
    void *p[16];
    pool_with_dirty_runs(&pool, 50, p);
    for (int i = 0; i < 16; i++)
        labyrinth_free_pages(&pool, p[i], 9);
    struct labyrinth_pool_stats st;
    labyrinth_pool_stats(&pool, &st);
    size_t purged0 = st.purged_pages;
    usleep(150 * 1000);
    /* the next DEFAULT slow-path call notices the idle runs */
    void *q = labyrinth_alloc_pages(&pool, 8, 0);
    labyrinth_free_pages(&pool, q, 8);
    labyrinth_pool_stats(&pool, &st);
    assert_true(st.purged_pages > purged0);
    labyrinth_pool_destroy(&pool);
}

/* Runs freed after the pool sat unused past its delay carry its stale clock as their stamp; the
 * purge must not take them for runs idle that long (they were purged at the next call, and
 * refaulted at the one after). They go once they have really idled. */
static void test_purge_not_after_gap(void **state)
{
    (void)state;
    labyrinth_t pool;
    void *p[16];
    pool_with_dirty_runs(&pool, 100, p);
    usleep(400 * 1000); /* the gap: no call into the pool */
    struct labyrinth_pool_stats st;
    labyrinth_pool_stats(&pool, &st);
    size_t purged0 = st.purged_pages;
    for (int i = 0; i < 16; i++)
        labyrinth_free_pages(&pool, p[i], 9);
    void *q = labyrinth_alloc_pages(&pool, 8, 0); /* a slow path: the clock moves, a purge may run */
    labyrinth_free_pages(&pool, q, 8);
    labyrinth_pool_stats(&pool, &st);
    print_message("purged right after the gap: %zu pages\n", st.purged_pages - purged0);
    assert_int_equal(st.purged_pages, purged0);
    usleep(300 * 1000);
    q = labyrinth_alloc_pages(&pool, 7, 0); /* an order the rooms have none of: a slow path */
    labyrinth_free_pages(&pool, q, 7);
    labyrinth_pool_stats(&pool, &st);
    print_message("purged after a real idle: %zu pages\n", st.purged_pages - purged0);
    assert_true(st.purged_pages >= purged0 + 8 * 512);
    labyrinth_pool_destroy(&pool);
}

/* The mapping of /proc/self/smaps that holds p: its VmFlags line into flags ("" if none found) and
 * its AnonHugePages (kB). */
static void vma_of(const void *p, char *flags, size_t len, long *anon_huge_kb)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false;
    flags[0] = 0;
    *anon_huge_kb = -1;
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char c;
        if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) {
            if (in)
                break;
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && !strncmp(line, "AnonHugePages:", 14)) {
            *anon_huge_kb = atol(line + 14);
        } else if (in && !strncmp(line, "VmFlags:", 8)) {
            snprintf(flags, len, "%s", line + 8);
        }
    }
    fclose(f);
    assert_true(flags[0] != 0);
}

static bool has_flag(const char *flags, const char *f)
{
    for (const char *s = flags; (s = strstr(s, f)); s += 2)
        if ((s == flags || s[-1] == ' ') && (s[2] == ' ' || s[2] == '\n' || !s[2]))
            return true;
    return false;
}

/* LAB_POOL_HUGE: chunks are advised MADV_HUGEPAGE from huge_after_pages mapped on, not before; a
 * purge in an advised chunk turns it to MADV_NOHUGEPAGE (and counts it); a pool without the flag
 * never advises. Whether the kernel then gives a huge page depends on its THP setting and free
 * memory, so that part is only reported. */
/* Whether the page holding a is resident. */
static bool page_resident(const void *a)
{
    unsigned char v = 0;
    void *pg = (void *)((uintptr_t)a & ~(uintptr_t)(LAB_PAGE_SIZE - 1));
    assert_int_equal(mincore(pg, LAB_PAGE_SIZE, &v), 0);
    return v & 1;
}

/* A chunk header is 64 KiB of metadata, of which a short-lived chunk uses the first pages: its
 * free run's tail descriptor (the header's last page of descriptors) is not written when the
 * run ends the chunk, and a header slot taken again after its chunk was unmapped is not zeroed
 * whole (its pages were purged when it was freed, so they read zero already). Either way the
 * far pages of the header stay out of memory. */
/* Freed page-sized blocks of 16 pages or more are looked at (one mincore of their last page,
 * pool.c: run_written_sample) ever less often while the answers agree, and soon often again
 * once they change. Looking at one free in 16 for good, the system call took a malloc and free
 * of 25 pages from 39 ns to 100-130 ns (bench malloc_free_runs/102400). Only blocks carved from
 * the store whose last page was not resident then are looked at: here each block is carved where
 * the last one was, so the written phases drop the page after each free, as a block carved over
 * fresh pages would find it. */
static void test_run_written_looks(void **state)
{
    (void)state;
    lab_pool_t *pool = lab_pool_default();
    assert_non_null(pool);
    enum { PAGES = 260, ROUNDS = 2048 }; /* past a run room's 256: carved from the store each time */
    unsigned long looks[4];
    for (int phase = 0; phase < 4; phase++) {
        /* 0, 1: the last page not resident (purged before each free); 2, 3: written */
        unsigned long before = lab_pool_run_looks();
        for (int i = 0; i < ROUNDS; i++) {
            lab_page_t *d;
            char *p = lab_pool_alloc_run(pool, PAGES, 0, &d);
            assert_non_null(p);
            char *last = p + (PAGES - 1) * LAB_PAGE_SIZE;
            if (phase < 2)
                assert_int_equal(madvise(last, LAB_PAGE_SIZE, MADV_DONTNEED), 0);
            else
                *(volatile char *)last = 1;
            lab_pool_free_run(pool, d);
            if (phase >= 2) /* a free page of the store, which no other thread takes here */
                assert_int_equal(madvise(last, LAB_PAGE_SIZE, MADV_DONTNEED), 0);
        }
        looks[phase] = lab_pool_run_looks() - before;
    }
    print_message("looks per %d frees: %lu unwritten, %lu more, %lu written, %lu more\n", ROUNDS, looks[0],
                  looks[1], looks[2], looks[3]);
    /* answers that agree: one look in 512 frees at the end (one in 16: 128) */
    assert_in_range(looks[1], 1, ROUNDS / 512 + 1);
    assert_in_range(looks[3], 1, ROUNDS / 512 + 1);
    /* the change: seen within 512 frees, then one in 16 until the score has crossed 0 (8 looks
     * up from -8) */
    assert_in_range(looks[2], 9, ROUNDS / 16);
}

/* A block's look sees that block's writes alone: a last page that something else wrote before the
 * block was carved (another block's first page, once blocks start anywhere) is given back to the
 * kernel when the block is handed out. Counting such pages, blocks that wrote only their first
 * page came to start anywhere and then found each other's first pages resident (`wl pagemix 2
 * 1000000`: peak RSS 90-96 MiB in 3 runs of 10, 15-19 MiB in the others). Here each block writes
 * its first page only, and after each free the last page is written behind the pool's back, as
 * another block's first page would be. */
static void test_run_look_own_writes(void **state)
{
    (void)state;
    lab_pool_t *pool = lab_pool_default();
    assert_non_null(pool);
    enum { PAGES = 260, ROUNDS = 2048 }; /* past a run room's 256: carved from the store each time */
    unsigned long before = lab_pool_run_looks();
    for (int i = 0; i < ROUNDS; i++) {
        lab_page_t *d;
        char *p = lab_pool_alloc_run(pool, PAGES, 0, &d);
        assert_non_null(p);
        *(volatile char *)p = 1;
        lab_pool_free_run(pool, d);
        *(volatile char *)(p + (PAGES - 1) * LAB_PAGE_SIZE) = 1; /* a free page of the store, used by no one */
    }
    unsigned long looks = lab_pool_run_looks() - before;
    int score = lab_pool_run_score(pool);
    print_message("%lu looks in %d frees of blocks that wrote their first page only: score %d\n", looks, ROUNDS,
                  score);
    assert_true(looks >= 4);
    assert_true(score < 0); /* found not written to their end */
}

/* A block grown or shrunk in place is not looked at: its new last page was not checked when the
 * block was carved (grown, it may be another block's written page; found by review). Each round
 * carves three blocks past a run room's size (the looks are armed one carve in 2^k: with three a
 * round, each kind is armed in turn): one only to leave free pages where the next is carved, one
 * grown into them (in place where they are still free: a block not grown is looked at as
 * carved), one shrunk. */
static void test_run_look_resized_not_looked(void **state)
{
    (void)state;
    lab_pool_t *pool = lab_pool_default();
    assert_non_null(pool);
    enum { PAGES = 260, MORE = 10, ROUNDS = 4096 };
    unsigned long plain = 0, resized = 0;
    int grown = 0;
    for (int i = 0; i < ROUNDS; i++) {
        lab_page_t *d;
        unsigned long l0 = lab_pool_run_looks();
        assert_non_null(lab_pool_alloc_run(pool, PAGES + MORE, 0, &d)); /* its pages back to the store */
        lab_pool_free_run(pool, d);
        unsigned long l1 = lab_pool_run_looks();
        assert_non_null(lab_pool_alloc_run(pool, PAGES, 0, &d));
        bool grew = lab_pool_grow_run(pool, d, PAGES + MORE); /* where the pages after it are free */
        lab_pool_free_run(pool, d);
        unsigned long l2 = lab_pool_run_looks();
        assert_non_null(lab_pool_alloc_run(pool, PAGES, 0, &d));
        lab_pool_shrink_run(pool, d, PAGES - MORE);
        lab_pool_free_run(pool, d);
        plain += (l1 - l0) + (grew ? 0 : l2 - l1); /* a block not grown is as carved */
        resized += (grew ? l2 - l1 : 0) + (lab_pool_run_looks() - l2);
        grown += grew;
    }
    print_message("looks: %lu at blocks as carved, %lu at blocks resized (%d grown, %d shrunk)\n", plain, resized,
                  grown, ROUNDS);
    assert_true(grown >= 1);
    assert_true(plain >= 1); /* looks are armed in this loop */
    assert_int_equal(resized, 0);
}

/* ---- a run room adopted from a thread that ended without its destructors ----
 * Such a thread (one that ends by a raw exit system call, or whose first call comes in the last
 * round of key destructors, as here) leaves its room set in use, and
 * the next thread that finds no spare set adopts it (pool_life.c), runs of its run room and all.
 * Those runs may be of another zone than the adopter's page-sized blocks (here the adopter has
 * moved to a run zone, as a thread pressed on its zone's lock does): every move of the room's
 * runs to a store must take their own zone's lock, not the adopter's (pool.c: run_room_zone).
 * Their zone's lock is held here while the adopter drains its room: nothing may reach that
 * zone's store until it is given back. Taking the adopter's zone's lock instead, the drain
 * stored the run there at once. */
#define AR_PAGES 20         /* the ended thread's run (not a power of two: a run room's) */
#define AR_OTHER_PAGES 100  /* the adopter's own block: not a fit for that run */
static lab_page_t *ar_run;        /* the ended thread's run, left in its run room */
static lab_page_t *ar_adopted;    /* the first run of the adopter's room after its first call */
static unsigned ar_zone;          /* the adopter's zone */
static int ar_drained;            /* atomic: the adopter's drain has returned */

/* Holds a room set (a page-sized block made and kept) until stage 9 (room_stage, above). */
static void *ar_holder(void *arg)
{
    lab_page_t *d;
    void *p = lab_pool_alloc_run(arg, AR_PAGES, 0, &d);
    room_stage_wait(9);
    if (p)
        lab_pool_free_run(arg, d);
    return NULL;
}

/* The ended thread's first page-sized block, made and freed (into its run room) in the last
 * round of key destructors: the set it takes then keeps its thread's id, and its own key's
 * destructor never runs, as if the thread had ended by a raw exit system call (which neither
 * sanitizer can follow). */
static pthread_key_t ar_key;

static void ar_destructor(void *value)
{
    uintptr_t round = (uintptr_t)value;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(ar_key, (void *)(round + 1));
        return;
    }
    lab_pool_t *pool = lab_pool_default();
    lab_page_t *d;
    if (lab_pool_alloc_run(pool, AR_PAGES, 0, &d) && d->h.zone == 0) {
        lab_pool_free_run(pool, d);
        ar_run = lab_pool_run_room_first();
    }
}

static int ar_ender_tid;

static void *ar_ender(void *arg)
{
    (void)arg;
    ar_ender_tid = (int)lab_os_gettid();
    pthread_setspecific(ar_key, (void *)1); /* no page-sized block of its own */
    return NULL;
}

static void *ar_adopter(void *arg)
{
    lab_pool_t *pool = arg;
    /* from the normal zone: always to a run zone */
    ar_zone = lab_pool_run_zone_move(pool, lab_pool_run_zone_left(pool));
    lab_page_t *d;
    void *p = lab_pool_alloc_run(pool, AR_OTHER_PAGES, 0, &d); /* its first call: a room set */
    ar_adopted = lab_pool_run_room_first();
    room_stage_set(1);
    room_stage_wait(2);
    lab_pool_room_drain(pool);
    __atomic_store_n(&ar_drained, 1, __ATOMIC_RELEASE);
    if (p)
        lab_pool_free_run(pool, d);
    return NULL;
}

static void test_adopted_run_room_zone(void **state)
{
    (void)state;
#ifdef LAB_UNDER_TSAN
    /* ThreadSanitizer ends a thread's own state in the last round: a call there stops it
     * (as in test_alloc's test_adopt_ended_heaps) */
    skip();
#endif
    lab_pool_t *pool = lab_pool_default();
    assert_non_null(pool);
    assert_int_equal(pthread_key_create(&ar_key, ar_destructor), 0);
    unsigned scan_min = lab_rooms_scan_min;
    /* the spare sets taken by holders, which keep no thread id (no adoption looks at them) */
    lab_rooms_scan_min = ~0u;
    enum { HOLDERS_MAX = 256 };
    static pthread_t holder[HOLDERS_MAX];
    int holders = 0;
    room_stage = 0;
    for (size_t spare; (spare = lab_pool_rooms_spare()) > 0 && holders < HOLDERS_MAX; holders++) {
        assert_int_equal(pthread_create(&holder[holders], NULL, ar_holder, pool), 0);
        for (int w = 0; w < 1000 && lab_pool_rooms_spare() == spare; w++) { /* its set taken */
            struct timespec ms1 = {0, 1000 * 1000};
            nanosleep(&ms1, NULL);
        }
    }
    assert_int_equal(lab_pool_rooms_spare(), 0);
    /* now every set keeps its thread's id, and a thread that finds no spare set adopts */
    lab_rooms_scan_min = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ar_ender, pool), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* pthread_join returns once the kernel has cleared the thread's id word, which comes before
     * the thread is gone for tgkill, the test adoption makes: until then a new thread made a set
     * of its own (the test failed in about one run in four, found by review) */
    for (int w = 0; w < 1000 && !lab_os_thread_ended(ar_ender_tid); w++) {
        struct timespec ms1 = {0, 1000 * 1000};
        nanosleep(&ms1, NULL);
    }
    assert_true(lab_os_thread_ended(ar_ender_tid));
    pthread_key_delete(ar_key);
    assert_non_null(ar_run);
    assert_int_equal(lab_pool_rooms_spare(), 0); /* its set not given back: left in use */
    ar_drained = 0;
    assert_int_equal(pthread_create(&t, NULL, ar_adopter, pool), 0);
    room_stage_wait(1);
    lab_rooms_scan_min = scan_min;
    /* the adopter, in a run zone, took the ended thread's set with its normal zone's run, and
     * its own call left that run alone (taking its own zone's lock for the run's, the call's
     * store work moved the run out of the room: a NULL here) */
    assert_true(ar_zone >= 2 && ar_zone != UINT_MAX);
    assert_ptr_equal(ar_adopted, ar_run);
    lab_lock_t *lock = lab_pool_zone_lock(pool, 0);
    lab_lock(lock);
    size_t before = lab_pool_zone_store_pages(pool, 0);
    room_stage_set(2);
    /* its drain waits for this lock (or, wrongly, is done at once) */
    for (int w = 0; w < 300 && !__atomic_load_n(&ar_drained, __ATOMIC_ACQUIRE); w++) {
        struct timespec ms1 = {0, 1000 * 1000};
        nanosleep(&ms1, NULL);
    }
    size_t during = lab_pool_zone_store_pages(pool, 0);
    int drained = __atomic_load_n(&ar_drained, __ATOMIC_ACQUIRE);
    lab_unlock(lock);
    assert_int_equal(pthread_join(t, NULL), 0);
    print_message("adopted run room: the normal zone's store %zu -> %zu pages under its lock held here (drain %s)\n",
                  before, during, drained ? "returned" : "waited");
    assert_int_equal(during, before);
    assert_false(drained);
    room_stage_set(9);
    for (int i = 0; i < holders; i++)
        assert_int_equal(pthread_join(holder[i], NULL), 0);
}

/* A thread that takes the run it just freed back out of its run room and frees it again leaves
 * the room's lists as they were: its room hits tell lab_rooms_take_stale that it is not idle, and
 * its room stays; once it makes no call, the next look takes it (found with `wl pagemix 2`: two
 * threads replacing blocks at full speed took each other's rooms before chunks, each take a
 * membarrier). */
#define SH_PAGES 30 /* not a power of two: a run room's */
struct lab_zone;
size_t lab_rooms_take_stale(lab_pool_t *pool, struct lab_zone *held); /* (pool_impl.h) */
static lab_page_t *sh_run, *sh_again, *sh_kept;

static void *sh_worker(void *arg)
{
    lab_pool_t *pool = arg;
    lab_page_t *d = NULL;
    if (lab_pool_alloc_run(pool, SH_PAGES, 0, &d))
        lab_pool_free_run(pool, d);
    sh_run = lab_pool_run_room_first();
    room_stage_set(1);
    room_stage_wait(2);
    d = NULL;
    if (lab_pool_alloc_run(pool, SH_PAGES, 0, &d)) {
        sh_again = d;
        lab_pool_free_run(pool, d);
    }
    room_stage_set(3);
    room_stage_wait(4);
    sh_kept = lab_pool_run_room_first();
    room_stage_set(5);
    room_stage_wait(6);
    return NULL;
}

static void test_stale_rooms_see_hits(void **state)
{
    (void)state;
#ifdef LAB_UNDER_TSAN
    skip(); /* its builds take rooms under a try-lock, but this test is about the looks */
#endif
    if (lab_os_membarrier() != 0)
        skip(); /* no membarrier here: no room is ever taken */
    lab_pool_t *pool = lab_pool_default();
    assert_non_null(pool);
    /* other threads' sets left by earlier tests: looked at twice, taken now if idle */
    lab_rooms_take_stale(pool, NULL);
    lab_rooms_take_stale(pool, NULL);
    room_stage = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sh_worker, pool), 0);
    room_stage_wait(1);
    assert_non_null(sh_run);
    size_t first = lab_rooms_take_stale(pool, NULL); /* the worker's room seen for the first time */
    room_stage_set(2);
    room_stage_wait(3);
    assert_ptr_equal(sh_again, sh_run); /* the same run out of the room and back */
    size_t second = lab_rooms_take_stale(pool, NULL);
    room_stage_set(4);
    room_stage_wait(5);
    size_t third = lab_rooms_take_stale(pool, NULL); /* no call since the last look */
    print_message("stale takes: %zu, %zu after a hit, %zu after none (the run %u pages)\n", first, second, third,
                  SH_PAGES);
    assert_int_equal(first, 0);
    assert_int_equal(second, 0);
    assert_ptr_equal(sh_kept, sh_run); /* its room kept through the second look */
    assert_true(third >= SH_PAGES);
    room_stage_set(6);
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* Every free the purge thread must see changes the count it compares before it sleeps for good,
 * in both ways of counting: in the freeing thread's room set (once a membarrier has worked: no
 * shared line written at every free, which two threads freeing page-sized blocks bounced, `wl
 * pagemix 2`) and in the one shared word (no membarrier; ThreadSanitizer's builds). */
void lab_bg_free_seen(void); /* (pool_impl.h) */

static void test_background_gen_counts_frees(void **state)
{
    (void)state;
    lab_pool_t *pool = lab_pool_default();
    assert_non_null(pool);
    lab_page_t *d = NULL;
    if (lab_pool_alloc_run(pool, 30, 0, &d)) /* this thread's room set made, if it had none */
        lab_pool_free_run(pool, d);
    for (int mb = 0; mb < 2; mb++) {
        lab_pool_background_set_mb(mb);
        uint64_t before = lab_pool_background_gen();
        lab_bg_free_seen();
        uint64_t after = lab_pool_background_gen();
        print_message("counted %s: %llu -> %llu\n", mb ? "in the set" : "in the shared word",
                      (unsigned long long)before, (unsigned long long)after);
        assert_true(after != before);
    }
    lab_pool_background_set_mb(false);
}

/* The thread's look at the pool's peak (a read of every zone's count, which the zones' threads
 * write at every call) comes after it has put a step's worth of pages more in use than it gave
 * back since its last look, not a step's worth of allocations: a thread that gives back as much as
 * it takes looks only once its net reaches the step (`wl pagemix 2` looked every third block). */
void lab_pool_tick_slow(lab_pool_t *pool, bool from_free, size_t pages); /* (pool_impl.h) */

static void test_peak_look_after_net_step(void **state)
{
    (void)state;
    lab_pool_t *pool = lab_pool_default();
    assert_non_null(pool);
    enum { ROUNDS = 200 };
    /* the step: a sixty-fourth of the peak, at least 1 MiB; each call three quarters of it */
    struct labyrinth_pool_stats st;
    lab_pool_counters(pool, &st);
    size_t step = st.peak_used_pages / 64 > 256 ? st.peak_used_pages / 64 : 256, pages = step * 3 / 4;
    lab_pool_tick_slow(pool, false, 0); /* the step and the clock as of now */
    unsigned long before = lab_pool_peak_looks();
    for (int i = 0; i < ROUNDS; i++) {
        lab_pool_tick_slow(pool, false, pages);
        lab_pool_tick_slow(pool, true, pages);
    }
    unsigned long balanced = lab_pool_peak_looks() - before;
    before = lab_pool_peak_looks();
    for (int i = 0; i < ROUNDS; i++)
        lab_pool_tick_slow(pool, false, pages);
    unsigned long growing = lab_pool_peak_looks() - before;
    print_message("peak looks (calls of %zu pages): %lu in %d balanced rounds, %lu in %d growing ones\n", pages,
                  balanced, ROUNDS, growing, ROUNDS);
    /* a look at each new millisecond of the clock too: a few at most in either loop */
    assert_true(balanced <= 10);
    assert_true(growing >= ROUNDS / 2 - 10); /* a look at least every second round */
}

/* A thread whose zone's store has no run for its block borrows one from another zone's store
 * before it takes other threads' rooms for idle. Before, two threads replacing page-sized blocks
 * took each other's rooms whenever one had made no call since the other's last look (`wl
 * pagemix 2`: thousands of takes a second in some runs, a membarrier each), the runs into their
 * own zone's store, to borrow them from there. Here a thread in a run zone takes blocks until its
 * zone's store is dry, while a thread in the normal zone idles with a run in its room. */
#define BR_PAGES 400 /* a run room keeps at most 256 */
static lab_page_t *br_room, *br_kept;
static unsigned br_zone, br_from;
static size_t br_blocks;

static void *br_idler(void *arg)
{
    lab_pool_t *pool = arg;
    lab_page_t *d = NULL;
    if (lab_pool_alloc_run(pool, SH_PAGES, 0, &d))
        lab_pool_free_run(pool, d); /* to its run room */
    br_room = lab_pool_run_room_first();
    room_stage_set(1);
    room_stage_wait(2);
    br_kept = lab_pool_run_room_first();
    room_stage_set(3);
    room_stage_wait(4);
    return NULL;
}

static void *br_taker(void *arg)
{
    lab_pool_t *pool = arg;
    br_zone = lab_pool_run_zone_move(pool, lab_pool_run_zone_left(pool));
    struct labyrinth_pool_stats st;
    lab_pool_counters(pool, &st);
    size_t limit = st.free_total / BR_PAGES + 64, n = 0;
    lab_page_t **desc = calloc(limit, sizeof *desc);
    if (!desc)
        return NULL;
    br_from = br_zone;
    for (; n < limit && br_from == br_zone; n++) {
        if (!lab_pool_alloc_run(pool, BR_PAGES, 0, &desc[n]))
            break;
        br_from = desc[n]->h.zone;
    }
    br_blocks = n;
    for (size_t i = 0; i < n; i++)
        if (desc[i])
            lab_pool_free_run(pool, desc[i]);
    free(desc);
    return NULL;
}

static void test_borrow_before_stale_rooms(void **state)
{
    (void)state;
#ifdef LAB_UNDER_TSAN
    skip(); /* its builds take rooms under a try-lock: this test is about which comes first */
#endif
    if (lab_os_membarrier() != 0)
        skip(); /* no membarrier here: no room is ever taken */
    lab_pool_t *pool = lab_pool_default();
    assert_non_null(pool);
    /* the background thread takes rooms idle a whole purge delay: on a loaded machine the test
     * can outlast one (its one failure, under the address sanitizer beside a CI run, found the
     * idler's room taken, perhaps that way); what is tested here is the taker's order alone */
    unsigned delay = lab_pool_default_delay();
    lab_pool_set_default_delay(~0u);
    lab_rooms_take_stale(pool, NULL); /* other threads' idle sets, left by earlier tests */
    lab_rooms_take_stale(pool, NULL);
    room_stage = 0;
    pthread_t idler, taker;
    assert_int_equal(pthread_create(&idler, NULL, br_idler, pool), 0);
    room_stage_wait(1);
    assert_non_null(br_room);
    lab_rooms_take_stale(pool, NULL); /* the idler's room seen once: the next look may take it */
    assert_int_equal(pthread_create(&taker, NULL, br_taker, pool), 0);
    assert_int_equal(pthread_join(taker, NULL), 0);
    room_stage_set(2);
    room_stage_wait(3);
    print_message("blocks of %u pages in zone %u: the %zu-th from zone %u; the idler's room %s\n", BR_PAGES, br_zone,
                  br_blocks, br_from, br_kept == br_room ? "kept" : "taken");
    room_stage_set(4);
    assert_int_equal(pthread_join(idler, NULL), 0);
    lab_pool_set_default_delay(delay);
    assert_true(br_zone >= 2 && br_zone != UINT_MAX);
    assert_int_not_equal(br_from, br_zone); /* borrowed, not a chunk of its own mapped */
    assert_ptr_equal(br_kept, br_room);
}

static void test_chunk_header_far_pages_untouched(void **state)
{
    (void)state;
    lab_chunk_t *seen[2];
    for (int round = 0; round < 2; round++) {
        labyrinth_t pool;
        memset(&pool, 0, sizeof pool);
        assert_int_equal(labyrinth_pool_init(&pool, NULL), 0);
        void *p = labyrinth_alloc_pages(&pool, 0, 0);
        assert_non_null(p);
        lab_chunk_t *c = lab_pagemap_lookup((uintptr_t)p);
        assert_ptr_equal(c->base, (uintptr_t)p & ~(uintptr_t)(LAB_CHUNK_SIZE - 1));
        seen[round] = c;
        const char *slot = (const char *)c;
        assert_true(page_resident(slot));
        /* the last run's tail descriptor, and the slot's last page */
        assert_false(page_resident(&c->page[LAB_CHUNK_PAGES - 1]));
        assert_false(page_resident(slot + LAB_META_SLOT - 1));
        labyrinth_free_pages(&pool, p, 0);
        labyrinth_pool_destroy(&pool); /* unmaps the chunk, frees its header slot */
    }
    /* the second round took the slot the first gave back (the reuse path was tested) */
    print_message("header slots: %p, then %p\n", (void *)seen[0], (void *)seen[1]);
    assert_ptr_equal(seen[0], seen[1]);
}

/* A run grows in place into the store's pages after it when that takes the pool below its
 * reserve: the pool maps a chunk first, as any DEFAULT call short of pages does, and keeps its
 * reserve. Refused, the block moved instead: realloc copied it whole (bench micro
 * realloc_grow/1048576: a block of 832 KiB with 32 free pages after it, the default pool at its
 * reserve, copied at every round). */
static void test_grow_run_at_reserve(void **state)
{
    (void)state;
    labyrinth_t pool;
    memset(&pool, 0, sizeof pool);
    struct labyrinth_pool_opts o = {.reserve_pages = 64, .low_pages = 64, .high_pages = 64};
    assert_int_equal(labyrinth_pool_init(&pool, &o), 0);
    lab_pool_t *p = lab_pool_of(&pool);
    struct labyrinth_pool_stats st;
    labyrinth_pool_stats(&pool, &st);
    assert_true(st.free_total > 200);
    size_t first = st.free_total - 112;
    lab_page_t *a, *d;
    char *pa = lab_pool_alloc_run(p, first, 0, &a), *pd = lab_pool_alloc_run(p, 8, 0, &d);
    assert_non_null(pa);
    /* the layout the test needs: d right after a, the store's last 104 pages right after d */
    assert_ptr_equal(pd, pa + (first << LAB_PAGE_SHIFT));
    labyrinth_pool_stats(&pool, &st);
    assert_int_equal(st.free_total, 104);
    /* 41 pages: one more than the pool has above its reserve */
    assert_true(lab_pool_grow_run(p, d, 8 + 41));
    assert_int_equal(d->h.npages, 8 + 41);
    labyrinth_pool_stats(&pool, &st);
    print_message("free after the growth: %zu pages (reserve %zu)\n", st.free_total, st.reserve_level);
    assert_true(st.free_total >= 64);
    assert_int_equal(st.reserve_level, 64);
    lab_pool_free_run_store(p, d);
    lab_pool_free_run_store(p, a);
    labyrinth_pool_destroy(&pool);
}

static void test_huge_chunks(void **state)
{
    (void)state;
    char fl[512];
    long ahp;
    struct labyrinth_pool_stats st;
    labyrinth_t plain, huge, later;

    struct labyrinth_pool_opts o = {.purge_delay_ms = ~0u};
    assert_int_equal(labyrinth_pool_init(&plain, &o), 0);
    void *p = labyrinth_alloc_pages(&plain, 8, 0);
    assert_non_null(p);
    fill(p, (size_t)256 << 12, 1);
    vma_of(p, fl, sizeof fl, &ahp);
    assert_false(has_flag(fl, "hg"));
    labyrinth_pool_stats(&plain, &st);
    assert_int_equal(st.thp_chunks, 0);
    labyrinth_free_pages(&plain, p, 8);
    labyrinth_pool_destroy(&plain);

    /* a kernel built without THP refuses the advice (EINVAL): nothing more to check there */
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
        skip();
    o.flags = LAB_POOL_HUGE;
    assert_int_equal(labyrinth_pool_init(&huge, &o), 0);
    void *a = labyrinth_alloc_pages(&huge, 8, 0), *b = labyrinth_alloc_pages(&huge, 8, 0);
    assert_non_null(a);
    assert_non_null(b);
    fill(a, (size_t)256 << 12, 2);
    vma_of(a, fl, sizeof fl, &ahp);
    print_message("advised chunk: VmFlags%s AnonHugePages %ld kB\n", fl, ahp);
    assert_true(has_flag(fl, "hg"));
    labyrinth_pool_stats(&huge, &st);
    assert_true(st.thp_chunks >= 1);
    assert_int_equal(st.thp_demoted, 0);
    /* b (touched, then freed) is purged by the trim: a's chunk goes back to small pages */
    fill(b, (size_t)256 << 12, 3);
    labyrinth_free_pages(&huge, b, 8);
    labyrinth_pool_trim(&huge);
    labyrinth_pool_stats(&huge, &st);
    assert_true(st.thp_demoted >= 1);
    vma_of(a, fl, sizeof fl, &ahp);
    print_message("after the purge: VmFlags%s AnonHugePages %ld kB\n", fl, ahp);
    assert_false(has_flag(fl, "hg"));
    assert_true(has_flag(fl, "nh"));
    assert_int_equal(ahp, 0);
    assert_true(check(a, (size_t)256 << 12, 2)); /* the live half kept its contents */
    labyrinth_free_pages(&huge, a, 8);
    labyrinth_pool_destroy(&huge);

    /* from 4 MiB mapped: the first two chunks stay small, every later one is advised */
    o.huge_after_pages = 1024;
    assert_int_equal(labyrinth_pool_init(&later, &o), 0);
    void *r[8];
    for (int i = 0; i < 8; i++) {
        assert_non_null(r[i] = labyrinth_alloc_pages(&later, 9, 0));
        fill(r[i], 4096, 4);
    }
    labyrinth_pool_stats(&later, &st);
    size_t chunks = st.mapped_pages / 512;
    print_message("%zu chunks mapped, %zu advised\n", chunks, st.thp_chunks);
    assert_true(chunks >= 8);
    assert_int_equal(st.thp_chunks, chunks - 2);
    vma_of(r[0], fl, sizeof fl, &ahp);
    assert_false(has_flag(fl, "hg"));
    vma_of(r[7], fl, sizeof fl, &ahp);
    assert_true(has_flag(fl, "hg"));
    for (int i = 0; i < 8; i++)
        labyrinth_free_pages(&later, r[i], 9);
    labyrinth_pool_destroy(&later);
}

static void test_user_pool_rx(void **state)
{
    (void)state;
    static labyrinth_t rx_pool;
    struct labyrinth_pool_opts o = {.reserve_pages = 256};
    assert_int_equal(labyrinth_pool_init(&rx_pool, &o), 0);
    struct labyrinth_pool_stats st;
    labyrinth_pool_stats(&rx_pool, &st);
    assert_true(st.free_total >= 256); /* the reserve is there up front */
    uint64_t before = os_calls();
    void *pk[256];
    for (int i = 0; i < 256; i++)
        assert_non_null(pk[i] = labyrinth_alloc_page(&rx_pool, LAB_GFP_ATOMIC));
    for (int i = 0; i < 256; i++)
        labyrinth_free_pages(&rx_pool, pk[i], 0);
    assert_int_equal(os_calls(), before);
    labyrinth_pool_stats(&rx_pool, &st);
    assert_true(st.hits_room + st.hits_shared + st.hits_slow >= 256);
    labyrinth_pool_destroy(&rx_pool);
    assert_null(labyrinth_alloc_page(&rx_pool, 0)); /* destroyed: uninitialised again */
    assert_int_equal(errno, EINVAL);
}

/* ---- a receiver whose pages a sender frees (packets): batches both ways ---- */

#define XF_PAGES 4096 /* in flight per round: four times a shared list's cap, so the store takes some */
#define XF_ROUNDS 12
static labyrinth_t xfer_pool;
static void *xfer_pk[XF_PAGES];

static void *xfer_sender(void *arg)
{
    (void)arg;
    for (int i = 0; i < XF_PAGES; i++)
        labyrinth_free_pages(&xfer_pool, xfer_pk[i], 0);
    return NULL;
}

/* The sender's room spills chains of runs onto the shared list, which the receiver's room takes
 * whole (one CAS, not one per run); what overflowed into the store comes back a room's batch per
 * hold of the lock, not a run per allocation (both found with `wl packets`: three allocations in
 * four took the zone lock). Run early: eight live pools at most have rooms (LAB_ROOM_POOLS), and
 * later tests leave theirs alive. */
static void test_sender_receiver_batches(void **state)
{
    (void)state;
    assert_int_equal(labyrinth_pool_init(&xfer_pool, NULL), 0);
    struct labyrinth_pool_stats st0, st1;
    unsigned long chains = 0;
    for (int r = 0; r < XF_ROUNDS; r++) {
        if (r == 1) { /* the first round maps the pool's pages */
            labyrinth_pool_stats(&xfer_pool, &st0);
            chains = lab_pool_chains_taken();
        }
        for (int i = 0; i < XF_PAGES; i++) {
            void *p = labyrinth_alloc_page(&xfer_pool, LAB_GFP_ATOMIC);
            if (!p)
                p = labyrinth_alloc_page(&xfer_pool, 0);
            assert_non_null(p);
            ((volatile char *)p)[0] = (char)i;
            xfer_pk[i] = p;
        }
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, xfer_sender, NULL), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
    }
    labyrinth_pool_stats(&xfer_pool, &st1);
    uint64_t allocs = (uint64_t)(XF_ROUNDS - 1) * XF_PAGES, slow = st1.hits_slow - st0.hits_slow;
    unsigned long taken = lab_pool_chains_taken() - chains;
    print_message("%llu allocations: %llu through the store's lock, %lu pops took two runs or more\n",
                  (unsigned long long)allocs, (unsigned long long)slow, taken);
    assert_true(slow * 16 <= allocs);
    assert_true(taken >= XF_ROUNDS - 1);
    labyrinth_pool_destroy(&xfer_pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_os_reserve_aligned),
        cmocka_unit_test(test_sender_receiver_batches),
        cmocka_unit_test(test_alignment_every_order),
        cmocka_unit_test(test_reuse_and_zero),
        cmocka_unit_test(test_coalesce_to_order9),
        cmocka_unit_test(test_watermark_refill),
        cmocka_unit_test(test_reserve_default_vs_atomic),
        cmocka_unit_test(test_reserve_stays_shared),
        cmocka_unit_test(test_default_refill_keeps_reserve),
        cmocka_unit_test(test_atomic_no_syscall_counter),
        cmocka_unit_test(test_atomic_only_thread_room),
        cmocka_unit_test(test_atomic_no_syscall_seccomp),
        cmocka_unit_test(test_atomic_drains_own_room),
        cmocka_unit_test(test_threads_cross_free),
        cmocka_unit_test(test_trim_takes_other_rooms),
        cmocka_unit_test(test_trim_races_room_owners),
        cmocka_unit_test(test_trim_without_membarrier),
        cmocka_unit_test(test_exclusive_needs_wipeonfork),
        cmocka_unit_test(test_atomic_unlock_no_futex),
        cmocka_unit_test(test_idle_rooms_of_destroyed_pool),
        cmocka_unit_test(test_signal_handler_atomic),
        cmocka_unit_test(test_exclusive_wiped_in_child),
        cmocka_unit_test(test_exclusive_stays_exclusive),
        cmocka_unit_test(test_misuse_aborts),
        cmocka_unit_test(test_double_init_busy),
        cmocka_unit_test(test_peak_never_falls),
        cmocka_unit_test(test_stats_exclusive_zone),
        cmocka_unit_test(test_dirty_count_any_range),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_injected_failures),
        cmocka_unit_test(test_purge_returns_rss),
        cmocka_unit_test(test_purge_after_delay),
        cmocka_unit_test(test_purge_not_after_gap),
        cmocka_unit_test(test_user_pool_rx),
        cmocka_unit_test(test_grow_run_at_reserve),
        cmocka_unit_test(test_huge_chunks),
        cmocka_unit_test(test_chunk_header_far_pages_untouched),
        cmocka_unit_test(test_run_written_looks),
        cmocka_unit_test(test_run_look_own_writes),
        cmocka_unit_test(test_run_look_resized_not_looked),
        cmocka_unit_test(test_adopted_run_room_zone),
        cmocka_unit_test(test_stale_rooms_see_hits),
        cmocka_unit_test(test_borrow_before_stale_rooms),
        cmocka_unit_test(test_background_gen_counts_frees),
        cmocka_unit_test(test_peak_look_after_net_step),
        cmocka_unit_test(test_pages_held_ways_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
