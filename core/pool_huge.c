/* pool_huge.c — huge mappings (layer 2): blocks too large for a chunk, one kernel mapping each,
 * and the cache that keeps freed ones populated for a while (faults are dear), cut to size,
 * joined again or grown in place by mremap. Calls core/os, lock.h and the pool's other files
 * (pool_impl.h) only; the store is left to pool.c (lab_store_trim_huge). */
#define _GNU_SOURCE
#include "pool_impl.h"

#include <errno.h>

#define HUGE_CACHE_MAX ((size_t)256 << 20)
/* A growing block (LAB_GFP_GROWING) takes a cached mapping whole if it is at most this much
 * (plus the size asked) larger: if the block then stops growing and lives on, its mapping keeps
 * at most this much resident that the cache would have purged (glibc's heap keeps up to 64 MiB
 * at its top for the same reason: its trim threshold follows the largest block freed) */
#define HUGE_GROW_SLACK ((size_t)32 << 20)
static inline bool huge_grow_fits(const lab_chunk_t *e, size_t size)
{
    return e->size - size <= HUGE_GROW_SLACK + size;
}
/* Any other block takes a cached mapping whole if it is at most this much larger, or a quarter
 * larger; past both, the mapping is cut down to the block (the pages past it unmapped). Cutting
 * a mapping a little larger than the block threw away populated pages that the next, larger
 * block faulted in again: random churn of 1-2 MiB blocks, four live (a /tmp program: malloc, a
 * write over the whole block, free of a random one, 2 000 rounds) faulted 76 000 times in
 * 1.35 s, glibc 98 000, jemalloc 3 750; 2 150 times in 0.07 s whole. At the price of up to this
 * much resident past the block while it lives (peak RSS 9.4 -> 9.9 MiB there). */
#define HUGE_CUT_SLACK ((size_t)4 << 20)
/* What every live huge block together may hold that way (mapping taken whole, past its own
 * pages): HUGE_GROW_SLACK too. Without the bound, the slack of each block added up: a 30 MiB
 * buffer freed, then a result grown to 300 KiB and kept, round after round, kept 30 MiB
 * resident per result (754 MiB for 9 MiB live after 30 rounds; glibc 40: found by review).
 * Past it, a cached mapping is cut down to the block, as when it is much larger. */
#define HUGE_SLACK_ALL HUGE_GROW_SLACK

/* The slack huge block c stops holding (freed, resized, or grown into it). */
static inline void huge_slack_drop(lab_pool_t *pool, lab_chunk_t *c, size_t keep)
{
    if (c->slack > keep) {
        lab_sub_relaxed(&pool->huge_slack, c->slack - keep);
        c->slack = keep;
    }
}

/* Where the last HUGE_GONE huge blocks were whose mappings went back to the OS. A free of such
 * an address finds no chunk of ours, as a foreign pointer would, and was ignored (found by
 * review: a double free of a 3 MiB block passed once anything had made the cache give its
 * mapping back, even a printf's first buffer); an address here that nothing maps now can only
 * be one of those blocks freed again (lab_huge_gone). Written with no lock: a slot overwritten
 * under a race loses one address, which only misses a report. */
#define HUGE_GONE 64
static uintptr_t huge_gone[HUGE_GONE];
static unsigned huge_gone_next;

static void huge_gone_add(uintptr_t base)
{
    lab_store_relaxed(&huge_gone[lab_add_relaxed(&huge_gone_next, 1) % HUGE_GONE], base);
}

bool lab_huge_gone(uintptr_t a)
{
    if (!a || (a & (LAB_CHUNK_SIZE - 1)))
        return false;
    for (unsigned i = 0; i < HUGE_GONE; i++)
        if (lab_load_relaxed(&huge_gone[i]) == a)
            return !lab_os_mapped((const void *)a);
    return false;
}

void lab_huge_unmap(lab_pool_t *pool, lab_chunk_t *c)
{
    huge_gone_add(c->base);
    lab_pagemap_set(c->base, c->size, NULL);
    lab_os_munmap((void *)c->base, c->size);
    lab_sub_relaxed(&pool->mapped_pages, c->size >> LAB_PAGE_SHIFT);
    lab_sub_relaxed(&pool->huge_pages, c->size >> LAB_PAGE_SHIFT);
    lab_sub_relaxed(&pool->huge_mappings, 1);
    lab_add_relaxed(&pool->unmapped_chunks, 1);
    lab_meta_free(c, sizeof(lab_chunk_t));
}

/* A mapping cut down to a block keeps the chunks past the block's last one populated, as a
 * cached mapping of their own (c off the cache, `head` a multiple of the chunk size below its
 * size): the next block that fits takes them without a fault, and a smaller mapping growing
 * takes them back (huge_join). Cutting unmapped them: blocks of 5-25 MiB, four live, every page
 * written (a review's malloc-large) faulted 178 000 times in 200 rounds, glibc 152 000,
 * tcmalloc 78 000. False (nothing changed) without the memory for the second descriptor. */
static lab_chunk_t *huge_cache_take_oldest(lab_pool_t *pool);

#ifndef HUGE_SPLIT_KEEP
#define HUGE_SPLIT_KEEP HUGE_SLACK_ALL
#endif
static bool huge_split(lab_pool_t *pool, lab_chunk_t *c, size_t head)
{
    if (lab_load_relaxed(&pool->huge_cache_bytes) + (c->size - head) > HUGE_SPLIT_KEEP)
        return false;
    lab_chunk_t *t = lab_meta_alloc(sizeof(lab_chunk_t));
    if (!t)
        return false;
    t->base = c->base + head;
    t->size = c->size - head;
    t->pool = pool;
    t->kind = LAB_CHUNK_HUGE;
    t->pm = NULL;
    t->idle_since = c->idle_since;
    t->head[0] = LAB_HEAD_OF(0);
    for (unsigned i = 1; i < LAB_CHUNK_PAGES; i++)
        t->head[i] = LAB_HEAD_NONE;
    t->page[0].h.clean = 0;
    t->page[0].h.npages = (uint32_t)(t->size >> LAB_PAGE_SHIFT);
    lab_store_relaxed(&t->page[0].h.state, LAB_PAGE_CACHED);
    /* the chunks' slots lead to t from here on (they led to c: only this thread holds either) */
    if (lab_pagemap_set(t->base, t->size, t) != 0) {
        lab_pagemap_set(t->base, t->size, c);
        lab_meta_free(t, sizeof(lab_chunk_t));
        return false;
    }
    lab_store_relaxed(&c->size, head);
    lab_add_relaxed(&pool->huge_mappings, 1);
    lab_chunk_t *evict = NULL;
    lab_lock(&pool->huge_lock);
    t->next = pool->huge_cache;
    pool->huge_cache = t;
    lab_store_relaxed(&pool->huge_cache_bytes, pool->huge_cache_bytes + t->size);
    if (pool->huge_cache_bytes > HUGE_CACHE_MAX)
        evict = huge_cache_take_oldest(pool);
    lab_unlock(&pool->huge_lock);
    if (evict)
        lab_huge_unmap(pool, evict);
    return true;
}

/* c (off the cache) smaller than `size`: the cached mappings that begin where it ends (tails
 * huge_split cut off it before) join it, until it is large enough or none is left (huge_lock
 * held; the descriptors joined are returned through *freed, linked, for lab_meta_free after the
 * lock). Their pages stay mapped and populated: no system call. One kernel mapping or two
 * adjacent ones, as the kernel keeps them: an mremap across two fails and the block then gets a
 * new mapping (lab_pool_resize_huge's failure path). */
static void huge_join(lab_pool_t *pool, lab_chunk_t *c, size_t size, lab_chunk_t **freed)
{
    while (c->size < size) {
        lab_chunk_t **pp = &pool->huge_cache;
        while (*pp && (*pp)->base != c->base + c->size)
            pp = &(*pp)->next;
        lab_chunk_t *t = *pp;
        if (!t)
            return;
        *pp = t->next;
        lab_store_relaxed(&pool->huge_cache_bytes, pool->huge_cache_bytes - t->size);
        lab_pagemap_set(t->base, t->size, c); /* slots that exist already: cannot fail */
        lab_store_relaxed(&c->size, c->size + t->size);
        lab_sub_relaxed(&pool->huge_mappings, 1);
        t->next = *freed;
        *freed = t;
    }
}

/* A huge block's mapping (or its descriptor's) was refused: release what the pool caches, and
 * say whether trying again may succeed: this release found something, or another thread's has
 * since the caller read `mapped0` (refused at the same moment, it released everything first:
 * this one found nothing and gave up, 1 round in 30 of preload.address_limit under load). */
static bool huge_release_retry(lab_pool_t *pool, size_t mapped0)
{
    return lab_pool_release_cached(pool, NULL) || lab_load_relaxed(&pool->mapped_pages) < mapped0;
}

void *lab_pool_alloc_huge(lab_pool_t *pool, size_t bytes, size_t align, lab_gfp_t gfp, lab_chunk_t **out)
{
    /* a page at least: aligned_alloc(4 MiB, 0) comes here, and a mapping of no bytes fails */
    size_t size = lab_align_up(bytes ? bytes : 1, LAB_PAGE_SIZE);
    if (size < bytes || (gfp & LAB_GFP_ATOMIC)) {
        lab_pool_fail(pool);
        return NULL;
    }
    /* Reuse a cached mapping: its pages are populated, and faults are dear. Best fit among the
     * larger ones, else the largest smaller one, resized in place by mremap (no copy). */
    lab_chunk_t *c = NULL, **best = NULL, **below = NULL;
    bool growing = gfp & LAB_GFP_GROWING;
    lab_lock(&pool->huge_lock);
    for (lab_chunk_t **pp = &pool->huge_cache; *pp; pp = &(*pp)->next) {
        lab_chunk_t *e = *pp;
        if (e->base & (align - 1))
            continue;
        if (e->size >= size) {
            /* best fit; for a growing block the largest it may take whole (room to grow, and
             * populated: often the mapping the same buffer had last time) */
            if (!best) {
                best = pp;
            } else if (growing && huge_grow_fits(e, size)) {
                if (!huge_grow_fits(*best, size) || e->size > (*best)->size)
                    best = pp;
            } else if ((!growing || !huge_grow_fits(*best, size)) && e->size < (*best)->size) {
                best = pp;
            }
        } else if (!below || e->size > (*below)->size) {
            below = pp;
        }
    }
    lab_chunk_t **take = best ? best : below, *joined = NULL;
    if (take) {
        c = *take;
        *take = c->next;
        lab_store_relaxed(&pool->huge_cache_bytes, pool->huge_cache_bytes - c->size);
        if (c->size < size)
            huge_join(pool, c, size, &joined);
    }
    lab_unlock(&pool->huge_lock);
    while (joined) {
        lab_chunk_t *next = joined->next;
        lab_meta_free(joined, sizeof(lab_chunk_t));
        joined = next;
    }
    /* Cut down one much larger (HUGE_CUT_SLACK), unless the block is growing: cutting unmaps
     * populated pages the growth would fault in again (realloc growth to 1 MiB in 1 KiB steps,
     * each round taking the last round's mapping back: 224 page faults a round, about 4 us per
     * realloc) */
    bool cut = c && c->size >= size &&
               (growing ? !huge_grow_fits(c, size) : c->size - size > lab_max(size / 4, HUGE_CUT_SLACK));
    if (c && c->size > size && !cut && lab_load_relaxed(&pool->huge_slack) + (c->size - size) > HUGE_SLACK_ALL)
        cut = true;
    size_t head = lab_align_up(size, LAB_CHUNK_SIZE);
    if (cut && head + LAB_CHUNK_SIZE <= c->size && huge_split(pool, c, head))
        cut = c->size > size && (lab_load_relaxed(&pool->huge_slack) + (c->size - size) > HUGE_SLACK_ALL ||
                                 (growing && !huge_grow_fits(c, size)));
    if (c && (c->size < size || cut) && !lab_pool_resize_huge(pool, c, size) && c->size < size) {
        lab_huge_unmap(pool, c);
        c = NULL;
    }
    if (c && (c->base & (align - 1))) {
        /* growing it had to move it, and a move keeps only chunk alignment */
        lab_huge_unmap(pool, c);
        c = NULL;
    }
    if (!c) {
        size_t np = size >> LAB_PAGE_SHIFT;
        if (!lab_pool_count_mapped(pool, np, np)) {
            lab_pool_fail(pool);
            return NULL;
        }
        /* the pool's mapped pages now: a release by another thread shows as fewer */
        size_t mapped0 = lab_load_relaxed(&pool->mapped_pages);
        c = lab_meta_alloc(sizeof(lab_chunk_t));
        if (!c && huge_release_retry(pool, mapped0)) /* (its descriptor may need a mapping) */
            c = lab_meta_alloc(sizeof(lab_chunk_t));
        if (!c) {
            lab_sub_relaxed(&pool->mapped_pages, np);
            lab_pool_fail(pool);
            return NULL;
        }
        int err;
        void *m = lab_os_map_aligned(size, align, &err);
        /* again while releases find something (another thread may map what one gave back
         * before this one does), up to four times */
        for (int tries = 0; !m && err == -ENOMEM && tries < 4 && huge_release_retry(pool, mapped0); tries++)
            m = lab_os_map_aligned(size, align, &err);
        if (!m) {
            lab_meta_free(c, sizeof(lab_chunk_t));
            lab_sub_relaxed(&pool->mapped_pages, np);
            lab_pool_fail(pool);
            return NULL;
        }
        c->base = (uintptr_t)m;
        c->size = size;
        c->pool = pool;
        c->kind = LAB_CHUNK_HUGE;
        c->pm = NULL; /* dedicated mappings lie outside the fast map's region */
        c->page[0].h.clean = 1;
        /* only the block's own address finds its descriptor; every other page the sentinel */
        c->head[0] = LAB_HEAD_OF(0);
        for (unsigned i = 1; i < LAB_CHUNK_PAGES; i++)
            c->head[i] = LAB_HEAD_NONE;
        if (lab_pagemap_set(c->base, size, c) != 0) {
            lab_pagemap_set(c->base, size, NULL); /* the slots set before the failure, too */
            lab_os_munmap(m, size);
            lab_meta_free(c, sizeof(lab_chunk_t));
            lab_sub_relaxed(&pool->mapped_pages, np);
            lab_pool_fail(pool);
            return NULL;
        }
        lab_add_relaxed(&pool->huge_mappings, 1);
        lab_add_relaxed(&pool->huge_pages, np);
        lab_store_trim_huge(pool, np);
    }
    c->next = c->prev = NULL;
    c->asked = bytes;
    c->slack = c->size > size ? c->size - size : 0;
    if (c->slack)
        lab_add_relaxed(&pool->huge_slack, c->slack);
    lab_store_relaxed(&c->page[0].h.state, LAB_PAGE_HUGE);
    c->page[0].h.npages = (uint32_t)(c->size >> LAB_PAGE_SHIFT);
    /* the block's pages only: a cached mapping taken whole may run up to HUGE_CUT_SLACK past it,
     * populated, and clearing that too cost a memset of megabytes nobody asked to read zero */
    if ((gfp & LAB_GFP_ZERO) && !c->page[0].h.clean)
        lab_pool_zero_pages(c->base, size >> LAB_PAGE_SHIFT, NULL, 0, !(gfp & LAB_GFP_ATOMIC));
    c->page[0].h.clean = 0;
    /* the peak counts huge blocks too (found by review: a 100 MiB buffer left peak_kib at 0;
     * pages were sampled only on the page paths) */
    lab_pool_note_peak(pool);
    *out = c;
    return (void *)c->base;
}

/* The oldest mapping of the huge cache at least `min` bytes long but `keep` (NULL: any), taken
 * off it, or NULL (huge_lock held). */
static lab_chunk_t *huge_cache_take_oldest_of(lab_pool_t *pool, size_t min, const lab_chunk_t *keep)
{
    lab_chunk_t **pp = NULL;
    for (lab_chunk_t **q = &pool->huge_cache; *q; q = &(*q)->next)
        if (*q != keep && (*q)->size >= min)
            pp = q; /* the list runs from the newest: the last such is the oldest */
    if (!pp)
        return NULL;
    lab_chunk_t *c = *pp;
    *pp = c->next;
    lab_store_relaxed(&pool->huge_cache_bytes, pool->huge_cache_bytes - c->size);
    return c;
}

/* The oldest mapping of the (non-empty) huge cache, taken off it: the list's tail (huge_lock held). */
static lab_chunk_t *huge_cache_take_oldest(lab_pool_t *pool)
{
    return huge_cache_take_oldest_of(pool, 0, NULL);
}

/* Lending, lab_huge_cache_yield's first choice: the tail of the oldest cached mapping at least
 * as long as run d moves onto it (mremap, MREMAP_FIXED), its pages populated already, holding
 * what the freed block left there: the program writes the run without a fault, and the cache's
 * pages are not given back to be faulted in again beside. `sort -S 4M` (its 4 MiB buffer, then sixteen 256 KiB merge
 * buffers, twice, then three of 1.3 MiB), its calls replayed by scripts/trace_replay.sh with
 * every byte written: 2 337 faults, glibc 2 070, jemalloc 1 285, which reuses the buffer's pages;
 * lent, 1 348.
 * Only for a run of a normal chunk of the malloc pool (an EXCLUSIVE chunk's pages are wiped on
 * fork: moved pages would not be) and a caller that wants no zeroed pages (they would be cleared
 * again). Each lend may split the chunk's kernel mapping in three (a run lent again where one was
 * adds none), against the process's limit (vm.max_map_count, 65 530 by default), past which no
 * mmap or thread creation succeeds: every HUGE_LEND_CHECK lends the process's mappings are
 * counted (/proc/self/maps, one read of a few KiB), and lending stops while they are more than
 * half the limit; a stopped lending counts them again every HUGE_LEND_CHECK runs it declined. */
#define HUGE_LEND_CHECK 256u
static unsigned huge_lend_every = HUGE_LEND_CHECK; /* (tests: lab_pool_huge_lend_check_every) */
static unsigned huge_lend_since;  /* lends, or runs declined while off, since the last count */
static int huge_lend_off;         /* 1: the last count was past half the limit */
static size_t huge_lent_pages;    /* (relaxed; the malloc pool's alone lends) */

void lab_pool_huge_lend_check_every(unsigned every)
{
    lab_store_relaxed(&huge_lend_every, every ? every : HUGE_LEND_CHECK);
    lab_store_relaxed(&huge_lend_since, 0);
}

/* Another lend (or, off, another run declined): every huge_lend_every, the mappings counted. */
static void huge_lend_tick(void)
{
    if (lab_add_relaxed(&huge_lend_since, 1) + 1 < lab_load_relaxed(&huge_lend_every))
        return;
    lab_store_relaxed(&huge_lend_since, 0);
    size_t maps = lab_os_map_count(); /* (0: unreadable, a sandbox: no lends it cannot count) */
    lab_store_relaxed(&huge_lend_off, !maps || maps > lab_os_max_map_count() / 2);
}

static bool huge_lend(lab_pool_t *pool, lab_page_t *d, lab_chunk_t **kept)
{
    size_t want = (size_t)d->h.npages << LAB_PAGE_SHIFT;
    if (!pool->is_default || lab_desc_chunk(d)->zone != ZONE_NORMAL)
        return false;
    if (lab_unlikely(lab_load_relaxed(&huge_lend_off))) {
        huge_lend_tick();
        return false;
    }
    lab_lock(&pool->huge_lock);
    lab_chunk_t *c = huge_cache_take_oldest_of(pool, want, NULL);
    lab_unlock(&pool->huge_lock);
    if (!c)
        return false;
    /* off the cache, c is this thread's alone (a free of its block finds it CACHED: a double
     * free); its pages go back to it on a refusal (the tail across two kernel mappings that
     * huge_join made one, or no memory for the split). The tail leaves the page map BEFORE the
     * kernel frees its addresses, as in lab_pool_huge_resize: once it has, another thread may
     * map there (a chunk of ours, registered in the page map, which a clear after the move
     * would wipe; or the program's mmap, whose MAP_FIXED over it LABYRINTH_MMAP took for one
     * over malloc's memory and aborted: found by CI, the JVM test, once in some 20 runs). The
     * smaller size first: the last unit kept answers "foreign" past it (lab_pagemap_lookup). */
    uintptr_t end = c->base + c->size, from = end - want;
    uintptr_t unit = lab_align_up(from, LAB_CHUNK_SIZE); /* units wholly past the new end */
    lab_store_relaxed(&c->size, from - c->base);
    if (unit < end)
        lab_pagemap_set(unit, end - unit, NULL);
    long r = lab_os_mremap((void *)from, want, want, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)lab_desc_addr(d));
    bool lent = !(r < 0 && r >= -4095);
    if (!lent) {
        if (unit < end)
            lab_pagemap_set(unit, end - unit, c); /* slots that exist already: cannot fail */
        lab_store_relaxed(&c->size, end - c->base);
    } else {
        lab_add_relaxed(&huge_lent_pages, want >> LAB_PAGE_SHIFT);
        huge_lend_tick();
        lab_sub_relaxed(&pool->mapped_pages, want >> LAB_PAGE_SHIFT);
        lab_sub_relaxed(&pool->huge_pages, want >> LAB_PAGE_SHIFT);
        d->h.clean = 0;
        if (from == c->base) {
            huge_gone_add(c->base); /* the program's old pointer: a later free of it is caught */
            lab_sub_relaxed(&pool->huge_mappings, 1);
            lab_meta_free(c, sizeof(lab_chunk_t));
            return true;
        }
    }
    /* back as the oldest, which it was among those long enough */
    lab_lock(&pool->huge_lock);
    lab_chunk_t **pp = &pool->huge_cache;
    while (*pp)
        pp = &(*pp)->next;
    c->next = NULL;
    *pp = c;
    lab_store_relaxed(&pool->huge_cache_bytes, pool->huge_cache_bytes + c->size);
    lab_unlock(&pool->huge_lock);
    *kept = lent ? c : NULL;
    return lent;
}

/* The pool has just handed out d, a run of pages never touched (or purged: `clean`), for a
 * caller that may make system calls: the program's memory is moving to smaller blocks. Mappings
 * the huge cache keeps populated, idle since their block was freed, would make that growth
 * extra resident memory: the oldest of them, at least as many bytes as the run, go back to the
 * OS now instead of after the purge delay. `sort -S 4M` frees its 4 MiB buffer and then reads
 * its merge input into sixteen 256 KiB buffers: peak RSS 10.9 MiB with the buffer cached until
 * the purge, glibc 5.8 (which unmaps it at free). Only when the pool faults pages in: a huge
 * block freed and allocated again (the cache's purpose) keeps its mapping while the pool's
 * free runs serve everything else. First the run takes the tail of the oldest mapping long
 * enough (huge_lend), which stays cached for the runs that follow (sort's merge buffers take its
 * 4 MiB buffer's pages in turn); the others still go back, as many bytes as the run (`wl large`,
 * whose freed mappings are mostly untouched, peaked 1.3 MiB higher while they stayed too). */
bool lab_huge_cache_yield(lab_pool_t *pool, lab_page_t *d, bool lend)
{
    size_t want = (size_t)d->h.npages << LAB_PAGE_SHIFT, got = 0;
    lab_chunk_t *out = NULL, *kept = NULL, *c;
    bool lent = lend && huge_lend(pool, d, &kept);
    if (lent && !kept)
        return true;
    lab_lock(&pool->huge_lock);
    while (got < want && (c = huge_cache_take_oldest_of(pool, 0, kept)) != NULL) {
        got += c->size;
        c->next = out;
        out = c;
    }
    lab_unlock(&pool->huge_lock);
    while (out) {
        lab_chunk_t *next = out->next;
        lab_huge_unmap(pool, out);
        out = next;
    }
    return lent;
}

void lab_pool_huge_asked(lab_pool_t *pool, lab_chunk_t *c, size_t n)
{
    c->asked = n;
    size_t used = lab_align_up(n, LAB_PAGE_SIZE);
    huge_slack_drop(pool, c, c->size > used ? c->size - used : 0);
}

void lab_pool_free_huge(lab_pool_t *pool, lab_chunk_t *c)
{
    huge_slack_drop(pool, c, 0);
    lab_store_relaxed(&c->page[0].h.state, LAB_PAGE_CACHED);
    c->idle_since = lab_clock_ms();
    lab_chunk_t *evict = NULL;
    lab_lock(&pool->huge_lock);
    if (c->size <= HUGE_CACHE_MAX / 4) {
        c->next = pool->huge_cache;
        pool->huge_cache = c;
        lab_store_relaxed(&pool->huge_cache_bytes, pool->huge_cache_bytes + c->size);
        c = NULL;
        if (pool->huge_cache_bytes > HUGE_CACHE_MAX)
            evict = huge_cache_take_oldest(pool);
    }
    lab_unlock(&pool->huge_lock);
    if (c)
        lab_huge_unmap(pool, c);
    if (evict)
        lab_huge_unmap(pool, evict);
    lab_pool_tick(pool, true, 0);
}

/* True if the huge cache holds a mapping of at least `bytes` (lab_pool_alloc_huge would take it
 * with no growth). */
bool lab_huge_cache_holds(lab_pool_t *pool, size_t bytes)
{
    if (!lab_load_relaxed(&pool->huge_cache_bytes))
        return false;
    bool found = false;
    lab_lock(&pool->huge_lock);
    for (lab_chunk_t *e = pool->huge_cache; e && !found; e = e->next)
        found = e->size >= bytes;
    lab_unlock(&pool->huge_lock);
    return found;
}

size_t lab_pool_huge_mappings(lab_pool_t *pool) { return lab_load_relaxed(&pool->huge_mappings); }

void lab_pool_huge_stats(lab_pool_t *pool, size_t *live, size_t *live_bytes, size_t *cached_bytes)
{
    size_t n = 0;
    lab_lock(&pool->huge_lock);
    for (lab_chunk_t *c = pool->huge_cache; c; c = c->next)
        n++;
    size_t cached = pool->huge_cache_bytes, all = lab_load_relaxed(&pool->huge_mappings);
    size_t bytes = lab_load_relaxed(&pool->huge_pages) << LAB_PAGE_SHIFT;
    lab_unlock(&pool->huge_lock);
    *live = all > n ? all - n : 0;
    *live_bytes = bytes > cached ? bytes - cached : 0;
    *cached_bytes = cached;
}

size_t lab_pool_huge_lent(lab_pool_t *pool)
{
    return pool->is_default ? lab_load_relaxed(&huge_lent_pages) << LAB_PAGE_SHIFT : 0;
}

void *lab_pool_resize_huge(lab_pool_t *pool, lab_chunk_t *c, size_t bytes)
{
    size_t size = lab_align_up(bytes, LAB_PAGE_SIZE), old = c->size;
    if (size < bytes)
        return NULL;
    if (size == old)
        return (void *)c->base;
    size_t grow = size > old ? (size - old) >> LAB_PAGE_SHIFT : 0; /* counted first (lab_pool_count_mapped) */
    if (grow && !lab_pool_count_mapped(pool, grow, grow))
        return NULL;
    /* Page-map slots we give up are cleared BEFORE the kernel frees the addresses: once it has,
     * another thread may map a chunk there and register it. Only this thread uses the block. The
     * last slot kept still covers the freed tail of its unit, where anything may be mapped next:
     * the smaller size is published first, so lookups there answer "foreign" (lab_pagemap_lookup). */
    uintptr_t old_base = c->base;
    uintptr_t keep = lab_align_up(old_base + size, LAB_CHUNK_SIZE);
    uintptr_t end = lab_align_up(old_base + old, LAB_CHUNK_SIZE);
    if (size < old) {
        if (end > keep)
            lab_pagemap_set(keep, end - keep, NULL);
        lab_store_relaxed(&c->size, size);
    }
    long r = lab_os_mremap((void *)old_base, old, size, 0, NULL);
    if (r < 0 && r >= -4095) {
        if (size < old) {
            lab_store_relaxed(&c->size, old);
            lab_pagemap_set(old_base, old, c);
            return NULL;
        }
        /* cannot grow in place: reserve an aligned range, then move the pages onto it (no copy) */
        int err;
        void *dst = lab_os_map_aligned(size, LAB_CHUNK_SIZE, &err);
        if (!dst)
            goto not_grown;
        if (lab_pagemap_set((uintptr_t)dst, size, c) != 0) {
            lab_pagemap_set((uintptr_t)dst, size, NULL); /* the slots set before the failure, too */
            lab_os_munmap(dst, size);
            goto not_grown;
        }
        lab_pagemap_set(old_base, old, NULL);
        r = lab_os_mremap((void *)old_base, old, size, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
        if (r < 0 && r >= -4095) {
            lab_pagemap_set((uintptr_t)dst, size, NULL);
            lab_pagemap_set(old_base, old, c);
            lab_os_munmap(dst, size);
            goto not_grown;
        }
        c->base = (uintptr_t)dst;
        huge_gone_add(old_base); /* the program's old pointer: a later free of it is caught */
    }
    if (lab_pagemap_set(c->base, size, c) != 0) {
        /* grown in place but the page map could not grow with it: give the growth back, and
         * the slots of the growth set before the failure (past the old size's last unit) */
        uintptr_t old_end = lab_align_up(c->base + old, LAB_CHUNK_SIZE);
        uintptr_t new_end = lab_align_up(c->base + size, LAB_CHUNK_SIZE);
        if (new_end > old_end)
            lab_pagemap_set(old_end, new_end - old_end, NULL);
        lab_os_mremap((void *)c->base, size, old, 0, NULL);
        goto not_grown;
    }
    if (size < old) {
        lab_sub_relaxed(&pool->mapped_pages, (old - size) >> LAB_PAGE_SHIFT);
        lab_sub_relaxed(&pool->huge_pages, (old - size) >> LAB_PAGE_SHIFT);
    } else {
        lab_add_relaxed(&pool->huge_pages, grow);
        lab_store_trim_huge(pool, grow);
        lab_pool_note_peak(pool);
    }
    lab_store_relaxed(&c->size, size);
    c->page[0].h.npages = (uint32_t)(size >> LAB_PAGE_SHIFT);
    huge_slack_drop(pool, c, 0); /* resized to what realloc asked (or half as much again) */
    return (void *)c->base;
not_grown:
    lab_sub_relaxed(&pool->mapped_pages, grow);
    return NULL;
}
