/* measure.c — runs one command and reports, from the kernel, what it cost: wall time, peak RSS
 * (wait4's ru_maxrss), CPU times, page faults, context switches, as one line on the file named
 * by -o. A C wrapper rather than python's os.wait4 or /usr/bin/time because at exec the kernel
 * carries the forking process's RSS high-water mark into the child's ru_maxrss: this process is
 * about 1 MiB, the same under every allocator, since the preload (-p) is set only in the child.
 * Usage: measure -o FILE [-p PRELOAD] -- CMD ARGS...   (exit status: the command's) */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *out = NULL, *preload = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "-p") && i + 1 < argc)
            preload = argv[++i];
        else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else
            break;
    }
    if (!out || i >= argc) {
        fprintf(stderr, "usage: measure -o FILE [-p PRELOAD] -- CMD ARGS...\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("measure: fork");
        return 2;
    }
    if (pid == 0) {
        if (preload && *preload)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[i], argv + i);
        fprintf(stderr, "measure: exec %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) {
            perror("measure: wait4");
            return 2;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(out, "w");
    if (!f) {
        perror("measure: open output");
        return 2;
    }
    fprintf(f,
            "exit=%d signal=%d wall_s=%.6f maxrss_kib=%ld utime_s=%.6f stime_s=%.6f minflt=%ld majflt=%ld "
            "nvcsw=%ld nivcsw=%ld\n",
            code, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, ru.ru_maxrss,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_minflt, ru.ru_majflt, ru.ru_nvcsw,
            ru.ru_nivcsw);
    fclose(f);
    return code;
}
