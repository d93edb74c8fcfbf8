/* pool_map.c — the page pool's memory for itself and its map of chunks (layer 2): metadata
 * memory (chunk headers, page-map tables, pools, room sets), the page map from a chunk's number
 * to its header, and the fast map's region of reserved 2 MiB slots where chunks are mapped.
 * Calls core/os and lock.h only; the rest of the pool (pool*.c) calls it through pool_impl.h. */
#define _GNU_SOURCE
#include "pool_impl.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

/* ------------------------------------------------------------------------------------------
 * metadata memory: bump allocation from 4 MiB mappings; freed blocks are kept per size.
 * Chunk headers, page-map tables, pools and room sets come from here; it is never unmapped,
 * so a stale descriptor read by a lock-free pop is always readable memory. */

lab_lock_t lab_meta_lock = LAB_LOCK_INIT;
static uintptr_t meta_cur, meta_end;
static struct { size_t size; void *head; } meta_free_lists[8];

/* atomic: for a LAB_GFP_ATOMIC caller, which never waits for the lock nor maps (NULL then). */
void *lab_meta_alloc_atomic(size_t size, bool atomic)
{
    /* large blocks (chunk headers, page-map tables) get whole 64 KiB-aligned slots, so that a
     * descriptor finds its chunk header by masking */
    size_t align = size >= (16u << 10) ? LAB_META_SLOT : 64;
    size = lab_align_up(size, align);
    void *p = NULL;
    if (!atomic)
        lab_lock(&lab_meta_lock);
    else if (!lab_lock_try(&lab_meta_lock))
        return NULL;
    for (unsigned i = 0; i < 8; i++) {
        if (meta_free_lists[i].size == size && meta_free_lists[i].head) {
            p = meta_free_lists[i].head;
            meta_free_lists[i].head = *(void **)p;
            break;
        }
    }
    if (!p) {
        uintptr_t a = lab_align_up(meta_cur, align);
        if (!meta_cur || a + size > meta_end) {
            if (atomic) {
                lab_unlock(&lab_meta_lock);
                return NULL;
            }
            size_t region = lab_max((size_t)4 << 20, lab_align_up(size, LAB_META_SLOT));
            int err;
            void *m = lab_os_map_aligned(region, LAB_META_SLOT, &err);
            if (!m) {
                lab_unlock(&lab_meta_lock);
                return NULL;
            }
            meta_cur = (uintptr_t)m;
            meta_end = meta_cur + region;
            a = lab_align_up(meta_cur, align);
        }
        meta_cur = a + size;
        p = (void *)a;
        lab_unlock(&lab_meta_lock);
        return p; /* fresh anonymous memory is zero */
    }
    lab_unlock(&lab_meta_lock);
    /* a whole slot's pages past the first were purged when it was freed: they read zero, and
     * zeroing them again would fault in 60 KiB that a chunk header mostly never uses */
    memset(p, 0, size >= LAB_META_SLOT ? LAB_PAGE_SIZE : size);
    return p;
}

void *lab_meta_alloc(size_t size) { return lab_meta_alloc_atomic(size, false); }

void lab_meta_free(void *p, size_t size)
{
    size = lab_align_up(size, size >= (16u << 10) ? LAB_META_SLOT : 64);
    /* a chunk header outlives its chunk (stale readers): its pages may go back to the OS, as
     * long as they stay mapped (they then read zero); the first keeps the free-list link */
    if (size >= LAB_META_SLOT && lab_os_purge((char *)p + LAB_PAGE_SIZE, size - LAB_PAGE_SIZE) != 0)
        memset((char *)p + LAB_PAGE_SIZE, 0, size - LAB_PAGE_SIZE); /* lab_meta_alloc_atomic relies on zero */
    lab_lock(&lab_meta_lock);
    for (unsigned i = 0; i < 8; i++) {
        if (meta_free_lists[i].size == size || meta_free_lists[i].size == 0) {
            meta_free_lists[i].size = size;
            *(void **)p = meta_free_lists[i].head;
            meta_free_lists[i].head = p;
            break;
        }
    }
    lab_unlock(&lab_meta_lock);
}

/* ------------------------------------------------------------------------------------------
 * the page map */

/* All zero, in .bss, never written: its head[] entries (0) lead to its own first 64 bytes, which
 * read as a descriptor of no state and no owner, as a chunk's sentinel does. Filled with
 * LAB_HEAD_NONE it was 33 KiB of initialised data, mapped from the file into every process. */
lab_chunk_t lab_chunk_foreign lab_aligned(64) lab_big_bss;
lab_chunk_t **lab_pagemap_l1[1u << LAB_PM_L1_BITS] lab_big_bss;

/* Point the slots of [base, base+len) at c (NULL: give them back, foreign again). Not for chunks
 * in the fast map's region, whose entries there are their page map (pool.h). */
int lab_pagemap_set(uintptr_t base, size_t len, lab_chunk_t *c)
{
    for (uintptr_t a = base; a < base + len; a += LAB_CHUNK_SIZE) {
        lab_chunk_t ***slot = &lab_pagemap_l1[a >> (LAB_CHUNK_SHIFT + LAB_PM_L2_BITS)];
        /* read by a compare-and-swap that stores what it finds (NULL for NULL): a write access,
         * so that the first one on a page of the table never read faults once (a plain load of
         * it maps the zero page, and the store that follows faults again to copy it) */
        lab_chunk_t **l2 = NULL;
        __atomic_compare_exchange_n(slot, &l2, NULL, false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE);
        if (!l2) {
            if (!c)
                continue;
            /* zeroed (every slot foreign), and left so: only the slots set later are touched */
            lab_chunk_t **fresh = lab_meta_alloc(sizeof(lab_chunk_t *) << LAB_PM_L2_BITS);
            if (!fresh)
                return -ENOMEM;
            lab_chunk_t **expect = NULL;
            /* release: the zeroed table is visible before its pointer (lookups acquire) */
            if (__atomic_compare_exchange_n(slot, &expect, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                l2 = fresh;
            else {
                lab_meta_free(fresh, sizeof(lab_chunk_t *) << LAB_PM_L2_BITS);
                l2 = expect;
            }
        }
        /* release: the chunk header is initialised before lookups can find it */
        __atomic_store_n(&l2[(a >> LAB_CHUNK_SHIFT) & ((1u << LAB_PM_L2_BITS) - 1)], c, __ATOMIC_RELEASE);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * the fast map's region: 2 MiB slots of reserved address space, committed as chunks */

lab_fmap_t lab_fmap;
static size_t fmap_want = (size_t)64 << 30;     /* bytes to reserve (0: no region) */
static int fmap_state;                           /* 0 not tried, 1 being set up, 2 done */
#define FMAP_MAX_SLOTS (((size_t)1 << 40) >> LAB_CHUNK_SHIFT)
/* A bit per slot: committed (slot 0 always). The first word (the first 64 slots, which most
 * processes never pass) lies apart from the others, with the small variables: the page of the
 * big array it began was written by every process, a page fault of its own. */
static uint64_t fmap_used0;
static uint64_t fmap_used_rest[FMAP_MAX_SLOTS / 64 - 1] lab_big_bss;
static size_t fmap_slots, fmap_hint;
static inline uint64_t *fmap_used_word(size_t slot) { return slot < 64 ? &fmap_used0 : &fmap_used_rest[slot / 64 - 1]; }

void lab_pool_set_reserve(size_t bytes)
{
    fmap_want = lab_min(lab_align_down(bytes, LAB_CHUNK_SIZE), (size_t)1 << 40);
}

/* Reserve the region, halving the size until the kernel grants it (a limit on address space,
 * or valgrind); 1 GiB at the least, else none. Once; a racing caller maps outside meanwhile. */
static void fmap_init(void)
{
    int zero = 0;
    if (!__atomic_compare_exchange_n(&fmap_state, &zero, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    /* under `ulimit -v` the reservation would count against the limit: none (DESIGN.md) */
    for (size_t len = lab_os_address_limited() ? 0 : fmap_want; len >= ((size_t)1 << 30); len /= 2) {
        void *r = lab_os_reserve(len, LAB_CHUNK_SIZE, PROT_NONE);
        if (!r)
            continue;
        /* the map: 8 bytes a page, readable (zero) everywhere, written per chunk */
        void *pm = lab_os_reserve(len >> (LAB_PAGE_SHIFT - 3), LAB_PAGE_SIZE, PROT_READ);
        if (!pm) {
            lab_os_unreserve(r, len);
            continue;
        }
        fmap_slots = len >> LAB_CHUNK_SHIFT;
        fmap_used0 = 1; /* slot 0 holds the zero descriptor's pages: never used */
        fmap_hint = 1;
        lab_fmap.base = (uintptr_t)r;
        lab_fmap.pm = (int64_t *)pm;
        /* release: lookups that see the size see base and pm */
        __atomic_store_n(&lab_fmap.size, len, __ATOMIC_RELEASE);
        break;
    }
    __atomic_store_n(&fmap_state, 2, __ATOMIC_RELEASE);
}

/* A chunk's worth of committed memory in the region (*pm: its map slice), or NULL (*err) when
 * the region is full or absent (the caller maps outside) or the commit failed. */
static void *fmap_chunk_map(int64_t **pm, int *err)
{
    *pm = NULL;
    *err = 0;
    bool just_set_up = false;
    if (lab_unlikely(__atomic_load_n(&fmap_state, __ATOMIC_ACQUIRE) != 2)) {
        fmap_init();
        if (__atomic_load_n(&fmap_state, __ATOMIC_ACQUIRE) != 2)
            return NULL;
        just_set_up = true; /* the limit was read as the region was reserved, just now */
    }
    size_t n = fmap_slots;
    /* a limit set since the region was reserved: it counts the whole region already, so new
     * chunks go outside, where the kernel holds them to the limit */
    if (!n || (!just_set_up && lab_os_address_limited()))
        return NULL;
    size_t start = lab_load_relaxed(&fmap_hint);
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        uint64_t *w = fmap_used_word(i), bit = 1ull << (i % 64);
        uint64_t old = lab_load_relaxed(w);
        if (old & bit) {
            if (old == ~0ull)
                k += 63 - i % 64; /* skip the rest of a full word */
            continue;
        }
        if (!__atomic_compare_exchange_n(w, &old, old | bit, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            k--; /* the word changed: look at this slot again */
            continue;
        }
        lab_store_relaxed(&fmap_hint, i + 1);
        void *m = (void *)(lab_fmap.base + (i << LAB_CHUNK_SHIFT));
        int64_t *slice = lab_fmap.pm + (i << (LAB_CHUNK_SHIFT - LAB_PAGE_SHIFT));
        int r = lab_os_commit(m, LAB_CHUNK_SIZE);
        if (r == 0 && lab_os_mprotect(slice, LAB_CHUNK_PAGES * sizeof *slice, PROT_READ | PROT_WRITE) != 0) {
            lab_os_decommit(m, LAB_CHUNK_SIZE);
            r = -ENOMEM;
        }
        if (r != 0) {
            __atomic_fetch_and(w, ~bit, __ATOMIC_RELEASE);
            *err = r;
            return NULL;
        }
        *pm = slice;
        return m;
    }
    return NULL;
}

/* Map a chunk: in the region if it has room, else anywhere. */
void *lab_chunk_map(int64_t **pm, int *err)
{
    void *m = fmap_chunk_map(pm, err);
    if (m || *err)
        return m;
    return lab_os_map_aligned(LAB_CHUNK_SIZE, LAB_CHUNK_SIZE, err);
}

/* Unmap a chunk mapped by lab_chunk_map, and zero its map slice: every page of it is free, or its
 * pool is being destroyed. */
void lab_chunk_unmap(void *m, int64_t *pm)
{
    if (!pm) {
        lab_os_munmap(m, LAB_CHUNK_SIZE);
        return;
    }
    size_t i = ((uintptr_t)m - lab_fmap.base) >> LAB_CHUNK_SHIFT;
    /* the slice's page goes back first, and reads zero from here on: lookups find no chunk there
     * (it is the region's page map, pool.h) before its pages go, and the slot's next chunk
     * finds no stale entry (which would lead a stray free to another chunk's descriptor) */
    if (lab_os_madvise(pm, LAB_CHUNK_PAGES * sizeof *pm, MADV_DONTNEED) != 0)
        memset(pm, 0, LAB_CHUNK_PAGES * sizeof *pm);
    /* the slot's next chunk must read zero (fresh chunks count as clean): if the kernel will
     * not take the pages back as reserved, empty them at least */
    if (lab_os_decommit(m, LAB_CHUNK_SIZE) != 0) {
        /* the mapping stays: an EXCLUSIVE chunk's advice must not follow the slot to the next */
        lab_os_madvise(m, LAB_CHUNK_SIZE, MADV_KEEPONFORK);
        if (lab_os_purge(m, LAB_CHUNK_SIZE) != 0)
            memset(m, 0, LAB_CHUNK_SIZE); /* a locked range keeps its pages: they read zero now */
    }
    /* release: the decommit is done before the slot can be taken again */
    __atomic_fetch_and(fmap_used_word(i), ~(1ull << (i % 64)), __ATOMIC_RELEASE);
}

/* The entries of the run of d (2^order pages) set to e. */
static void run_tag_entries(lab_page_t *d, unsigned order, uint64_t e)
{
    lab_chunk_t *c = lab_desc_chunk(d);
    /* outside the region, or (never on x86-64's 47-bit user space) a descriptor above 2^47 */
    if (!c->pm || (uintptr_t)d >= LAB_FMAP_DESC_LIM)
        return;
    unsigned idx = (unsigned)(d - c->page), n = 1u << order;
    for (unsigned i = 0; i < n; i++)
        lab_store_relaxed(&c->pm[idx + i], (int64_t)e);
}

void lab_pool_run_tag(lab_page_t *d, unsigned order, uint64_t tag)
{
    run_tag_entries(d, order, (uintptr_t)d | tag);
}

void lab_pool_run_tag_whole(lab_page_t *d, unsigned order, uint64_t tag, unsigned cls)
{
    run_tag_entries(d, order, (uintptr_t)d | tag | LAB_FMAP_WHOLE | (cls & LAB_FMAP_CLS_MASK));
}
