/* gbench.h — a C interface to Google Benchmark (which has only a C++ API), so the benchmark
 * bodies stay C. A body owns its hot loop: it asks for a batch size, runs that many iterations,
 * and reports them, so the shim's per-call cost stays out of the figures.
 *
 *     static void bm_malloc(gb_state_t *st) {
 *         size_t n = (size_t)gb_range(st, 0);
 *         while (gb_keep_running_batch(st, 1000))
 *             for (int i = 0; i < 1000; i++) gb_do_not_optimize(malloc(n)), ...;
 *     }
 *     GB_REGISTER(bm_malloc)->...;   (see gb_register below)
 */
#ifndef LAB_GBENCH_H
#define LAB_GBENCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gb_state gb_state_t;
typedef void (*gb_body_t)(gb_state_t *);

/* Runs `batch` more iterations if the benchmark wants more; returns 0 when it is done. */
int gb_keep_running_batch(gb_state_t *st, int64_t batch);
int64_t gb_range(gb_state_t *st, int which);
int gb_thread_index(gb_state_t *st);
int gb_threads(gb_state_t *st);
void gb_pause(gb_state_t *st);
void gb_resume(gb_state_t *st);
void gb_counter(gb_state_t *st, const char *name, double value, int per_second);
void gb_set_label(gb_state_t *st, const char *label);
void gb_skip(gb_state_t *st, const char *why);

/* Register a body under `name` with up to two argument lists (ranges; -1 ends a list) and a
 * thread count (0: one thread). */
void gb_register(const char *name, gb_body_t body, const int64_t *args0, const int64_t *args1, int threads);

/* Keep the compiler from discarding a value. */
static inline void gb_do_not_optimize(const void *p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }

/* Parses Google Benchmark's command line and runs every registered benchmark. */
int gb_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
