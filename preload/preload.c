/* preload.c — the libc allocation names on top of core/alloc, start-up, fork handlers, options
 * from the environment and statistics at exit. Layer 5: the only place that knows it is being
 * LD_PRELOADed. Nothing here allocates through stdio or dlsym; messages go out with write(2)
 * (malloc_info alone writes to the stdio stream its caller passes). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "mmap.h"
#include "options.h"
#include "purge.h"

#define LAB_EXPORT __attribute__((visibility("default")))

extern char **environ;
extern int lab_report_foreign;

static struct lab_options opts = {
#define X(name, kind, def, doc) .name = def,
    LAB_OPTIONS(X)
#undef X
};

/* ------------------------------------------------------------------------------------------
 * the libc names */

LAB_EXPORT void *malloc(size_t n) { return lab_malloc(n); }
LAB_EXPORT void free(void *p) { lab_free(p); }
LAB_EXPORT void cfree(void *p) { lab_free(p); }
/* The size and alignment are hints only: a wrong one must not corrupt anything. */
LAB_EXPORT void free_sized(void *p, size_t size) { (void)size; lab_free(p); }
LAB_EXPORT void free_aligned_sized(void *p, size_t align, size_t size) { (void)align; (void)size; lab_free(p); }
LAB_EXPORT void *calloc(size_t n, size_t size) { return lab_calloc(n, size); }
LAB_EXPORT void *realloc(void *p, size_t n) { return lab_realloc(p, n); }

LAB_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return lab_realloc(p, total);
}

static inline bool is_pow2(size_t x) { return x && !(x & (x - 1)); }

/* posix_memalign past the fast path: apart, so that the fast path saves no registers */
static lab_noinline int posix_memalign_slow(void **memptr, size_t align, size_t n)
{
    int saved = errno; /* POSIX: the error is returned, errno left as it was */
    void *p = lab_malloc_aligned_slow(align, n);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = p;
    return 0;
}

static inline int posix_memalign_impl(void **memptr, size_t align, size_t n)
{
    if (!is_pow2(align) || align % sizeof(void *))
        return EINVAL;
    void *p = lab_malloc_aligned_fast(align, n);
    if (lab_unlikely(p == NULL))
        return posix_memalign_slow(memptr, align, n);
    *memptr = p;
    return 0;
}

LAB_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return lab_malloc_aligned(align, n);
}

/* glibc's memalign rounds an alignment that is not a power of two up to one; past 2^63 there is
 * none to round to (EINVAL), up to it the alignment is valid and only unsatisfiable (ENOMEM). */
static inline void *memalign_impl(size_t align, size_t n)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_pow2(align))
        align = align <= 1 ? 1 : (size_t)1 << lab_log2_ceil(align);
    return lab_malloc_aligned(align, n);
}

LAB_EXPORT void *valloc(size_t n) { return lab_malloc_aligned(LAB_PAGE_SIZE, n); }

static inline void *pvalloc_impl(size_t n)
{
    size_t r = lab_align_up(n, LAB_PAGE_SIZE);
    if (r < n) {
        errno = ENOMEM;
        return NULL;
    }
    return lab_malloc_aligned(LAB_PAGE_SIZE, r ? r : LAB_PAGE_SIZE);
}

LAB_EXPORT size_t malloc_usable_size(void *p) { return lab_usable_size(p); }

LAB_EXPORT void *__libc_malloc(size_t n) { return lab_malloc(n); }
LAB_EXPORT void __libc_free(void *p) { lab_free(p); }
LAB_EXPORT void *__libc_calloc(size_t n, size_t size) { return lab_calloc(n, size); }
LAB_EXPORT void *__libc_realloc(void *p, size_t n) { return lab_realloc(p, n); }
/* Each name on its body, never on another exported name: through the PLT that reached whatever
 * the program defines under it, and a program's memalign that forwards to __libc_memalign (an old
 * malloc hook's way) looped (the way Erlang's sigaction did through ours: signals.c). */
LAB_EXPORT int posix_memalign(void **memptr, size_t align, size_t n) { return posix_memalign_impl(memptr, align, n); }
LAB_EXPORT void *memalign(size_t align, size_t n) { return memalign_impl(align, n); }
LAB_EXPORT void *pvalloc(size_t n) { return pvalloc_impl(n); }
LAB_EXPORT void *__libc_memalign(size_t align, size_t n) { return memalign_impl(align, n); }
LAB_EXPORT void *__libc_valloc(size_t n) { return lab_malloc_aligned(LAB_PAGE_SIZE, n); }
LAB_EXPORT void *__libc_pvalloc(size_t n) { return pvalloc_impl(n); }
LAB_EXPORT int __posix_memalign(void **memptr, size_t align, size_t n) { return posix_memalign_impl(memptr, align, n); }

LAB_EXPORT int malloc_trim(size_t pad)
{
    (void)pad;
    lab_mmap_trim();
    return lab_trim() > 0;
}

/* mallopt's parameters tune glibc's own heap; Labyrinth accepts and ignores them (documented). */
LAB_EXPORT int mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 1;
}

/* glibc's meanings, in pages of the pool: arena, the chunks' bytes and the freed huge mappings
 * kept for reuse (uordblks + fordblks); hblks and hblkhd, the huge mappings holding a block now
 * (glibc's mmapped chunks) and their bytes; uordblks, the chunks' pages handed out; fordblks and
 * keepcost, the free pages and the cached mappings. (hblks counted every huge block ever made,
 * hblkhd was 0, and cached mappings counted as in use: found by review.) */
static void fill_mallinfo(size_t *arena, size_t *hblks, size_t *hblkhd, size_t *uord, size_t *ford, size_t *keep)
{
    struct lab_alloc_stats st;
    lab_alloc_stats(&st);
    size_t mapped = st.pool.mapped_pages << LAB_PAGE_SHIFT;
    size_t freeb = st.pool.free_total << LAB_PAGE_SHIFT;
    size_t huge_all = st.huge_live_bytes + st.huge_cached_bytes;
    size_t chunks = mapped > huge_all ? mapped - huge_all : 0;
    *arena = chunks + st.huge_cached_bytes;
    *hblks = st.huge_live;
    *hblkhd = st.huge_live_bytes;
    *uord = chunks > freeb ? chunks - freeb : 0;
    *ford = freeb + st.huge_cached_bytes;
    *keep = *ford;
}

static struct mallinfo2 mallinfo2_impl(void)
{
    struct mallinfo2 m;
    memset(&m, 0, sizeof m);
    fill_mallinfo(&m.arena, &m.hblks, &m.hblkhd, &m.uordblks, &m.fordblks, &m.keepcost);
    return m;
}

LAB_EXPORT struct mallinfo2 mallinfo2(void) { return mallinfo2_impl(); }

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
LAB_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2_impl();
    struct mallinfo m;
    memset(&m, 0, sizeof m);
    m.arena = (int)lab_min(m2.arena, (size_t)INT32_MAX);
    m.hblks = (int)lab_min(m2.hblks, (size_t)INT32_MAX);
    m.hblkhd = (int)lab_min(m2.hblkhd, (size_t)INT32_MAX);
    m.uordblks = (int)lab_min(m2.uordblks, (size_t)INT32_MAX);
    m.fordblks = (int)lab_min(m2.fordblks, (size_t)INT32_MAX);
    m.keepcost = (int)lab_min(m2.keepcost, (size_t)INT32_MAX);
    return m;
}
#pragma GCC diagnostic pop

/* ------------------------------------------------------------------------------------------
 * writing without stdio */

typedef struct {
    char *buf;
    size_t cap, n;
    int fd; /* where out_flush writes */
} outbuf_t;
/* An outbuf_t `name` over 2 KiB of the caller's stack. */
#define OUTBUF(name, fd_)                                                                      \
    char name##_mem[2048];                                                                     \
    outbuf_t name = {name##_mem, sizeof name##_mem, 0, (fd_)}

static void out_flush(outbuf_t *o);

/* A full buffer is written out when it has a descriptor (fd >= 0), else the rest is dropped. */
static void out_s(outbuf_t *o, const char *s)
{
    for (; *s; s++) {
        if (o->n >= o->cap - 1) {
            if (o->fd < 0)
                return;
            out_flush(o);
        }
        o->buf[o->n++] = *s;
    }
}

static void out_u(outbuf_t *o, uint64_t v)
{
    char t[24];
    lab_fmt_u64(t, v);
    out_s(o, t);
}

/* The length of the well-formed UTF-8 character at s (1 to 4), or 0 if its bytes are not one. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* overlong forms, surrogates and past U+10FFFF */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* s inside a JSON string: quotes, backslashes and control characters escaped, and a byte that is
 * not part of a well-formed UTF-8 character written as U+FFFD (JSON text is UTF-8: a program name
 * cut inside a character, or in another encoding, made the object unreadable; found by review) */
static void out_json_str(outbuf_t *o, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)s);
            if (!n) {
                out_s(o, "\\ufffd");
                continue;
            }
            char t[5] = {0};
            memcpy(t, s, n);
            out_s(o, t);
            s += n - 1;
            continue;
        }
        char t[8] = {'\\', (char)c, 0};
        if (c < 0x20) {
            t[1] = 'u', t[2] = t[3] = '0', t[4] = "0123456789abcdef"[c >> 4], t[5] = "0123456789abcdef"[c & 15];
            t[6] = 0;
        } else if (c != '"' && c != '\\') {
            t[0] = (char)c, t[1] = 0;
        }
        out_s(o, t);
    }
}

static void out_kv(outbuf_t *o, const char *k, uint64_t v, bool json, bool first)
{
    if (json) {
        out_s(o, first ? "\"" : ",\"");
        out_s(o, k);
        out_s(o, "\":");
    } else {
        out_s(o, first ? " " : ", ");
        out_s(o, k);
        out_s(o, " ");
    }
    out_u(o, v);
}

/* SIGPIPE and SIGXFSZ blocked around the write, and taken back when it raised them: a summary
 * written to a closed pipe, or to a file past `ulimit -f` (sshd's login sandbox sets 0), killed the
 * process at exit (found by review: every ssh login refused with LABYRINTH_STATS=1). */
static void out_flush(outbuf_t *o)
{
    sigset_t quiet, was, before, after;
    sigemptyset(&quiet);
    sigaddset(&quiet, SIGPIPE);
    sigaddset(&quiet, SIGXFSZ);
    int saved = errno; /* (malloc_stats leaves the program's errno alone) */
    pthread_sigmask(SIG_BLOCK, &quiet, &was);
    sigpending(&before);
    for (size_t done = 0; done < o->n;) { /* one write as a rule; the rest if the kernel cut it */
        ssize_t w = write(o->fd, o->buf + done, o->n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    sigpending(&after);
    static const int sigs[] = {SIGPIPE, SIGXFSZ};
    for (int i = 0; i < 2; i++)
        if (sigismember(&after, sigs[i]) && !sigismember(&before, sigs[i])) { /* this write's */
            sigset_t one;
            sigemptyset(&one);
            sigaddset(&one, sigs[i]);
            (void)sigtimedwait(&one, NULL, &(struct timespec){0, 0});
        }
    pthread_sigmask(SIG_SETMASK, &was, NULL);
    o->n = 0;
    errno = saved;
}

/* What the pool's runs hold, per class (text: a line for each class that has spans, with `classes`
 * only; JSON: "classes", an array, and "runs"). */
static void print_runs(outbuf_t *o, bool json)
{
    lab_run_stats_t rs; /* 2 KiB: malloc_stats may be called from several threads at once */
    lab_arena_run_stats(&rs);
    size_t kib = LAB_PAGE_SIZE >> 10;
    bool first = true;
    uint64_t span_kib = 0, out_kib = 0;
    if (json)
        out_s(o, ",\"classes\":[");
    for (unsigned c = 1; c < LAB_NR_CLASSES; c++) {
        const lab_class_stats_t *cs = &rs.cls[c];
        if (!cs->spans)
            continue;
        if (json) {
            out_s(o, first ? "{" : ",{");
        } else {
            out_s(o, "\nlabyrinth stats: class");
        }
        out_kv(o, "size", lab_class_size(c), json, true);
        out_kv(o, "spans", cs->spans, json, false);
        out_kv(o, "span_kib", cs->span_pages * kib, json, false);
        out_kv(o, "blocks", cs->blocks, json, false);
        out_kv(o, "out", cs->out, json, false);
        out_kv(o, "out_kib", cs->out * lab_class_size(c) >> 10, json, false);
        if (json)
            out_s(o, "}");
        first = false;
        span_kib += cs->span_pages * kib;
        out_kib += cs->out * lab_class_size(c) >> 10;
    }
    if (json)
        out_s(o, "],\"runs\":{");
    else
        out_s(o, "\nlabyrinth stats: runs");
    out_kv(o, "span_kib", span_kib, json, true); /* the classes' totals */
    out_kv(o, "out_kib", out_kib, json, false);
    out_kv(o, "large", rs.large, json, false);
    out_kv(o, "large_kib", rs.large_pages * kib, json, false);
    out_kv(o, "nursery", rs.nursery, json, false);
    out_kv(o, "nursery_kib", rs.nursery_pages * kib, json, false);
    out_kv(o, "user_kib", rs.user_pages * kib, json, false);
    if (json)
        out_s(o, "}");
}

/* The program's name as it started, for the summary (LABYRINTH_STATS only): a program that
 * rewrites its argv, as nginx's processes do, left program_invocation_short_name pointing into
 * the new text ("ker process is shutting down": found by review). */
static char prog_name[64];

static const char *program_name(void) { return prog_name[0] ? prog_name : program_invocation_short_name; }

/* The JSON summary's opening: which process (a program that runs others writes several). */
static void stats_json_head(outbuf_t *o)
{
    out_s(o, "{\"labyrinth_stats\":{");
    out_kv(o, "pid", (uint64_t)getpid(), true, true);
    out_s(o, ",\"program\":\"");
    out_json_str(o, program_name());
    out_s(o, "\"");
}

/* The statistics summary: text (lines starting "labyrinth stats:") or one JSON object, to fd. */
static void print_stats(int mode, int fd)
{
    bool json = mode == LAB_STATS_JSON;
    if (lab_locks_held) {
        /* exit() from a signal handler that interrupted the allocator while it held a lock: the
         * counts are summed under locks (the heaps', the rooms', the zones'), one of them this
         * thread's own, and waiting for it hung the exit (found by review: 1 run in 8 with
         * STATS=json). Which process, and why there are no counts. */
        OUTBUF(o, fd);
        if (json) {
            stats_json_head(&o);
            out_s(&o, ",\"unavailable\":\"exit in a signal handler that interrupted the allocator\"}}\n");
        } else {
            out_s(&o, "labyrinth stats: unavailable (exit in a signal handler that interrupted the allocator), pid ");
            out_u(&o, (uint64_t)getpid());
            out_s(&o, ", program ");
            out_s(&o, program_name());
            out_s(&o, "\n");
        }
        out_flush(&o);
        return;
    }
    struct lab_alloc_stats st;
    lab_alloc_stats(&st);
    /* the whole summary in one buffer and one write: several processes appending JSON Lines to
     * one LABYRINTH_STATS_FILE, or threads calling malloc_stats at once, wrote theirs in 2 KiB
     * pieces, which interleaved (found by review: 2 lines of 12 unreadable). Mapped apart, not
     * on the stack, which may be a signal handler's small one; 2 KiB pieces if that fails. */
    enum { STATS_BUF = 64 << 10 };
    long m = lab_os_mmap(NULL, STATS_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    OUTBUF(o, fd);
    if (m >= 0)
        o.buf = (char *)m, o.cap = STATS_BUF;
    size_t kib = LAB_PAGE_SIZE >> 10;
    /* pages that hold blocks: not the pool's free pages, nor freed huge mappings kept for reuse */
    size_t idle = st.pool.free_total + (st.huge_cached_bytes >> LAB_PAGE_SHIFT);
    size_t used = st.pool.mapped_pages > idle ? st.pool.mapped_pages - idle : 0;
    /* which process: a program that runs others (make, a shell, gcc and cc1) writes several
     * (text: last on the first line, after the fields that scripts read by position) */
    if (json)
        stats_json_head(&o);
    else
        out_s(&o, "labyrinth stats:");
    out_kv(&o, "mallocs", st.heap.mallocs, json, !json);
    out_kv(&o, "frees", st.heap.frees, json, false);
    out_kv(&o, "remote_frees", st.heap.remote_frees, json, false);
    out_kv(&o, "foreign_frees", st.heap.foreign_frees, json, false);
    out_kv(&o, "large", st.heap.large, json, false);
    out_kv(&o, "large_frees", st.heap.large_frees, json, false);
    out_kv(&o, "huge", st.heap.huge, json, false);
    out_kv(&o, "huge_frees", st.heap.huge_frees, json, false);
    out_kv(&o, "heaps", st.heaps, json, false);
    out_kv(&o, "signal_heaps", st.signal_heaps, json, false);
    out_kv(&o, "spans", st.heap.spans, json, false);
    out_kv(&o, "span_releases", st.heap.span_releases, json, false);
    out_kv(&o, "reclaimed", st.heap.reclaimed, json, false);
    out_kv(&o, "idle_returns", st.idle_returns, json, false);
    out_kv(&o, "kept_kib", st.kept_bytes >> 10, json, false);
    if (!json) {
        out_kv(&o, "pid", (uint64_t)getpid(), json, false);
        out_s(&o, ", program ");
        out_s(&o, program_name());
        out_s(&o, "\nlabyrinth stats: pool");
        out_kv(&o, "current_kib", used * kib, json, true);
    } else {
        out_kv(&o, "current_kib", used * kib, json, false);
    }
    out_kv(&o, "peak_kib", st.pool.peak_used_pages * kib, json, false);
    out_kv(&o, "mapped_kib", st.pool.mapped_pages * kib, json, false);
    out_kv(&o, "free_kib", st.pool.free_total * kib, json, false);
    out_kv(&o, "purged_kib", st.pool.purged_pages * kib, json, false);
    out_kv(&o, "huge_live_kib", st.huge_live_bytes >> 10, json, false);
    out_kv(&o, "huge_cached_kib", st.huge_cached_bytes >> 10, json, false);
    out_kv(&o, "huge_lent_kib", st.huge_lent_bytes >> 10, json, false);
    out_kv(&o, "chunks_unmapped", st.pool.unmapped_chunks, json, false);
    out_kv(&o, "run_zones", st.run_zones, json, false);
    out_kv(&o, "thp_chunks", st.pool.thp_chunks, json, false);
    out_kv(&o, "thp_demoted", st.pool.thp_demoted, json, false);
    out_kv(&o, "hits_room", st.pool.hits_room, json, false);
    out_kv(&o, "hits_shared", st.pool.hits_shared, json, false);
    out_kv(&o, "hits_slow", st.pool.hits_slow, json, false);
    out_kv(&o, "hits_reserve", st.pool.hits_reserve, json, false);
    out_kv(&o, "failures", st.pool.failures, json, false);
    struct labyrinth_mmap_stats mm;
    labyrinth_mmap_stats(&mm);
    if (mm.enabled) { /* LABYRINTH_MMAP: its own line (text), mmap_* keys (json) */
        if (!json)
            out_s(&o, "\nlabyrinth stats: mmap");
        out_kv(&o, json ? "mmap_pooled_maps" : "pooled_maps", mm.pooled_maps, json, !json);
        out_kv(&o, json ? "mmap_cache_hits" : "cache_hits", mm.cache_hits, json, false);
        out_kv(&o, json ? "mmap_kernel_maps" : "kernel_maps", mm.kernel_maps, json, false);
        out_kv(&o, json ? "mmap_fallbacks" : "fallbacks", mm.fallbacks, json, false);
        out_kv(&o, json ? "mmap_pooled_unmaps" : "pooled_unmaps", mm.pooled_unmaps, json, false);
        out_kv(&o, json ? "mmap_remaps" : "remaps", mm.remaps, json, false);
        out_kv(&o, json ? "mmap_live_kib" : "live_kib", mm.live_bytes >> 10, json, false);
        out_kv(&o, json ? "mmap_cached_kib" : "cached_kib", mm.cached_bytes >> 10, json, false);
        out_kv(&o, json ? "mmap_reserved_kib" : "reserved_kib", mm.reserved_bytes >> 10, json, false);
        out_kv(&o, json ? "mmap_purged_kib" : "purged_kib", mm.purged_bytes >> 10, json, false);
    }
    if (mode != LAB_STATS_TEXT)
        print_runs(&o, json);
    out_s(&o, json ? "}}\n" : "\n");
    out_flush(&o);
    if (o.cap == STATS_BUF)
        lab_os_munmap(o.buf, STATS_BUF);
}

LAB_EXPORT void malloc_stats(void) { print_stats(LAB_STATS_CLASSES, 2); }

/* <tag type="type" [count="0"] size="size"/>: glibc's free-chunk counts have no counterpart here */
static void out_xml(outbuf_t *o, const char *tag, const char *type, bool with_count, uint64_t size)
{
    out_s(o, "<");
    out_s(o, tag);
    out_s(o, " type=\"");
    out_s(o, type);
    out_s(o, "\"");
    if (with_count)
        out_s(o, " count=\"0\"");
    out_s(o, " size=\"");
    out_u(o, size);
    out_s(o, "\"/>\n");
}

/* glibc's XML layout (one heap, the malloc pool; glibc's element names, so that its readers work),
 * then a <labyrinth> element with the counters of LABYRINTH_STATS. Sizes in bytes: "rest" is the
 * pool's free pages, "current" everything it has mapped (huge blocks included, which is why there
 * is no separate "mmap" total); "fast" has no counterpart and stays 0, and so do the counts. */
LAB_EXPORT int malloc_info(int options, FILE *stream)
{
    if (options != 0)
        return EINVAL; /* glibc's answer: the error number itself */
    struct lab_alloc_stats st;
    lab_alloc_stats(&st);
    uint64_t mapped = (uint64_t)st.pool.mapped_pages << LAB_PAGE_SHIFT;
    uint64_t freeb = (uint64_t)st.pool.free_total << LAB_PAGE_SHIFT;
    uint64_t peak = (uint64_t)st.pool.peak_used_pages << LAB_PAGE_SHIFT;
    OUTBUF(o, -1);
    out_s(&o, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n</sizes>\n");
    for (int pass = 0; pass < 2; pass++) {
        out_xml(&o, "total", "fast", true, 0);
        out_xml(&o, "total", "rest", true, freeb);
        out_xml(&o, "system", "current", false, mapped);
        out_xml(&o, "system", "max", false, lab_max(peak, mapped));
        out_xml(&o, "aspace", "total", false, mapped);
        out_xml(&o, "aspace", "mprotect", false, mapped);
        if (pass == 0)
            out_s(&o, "</heap>\n");
    }
    out_s(&o, "<labyrinth version=\"");
    out_s(&o, labyrinth_version());
    out_s(&o, "\"");
    static const char *const names[] = {"mallocs", "frees", "remote_frees", "foreign_frees", "large", "huge",
                                        "spans", "purged_bytes"};
    uint64_t vals[] = {st.heap.mallocs, st.heap.frees, st.heap.remote_frees, st.heap.foreign_frees,
                       st.heap.large, st.heap.huge, st.heap.spans,
                       (uint64_t)st.pool.purged_pages << LAB_PAGE_SHIFT};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        out_s(&o, " ");
        out_s(&o, names[i]);
        out_s(&o, "=\"");
        out_u(&o, vals[i]);
        out_s(&o, "\"");
    }
    out_s(&o, "/>\n</malloc>\n");
    return fwrite(o.buf, 1, o.n, stream) == o.n ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------
 * options */

static void warn2(const char *a, const char *b)
{
    OUTBUF(o, 2);
    out_s(&o, "labyrinth: ");
    out_s(&o, a);
    out_s(&o, b); /* a long one written out in pieces (out_s) */
    out_s(&o, "\n");
    out_flush(&o);
}

/* LABYRINTH_STATS_FILE's value, copied: the program may change its environment. */
static char stats_file[4096] lab_big_bss;

static bool parse_value(enum lab_option_kind kind, const char *v, unsigned long *out)
{
    if (kind == LAB_OPT_PATH) {
        size_t len = strlen(v);
        if (!len || len >= sizeof stats_file)
            return false;
        memcpy(stats_file, v, len + 1);
        *out = (unsigned long)(uintptr_t)stats_file;
        return true;
    }
    if (kind == LAB_OPT_STATS) {
        if (!strcmp(v, "json")) {
            *out = LAB_STATS_JSON;
            return true;
        }
        if (!strcmp(v, "classes")) {
            *out = LAB_STATS_CLASSES;
            return true;
        }
    }
    if (!*v)
        return false;
    unsigned long x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9' || x > (~0ul - 9) / 10)
            return false;
        x = x * 10 + (unsigned long)(*p - '0');
    }
    if ((kind == LAB_OPT_BOOL || kind == LAB_OPT_STATS) && x > 1)
        return false;
    *out = x;
    return true;
}

/* In a program run with more privilege than its caller (set-user-ID or set-group-ID, file
 * capabilities: the kernel's AT_SECURE), the environment is the caller's and no LABYRINTH_
 * variable is read, as glibc ignores its MALLOC_ ones there: LABYRINTH_STATS_FILE would otherwise
 * let any user have such a program create or append to any file (found by review). */
static void options_read(void)
{
    if (!environ || getauxval(AT_SECURE))
        return;
    for (char **e = environ; *e; e++) {
        const char *s = *e;
        if (strncmp(s, "LABYRINTH_", 10) != 0)
            continue;
        const char *name = s + 10, *eq = strchr(name, '=');
        if (!eq)
            continue;
        size_t len = (size_t)(eq - name);
        bool known = false;
#define X(nm, kind, def, doc)                                                                  \
    if (!known && len == sizeof(#nm) - 1 && !strncmp(name, #nm, len)) {                        \
        known = true;                                                                          \
        if (!parse_value(LAB_OPT_##kind, eq + 1, &opts.nm))                                    \
            warn2("bad value, default kept: ", s);                                             \
    }
        LAB_OPTIONS(X)
#undef X
        if (!known)
            warn2("unknown option ignored: ", s);
    }
}

static void banner(void)
{
    OUTBUF(o, 2);
    out_s(&o, "labyrinth ");
    out_s(&o, labyrinth_version());
#ifdef LAB_DEBUG
    out_s(&o, " (debug build)");
#else
    out_s(&o, " (release build)");
#endif
    out_s(&o, ", options:");
#define X(nm, kind, def, doc)                                                                  \
    out_s(&o, " " #nm "=");                                                                    \
    if (LAB_OPT_##kind == LAB_OPT_STATS && opts.nm == LAB_STATS_JSON)                          \
        out_s(&o, "json");                                                                     \
    else if (LAB_OPT_##kind == LAB_OPT_PATH)                                                   \
        out_s(&o, opts.nm ? (const char *)(uintptr_t)opts.nm : "-");                           \
    else                                                                                       \
        out_u(&o, opts.nm);
    LAB_OPTIONS(X)
#undef X
    out_s(&o, "\n");
    out_flush(&o);
}

/* ------------------------------------------------------------------------------------------
 * start-up, fork, exit */

/* fork: the handlers take every lock of the arena and the pool, so that the child copies no
 * bookkeeping half done, and reset them in the child. That is only needed when another thread
 * may be inside the allocator. In a process that has never made a second thread (glibc's
 * __libc_single_threaded; a child after fork is one again) no other thread exists, and none can
 * start while this one is in fork(), so nothing is locked at all: every lock is a write, and
 * after fork() each written page costs a copy-on-write fault in the parent and another in the
 * child (about 12 us each on these VMs; five pages here, so a shell paid some 120 us a command,
 * bench: spawn). A fork from a signal handler that interrupted this thread while it held a
 * lock of the allocator (lab_locks_held) takes none either (below). fork_locked is per thread:
 * two threads may fork at once (then neither is single-threaded). */
static int options_state; /* 0 not read, 1 being read, 2 read (lab_options_early, below) */

extern char __libc_single_threaded __attribute__((weak));
static __thread char fork_locked;
static __thread int fork_held; /* locks this thread held when fork() began */

/* A fork from a signal handler that interrupted this thread while it held one of the allocator's
 * locks cannot take them all: the lock is not recursive, and waiting for it never ends (found by
 * review: a handler of a 2 ms timer that forks, while the program allocates 3 MiB blocks, hung in
 * lab_pool_fork_prepare on the huge cache's lock). Then no lock is taken: in a process of one
 * thread none is needed, and in one of several the child of such a fork may find a lock another
 * thread held (POSIX lets it call only async-signal-safe functions before it execs). The child
 * keeps the locks the interrupted code holds: it goes on from there and releases them. */
static void fork_prepare(void)
{
    /* written only when they change (from one single-threaded fork to the next they stay 0): the
     * fork before left their page write-protected, and a write costs a fault. (tests/preload/
     * fork_single.c checks the library's .data and .bss, where fork_child's options_state is;
     * these words are the thread's TLS, on a page glibc writes too, which it cannot tell apart) */
    int held = lab_locks_held;
    char locked = (!&__libc_single_threaded || !__libc_single_threaded) && held == 0;
    if (fork_held != held)
        fork_held = held;
    if (fork_locked != locked)
        fork_locked = locked;
    /* the mmap pool's lock, if the interposer is on: first, as every fork takes it (before the
     * zones'), but not with an allocator lock held: that order reversed, a handler that forks
     * in a thread holding a zone lock waited for the pool's lock, held by another thread's fork
     * that waited for the zone (found by review: preload.fork_in_handler_threads_mmap hung) */
    lab_mmap_fork_prepare(fork_held == 0);
    if (!fork_locked)
        return;
    lab_arena_fork_prepare();
    lab_pool_fork_prepare();
}

static void fork_parent(void)
{
    if (fork_locked) {
        lab_pool_fork_parent();
        lab_arena_fork_parent();
    }
    lab_mmap_fork_parent();
}

static void fork_child(void)
{
    int reading = 1;
    /* a thread of the parent was reading the options: it is not in the child; read them again
     * (looked at first: a compare-and-swap writes its word even when it fails, a copy-on-write
     * fault in every child) */
    if (lab_load_relaxed(&options_state) == reading)
        __atomic_compare_exchange_n(&options_state, &reading, 0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    lab_mmap_fork_child(); /* first: the pool's handler then zeroes lab_locks_held */
    if (!fork_locked) {
        /* the mmap pool's lock taken for the fork is gone; those the interrupted code holds are
         * still its own (written only when it changes, as in fork_prepare) */
        if (lab_locks_held != fork_held)
            lab_locks_held = fork_held;
        return;
    }
    lab_pool_fork_child();
    lab_arena_fork_child();
}

/* The options that shape the malloc pool and the heaps, read before either is made: from the
 * pool's set-up when an allocation comes first (a library's constructor, libstdc++'s among them,
 * runs before ours and allocates), else from our constructor. Read in the constructor alone,
 * LABYRINTH_THP, LABYRINTH_RESERVE_GB and LABYRINTH_SECURE were silently lost in every C++
 * program (found by review). Once: a thread that arrives while another reads waits for it. */
lab_internal void lab_options_early(void)
{
    int zero = 0;
    if (!__atomic_compare_exchange_n(&options_state, &zero, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
        /* a while at most: the reader may be this thread, interrupted by a handler that
         * allocates, or gone (a fork child of a process that forked while one read) */
        for (unsigned spin = 0; spin < (1u << 20); spin++) {
            if (__atomic_load_n(&options_state, __ATOMIC_ACQUIRE) == 2)
                break;
            __builtin_ia32_pause();
        }
        return;
    }
    options_read();
    /* the bounds, applied to the values themselves: the banner shows what is in force (it
     * showed RESERVE_GB=5000 where 1024 was used: found by review) */
    opts.PURGE_DELAY_MS = lab_min(opts.PURGE_DELAY_MS, 0xfffffffeul);
    opts.RESERVE_GB = lab_min(opts.RESERVE_GB, 1024ul);
    opts.KEPT_KIB = lab_min(opts.KEPT_KIB, 1ul << 30);
    opts.MMAP_MAX = lab_align_down(lab_min(opts.MMAP_MAX, 256ul << 20), LAB_PAGE_SIZE);
    lab_pool_set_default_delay((unsigned)opts.PURGE_DELAY_MS);
    lab_pool_set_default_thp(opts.THP);
    lab_pool_set_reserve((size_t)opts.RESERVE_GB << 30);
    lab_kept_max = (size_t)opts.KEPT_KIB << 10;
    lab_nursery_on = (int)opts.NURSERY;
    lab_pool_zero_ask = (int)opts.PAGEMAP;
    if (opts.SECURE)
        lab_arena_set_secure();
    __atomic_store_n(&options_state, 2, __ATOMIC_RELEASE);
}

__attribute__((constructor(101))) static void preload_init(void)
{
    lab_options_early();
    lab_purge_init(opts.BACKGROUND_PURGE);
    lab_mmap_init(opts.MMAP, opts.MMAP_MAX, opts.MMAP_CACHE, (unsigned)opts.PURGE_DELAY_MS, opts.VERBOSE);
    if (opts.VERBOSE)
        lab_report_foreign = 8;
    if (opts.STATS && program_invocation_short_name) {
        /* cut on a character's first byte (out_json_str writes a broken one as U+FFFD) */
        size_t n = strnlen(program_invocation_short_name, sizeof prog_name - 1);
        if (n == sizeof prog_name - 1)
            while (n && ((unsigned char)program_invocation_short_name[n] & 0xc0) == 0x80)
                n--;
        memcpy(prog_name, program_invocation_short_name, n);
    }
    if (opts.STATS_FILE && !opts.STATS) /* found by review: a summary silently missing */
        warn2("LABYRINTH_STATS_FILE is set but LABYRINTH_STATS is not: no summary is written to ", stats_file);
    lab_arena_thread_key_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (opts.VERBOSE)
        banner();
}

/* The descriptor for the summary at exit: LABYRINTH_STATS_FILE opened for appending (%p in its
 * name the process id, %% a percent sign), or 2 (stderr), with a warning if it cannot be opened.
 * (A program may have closed any of 0, 1 and 2 by then: the file may get one of those.) */
static int stats_open(void)
{
    if (!opts.STATS_FILE)
        return 2;
    char path[sizeof stats_file + 32], pid[24];
    size_t n = 0;
    const char *p = stats_file;
    for (; *p && n < sizeof path - 24; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            lab_fmt_u64(pid, (uint64_t)getpid());
            for (const char *q = pid; *q; q++)
                path[n++] = *q;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            path[n++] = '%';
            p++;
        } else {
            path[n++] = *p;
        }
    }
    path[n] = 0;
    if (*p) { /* the pids made it too long: not some truncated name */
        warn2("LABYRINTH_STATS_FILE too long with %p expanded, summary on stderr: ", stats_file);
        return 2;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        warn2("LABYRINTH_STATS_FILE cannot be opened, summary on stderr: ", path);
        return 2;
    }
    return fd;
}

__attribute__((destructor)) static void preload_fini(void)
{
    lab_purge_init(0); /* exiting: no purge thread started from here on */
    if (opts.TRIM_ON_EXIT) {
        lab_mmap_trim();
        lab_trim();
    }
    if (opts.STATS) {
        int fd = stats_open();
        print_stats((int)opts.STATS, fd);
        if (fd != 2)
            close(fd);
    }
}
