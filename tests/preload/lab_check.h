/* lab_check.h — the few lines of check harness shared by the preload and stress tests.
 * Deliberately not a test framework: a framework would allocate through the allocator under test.
 * Failures go to stderr (unbuffered, so a later crash cannot swallow them) and make the program
 * exit non-zero; checks that only hold for Labyrinth are gated on LAB_EXPECT_LABYRINTH=1. */
#ifndef LAB_CHECK_H
#define LAB_CHECK_H

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ctest's SKIP_RETURN_CODE: the check does not apply to the allocator under test. */
#define LAB_SKIP 77

/* Atomic because the stress tests check from many threads at once. */
static atomic_int lab_failures;

/* Past this many, further failures are counted but not printed: one bad invariant in a sweep
 * would otherwise bury the first, most useful, message. */
#define LAB_MAX_REPORTS 40

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            if (atomic_fetch_add(&lab_failures, 1) < LAB_MAX_REPORTS) {                       \
                fprintf(stderr, "FAIL %s:%d: (%s) ", __FILE__, __LINE__, #cond);             \
                fprintf(stderr, __VA_ARGS__);                                                 \
                fputc('\n', stderr);                                                          \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* Say what is being checked, so a ctest log reads as a list of contracts. Flushed at once because
 * fork() in some tests would otherwise duplicate the buffer. */
#define SAY(...)                                                                              \
    do {                                                                                      \
        printf(__VA_ARGS__);                                                                  \
        fputc('\n', stdout);                                                                  \
        fflush(stdout);                                                                       \
    } while (0)

/* Pages of [p, p + n) not resident (never touched, or given back), by mincore; SIZE_MAX when the
 * range is past 1024 pages or mincore fails. One thread at a time (a static vector). */
static inline size_t lab_pages_absent(const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095, e = ((uintptr_t)p + n + 4095) & ~(uintptr_t)4095;
    static unsigned char vec[1024];
    size_t pages = (e - a) / 4096, absent = 0;
    if (pages > sizeof vec || mincore((void *)a, e - a, vec) != 0)
        return SIZE_MAX;
    for (size_t i = 0; i < pages; i++)
        absent += !(vec[i] & 1);
    return absent;
}

static inline int lab_expect_labyrinth(void)
{
    const char *e = getenv("LAB_EXPECT_LABYRINTH");
    return e != NULL && strcmp(e, "1") == 0;
}

/* The object that provides malloc ("" when dladdr cannot tell). */
static inline const char *lab_malloc_provider(void)
{
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m == NULL || dladdr(m, &info) == 0 || info.dli_fname == NULL)
        return "";
    return info.dli_fname;
}

/* glibc and Labyrinth promise the glibc details checked here (errno on every failure, 16-byte
 * alignment even for tiny blocks); other allocators the suite may be run against (jemalloc leaves
 * errno alone on some failures and aligns 8-byte blocks to 8) only get a note, so that a run
 * against them still shows the checks that matter. */
static inline int lab_strict(void)
{
    const char *p = lab_malloc_provider();
    return lab_expect_labyrinth() || strstr(p, "/libc.so") != NULL || strstr(p, "labyrinth");
}

static inline int lab_errno_is(int got, int want)
{
    if (got == want)
        return 1;
    if (lab_strict())
        return 0;
    printf("  note: errno %d, wanted %d; accepted for %s\n", got, want, lab_malloc_provider());
    return 1;
}

/* A name is only exercised when it comes from the same object as malloc: memory from glibc's
 * pvalloc handed to jemalloc's free is a crash of the test's own making. Labyrinth must provide
 * every name, so under LAB_EXPECT_LABYRINTH a foreign or missing name is itself a failure. */
static inline void *lab_provided(const char *name)
{
    Dl_info a, b;
    void *m = dlsym(RTLD_DEFAULT, "malloc"), *f = dlsym(RTLD_DEFAULT, name);
    int same = f != NULL && m != NULL && dladdr(m, &a) != 0 && dladdr(f, &b) != 0 &&
               a.dli_fname != NULL && b.dli_fname != NULL && strcmp(a.dli_fname, b.dli_fname) == 0;
    if (same)
        return f;
    if (lab_expect_labyrinth()) {
        atomic_fetch_add(&lab_failures, 1);
        fprintf(stderr, "FAIL: %s is %s, not provided by the allocator\n", name,
                f ? "foreign" : "missing");
    } else {
        printf("  %s: %s, not from malloc's object; skipped\n", name, f ? "foreign" : "missing");
    }
    return NULL;
}

/* What malloc_stats() writes to stderr, caught in a temporary file, into text (at most size - 1
 * bytes, NUL-terminated); the bytes read, or -1 when the file could not be made. */
static inline long lab_malloc_stats_text(char *text, size_t size)
{
    char path[] = "/tmp/lab-stats-text.XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    text[0] = 0;
    if (fd < 0 || saved < 0) {
        if (fd >= 0)
            close(fd), unlink(path);
        if (saved >= 0)
            close(saved);
        return -1;
    }
    fflush(stderr);
    dup2(fd, 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    ssize_t got = pread(fd, text, size - 1, 0);
    text[got > 0 ? got : 0] = 0;
    close(fd);
    unlink(path);
    return got;
}

/* The number after " key " in a summary line of malloc_stats() (-1: none). */
static inline long lab_stats_field(const char *text, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, " %s ", key);
    const char *p = strstr(text, k);
    return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

static inline int lab_finish(const char *name)
{
    int n = atomic_load(&lab_failures);
    if (n != 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, n);
        return 1;
    }
    SAY("%s: all checks passed", name);
    return 0;
}

/* malloc(n), or test `name` ends there (failed). */
static inline unsigned char *lab_take(size_t n, const char *name)
{
    unsigned char *p = malloc(n);
    CHECK(p != NULL, "malloc(%zu)", n);
    if (!p)
        exit(lab_finish(name));
    return p;
}

/* [p, p + n) set to v and read back every 4093rd byte (`what` names it in a failure). */
static inline void lab_fill_check(unsigned char *p, size_t n, int v, const char *what)
{
    memset(p, v, n);
    for (size_t k = 0; k < n; k += 4093)
        CHECK(p[k] == v, "%s: byte %zu", what, k);
}

/* The number in `field` of /proc/self/task/<tid>/status (0 if absent). */
static inline long lab_task_status(const char *tid, const char *field)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
    FILE *f = fopen(path, "r");
    long v = 0, sum = 0;
    size_t len = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':' && sscanf(line + len + 1, "%ld", &v) == 1)
            sum += v;
    if (f)
        fclose(f);
    return sum;
}

/* Over the threads of this process whose name (/proc/self/task/N/comm) is `name`: their number
 * (field NULL) or the sum of a numeric field of their status; -1 when /proc cannot be read. Uses
 * opendir and stdio: call it outside the measured part of a test. */
static inline long lab_tasks_named(const char *name, const char *field)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[64], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool match = fgets(comm, sizeof comm, f) && (comm[strcspn(comm, "\n")] = 0, !strcmp(comm, name));
        fclose(f);
        if (match)
            n += field ? lab_task_status(e->d_name, field) : 1;
    }
    closedir(d);
    return n;
}

/* Threads named `name`, e.g. Labyrinth's "labyrinth-purge" (-1: no /proc). */
static inline int lab_threads_named(const char *name) { return (int)lab_tasks_named(name, NULL); }

/* Voluntary context switches (sleeps ended) of the threads named `name` so far, summed. */
static inline long lab_thread_switches(const char *name)
{
    return lab_tasks_named(name, "voluntary_ctxt_switches");
}

/* lab_threads_named, polled until it gives `want` or `ms` milliseconds pass: a thread names
 * itself once it runs, which on a loaded machine may be a while after pthread_create returned. */
static inline int lab_wait_threads_named(const char *name, int want, int ms)
{
    int n = lab_threads_named(name);
    for (int t = 0; n != want && t < ms; t++) {
        usleep(1000);
        n = lab_threads_named(name);
    }
    return n;
}

/* A pattern that depends on where a block lives and how big it is: a block that overlaps another
 * live block, or is handed out twice, shows up as a mismatch when it is checked before free. */
static inline uint64_t lab_canary_seed(const void *p, size_t size)
{
    uint64_t x = (uint64_t)(uintptr_t)p ^ ((uint64_t)size * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 29);
}

static inline void lab_canary_fill(void *p, size_t size)
{
    uint64_t seed = lab_canary_seed(p, size);
    unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t v = seed + i;
        memcpy(b + i, &v, 8);
    }
    for (; i < size; i++)
        b[i] = (unsigned char)(seed >> (i & 7));
}

/* Returns the offset of the first bad byte, or SIZE_MAX when the block is intact. */
static inline size_t lab_canary_check(const void *p, size_t size)
{
    uint64_t seed = lab_canary_seed(p, size);
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t v = seed + i, got;
        memcpy(&got, b + i, 8);
        if (got != v)
            return i;
    }
    for (; i < size; i++)
        if (b[i] != (unsigned char)(seed >> (i & 7)))
            return i;
    return SIZE_MAX;
}

/* xorshift64*: deterministic per-thread randomness that never calls into libc. */
static inline uint64_t lab_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* The stress tests' trimmer threads: malloc_trim(0) without pause while *busy (the threads still
 * at work) is positive; returns how many calls it made. */
static inline long lab_trim_while(atomic_int *busy)
{
    long n = 0;
    while (atomic_load(busy) > 0)
        malloc_trim(0), n++;
    return n;
}

/* Resident set size in KiB from /proc/self/statm, read with raw read(2) (stdio would allocate
 * through the allocator being measured); -1 if it cannot be read. */
static inline long lab_rss_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *second = strchr(buf, ' ');
    return second ? strtol(second + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

#endif
