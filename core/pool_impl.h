/* pool_impl.h — what the files of the page pool (core/pool*.c) share, and nothing else includes:
 * the pool's own structures, the few hot helpers they all inline, and the calls from one file of
 * the pool to another. Layer 2, like pool.h (core/os and lock.h only); pool.h stays the layer's
 * interface to arena, alloc and preload. */
#ifndef LAB_POOL_IMPL_H
#define LAB_POOL_IMPL_H

#include "pool.h"

#include <sys/mman.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#define MADV_NOHUGEPAGE 15
#endif

#define POOL_MAGIC 0x4c61627972696e74ull /* "Labyrint" */
#define LAB_ROOM_POOLS 8                  /* pools with rooms; pools beyond go straight to lists */
#define ZONE_NORMAL 0
#define ZONE_EXCL 1

/* ------------------------------------------------------------------------------------------
 * pool_map.c: metadata memory, the page map, the fast map's region */

/* Taken by the fork handler (lab_pool_fork_prepare) after every other lock of the pool. */
lab_internal extern lab_lock_t lab_meta_lock;
/* lab_meta_alloc; atomic: for a LAB_GFP_ATOMIC caller, which never waits for the lock nor maps
 * (NULL then). */
lab_internal void *lab_meta_alloc_atomic(size_t size, bool atomic);
/* Point the page-map slots of [base, base+len) at c (NULL: give them back, foreign again);
 * -ENOMEM when a table could not be had. */
lab_internal int lab_pagemap_set(uintptr_t base, size_t len, lab_chunk_t *c);
/* Map a chunk: in the fast map's region if it has room (*pm: its map slice), else anywhere (*pm
 * NULL); NULL and *err on failure. */
lab_internal void *lab_chunk_map(int64_t **pm, int *err);
/* Unmap a chunk mapped by lab_chunk_map, and zero its map slice. */
lab_internal void lab_chunk_unmap(void *m, int64_t *pm);

#endif
