/* atrace.c — libatrace.so: records a program's allocation calls, to be replayed under each
 * allocator by areplay (scripts/trace_replay.sh runs both). Preloaded over glibc, whose
 * __libc_* entry points it calls, so the program runs on glibc's heap while its calls are
 * written down, one line each, in the order they returned:
 *   m RET SIZE | c RET BYTES | r RET OLD SIZE | a RET ALIGN SIZE | f PTR
 * (addresses in hex; a failed call has RET 0). A lock around each call and its line keeps the
 * order true across threads (a free is written before the malloc that gets the address back).
 * Each process writes its own file, ATRACE_FILE.<pid> (default ./atrace.<pid>); calls a child
 * makes between fork and exec are not kept (exec drops the buffer), nor those that run before
 * this library's constructor (the dynamic loader's own), which areplay treats as foreign. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

#define ATRACE_BUF (1u << 20)

static char atrace_buf[ATRACE_BUF];
static size_t atrace_len;
static int atrace_fd = -1;
static int atrace_lock; /* a spinlock: it needs no initialisation and works in the first call */

static void atrace_acquire(void)
{
    while (__atomic_exchange_n(&atrace_lock, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&atrace_lock, __ATOMIC_RELAXED))
            __builtin_ia32_pause();
}

static void atrace_release(void) { __atomic_store_n(&atrace_lock, 0, __ATOMIC_RELEASE); }

/* The file of this process (lock held). */
static void atrace_open(void)
{
    const char *prefix = getenv("ATRACE_FILE");
    char path[4096];
    snprintf(path, sizeof path, "%s.%d", prefix && *prefix ? prefix : "atrace", (int)getpid());
    atrace_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

static void atrace_flush(void)
{
    if (atrace_fd < 0)
        atrace_open();
    size_t off = 0;
    while (atrace_fd >= 0 && off < atrace_len) {
        ssize_t w = write(atrace_fd, atrace_buf + off, atrace_len - off);
        if (w <= 0 && errno != EINTR)
            break;
        if (w > 0)
            off += (size_t)w;
    }
    atrace_len = 0;
}

static char *put_hex(char *o, uintptr_t v)
{
    char t[16];
    int n = 0;
    do {
        t[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *o++ = t[--n];
    return o;
}

static char *put_dec(char *o, size_t v)
{
    char t[24];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = t[--n];
    return o;
}

/* One line (lock held): op, then up to three numbers (a: hex, b and c: hex or decimal). */
static void atrace_line(char op, uintptr_t a, uintptr_t b, int nb, uintptr_t c, int nc, int b_hex)
{
    if (atrace_len + 96 > ATRACE_BUF)
        atrace_flush();
    char *o = atrace_buf + atrace_len, *start = o;
    *o++ = op;
    *o++ = ' ';
    o = put_hex(o, a);
    if (nb) {
        *o++ = ' ';
        o = b_hex ? put_hex(o, b) : put_dec(o, b);
    }
    if (nc) {
        *o++ = ' ';
        o = put_dec(o, c);
    }
    *o++ = '\n';
    atrace_len += (size_t)(o - start);
}

void *malloc(size_t n)
{
    atrace_acquire();
    void *p = __libc_malloc(n);
    atrace_line('m', (uintptr_t)p, n, 1, 0, 0, 0);
    atrace_release();
    return p;
}

void *calloc(size_t n, size_t size)
{
    atrace_acquire();
    void *p = __libc_calloc(n, size);
    atrace_line('c', (uintptr_t)p, n * size, 1, 0, 0, 0);
    atrace_release();
    return p;
}

void *realloc(void *q, size_t n)
{
    atrace_acquire();
    void *p = __libc_realloc(q, n);
    atrace_line('r', (uintptr_t)p, (uintptr_t)q, 1, n, 1, 1);
    atrace_release();
    return p;
}

void free(void *p)
{
    if (!p)
        return;
    atrace_acquire();
    __libc_free(p);
    atrace_line('f', (uintptr_t)p, 0, 0, 0, 0, 0);
    atrace_release();
}

static void *aligned(size_t align, size_t n)
{
    atrace_acquire();
    void *p = __libc_memalign(align, n);
    atrace_line('a', (uintptr_t)p, align, 1, n, 1, 0);
    atrace_release();
    return p;
}

void *memalign(size_t align, size_t n) { return aligned(align, n); }
void *aligned_alloc(size_t align, size_t n) { return aligned(align, n); }
void *valloc(size_t n) { return aligned(4096, n); }
void *pvalloc(size_t n) { return aligned(4096, (n + 4095) & ~(size_t)4095); }

int posix_memalign(void **out, size_t align, size_t n)
{
    if (!align || (align & (align - 1)) || align % sizeof(void *))
        return EINVAL;
    void *p = aligned(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static void atrace_prefork(void)
{
    atrace_acquire();
    atrace_flush();
}

static void atrace_parent(void) { atrace_release(); }

static void atrace_child(void)
{
    /* the parent's lines were flushed before the fork: the child starts its own file (and lets
     * go of its copy of the parent's descriptor) */
    atrace_len = 0;
    if (atrace_fd >= 0)
        close(atrace_fd);
    atrace_fd = -1;
    atrace_release();
}

__attribute__((constructor)) static void atrace_init(void)
{
    pthread_atfork(atrace_prefork, atrace_parent, atrace_child);
}

/* last of the destructors (the lowest priority runs last), so that most frees at exit are kept */
__attribute__((destructor(101))) static void atrace_fini(void)
{
    atrace_acquire();
    atrace_flush();
    atrace_release();
}
