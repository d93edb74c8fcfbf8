// gbench_shim.cc — adapts gbench.h's C interface to Google Benchmark; the one C++ file of the
// benchmarks. Bodies (micro.c) are C and own their hot loops; every benchmark is timed in real
// time (wall clock), since cross-thread cases spend their time waiting on each other, which CPU
// time would hide.
#include <benchmark/benchmark.h>

#include <string>

#include "gbench.h"

struct gb_state {
    benchmark::State *s;
};

struct gb_bench {
    benchmark::internal::Benchmark *b;
};

extern "C" {

int gb_keep_running_batch(gb_state_t *st, int64_t batch)
{
    return st->s->KeepRunningBatch(static_cast<benchmark::IterationCount>(batch)) ? 1 : 0;
}
int64_t gb_range(gb_state_t *st, int which) { return st->s->range(static_cast<std::size_t>(which)); }
int gb_thread_index(gb_state_t *st) { return st->s->thread_index(); }
int gb_thread_count(gb_state_t *st) { return st->s->threads(); }
void gb_pause(gb_state_t *st) { st->s->PauseTiming(); }
void gb_resume(gb_state_t *st) { st->s->ResumeTiming(); }

void gb_counter(gb_state_t *st, const char *name, double value, int flags)
{
    int f = benchmark::Counter::kDefaults;
    if (flags & GB_COUNTER_RATE)
        f |= benchmark::Counter::kIsRate;
    if (flags & GB_COUNTER_AVG_THREADS)
        f |= benchmark::Counter::kAvgThreads;
    if (flags & GB_COUNTER_PER_ITER)
        f |= benchmark::Counter::kAvgIterations;
    st->s->counters[name] = benchmark::Counter(value, static_cast<benchmark::Counter::Flags>(f));
}
void gb_set_items_processed(gb_state_t *st, int64_t items) { st->s->SetItemsProcessed(items); }
void gb_set_bytes_processed(gb_state_t *st, int64_t bytes) { st->s->SetBytesProcessed(bytes); }
void gb_set_label(gb_state_t *st, const char *label) { st->s->SetLabel(label); }
// Any benchmark that ends in an error makes gb_main's exit status 1, so a smoke test notices.
static bool gb_any_error = false;
void gb_skip(gb_state_t *st, const char *why)
{
    gb_any_error = true;
    st->s->SkipWithError(why);
}

gb_bench_t *gb_register(const char *name, gb_body_t body)
{
    auto *b = benchmark::RegisterBenchmark(name, [body](benchmark::State &s) {
        gb_state st{&s};
        body(&st);
    });
    b->UseRealTime();
    return new gb_bench{b}; // lives as long as the registration: the whole run
}
void gb_arg(gb_bench_t *b, int64_t x) { b->b->Arg(x); }
void gb_args2(gb_bench_t *b, int64_t x, int64_t y) { b->b->Args({x, y}); }
void gb_bench_threads(gb_bench_t *b, int threads) { b->b->Threads(threads); }
void gb_arg_name(gb_bench_t *b, const char *name) { b->b->ArgName(name); }

void gb_context(const char *key, const char *value) { benchmark::AddCustomContext(key, value); }

int gb_main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 2;
    std::size_t ran = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return ran == 0 || gb_any_error ? 1 : 0; // a filter that matches nothing is a broken test
}

} // extern "C"
