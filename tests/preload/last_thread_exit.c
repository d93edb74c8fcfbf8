/* last_thread_exit.c — a process whose last thread ends by pthread_exit() or by returning from
 * its start routine ends, with status 0 and its atexit handlers run, as glibc makes it: the
 * preload's purge thread is a thread too, and with it alive such a process never ended (found by
 * review: `pthread_exit` at the end of main, a thread that forks and returns in the child; no
 * signal reached it, the purge thread blocks them all). Each case runs in a child process with
 * LABYRINTH_BACKGROUND_PURGE=1 (the purge thread starts after 1 MiB) and must end within 10 s:
 *   main      main allocates, then pthread_exit()
 *   worker    main exits first; the last thread is a worker that allocates, sleeps, returns
 *   heapless  main exits first; the last thread never allocated (the purge thread's look again)
 *   fork      a thread forks; in the child that thread, the only one, allocates and returns
 * Under the preload each case first checks that the purge thread runs (else it tests nothing). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#include "lab_check.h"

static void say_done(void)
{
    static const char msg[] = "atexit ran\n";
    if (write(1, msg, sizeof msg - 1) < 0)
        _exit(5);
}

/* A few MiB allocated, written and freed: the purge thread starts (LABYRINTH_BACKGROUND_PURGE=1). */
static void churn(void)
{
    for (int i = 0; i < 8; i++) {
        char *p = malloc(1 << 20);
        if (!p)
            _exit(6);
        memset(p, i, 1 << 20);
        free(p);
    }
}

/* Under the preload: the purge thread is one of this process's threads. */
static void check_purge_thread(void)
{
    if (!lab_expect_labyrinth())
        return;
    int found = 0;
    for (int tries = 0; tries < 200 && !found; tries++) {
        DIR *d = opendir("/proc/self/task");
        if (!d)
            return;
        for (struct dirent *e; (e = readdir(d));) {
            char path[64], comm[32] = "";
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
            int fd = open(path, O_RDONLY);
            if (fd < 0)
                continue;
            ssize_t n = read(fd, comm, sizeof comm - 1);
            close(fd);
            found |= n > 0 && strncmp(comm, "labyrinth-purge", 15) == 0;
        }
        closedir(d);
        if (!found)
            usleep(5000);
    }
    if (!found) {
        fprintf(stderr, "FAIL: no purge thread running\n");
        _exit(7);
    }
}

static void *worker(void *arg)
{
    usleep(200000);
    if (arg)
        churn();
    return NULL;
}

static void *forker(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid < 0)
        _exit(8);
    if (pid == 0) {
        /* the child's only thread: allocates (its purge thread starts), then returns */
        churn();
        check_purge_thread();
        atexit(say_done);
        return NULL;
    }
    int st = 0;
    for (int ms = 0; ms < 10000; ms += 10) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 9);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    fprintf(stderr, "FAIL: the fork child whose only thread returned did not end in 10 s\n");
    _exit(10);
}

static int run_case(const char *mode)
{
    churn();
    check_purge_thread();
    pthread_t t;
    if (strcmp(mode, "fork") == 0) {
        if (pthread_create(&t, NULL, forker, NULL) != 0)
            return 11;
        pthread_join(t, NULL); /* forker exits the process with the child's status */
        return 12;
    }
    atexit(say_done);
    if (strcmp(mode, "worker") == 0 || strcmp(mode, "heapless") == 0)
        if (pthread_create(&t, NULL, worker, strcmp(mode, "worker") == 0 ? (void *)1 : NULL) != 0)
            return 13;
    pthread_exit(NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return run_case(argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);
    setenv("LABYRINTH_BACKGROUND_PURGE", "1", 1);
    static const char *modes[] = {"main", "worker", "heapless", "fork"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        int fds[2];
        CHECK(pipe(fds) == 0, "pipe");
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
            execl("/proc/self/exe", argv[0], modes[i], (char *)NULL);
            _exit(127);
        }
        close(fds[1]);
        int st = 0, ended = 0;
        for (int ms = 0; ms < 10000 && !ended; ms += 5) {
            ended = waitpid(pid, &st, WNOHANG) == pid;
            if (!ended)
                usleep(5000);
        }
        if (!ended) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        char out[256] = "";
        ssize_t n = read(fds[0], out, sizeof out - 1);
        close(fds[0]);
        out[n > 0 ? n : 0] = 0;
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("last_thread_exit: %s: %s after %.2f s, status %d, output \"%.*s\"\n", modes[i],
               ended ? "ended" : "killed", s, WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st),
               (int)strcspn(out, "\n"), out);
        CHECK(ended, "%s: the process did not end within 10 s of its last thread", modes[i]);
        CHECK(ended && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %#x, not exit 0", modes[i], st);
        CHECK(strstr(out, "atexit ran") != NULL, "%s: the atexit handler did not run", modes[i]);
    }
    return lab_finish("last_thread_exit");
}
