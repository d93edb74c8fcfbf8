/* pool_impl.h — what the files of the page pool (core/pool*.c) share, and nothing else includes:
 * the pool's own structures, the few hot helpers they all inline, and the calls from one file of
 * the pool to another. Layer 2, like pool.h (core/os and lock.h only); pool.h stays the layer's
 * interface to arena, alloc and preload. */
#ifndef LAB_POOL_IMPL_H
#define LAB_POOL_IMPL_H

#include "pool.h"

#include <sys/mman.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#define MADV_NOHUGEPAGE 15
#endif

#define POOL_MAGIC 0x4c61627972696e74ull /* "Labyrint" */
#define LAB_ROOM_POOLS 8                  /* pools with rooms; pools beyond go straight to lists */
#define ZONE_NORMAL 0
#define ZONE_EXCL 1
/* Zones 2 .. 1 + LAB_RUN_ZONES: the default pool's page-sized malloc runs (lab_pool_alloc_run) of
 * threads that found their zone's lock taken too often (pool.c: run zones). Made on first use. */
#define ZONE_RUN0 2
#define LAB_RUN_ZONES 8
#define LAB_ZONES (ZONE_RUN0 + LAB_RUN_ZONES)

/* ------------------------------------------------------------------------------------------
 * pool_map.c: metadata memory, the page map, the fast map's region */

/* Taken by the fork handler (lab_pool_fork_prepare) after every other lock of the pool. */
lab_internal extern lab_lock_t lab_meta_lock;
/* lab_meta_alloc; atomic: for a LAB_GFP_ATOMIC caller, which never waits for the lock nor maps
 * (NULL then). */
lab_internal void *lab_meta_alloc_atomic(size_t size, bool atomic);
/* Point the page-map slots of [base, base+len) at c (NULL: give them back, foreign again);
 * -ENOMEM when a table could not be had. Huge mappings and chunks outside the region only. */
lab_internal int lab_pagemap_set(uintptr_t base, size_t len, lab_chunk_t *c);
/* Map a chunk: in the fast map's region if it has room (*pm: its map slice), else anywhere (*pm
 * NULL); NULL and *err on failure. */
lab_internal void *lab_chunk_map(int64_t **pm, int *err);
/* Unmap a chunk mapped by lab_chunk_map, and zero its map slice. */
lab_internal void lab_chunk_unmap(void *m, int64_t *pm);

/* ------------------------------------------------------------------------------------------
 * pool state */

typedef struct lab_stack {
    lab_page_t *top;
    uintptr_t tag; /* bumped by every pop and push: a stale top never matches (ABA) */
} lab_aligned(16) lab_stack_t;

typedef struct lab_zone {
    struct {
        lab_stack_t s;
        size_t pages;       /* pages on the list (relaxed; a hint for draining) */
    } lab_aligned(64) shared[LAB_NR_ORDERS];
    lab_lock_t lock;
    uint16_t trim_bin;                      /* where store_trim_dirty goes on (0: the start) */
    uint16_t index;                         /* a run zone's number (the pool's own two are never
                                               written: lab_zone_index) */
    size_t store_pages;
    size_t store_dirty;                     /* of store_pages, those the dirty map marks */
    /* the runs this zone's store handed out (the pool's hits_slow: every zone's; atomic). On the
       lock's line, which a zone's callers write anyway: on the pool's shared line, which every
       thread reads, the normal zone's count took a page-sized malloc from 1.00 to 1.12 of its
       time (wl pagemix 2, another thread in a run zone) */
    uint64_t hits;
    lab_chunk_t *chunks;                    /* NORMAL chunks of this zone */
    uint64_t binmap[(LAB_CHUNK_PAGES + 64) / 64];
    lab_page_t *bin[LAB_CHUNK_PAGES + 1];   /* free store runs by exact length, in the order
                                               ZBIN gives (reach them through it) */
    size_t budget;                          /* store_dirty_budget as last computed (zone lock) */
    unsigned budget_age;                    /* ... trims ago */
    uint32_t left;                          /* the clock's low 32 bits when a thread last moved
                                               its page-sized blocks away (run_zone_move; atomic;
                                               0: none has) */
    uint64_t budget_ms;                     /* ... at this pool clock */
} lab_zone_t;

/* The store's list of free runs of n pages. The lists of long runs (half a chunk and more) come
 * first, then those of runs up to ZBIN_SHORT pages, then the rest: the first two share the pool's
 * first page with its set-up fields. A process's first allocation leaves the rest of its first
 * chunk (some 450 pages) in the store, and the first span it empties comes back as a run of 8 pages
 * (`head -n1` does both); with the lists longest first, the short one sat on the struct's second
 * page, and with the shortest first the long one did: a page fault in every process (read, then
 * written: two). Runs of 129-255 pages (0.5-1 MiB) are rarer at a program's start. */
#define ZBIN_SHORT 128u
static inline unsigned zbin_index(unsigned n)
{
    return n >= LAB_CHUNK_PAGES / 2 ? LAB_CHUNK_PAGES - n
           : n <= ZBIN_SHORT        ? LAB_CHUNK_PAGES / 2 + n
                                    : LAB_CHUNK_PAGES / 2 + ZBIN_SHORT + (n - ZBIN_SHORT);
}
#define ZBIN(z, n) ((z)->bin[zbin_index(n)])

struct lab_pool {
    uint64_t gen;         /* rooms of an older generation of this slot are stale */
    unsigned id;
    bool is_default;
    size_t reserve, low, high, max;
    unsigned delay_ms;
    uint32_t nr_free_excl;           /* the exclusive zone's shared + store pages, for statistics
                                        (in use: mapped less every zone's free); in the hole here,
                                        which leaves the store's lists where they were (that
                                        zone's own count is on the struct's second page) */
    /* here, not last: set up with the rest of this line, so that a process's first allocation
       does not touch the struct's third page (the zones' bins fill the second) */
    lab_pool_t *next_pool;
    /* the normal zone's free pages are these and its store's (zone[ZONE_NORMAL].store_pages,
       written under its lock): pool_nr_free. Counted here as well, the store's took an atomic
       add at every store put and take, 6.3 locked instructions of a page-sized malloc and
       free's 11 (wl pagemix) */
    lab_aligned(64) size_t nr_shared; /* normal zone: pages on its shared lists */
    size_t mapped_pages;
    uint64_t now_ms, last_purge;     /* the clock at the last tick or purge; a freed run is
                                        stamped with the clock (a vDSO read) when the purge can
                                        first see it: on a shared list or in the store */
    uint64_t hits_shared, hits_reserve, refills, failures;
    uint64_t room_hits_dead;          /* room hits of threads that have exited */
    size_t purged_pages, unmapped_chunks;
    bool thp;                         /* LAB_POOL_HUGE, from thp_after mapped pages */
    int8_t run_written;               /* below 0: freed page-sized blocks were found mostly never
                                         written, and such runs start on 64 KiB (relaxed; pool.c:
                                         run_align) */
    uint8_t run_zones_made;           /* a run zone has been made (release, after run_zone[]:
                                         lab_zones_end) */
    size_t thp_after, thp_chunks, thp_demoted;
    size_t sharers;                   /* relaxed: the heaps drawing on the pool (arena's count) */
    size_t peak_used;
    unsigned run_peak;                /* the longest run lab_pool_alloc_run was asked for (relaxed) */
    /* before the zones, in the hole their alignment leaves: huge_cache_yield reads the cache's
       size whenever the pool hands out fresh pages, and after them it sat on the struct's
       third page (a page fault in every process, for a zero) */
    lab_lock_t huge_lock;
    lab_chunk_t *huge_cache;          /* freed huge mappings kept populated for reuse */
    size_t huge_cache_bytes;          /* written under huge_lock (relaxed: huge_cache_yield peeks) */
    size_t huge_mappings;             /* huge mappings alive, cached ones included (relaxed) */
    size_t huge_pages;                /* ... their pages (relaxed; mallinfo) */
    size_t huge_slack;                /* the live huge blocks' slack, summed (relaxed) */
    lab_zone_t zone[2];
    /* the run zones (ZONE_RUN0 + i), published under lab_pools_lock (which the fork handler
       holds: the zones it locks are the zones it unlocks), read with acquire */
    lab_zone_t *run_zone[LAB_RUN_ZONES];
    unsigned run_zone_next;           /* relaxed: the next run zone a pressed thread moves to */
};
/* (ZBIN) The default pool is the first block of metadata, so it starts a page: there the lists
 * of runs of half a chunk or more, and of runs up to ZBIN_SHORT pages, are on its first page. */
_Static_assert(__builtin_offsetof(struct lab_pool, zone[0].bin[LAB_CHUNK_PAGES / 2 + ZBIN_SHORT]) +
                       sizeof(lab_page_t *) <= 4096,
               "the lists of long and of short store runs on the pool's first page");

/* Zone zi of pool: NULL for a run zone not made yet (never for one a chunk or run names). */
static inline lab_zone_t *lab_zone_at(lab_pool_t *pool, unsigned zi)
{
    return zi < ZONE_RUN0 ? &pool->zone[zi] : __atomic_load_n(&pool->run_zone[zi - ZONE_RUN0], __ATOMIC_ACQUIRE);
}

/* One past the last zone of pool that may have been made: LAB_ZONES once a run zone has been,
 * else ZONE_RUN0, so that loops over the zones leave run_zone[] (on the struct's third page: a
 * page fault in every process that looked, for eight NULLs) untouched until then. */
static inline unsigned lab_zones_end(lab_pool_t *pool)
{
    return __atomic_load_n(&pool->run_zones_made, __ATOMIC_ACQUIRE) ? LAB_ZONES : ZONE_RUN0;
}

/* The number of zone z of pool (what its chunks' and runs' zone fields hold). */
static inline unsigned lab_zone_index(lab_pool_t *pool, lab_zone_t *z)
{
    return z == &pool->zone[ZONE_NORMAL] ? ZONE_NORMAL : z == &pool->zone[ZONE_EXCL] ? ZONE_EXCL : z->index;
}

/* Smallest non-empty bin >= n, or 0. */
static inline unsigned bin_find(lab_zone_t *z, unsigned n)
{
    unsigned w = n / 64;
    uint64_t bits = z->binmap[w] & (~0ull << (n % 64));
    for (;;) {
        if (bits)
            return w * 64 + (unsigned)__builtin_ctzll(bits);
        if (++w >= sizeof z->binmap / 8)
            return 0;
        bits = z->binmap[w];
    }
}

/* ------------------------------------------------------------------------------------------
 * rooms: one set per thread, reached through one TLS pointer */

/* A set's rooms of one pool: per order a list of free runs and its length (at most room_cap + 1),
 * in two arrays, not an array of {list, length} pairs padded to 16 bytes: the set is 1.1 KiB, not
 * 1.5, and the first thread's heap, made just after its rooms, has its first fields on their page
 * (LAB_ROOMS_META). */
typedef struct lab_room_slot {
    uint64_t gen;
    lab_pool_t *pool;
    uint64_t hits;
    lab_page_t *head[LAB_NR_ORDERS];
    uint32_t count[LAB_NR_ORDERS];
} lab_room_slot_t;

typedef struct lab_rooms {
    lab_room_slot_t slot[LAB_ROOM_POOLS];
    /* the default pool's page-sized malloc blocks of a page count that is not a power of two,
     * freed by this thread: kept whole (CACHED, heads kept) for its next one of about that size
     * (run_room_pop); outside slot[], so that no reset of a slot loses them */
    lab_page_t *runs;
    uint32_t nruns, run_pages;
    volatile int busy;             /* a room list is being changed: a nested call keeps out */
    volatile int steal;            /* another thread takes the runs (rooms_take): the owner keeps out */
    struct lab_rooms *next_all;
    struct lab_rooms *next_free;
    /* the taker's own, under rooms_lock */
    struct lab_rooms *take_next;
    uint64_t bg_sig, bg_seen_ms;
    uint64_t press_sig;            /* rooms_sig at the last rooms_take_stale (0: none) */
    int owner_tid;                 /* atomic: its thread's id, with many sets in use (0: none) */
    /* the owner's frees to the purge's lists, with lab_bg.mb (relaxed; in the hole here, which the
       set's bound, LAB_ROOMS_META, needs: 32 bits, only ever compared with a sum read in the same
       round of the purge thread) */
    uint32_t frees;
    uint64_t counts[LAB_THREAD_COUNTS]; /* the owner's (relaxed; lab_pool_thread_counts) */
} lab_rooms_t;

/* The owner changes its rooms with no atomic: it marks them busy, then looks for a taker's mark.
 * rooms_take marks first, then makes every running thread of the process pass a full barrier
 * (membarrier) and only then looks at busy: an owner that had marked its rooms before the
 * barrier is seen busy and left alone, and one that had not sees the taker's mark and keeps out.
 * ThreadSanitizer knows no membarrier: its builds make both sides a try-lock on busy. */
#define LAB_ROOMS_LOCKED LAB_TSAN

lab_internal extern __thread lab_rooms_t *lab_tls_rooms;
lab_internal extern __thread int lab_tls_rooms_dead; /* the thread has exited: no set again */

/* The calling thread's set, made at its first call (NULL: none, or none to be had). */
lab_internal lab_noinline lab_rooms_t *lab_rooms_create(bool atomic);
static inline lab_rooms_t *lab_rooms_get(bool atomic)
{
    lab_rooms_t *rs = lab_tls_rooms;
    if (lab_likely(rs) || lab_tls_rooms_dead)
        return rs;
    return lab_rooms_create(atomic);
}

/* Take a set's whole run room (the owner, or a taker holding the set). */
static inline lab_page_t *lab_run_room_detach(lab_rooms_t *rs)
{
    lab_page_t *chain = rs->runs;
    rs->runs = NULL;
    rs->nruns = rs->run_pages = 0;
    return chain;
}

/* ------------------------------------------------------------------------------------------
 * pool.c: chunks, the store, handing runs out */

/* The pool failed a caller: counted, errno ENOMEM. */
lab_internal lab_noinline lab_cold void lab_pool_fail(lab_pool_t *pool);
/* Count up to n pages as mapped before they are mapped, within the pool's cap: the pages counted,
 * 0 if not even `least` fit. */
lab_internal size_t lab_pool_count_mapped(lab_pool_t *pool, size_t n, size_t least);
/* The OS refused a mapping: unmap what the pool only caches (`held`: a zone whose lock the caller
 * holds, or NULL). True if anything was released. */
lab_internal bool lab_pool_release_cached(lab_pool_t *pool, lab_zone_t *held);
/* A huge mapping of `pages` was mapped or grown (no lock held): the normal store trimmed. */
lab_internal void lab_store_trim_huge(lab_pool_t *pool, size_t pages);
/* Free runs and chunks as the purge walks them (zone lock held), and the dirty map's bits. */
lab_internal void lab_zone_drain_shared(lab_pool_t *pool, lab_zone_t *z);
lab_internal unsigned lab_zone_unmap_free_chunks(lab_pool_t *pool, lab_zone_t *z, unsigned zi, uint64_t min_idle,
                                                 size_t keep, uint64_t *due);
lab_internal void lab_dirty_mark(lab_chunk_t *c, unsigned idx, unsigned n, bool on);
lab_internal unsigned lab_dirty_count(lab_chunk_t *c, unsigned i, unsigned end);
/* A store run's pages marked in the dirty map, kept in its first descriptor (in the word the
 * layer above owns while it holds a run: the store holds this one) from its insertion to its
 * removal, so that taking it out, carving it and joining it to its neighbours count no page again
 * (lab_dirty_count over store runs of up to 512 pages was a quarter of `wl pagemix`'s
 * instructions). The dirty map changes under a store run only by its purge, which clears both
 * (lab_store_run_purge). */
static inline uint64_t *lab_run_ndirty(lab_page_t *d) { return &d->above[0]; }
/* A forced purge: LAB_GFP_ZERO asks the kernel again which pages were touched. */
lab_internal void lab_pool_zero_ask_reset(void);
/* The pages in use now, kept as the peak when more than any seen. */
lab_internal void lab_pool_note_peak(lab_pool_t *pool);
/* The normal zone's free pages, what the reserve and the watermarks are measured on: its shared
 * lists' and its store's (two relaxed reads: a run moving between the two may be counted twice
 * for a moment, as the single count read racily was off by a call's pages). */
lab_inline size_t pool_nr_free(lab_pool_t *pool)
{
    return lab_load_relaxed(&pool->nr_shared) + lab_load_relaxed(&pool->zone[ZONE_NORMAL].store_pages);
}
/* Free pages of every zone (handed out: mapped less these). */
lab_inline size_t lab_pool_free_all(lab_pool_t *pool)
{
    size_t n = pool_nr_free(pool) + lab_load_relaxed(&pool->nr_free_excl);
    for (unsigned zi = ZONE_RUN0; zi < lab_zones_end(pool); zi++) { /* a run zone's: its store's alone */
        lab_zone_t *z = lab_zone_at(pool, zi);
        n += z ? lab_load_relaxed(&z->store_pages) : 0;
    }
    return n;
}
/* Runs of a room to the shared list of their order, stamped `stamp`. */
lab_internal void lab_shared_push_at(lab_pool_t *pool, lab_zone_t *z, lab_page_t *first, lab_page_t *last,
                                     unsigned order, unsigned count, uint64_t stamp);
/* Runs of a run room (linked by next) into the store, whose lock the caller holds: their pages. */
lab_internal size_t lab_run_chain_store(lab_pool_t *pool, lab_page_t *chain, uint64_t stamp);
/* Bring the free count up to HIGH (zone lock held); `need` contiguous pages at least. */
lab_internal int lab_zone_refill(lab_pool_t *pool, lab_zone_t *z, size_t need);

/* ------------------------------------------------------------------------------------------
 * pool_huge.c: huge mappings */

lab_internal void lab_huge_unmap(lab_pool_t *pool, lab_chunk_t *c);
/* d, a clean run, was handed out to a caller that may make system calls: the huge cache's oldest
 * mappings give way (pool.c's huge_cache_yield tests the rest inline), after lending d the pages
 * of one if `lend` (true: d's pages were lent, resident, not clean). */
lab_internal bool lab_huge_cache_yield(lab_pool_t *pool, lab_page_t *d, bool lend);
/* The huge cache holds a mapping of at least `bytes`. */
lab_internal bool lab_huge_cache_holds(lab_pool_t *pool, size_t bytes);

/* ------------------------------------------------------------------------------------------
 * pool_life.c: room sets, pools */

/* Every pool (lab_pools_all, linked by next_pool) under lab_pools_lock. */
lab_internal extern lab_lock_t lab_pools_lock;
lab_internal extern lab_pool_t *lab_pools_all;
/* Other threads' rooms that held the same runs since the last chunk mapped go to the shared
 * lists, their run rooms to the stores (default pool; the caller holds the lock of zone `held`):
 * the pages taken. */
lab_internal size_t lab_rooms_take_stale(lab_pool_t *pool, lab_zone_t *held);
/* Another thread's room holds runs (the purge thread, before it sleeps for good). *fenced: every
 * running thread passed a full barrier (membarrier) before the look. */
lab_internal bool lab_rooms_filled(bool *fenced);
/* A membarrier (rooms_lock held): true if it worked (never in ThreadSanitizer's builds). */
lab_internal bool lab_rooms_fence(void);
/* The frees threads counted in their sets (lab_bg.mb), ended threads' included. */
lab_internal uint64_t lab_rooms_frees_sum(void);

/* ------------------------------------------------------------------------------------------
 * pool_purge.c: the purge, and the background purge's state */

enum { BG_OFF, BG_STARTING, BG_RUNNING };

/* The background purge's state, pool_purge.c's: pool.c's room push reads `idle` (bg_room_filled),
 * the fork child resets it (pool_life.c). */
typedef struct {
    bool (*start)(void);
    size_t start_pages;
    int state;           /* BG_*; the fork child resets it (the thread does not exist there) */
    int idle;            /* 1: the thread sleeps with no deadline; the next free wakes it */
    int mb;              /* 1: a free counts itself in its thread's room set, not in `frees`, and
                            reads idle after a compiler barrier only: the thread passes every
                            running thread through a membarrier before it reads those counts
                            (set once one has worked; release, after idle) */
    int seq;             /* the futex word the thread sleeps on; bumped to wake it */
    uint64_t retry_ms;   /* no start before this, after a failed one (backoff doubling) */
    uint64_t backoff_ms;
    /* bumped by every free that hands pages to the shared lists or store: on a line of its own,
       so that the flags above, which every slow allocation and free reads, stay read-mostly
       (with two threads freeing page-sized blocks, each read missed: `wl pagemix`) */
    lab_aligned(64) uint64_t frees;
} lab_bg_t;
_Static_assert(__builtin_offsetof(lab_bg_t, frees) / 64 != __builtin_offsetof(lab_bg_t, idle) / 64,
               "the purge thread's free count apart from the flags every slow path reads");
lab_internal extern lab_bg_t lab_bg;
/* A free made pages visible to the purge: wake the thread if it sleeps with nothing to wait for. */
lab_internal void lab_bg_kick(void);
/* A free (not in a signal handler) made pages visible to the purge: counted in the calling
 * thread's room set without an atomic when a membarrier works (lab_bg.mb), else as lab_bg_kick;
 * the thread woken if it sleeps with nothing to wait for. With every free bumping one count,
 * two threads freeing page-sized blocks bounced its line at every call (`wl pagemix 2`). */
lab_internal void lab_bg_free_seen(void);
/* Purge store run d of b pages (zone lock held); false if the kernel refused. */
lab_internal bool lab_store_run_purge(lab_pool_t *pool, lab_page_t *d, unsigned b);

/* The clock, the peak and the purge (or the purge thread's wake-up) after a DEFAULT slow path
 * that handed out `pages` or a free that reached the shared lists or the store: never in a
 * signal handler. */
lab_internal void lab_pool_tick_slow(lab_pool_t *pool, bool from_free, size_t pages);
lab_inline void lab_pool_tick(lab_pool_t *pool, bool from_free, size_t pages)
{
    if (lab_pool_in_handler())
        return; /* in a signal handler: no lock waited on, no system call */
    lab_pool_tick_slow(pool, from_free, pages);
}

#endif
