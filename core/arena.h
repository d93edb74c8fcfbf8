/* arena.h — size classes, spans and thread-exclusive heaps.
 * Layer 3: uses core/pool (and below). A heap belongs to one thread and is reached through one
 * initial-exec TLS pointer; its spans are runs from the pool holding equal blocks of one class.
 * Frees from other threads arrive on a span's atomic remote list; a span that was full when such a
 * free came is put on its heap's inbox so the owner sees it again. */
#ifndef LAB_ARENA_H
#define LAB_ARENA_H

#include "pool.h"

/* ---- size classes: 16-byte steps to 128 B, four per doubling to 256 B, eight per doubling to
 * 8 KiB, then four per doubling up to 32 KiB ---- */
#define LAB_SMALL_MAX    32768u
#define LAB_DIRECT_MAX   1024u
#define LAB_DIRECT_SLOTS (LAB_DIRECT_MAX / 16 + 1)
/* Sizes above 1 KiB have direct slots too, after the first LAB_DIRECT_SLOTS: one per 128 bytes
 * up to LAB_MID_MAX, then one per 2 KiB up to LAB_SMALL_MAX (every class boundary in each range
 * is a multiple of its step); malloc's slow path pops them before it computes a class
 * (lab_malloc_slow). */
#define LAB_MID_MAX      8192u
#define LAB_SLOTS_ALL \
    (LAB_DIRECT_SLOTS + (LAB_MID_MAX - LAB_DIRECT_MAX) / 128 + (LAB_SMALL_MAX - LAB_MID_MAX) / 2048)
#define LAB_NR_CLASSES   61       /* class 0 unused; 1..60 */
#define LAB_LARGE_MAX    ((size_t)1 << 20)  /* above: a dedicated (huge) mapping */

/* Eight classes per doubling from 256 B to 8 KiB (at most 11 % of a block unused, 20 % with
 * four): blocks of a few hundred bytes are what parsers and interpreters keep by the million.
 * jq's 392-byte nodes took 448-byte blocks and its 272-byte ones 320, and its peak RSS was 1.10
 * times glibc's (whose chunks are exact to 16 bytes), 1.04 with eight to 1 KiB. Above, a page
 * and its header is what page caches keep: SQLite's 4 368-byte blocks took 5 120 bytes with four
 * (peak RSS 1.26 times glibc's on 67 MB of SQL), 4 608 with eight (1.10). The direct slots (one
 * per 16 bytes up to 1 KiB, 128 to 8 KiB) make the extra classes free on the fast path; a
 * program pays a page or two more for each class it touches (a span's first page). */
lab_inline unsigned lab_size_class(size_t n)
{
    if (n <= 128)
        return n <= 16 ? 1 : (unsigned)((n + 15) >> 4);
    size_t m = n - 1;
    unsigned b = lab_log2_floor(m);
    if (b < 8) /* 129 .. 256: classes 9 .. 12 */
        return 9 + (unsigned)((m >> 5) & 3);
    if (b < 13) /* 257 .. 8192: classes 13 .. 52 */
        return 13 + (b - 8) * 8 + (unsigned)((m >> (b - 3)) & 7);
    return 53 + (b - 13) * 4 + (unsigned)((m >> (b - 2)) & 3);
}

lab_inline size_t lab_class_size(unsigned cls)
{
    if (cls <= 8)
        return (size_t)cls << 4;
    if (cls <= 12)
        return 128 + (size_t)(cls - 8) * 32;
    if (cls <= 52) {
        unsigned k = cls - 13, b = 8 + k / 8;
        return ((size_t)1 << b) + (size_t)(k % 8 + 1) * ((size_t)1 << (b - 3));
    }
    unsigned k = cls - 53, b = 13 + k / 4;
    return ((size_t)1 << b) + (size_t)(k % 4 + 1) * ((size_t)1 << (b - 2));
}

/* lab_class_size(lab_size_class(n)) for n up to LAB_DIRECT_MAX (0: 16), in a few instructions
 * (calloc clears a block's whole size): 16-byte steps to 128 B, 32 to 512, 64 to 1 KiB. */
lab_inline size_t lab_direct_block_size(size_t n)
{
    n += n == 0;
    if (lab_likely(n <= 128))
        return (n + 15) & ~(size_t)15;
    size_t step = n <= 512 ? 32 : 64;
    return (n + step - 1) & ~(step - 1);
}

/* A free block: the list link, then the free key (a per-process random word). Every block is at
 * least 16 bytes, so both fit. Allocation clears the key; a free that finds it set again is a
 * double free unless the block turns out not to be on the span's lists. */
typedef struct lab_block {
    struct lab_block *next;
    uintptr_t key;
} lab_block_t;

lab_internal extern uintptr_t lab_free_key;

/* Per class, ceil(2^64 / size): an offset n < 2^32 is a multiple of the size exactly when
 * n * c (mod 2^64) < c (Lemire, Kaser and Kurz, "Faster remainder by direct computation"). The
 * free fast path uses it to refuse interior pointers; zero (every check fails, so the slow path
 * decides) until the first heap is made. */
lab_internal extern uint64_t lab_class_div[LAB_NR_CLASSES];

lab_inline bool lab_offset_ok_div(uint32_t off, uint64_t c) { return (uint64_t)off * c < c; }

lab_inline bool lab_span_offset_ok(uint32_t off, unsigned cls) { return lab_offset_ok_div(off, lab_class_div[cls]); }

/* The same test in 32 bits with c = ceil(2^32 / size), kept in each span (lab_span_t.div): exact
 * for every class below its span's size, which is all the free fast path asks (tested
 * exhaustively by unit test_span_div_exact), and one word the path reads from the descriptor it
 * already holds. */
lab_inline bool lab_offset_ok_div32(uint32_t off, uint32_t c) { return off * c < c; }
lab_inline uint32_t lab_div32_of(size_t size) { return (uint32_t)((((uint64_t)1 << 32) + size - 1) / size); }

/* The owner's free asks one question of an offset in its span: the start of a block carved
 * already? With m = floor(2^32 / size) + 1 and e = size * m - 2^32 (1 <= e <= size), the block
 * start k * size maps to k * e under x -> x * m (mod 2^32), and every other offset of the span
 * maps higher than all of them, so that x * m < carved * e answers it in one multiply and one
 * compare (three instructions fewer than a bound and a remainder test). That holds while no
 * product wraps past the block starts' images, which unit test_span_fdiv_exact checks for every
 * class, every span length (8 to 64 pages) and every count carved; it fails for 32 KiB blocks in
 * a 256 KiB span (non-multiples land among the eight starts' images), so that class gets m = 0
 * and its owner's frees take the checked slow path. */
#define LAB_FDIV_MAX 28672u
lab_inline uint32_t lab_fdiv_of(size_t size)
{
    return size <= LAB_FDIV_MAX ? (uint32_t)(((uint64_t)1 << 32) / size + 1) : 0;
}
/* The bound for carved blocks of size with m = lab_fdiv_of(size): 0 (every offset refused) when
 * m is. */
lab_inline uint32_t lab_flim_of(size_t size, uint32_t m, uint32_t carved) { return carved * (uint32_t)(size * m); }
lab_inline bool lab_offset_ok_fdiv(uint32_t off, uint32_t m, uint32_t flim) { return off * m < flim; }

/* Every span of a class up to 1 KiB has this order (span_order, span_order_min: arena.c), and is
 * aligned to its length; for each such class, the owner's test (lab_fdiv_of, and lab_flim_of of
 * all the blocks such a span holds): a block start of a whole span, from its offset in the
 * span's length alone (pool.h: LAB_FMAP_WHOLE). Zero (every offset refused) until the first heap
 * is made. */
#define LAB_WHOLE_ORDER 3
typedef struct lab_whole_geom {
    uint32_t fdiv, flim;
} lab_whole_geom_t;
lab_internal extern lab_whole_geom_t lab_class_whole[];

/* The key a freed block carries: the free key mixed with the block's own address, so that a copy
 * of a freed block's header somewhere else (realloc or memcpy of memory the program never wrote,
 * which once held a freed block) never reads as a freed block there. The address is 16-byte
 * aligned, so bit 0 stays the key's (set); the transit form clears it. */
lab_inline uintptr_t lab_block_key(const void *b, uintptr_t key) { return key ^ (uintptr_t)b; }

/* Free-list links are stored XORed with the free key, so that a heap overflow cannot forge a
 * list entry without knowing it (the list heads in spans stay plain). */
lab_inline lab_block_t *lab_link_get(const lab_block_t *b)
{
    return (lab_block_t *)((uintptr_t)b->next ^ lab_load_relaxed(&lab_free_key));
}

lab_inline void lab_link_set(lab_block_t *b, const lab_block_t *next)
{
    b->next = (lab_block_t *)((uintptr_t)next ^ lab_load_relaxed(&lab_free_key));
}

struct lab_heap;

#define LAB_SPAN_FULL   0x80000000u   /* in usedf: the span is off its class list */
#define LAB_SPAN_GUARDED 1u           /* in flags: the span's last page is PROT_NONE (secure mode) */
#define LAB_SPAN_REUSE   2u           /* in flags: a heap's reuse list dressed as a span (below) */
#define LAB_SPAN_WAIT    4u           /* in flags: full and off its list, usedf counting down the
                                         local frees it waits for before it is relisted */
/* The remote word: bit 0 NOTIFY (the owner wants to hear of the next free), bits 1..47 the list
 * head (blocks are 16-byte aligned, user space is 47 bits), bits 48..63 the list's length, so the
 * owner collects a whole list without walking it. */
#define LAB_REMOTE_NOTIFY   ((uintptr_t)1)
#define LAB_REMOTE_PTR      (((uintptr_t)1 << 48) - 2)
#define LAB_REMOTE_COUNT1   ((uintptr_t)1 << 48)

/* A span overlays the pool's descriptors of its first two pages (2 x 64 bytes; every span has at
 * least 8 pages, and the pool reads nothing of the second page's but its header while the run is
 * used, which the span leaves alone). The first holds what other threads read to free a block
 * (owner, geometry), written when the span is made and as it is carved (a page of blocks at a
 * time); the second the owner's free list and count, written by every local malloc and free, its
 * list links and the remote word. On one cache line the two would bounce between cores whenever
 * other threads free blocks of the span while its owner allocates (perf on `wl ring`: most of
 * free()'s samples sat on the load of `heap`). The remote word is the owner's line too: the owner
 * writes it with an atomic when a span fills (NOTIFY armed), when a local free relists a full
 * span and when it collects, and on the first line each of those took the line from the threads
 * reading it to free blocks (perf on `wl larson 2`: the exchange in span_free_local, 3.8 % of the
 * run; 0.7 % with the word here). Other threads write it rarely now that remote frees travel in
 * messages: a thread without a heap of its own, and a message's own block going home. `heap`
 * sits where the pool keeps `owner`, so runs the pool owns never match a heap. */
typedef struct lab_span {
    union {
        lab_page_hdr_t h;
        struct {
            uint8_t h_fields[4]; /* state, order, clean, zone: the pool's */
            uint32_t div;        /* over h.npages, which the pool does not read while the run is
                                    in use: lab_div32_of(block size), the free fast path's test */
        };
    };
    uint64_t unused0[3];
    struct lab_heap *heap;      /* owner, never changes while the span lives */
    uint32_t base_lo;           /* the low 32 bits of the span's address (the free path's check) */
    uint16_t block_size;
    uint16_t carved;            /* blocks carved from the span so far (the rest untouched) */
    uint16_t capacity;          /* blocks in the span */
    uint8_t cls;
    uint8_t unused1[5];
    uint64_t unused2;
    /* ---- the second page's descriptor: the owner's (and the list links' writers') ---- */
    lab_page_hdr_t h1;          /* the pool's: never written here */
    lab_block_t *free;          /* owner-only free list */
    union {
        uint32_t usedf;         /* blocks out (owner's count) | LAB_SPAN_FULL */
        int32_t used;           /* the same, read signed: <= 0 when empty or full */
    };
    uint8_t flags;
    uint8_t unused3;
    uint16_t orphan_out;        /* atomic (relaxed): blocks out when the span's heap was abandoned
                                   and the span went from its list to the inbox (arena.c:
                                   heap_orphan); 0 otherwise */
    /* here, not beside `heap`: the owner relinks its lists whenever a span fills or comes back,
     * and on the first line every relink took the line from the cores freeing into the span
     * and its neighbours */
    struct lab_span *next;      /* class list; inbox link while full (written by the pusher) */
    struct lab_span *prev;
    uint32_t fdiv_l, base_lo_l; /* lab_fdiv_of(block size) and base_lo again, for the owner's
                                   free: with the owner found in the fast map's tag, a local free
                                   reads this line only */
    uintptr_t remote;           /* atomic: blocks freed by other threads, count, NOTIFY */
    uint32_t flim_l;            /* lab_flim_of(carved): the owner's free takes offsets below it
                                   under fdiv_l only, block starts handed out (not those not carved
                                   yet, nor the tail a span's length leaves over its blocks) */
    uint32_t emptied_at;        /* the owner's st.frees when a local free last emptied the span
                                   (arena.c: span_cycling) */
} lab_span_t;

/* A heap's reuse list of a class: what malloc's fast path reads of a span through a direct slot
 * (free, usedf, flags), 16 bytes where a span takes 128; lab_heap_reuse dresses it as one. */
typedef struct lab_reuse {
    lab_block_t *free;
    union {
        uint32_t usedf;
        int32_t used;
    };
    uint8_t flags;
    uint8_t over;  /* other heaps' blocks freed that found it full since it last ran dry
                      (wraps: arena.c), or 1 where only the heap's own did */
    int16_t floor; /* -(its bound), or 0 where reuse lists are off (no live ordinary heap;
                      signal heaps; secure mode) */
} lab_reuse_t;
_Static_assert(__builtin_offsetof(lab_span_t, usedf) == __builtin_offsetof(lab_span_t, free) + 8 &&
                   __builtin_offsetof(lab_span_t, flags) == __builtin_offsetof(lab_span_t, free) + 12,
               "a reuse list has a span's free, usedf and flags at the same distances");
_Static_assert(sizeof(lab_span_t) == 2 * sizeof(lab_page_t), "a span is two page descriptors");
_Static_assert(sizeof(lab_reuse_t) == 16, "a reuse list is 16 bytes");
_Static_assert(__builtin_offsetof(lab_span_t, div) == __builtin_offsetof(lab_page_hdr_t, npages),
               "div overlays npages");
_Static_assert(__builtin_offsetof(lab_span_t, heap) == __builtin_offsetof(lab_page_t, owner),
               "heap overlays owner");
_Static_assert(__builtin_offsetof(lab_span_t, h1) == sizeof(lab_page_t), "h1 is the second header");
_Static_assert(__builtin_offsetof(lab_span_t, free) >= 64 && __builtin_offsetof(lab_span_t, usedf) >= 64 &&
                   __builtin_offsetof(lab_span_t, next) >= 64 && __builtin_offsetof(lab_span_t, flags) >= 64 &&
                   __builtin_offsetof(lab_span_t, remote) >= 64 && __builtin_offsetof(lab_span_t, flim_l) >= 64 &&
                   __builtin_offsetof(lab_span_t, carved) < 64 && __builtin_offsetof(lab_span_t, cls) < 64,
               "what other threads read and what the owner writes on every call: two cache lines");

/* Per-thread counters, summed on demand (no atomics). */
typedef struct lab_heap_stats {
    uint64_t mallocs, frees, remote_frees, foreign_frees, large, huge, spans, span_releases;
    uint64_t large_frees, huge_frees; /* page-sized and huge blocks freed (large, huge: made) */
    uint64_t reclaimed; /* spans heap_reclaim gave back before fresh pages (within span_releases) */
} lab_heap_stats_t;

/* Remote frees are batched per destination heap in the freeing thread: the block addresses go
 * into a message (an ordinary small block of the freeing thread's heap), a few messages open at
 * once, and a full message is sent with one CAS. The owner takes all its messages with one
 * exchange and frees each block locally; it reads addresses from an array, so the blocks' cache
 * misses overlap instead of forming a chain. Nothing is shared per block but the block itself. */
#define LAB_RB_SLOTS     8
#define LAB_RB_BLOCKS    62                  /* a message is sent at this many blocks ... */
#define LAB_RB_BYTES     (64u << 10)         /* ... or this many bytes */

typedef struct lab_rmsg {
    struct lab_rmsg *next;
    uint32_t n, bytes;
    lab_block_t *blk[LAB_RB_BLOCKS];
} lab_rmsg_t;
_Static_assert(sizeof(lab_rmsg_t) == 512, "a message is one 512-byte block");

/* Classes served by the direct slots (sizes <= LAB_DIRECT_MAX). */
#define LAB_DIRECT_CLASSES 29
/* ... and by all the direct slots: every class */
#define LAB_SLOT_CLASSES LAB_NR_CLASSES
#define LAB_MID_SLOTS    (LAB_DIRECT_SLOTS + (LAB_MID_MAX - LAB_DIRECT_MAX) / 128)

/* The direct slot of a size up to LAB_SMALL_MAX: (n + 15) >> 4 up to 1 KiB; then one per 128
 * bytes from LAB_DIRECT_SLOTS on (1025 .. 1152 -> 65, ..., 8065 .. 8192 -> 120); then one per
 * 2 KiB (8193 .. 10240 -> 121, ..., 30721 .. 32768 -> LAB_SLOTS_ALL - 1). */
lab_inline size_t lab_direct_slot(size_t n) /* size_t: no zero-extension on the fast path */
{
    if (n <= LAB_DIRECT_MAX)
        return (n + 15) >> 4;
    if (lab_likely(n <= LAB_MID_MAX))
        return ((n - LAB_DIRECT_MAX + 127) >> 7) + LAB_DIRECT_SLOTS - 1;
    return ((n - LAB_MID_MAX + 2047) >> 11) + LAB_MID_SLOTS - 1;
}
/* Blocks of other heaps a thread freed and keeps for its own next allocations, per class: a
 * list's bound starts at LAB_REUSE_MIN and doubles up to LAB_REUSE_MAX each time it runs dry
 * after it was found full, halving again after LAB_REUSE_OVERS frees of other heaps' blocks found
 * it full without its running dry in between (arena.c: reuse bounds). */
#ifndef LAB_REUSE_MAX /* a build may try other bounds (-DLAB_REUSE_MAX=256) */
/* 128: `wl larson 2 5000000`, 9 interleaved runs, 0.287 s at 64, 0.283 at 128, 0.283 at 256
 * (jemalloc 0.282); peak RSS 16.3, 16.0, 15.6 MiB (blocks taken back from the lists instead of
 * carved); larson 8, xmalloc, churn, maze, mstress: the same or a little faster */
#define LAB_REUSE_MAX 128
#endif
#ifndef LAB_REUSE_MIN
#define LAB_REUSE_MIN 16
#endif
#define LAB_REUSE_OVERS 256 /* over wraps to 0 there */
#define LAB_REUSE_ON 4
#ifndef LAB_ASIDE_BATCH
#define LAB_ASIDE_BATCH 16
#endif
/* Bytes of emptied spans a heap keeps, whole, for its next spans (arena.c: kept spans): the
 * default of lab_kept_max, which LABYRINTH_KEPT_KIB sets. */
#ifndef LAB_KEPT_MAX
#define LAB_KEPT_MAX ((size_t)4 << 20)
#endif

/* The background thread's watch over a heap's kept lists (arena.c: kept_watch): apart from the
 * heap, since most heaps never keep a span and a program with thousands of threads pays for
 * every byte of each heap. */
struct lab_kept_watch {
    uint64_t seen[LAB_NR_CLASSES];    /* the kept lists it saw */
    uint64_t seen_ms[LAB_NR_CLASSES]; /* ... and since when (0: not watching) */
    uint64_t park_seen[LAB_NR_CLASSES]; /* the parked words it saw (arena.c: parked spans) */
    uint64_t park_ms[LAB_NR_CLASSES];   /* ... and since when (0: not watching) */
};

typedef struct lab_heap {
    lab_span_t *direct[LAB_SLOTS_ALL];       /* lab_direct_slot(n) -> current span of that size's
                                                class (or its reuse list; lab_span_empty: none) */
    lab_span_t *cur[LAB_NR_CLASSES];         /* head of each class list: the span in use */
    uint64_t ftag;                           /* the fast map's tag of this heap's spans (pool.h:
                                                id << LAB_FMAP_TAG_SHIFT) */
    uint64_t flim;                           /* LAB_FMAP_DESC_LIM; 0 without a tag (ids spent,
                                                the static empty heap): free() never matches */
    lab_heap_stats_t st;
    lab_pool_t *pool;
    lab_page_t *nursery;                     /* the open nursery run (alloc.c), or NULL */
    uint8_t nursery_n[LAB_DIRECT_CLASSES];   /* blocks each class has taken from it */
    uint8_t nursery_used;                    /* the heap has had its nursery */
    uint8_t aside;                           /* local frees into a span malloc is not taking
                                                from go to the reuse list (arena.c: heap_aside_on) */
    uint32_t aside_full;                     /* such frees in a row that found the list full */
    uint32_t resizes;                        /* the owner's: realloc's slow paths (alloc.c) */
    int state;                               /* LAB_HEAP_LIVE / ABANDONED / NONE */
    lab_gfp_t gfp;                           /* LAB_GFP_ATOMIC for signal heaps */
    int signal_slot;                         /* a signal heap: its slot + 1; else 0 */
    volatile int in_slow;                    /* lists being changed (fork-child safety) */
    struct lab_heap *next_all;
    struct lab_heap *next_abandoned;
    lab_reuse_t reuse[LAB_DIRECT_CLASSES];   /* reuse lists (free, usedf = -count), see arena.c */
    uintptr_t inbox;                         /* atomic: spans made non-full by remote frees */
    uintptr_t msgs;                          /* atomic: messages of blocks other threads freed */
    uint64_t kept_mask;                      /* the owner's: bit c set when kept[c] may be set */
    uint64_t parked_mask;                    /* the owner's: bit c set while c's current span is
                                                parked (parked[c] holds it; arena.c) */
    size_t kept_bytes;                       /* atomic: the bytes of the kept spans (<= LAB_KEPT_MAX) */
    uint32_t reclaimed_at[LAB_NR_CLASSES];   /* the owner's: lab_heap_calls | 1 when heap_reclaim
                                                last took c's empty listed span (0: not since) */
    uint32_t held_to[LAB_NR_CLASSES];        /* the owner's: heap_reclaim leaves c's empty listed
                                                spans alone until st.spans reaches it (arena.c) */
    int owner_tid;                           /* atomic: the kernel's id of the live heap's thread
                                                (arena.c: heap_adopt_ended); 0: never looked at.
                                                Here, not last: every take of a heap writes it (at
                                                the struct's end it cost each process a fault) */
    /* the fields above are all a thread's first calls touch (2.7 KiB, on the page of its rooms:
     * lab_heap_get_slow); those below are read and written later if ever (the kept lists only
     * where kept_mask says they are set) */
    struct lab_heap *rb_to[LAB_RB_SLOTS];    /* this thread's open messages: destinations */
    lab_rmsg_t *rb[LAB_RB_SLOTS];            /* ... and the messages (NULL: none open) */
    uint32_t rb_last;                        /* the slot a block last went into */
    uint32_t span_made[LAB_NR_CLASSES];      /* the owner's: lab_heap_calls | 1 when c last made
                                                a span (not a kept one's), for classes over 1 KiB
                                                (arena.c: span_class_cold; span_class_busy keeps
                                                bit 1 for a quick span before) */
    uintptr_t kept[LAB_NR_CLASSES];          /* atomic: empty spans kept off the lists, whole
                                                (owner pushes and pops; anyone may take all) */
    uintptr_t parked[LAB_NR_CLASSES];        /* atomic: each class's current span while it is
                                                parked, with a generation; PARK_GONE once the
                                                purge gave it back; 0 while the owner, or the
                                                purge, holds it */
    lab_span_t *park_next[LAB_NR_CLASSES];   /* the owner's: the span behind a parked one */
    uint8_t park_gen;                        /* the owner's: the next parking's generation */
    struct lab_ready *ready;                 /* secure mode: shuffled batches, per class */
    uint64_t rng;                            /* secure mode: the shuffle's state */
    uintptr_t bg_msgs, bg_inbox;             /* the background thread's alone: msgs and inbox */
    uint64_t bg_seen_ms;                     /* ... when it last saw them change (0: not watching) */
    uintptr_t bg_inbox_left;                 /* ... and the inbox it left (spans it kept back) */
    struct lab_kept_watch *bg_kept;          /* ... its watch over the kept lists, made when it
                                                first finds kept spans (NULL: never had any) */
    size_t x_drained;                        /* ended thread's heap: blocks its senders returned
                                                since its inbox was last looked through (atomic) */
    size_t x_left;                           /* ... the spans that look left there (relaxed) */
} lab_heap_t;

_Static_assert(LAB_NR_CLASSES <= 64, "kept_mask has a bit per class");

enum { LAB_HEAP_EMPTY = 0, LAB_HEAP_LIVE = 1, LAB_HEAP_ABANDONED = 2, LAB_HEAP_NONE = 3 };

/* The reuse list of cls dressed as a span for the direct slots: only its free, usedf and flags
 * may be read or written through the pointer (the rest lies over the heap's other fields). */
lab_inline lab_span_t *lab_heap_reuse(lab_heap_t *h, unsigned cls)
{
    return (lab_span_t *)(void *)((char *)&h->reuse[cls] - __builtin_offsetof(lab_span_t, free));
}

/* The class of a reuse list seen through a direct slot (d: a span flagged LAB_SPAN_REUSE). */
lab_inline unsigned lab_heap_reuse_cls(lab_heap_t *h, const lab_span_t *d)
{
    return (unsigned)((const lab_reuse_t *)(const void *)&d->free - h->reuse);
}

lab_internal extern __thread lab_heap_t *lab_tls_heap;

/* The allocation fast path's pop: the first block of s's free list (a span, a reuse list, or
 * lab_span_empty), or NULL when the list is empty. */
lab_inline void *lab_span_take(lab_heap_t *h, lab_span_t *s)
{
    lab_block_t *b = s->free;
    if (lab_unlikely(b == NULL))
        return NULL;
    s->free = lab_link_get(b);
    b->key = 0; /* a live block never carries the free key */
    s->usedf++;
    h->st.mallocs++;
    return b;
}
/* The block the calling thread's direct slot for n bytes (n <= LAB_SMALL_MAX) holds first, or
 * NULL: lab_malloc's pop, and the slow path's above 1 KiB. */
lab_inline void *lab_slot_take(size_t n)
{
    lab_heap_t *h = lab_tls_heap;
    return lab_span_take(h, h->direct[lab_direct_slot(n)]);
}
/* The span the direct slots of a class without a current span point at (free == NULL). */
lab_internal extern lab_span_t lab_span_empty;
lab_internal extern lab_heap_t lab_heap_empty;

/* The slow path of small allocation: refill from the class's spans or a new span. */
lab_internal void *lab_heap_alloc_small_slow(lab_heap_t *h, unsigned cls);

/* Secure mode (LABYRINTH_SECURE=1): every small allocation takes the slow path, which hands out
 * blocks from a shuffled batch taken from the class's spans (random order; a freed block waits at
 * least until the batch in use is spent: delayed reuse), and every span ends in a PROT_NONE guard
 * page (an overflow off the end of a span faults). lab_arena_set_secure turns it on, before other
 * threads run; signal heaps keep the ordinary paths (they may not make system calls). */
lab_internal extern int lab_secure;
lab_internal void lab_arena_set_secure(void);
lab_internal void *lab_heap_alloc_secure(lab_heap_t *h, unsigned cls);
/* The calling thread's heap, creating (or adopting) one; NULL on ENOMEM. */
lab_internal lab_heap_t *lab_heap_get_slow(void);
/* Live heaps past which a thread about to make a heap looks for one whose thread ended without
 * retiring it (arena.c: heap_adopt_ended); a variable so that tests can lift it. */
lab_internal extern unsigned lab_heap_scan_min;
/* Whether the calling thread is past its heap's retirement in glibc's last round of key
 * destructors, where a heap taken is retired again at once (arena.c). */
lab_internal bool lab_heap_past_last_round(void);
/* The class's next block after its current span was parked (arena.c: parked spans): the owner
 * takes the span back, its direct slots on it again. */
lab_internal void *lab_heap_unpark_take(lab_heap_t *h, unsigned cls);
/* A local free that emptied the span or hit a full one. */
lab_internal void lab_span_free_local_slow(lab_heap_t *h, lab_span_t *s);
/* The owner's free of b (key checked; bkey its free key) outside the inline fast path: counted,
 * keyed, pushed, and the span's count brought down. */
lab_inline void lab_span_push_own(lab_heap_t *h, lab_span_t *s, lab_block_t *b, uintptr_t bkey)
{
    h->st.frees++;
    b->key = bkey;
    lab_link_set(b, s->free);
    s->free = b;
    if (--s->used <= 0)
        lab_span_free_local_slow(h, s);
}
/* The owner's free of b (key checked; bkey its free key) into a span of an aside heap that is
 * not its class's current one (arena.c: heap_aside_on): on the reuse list while that holds less
 * than half its bound (the rest stays for other heaps' blocks), else pushed on the span. */
lab_internal void lab_span_free_aside(lab_heap_t *h, lab_span_t *s, lab_block_t *b, uintptr_t bkey);
/* A local free of a block that carries the free key: abort if it is on the span's lists (a
 * double free), else free it normally. */
lab_internal void lab_span_free_suspect(lab_heap_t *h, lab_span_t *s, lab_block_t *b);
/* The direct slots of cls pointed at an empty reuse list: point them back at the class's span. */
lab_internal void lab_heap_reuse_off(lab_heap_t *h, unsigned cls);
/* The reuse list of cls has just got its first block: point the class's direct slots at it. */
lab_internal void lab_heap_reuse_on(lab_heap_t *h, unsigned cls);
/* LAB_REUSE_OVERS frees found the reuse list of s's class full since it last ran dry: halve its
 * bound (not below LAB_REUSE_MIN), sending the blocks past it to their owners; then b (key
 * checked) goes its owner's way too (lab_span_send). */
lab_internal void lab_span_free_shrink(lab_heap_t *h, lab_span_t *s, lab_block_t *b);
/* The rest of a remote free (key checked): into the caller's message for the block's owner, or,
 * without a live ordinary heap, onto the span's remote list at once. Counted here. */
lab_internal void lab_span_send(lab_span_t *s, lab_block_t *b);
/* The message in slot i has reached its size: send it, close the slot. */
lab_internal void lab_heap_msg_full(lab_heap_t *h, unsigned i);

/* Aborts: b was freed twice. Not declared noreturn, so that callers jump to it without a frame. */
lab_internal void lab_double_free(const void *b);

/* b into me's open message in slot i (b's transit key: tkey); true when the message is full,
 * to be sent (lab_heap_msg_full). */
lab_inline bool lab_msg_append(lab_heap_t *me, unsigned i, const lab_span_t *s, lab_block_t *b, uintptr_t tkey)
{
    lab_rmsg_t *m = me->rb[i];
    b->key = tkey;
    uint32_t n = m->n;
    m->blk[n] = b;
    m->n = ++n;
    m->bytes += s->block_size;
    return lab_unlikely(n >= LAB_RB_BLOCKS) || lab_unlikely(m->bytes >= LAB_RB_BYTES);
}

/* A free from a thread (me: its lab_tls_heap) that does not own the span. Another thread's
 * lists cannot be walked safely; a block carrying the 64-bit random key (or its transit form) is
 * taken as freed twice (only a copy of freed memory could carry it otherwise). A small block goes
 * on the caller's reuse list for the class (LIFO, up to its bound): its cache lines are hot here, so the
 * caller's next malloc of that size takes it; it carries the transit key meanwhile. The rest is
 * batched for the owner (lab_span_send). Inline, so the common case pays no call frame. */
lab_inline void lab_span_free_remote(lab_heap_t *me, lab_span_t *s, lab_block_t *b)
{
    uintptr_t key = lab_load_relaxed(&lab_free_key), bkey = lab_block_key(b, key);
    if (lab_unlikely((b->key | 1) == bkey))
        return lab_double_free(b);
    unsigned cls = s->cls;
    if (cls < LAB_DIRECT_CLASSES) {
        lab_reuse_t *r = &me->reuse[cls];
        /* a heap whose reuse lists are off has floors of 0: the test fails */
        if (lab_likely((int32_t)r->usedf > r->floor)) {
            b->key = bkey ^ 1;
            b->next = (lab_block_t *)((uintptr_t)r->free ^ key); /* lab_link_set */
            r->free = b;
            r->usedf--;
            me->st.remote_frees++;
            /* the slots point elsewhere: turn them to the list once it holds a few blocks (each
             * turn and turn back costs a slow malloc and two walks over the slots) */
            if (lab_unlikely(!r->flags) && (int32_t)r->usedf <= -LAB_REUSE_ON)
                return lab_heap_reuse_on(me, cls);
            return;
        }
        /* full: counted towards halving its bound (a thread that frees more of the class than
         * it allocates holds no more than it needs); off (a floor of 0, heaps other threads may
         * share among them): nothing written. A tail call, so that callers keep no frame. */
        if (r->floor != 0 && lab_unlikely(++r->over == 0))
            return lab_span_free_shrink(me, s, b);
    }
    /* the open message to the span's owner, where the last block went (only a live ordinary
     * heap has messages open) */
    unsigned i = me->rb_last;
    if (lab_likely(me->rb[i] != NULL) && lab_likely(me->rb_to[i] == s->heap)) {
        me->st.remote_frees++;
        if (lab_msg_append(me, i, s, b, bkey ^ 1))
            return lab_heap_msg_full(me, i);
        return;
    }
    return lab_span_send(s, b);
}
/* Send the calling thread's outgoing batches now. */
lab_internal void lab_heap_flush_remote(lab_heap_t *h);
/* Thread exit: abandon the heap (its live blocks stay valid); flush the thread's rooms. */
lab_internal void lab_heap_thread_exit(void);
/* The nursery (alloc.c): a heap's first small blocks, in one run of this order; its descriptor's
 * above[2] counts the blocks out, with this bit once it is closed. lab_nursery_close: no more
 * blocks from h's nursery (if open), the run back to the pool now if none is out;
 * lab_nursery_release: the run back. */
#define LAB_NURSERY_ORDER  4
#define LAB_NURSERY_PER_CLASS 64
#define LAB_NURSERY_CLASS_BYTES 4096
#define LAB_NURSERY_CLOSED ((uint64_t)1 << 63)
lab_internal void lab_nursery_close(lab_heap_t *h);
lab_internal void lab_nursery_release(lab_page_t *d);
lab_internal void lab_arena_thread_key_init(void);
lab_internal void lab_arena_fork_prepare(void);
lab_internal void lab_arena_fork_parent(void);
lab_internal void lab_arena_fork_child(void);
/* Signal heaps. A signal handler that interrupted the allocator must not touch the thread's own
 * heap (its lists may be half-changed): the handler runs on a signal heap instead, whose refills
 * are LAB_GFP_ATOMIC (no lock waited on, no system call) and whose frees of other heaps' blocks
 * go on remote lists. lab_sig_reserve (never from a handler) asks for n of them: as many are
 * made ready as there are thread heaps plus two, up to n, more as threads come;
 * lab_sig_enter switches the calling thread to a free one (or to a heap that always fails when
 * none is free) and returns the heap to restore; lab_sig_exit restores it. Lock-free. */
lab_internal void lab_sig_reserve(unsigned n);
/* Signal heaps a handler has set up so far (made ones are set up by their first taker). */
lab_internal unsigned lab_sig_heaps_set_up(void);
lab_internal lab_heap_t *lab_sig_enter(void);
lab_internal void lab_sig_exit(lab_heap_t *prev);
/* The signal heaps the calling thread's handlers hold (a mask), for lab_sig_restore. */
lab_internal uint64_t lab_sig_mine(void);
/* Back to the state of a handler's start, whatever its wrapper got to before a longjmp left it:
 * on heap prev, holding the signal heaps of mask `mine` only (those taken since are given back). */
lab_internal void lab_sig_restore(lab_heap_t *prev, uint64_t mine);
/* True if the calling thread is inside the allocator's slow paths (lists being changed). */
lab_internal bool lab_heap_busy(void);
/* Whether the calling thread runs on a handler's heap (a signal heap or lab_heap_none,
 * lab_sig_enter). */
lab_internal bool lab_sig_on_signal_heap(void);
/* Frees that could not run where they were asked for (a page-sized or huge block freed in a
 * signal handler): kept on a lock-free list and done by the next ordinary slow path. */
lab_internal void lab_defer_free(void *p);
lab_internal void lab_deferred_run(void);
lab_internal extern uintptr_t lab_deferred;

/* Sum the counters of all heaps; *heaps gets the number of thread heaps made (heaps are reused,
 * so at most the number of threads alive at once), *signal_heaps that of signal heaps. */
lab_internal void lab_arena_stats(lab_heap_stats_t *sum, size_t *heaps, size_t *signal_heaps);

/* What the pool's runs hold now, per class and for page-sized blocks (lab_arena_run_stats). */
typedef struct lab_class_stats {
    uint64_t spans, span_pages; /* the class's spans and their pages */
    uint64_t blocks, out;       /* their blocks, and of those the ones out: in use, or freed by
                                   another thread and not back on their span's lists yet */
} lab_class_stats_t;
typedef struct lab_run_stats {
    lab_class_stats_t cls[LAB_NR_CLASSES];
    uint64_t large, large_pages;     /* page-sized blocks, the pages of their runs */
    uint64_t nursery, nursery_pages; /* nursery runs (every thread's first small blocks) */
    uint64_t user_pages;             /* pages of the pool's API (labyrinth_alloc_pages) */
} lab_run_stats_t;
/* A walk of the default pool's runs: a snapshot, read while other threads may change them. */
lab_internal void lab_arena_run_stats(lab_run_stats_t *out);

/* The heap's calls so far (mallocs, frees, page-sized and huge blocks, realloc's slow paths),
 * modulo 2^32: the clock of heap_reclaim's holds (arena.c). */
lab_inline uint32_t lab_heap_calls(const lab_heap_t *h)
{
    return (uint32_t)(h->st.mallocs + h->st.frees + h->st.large + h->st.huge) + h->resizes;
}
/* Collect remote frees and release empty spans of the calling thread's heap (malloc_trim). */
lab_internal void lab_heap_collect(void);
/* The same for the heaps of threads that have exited (malloc_trim): blocks other threads freed to
 * them since are freed, and their empty spans released. */
lab_internal void lab_arena_reclaim(void);
/* The same for live heaps of other threads, through their atomic words only (see arena.c): the
 * blocks in their messages go on their spans' remote lists, and full spans whose blocks have all
 * come back are released, so memory freed to a thread that idles returns (malloc_trim). */
lab_internal void lab_arena_return_idle(void);
/* The background thread's version: only for heaps whose messages or inbox have waited, untaken and
 * unchanged, for a purge delay (their owner idles). Returns the ms until another look is worth
 * making (UINT64_MAX: nothing waits). */
lab_internal uint64_t lab_arena_return_idle_aged(void);
/* Ordinary heaps with a thread (a relaxed read): 0 once every thread that allocated has ended. */
lab_internal size_t lab_arena_heaps_live(void);
/* Spans those two have given back (also counted in span_releases). */
lab_internal size_t lab_arena_idle_returns(void);
/* Bytes of kept spans over every heap (relaxed reads: a snapshot). */
lab_internal size_t lab_arena_kept_bytes(void);
/* The bound on each heap's kept spans (bytes; 0: none kept). Set before threads start. */
lab_internal extern size_t lab_kept_max;

#endif
