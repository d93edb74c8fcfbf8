// gbench_shim.cc — adapts gbench.h's C interface to Google Benchmark. The one C++ file of the
// benchmarks; the bodies (micro.c) are C and own their hot loops.
#include <benchmark/benchmark.h>

#include <string>

extern "C" {
#include "gbench.h"
}

struct gb_state {
    benchmark::State *s;
    int64_t left = 0; // iterations of the current batch not yet accounted for
};

extern "C" int gb_keep_running_batch(gb_state_t *st, int64_t batch)
{
    return st->s->KeepRunningBatch(batch) ? 1 : 0;
}
extern "C" int64_t gb_range(gb_state_t *st, int which) { return st->s->range(which); }
extern "C" int gb_thread_index(gb_state_t *st) { return st->s->thread_index(); }
extern "C" int gb_threads(gb_state_t *st) { return st->s->threads(); }
extern "C" void gb_pause(gb_state_t *st) { st->s->PauseTiming(); }
extern "C" void gb_resume(gb_state_t *st) { st->s->ResumeTiming(); }
extern "C" void gb_counter(gb_state_t *st, const char *name, double value, int per_second)
{
    st->s->counters[name] = benchmark::Counter(value, per_second ? benchmark::Counter::kIsRate
                                                                 : benchmark::Counter::kDefaults);
}
extern "C" void gb_set_label(gb_state_t *st, const char *label) { st->s->SetLabel(label); }
extern "C" void gb_skip(gb_state_t *st, const char *why) { st->s->SkipWithError(why); }

extern "C" void gb_register(const char *name, gb_body_t body, const int64_t *args0, const int64_t *args1,
                            int threads)
{
    auto *b = benchmark::RegisterBenchmark(name, [body](benchmark::State &s) {
        gb_state st{&s};
        body(&st);
    });
    if (args0 && args1) {
        for (const int64_t *a = args0; *a >= 0; a++)
            for (const int64_t *c = args1; *c >= 0; c++)
                b->Args({*a, *c});
    } else if (args0) {
        for (const int64_t *a = args0; *a >= 0; a++)
            b->Arg(*a);
    }
    if (threads > 1)
        b->Threads(threads);
    b->UseRealTime();
}

extern "C" int gb_main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
