/* runtime_load.c — the library loaded at run time, not preloaded: a program dlopens it
 * (argv[1]), allocates through its malloc in a thread and in main (enough for the purge thread
 * to start), hands it a block of glibc's (foreign: ignored), dlcloses it, and only then lets the
 * thread exit and waits past the purge delay. The library's thread-exit key destructor, its
 * purge thread and its atfork handlers outlive the handle, so dlclose must not unmap it (found
 * by review: a crash at thread exit, or in the purge thread, without -z nodelete). Not run under
 * the preload, or the dlopen would only find the preloaded copy. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>

#include "lab_check.h"

static void *(*lab_malloc)(size_t);
static void (*lab_free)(void *);
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void *worker(void *arg)
{
    (void)arg;
    void *p = lab_malloc(100); /* the thread gets a heap and the key a value: its destructor runs */
    CHECK(p != NULL, "malloc in the thread");
    memset(p, 1, 100);
    lab_free(p);
    pthread_mutex_lock(&mu);
    stage = 1;
    pthread_cond_broadcast(&cv);
    while (stage < 2)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || getenv("LD_PRELOAD")) {
        fprintf(stderr, "usage: runtime_load LIBRARY (not under LD_PRELOAD)\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    lab_malloc = (void *(*)(size_t))dlsym(h, "malloc");
    lab_free = (void (*)(void *))dlsym(h, "free");
    CHECK(lab_malloc && lab_free && lab_malloc != malloc, "dlsym found the library's own malloc");
    if (!lab_malloc || !lab_free)
        return 1;
    SAY("runtime_load: blocks through the dlopened library, in main and in a thread");
    /* 36 MiB freed: the pool has pages to purge and the purge thread runs */
    enum { N = 40, SZ = 900 << 10 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = lab_malloc(SZ);
        CHECK(v[i] != NULL, "malloc(%d)", SZ);
        if (v[i])
            memset(v[i], 1, SZ);
    }
    for (int i = 0; i < N; i++)
        lab_free(v[i]);
    void *g = malloc(64); /* glibc's: the library must ignore it */
    lab_free(g);
    free(g);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_mutex_lock(&mu);
    while (stage < 1)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    SAY("runtime_load: dlclose, then the thread exits and the purge delay passes");
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    pthread_mutex_lock(&mu);
    stage = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
    usleep(300 * 1000);
    /* and a fork: the atfork handlers registered by the library run */
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork after dlclose: child status %#x", st);
    if (lab_failures)
        return 1;
    SAY("runtime_load: survived");
    return 0;
}
