/* start_cost.c — what an allocator adds to every process it is preloaded into: a command started
 * RUNS times under each preload in turn (interleaved run by run, so that a change of the host's
 * speed falls on all of them alike), with the median wall time of its fork, exec and wait, and
 * its median minor page faults (wait4's ru_minflt: counts, repeatable where times are not; on
 * these VMs a fault costs about 10 us, bench: fault_cost). The first column set is always the
 * command without a preload (glibc's malloc); the others are reported against it. The command's
 * standard output goes to /dev/null. With no command, this program runs itself as the child: one
 * malloc and free of 16 bytes, then exit (the allocator's load and its first call, the least a
 * program that allocates pays; the child fails when its malloc is not the preloaded library's,
 * so that a preload the dynamic loader ignored is not measured as an allocator). Test suites and
 * build scripts start hundreds of short processes: this is what each one pays.
 * Usage: start_cost [-n RUNS] [-p NAME=PRELOAD]... [-- CMD ARGS...]   (RUNS: 200 by default) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SETS 8

extern char **environ;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* "NAME=VALUE", allocated. */
static char *env_pair(const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 2;
    char *e = malloc(len);
    snprintf(e, len, "%s=%s", name, value);
    return e;
}

/* The child's environment: the parent's without LD_PRELOAD, then LD_PRELOAD=preload if any
 * (and for this program's own child, the object its malloc must come from). */
static char **child_env(const char *preload, int self)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 && strncmp(environ[i], "START_COST_FROM=", 16) != 0)
            env[k++] = environ[i];
    if (*preload) {
        env[k++] = env_pair("LD_PRELOAD", preload);
        if (self) {
            const char *base = strrchr(preload, '/');
            env[k++] = env_pair("START_COST_FROM", base ? base + 1 : preload);
        }
    }
    env[k] = NULL;
    return env;
}

/* The child: one malloc and free; exit 3 when malloc is not from START_COST_FROM (if set). */
static int child(void)
{
    void *volatile p = malloc(16);
    free(p);
    const char *want = getenv("START_COST_FROM");
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (want && (!m || !dladdr(m, &info) || !info.dli_fname || !strstr(info.dli_fname, want)))
        return 3;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--child") == 0)
        return child();
    int runs = 200, nsets = 1, i = 1;
    const char *name[MAX_SETS] = {"glibc"}, *preload[MAX_SETS] = {""};
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
            if (nsets == MAX_SETS) {
                fprintf(stderr, "start_cost: at most %d preloads\n", MAX_SETS - 1);
                return 2;
            }
            char *eq = strchr(argv[++i], '=');
            if (!eq) {
                fprintf(stderr, "start_cost: -p takes NAME=PRELOAD\n");
                return 2;
            }
            *eq = 0;
            name[nsets] = argv[i];
            preload[nsets++] = eq + 1;
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else {
            fprintf(stderr, "usage: start_cost [-n RUNS] [-p NAME=PRELOAD]... [-- CMD ARGS...]\n");
            return 2;
        }
    }
    if (runs < 1)
        runs = 1;
    char *self[] = {"/proc/self/exe", "--child", NULL};
    char **cmd = i < argc ? argv + i : self;
    char self_path[4096];
    ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (cmd == self && sl > 0) {
        self_path[sl] = 0;
        self[0] = self_path; /* the child's /proc/self/exe would be its own */
    }
    char **env[MAX_SETS];
    double *us[MAX_SETS], *faults[MAX_SETS];
    for (int s = 0; s < nsets; s++) {
        env[s] = child_env(preload[s], cmd == self);
        us[s] = calloc((size_t)runs, sizeof(double));
        faults[s] = calloc((size_t)runs, sizeof(double));
    }
    /* the command's output is not what is measured (nor, on a terminal, what is read) */
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    for (int r = 0; r < runs; r++)
        for (int s = 0; s < nsets; s++) {
            pid_t pid;
            double t0 = now_us();
            if (posix_spawnp(&pid, cmd[0], &quiet, NULL, cmd, env[s]) != 0) {
                perror("start_cost: posix_spawnp");
                return 1;
            }
            int st;
            struct rusage ru;
            if (wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "start_cost: %s under %s did not exit 0\n", cmd[0], name[s]);
                return 1;
            }
            us[s][r] = now_us() - t0;
            faults[s][r] = (double)ru.ru_minflt;
        }
    double base_us = 0, base_faults = 0;
    printf("%-12s %12s %12s %10s %10s   (%d runs each, interleaved; medians)\n", "preload", "start_us", "added_us",
           "faults", "added", runs);
    for (int s = 0; s < nsets; s++) {
        double t = median(us[s], runs), f = median(faults[s], runs);
        if (s == 0)
            base_us = t, base_faults = f;
        printf("%-12s %12.0f %12.0f %10.0f %10.0f\n", name[s], t, t - base_us, f, f - base_faults);
    }
    return 0;
}
