/* gbench.h — a small C interface to Google Benchmark (which has only a C++ API), so benchmark
 * bodies stay C; bench/micro/gbench_shim.cc is the one C++ file behind it. A body owns its hot
 * loop: it asks for a batch of iterations, runs them itself, and asks again, so the shim's
 * per-call cost (a C++ call, and Debian's libbenchmark may be a debug build) is paid once per
 * batch, not per operation:
 *
 *     static void bm_malloc(gb_state_t *st) {
 *         size_t n = (size_t)gb_range(st, 0);
 *         while (gb_keep_running_batch(st, 1000))
 *             for (int i = 0; i < 1000; i++) { void *p = malloc(n); gb_do_not_optimize(p); free(p); }
 *     }
 *     gb_bench_t *b = gb_register("malloc", bm_malloc);
 *     gb_arg(b, 16); gb_arg(b, 64);            // or gb_args2(b, x, y) for two ranges
 *     gb_bench_threads(b, 2);                  // each call adds a thread count
 */
#ifndef LAB_GBENCH_H
#define LAB_GBENCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gb_state gb_state_t; /* one running benchmark thread */
typedef struct gb_bench gb_bench_t; /* one registered benchmark */
typedef void (*gb_body_t)(gb_state_t *);

/* ---- inside a body ---- */
/* 1 while the benchmark wants `batch` more iterations (the body then runs exactly that many);
 * 0 when it is done. Every thread of a multi-threaded benchmark runs the same count. */
int gb_keep_running_batch(gb_state_t *st, int64_t batch);
int64_t gb_range(gb_state_t *st, int which);
int gb_thread_index(gb_state_t *st);
int gb_thread_count(gb_state_t *st);
/* Stop and restart the clock around work that is not to be measured (costly: a syscall each). */
void gb_pause(gb_state_t *st);
void gb_resume(gb_state_t *st);
enum {
    GB_COUNTER_PLAIN = 0,
    GB_COUNTER_RATE = 1,        /* divided by the elapsed time */
    GB_COUNTER_AVG_THREADS = 2, /* divided by the thread count */
    GB_COUNTER_PER_ITER = 4,    /* divided by the iteration count */
};
void gb_counter(gb_state_t *st, const char *name, double value, int flags);
void gb_set_items_processed(gb_state_t *st, int64_t items);
void gb_set_bytes_processed(gb_state_t *st, int64_t bytes);
void gb_set_label(gb_state_t *st, const char *label);
/* Ends the benchmark with an error shown in place of its figures; the body must then return. */
void gb_skip(gb_state_t *st, const char *why);

/* Keep the compiler from discarding a value or from caching memory across the call. */
static inline void gb_do_not_optimize(const void *p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }
static inline void gb_do_not_optimize_u64(uint64_t v) { __asm__ __volatile__("" : : "r"(v) : "memory"); }
static inline void gb_clobber_memory(void) { __asm__ __volatile__("" : : : "memory"); }

/* ---- registration (before gb_main) ---- */
gb_bench_t *gb_register(const char *name, gb_body_t body);
void gb_arg(gb_bench_t *b, int64_t x);
void gb_args2(gb_bench_t *b, int64_t x, int64_t y);
void gb_bench_threads(gb_bench_t *b, int threads);
void gb_arg_name(gb_bench_t *b, const char *name);

/* A key/value pair written into the JSON output's "context" (e.g. which allocator ran). */
void gb_context(const char *key, const char *value);

/* Parses Google Benchmark's command line (--benchmark_filter, --benchmark_format=json,
 * --benchmark_min_time, ...) and runs the registered benchmarks; returns the exit status: 1 when
 * nothing matched the filter or a body called gb_skip, else 0. */
int gb_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
