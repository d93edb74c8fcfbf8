/* pool.c — the labyrinth page pool's hot paths (layer 2): rooms, the lock-free shared lists, the
 * coalescing run store, chunks, watermarks, the reserve and the page calls' fast paths: every run
 * handed out or taken back, in one file so that they inline into each other. Elsewhere: pool_map.c,
 * pool_huge.c, pool_purge.c, pool_life.c (room sets, pools, fork, the API). Calls core/os,
 * lock.h and the pool's other files (pool_impl.h: the types) only.
 *
 * Allocation of a 2^order run tries, in order (the policy in five lines, as in the kernel):
 *   room_pop            the thread's own list: no atomics, no shared cache line
 *   shared_pop          the pool's lock-free list of that order (one CAS)
 *   shared_split        a larger run from the lock-free lists, halves pushed back (CAS only)
 *   store_take          under the zone lock (a trylock for ATOMIC): carve from coalesced runs
 *   lab_zone_refill     DEFAULT only: map chunks up to the HIGH watermark, then carve
 * DEFAULT never lets the free count fall below the reserve; ATOMIC may empty it, and never makes
 * a system call or waits on a lock. Frees go to the room, spill to the shared list, and drain
 * to the store (coalescing) only when the zone lock is free. */
#define _GNU_SOURCE
#include "pool_impl.h"

#include <limits.h>
#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * pool state (the structures: pool_impl.h) */

static lab_pool_reclaim_fn pool_reclaim; /* the arena's (lab_pool_set_reclaim) */

void lab_pool_set_reclaim(lab_pool_reclaim_fn fn) { lab_store_relaxed(&pool_reclaim, fn); }

/* ------------------------------------------------------------------------------------------
 * rooms: one set per thread, reached through one TLS pointer (the set and the protocol between
 * its owner and a taker: pool_impl.h; sets made and taken: pool_life.c) */

static inline bool room_enter(lab_rooms_t *rs)
{
#if LAB_ROOMS_LOCKED
    int zero = 0;
    return __atomic_compare_exchange_n(&rs->busy, &zero, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
#else
    if (rs->busy)
        return false; /* a signal handler interrupted a change */
    rs->busy = 1;
    lab_barrier();
    /* acquire: a taker's changes to the lists come before its mark is lifted */
    bool ok = !__atomic_load_n(&rs->steal, __ATOMIC_ACQUIRE);
    lab_barrier();
    if (lab_unlikely(!ok))
        rs->busy = 0;
    return ok;
#endif
}

static inline void room_leave(lab_rooms_t *rs)
{
#if LAB_ROOMS_LOCKED
    __atomic_store_n(&rs->busy, 0, __ATOMIC_RELEASE);
#else
    lab_barrier();
    rs->busy = 0;
#endif
}

static const uint16_t room_cap[LAB_NR_ORDERS] = {64, 32, 16, 16, 16, 8, 4, 2, 1, 1};

__thread lab_rooms_t *lab_tls_rooms;
__thread int lab_tls_rooms_dead;

/* The owner of EXCLUSIVE runs: a number no other thread of the process ever gets. pthread_self()
 * was, but glibc gives an exited thread's descriptor, and its value, to the next thread, which
 * could then free the first one's pages (found by review). */
static __thread uint64_t tls_serial;
static uint64_t serial_next;
static inline uint64_t thread_serial(void)
{
    uint64_t v = lab_load_relaxed(&tls_serial), zero = 0;
    if (lab_unlikely(!v)) {
        /* a CAS: a signal handler may have given this thread its number meanwhile */
        v = lab_add_relaxed(&serial_next, 1) + 1;
        if (!__atomic_compare_exchange_n(&tls_serial, &zero, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            v = zero;
    }
    return v;
}

/* A shared list past this many pages (or two runs of its order) drains half into the store, where
 * runs coalesce. Deeper than a NIC-like ring (`wl packets`: 1 024 pages in flight between a
 * receiver and its sender; at 256 the sender's frees overflowed into the store and the receiver
 * took three in four back from it, twice the time). Free pages either way: the purge and every
 * caller about to map a chunk drain the lists first. */
#define SHARED_CAP_PAGES 1024
static size_t shared_cap_pages(unsigned order) { return lab_max((size_t)SHARED_CAP_PAGES, (size_t)2 << order); }
/* Orders whose rooms a slow allocation from the store fills with a batch (room_fill_from_store):
 * below a span's (the arena's spans and malloc's larger runs keep the store's reuse policies,
 * store_take_used_first, which a batch of fresh runs in a room would bypass). */
#define ROOM_FILL_ORDERS 3

/* ------------------------------------------------------------------------------------------
 * lock-free shared lists (Treiber stacks of chains of descriptors, tagged against ABA)
 * A list holds chains: runs linked by next (NULL-terminated), the chains by their first run's
 * prev. What one push puts on comes off whole with one pop: a room's spill reaches another
 * thread's room for one CAS each way. Popped run by run, a receiver taking the pages a sender
 * frees paid a CAS per page on the line the sender was pushing to (`wl packets`). */

static inline bool stack_cas(lab_stack_t *s, lab_stack_t old, lab_stack_t nw)
{
    unsigned __int128 o, n;
    memcpy(&o, &old, 16);
    memcpy(&n, &nw, 16);
    /* full barrier (lock cmpxchg16b): a popped run's descriptor writes by its previous owner
     * are visible to the popper, and a pusher's writes to the run precede its publication */
    return __sync_bool_compare_and_swap((unsigned __int128 *)s, o, n);
}

static inline lab_stack_t stack_read(lab_stack_t *s)
{
    lab_stack_t v;
    /* the tag is read first: a torn pair can only make the following CAS fail */
    v.tag = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE);
    v.top = __atomic_load_n(&s->top, __ATOMIC_ACQUIRE);
    return v;
}

/* Push the chain first..last (linked by next) as one; last NULL: the chain ends in NULL already. */
static void stack_push_chain(lab_stack_t *s, lab_page_t *first, lab_page_t *last)
{
    lab_stack_t old, nw;
    if (last)
        last->next = NULL;
    do {
        old = stack_read(s);
        first->prev = old.top;
        nw.top = first;
        nw.tag = old.tag + 1;
    } while (!stack_cas(s, old, nw));
}

static unsigned long chains_taken; /* pops that took two runs or more (tests; relaxed, any pool) */
unsigned long lab_pool_chains_taken(void) { return lab_load_relaxed(&chains_taken); }

/* The chain on top, whole (its runs linked by next), or NULL. */
static lab_page_t *stack_pop_chain(lab_stack_t *s)
{
    lab_stack_t old, nw;
    do {
        old = stack_read(s);
        if (!old.top)
            return NULL;
        /* descriptors are never unmapped, so this read is safe even if old.top was taken */
        nw.top = __atomic_load_n(&old.top->prev, __ATOMIC_RELAXED);
        nw.tag = old.tag + 1;
    } while (!stack_cas(s, old, nw));
    return old.top;
}

/* ------------------------------------------------------------------------------------------
 * the store: free runs of any length, coalesced through boundary tags, under the zone lock */

static inline void bin_insert(lab_zone_t *z, lab_page_t *d)
{
    uint32_t n = d->h.npages;
    d->prev = NULL;
    d->next = ZBIN(z, n);
    if (d->next)
        d->next->prev = d;
    ZBIN(z, n) = d;
    z->binmap[n / 64] |= 1ull << (n % 64);
}

static inline void bin_remove(lab_zone_t *z, lab_page_t *d)
{
    uint32_t n = d->h.npages;
    if (d->prev)
        d->prev->next = d->next;
    else
        ZBIN(z, n) = d->next;
    if (d->next)
        d->next->prev = d->prev;
    if (!ZBIN(z, n))
        z->binmap[n / 64] &= ~(1ull << (n % 64));
}

/* ---- the dirty map: which free pages of a chunk may hold data ----
 * A bit per page, exact for the store's pages: a run freed with data sets its pages' bits, a
 * purge clears them, a carve leaves them. So a run carved from a store run that is partly used
 * and partly never touched (a chunk's first spans freed beside its untouched rest: one store run)
 * knows which of its pages read zero: calloc zeroes only the others (git merge's two 512 KiB
 * callocs faulted in 1 MiB that glibc's mapping never touched), and a request that may reuse
 * used pages finds them. Written under the zone lock; read without it only for a run out of the
 * store (whose bits nobody changes then): relaxed atomics, for the neighbours sharing a word. */
/* The low k bits (k <= 64). */
static inline uint64_t low_bits(unsigned k) { return k >= 64 ? ~0ull : (1ull << k) - 1; }

/* The words of [i, end) (i < end): the first, the last, and the masks of their bits in the range
 * (the same word when both are); the words between are whole. */
typedef struct dirty_span {
    unsigned w, we, nfirst, nlast; /* (n: the bits of the mask) */
    uint64_t first, last;
} dirty_span_t;
static inline dirty_span_t dirty_span(unsigned i, unsigned end)
{
    dirty_span_t r = {i / 64, (end - 1) / 64, 64 - i % 64, (end - 1) % 64 + 1,
                      ~0ull << (i % 64), ~0ull >> (63 - (end - 1) % 64)};
    if (r.w == r.we) {
        r.first &= r.last;
        r.nfirst = end - i;
    }
    return r;
}

static inline void dirty_set_word(lab_chunk_t *c, unsigned w, uint64_t m, bool on)
{
    uint64_t v = lab_load_relaxed(&c->dirty[w]);
    lab_store_relaxed(&c->dirty[w], on ? v | m : v & ~m);
}

void lab_dirty_mark(lab_chunk_t *c, unsigned idx, unsigned n, bool on)
{
    if (!n)
        return;
    dirty_span_t r = dirty_span(idx, idx + n);
    dirty_set_word(c, r.w, r.first, on);
    if (r.w == r.we)
        return;
    for (unsigned w = r.w + 1; w < r.we; w++)
        lab_store_relaxed(&c->dirty[w], on ? ~0ull : 0);
    dirty_set_word(c, r.we, r.last, on);
}

/* The first page in [i, end) of c whose bit is `set`, or end. */
static unsigned dirty_find(lab_chunk_t *c, unsigned i, unsigned end, bool set)
{
    while (i < end) {
        uint64_t v = lab_load_relaxed(&c->dirty[i / 64]);
        v = (set ? v : ~v) >> (i % 64);
        if (v)
            return lab_min(i + (unsigned)__builtin_ctzll(v), end);
        i = (i / 64 + 1) * 64;
    }
    return end;
}

/* The bits set in v: inline (the baseline x86-64 has no popcnt instruction, and libgcc's, called
 * for each word, was a twentieth of `wl pagemix`'s instructions), none or all without it. */
static inline unsigned bits_set(uint64_t v)
{
    if (v == 0 || v == ~0ull)
        return v ? 64 : 0;
    v -= (v >> 1) & 0x5555555555555555ull;
    v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
    v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((v * 0x0101010101010101ull) >> 56);
}

/* The bits of m (n of them) set in v: all or none counted without a popcount. */
static inline unsigned bits_set_in(uint64_t v, uint64_t m, unsigned n)
{
    v &= m;
    return v == m ? n : bits_set(v);
}

/* The pages of [i, end) of c whose bit is set. A word all set or all clear over its range (most:
 * a run's pages are written from its start) is counted without a popcount; the words between
 * the first and the last whole (a run of 256 pages: four words, where a loop over pieces of
 * words computed a mask for each). */
unsigned lab_dirty_count(lab_chunk_t *c, unsigned i, unsigned end)
{
    if (i >= end)
        return 0;
    dirty_span_t r = dirty_span(i, end);
    unsigned cnt = bits_set_in(lab_load_relaxed(&c->dirty[r.w]), r.first, r.nfirst);
    if (r.w == r.we)
        return cnt;
    for (unsigned w = r.w + 1; w < r.we; w++)
        cnt += bits_set(lab_load_relaxed(&c->dirty[w]));
    return cnt + bits_set_in(lab_load_relaxed(&c->dirty[r.we]), r.last, r.nlast);
}

/* The 64 bits of c's dirty map from page i on (past the chunk's end: clear). */
static uint64_t dirty_word(lab_chunk_t *c, unsigned i)
{
    unsigned w = i / 64, sh = i % 64;
    uint64_t v = lab_load_relaxed(&c->dirty[w]) >> sh;
    if (sh && w + 1 < LAB_CHUNK_PAGES / 64)
        v |= lab_load_relaxed(&c->dirty[w + 1]) << (64 - sh);
    return v;
}

/* From this many pages (128 KiB, glibc's first mmap threshold) the kernel is asked which pages
 * were touched before they are zeroed: a block calloc takes over a run that its last user freed
 * with most of it never written (git merge and commit free a 512 KiB calloc they barely used,
 * then calloc it again) would otherwise be faulted in whole by the memset. */
#define ZERO_ASK_PAGES 32
/* The question (lab_os_pages_held) costs up to three system calls, for 1 MiB about 5 us here
 * without swap (sysinfo 1.4 us each, mincore 2), 11 with it (pagemap's openat, preads and close),
 * where a memset of 1 MiB that is resident takes 9: after an answer that most of the run was
 * written, the next questions are skipped, twice as many each time up to this many, so that a
 * program whose big callocs are written in full pays for one in 64 (relaxed counters shared by
 * all threads: a rough rate is enough; malloc_trim starts them again). */
#define ZERO_ASK_BACKOFF_MAX 64u
static unsigned zero_ask_skip, zero_ask_backoff;
int lab_pool_zero_ask = 1; /* LABYRINTH_PAGEMAP */

/* malloc_trim (a forced purge): every free page reads zero again, a new start for the questions. */
void lab_pool_zero_ask_reset(void)
{
    lab_store_relaxed(&zero_ask_backoff, 0);
    lab_store_relaxed(&zero_ask_skip, 0);
}

/* Zero what may hold data of npages pages from a (LAB_GFP_ZERO): all of them, or those dc's
 * dirty map marks (dc: the chunk, from page di, for a run carved partly clean; NULL: any page
 * may hold data); of ZERO_ASK_PAGES or more and if `how` (the caller may make system calls),
 * only those the kernel says were touched (lab_os_pages_held), unless the last answers were
 * that nearly all were and `how` is not LAB_ZERO_ASK_ALWAYS (whose answers do not count). */
void lab_pool_zero_pages(uintptr_t a, size_t npages, lab_chunk_t *dc, unsigned di, unsigned how)
{
    bool ask = how && npages >= ZERO_ASK_PAGES && lab_load_relaxed(&lab_pool_zero_ask);
    if (ask && how != LAB_ZERO_ASK_ALWAYS) {
        unsigned skip = lab_load_relaxed(&zero_ask_skip);
        if (skip) {
            lab_store_relaxed(&zero_ask_skip, skip - 1);
            ask = false;
        }
    }
    size_t wanted = 0, written = 0;
    for (size_t base = 0; base < npages; base += LAB_CHUNK_PAGES) {
        size_t k = lab_min(npages - base, (size_t)LAB_CHUNK_PAGES), words = (k + 63) / 64;
        uint64_t want[LAB_CHUNK_PAGES / 64], held[LAB_CHUNK_PAGES / 64];
        for (size_t w = 0; w < words; w++) {
            want[w] = (dc ? dirty_word(dc, di + (unsigned)(base + w * 64)) : ~0ull) &
                      low_bits((unsigned)lab_min(k - w * 64, (size_t)64));
        }
        if (ask && lab_os_pages_held((void *)(a + (base << LAB_PAGE_SHIFT)), k, held) == 0) {
            for (size_t w = 0; w < words; w++) {
                wanted += (size_t)__builtin_popcountll(want[w]);
                want[w] &= held[w];
                written += (size_t)__builtin_popcountll(want[w]);
            }
        }
        for (size_t i = 0; i < k;) {
            uint64_t v = want[i / 64] >> (i % 64);
            if (!v) {
                i = (i / 64 + 1) * 64;
                continue;
            }
            i += (size_t)__builtin_ctzll(v);
            size_t j = i + 1;
            while (j < k && ((want[j / 64] >> (j % 64)) & 1))
                j++;
            memset((void *)(a + ((base + i) << LAB_PAGE_SHIFT)), 0, (j - i) << LAB_PAGE_SHIFT);
            i = j;
        }
    }
    if (wanted && how != LAB_ZERO_ASK_ALWAYS) {
        unsigned b = 0;
        if (written * 4 >= wanted * 3) /* three quarters written: asking did not pay */
            b = lab_min(2 * lab_load_relaxed(&zero_ask_backoff) + 1, ZERO_ASK_BACKOFF_MAX);
        lab_store_relaxed(&zero_ask_backoff, b);
        lab_store_relaxed(&zero_ask_skip, b);
    }
}

/* What LAB_GFP_ZERO needs of the run d of npages, about to be handed out (lab_pool_zero_pages): nothing
 * if clean, the pages its chunk's dirty map marks if carved partly clean, else all of it. */
static void run_zero(lab_page_t *d, size_t npages, lab_gfp_t gfp)
{
    if (d->h.clean == 1)
        return;
    lab_chunk_t *c = lab_desc_chunk(d);
    lab_pool_zero_pages(lab_desc_addr(d), npages, d->h.clean == LAB_CLEAN_SOME ? c : NULL, (unsigned)(d - c->page),
               !(gfp & LAB_GFP_ATOMIC));
}

/* Whether z is a run zone (pool_impl.h; made by run_zone_move). */
static inline bool zone_is_run(lab_pool_t *pool, lab_zone_t *z)
{
    return z != &pool->zone[ZONE_NORMAL] && z != &pool->zone[ZONE_EXCL];
}

/* Whether a DEFAULT caller may take n pages of z's store: the normal zone keeps the reserve
 * (pool_nr_free: its shared lists and store); a run zone has none, and its free pages, its
 * store's, are counted there alone, so that two threads' carves and frees in two zones do not
 * both write one count (its cache line bounced between them at every call). */
static inline bool zone_has_free(lab_pool_t *pool, lab_zone_t *z, size_t n)
{
    return zone_is_run(pool, z) || pool_nr_free(pool) >= pool->reserve + n;
}

/* The h.clean of a piece of a run carved from the store, from its pages marked dirty. */
static inline uint8_t clean_of_count(unsigned ndirty, unsigned n)
{
    return ndirty == 0 ? 1 : ndirty == n ? 0 : LAB_CLEAN_SOME;
}

/* The pages of run d (n pages, just carved from the store: its clean flag exact) marked dirty. */
static inline unsigned carved_dirty(lab_page_t *d, unsigned n)
{
    if (d->h.clean != LAB_CLEAN_SOME)
        return d->h.clean ? 0 : n;
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned s = (unsigned)(d - c->page);
    return lab_dirty_count(c, s, s + n);
}

/* Record [idx, idx+n) of chunk c, of which ndirty pages are marked in the dirty map, as a free
 * store run and insert it. */
static void store_put_run(lab_pool_t *pool, lab_zone_t *z, lab_chunk_t *c, unsigned idx, unsigned n,
                          unsigned ndirty, uint64_t stamp)
{
    lab_page_t *d = &c->page[idx];
    lab_store_relaxed(&d->h.state, LAB_PAGE_STORE);
    d->h.npages = n;
    d->h.clean = ndirty == 0;
    *lab_run_ndirty(d) = ndirty;
    d->h.zone = (uint8_t)c->zone;
    d->h.order = 0;
    d->stamp = stamp;
    d->owner = 0;
    /* the tail tells a freed right neighbour where this run starts (store_free); a run that ends
     * the chunk has none, and its tail descriptor sits alone on the header's last page: a fresh
     * chunk's first run would fault that page in for nothing */
    if (n > 1 && idx + n < LAB_CHUNK_PAGES) {
        lab_page_t *t = &c->page[idx + n - 1];
        lab_store_relaxed(&t->h.state, LAB_PAGE_STORE);
        t->h.npages = n;
    }
    bin_insert(z, d);
    c->store_pages += n;
    lab_store_relaxed(&z->store_pages, z->store_pages + n); /* relaxed: lab_pool_free_all reads it */
    lab_store_relaxed(&z->store_dirty, z->store_dirty + ndirty);
    if (c->zone == ZONE_EXCL)
        lab_add_relaxed(&pool->nr_free_excl, (uint32_t)n);
}

/* Take the store run d out of its bin (its pages leave the free count). */
static void store_take_run(lab_pool_t *pool, lab_zone_t *z, lab_page_t *d)
{
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned n = d->h.npages;
    bin_remove(z, d);
    if (n > 1 && (unsigned)(d - c->page) + n < LAB_CHUNK_PAGES)
        lab_store_relaxed(&c->page[(d - c->page) + n - 1].h.state, LAB_PAGE_INTERIOR);
    lab_store_relaxed(&d->h.state, LAB_PAGE_INTERIOR);
    c->store_pages -= n;
    lab_store_relaxed(&z->store_pages, z->store_pages - n);
    lab_store_relaxed(&z->store_dirty, z->store_dirty - *lab_run_ndirty(d));
    if (c->zone == ZONE_EXCL)
        lab_sub_relaxed(&pool->nr_free_excl, (uint32_t)n);
}

/* Before a run or a huge mapping faults fresh pages in (below, with the purge) */
static void store_trim_for(lab_pool_t *pool, lab_zone_t *z, lab_page_t *d, unsigned n);

/* Free [idx, idx+n) into the store, merging with free neighbours; `clean` is the run's flag (0:
 * its pages are marked in the dirty map). */
static void store_free(lab_pool_t *pool, lab_zone_t *z, lab_chunk_t *c, unsigned idx, unsigned n,
                       uint8_t clean, uint64_t stamp)
{
    unsigned ndirty = n;
    if (!clean)
        lab_dirty_mark(c, idx, n, true);
    else
        ndirty = lab_dirty_count(c, idx, idx + n); /* (a run carved and given back at once) */
    if (idx > 0) {
        lab_page_t *t = &c->page[idx - 1];
        /* relaxed: the owner of a used neighbour may be changing its state (never to or from
         * STORE, which only changes under this lock) */
        if (lab_load_relaxed(&t->h.state) == LAB_PAGE_STORE) {
            unsigned ln = t->h.npages;
            lab_page_t *l = &c->page[idx - ln];
            store_take_run(pool, z, l);
            ndirty += (unsigned)*lab_run_ndirty(l);
            stamp = lab_max(stamp, l->stamp);
            idx -= ln;
            n += ln;
        }
    }
    if (idx + n < LAB_CHUNK_PAGES) {
        lab_page_t *r = &c->page[idx + n];
        if (lab_load_relaxed(&r->h.state) == LAB_PAGE_STORE) {
            unsigned rn = r->h.npages;
            store_take_run(pool, z, r);
            ndirty += (unsigned)*lab_run_ndirty(r);
            stamp = lab_max(stamp, r->stamp);
            n += rn;
        }
    }
    if (n == LAB_CHUNK_PAGES)
        c->idle_since = lab_clock_ms();
    store_put_run(pool, z, c, idx, n, ndirty, stamp);
}

/* Carve n pages at page index `at` out of store run d; the rest goes back. Returns the desc. */
/* The pages of [at, at + n) of store run d marked dirty: none or all of them counted without the
 * map when the run's are none or all. */
static unsigned place_dirty(lab_page_t *d, unsigned at, unsigned n)
{
    unsigned all = (unsigned)*lab_run_ndirty(d);
    return all == 0 ? 0 : all == d->h.npages ? n : lab_dirty_count(lab_desc_chunk(d), at, at + n);
}

/* store_carve with [at, at + n)'s dirty pages known (place_dirty) */
static lab_page_t *store_carve_counted(lab_pool_t *pool, lab_zone_t *z, lab_page_t *d, unsigned at, unsigned n,
                                       unsigned mine)
{
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned s = (unsigned)(d - c->page), len = d->h.npages, all = (unsigned)*lab_run_ndirty(d);
    uint64_t stamp = d->stamp;
    store_take_run(pool, z, d);
    /* the left piece's dirty pages: the run's, none or all of its pages counted without the map */
    unsigned left = all == 0 ? 0 : all == len ? at - s : lab_dirty_count(c, s, at);
    if (at > s)
        store_put_run(pool, z, c, s, at - s, left, stamp);
    if (at + n < s + len)
        store_put_run(pool, z, c, at + n, s + len - at - n, all - left - mine, stamp);
    lab_page_t *r = &c->page[at];
    r->h.npages = n;
    r->h.clean = clean_of_count(mine, n);
    /* a descriptor from the middle of a run has never been a store head: its zone field may be
     * the zero of a fresh header (NORMAL), and frees route by it */
    r->h.zone = (uint8_t)c->zone;
    return r;
}

static lab_page_t *store_carve(lab_pool_t *pool, lab_zone_t *z, lab_page_t *d, unsigned at, unsigned n)
{
    return store_carve_counted(pool, z, d, at, n, place_dirty(d, at, n));
}

/* A run of 2^order pages aligned to its size, or NULL. */
/* A run of n = 2^order pages aligned to n. A run of 2n - 1 pages or more holds one wherever it
 * starts; in bins n .. 2n - 2 only some starts do. Those bins are looked at first (the tightest
 * fit), but at no more than STORE_ALIGN_SCAN of their runs; then the shortest run of 2n - 1 or
 * more. (Marking the bins found with none as well saved nothing measurable past the bound.)
 * Without the bound every span looked at the same runs again: blocks of 36 KiB freed four in
 * five, then spans for blocks of 12 000 bytes (32 pages aligned, among free runs of 36 pages)
 * took 1.7 s for 40 000 spans and 8.4 s for 80 000 (found by review). */
#define STORE_ALIGN_SCAN 64u
static unsigned order_seen_max; /* the most runs a search looked at (tests; relaxed, any pool) */
/* The store run store_take_order carves, and where (*at), or NULL: found, not carved. */
static lab_page_t *store_find_order(lab_zone_t *z, unsigned order, unsigned *at)
{
    unsigned n = 1u << order, seen = 0;
    lab_page_t *d = NULL;
    for (unsigned b = bin_find(z, n); b && !d; b = bin_find(z, b + 1)) {
        if (b < 2 * n - 1 && seen >= STORE_ALIGN_SCAN)
            continue;
        lab_page_t *r = ZBIN(z, b);
        for (; r && (b >= 2 * n - 1 || seen < STORE_ALIGN_SCAN); r = r->next) {
            seen++;
            lab_chunk_t *c = lab_desc_chunk(r);
            unsigned s = (unsigned)(r - c->page), a = lab_align_up(s, n);
            if (a + n <= s + b) {
                d = r;
                *at = a;
                break;
            }
        }
    }
    if (seen > lab_load_relaxed(&order_seen_max))
        lab_store_relaxed(&order_seen_max, seen);
    return d;
}

static lab_page_t *store_take_order(lab_pool_t *pool, lab_zone_t *z, unsigned order)
{
    unsigned at;
    lab_page_t *r = store_find_order(z, order, &at);
    return r ? store_carve(pool, z, r, at, 1u << order) : NULL;
}

/* Where a page-sized malloc block of n pages may start, in pages: anywhere while the program's
 * freed blocks are found written (the default, and a block written in full leaves no unwritten
 * gap before the next one), else on a multiple of 16 pages (64 KiB; 8 for blocks of 8-15), so
 * that blocks written from their start only write the same few pages of the store again and
 * again. Carved anywhere, blocks of 33 KiB-1 MiB with their first 4 KiB written (`wl pagemix`)
 * came to start on every page of the store in turn, and faulted in all of it: 24 000 faults
 * and 97 MiB resident for 66 MiB of blocks that wrote 0.5 MiB. */
static inline unsigned run_align(lab_pool_t *pool, unsigned n)
{
    if (lab_load_relaxed(&pool->run_written) >= 0)
        return 1;
    return n >= 16 ? 16 : n >= 8 ? 8 : 1;
}

/* Freed blocks of at least 16 pages looked at, whether their last page is resident (one mincore
 * of one page: over the whole block, a seventh of `wl pagemix`'s time went to the kernel's walk),
 * moving pool->run_written up if so, down if not, within RUN_WRITTEN_MAX either way. A thread
 * arms the look on one of its blocks in 2^tls_run_shift when it hands it out: a look that agrees
 * with the score's side (a no below 0, a yes at 0 or above) doubles the wait, up to
 * RUN_WRITTEN_SHIFT_MAX; one against it starts again from RUN_WRITTEN_SHIFT_MIN, so that a change
 * of the program's ways is followed within a few hundred blocks. At one look in 16 for good, the
 * system call took a malloc and free of 25 pages from 39 ns to 100-130 ns (bench
 * malloc_free_runs/102400: 4.4 times glibc's).
 * Only blocks carved from the store are armed, and with a last page that reads zero: one that an
 * earlier write left resident (its dirty bit set, then one mincore) is given back to the kernel
 * first, since it says nothing of this block. Looking at whatever was there, blocks that wrote
 * only their first page came to start anywhere, which left more of the store written, which
 * more looks then found resident (`wl pagemix 2 1000000`: in 3 runs of 10, 6 000 looks of 11 000
 * said yes, the score rose and peak RSS reached 93-96 MiB; 15-19 MiB in the others, 370-730
 * yes). A run room's block takes a run whole and is never armed. */
#define RUN_LOOK_ARMED 1 /* h.order of an armed block's run (a page-sized block does not use it) */
#define RUN_WRITTEN_SHIFT_MIN 4
#define RUN_WRITTEN_SHIFT_MAX 9
#define RUN_WRITTEN_MAX 8
static __thread uint16_t tls_run_wait;  /* blocks of 16 pages or more until the next armed one */
static __thread uint8_t tls_run_shift;  /* (0 until the first look: RUN_WRITTEN_SHIFT_MIN) */
static unsigned long run_looks;         /* (tests; relaxed, any pool) */
unsigned long lab_pool_run_looks(void) { return lab_load_relaxed(&run_looks); }
int lab_pool_run_score(lab_pool_t *pool) { return lab_load_relaxed(&pool->run_written); }

static lab_noinline void run_written_look(lab_pool_t *pool, lab_page_t *d, unsigned n)
{
    unsigned shift = lab_max(tls_run_shift, (uint8_t)RUN_WRITTEN_SHIFT_MIN);
    int r = lab_os_page_resident((const void *)(lab_desc_addr(d) + ((uintptr_t)(n - 1) << LAB_PAGE_SHIFT)));
    lab_add_relaxed(&run_looks, 1);
    if (r < 0) { /* refused (a sandbox): asked again seldom */
        tls_run_wait = (uint16_t)((1u << RUN_WRITTEN_SHIFT_MAX) - 1);
        return;
    }
    int old = lab_load_relaxed(&pool->run_written), w = old + (r ? 1 : -1);
    lab_store_relaxed(&pool->run_written, (int8_t)lab_max(-RUN_WRITTEN_MAX, lab_min(RUN_WRITTEN_MAX - 1, w)));
    shift = (r != 0) == (old >= 0) ? lab_min(shift + 1, (unsigned)RUN_WRITTEN_SHIFT_MAX) : RUN_WRITTEN_SHIFT_MIN;
    tls_run_shift = (uint8_t)shift;
    tls_run_wait = (uint16_t)((1u << shift) - 1);
}

static lab_noinline void run_written_arm_slow(lab_page_t *d, unsigned n, bool atomic)
{
    unsigned shift = lab_max(tls_run_shift, (uint8_t)RUN_WRITTEN_SHIFT_MIN);
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned last = (unsigned)(d - c->page) + n - 1;
    /* a run just carved: its bits stay while it is out of the store. A last page marked written
     * and resident is given back to the kernel now (the block's bytes are the caller's to write:
     * nothing of an earlier block's is owed to it), so that the look sees this block's writes
     * alone (a drop with two threads running sends the other CPU an interrupt, dear on these
     * VMs: asked first, one mincore, and most such pages are not resident); not in a chunk of
     * huge pages (it would split one), nor without system calls (atomic): that block is not
     * looked at, and the next one tried after the same wait */
    void *lastp = (void *)(lab_desc_addr(d) + ((uintptr_t)(n - 1) << LAB_PAGE_SHIFT));
    /* the next try after the same wait, armed or not (an armed block's look may change it) */
    tls_run_wait = (uint16_t)((1u << shift) - 1);
    if (lab_dirty_count(c, last, last + 1)) {
        int r = atomic ? 1 : lab_os_page_resident(lastp);
        if (r < 0) { /* refused (a sandbox): asked again seldom */
            tls_run_wait = (uint16_t)((1u << RUN_WRITTEN_SHIFT_MAX) - 1);
            return;
        }
        if (r && (atomic || c->thp || lab_os_purge(lastp, LAB_PAGE_SIZE) != 0))
            return;
    }
    d->h.order = RUN_LOOK_ARMED;
}

/* Block d, a run just carved from the store, handed out: armed for a look or not (atomic: by its
 * dirty bit alone). Not a run room's block, which takes a run whole: where a block starts
 * matters when it is carved, and the room's runs' last pages are their last blocks'. */
static inline void run_written_arm(lab_page_t *d, bool atomic)
{
    unsigned n = d->h.npages;
    d->h.order = 0;
    if (lab_likely(n < 16))
        return;
    if (lab_likely(tls_run_wait)) {
        tls_run_wait--;
        return;
    }
    run_written_arm_slow(d, n, atomic);
}

static inline void run_written_sample(lab_pool_t *pool, lab_page_t *d)
{
    if (lab_likely(d->h.order != RUN_LOOK_ARMED))
        return;
    run_written_look(pool, d, d->h.npages);
}

/* Where n pages starting at a multiple of `align` pages would be carved: the first of the
 * best-fit runs up that holds such a start (at most STORE_ALIGN_SCAN looked at), else the best
 * fit anywhere. The run (NULL: none holds n pages) and the start (*at); nothing carved. */
static lab_page_t *store_find_aligned(lab_zone_t *z, unsigned n, unsigned align, unsigned *at)
{
    unsigned seen = 0;
    if (align > 1)
        for (unsigned b = bin_find(z, n); b && seen < STORE_ALIGN_SCAN; b = bin_find(z, b + 1))
            for (lab_page_t *r = ZBIN(z, b); r && seen < STORE_ALIGN_SCAN; r = r->next, seen++) {
                lab_chunk_t *c = lab_desc_chunk(r);
                unsigned s = (unsigned)(r - c->page), a = lab_align_up(s, align);
                if (a + n <= s + b) {
                    *at = a;
                    return r;
                }
            }
    unsigned b = bin_find(z, n);
    if (!b)
        return NULL;
    lab_page_t *d = ZBIN(z, b);
    *at = (unsigned)(d - lab_desc_chunk(d)->page);
    return d;
}

static lab_page_t *store_take_aligned(lab_pool_t *pool, lab_zone_t *z, unsigned n, unsigned align)
{
    unsigned at;
    lab_page_t *r = store_find_aligned(z, n, align, &at);
    return r ? store_carve(pool, z, r, at, n) : NULL;
}

/* A page-sized malloc block's n pages from z's store, starting where run_align says. */
static lab_page_t *store_take_block(lab_pool_t *pool, lab_zone_t *z, size_t n)
{
    return store_take_aligned(pool, z, (unsigned)n, run_align(pool, (unsigned)n));
}

/* A run of n pages aligned to `align` pages holding used ones, or NULL, looked for among the
 * first STORE_USED_SCAN runs from the best fit up that hold any (not clean): the one holding page
 * `at` of chunk `hc` if any, carved there (pages the caller has just given back, merged into
 * whatever store run they joined, which may begin with pages never used), else the one whose
 * window over its first used pages covers the most of them (the dirty map: a store run may be
 * partly used, partly never touched), the smallest of those. */
#define STORE_USED_SCAN 64
static lab_page_t *store_take_used(lab_pool_t *pool, lab_zone_t *z, unsigned n, unsigned align, lab_chunk_t *hc,
                                   unsigned at)
{
    unsigned seen = 0, best_a = 0, best_used = 0, h = lab_align_up(at, align);
    lab_page_t *best = NULL;
    for (unsigned b = bin_find(z, n); b && seen < STORE_USED_SCAN; b = bin_find(z, b + 1)) {
        for (lab_page_t *d = ZBIN(z, b); d && seen < STORE_USED_SCAN; d = d->next, seen++) {
            if (d->h.clean)
                continue;
            lab_chunk_t *c = lab_desc_chunk(d);
            unsigned s = (unsigned)(d - c->page), lo = lab_align_up(s, align);
            if (c == hc && s <= at && h + n <= s + b)
                return store_carve(pool, z, d, h, n);
            if (lo + n > s + b)
                continue;
            unsigned hi = (s + b - n) / align * align; /* the last aligned start that fits */
            unsigned a = dirty_find(c, s, s + b, true) / align * align;
            a = a < lo ? lo : a > hi ? hi : a;
            unsigned used = *lab_run_ndirty(d) == b ? n : lab_dirty_count(c, a, a + n);
            if (used > best_used) {
                best = d, best_a = a, best_used = used;
                if (used == n)
                    break;
            }
        }
        if (best_used == n)
            break;
    }
    return best ? store_carve(pool, z, best, best_a, n) : NULL;
}

static void room_counts(lab_pool_t *pool, unsigned *cnt);
static lab_page_t *room_released_to_store(lab_pool_t *pool, lab_zone_t *z, const unsigned *before, unsigned n);

/* n pages carved from z's store (lock held; `order` >= 0 when the caller wants a run of 2^order
 * pages aligned to its length, -1 for a page-sized block, aligned as run_align says), or NULL.
 * The place the store's search finds (store_find_order, store_find_aligned) is looked at before
 * anything is carved: if its pages were all used, they are carved there. If not, for a caller
 * that may wait, a used run of the store that holds the request comes first (the best fit is
 * often a run never touched while used runs wait: sort's second wave of 256 KiB merge buffers
 * faulted in fresh pages beside the first wave's, freed; unit.test_alloc's
 * test_used_runs_before_clean). (The place was carved, then given back to the store when it was
 * not all used: `wl pagemix 1` under callgrind took that way for half its blocks, 2828
 * instructions a step, 2141 without the carve and the free back; its native time is the same
 * within the noise, spent on the descriptors' cache misses.) And if the layer above holds used
 * pages for the caller (lab_pool_set_reclaim: its kept spans, then its empty listed spans), at
 * least as many of those pages are given back, and the run to hand out is carved from them. The runs
 * given back go into the store (not the shared lists, where only a request of their own order
 * would find them), coalescing with their free neighbours, and the request is carved where the
 * shortest of them that holds it lies (a span's pages are used from its start), else from the
 * store's smallest used run. As many as the request, not all: a program whose last call at exit
 * asks for one span must not lose every span it keeps for its next round. What it is for:
 * programs whose blocks move on through the sizes. `wl strbuild` (strings grown by realloc) kept
 * its emptied spans while its next blocks faulted in fresh pages (peak RSS of
 * `wl strbuild 1 200000` 15.8 MiB, glibc 7.3; 12.0 with the kept spans given back, 8.3 with the
 * empty listed spans as well); python3's start grows its dicts through the sizes, and its calls
 * replayed faulted 395 pages, 354 with the empty listed spans given back this way (389 with them
 * on the shared lists; glibc 274). Draining the shared lists into the store as well cost more
 * faults (runs reused whole keep the pages their last block touched). */
static lab_page_t *store_take_used_first(lab_pool_t *pool, lab_zone_t *z, unsigned n, int order, bool atomic)
{
    unsigned at, align = order >= 0 ? n : run_align(pool, n);
    lab_page_t *d = order >= 0 ? store_find_order(z, (unsigned)order, &at) : store_find_aligned(z, n, align, &at);
    if (!d)
        return NULL;
    unsigned mine = place_dirty(d, at, n);
    lab_pool_reclaim_fn fn = lab_load_relaxed(&pool_reclaim);
    if (mine == n || atomic || !pool->is_default || z != &pool->zone[ZONE_NORMAL])
        return store_carve_counted(pool, z, d, at, n, mine); /* (partly used: a better one looked for) */
    lab_page_t *fit = NULL;
    if (fn && fn(0)) {
        /* the spans go back through the pool's own free path, which must not find the lock held */
        lab_unlock(&z->lock);
        unsigned before[LAB_NR_ORDERS];
        room_counts(pool, before);
        fn(n);
        lab_lock(&z->lock);
        fit = room_released_to_store(pool, z, before, n);
    }
    lab_chunk_t *fc = fit ? lab_desc_chunk(fit) : NULL;
    lab_page_t *r = store_take_used(pool, z, n, align, fc, fc ? (unsigned)(fit - fc->page) : 0);
    if (!r)
        r = order >= 0 ? store_take_order(pool, z, (unsigned)order) : store_take_aligned(pool, z, n, align);
    return r;
}

/* Unmap the chunks of z that are wholly free and idle for min_idle ms, while the free count stays
 * at least `keep` (zone lock held). Returns the number unmapped. *due (if not NULL) is lowered to
 * the time the first chunk kept only for being too recently freed may go. */
unsigned lab_zone_unmap_free_chunks(lab_pool_t *pool, lab_zone_t *z, unsigned zi, uint64_t min_idle, size_t keep,
                                       uint64_t *due)
{
    unsigned n = 0;
    uint64_t now = lab_load_relaxed(&pool->now_ms);
    lab_chunk_t *c = z->chunks;
    while (c) {
        lab_chunk_t *next = c->next;
        bool spare = c->store_pages == LAB_CHUNK_PAGES &&
                     (zi != ZONE_NORMAL || pool_nr_free(pool) >= keep + LAB_CHUNK_PAGES);
        if (spare && min_idle && now < c->idle_since + min_idle) {
            if (due && c->idle_since + min_idle < *due)
                *due = c->idle_since + min_idle;
        } else if (spare) {
            store_take_run(pool, z, &c->page[0]);
            if (c->prev)
                c->prev->next = c->next;
            else
                z->chunks = c->next;
            if (c->next)
                c->next->prev = c->prev;
            if (!c->pm) /* a chunk in the region has no page-map entry (pool.h) */
                lab_pagemap_set(c->base, LAB_CHUNK_SIZE, NULL);
            lab_chunk_unmap((void *)c->base, c->pm);
            lab_sub_relaxed(&pool->mapped_pages, LAB_CHUNK_PAGES);
            lab_add_relaxed(&pool->unmapped_chunks, 1);
            lab_meta_free(c, sizeof(lab_chunk_t));
            n++;
        }
        c = next;
    }
    return n;
}

/* The OS refused a mapping: give back every mapping the pool only caches (wholly free chunks of
 * both zones, the huge cache) so that a retry can succeed under RLIMIT_AS or strict overcommit.
 * `held` is a zone whose lock the caller holds; the other is only try-locked (lock order). A
 * caller that holds no lock of the allocator (a huge block's mapping) waits for each zone's
 * lock in turn: with a try, another thread's allocation at that moment left hundreds of MiB of
 * free chunks mapped and the malloc failed (found by review: 7 rounds in 30 under ulimit -v).
 * Returns true if anything was released. */
bool lab_pool_release_cached(lab_pool_t *pool, lab_zone_t *held)
{
    unsigned n = 0;
    bool wait = !held && !lab_locks_held;
    if (wait && pool->is_default) { /* the runs the threads' rooms hold pin their chunks too */
        lab_pool_room_drain(pool);
        lab_pool_rooms_take(pool);
    }
    for (unsigned zi = 0; zi < lab_zones_end(pool); zi++) {
        lab_zone_t *z = lab_zone_at(pool, zi);
        if (!z)
            continue;
        if (wait)
            lab_lock(&z->lock);
        else if (z != held && !lab_lock_try(&z->lock))
            continue;
        lab_zone_drain_shared(pool, z);
        n += lab_zone_unmap_free_chunks(pool, z, zi, 0, 0, NULL);
        if (z != held)
            lab_unlock(&z->lock);
    }
    lab_lock(&pool->huge_lock);
    lab_chunk_t *list = pool->huge_cache;
    pool->huge_cache = NULL;
    lab_store_relaxed(&pool->huge_cache_bytes, 0);
    lab_unlock(&pool->huge_lock);
    while (list) {
        lab_chunk_t *next = list->next;
        lab_huge_unmap(pool, list);
        list = next;
        n++;
    }
    return n > 0;
}

/* Count up to n pages as mapped before they are mapped, within the pool's cap (max; 0: none):
 * n if they fit, else what is left of the cap when that is at least `least`. Returns the pages
 * counted, 0 if not even `least` fit. Counted after the mapping instead, two zones (each under
 * its own lock) and huge blocks (under none) mapping at once each read room for themselves and
 * passed the cap together (found by review). */
size_t lab_pool_count_mapped(lab_pool_t *pool, size_t n, size_t least)
{
    size_t m = lab_load_relaxed(&pool->mapped_pages), k;
    do {
        k = n;
        if (pool->max) {
            if (m >= pool->max || pool->max - m < least)
                return 0;
            k = lab_min(n, pool->max - m);
        }
    } while (!__atomic_compare_exchange_n(&pool->mapped_pages, &m, m + k, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return k;
}

/* Map one more chunk for zone z (lock held). When the kernel refuses (ENOMEM) and *may_release,
 * the pool's wholly free chunks and huge cache are unmapped once and the mapping tried again;
 * *may_release is cleared then, so a refill that maps several chunks does not unmap the ones it
 * has just mapped at its next refusal, map them again, and so for ever (found by review: a pool
 * made with a reserve larger than RLIMIT_AS left room for spun in labyrinth_pool_init). */
static int zone_map_chunk(lab_pool_t *pool, lab_zone_t *z, unsigned zone, bool *may_release)
{
    size_t usable = lab_pool_count_mapped(pool, LAB_CHUNK_PAGES, 1);
    if (!usable)
        return -ENOMEM;
    lab_chunk_t *c = lab_meta_alloc(sizeof(lab_chunk_t));
    if (!c) {
        lab_sub_relaxed(&pool->mapped_pages, usable);
        return -ENOMEM;
    }
    int err;
    int64_t *pm;
    size_t mapped0 = lab_load_relaxed(&pool->mapped_pages);
    void *m = lab_chunk_map(&pm, &err);
    if (!m && err == -ENOMEM && *may_release) {
        *may_release = false;
        /* or if another thread released since (fewer pages mapped than with this chunk counted):
         * refused at the same moment, it may have released everything first */
        if (lab_pool_release_cached(pool, z) || lab_load_relaxed(&pool->mapped_pages) < mapped0)
            m = lab_chunk_map(&pm, &err);
    }
    if (!m) {
        lab_meta_free(c, sizeof(lab_chunk_t));
        lab_sub_relaxed(&pool->mapped_pages, usable);
        return err;
    }
    /* EXCLUSIVE pages never reach a fork child: a kernel that refuses the advice (before 4.14,
     * or a sandbox) gets no such chunk rather than one a child would see */
    if (zone == ZONE_EXCL && lab_os_madvise(m, LAB_CHUNK_SIZE, MADV_WIPEONFORK) != 0) {
        lab_chunk_unmap(m, pm);
        lab_meta_free(c, sizeof(lab_chunk_t));
        lab_sub_relaxed(&pool->mapped_pages, usable);
        return -ENOMEM;
    }
    c->thp = 0;
    /* A huge page is resident whole from its first touch: worth it where the chunks are used
     * densely. Past the threshold that holds for a few heaps, but not for thousands of threads
     * that each touch a few pages of their own runs (3 000 threads alive at once with a few small
     * blocks each mapped 194 MiB: peak RSS 213 MB with those chunks advised, 62 MB without), so
     * the pool also asks for a chunk's worth of mapped memory per heap drawing on it. */
    size_t mapped = lab_load_relaxed(&pool->mapped_pages) - usable; /* before this chunk */
    if (pool->thp && zone != ZONE_EXCL && mapped >= pool->thp_after &&
        mapped >= lab_load_relaxed(&pool->sharers) * LAB_CHUNK_PAGES &&
        lab_os_madvise(m, LAB_CHUNK_SIZE, MADV_HUGEPAGE) == 0) {
        c->thp = 1;
        lab_add_relaxed(&pool->thp_chunks, 1);
    }
    c->base = (uintptr_t)m;
    c->pool = pool;
    c->kind = LAB_CHUNK_NORMAL;
    c->zone = zone;
    c->size = LAB_CHUNK_SIZE;
    c->pm = pm;
    memset(c->dirty, 0, sizeof c->dirty);
    for (unsigned i = 0; i < LAB_CHUNK_PAGES; i++)
        c->head[i] = LAB_HEAD_NONE;
    if (pm) {
        /* in the region the fast map is the page map (pool.h): every entry names the sentinel,
         * released (lab_pagemap_lookup acquires), the header initialised before. Its page is
         * the one the chunk's first run writes anyway. */
        int64_t e = (int64_t)(uintptr_t)((char *)c + LAB_HEAD_NONE);
        for (unsigned i = 0; i < LAB_CHUNK_PAGES; i++)
            __atomic_store_n(&pm[i], e, __ATOMIC_RELEASE);
    } else if (lab_pagemap_set(c->base, LAB_CHUNK_SIZE, c) != 0) {
        lab_pagemap_set(c->base, LAB_CHUNK_SIZE, NULL);
        lab_chunk_unmap(m, pm);
        lab_meta_free(c, sizeof(lab_chunk_t));
        lab_sub_relaxed(&pool->mapped_pages, usable);
        return -ENOMEM;
    }
    c->next = z->chunks;
    if (c->next)
        c->next->prev = c;
    z->chunks = c;
    /* pages past a capped pool's limit are never put in the store: they stay unused */
    uint64_t now = lab_clock_ms();
    store_put_run(pool, z, c, 0, (unsigned)usable, 0, now);
    c->idle_since = now;
    return 0;
}

/* Bring the free count up to HIGH (DEFAULT callers, lock held). When the caller needs `need`
 * contiguous pages and the store has none, at least one chunk is mapped whatever the count says:
 * free pages may be plentiful and still too fragmented. */
int lab_zone_refill(lab_pool_t *pool, lab_zone_t *z, size_t need)
{
    size_t target = lab_max(pool->high, pool->reserve + need);
    int err = 0;
    bool mapped = false, may_release = true;
    if (zone_is_run(pool, z)) { /* no watermarks: the chunk the caller needs (its store its own) */
        lab_add_relaxed(&pool->refills, 1);
        return need ? zone_map_chunk(pool, z, lab_zone_index(pool, z), &may_release) : 0;
    }
    lab_add_relaxed(&pool->refills, 1);
    /* toward HIGH only (the callers that need a run take other threads' idle rooms first and
     * look again before they come here: lab_rooms_take_stale) */
    if (!need && pool_nr_free(pool) < target && lab_rooms_take_stale(pool, z))
        lab_zone_drain_shared(pool, z);
    while (pool_nr_free(pool) < target || (need && !mapped)) {
        if ((err = zone_map_chunk(pool, z, ZONE_NORMAL, &may_release)) != 0)
            break;
        mapped = true;
    }
    if (need && !mapped)
        return err ? err : -ENOMEM;
    return pool_nr_free(pool) >= pool->reserve + need ? 0 : err ? err : -ENOMEM;
}

/* Runs of a chain popped from z's list of `order` into the store (lock held). */
static void shared_chain_store(lab_pool_t *pool, lab_zone_t *z, lab_page_t *chain, unsigned order)
{
    size_t pages = 0;
    for (lab_page_t *d = chain, *next; d; d = next) {
        next = d->next; /* before store_free links d into a bin */
        lab_chunk_t *c = lab_desc_chunk(d);
        lab_store_relaxed(&d->h.state, LAB_PAGE_INTERIOR);
        store_free(pool, z, c, (unsigned)(d - c->page), 1u << order, d->h.clean, d->stamp);
        pages += (size_t)1 << order;
    }
    lab_sub_relaxed(&z->shared[order].pages, pages);
    if (z == &pool->zone[ZONE_NORMAL])
        lab_sub_relaxed(&pool->nr_shared, pages);
    else
        lab_sub_relaxed(&pool->nr_free_excl, (uint32_t)pages);
}

/* Drain every shared list of z into the store (lock held). */
void lab_zone_drain_shared(lab_pool_t *pool, lab_zone_t *z)
{
    for (unsigned o = 0; o < LAB_NR_ORDERS; o++) {
        lab_page_t *chain;
        while ((chain = stack_pop_chain(&z->shared[o].s)))
            shared_chain_store(pool, z, chain, o);
    }
}

/* ------------------------------------------------------------------------------------------
 * handing runs out and taking them back */

/* The fast map's entries of pages [idx, idx+n) of c, for the head value v (LAB_HEAD_NONE or the
 * offset of their run's descriptor): every write of head[] comes with this one. */
static inline void chunk_map_write(lab_chunk_t *c, unsigned idx, unsigned n, uint16_t v)
{
    if (!c->pm)
        return;
    int64_t e = (int64_t)(uintptr_t)((char *)c + v);
    /* four a round: a 1 MiB block has 256 entries, written at its malloc and at its free */
#pragma GCC unroll 4
    for (unsigned i = 0; i < n; i++)
        c->pm[idx + i] = e;
}

/* The head of a page-sized malloc block's run (state LARGE, from lab_pool_alloc_run: any
 * length) and its fast-map entry, on its first page only: v is LAB_HEAD_OF(d) when it is handed
 * out, LAB_HEAD_NONE when it goes back to the store. Its other pages keep the NONE every store
 * page has (a free, a malloc_usable_size or an ownership test is only ever right at a block's
 * start, and the run's length is in its descriptor), and its growth in place and its shrinking
 * write none either. Written whole, a run of 132 pages (`wl pagemix`'s mean) took 132 fast-map
 * entries and 33 head stores at its malloc and again at its free: a third of the pool's
 * instructions there. The order runs (the page API, spans, power-of-two blocks) keep heads on
 * every page: a span's blocks are anywhere in it. */
static inline void run_set_first(lab_page_t *d, uint16_t v)
{
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned idx = (unsigned)(d - c->page);
    uint16_t w = v == LAB_HEAD_NONE ? LAB_HEAD_NONE : LAB_HEAD_OF(idx);
    c->head[idx] = w;
    if (c->pm)
        c->pm[idx] = (int64_t)(uintptr_t)((char *)c + w);
}

static inline void run_set_heads(lab_page_t *d, unsigned n, uint16_t v)
{
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned idx = (unsigned)(d - c->page);
    uint16_t w = v == LAB_HEAD_NONE ? LAB_HEAD_NONE : LAB_HEAD_OF(idx);
    uint16_t *h = &c->head[idx];
    chunk_map_write(c, idx, n, w);
    /* 8 bytes (four heads) at a time, from wherever the run starts (a page-sized block's run
     * starts at any page: 2-byte stores were a tenth of `wl pagemix`'s instructions; a 1 MiB
     * block has 256 heads, and this runs on every page-sized malloc and free) */
    unsigned i = 0;
    uint64_t w4 = (uint64_t)w * 0x0001000100010001ull;
    for (; i + 4 <= n; i += 4)
        memcpy(&h[i], &w4, sizeof w4);
    for (; i < n; i++)
        h[i] = w;
}

static inline lab_room_slot_t *room_of(lab_rooms_t *rs, lab_pool_t *pool)
{
    if (pool->id >= LAB_ROOM_POOLS)
        return NULL;
    if (lab_unlikely(rs->slot[pool->id].gen != pool->gen)) {
        /* a destroyed pool's runs are gone with it: forget them */
        memset(&rs->slot[pool->id], 0, sizeof rs->slot[pool->id]);
        rs->slot[pool->id].gen = pool->gen;
        rs->slot[pool->id].pool = pool;
    }
    return &rs->slot[pool->id];
}

/* Push a cached run on the shared list of its order; drain the list when it is too long. The
 * runs are stamped `stamp` (idle since then, for the purge). */
void lab_shared_push_at(lab_pool_t *pool, lab_zone_t *z, lab_page_t *first, lab_page_t *last,
                           unsigned order, unsigned count, uint64_t stamp)
{
    for (lab_page_t *d = first;; d = d->next) {
        lab_chunk_t *c = lab_desc_chunk(d);
        if (c->head[d - c->page] != LAB_HEAD_NONE)
            run_set_heads(d, 1u << order, LAB_HEAD_NONE);
        d->stamp = stamp;
        if (d == last)
            break;
    }
    size_t pages = (size_t)count << order;
    /* counted before they can be popped (the push's full barrier orders the two): counted
     * after, a pop that took them at once subtracted them first, and the counts wrapped below
     * zero for a moment, which reserve and keep checks read as plenty (found by review) */
    size_t now = lab_add_relaxed(&z->shared[order].pages, pages) + pages;
    if (z == &pool->zone[ZONE_NORMAL])
        lab_add_relaxed(&pool->nr_shared, pages);
    else
        lab_add_relaxed(&pool->nr_free_excl, (uint32_t)pages);
    stack_push_chain(&z->shared[order].s, first, last);
    if (now > shared_cap_pages(order) && lab_lock_try(&z->lock)) {
        /* coalesce half of the list back into the store; never waits (frees may be ATOMIC) */
        size_t goal = now / 2;
        lab_page_t *chain;
        while (lab_load_relaxed(&z->shared[order].pages) > goal && (chain = stack_pop_chain(&z->shared[order].s)))
            shared_chain_store(pool, z, chain, order);
        lab_unlock(&z->lock);
    }
}

static void shared_push(lab_pool_t *pool, lab_zone_t *z, lab_page_t *first, lab_page_t *last,
                        unsigned order, unsigned count)
{
    /* runs leaving a room lose the heads they kept there (see lab_pool_free_order), and are
     * stamped now: the purge may see them from here on (a room keeps its runs from it, so the
     * frees that stay in a room read no clock) */
    lab_shared_push_at(pool, z, first, last, order, count, lab_clock_ms());
}

/* Up to max runs from a shared list (a room's refill takes a batch), honouring the reserve for
 * non-ATOMIC callers, pushed onto the list `onto` (linked by next); returns the new head, or
 * NULL when none was taken. The shared counters are updated once for the batch (a receiver
 * thread and a freeing thread met on them for every run). One CAS per run: popping a chain with
 * one would follow links of descriptors another thread may have taken and reused meanwhile (a
 * span's fields overlay them). */
static lab_page_t *shared_pop_batch(lab_pool_t *pool, lab_zone_t *z, unsigned order, lab_gfp_t gfp,
                                    unsigned max, lab_page_t *onto, unsigned *count)
{
    size_t n = (size_t)1 << order;
    bool normal = z == &pool->zone[ZONE_NORMAL];
    if (normal && !(gfp & LAB_GFP_ATOMIC)) {
        size_t free = pool_nr_free(pool);
        if (free < pool->reserve + n)
            return NULL;
        max = (unsigned)lab_min((size_t)max, (free - pool->reserve) >> order);
    } else if (normal && pool->reserve) {
        /* ATOMIC: the run it needs may come from the reserve, but no batch of reserve pages
         * for its room, where other threads' ATOMIC calls could not reach them and this
         * thread's DEFAULT calls would (found by review) */
        size_t free = pool_nr_free(pool);
        max = (unsigned)lab_max(1ul, lab_min((size_t)max, free > pool->reserve ? (free - pool->reserve) >> order : 0));
    }
    lab_page_t *head = onto, *chain;
    unsigned k = 0;
    while (k < max && (chain = stack_pop_chain(&z->shared[order].s))) {
        lab_page_t *d = chain;
        unsigned k0 = k;
        for (lab_page_t *next; d && k < max; d = next, k++) {
            next = d->next;
            d->next = head;
            head = d;
        }
        if (k - k0 > 1)
            lab_add_relaxed(&chains_taken, 1);
        if (d) /* the rest goes back, one chain again (not walked: an ATOMIC call near the
                  reserve takes one run of a chain at a time) */
            stack_push_chain(&z->shared[order].s, d, NULL);
    }
    if (!k)
        return NULL;
    size_t pages = (size_t)k << order;
    lab_sub_relaxed(&z->shared[order].pages, pages);
    if (normal) {
        size_t left = lab_sub_relaxed(&pool->nr_shared, pages) - pages +
                      lab_load_relaxed(&pool->zone[ZONE_NORMAL].store_pages);
        if (left < pool->reserve)
            lab_add_relaxed(&pool->hits_reserve, 1);
    } else {
        lab_sub_relaxed(&pool->nr_free_excl, (uint32_t)pages);
    }
    *count = k;
    return head;
}

/* One run from a shared list, as above. */
static lab_page_t *shared_pop(lab_pool_t *pool, lab_zone_t *z, unsigned order, lab_gfp_t gfp)
{
    unsigned count;
    return shared_pop_batch(pool, z, order, gfp, 1, NULL, &count);
}

/* Split a larger run from the shared lists; the unused halves go back on the lists. */
static lab_page_t *shared_split(lab_pool_t *pool, lab_zone_t *z, unsigned order, lab_gfp_t gfp)
{
    for (unsigned o = order + 1; o < LAB_NR_ORDERS; o++) {
        lab_page_t *d = shared_pop(pool, z, o, gfp);
        if (!d)
            continue;
        lab_chunk_t *c = lab_desc_chunk(d);
        unsigned idx = (unsigned)(d - c->page);
        uint8_t clean = d->h.clean;
        uint64_t stamp = d->stamp;
        while (o > order) {
            o--;
            lab_page_t *half = &c->page[idx + (1u << o)];
            lab_store_relaxed(&half->h.state, LAB_PAGE_CACHED);
            half->h.order = (uint8_t)o;
            half->h.npages = 1u << o;
            half->h.clean = clean;
            half->h.zone = (uint8_t)c->zone;
            half->stamp = stamp;
            half->owner = 0;
            shared_push(pool, z, half, half, o, 1);
        }
        d->h.order = (uint8_t)order;
        d->h.npages = 1u << order;
        return d;
    }
    return NULL;
}

/* ---- run rooms ----
 * malloc's page-sized blocks of a page count that is not a power of two (36 KiB, 200 KB) are
 * runs of the coalescing store: the zone lock, the coalescing, a clock read and a head per page
 * written at every malloc and again at every free (870 to 1 550 instructions a pair from 36 KiB
 * to 200 KB, glibc 330 to 580: scripts/callgrind_pair.sh --size N). A thread's run room keeps
 * the runs it frees, whole, for its next ones of about that size: a hit takes no lock and
 * rewrites nothing (289 instructions a pair). Bounded (pool.h) at 4 runs and 1 MiB a thread:
 * the order rooms hold more, but a program whose sizes seldom repeat gains nothing from more runs
 * (peak RSS of `wl churn 2 12000000`, medians of 5 runs: 11.7 MiB before run rooms, 13.0-13.2
 * with 8 runs and 2 MiB, 12.3 with these). The oldest go to the store past that. The runs leave
 * the room the ways order runs do (a refill that found nothing, the thread's exit, malloc_trim,
 * the purge thread's idle watch), but to the store, which needs the zone lock: its takers hold
 * rooms_lock, which the fork handler takes after the zone locks, so they only try it (and leave
 * the runs for their next round when it is busy), and a thread's exit gives its runs back before
 * it takes rooms_lock. The default pool's only: the page API allocates runs of 2^order pages
 * only. */

/* A run went into the calling thread's room, where no free reaches the purge thread: a thread
 * asleep with nothing to wait for would never look at it (the owner may make no call again). A
 * plain load of the flag, after the push in program order (compiler barrier); the thread, once
 * it has set the flag, passes every running thread through a full barrier (membarrier) before
 * it looks at the rooms (lab_rooms_filled): either this load sees the flag and wakes it, or that
 * look sees the run. */
static inline void bg_room_filled(void)
{
    lab_barrier();
    if (lab_unlikely(lab_load_relaxed(&lab_bg.idle)) && !lab_pool_in_handler())
        lab_bg_kick();
}

/* A page-API free put pages on the shared lists: that free makes no purge of its own (it may run
 * in a signal handler), so it does what lab_pool_tick's does for the purge thread: bumps the
 * count the thread compares before it sleeps for good, and wakes it if it already does (not in
 * a handler, where a wake-up is a system call: the thread sees them when next woken). Before,
 * an idle program's frees of EXCLUSIVE runs, or of a pool past the rooms' eight, stayed resident
 * for good (found by review: 64 MiB after 10 s). */
static void bg_pages_shared(void)
{
    if (__atomic_load_n(&lab_bg.state, __ATOMIC_ACQUIRE) != BG_RUNNING)
        return;
    if (lab_pool_in_handler())
        __atomic_fetch_add(&lab_bg.frees, 1, __ATOMIC_SEQ_CST);
    else
        lab_bg_free_seen();
}

/* ------------------------------------------------------------------------------------------
 * run zones: the default pool's page-sized malloc blocks, spread over more stores when threads
 * meet on one
 *
 * A page-sized block is carved from a store under its zone's lock and given back under it (what
 * the run room does not keep). Threads that all make blocks of varying lengths at once wait on
 * that lock: `wl pagemix 2` (64 blocks of 33 KiB-1 MiB per thread, replaced at random) spun on it
 * for half its time, at 4 times glibc's time, whose threads each get an arena of their own. A
 * thread whose try of its zone's lock keeps failing moves its page-sized blocks to the next run
 * zone in turn (made on first use, up to LAB_RUN_ZONES): a store with chunks and a lock of its
 * own. A block goes back to the zone that carved it (its chunk's), and a run room keeps runs of
 * its thread's zone only (run_room_push), so that a room's runs go to one store under one lock.
 * Spans and the page API stay in the normal zone. The cost is memory split between stores: a
 * zone whose store has no fit maps a chunk though another may hold free pages (given back after
 * the purge delay, as any zone's). Nothing moves while threads do not meet, and one thread leaves
 * a zone at a time: the others' presses start again after it. */
static __thread uint8_t tls_run_zone;  /* the zone of the thread's page-sized blocks (default pool) */
static __thread uint8_t tls_run_press; /* +RUN_PRESS_MISS per failed try of its lock, -1 per success */
static __thread uint32_t tls_run_left; /* its zone's `left` as it last saw it (at a miss, at its move) */
#define RUN_PRESS_MISS 16u
#define RUN_PRESS_MOVE 64u             /* four misses in a row; misses in one try of 16 that last */
#define RUN_LEFT_GRACE_MS 200u         /* misses after another thread left the zone that do not count */
#define RUN_LEFT_EARLY_MS 16u          /* a stamp ahead of the clock by up to this is taken as now */
static unsigned long run_zone_moves;   /* threads moved (tests; relaxed, any pool) */
unsigned long lab_pool_run_zone_moves(void) { return lab_load_relaxed(&run_zone_moves); }

lab_lock_t *lab_pool_zone_lock(lab_pool_t *pool, unsigned zi) { return &lab_zone_at(pool, zi)->lock; }

size_t lab_pool_zone_store_pages(lab_pool_t *pool, unsigned zi)
{
    lab_zone_t *z = zi < LAB_ZONES ? lab_zone_at(pool, zi) : NULL;
    return z ? lab_load_relaxed(&z->store_pages) : 0;
}

lab_page_t *lab_pool_run_room_first(void) { return lab_tls_rooms ? lab_tls_rooms->runs : NULL; }

size_t lab_pool_run_zones(lab_pool_t *pool, size_t *chunks)
{
    size_t n = 0, nc = 0;
    for (unsigned zi = ZONE_RUN0; zi < lab_zones_end(pool); zi++) {
        lab_zone_t *z = lab_zone_at(pool, zi);
        if (!z)
            continue;
        n++;
        if (!chunks)
            continue;
        lab_lock(&z->lock);
        for (lab_chunk_t *c = z->chunks; c; c = c->next)
            nc++;
        lab_unlock(&z->lock);
    }
    if (chunks)
        *chunks = nc;
    return n;
}

/* The zone of the calling thread's page-sized blocks. */
static inline lab_zone_t *run_zone(lab_pool_t *pool)
{
    return pool->is_default ? lab_zone_at(pool, tls_run_zone) : &pool->zone[ZONE_NORMAL];
}

static void run_chain_free(lab_pool_t *pool, lab_page_t *chain);

/* The calling thread's page-sized blocks to the next zone in turn (made if need be; no lock
 * held); its run room's runs go back to their store first. False if it stays: also when another
 * thread has left its zone since it saw that zone's `left` at `seen`. */
static lab_noinline bool run_zone_move(lab_pool_t *pool, uint32_t seen)
{
    /* as many run zones as CPUs the process may run on, up to LAB_RUN_ZONES: no more threads
       than CPUs take locks at once, and every zone more strands free runs that only its own
       threads carve (64 threads over 8 zones on 2 CPUs purged 3 to 8 times what one zone did) */
    static unsigned zones;
    if (!lab_load_relaxed(&zones))
        lab_store_relaxed(&zones, lab_min(lab_os_cpus(), (unsigned)LAB_RUN_ZONES));
    unsigned nz = lab_load_relaxed(&zones), k = lab_add_relaxed(&pool->run_zone_next, 1), zi;
    /* the run zones, then the normal zone, in turn; not the one the thread is in */
    do {
        unsigned slot = k++ % (nz + 1);
        zi = slot < nz ? ZONE_RUN0 + slot : ZONE_NORMAL;
    } while (zi == tls_run_zone);
    if (!lab_zone_at(pool, zi)) {
        lab_zone_t *made = lab_meta_alloc(sizeof(lab_zone_t)); /* zeroed */
        if (!made)
            return false;
        made->index = zi;
        /* under the lock the fork handler holds: it unlocks the zones it locked */
        lab_lock(&lab_pools_lock);
        if (!pool->run_zone[zi - ZONE_RUN0]) {
            __atomic_store_n(&pool->run_zone[zi - ZONE_RUN0], made, __ATOMIC_RELEASE);
            __atomic_store_n(&pool->run_zones_made, 1, __ATOMIC_RELEASE);
            made = NULL;
        }
        lab_unlock(&lab_pools_lock);
        if (made)
            lab_meta_free(made, sizeof(lab_zone_t));
    }
    lab_rooms_t *rs = lab_tls_rooms;
    lab_page_t *runs = NULL;
    /* the room emptied and the zone changed in one entry: a signal handler's free in between
       keeps out (room_enter), and its run cannot join the room under the other zone */
    if (rs && !room_enter(rs))
        return false;
    /* one thread leaves a zone for what its threads saw: two that met there and reached the count
       at once both moved, and the zone's written pages sat idle while the two new ones mapped
       theirs (`wl pagemix 2`: in 1 run of 14, peak RSS 37.7 MiB against 15-17) */
    uint32_t now = (uint32_t)lab_clock_ms();
    now += !now || now == seen; /* (0: none has left) */
    if (!__atomic_compare_exchange_n(&run_zone(pool)->left, &seen, now, false, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED)) {
        tls_run_left = seen;
        if (rs)
            room_leave(rs);
        return false;
    }
    if (rs)
        runs = lab_run_room_detach(rs);
    tls_run_zone = (uint8_t)zi;
    tls_run_left = lab_load_relaxed(&run_zone(pool)->left);
    if (rs)
        room_leave(rs);
    if (runs)
        run_chain_free(pool, runs);
    lab_add_relaxed(&run_zone_moves, 1);
    return true;
}

unsigned lab_pool_run_zone_move(lab_pool_t *pool, uint32_t seen)
{
    return pool->is_default && run_zone_move(pool, seen) ? tls_run_zone : UINT_MAX;
}

uint32_t lab_pool_run_zone_left(lab_pool_t *pool) { return lab_load_relaxed(&run_zone(pool)->left); }

void lab_pool_run_zone_stamp(lab_pool_t *pool, unsigned zi, uint32_t stamp)
{
    lab_store_relaxed(&lab_zone_at(pool, zi)->left, stamp);
}

/* A run of n pages carved from another zone's store than `own` (no lock held; the normal zone's
 * first, then the run zones'), for a thread whose zone's store has none; or NULL. wait: each
 * lock waited for, one at a time, and the normal zone's shared lists drained into its store
 * (the thread's own chunk was refused), else only tried. The run goes back to its own zone. */
static lab_noinline lab_page_t *run_zone_borrow(lab_pool_t *pool, lab_zone_t *own, size_t n, bool wait)
{
    for (unsigned zi = 0; zi < LAB_ZONES; zi++) {
        lab_zone_t *o = lab_zone_at(pool, zi);
        if (!o || o == own || zi == ZONE_EXCL)
            continue;
        if (wait)
            lab_lock(&o->lock);
        else if (!lab_lock_try(&o->lock))
            continue;
        if (wait)
            lab_zone_drain_shared(pool, o);
        lab_page_t *d = zone_has_free(pool, o, n) ? store_take_block(pool, o, n) : NULL;
        lab_unlock(&o->lock);
        if (d)
            return d;
    }
    return NULL;
}

/* Lock and return the zone of the calling thread's page-sized blocks (a caller that may wait),
 * moving the thread on when it keeps finding the lock taken. */
static lab_zone_t *run_zone_lock(lab_pool_t *pool)
{
    lab_zone_t *z = run_zone(pool);
    if (lab_likely(lab_lock_try(&z->lock))) {
        tls_run_press -= tls_run_press > 0;
        return z;
    }
    tls_run_press = (uint8_t)lab_min(tls_run_press + RUN_PRESS_MISS, 255u);
    uint32_t left = pool->is_default ? lab_load_relaxed(&z->left) : 0;
    /* lately: up to RUN_LEFT_GRACE_MS after the stamp, and from RUN_LEFT_EARLY_MS before it (a
       thread that leaves in the millisecond another left stamps the next one); a stamp weeks
       old wraps out of that window, as it should (a signed difference read one 25 days old as
       just made, and kept every thread in the zone for 25 days more: found by review) */
    if (left && (left != tls_run_left ||
                 (uint32_t)lab_clock_ms() - left + RUN_LEFT_EARLY_MS < RUN_LEFT_GRACE_MS + RUN_LEFT_EARLY_MS)) {
        /* a thread left the zone since this one's last miss, or lately: its blocks carved here
           still come back here, and it borrows from here when its new store has no fit, for a
           while; what pressed this thread may go with it */
        tls_run_left = left;
        tls_run_press = RUN_PRESS_MISS;
    } else if (pool->is_default && tls_run_press >= RUN_PRESS_MOVE && run_zone_move(pool, left)) {
        tls_run_press = 0;
        z = run_zone(pool);
    }
    lab_lock(&z->lock);
    return z;
}

/* The zone the calling thread's run room's runs go back to, all of one (run_room_push), or NULL
 * when it holds none (inside the room). Its thread's zone, but for the runs of a set adopted from
 * a thread that ended without its destructors (pool_life.c), until they are used. */
static inline lab_zone_t *run_room_zone(lab_pool_t *pool, lab_rooms_t *rs)
{
    return rs->runs ? lab_zone_at(pool, rs->runs->h.zone) : NULL;
}

/* The run room's best fit for npages (at most npages/8 over, the size classes' bound), or NULL. */
static inline lab_page_t *run_room_pop(lab_pool_t *pool, size_t npages)
{
    lab_rooms_t *rs = lab_tls_rooms;
    if (!rs || !pool->is_default || !room_enter(rs))
        return NULL;
    lab_page_t **best = NULL;
    size_t lim = npages + npages / 8;
    for (lab_page_t **pp = &rs->runs; *pp; pp = &(*pp)->next) {
        size_t n = (*pp)->h.npages;
        if (n >= npages && n <= lim && (!best || n < (*best)->h.npages)) {
            best = pp;
            if (n == npages)
                break;
        }
    }
    lab_page_t *d = NULL;
    if (best) {
        d = *best;
        *best = d->next;
        rs->nruns--;
        rs->run_pages -= d->h.npages;
        room_of(rs, pool); /* the slot set up, so that its hits are counted */
        rs->slot[pool->id].hits++;
    }
    room_leave(rs);
    return d;
}

/* Keep d (a LARGE run being freed) in the run room. Returns what must go to the store instead,
 * linked by next: NULL, d itself (no room for it), or the oldest runs it pushed out. */
static lab_page_t *run_room_push(lab_pool_t *pool, lab_page_t *d)
{
    lab_rooms_t *rs = lab_tls_rooms;
    uint32_t n = d->h.npages;
    d->next = NULL;
    if (!rs || !pool->is_default || n > LAB_RUN_ROOM_PAGES || !room_enter(rs))
        return d;
    /* another zone's: another thread's block, or one of another zone than the runs the room
       holds (read in the room: run_zone_move changes the thread's zone there) */
    if (d->h.zone != (rs->runs ? rs->runs->h.zone : tls_run_zone)) {
        room_leave(rs);
        return d;
    }
    /* its head stays: a second free() of the block finds a CACHED descriptor and aborts */
    lab_store_relaxed(&d->h.state, LAB_PAGE_CACHED);
    d->owner = 0;
    d->h.clean = 0;
    d->next = rs->runs;
    rs->runs = d;
    rs->nruns++;
    rs->run_pages += n;
    lab_page_t *out = NULL;
    while (rs->nruns > LAB_RUN_ROOM_RUNS || rs->run_pages > LAB_RUN_ROOM_PAGES) {
        lab_page_t **pp = &rs->runs;
        while ((*pp)->next)
            pp = &(*pp)->next;
        lab_page_t *t = *pp;
        *pp = NULL;
        rs->nruns--;
        rs->run_pages -= t->h.npages;
        t->next = out;
        out = t;
    }
    room_leave(rs);
    bg_room_filled();
    return out;
}

/* Page-sized malloc blocks' runs (linked by next, all of one zone: a freed run, or runs out of a
 * run room; their heads on their first pages only, run_set_first) into the store, stamped
 * `stamp`; the caller holds the zone's lock. Returns the pages. */
size_t lab_run_chain_store(lab_pool_t *pool, lab_page_t *chain, uint64_t stamp)
{
    lab_zone_t *z = lab_zone_at(pool, chain->h.zone);
    size_t pages = 0;
    for (lab_page_t *d = chain, *next; d; d = next) {
        next = d->next; /* before store_free, which may write the descriptor */
        lab_chunk_t *c = lab_desc_chunk(d);
        unsigned n = d->h.npages;
        run_set_first(d, LAB_HEAD_NONE);
        d->owner = 0;
        lab_store_relaxed(&d->h.state, LAB_PAGE_INTERIOR);
        store_free(pool, z, c, (unsigned)(d - c->page), n, false, stamp);
        pages += n;
    }
    return pages;
}

/* A room's runs of 2^order pages (linked by next) into the store of z, whose lock the caller
 * holds, where they coalesce with their free neighbours. */
static void room_chain_store(lab_pool_t *pool, lab_zone_t *z, lab_page_t *d, unsigned order)
{
    uint64_t now = lab_clock_ms();
    while (d) {
        lab_page_t *next = d->next;
        lab_chunk_t *c = lab_desc_chunk(d);
        /* as on the way to the shared lists: the heads a room keeps go */
        if (c->head[d - c->page] != LAB_HEAD_NONE)
            run_set_heads(d, 1u << order, LAB_HEAD_NONE);
        lab_store_relaxed(&d->h.state, LAB_PAGE_INTERIOR);
        store_free(pool, z, c, (unsigned)(d - c->page), 1u << order, d->h.clean, now);
        d = next;
    }
}

/* Move the calling thread's room runs of this pool to the shared lists (zone lock may be held:
 * shared_push only ever try-locks), and its run room to the store: `held` is the zone whose lock
 * the caller holds, or NULL (the run room stays when it is another zone's). */
static void room_drain_self(lab_pool_t *pool, lab_zone_t *held)
{
    lab_rooms_t *rs = lab_tls_rooms;
    if (!rs || pool->id >= LAB_ROOM_POOLS || !room_enter(rs))
        return;
    for (unsigned o = 0; o < LAB_NR_ORDERS && rs->slot[pool->id].pool == pool; o++) {
        lab_room_slot_t *r = room_of(rs, pool);
        if (r->head[o]) {
            lab_page_t *last = r->head[o];
            while (last->next)
                last = last->next;
            lab_page_t *first = r->head[o];
            unsigned cnt = r->count[o];
            r->head[o] = NULL;
            r->count[o] = 0;
            shared_push(pool, &pool->zone[ZONE_NORMAL], first, last, o, cnt);
        }
    }
    lab_zone_t *z = pool->is_default ? run_room_zone(pool, rs) : NULL;
    lab_page_t *runs = z && (!held || held == z) ? lab_run_room_detach(rs) : NULL;
    room_leave(rs);
    if (runs) {
        if (!held)
            lab_lock(&z->lock);
        lab_run_chain_store(pool, runs, lab_clock_ms());
        if (!held)
            lab_unlock(&z->lock);
    }
}

void lab_pool_room_drain(lab_pool_t *pool) { room_drain_self(pool, NULL); }

/* How many runs each room of the calling thread holds for pool (cnt[LAB_NR_ORDERS]): 0 when
 * its slot is not set up for pool, UINT_MAX (none of what comes later counts as new) when a
 * taker is moving the runs out (rooms_take; read only inside room_enter, which keeps the two
 * apart: ThreadSanitizer saw the counts read while a trim emptied them) */
static void room_counts(lab_pool_t *pool, unsigned *cnt)
{
    lab_rooms_t *rs = lab_tls_rooms;
    bool in = rs && pool->id < LAB_ROOM_POOLS && room_enter(rs);
    bool live = in && rs->slot[pool->id].gen == pool->gen;
    for (unsigned o = 0; o < LAB_NR_ORDERS; o++)
        cnt[o] = live ? rs->slot[pool->id].count[o] : rs && !in ? UINT_MAX : 0;
    if (in)
        room_leave(rs);
}

/* The runs the calling thread's rooms got since room_counts gave `before` (the newest of each
 * room: the spans a reclaim just gave back), and its run room, into the store of the NORMAL zone
 * z, whose lock the caller holds; the runs the rooms held before stay. Returns the first page of
 * the shortest of those runs that holds n pages (NULL if none does). */
static lab_page_t *room_released_to_store(lab_pool_t *pool, lab_zone_t *z, const unsigned *before, unsigned n)
{
    lab_rooms_t *rs = lab_tls_rooms;
    if (!rs || pool->id >= LAB_ROOM_POOLS || !room_enter(rs))
        return NULL;
    lab_page_t *got[LAB_NR_ORDERS] = {0}, *fit = NULL;
    for (unsigned o = 0; o < LAB_NR_ORDERS && rs->slot[pool->id].pool == pool; o++) {
        lab_room_slot_t *r = room_of(rs, pool);
        unsigned k = r->count[o] > before[o] ? r->count[o] - before[o] : 0;
        if (!k)
            continue;
        lab_page_t *last = r->head[o];
        for (unsigned i = 1; i < k; i++)
            last = last->next;
        got[o] = r->head[o];
        r->head[o] = last->next;
        r->count[o] -= k;
        last->next = NULL;
        if (!fit && (1u << o) >= n)
            fit = got[o];
    }
    lab_page_t *runs = pool->is_default && run_room_zone(pool, rs) == z ? lab_run_room_detach(rs) : NULL;
    room_leave(rs);
    for (unsigned o = 0; o < LAB_NR_ORDERS; o++)
        if (got[o])
            room_chain_store(pool, z, got[o], o);
    if (runs)
        lab_run_chain_store(pool, runs, lab_clock_ms());
    return fit;
}

lab_noinline lab_cold void lab_pool_fail(lab_pool_t *pool)
{
    lab_add_relaxed(&pool->failures, 1);
    errno = ENOMEM;
}

/* The pages out of the free lists now (handed out, or in threads' rooms), kept as the peak when
 * more than any seen: on every allocation slow path, ATOMIC ones included, and at each stats
 * call (a peak only a stats call saw was reported once and then fell back: found by review). */
void lab_pool_note_peak(lab_pool_t *pool)
{
    /* in use as the summary's current_kib counts it: not free pages, nor cached huge mappings */
    size_t mapped = lab_load_relaxed(&pool->mapped_pages),
           nfree = lab_pool_free_all(pool) + (lab_load_relaxed(&pool->huge_cache_bytes) >> LAB_PAGE_SHIFT);
    size_t used = mapped > nfree ? mapped - nfree : 0, peak = lab_load_relaxed(&pool->peak_used);
    while (used > peak &&
           !__atomic_compare_exchange_n(&pool->peak_used, &peak, used, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* The store's runs reach the room in a batch, as the shared lists' do (the zone lock held; the
 * room's own zone), for orders below a span's: a thread whose pages another frees (packets: a
 * receiver taking pages a sender frees, whose spills overflow the shared list into the store)
 * took the lock once per page. Not below the free count the caller's own take honours (the
 * reserve for ATOMIC, the low watermark otherwise): the batch is this thread's alone. */
static void room_fill_from_store(lab_pool_t *pool, lab_zone_t *z, lab_rooms_t *rs, unsigned order, bool atomic)
{
    unsigned batch = room_cap[order] / 2;
    if (!rs || order >= ROOM_FILL_ORDERS || pool->id >= LAB_ROOM_POOLS || !room_enter(rs))
        return;
    lab_room_slot_t *r = room_of(rs, pool);
    size_t n = (size_t)1 << order, floor = (atomic ? pool->reserve : pool->low) + n;
    lab_page_t *d;
    while (r->count[order] < batch && pool_nr_free(pool) >= floor &&
           (d = store_take_order(pool, z, order))) {
        lab_store_relaxed(&d->h.state, LAB_PAGE_CACHED);
        d->h.order = (uint8_t)order;
        d->owner = 0;
        d->next = r->head[order];
        r->head[order] = d;
        r->count[order]++;
    }
    room_leave(rs);
}

/* Everything after the room: shared lists, split, store, refill. */
static lab_noinline lab_page_t *pool_alloc_order_slow(lab_pool_t *pool, unsigned order, lab_gfp_t gfp)
{
    unsigned zi = (gfp & LAB_GFP_EXCLUSIVE) ? ZONE_EXCL : ZONE_NORMAL;
    lab_zone_t *z = &pool->zone[zi];
    bool atomic = gfp & LAB_GFP_ATOMIC;
    lab_page_t *d;

    /* refill the room with a batch when this thread has one (not for EXCLUSIVE runs) */
    lab_rooms_t *rs = zi != ZONE_NORMAL ? NULL : lab_rooms_get(atomic);
    if (rs && pool->id < LAB_ROOM_POOLS) {
        unsigned batch = room_cap[order] / 2;
        if (batch > 0 && room_enter(rs)) {
            lab_room_slot_t *r = room_of(rs, pool);
            unsigned got;
            if (r->count[order] < batch &&
                (d = shared_pop_batch(pool, z, order, gfp, batch - r->count[order], r->head[order], &got))) {
                r->head[order] = d;
                r->count[order] += got;
            }
            d = r->head[order];
            if (d) {
                r->head[order] = d->next;
                r->count[order]--;
            }
            room_leave(rs);
            if (d) {
                lab_add_relaxed(&pool->hits_shared, 1);
                if (!atomic)
                    lab_pool_tick(pool, false, (size_t)1 << order);
                else
                    lab_pool_note_peak(pool);
                return d;
            }
        }
    }
    if ((d = shared_pop(pool, z, order, gfp)) || (d = shared_split(pool, z, order, gfp))) {
        lab_add_relaxed(&pool->hits_shared, 1);
        if (!atomic)
            lab_pool_tick(pool, false, (size_t)1 << order);
        return d;
    }
    if (atomic) {
        if (!lab_lock_try(&z->lock))
            return NULL;
    } else {
        lab_lock(&z->lock);
    }
    size_t n = (size_t)1 << order;
    d = NULL;
    if (atomic || zi == ZONE_EXCL || pool_nr_free(pool) >= pool->reserve + n + (pool->low - pool->reserve))
        d = store_take_used_first(pool, z, (unsigned)n, (int)order, atomic);
    if (d)
        room_fill_from_store(pool, z, rs, order, atomic);
    if (!d && atomic && zi == ZONE_NORMAL) {
        /* before an ATOMIC call fails, this thread's rooms and the shared lists go back to the
         * store too (no wait, no system call): runs of other orders in its own rooms could
         * otherwise leave it without pages the pool has free (found by review: an order-9 run
         * freed into the room, then order 0 failed with all 512 pages free) */
        room_drain_self(pool, z);
        lab_zone_drain_shared(pool, z);
        d = store_take_used_first(pool, z, (unsigned)n, (int)order, atomic);
    }
    if (!d && !atomic) {
        /* like the kernel draining per-cpu lists before it gives up: our own room and the
         * shared lists go back to the store, where they can coalesce */
        room_drain_self(pool, z);
        lab_zone_drain_shared(pool, z);
        if (zi == ZONE_EXCL || pool_nr_free(pool) >= pool->reserve + n)
            d = store_take_order(pool, z, order);
        if (!d || (zi == ZONE_NORMAL && pool_nr_free(pool) < pool->low)) {
            if (d) {
                /* keep the run; refill toward HIGH for the next callers (not on a NOGROW
                 * call's account: the next call that may grow does it) */
                if (!(gfp & LAB_GFP_NOGROW))
                    lab_zone_refill(pool, z, 0);
            } else if (zi == ZONE_EXCL) {
                bool may_release = true;
                if (zone_map_chunk(pool, z, ZONE_EXCL, &may_release) == 0)
                    d = store_take_order(pool, z, order);
            } else if (!(gfp & LAB_GFP_NOGROW) && lab_rooms_take_stale(pool, z)) {
                lab_zone_drain_shared(pool, z);
                if (pool_nr_free(pool) >= pool->reserve + n)
                    d = store_take_order(pool, z, order);
                if (!d && lab_zone_refill(pool, z, n) == 0)
                    d = store_take_order(pool, z, order);
            } else if (!(gfp & LAB_GFP_NOGROW) && lab_zone_refill(pool, z, n) == 0) {
                d = store_take_order(pool, z, order);
            }
        }
    }
    if (d && zi == ZONE_NORMAL && pool_nr_free(pool) < pool->reserve)
        lab_add_relaxed(&pool->hits_reserve, 1);
    if (d && !atomic)
        store_trim_for(pool, z, d, (unsigned)n);
    lab_unlock(&z->lock);
    if (d) {
        lab_add_relaxed(&z->hits, 1);
        d->h.order = (uint8_t)order;
        if (!atomic)
            lab_pool_tick(pool, false, (size_t)1 << order);
        else
            lab_pool_note_peak(pool);
    }
    return d;
}

/* The room fast paths: the calling thread's own list for (pool, order), no atomic. NULL / false
 * when there is no room, it is busy (a signal handler interrupted a change), or it is empty. */
static inline lab_page_t *room_pop(lab_pool_t *pool, unsigned order)
{
    lab_rooms_t *rs = lab_tls_rooms;
    unsigned id = pool->id;
    if (lab_unlikely(!rs || id >= LAB_ROOM_POOLS || rs->slot[id].gen != pool->gen || !room_enter(rs)))
        return NULL;
    lab_room_slot_t *r = &rs->slot[id];
    lab_page_t *d = r->head[order];
    if (d) {
        r->head[order] = d->next;
        r->count[order]--;
        rs->slot[id].hits++;
    }
    room_leave(rs);
    return d;
}

/* A freed run stays in the thread's room unless the pool is below its reserve: then it goes
 * back to the shared lists, where the reserve is counted and every thread's ATOMIC calls can
 * reach it (kept in a room, a burst of ATOMIC runs into the reserve left it there, short for
 * other threads and open to this one's DEFAULT calls: found by review). */
static inline bool pool_below_reserve(lab_pool_t *pool)
{
    return pool->reserve && pool_nr_free(pool) < pool->reserve;
}

static inline bool room_push(lab_pool_t *pool, lab_page_t *d, unsigned order)
{
    lab_rooms_t *rs = lab_tls_rooms;
    unsigned id = pool->id;
    if (lab_unlikely(!rs || id >= LAB_ROOM_POOLS || rs->slot[id].gen != pool->gen || pool_below_reserve(pool) ||
                     !room_enter(rs)))
        return false;
    lab_room_slot_t *r = &rs->slot[id];
    bool room = r->count[order] < room_cap[order];
    if (lab_likely(room)) {
        d->next = r->head[order];
        r->head[order] = d;
        r->count[order]++;
    }
    room_leave(rs);
    return room;
}

static lab_noinline void *alloc_order_finish(lab_pool_t *pool, lab_page_t *d, unsigned order, lab_gfp_t gfp,
                                             uint8_t state, lab_page_t **desc);
/* The huge cache gives way to fresh pages (lab_huge_cache_yield): the test inline, since nearly
 * every run handed out was used before, or the cache is empty. */
static inline bool huge_cache_yield(lab_pool_t *pool, lab_page_t *d, lab_gfp_t gfp)
{
    if (lab_likely(d->h.clean != 1 || !lab_load_relaxed(&pool->huge_cache_bytes)) || (gfp & LAB_GFP_ATOMIC))
        return false;
    return lab_huge_cache_yield(pool, d, !(gfp & LAB_GFP_ZERO));
}

lab_inline void *pool_alloc_order(lab_pool_t *pool, unsigned order, lab_gfp_t gfp, uint8_t state, lab_page_t **desc)
{
    lab_page_t *d = (gfp & LAB_GFP_EXCLUSIVE) ? NULL : room_pop(pool, order);
    /* the common case: a run from the room whose heads need no rewrite, nothing to clear */
    if (lab_likely(d != NULL) && lab_likely(!(gfp & LAB_GFP_ZERO))) {
        lab_chunk_t *c = lab_desc_chunk(d);
        unsigned idx = (unsigned)(d - c->page);
        if (lab_likely(state == LAB_PAGE_USER || c->head[idx] == LAB_HEAD_OF(idx))) {
            lab_store_relaxed(&d->h.state, state);
            d->h.order = (uint8_t)order;
            d->h.npages = 1u << order;
            d->owner = 0;
            d->h.clean = 0;
            *desc = d;
            return (void *)(c->base + ((uintptr_t)idx << LAB_PAGE_SHIFT));
        }
    }
    return alloc_order_finish(pool, d, order, gfp, state, desc);
}

void *lab_pool_alloc_order(lab_pool_t *pool, unsigned order, lab_gfp_t gfp, uint8_t state, lab_page_t **desc)
{
    return pool_alloc_order(pool, order, gfp, state, desc);
}

/* malloc's page-sized runs of 2^order pages (alloc.c): lab_pool_alloc_order with no flag,
 * compiled for that case */
void *lab_pool_alloc_large(lab_pool_t *pool, unsigned order, lab_page_t **desc)
{
    return pool_alloc_order(pool, order, LAB_GFP_DEFAULT, LAB_PAGE_LARGE, desc);
}

/* lab_pool_alloc_order's rest: d from the room (or NULL: from the shared lists or the store),
 * heads to rewrite, pages to clear, an EXCLUSIVE owner to record. */
static lab_noinline void *alloc_order_finish(lab_pool_t *pool, lab_page_t *d, unsigned order, lab_gfp_t gfp,
                                             uint8_t state, lab_page_t **desc)
{
    if (!d && !(d = pool_alloc_order_slow(pool, order, gfp))) {
        if (!(gfp & LAB_GFP_NOGROW))
            lab_pool_fail(pool);
        return NULL;
    }
    unsigned n = 1u << order;
    lab_store_relaxed(&d->h.state, state);
    d->h.order = (uint8_t)order;
    d->h.npages = n;
    d->owner = (gfp & LAB_GFP_EXCLUSIVE) ? thread_serial() : 0;
    /* head[] matters only to free(). A run in a room keeps the heads it had (all pointing at
     * its descriptor, or all NONE): taken again whole, it needs no rewrite. Pages of the page
     * API may keep either (free() of them aborts either way: "pages from labyrinth_alloc_pages"
     * or "never allocated"); runs are cleared when they leave the room (shared_push). */
    if (state != LAB_PAGE_USER) {
        lab_chunk_t *c = lab_desc_chunk(d);
        unsigned idx = (unsigned)(d - c->page);
        if (c->head[idx] != LAB_HEAD_OF(idx))
            run_set_heads(d, n, 0);
    }
    (void)huge_cache_yield(pool, d, gfp);
    if (gfp & LAB_GFP_ZERO)
        run_zero(d, n, gfp);
    d->h.clean = 0;
    uintptr_t a = lab_desc_addr(d);
    *desc = d;
    return (void *)a;
}

/* Free a 2^order run to the room, spilling to the shared list; true if pages reached the shared
 * lists (where a purge can see them). No system call, no lock waited on (the page API's frees). */
static lab_noinline bool pool_free_order_spill(lab_pool_t *pool, lab_page_t *d, unsigned order, unsigned zi);

/* d, a 2^order run being freed, marked cached, then kept in the thread's room if there is room
 * (true), else left to the caller's spill. The heads stay while the run sits in a room (a 1 MiB
 * run has 256 of them to write): a stray free() into it finds a CACHED descriptor and aborts, as
 * it would on NONE. A run that is not whole-order aligned with its heads never gets here. */
lab_inline bool order_run_kept(lab_pool_t *pool, lab_page_t *d, unsigned order)
{
    lab_store_relaxed(&d->h.state, LAB_PAGE_CACHED);
    d->h.order = (uint8_t)order;
    d->h.clean = 0;
    d->owner = 0;
    return lab_likely(d->h.zone == ZONE_NORMAL) && room_push(pool, d, order);
}

lab_inline bool pool_free_order(lab_pool_t *pool, lab_page_t *d, unsigned order)
{
    if (order_run_kept(pool, d, order)) {
        bg_room_filled();
        return false;
    }
    return pool_free_order_spill(pool, d, order, d->h.zone);
}

/* pool_free_order's rest: the room is full (spill half of it to the shared list) or not to be
 * used. Apart, so that the common case saves no registers. */
static lab_noinline bool pool_free_order_spill(lab_pool_t *pool, lab_page_t *d, unsigned order, unsigned zi)
{
    lab_rooms_t *rs = lab_tls_rooms;
    /* a thread that only frees (a sender) gets rooms too, or each free was a push of its own */
    if (!rs && zi == ZONE_NORMAL && pool->id < LAB_ROOM_POOLS)
        rs = lab_rooms_get(true);
    if (rs && zi == ZONE_NORMAL && pool->id < LAB_ROOM_POOLS && !pool_below_reserve(pool) && room_enter(rs)) {
        lab_room_slot_t *r = room_of(rs, pool);
        d->next = r->head[order];
        r->head[order] = d;
        lab_page_t *spill = NULL, *last = NULL;
        unsigned nspill = 0;
        if (lab_unlikely(++r->count[order] > room_cap[order])) {
            /* hysteresis: keep half, hand the rest to the shared list in one CAS */
            unsigned keep = room_cap[order] / 2;
            lab_page_t *p = r->head[order];
            for (unsigned i = 1; i < keep && p; i++)
                p = p->next;
            if (keep == 0) {
                spill = r->head[order];
                r->head[order] = NULL;
            } else {
                spill = p->next;
                p->next = NULL;
            }
            nspill = r->count[order] - keep;
            r->count[order] = keep;
            for (last = spill; last && last->next; last = last->next)
                ;
        }
        room_leave(rs);
        if (!spill) {
            /* a room just made, or a slot of a pool gone that room_of reset: as room_push's
             * (found by review: threads whose first page call was a free kept their runs) */
            bg_room_filled();
            return false;
        }
        shared_push(pool, &pool->zone[zi], spill, last, order, nspill);
        return true;
    }
    shared_push(pool, &pool->zone[zi], d, d, order, 1);
    return true;
}

/* lab_pool_free_order past the room: the spill, and the tick when pages reached the shared lists
 * (at least 2^order: a spill may push more). */
static lab_noinline void free_order_spill_tick(lab_pool_t *pool, lab_page_t *d, unsigned order, unsigned zi)
{
    if (pool_free_order_spill(pool, d, order, zi))
        lab_pool_tick(pool, true, (size_t)1 << order);
}

/* The arena's and malloc's frees: pool_free_order, then the free-path purge or wake-up
 * (lab_pool_tick) after a spill; a room hit's calls are tail calls (no register saved on its
 * way: a tick after the shared free saved three at every free). */
void lab_pool_free_order(lab_pool_t *pool, lab_page_t *d, unsigned order)
{
    if (order_run_kept(pool, d, order))
        return bg_room_filled();
    return free_order_spill_tick(pool, d, order, d->h.zone);
}

/* d, npages carved from the store (lock dropped), handed out as a page-sized malloc block. */
static void *run_hand_out(lab_pool_t *pool, lab_page_t *d, size_t npages, lab_gfp_t gfp, lab_page_t **desc)
{
    lab_add_relaxed(&lab_zone_at(pool, d->h.zone)->hits, 1);
    bool lent = huge_cache_yield(pool, d, gfp);
    lab_store_relaxed(&d->h.state, LAB_PAGE_LARGE);
    if (lab_likely(!lent))
        run_written_arm(d, gfp & LAB_GFP_ATOMIC);
    else
        d->h.order = 0; /* lent pages (lab_huge_cache_yield), resident: a look would say written */
    d->owner = 0;
    run_set_first(d, 0);
    if (gfp & LAB_GFP_ZERO)
        run_zero(d, npages, gfp);
    d->h.clean = 0;
    uintptr_t a = lab_desc_addr(d);
    *desc = d;
    if (!(gfp & LAB_GFP_ATOMIC))
        lab_pool_tick(pool, false, npages);
    return (void *)a;
}

static void store_trade_fresh(lab_pool_t *pool, lab_zone_t *z, lab_page_t *r, unsigned n);

/* Whether the calling thread's run room holds at least as many pages as run d (n pages just
 * carved from the store) has never written: a shorter block after longer ones (python3's start:
 * 46 KiB after 32 and 76 KiB buffers, freed) took fresh pages beside the room's written runs,
 * which only serve lengths up to an eighth shorter than theirs. */
static bool room_covers_fresh(lab_page_t *d, unsigned n)
{
    lab_rooms_t *rs = lab_tls_rooms;
    if (!rs || !rs->runs)
        return false;
    unsigned fresh = n - carved_dirty(d, n);
    if (!fresh || !room_enter(rs))
        return false;
    bool r = rs->run_pages >= fresh;
    room_leave(rs);
    return r;
}

/* Run d, n pages just carved from the default pool's normal store (lock held) for a caller that
 * may wait, covers
 * pages never written while the calling thread's run room holds written runs (the room missed:
 * none of a length near n): d goes back, the room's runs join the store, where they coalesce
 * with their free neighbours, and the run is carved again where it finds the most used pages.
 * Sixteen 256 KiB blocks freed, then nine of 455 KiB: three of the sixteen sat in the room
 * (780 KiB) while two of the nine faulted in pages of their own. */
static lab_page_t *store_join_room(lab_pool_t *pool, lab_zone_t *z, lab_page_t *d, unsigned n)
{
    lab_rooms_t *rs = lab_tls_rooms;
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned s = (unsigned)(d - c->page);
    if (!rs || !rs->runs || carved_dirty(d, n) == n || !room_enter(rs))
        return d;
    if (run_room_zone(pool, rs) != z) { /* (another zone's runs: not under this lock) */
        room_leave(rs);
        return d;
    }
    lab_page_t *runs = lab_run_room_detach(rs);
    room_leave(rs);
    store_free(pool, z, c, s, n, true, 0);
    lab_run_chain_store(pool, runs, lab_clock_ms());
    lab_page_t *r = store_take_used(pool, z, n, run_align(pool, n), NULL, 0);
    return r ? r : store_take_block(pool, z, n);
}

static lab_noinline void *alloc_run_store(lab_pool_t *pool, size_t npages, lab_gfp_t gfp, lab_page_t **desc);

/* A run room's run cleared for a ZERO call: clean 0, all of it; and all its pages, which may be up
 * to an eighth more than asked: they are the block's usable size (calloc clears that, as glibc's
 * does). Apart, so that lab_pool_alloc_run's room hit makes no call. */
static lab_noinline void *run_room_zeroed(lab_page_t *d, lab_gfp_t gfp)
{
    run_zero(d, d->h.npages, gfp);
    return (void *)lab_desc_addr(d);
}

void *lab_pool_alloc_run(lab_pool_t *pool, size_t npages, lab_gfp_t gfp, lab_page_t **desc)
{
    lab_page_t *d;
    /* a run from the thread's run room, the common case: no call, so no register saved (the
       rest, past every zone's store, saved six and restored them at every room hit) */
    if (lab_likely(npages - 1 < LAB_CHUNK_PAGES) && !(gfp & LAB_GFP_EXCLUSIVE) &&
        (d = run_room_pop(pool, npages)) != NULL) {
        /* its head as the run left it (its own, see run_room_push) */
        lab_store_relaxed(&d->h.state, LAB_PAGE_LARGE);
        d->h.order = 0; /* a run room's: not looked at (run_written_arm) */
        *desc = d;
        if (gfp & LAB_GFP_ZERO)
            return run_room_zeroed(d, gfp);
        return (void *)lab_desc_addr(d);
    }
    return alloc_run_store(pool, npages, gfp, desc);
}

/* lab_pool_alloc_run past the run room: the thread's zone's store, the other zones', other
 * threads' idle rooms, a fresh chunk. */
static void *alloc_run_store(lab_pool_t *pool, size_t npages, lab_gfp_t gfp, lab_page_t **desc)
{
    lab_zone_t *z = &pool->zone[ZONE_NORMAL];
    lab_page_t *d = NULL;
    bool atomic = gfp & LAB_GFP_ATOMIC;
    if (npages == 0 || npages > LAB_CHUNK_PAGES) {
        lab_pool_fail(pool);
        return NULL;
    }
    if (atomic) {
        if (!lab_lock_try(&z->lock)) {
            lab_pool_fail(pool);
            return NULL;
        }
    } else {
        lab_rooms_get(false); /* a thread whose first page calls are runs: its run room, for its frees */
        z = run_zone_lock(pool);
    }
    if (atomic || zone_has_free(pool, z, npages))
        d = store_take_used_first(pool, z, (unsigned)npages, -1, atomic);
    /* The program's longest page-sized block so far, carved partly over pages never written:
     * the shorter runs of the sizes before, left in the thread's run room or between blocks in
     * the store, may wait idle while it faults pages in. The room's join the store and the
     * block is carved again (store_join_room); as many of the store's written runs too short
     * for it as it still faults in are purged (store_trade_fresh). Only for the longest: blocks
     * of varying sizes reuse such runs (either at every fresh carve took the page faults of
     * `wl bigbuf`'s calls replayed from 8350 to 9397 and 15928), blocks that move on to longer
     * ones leave them behind (sort's merges). A shorter block joins the room to the store only
     * when the room holds as many pages as the carve would fault in (room_covers_fresh; joined
     * at every such carve, `wl bigbuf 1 2000` took 8 445 -> 9 490 page faults; so bounded,
     * 8 080). */
    if (d && !atomic && pool->is_default && npages >= lab_load_relaxed(&pool->run_peak)) {
        d = store_join_room(pool, z, d, (unsigned)npages);
        store_trade_fresh(pool, z, d, (unsigned)npages);
    } else if (d && !atomic && pool->is_default && room_covers_fresh(d, (unsigned)npages)) {
        d = store_join_room(pool, z, d, (unsigned)npages);
    }
    if (npages > lab_load_relaxed(&pool->run_peak)) /* relaxed: zones' locks apart, a hint */
        lab_store_relaxed(&pool->run_peak, (unsigned)npages);
    if (!d && !atomic) {
        room_drain_self(pool, z);
        lab_zone_drain_shared(pool, z);
        if (zone_has_free(pool, z, npages))
            d = store_take_block(pool, z, npages);
        if (!d && lab_load_relaxed(&pool->run_zones_made)) {
            /* the other zones' stores before a chunk of this one's own (runs freed by other
               threads go back to their zones: a thread whose zone gets none of its own back
               mapped and faulted chunk after chunk while the others' stores grew, and the
               store trims purged what the next carves faulted in again; found by review), and
               before other threads' rooms: with those first, two threads replacing blocks at
               full speed each took the other's runs for idle whenever it had made no call since
               its last look, a membarrier each, the runs into their own zone's store, then
               borrowed them from there (`wl pagemix 2`: thousands of takes a second in some
               runs); the normal zone's thread borrows too, as it could not use those runs */
            lab_unlock(&z->lock);
            if ((d = run_zone_borrow(pool, z, npages, false)) != NULL)
                return run_hand_out(pool, d, npages, gfp, desc);
            lab_lock(&z->lock);
            if (zone_has_free(pool, z, npages))
                d = store_take_block(pool, z, npages);
        }
        if (!d && lab_rooms_take_stale(pool, z)) {
            lab_zone_drain_shared(pool, z);
            if (zone_has_free(pool, z, npages))
                d = store_take_block(pool, z, npages);
        }
        if (!d && lab_zone_refill(pool, z, npages) == 0)
            d = store_take_block(pool, z, npages);
    }
    if (d && !atomic)
        store_trim_for(pool, z, d, (unsigned)npages);
    lab_unlock(&z->lock);
    /* refused a chunk (ENOMEM): the other zones' stores, each lock waited for (found by review:
       a thread in a run zone failed while the normal zone held 75 MiB free) */
    if (!d && !atomic && zone_is_run(pool, z))
        d = run_zone_borrow(pool, z, npages, true);
    if (!d) {
        lab_pool_fail(pool);
        return NULL;
    }
    return run_hand_out(pool, d, npages, gfp, desc);
}

/* Run r, a block of n pages, has just been carved from the store (zone lock held): for each of its
 * pages never written, a written page of the other store runs shorter than n is purged now, the
 * first runs that hold any among STORE_USED_SCAN from the shortest up, so that the pool's
 * resident pages do not grow by what the block faults in while pages it could not use (too few
 * in one place) wait for the delay. Not in a chunk backed by a huge page, whose purge would split
 * it (`wl large`, with a trade at every fresh carve and such chunks included, mapped one more
 * huge-page chunk: peak RSS 9.1 -> 12.6 MiB). sort's merges: three 1.3 MiB buffers over the
 * pages of sixteen 256 KiB ones spread over three chunks (a block cannot cross one); two found
 * room in used pages, the third faulted in 212 pages beside 226 idle written ones; and nine
 * 455 KiB buffers after sixteen of 256 KiB, some of which faulted pages in beside written runs
 * too short for them. */
static void store_trade_fresh(lab_pool_t *pool, lab_zone_t *z, lab_page_t *r, unsigned n)
{
    unsigned seen = 0, fresh = n - carved_dirty(r, n);
    for (unsigned b = bin_find(z, 1); b && b < n && fresh && seen < STORE_USED_SCAN; b = bin_find(z, b + 1))
        for (lab_page_t *d = ZBIN(z, b); d && fresh && seen < STORE_USED_SCAN; d = d->next, seen++) {
            if (d->h.clean || lab_desc_chunk(d)->thp)
                continue;
            unsigned used = (unsigned)*lab_run_ndirty(d);
            if (lab_store_run_purge(pool, d, b))
                fresh -= lab_min(fresh, used);
        }
}

/* Written pages the store may keep idle while the pool faults fresh pages in: 8 MiB, or a third
 * of the pages in use if more. Past it, every page a carve or a huge mapping is about to fault in
 * has a written page of the store purged first (store_trim_dirty), so that the process's resident
 * pages stop growing by what the store holds and nothing asks for. The purge delay alone let them
 * wait a second: 1 000 buffers grown in turn by realloc, 4 KiB a step up to 200 KiB, each move
 * leaving the run it had in the store, too short for any buffer's next size, peaked at 304 MiB
 * (glibc 208, jemalloc 255). A program that reuses its freed runs takes them before it faults
 * anything in, and one whose store stays under the budget loses nothing to it. The share is a
 * trade: with an eighth, blocks of random lengths from 33 KiB to 1 MiB (64 live, replaced at
 * random; found by review) fragmented the store past the budget for good, and every carve
 * purged pages the next one faulted in again: 1.9 GB purged in 0.3 s for a peak of 44 MB, twice
 * glibc's time (with a third: 9 MB purged, 0.14 s against glibc's 0.12); the ladder above peaks
 * at 278 MiB with a third, 238 with an eighth. */
#define STORE_DIRTY_FLOOR ((size_t)8 << (20 - LAB_PAGE_SHIFT))
#define STORE_DIRTY_SHARE 3u
#define STORE_TRIM_SCAN 256u        /* runs looked at per trim, a written one counting as ... */
#define STORE_TRIM_DIRTY_COST 8u    /* ... this many (its purge is a system call) */

static size_t store_dirty_budget(lab_pool_t *pool)
{
    size_t mapped = lab_load_relaxed(&pool->mapped_pages), nfree = lab_pool_free_all(pool);
    size_t used = mapped > nfree ? mapped - nfree : 0;
    return lab_max(STORE_DIRTY_FLOOR, used / STORE_DIRTY_SHARE);
}

/* `fresh` pages are about to be faulted in (zone lock held; never for ATOMIC callers, a purge is
 * a system call): purge as many written pages of z's store as it holds past its budget, at most
 * `fresh`. Shorter runs first (the least likely to be taken again), but a trim looks at no more
 * than STORE_TRIM_SCAN runs and the next one goes on from the bin after the last it looked at, so
 * that the purged runs it leaves at the heads of the bins are not looked at again and again (with
 * thousands of runs in the store every span made looked at the same ones: found by review). Not
 * with the purge off, nor in a chunk backed by a huge page (see store_trade_fresh). */
static void store_trim_dirty(lab_pool_t *pool, lab_zone_t *z, size_t fresh)
{
    /* the budget, a sum over the pool's shared counters (lines other threads write at every
     * call), is computed again every 32 trims of the zone, and whenever the pool's clock has
     * moved since: it moves with the pages in use (kept 32 trims whatever the time, a budget
     * from a quieter moment purged pages a later carve wanted written: unit.test_alloc's kept
     * spans, reclaimed for the clean pages, failed 2 runs in 16 under load) */
    uint64_t now = lab_load_relaxed(&pool->now_ms);
    if (!z->budget || ++z->budget_age >= 32 || z->budget_ms != now) {
        z->budget = store_dirty_budget(pool);
        z->budget_age = 0;
        z->budget_ms = now;
    }
    size_t dirty = z->store_dirty, budget = z->budget;
    if (!fresh || dirty <= budget || pool->delay_ms == ~0u)
        return;
    size_t want = lab_min(fresh, dirty - budget);
    unsigned seen = 0, b = bin_find(z, z->trim_bin ? z->trim_bin : 1), wrapped = 0;
    while (want && seen < STORE_TRIM_SCAN) {
        if (!b) {
            if (wrapped++)
                break;
            b = bin_find(z, 1);
            continue;
        }
        for (lab_page_t *d = ZBIN(z, b), *next; d && want && seen < STORE_TRIM_SCAN; d = next) {
            next = d->next;
            lab_chunk_t *c = lab_desc_chunk(d);
            seen += d->h.clean ? 1 : STORE_TRIM_DIRTY_COST;
            if (d->h.clean || c->thp)
                continue;
            unsigned used = (unsigned)*lab_run_ndirty(d);
            if (lab_store_run_purge(pool, d, b))
                want -= lab_min(want, (size_t)used);
        }
        b = bin_find(z, b + 1);
    }
    z->trim_bin = b;
}

/* Run d (out of z's store, lock held) is handed out: its pages never written count as fresh. */
static void store_trim_for(lab_pool_t *pool, lab_zone_t *z, lab_page_t *d, unsigned n)
{
    if (lab_load_relaxed(&z->store_dirty) <= STORE_DIRTY_FLOOR)
        return;
    store_trim_dirty(pool, z, n - carved_dirty(d, n));
}

/* A huge mapping of `pages` is mapped or grown (no lock held): the normal zone's store trimmed. */
void lab_store_trim_huge(lab_pool_t *pool, size_t pages)
{
    lab_zone_t *z = &pool->zone[ZONE_NORMAL];
    if (lab_load_relaxed(&z->store_dirty) <= STORE_DIRTY_FLOOR || lab_pool_in_handler())
        return;
    lab_lock(&z->lock);
    store_trim_dirty(pool, z, pages);
    lab_unlock(&z->lock);
}

/* Every zone's written store pages as counted (store_trim_dirty's measure), the count the
 * normal zone may keep (*budget) and, recounted from the dirty map under each zone's lock,
 * *recount and the runs whose own count (lab_run_ndirty) or clean flag is off (tests). */
size_t lab_pool_store_dirty(lab_pool_t *pool, size_t *budget, size_t *recount, size_t *runs_off)
{
    size_t n = 0, off = 0, counted = 0;
    for (unsigned zi = 0; zi < lab_zones_end(pool); zi++) {
        lab_zone_t *z = lab_zone_at(pool, zi);
        if (!z)
            continue;
        lab_lock(&z->lock);
        for (unsigned b = bin_find(z, 1); b; b = bin_find(z, b + 1))
            for (lab_page_t *d = ZBIN(z, b); d; d = d->next) {
                lab_chunk_t *c = lab_desc_chunk(d);
                unsigned s = (unsigned)(d - c->page), k = lab_dirty_count(c, s, s + b);
                n += k;
                off += *lab_run_ndirty(d) != k || d->h.clean != (k == 0);
            }
        counted += z->store_dirty;
        lab_unlock(&z->lock);
    }
    *budget = store_dirty_budget(pool);
    *recount = n;
    *runs_off = off;
    return counted;
}

unsigned lab_pool_order_seen_max(void) { return lab_load_relaxed(&order_seen_max); }

/* A run of npages, at most a chunk's, carved only from pages of the default pool's store that
 * were used before (the calling thread's run room joins the store first), or NULL: nothing
 * faulted in, nothing mapped. malloc asks it for blocks above LAB_LARGE_MAX before it maps one
 * of their own: a program whose memory moves from page-sized blocks to bigger ones (sort's last
 * merge through 1.3 MiB buffers after sixteen of 256 KiB) reuses the pages the smaller ones had
 * instead of keeping them resident beside fresh mappings until the purge. Not while the huge cache
 * holds a mapping that the block fits in: lab_pool_alloc_huge reuses it, populated as well (whole,
 * or cut down to the block when much larger), and served here the block left it resident beside the pages it took
 * (python3's lists grow by allocating twice the size and freeing the old: its 1.9 MiB one,
 * beside the 3.8 and 7.7 MiB mappings just freed, took the peak of its calls replayed from 22.7
 * to 26.6 MiB). A cached mapping smaller than the block would have to grow (page faults): the
 * pool's used pages come first then. */
void *lab_pool_alloc_run_used(lab_pool_t *pool, size_t npages, lab_gfp_t gfp, lab_page_t **desc)
{
    lab_zone_t *z = run_zone(pool);
    if (!pool->is_default || npages == 0 || npages > LAB_CHUNK_PAGES || (gfp & LAB_GFP_ATOMIC) ||
        lab_huge_cache_holds(pool, npages << LAB_PAGE_SHIFT))
        return NULL;
    lab_rooms_t *rs = lab_tls_rooms;
    lab_page_t *runs = NULL;
    if (rs && rs->runs && room_enter(rs)) {
        if (run_room_zone(pool, rs) == z)
            runs = lab_run_room_detach(rs);
        room_leave(rs);
    }
    lab_lock(&z->lock);
    if (runs)
        lab_run_chain_store(pool, runs, lab_clock_ms());
    lab_page_t *d = NULL;
    if (zone_has_free(pool, z, npages))
        d = store_take_used(pool, z, (unsigned)npages, run_align(pool, (unsigned)npages), NULL, 0);
    if (d)
        store_trade_fresh(pool, z, d, (unsigned)npages);
    lab_unlock(&z->lock);
    return d ? run_hand_out(pool, d, npages, gfp, desc) : NULL;
}

/* A chain of runs to the store, each under its zone's lock (one at a time), then the free path's
 * purge check. */
static void run_chain_free(lab_pool_t *pool, lab_page_t *chain)
{
    size_t pages = 0;
    while (chain) {
        lab_page_t *last = chain;
        pages += last->h.npages;
        while (last->next && last->next->h.zone == chain->h.zone)
            last = last->next, pages += last->h.npages;
        lab_page_t *rest = last->next;
        last->next = NULL;
        lab_zone_t *z = lab_zone_at(pool, chain->h.zone);
        lab_lock(&z->lock);
        lab_run_chain_store(pool, chain, lab_clock_ms());
        lab_unlock(&z->lock);
        chain = rest;
    }
    lab_pool_tick(pool, true, pages);
}

void lab_pool_free_run_store(lab_pool_t *pool, lab_page_t *d)
{
    d->next = NULL;
    run_chain_free(pool, d);
}

void lab_pool_free_run(lab_pool_t *pool, lab_page_t *d)
{
    run_written_sample(pool, d);
    /* NULL: kept; else d itself (no room for it) or the oldest runs it pushed out */
    lab_page_t *out = run_room_push(pool, d);
    if (out)
        run_chain_free(pool, out);
}

void lab_pool_shrink_run(lab_pool_t *pool, lab_page_t *d, size_t npages)
{
    lab_zone_t *z = lab_zone_at(pool, d->h.zone);
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned idx = (unsigned)(d - c->page), n = d->h.npages;
    if (npages >= n || npages == 0)
        return;
    d->h.npages = (uint32_t)npages;
    d->h.order = 0; /* its new last page was not looked at when it was carved: no look (run_written_arm) */
    lab_lock(&z->lock);
    store_free(pool, z, c, idx + (unsigned)npages, n - (unsigned)npages, false, lab_clock_ms());
    lab_unlock(&z->lock);
    lab_pool_tick(pool, true, n - npages);
}

bool lab_pool_grow_run(lab_pool_t *pool, lab_page_t *d, size_t npages)
{
    lab_zone_t *z = lab_zone_at(pool, d->h.zone);
    lab_chunk_t *c = lab_desc_chunk(d);
    unsigned idx = (unsigned)(d - c->page), n = d->h.npages;
    if (npages <= n)
        return true;
    if (idx + npages > LAB_CHUNK_PAGES)
        return false;
    bool ok = false;
    lab_lock(&z->lock);
    lab_page_t *r = &c->page[idx + n];
    /* relaxed: a run carved from the store just now gets its state after the lock is dropped;
     * only STORE, written under the lock, passes. Pages that are there but would take the pool
     * below its reserve come after a refill, as for any DEFAULT call short of pages (refused,
     * realloc copied the block elsewhere: up to 2 MiB, for want of a chunk's address space) */
    bool there = lab_load_relaxed(&r->h.state) == LAB_PAGE_STORE && n + r->h.npages >= npages;
    if (there && !zone_has_free(pool, z, npages - n)) {
        lab_zone_refill(pool, z, npages - n);
        /* the lock stays held throughout; runs the refill stores (a drain of the shared lists
         * before a failed mapping) can only have joined r: looked at again all the same */
        there = lab_load_relaxed(&r->h.state) == LAB_PAGE_STORE && n + r->h.npages >= npages;
    }
    if (there && zone_has_free(pool, z, npages - n)) {
        d->h.order = 0; /* its new last page was not looked at when it was carved: no look */
        store_carve(pool, z, r, idx + n, (unsigned)(npages - n));
        lab_store_relaxed(&c->page[idx + n].h.state, LAB_PAGE_INTERIOR);
        ok = true;
    }
    lab_unlock(&z->lock);
    if (ok)
        d->h.npages = (uint32_t)npages;
    return ok;
}

/* ------------------------------------------------------------------------------------------
 * the page API's fast paths (labyrinth_alloc_pages, labyrinth_free_pages): a room's run, no lock */

lab_pool_t *lab_pool_of(labyrinth_t *p)
{
    if (lab_unlikely(!p || __atomic_load_n(&p->magic, __ATOMIC_ACQUIRE) != POOL_MAGIC))
        return NULL;
    return p->impl;
}

static lab_noinline void *alloc_pages_general(labyrinth_t *pool, unsigned order, lab_gfp_t gfp)
{
    lab_pool_t *p = lab_pool_of(pool);
    if (lab_unlikely(!p || order > LAB_MAX_ORDER || (gfp & ~7u))) {
        errno = EINVAL;
        return NULL;
    }
    lab_page_t *d;
    lab_lock_quiet += (gfp & LAB_GFP_ATOMIC) != 0; /* locks only tried: no wake-up call either */
    void *r = lab_pool_alloc_order(p, order, gfp, LAB_PAGE_USER, &d);
    lab_lock_quiet -= (gfp & LAB_GFP_ATOMIC) != 0;
    return r;
}

/* The fast path: a run from the calling thread's room, no atomic, no lock; everything else
 * (errors, EXCLUSIVE, an empty room) goes to the general path. */
void *labyrinth_alloc_pages(labyrinth_t *pool, unsigned order, lab_gfp_t gfp)
{
    lab_pool_t *p = lab_pool_of(pool);
    if (lab_unlikely(!p || order > LAB_MAX_ORDER || (gfp & ~(LAB_GFP_ATOMIC | LAB_GFP_ZERO))))
        return alloc_pages_general(pool, order, gfp);
    lab_page_t *d = room_pop(p, order);
    if (lab_unlikely(!d))
        return alloc_pages_general(pool, order, gfp);
    lab_store_relaxed(&d->h.state, LAB_PAGE_USER);
    d->h.order = (uint8_t)order;
    d->h.npages = 1u << order;
    d->owner = 0;
    if (lab_unlikely(gfp & LAB_GFP_ZERO))
        run_zero(d, (size_t)1 << order, gfp);
    d->h.clean = 0;
    uintptr_t a = lab_desc_addr(d);
    return (void *)a;
}

void *labyrinth_alloc_page(labyrinth_t *pool, lab_gfp_t gfp) { return labyrinth_alloc_pages(pool, 0, gfp); }

/* Every check of a free, with the message that names what is wrong. */
static lab_noinline void free_pages_general(labyrinth_t *pool, void *pages, unsigned order)
{
    lab_pool_t *p = lab_pool_of(pool);
    if (!pages)
        return;
    if (!p)
        lab_fatal("labyrinth_free_pages on an uninitialised pool, pages", pages);
    uintptr_t a = (uintptr_t)pages;
    lab_chunk_t *c = lab_pagemap_lookup(a);
    if (c->pool != p || c->kind != LAB_CHUNK_NORMAL)
        lab_fatal("labyrinth_free_pages: not pages of this pool:", pages);
    if (order > LAB_MAX_ORDER || (a & ((LAB_PAGE_SIZE << order) - 1)))
        lab_fatal("labyrinth_free_pages: misaligned pointer or bad order:", pages);
    lab_page_t *d = &c->page[(a - c->base) >> LAB_PAGE_SHIFT];
    if (d->h.state != LAB_PAGE_USER)
        lab_fatal(d->h.state == LAB_PAGE_CACHED || d->h.state == LAB_PAGE_STORE
                      ? "labyrinth_free_pages: double free of"
                      : "labyrinth_free_pages: not a run from labyrinth_alloc_pages:",
                  pages);
    if (d->h.order != order)
        lab_fatal("labyrinth_free_pages: wrong order for", pages);
    if (d->owner && d->owner != thread_serial())
        lab_fatal("labyrinth_free_pages: LAB_GFP_EXCLUSIVE pages freed by another thread:", pages);
    lab_lock_quiet++; /* locks only tried; a wake-up only for a purge thread asleep for good */
    bool shared = pool_free_order(p, d, order);
    lab_lock_quiet--;
    if (shared)
        bg_pages_shared();
}

void labyrinth_free_pages(labyrinth_t *pool, void *pages, unsigned order)
{
    lab_pool_t *p = lab_pool_of(pool);
    uintptr_t a = (uintptr_t)pages;
    lab_chunk_t *c = lab_pagemap_lookup(a);
    if (lab_unlikely(!p || c->pool != p || c->kind != LAB_CHUNK_NORMAL || order > LAB_MAX_ORDER ||
                     (a & ((LAB_PAGE_SIZE << order) - 1))))
        return free_pages_general(pool, pages, order);
    lab_page_t *d = &c->page[(a - c->base) >> LAB_PAGE_SHIFT];
    /* a plain run of this thread's kind: anything else (double free, wrong order, EXCLUSIVE,
     * the exclusive zone) takes the general path, which checks and reports */
    if (lab_unlikely(d->h.state != LAB_PAGE_USER || d->h.order != order || d->owner || d->h.zone))
        return free_pages_general(pool, pages, order);
    lab_store_relaxed(&d->h.state, LAB_PAGE_CACHED);
    d->h.clean = 0;
    if (lab_likely(room_push(p, d, order))) {
        bg_room_filled();
        return;
    }
    lab_store_relaxed(&d->h.state, LAB_PAGE_USER);
    lab_lock_quiet++;
    bool shared = pool_free_order(p, d, order);
    lab_lock_quiet--;
    if (shared)
        bg_pages_shared();
}
