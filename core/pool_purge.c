/* pool_purge.c — giving the pool's idle pages back (layer 2): purging the store's written runs
 * and unmapping idle chunks and cached huge mappings after the delay, the tick of the slow paths
 * that drives it, and the background purge thread's rounds (the thread itself: preload/purge.c).
 * Calls core/os, lock.h and the pool's other files (pool_impl.h) only. */
#define _GNU_SOURCE
#include "pool_impl.h"

/* Purge store run d of b pages (zone lock held): it reads zero from now on. False if the kernel
 * refused (a locked range: mlock, mlockall; MADV_DONTNEED stops at the first locked mapping):
 * then the run keeps its data and stays dirty, or calloc and LAB_GFP_ZERO would hand out what
 * its last block held without clearing it, and its stamp moves on, so that the purge does not
 * try it again before another delay (a program that locks all its memory keeps it, as under
 * glibc, whose trim is refused the same way). */
bool lab_store_run_purge(lab_pool_t *pool, lab_page_t *d, unsigned b)
{
    lab_chunk_t *c = lab_desc_chunk(d);
    if (c->thp) {
        /* the purge splits the huge page: small pages from now on, and khugepaged told to keep
         * away, or it would fill the purged pages in again */
        lab_os_madvise((void *)c->base, LAB_CHUNK_SIZE, MADV_NOHUGEPAGE);
        c->thp = 0;
        lab_add_relaxed(&pool->thp_demoted, 1);
    }
    if (lab_os_purge((void *)lab_desc_addr(d), (size_t)b << LAB_PAGE_SHIFT) != 0) {
        d->stamp = lab_load_relaxed(&pool->now_ms);
        return false;
    }
    /* counted at once: whoever sees the pages gone sees them counted */
    lab_add_relaxed(&pool->purged_pages, b);
    lab_zone_t *z = lab_zone_at(pool, c->zone);
    lab_store_relaxed(&z->store_dirty, z->store_dirty - *lab_run_ndirty(d));
    *lab_run_ndirty(d) = 0;
    lab_dirty_mark(c, (unsigned)(d - c->page), b, false);
    d->h.clean = 1;
    return true;
}

/* Pages purged per hold of a zone lock: allocations that need the lock wait at most one batch of
 * madvise (64 MiB, a few milliseconds), not a whole pass over a large pool. */
#define PURGE_BATCH_PAGES 16384u

/* Purge the free runs of z idle past the delay (force: every dirty one), then unmap the chunks
 * idle twice as long. *due (if not NULL) is lowered to the time the first run or chunk left
 * alone becomes due. */
static size_t zone_purge(lab_pool_t *pool, lab_zone_t *z, unsigned zi, bool force, uint64_t *due)
{
    size_t purged = 0;
    uint64_t now = lab_load_relaxed(&pool->now_ms), delay = pool->delay_ms;
    for (;;) {
        size_t batch = 0;
        bool more = false;
        lab_lock(&z->lock);
        lab_zone_drain_shared(pool, z);
        for (unsigned b = bin_find(z, 1); b && !more; b = bin_find(z, b + 1)) {
            for (lab_page_t *d = ZBIN(z, b); d; d = d->next) {
                if (d->h.clean)
                    continue;
                if (!force && now < d->stamp + delay) {
                    if (due && d->stamp + delay < *due)
                        *due = d->stamp + delay;
                    continue;
                }
                if (batch >= PURGE_BATCH_PAGES) {
                    more = true; /* let waiting allocations in, then start the walk again */
                    break;
                }
                if (lab_store_run_purge(pool, d, b))
                    batch += b;
            }
        }
        /* unmap whole free chunks idle past twice the delay, keeping HIGH pages free */
        if (!more)
            lab_zone_unmap_free_chunks(pool, z, zi, force ? 0 : 2 * delay, zi == ZONE_NORMAL ? pool->high : 0, due);
        lab_unlock(&z->lock);
        purged += batch;
        if (!more)
            return purged;
    }
}

static size_t pool_purge(lab_pool_t *pool, bool force, uint64_t *due)
{
    if (force) /* malloc_trim: every free page reads zero again, a new start for lab_pool_zero_pages */
        lab_pool_zero_ask_reset();
    uint64_t t = lab_clock_ms();
    lab_store_relaxed(&pool->now_ms, t);
    lab_store_relaxed(&pool->last_purge, t);
    size_t purged = 0;
    for (unsigned zi = 0; zi < lab_zones_end(pool); zi++)
        if (lab_zone_at(pool, zi))
            purged += zone_purge(pool, lab_zone_at(pool, zi), zi, force, due);
    lab_lock(&pool->huge_lock);
    for (lab_chunk_t **pp = &pool->huge_cache; *pp;) {
        lab_chunk_t *c = *pp;
        if (force || t >= c->idle_since + pool->delay_ms) {
            *pp = c->next;
            lab_store_relaxed(&pool->huge_cache_bytes, pool->huge_cache_bytes - c->size);
            purged += c->size >> LAB_PAGE_SHIFT;
            lab_add_relaxed(&pool->purged_pages, c->size >> LAB_PAGE_SHIFT);
            lab_huge_unmap(pool, c);
        } else {
            if (due && c->idle_since + pool->delay_ms < *due)
                *due = c->idle_since + pool->delay_ms;
            pp = &c->next;
        }
    }
    lab_unlock(&pool->huge_lock);
    return purged;
}

size_t lab_pool_purge(lab_pool_t *pool, bool force) { return pool_purge(pool, force, NULL); }

/* ------------------------------------------------------------------------------------------
 * the background purge: one thread (preload/purge.c) for the default pool, started lazily */

lab_bg_t lab_bg;

__thread int lab_pool_handler_depth;
__thread unsigned lab_pool_handler_nested;

/* The records of the calling thread's innermost running handlers (pool.h), by depth; deeper ones
 * are counted only (nested that deep, a longjmp out of them is seen through the deepest record,
 * which stands for them: its kind is raised to theirs, and its undo, a return to the state it
 * began in, takes back what they did too). Each holds that state: the heap, the signal heaps
 * held (lab_sig_mine), lab_pool_handler_nested and lab_lock_quiet. Undone, a handler left by
 * longjmp is set back to it, whatever its wrapper had got to; taken back count by count, a
 * handler left before its wrapper counted or after it counted down (a nested one's longjmp in
 * that window) was taken back twice or not at all, and its thread ended on a signal heap, or on
 * none, for good (preload.signal_longjmp's first nested mode, a 20 us SA_NODEFER timer: 5 runs
 * in 6). */
#define HANDLER_RECORDS 8 /* (static TLS: 48 bytes each; dlopen of the library needs it small) */
static __thread struct handler_rec {
    uintptr_t frame, alt_lo, alt_hi;
    void *prev;      /* the heap it began on (what the undo gets) */
    uint64_t mine;   /* the signal heaps held then */
    uint16_t nested; /* lab_pool_handler_nested then */
    int16_t quiet;   /* lab_lock_quiet then */
    uint8_t kind;    /* LAB_HANDLER_* */
} handler_rec[HANDLER_RECORDS];

/* The highest frame of the handlers counted past the records since their count was last 0 (not
 * on an alternate stack): the deepest record stands for them only once they are all left. */
static __thread uintptr_t handler_beyond_hi;

static void (*handler_undo)(void *prev, uint64_t mine); /* lab_pool_set_handler_undo */

void lab_pool_set_handler_undo(void (*fn)(void *prev, uint64_t mine))
{
    if (lab_load_relaxed(&handler_undo) != fn) /* (no page written when it is set: a fork child's
                                                   copy stays shared) */
        lab_store_relaxed(&handler_undo, fn);
}

/* Whether the handler of record r has been left by longjmp, as seen from stack address sp. */
static inline bool handler_left(const struct handler_rec *r, uintptr_t sp)
{
    if (r->alt_lo != r->alt_hi && (sp < r->alt_lo || sp >= r->alt_hi))
        return true;
    return sp > r->frame;
}

/* Record r's handler set back to the state it began in. A PLAIN one changed nothing of it (its
 * wrapper raises no count, and it stays on the thread's heap): its count of nested handlers is
 * set back, which only handlers above it changed, and lab_lock_quiet is left alone, which an
 * allocator call of this thread may hold raised while it drops such a record
 * (lab_pool_in_handler within labyrinth_alloc_pages' ATOMIC calls: set back to the record's,
 * the call's own decrement took it below 0 for good, and no unlock woke a waiter again). */
static void handler_rewind(const struct handler_rec *r)
{
    void (*fn)(void *, uint64_t) = lab_load_relaxed(&handler_undo);
    if (r->kind != LAB_HANDLER_PLAIN) {
        if (fn)
            fn(r->prev, r->mine);
        lab_lock_quiet = r->quiet;
    }
    lab_pool_handler_nested = r->nested;
}

/* Drop the records of handlers left by longjmp, as seen from code running at stack address sp;
 * returns the depth left. A handler that interrupted the allocator (HARD) holds the rest; one
 * that only looked as if it had (SOFT) is undone when `undo` (a safe point: no heap in use),
 * else holds them too. A signal landing in here runs its handler on the records as they are
 * (each step leaves them whole) and leaves them as it found them. */
static int handler_drop_left(uintptr_t sp, bool undo)
{
    int d = lab_pool_handler_depth;
    while (d > 0) {
        /* past the records, the deepest one stands for those beyond it: they began while it ran,
         * so a longjmp that left it left them too (found by review: five nested handlers and a
         * longjmp out of them all held the thread as in a handler for good) */
        int top = d <= HANDLER_RECORDS ? d - 1 : HANDLER_RECORDS - 1;
        struct handler_rec *r = &handler_rec[top];
        if (r->kind == LAB_HANDLER_HARD || !handler_left(r, sp))
            break;
        /* one past the records may have begun after the deepest record's handler was left, a
         * nested handler that looked for no left ones: while it runs, none goes (found by a
         * trace of preload.signal_longjmp's SA_NODEFER mode: its records dropped under it, the
         * thread ended on none for good, every malloc NULL) */
        if (d > HANDLER_RECORDS && sp <= lab_load_relaxed(&handler_beyond_hi))
            break;
        if (r->kind == LAB_HANDLER_SOFT && (!undo || !lab_load_relaxed(&handler_undo)))
            break;
        handler_rewind(r);
        lab_pool_handler_depth = d = top;
    }
    return d;
}

/* The record is written, then counted, then checked: a handler that landed between the two took
 * the same slot, and went (it ran to its end: one that left by longjmp left this one too) with
 * the count back where it found it, its record in the slot; the slot is written again. A handler
 * landing while the slot holds such a record may take it as left and drop it: nothing had
 * changed since that record began, so its undo changes nothing, and the check sees the slot is
 * not this one's. */
unsigned lab_pool_handler_enter(uintptr_t frame, uintptr_t alt_lo, uintptr_t alt_hi, unsigned kind, void *prev,
                                uint64_t mine)
{
    int d = lab_pool_handler_depth;
    unsigned nested = lab_pool_handler_nested;
    if (d >= HANDLER_RECORDS) {
        /* one beyond the records: the deepest stands for it (handler_drop_left) */
        if (kind > handler_rec[HANDLER_RECORDS - 1].kind)
            handler_rec[HANDLER_RECORDS - 1].kind = (uint8_t)kind;
        lab_barrier();
        lab_pool_handler_depth = d + 1;
        lab_barrier();
        /* after the count: a handler nested before it raised the mark for itself only (a frame
         * below this one) or for a group of its own (then this one set it last) */
        uintptr_t hi = alt_lo != alt_hi ? 0 : frame;
        lab_store_relaxed(&handler_beyond_hi,
                          d == HANDLER_RECORDS ? hi : lab_max(hi, lab_load_relaxed(&handler_beyond_hi)));
    } else {
        struct handler_rec r = {frame, alt_lo, alt_hi, prev, mine, (uint16_t)nested, (int16_t)lab_lock_quiet,
                                (uint8_t)kind};
        for (;;) {
            handler_rec[d] = r;
            lab_barrier();
            lab_pool_handler_depth = d + 1;
            lab_barrier();
            if (handler_rec[d].frame == frame)
                break;
        }
    }
    lab_barrier();
    lab_pool_handler_nested = nested + (kind != LAB_HANDLER_PLAIN);
    return nested;
}

int lab_pool_handler_recover(uintptr_t sp) { return handler_drop_left(sp, true); }

/* Drop the records above the one of `frame` (handlers left by longjmp into its handler's body),
 * undone: the thread is back in the state its handler ran in. Returns the depth of its record. */
static int handler_drop_above(uintptr_t frame)
{
    int d = lab_pool_handler_depth;
    while (d > 0) {
        int top = d - 1;
        if (top >= HANDLER_RECORDS || handler_rec[top].frame == frame)
            return top;
        /* (no allocator call of this thread is under way here) */
        if (handler_rec[top].kind != LAB_HANDLER_HARD)
            handler_rewind(&handler_rec[top]);
        lab_pool_handler_depth = d = top;
    }
    return 0;
}

void lab_pool_handler_returned(uintptr_t frame) { (void)handler_drop_above(frame); }

void lab_pool_handler_leave(uintptr_t frame, unsigned nested)
{
    int d = handler_drop_above(frame);
    /* the wrapper has counted back down: this is the count it began with */
    lab_pool_handler_nested = nested;
    lab_barrier();
    lab_pool_handler_depth = d;
}

void lab_pool_handler_thread_exit(void)
{
    /* no handler of the thread runs again: every SOFT one is undone, left or not (one that ends
     * the thread from inside runs no more either) */
    int d = lab_pool_handler_depth;
    while (d > 0) {
        int top = d <= HANDLER_RECORDS ? d - 1 : HANDLER_RECORDS - 1;
        if (handler_rec[top].kind == LAB_HANDLER_HARD)
            break;
        handler_rewind(&handler_rec[top]);
        lab_pool_handler_depth = d = top;
    }
}

lab_noinline bool lab_pool_in_handler_slow(void)
{
    return handler_drop_left((uintptr_t)__builtin_frame_address(0), false) != 0;
}

lab_noinline void lab_pool_handler_safe_point(void)
{
    (void)handler_drop_left((uintptr_t)__builtin_frame_address(0), true);
}

void lab_pool_background_init(bool (*start)(void), size_t start_pages)
{
    lab_bg.start_pages = start_pages;
    /* release: start_pages is set before a thread that sees the function uses it */
    __atomic_store_n(&lab_bg.start, start, __ATOMIC_RELEASE);
}

static lab_noinline lab_cold void bg_start(uint64_t now)
{
    /* acquire pairs with the release in lab_pool_background_init */
    bool (*start)(void) = __atomic_load_n(&lab_bg.start, __ATOMIC_ACQUIRE);
    int off = BG_OFF;
    if (!start ||
        !__atomic_compare_exchange_n(&lab_bg.state, &off, BG_STARTING, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    bool ok = start();
    if (!ok) {
        lab_bg.backoff_ms = lab_bg.backoff_ms ? lab_min(lab_bg.backoff_ms * 2, (uint64_t)64000) : 1000;
        lab_store_relaxed(&lab_bg.retry_ms, now + lab_bg.backoff_ms);
    }
    /* release: the attempt's writes are visible to whoever sees its outcome */
    __atomic_store_n(&lab_bg.state, ok ? BG_RUNNING : BG_OFF, __ATOMIC_RELEASE);
}

/* A free made pages visible to the purge: wake the thread if it sleeps with nothing to wait for. */
void lab_bg_kick(void)
{
    /* seq_cst, and seq_cst below: pairs with the thread's store of idle and re-read of frees in
     * lab_pool_background_round (Dekker): either it sees this free, or this free sees it idle */
    __atomic_fetch_add(&lab_bg.frees, 1, __ATOMIC_SEQ_CST);
    int one = 1;
    if (__atomic_load_n(&lab_bg.idle, __ATOMIC_SEQ_CST) &&
        __atomic_compare_exchange_n(&lab_bg.idle, &one, 0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        /* relaxed: the futex compares values, and the pages were published by the free itself */
        lab_add_relaxed(&lab_bg.seq, 1);
        lab_os_futex_wake(&lab_bg.seq, 1);
    }
}

void lab_bg_free_seen(void)
{
    lab_rooms_t *rs = lab_tls_rooms;
    /* acquire: pairs with the release that sets mb, after the thread's store of idle */
    if (lab_likely(rs != NULL) && __atomic_load_n(&lab_bg.mb, __ATOMIC_ACQUIRE)) {
        lab_store_relaxed(&rs->frees, rs->frees + 1);
        lab_barrier();
        if (lab_unlikely(lab_load_relaxed(&lab_bg.idle)))
            lab_bg_kick();
        return;
    }
    lab_bg_kick();
}

void lab_pool_background_poke(void)
{
    /* counted always (the thread compares the count before it sleeps for good); a wake-up
     * (system call) only when it sleeps with nothing to wait for, which it does only after a
     * whole delay without a poke (preload/purge.c), so pokes cannot keep it busy */
    if (__atomic_load_n(&lab_bg.state, __ATOMIC_ACQUIRE) == BG_RUNNING && !lab_pool_in_handler())
        lab_bg_kick();
}

void lab_pool_background_wake(void)
{
    /* whatever the thread waits for: the count first, which its futex wait compares */
    if (__atomic_load_n(&lab_bg.state, __ATOMIC_ACQUIRE) == BG_RUNNING && !lab_pool_in_handler()) {
        lab_add_relaxed(&lab_bg.seq, 1);
        lab_os_futex_wake(&lab_bg.seq, 1);
    }
}

void lab_pool_background_set_mb(bool on) { __atomic_store_n(&lab_bg.mb, on, __ATOMIC_RELEASE); }

static __thread unsigned long tls_peak_looks; /* (tests: the thread's own, no shared line) */
unsigned long lab_pool_peak_looks(void) { return tls_peak_looks; }

uint64_t lab_pool_background_gen(void)
{
    return __atomic_load_n(&lab_bg.frees, __ATOMIC_SEQ_CST) + lab_rooms_frees_sum();
}

void lab_pool_background_round(uint64_t wake_ms, uint64_t gen)
{
    lab_pool_t *pool = lab_pool_default(); /* NULL only on ENOMEM */
    static bool mb_tried; /* (the thread's own) */
    if (!mb_tried) { /* frees count in their sets from the first round on, if a membarrier works */
        mb_tried = true;
        if (lab_rooms_fence())
            __atomic_store_n(&lab_bg.mb, 1, __ATOMIC_RELEASE);
    }
    int seq = lab_load_relaxed(&lab_bg.seq);
    uint64_t due = UINT64_MAX, slack = UINT64_MAX;
    if (pool && pool->delay_ms != ~0u) {
        pool_purge(pool, false, &due);
        slack = pool->delay_ms / 4;
    }
    /* user pools too: one that goes idle after a burst makes no call that would purge it. The
     * list's lock is held through each purge, so labyrinth_pool_destroy waits for it to end. */
    lab_lock(&lab_pools_lock);
    for (lab_pool_t *p = lab_pools_all; p; p = p->next_pool)
        if (!p->is_default && p->delay_ms != ~0u) {
            pool_purge(p, false, &due);
            slack = lab_min(slack, (uint64_t)p->delay_ms / 4);
        }
    lab_unlock(&lab_pools_lock);
    if (due == UINT64_MAX && wake_ms != UINT64_MAX) {
        /* nothing dirty, but the caller looks again then: not idle, so frees and pokes are only
         * counted meanwhile (no wake-up each) */
        lab_os_futex_wait_ms(&lab_bg.seq, seq, wake_ms);
        return;
    }
    if (due == UINT64_MAX) {
        /* nothing dirty: sleep until a free or poke says otherwise (see lab_bg_kick) */
        bool was_mb = lab_load_relaxed(&lab_bg.mb), fenced;
        __atomic_store_n(&lab_bg.idle, 1, __ATOMIC_SEQ_CST);
        /* the fence first, then the counts: a free that counted itself in its set (mb) either
         * read idle after the fence, and wakes the thread, or its count is seen below */
        bool filled = lab_rooms_filled(&fenced);
        if (fenced != was_mb) /* from now on (release: after idle) */
            __atomic_store_n(&lab_bg.mb, fenced, __ATOMIC_RELEASE);
        if (!filled && lab_pool_background_gen() == gen)
            /* no fence this time after frees that counted on one: a second, not for good */
            lab_os_futex_wait_ms(&lab_bg.seq, seq, fenced || !was_mb ? UINT64_MAX : 1000);
        lab_store_relaxed(&lab_bg.idle, 0);
        return;
    }
    /* wake a little after the first run is due (a quarter of the shortest delay), so that runs
     * freed close together go in one round (the coarse clock also runs up to a few ms behind) */
    uint64_t now = lab_clock_ms();
    lab_os_futex_wait_ms(&lab_bg.seq, seq, lab_min((due > now ? due - now : 0) + slack + 4, wake_ms));
}

/* Called on DEFAULT slow paths (allocation) and on frees that reach the shared lists or the store:
 * refresh the coarse clock and the peak; start the purge thread (allocation only) or wake it
 * (frees only); without a thread, purge what is due at most every delay/2. */
#define PEAK_NOTE_PAGES ((size_t)1 << (20 - LAB_PAGE_SHIFT))

void lab_pool_tick_slow(lab_pool_t *pool, bool from_free, size_t pages)
{
    uint64_t now = lab_clock_ms();
    /* the pool's line is shared by every thread (its shared lists' free count, written at
     * every push and pop of them): now_ms on it is read and written at most once a clock tick
     * per thread (lab_clock_ms reads the coarse clock: its millisecond moves once a kernel
     * tick, 1 to 10 ms), not at every call. The peak
     * only after allocations, which alone raise it, and at most once a tick too, unless the
     * thread has handed out a sixty-fourth of the peak (at least 1 MiB) since it last looked:
     * its sum reads every zone's count of free pages, which the zones' threads write at every
     * carve and free (`wl pagemix`, each thread's blocks in a zone of its own, spent a tenth of
     * its time there, a cache miss a call). A peak held and given back within a tick is
     * missed by less than that much a thread; a stats read looks at it too. */
    static __thread uint64_t tls_now;
    static __thread size_t tls_peak_pages, tls_peak_step; /* (the step as of the last look) */
    bool new_ms = tls_now != now;
    if (new_ms) {
        tls_now = now;
        if (lab_load_relaxed(&pool->now_ms) < now)
            lab_store_relaxed(&pool->now_ms, now);
    }
    /* net of frees (down to 0): still at least what the thread's calls added to the pages in
     * use since it last looked, so the bound above holds; a thread that gives back as much as
     * it takes (wl pagemix: blocks of 33 KiB-1 MiB replaced at random, the step 1.4 MiB) looks
     * about every twelfth allocation instead of every third */
    if (from_free)
        tls_peak_pages = tls_peak_pages > pages ? tls_peak_pages - pages : 0;
    else
        tls_peak_pages += pages;
    if (!from_free && (new_ms || tls_peak_pages >= tls_peak_step)) {
        tls_peak_looks++;
        tls_peak_pages = 0;
        lab_pool_note_peak(pool);
        tls_peak_step = lab_max(PEAK_NOTE_PAGES, lab_load_relaxed(&pool->peak_used) / 64);
    }
    /* the thread purges every pool; a user pool that maps as much as the malloc pool must
     * before it starts one may start it too (its allocation slow path holds no arena state) */
    /* acquire pairs with the release in bg_start */
    int st = __atomic_load_n(&lab_bg.state, __ATOMIC_ACQUIRE);
    if (st == BG_RUNNING) {
        /* an allocation wakes a thread asleep with nothing to do too: the runs it brings into
         * a room may stay there, its owner idle, with no free ever reaching the pool (the
         * thread then watches the rooms, lab_pool_rooms_return_idle). A plain load first: the
         * flag's line is read-mostly, and a wake-up missed in the race with the thread's going
         * to sleep waits for the next slow allocation or free */
        if (from_free)
            lab_bg_free_seen();
        else if (lab_load_relaxed(&lab_bg.idle))
            lab_bg_kick();
        return; /* the thread purges */
    }
    if (lab_unlikely(st == BG_OFF && !from_free && !lab_locks_held &&
                     lab_load_relaxed(&pool->mapped_pages) >= lab_bg.start_pages &&
                     now >= lab_load_relaxed(&lab_bg.retry_ms) && lab_load_relaxed(&lab_bg.start)))
        bg_start(now);
    uint64_t last = lab_load_relaxed(&pool->last_purge);
    if (lab_locks_held || pool->delay_ms == ~0u || now < last + pool->delay_ms / 2 + 1)
        return;
    /* one purger at a time; the others go on */
    if (__atomic_compare_exchange_n(&pool->last_purge, &last, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        lab_pool_purge(pool, false);
}
