/* pool.h — the labyrinth page pool: chunks, the page map, page descriptors, rooms, the
 * lock-free shared lists, the coalescing run store, watermarks, the reserve and purging.
 * Layer 2: uses core/os and lock.h only. The arena layer above uses the internal calls below;
 * the public API of labyrinth.h is implemented on top of them in pool_life.c (the page calls' fast
 * paths in pool.c). The pool's files share pool_impl.h, which nothing else includes.
 *
 * Chunk metadata lives out of band (in a 64 KiB-aligned header slot, never unmapped), so that a
 * whole 2 MiB chunk can serve an order-9 run and a stale descriptor can always be read safely. */
#ifndef LAB_POOL_H
#define LAB_POOL_H

#include "lock.h"

/* States of a run, kept in the descriptor of its first page. */
enum {
    LAB_PAGE_INTERIOR = 0,  /* not the first page of a run (or unknown)                  */
    LAB_PAGE_STORE,         /* free, in the coalescing store (also marks a free run's tail) */
    LAB_PAGE_CACHED,        /* free, in a room or a shared list, of size 2^order          */
    LAB_PAGE_USER,          /* handed out by labyrinth_alloc_pages                         */
    LAB_PAGE_SPAN,          /* owned by the arena: a span of one size class                */
    LAB_PAGE_LARGE,         /* owned by the arena: one page-sized malloc block             */
    LAB_PAGE_HUGE,          /* a dedicated mapping (chunk kind HUGE), one malloc block     */
    LAB_PAGE_NURSERY,       /* owned by the arena: a heap's first small blocks (alloc.c)   */
};

/* The common head of every page descriptor; the layer above overlays its own fields after it. */
typedef struct lab_page_hdr {
    uint8_t  state;
    uint8_t  order;     /* CACHED/USER runs: log2 of the page count                           */
    uint8_t  clean;     /* 1: the run's pages read zero (fresh or purged); LAB_CLEAN_SOME: a
                           run carved from the store and not handed out yet, whose pages read
                           zero where its chunk's dirty map says so; 0: any page may hold data */
    uint8_t  zone;      /* 0 normal, 1 exclusive (wiped on fork)                              */
    uint32_t npages;    /* the run's length in pages (not read while a span uses the run: the
                           arena keeps its own word here then, see lab_span_t.div)           */
} lab_page_hdr_t;

#define LAB_CLEAN_SOME 2

/* A page descriptor: 64 bytes. `owner` sits at the offset where the arena keeps its span's heap
 * pointer, so that a run the pool owns can never look like a span of some thread's heap. */
typedef struct lab_page {
    lab_page_hdr_t h;
    struct lab_page *next;  /* store bin list, room list, shared list                         */
    struct lab_page *prev;  /* store bin list                                                 */
    uint64_t stamp;         /* ms clock when the run became free (purge decisions)            */
    uint64_t owner;         /* EXCLUSIVE: owning thread id; otherwise 0                       */
    uint64_t above[3];      /* free for the layer above while it owns the run                 */
} lab_page_t;


enum { LAB_CHUNK_NORMAL = 1, LAB_CHUNK_HUGE = 2 };

typedef struct lab_pool lab_pool_t;

/* A chunk header. Slots are 64 KiB aligned so a descriptor finds its chunk by masking. */
typedef struct lab_chunk {
    uintptr_t base;             /* 2 MiB aligned */
    lab_pool_t *pool;
    uint32_t kind;
    uint32_t zone;
    size_t size;                /* mapped bytes (NORMAL: 2 MiB; HUGE: the mapping's length) */
    size_t asked;               /* HUGE: the bytes last asked for (realloc tells growth from a
                                   shrink by it: the mapping may be larger) */
    size_t slack;               /* HUGE, live: bytes of a cached mapping it took whole past the
                                   pages it asked for, counted in the pool's huge_slack */
    struct lab_chunk *next, *prev;
    uint32_t store_pages;       /* pages of this chunk in the store */
    uint32_t thp;               /* 1: advised MADV_HUGEPAGE (LAB_POOL_HUGE), until a purge */
    uint64_t idle_since;
    int64_t *pm;                /* the chunk's slice of the fast map (NULL: outside the region) */
    uint64_t dirty[LAB_CHUNK_PAGES / 64]; /* a bit per page: clear, the page reads zero. Exact
                                             for the store's pages (zone lock: pool.c) */
    uint16_t head[LAB_CHUNK_PAGES];   /* each page -> byte offset (from the header) of its run's
                                         descriptor; LAB_HEAD_NONE for pages in no used run */
    lab_page_t page[LAB_CHUNK_PAGES + 1] lab_aligned(64); /* + the sentinel for LAB_HEAD_NONE  */
} lab_chunk_t;

#define LAB_META_SLOT ((size_t)64 << 10)
_Static_assert(sizeof(lab_chunk_t) <= LAB_META_SLOT, "chunk header fits its slot");
_Static_assert(sizeof(lab_page_t) == 64, "descriptors are one cache line");

/* head[] holds byte offsets so that the free path finds a descriptor with one load and one add */
#define LAB_HEAD_OF(idx) ((uint16_t)(__builtin_offsetof(lab_chunk_t, page) + (idx) * sizeof(lab_page_t)))
#define LAB_HEAD_NONE LAB_HEAD_OF(LAB_CHUNK_PAGES) /* the sentinel descriptor: no owner, no state */

/* ---- the page map: chunk number -> chunk header; never faults, reserves 64 KiB per 16 GiB ----
 * For huge mappings and the chunks outside the fast map's region (below), whose own entries name
 * their headers: a chunk in the region sets none here (its L1 entry's page and its table's page
 * were two page faults at every start, for 16 bytes).
 * L1 (zero-initialised, so it costs no memory until used) has an entry per 16 GiB; each L2 table
 * has one per 2 MiB chunk. A slot that is not ours is NULL, which the reader turns into
 * lab_chunk_foreign (kind 0, all zero: every page leads to an empty descriptor, see pool_map.c): a
 * foreign pointer finds a descriptor that no heap owns. NULL, not a pointer to it, so that a table costs only the pages
 * of the slots in use (filled with the pointer, every table was 64 KiB resident in every process);
 * the free fast path does not come here (the fast map). The L1 index is masked to 14 bits:
 * kernel-half addresses land in the upper half, which is never populated (user space is 47 bits). */
#define LAB_PM_L2_BITS 13
#define LAB_PM_L1_BITS (LAB_ADDR_BITS + 1 - LAB_CHUNK_SHIFT - LAB_PM_L2_BITS)
lab_internal extern lab_chunk_t **lab_pagemap_l1[1u << LAB_PM_L1_BITS];
lab_internal extern lab_chunk_t lab_chunk_foreign;

lab_inline lab_chunk_t **lab_pagemap_l2(uintptr_t a)
{
    /* acquire pairs with the release in lab_pagemap_set: a published L2 table is initialised
     * (on x86-64 an acquire load is a plain load) */
    return __atomic_load_n(&lab_pagemap_l1[(a >> (LAB_CHUNK_SHIFT + LAB_PM_L2_BITS)) & ((1u << LAB_PM_L1_BITS) - 1)],
                           __ATOMIC_ACQUIRE);
}

lab_inline lab_chunk_t *lab_pagemap_l2_get(lab_chunk_t **l2, uintptr_t a)
{
    /* acquire: as above, for the chunk header */
    lab_chunk_t *c = __atomic_load_n(&l2[(a >> LAB_CHUNK_SHIFT) & ((1u << LAB_PM_L2_BITS) - 1)], __ATOMIC_ACQUIRE);
    return c ? c : &lab_chunk_foreign;
}

/* The chunk holding a, outside the fast map's region (lab_chunk_foreign if none of ours does):
 * lab_pagemap_lookup, below, looks in the region first. */
lab_inline lab_chunk_t *lab_pagemap_lookup_far(uintptr_t a)
{
    lab_chunk_t **l2 = lab_pagemap_l2(a);
    if (lab_unlikely(!l2 || (a >> LAB_ADDR_BITS)))
        return &lab_chunk_foreign;
    lab_chunk_t *c = lab_pagemap_l2_get(l2, a);
    /* a huge mapping ends on a page, its last 2 MiB unit's entry covers the whole unit: the rest
     * of that unit is anyone's address space, so an address past the mapping is not ours (size
     * and base: relaxed, only the block's owner resizes it, and it never asks about the rest) */
    if (lab_unlikely(c->kind == LAB_CHUNK_HUGE) &&
        a - lab_load_relaxed(&c->base) >= lab_load_relaxed(&c->size))
        return &lab_chunk_foreign;
    return c;
}

lab_inline bool lab_chunk_is_ours(const lab_chunk_t *c) { return c->kind != 0; }

/* The descriptor of the run containing address a of a NORMAL chunk (the sentinel if none). */
lab_inline lab_page_t *lab_chunk_desc(lab_chunk_t *c, uintptr_t a)
{
    /* the page within its 2 MiB unit: also safe for any address inside a huge mapping */
    return (lab_page_t *)((char *)c + c->head[(a >> LAB_PAGE_SHIFT) & (LAB_CHUNK_PAGES - 1)]);
}

/* ---- the fast map: one lookup from an address to its run's descriptor, for free() ----
 * Normal chunks are mapped, where it can be, inside one region of address space reserved at the
 * first chunk (LABYRINTH_RESERVE_GB, shrunk until the kernel grants it). The fast map has an
 * entry per page of the region: the address of the descriptor of the page's run in its low 47
 * bits (user space is 47 bits), or of its chunk's sentinel for a page in no used run (no state,
 * no owner): it mirrors head[] (every write of one writes the other), so every entry of a
 * chunk's pages names a descriptor in its header, and the page map needs no entry of its own
 * for the chunk. Its pages are read-only zero until their chunk is mapped, so any address of the
 * region can be looked up:
 * 0 is read as the map's first 64 bytes (the entries of the region's first pages, which are never
 * used, a descriptor of zeros: no state, no owner), of a chunk that is not ours. Addresses
 * outside the region (all of them when none could be reserved) go the two-level way.
 * The top 16 bits of an entry carry the owner heap's tag on the pages of a span
 * (lab_pool_run_tag; 0 elsewhere): free() subtracts the calling thread's tag and finds a value
 * below 2^47, the descriptor itself, only on a page of a span of its own heap, without reading
 * the descriptor's first cache line (owner, geometry), which only other threads' frees need.
 * A whole span (LAB_FMAP_WHOLE: all its blocks carved, of a class up to 1 KiB, its length
 * LAB_WHOLE_ORDER's) that its aside heap is not allocating from has bit 47 set too and its class
 * in the low six bits (lab_pool_run_tag_whole; arena.c: span_tag_aside): its owner's fast path
 * finds it above 2^47 and passes, and any thread's free of one of its blocks has the owner, the
 * class and the span's place (its length's alignment) without reading the descriptor at all
 * (alloc.c: lab_free_whole). lab_fmap_decode drops those bits. */
#define LAB_FMAP_TAG_SHIFT 48
#define LAB_FMAP_DESC_LIM  ((uint64_t)1 << 47)
#define LAB_FMAP_WHOLE     LAB_FMAP_DESC_LIM
#define LAB_FMAP_CLS_MASK  ((uint64_t)63)
typedef struct lab_fmap {
    uintptr_t size;             /* bytes of the region (0: none); published last */
    uintptr_t base;
    int64_t *pm;
} lab_fmap_t;
lab_internal extern lab_fmap_t lab_fmap;

/* Whether a lies in the region (*off: its offset there). The acquire pairs with the release that
 * publishes the region: a lookup that sees its size sees its base and map. */
lab_inline bool lab_fmap_in(uintptr_t a, uintptr_t *off)
{
    uintptr_t lim = __atomic_load_n(&lab_fmap.size, __ATOMIC_ACQUIRE);
    *off = a - lab_fmap.base;
    return *off < lim;
}

/* The entry of the page at offset off of the region (lab_fmap_in): descriptor and tag. */
lab_inline uint64_t lab_fmap_entry(uintptr_t off)
{
    return (uint64_t)lab_load_relaxed(&lab_fmap.pm[off >> LAB_PAGE_SHIFT]);
}

/* The descriptor an entry names, its tag and whole-span bits dropped (the map's zero descriptor
 * for 0). */
lab_inline lab_page_t *lab_fmap_decode(uint64_t e)
{
    e &= (LAB_FMAP_DESC_LIM - 1) & ~LAB_FMAP_CLS_MASK;
    return e ? (lab_page_t *)(uintptr_t)e : (lab_page_t *)(void *)lab_fmap.pm;
}

/* The descriptor of the run holding the page at offset off of the region (lab_fmap_in). */
lab_inline lab_page_t *lab_fmap_at(uintptr_t off)
{
    return lab_fmap_decode(lab_fmap_entry(off));
}

/* The descriptor of the run holding a, or NULL when a is outside the region. */
lab_inline lab_page_t *lab_fmap_desc(uintptr_t a)
{
    uintptr_t off;
    return lab_fmap_in(a, &off) ? lab_fmap_at(off) : NULL;
}

lab_inline lab_chunk_t *lab_desc_chunk(const lab_page_t *d)
{
    return (lab_chunk_t *)lab_align_down((uintptr_t)d, LAB_META_SLOT);
}

/* The chunk holding a (lab_chunk_foreign if none of ours does): in the region, the header the
 * page's fast-map entry names (0: no chunk committed there); outside it, the two-level map. */
lab_inline lab_chunk_t *lab_pagemap_lookup(uintptr_t a)
{
    uintptr_t off;
    if (lab_fmap_in(a, &off)) {
        /* acquire pairs with the release that wrote the entry (pool.c: zone_map_chunk): the
         * header it names is initialised */
        uint64_t e = (uint64_t)__atomic_load_n(&lab_fmap.pm[off >> LAB_PAGE_SHIFT], __ATOMIC_ACQUIRE);
        e &= LAB_FMAP_DESC_LIM - 1;
        return e ? lab_desc_chunk((const lab_page_t *)(uintptr_t)e) : &lab_chunk_foreign;
    }
    return lab_pagemap_lookup_far(a);
}

/* The descriptor of the run holding a, an address in a run of ours: one load in the region, the
 * page map outside it. */
lab_inline lab_page_t *lab_own_desc(uintptr_t a)
{
    uintptr_t off;
    if (lab_likely(lab_fmap_in(a, &off)))
        return lab_fmap_at(off);
    return lab_chunk_desc(lab_pagemap_lookup_far(a), a);
}

lab_inline uintptr_t lab_desc_addr(const lab_page_t *d)
{
    lab_chunk_t *c = lab_desc_chunk(d);
    return c->base + ((uintptr_t)(d - c->page) << LAB_PAGE_SHIFT);
}

/* ---- internal metadata memory (chunk headers, heaps, tables): never returned to the OS ---- */
lab_internal void *lab_meta_alloc(size_t size);         /* zeroed, 64-byte aligned; NULL on ENOMEM */
lab_internal void  lab_meta_free(void *p, size_t size); /* recycled for the same size only */

/* ---- the pool, for the layers above ---- */
lab_internal lab_pool_t *lab_pool_default(void);       /* initialises on first call; NULL on ENOMEM */
lab_internal lab_pool_t *lab_pool_of(labyrinth_t *p);  /* NULL if not initialised */

/* A run of 2^order pages, naturally aligned. *desc receives its descriptor, state set to `state`. */
lab_internal void *lab_pool_alloc_order(lab_pool_t *pool, unsigned order, lab_gfp_t gfp,
                                        uint8_t state, lab_page_t **desc);
lab_internal void  lab_pool_free_order(lab_pool_t *pool, lab_page_t *d, unsigned order);
lab_internal void *lab_pool_alloc_large(lab_pool_t *pool, unsigned order, lab_page_t **desc);
/* Whether a was a huge block whose mapping went back to the OS (one of the last few) and nothing
 * is mapped there now: a pointer freed before, not a foreign one (pool_huge.c). */
lab_internal bool lab_huge_gone(uintptr_t a);
/* Set the owner tag of the fast-map entries of the run of d (2^order pages; a run the caller
 * holds): a heap's tag when it makes the run a span, 0 before the run goes back (pool.h). */
lab_internal void  lab_pool_run_tag(lab_page_t *d, unsigned order, uint64_t tag);
/* The same with LAB_FMAP_WHOLE and the span's class cls (1..63) in every entry (the fast map
 * above): a whole span of an aside heap, not its class's current one. */
lab_internal void  lab_pool_run_tag_whole(lab_page_t *d, unsigned order, uint64_t tag, unsigned cls);
/* A page-sized malloc block's run (state LAB_PAGE_LARGE) of any page count 1..512 (page aligned
 * only), head[] and fast-map entry set on its first page only (pool.c: run_set_first): from the
 * calling thread's run room (the default pool's; up to npages/8 pages more than asked) or the
 * store. */
lab_internal void *lab_pool_alloc_run(lab_pool_t *pool, size_t npages, lab_gfp_t gfp, lab_page_t **desc);
/* The same, carved only from used free pages of the default pool (no fault, no mapping), or NULL;
 * never for LAB_GFP_ATOMIC, nor while the huge cache holds a mapping the block fits in (populated
 * too, and lab_pool_alloc_huge takes it). */
lab_internal void *lab_pool_alloc_run_used(lab_pool_t *pool, size_t npages, lab_gfp_t gfp, lab_page_t **desc);
/* LAB_GFP_ZERO's clearing of npages from a (dirty map of dc from page di, or NULL: all). `how`:
 * 0, every page that may hold data; otherwise the caller may make system calls, and pages the
 * kernel says were never written are left, unless (1) the last answers said nearly all were
 * (calloc over reused runs); LAB_ZERO_ASK_ALWAYS asks anyway (alloc.c's lab_zero_range, for a
 * block's growth: mostly fresh pages). */
#define LAB_ZERO_ASK_ALWAYS 2u
lab_internal void lab_pool_zero_pages(uintptr_t a, size_t npages, lab_chunk_t *dc, unsigned di, unsigned how);
/* 0: LAB_GFP_ZERO never asks the kernel which pages were touched (LABYRINTH_PAGEMAP; pool.c's
 * lab_pool_zero_pages): every page that may hold data is cleared. */
lab_internal extern int lab_pool_zero_ask;
/* A thread's run room (pool.c) holds at most this many runs and pages (1 MiB: a run of any size
 * up to LAB_LARGE_MAX). */
#define LAB_RUN_ROOM_RUNS  4u
#define LAB_RUN_ROOM_PAGES 256u
/* Free a run: into the calling thread's run room (the oldest there to the store past its
 * bounds), or to the store. _store: to the store at once, where it coalesces (realloc's). */
lab_internal void  lab_pool_free_run(lab_pool_t *pool, lab_page_t *d);
lab_internal void  lab_pool_free_run_store(lab_pool_t *pool, lab_page_t *d);
/* Shrink a used run in place to npages (the tail goes back to the store). */
lab_internal void  lab_pool_shrink_run(lab_pool_t *pool, lab_page_t *d, size_t npages);
/* Grow a used run in place if the pages after it are free in the store; true on success. */
lab_internal bool  lab_pool_grow_run(lab_pool_t *pool, lab_page_t *d, size_t npages);
/* lab_pool_alloc_huge for a block that is growing (realloc): a cached mapping larger than asked
 * is taken whole, not cut down, so that its populated pages serve the growth to come. Internal:
 * the page API refuses gfp bits beyond its three. */
#define LAB_GFP_GROWING (1u << 16)
/* lab_pool_alloc_order only: a run from the pages the pool holds (rooms, shared lists, store),
 * never a chunk mapped for it; NULL, with errno and the failure count untouched, when none fits.
 * For a caller that can make do with a shorter run (arena.c: spans of big blocks). */
#define LAB_GFP_NOGROW  (1u << 17)
/* A dedicated mapping of at least `bytes` (page rounded); its chunk's page[0] is the descriptor. */
lab_internal void *lab_pool_alloc_huge(lab_pool_t *pool, size_t bytes, size_t align, lab_gfp_t gfp,
                                      lab_chunk_t **out); /* align: power of two >= 2 MiB */
lab_internal void  lab_pool_free_huge(lab_pool_t *pool, lab_chunk_t *c);
/* Huge mappings of the pool, live and cached (each is one kernel mapping). */
lab_internal size_t lab_pool_huge_mappings(lab_pool_t *pool);
/* Huge mappings that hold a block now, their bytes, and the bytes of those cached (freed). */
lab_internal void lab_pool_huge_stats(lab_pool_t *pool, size_t *live, size_t *live_bytes, size_t *cached_bytes);
/* Bytes of cached huge mappings moved onto runs handed out so far (pool_huge.c: lending). */
lab_internal size_t lab_pool_huge_lent(lab_pool_t *pool);
/* Lending's look at the process's mapping count: every `every` lends (tests; 0: the default). */
lab_internal void lab_pool_huge_lend_check_every(unsigned every);
/* Calls fn(d, npages, arg) for the first page's descriptor of every run in use in the pool's
 * chunks (huge mappings apart), a zone lock held at a time: fn must not allocate or lock. A
 * snapshot for statistics: runs other threads change meanwhile are read as they happen to be. */
lab_internal void lab_pool_walk_runs(lab_pool_t *pool, void (*fn)(const lab_page_t *d, size_t npages, void *arg),
                                     void *arg);
/* Resize a huge block, keeping contents; NULL (block untouched) on failure. */
lab_internal void *lab_pool_resize_huge(lab_pool_t *pool, lab_chunk_t *c, size_t bytes);
/* realloc of huge block c to n bytes inside its mapping: asked set, slack grown into uncounted */
lab_internal void lab_pool_huge_asked(lab_pool_t *pool, lab_chunk_t *c, size_t n);

/* Purge what has been idle past the delay (force: everything free, now); returns pages purged. */
lab_internal size_t lab_pool_purge(lab_pool_t *pool, bool force);
/* Calling thread's rooms back to the pools (thread exit); the thread keeps no rooms afterwards. */
lab_internal void lab_pool_thread_exit(void);
/* fork: take every pool lock (prepare), release them (parent), reset them (child). */
lab_internal void lab_pool_fork_prepare(void);
lab_internal void lab_pool_fork_parent(void);
lab_internal void lab_pool_fork_child(void);
/* True while the calling thread is changing one of its rooms (a signal handler must keep out). */
lab_internal bool lab_pool_room_busy(void);
/* Create the pthread key whose destructor flushes rooms; idempotent, never on a malloc path. */
lab_internal void lab_pool_thread_key_init(void);
/* Make the calling thread's rooms now, if that allocates nothing through malloc (the arena calls
 * it before it makes a heap, so that the two share a page of metadata); else leave them to the
 * thread's first call into the pool, as without it. */
lab_internal void lab_pool_rooms_prepare(void);
/* Counts of the layer above for a thread that has no heap (alloc.c: page-sized and huge blocks
 * made and freed), kept in its room set: without atomics, as a heap's statistics are. The
 * calling thread's LAB_THREAD_COUNTS words, or NULL without a set (a set is not made for them). */
#define LAB_THREAD_COUNTS 6
lab_internal extern __thread uint64_t *lab_tls_counts; /* set with the thread's room set */
lab_inline uint64_t *lab_pool_thread_counts(void) { return lab_tls_counts; }
/* Every thread's words summed into out[LAB_THREAD_COUNTS], ended threads' included. */
lab_internal void lab_pool_thread_counts_sum(uint64_t *out);
/* The metadata bytes a thread's rooms take at most (pool_life.c checks): a heap made just after
 * them has its first 4096 - LAB_ROOMS_META bytes on their page (arena.h lays its fields out so). */
#define LAB_ROOMS_META 1280u
/* The number of heaps (threads) drawing on the pool, which the arena keeps up to date: huge
 * pages (LAB_POOL_HUGE) only once the pool has mapped a chunk per heap, so that many threads
 * with a few pages each do not make whole chunks resident. */
lab_internal void lab_pool_set_sharers(lab_pool_t *pool, size_t n);

/* ---- the background purge: the thread itself lives in preload/purge.c ----
 * Frees that reach the shared lists or the store purge what is due themselves (at most every
 * delay/2), or, while a purge thread runs, wake it if it sleeps with nothing to wait for. The
 * thread is started by `start` (registered here), called from a DEFAULT allocation slow path of
 * the default pool (never from a free: glibc frees with its own locks held, and pthread_create
 * takes them) with no allocator lock held and outside signal handlers, once the pool has mapped
 * start_pages pages; start returns true when a thread runs (false: another try later). NULL:
 * never. The child of a fork has no thread; the next such slow path there starts one. */
lab_internal void lab_pool_background_init(bool (*start)(void), size_t start_pages);
/* The thread's body: purge what is due in the default pool, then sleep until more becomes due, or
 * (nothing free is dirty) until a free or a poke wakes it, but at most wake_ms ms (UINT64_MAX: no
 * limit; the caller has work of its own then). gen: lab_pool_background_gen() read before the
 * caller's own look, so that a poke after that look is never slept through. Call in a loop. */
lab_internal void lab_pool_background_round(uint64_t wake_ms, uint64_t gen);
/* Frees and pokes so far (the thread's baseline for round). */
lab_internal uint64_t lab_pool_background_gen(void);
/* Tests: frees count in their thread's room set (on: as once a membarrier has worked) or in the
 * one shared word; and the looks at the pool's peak lab_pool_tick has made in the calling thread. */
lab_internal void lab_pool_background_set_mb(bool on);
lab_internal unsigned long lab_pool_peak_looks(void);
/* Something for the thread to look at (the arena: messages for a heap): counted, and a wake-up
 * if the thread sleeps with nothing to wait for. No-op without a thread. */
lab_internal void lab_pool_background_poke(void);
/* Wake the background thread from any wait (a thread's exit: preload/purge.c). */
lab_internal void lab_pool_background_wake(void);
/* Used pages the layer above holds back: the arena's kept spans (whole empty spans a heap keeps
 * for its next ones) and the empty spans its classes still list, which the pool cannot hand to
 * anyone else. fn(0) says how many pages the calling thread holds so (it only reads: the pool may
 * hold a zone lock); fn(n) gives back at least n of them (all if it has fewer) and says how many
 * (called with no lock held). The malloc pool asks, never for an ATOMIC caller, when its store is
 * about to hand that thread pages never used (fresh or purged: a page fault each when touched):
 * used pages come first. */
typedef size_t (*lab_pool_reclaim_fn)(size_t pages);
lab_internal void lab_pool_set_reclaim(lab_pool_reclaim_fn fn);
/* The default pool's purge delay (ms; ~0u: never purged). */
lab_internal unsigned lab_pool_default_delay(void);
/* Move the calling thread's cached runs of the pool to the shared lists, where the purge sees them. */
lab_internal void lab_pool_room_drain(lab_pool_t *pool);
/* The purge thread: other threads' rooms that held the same runs for a whole delay (their owners
 * made no page-run call) go to the shared lists, stamped as idle that long, so the round's purge
 * takes them. Returns when to look again (ms; UINT64_MAX: no room holds anything). */
lab_internal uint64_t lab_pool_rooms_return_idle(void);
/* Room sets held by threads other than the caller: a thread that made only page-sized blocks has
 * one and no heap (purge.c: no thread is left while both this and the heaps' count are 0). */
lab_internal size_t lab_pool_rooms_others(void);
/* malloc_trim, labyrinth_pool_trim: the runs in every other thread's rooms of the pool go to the
 * shared lists (a room its owner is changing at that moment is skipped); the pages moved. */
lab_internal size_t lab_pool_rooms_take(lab_pool_t *pool);
/* Signal handlers running on the calling thread (preload/signals.c counts them): while there is
 * one the pool's free paths neither purge (no lock waited on, no system call) nor start a thread.
 * A handler may leave by longjmp, never returning to the code that counted it: each is recorded
 * by the address of its wrapper's frame (frame) and, when it runs on the alternate signal stack,
 * that stack's bounds [alt_lo, alt_hi) (else 0, 0), so that lab_pool_in_handler can tell one
 * left that way from one still running: the code that runs a handler is deeper on its stack
 * than the wrapper's frame, on the alternate stack if that is where the handler began, while
 * code a longjmp has gone back to is above it (a longjmp only goes to frames still live) or off
 * that stack. A count that stayed raised for good kept a thread that had run such a handler (a
 * timeout's siglongjmp) from ever purging again, or starting the purge thread: memory freed
 * after it stayed resident (preload.memory_returned_idle_longjmp). */
lab_internal extern __thread int lab_pool_handler_depth;
/* Of those, the handlers that interrupted the allocator, or may have (kind SOFT or HARD, below):
 * while one runs, a handler nested in its wrapper's calls into libc runs on a signal heap too. */
lab_internal extern __thread unsigned lab_pool_handler_nested;
/* What a handler's record holds it to (kind): PLAIN, a handler that interrupted ordinary code;
 * HARD, one that interrupted the allocator in the middle of a change (a lock held, a heap or room
 * being changed): left by longjmp, the thread's heap stays half changed and the record is never
 * dropped (out of the promise: the thread stays on its signal heap, held as in a handler); SOFT,
 * one run on a signal heap because it might have (its program counter in this library's code, a
 * handler's wrapper, the sigreturn trampoline) with nothing in the middle of a change: left by
 * longjmp, it is undone at the next safe point, an allocator call on the signal heap or the next
 * handler's start, by the function lab_pool_set_handler_undo gave, with prev (the wrapper's:
 * the thread back on the heap it was on, the counts it raised taken back). Found by review: a
 * timeout's siglongjmp out of a handler that a profiler's signal nested in left the thread on a
 * signal heap for good, its 2 MiB mallocs all failing. */
#define LAB_HANDLER_PLAIN 0u
#define LAB_HANDLER_SOFT  1u
#define LAB_HANDLER_HARD  2u
/* A handler begins (its wrapper, before it changes anything: heap, locks' quiet count): recorded
 * with the state to set back if it is left by longjmp (prev: its heap; mine: the signal heaps
 * held). Returns lab_pool_handler_nested as it was, for lab_pool_handler_leave. */
lab_internal unsigned lab_pool_handler_enter(uintptr_t frame, uintptr_t alt_lo, uintptr_t alt_hi, unsigned kind,
                                             void *prev, uint64_t mine);
/* The undo of a SOFT handler's heap (preload/signals.c): back on prev, holding the signal heaps of
 * mask mine only. */
lab_internal void lab_pool_set_handler_undo(void (*fn)(void *prev, uint64_t mine));
/* At a handler's start (sp: the interrupted code's stack pointer; it interrupted no allocator
 * code), or at an allocator call on a signal heap before any heap is used: drop the records of
 * handlers left by longjmp, undoing SOFT ones, so that a program that leaves every handler so (a
 * timeout at every request) keeps them current. Returns the depth left. */
lab_internal int lab_pool_handler_recover(uintptr_t sp);
/* lab_pool_handler_recover from the caller's frame. */
lab_internal void lab_pool_handler_safe_point(void);
/* The calling thread is ending (its heap's exit, before anything else): its SOFT handlers are
 * undone, left or not, so that it ends on its own heap (found by review: a thread that ended
 * after a longjmp out of such a handler kept a signal heap, and its own heap, for good, and 16
 * such threads had them all). */
lab_internal void lab_pool_handler_thread_exit(void);
/* The handler whose wrapper's frame is `frame` has returned, before its wrapper takes back what
 * it changed: the records above it, of handlers that left by longjmp into its body, are undone
 * and dropped (undone after, they set back the state it ran in: its signal heap, its counts). */
lab_internal void lab_pool_handler_returned(uintptr_t frame);
/* Its wrapper's changes taken back, its record goes (and any above it, as above); nested: what
 * lab_pool_handler_enter returned. */
lab_internal void lab_pool_handler_leave(uintptr_t frame, unsigned nested);
/* lab_pool_in_handler once a handler is counted: drops the records of handlers that were left
 * by longjmp (as seen from the caller's stack), then says whether one is left. */
lab_internal bool lab_pool_in_handler_slow(void);
/* Whether the calling thread runs a signal handler (no lock waited on, no system call, no thread
 * started). Async-signal-safe. */
lab_inline bool lab_pool_in_handler(void)
{
    return lab_unlikely(lab_pool_handler_depth != 0) && lab_pool_in_handler_slow();
}

/* Counters of the default pool for malloc statistics. */
lab_internal void lab_pool_counters(lab_pool_t *pool, struct labyrinth_pool_stats *out);
/* The written store pages of every zone of the pool: as counted, the normal zone's budget past
 * which fresh faults purge them, and recounted from the dirty map (tests); *runs_off: the store
 * runs whose own count or clean flag disagrees with the map. */
lab_internal size_t lab_pool_store_dirty(lab_pool_t *pool, size_t *budget, size_t *recount, size_t *runs_off);
/* The most store runs one search for an aligned run (a span's) has looked at (tests) */
lab_internal unsigned lab_pool_order_seen_max(void);
/* The looks at the last page of freed page-sized blocks (pool.c: run_written_sample), by every
 * thread (tests). */
lab_internal unsigned long lab_pool_run_looks(void);
/* The pool's score of those looks: below 0, freed blocks found mostly not written to their end
 * (tests). */
lab_internal int lab_pool_run_score(lab_pool_t *pool);
/* Batch pops of the shared lists that took two runs or more of one chain (tests). */
lab_internal unsigned long lab_pool_chains_taken(void);
/* Threads whose page-sized blocks moved to another zone, their zone's lock found taken too often
 * (pool.c: run zones; tests). */
lab_internal unsigned long lab_pool_run_zone_moves(void);
/* Zone zi of pool (0: the normal zone; run zones from 2, as lab_pool_run_zone_move numbers them),
 * for tests: its lock (a thread that finds it taken), and the pages its store holds now (0 for
 * a zone not made). */
lab_internal lab_lock_t *lab_pool_zone_lock(lab_pool_t *pool, unsigned zi);
lab_internal size_t lab_pool_zone_store_pages(lab_pool_t *pool, unsigned zi);
/* The first run the calling thread's run room keeps (the default pool's freed page-sized
 * blocks), or NULL (tests). */
lab_internal lab_page_t *lab_pool_run_room_first(void);
/* Tests: move the calling thread's page-sized blocks of the default pool to the next zone in
 * turn, as a thread pressed on its zone's lock moves (pool.c: run_zone_move); the number of its
 * zone then (pool_impl.h: ZONE_RUN0 and up are run zones), or UINT_MAX if it stays (also when a
 * thread has left its zone since lab_pool_run_zone_left read `seen` there: when the last one
 * left, for the thread's zone of the default pool; 0 if none has). */
lab_internal unsigned lab_pool_run_zone_move(lab_pool_t *pool, uint32_t seen);
lab_internal uint32_t lab_pool_run_zone_left(lab_pool_t *pool);
/* Tests: zone zi's `left` set to stamp, as if a thread had left it then. */
lab_internal void lab_pool_run_zone_stamp(lab_pool_t *pool, unsigned zi, uint32_t stamp);
/* Room sets (pool_life.c): past this many in use, a thread that finds no spare set adopts the set
 * of a thread that ended without its destructors (16; a variable so that tests can lower it), and
 * the sets spare now (tests; rooms_lock taken). */
lab_internal extern unsigned lab_rooms_scan_min;
lab_internal size_t lab_pool_rooms_spare(void);
/* The run zones made in pool (statistics), and the chunks they have mapped (*chunks, if not NULL:
 * each zone's lock taken in turn). */
lab_internal size_t lab_pool_run_zones(lab_pool_t *pool, size_t *chunks);
/* Purge delay of the default pool, before it is first used (options). */
lab_internal void lab_pool_set_default_delay(unsigned ms);
/* LAB_POOL_HUGE for the default pool from `mib` MiB mapped (0: never), before it is first used
 * (options). */
lab_internal void lab_pool_set_default_thp(size_t mib);
/* Bytes of address space to reserve for the fast map's region (core/pool_map.c) at the first chunk
 * any pool maps (0: no region; at most 1 TiB; 64 GiB unless set before). */
lab_internal void lab_pool_set_reserve(size_t bytes);

#endif
