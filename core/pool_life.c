/* pool_life.c — the page pool's life (layer 2): a thread's room set, made at its first page call
 * and given back at its exit (or taken by another thread: malloc_trim, the purge thread, a
 * chunk about to be mapped); pools made and destroyed, the default pool behind malloc, fork,
 * and the public labyrinth_* API but the page calls' fast paths (pool.c). Calls core/os,
 * lock.h and the pool's other files (pool_impl.h) only. */
#define _GNU_SOURCE
#include "pool_impl.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

lab_lock_t lab_pools_lock = LAB_LOCK_INIT;
lab_pool_t *lab_pools_all;
static lab_pool_t *pool_slots[LAB_ROOM_POOLS];
static uint64_t pool_gen_counter;
static lab_pool_t *default_pool; /* the pool behind malloc (set up in pool_default_init) */

static lab_lock_t rooms_lock = LAB_LOCK_INIT;
static lab_rooms_t *rooms_all, *rooms_free;
static pthread_key_t rooms_key;
static int rooms_key_state; /* 0 none, 1 creating, 2 ready */

/* ------------------------------------------------------------------------------------------
 * rooms: creation, thread exit */

static void rooms_destructor(void *arg)
{
    (void)arg;
    lab_pool_thread_exit();
}

void lab_pool_thread_key_init(void)
{
    int expect = 0;
    if (__atomic_compare_exchange_n(&rooms_key_state, &expect, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        if (pthread_key_create(&rooms_key, rooms_destructor) == 0)
            __atomic_store_n(&rooms_key_state, 2, __ATOMIC_RELEASE);
        else
            __atomic_store_n(&rooms_key_state, 0, __ATOMIC_RELEASE);
    }
}

_Static_assert(lab_align_up(sizeof(lab_rooms_t), 64) <= LAB_ROOMS_META, "a room set fits what arena.c leaves it");

/* glibc keeps the values of the first 32 keys in the thread descriptor itself: setting one of them
 * allocates nothing (keys beyond get a table from calloc on first use). */
#define LAB_KEY_STATIC 32

/* Sets given to threads and not given back (under rooms_lock). A thread whose first page-run
 * call comes in glibc's last round of key destructors sets our key too late for its destructor
 * to run: the set stayed with the ended thread (found by review: 1.25 KB a thread, 16 000
 * threads, 24 MB). As with heaps (arena.c: heap_adopt_ended), with ROOMS_SCAN_MIN sets in use a
 * set records its thread's id, and a thread that finds no free set first looks at a few others
 * and adopts one whose thread has ended, with the runs it holds. */
static unsigned rooms_in_use;
#define ROOMS_SCAN_MIN 16u
unsigned lab_rooms_scan_min = ROOMS_SCAN_MIN;
static lab_rooms_t *rooms_scan_at; /* the walk's place in rooms_all (relaxed; sets are never freed) */

static void rooms_flush(lab_rooms_t *rs);

/* A set whose thread ended, claimed (its id -1; *was the id), or NULL. */
static lab_noinline lab_rooms_t *rooms_adopt_ended(int *was)
{
    lab_rooms_t *rs = lab_load_relaxed(&rooms_scan_at);
    for (unsigned k = 0, steps = 0; k < 4 && steps < 64; steps++) {
        rs = rs ? lab_load_relaxed(&rs->next_all) : __atomic_load_n(&rooms_all, __ATOMIC_ACQUIRE);
        if (!rs)
            continue;
        int tid = __atomic_load_n(&rs->owner_tid, __ATOMIC_ACQUIRE);
        if (tid <= 0)
            continue;
        k++;
        if (!lab_os_claim_ended(&rs->owner_tid, tid))
            continue;
        if (rs->busy) { /* caught mid-change */
            __atomic_store_n(&rs->owner_tid, tid, __ATOMIC_RELEASE);
            continue;
        }
        lab_store_relaxed(&rooms_scan_at, rs);
        *was = tid;
        return rs;
    }
    lab_store_relaxed(&rooms_scan_at, rs);
    return NULL;
}

/* atomic: for a LAB_GFP_ATOMIC caller (a thread that only ever allocates pages ATOMIC, such as a
 * receive loop, would otherwise take every page from the shared lists, one CAS each): no lock
 * waited for, no mapping, and only when the thread-exit key can be set without allocating;
 * otherwise NULL (no rooms, as before). */
lab_noinline lab_rooms_t *lab_rooms_create(bool atomic)
{
    /* acquire pairs with the release in key_init: the key is valid once the state reads 2 */
    bool key = __atomic_load_n(&rooms_key_state, __ATOMIC_ACQUIRE) == 2;
    /* system calls: not in a signal handler (an ATOMIC caller elsewhere, such as a free that
     * gives the thread its set, may make them: the sets the ended threads left are made that
     * way); a peek at the free list, read again below */
    bool calls = !lab_pool_in_handler();
    int ended = 0;
    lab_rooms_t *adopted = calls && !lab_tls_rooms && !lab_load_relaxed(&rooms_free) &&
                                   lab_load_relaxed(&rooms_in_use) >= lab_load_relaxed(&lab_rooms_scan_min)
                               ? rooms_adopt_ended(&ended)
                               : NULL;
    int tid = calls && lab_load_relaxed(&rooms_in_use) >= lab_load_relaxed(&lab_rooms_scan_min) / 2
                  ? (int)lab_os_gettid()
                  : 0;
    if (atomic) {
        if (!key || (unsigned)rooms_key >= LAB_KEY_STATIC || !lab_lock_try(&rooms_lock)) {
            if (adopted) /* the claim given back: the next thread may adopt the set */
                __atomic_store_n(&adopted->owner_tid, ended, __ATOMIC_RELEASE);
            return NULL;
        }
    } else {
        lab_lock(&rooms_lock);
    }
    /* lab_tls_rooms is read and set under the lock: a signal handler's ATOMIC call that interrupts
     * this one finds the lock held (no rooms for it) or the rooms made */
    lab_rooms_t *rs = lab_tls_rooms;
    if (!rs && adopted) { /* in use already, and counted so; its runs stay */
        rs = adopted;
        adopted = NULL;
        lab_tls_rooms = rs;
        lab_tls_counts = rs->counts;
        __atomic_store_n(&rs->owner_tid, tid, __ATOMIC_RELEASE);
    } else if (!rs && (rs = rooms_free)) {
        lab_store_relaxed(&rooms_free, rs->next_free); /* (stores relaxed: lab_rooms_create peeks) */
        memset(rs->slot, 0, sizeof rs->slot);
        rs->busy = 0;
        lab_tls_rooms = rs;
        lab_tls_counts = rs->counts;
        __atomic_store_n(&rs->owner_tid, tid, __ATOMIC_RELEASE);
        lab_store_relaxed(&rooms_in_use, rooms_in_use + 1);
    } else if (!rs && (rs = lab_meta_alloc_atomic(sizeof *rs, atomic))) {
        /* lab_meta_lock inside rooms_lock: the order the fork handler takes them in */
        rs->owner_tid = tid;
        /* release: a walk without the lock (rooms_adopt_ended) sees the set whole */
        rs->next_all = rooms_all;
        __atomic_store_n(&rooms_all, rs, __ATOMIC_RELEASE);
        lab_tls_rooms = rs;
        lab_tls_counts = rs->counts;
        lab_store_relaxed(&rooms_in_use, rooms_in_use + 1);
    }
    if (adopted) { /* a handler's call made this thread a set meanwhile: the ended thread's is free */
        rooms_flush(adopted);
        __atomic_store_n(&adopted->owner_tid, 0, __ATOMIC_RELEASE);
        adopted->next_free = rooms_free;
        lab_store_relaxed(&rooms_free, adopted);
        lab_store_relaxed(&rooms_in_use, rooms_in_use - 1);
    }
    lab_unlock(&rooms_lock);
    if (rs && key)
        pthread_setspecific(rooms_key, rs);
    return rs;
}

size_t lab_pool_rooms_spare(void)
{
    size_t n = 0;
    lab_lock(&rooms_lock);
    for (lab_rooms_t *rs = rooms_free; rs; rs = rs->next_free)
        n++;
    lab_unlock(&rooms_lock);
    return n;
}

void lab_pool_set_sharers(lab_pool_t *pool, size_t n) { lab_store_relaxed(&pool->sharers, n); }

void lab_pool_rooms_prepare(void)
{
    /* a key beyond the static ones: pthread_setspecific would calloc, and the caller has no
     * heap yet (the malloc would make one of its own) */
    if (__atomic_load_n(&rooms_key_state, __ATOMIC_ACQUIRE) == 2 && (unsigned)rooms_key >= LAB_KEY_STATIC)
        return;
    lab_rooms_get(false);
}

/* Slot s of a set holds runs of a pool that is still there: not destroyed, its memory not
 * reused by another. Under rooms_lock: pool_teardown clears the pool's entry, then waits for
 * rooms_lock before it unmaps anything, so a pool seen here stays until the lock is let go. */
static bool room_pool_live(lab_rooms_t *rs, unsigned s)
{
    lab_pool_t *pool = rs->slot[s].pool;
    return pool && lab_load_relaxed(&pool_slots[s]) == pool && pool->gen == rs->slot[s].gen;
}

/* The runs of a set's rooms (of pool `only`, or of all) to the shared lists, stamped `stamp`;
 * the pages moved. By the owner, or by a taker that holds the set (rooms_take). */
static size_t rooms_move(lab_rooms_t *rs, lab_pool_t *only, uint64_t stamp, lab_zone_t *held)
{
    size_t pages = 0;
    for (unsigned s = 0; s < LAB_ROOM_POOLS; s++) {
        lab_pool_t *pool = rs->slot[s].pool;
        if (!pool)
            continue;
        if (!room_pool_live(rs, s)) {
            /* a destroyed pool's runs are gone with it: forget them (as room_of does), or the
             * purge thread would watch them, and take nothing, once a delay for good */
            memset(&rs->slot[s], 0, sizeof rs->slot[s]);
            continue;
        }
        if (only && pool != only)
            continue;
        for (unsigned o = 0; o < LAB_NR_ORDERS; o++) {
            lab_room_slot_t *r = &rs->slot[s];
            if (r->head[o]) {
                lab_page_t *last = r->head[o];
                while (last->next)
                    last = last->next;
                lab_shared_push_at(pool, &pool->zone[ZONE_NORMAL], r->head[o], last, o, r->count[o], stamp);
                pages += (size_t)r->count[o] << o;
                r->head[o] = NULL;
                r->count[o] = 0;
            }
        }
    }
    /* the run room (its runs all of one zone, pool.c's run_room_push): under rooms_lock the zone
     * lock may only be tried (see the run rooms), unless the taker holds it already (held:
     * lab_rooms_take_stale) */
    lab_pool_t *dp = __atomic_load_n(&default_pool, __ATOMIC_ACQUIRE);
    lab_zone_t *rz = rs->runs && dp ? lab_zone_at(dp, rs->runs->h.zone) : NULL;
    if (rz && (!only || only == dp) && (rz == held || lab_lock_try(&rz->lock))) {
        pages += lab_run_chain_store(dp, lab_run_room_detach(rs), stamp);
        if (rz != held)
            lab_unlock(&rz->lock);
    }
    return pages;
}

/* The counts of threads whose sets were flushed (rooms_lock). */
static uint64_t counts_ended[LAB_THREAD_COUNTS], frees_ended;

__thread uint64_t *lab_tls_counts;

void lab_pool_thread_counts_sum(uint64_t *out)
{
    lab_lock(&rooms_lock); /* no set flushed meanwhile: each count is read once */
    for (unsigned i = 0; i < LAB_THREAD_COUNTS; i++)
        out[i] = counts_ended[i];
    for (lab_rooms_t *rs = rooms_all; rs; rs = rs->next_all)
        for (unsigned i = 0; i < LAB_THREAD_COUNTS; i++)
            out[i] += lab_load_relaxed(&rs->counts[i]);
    lab_unlock(&rooms_lock);
}

/* The set's rooms emptied and its counts moved to counts_ended, for another thread (rooms_lock
 * held). */
static void rooms_flush(lab_rooms_t *rs)
{
    for (unsigned i = 0; i < LAB_THREAD_COUNTS; i++) {
        counts_ended[i] += lab_load_relaxed(&rs->counts[i]);
        lab_store_relaxed(&rs->counts[i], 0);
    }
    frees_ended += lab_load_relaxed(&rs->frees);
    lab_store_relaxed(&rs->frees, 0);
    for (unsigned s = 0; s < LAB_ROOM_POOLS; s++)
        if (room_pool_live(rs, s))
            lab_add_relaxed(&rs->slot[s].pool->room_hits_dead, rs->slot[s].hits);
    rooms_move(rs, NULL, lab_clock_ms(), NULL);
    memset(rs->slot, 0, sizeof rs->slot);
}

static inline uint64_t sig_mix(uint64_t sig, uint64_t v) { return (sig ^ v) * 0x9e3779b97f4a7c15ull + 1; }

/* Some hash of what a set's rooms hold (of pool `only`, or of all), and of their hits: 0 when
 * they hold nothing. The same value twice says the owner made no room call between (a hint: read
 * while the owner may change them, acted on by rooms_take only under its protocol). The hits
 * count the pops: with the lists alone, a thread that freed a run and took it back at once (`wl
 * pagemix`: a block freed, then a shorter one) left them as they were, and was taken for idle
 * before each chunk mapped (a membarrier, whose interrupts to the other CPUs took a tenth of the
 * run's time) and by the purge thread. */
static uint64_t rooms_sig(lab_rooms_t *rs, lab_pool_t *only)
{
    uint64_t sig = 0, hits = 0;
    for (unsigned s = 0; s < LAB_ROOM_POOLS; s++) {
        lab_pool_t *pool = lab_load_relaxed(&rs->slot[s].pool);
        if (!pool || (only && pool != only))
            continue;
        hits += lab_load_relaxed(&rs->slot[s].hits);
        for (unsigned o = 0; o < LAB_NR_ORDERS; o++) {
            uintptr_t h = (uintptr_t)lab_load_relaxed(&rs->slot[s].head[o]);
            uint64_t n = lab_load_relaxed(&rs->slot[s].count[o]);
            if (h)
                sig = sig_mix(sig, h ^ (n << 48));
        }
    }
    lab_pool_t *dp = lab_load_relaxed(&default_pool);
    uintptr_t h = (uintptr_t)lab_load_relaxed(&rs->runs);
    if (h && dp && (!only || only == dp))
        sig = sig_mix(sig, h ^ ((uint64_t)lab_load_relaxed(&rs->nruns) << 48));
    return sig ? sig_mix(sig, hits) : 0;
}

static int rooms_mb = 1; /* membarrier works (cleared at its first failure; under rooms_lock) */

/* Take the runs of the sets chained on take_next (of other threads, alive: malloc_trim, or
 * idle for a delay: the purge thread) to the shared lists, without their owners, stamped
 * `stamp`. Under rooms_lock, which keeps takers apart and the sets from leaving (thread exit
 * flushes under it too). A set whose owner is changing it at that moment is skipped. Returns
 * the pages moved. */
static size_t rooms_take(lab_rooms_t *chain, lab_pool_t *only, uint64_t stamp, lab_zone_t *held)
{
    size_t pages = 0;
#if LAB_ROOMS_LOCKED
    for (lab_rooms_t *rs = chain; rs; rs = rs->take_next) {
        int zero = 0;
        if (__atomic_compare_exchange_n(&rs->busy, &zero, 2, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            pages += rooms_move(rs, only, stamp, held);
            __atomic_store_n(&rs->busy, 0, __ATOMIC_RELEASE);
        }
    }
#else
    if (!chain || !rooms_mb)
        return 0;
    for (lab_rooms_t *rs = chain; rs; rs = rs->take_next)
        rs->steal = 1;
    /* the barrier also orders the marks before the loads of busy below, and every change an
     * owner made before it before the taker's reads of the lists */
    bool ok = lab_os_membarrier() == 0;
    if (!ok)
        rooms_mb = 0; /* no such call here (an old kernel, a sandbox): the owners keep their runs */
    for (lab_rooms_t *rs = chain; rs; rs = rs->take_next) {
        if (ok && !rs->busy)
            pages += rooms_move(rs, only, stamp, held);
        /* release: the lists' new state before an owner may enter again */
        __atomic_store_n(&rs->steal, 0, __ATOMIC_RELEASE);
    }
#endif
    return pages;
}

/* A membarrier, rooms_lock held: whether every running thread passed a full barrier (never said in
 * ThreadSanitizer's builds, which know no membarrier). */
static bool rooms_fence_locked(void)
{
    if (rooms_mb && lab_os_membarrier() != 0)
        rooms_mb = 0;
    return rooms_mb && !LAB_ROOMS_LOCKED;
}

bool lab_rooms_fence(void)
{
    lab_lock(&rooms_lock);
    bool ok = rooms_fence_locked();
    lab_unlock(&rooms_lock);
    return ok;
}

/* The purge thread, its idle flag set, before it sleeps for good: does another thread's room
 * hold runs (filled since the watch looked, their owners' loads of the flag too early to see
 * it: bg_room_filled)? The membarrier makes their pushes visible here. Without it (old kernels,
 * sandboxes) the look is made all the same; a push still in its owner's store buffer then waits
 * for the next wake-up. */
bool lab_rooms_filled(bool *fenced)
{
    bool any = false;
    lab_lock(&rooms_lock);
    *fenced = rooms_fence_locked();
    for (lab_rooms_t *rs = rooms_all; rs && !any; rs = rs->next_all)
        any = rs != lab_tls_rooms && rooms_sig(rs, NULL) != 0;
    lab_unlock(&rooms_lock);
    return any;
}

uint64_t lab_rooms_frees_sum(void)
{
    lab_lock(&rooms_lock);
    uint64_t n = frees_ended;
    for (lab_rooms_t *rs = rooms_all; rs; rs = rs->next_all)
        n += lab_load_relaxed(&rs->frees);
    lab_unlock(&rooms_lock);
    return n;
}

size_t lab_pool_rooms_take(lab_pool_t *pool)
{
    lab_rooms_t *chain = NULL;
    lab_lock(&rooms_lock);
    for (lab_rooms_t *rs = rooms_all; rs; rs = rs->next_all)
        if (rs != lab_tls_rooms && rooms_sig(rs, pool)) {
            rs->take_next = chain;
            chain = rs;
        }
    size_t pages = rooms_take(chain, pool, lab_clock_ms(), NULL);
    lab_unlock(&rooms_lock);
    return pages;
}

/* Before the default pool maps a chunk for a caller (zone lock held): other threads' rooms that
 * held the same runs at the last such moment (their owners made no page-run call between two
 * chunks mapped) go to the shared lists, for the caller to use instead of fresh pages. 200
 * threads alive and idle after freeing their page-sized blocks kept 120 MB in their rooms while
 * the main thread faulted as much in: peak RSS twice glibc's (found by review; the background
 * thread takes rooms only once idle a whole purge delay). rooms_lock only tried: it comes after
 * the zone locks (the fork handler's order), but a taker holding it may be waiting for ours.
 * Returns the pages taken. */
size_t lab_rooms_take_stale(lab_pool_t *pool, lab_zone_t *held)
{
    if (!pool->is_default || !lab_lock_try(&rooms_lock))
        return 0;
    lab_rooms_t *chain = NULL;
    for (lab_rooms_t *rs = rooms_all; rs; rs = rs->next_all) {
        if (rs == lab_tls_rooms)
            continue;
        uint64_t sig = rooms_sig(rs, pool);
        if (sig && sig == rs->press_sig) {
            rs->take_next = chain;
            chain = rs;
        }
        rs->press_sig = sig;
    }
    size_t pages = rooms_take(chain, pool, lab_clock_ms(), held);
    lab_unlock(&rooms_lock);
    return pages;
}

uint64_t lab_pool_rooms_return_idle(void)
{
    unsigned delay = lab_pool_default_delay();
    if (delay == ~0u)
        return UINT64_MAX;
    uint64_t now = lab_clock_ms(), next = UINT64_MAX;
    lab_rooms_t *chain = NULL;
    lab_lock(&rooms_lock);
    for (lab_rooms_t *rs = rooms_all; rs; rs = rs->next_all) {
        if (rs == lab_tls_rooms)
            continue;
        /* the same runs for a whole delay: the owner has made no page-run call */
        if (lab_idle_watch(rooms_sig(rs, NULL), &rs->bg_sig, &rs->bg_seen_ms, now, delay, &next)) {
            rs->take_next = chain;
            chain = rs;
        }
    }
    /* stamped as idle a delay already: the purge that follows takes them */
    rooms_take(chain, NULL, now > delay ? now - delay : 0, NULL);
    lab_unlock(&rooms_lock);
    return next;
}

void lab_pool_thread_exit(void)
{
    lab_rooms_t *rs = lab_tls_rooms;
    lab_tls_rooms_dead = 1;
    if (!rs)
        return;
    /* the run room first, with no lock held: under rooms_lock the zone lock may only be tried */
    lab_pool_t *dp = __atomic_load_n(&default_pool, __ATOMIC_ACQUIRE);
    if (dp)
        lab_pool_room_drain(dp);
    lab_tls_rooms = NULL;
    lab_tls_counts = NULL;
    /* under the lock: no taker holds the set meanwhile */
    lab_lock(&rooms_lock);
    rooms_flush(rs);
    __atomic_store_n(&rs->owner_tid, 0, __ATOMIC_RELEASE);
    rs->next_free = rooms_free;
    lab_store_relaxed(&rooms_free, rs);
    lab_store_relaxed(&rooms_in_use, rooms_in_use - 1);
    bool last = rooms_in_use == 0;
    lab_unlock(&rooms_lock);
    /* the rooms' runs are on the shared lists now: a purge may take them */
    lab_pool_t *p = __atomic_load_n(&default_pool, __ATOMIC_ACQUIRE);
    if (p)
        lab_pool_tick(p, true, 0);
    /* maybe the program's last thread, one without a heap: the purge thread looks whether it
     * is alone (purge.c), as after the last heap's thread */
    if (last)
        lab_pool_background_wake();
}

size_t lab_pool_rooms_others(void)
{
    size_t n = lab_load_relaxed(&rooms_in_use), mine = lab_tls_rooms != NULL;
    return n > mine ? n - mine : 0;
}

/* ------------------------------------------------------------------------------------------
 * pools: creation, destruction, the default pool */

static int pool_setup(lab_pool_t *pool, const struct labyrinth_pool_opts *o, bool is_default)
{
    pool->reserve = o ? o->reserve_pages : 0;
    pool->low = o && o->low_pages ? o->low_pages : pool->reserve + 64;
    pool->high = o && o->high_pages ? o->high_pages : pool->low + 256;
    pool->max = o ? o->max_pages : 0;
    pool->delay_ms = o && o->purge_delay_ms ? o->purge_delay_ms : 1000;
    pool->thp = o && (o->flags & LAB_POOL_HUGE);
    pool->thp_after = o ? o->huge_after_pages : 0;
    if ((o && (o->flags & ~LAB_POOL_HUGE)) || pool->low < pool->reserve || pool->high < pool->low ||
        (pool->max && pool->max < pool->reserve))
        return -EINVAL;
    pool->is_default = is_default;
    pool->now_ms = pool->last_purge = lab_clock_ms();
    lab_lock(&lab_pools_lock);
    pool->gen = ++pool_gen_counter;
    pool->id = LAB_ROOM_POOLS;
    for (unsigned i = is_default ? 0 : 1; i < LAB_ROOM_POOLS; i++) {
        if (!pool_slots[i]) {
            lab_store_relaxed(&pool_slots[i], pool);
            pool->id = i;
            break;
        }
        if (is_default)
            break;
    }
    pool->next_pool = lab_pools_all;
    lab_pools_all = pool;
    lab_unlock(&lab_pools_lock);
    /* fill up front: the reserve must be there before anyone needs it */
    lab_zone_t *z = &pool->zone[ZONE_NORMAL];
    lab_lock(&z->lock);
    int err = lab_zone_refill(pool, z, 0);
    lab_unlock(&z->lock);
    return err;
}

static void pool_teardown(lab_pool_t *pool)
{
    lab_lock(&lab_pools_lock);
    for (lab_pool_t **pp = &lab_pools_all; *pp; pp = &(*pp)->next_pool)
        if (*pp == pool) {
            *pp = pool->next_pool;
            break;
        }
    if (pool->id < LAB_ROOM_POOLS && pool_slots[pool->id] == pool)
        lab_store_relaxed(&pool_slots[pool->id], NULL);
    lab_unlock(&lab_pools_lock);
    /* a taker of rooms (malloc_trim, the purge thread, a thread's exit) moving runs of this pool
     * holds rooms_lock: wait for it to end; later ones see the cleared entry (room_pool_live) */
    lab_lock(&rooms_lock);
    lab_unlock(&rooms_lock);
    for (unsigned zi = 0; zi < lab_zones_end(pool); zi++) {
        lab_zone_t *z = lab_zone_at(pool, zi);
        lab_chunk_t *c = z ? z->chunks : NULL;
        while (c) {
            lab_chunk_t *next = c->next;
            if (!c->pm) /* a chunk in the region has no page-map entry (pool.h) */
                lab_pagemap_set(c->base, LAB_CHUNK_SIZE, NULL);
            lab_chunk_unmap((void *)c->base, c->pm); /* runs still in use lose their map entries */
            lab_meta_free(c, sizeof(lab_chunk_t));
            c = next;
        }
    }
    for (lab_chunk_t *c = pool->huge_cache, *next; c; c = next) {
        next = c->next;
        lab_huge_unmap(pool, c);
    }
    /* the room slots of every thread are invalidated by the generation */
    pool->gen = 0;
    lab_meta_free(pool, sizeof *pool);
}

static labyrinth_t default_handle;
static lab_pool_t *default_pool;
static lab_lock_t default_lock = LAB_LOCK_INIT;
static unsigned default_delay_ms = 1000;
static size_t default_thp_mib;

void lab_pool_set_default_delay(unsigned ms)
{
    default_delay_ms = ms;
    lab_pool_t *p = __atomic_load_n(&default_pool, __ATOMIC_ACQUIRE);
    if (p)
        p->delay_ms = ms;
}

unsigned lab_pool_default_delay(void)
{
    lab_pool_t *p = __atomic_load_n(&default_pool, __ATOMIC_ACQUIRE);
    return p ? p->delay_ms : ~0u;
}

void lab_pool_set_default_thp(size_t mib) { default_thp_mib = lab_min(mib, SIZE_MAX >> 20); }

/* preload/: reads the LABYRINTH_* options that shape the malloc pool (absent from the core's
 * own tests). Before the lock: it may make heaps' settings, and it takes the arena's lock. */
lab_internal void lab_options_early(void) __attribute__((weak));

static lab_noinline lab_pool_t *pool_default_init(void)
{
    if (lab_options_early)
        lab_options_early();
    lab_lock(&default_lock);
    if (!default_pool) {
        lab_pool_t *p = lab_meta_alloc(sizeof *p);
        /* a small reserve lets signal handlers and ATOMIC callers get pages when all else fails */
        struct labyrinth_pool_opts o = {.reserve_pages = 32, .low_pages = 64, .high_pages = 512,
                                        .purge_delay_ms = default_delay_ms,
                                        .flags = default_thp_mib ? LAB_POOL_HUGE : 0,
                                        .huge_after_pages = default_thp_mib << (20 - LAB_PAGE_SHIFT)};
        if (p && pool_setup(p, &o, true) == 0) {
            p->delay_ms = default_delay_ms; /* 0 is meaningful here: purge at once */
            default_handle.impl = p;
            default_handle.id = p->id;
            /* release: the pool is complete before other threads see it */
            __atomic_store_n(&default_handle.magic, POOL_MAGIC, __ATOMIC_RELEASE);
            __atomic_store_n(&default_pool, p, __ATOMIC_RELEASE);
        }
    }
    lab_unlock(&default_lock);
    return default_pool;
}

lab_pool_t *lab_pool_default(void)
{
    /* acquire pairs with the release in pool_default_init */
    lab_pool_t *p = __atomic_load_n(&default_pool, __ATOMIC_ACQUIRE);
    return lab_likely(p) ? p : pool_default_init();
}

void lab_pool_walk_runs(lab_pool_t *pool, void (*fn)(const lab_page_t *d, size_t npages, void *arg), void *arg)
{
    for (unsigned zi = 0; zi < lab_zones_end(pool); zi++) {
        lab_zone_t *z = lab_zone_at(pool, zi);
        if (!z)
            continue;
        lab_lock(&z->lock); /* no chunk of the zone unmapped meanwhile */
        for (lab_chunk_t *c = z->chunks; c; c = c->next) {
            for (unsigned i = 0; i < LAB_CHUNK_PAGES;) {
                uint16_t hd = lab_load_relaxed(&c->head[i]);
                unsigned j = i + 1;
                while (j < LAB_CHUNK_PAGES && lab_load_relaxed(&c->head[j]) == hd)
                    j++;
                if (hd == LAB_HEAD_OF(i)) { /* the first page of a run in use */
                    const lab_page_t *d = &c->page[i];
                    size_t n = j - i;
                    /* a page-sized malloc block names its run on its first page only
                       (pool.c: run_set_first): its descriptor has the length (the pages after
                       it are NONE, walked over as such) */
                    if (lab_load_relaxed(&d->h.state) == LAB_PAGE_LARGE && n == 1)
                        n = lab_max(1u, lab_min(lab_load_relaxed(&d->h.npages), LAB_CHUNK_PAGES - i));
                    fn(d, n, arg);
                }
                i = j;
            }
        }
        lab_unlock(&z->lock);
    }
}

void lab_pool_counters(lab_pool_t *pool, struct labyrinth_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    /* both zones: EXCLUSIVE pages free are the pool's to hand out too (found by review: with
     * them counted as in use, one EXCLUSIVE page freed showed a peak of 512 pages) */
    for (unsigned zi = 0; zi < lab_zones_end(pool); zi++) {
        lab_zone_t *z = lab_zone_at(pool, zi);
        for (unsigned o = 0; z && o < LAB_NR_ORDERS; o++)
            out->free_pages[o] += lab_load_relaxed(&z->shared[o].pages);
        out->free_runs_pages += z ? lab_load_relaxed(&z->store_pages) : 0;
    }
    out->free_total = lab_pool_free_all(pool);
    out->reserve_pages = pool->reserve;
    out->reserve_level = lab_min(pool_nr_free(pool), pool->reserve);
    out->low_pages = pool->low;
    out->high_pages = pool->high;
    out->max_pages = pool->max;
    out->mapped_pages = lab_load_relaxed(&pool->mapped_pages);
    lab_pool_note_peak(pool);
    out->peak_used_pages = lab_load_relaxed(&pool->peak_used);
    out->purged_pages = lab_load_relaxed(&pool->purged_pages);
    out->unmapped_chunks = lab_load_relaxed(&pool->unmapped_chunks);
    out->thp_chunks = lab_load_relaxed(&pool->thp_chunks);
    out->thp_demoted = lab_load_relaxed(&pool->thp_demoted);
    out->hits_shared = lab_load_relaxed(&pool->hits_shared);
    out->hits_reserve = lab_load_relaxed(&pool->hits_reserve);
    out->hits_slow = 0;
    for (unsigned zi = 0; zi < lab_zones_end(pool); zi++)
        out->hits_slow += lab_zone_at(pool, zi) ? lab_load_relaxed(&lab_zone_at(pool, zi)->hits) : 0;
    out->refills = lab_load_relaxed(&pool->refills);
    out->failures = lab_load_relaxed(&pool->failures);
    out->hits_room = lab_load_relaxed(&pool->room_hits_dead);
    lab_lock(&rooms_lock);
    for (lab_rooms_t *rs = rooms_all; rs; rs = rs->next_all)
        if (pool->id < LAB_ROOM_POOLS && rs->slot[pool->id].pool == pool && rs->slot[pool->id].gen == pool->gen)
            out->hits_room += lab_load_relaxed(&rs->slot[pool->id].hits);
    lab_unlock(&rooms_lock);
}

/* ------------------------------------------------------------------------------------------
 * fork */

void lab_pool_fork_prepare(void)
{
    lab_lock(&default_lock);
    lab_lock(&lab_pools_lock);
    for (lab_pool_t *p = lab_pools_all; p; p = p->next_pool) {
        for (unsigned zi = 0; zi < lab_zones_end(p); zi++)
            if (lab_zone_at(p, zi))
                lab_lock(&lab_zone_at(p, zi)->lock);
        lab_lock(&p->huge_lock);
    }
    lab_lock(&rooms_lock);
    lab_lock(&lab_meta_lock);
}

void lab_pool_fork_parent(void)
{
    lab_unlock(&lab_meta_lock);
    lab_unlock(&rooms_lock);
    for (lab_pool_t *p = lab_pools_all; p; p = p->next_pool) {
        lab_unlock(&p->huge_lock);
        for (unsigned zi = LAB_ZONES; zi-- > 0;)
            if (lab_zone_at(p, zi))
                lab_unlock(&lab_zone_at(p, zi)->lock);
    }
    lab_unlock(&lab_pools_lock);
    lab_unlock(&default_lock);
}

bool lab_pool_room_busy(void)
{
    lab_rooms_t *rs = lab_tls_rooms;
    return rs && rs->busy;
}

void lab_pool_fork_child(void)
{
    lab_locks_held = 0; /* the locks prepare took are reset below, not unlocked */
    lab_lock_reset(&lab_meta_lock);
    lab_lock_reset(&rooms_lock);
    for (lab_pool_t *p = lab_pools_all; p; p = p->next_pool) {
        lab_lock_reset(&p->huge_lock);
        for (unsigned zi = 0; zi < lab_zones_end(p); zi++)
            if (lab_zone_at(p, zi))
                lab_lock_reset(&lab_zone_at(p, zi)->lock);
    }
    lab_lock_reset(&lab_pools_lock);
    lab_lock_reset(&default_lock);
    /* the purge thread is not copied into the child: the next allocation slow path starts one */
    lab_bg.state = BG_OFF;
    lab_bg.idle = 0;
    lab_bg.retry_ms = 0;
    /* rooms of threads that do not exist in the child: hand their runs back, and the sets to the
     * free list, rebuilt from all (skip a set that was being changed when the fork happened: its
     * list may be half-written; left off the free list, it was a set lost for every fork) */
    lab_store_relaxed(&rooms_free, NULL);
    rooms_in_use = 0;
    for (lab_rooms_t *rs = rooms_all; rs; rs = rs->next_all) {
        rs->owner_tid = 0; /* the parent's ids: none is this process's */
        rooms_in_use += rs == lab_tls_rooms || rs->busy; /* (those that stay out of the free list) */
        if (rs != lab_tls_rooms && !rs->busy) {
            rooms_flush(rs);
            rs->next_free = rooms_free;
            lab_store_relaxed(&rooms_free, rs);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * the public API */

labyrinth_t *labyrinth_default(void)
{
    lab_pool_thread_key_init();
    /* the pool before the thread's rooms: the first block of metadata, it starts a page, as its
     * layout wants (pool_impl.h: ZBIN); after the rooms it started 1 280 bytes in, and the
     * store's lists of short runs reached its second page */
    lab_pool_t *p = lab_pool_default();
    lab_rooms_get(false);
    return p ? &default_handle : NULL;
}

/* Whether p is a pool set up and not torn down (on lab_pools_all). */
static bool pool_is_live(const void *p)
{
    bool live = false;
    lab_lock(&lab_pools_lock);
    for (lab_pool_t *q = lab_pools_all; q && !live; q = q->next_pool)
        live = q == p;
    lab_unlock(&lab_pools_lock);
    return live;
}

int labyrinth_pool_init(labyrinth_t *pool, const struct labyrinth_pool_opts *opts)
{
    if (!pool)
        return -EINVAL;
    /* a handle that holds a live pool: a second init replaced it, and the first pool, its
     * pages and its room slot were lost for good (found by review) */
    if (__atomic_load_n(&pool->magic, __ATOMIC_ACQUIRE) == POOL_MAGIC && pool_is_live(pool->impl))
        return -EBUSY;
    lab_pool_thread_key_init();
    lab_pool_t *p = lab_meta_alloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    int err = pool_setup(p, opts, false);
    if (err) {
        pool_teardown(p);
        return err;
    }
    pool->impl = p;
    pool->id = p->id;
    lab_rooms_get(false);
    /* release: the pool is complete before the magic says so */
    __atomic_store_n(&pool->magic, POOL_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

void labyrinth_pool_destroy(labyrinth_t *pool)
{
    lab_pool_t *p = lab_pool_of(pool);
    if (!p || p->is_default)
        return;
    __atomic_store_n(&pool->magic, 0, __ATOMIC_RELEASE);
    pool->impl = NULL;
    pool_teardown(p);
}

size_t labyrinth_pool_trim(labyrinth_t *pool)
{
    lab_pool_t *p = lab_pool_of(pool);
    if (!p)
        return 0;
    lab_pool_room_drain(p);
    lab_pool_rooms_take(p);
    return lab_pool_purge(p, true);
}

int labyrinth_pool_stats(labyrinth_t *pool, struct labyrinth_pool_stats *out)
{
    lab_pool_t *p = lab_pool_of(pool);
    if (!p || !out)
        return -EINVAL;
    lab_pool_counters(p, out);
    return 0;
}

const char *labyrinth_version(void) { return "0.1.0"; }
