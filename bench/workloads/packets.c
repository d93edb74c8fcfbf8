/* packets.c — packet buffers: pairs of threads, a receiver that takes one page per packet and
 * writes its header and trailer, and a transmitter that checks and frees it, through a bounded
 * single-producer ring, as fast as they can. Under Labyrinth (its symbols found with dlsym, so
 * the one binary runs under every allocator) pages come from labyrinth_alloc_pages(ATOMIC), the
 * kernel-style path a NIC interrupt would use; when ATOMIC finds nothing ready the receiver falls
 * back to one DEFAULT allocation, counted, as a driver refills from process context. The other
 * allocators get malloc(4096)/free. N = packets per pair; THREADS/2 pairs (at least one). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <stdatomic.h>

#include "wl.h"

#define PK_RING 1024 /* packets in flight per pair at most, like a NIC's descriptor ring */
#define PK_PAGE 4096
#define PK_GFP_ATOMIC 1u /* LAB_GFP_ATOMIC; the header is not included so no link dependency */

static void *(*pk_alloc_pages)(void *, unsigned, unsigned);
static void (*pk_free_pages)(void *, void *, unsigned);
static void *pk_pool;
static long pk_count;

struct pk_pair {
    _Alignas(64) _Atomic unsigned long head; /* written by rx */
    _Alignas(64) _Atomic unsigned long tail; /* written by tx */
    _Alignas(64) void *slot[PK_RING];
    long atomic_misses;
    int id;
};

static void pk_wait(unsigned *spins)
{
    if (++*spins > 64) /* more threads than cores: let the other side run */
        sched_yield(), *spins = 0;
}

static void *pk_rx(void *arg)
{
    struct pk_pair *pp = arg;
    for (long i = 0; i < pk_count; i++) {
        uint64_t *p;
        if (pk_alloc_pages) {
            p = pk_alloc_pages(pk_pool, 0, PK_GFP_ATOMIC);
            if (!p) {
                pp->atomic_misses++;
                p = pk_alloc_pages(pk_pool, 0, 0);
            }
        } else {
            p = malloc(PK_PAGE);
        }
        if (!p)
            wl_die("packets: no page for packet %ld", i);
        p[0] = (uint64_t)i ^ ((uint64_t)pp->id << 48);
        p[PK_PAGE / 8 - 1] = ~p[0];
        unsigned long h = atomic_load_explicit(&pp->head, memory_order_relaxed);
        unsigned spins = 0;
        while (h - atomic_load_explicit(&pp->tail, memory_order_acquire) >= PK_RING)
            pk_wait(&spins);
        pp->slot[h % PK_RING] = p;
        /* release: the packet's contents and the slot are visible before the new head */
        atomic_store_explicit(&pp->head, h + 1, memory_order_release);
    }
    return NULL;
}

static void *pk_tx(void *arg)
{
    struct pk_pair *pp = arg;
    for (long i = 0; i < pk_count; i++) {
        unsigned long t = atomic_load_explicit(&pp->tail, memory_order_relaxed);
        unsigned spins = 0;
        while (atomic_load_explicit(&pp->head, memory_order_acquire) == t)
            pk_wait(&spins);
        uint64_t *p = pp->slot[t % PK_RING];
        if (p[0] != ((uint64_t)i ^ ((uint64_t)pp->id << 48)) || p[PK_PAGE / 8 - 1] != ~p[0])
            wl_die("packets: packet %ld of pair %d corrupted", i, pp->id);
        if (pk_free_pages)
            pk_free_pages(pk_pool, p, 0);
        else
            free(p);
        /* release: our reads of the packet are done before rx may reuse the slot */
        atomic_store_explicit(&pp->tail, t + 1, memory_order_release);
    }
    return NULL;
}

int wl_packets(int threads, long n)
{
    pk_alloc_pages = (void *(*)(void *, unsigned, unsigned))dlsym(RTLD_DEFAULT, "labyrinth_alloc_pages");
    pk_free_pages = (void (*)(void *, void *, unsigned))dlsym(RTLD_DEFAULT, "labyrinth_free_pages");
    void *(*deflt)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "labyrinth_default");
    pk_pool = deflt ? deflt() : NULL;
    if (!pk_alloc_pages || !pk_free_pages || !pk_pool)
        pk_alloc_pages = NULL, pk_free_pages = NULL;
    int pairs = threads / 2 > 0 ? threads / 2 : 1;
    pk_count = n;
    struct pk_pair *pp = aligned_alloc(64, sizeof *pp * (size_t)pairs);
    if (!pp)
        wl_die("packets: aligned_alloc of the rings");
    memset(pp, 0, sizeof *pp * (size_t)pairs);
    pthread_t *t = calloc((size_t)pairs * 2, sizeof *t);
    double t0 = wl_now();
    for (int i = 0; i < pairs; i++) {
        pp[i].id = i;
        if (pthread_create(&t[2 * i], NULL, pk_rx, &pp[i]) || pthread_create(&t[2 * i + 1], NULL, pk_tx, &pp[i]))
            wl_die("packets: pthread_create");
    }
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(t[i], NULL);
    double el = wl_now() - t0;
    long misses = 0;
    for (int i = 0; i < pairs; i++) {
        misses += pp[i].atomic_misses;
        if (atomic_load(&pp[i].head) != (unsigned long)n || atomic_load(&pp[i].tail) != (unsigned long)n)
            wl_die("packets: pair %d moved %lu of %ld packets", i, atomic_load(&pp[i].tail), n);
    }
    free(t);
    free(pp);
    char extra[96];
    snprintf(extra, sizeof extra, "api=%s atomic_misses=%ld", pk_alloc_pages ? "labyrinth-atomic" : "malloc",
             misses);
    wl_report("packets", pairs * 2, n, el, extra);
    return 0;
}
