/* arena.c — thread-exclusive heaps and their spans (layer 3): span refill and carving, remote-free
 * collection, the full/notify protocol, span release, heap creation, abandonment at thread exit,
 * adoption by new threads, fork. Calls core/pool and below.
 *
 * Protocol of a full span: when the owner finds a span exhausted it CASes remote from 0 to
 * NOTIFY and takes the span off its class list, where it waits (span_wait) for an eighth of its
 * blocks to be freed locally, or for the first remote free that sees NOTIFY: that one clears it
 * and pushes the span on the owner heap's inbox; the owner relists spans from its inbox on its
 * next slow path. Only the owner ever touches a span's lists and counts. */
#include "arena.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <limits.h>
#include <sys/auxv.h>
#include <sys/mman.h>

uintptr_t lab_free_key = 0x9e3779b97f4a7c15u; /* replaced by a random value at the first heap */
lab_span_t lab_span_empty; /* free == NULL: sends every first call to the slow path */
lab_heap_t lab_heap_empty = {.direct = {[0 ... LAB_SLOTS_ALL - 1] = &lab_span_empty}};
__thread lab_heap_t *lab_tls_heap = &lab_heap_empty;
/* The thread's heap was retired at its exit (lab_heap_thread_exit). Frees after that (glibc frees
 * its own per-thread buffers after every key destructor has run) go straight to their spans: a
 * heap taken for them would never be retired again. */
static __thread char heap_retired;

/* The rounds of key destructors our destructor has run in on this thread (heap_destructor). It
 * sets our key again each time, up to glibc's last round (PTHREAD_DESTRUCTOR_ITERATIONS), so
 * that the count is the round's number. Not in ThreadSanitizer's builds: it ends a thread's
 * own state in the last round, and our destructor's call there, even one that did nothing,
 * stopped the unit tests ("CHECK failed ... thr->slot"); there the count is of retirements,
 * below the round's number when a round had nothing to retire. */
static __thread unsigned char key_rounds;
static pthread_key_t heap_key;     /* heap_destructor's */
static int heap_key_state;         /* 0 none, 1 creating, 2 ready */

/* A heap taken after the retirement sets our key again, so that the next round of key
 * destructors retires it once more; the last round has no next one, and a heap taken there
 * stayed with the ended thread for good, with the spans it had listed, out of malloc_trim's
 * reach: a program whose threads allocate in that round grew with each thread (found by
 * review: 1 000 threads one after another, 1 001 heaps, RSS 389 MB against 3 MB). There, a heap
 * is taken for each block alone and retired again at once; earlier rounds keep theirs until our
 * destructor's next call (an allocation each way was 50 times slower, and blocks freed after
 * it left their spans to the next thread: review). Not in a signal handler (a retirement is no
 * handler's work). */
bool lab_heap_past_last_round(void)
{
    return key_rounds >= PTHREAD_DESTRUCTOR_ITERATIONS && !lab_pool_in_handler();
}

static void heap_retire(lab_heap_t *h);

/* A small block asked for in the last round, after our destructor: a heap taken for it alone
 * and retired again at once (a full retirement each time: such blocks are few). */
static lab_noinline void *alloc_past_last_round(unsigned cls)
{
    lab_heap_t *h = lab_heap_get_slow();
    if (!h) {
        errno = ENOMEM;
        return NULL;
    }
    void *b = lab_load_relaxed(&lab_secure) ? lab_heap_alloc_secure(h, cls) : lab_heap_alloc_small_slow(h, cls);
    int e = errno;
    heap_retire(h);
    errno = e;
    return b;
}

/* The heap a signal handler gets when no signal heap is free: every allocation fails. Zero, in
 * .lbss, and set up by the first handler that finds no signal heap (heap_none_setup): initialised
 * data, its 133 slots were relocated by the dynamic loader in every process, a page written (and
 * the small variables of .bss pushed onto a page of their own), one page fault more at start. */
lab_heap_t lab_heap_none lab_big_bss;

static lab_lock_t heaps_lock = LAB_LOCK_INIT;
static lab_heap_t *heaps_all, *heaps_abandoned; /* ordinary heaps (signal heaps: sig_heaps) */

#define SIG_HEAPS 64
static lab_heap_t *sig_heaps[SIG_HEAPS];
/* bit i: sig_heaps[i] is set up (atomic; set with release by the handler that set it up). A
 * signal heap is made (its memory reserved) where handlers are installed but set up by the first
 * handler that takes it: its page is not touched before (three heaps, three page faults, in
 * every process that installs a handler and never takes a signal). Until then it is on no walk:
 * an untouched heap holds nothing. */
static uint64_t sig_ready;

/* A walk over every heap: the ordinary ones from next (heaps_all, or its head read under the
 * lock), then the signal heaps set up. Heaps are never freed, so a walk needs no lock. */
typedef struct {
    lab_heap_t *next;
    unsigned sig;
} heap_walk_t;

static lab_heap_t *heap_walk(heap_walk_t *w)
{
    lab_heap_t *h = w->next;
    if (h) {
        w->next = h->next_all;
        return h;
    }
    if (w->sig >= SIG_HEAPS)
        return NULL;
    /* acquire: pairs with the release in sig_heap_setup */
    uint64_t ready = __atomic_load_n(&sig_ready, __ATOMIC_ACQUIRE) >> w->sig;
    if (!ready)
        return NULL;
    w->sig += (unsigned)__builtin_ctzll(ready);
    return sig_heaps[w->sig++];
}

int lab_secure;
size_t lab_kept_max = LAB_KEPT_MAX;
uint64_t lab_class_div[LAB_NR_CLASSES];
/* every value the entry's class bits can take: those of no whole span's class stay zero (every
 * offset refused) */
lab_whole_geom_t lab_class_whole[LAB_FMAP_CLS_MASK + 1];
_Static_assert(LAB_DIRECT_CLASSES - 1 <= LAB_FMAP_CLS_MASK, "a whole span's class fits its fast-map entries");
static uint64_t remote_frees_heapless; /* remote frees of threads without a live heap (atomic) */

/* Spans of 32 KiB up to 8 KiB blocks (4 to 2 048 blocks): a program whose threads each touch
 * many classes now and then (thread churn: mstress, maze) keeps a half-used span per heap and
 * class, most of its RSS, and 64 KiB spans for blocks up to 1 KiB cost it 6-14 % more peak RSS
 * than these at no measured gain in time; 128 and 256 KiB above (8 blocks). */
static inline unsigned span_order(size_t bs) { return bs <= 8192 ? 3 : bs <= 16384 ? 5 : 6; }
/* The shortest span of a class (two blocks or more, 8 pages or more): what span_new settles for
 * before the pool maps a chunk because its free pages hold no aligned run of span_order's length,
 * and what a class that seldom makes a span gets (span_class_cold). Every class of one span_order
 * has the same shortest span, so a kept span fits any of them. */
static inline unsigned span_order_min(size_t bs) { return bs <= 16384 ? 3 : 4; }

/* A class of blocks over 8 KiB that the heap seldom makes a span for gets the shortest span
 * (span_order_min: two to four blocks), not one of 128 or 256 KiB (eight): `wl churn`, where
 * one block in a few thousand is that large, held such a span per class and thread with a block
 * or two of it in use (peak RSS 13.8 -> 12.4 MiB). A class that makes one again within
 * SPAN_HOT_CALLS calls of the heap (lab_heap_calls) of its last one gets full ones: batches of
 * such blocks pay a span's trip per eight blocks, not per two (`scripts/callgrind_pair.sh
 * --batch 16384`: 288 instructions a pair with short spans only). Spans from the kept ones
 * (whichever length) come first and leave the clock alone. */
#define SPAN_HOT_CALLS 4096u
static bool span_class_cold(lab_heap_t *h, unsigned cls)
{
    uint32_t now = lab_heap_calls(h) | 1, then = h->span_made[cls];
    h->span_made[cls] = now;
    return !then || now - then >= SPAN_HOT_CALLS;
}

/* A class of blocks over 1 KiB and up to 8 KiB (32 KiB spans: 4 to 28 blocks) that made each of
 * its last two spans within SPAN_BUSY_CALLS calls of its heap of the one before gets one of
 * 128 KiB (16 to 112 blocks): a thread that cycles such blocks through its spans (a batch
 * allocated then freed, a window of blocks replaced oldest first) paid a span's trip (the malloc
 * that finds the span dry, the free that finds it full, the one that empties it: some 350
 * instructions) every 4 to 28 blocks. `scripts/callgrind_pair.sh --size 8192`: 138 -> 85
 * instructions a pair, `--batch 8192` 185 -> 101, `--size 4096 --live 64` (the micro suite's
 * malloc_free pattern) 108 -> 86. Spans are carved a block at a time, so a longer span a class
 * does not use up touches no more pages where the pages come from; but where the pool holds used
 * free pages in short runs only, a long span came from fresh ones: with one quick span enough,
 * python3's start (a few classes making two spans in a burst) faulted 9 pages more; two in a row
 * leave it as it was. A class that makes spans now and then keeps 32 KiB ones (peak RSS of
 * mstress, ring, churn, gcc, git log -p and scripts/idle_rss.sh's threads as before within
 * noise). Not in secure mode (its guard pages, a page a span) nor on a signal heap. The clock is
 * span_made (bit 1: the span before was quick too), as for span_class_cold, which a busy class
 * does not call. */
#define SPAN_BUSY_CALLS 64u
#define SPAN_BUSY_ORDER 5
static bool span_class_busy(lab_heap_t *h, unsigned cls)
{
    uint32_t now = lab_heap_calls(h) & ~3u, was = h->span_made[cls];
    bool quick = was && now - (was & ~3u) < SPAN_BUSY_CALLS;
    h->span_made[cls] = now | 1 | (quick ? 2 : 0);
    return quick && (was & 2);
}

/* The first direct slot of each class (lab_direct_slot of its smallest size), and one past the
 * last class's (LAB_SLOTS_ALL): filled where the free key is drawn, before any heap exists. */
static uint8_t direct_first[LAB_SLOT_CLASSES + 1];
_Static_assert(LAB_SLOTS_ALL <= 255, "direct_first holds slot numbers in bytes");

/* Point the direct slots of cls (those lab_direct_slot gives its sizes) at s. Called twice per
 * reuse-list round trip, so a table, not the class-size arithmetic. */
static void heap_point_direct(lab_heap_t *h, unsigned cls, lab_span_t *s)
{
    for (unsigned i = direct_first[cls], end = direct_first[cls + 1]; i < end; i++)
        h->direct[i] = s;
}

/* ---- parked spans ----
 * A class's current span that a free empties (and that does not cycle, span_cycling) went to
 * the kept spans, and the class's next malloc took it back: some 480 instructions a round trip
 * (the kept word twice, the list, an aside heap's fast map tags twice, the slow paths), which a
 * thread that allocates a batch and frees it all, round after round, paid for every class it
 * used at every round (`wl ring 1`: 42 spans a round of 512 blocks). Kept, a span is within the
 * purge's reach (an idle thread's memory goes back); listed, it is its owner's alone. Parked, it
 * is both: it stays its class's current span, its free list whole, but the direct slots leave it
 * (malloc's fast path no longer reads it: the class's next malloc takes the slow path, which
 * takes it back), and the word parked[c] holds it. Whoever takes the word by exchange holds the
 * span: the owner before it touches the span or its class list again (park_claim: every list
 * change claims first, so the list stays as it was while the span is parked), or the purge
 * thread and malloc_trim, which give it back to the pool once it has stayed parked a whole purge
 * delay, as they do kept spans, and store PARK_GONE: the owner's claim then takes the span off
 * its list (park_next holds what was behind it). The owner waits out such a hold. No block of a
 * parked span is out, so only a double or invalid free may reach it: lab_span_free_suspect
 * claims first, the slow paths abort on a span given back, and a count gone below zero aborts.
 * Secure mode, signal heaps and ending threads park nothing. */
#define PARK_GONE 1u
#define PARK_GEN_SHIFT 1
#define PARK_GEN_MASK 62u /* a generation per parking: the purge's watch tells a span parked
                             again between two of its looks from one that stayed parked */
_Static_assert(sizeof(lab_page_t) >= 64, "span descriptors leave the six low bits of a parked word free");
/* Held by whoever holds a parked span but its owner (lab_arena_fork_prepare takes it: a fork
 * child's thread never waits for a purge that is not there). */
static lab_lock_t park_lock = LAB_LOCK_INIT;

lab_inline bool heap_parked(const lab_heap_t *h, unsigned cls) { return (h->parked_mask >> cls) & 1; }

/* The owner takes cls's parked span back: true if it is still its class's current span (direct
 * slots untouched); false if the purge gave it back, its list then headed by what was behind it. */
static lab_noinline bool park_claim(lab_heap_t *h, unsigned cls)
{
    uintptr_t *w = &h->parked[cls], v;
    int was = h->in_slow; /* a fork meanwhile leaves the heap alone (lab_arena_fork_child) */
    h->in_slow = 1;
    /* acquire: pairs with the holder's release store */
    for (unsigned spin = 0; !(v = __atomic_exchange_n(w, 0, __ATOMIC_ACQUIRE)); spin++) {
        if (spin < 256) /* the purge holds it, for one release to the pool */
            __builtin_ia32_pause();
        else /* the word's low half is 0 while held, never once stored back (a span is not the
                first descriptor of a chunk) */
            lab_os_futex_wait_ms((int *)(void *)w, 0, 1);
    }
    h->parked_mask &= ~((uint64_t)1 << cls);
    bool kept = v != PARK_GONE;
    if (!kept) {
        lab_span_t *next = h->park_next[cls];
        h->cur[cls] = next; /* the direct slots: heap_set_cur, by the caller */
        if (next) {
            next->prev = NULL;
            /* an aside heap tags its current span alone (heap_aside_on): this one was not */
            if (h->aside && cls < LAB_DIRECT_CLASSES)
                lab_pool_run_tag((lab_page_t *)next, next->h.order, h->ftag);
        }
    }
    h->in_slow = was;
    return kept;
}

/* An aside heap's span that malloc stops taking from (or that is listed when the heap turns
 * aside) loses the heap's tag, so that its owner's frees go to the reuse list (heap_aside_on).
 * A whole one (every block carved, its length and its class's test those of lab_class_whole)
 * keeps the tag with LAB_FMAP_WHOLE and its class (pool.h): every thread's free of one of its
 * blocks then finds the owner and the class in the fast map, without reading the descriptor. */
static void span_tag_aside(lab_heap_t *h, lab_span_t *s)
{
    unsigned cls = s->cls;
    if (h->ftag && cls < LAB_DIRECT_CLASSES && s->h.order == LAB_WHOLE_ORDER && s->carved == s->capacity &&
        s->fdiv_l == lab_class_whole[cls].fdiv && s->flim_l == lab_class_whole[cls].flim && s->fdiv_l != 0 &&
        (s->base_lo_l & ((LAB_PAGE_SIZE << LAB_WHOLE_ORDER) - 1)) == 0)
        lab_pool_run_tag_whole((lab_page_t *)s, s->h.order, h->ftag, cls);
    else
        lab_pool_run_tag((lab_page_t *)s, s->h.order, 0);
}

/* heap_set_cur's work, cls not parked: s becomes its current span. */
lab_inline void heap_set_cur_now(lab_heap_t *h, unsigned cls, lab_span_t *s)
{
    lab_span_t *old = h->cur[cls];
    /* an aside heap tags its current span alone (heap_aside_on); both spans are the heap's */
    if (lab_unlikely(h->aside) && old != s && cls < LAB_DIRECT_CLASSES) {
        /* (a tag is a hint for free(): a span without it is freed the slow way, correctly) */
        if (old)
            span_tag_aside(h, old);
        if (s)
            lab_pool_run_tag((lab_page_t *)s, s->h.order, h->ftag);
    }
    h->cur[cls] = s;
    /* secure mode: the direct slots stay empty, so every allocation takes the slow path; a
     * reuse list the slots point at (flags; classes up to 1 KiB only) keeps them until it runs
     * dry */
    if (cls >= LAB_SLOT_CLASSES || lab_load_relaxed(&lab_secure) ||
        (cls < LAB_DIRECT_CLASSES && h->reuse[cls].flags))
        return;
    heap_point_direct(h, cls, s ? s : &lab_span_empty);
}

/* heap_set_cur of a parked class: the span claimed first; one the purge gave back (s, read from
 * cur[cls] before, is then that span) is off the list, what was behind it current. Apart, so that
 * heap_set_cur saves no more registers than it did before parked spans (`--batch 16384`: 4
 * instructions a pair). */
static lab_noinline void heap_set_cur_parked(lab_heap_t *h, unsigned cls, lab_span_t *s)
{
    lab_span_t *was = h->cur[cls];
    if (!park_claim(h, cls) && s == was)
        s = h->cur[cls];
    heap_set_cur_now(h, cls, s);
}

/* Point the direct slots of cls at s, its current span from now on. */
static void heap_set_cur(lab_heap_t *h, unsigned cls, lab_span_t *s)
{
    if (lab_unlikely(heap_parked(h, cls)))
        return heap_set_cur_parked(h, cls, s);
    heap_set_cur_now(h, cls, s);
}

static lab_noinline bool heap_unpark_slow(lab_heap_t *h, unsigned cls)
{
    lab_span_t *was = h->cur[cls];
    heap_set_cur(h, cls, was);
    return h->cur[cls] == was;
}

/* cls's parked span, if any, its owner's again (claimed, slots on the class's current span):
 * false if the purge had given it back. Inline, so that the list changes that call it stay
 * inline too (out of line, `--batch 16384` cost 9 instructions a pair more). */
lab_inline bool heap_unpark(lab_heap_t *h, unsigned cls)
{
    return lab_likely(!heap_parked(h, cls)) || heap_unpark_slow(h, cls);
}

#ifdef LAB_DEBUG
/* Debug builds verify a class list after every change: links, class, owner, not full. */
static void list_check(lab_heap_t *h, unsigned cls, const char *where)
{
    lab_span_t *p = h->cur[cls], *prev = NULL;
    int n = 0;
    while (p) {
        if (p->prev != prev || p->cls != cls || p->heap != h || (p->usedf & LAB_SPAN_FULL) || (p->remote & 1) || ++n > 100000) {
            lab_message(" prev seen:", p->prev);
            lab_fatal(where, p);
        }
        prev = p;
        p = p->next;
    }
}
#else
static inline void list_check(lab_heap_t *h, unsigned cls, const char *where)
{
    (void)h, (void)cls, (void)where;
}
#endif
#define LIST_CHECK(h, cls, w) list_check(h, cls, w)

lab_inline void list_push_head(lab_heap_t *h, lab_span_t *s)
{
    (void)heap_unpark(h, s->cls); /* the list is left alone while its head is parked */
    lab_span_t *head = h->cur[s->cls];
    s->prev = NULL;
    s->next = head;
    if (head)
        head->prev = s;
    heap_set_cur(h, s->cls, s);
    LIST_CHECK(h, s->cls, "corrupt class list after push_head:");
}

/* Insert behind the head, so the span in use stays in use. */
lab_inline void list_push_second(lab_heap_t *h, lab_span_t *s)
{
    (void)heap_unpark(h, s->cls);
    lab_span_t *head = h->cur[s->cls];
    if (!head) {
        list_push_head(h, s);
        return;
    }
    s->prev = head;
    s->next = head->next;
    if (head->next)
        head->next->prev = s;
    head->next = s;
    LIST_CHECK(h, s->cls, "corrupt class list after push_second:");
}

lab_inline void list_remove(lab_heap_t *h, lab_span_t *s)
{
    (void)heap_unpark(h, s->cls); /* (s itself is a claimed span: its callers claim first) */
    if (s->prev)
        s->prev->next = s->next;
    else
        heap_set_cur(h, s->cls, s->next);
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    LIST_CHECK(h, s->cls, "corrupt class list after remove:");
}

/* Put a list of n remotely freed blocks on the local free list. */
static void span_splice(lab_span_t *s, lab_block_t *b, uint32_t n)
{
    if (!b)
        return;
    if (s->free) {
        lab_block_t *t = b;
        lab_block_t *nx;
        while ((nx = lab_link_get(t)))
            t = nx;
        lab_link_set(t, s->free);
    }
    s->free = b;
    s->usedf -= n;
}

static void span_splice_word(lab_span_t *s, uintptr_t r)
{
    span_splice(s, (lab_block_t *)(r & LAB_REMOTE_PTR), (uint32_t)(r >> 48));
}

/* Move the remote-free list onto the local one. */
static void span_collect(lab_span_t *s)
{
    if (!lab_load_relaxed(&s->remote))
        return;
    /* acquire pairs with the release CAS of remote frees: the blocks' links are visible */
    span_splice_word(s, __atomic_exchange_n(&s->remote, 0, __ATOMIC_ACQUIRE));
}

/* Carve the next batch of never-used blocks onto the free list: one OS page of blocks, or one
 * block where a block is a page or more. Linking a block writes it, so every block carved is a
 * page touched: carving four blocks of 4 KiB ahead (as this once did, to spare slow paths)
 * faulted in pages a short program never used (gcc --version: 10 of its 160 faults, at about
 * 10 us each here). Spans that come back whole from the kept lists need no carving. */
static void span_carve(lab_span_t *s)
{
    uintptr_t base = lab_desc_addr((lab_page_t *)s);
    uint32_t bs = s->block_size;
    uint32_t n = lab_max(1u, 4096u / bs);
    n = lab_min(n, (uint32_t)s->capacity - (uint32_t)s->carved);
    uintptr_t first = base + (uintptr_t)s->carved * bs, key = lab_load_relaxed(&lab_free_key);
    /* each block with its free key, as a freed one: a free() of a block carved but never handed
     * out (a neighbour's start, computed) is then caught as a double free, where it went on the
     * list a second time and the list looped, malloc handing the block out again and again
     * (found by review); handing a block out clears its key */
    for (uint32_t i = 0; i < n; i++) {
        lab_block_t *b = (lab_block_t *)(first + (uintptr_t)i * bs);
        b->key = lab_block_key(b, key);
        lab_link_set(b, i + 1 < n ? (lab_block_t *)(first + (uintptr_t)(i + 1) * bs) : s->free);
    }
    s->free = (lab_block_t *)first;
    /* relaxed store: other threads' ownership checks read it (core/alloc.c) */
    lab_store_relaxed(&s->carved, (uint16_t)(s->carved + n));
    s->flim_l = lab_flim_of(bs, s->fdiv_l, s->carved);
}

static inline uintptr_t span_guard_page(const lab_span_t *s)
{
    return lab_desc_addr((lab_page_t *)s) + ((size_t)1 << (s->h.order + LAB_PAGE_SHIFT)) - LAB_PAGE_SIZE;
}

/* The span's pages lose their owner, in the fast map's tags and in the descriptor, before the
 * run goes back to the pool: a late free of one of its blocks takes the slow way. */
static void span_untag(lab_span_t *s)
{
    if (s->heap->ftag)
        lab_pool_run_tag((lab_page_t *)s, s->h.order, 0);
    s->heap = NULL;
}

/* Secure mode's guard pages: each splits its span's mapping in three, and the kernel limits a
 * process's mappings (vm.max_map_count, 65 530 by default). A guard per span used them all up
 * past about 32 000 spans (1 GiB of small blocks), and the program could not start a thread or
 * map anything (found by review): past an eighth of the limit in guards, new spans have none. */
static size_t guards_live, guards_max; /* atomic; guards_max set with secure mode */

/* Span s's guard page made accessible again (false: it could not be: keep the span). */
static bool span_unguard(lab_span_t *s)
{
    if (!(s->flags & LAB_SPAN_GUARDED))
        return true;
    if (lab_os_mprotect((void *)span_guard_page(s), LAB_PAGE_SIZE, PROT_READ | PROT_WRITE) < 0)
        return false;
    s->flags &= ~LAB_SPAN_GUARDED;
    lab_sub_relaxed(&guards_live, 1);
    return true;
}

static void span_release(lab_heap_t *h, lab_span_t *s)
{
    if (!span_unguard(s))
        /* the pool must never hand out a page that faults: keep the span (leaked, but safe) */
        return;
    h->st.span_releases++;
    span_untag(s);
    lab_pool_free_order(h->pool, (lab_page_t *)s, s->h.order);
}

/* Give back a span of h without its owner (another thread, owner idle or gone; see
 * heap_return_idle): nothing of the heap points at it any more. */
static uint64_t spans_returned_idle; /* atomic: spans released by another thread (statistics) */

/* false: its guard page could not be made accessible again (the span stays where it was) */
static bool span_release_idle(lab_heap_t *h, lab_span_t *s)
{
    if (!span_unguard(s))
        return false;
    lab_add_relaxed(&spans_returned_idle, 1);
    span_untag(s);
    lab_pool_free_order(h->pool, (lab_page_t *)s, s->h.order);
    return true;
}

/* ---- kept spans ----
 * A span whose last block is freed (but one that cycles, span_cycling, which stays listed) is kept
 * off the lists with its free list whole, up to lab_kept_max bytes a heap (LABYRINTH_KEPT_KIB),
 * and the class's next new span is the last one kept: no trip through the pool, no carving, no
 * descriptor to fill in. Without it a program that allocates a few hundred blocks of 4 or 16 KiB
 * and frees them all (spans of 4 to 8 such blocks) sends every span back to the pool and carves
 * it again next round (callgrind,
 * 256 blocks of 16 KiB: 376 instructions per malloc+free before, 125 with kept spans).
 * Each class's list is one atomic word: the owner takes it by exchange and stores it back, so
 * that another thread may take a whole list by exchange at any time and give its spans back to
 * the pool: the background thread does for lists that have not changed for a purge delay (an
 * idle thread's), malloc_trim for every heap. Signal heaps and secure mode keep none. */
static inline size_t span_bytes(const lab_span_t *s) { return (size_t)1 << (s->h.order + LAB_PAGE_SHIFT); }

/* s emptied: keep it, or give it back when the heap may keep no more. */
static void span_retire(lab_heap_t *h, lab_span_t *s)
{
    size_t bytes = span_bytes(s);
    /* a span shorter than its class's (a cold class's, span_class_cold, or one settled for when
     * the pool held no longer run) is kept only while its class has none kept: kept all, such
     * spans lay between the full ones in chunks that malloc_trim could not give back
     * (scripts/idle_rss.sh's tool, 32 idle threads: 5.0-5.4 MiB after malloc_trim, 4.0-4.3 with
     * this); given back all, a class used now and then took a span from the pool every time
     * (`wl ring 2`: peak RSS 8.7 MiB, 8.3 with this, 8.1 before short spans; 11 runs) */
    if (h->gfp || h->state != LAB_HEAP_LIVE || lab_load_relaxed(&lab_secure) ||
        (s->h.order < span_order(s->block_size) && lab_load_relaxed(&h->kept[s->cls])) ||
        lab_load_relaxed(&h->kept_bytes) + bytes > lab_load_relaxed(&lab_kept_max))
        return span_release(h, s);
    uintptr_t *w = &h->kept[s->cls];
    s->next = (lab_span_t *)__atomic_exchange_n(w, 0, __ATOMIC_ACQUIRE);
    s->prev = NULL;
    h->kept_mask |= (uint64_t)1 << s->cls;
    size_t before = lab_load_relaxed(&h->kept_bytes);
    lab_add_relaxed(&h->kept_bytes, bytes);
    /* release: a thread that takes the list sees the links */
    __atomic_store_n(w, (uintptr_t)s, __ATOMIC_RELEASE);
    /* the heap's first kept span: a purge thread asleep with nothing to wait for must come and
     * watch (lab_arena_return_idle_aged), or an idle thread's kept spans stay for good. Kept
     * spans never reach the pool, whose frees are what wakes it otherwise. */
    if (!before)
        lab_pool_background_poke();
}

/* The last span kept for cls, or NULL. */
static lab_span_t *kept_take(lab_heap_t *h, unsigned cls)
{
    if (!((h->kept_mask >> cls) & 1))
        return NULL; /* nothing kept: kept[] not even read (the heap's second page, arena.h) */
    uintptr_t *w = &h->kept[cls];
    lab_span_t *s = NULL;
    if (lab_load_relaxed(w))
        s = (lab_span_t *)__atomic_exchange_n(w, 0, __ATOMIC_ACQUIRE);
    if (!s || !s->next)
        h->kept_mask &= ~((uint64_t)1 << cls); /* (a bit may outlive a list taken away) */
    if (!s)
        return NULL;
    __atomic_store_n(w, (uintptr_t)s->next, __ATOMIC_RELEASE);
    lab_sub_relaxed(&h->kept_bytes, span_bytes(s));
    s->next = NULL;
    return s;
}

/* Give back every span kept for cls: by the owner (owner true) or by any other thread. */
static void kept_release(lab_heap_t *h, unsigned cls, bool owner)
{
    if (!lab_load_relaxed(&h->kept[cls]))
        return;
    lab_span_t *s = (lab_span_t *)__atomic_exchange_n(&h->kept[cls], 0, __ATOMIC_ACQUIRE);
    while (s) {
        lab_span_t *next = s->next;
        lab_sub_relaxed(&h->kept_bytes, span_bytes(s));
        if (owner)
            span_release(h, s);
        else
            (void)span_release_idle(h, s); /* kept spans have no guard pages (secure keeps none) */
        s = next;
    }
}

/* Whether h may park its class's current span s, just emptied: an ordinary live heap whose
 * direct slots for the class point at the span, a span of 32 KiB or less. Not while they point at
 * the class's reuse list (malloc takes other heaps' blocks first, for as long as they come: `wl
 * larson 2`, whose lists seldom run dry, kept such spans parked while other classes mapped pages
 * for theirs, 1 MiB more at its peak), nor a span of 128 or 256 KiB (blocks over 8 KiB, eight to
 * a span: its trip through the kept spans is paid by few blocks, and a span parked per class held
 * more than kept ones, which any class of their length takes: scripts/idle_rss.sh's threads,
 * 1 MiB more after their work): those go to the kept spans. */
lab_inline bool span_parks(const lab_heap_t *h, const lab_span_t *s)
{
    return h->state == LAB_HEAP_LIVE && !h->gfp && !lab_load_relaxed(&lab_secure) && s->h.order <= 3 &&
           !(s->cls < LAB_DIRECT_CLASSES && h->reuse[s->cls].flags);
}

/* s, its class's current span, has just emptied: park it (parked spans, above; span_parks). */
static void span_park(lab_heap_t *h, lab_span_t *s)
{
    unsigned cls = s->cls;
    heap_point_direct(h, cls, &lab_span_empty);
    bool first = !h->parked_mask;
    h->parked_mask |= (uint64_t)1 << cls;
    h->park_next[cls] = s->next;
    uintptr_t gen = ((uintptr_t)h->park_gen++ << PARK_GEN_SHIFT) & PARK_GEN_MASK;
    /* release: the span's last writes (its free list) are visible to whoever takes it */
    __atomic_store_n(&h->parked[cls], (uintptr_t)s | gen, __ATOMIC_RELEASE);
    /* a purge thread asleep with nothing to wait for must come and watch, as for kept spans */
    if (first)
        lab_pool_background_poke();
}

void *lab_heap_unpark_take(lab_heap_t *h, unsigned cls)
{
    h->in_slow = 1;
    lab_span_t *s = h->cur[cls];
    if (lab_likely(park_claim(h, cls))) {
        /* the slots as heap_set_cur points them (secure mode parks nothing) */
        if (!(cls < LAB_DIRECT_CLASSES && h->reuse[cls].flags))
            heap_point_direct(h, cls, s);
        h->in_slow = 0;
        void *b = lab_span_take(h, s);
        if (lab_likely(b != NULL))
            return b;
    } else {
        heap_set_cur(h, cls, h->cur[cls]); /* given back: the list's next span, or none */
        h->in_slow = 0;
    }
    return lab_heap_alloc_small_slow(h, cls);
}

/* The hold of h's parked span of cls by another thread than its owner (the purge thread,
 * malloc_trim): back to the pool, unless it is no longer parked or, with want, no longer the same
 * parking. True: a span was given back. */
static bool park_purge(lab_heap_t *h, unsigned cls, uintptr_t want)
{
    uintptr_t *w = &h->parked[cls];
    bool gave = false;
    lab_lock(&park_lock);
    /* acquire: pairs with span_park's release (the owner's writes to the span) */
    uintptr_t v = __atomic_exchange_n(w, 0, __ATOMIC_ACQUIRE);
    if (v && v != PARK_GONE && (!want || v == want) &&
        span_release_idle(h, (lab_span_t *)(v & ~(uintptr_t)63))) /* as a kept span */
        v = PARK_GONE, gave = true;
    if (v) /* release: the pool's writes before the owner reads PARK_GONE */
        __atomic_store_n(w, v, __ATOMIC_RELEASE);
    lab_unlock(&park_lock);
    return gave;
}

/* A class that makes a span again within RECLAIM_BACK calls of the heap's (lab_heap_calls) after
 * heap_reclaim took its empty listed one is held: its empty listed spans stay for the next
 * RECLAIM_HOLD spans the heap makes (or until it is tidied: malloc_trim, thread exit). Such an
 * exchange (a span given back, another made and carved) costs about 1 500 instructions: once per
 * RECLAIM_BACK calls or more it adds at most 3 a call. Without the hold, a program that empties
 * its classes between requests had them take each other's spans in turn: sqlite3 inserting rows
 * made a span and gave one back twice per row (the pool reclaims before it hands out pages never
 * used, and one class's new span was paid with another's current one, which came back at its next
 * malloc by taking a third's), 1.8 M spans for 14.5 M mallocs, twice the instructions, 1.3 times
 * glibc's time. A class whose size the program has moved on from (python's dicts growing), or
 * comes back to only after much else, still gives its span to the next size (realloc growth in
 * rounds of 256 steps comes back in time: held); so does one of blocks over 8 KiB, whose spans
 * (128 and 256 KiB) cost more kept than exchanged (held too, gcc's peak RSS grew by 2 %, for
 * 12 000 exchanges of 1.5 M mallocs; held up to 8 KiB, it did not, and 1 318 spans were made
 * instead of 12 190). */
#define RECLAIM_BACK 512u
#define SPAN_CYCLE 128u /* span_cycling */
#define RECLAIM_HOLD 256u
#define RECLAIM_HELD_MAX 8192u

/* Whether cls is held (above): heap_reclaim leaves its empty span, listed or parked. */
lab_inline bool class_held(const lab_heap_t *h, unsigned cls)
{
    return (int32_t)(h->held_to[cls] - (uint32_t)h->st.spans) > 0;
}

/* The current span of cls if it is empty (no block out, none waiting to come back: a class that
 * cycles, span_cycling, or a parked span, which the caller has claimed), or NULL; NULL too while
 * the class is held (above). */
static lab_span_t *empty_listed(lab_heap_t *h, unsigned cls)
{
    lab_span_t *s = h->cur[cls];
    return s && s->usedf == 0 && !(s->flags & LAB_SPAN_WAIT) && !class_held(h, cls) ? s : NULL;
}

/* The pool's reclaim (lab_pool_set_reclaim): spans of the calling thread that hold no block, one
 * at a time until at least `pages` pages are back in the pool, when it would otherwise hand the
 * thread pages never used; 0: how many pages such spans hold. First the kept spans (smallest
 * classes first), then the parked spans (taken as kept ones are, unless held) and the empty
 * current spans of classes that cycle (span_cycling). The cycling ones stay listed so that a
 * scratch block allocated and freed in a loop does not move a span at every
 * free; but a program whose sizes move on (python's dicts grow 6.5, 13, 26, 52 KiB, each
 * freed as the next is made) leaves a dirty empty span per class behind, and a new size then
 * faulted in fresh pages beside them: `python3 -c 1`'s calls replayed (scripts/trace_replay.sh)
 * faulted 395 pages, 354 with them given back (glibc 274). The caller may be inside a slow path
 * of this heap (a span_new that found nothing kept of its length, whose class has no listed span
 * left): in_slow is put back as it was. Secure mode keeps its listed spans (their guard pages). */
static size_t heap_reclaim(size_t pages)
{
    lab_heap_t *h = lab_tls_heap;
    if (h->state != LAB_HEAP_LIVE || h->gfp)
        return 0;
    bool listed = !lab_load_relaxed(&lab_secure);
    if (!pages) {
        size_t n = lab_load_relaxed(&h->kept_bytes) >> LAB_PAGE_SHIFT;
        for (unsigned cls = 1; listed && cls < LAB_NR_CLASSES; cls++) {
            /* a parked span, not read without its claim (the purge may be giving it back), as
             * the 8 pages it has at most (span_parks): the count is a hint */
            if (heap_parked(h, cls)) {
                n += 8;
                continue;
            }
            lab_span_t *cur = empty_listed(h, cls);
            if (cur)
                n += (size_t)1 << cur->h.order;
        }
        return n;
    }
    int was = h->in_slow;
    h->in_slow = 1;
    size_t given = 0;
    for (uint64_t m = h->kept_mask; m && given < pages;) {
        unsigned cls = (unsigned)__builtin_ctzll(m);
        lab_span_t *s = kept_take(h, cls);
        if (!s) {
            m &= m - 1;
            continue;
        }
        given += (size_t)1 << s->h.order;
        h->st.reclaimed++;
        span_release(h, s);
    }
    for (unsigned cls = 1; listed && cls < LAB_NR_CLASSES && given < pages; cls++) {
        /* a parked span is given back as a kept one would be, unless its class is held: a
         * class's span empties when it parks, so the hold (above) must cover it too (it once
         * did not: a buffer grown by realloc through the classes, round after round, made a span
         * and gave one back at nearly every step, twelve times glibc's time;
         * preload.realloc_rounds) */
        bool parked = heap_parked(h, cls);
        if (parked && class_held(h, cls))
            continue;
        lab_span_t *s = heap_unpark(h, cls) && parked ? h->cur[cls] : empty_listed(h, cls);
        if (!s)
            continue;
        given += (size_t)1 << s->h.order;
        h->st.reclaimed++;
        h->reclaimed_at[cls] = lab_heap_calls(h) | 1;
        list_remove(h, s);
        span_release(h, s);
    }
    h->in_slow = was;
    return given;
}

/* A span kept for another class of the same span size, or NULL. Its memory is resident
 * already: using it before the pool keeps kept spans from adding to the peak (a heap whose blocks
 * die in waves of changing sizes would otherwise keep spans of one class and map more for the
 * next). */
static lab_span_t *kept_take_other(lab_heap_t *h, unsigned order)
{
    for (uint64_t m = h->kept_mask; m; m &= m - 1) {
        unsigned c = (unsigned)__builtin_ctzll(m);
        if (span_order(lab_class_size(c)) != order)
            continue;
        lab_span_t *k = kept_take(h, c);
        if (k)
            return k;
    }
    return NULL;
}

static lab_span_t *span_new(lab_heap_t *h, unsigned cls)
{
    uint32_t at = h->reclaimed_at[cls];
    if (at && lab_heap_calls(h) - at <= RECLAIM_BACK && lab_class_size(cls) <= RECLAIM_HELD_MAX) {
        h->held_to[cls] = (uint32_t)h->st.spans + RECLAIM_HOLD;
        h->reclaimed_at[cls] = 0;
    }
    lab_span_t *s = kept_take(h, cls);
    if (s)
        return s;
    size_t bs = lab_class_size(cls);
    unsigned order = span_order(bs);
    bool busy = bs > LAB_DIRECT_MAX && order == 3 && !h->gfp && !lab_load_relaxed(&lab_secure) &&
                span_class_busy(h, cls);
    if (busy)
        order = SPAN_BUSY_ORDER;
    lab_page_t *d = (lab_page_t *)(h->kept_mask ? kept_take_other(h, order) : NULL);
    if (!d && !busy && order > span_order_min(bs) && span_class_cold(h, cls) && !h->gfp &&
        !lab_load_relaxed(&lab_secure))
        order = span_order_min(bs);
    /* a kept span carries h's tag already, unless h is aside: one of a class up to 1 KiB lost it
     * when it stopped being current (heap_set_cur), and one of another class would not get it */
    bool tag = !d || h->aside;
    /* Spans of blocks over 8 KiB are runs of 32 or 64 pages, aligned to their length, which a
     * pool whose free pages are cut up by shorter spans may not hold at all, however many pages
     * are free: each such span would map a chunk, whose pages the spans then drift into while
     * the freed ones stay resident (`wl mstress 4 1600`, where one block in 9 000 is over 8 KiB:
     * 18 MiB mapped and 17 MiB peak RSS for 10 MiB in use; 10 MiB mapped and 12 MiB with this).
     * So a shorter span from the free pages comes first, down to span_order_min (LAB_GFP_NOGROW:
     * nothing mapped, no failure counted); only when none has one does the pool map a chunk. */
    if (!d && order > span_order_min(bs) && !h->gfp && !lab_load_relaxed(&lab_secure))
        for (unsigned o = order; o >= span_order_min(bs) && !d; o--)
            (void)lab_pool_alloc_order(h->pool, o, LAB_GFP_NOGROW, LAB_PAGE_SPAN, &d);
    if (!d && !lab_pool_alloc_order(h->pool, order, h->gfp, LAB_PAGE_SPAN, &d))
        return NULL;
    order = d->h.order; /* a kept span or a shorter run may be shorter than the class's own */
    s = (lab_span_t *)d;
    s->free = NULL;
    s->remote = 0;
    s->usedf = 0;
    s->orphan_out = 0; /* (the pool may have written the second descriptor meanwhile) */
    size_t bytes = (size_t)1 << (order + LAB_PAGE_SHIFT);
    s->flags = 0;
    if (lab_unlikely(lab_load_relaxed(&lab_secure)) && !h->gfp &&
        lab_load_relaxed(&guards_live) < lab_load_relaxed(&guards_max) &&
        lab_os_mprotect((void *)span_guard_page(s), LAB_PAGE_SIZE, PROT_NONE) == 0) {
        bytes -= LAB_PAGE_SIZE;
        s->flags = LAB_SPAN_GUARDED;
        lab_add_relaxed(&guards_live, 1);
    }
    s->capacity = (uint16_t)(bytes / bs);
    s->cls = (uint8_t)cls;
    s->block_size = (uint16_t)bs;
    s->div = lab_div32_of(bs);
    s->fdiv_l = lab_fdiv_of(bs);
    s->base_lo = s->base_lo_l = (uint32_t)lab_desc_addr(d);
    s->carved = 0;
    s->flim_l = 0;
    s->emptied_at = (uint32_t)h->st.frees - 0x80000000u; /* its first emptying is no cycle */
    s->next = s->prev = NULL;
    s->heap = h;
    if (tag && h->ftag)
        lab_pool_run_tag(d, order, h->ftag);
    h->st.spans++;
    span_carve(s);
    return s;
}

/* A full span waits off its list until this many of its blocks are freed here (or a remote free
 * arrives): relisted at the first free, it would hand out that one block and come off again at
 * once, a slow free and a slow malloc per block. At most an eighth of a full span sits idle. */
static inline uint32_t span_slack(const lab_span_t *s) { return s->capacity >= 16 ? s->capacity / 8u : 1u; }

/* Full, out of blocks, no remote frees pending: off the list (the caller has NOTIFY armed). Its
 * count becomes a countdown of local frees, so the free fast path leaves it only at the end. */
static inline void span_wait(lab_span_t *s)
{
    s->usedf = span_slack(s);
    s->flags |= LAB_SPAN_WAIT;
}

/* A waiting span's countdown back to its count of blocks out, still full (off its list). */
static inline void span_wait_end(lab_span_t *s)
{
    s->usedf = LAB_SPAN_FULL | (s->capacity - span_slack(s) + s->usedf);
    s->flags &= ~LAB_SPAN_WAIT;
}

static void heap_take_msgs(lab_heap_t *h);

/* Relist the spans that remote frees have made non-full. */
static void heap_take_inbox(lab_heap_t *h)
{
    /* acquire pairs with the release CAS in inbox_push: the spans' links are visible */
    lab_span_t *s = (lab_span_t *)__atomic_exchange_n(&h->inbox, 0, __ATOMIC_ACQUIRE);
    while (s) {
        lab_span_t *next = s->next;
        if (s->flags & LAB_SPAN_WAIT)
            span_wait_end(s);
        span_collect(s);
        lab_store_relaxed(&s->orphan_out, 0); /* (an orphan's: heap_orphan) */
        s->usedf &= ~LAB_SPAN_FULL;
        if (s->usedf == 0 && h->cur[s->cls])
            span_retire(h, s);
        else
            list_push_second(h, s);
        s = next;
    }
}

void *lab_heap_alloc_small_slow(lab_heap_t *h, unsigned cls)
{
    /* on a signal heap, or none: a handler that put the thread there may have been left by
     * longjmp; a safe point (core/pool.h), and the heap it was on before is the caller's now */
    if (lab_unlikely(h->gfp || h->state == LAB_HEAP_NONE) && lab_pool_handler_depth) {
        lab_pool_handler_safe_point();
        if (lab_tls_heap != h)
            return lab_heap_alloc_small_slow(lab_tls_heap, cls);
    }
    if (lab_unlikely(h->state == LAB_HEAP_NONE)) {
        errno = ENOMEM;
        return NULL;
    }
    if (lab_unlikely(h->state != LAB_HEAP_LIVE)) {
        if (lab_unlikely(heap_retired) && lab_heap_past_last_round())
            return alloc_past_last_round(cls);
        h = lab_heap_get_slow();
        if (!h) {
            errno = ENOMEM;
            return NULL;
        }
    }
    h->in_slow = 1;
    if (lab_load_relaxed(&h->msgs))
        heap_take_msgs(h);
    if (lab_load_relaxed(&h->inbox))
        heap_take_inbox(h);
    /* a parked span: taken back, the direct slots on it again (or on what was behind it) */
    (void)heap_unpark(h, cls);
    lab_span_t *s;
    while ((s = h->cur[cls])) {
        if (s->free)
            break;
        span_collect(s);
        if (s->free)
            break;
        if (s->carved < s->capacity) {
            span_carve(s);
            break;
        }
        /* Off the list BEFORE NOTIFY is visible: the remote free that takes the notice writes
         * s->next (the inbox link) at once, so the list must no longer use it. */
        list_remove(h, s);
        /* A full span may be released by another thread while it waits (lab_arena_return_idle),
         * as soon as NOTIFY is visible: nothing of the heap may point at it but the inbox, which
         * that thread empties, and its wait state is written before (undone if the CAS fails). */
        uint32_t usedf = s->usedf;
        span_wait(s);
        uintptr_t zero = 0;
        /* acq_rel: pairs with remote frees; if one slipped in, collect it instead */
        if (!__atomic_compare_exchange_n(&s->remote, &zero, LAB_REMOTE_NOTIFY, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            s->usedf = usedf;
            s->flags &= (uint8_t)~LAB_SPAN_WAIT;
            list_push_head(h, s);
        }
    }
    if (!s) {
        s = span_new(h, cls);
        if (!s) {
            h->in_slow = 0;
            errno = ENOMEM;
            return NULL;
        }
        list_push_head(h, s);
    }
    lab_block_t *b = s->free;
    s->free = lab_link_get(b);
    b->key = 0;
    s->usedf++;
    h->st.mallocs++;
    h->in_slow = 0;
    return b;
}

static inline bool span_cycling(lab_heap_t *h, lab_span_t *s);

/* A local free that emptied the span or found it full (the caller marks the heap in_slow). */
static void span_free_local(lab_heap_t *h, lab_span_t *s)
{
    if (s->flags & LAB_SPAN_WAIT)
        span_wait_end(s); /* its wait is over: relisted below unless the inbox has it */
    if (s->usedf & LAB_SPAN_FULL) {
        /* acquire: as in span_collect */
        uintptr_t r = __atomic_exchange_n(&s->remote, 0, __ATOMIC_ACQUIRE);
        span_splice_word(s, r);
        if (r & LAB_REMOTE_NOTIFY) {
            s->usedf &= ~LAB_SPAN_FULL;
            list_push_second(h, s);
        }
        /* else a remote free took the notice and puts the span on the inbox: it relists it */
    }
    /* empty: the current span is parked (parked spans, above); another to the kept spans, its
     * class's next span unless the purge or a reclaim gives it back first, but one that cycles
     * stays listed (span_cycling). The current one comes here from lab_span_free_local_slow only
     * when it does not cycle, or when the owner's messages (blocks other threads freed) or secure
     * mode's batches emptied it. */
    if (s->usedf == 0) {
        if (h->cur[s->cls] == s) {
            if (span_parks(h, s))
                return span_park(h, s);
        } else if (span_cycling(h, s))
            return;
        list_remove(h, s);
        span_retire(h, s);
    }
}

static lab_noinline void span_park_marked(lab_heap_t *h, lab_span_t *s)
{
    h->in_slow = 1;
    span_park(h, s);
    h->in_slow = 0;
}

static lab_noinline void span_free_local_marked(lab_heap_t *h, lab_span_t *s)
{
    h->in_slow = 1;
    span_free_local(h, s);
    h->in_slow = 0;
}

/* A span that empties again soon after it last did (fewer than SPAN_CYCLE (128) frees of the heap
 * since) is cycling (a scratch buffer allocated and freed in a loop, a ring of blocks freed and
 * allocated again) and stays listed, the class's current span in use. Else it goes to the heap's
 * kept spans, which the purge thread gives back once they stay idle past the purge delay (and
 * malloc_trim at once): an empty listed span is the owner's alone, so a thread that goes idle (a
 * pool's worker waiting for work) kept one per class it used (the current span, and a spare),
 * all its pages resident, for good (32 threads that each allocated and freed 400 blocks of 16 B
 * to 32 KiB held 122 MiB after 3 s idle and after malloc_trim; 42 with spans of blocks over
 * 8 KiB kept so, 5 with all: scripts/idle_rss.sh). A span going and coming back through the kept
 * spans costs about 300 instructions and four atomic exchanges, which a scratch block would pay
 * at every free (the cycle test costs it 4 instructions, callgrind --size 48 --live 1), and a
 * ring of 64 blocks of 1 KiB (two spans) at every 32 frees (--size 1024 --live 64: 77 a pair with
 * the test on every span, 81 with it on the current span alone, and malloc_free/1024 of the micro
 * suite 45 % slower; a window of 64 frees was too short for it, 256 kept 10 MiB more in the idle
 * threads above). A span that empties for the first time is no cycle (span_new). */
static inline bool span_cycling(lab_heap_t *h, lab_span_t *s)
{
    uint32_t now = (uint32_t)h->st.frees, then = s->emptied_at;
    s->emptied_at = now;
    return now - then < SPAN_CYCLE;
}

void lab_span_free_local_slow(lab_heap_t *h, lab_span_t *s)
{
    /* the class's current span emptied again soon after it last did (span_cycling): nothing to do
     * (it stays in use), and no stack frame to find that out. A block allocated and freed again while no other of its class lives (a
     * scratch buffer; posix_memalign and free in a loop) empties the span at every free: 26
     * instructions of the pair went into the general case */
    if (lab_likely(s->usedf == 0 && h->cur[s->cls] == s)) {
        if (lab_likely(span_cycling(h, s)))
            return;
        /* the common case of span_free_local's, without its tests for full and waiting spans
         * (a tail call: no stack frame on the way to the return above) */
        if (span_parks(h, s))
            return span_park_marked(h, s);
    }
    /* a free into a span with nothing out (its count, or a waiting span's countdown, never goes
     * below 0 otherwise): a double free whose block's key the program overwrote, or a free racing
     * the purge of its parked span; the block is on the list now, so no later malloc may run */
    if (lab_unlikely(s->used == -1))
        lab_fatal("double free of", s->free);
    span_free_local_marked(h, s);
}

/* A block another thread freed (in its reuse list, in a message, in the owner's messages)
 * carries the transit key (its key, lab_block_key, with bit 0 cleared): freeing it again anywhere
 * is caught at once, the owner's fast path included (it tests key | 1). */

static void span_free_remote_now(lab_span_t *s, lab_block_t *b);

/* Take h's messages and free their blocks: as its owner, locally (the caller marks the heap
 * in_slow); otherwise onto their spans' remote lists, as a thread without a heap would
 * (lab_arena_return_idle). Each message then goes back to its sender's heap. */
lab_inline size_t heap_drain_msgs(lab_heap_t *h, bool owner)
{
    /* acquire pairs with the release CAS in msg_send: the messages are visible */
    lab_rmsg_t *m = (lab_rmsg_t *)__atomic_exchange_n(&h->msgs, 0, __ATOMIC_ACQUIRE);
    uintptr_t key = lab_load_relaxed(&lab_free_key);
    size_t blocks = 0;
    while (m) {
        lab_rmsg_t *next = m->next;
        blocks += m->n;
        for (uint32_t i = 0; i < m->n; i++) {
            lab_block_t *b = m->blk[i];
            uintptr_t a = (uintptr_t)b;
            lab_span_t *s = (lab_span_t *)lab_own_desc(a);
            if (lab_unlikely(s->heap != h || b->key != (lab_block_key(b, key) ^ 1)))
                /* freed again (or reallocated) while it travelled to us */
                lab_fatal("double free of", b);
            if (!owner) {
                span_free_remote_now(s, b);
                continue;
            }
            b->key = lab_block_key(b, key);
            lab_link_set(b, s->free);
            s->free = b;
            if (--s->used <= 0)
                span_free_local(h, s);
        }
        /* the message is a block of the sender's heap: back the direct way (no recursion into
         * our own messages) */
        uintptr_t a = (uintptr_t)m;
        lab_span_t *ms = (lab_span_t *)lab_own_desc(a);
        ((lab_block_t *)m)->key = 0;
        span_free_remote_now(ms, (lab_block_t *)m);
        m = next;
    }
    return blocks;
}

static void heap_take_msgs(lab_heap_t *h) { (void)heap_drain_msgs(h, true); }

static void heap_return_idle(lab_heap_t *h);
static size_t heap_inbox_return(lab_heap_t *h);

/* Send one open message to its heap: one CAS. A heap whose thread has exited takes its messages
 * only when a new thread adopts it, which may be never (adoption is last in, first out, and
 * programs that replace threads start fewer than have ended): its blocks, and the spans they
 * keep whole, waited, and a program whose threads exit while others free their blocks peaked at
 * 2-3 times glibc's RSS (found by review). The sender returns them at once, as malloc_trim
 * would: blocks onto their spans' remote lists, spans whose blocks are all back to the pool. Not
 * from a signal handler (spans back to the pool), nor to the sender's own heap. The inbox, whose
 * spans wait for their last blocks, is looked through only once senders have returned four
 * times as many blocks as it held spans the last time: at every message, 1 M blocks of an ended
 * thread freed in random order took 0.48 s instead of 0.045 (2 048 spans looked at per message
 * of 62 blocks). */
static void msg_send(lab_heap_t *to, lab_rmsg_t *m)
{
    uintptr_t old = lab_load_relaxed(&to->msgs);
    do {
        m->next = (lab_rmsg_t *)old;
        /* release: the message is written before the owner can take it (pushes and one
         * exchange-all only: no ABA) */
    } while (!__atomic_compare_exchange_n(&to->msgs, &old, (uintptr_t)m, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
    lab_heap_t *me = lab_tls_heap;
    if (lab_unlikely(lab_load_relaxed(&to->state) == LAB_HEAP_ABANDONED) && me->state == LAB_HEAP_LIVE && !me->gfp &&
        to != me) {
        /* the sender's heap marked busy meanwhile: a signal that lands in the drain (which calls
         * into libc: the clock) runs its handler on a signal heap, and a fork child does not
         * hand the heap to a new thread half way through a change */
        int was = me->in_slow;
        me->in_slow = 1;
        size_t n = heap_drain_msgs(to, false);
        if (__atomic_add_fetch(&to->x_drained, n, __ATOMIC_RELAXED) >= 4 * lab_load_relaxed(&to->x_left)) {
            lab_store_relaxed(&to->x_drained, 0);
            lab_store_relaxed(&to->x_left, heap_inbox_return(to));
        }
        me->in_slow = was;
        return;
    }
    /* a sleeping purge thread watches messages that wait (lab_arena_return_idle_aged) */
    if (!old)
        lab_pool_background_poke();
}

void lab_heap_flush_remote(lab_heap_t *h)
{
    for (unsigned i = 0; i < LAB_RB_SLOTS; i++) {
        lab_rmsg_t *m = h->rb[i];
        h->rb[i] = NULL; /* before the send (msg_open) */
        if (m)
            msg_send(h->rb_to[i], m);
    }
}

static void inbox_push(lab_heap_t *h, lab_span_t *s)
{
    uintptr_t old = lab_load_relaxed(&h->inbox);
    do {
        s->next = (lab_span_t *)old;
        /* release: the span's link is written before the span is published */
    } while (!__atomic_compare_exchange_n(&h->inbox, &old, (uintptr_t)s, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    if (!old)
        lab_pool_background_poke(); /* as in msg_send */
}

static bool list_has(lab_block_t *l, lab_block_t *b)
{
    for (; l; l = lab_link_get(l))
        if (l == b)
            return true;
    return false;
}

static bool ready_has(lab_heap_t *h, unsigned cls, const lab_block_t *b);

void lab_span_free_suspect(lab_heap_t *h, lab_span_t *s, lab_block_t *b)
{
    /* a parked span's list is read only once it is taken back; one the purge gave back holds
     * no block */
    unsigned c = s->cls;
    if (heap_parked(h, c) && h->cur[c] == s && !heap_unpark(h, c))
        lab_fatal("double free of", b);
    /* nothing out: every block of it is free (or the purge took its pages) */
    if (s->usedf == 0)
        lab_fatal("double free of", b);
    /* secure mode: a block waiting in the class's shuffled batch keeps its free key (below) */
    if (h->ready && ready_has(h, s->cls, b))
        lab_fatal("double free of", b);
    /* the transit key: another thread freed it and holds it (reuse list or message) */
    if (b->key == (lab_block_key(b, lab_free_key) ^ 1))
        lab_fatal("double free of", b);
    /* the owner may walk its remote list too: nothing on it is reused before it collects */
    if (list_has(s->free, b) ||
        list_has((lab_block_t *)(__atomic_load_n(&s->remote, __ATOMIC_ACQUIRE) & LAB_REMOTE_PTR), b))
        lab_fatal("double free of", b);
    /* the key was the program's own data: an ordinary free */
    lab_span_push_own(h, s, b, lab_block_key(b, lab_free_key));
}

/* The old way, for callers without a live ordinary heap (signal heaps, exiting threads): push on
 * the span's own remote list, one CAS per block. */
static void span_free_remote_now(lab_span_t *s, lab_block_t *b)
{
    b->key = lab_block_key(b, lab_free_key);
    uintptr_t old = lab_load_relaxed(&s->remote), nw;
    do {
        lab_link_set(b, (lab_block_t *)(old & LAB_REMOTE_PTR));
        nw = (uintptr_t)b | ((old & ~(LAB_REMOTE_COUNT1 - 1)) + LAB_REMOTE_COUNT1);
        /* release: the block's link is written before the owner can collect it; acquire: when
         * we take NOTIFY, the owner's last writes to the span (its list links) happen before
         * ours to s->next in inbox_push (free on x86-64: lock cmpxchg is a full barrier) */
    } while (!__atomic_compare_exchange_n(&s->remote, &old, nw, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    if (old & LAB_REMOTE_NOTIFY)
        inbox_push(s->heap, s);
}

/* Reuse bounds. A list holds blocks for the thread's next mallocs of the class; when it is
 * full, a free goes to the block's owner (or, the thread's own, to its span), and when it is dry,
 * malloc takes a block from a span, freed long ago, its lines cold. A thread whose frees and
 * mallocs of a class take turns at random (larson: a shared table's slots replaced) walks its
 * list between the two ends, the more often the shorter the list; one that only frees a class
 * fills the list once and keeps it full. So each list has its own bound: it doubles (up to
 * LAB_REUSE_MAX) when the list runs dry after it was found full since it last did, and halves
 * (down to LAB_REUSE_MIN) when LAB_REUSE_OVERS frees of other heaps' blocks found it full without
 * its running dry in between, the blocks past the new bound going home: a thread that frees more
 * than it allocates keeps at most the low bound of each class, as before there were bounds to
 * grow. An aside heap's own frees that find the list at half (lab_span_free_aside) count for the
 * growth only: a batch of its own frees is not a thread that only frees. */
_Static_assert(LAB_REUSE_OVERS == 1 << (8 * sizeof(((lab_reuse_t *)0)->over)), "over wraps at LAB_REUSE_OVERS");
_Static_assert(LAB_REUSE_MIN >= 2 * LAB_REUSE_ON && LAB_REUSE_MAX >= LAB_REUSE_MIN && LAB_REUSE_MAX <= 16384,
               "bounds fit the list's int16_t floor and leave room to turn a list on");

/* Every reuse list of h gets the bound b (0: lists off), its count of full frees cleared. */
static void heap_reuse_bound(lab_heap_t *h, unsigned b)
{
    for (unsigned cls = 0; cls < LAB_DIRECT_CLASSES; cls++) {
        h->reuse[cls].floor = (int16_t)-(int)b;
        h->reuse[cls].over = 0;
    }
}

void lab_heap_reuse_off(lab_heap_t *h, unsigned cls)
{
    lab_reuse_t *r = &h->reuse[cls];
    r->usedf = 0;
    r->flags = 0; /* the slots no longer point at it */
    if (r->over && r->floor != 0 && r->floor > -LAB_REUSE_MAX)
        r->floor = (int16_t)(2 * r->floor > -LAB_REUSE_MAX ? 2 * r->floor : -LAB_REUSE_MAX);
    r->over = 0;
    heap_set_cur(h, cls, h->cur[cls]);
}

static void span_send(lab_heap_t *me, lab_span_t *s, lab_block_t *b, uintptr_t key);

/* Send the blocks of the reuse list r home (keep of them: the first keep) and count them out. */
static void heap_reuse_send(lab_heap_t *h, lab_reuse_t *r, unsigned keep)
{
    uintptr_t key = lab_load_relaxed(&lab_free_key);
    lab_block_t *b = r->free, *last = NULL; /* the last block kept */
    for (unsigned i = 0; i < keep && b; i++)
        last = b, b = lab_link_get(b);
    if (last)
        lab_link_set(last, NULL);
    else
        r->free = NULL;
    while (b) {
        lab_block_t *next = lab_link_get(b);
        r->usedf++;
        span_send(h, (lab_span_t *)lab_own_desc((uintptr_t)b), b, key); /* counted when it entered */
        b = next;
    }
}

/* Give the blocks of the reuse lists to their owners; the bounds start again from the low one. */
static void heap_reuse_flush(lab_heap_t *h)
{
    for (unsigned cls = 1; cls < LAB_DIRECT_CLASSES; cls++) {
        lab_reuse_t *r = &h->reuse[cls];
        heap_reuse_send(h, r, 0);
        r->over = 0; /* the bound starts low again, not doubled by reuse_off first */
        if (r->floor)
            r->floor = -LAB_REUSE_MIN;
        lab_heap_reuse_off(h, cls);
    }
}

void lab_span_free_shrink(lab_heap_t *h, lab_span_t *s, lab_block_t *b)
{
    lab_reuse_t *r = &h->reuse[s->cls];
    if (r->floor < -LAB_REUSE_MIN) { /* not at the low bound already */
        int was = h->in_slow; /* (from a free, the heap's own: its messages change) */
        h->in_slow = 1;
        r->floor = (int16_t)(r->floor / 2 < -LAB_REUSE_MIN ? r->floor / 2 : -LAB_REUSE_MIN);
        heap_reuse_send(h, r, (unsigned)-r->floor);
        h->in_slow = was;
    }
    lab_span_send(s, b);
}

/* The heap's first reuse list turns on: blocks of other heaps are freed here and handed out
 * again. From now on the owner's frees into a span that is not its class's current one go to
 * the reuse list too (LIFO: the next malloc of the size takes the block whose lines the program
 * has just read), not to a span malloc may take from much later, the lines cold by then. Such
 * spans lose the heap's tag in the fast map, or a whole one gets LAB_FMAP_WHOLE beside it
 * (span_tag_aside), so that free() sends their blocks the other way (lab_free_whole, from the
 * entry alone for a whole span; else lab_free_other and lab_span_free_aside) and the fast path
 * pays nothing for it.
 * The walk reaches the listed spans only: a span full at this moment (off its list, waiting or in
 * the inbox) keeps its tag, and its frees their fast way, until it has been current once
 * (heap_set_cur). */
static void heap_aside_on(lab_heap_t *h)
{
    h->aside = 1;
    for (unsigned cls = 1; cls < LAB_DIRECT_CLASSES; cls++) {
        (void)heap_unpark(h, cls);
        for (lab_span_t *s = h->cur[cls] ? h->cur[cls]->next : NULL; s; s = s->next)
            span_tag_aside(h, s);
    }
}

/* lab_span_free_aside's other case: the list at half its bound (or a class above 1 KiB). */
static lab_noinline void aside_full(lab_heap_t *h, lab_span_t *s, lab_block_t *b, uintptr_t bkey)
{
    unsigned cls = s->cls;
    lab_reuse_t *r = cls < LAB_DIRECT_CLASSES ? &h->reuse[cls] : NULL;
    /* found full, so the bound may grow when the list next runs dry (reuse bounds, above); not
     * counted towards halving it: the heap's own batch frees are not a thread that only frees */
    if (r && !r->over)
        r->over = 1;
    /* a run of frees that found their lists full: a batch is being freed, faster than malloc
     * takes blocks back, so the span takes the fast path again (until it is next current) */
    if (r && ++h->aside_full > LAB_ASIDE_BATCH && h->cur[cls] != s)
        lab_pool_run_tag((lab_page_t *)s, s->h.order, h->ftag);
    lab_span_push_own(h, s, b, bkey);
}

void lab_span_free_aside(lab_heap_t *h, lab_span_t *s, lab_block_t *b, uintptr_t bkey)
{
    unsigned cls = s->cls;
    lab_reuse_t *r = cls < LAB_DIRECT_CLASSES ? &h->reuse[cls] : NULL;
    /* half the bound (the full one cost larson8 2-3 MiB more peak RSS, for no clear time) */
    if (r && (int32_t)r->usedf > r->floor / 2) {
        h->aside_full = 0;
        h->st.frees++;
        b->key = bkey ^ 1; /* the transit form: a second free aborts (lab_span_free_suspect) */
        lab_link_set(b, r->free);
        r->free = b;
        r->usedf--;
        if (!r->flags && (int32_t)r->usedf <= -LAB_REUSE_ON)
            lab_heap_reuse_on(h, cls);
        return;
    }
    return aside_full(h, s, b, bkey); /* a tail call: the push above saves no registers */
}

void lab_heap_reuse_on(lab_heap_t *h, unsigned cls)
{
    if (lab_unlikely(!h->aside) && h->ftag)
        heap_aside_on(h);
    h->reuse[cls].flags = LAB_SPAN_REUSE;
    heap_point_direct(h, cls, lab_heap_reuse(h, cls));
}

void lab_span_send(lab_span_t *s, lab_block_t *b)
{
    span_send(lab_tls_heap, s, b, lab_load_relaxed(&lab_free_key));
    /* counted in the heap span_send may have made; a thread without a live heap of its own (its
     * pointer is then a shared static heap, or one another thread may adopt) counts globally */
    lab_heap_t *h = lab_tls_heap;
    if (lab_likely(h->state == LAB_HEAP_LIVE))
        h->st.remote_frees++;
    else
        lab_add_relaxed(&remote_frees_heapless, 1);
}

/* span_send's rare case: no open message for `to`. A new message (a block of the caller's own
 * heap), in a free slot or in the slot of the fullest message, which is sent. Returns its slot,
 * or LAB_RB_SLOTS when no message could be had (then the block went on the span's remote list). */
static lab_noinline lab_cold unsigned msg_open(lab_heap_t *me, lab_heap_t *to, lab_span_t *s, lab_block_t *b)
{
    /* the block is ours to use for this only after the malloc below, which may run our slow
     * path (but never span_send) */
    int e = errno;
    /* the slow path clears in_slow when it is done: a caller that had set it (heap_tidy, whose
     * reuse lists flush through here) keeps it set for the rest of its change */
    int in_slow = me->in_slow;
    lab_rmsg_t *m = lab_heap_alloc_small_slow(me, lab_size_class(sizeof *m));
    me->in_slow = in_slow;
    if (!m) {
        errno = e;
        span_free_remote_now(s, b);
        return LAB_RB_SLOTS;
    }
    me->st.mallocs--; /* not the program's */
    m->n = m->bytes = 0;
    unsigned best = 0;
    for (unsigned k = 0; k < LAB_RB_SLOTS; k++) {
        if (!me->rb[k]) {
            best = k;
            break;
        }
        if (me->rb[k]->bytes > me->rb[best]->bytes)
            best = k;
    }
    /* the slot empty while its message is sent: the send may drain an ended thread's heap, past
     * code a signal handler's frees may interrupt (found by review: a handler appended to the
     * message just sent and drained, whose count the drain had overwritten) */
    lab_rmsg_t *old = me->rb[best];
    me->rb[best] = NULL;
    if (old)
        msg_send(me->rb_to[best], old);
    me->rb_to[best] = to;
    me->rb[best] = m;
    return best;
}

static void span_send(lab_heap_t *me, lab_span_t *s, lab_block_t *b, uintptr_t key)
{
    lab_heap_t *to = s->heap;
    /* a thread that only frees (a consumer) gets a heap too, for its outgoing batches (not one
     * whose heap was retired at its exit) */
    if (lab_unlikely(me->state == LAB_HEAP_EMPTY) && !me->gfp && !heap_retired)
        me = lab_heap_get_slow();
    if (lab_unlikely(!me || me->state != LAB_HEAP_LIVE || me->gfp)) {
        span_free_remote_now(s, b);
        return;
    }
    unsigned i = 0;
    while (i < LAB_RB_SLOTS && !(me->rb_to[i] == to && me->rb[i]))
        i++;
    if (lab_unlikely(i == LAB_RB_SLOTS) && (i = msg_open(me, to, s, b)) == LAB_RB_SLOTS)
        return;
    me->rb_last = i; /* lab_span_free_remote looks there first */
    if (lab_msg_append(me, i, s, b, lab_block_key(b, key) ^ 1))
        lab_heap_msg_full(me, i); /* last: its poke is a tail call, with nothing kept across it */
}

void lab_double_free(const void *b) { lab_fatal("double free of", b); }

void lab_heap_msg_full(lab_heap_t *h, unsigned i)
{
    lab_rmsg_t *m = h->rb[i];
    h->rb[i] = NULL;
    msg_send(h->rb_to[i], m);
}

/* ------------------------------------------------------------------------------------------
 * secure mode */

#define LAB_SECURE_BATCH 64

typedef struct lab_ready {
    uint32_t n;
    lab_block_t *b[LAB_SECURE_BATCH];
} lab_ready_t;

/* Whether b waits in h's batch of class cls (h->ready set). */
static bool ready_has(lab_heap_t *h, unsigned cls, const lab_block_t *b)
{
    lab_ready_t *r = &h->ready[cls];
    for (uint32_t i = 0; i < r->n; i++)
        if (r->b[i] == b)
            return true;
    return false;
}

static inline uint64_t heap_rand(lab_heap_t *h)
{
    /* xorshift64*: enough to make the order unpredictable from outside without the seed */
    uint64_t x = h->rng;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    h->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

void *lab_heap_alloc_secure(lab_heap_t *h, unsigned cls)
{
    if (lab_unlikely(h->state != LAB_HEAP_LIVE)) {
        if (h->state != LAB_HEAP_NONE && heap_retired && lab_heap_past_last_round())
            return alloc_past_last_round(cls);
        if (h->state == LAB_HEAP_NONE || !(h = lab_heap_get_slow())) {
            errno = ENOMEM;
            return NULL;
        }
    }
    if (lab_unlikely(!h->ready)) {
        h->ready = lab_meta_alloc(sizeof(lab_ready_t) * LAB_NR_CLASSES);
        if (!h->ready)
            return lab_heap_alloc_small_slow(h, cls);
        h->rng = (lab_load_relaxed(&lab_free_key) ^ (uintptr_t)h) | 1;
    }
    lab_ready_t *r = &h->ready[cls];
    if (!r->n) {
        /* a batch of up to 64 blocks (at most about 128 KiB, at least 4 blocks), taken from the
         * spans the ordinary way (they count as allocated while they wait here), then shuffled */
        size_t bs = lab_class_size(cls);
        uint32_t want = (uint32_t)lab_max((size_t)4, lab_min((size_t)LAB_SECURE_BATCH, ((size_t)128 << 10) / bs));
        uint32_t n = 0;
        uint32_t slow = 0;
        uintptr_t key = lab_load_relaxed(&lab_free_key);
        while (n < want) {
            lab_span_t *s = h->cur[cls];
            lab_block_t *b;
            if (s && (b = s->free)) {
                s->free = lab_link_get(b);
                s->usedf++;
            } else {
                /* refill, collect, carve or a new span: the ordinary slow path, one block */
                if (!(b = lab_heap_alloc_small_slow(h, cls)))
                    break;
                slow++;
            }
            /* the free key while it waits, cleared when it is handed out: a double free of a
             * block freed, then taken back into the batch, is caught (lab_span_free_suspect;
             * cleared here, the block was pushed on its span's list again and handed out
             * twice: found by review) */
            b->key = lab_block_key(b, key);
            r->b[n++] = b;
        }
        h->st.mallocs -= slow;
        if (!n)
            return NULL; /* errno set by the slow path */
        for (uint32_t i = n - 1; i > 0; i--) {
            uint32_t j = (uint32_t)((heap_rand(h) >> 32) % (i + 1));
            lab_block_t *t = r->b[i];
            r->b[i] = r->b[j];
            r->b[j] = t;
        }
        r->n = n;
    }
    h->st.mallocs++;
    lab_block_t *b = r->b[--r->n];
    b->key = 0;
    return b;
}

/* Give the blocks waiting in the secure batches back to their spans (the caller marks in_slow). */
static void heap_return_ready(lab_heap_t *h)
{
    if (!h->ready)
        return;
    uintptr_t key = lab_load_relaxed(&lab_free_key);
    for (unsigned cls = 1; cls < LAB_NR_CLASSES; cls++) {
        lab_ready_t *r = &h->ready[cls];
        while (r->n) {
            lab_block_t *b = r->b[--r->n];
            uintptr_t a = (uintptr_t)b;
            lab_span_t *s = (lab_span_t *)lab_own_desc(a);
            b->key = lab_block_key(b, key);
            lab_link_set(b, s->free);
            s->free = b;
            if (--s->used <= 0)
                span_free_local(h, s);
        }
    }
}

void lab_arena_set_secure(void)
{
    lab_store_relaxed(&guards_max, lab_os_max_map_count() / 8);
    lab_lock(&heaps_lock);
    lab_store_relaxed(&lab_secure, 1);
    /* heaps made before this (by start-up allocations) lose their fast-path slots */
    heap_walk_t w = {heaps_all, 0};
    for (lab_heap_t *h; (h = heap_walk(&w));) {
        for (unsigned i = 0; i < LAB_SLOTS_ALL; i++)
            h->direct[i] = &lab_span_empty;
        heap_reuse_bound(h, 0);
    }
    lab_unlock(&heaps_lock);
}

/* ------------------------------------------------------------------------------------------
 * heaps: creation, adoption, abandonment */

static void heap_destructor(void *arg)
{
    (void)arg;
    if (key_rounds < UCHAR_MAX)
        key_rounds++;
    /* the last round with the heap retired before: nothing to do */
    if (key_rounds >= PTHREAD_DESTRUCTOR_ITERATIONS && lab_tls_heap->state != LAB_HEAP_LIVE)
        return;
    lab_heap_thread_exit();
    /* set again (a value of no heap): our destructor then runs in every round and knows the
     * last (lab_heap_past_last_round); glibc runs every round for such a thread, a look over
     * the keys' values each */
    if (!LAB_TSAN && key_rounds < PTHREAD_DESTRUCTOR_ITERATIONS)
        pthread_setspecific(heap_key, &key_rounds);
}

void lab_arena_thread_key_init(void)
{
    int expect = 0;
    if (__atomic_compare_exchange_n(&heap_key_state, &expect, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        int ok = pthread_key_create(&heap_key, heap_destructor) == 0;
        __atomic_store_n(&heap_key_state, ok ? 2 : 0, __ATOMIC_RELEASE);
    }
    lab_pool_thread_key_init();
}

static void free_key_init(void)
{
    static int done;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE))
        return;
    /* AT_RANDOM: 16 bytes the kernel gave this process; mixed with an address (ASLR) */
    const void *r = (const void *)getauxval(AT_RANDOM); /* not 8-byte aligned: copy it */
    uint64_t w[2] = {0, 0};
    if (r)
        memcpy(w, r, sizeof w);
    uint64_t k = w[0] ^ w[1] ^ ((uint64_t)(uintptr_t)&done * 0x9e3779b97f4a7c15u);
    k |= 1; /* odd: the transit form is the key with bit 0 cleared (one test finds both) */
    lab_store_relaxed(&lab_free_key, (uintptr_t)k);
    for (unsigned cls = 1; cls < LAB_NR_CLASSES; cls++)
        lab_store_relaxed(&lab_class_div[cls], UINT64_MAX / lab_class_size(cls) + 1);
    for (unsigned cls = 1; cls < LAB_DIRECT_CLASSES; cls++) {
        size_t bs = lab_class_size(cls);
        if (span_order(bs) != LAB_WHOLE_ORDER || span_order_min(bs) != LAB_WHOLE_ORDER)
            continue; /* (none: spans of other lengths are never whole) */
        uint32_t m = lab_fdiv_of(bs), n = (uint32_t)(((size_t)LAB_PAGE_SIZE << LAB_WHOLE_ORDER) / bs);
        lab_store_relaxed(&lab_class_whole[cls].fdiv, m);
        lab_store_relaxed(&lab_class_whole[cls].flim, lab_flim_of(bs, m, n));
    }
    for (unsigned cls = 2; cls <= LAB_SLOT_CLASSES; cls++)
        direct_first[cls] = (uint8_t)lab_direct_slot(lab_class_size(cls - 1) + 1);
    lab_pool_set_reclaim(heap_reclaim);
    /* release: the key is set before any thread sees `done` (blocks freed before use the old
     * key, which allocation clears like any other) */
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

/* Heaps made so far: the next heap's id, for its fast-map tag (a heap keeps its id for good,
 * through adoption; past 65 535 heaps, new ones get none). */
static uint32_t heap_ids;

/* A heap just allocated (zeroed): its id and tag, empty direct slots, its pool. */
static void heap_init(lab_heap_t *h, lab_pool_t *pool)
{
    free_key_init();
    uint32_t id = __atomic_add_fetch(&heap_ids, 1, __ATOMIC_RELAXED);
    if (id < (1u << (64 - LAB_FMAP_TAG_SHIFT))) {
        h->ftag = (uint64_t)id << LAB_FMAP_TAG_SHIFT;
        h->flim = LAB_FMAP_DESC_LIM;
    }
    for (unsigned i = 0; i < LAB_SLOTS_ALL; i++)
        h->direct[i] = &lab_span_empty;
    h->pool = pool;
}

/* Signal heaps asked for (lab_sig_reserve), and thread heaps made: the heaps made ready are
 * the fewer of the two numbers and the threads' plus two (handlers run at once on at most as
 * many threads as have heaps, plus a nested signal or two). A heap is about 4 KiB of metadata
 * (sizeof(lab_heap_t)): sixteen made and set up front cost a process that installs a handler
 * twenty page faults at start (python, bash), about 0.2 ms on these VMs, and the three made now
 * cost three until they were set up by the handler that first takes each (sig_heap_setup). */
static unsigned sig_want, heaps_made;
/* Ordinary heaps with a thread (under heaps_lock): the pool's count of sharers (its huge pages). */
static size_t heaps_live; /* (written under heaps_lock, read without it: lab_arena_heaps_live) */
static size_t heaps_live_add(int d)
{
    size_t n = heaps_live + (size_t)(ptrdiff_t)d;
    lab_store_relaxed(&heaps_live, n);
    return n;
}

static void sig_top_up(void); /* signal heaps, below */

_Static_assert(__builtin_offsetof(lab_heap_t, rb_to) + LAB_ROOMS_META <= 4096,
               "the heap's fields a thread's first calls write fit beside its rooms on a page");
_Static_assert(__builtin_offsetof(lab_heap_t, owner_tid) < __builtin_offsetof(lab_heap_t, rb_to),
               "every take of a heap writes owner_tid: among the first page's fields");

/* Heaps whose thread ended without retiring them. Our key destructor learns glibc's last round
 * by counting its own calls from the first, which comes a round after the heap is taken: a
 * thread whose first allocator call is in a key destructor (a library's cleanup that frees or
 * allocates; the thread itself never did) counts short, and a heap taken in the last round is
 * never retired. It stays LIVE with no thread (found by review: 8 000 such threads one after
 * another, 86-90 MB against glibc's 1.7, a heap for each). So with HEAP_SCAN_MIN heaps live a
 * heap records its thread's id when taken, and a thread about to make a heap first asks the
 * kernel about the owners of a few live ones (tgkill with signal 0: ESRCH once a thread has
 * ended) and adopts the heap of one that ended, as it would an abandoned heap: spans, lists and
 * messages as their owner left them between two calls, the way any idle owner resumes. An id
 * the kernel gave a new thread since only delays that; a heap caught mid-change (in_slow) stays
 * put, and those a fork child inherits have no id (0). Few threads: no system call at all. */
#define HEAP_SCAN_MIN  16u
#define HEAP_SCAN_EACH 4u
unsigned lab_heap_scan_min = HEAP_SCAN_MIN; /* (a variable: tests that need a fresh heap lift it) */
static lab_heap_t *heap_scan_at; /* the walk's place in heaps_all (relaxed; heaps are never freed) */

static void heap_tidy(lab_heap_t *h);
static void heap_orphan(lab_heap_t *h);

static lab_noinline lab_heap_t *heap_adopt_ended(void)
{
    lab_heap_t *h = lab_load_relaxed(&heap_scan_at);
    /* HEAP_SCAN_EACH questions to the kernel, over at most 16 times as many heaps */
    for (unsigned k = 0, steps = 0; k < HEAP_SCAN_EACH && steps < 16 * HEAP_SCAN_EACH; steps++) {
        h = h ? lab_load_relaxed(&h->next_all) : __atomic_load_n(&heaps_all, __ATOMIC_ACQUIRE);
        if (!h)
            continue; /* from the head again */
        int tid = __atomic_load_n(&h->owner_tid, __ATOMIC_ACQUIRE);
        if (tid <= 0 || lab_load_relaxed(&h->state) != LAB_HEAP_LIVE || h->signal_slot)
            continue;
        k++;
        if (!lab_os_claim_ended(&h->owner_tid, tid)) /* one adopter: -1 while it decides */
            continue;
        /* abandoned and taken again meanwhile, or caught mid-change */
        if (lab_load_relaxed(&h->state) != LAB_HEAP_LIVE || lab_load_relaxed(&h->in_slow)) {
            __atomic_store_n(&h->owner_tid, tid, __ATOMIC_RELEASE);
            continue;
        }
        lab_store_relaxed(&heap_scan_at, h);
        return h;
    }
    lab_store_relaxed(&heap_scan_at, h);
    return NULL;
}

lab_noinline lab_heap_t *lab_heap_get_slow(void)
{
    lab_heap_t *h = lab_tls_heap;
    if (h->state == LAB_HEAP_LIVE)
        return h;
    free_key_init();
    lab_pool_t *pool = lab_pool_default();
    if (!pool)
        return NULL;
    /* the pool's sharers follow heaps_live under the lock (a relaxed store, no lock of its own) */
    lab_lock(&heaps_lock);
    h = heaps_abandoned;
    if (h) {
        heaps_abandoned = h->next_abandoned;
        lab_pool_set_sharers(pool, heaps_live_add(1));
    }
    lab_unlock(&heaps_lock);
    if (!h && lab_load_relaxed(&heaps_live) >= lab_heap_scan_min && (h = heap_adopt_ended())) {
        /* LIVE already, and counted so: this thread retires it as its own thread would have
         * (heap_retire, short of giving it up), then takes it as an abandoned heap is taken */
        lab_tls_heap = h;
        heap_tidy(h);
        heap_orphan(h);
        lab_nursery_close(h);
        heap_reuse_bound(h, 0);
        lab_store_relaxed(&h->x_drained, 0);
        lab_store_relaxed(&h->x_left, 0);
    } else if (!h) {
        /* the thread's rooms first: they and the heap are the first metadata a thread writes,
         * and the heap's fields up to its reuse lists (all its first calls touch, 2.2 KiB: the
         * struct puts them first) fit beside the rooms on one page. Made after the heap, the
         * rooms sat alone on its second page; with the reuse lists, the heap's state and its
         * nursery fields past the page, the first thread wrote both (the first thread's rooms
         * start a page: one page fault less in every process). */
        lab_pool_rooms_prepare();
        h = lab_meta_alloc(sizeof *h);
        if (!h)
            return NULL;
        heap_init(h, pool);
        lab_lock(&heaps_lock);
        h->next_all = heaps_all;
        __atomic_store_n(&heaps_all, h, __ATOMIC_RELEASE); /* heap_adopt_ended walks without the lock */
        lab_store_relaxed(&heaps_made, heaps_made + 1); /* (read without the lock: lab_sig_reserve) */
        lab_pool_set_sharers(pool, heaps_live_add(1));
        bool more = sig_want != 0; /* handlers installed: maybe one signal heap more */
        lab_unlock(&heaps_lock);
        if (more)
            sig_top_up(); /* (a thread heap is never made in a signal handler) */
    }
    h->next_abandoned = NULL;
    /* (every take: the id of a thread gone since must not stay with the heap) */
    int tid = lab_load_relaxed(&heaps_live) >= lab_heap_scan_min / 2 ? (int)lab_os_gettid() : 0;
    __atomic_store_n(&h->owner_tid, tid, __ATOMIC_RELEASE);
    lab_store_relaxed(&h->state, LAB_HEAP_LIVE); /* relaxed: msg_send reads it (other threads) */
    heap_reuse_bound(h, lab_load_relaxed(&lab_secure) ? 0 : LAB_REUSE_MIN);
    lab_tls_heap = h;
    /* acquire pairs with the release in key_init */
    if (__atomic_load_n(&heap_key_state, __ATOMIC_ACQUIRE) == 2)
        pthread_setspecific(heap_key, h);
    return h;
}

/* Give back what the heap can: inbox, remote frees, empty spans. */
static void heap_tidy(lab_heap_t *h)
{
    h->in_slow = 1;
    heap_return_ready(h);
    heap_reuse_flush(h);
    lab_heap_flush_remote(h);
    if (lab_load_relaxed(&h->msgs))
        heap_take_msgs(h);
    if (lab_load_relaxed(&h->inbox))
        heap_take_inbox(h);
    for (unsigned cls = 1; cls < LAB_NR_CLASSES; cls++) {
        (void)heap_unpark(h, cls);
        lab_span_t *s = h->cur[cls];
        while (s) {
            lab_span_t *next = s->next;
            span_collect(s);
            if (s->usedf == 0) {
                list_remove(h, s);
                span_release(h, s);
            }
            s = next;
        }
        kept_release(h, cls, true);
    }
    /* no empty span left listed: heap_reclaim's record of them starts again */
    memset(h->reclaimed_at, 0, sizeof h->reclaimed_at);
    memset(h->held_to, 0, sizeof h->held_to);
    h->in_slow = 0;
}

/* A heap without a thread (its thread ended; heap_tidy has run) waits for a new thread to adopt
 * it, maybe for good (last in, first out). The blocks its listed spans still have out are freed
 * meanwhile by other threads, onto the spans' remote lists (msg_send), which only an owner
 * collects: such spans stayed whole, however few of their blocks were still in use, until the
 * heap's next thread reached them (`wl mstress 4 2000`, threads that end while others free
 * their blocks, sampled during the run: 100 to 170 such spans, 3.5 to 5.5 MiB of the 8 to 10 in
 * use; 24 to 56 with this, peak RSS 13.2 -> 12.2 MiB). So every listed span is orphaned: taken
 * off its list and put on the inbox, as a full span waits there, with the number of its blocks
 * out; the senders' look through the inbox (heap_inbox_return) gives it back to the pool once
 * that many are on its remote list, and the heap's next owner relists the others from its inbox
 * (heap_take_inbox). */
static void heap_orphan(lab_heap_t *h)
{
    h->in_slow = 1;
    for (unsigned cls = 1; cls < LAB_NR_CLASSES; cls++) {
        lab_span_t *s;
        while ((s = h->cur[cls])) {
            list_remove(h, s);
            /* blocks out: at least one (heap_tidy gave back the empty spans), fewer than 2^16 */
            lab_store_relaxed(&s->orphan_out, (uint16_t)s->usedf);
            s->usedf |= LAB_SPAN_FULL; /* the owner's frees into it take the slow way */
            inbox_push(h, s);
        }
    }
    h->in_slow = 0;
}

void lab_arena_reclaim(void)
{
    /* Abandoned heaps have no thread: detach them all (a thread wanting a heap meanwhile makes
     * a new one), give back what each can, and put them back for adoption. Other threads reach
     * an abandoned heap only through its atomic words (messages, inbox, spans' remote lists). */
    lab_lock(&heaps_lock);
    lab_heap_t *list = heaps_abandoned, *last = NULL;
    heaps_abandoned = NULL;
    lab_unlock(&heaps_lock);
    for (lab_heap_t *h = list; h; h = h->next_abandoned) {
        heap_tidy(h);
        heap_orphan(h);
        /* the senders' next message looks through the inbox at once */
        lab_store_relaxed(&h->x_drained, 0);
        lab_store_relaxed(&h->x_left, 0);
        last = h;
    }
    if (list) {
        lab_lock(&heaps_lock);
        last->next_abandoned = heaps_abandoned;
        heaps_abandoned = list;
        lab_unlock(&heaps_lock);
    }
}

/* ---- memory freed to a thread that makes no allocator call ----
 * Blocks other threads free wait in their owner's messages until the owner next takes a slow
 * path. An owner that idles (blocked, sleeping, computing) would keep them for good, so
 * malloc_trim moves them on without the owner, through the words other threads may touch: each
 * block goes on its span's remote list (what a thread without a heap of its own does), and a
 * span that the owner put off its list full, and whose remote list now holds every one of its
 * blocks, is given back to the pool. That is safe without the owner: a span off its list, out of
 * the inbox, with all its blocks freed, is one the owner cannot reach again (it holds no block of
 * it to free, it allocates only from listed spans, and nothing else of the heap points at it).
 * Any other span goes back on the owner's inbox, as the remote free that put it there meant. */

/* Every block of a span on its remote list: its count (bits 48..63) is the span's capacity, or
 * for an orphan (heap_orphan) the blocks it had out when it was orphaned. Such a span is off its
 * list (malloc cannot take a block of it), so its blocks out only ever come back; one freed
 * locally by the heap's next owner, or a remote list that owner collected, leaves the count
 * below that number for good. */
static bool span_all_remote(const lab_span_t *s)
{
    /* acquire: the blocks' links and keys were written before they were pushed */
    uint32_t n = (uint32_t)(__atomic_load_n(&s->remote, __ATOMIC_ACQUIRE) >> 48);
    uint32_t out = lab_load_relaxed(&s->orphan_out);
    return n == (out ? out : s->capacity);
}

/* The spans of h's inbox whose blocks are all back go to the pool; returns how many it left. */
static size_t heap_inbox_return(lab_heap_t *h)
{
    size_t left = 0;
    /* acquire pairs with the release CAS in inbox_push */
    lab_span_t *s = (lab_span_t *)__atomic_exchange_n(&h->inbox, 0, __ATOMIC_ACQUIRE);
    while (s) {
        lab_span_t *next = s->next;
        if (!span_all_remote(s) || !span_release_idle(h, s)) {
            inbox_push(h, s);
            left++;
        }
        s = next;
    }
    return left;
}

static void heap_return_idle(lab_heap_t *h)
{
    (void)heap_drain_msgs(h, false);
    (void)heap_inbox_return(h);
}

void lab_arena_return_idle(void)
{
    lab_lock(&heaps_lock);
    /* heaps are never freed and next_all never changes once published: the walk needs the
     * lock only for the head */
    lab_heap_t *first = heaps_all;
    lab_unlock(&heaps_lock);
    /* any heap but the caller's (heap_tidy has done that one): live, abandoned (a reclaim may
     * be tidying it: it takes the same words by exchange) or a signal heap alike */
    heap_walk_t w = {first, 0};
    for (lab_heap_t *h; (h = heap_walk(&w));) {
        if (h == lab_tls_heap)
            continue;
        if (lab_load_relaxed(&h->msgs) || lab_load_relaxed(&h->inbox))
            heap_return_idle(h);
        if (lab_load_relaxed(&h->kept_bytes))
            for (unsigned cls = 1; cls < LAB_NR_CLASSES; cls++)
                kept_release(h, cls, false);
        for (unsigned cls = 1; cls < LAB_NR_CLASSES; cls++) {
            uintptr_t v = lab_load_relaxed(&h->parked[cls]);
            if (v && v != PARK_GONE)
                (void)park_purge(h, cls, 0);
        }
    }
}

/* The background thread's watch over h's parked spans: one parked for a whole delay (the same
 * word, generation and all) goes back to the pool. Returns when to look again. */
static uint64_t park_watch(lab_heap_t *h, uint64_t now, unsigned delay)
{
    uint64_t next = UINT64_MAX;
    struct lab_kept_watch *w = h->bg_kept;
    for (unsigned cls = 1; cls < LAB_NR_CLASSES; cls++) {
        uintptr_t v = lab_load_relaxed(&h->parked[cls]);
        if (v == PARK_GONE)
            v = 0; /* nothing left to give back */
        if (!w) {
            if (!v)
                continue;
            if (!(w = h->bg_kept = lab_meta_alloc(sizeof *w)))
                return next; /* no memory for the watch: the span waits for its owner or a trim */
        }
        if (lab_idle_watch(v, &w->park_seen[cls], &w->park_ms[cls], now, delay, &next))
            (void)park_purge(h, cls, v);
    }
    return next;
}

/* The background thread's watch over h's kept spans: a class list unchanged for a whole delay
 * (the owner neither took nor kept a span of that class) goes back to the pool. Returns when to
 * look again (UINT64_MAX: nothing watched); *gave: a list was given back. */
static uint64_t kept_watch(lab_heap_t *h, uint64_t now, unsigned delay, bool *gave)
{
    uint64_t next = UINT64_MAX;
    struct lab_kept_watch *w = h->bg_kept;
    if (!lab_load_relaxed(&h->kept_bytes)) {
        /* seen_ms[0] (no class 0): some class was watched since the last reset */
        if (w && w->seen_ms[0])
            memset(w->seen_ms, 0, sizeof w->seen_ms);
        return next;
    }
    if (!w && !(w = h->bg_kept = lab_meta_alloc(sizeof *w)))
        return next; /* no memory for the watch: the spans wait for malloc_trim or the owner */
    w->seen_ms[0] = 1;
    for (unsigned cls = 1; cls < LAB_NR_CLASSES; cls++)
        if (lab_idle_watch(lab_load_relaxed(&h->kept[cls]), &w->seen[cls], &w->seen_ms[cls], now, delay, &next)) {
            kept_release(h, cls, false);
            *gave = true;
        }
    return next;
}

uint64_t lab_arena_return_idle_aged(void)
{
    unsigned delay = lab_pool_default_delay();
    if (delay == ~0u)
        return UINT64_MAX;
    uint64_t now = lab_clock_ms(), next = UINT64_MAX;
    lab_pool_t *pool = NULL;
    lab_lock(&heaps_lock);
    lab_heap_t *first = heaps_all;
    lab_unlock(&heaps_lock);
    heap_walk_t w = {first, 0};
    for (lab_heap_t *h; (h = heap_walk(&w));) {
        if (h == lab_tls_heap)
            continue;
        bool gave = false;
        next = lab_min(next, kept_watch(h, now, delay, &gave));
        next = lab_min(next, park_watch(h, now, delay));
        if (gave)
            pool = h->pool;
        uintptr_t m = lab_load_relaxed(&h->msgs), ib = lab_load_relaxed(&h->inbox);
        /* spans this thread put back on the inbox last time (not all their blocks had come
         * back) are not news: watching them would wake the thread every delay for good */
        if (!m && (!ib || ib == h->bg_inbox_left)) {
            h->bg_seen_ms = 0;
            continue;
        }
        if (m != h->bg_msgs || ib != h->bg_inbox || !h->bg_seen_ms) {
            /* new, or taken and sent again since: watch from now */
            h->bg_msgs = m;
            h->bg_inbox = ib;
            h->bg_seen_ms = now;
        } else if (now >= h->bg_seen_ms + delay) {
            /* the same for a whole delay: the owner makes no allocator call */
            heap_return_idle(h);
            h->bg_inbox_left = lab_load_relaxed(&h->inbox);
            h->bg_seen_ms = 0;
            pool = h->pool;
            continue;
        }
        next = lab_min(next, h->bg_seen_ms + delay - now + 1);
    }
    /* the spans given back sit in this thread's rooms: on to the shared lists, for the purge */
    if (pool)
        lab_pool_room_drain(pool);
    return next;
}

void lab_heap_collect(void)
{
    lab_heap_t *h = lab_tls_heap;
    if (h->state == LAB_HEAP_LIVE)
        heap_tidy(h);
}

void lab_nursery_release(lab_page_t *d) { lab_pool_free_order(lab_desc_chunk(d)->pool, d, LAB_NURSERY_ORDER); }

void lab_nursery_close(lab_heap_t *h)
{
    lab_page_t *d = h->nursery;
    if (!d)
        return;
    h->nursery = NULL;
    /* acq_rel: the frees' decrements and our last writes order with the release */
    if (__atomic_fetch_or(&d->above[2], LAB_NURSERY_CLOSED, __ATOMIC_ACQ_REL) == 0)
        lab_nursery_release(d);
}

/* The calling thread's live heap h given up: tidied, its spans orphaned, abandoned for the next
 * thread to adopt. */
static void heap_retire(lab_heap_t *h)
{
    heap_tidy(h);
    heap_orphan(h);
    lab_nursery_close(h);
    lab_tls_heap = &lab_heap_empty;
    heap_retired = 1;
    heap_reuse_bound(h, 0);
    lab_store_relaxed(&h->x_drained, 0);
    lab_store_relaxed(&h->x_left, 0);
    lab_lock(&heaps_lock);
    lab_store_relaxed(&h->state, LAB_HEAP_ABANDONED);
    h->next_abandoned = heaps_abandoned;
    heaps_abandoned = h;
    bool last = heaps_live_add(-1) == 0;
    lab_pool_set_sharers(h->pool, heaps_live);
    lab_unlock(&heaps_lock);
    /* maybe the program's last thread: the purge thread looks whether it is alone (purge.c) */
    if (last)
        lab_pool_background_wake();
}

void lab_heap_thread_exit(void)
{
    if (lab_pool_handler_depth)
        lab_pool_handler_thread_exit();
    lab_heap_t *h = lab_tls_heap;
    if (h->state == LAB_HEAP_LIVE)
        heap_retire(h);
    lab_pool_thread_exit();
}

size_t lab_arena_heaps_live(void) { return lab_load_relaxed(&heaps_live); }

/* ------------------------------------------------------------------------------------------
 * signal heaps */

static uint64_t sig_free;   /* bit i: sig_heaps[i] exists and is free (atomic) */
static lab_pool_t *sig_pool; /* the pool signal heaps draw from (set before any is made) */
static unsigned sig_count;  /* heaps made so far (written under heaps_lock, atomically: read
                               without it in lab_sig_reserve, as sig_want and heaps_made are) */

void lab_sig_reserve(unsigned n)
{
    /* nothing to do, as at every sigaction after the first: return before the lock, whose
     * writes would copy its page in a fork child, and in the parent after every fork (a shell
     * sets handlers around each command it forks) */
    unsigned want = lab_load_relaxed(&sig_want);
    if (want >= lab_min(n, (unsigned)SIG_HEAPS) &&
        lab_load_relaxed(&sig_count) >= lab_min(want, lab_load_relaxed(&heaps_made) + 2))
        return;
    lab_lock(&heaps_lock);
    lab_store_relaxed(&sig_want, lab_max(sig_want, lab_min(n, (unsigned)SIG_HEAPS)));
    lab_unlock(&heaps_lock);
    sig_top_up();
}

static void sig_top_up(void)
{
    lab_pool_t *pool = lab_pool_default();
    if (!pool)
        return;
    free_key_init(); /* here, not in the handler that sets a heap up (heap_init draws it) */
    lab_lock(&heaps_lock);
    unsigned n = lab_min(sig_want, heaps_made + 2);
    while (sig_count < n) {
        lab_unlock(&heaps_lock);
        lab_heap_t *h = lab_meta_alloc(sizeof *h);
        lab_lock(&heaps_lock);
        if (!h)
            break;
        if (sig_count >= n) {
            /* another thread topped up while this one allocated (without this test each made
             * one, past n: past SIG_HEAPS too, near it, out of sig_heaps[] and sig_free) */
            lab_unlock(&heaps_lock);
            lab_meta_free(h, sizeof *h);
            return;
        }
        lab_store_relaxed(&sig_pool, pool);
        sig_heaps[sig_count] = h;
        /* release: the slot and the pool are written before a handler can take the heap */
        __atomic_fetch_or(&sig_free, 1ull << sig_count, __ATOMIC_RELEASE);
        lab_store_relaxed(&sig_count, sig_count + 1);
    }
    lab_unlock(&heaps_lock);
}

/* The thread's own heap while a handler runs on a signal heap (the outermost handler's prev): a
 * fork from that handler must not hand it to the child's other threads (lab_arena_fork_child). */
static __thread lab_heap_t *sig_outer;
static __thread uint64_t sig_mine; /* the signal heaps this thread's handlers hold (bits of sig_free) */

/* The first handler to take signal heap i sets it up: no lock, no system call (the key is
 * drawn and the pool made before any signal heap is), only its own page written. */
static lab_noinline void sig_heap_setup(lab_heap_t *h, unsigned i)
{
    heap_init(h, lab_load_relaxed(&sig_pool));
    h->gfp = LAB_GFP_ATOMIC;
    h->state = LAB_HEAP_LIVE;
    h->signal_slot = (int)i + 1;
    /* release: the heap is complete before a walk (heap_walk) reads it */
    __atomic_fetch_or(&sig_ready, 1ull << i, __ATOMIC_RELEASE);
}

unsigned lab_sig_heaps_set_up(void)
{
    return (unsigned)__builtin_popcountll(__atomic_load_n(&sig_ready, __ATOMIC_ACQUIRE));
}

/* lab_heap_none's fields (any thread, in a handler): the same values whoever writes them, each
 * store atomic, so handlers racing here on two threads need no lock; its state last. */
static lab_noinline lab_cold void heap_none_setup(void)
{
    for (unsigned i = 0; i < LAB_SLOTS_ALL; i++)
        lab_store_relaxed(&lab_heap_none.direct[i], &lab_span_empty);
    lab_store_relaxed(&lab_heap_none.gfp, LAB_GFP_ATOMIC);
    lab_store_relaxed(&lab_heap_none.state, LAB_HEAP_NONE);
}

lab_heap_t *lab_sig_enter(void)
{
    lab_heap_t *prev = lab_tls_heap, *h = &lab_heap_none;
    /* the thread's own heap: not a signal heap, nor the none a handler gets when all are taken
     * (a handler nested under one on none recorded none, and cleared the record at its exit) */
    if (!prev->signal_slot && prev != &lab_heap_none)
        sig_outer = prev;
    uint64_t m = __atomic_load_n(&sig_free, __ATOMIC_ACQUIRE);
    while (m) {
        uint64_t bit = m & -m;
        /* acquire: pairs with the release in reserve/exit, the heap's state is ours */
        if (__atomic_compare_exchange_n(&sig_free, &m, m & ~bit, true, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
            h = sig_heaps[__builtin_ctzll(bit)];
            sig_mine |= bit;
            /* acquire: pairs with the release below (a heap another handler set up) */
            if (lab_unlikely(!(__atomic_load_n(&sig_ready, __ATOMIC_ACQUIRE) & bit)))
                sig_heap_setup(h, __builtin_ctzll(bit));
            break;
        }
    }
    if (lab_unlikely(h == &lab_heap_none) && lab_load_relaxed(&lab_heap_none.state) != LAB_HEAP_NONE)
        heap_none_setup();
    lab_tls_heap = h;
    return prev;
}

void lab_sig_exit(lab_heap_t *prev)
{
    lab_heap_t *h = lab_tls_heap;
    lab_tls_heap = prev;
    if (!prev->signal_slot && prev != &lab_heap_none)
        sig_outer = NULL;
    if (h->signal_slot) {
        sig_mine &= ~(1ull << (h->signal_slot - 1));
        /* release: this handler's changes to the heap are visible to the next taker */
        __atomic_fetch_or(&sig_free, 1ull << (h->signal_slot - 1), __ATOMIC_RELEASE);
    }
}

uint64_t lab_sig_mine(void) { return sig_mine; }

void lab_sig_restore(lab_heap_t *prev, uint64_t mine)
{
    lab_tls_heap = prev;
    if (!prev->signal_slot && prev != &lab_heap_none)
        sig_outer = NULL;
    uint64_t give = sig_mine & ~mine;
    sig_mine &= mine;
    if (give) /* release: as lab_sig_exit's */
        __atomic_fetch_or(&sig_free, give, __ATOMIC_RELEASE);
}

bool lab_heap_busy(void) { return lab_tls_heap->in_slow != 0; }
/* lab_heap_none counts: a handler gets it when every signal heap is taken (a thread with no heap
 * of its own has two: lab_sig_reserve), and is as switched as on one. Taken for the thread's
 * own heap, every handler after a third nested one counted as having interrupted the allocator
 * (signals.c), none was a safe point any more, and the handlers left by siglongjmp were never
 * undone: the thread stayed on none for good, its every malloc NULL (preload.signal_longjmp's
 * first nested mode, a 20 us SA_NODEFER timer, on a 6.18 kernel in every run). */
bool lab_sig_on_signal_heap(void) { return lab_tls_heap->signal_slot != 0 || lab_tls_heap == &lab_heap_none; }

uintptr_t lab_deferred;

void lab_defer_free(void *p)
{
    uintptr_t old = lab_load_relaxed(&lab_deferred);
    do {
        *(uintptr_t *)p = old;
        /* release: the link is written before the block is published (pushes only and one
         * exchange-all: no ABA) */
    } while (!__atomic_compare_exchange_n(&lab_deferred, &old, (uintptr_t)p, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
}

void lab_arena_fork_prepare(void)
{
    lab_lock(&heaps_lock);
    lab_lock(&park_lock);
}

void lab_arena_fork_parent(void)
{
    lab_unlock(&park_lock);
    lab_unlock(&heaps_lock);
}

void lab_arena_fork_child(void)
{
    lab_lock_reset(&park_lock);
    lab_lock_reset(&heaps_lock);
    /* heaps of threads that do not exist in the child are abandoned, so new threads adopt them;
     * one that was mid-change in a slow path cannot be trusted and is left alone (leaked). A fork
     * from a handler running on a signal heap keeps the thread's own heap too: the handler
     * returns to it. The signal heaps other threads' handlers held are free again (those caught
     * mid-change aside). */
    lab_heap_t *me = lab_tls_heap, *own = me->signal_slot || me == &lab_heap_none ? sig_outer : me;
    lab_store_relaxed(&heaps_live, (size_t)(own && own->state == LAB_HEAP_LIVE && !own->signal_slot));
    if (heaps_all) /* every heap's pool is the default pool */
        lab_pool_set_sharers(heaps_all->pool, heaps_live);
    uint64_t sig_idle = 0;
    for (unsigned i = 0; i < SIG_HEAPS; i++)
        if (sig_heaps[i] && !(sig_mine & (1ull << i)) &&
            (!(sig_ready & (1ull << i)) || !sig_heaps[i]->in_slow)) /* one caught mid-setup is set up again */
            sig_idle |= 1ull << i;
    lab_store_relaxed(&sig_free, sig_idle);
    for (lab_heap_t *h = heaps_all; h; h = h->next_all) {
        h->owner_tid = 0; /* the parent's ids: none is this process's (heap_adopt_ended) */
        if (h != me && h != own && h->state == LAB_HEAP_LIVE && !h->signal_slot) {
            lab_store_relaxed(&h->state, LAB_HEAP_ABANDONED);
            if (!h->in_slow) {
                h->next_abandoned = heaps_abandoned;
                heaps_abandoned = h;
            }
        }
    }
}

void lab_arena_stats(lab_heap_stats_t *sum, size_t *heaps, size_t *signal_heaps)
{
    memset(sum, 0, sizeof *sum);
    size_t n = 0;
    lab_lock(&heaps_lock);
    heap_walk_t w = {heaps_all, 0};
    for (lab_heap_t *h; (h = heap_walk(&w));) {
        n += !h->signal_slot;
        sum->mallocs += h->st.mallocs;
        sum->frees += h->st.frees;
        sum->remote_frees += h->st.remote_frees;
        sum->foreign_frees += h->st.foreign_frees;
        sum->large += h->st.large;
        sum->huge += h->st.huge;
        sum->large_frees += h->st.large_frees;
        sum->huge_frees += h->st.huge_frees;
        sum->spans += h->st.spans;
        sum->span_releases += h->st.span_releases;
        sum->reclaimed += h->st.reclaimed;
    }
    sum->mallocs += lab_heap_empty.st.mallocs;
    sum->frees += lab_heap_empty.st.frees;
    sum->remote_frees += lab_heap_empty.st.remote_frees;
    sum->foreign_frees += lab_heap_empty.st.foreign_frees;
    sum->remote_frees += lab_load_relaxed(&remote_frees_heapless);
    sum->span_releases += lab_load_relaxed(&spans_returned_idle);
    *signal_heaps = sig_count; /* made, set up or not */
    lab_unlock(&heaps_lock);
    *heaps = n;
}

static void run_stats_one(const lab_page_t *d, size_t npages, void *arg)
{
    lab_run_stats_t *rs = arg;
    switch (lab_load_relaxed(&d->h.state)) {
    case LAB_PAGE_SPAN: {
        const lab_span_t *s = (const lab_span_t *)d;
        unsigned cls = lab_load_relaxed(&s->cls);
        if (cls == 0 || cls >= LAB_NR_CLASSES)
            return; /* a span being made */
        lab_class_stats_t *c = &rs->cls[cls];
        uint32_t out = lab_load_relaxed(&s->usedf) & ~LAB_SPAN_FULL, cap = lab_load_relaxed(&s->capacity);
        if (lab_load_relaxed(&s->flags) & LAB_SPAN_WAIT) /* a countdown (span_wait) */
            out = cap - span_slack(s) + out;
        uint32_t remote = (uint32_t)(lab_load_relaxed(&s->remote) >> 48);
        c->spans++;
        c->span_pages += npages;
        c->blocks += cap;
        c->out += out > remote ? lab_min(out - remote, cap) : 0;
        return;
    }
    case LAB_PAGE_LARGE:
        rs->large++;
        rs->large_pages += npages;
        return;
    case LAB_PAGE_NURSERY:
        rs->nursery++;
        rs->nursery_pages += npages;
        return;
    case LAB_PAGE_USER:
        rs->user_pages += npages;
        return;
    }
}

void lab_arena_run_stats(lab_run_stats_t *out)
{
    memset(out, 0, sizeof *out);
    lab_pool_t *pool = lab_pool_default();
    if (pool)
        lab_pool_walk_runs(pool, run_stats_one, out);
}

size_t lab_arena_idle_returns(void) { return (size_t)lab_load_relaxed(&spans_returned_idle); }

size_t lab_arena_kept_bytes(void)
{
    lab_lock(&heaps_lock);
    lab_heap_t *first = heaps_all;
    lab_unlock(&heaps_lock);
    size_t sum = 0;
    heap_walk_t w = {first, 0};
    for (lab_heap_t *h; (h = heap_walk(&w));)
        sum += lab_load_relaxed(&h->kept_bytes);
    return sum;
}
