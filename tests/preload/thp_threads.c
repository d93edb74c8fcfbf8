/* thp_threads.c — huge pages only where chunks are used densely. Run with LABYRINTH_THP=1 (huge
 * pages from 1 MiB mapped). First 400 threads, alive at once, each allocate a few small blocks:
 * their runs take far more address space than they touch, and while they live no mapping of the
 * process may be advised MADV_HUGEPAGE ("hg" in /proc/self/smaps): a huge page is resident whole,
 * and advised chunks made a few thousand such threads hold several times the memory they use.
 * Then, the threads gone, the main thread allocates 96 MiB of page-sized blocks and touches
 * them: those chunks are dense, and (where the kernel has transparent huge pages) some mapping
 * must be advised again. Labyrinth's promise only: skipped under another allocator. */
#define _GNU_SOURCE
#include <pthread.h>

#include "lab_check.h"

#define THREADS 400
#define BLOCKS 24

static pthread_barrier_t bar;

/* Bytes of the process's mappings advised MADV_HUGEPAGE. */
static size_t advised_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    CHECK(f != NULL, "cannot read /proc/self/smaps");
    if (!f)
        return 0;
    char line[512];
    size_t size_kib = 0, total = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long kib;
        if (sscanf(line, "Size: %lu kB", &kib) == 1)
            size_kib = kib;
        else if (!strncmp(line, "VmFlags:", 8) && strstr(line, " hg"))
            total += size_kib << 10;
    }
    fclose(f);
    return total;
}

static void *sparse_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    void *b[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        b[i] = malloc(16 + (i * 40 + id) % 1000);
        CHECK(b[i] != NULL, "malloc in thread %u", id);
        if (b[i])
            memset(b[i], (int)id, 16);
    }
    for (int i = 0; i < BLOCKS; i += 2)
        free(b[i]);
    pthread_barrier_wait(&bar); /* all alive: main looks at the mappings */
    pthread_barrier_wait(&bar);
    for (int i = 1; i < BLOCKS; i += 2)
        free(b[i]);
    return NULL;
}

static bool thp_available(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return false;
    char line[128] = "";
    bool ok = fgets(line, sizeof line, f) && !strstr(line, "[never]");
    fclose(f);
    return ok;
}

int main(void)
{
    if (!lab_expect_labyrinth()) {
        SAY("thp_threads: a Labyrinth policy (LAB_EXPECT_LABYRINTH=1 to run); skipped");
        return LAB_SKIP;
    }
    SAY("%d threads alive at once, %d small blocks each, LABYRINTH_THP=%s", THREADS, BLOCKS,
        getenv("LABYRINTH_THP") ? getenv("LABYRINTH_THP") : "(unset)");
    pthread_barrier_init(&bar, NULL, THREADS + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 << 10);
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], &attr, sparse_thread, (void *)(uintptr_t)i) != 0) {
            SAY("thp_threads: cannot start %u threads; skipped", THREADS);
            return LAB_SKIP;
        }
    pthread_barrier_wait(&bar);
    size_t during = advised_bytes();
    SAY("while they live: %zu KiB of mappings advised MADV_HUGEPAGE", during >> 10);
    CHECK(during == 0, "chunks advised for huge pages while %d threads each use a few pages", THREADS);
    pthread_barrier_wait(&bar);
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    enum { BIG = 256 << 10, NBIG = 384 }; /* 96 MiB, past what the threads left mapped */
    static char *big[NBIG];
    for (int i = 0; i < NBIG; i++) {
        big[i] = malloc(BIG);
        CHECK(big[i] != NULL, "malloc(%d) #%d", BIG, i);
        if (big[i])
            for (size_t k = 0; k < BIG; k += 4096)
                big[i][k] = (char)k;
    }
    size_t after = advised_bytes();
    SAY("one thread, 96 MiB of page-sized blocks touched: %zu KiB advised", after >> 10);
    if (thp_available())
        CHECK(after > 0, "no chunk advised for huge pages with one thread using 96 MiB densely");
    else
        SAY("(no transparent huge pages on this kernel: the advice is not checked)");
    for (int i = 0; i < NBIG; i++)
        free(big[i]);
    return lab_finish("thp_threads");
}
