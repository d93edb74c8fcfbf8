/* alloc.h — the fast paths: lab_malloc and lab_free, and the core names of everything a libc
 * allocation function needs. Layer 4: uses core/arena and below.
 *
 * Call tree, from the fast path down to the slowest refill:
 *   lab_malloc ─ direct[(n+15)/16] span → pop free list            (≤ 1 KiB, no lock, no atomic)
 *     └ lab_malloc_slow ─ direct[lab_direct_slot(n)] pop (≤ 32 KiB); class span pop
 *         ├ lab_heap_alloc_small_slow ─ inbox, collect remote frees, carve, mark full, span_new
 *         │     └ lab_pool_alloc_order ─ room → shared lists → split → store → map chunks
 *         └ alloc_large ─ pool run (≤ 1 MiB, power-of-two runs through rooms) or a huge mapping
 *   lab_free ─ fast map entry tagged with this heap → descriptor → block start: push
 *     ├ lab_free_whole ─ a whole span's block (any heap's): this heap's reuse list, from the fast
 *     │   map's entry alone
 *     ├ lab_free_other ─ another heap's span: its descriptor → reuse list or message
 *     └ lab_free_slow ─ NULL / foreign (ignored, counted) / remote / large / huge, every check */
#ifndef LAB_ALLOC_H
#define LAB_ALLOC_H

#include "arena.h"

lab_internal void *lab_malloc_slow(size_t n);
lab_internal void lab_free_slow(void *p);
/* lab_free's other exits, h the calling thread's heap and e the fast map's entry of p less h's
 * tag (not a span of h with p a block start; the subtraction leaves the entry's low 48 bits as
 * they were: pool.h). lab_free_whole: e has LAB_FMAP_WHOLE, the block of a whole span goes on
 * h's reuse list from the entry alone. lab_free_other: the rest; a block start of another heap's
 * span is freed remotely at once (no second lookup); everything else goes through
 * lab_free_slow. */
lab_internal void lab_free_whole(void *p, lab_heap_t *h, uint64_t e);
lab_internal void lab_free_other(void *p, lab_heap_t *h, uint64_t e);

/* The fast path alone: a block, or NULL when only the slow path can tell (nothing set). Callers
 * that need more than lab_malloc_slow on a miss (operator new) call it and then their own slow
 * function, so that the hit needs no stack frame. */
lab_inline void *lab_malloc_fast(size_t n)
{
    if (lab_likely(n <= LAB_DIRECT_MAX))
        return lab_slot_take(n);
    return NULL;
}

/* The size whose class serves n bytes aligned to align (a power of two above 16), or 0 when a
 * page-sized run does (align above a page, or too large a size). A block of a class whose size is
 * a multiple of align is aligned (spans are). The class of n rounded up to align is the first
 * such: that is a class size, or its doubling's class step is itself a multiple of align
 * (classes: 16-byte steps to 128 B, then 32-byte steps to 512 B, 64-byte to 1 KiB, then four per
 * doubling: above 256 B every step is a multiple of 32, and align is at least 32 here). */
lab_inline size_t lab_aligned_class_size(size_t align, size_t n)
{
    if (align > LAB_PAGE_SIZE || n > LAB_SMALL_MAX)
        return 0;
    size_t m = ((n > align ? n : align) + align - 1) & ~(align - 1); /* cannot wrap */
    return m <= LAB_SMALL_MAX ? m : 0;
}

/* The aligned fast path (align a power of two): a block from a direct slot, or NULL when only
 * lab_malloc_aligned can tell (nothing set, errno untouched: posix_memalign saves it only then). */
lab_inline void *lab_malloc_aligned_fast(size_t align, size_t n)
{
    if (align <= 16) { /* any block: lab_malloc's pop, or lab_malloc_slow's first one */
        if (lab_likely(n <= LAB_DIRECT_MAX))
            return lab_slot_take(n);
        return n <= LAB_SMALL_MAX ? lab_slot_take(n) : NULL;
    }
    size_t m = lab_aligned_class_size(align, n);
    /* m's direct slot: its class's span or reuse list (never the nursery, whose blocks are
     * 16-byte aligned only) */
    return m ? lab_slot_take(m) : NULL;
}

/* After lab_malloc_aligned_fast missed: the class's slow path, or a page-sized run. */
lab_internal void *lab_malloc_aligned_slow(size_t align, size_t n);

/* align: a power of two (callers check); NULL + ENOMEM on exhaustion. */
lab_inline void *lab_malloc_aligned(size_t align, size_t n)
{
    void *p = lab_malloc_aligned_fast(align, n);
    if (lab_likely(p != NULL))
        return p;
    return lab_malloc_aligned_slow(align, n);
}

lab_inline void *lab_malloc(size_t n)
{
    void *p = lab_malloc_fast(n);
    if (lab_likely(p != NULL))
        return p;
    return lab_malloc_slow(n);
}

lab_inline void lab_free(void *p)
{
    uintptr_t a = (uintptr_t)p;
    /* one lookup in the fast map: the descriptor of p's run (a page in no used run finds its
     * chunk's sentinel, one of no chunk the zero descriptor: no heap owns either); outside the
     * region, the slow path's two levels */
    uintptr_t off;
    if (lab_likely(lab_fmap_in(a, &off))) {
        lab_heap_t *h = lab_tls_heap;
        /* the entry less this heap's tag is below 2^47, the descriptor, only on a page of one of
         * its spans that is not whole (pool.h): the descriptor's owner line is not read at all */
        uint64_t e = lab_fmap_entry(off) - h->ftag;
        lab_span_t *s = (lab_span_t *)(uintptr_t)e;
        if (lab_likely(e < h->flim) &&
            /* the start of a block handed out: an interior pointer, or a block start not carved
             * yet or past the last block, goes to the slow path, which aborts (s is read only
             * once the tag says it is one of this heap's spans) */
            lab_likely(lab_offset_ok_fdiv((uint32_t)a - s->base_lo_l, s->fdiv_l, s->flim_l))) {
            lab_block_t *b = (lab_block_t *)p;
            uintptr_t key = lab_load_relaxed(&lab_free_key), bkey = lab_block_key(b, key);
            /* a block that already carries its key (bit 0 aside: the transit form) was
             * probably freed before: check it */
            if (lab_unlikely((b->key | 1) == bkey))
                return lab_span_free_suspect(h, s, b);
            h->st.frees++;
            b->key = bkey;
            b->next = (lab_block_t *)((uintptr_t)s->free ^ key); /* lab_link_set */
            s->free = b;
            /* one signed test catches both "span now empty" (0) and "span was full" (bit 31);
             * asm goto so that the decrement and the test are one read-modify-write */
            __asm__ goto("subl $1, %0\n\tjle %l[slow]" : "+m"(s->used) : : "cc" : slow);
            return;
        slow:
            return lab_span_free_local_slow(h, s);
        }
        /* another thread's block (the common case here), or something the slow path sorts out;
         * a whole span's straight from here (through lab_free_other, which loaded the heap from
         * TLS again, it took 7 instructions more: scripts/cache_cost.sh) */
        if (lab_likely(e & LAB_FMAP_WHOLE))
            return lab_free_whole(p, h, e);
        return lab_free_other(p, h, e);
    }
    return lab_free_slow(p);
}

/* 0: no nursery (LABYRINTH_NURSERY; alloc.c): every small block from its class's span. */
lab_internal extern int lab_nursery_on;
/* A class takes blocks from the nursery while it holds fewer than this many bytes there
 * (LAB_NURSERY_CLASS_BYTES; a variable so that tests can lift it). */
lab_internal extern size_t lab_nursery_class_bytes;

/* The rest of the family, with glibc's contracts (errno set on failure). */
lab_internal void *lab_calloc(size_t n, size_t size);
lab_internal void *lab_realloc(void *p, size_t n);

/* Usable bytes of a block we own; 0 for NULL or a pointer that is not ours. */
lab_internal size_t lab_usable_size(const void *p);
/* The usable size a block asked for with n bytes (aligned to align, 0 or a power of two) gets at
 * the least, computed without allocating (jemalloc's nallocx; 0 past PTRDIFF_MAX). A block
 * asked for with this many bytes has exactly or at least as many usable. */
lab_internal size_t lab_good_size(size_t n, size_t align);
/* Zero [p, p + n) inside a block the caller owns: whole pages through the pool's zeroing, which
 * leaves those the kernel says were never written (a grown huge block's fresh pages), the ends
 * by memset. */
lab_internal void lab_zero_range(void *p, size_t n);
/* true if p is the start of a live block of ours (for realloc's foreign check). */
lab_internal bool lab_owns(const void *p);
/* Return idle memory to the OS now; returns the pages purged. */
lab_internal size_t lab_trim(void);
/* Process-wide counters for malloc statistics. */
struct lab_alloc_stats {
    lab_heap_stats_t heap;
    size_t heaps, signal_heaps;
    size_t idle_returns; /* spans released without their owner (lab_arena_return_idle) */
    size_t kept_bytes;   /* emptied spans heaps keep for their next spans (arena.c) */
    size_t huge_live, huge_live_bytes, huge_cached_bytes; /* lab_pool_huge_stats */
    size_t huge_lent_bytes; /* lab_pool_huge_lent */
    size_t run_zones;    /* zones made for page-sized blocks of threads that met (lab_pool_run_zones) */
    struct labyrinth_pool_stats pool;
};
lab_internal void lab_alloc_stats(struct lab_alloc_stats *out);

#endif
