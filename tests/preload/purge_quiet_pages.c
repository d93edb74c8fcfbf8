/* purge_quiet_pages.c — a program whose threads make only page-sized blocks (no small block, so
 * no heap) and then idle: the purge thread must settle to sleeping for good. It looked every
 * second, for as long as the program lived, whether it was the last thread left (it took "no
 * heap left" for "no thread left": found by review). The main thread keeps clear of stdio until
 * the end (its buffer would be a small block); it frees half of 64 MiB of 64 KiB blocks, waits
 * for the purge to be done, and counts the purge thread's wake-ups (voluntary context switches)
 * over 3 s. Labyrinth only (its purge thread). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>

#include "lab_check.h"

/* the voluntary context switches of the thread named labyrinth-purge, or -1; no allocation
 * (getdents64 on /proc/self/task, not opendir) */
static long purge_switches(void)
{
    int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    static char ents[8192], buf[4096];
    long found = -1;
    for (;;) {
        long n = syscall(SYS_getdents64, dir, ents, sizeof ents);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(ents + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9')
                continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/self/task/%s/status", d->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t k = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (k <= 0)
                continue;
            buf[k] = 0;
            const char *v = strstr(buf, "\nvoluntary_ctxt_switches:");
            if (strncmp(buf, "Name:\tlabyrinth-purg", 20) == 0 && v)
                found = strtol(v + 25, NULL, 10);
        }
    }
    close(dir);
    return found;
}

static void sleep_s(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (long)s) * 1e9)};
    nanosleep(&t, NULL);
}

int main(void)
{
    if (!lab_expect_labyrinth()) {
        SAY("purge_quiet_pages: Labyrinth's purge thread; skipped");
        return LAB_SKIP;
    }
    enum { N = 1024 };
    static void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(64 << 10);
        CHECK(b[i] != NULL, "malloc(64 KiB)");
        if (b[i])
            memset(b[i], 1, 64 << 10);
    }
    for (int i = 0; i < N; i += 2)
        free(b[i]);
    long before = -1;
    for (int t = 0; t < 50 && before < 0; t++) { /* the purge thread starts at the frees */
        sleep_s(0.1);
        before = purge_switches();
    }
    sleep_s(2.0); /* the purge delay (200 ms here) and the purge itself */
    before = purge_switches();
    sleep_s(3.0);
    long after = purge_switches();
    SAY("page-sized blocks only, then idle: the purge thread woke %ld times in 3 s", after - before);
    CHECK(before >= 0 && after >= 0, "no labyrinth-purge thread");
    CHECK(after - before <= 1, "the purge thread woke %ld times in 3 s of idling", after - before);
    return lab_finish("purge_quiet_pages");
}
