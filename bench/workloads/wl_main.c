/* wl_main.c — the `wl` driver: `wl WORKLOAD THREADS N` runs one workload (each in its own file,
 * modelled on a classic allocator stress pattern; the code is written here) and prints its one
 * result line. The same binary runs under every allocator (LD_PRELOAD), or linked to jemalloc
 * directly as `wl-jemalloc` (LAB_BENCH_DIRECT_JEMALLOC) to cross-check the preload. */
#include "wl.h"

#include <dlfcn.h>
#include <stdarg.h>

double wl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void wl_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("wl: check failed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void wl_run_threads(int threads, void *(*fn)(void *), void *arg_base, size_t arg_size)
{
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    if (!t)
        wl_die("calloc for %d threads", threads);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, fn, (char *)arg_base + (size_t)i * arg_size))
            wl_die("pthread_create");
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    free(t);
}

int wl_run_tasks(const char *name, int threads, long n, void *(*fn)(void *))
{
    struct wl_task *args = calloc((size_t)threads, sizeof *args);
    if (!args)
        wl_die("calloc for %d tasks", threads);
    for (int i = 0; i < threads; i++)
        args[i].id = i, args[i].n = n;
    double t0 = wl_now();
    wl_run_threads(threads, fn, args, sizeof *args);
    double t = wl_now() - t0;
    free(args);
    wl_report(name, threads, n, t, NULL);
    return 0;
}

/* The library malloc resolves to: the runner checks it, so a preload that silently did not take
 * (or a direct link that lost to libc) is a failed run rather than a wrong figure. */
static const char *wl_malloc_from(void)
{
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (!m || !dladdr(m, &info) || !info.dli_fname)
        return "?";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

void wl_report(const char *name, int threads, long n, double elapsed_s, const char *extra)
{
    /* the smoke tests set this: a Labyrinth test that silently ran on glibc would prove nothing */
    const char *want = getenv("WL_EXPECT_MALLOC");
    if (want && *want && !strstr(wl_malloc_from(), want))
        wl_die("malloc comes from %s, not %s", wl_malloc_from(), want);
    printf("wl=%s threads=%d n=%ld elapsed_s=%.6f malloc_from=%s%s%s\n", name, threads, n, elapsed_s,
           wl_malloc_from(), extra ? " " : "", extra ? extra : "");
    fflush(stdout);
}

static const struct {
    const char *name;
    int (*fn)(int, long);
    const char *what;
} workloads[] = {
    {"larson", wl_larson, "server simulation: threads replace random slots of a shared table"},
    {"xmalloc", wl_xmalloc, "producer/consumer: half the threads only allocate, half only free"},
    {"scratch", wl_scratch, "false sharing: small blocks written hard by different threads"},
    {"churn", wl_churn, "heavy-tailed size churn with realloc, one table per thread"},
    {"mstress", wl_mstress, "thread churn: short-lived threads hand blocks to each other"},
    {"large", wl_large, "64 KiB .. 32 MiB blocks and realloc growth"},
    {"bigbuf", wl_bigbuf, "0.25 .. 4.25 MiB buffers written in full, four live, one replaced a step"},
    {"pagemix", wl_pagemix, "33 KiB .. 1 MiB blocks of random lengths, 64 live a thread, one replaced a step"},
    {"maze", wl_maze, "maze router (STAMP Labyrinth): Lee's BFS routing on a 3-D grid"},
    {"packets", wl_packets, "packet buffers: pairs of rx (a page per packet) and tx (frees) threads"},
    {"strbuild", wl_strbuild, "string builders that live on realloc"},
    {"ring", wl_ring, "ring: each thread frees batches the previous thread allocated"},
};

int main(int argc, char **argv)
{
    int nw = (int)(sizeof workloads / sizeof workloads[0]);
    if (argc == 4) {
        int threads = atoi(argv[2]);
        long n = atol(argv[3]);
        for (int i = 0; i < nw; i++)
            if (!strcmp(argv[1], workloads[i].name)) {
                if (threads < 1 || n < 1) {
                    fprintf(stderr, "wl: THREADS and N must be positive\n");
                    return 2;
                }
                return workloads[i].fn(threads, n);
            }
    }
    fprintf(stderr, "usage: wl WORKLOAD THREADS N\n");
    for (int i = 0; i < nw; i++)
        fprintf(stderr, "  %-9s %s\n", workloads[i].name, workloads[i].what);
    return 2;
}
