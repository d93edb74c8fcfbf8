/* mmap_pool.c — the area behind pooled anonymous mmap: reserved chunks, page states, free runs
 * in size bins, the LRU of cached runs and its purging, and operations in flight (see
 * mmap_pool.h for the states and the protocol). Layer 5 (preload): calls core/os (raw system
 * calls) and lock.h only. Its metadata comes from raw mmap, never from the malloc pool, so no call
 * here waits on a lock of malloc's. No system call is made with lab_mmpool_lock held:
 * lab_mmpool_grow drops it around its reservations, purges and chunk releases are jobs that the
 * calling operation runs unlocked, and a wait sleeps unlocked.
 *
 * A chunk is 2^shift bytes (8 MiB by default), aligned to its size, and found from an address
 * through a two-level table (like the malloc page map, but of its own). Each chunk has a state
 * byte and a 56-byte node per page; a free run's length sits in the nodes of its first and last
 * pages (boundary tags), its links in the first. Free runs are binned by length (exactly up to
 * 256 pages, by powers of two above) in two bin sets, CACHED and FRESH; cached runs are also on
 * an LRU list, oldest at the tail, for purging.
 *
 * State bytes are read without the lock (a signal handler's call, the scan of another operation
 * over pages this one holds BUSY) and written without it (an operation's own BUSY pages, and a
 * handler's call, which marks LIVE pages it unmapped or tainted), so the bytes that may be shared
 * that way are read and written as relaxed atomics, and those a handler may write are claimed,
 * published and marked by compare-and-swap (st_update): no ordering is needed, since the lock
 * orders every decision that depends on them. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "mmap_pool.h"

#define MM_EXACT 256                    /* runs up to this many pages have a bin each */
#define MM_NBINS (MM_EXACT + 32)
#define MM_WORDS ((MM_NBINS + 63) / 64)
#define MM_L1_SHIFT 35                  /* an L1 entry covers 32 GiB */
#define MM_L1_SIZE (1u << (LAB_ADDR_BITS - MM_L1_SHIFT))
#define MM_ERR(r) ((unsigned long)(r) > -4096ul)

typedef struct mm_node {
    struct mm_node *next, *prev;        /* bin list (first page of a free run) */
    struct mm_node *lnext, *lprev;      /* LRU of cached runs (first page)     */
    struct mm_chunk *chunk;
    uint64_t stamp;                     /* ms clock when the run was cached    */
    uint32_t len;                       /* run length: first and last page     */
    uint16_t bin;
    uint8_t kind;                       /* LAB_MM_FRESH or LAB_MM_CACHED       */
    uint8_t pad;
} mm_node_t;

typedef struct mm_chunk {
    uintptr_t base;
    uint8_t *state;
    mm_node_t *node;
    struct mm_chunk *next;              /* all chunks, or spare metadata blocks */
    struct mm_chunk *prev;
    uint64_t born;                      /* mm_births when it was added: later than an operation's
                                           mark, it was a hole when that operation began */
} mm_chunk_t;

lab_lock_t lab_mmpool_lock = LAB_LOCK_INIT;

static unsigned mm_shift = 23;
static size_t mm_npages = 2048;
static size_t mm_cap_pages;             /* LABYRINTH_MMAP_CACHE in pages */
static unsigned mm_delay_ms = 1000;
static size_t mm_meta_bytes;

/* chunk number -> chunk: L1 per 32 GiB, L2 tables mapped on demand and never freed */
static mm_chunk_t **mm_l1[MM_L1_SIZE] lab_big_bss;
static uintptr_t mm_lo = UINTPTR_MAX, mm_hi; /* bounds of every chunk ever made (quick rejection) */

static mm_node_t mm_bin[2][MM_NBINS] lab_big_bss;   /* [LAB_MM_FRESH / LAB_MM_CACHED][bin] list heads */
static uint64_t mm_bits[2][MM_WORDS];   /* non-empty bins */
static mm_node_t mm_lru;                /* lnext: the newest cached run; lprev: the oldest */
static size_t mm_cached_pages, mm_free_chunks;
static uint64_t mm_purged_pages, mm_released;
static mm_chunk_t *mm_chunks, *mm_spare_meta;
static size_t mm_nchunks;
static uintptr_t mm_last_base;          /* where the last chunk went: the next goes just below */

/* operations in flight */
static int mm_gen;                      /* futex word: moves when an operation ends while others wait */
static int mm_waiters;                  /* operations asleep in lab_mmpool_wait */
static uint64_t mm_births;              /* chunks added so far */
static size_t mm_room;                  /* cache room reserved by operations in flight, pages */
static bool mm_sweep_due;               /* fork child: BUSY pages of vanished threads remain */
/* This thread's operation has begun and not ended / sleeps in lab_mmpool_wait: what a fork child
 * keeps of the parent's operations when the fork came from a signal handler. */
static __thread bool mm_self_busy, mm_self_waiting;
/* This thread holds lab_mmpool_lock, or is taking it, or has just dropped it (never less). */
static __thread bool mm_self_locks;
/* lab_mmpool_lock_take_bounded's tries: half spinning, half yielding the CPU */
#define MM_LOCK_TRIES 256

static inline long mm_sys(long n, long a, long b, long c, long d, long e, long f)
{
    return lab_os_raw6(n, a, b, c, d, e, f);
}

static inline uint8_t st_get(const uint8_t *s) { return __atomic_load_n(s, __ATOMIC_RELAXED); }
static inline void st_put(uint8_t *s, unsigned v) { __atomic_store_n(s, (uint8_t)v, __ATOMIC_RELAXED); }

/* State bytes 8 at a time where a whole aligned word lies in the range; bytes outside the range
 * are never written. */
typedef uint64_t __attribute__((may_alias)) mm_word_t;
#define MM_BYTES(v) ((uint64_t)(v) * 0x0101010101010101ull)

static inline uint64_t st_word(const uint8_t *s) { return __atomic_load_n((const mm_word_t *)s, __ATOMIC_RELAXED); }
static inline void st_put_word(uint8_t *s, uint64_t w) { __atomic_store_n((mm_word_t *)s, w, __ATOMIC_RELAXED); }

/* The first i' >= i, below n, whose state byte is not v; n if none. */
static size_t st_span(const uint8_t *s, size_t i, size_t n, unsigned v)
{
    for (; i < n && ((uintptr_t)(s + i) & 7); i++)
        if (st_get(&s[i]) != v)
            return i;
    for (uint64_t w = MM_BYTES(v); i + 8 <= n && st_word(&s[i]) == w;)
        i += 8;
    while (i < n && st_get(&s[i]) == v)
        i++;
    return i;
}

/* Every state byte of s[0, n): (old & keep) | v. */
static void st_fill(uint8_t *s, size_t n, unsigned keep, unsigned v)
{
    size_t i = 0;
    for (; i < n && ((uintptr_t)(s + i) & 7); i++)
        st_put(&s[i], (st_get(&s[i]) & keep) | v);
    for (uint64_t k = MM_BYTES(keep), w = MM_BYTES(v); i + 8 <= n; i += 8)
        st_put_word(&s[i], keep ? (st_word(&s[i]) & k) | w : w);
    for (; i < n; i++)
        st_put(&s[i], (st_get(&s[i]) & keep) | v);
}

/* State bytes that a handler's call (the *_nested paths of mmap.c, which take no lock) may change
 * at the same moment are changed by compare-and-swap (or an atomic OR), so that neither write is
 * lost: an operation's claim and publication, and those calls' own marks. */
enum { ST_BUSY, ST_PUBLISHED, ST_LIVE_TO_FOREIGN, ST_TAINT };

static inline __attribute__((always_inline)) uint8_t st_new(uint8_t v, int how)
{
    unsigned k = v & LAB_MM_KIND;
    if (how == ST_BUSY)
        return (uint8_t)(v | LAB_MM_BUSY);
    if (how == ST_LIVE_TO_FOREIGN)
        return k == LAB_MM_LIVE ? (uint8_t)((v & LAB_MM_BUSY) | LAB_MM_FOREIGN) : v;
    if (how == ST_TAINT)
        return k == LAB_MM_LIVE ? (uint8_t)(v | LAB_MM_TAINT) : v;
    if (!(v & LAB_MM_BUSY)) /* ST_PUBLISHED: an operation's page as it publishes it, free ones aside */
        return v;
    /* TRANSIT, FOREIGN|TAINT: left by an operation that never finished (a fork child's sweep) */
    return (uint8_t)(k == LAB_MM_TRANSIT ? LAB_MM_LIVE | LAB_MM_TAINT
                     : k == LAB_MM_FOREIGN ? LAB_MM_FOREIGN
                                           : v & ~LAB_MM_BUSY);
}

static inline __attribute__((always_inline)) void st_update_byte(uint8_t *b, int how)
{
    uint8_t v = st_get(b);
    while (!__atomic_compare_exchange_n(b, &v, st_new(v, how), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* Every state byte of s[0, n) becomes st_new(old, how); whole words where the range holds them,
 * for the common cases (every byte LIVE|BUSY, or an OR), bytes otherwise. */
static void st_update(uint8_t *s, size_t n, int how)
{
    size_t i = 0;
    for (; i < n && ((uintptr_t)(s + i) & 7); i++)
        st_update_byte(&s[i], how);
    for (; i + 8 <= n; i += 8) {
        if (how == ST_BUSY) {
            __atomic_fetch_or((mm_word_t *)&s[i], MM_BYTES(LAB_MM_BUSY), __ATOMIC_RELAXED);
            continue;
        }
        uint64_t w = st_word(&s[i]), live = MM_BYTES(LAB_MM_LIVE | LAB_MM_BUSY);
        if (how == ST_PUBLISHED && w == live &&
            __atomic_compare_exchange_n((mm_word_t *)&s[i], &w, MM_BYTES(LAB_MM_LIVE), false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            continue;
        for (size_t j = i; j < i + 8; j++)
            st_update_byte(&s[j], how);
    }
    for (; i < n; i++)
        st_update_byte(&s[i], how);
}

/* Signals a handler put off while this thread held or took the lock (lab_mmpool_defer_signal):
 * bit sig-1, blocked in this thread's mask until it lets go (mm_undefer). */
static __thread uint64_t mm_deferred;

/* The deferred signals unblocked: each was queued again, and is delivered now, with its siginfo. */
static lab_noinline void mm_undefer(void)
{
    uint64_t set = mm_deferred;
    mm_deferred = 0;
    mm_sys(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&set, 0, sizeof set, 0, 0);
}

void lab_mmpool_lock_take(void)
{
    mm_self_locks = true;
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* before: a handler never takes a lock this thread holds */
    lab_lock(&lab_mmpool_lock);
}

/* For a new mapping, which can do without the pool (mmap.c: the kernel then maps it): the lock if
 * it comes within a bounded wait, else false. No system call is made with the lock held and no
 * handler runs while it is (lab_mmpool_defer_signal), so a holder lets go in far less than the
 * wait unless it is off the CPU, and then the kernel is the faster way. */
bool lab_mmpool_lock_take_bounded(void)
{
    mm_self_locks = true;
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* as lab_mmpool_lock_take */
    for (int i = 0; i < MM_LOCK_TRIES; i++) {
        if (lab_lock_try(&lab_mmpool_lock))
            return true;
        if (i < MM_LOCK_TRIES / 2)
            __builtin_ia32_pause();
        else
            mm_sys(SYS_sched_yield, 0, 0, 0, 0, 0, 0); /* a holder on this CPU gets to run */
    }
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    mm_self_locks = false;
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* a handler from here on runs at once */
    if (lab_unlikely(mm_deferred))
        mm_undefer();
    return false;
}

void lab_mmpool_lock_drop(void)
{
    lab_unlock(&lab_mmpool_lock);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    mm_self_locks = false;
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* as in lab_mmpool_lock_take_bounded */
    if (lab_unlikely(mm_deferred))
        mm_undefer();
}

/* A handler for sig that interrupted this thread while it held or took the lock does not run
 * there: a collector's stop signal (Boehm, Mono) would park the holder, and every other thread's
 * call would wait on it for good. (Calls that gave up waiting and did without the lock instead
 * raced with other threads' calls on the same pages: stop 47's CI, the race section.) The signal
 * is queued again to this thread with its siginfo (the kernel lets a thread send itself any),
 * blocked in the mask the interrupted code resumes with, and unblocked when the lock is dropped:
 * its handler then runs, with the lock free. False when it must run now (not held, no context, a
 * fault's signal, which would only come again, or the kernel refused to queue it: a full
 * real-time queue). */
bool lab_mmpool_defer_signal(int sig, void *info, void *uctx)
{
    if (!mm_self_locks || !uctx || sig < 1 || sig > 64)
        return false;
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS)
        return false;
    uint64_t bit = (uint64_t)1 << (sig - 1);
    /* blocked now, as well: with SA_NODEFER the copy queued below would interrupt this handler */
    if (MM_ERR(mm_sys(SYS_rt_sigprocmask, SIG_BLOCK, (long)&bit, 0, sizeof bit, 0, 0)))
        return false;
    long pid = mm_sys(SYS_getpid, 0, 0, 0, 0, 0, 0), tid = mm_sys(SYS_gettid, 0, 0, 0, 0, 0, 0);
    if (MM_ERR(mm_sys(SYS_rt_tgsigqueueinfo, pid, tid, sig, (long)info, 0, 0)))
        return false; /* the handler runs now; the mask it returns to is the interrupted one */
    sigaddset(&((ucontext_t *)uctx)->uc_sigmask, sig);
    mm_deferred |= bit;
    return true;
}

bool lab_mmpool_lock_mine(void) { return mm_self_locks; }

/* ------------------------------------------------------------------------------------------
 * the chunk table */

static inline size_t mm_chunk_size(void) { return (size_t)1 << mm_shift; }

static inline size_t l2_index(uintptr_t a) { return (a >> mm_shift) & (((size_t)1 << (MM_L1_SHIFT - mm_shift)) - 1); }

static inline mm_chunk_t *chunk_lookup(uintptr_t a)
{
    if (a >> LAB_ADDR_BITS)
        return NULL;
    /* acquire pairs with the release in chunk_add: a published chunk is initialised */
    mm_chunk_t **l2 = __atomic_load_n(&mm_l1[a >> MM_L1_SHIFT], __ATOMIC_ACQUIRE);
    if (!l2)
        return NULL;
    return __atomic_load_n(&l2[l2_index(a)], __ATOMIC_ACQUIRE);
}

/* The first chunk-aligned address >= a that may hold a chunk, or >= end if none before end. */
static uintptr_t chunk_next(uintptr_t a, uintptr_t end)
{
    size_t cs = mm_chunk_size();
    for (uintptr_t g = lab_align_up(a, cs); g < end && g >= a; ) {
        if (g >> LAB_ADDR_BITS)
            return end;
        if (!__atomic_load_n(&mm_l1[g >> MM_L1_SHIFT], __ATOMIC_ACQUIRE)) {
            g = (g | (((uintptr_t)1 << MM_L1_SHIFT) - 1)) + 1;
            continue;
        }
        if (chunk_lookup(g))
            return g;
        g += cs;
    }
    return end;
}

/* ------------------------------------------------------------------------------------------
 * bins and the LRU (locked) */

static inline unsigned bin_of(size_t n)
{
    return n <= MM_EXACT ? (unsigned)n : MM_EXACT + lab_log2_floor(n) - 7;
}

static inline void bits_set(unsigned k, unsigned b) { mm_bits[k][b >> 6] |= (uint64_t)1 << (b & 63); }
static inline void bits_clear(unsigned k, unsigned b) { mm_bits[k][b >> 6] &= ~((uint64_t)1 << (b & 63)); }

/* The first non-empty bin >= b of kind k, or MM_NBINS. */
static unsigned bits_next(unsigned k, unsigned b)
{
    for (unsigned w = b >> 6; w < MM_WORDS; w++) {
        uint64_t m = mm_bits[k][w];
        if (w == b >> 6)
            m &= ~(uint64_t)0 << (b & 63);
        if (m)
            return (w << 6) + (unsigned)__builtin_ctzll(m);
    }
    return MM_NBINS;
}

static void lru_insert_after(mm_node_t *at, mm_node_t *n)
{
    n->lprev = at;
    n->lnext = at->lnext;
    at->lnext->lprev = n;
    at->lnext = n;
}

static inline size_t node_idx(const mm_node_t *n) { return (size_t)(n - n->chunk->node); }
static inline uintptr_t node_addr(const mm_node_t *n) { return n->chunk->base + (node_idx(n) << LAB_PAGE_SHIFT); }

/* Set the state bytes of pages [idx, idx+n) of c (locked; also the BUSY bit). */
static inline void state_set(mm_chunk_t *c, size_t idx, size_t n, unsigned v) { st_fill(c->state + idx, n, 0, v); }

/* Make pages [idx, idx+len) of c, whose state bytes say `kind` already, one free run. Cached runs
 * go into the LRU after lru_at (the newest end when NULL) with the given stamp. Returns the run's
 * node. (Only the bytes that change are written: a run may be most of a chunk.) */
static mm_node_t *run_insert(mm_chunk_t *c, size_t idx, size_t len, unsigned kind, uint64_t stamp,
                             mm_node_t *lru_at)
{
    mm_node_t *f = &c->node[idx];
    c->node[idx + len - 1].len = (uint32_t)len;
    f->len = (uint32_t)len;
    f->chunk = c;
    f->kind = (uint8_t)kind;
    f->stamp = stamp;
    unsigned b = bin_of(len);
    f->bin = (uint16_t)b;
    mm_node_t *h = &mm_bin[kind][b];
    f->prev = h;
    f->next = h->next;
    h->next->prev = f;
    h->next = f;
    bits_set(kind, b);
    if (kind == LAB_MM_CACHED) {
        lru_insert_after(lru_at ? lru_at : &mm_lru, f);
        mm_cached_pages += len;
    } else if (len == mm_npages) {
        mm_free_chunks++;
    }
    return f;
}

/* Take a free run out of its bin (and the LRU); returns its LRU predecessor (cached runs). The
 * caller gives its pages another state. */
static mm_node_t *run_remove(mm_node_t *f)
{
    f->prev->next = f->next;
    f->next->prev = f->prev;
    if (mm_bin[f->kind][f->bin].next == &mm_bin[f->kind][f->bin])
        bits_clear(f->kind, f->bin);
    mm_node_t *at = NULL;
    if (f->kind == LAB_MM_CACHED) {
        at = f->lprev;
        f->lprev->lnext = f->lnext;
        f->lnext->lprev = f->lprev;
        mm_cached_pages -= f->len;
    } else if (f->len == mm_npages) {
        mm_free_chunks--;
    }
    return at;
}

/* A run of kind k with at least n pages (best fit by bin), or NULL. */
static mm_node_t *run_find(unsigned k, size_t n)
{
    for (unsigned b = bits_next(k, bin_of(n)); b < MM_NBINS; b = bits_next(k, b + 1)) {
        mm_node_t *h = &mm_bin[k][b];
        for (mm_node_t *f = h->next; f != h; f = f->next)
            if (f->len >= n)
                return f;
    }
    return NULL;
}

/* Take pages [i, e) of c, part of one free run of kind k, out of it (the rest stays free, with
 * its age and place in the LRU) and mark them k|BUSY. */
static void run_cut(mm_chunk_t *c, size_t i, size_t e, unsigned k)
{
    size_t st = i;
    while (st > 0 && st_get(&c->state[st - 1]) == k) /* runs are maximal: this is the run's start */
        st--;
    mm_node_t *f = &c->node[st];
    size_t re = st + f->len;
    uint64_t stamp = f->stamp;
    mm_node_t *at = run_remove(f);
    if (st < i)
        at = run_insert(c, st, i - st, k, stamp, at);
    if (e < re)
        run_insert(c, e, re - e, k, stamp, at);
    state_set(c, i, e - i, k | LAB_MM_BUSY);
}

/* Give [a, end) (one chunk, PROT_NONE and free in the kernel's eyes too) back as a free run of
 * kind, coalesced with free neighbours of the same kind (runs stay maximal). */
static void run_put(uintptr_t a, uintptr_t end, unsigned kind)
{
    mm_chunk_t *c = chunk_lookup(a);
    size_t idx = (a - c->base) >> LAB_PAGE_SHIFT, len = (end - a) >> LAB_PAGE_SHIFT;
    state_set(c, idx, len, kind);
    if (idx > 0 && st_get(&c->state[idx - 1]) == kind) {
        size_t l = c->node[idx - 1].len;
        run_remove(&c->node[idx - l]);
        idx -= l;
        len += l;
    }
    if (idx + len < mm_npages && st_get(&c->state[idx + len]) == kind) {
        size_t r = c->node[idx + len].len;
        run_remove(&c->node[idx + len]);
        len += r;
    }
    run_insert(c, idx, len, kind, kind == LAB_MM_CACHED ? lab_clock_ms() : 0, NULL);
}

/* ------------------------------------------------------------------------------------------
 * chunks: reserved unlocked (lab_mmpool_grow), added and forgotten locked */

/* Reserve 2^shift bytes aligned to their size, PROT_NONE (no memory, no commit charge); just
 * below `last` first (one call, and the area stays in one piece). 0 on failure. Unlocked. */
static uintptr_t chunk_reserve(uintptr_t last)
{
    size_t cs = mm_chunk_size();
    const int fl = MAP_PRIVATE | MAP_ANONYMOUS;
    if (last > cs) {
        uintptr_t want = last - cs;
        long r = mm_sys(SYS_mmap, (long)want, (long)cs, PROT_NONE, fl | MAP_FIXED_NOREPLACE, -1, 0);
        if ((uintptr_t)r == want)
            return want;
        if (!MM_ERR(r))
            mm_sys(SYS_munmap, r, (long)cs, 0, 0, 0, 0); /* an old kernel took it for a hint */
    }
    long r = mm_sys(SYS_mmap, 0, (long)(2 * cs), PROT_NONE, fl, -1, 0);
    if (MM_ERR(r))
        return 0;
    uintptr_t p = (uintptr_t)r, base = lab_align_up(p, cs);
    if (base > p)
        mm_sys(SYS_munmap, (long)p, (long)(base - p), 0, 0, 0, 0);
    if (p + 2 * cs > base + cs)
        mm_sys(SYS_munmap, (long)(base + cs), (long)(p + 2 * cs - (base + cs)), 0, 0, 0, 0);
    return base;
}

/* A new metadata block (chunk header, nodes, state bytes). Unlocked. */
static mm_chunk_t *chunk_meta_new(void)
{
    long r = mm_sys(SYS_mmap, 0, (long)mm_meta_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (MM_ERR(r))
        return NULL;
    mm_chunk_t *c = (mm_chunk_t *)r;
    c->node = (mm_node_t *)((char *)c + lab_align_up(sizeof *c, 64));
    c->state = (uint8_t *)(c->node + mm_npages);
    return c;
}

/* The L2 table that will hold the chunk at base exists. Unlocked: two threads may race to map it;
 * the loser unmaps its own. */
static bool chunk_l2_ensure(uintptr_t base)
{
    mm_chunk_t ***slot = &mm_l1[base >> MM_L1_SHIFT];
    if (__atomic_load_n(slot, __ATOMIC_ACQUIRE))
        return true;
    size_t bytes = lab_align_up(sizeof(void *) << (MM_L1_SHIFT - mm_shift), LAB_PAGE_SIZE);
    long r = mm_sys(SYS_mmap, 0, (long)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (MM_ERR(r))
        return false;
    mm_chunk_t **want = NULL;
    /* release: the zeroed table is visible before the pointer to it */
    if (!__atomic_compare_exchange_n(slot, &want, (mm_chunk_t **)r, false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
        mm_sys(SYS_munmap, r, (long)bytes, 0, 0, 0, 0);
    return true;
}

/* Add the reserved chunk at base, metadata c, as one fresh run. Locked. */
static void chunk_add(mm_chunk_t *c, uintptr_t base)
{
    size_t cs = mm_chunk_size();
    c->base = base;
    c->born = ++mm_births;
    c->prev = NULL;
    c->next = mm_chunks;
    if (mm_chunks)
        mm_chunks->prev = c;
    mm_chunks = c;
    mm_nchunks++;
    mm_last_base = base;
    state_set(c, 0, mm_npages, LAB_MM_FRESH);
    run_insert(c, 0, mm_npages, LAB_MM_FRESH, 0, NULL);
    if (base < mm_lo)
        lab_store_relaxed(&mm_lo, base);
    if (base + cs > mm_hi)
        lab_store_relaxed(&mm_hi, base + cs);
    /* release: the chunk's metadata and state bytes are initialised before lock-free readers find it */
    __atomic_store_n(&mm_l1[base >> MM_L1_SHIFT][l2_index(base)], c, __ATOMIC_RELEASE);
}

/* The chunk c was given back to the kernel: forget it. Its metadata is kept for the next chunk:
 * a lock-free reader that found it a moment ago still reads valid memory. Locked. Between the
 * munmap and now, another thread may have reserved the same place again and added it: the table
 * then holds that chunk, and keeps it. */
static void chunk_forget(mm_chunk_t *c)
{
    mm_chunk_t *was = c;
    /* release: as in chunk_add (a NULL needs no ordering, but the slot may hold a newer chunk) */
    __atomic_compare_exchange_n(&mm_l1[c->base >> MM_L1_SHIFT][l2_index(c->base)], &was, NULL, false,
                                __ATOMIC_RELEASE, __ATOMIC_RELAXED);
    if (c->prev)
        c->prev->next = c->next;
    else
        mm_chunks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    state_set(c, 0, mm_npages, LAB_MM_FOREIGN); /* a stale reader sees "not ours" */
    c->next = mm_spare_meta;
    mm_spare_meta = c;
    mm_nchunks--;
    mm_released++;
}

bool lab_mmpool_grow(void)
{
    mm_chunk_t *c = mm_spare_meta;
    if (c)
        mm_spare_meta = c->next;
    uintptr_t last = mm_last_base;
    lab_mmpool_lock_drop();
    uintptr_t base = chunk_reserve(last);
    if (base && !c)
        c = chunk_meta_new();
    if (base && (!c || !chunk_l2_ensure(base))) {
        mm_sys(SYS_munmap, (long)base, (long)mm_chunk_size(), 0, 0, 0, 0);
        base = 0;
    }
    lab_mmpool_lock_take();
    if (!base) {
        if (c) {
            c->next = mm_spare_meta;
            mm_spare_meta = c;
        }
        return false;
    }
    chunk_add(c, base);
    return true;
}

/* ------------------------------------------------------------------------------------------
 * operations in flight */

void lab_mmpool_publish(uintptr_t a, uintptr_t end, uint64_t mark)
{
    for (uintptr_t p = a, q; p < end; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q, mark);
        if (!(s & LAB_MM_BUSY))
            continue;
        unsigned k = s & LAB_MM_KIND;
        if (k == LAB_MM_FRESH || k == LAB_MM_CACHED) {
            run_put(p, q, k);
        } else { /* LIVE or FOREIGN pages a handler's call may make FOREIGN meanwhile */
            mm_chunk_t *c = chunk_lookup(p);
            st_update(c->state + ((p - c->base) >> LAB_PAGE_SHIFT), (q - p) >> LAB_PAGE_SHIFT, ST_PUBLISHED);
        }
    }
}

/* A fork child's BUSY pages, left by operations of threads it does not have: published as they
 * stand. Their TRANSIT pages become LIVE|TAINT: their protection and bytes are unknown, and they
 * are reset if the program ever unmaps them. Locked (or the child's only thread), with nothing
 * of this thread's in flight. */
static void sweep(void)
{
    mm_sweep_due = false;
    mm_room = 0;
    for (mm_chunk_t *c = mm_chunks; c; c = c->next)
        lab_mmpool_publish(c->base, c->base + mm_chunk_size(), UINT64_MAX);
}

bool lab_mmpool_blocked(uintptr_t a, uintptr_t end)
{
    if (lab_unlikely(mm_sweep_due) && !mm_self_busy)
        sweep();
    for (uintptr_t p = a, q; p < end; p = q)
        if (lab_mmpool_segment(p, end, &q, UINT64_MAX) & LAB_MM_BUSY)
            return true;
    return false;
}

void lab_mmpool_wait(void)
{
    /* read under the lock: an operation that ends after the unlock below moves mm_gen, and then
     * the futex wait returns at once instead of sleeping through the wake-up */
    int seen = lab_load_relaxed(&mm_gen);
    mm_self_waiting = true;
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* flag first: a fork child over-counts, never under */
    mm_waiters++;
    lab_mmpool_lock_drop();
    lab_os_futex_wait(&mm_gen, seen);
    lab_mmpool_lock_take();
    mm_waiters--;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    mm_self_waiting = false;
}

uint64_t lab_mmpool_begin(void)
{
    if (lab_unlikely(mm_sweep_due) && !mm_self_busy)
        sweep();
    mm_self_busy = true;
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* before any page is claimed: see lab_mmpool_fork_child */
    return mm_births;
}

void lab_mmpool_claim(uintptr_t a, uintptr_t end)
{
    for (uintptr_t p = a, q; p < end; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q, UINT64_MAX);
        if (s & LAB_MM_OUTSIDE)
            continue;
        mm_chunk_t *c = chunk_lookup(p);
        size_t i = (p - c->base) >> LAB_PAGE_SHIFT, e = (q - c->base) >> LAB_PAGE_SHIFT;
        if (s == LAB_MM_FRESH || s == LAB_MM_CACHED)
            run_cut(c, i, e, s);
        else /* as in lab_mmpool_publish */
            st_update(c->state + i, e - i, ST_BUSY);
    }
}

bool lab_mmpool_end(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* after the pages were published */
    mm_self_busy = false;
    if (lab_unlikely(mm_sweep_due))
        sweep();
    if (mm_waiters <= 0)
        return false;
    /* relaxed: the futex reads it in the kernel; the lock's release orders it for the waiters */
    lab_store_relaxed(&mm_gen, mm_gen + 1);
    return true;
}

void lab_mmpool_wake(void) { lab_os_futex_wake(&mm_gen, INT_MAX); }

void lab_mmpool_fork_child(bool took)
{
    /* from a signal handler that interrupted this thread's call, that call resumes when the
     * handler returns: it may be waiting (then it returns from its wait and looks again) */
    mm_waiters = mm_self_waiting;
    lab_store_relaxed(&mm_gen, mm_gen + 1);
    if (!took) {
        /* this thread's call holds the lock, half-way through the bookkeeping: the sweep waits
         * until it is over */
        mm_sweep_due = true;
        return;
    }
    /* the parent's handler held the lock: no bookkeeping was half done. BUSY pages are those of
     * operations in their system calls, in threads the child does not have (and this thread's,
     * if its call was interrupted: the sweep then waits for it to end). */
    lab_lock_reset(&lab_mmpool_lock);
    mm_self_locks = false;
    if (mm_deferred) /* the parent's signals stay with the parent: the child's mask is as before */
        mm_undefer();
    if (mm_self_busy)
        mm_sweep_due = true;
    else
        sweep();
}

/* ------------------------------------------------------------------------------------------
 * the rest of the calls of mmap_pool.h */

void lab_mmpool_setup(size_t max_bytes, size_t cache_bytes, unsigned purge_delay_ms)
{
    unsigned shift = 23;
    while (shift < 30 && ((size_t)1 << shift) < 4 * max_bytes)
        shift++;
    mm_shift = shift;
    mm_npages = (size_t)1 << (shift - LAB_PAGE_SHIFT);
    mm_meta_bytes = lab_align_up(lab_align_up(sizeof(mm_chunk_t), 64) + mm_npages * (sizeof(mm_node_t) + 1),
                                 LAB_PAGE_SIZE);
    mm_cap_pages = cache_bytes >> LAB_PAGE_SHIFT;
    mm_delay_ms = purge_delay_ms;
    for (unsigned k = 0; k < 2; k++)
        for (unsigned b = 0; b < MM_NBINS; b++)
            mm_bin[k][b].next = mm_bin[k][b].prev = &mm_bin[k][b];
    mm_lru.lnext = mm_lru.lprev = &mm_lru;
}

bool lab_mmpool_touches(uintptr_t a, uintptr_t end)
{
    uintptr_t lo = lab_load_relaxed(&mm_lo), hi = lab_load_relaxed(&mm_hi);
    if (end <= lo || a >= hi)
        return false;
    a = lab_max(a, lo);
    end = lab_min(end, hi);
    if (chunk_lookup(a))
        return true;
    return chunk_next(a, end) < end;
}

unsigned lab_mmpool_segment(uintptr_t a, uintptr_t end, uintptr_t *seg_end, uint64_t mark)
{
    mm_chunk_t *c = chunk_lookup(a);
    size_t cs = mm_chunk_size();
    if (!c || a - c->base >= cs) {
        *seg_end = chunk_next(a + 1, end);
        return LAB_MM_OUTSIDE;
    }
    size_t n = (lab_min(end - c->base, cs)) >> LAB_PAGE_SHIFT;
    if (mark != UINT64_MAX && c->born > mark) {
        *seg_end = c->base + (n << LAB_PAGE_SHIFT);
        return LAB_MM_NEWER;
    }
    size_t i = (a - c->base) >> LAB_PAGE_SHIFT;
    uint8_t s = st_get(&c->state[i]);
    *seg_end = c->base + (st_span(c->state, i + 1, n, s) << LAB_PAGE_SHIFT);
    return s;
}

void lab_mmpool_mark(uintptr_t a, uintptr_t end, unsigned state)
{
    mm_chunk_t *c = chunk_lookup(a);
    if (!c || a >= end)
        return;
    st_fill(c->state + ((a - c->base) >> LAB_PAGE_SHIFT), (end - a) >> LAB_PAGE_SHIFT, LAB_MM_BUSY, state);
}

/* Every pooled page of [a, end) (any range) as st_update makes it. */
static void st_update_range(uintptr_t a, uintptr_t end, int how)
{
    for (uintptr_t p = a, q; p < end; p = q) {
        unsigned s = lab_mmpool_segment(p, end, &q, UINT64_MAX);
        if (s & LAB_MM_OUTSIDE)
            continue;
        mm_chunk_t *c = chunk_lookup(p);
        st_update(c->state + ((p - c->base) >> LAB_PAGE_SHIFT), (q - p) >> LAB_PAGE_SHIFT, how);
    }
}

void lab_mmpool_mark_live(uintptr_t a, uintptr_t end) { st_update_range(a, end, ST_LIVE_TO_FOREIGN); }

/* Only where the byte still says LIVE when written: from a handler's call the pages may be
 * another thread's operation's, which may make them TRANSIT or CACHED meanwhile. */
void lab_mmpool_taint(uintptr_t a, uintptr_t end) { st_update_range(a, end, ST_TAINT); }

uintptr_t lab_mmpool_take(size_t npages, unsigned *kind)
{
    if (npages == 0 || npages > mm_npages)
        return 0;
    mm_node_t *f = run_find(LAB_MM_CACHED, npages);
    if (!f)
        f = run_find(LAB_MM_FRESH, npages);
    if (!f)
        return 0;
    mm_chunk_t *c = f->chunk;
    size_t idx = node_idx(f), len = f->len;
    unsigned k = f->kind;
    uint64_t stamp = f->stamp;
    mm_node_t *at = run_remove(f);
    if (len > npages) /* the rest keeps its age and its place in the LRU */
        run_insert(c, idx + npages, len - npages, k, stamp, at);
    state_set(c, idx, npages, LAB_MM_TRANSIT | LAB_MM_BUSY);
    *kind = k;
    return c->base + (idx << LAB_PAGE_SHIFT);
}

void lab_mmpool_reclaim(uintptr_t a, uintptr_t end)
{
    long r = mm_sys(SYS_mmap, (long)a, (long)(end - a), PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if ((uintptr_t)r == a) {
        lab_mmpool_mark(a, end, LAB_MM_FRESH);
        return;
    }
    if (!MM_ERR(r)) /* a kernel without MAP_FIXED_NOREPLACE put it elsewhere */
        mm_sys(SYS_munmap, r, (long)(end - a), 0, 0, 0, 0);
    lab_mmpool_mark(a, end, LAB_MM_FOREIGN);
}

long lab_mmpool_reset(uintptr_t a, uintptr_t end)
{
    long r = mm_sys(SYS_mmap, (long)a, (long)(end - a), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if ((uintptr_t)r == a) {
        lab_mmpool_mark(a, end, LAB_MM_FRESH);
        return 0;
    }
    r = mm_sys(SYS_munmap, (long)a, (long)(end - a), 0, 0, 0, 0);
    if (MM_ERR(r))
        return r;
    lab_mmpool_reclaim(a, end);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * the cache: jobs */

/* Take the free run f out to be purged (TRANSIT|BUSY until the job is done). */
static void job_purge(mm_node_t *f, lab_mmpool_jobs_t *jobs)
{
    mm_chunk_t *c = f->chunk;
    size_t idx = node_idx(f), len = f->len;
    uintptr_t a = node_addr(f);
    run_remove(f);
    state_set(c, idx, len, LAB_MM_TRANSIT | LAB_MM_BUSY);
    jobs->job[jobs->n].a = a;
    jobs->job[jobs->n].end = a + (len << LAB_PAGE_SHIFT);
    jobs->job[jobs->n].release = false;
    jobs->n++;
}

/* Take a wholly free chunk out to be released, if there is one beyond the one kept. */
static void job_release(lab_mmpool_jobs_t *jobs)
{
    if (mm_free_chunks < 2 || jobs->n == LAB_MMPOOL_JOBS)
        return;
    mm_node_t *f = run_find(LAB_MM_FRESH, mm_npages); /* runs never cross chunks: a whole one */
    mm_chunk_t *c = f->chunk;
    run_remove(f);
    state_set(c, 0, mm_npages, LAB_MM_TRANSIT | LAB_MM_BUSY);
    jobs->job[jobs->n].a = c->base;
    jobs->job[jobs->n].end = c->base + mm_chunk_size();
    jobs->job[jobs->n].chunk = c;
    jobs->job[jobs->n].release = true;
    jobs->n++;
}

bool lab_mmpool_cache_room(size_t npages, lab_mmpool_jobs_t *jobs)
{
    if (npages > mm_cap_pages)
        return false;
    for (int k = 0; k < 4 && mm_cached_pages + mm_room + npages > mm_cap_pages && mm_lru.lprev != &mm_lru &&
                    jobs->n < LAB_MMPOOL_JOBS;
         k++)
        job_purge(mm_lru.lprev, jobs);
    if (mm_cached_pages + mm_room + npages > mm_cap_pages)
        return false;
    mm_room += npages;
    return true;
}

void lab_mmpool_cache_unreserve(size_t npages) { mm_room -= lab_min(npages, mm_room); }

void lab_mmpool_maintain(uint64_t now, bool force, lab_mmpool_jobs_t *jobs)
{
    for (int k = 0; mm_lru.lprev != &mm_lru && jobs->n < LAB_MMPOOL_JOBS && (force || k < 8); k++) {
        mm_node_t *old = mm_lru.lprev;
        if (!force && now < old->stamp + mm_delay_ms) /* stamps may be a tick past a `now` read earlier */
            break;
        job_purge(old, jobs);
    }
    job_release(jobs);
}

uint64_t lab_mmpool_next_due(void)
{
    return mm_lru.lprev == &mm_lru ? UINT64_MAX : mm_lru.lprev->stamp + mm_delay_ms;
}

void lab_mmpool_jobs_run(lab_mmpool_jobs_t *jobs)
{
    for (; jobs->ran < jobs->n; jobs->ran++) {
        uintptr_t a = jobs->job[jobs->ran].a, end = jobs->job[jobs->ran].end;
        if (jobs->job[jobs->ran].release) {
            jobs->job[jobs->ran].ok = !MM_ERR(mm_sys(SYS_munmap, (long)a, (long)(end - a), 0, 0, 0, 0));
            continue;
        }
        /* fresh pages in its place: memory and commit charge given back */
        bool ok = lab_mmpool_reset(a, end) == 0;
        if (ok) /* counted as each run goes back, not after the batch: a reader never sees the
                 * pages gone from memory before the counter says so */
            lab_add_relaxed(&mm_purged_pages, (end - a) >> LAB_PAGE_SHIFT);
        else /* kept cached, stamped now, so it is not retried at once */
            lab_mmpool_mark(a, end, LAB_MM_CACHED);
        jobs->job[jobs->ran].ok = ok;
    }
}

size_t lab_mmpool_jobs_done(lab_mmpool_jobs_t *jobs)
{
    size_t purged = 0;
    for (unsigned i = 0; i < jobs->n; i++) {
        uintptr_t a = jobs->job[i].a, end = jobs->job[i].end;
        if (jobs->job[i].release) {
            mm_chunk_t *c = jobs->job[i].chunk;
            if (jobs->job[i].ok) {
                chunk_forget(c);
            } else {
                state_set(c, 0, mm_npages, LAB_MM_FRESH);
                run_insert(c, 0, mm_npages, LAB_MM_FRESH, 0, NULL);
            }
            continue;
        }
        purged += jobs->job[i].ok;
        lab_mmpool_publish(a, end, UINT64_MAX);
    }
    jobs->n = jobs->ran = 0;
    return purged;
}

void lab_mmpool_counts(struct lab_mmpool_counts *out)
{
    memset(out, 0, sizeof *out);
    for (mm_chunk_t *c = mm_chunks; c; c = c->next)
        for (size_t i = 0; i < mm_npages; i++)
            out->live_pages += (st_get(&c->state[i]) & LAB_MM_KIND) == LAB_MM_LIVE;
    out->cached_pages = mm_cached_pages;
    out->chunks = mm_nchunks;
    out->reserved_pages = mm_nchunks * mm_npages;
    out->purged_pages = lab_load_relaxed(&mm_purged_pages);
    out->chunks_released = mm_released;
}
