/* alloc.c — the slow paths behind lab_malloc/lab_free and the rest of the malloc family under
 * core names: page-sized and huge blocks, aligned allocation, calloc, realloc, usable size,
 * ownership checks, misuse detection, trim and statistics. Layer 4: calls core/arena and below. */
#include "alloc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* What threads without a live heap of their own (one that has made no small block, or whose
 * heap has ended) make and free: page-sized and huge blocks, nursery frees, foreign frees. In
 * the thread's room set (lab_pool_thread_counts; a thread that makes page-sized blocks has
 * one), at these places; else here, atomically. All counted here, two threads that made only
 * page-sized blocks bounced the counters' cache line at every call: a fifth of `wl pagemix 2`'s
 * time went on one `lock add`. */
static lab_heap_stats_t heapless;
enum { HL_frees, HL_foreign_frees, HL_large, HL_huge, HL_large_frees, HL_huge_frees, HL_N };
_Static_assert(HL_N == LAB_THREAD_COUNTS, "a word per count kept for threads without a heap");

lab_inline void count_heapless(uint64_t *global, unsigned i)
{
    uint64_t *w = lab_pool_thread_counts();
    if (lab_likely(w != NULL))
        lab_store_relaxed(&w[i], lab_load_relaxed(&w[i]) + 1);
    else
        lab_add_relaxed(global, 1);
}

/* One more of heap statistic `field` in the caller's heap, or as a thread without one. */
#define COUNT(field)                                                                               \
    do {                                                                                           \
        lab_heap_t *h_ = lab_tls_heap;                                                             \
        if (lab_likely(h_->state == LAB_HEAP_LIVE))                                                \
            h_->st.field++;                                                                        \
        else                                                                                       \
            count_heapless(&heapless.field, HL_##field);                                           \
    } while (0)
int lab_report_foreign;               /* how many more foreign frees to report (options) */

/* A block that is no span's (a nursery block, a page-sized run, a huge mapping) handed out over
 * memory used before: its second word may still hold the free key a span block at the same
 * address had (freed, or carved and never handed out), which a program that never writes it
 * would carry along: realloc copies it, and a copy that lands back at that address (a span's
 * first block, where a run's first page was) looked freed to realloc and to another thread's
 * free (found by review: a valid program's realloc aborted, one run in four). Span blocks clear
 * theirs as they are handed out (lab_span_take); these are cleared here (alloc_large and
 * nursery_alloc). */
lab_inline void lab_clear_stale_key(void *p) { ((lab_block_t *)p)->key = 0; }

lab_inline lab_pool_t *alloc_pool(void)
{
    lab_heap_t *h = lab_tls_heap;
    return h->pool ? h->pool : lab_pool_default();
}

/* A block of class cls from the thread's current span, or the refill path. */
static inline void *alloc_class(unsigned cls)
{
    lab_heap_t *h = lab_tls_heap;
    if (lab_unlikely(lab_load_relaxed(&lab_secure)) && !h->gfp)
        return lab_heap_alloc_secure(h, cls);
    lab_span_t *s = h->cur[cls];
    void *b;
    if (lab_unlikely((h->parked_mask >> cls) & 1))
        return lab_heap_unpark_take(h, cls);
    if (lab_likely(s && (b = lab_span_take(h, s))))
        return b;
    return lab_heap_alloc_small_slow(h, cls);
}

/* A page-sized block of npages (up to LAB_LARGE_MAX) from pool: a power-of-two count, or one
 * aligned past a page (align_order), as a naturally aligned run through the thread's room, any
 * other as a run of its length. Inline in alloc_large and in malloc's own entry
 * (alloc_page_sized), where gfp and align_order are constants. */
lab_inline void *large_run(lab_pool_t *pool, size_t npages, unsigned align_order, lab_gfp_t gfp)
{
    lab_page_t *d;
    void *p;
    bool exact = (npages & (npages - 1)) == 0, pow2 = exact || align_order;
    if (pow2) {
        unsigned order = lab_max(exact ? lab_log2_floor(npages) : lab_log2_ceil(npages), align_order);
        p = gfp == LAB_GFP_DEFAULT ? lab_pool_alloc_large(pool, order, &d)
                                   : lab_pool_alloc_order(pool, order, gfp, LAB_PAGE_LARGE, &d);
    } else {
        p = lab_pool_alloc_run(pool, npages, gfp, &d);
    }
    if (lab_unlikely(!p))
        return NULL;
    d->above[0] = pow2;
    COUNT(large);
    if (!(gfp & LAB_GFP_ZERO)) /* (zeroed, or known to read zero) */
        lab_clear_stale_key(p);
    return p;
}

/* Page-sized blocks: a run from the pool (large_run), above LAB_LARGE_MAX a huge mapping. */
static lab_noinline void *alloc_large(size_t n, size_t align, lab_gfp_t gfp)
{
    if (lab_unlikely(lab_tls_heap->gfp) && lab_pool_handler_depth)
        lab_pool_handler_safe_point(); /* (as in lab_heap_alloc_small_slow) */
    lab_pool_t *pool = alloc_pool();
    if (lab_unlikely(!pool || n > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    lab_heap_t *h = lab_tls_heap;
    gfp |= h->gfp; /* ATOMIC on a signal heap: no lock waited on, no system call */
    /* a block of 0 bytes aligned past a page: a page of its own (found by review: no page, and
     * the run's order the log of 0, undefined: a crash where clz is lzcnt; above 2 MiB a huge
     * block whose usable size read 0, the answer for a pointer not ours) */
    n += n == 0;
    size_t npages = (n + LAB_PAGE_SIZE - 1) >> LAB_PAGE_SHIFT;
    if (n <= LAB_LARGE_MAX && align <= LAB_CHUNK_SIZE)
        return large_run(pool, npages, align > LAB_PAGE_SIZE ? lab_log2_ceil(align >> LAB_PAGE_SHIFT) : 0, gfp);
    lab_page_t *d;
    lab_chunk_t *c;
    void *p;
    /* up to a chunk, first from pages the pool's page-sized blocks used before (never a fault or
     * a mapping there; lab_pool_alloc_run_used) */
    if (align <= LAB_PAGE_SIZE && n <= LAB_CHUNK_SIZE && !(gfp & LAB_GFP_ATOMIC) &&
        (p = lab_pool_alloc_run_used(pool, npages, gfp, &d))) {
        d->above[0] = 0;
        COUNT(large);
    } else {
        p = lab_pool_alloc_huge(pool, n, lab_max(align, LAB_CHUNK_SIZE), gfp, &c);
        if (!p)
            return NULL;
        COUNT(huge);
    }
    if (!(gfp & LAB_GFP_ZERO))
        lab_clear_stale_key(p);
    return p;
}

void lab_deferred_run(void)
{
    /* acquire pairs with the release pushes in lab_defer_free */
    uintptr_t p = __atomic_exchange_n(&lab_deferred, 0, __ATOMIC_ACQUIRE);
    while (p) {
        uintptr_t next = *(uintptr_t *)p;
        lab_free_slow((void *)p);
        p = next;
    }
}

/* ---- the nursery ----
 * A short process touches a page for every size class it uses (its span's first page), where
 * glibc packs its few hundred blocks into a few pages; at 10 to 15 us a fault on these VMs, that
 * was the largest part of what Labyrinth added to a process start (git --version: 20 of its 40
 * faults more than glibc; bench: spawn). So a heap's first blocks of each class up to 1 KiB
 * come from one run shared by all classes: up to LAB_NURSERY_PER_CLASS of a class (64: with 8,
 * most classes of gcc, git or perl outgrew it and faulted in a span page anyway; 64 saves 15 to
 * 20 faults a process) and a page's worth of its bytes (LAB_NURSERY_CLASS_BYTES: a class that
 * outgrows a page needs its span's pages anyway; python3, whose blocks are mostly 0.5-1 KiB,
 * faulted 15 pages more without that bound). The blocks are bump-allocated, each behind a
 * 16-byte header: its size, and a tag that mixes the free key with its address (live, or
 * inverted once freed). Nothing is reused inside it: the run goes back to the pool once it is
 * closed (full, at malloc_trim, or when its thread ends) and its last block is freed, which one
 * atomic word tells (blocks out, and CLOSED). At most 64 KiB a heap stays pinned that way while
 * one of its blocks lives. Its state is NURSERY, so no span fast path matches its blocks: frees,
 * reallocs and size queries find it through the page map (lab_free_slow, block_desc). A heap has
 * one nursery in its life; signal heaps and secure mode none. */
#define NURSERY_SALT      0x6e75727365727921ull

int lab_nursery_on = 1;                 /* LABYRINTH_NURSERY */
size_t lab_nursery_class_bytes = LAB_NURSERY_CLASS_BYTES;

lab_inline uint64_t nursery_tag(uintptr_t p) { return lab_load_relaxed(&lab_free_key) ^ p ^ NURSERY_SALT; }

/* A block of n bytes (n <= 1 KiB) from the calling thread's nursery, or NULL: the ordinary
 * path then serves it (errno untouched). */
static lab_noinline void *nursery_alloc(size_t n)
{
    lab_heap_t *h = lab_tls_heap;
    /* first what answers most calls: a heap that has had its nursery (a class whose span is
     * parked comes here at every round) */
    if ((h->nursery_used && !h->nursery) || !lab_load_relaxed(&lab_nursery_on) || lab_load_relaxed(&lab_secure) ||
        h->gfp || h->state == LAB_HEAP_NONE || (h->state != LAB_HEAP_LIVE && lab_heap_past_last_round()))
        return NULL; /* (in the last round of key destructors: a heap for the block alone, arena.c) */
    int e = errno;
    if (h->state != LAB_HEAP_LIVE && !(h = lab_heap_get_slow())) {
        errno = e;
        return NULL;
    }
    unsigned cls = lab_size_class(n);
    lab_page_t *d = h->nursery;
    if (cls >= LAB_DIRECT_CLASSES || h->nursery_n[cls] >= LAB_NURSERY_PER_CLASS ||
        h->nursery_n[cls] * lab_class_size(cls) >= lab_load_relaxed(&lab_nursery_class_bytes) ||
        (!d && h->nursery_used))
        return NULL;
    h->in_slow = 1;
    if (!d) {
        h->nursery_used = 1;
        if (!lab_pool_alloc_order(h->pool, LAB_NURSERY_ORDER, LAB_GFP_DEFAULT, LAB_PAGE_NURSERY, &d)) {
            h->in_slow = 0;
            errno = e;
            return NULL;
        }
        uintptr_t base = lab_desc_addr(d);
        d->above[0] = base; /* the next block's header */
        d->above[1] = base + ((uintptr_t)LAB_PAGE_SIZE << LAB_NURSERY_ORDER);
        d->above[2] = 0;
        h->nursery = d;
    }
    size_t sz = n ? (n + 15) & ~(size_t)15 : 16;
    uintptr_t b = d->above[0];
    if (16 + sz > d->above[1] - b) {
        lab_nursery_close(h);
        h->in_slow = 0;
        return NULL;
    }
    __atomic_fetch_add(&d->above[2], 1, __ATOMIC_RELAXED);
    ((uint64_t *)b)[0] = sz;
    ((uint64_t *)b)[1] = nursery_tag(b + 16);
    lab_clear_stale_key((void *)(b + 16));
    /* relaxed store: other threads' checks read it (nursery_state) */
    lab_store_relaxed(&d->above[0], b + 16 + sz);
    h->nursery_n[cls]++;
    h->st.mallocs++;
    h->in_slow = 0;
    return (void *)(b + 16);
}

/* What a is in nursery run d: 1 a live block, 2 a freed one, 0 not a block start. */
static int nursery_state(lab_page_t *d, uintptr_t a)
{
    /* relaxed: the owner may be allocating; a block handed out is below any value read */
    if ((a & 15) || a < lab_desc_addr(d) + 16 || a >= lab_load_relaxed(&d->above[0]))
        return 0;
    uint64_t t = lab_load_relaxed(&((uint64_t *)a)[-1]), want = nursery_tag(a);
    return t == want ? 1 : t == ~want ? 2 : 0;
}

static void nursery_free(lab_page_t *d, uintptr_t a)
{
    uint64_t want = nursery_tag(a);
    /* one winner when two threads free the block at once: the other sees it freed */
    if (!__atomic_compare_exchange_n(&((uint64_t *)a)[-1], &want, ~want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        lab_fatal("double free of", (void *)a);
    COUNT(frees);
    if (__atomic_fetch_sub(&d->above[2], 1, __ATOMIC_ACQ_REL) == (LAB_NURSERY_CLOSED | 1))
        lab_nursery_release(d);
}

/* A dry reuse list: the direct slots go back to the class's span. Apart, like malloc_deferred
 * below, so that lab_malloc_slow makes no call but tail calls (no registers to save on the way
 * to a class span). */
static lab_noinline void *malloc_reuse_off(lab_heap_t *h, unsigned cls)
{
    lab_heap_reuse_off(h, cls);
    return alloc_class(cls);
}

/* lab_malloc_slow after the deferred frees. */
lab_inline void *malloc_slow(size_t n)
{
    if (n <= LAB_DIRECT_MAX) {
        lab_heap_t *h = lab_tls_heap;
        lab_span_t *d = h->direct[(n + 15) >> 4];
        if (d->flags & LAB_SPAN_REUSE)
            return malloc_reuse_off(h, lab_heap_reuse_cls(h, d));
        /* no span for the class yet (or a thread's first call: no heap yet), or it is parked */
        if (d == &lab_span_empty) {
            if (h->parked_mask) {
                unsigned cls = lab_size_class(n);
                if ((h->parked_mask >> cls) & 1)
                    return lab_heap_unpark_take(h, cls);
            }
            void *p = nursery_alloc(n);
            if (p)
                return p;
        }
    }
    if (n <= LAB_SMALL_MAX)
        return alloc_class(lab_size_class(n));
    return alloc_large(n, 0, LAB_GFP_DEFAULT);
}

/* Frees deferred from signal handlers wait: run them first (not on a signal heap). */
static lab_noinline lab_cold void *malloc_deferred(size_t n)
{
    if (!lab_tls_heap->gfp)
        lab_deferred_run();
    return malloc_slow(n);
}

/* lab_malloc_slow past the direct slots: apart, so that their hit below needs no stack frame
 * (the nursery's call here does). */
static lab_noinline void *malloc_slow_checked(size_t n)
{
    if (lab_unlikely(lab_load_relaxed(&lab_deferred)))
        return malloc_deferred(n);
    return malloc_slow(n);
}

/* Page-sized blocks up to LAB_LARGE_MAX, malloc's common case past the size classes: no signal
 * heap and no deferred frees waiting, so none of alloc_large's other tests is needed
 * (alignment, huge sizes, ATOMIC); the rest goes that way. With the pool's call compiled for
 * this case (lab_pool_alloc_large), a 64 KiB malloc+free went from 318 instructions to 253
 * (scripts/callgrind_pair.sh --size 65536). */
static lab_noinline void *alloc_page_sized(size_t n)
{
    lab_pool_t *pool;
    if (lab_unlikely(lab_tls_heap->gfp || lab_load_relaxed(&lab_deferred)) || lab_unlikely(!(pool = alloc_pool())))
        return malloc_slow_checked(n);
    return large_run(pool, (n + LAB_PAGE_SIZE - 1) >> LAB_PAGE_SHIFT, 0, LAB_GFP_DEFAULT);
}

void *lab_malloc_slow(size_t n)
{
    /* above 1 KiB, up to LAB_SMALL_MAX: the direct slots' pop, as lab_malloc's (no class
     * computed; deferred frees wait for a slow path, as they do below 1 KiB) */
    if (n - (LAB_DIRECT_MAX + 1) < LAB_SMALL_MAX - LAB_DIRECT_MAX) {
        void *p = lab_slot_take(n);
        if (lab_likely(p != NULL))
            return p;
    } else if (n - (LAB_SMALL_MAX + 1) < LAB_LARGE_MAX - LAB_SMALL_MAX) {
        return alloc_page_sized(n);
    }
    return malloc_slow_checked(n);
}

/* A pointer not ours given to free (ignored) or realloc (NULL, EINVAL): counted as a foreign
 * free, and the first few reported under LABYRINTH_VERBOSE. */
static lab_noinline lab_cold void foreign(const void *p, const char *what)
{
    COUNT(foreign_frees);
    if (lab_load_relaxed(&lab_report_foreign) > 0 && lab_sub_relaxed(&lab_report_foreign, 1) > 0)
        lab_message(what, p);
}

static void free_foreign(const void *p) { foreign(p, "free() of a pointer that is not ours, ignored:"); }

/* The state of p's run, checked: the descriptor of a live block's run, or abort with a message
 * that names the call (re: realloc, else free). */
static __attribute__((noreturn)) lab_cold void block_abort(lab_chunk_t *c, uintptr_t a, bool re, const char *what);
static lab_page_t *block_desc(lab_chunk_t *c, uintptr_t a, bool re)
{
    const char *invalid =
        re ? "invalid realloc (not the start of a block):" : "invalid free (not the start of a block):";
    const char *twice = re ? "realloc of a freed block:" : "double free of";
    if (c->kind == LAB_CHUNK_HUGE) {
        lab_page_t *d = &c->page[0];
        if (a != c->base)
            lab_fatal(invalid, (void *)a);
        if (d->h.state != LAB_PAGE_HUGE)
            lab_fatal(twice, (void *)a);
        return d;
    }
    lab_page_t *d = lab_chunk_desc(c, a);
    uintptr_t base = lab_desc_addr(d);
    switch (d->h.state) {
    case LAB_PAGE_SPAN: {
        lab_span_t *s = (lab_span_t *)d;
        uintptr_t off = a - base;
        /* the divisibility test by multiplication: this runs on every cross-thread free */
        if (!lab_span_offset_ok((uint32_t)off, s->cls) ||
            off >= (uintptr_t)lab_load_relaxed(&s->carved) * s->block_size) {
            /* a page-sized block freed a second time after a span took its pages lands here too,
               and on a page boundary, where an interior pointer seldom does: say both */
            if (!(a & (LAB_PAGE_SIZE - 1)))
                invalid = re ? "invalid realloc (not the start of a block; or of a page-sized block freed "
                               "before, whose pages were reused):"
                             : "invalid free (not the start of a block; or a page-sized block freed twice, "
                               "whose pages were reused):";
            block_abort(c, a, re, invalid);
        }
        return d;
    }
    case LAB_PAGE_LARGE:
        if (a != base)
            block_abort(c, a, re, invalid);
        return d;
    case LAB_PAGE_NURSERY: {
        int st = nursery_state(d, a);
        if (st == 2)
            block_abort(c, a, re, twice);
        if (st == 0) /* a nursery block's 16-byte header is just before it: a write before the
                        block (an underflow of its neighbour's overflow) looks the same */
            block_abort(c, a, re,
                        re ? "invalid realloc (not the start of a block, or the 16 bytes before it overwritten):"
                           : "invalid free (not the start of a block, or the 16 bytes before it overwritten):");
        return d;
    }
    case LAB_PAGE_USER:
        lab_fatal(re ? "realloc() of pages from labyrinth_alloc_pages:" : "free() of pages from labyrinth_alloc_pages:",
                  (void *)a);
    default:
        block_abort(c, a, re,
                    re ? "realloc of a freed block (or of a pointer never allocated):"
                       : "double free (or free of a pointer never allocated) of");
    }
}

/* Whether a, past the first page of a page-sized block's run, lies in it: such a run names
 * itself on its first page only (pool.c: run_set_first), so a's own head reads NONE; the
 * descriptors back from a's page are INTERIOR up to its run's first (a snapshot: other threads'
 * runs may be changing, and only the message depends on it). */
static bool in_large_run(lab_chunk_t *c, uintptr_t a)
{
    unsigned i = (unsigned)((a - c->base) >> LAB_PAGE_SHIFT);
    for (unsigned j = i + 1; j-- > 0;) {
        const lab_page_t *d = &c->page[j];
        uint8_t st = lab_load_relaxed(&d->h.state);
        if (st != LAB_PAGE_INTERIOR)
            return j < i && st == LAB_PAGE_LARGE && j + lab_load_relaxed(&d->h.npages) > i;
    }
    return false;
}

/* block_desc's aborts. Pages of the page API keep the heads their pages had before (a run taken
 * again needs no rewrite: pool.c), so p's run may be found through a stale head; the descriptor
 * of p's own page says whether p is the start of such pages, the message users are told of
 * (found by review: a free() of them said "double free (or free of a pointer never allocated)").
 * A pointer into a page-sized block past its first page is told as an interior pointer. */
static void block_abort(lab_chunk_t *c, uintptr_t a, bool re, const char *what)
{
    lab_page_t *own = &c->page[(a - c->base) >> LAB_PAGE_SHIFT];
    if (own->h.state == LAB_PAGE_USER && lab_desc_addr(own) == a)
        what = re ? "realloc() of pages from labyrinth_alloc_pages:" : "free() of pages from labyrinth_alloc_pages:";
    else if (lab_chunk_desc(c, a)->h.state == LAB_PAGE_INTERIOR && in_large_run(c, a))
        what = re ? "invalid realloc (not the start of a block):" : "invalid free (not the start of a block):";
    lab_fatal(what, (void *)a);
}

/* A free of a block of the caller's own span that the inline fast path did not take: the span's
 * pages carry no tag (heap ids spent, a chunk outside the fast map's region) or the caller came
 * another way. The fast path's steps. */
static void free_own(lab_heap_t *h, lab_span_t *s, lab_block_t *b)
{
    uintptr_t key = lab_load_relaxed(&lab_free_key), bkey = lab_block_key(b, key);
    if (lab_unlikely((b->key | 1) == bkey))
        return lab_span_free_suspect(h, s, b);
    /* an aside heap's span that malloc is not taking from (its tag taken off: arena.c) */
    if (h->aside && s != h->cur[s->cls])
        return lab_span_free_aside(h, s, b, bkey);
    lab_span_push_own(h, s, b, bkey);
}

/* free_span_block's rare case: frees deferred from signal handlers wait; run them first. Apart,
 * so that free_span_block's common way makes no call but tail calls. */
static lab_noinline lab_cold void free_other_deferred(void *p, lab_span_t *s)
{
    lab_deferred_run();
    lab_span_free_remote(lab_tls_heap, s, (lab_block_t *)p);
}

/* A page-sized block's run back to the pool (d: its descriptor, state LARGE). */
lab_inline void free_large(lab_page_t *d)
{
    COUNT(large_frees);
    lab_pool_t *pool = lab_desc_chunk(d)->pool;
    if (d->above[0])
        lab_pool_free_order(pool, d, d->h.order);
    else
        lab_pool_free_run(pool, d);
}

/* b, a block start of s (checked), freed by h: its owner's way, or another heap's. */
static lab_noinline void free_span_block(lab_heap_t *h, lab_span_t *s, lab_block_t *b)
{
    if (lab_unlikely(s->heap == h))
        return free_own(h, s, b);
    if (lab_unlikely(lab_load_relaxed(&lab_deferred)) && !h->gfp)
        return free_other_deferred(b, s);
    return lab_span_free_remote(h, s, b);
}
_Static_assert(__builtin_offsetof(lab_heap_stats_t, remote_frees) ==
                   __builtin_offsetof(lab_heap_stats_t, frees) + sizeof(uint64_t),
               "lab_free_whole counts frees and remote frees by the same address arithmetic");

/* lab_free_whole's way out to the descriptor: looked up again from p (one load), so that the
 * entry is not kept live through lab_free_whole for it (GCC then saved a register more on every
 * call). */
static lab_noinline void free_whole_desc(lab_heap_t *h, void *p)
{
    return free_span_block(h, (lab_span_t *)lab_own_desc((uintptr_t)p), (lab_block_t *)p);
}

/* A block of a whole span (pool.h: LAB_FMAP_WHOLE), freed by h, the fast map's entry less h's
 * tag (e) naming its owner and class: onto h's reuse list for the class, the owner's own with
 * half the list's bound (lab_span_free_aside), another heap's with all of it
 * (lab_span_free_remote), with neither the span's descriptor read nor a branch on whose it is.
 * An offset that is no block start of such a span goes to lab_free_slow, which checks it all and
 * aborts; a block start carrying its free key, or one that found a full list (or frees deferred
 * from signal handlers waiting), goes on from the descriptor to the owner's or the remote way,
 * which decide it. Apart from lab_free_other, whose frees (another heap's current span:
 * xmalloc's) pay nothing for it but the inline fast path's test of the entry. */
void lab_free_whole(void *p, lab_heap_t *h, uint64_t e)
{
    unsigned cls = (unsigned)(e & LAB_FMAP_CLS_MASK); /* any other than a whole span's: refused */
    uint32_t off = (uint32_t)(uintptr_t)p & (((uint32_t)LAB_PAGE_SIZE << LAB_WHOLE_ORDER) - 1);
    lab_block_t *b = (lab_block_t *)p;
    if (lab_unlikely(!lab_offset_ok_fdiv(off, lab_class_whole[cls].fdiv, lab_class_whole[cls].flim)))
        return lab_free_slow(p);
    uintptr_t key = lab_load_relaxed(&lab_free_key), bkey = lab_block_key(b, key);
    if (lab_unlikely((b->key | 1) == bkey))
        return free_whole_desc(h, p);
    lab_reuse_t *r = &h->reuse[cls];
    unsigned own = (e >> LAB_FMAP_TAG_SHIFT) == 0; /* the entry's tag was h's (h untagged: never) */
    /* (a floor is -(the bound), even: shifted, half of it; a heap whose lists are off has 0) */
    if (lab_unlikely((int32_t)r->usedf <= ((int32_t)r->floor >> own)) ||
        lab_unlikely(lab_load_relaxed(&lab_deferred) != 0))
        return free_whole_desc(h, p);
    b->key = bkey ^ 1; /* the transit form: a second free aborts */
    b->next = (lab_block_t *)((uintptr_t)r->free ^ key); /* lab_link_set */
    r->free = b;
    r->usedf--;
    /* frees, or remote_frees (the word after it): counted without a branch */
    (*(uint64_t *)(void *)((char *)&h->st.frees + (own ^ 1) * sizeof h->st.frees))++;
    h->aside_full &= (uint32_t)own - 1; /* an own free that found room ends a run of full ones */
    if (lab_unlikely(!r->flags) && (int32_t)r->usedf <= -LAB_REUSE_ON)
        return lab_heap_reuse_on(h, cls);
}

void lab_free_other(void *p, lab_heap_t *h, uint64_t e)
{
    /* the descriptor's way */
    lab_span_t *s = (lab_span_t *)lab_fmap_decode(e);
    /* relaxed: read before the state says this is a span; a nursery run's descriptor has its
     * owner's bump pointer there (the value is then not used) */
    uint32_t off = (uint32_t)(uintptr_t)p - lab_load_relaxed(&s->base_lo);
    /* s->div is a span's once the state says so (the page map gave a run's descriptor, so off
     * is below the run's size, where the 32-bit test is exact) */
    if (lab_likely(lab_load_relaxed(&s->h.state) == LAB_PAGE_SPAN) &&
        lab_offset_ok_div32(off, s->div) && off < (uint32_t)lab_load_relaxed(&s->carved) * s->block_size)
        return free_span_block(h, s, (lab_block_t *)p);
    /* a page-sized block: the descriptor is at hand, no second lookup (in a signal handler, or
     * with deferred frees waiting, the slow path sorts it out) */
    if (lab_load_relaxed(&s->h.state) == LAB_PAGE_LARGE && (uintptr_t)p == lab_desc_addr((lab_page_t *)s) &&
        !h->gfp && !lab_load_relaxed(&lab_deferred))
        return free_large((lab_page_t *)s);
    lab_free_slow(p);
}

void lab_free_slow(void *p)
{
    if (!p)
        return;
    uintptr_t a = (uintptr_t)p;
    lab_chunk_t *c = lab_pagemap_lookup(a);
    if (!lab_chunk_is_ours(c)) {
        if (lab_unlikely(lab_huge_gone(a)))
            lab_fatal("double free of", p); /* a huge block freed before, its mapping gone */
        free_foreign(p);
        return;
    }
    lab_page_t *d = block_desc(c, a, false);
    if (d->h.state != LAB_PAGE_SPAN && lab_tls_heap->gfp) {
        /* a page-sized or huge block freed in a signal handler: its free may lock or unmap */
        lab_defer_free(p);
        return;
    }
    if (lab_unlikely(lab_load_relaxed(&lab_deferred)) && !lab_tls_heap->gfp)
        lab_deferred_run();
    switch (d->h.state) {
    case LAB_PAGE_HUGE:
        COUNT(huge_frees);
        lab_pool_free_huge(c->pool, c);
        return;
    case LAB_PAGE_NURSERY:
        nursery_free(d, a);
        return;
    case LAB_PAGE_LARGE:
        free_large(d);
        return;
    default: {
        lab_span_t *s = (lab_span_t *)d;
        lab_heap_t *h = lab_tls_heap;
        if (s->heap == h) {
            /* called directly (the inline fast path and lab_free_other handle this case) */
            free_own(h, s, (lab_block_t *)p);
            return;
        }
        lab_span_free_remote(h, s, (lab_block_t *)p);
        return;
    }
    }
}

void *lab_calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (total <= LAB_SMALL_MAX) {
        /* the whole usable size reads zero, as under glibc, jemalloc, mimalloc and tcmalloc (a
           program may take malloc_usable_size as the block's size): a direct slot's block has its
           class's size; a block of the slow path (nursery, secure mode) is asked */
        void *p = lab_malloc_fast(total);
        size_t u;
        if (lab_likely(p != NULL))
            u = lab_direct_block_size(total);
        else if ((p = lab_malloc_slow(total)) != NULL)
            u = lab_usable_size(p);
        else
            return NULL;
        memset(p, 0, u);
        return p;
    }
    return alloc_large(total, 0, LAB_GFP_ZERO);
}

void *lab_malloc_aligned_slow(size_t align, size_t n)
{
    if (align <= 16)
        return lab_malloc_slow(n);
    size_t m = lab_aligned_class_size(align, n);
    if (m) /* the class's slow path (not lab_malloc_slow's: no nursery) */
        return alloc_class(lab_size_class(m));
    return alloc_large(n, align, LAB_GFP_DEFAULT);
}

/* The span of a when a is the start of a block carved from a span in the fast map's region:
 * one lookup and the tests lab_free_other makes (a run's descriptor, so the 32-bit offset is
 * exact). NULL sends the caller to the page map, which sorts out everything else. */
lab_inline lab_span_t *span_block(uintptr_t a)
{
    uintptr_t off;
    if (lab_unlikely(!lab_fmap_in(a, &off)))
        return NULL;
    lab_span_t *s = (lab_span_t *)lab_fmap_at(off);
    uint32_t o = (uint32_t)a - lab_load_relaxed(&s->base_lo); /* (as in lab_free_other) */
    /* relaxed: the owner may be carving more; a block handed out is below any value read */
    if (lab_likely(lab_load_relaxed(&s->h.state) == LAB_PAGE_SPAN) && lab_offset_ok_div32(o, s->div) &&
        o < (uint32_t)lab_load_relaxed(&s->carved) * s->block_size)
        return s;
    return NULL;
}

/* Usable size of the live block a (the caller has checked it), d its run's descriptor. */
static size_t block_usable(lab_chunk_t *c, lab_page_t *d, uintptr_t a)
{
    switch (d->h.state) {
    case LAB_PAGE_HUGE:
        return c->size;
    case LAB_PAGE_NURSERY:
        return (size_t)((const uint64_t *)a)[-2]; /* its header */
    case LAB_PAGE_LARGE:
        return (size_t)d->h.npages << LAB_PAGE_SHIFT;
    default:
        return ((lab_span_t *)d)->block_size;
    }
}

/* lab_usable_size past a span's block: a page-sized block or a nursery block found through the
 * fast map's entry, as span_block finds a span's (one lookup, where the general way below makes
 * two: malloc_usable_size of a 64 KiB block cost 119 instructions, of a block from the nursery
 * 147, against 37 for a span's), then everything else. */
static lab_noinline size_t usable_size_slow(const void *p)
{
    uintptr_t a = (uintptr_t)p, off;
    if (lab_likely(lab_fmap_in(a, &off))) {
        lab_page_t *d = lab_fmap_at(off);
        uint8_t state = lab_load_relaxed(&d->h.state);
        if (state == LAB_PAGE_LARGE && a == lab_desc_addr(d))
            return (size_t)d->h.npages << LAB_PAGE_SHIFT;
        if (state == LAB_PAGE_NURSERY && nursery_state(d, a) == 1)
            return (size_t)((const uint64_t *)a)[-2]; /* its header */
    }
    lab_chunk_t *c = lab_pagemap_lookup(a);
    if (!p || !lab_chunk_is_ours(c))
        return 0;
    if (!lab_owns(p))
        return 0;
    if (c->kind == LAB_CHUNK_HUGE) /* the pages asked for: a mapping taken from the cache may be
                                      larger, by as much as the cache held (nallocx then told
                                      another size than mallocx made) */
        return lab_min(lab_align_up(lab_load_relaxed(&c->asked), LAB_PAGE_SIZE), c->size);
    return block_usable(c, lab_chunk_desc(c, a), a);
}

size_t lab_usable_size(const void *p)
{
    lab_span_t *s = span_block((uintptr_t)p);
    if (lab_likely(s != NULL))
        return s->block_size;
    return usable_size_slow(p);
}

size_t lab_good_size(size_t n, size_t align)
{
    if (n > PTRDIFF_MAX)
        return 0;
    size_t m = align > 16 ? lab_aligned_class_size(align, n) : 0;
    if (m)
        n = m;
    if (n <= LAB_SMALL_MAX && align <= LAB_PAGE_SIZE)
        return lab_class_size(lab_size_class(n));
    n += n == 0; /* (alloc_large's page for 0 bytes) */
    size_t bytes = lab_align_up(n, LAB_PAGE_SIZE);
    if (align > LAB_PAGE_SIZE && n <= LAB_LARGE_MAX && align <= LAB_CHUNK_SIZE) {
        /* large_run's power-of-two run, at least the alignment long (small sizes too: found by
         * review, nallocx(100, 8 KiB alignment) said 112 for a block of 8 KiB) */
        size_t pages = (size_t)1 << lab_log2_ceil(bytes >> LAB_PAGE_SHIFT);
        bytes = lab_max(pages << LAB_PAGE_SHIFT, align);
    }
    return bytes > PTRDIFF_MAX ? 0 : bytes; /* (PTRDIFF_MAX itself rounds up past it) */
}

void lab_zero_range(void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, first = lab_align_up(a, LAB_PAGE_SIZE), end = a + n;
    if (n < 2 * LAB_PAGE_SIZE || lab_tls_heap->gfp) { /* (a signal heap makes no system call) */
        memset(p, 0, n);
        return;
    }
    uintptr_t last = lab_align_down(end, LAB_PAGE_SIZE);
    memset(p, 0, first - a);
    lab_pool_zero_pages(first, (last - first) >> LAB_PAGE_SHIFT, NULL, 0, LAB_ZERO_ASK_ALWAYS);
    memset((void *)last, 0, end - last);
}

bool lab_owns(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    lab_chunk_t *c = lab_pagemap_lookup(a);
    if (!lab_chunk_is_ours(c))
        return false;
    if (c->kind == LAB_CHUNK_HUGE)
        return a == c->base && c->page[0].h.state == LAB_PAGE_HUGE;
    lab_page_t *d = lab_chunk_desc(c, a);
    uintptr_t base = lab_desc_addr(d);
    if (d->h.state == LAB_PAGE_LARGE)
        return a == base;
    if (d->h.state == LAB_PAGE_NURSERY)
        return nursery_state(d, a) == 1;
    if (d->h.state == LAB_PAGE_SPAN) {
        lab_span_t *s = (lab_span_t *)d;
        /* relaxed: the owner may be carving more; a block handed out is below any value read */
        return lab_span_offset_ok((uint32_t)(a - base), s->cls) &&
               a - base < (uintptr_t)lab_load_relaxed(&s->carved) * s->block_size;
    }
    return false;
}

/* realloc growth of a page-sized block that cannot grow in place moves it to a huge mapping
 * above this size (as glibc's mremap'd chunks): growing strings and vectors then stop leaving
 * a trail of freed runs behind them, each too small for the next size (strbuild: peak RSS less
 * than half). Each such block costs one kernel mapping and a 2 MiB-aligned slot of address
 * space, so the pool stops doing it past LAB_REALLOC_MAPS_MAX mappings (the kernel allows 65530
 * per process by default). */
#define LAB_REALLOC_MAP_MIN  ((size_t)128 << 10)
#define LAB_REALLOC_MAPS_MAX 4096u

/* A small block of `usable` bytes can hold n where it is: n fits and would not leave more than
 * half of it idle (a block of 64 bytes or less always stays). */
lab_inline bool small_stays(size_t n, size_t usable) { return n <= usable && (n > usable / 2 || usable <= 64); }

static lab_noinline void *realloc_slow(void *p, size_t n, lab_span_t *s);

/* A block of a span that carries its free key (or the transit form, bit 0 clear): on a free list,
 * in transit to its owner or carved and never handed out, as a free takes it (lab_free). */
lab_inline bool span_block_keyed(const void *p)
{
    const lab_block_t *b = p;
    return (b->key | 1) == lab_block_key(b, lab_load_relaxed(&lab_free_key));
}

/* realloc of such a block: it would go on as a live block, handed out again by the next malloc
 * of its size (found by review: the in-place path returned it as it was). */
static lab_noinline lab_cold void realloc_freed(const void *p) { lab_fatal("realloc of a freed block:", p); }

/* A small block that keeps its class: no frame, no call (a realloc that changes nothing
 * measurable is common: strings and vectors grown in small steps). n == 0 frees: slow path. */
void *lab_realloc(void *p, size_t n)
{
    lab_span_t *s = span_block((uintptr_t)p);
    if (lab_likely(s != NULL) && n != 0 && small_stays(n, s->block_size)) {
        if (lab_unlikely(span_block_keyed(p)))
            realloc_freed(p);
        return p;
    }
    return realloc_slow(p, n, s);
}

/* s: p's span when lab_realloc's lookup found one (the block then moves), else NULL. */
static void *realloc_slow(void *p, size_t n, lab_span_t *s)
{
    if (!p)
        return lab_malloc(n);
    if (n == 0) {
        lab_free(p);
        return NULL;
    }
    lab_heap_t *me = lab_tls_heap;
    if (me->state == LAB_HEAP_LIVE)
        me->resizes++; /* a call of the heap's for heap_reclaim's clock (the static heap is shared) */
    if (lab_unlikely(n > PTRDIFF_MAX)) {
        /* no block is that large (glibc's answer too); and the page count of such a size wraps to
         * zero, which a page-sized run took for a shrink and returned p unchanged (found by
         * review: realloc(p, SIZE_MAX) of a 1.5 MiB run "succeeded") */
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t a = (uintptr_t)p;
    size_t usable;
    lab_chunk_t *c = NULL;
    lab_page_t *d = NULL;
    if (s) { /* a small block that does not stay where it is */
        if (span_block_keyed(p))
            realloc_freed(p);
        usable = s->block_size;
        goto move;
    }
    c = lab_pagemap_lookup(a);
    if (!lab_chunk_is_ours(c)) {
        if (lab_unlikely(lab_huge_gone(a)))
            realloc_freed(p);
        foreign(p, "realloc() of a pointer that is not ours, NULL returned (errno EINVAL):");
        errno = EINVAL; /* not ours: leave it untouched */
        return NULL;
    }
    d = block_desc(c, a, true);
    usable = block_usable(c, d, a);
    /* in a signal handler no block is resized in place (that may lock or call the kernel) */
    switch (lab_tls_heap->gfp ? LAB_PAGE_INTERIOR : d->h.state) {
    case LAB_PAGE_HUGE:
        /* within the mapping, growing or shrinking a little: no system call (a growing block
         * may have been given a mapping larger than it asked for) */
        if (n <= usable && (n >= c->asked || n > usable / 2)) {
            lab_pool_huge_asked(c->pool, c, n);
            return p;
        }
        if (n > LAB_REALLOC_MAP_MIN) {
            /* growing past it: half as much again, so that a block grown in small steps costs a
             * few mremaps, not one per page (address space only: pages fill in when touched) */
            size_t more = usable + usable / 2;
            void *q = n > usable && more > n ? lab_pool_resize_huge(c->pool, c, more) : NULL;
            if (!q)
                q = lab_pool_resize_huge(c->pool, c, n);
            if (q) {
                c->asked = n;
                return q;
            }
        }
        break;
    case LAB_PAGE_LARGE:
        /* a run above LAB_LARGE_MAX (alloc_large took used pages for it) resizes the same way:
         * in place, else onto a mapping of its own, not by a copy at every step */
        if (!d->above[0] && n > LAB_SMALL_MAX &&
            (n <= LAB_LARGE_MAX || d->h.npages > (LAB_LARGE_MAX >> LAB_PAGE_SHIFT))) {
            size_t need = (n + LAB_PAGE_SIZE - 1) >> LAB_PAGE_SHIFT;
            if (need <= d->h.npages) {
                lab_pool_shrink_run(c->pool, d, need);
                return p;
            }
            if (lab_pool_grow_run(c->pool, d, need))
                return p;
            if (n > LAB_REALLOC_MAP_MIN && lab_pool_huge_mappings(c->pool) < LAB_REALLOC_MAPS_MAX) {
                /* a block that keeps growing gets a mapping of its own, which the kernel
                 * resizes from then on without a copy; the run it leaves is reused */
                lab_chunk_t *hc;
                void *q = lab_pool_alloc_huge(c->pool, n, LAB_CHUNK_SIZE, LAB_GFP_GROWING, &hc);
                if (q) {
                    COUNT(huge);
                    COUNT(large_frees);
                    memcpy(q, p, usable);
                    lab_pool_free_run_store(c->pool, d);
                    return q;
                }
            }
        } else if (n <= usable && n > usable / 2) {
            return p;
        }
        break;
    default:
        if (d->h.state == LAB_PAGE_SPAN && span_block_keyed(p))
            realloc_freed(p);
        if (small_stays(n, usable))
            return p;
        break;
    }
move:;
    void *q = n <= LAB_SMALL_MAX ? lab_malloc(n) : alloc_large(n, 0, LAB_GFP_DEFAULT);
    if (!q)
        return NULL;
    memcpy(q, p, lab_min(n, usable));
    /* a run a block grew out of goes to the store, not the thread's run room: coalesced there,
     * its pages are what the next block's growth in place takes (a string built up in page steps
     * touched a fresh page for every step that had to move, with the runs left held apart) */
    if (d && d->h.state == LAB_PAGE_LARGE && !d->above[0] && !lab_tls_heap->gfp) {
        COUNT(large_frees);
        lab_pool_free_run_store(c->pool, d);
    } else
        lab_free(p);
    return q;
}

size_t lab_trim(void)
{
    /* the calling thread's nursery serves no more: its run goes back once its blocks are freed
     * (now, if they are) */
    if (lab_tls_heap->state == LAB_HEAP_LIVE)
        lab_nursery_close(lab_tls_heap);
    lab_heap_collect(); /* sends this thread's open messages too */
    lab_arena_reclaim();
    lab_arena_return_idle();
    /* the messages return_idle emptied are blocks of their senders' heaps, this one's often */
    lab_heap_collect();
    labyrinth_t *pool = labyrinth_default();
    return pool ? labyrinth_pool_trim(pool) : 0;
}

void lab_alloc_stats(struct lab_alloc_stats *out)
{
    lab_arena_stats(&out->heap, &out->heaps, &out->signal_heaps);
    out->idle_returns = lab_arena_idle_returns();
    out->kept_bytes = lab_arena_kept_bytes();
    uint64_t tc[LAB_THREAD_COUNTS];
    lab_pool_thread_counts_sum(tc);
    out->heap.foreign_frees += lab_load_relaxed(&heapless.foreign_frees) + tc[HL_foreign_frees];
    out->heap.frees += lab_load_relaxed(&heapless.frees) + tc[HL_frees];
    out->heap.large += lab_load_relaxed(&heapless.large) + tc[HL_large];
    out->heap.huge += lab_load_relaxed(&heapless.huge) + tc[HL_huge];
    out->heap.large_frees += lab_load_relaxed(&heapless.large_frees) + tc[HL_large_frees];
    out->heap.huge_frees += lab_load_relaxed(&heapless.huge_frees) + tc[HL_huge_frees];
    lab_pool_t *pool = lab_pool_default();
    if (pool) {
        lab_pool_counters(pool, &out->pool);
        lab_pool_huge_stats(pool, &out->huge_live, &out->huge_live_bytes, &out->huge_cached_bytes);
        out->huge_lent_bytes = lab_pool_huge_lent(pool);
        out->run_zones = lab_pool_run_zones(pool, NULL);
    } else {
        memset(&out->pool, 0, sizeof out->pool);
        out->huge_live = out->huge_live_bytes = out->huge_cached_bytes = out->huge_lent_bytes = out->run_zones = 0;
    }
}
