/* wl.h — what the whole-program workloads (bench/workloads) share: the clock, a PRNG, blocks that
 * carry a check of their own size and address, and the one result line. Each workload lives in
 * its own file as `int wl_<name>(int threads, long n)` (0 = its result checked out); wl_main.c
 * picks one by name. Nothing here is timed except what the workloads time themselves. */
#ifndef LAB_WL_H
#define LAB_WL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double wl_now(void);

/* Exits 1 with a message: the workloads' own checks failed, which compare.sh records as a failed
 * run (a wrong result is never a figure). */
__attribute__((noreturn, format(printf, 1, 2))) void wl_die(const char *fmt, ...);

/* xorshift64*: cheap enough that the generator never shows up beside the allocator. */
static inline uint64_t wl_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}
static inline uint64_t wl_seed(uint64_t k) { return (k + 1) * 0x9e3779b97f4a7c15ull | 1; }

/* A checked block: its first 8 bytes hold its size, its second word its address (inverted), and
 * its last byte, beyond those 16, a tag made from both; written at allocation and verified at
 * free. A block moved, shrunk, overlapped or handed out twice fails the check. Sizes are at least
 * WL_MIN_BLOCK. */
#define WL_MIN_BLOCK 16
static inline uint8_t wl_tag(const void *p, size_t n)
{
    uint64_t x = ((uintptr_t)p ^ (n * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return (uint8_t)(x >> 56);
}
static inline void *wl_block_mark(void *q, size_t n)
{
    uint64_t *p = q;
    p[0] = n;
    p[1] = ~(uint64_t)(uintptr_t)q;
    if (n > 16)
        ((uint8_t *)q)[n - 1] = wl_tag(q, n);
    return q;
}
static inline void *wl_block_new(size_t n)
{
    void *q = malloc(n);
    if (!q)
        wl_die("malloc(%zu) returned NULL", n);
    return wl_block_mark(q, n);
}
/* Verifies and returns the block's size. */
static inline size_t wl_block_check(const void *q)
{
    const uint64_t *p = q;
    size_t n = (size_t)p[0];
    if (n < WL_MIN_BLOCK || n > ((size_t)1 << 40) || p[1] != ~(uint64_t)(uintptr_t)q ||
        (n > 16 && ((const uint8_t *)q)[n - 1] != wl_tag(q, n)))
        wl_die("block %p failed its check (size word %zu)", q, n);
    return n;
}
/* Checks the block and spoils its address word before the free: a block handed out twice then
 * fails the check of whichever holder frees it second (the marks of its two holders were alike,
 * and such a block passed: found by review). */
static inline void wl_block_free(void *q)
{
    wl_block_check(q);
    ((volatile uint64_t *)q)[1] = 0;
    free(q);
}

/* Nothing after this starts before everything before it has finished (lfence; elsewhere a full
 * fence, which orders memory but may let later loads start early). */
static inline void wl_serialize(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_lfence();
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Starts `threads` threads on fn(arg_base + i * arg_size) and joins them all. */
void wl_run_threads(int threads, void *(*fn)(void *), void *arg_base, size_t arg_size);

/* A worker's argument for wl_run_tasks: its thread's number and the N it was asked for. */
struct wl_task {
    int id;
    long n;
};
/* The whole of a workload whose threads each do n steps of fn (given a struct wl_task) with
 * nothing to sum up: runs them, times them and prints the report line under `name`. */
int wl_run_tasks(const char *name, int threads, long n, void *(*fn)(void *));

/* The one line compare.sh reads: `wl=<name> threads=<t> n=<n> elapsed_s=<s> <extra>`. */
void wl_report(const char *name, int threads, long n, double elapsed_s, const char *extra);

int wl_larson(int threads, long n);
int wl_xmalloc(int threads, long n);
int wl_scratch(int threads, long n);
int wl_churn(int threads, long n);
int wl_mstress(int threads, long n);
int wl_large(int threads, long n);
int wl_bigbuf(int threads, long n);
int wl_pagemix(int threads, long n);
int wl_maze(int threads, long n);
int wl_packets(int threads, long n);
int wl_strbuild(int threads, long n);
int wl_ring(int threads, long n);

#endif
