/* mmap_pool.c — the area behind pooled anonymous mmap: reserved chunks, page states, free runs
 * in size bins, the LRU of cached runs and its purging (see mmap_pool.h for the states).
 * Layer 5 (preload): calls core/os (raw system calls) and lock.h only. Its metadata comes from
 * raw mmap, never from the malloc pool, so no call here waits on a lock of malloc's.
 *
 * A chunk is 2^shift bytes (8 MiB by default), aligned to its size, and found from an address
 * through a two-level table (like the malloc page map, but of its own). Each chunk has a state
 * byte and a 56-byte node per page; a free run's length sits in the nodes of its first and last
 * pages (boundary tags), its links in the first. Free runs are binned by length (exactly up to
 * 256 pages, by powers of two above) in two bin sets, CACHED and FRESH; cached runs are also on
 * an LRU list, oldest at the tail, for purging. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

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
} mm_chunk_t;

lab_lock_t lab_mmpool_lock = LAB_LOCK_INIT;

static unsigned mm_shift = 23;
static size_t mm_npages = 2048;
static size_t mm_cap_pages;             /* LABYRINTH_MMAP_CACHE in pages */
static unsigned mm_delay_ms = 1000;
static size_t mm_meta_bytes;

/* chunk number -> chunk: L1 per 32 GiB, L2 tables mapped on demand and never freed */
static mm_chunk_t **mm_l1[MM_L1_SIZE];
static uintptr_t mm_lo = UINTPTR_MAX, mm_hi; /* bounds of every chunk ever made (quick rejection) */

static mm_node_t mm_bin[2][MM_NBINS];   /* [LAB_MM_FRESH / LAB_MM_CACHED][bin] list heads */
static uint64_t mm_bits[2][MM_WORDS];   /* non-empty bins */
static mm_node_t mm_lru;                /* lnext: the newest cached run; lprev: the oldest */
static size_t mm_cached_pages, mm_free_chunks;
static uint64_t mm_purged_pages, mm_released;
static mm_chunk_t *mm_chunks, *mm_spare_meta;
static size_t mm_nchunks;
static uintptr_t mm_last_base;          /* where the last chunk went: the next goes just below */

static inline long mm_sys(long n, long a, long b, long c, long d, long e, long f)
{
    return lab_os_raw6(n, a, b, c, d, e, f);
}

/* ------------------------------------------------------------------------------------------
 * the chunk table */

static inline size_t mm_chunk_size(void) { return (size_t)1 << mm_shift; }

static inline mm_chunk_t *chunk_lookup(uintptr_t a)
{
    if (a >> LAB_ADDR_BITS)
        return NULL;
    /* acquire pairs with the release in chunk_publish: a published chunk is initialised */
    mm_chunk_t **l2 = __atomic_load_n(&mm_l1[a >> MM_L1_SHIFT], __ATOMIC_ACQUIRE);
    if (!l2)
        return NULL;
    return __atomic_load_n(&l2[(a >> mm_shift) & (((size_t)1 << (MM_L1_SHIFT - mm_shift)) - 1)],
                           __ATOMIC_ACQUIRE);
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

static bool chunk_publish(uintptr_t base, mm_chunk_t *c)
{
    mm_chunk_t ***slot = &mm_l1[base >> MM_L1_SHIFT];
    mm_chunk_t **l2 = *slot;
    if (!l2) {
        size_t bytes = lab_align_up(sizeof(void *) << (MM_L1_SHIFT - mm_shift), LAB_PAGE_SIZE);
        long r = mm_sys(SYS_mmap, 0, (long)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (MM_ERR(r))
            return false;
        l2 = (mm_chunk_t **)r;
        /* release: the zeroed table is visible before the pointer to it */
        __atomic_store_n(slot, l2, __ATOMIC_RELEASE);
    }
    /* release: the chunk's metadata is initialised before lock-free readers find it */
    __atomic_store_n(&l2[(base >> mm_shift) & (((size_t)1 << (MM_L1_SHIFT - mm_shift)) - 1)], c, __ATOMIC_RELEASE);
    return true;
}

/* ------------------------------------------------------------------------------------------
 * bins and the LRU */

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

/* Make pages [idx, idx+len) of c one free run of `kind`. Cached runs go into the LRU after
 * lru_at (the newest end when NULL) with the given stamp. Returns the run's node. */
static mm_node_t *run_insert(mm_chunk_t *c, size_t idx, size_t len, unsigned kind, uint64_t stamp,
                             mm_node_t *lru_at)
{
    mm_node_t *f = &c->node[idx];
    memset(c->state + idx, (int)kind, len);
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

/* Take a free run out of its bin (and the LRU); returns its LRU predecessor (cached runs). */
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

/* ------------------------------------------------------------------------------------------
 * chunks */

static void chunk_release(mm_chunk_t *c);

/* Reserve a new chunk (PROT_NONE: no memory, no commit charge) and bin it as one fresh run. */
static mm_chunk_t *chunk_new(void)
{
    size_t cs = mm_chunk_size();
    const int fl = MAP_PRIVATE | MAP_ANONYMOUS;
    uintptr_t base = 0;
    /* just below the last one first: one call, and the area stays in one piece */
    if (mm_last_base > cs) {
        uintptr_t want = mm_last_base - cs;
        long r = mm_sys(SYS_mmap, (long)want, (long)cs, PROT_NONE, fl | MAP_FIXED_NOREPLACE, -1, 0);
        if ((uintptr_t)r == want)
            base = want;
        else if (!MM_ERR(r))
            mm_sys(SYS_munmap, r, (long)cs, 0, 0, 0, 0); /* an old kernel took it for a hint */
    }
    if (!base) {
        long r = mm_sys(SYS_mmap, 0, (long)(2 * cs), PROT_NONE, fl, -1, 0);
        if (MM_ERR(r))
            return NULL;
        uintptr_t p = (uintptr_t)r;
        base = lab_align_up(p, cs);
        if (base > p)
            mm_sys(SYS_munmap, (long)p, (long)(base - p), 0, 0, 0, 0);
        if (p + 2 * cs > base + cs)
            mm_sys(SYS_munmap, (long)(base + cs), (long)(p + 2 * cs - (base + cs)), 0, 0, 0, 0);
    }
    mm_chunk_t *c = mm_spare_meta;
    if (c) {
        mm_spare_meta = c->next;
    } else {
        long r = mm_sys(SYS_mmap, 0, (long)mm_meta_bytes, PROT_READ | PROT_WRITE, fl, -1, 0);
        if (MM_ERR(r)) {
            mm_sys(SYS_munmap, (long)base, (long)cs, 0, 0, 0, 0);
            return NULL;
        }
        c = (mm_chunk_t *)r;
        c->node = (mm_node_t *)((char *)c + lab_align_up(sizeof *c, 64));
        c->state = (uint8_t *)(c->node + mm_npages);
    }
    c->base = base;
    if (!chunk_publish(base, c)) {
        c->next = mm_spare_meta;
        mm_spare_meta = c;
        mm_sys(SYS_munmap, (long)base, (long)cs, 0, 0, 0, 0);
        return NULL;
    }
    c->prev = NULL;
    c->next = mm_chunks;
    if (mm_chunks)
        mm_chunks->prev = c;
    mm_chunks = c;
    mm_nchunks++;
    mm_last_base = base;
    if (base < mm_lo)
        lab_store_relaxed(&mm_lo, base);
    if (base + cs > mm_hi)
        lab_store_relaxed(&mm_hi, base + cs);
    run_insert(c, 0, mm_npages, LAB_MM_FRESH, 0, NULL);
    return c;
}

/* Give a wholly fresh chunk back to the kernel (one spare is kept). Its metadata is kept for the
 * next chunk: a lock-free reader that found it a moment ago still reads valid memory. */
static void chunk_release(mm_chunk_t *c)
{
    mm_node_t *f = &c->node[0];
    run_remove(f);
    if (MM_ERR(mm_sys(SYS_munmap, (long)c->base, (long)mm_chunk_size(), 0, 0, 0, 0))) {
        run_insert(c, 0, mm_npages, LAB_MM_FRESH, 0, NULL);
        return;
    }
    mm_chunk_t **l2 = mm_l1[c->base >> MM_L1_SHIFT];
    __atomic_store_n(&l2[(c->base >> mm_shift) & (((size_t)1 << (MM_L1_SHIFT - mm_shift)) - 1)], NULL,
                     __ATOMIC_RELEASE);
    if (c->prev)
        c->prev->next = c->next;
    else
        mm_chunks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    memset(c->state, LAB_MM_FOREIGN, mm_npages); /* a stale reader sees "not ours" */
    c->next = mm_spare_meta;
    mm_spare_meta = c;
    mm_nchunks--;
    mm_released++;
}

/* ------------------------------------------------------------------------------------------
 * the calls of mmap_pool.h */

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

unsigned lab_mmpool_segment(uintptr_t a, uintptr_t end, uintptr_t *seg_end)
{
    mm_chunk_t *c = chunk_lookup(a);
    if (!c || a - c->base >= mm_chunk_size()) {
        *seg_end = chunk_next(a + 1, end);
        return LAB_MM_OUTSIDE;
    }
    size_t i = (a - c->base) >> LAB_PAGE_SHIFT;
    size_t n = (lab_min(end - c->base, mm_chunk_size())) >> LAB_PAGE_SHIFT;
    uint8_t s = c->state[i];
    size_t j = i + 1;
    while (j < n && c->state[j] == s)
        j++;
    *seg_end = c->base + (j << LAB_PAGE_SHIFT);
    return s;
}

void lab_mmpool_mark(uintptr_t a, uintptr_t end, unsigned state)
{
    mm_chunk_t *c = chunk_lookup(a);
    if (!c || a >= end)
        return;
    memset(c->state + ((a - c->base) >> LAB_PAGE_SHIFT), (int)state, (end - a) >> LAB_PAGE_SHIFT);
}

void lab_mmpool_taint(uintptr_t a, uintptr_t end)
{
    for (uintptr_t p = a, q; p < end; p = q)
        if (lab_mmpool_segment(p, end, &q) == LAB_MM_LIVE)
            lab_mmpool_mark(p, q, LAB_MM_LIVE | LAB_MM_TAINT);
}

uintptr_t lab_mmpool_take(size_t npages, unsigned *kind)
{
    if (npages == 0 || npages > mm_npages)
        return 0;
    mm_node_t *f = run_find(LAB_MM_CACHED, npages);
    if (!f)
        f = run_find(LAB_MM_FRESH, npages);
    if (!f) {
        if (!chunk_new())
            return 0;
        f = run_find(LAB_MM_FRESH, npages);
    }
    mm_chunk_t *c = f->chunk;
    size_t idx = node_idx(f), len = f->len;
    unsigned k = f->kind;
    uint64_t stamp = f->stamp;
    mm_node_t *at = run_remove(f);
    if (len > npages) /* the rest keeps its age and its place in the LRU */
        run_insert(c, idx + npages, len - npages, k, stamp, at);
    memset(c->state + idx, LAB_MM_LIVE, npages);
    *kind = k;
    return c->base + (idx << LAB_PAGE_SHIFT);
}

size_t lab_mmpool_take_range(uintptr_t a, uintptr_t end)
{
    mm_chunk_t *c = chunk_lookup(a);
    if (!c)
        return 0;
    size_t cached = 0;
    size_t i = (a - c->base) >> LAB_PAGE_SHIFT, e = (end - c->base) >> LAB_PAGE_SHIFT;
    while (i < e) {
        uint8_t s = c->state[i];
        if (s != LAB_MM_FRESH && s != LAB_MM_CACHED) {
            i++;
            continue;
        }
        size_t st = i;
        while (st > 0 && c->state[st - 1] == s) /* runs are maximal: this is the run's start */
            st--;
        mm_node_t *f = &c->node[st];
        size_t re = st + f->len, te = lab_min(re, e);
        uint64_t stamp = f->stamp;
        mm_node_t *at = run_remove(f);
        if (st < i)
            at = run_insert(c, st, i - st, s, stamp, at);
        if (te < re)
            run_insert(c, te, re - te, s, stamp, at);
        memset(c->state + i, LAB_MM_LIVE, te - i);
        if (s == LAB_MM_CACHED)
            cached += te - i;
        i = te;
    }
    return cached;
}

void lab_mmpool_put(uintptr_t a, uintptr_t end, unsigned kind)
{
    mm_chunk_t *c = chunk_lookup(a);
    if (!c || a >= end)
        return;
    size_t idx = (a - c->base) >> LAB_PAGE_SHIFT, len = (end - a) >> LAB_PAGE_SHIFT;
    /* coalesce with free neighbours of the same kind (runs stay maximal) */
    if (idx > 0 && c->state[idx - 1] == kind) {
        size_t l = c->node[idx - 1].len;
        run_remove(&c->node[idx - l]);
        idx -= l;
        len += l;
    }
    if (idx + len < mm_npages && c->state[idx + len] == kind) {
        size_t r = c->node[idx + len].len;
        run_remove(&c->node[idx + len]);
        len += r;
    }
    run_insert(c, idx, len, kind, kind == LAB_MM_CACHED ? lab_clock_ms() : 0, NULL);
    if (kind == LAB_MM_FRESH && len == mm_npages && mm_free_chunks > 1)
        chunk_release(c);
}

void lab_mmpool_reclaim(uintptr_t a, uintptr_t end)
{
    long r = mm_sys(SYS_mmap, (long)a, (long)(end - a), PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if ((uintptr_t)r == a) {
        lab_mmpool_put(a, end, LAB_MM_FRESH);
        return;
    }
    if (!MM_ERR(r)) /* a kernel without MAP_FIXED_NOREPLACE put it elsewhere */
        mm_sys(SYS_munmap, r, (long)(end - a), 0, 0, 0, 0);
    lab_mmpool_mark(a, end, LAB_MM_FOREIGN);
}

long lab_mmpool_discard(uintptr_t a, uintptr_t end)
{
    long r = mm_sys(SYS_mmap, (long)a, (long)(end - a), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if ((uintptr_t)r == a) {
        lab_mmpool_put(a, end, LAB_MM_FRESH);
        return 0;
    }
    r = mm_sys(SYS_munmap, (long)a, (long)(end - a), 0, 0, 0, 0);
    if (MM_ERR(r))
        return r;
    lab_mmpool_reclaim(a, end);
    return 0;
}

/* Purge one cached run: fresh pages in its place (memory and commit charge given back). */
static void purge_run(mm_node_t *f)
{
    uintptr_t a = node_addr(f), end = a + ((uintptr_t)f->len << LAB_PAGE_SHIFT);
    mm_chunk_t *c = f->chunk;
    size_t idx = node_idx(f), len = f->len;
    run_remove(f);
    long r = mm_sys(SYS_mmap, (long)a, (long)(end - a), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if ((uintptr_t)r != a) { /* keep it cached, stamped now, so it is not retried at once */
        run_insert(c, idx, len, LAB_MM_CACHED, lab_clock_ms(), NULL);
        return;
    }
    mm_purged_pages += len;
    memset(c->state + idx, LAB_MM_LIVE, len); /* neither kind: put coalesces it as fresh */
    lab_mmpool_put(a, end, LAB_MM_FRESH);
}

bool lab_mmpool_cache_room(size_t npages)
{
    if (npages > mm_cap_pages)
        return false;
    for (int k = 0; k < 4 && mm_cached_pages + npages > mm_cap_pages && mm_lru.lprev != &mm_lru; k++)
        purge_run(mm_lru.lprev);
    return mm_cached_pages + npages <= mm_cap_pages;
}

void lab_mmpool_maintain(uint64_t now, bool force)
{
    for (int k = 0; mm_lru.lprev != &mm_lru && (force || k < 8); k++) {
        mm_node_t *old = mm_lru.lprev;
        if (!force && now - old->stamp < mm_delay_ms)
            break;
        purge_run(old);
    }
}

void lab_mmpool_counts(struct lab_mmpool_counts *out)
{
    memset(out, 0, sizeof *out);
    for (mm_chunk_t *c = mm_chunks; c; c = c->next)
        for (size_t i = 0; i < mm_npages; i++)
            out->live_pages += (c->state[i] & LAB_MM_KIND) == LAB_MM_LIVE;
    out->cached_pages = mm_cached_pages;
    out->chunks = mm_nchunks;
    out->reserved_pages = mm_nchunks * mm_npages;
    out->purged_pages = mm_purged_pages;
    out->chunks_released = mm_released;
}
