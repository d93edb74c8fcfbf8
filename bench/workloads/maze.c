/* maze.c — a maze router after the STAMP "Labyrinth" benchmark: threads take (source, target)
 * pairs from a shared list and route each through a 3-D grid with Lee's algorithm — copy the
 * shared grid, expand breadth-first from the source (one malloc'd queue node per cell reached),
 * trace back from the target into a path vector grown by realloc — then commit the path under a
 * lock if its cells are still free, or route it again on the fresh grid (STAMP does this in a
 * transaction). Allocation mix: a page-sized grid copy per attempt, millions of tiny queue nodes,
 * growing vectors. The result is checked: every committed path is connected, joins its own
 * endpoints, and owns exactly its cells. N = pairs to route; THREADS routers. */
#include <stdatomic.h>

#include "wl.h"

#define MZ_X 256
#define MZ_Y 256
#define MZ_Z 3
#define MZ_CELLS (MZ_X * MZ_Y * MZ_Z)
#define MZ_TRIES 3

/* shared grid: 0 free, id+1 taken by path id, -(id+1) an endpoint of pair id */
static int32_t mz_grid[MZ_CELLS];
static pthread_rwlock_t mz_lock = PTHREAD_RWLOCK_INITIALIZER;

struct mz_path {
    int32_t *cell;
    size_t len, cap;
};
static struct mz_path **mz_done; /* per pair: the committed path, or NULL */
static int32_t *mz_src, *mz_dst;
static long mz_pairs;
static atomic_long mz_next;

struct mz_qnode {
    struct mz_qnode *next;
    int32_t cell;
};

static int mz_neighbours(int32_t c, int32_t out[6])
{
    int x = c % MZ_X, y = (c / MZ_X) % MZ_Y, z = c / (MZ_X * MZ_Y), n = 0;
    if (x > 0) out[n++] = c - 1;
    if (x < MZ_X - 1) out[n++] = c + 1;
    if (y > 0) out[n++] = c - MZ_X;
    if (y < MZ_Y - 1) out[n++] = c + MZ_X;
    if (z > 0) out[n++] = c - MZ_X * MZ_Y;
    if (z < MZ_Z - 1) out[n++] = c + MZ_X * MZ_Y;
    return n;
}

static void mz_push(struct mz_path *p, int32_t c)
{
    if (p->len == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->cell = realloc(p->cell, p->cap * sizeof *p->cell);
        if (!p->cell)
            wl_die("maze: realloc of a path vector");
    }
    p->cell[p->len++] = c;
}

/* Lee expansion on the thread's copy; returns the path from target back to source, or NULL. */
static struct mz_path *mz_route(long id, int32_t *dist)
{
    int32_t own_end = -(int32_t)(id + 1);
    for (int c = 0; c < MZ_CELLS; c++) /* passable: free or our own endpoint */
        dist[c] = dist[c] == 0 || dist[c] == own_end ? 0 : -1;
    int32_t src = mz_src[id], dst = mz_dst[id];
    struct mz_qnode *head = malloc(sizeof *head), *tail = head;
    if (!head)
        wl_die("maze: malloc of a queue node");
    head->next = NULL;
    head->cell = src;
    dist[src] = 1;
    int found = 0;
    while (head) {
        struct mz_qnode *q = head;
        head = q->next;
        int32_t c = q->cell, nb[6];
        free(q);
        if (c == dst) {
            found = 1;
            break;
        }
        for (int k = mz_neighbours(c, nb) - 1; k >= 0; k--)
            if (dist[nb[k]] == 0) {
                dist[nb[k]] = dist[c] + 1;
                struct mz_qnode *n = malloc(sizeof *n);
                if (!n)
                    wl_die("maze: malloc of a queue node");
                n->next = NULL;
                n->cell = nb[k];
                if (head)
                    tail->next = n;
                else
                    head = n;
                tail = n;
            }
    }
    while (head) { /* the rest of the frontier */
        struct mz_qnode *q = head;
        head = q->next;
        free(q);
    }
    if (!found)
        return NULL;
    struct mz_path *p = calloc(1, sizeof *p);
    if (!p)
        wl_die("maze: calloc of a path");
    for (int32_t c = dst;;) {
        mz_push(p, c);
        if (c == src)
            break;
        int32_t nb[6], k = mz_neighbours(c, nb) - 1;
        while (k >= 0 && dist[nb[k]] != dist[c] - 1)
            k--;
        if (k < 0)
            wl_die("maze: trace-back lost the way at cell %d", c);
        c = nb[k];
    }
    return p;
}

static void mz_free_path(struct mz_path *p)
{
    if (p)
        free(p->cell);
    free(p);
}

static void *mz_worker(void *unused)
{
    (void)unused;
    for (long id; (id = atomic_fetch_add(&mz_next, 1)) < mz_pairs;) {
        for (int attempt = 0; attempt < MZ_TRIES; attempt++) {
            int32_t *copy = malloc(sizeof mz_grid);
            if (!copy)
                wl_die("maze: malloc of a grid copy");
            pthread_rwlock_rdlock(&mz_lock);
            memcpy(copy, mz_grid, sizeof mz_grid);
            pthread_rwlock_unlock(&mz_lock);
            struct mz_path *p = mz_route(id, copy);
            free(copy);
            if (!p)
                break; /* walled in: no route exists any more */
            int ok = 1;
            pthread_rwlock_wrlock(&mz_lock);
            for (size_t i = 0; i < p->len && ok; i++)
                ok = mz_grid[p->cell[i]] == 0 || mz_grid[p->cell[i]] == -(int32_t)(id + 1);
            if (ok)
                for (size_t i = 0; i < p->len; i++)
                    mz_grid[p->cell[i]] = (int32_t)(id + 1);
            pthread_rwlock_unlock(&mz_lock);
            if (ok) {
                mz_done[id] = p;
                break;
            }
            mz_free_path(p); /* another router took a cell first: route again */
        }
    }
    return NULL;
}

int wl_maze(int threads, long n)
{
    if (n > MZ_CELLS / 4)
        n = MZ_CELLS / 4;
    mz_pairs = n;
    mz_src = malloc((size_t)n * sizeof *mz_src);
    mz_dst = malloc((size_t)n * sizeof *mz_dst);
    mz_done = calloc((size_t)n, sizeof *mz_done);
    if (!mz_src || !mz_dst || !mz_done)
        wl_die("maze: malloc of the pair list");
    uint64_t s = wl_seed(400);
    for (long i = 0; i < n; i++)
        for (int end = 0; end < 2; end++) {
            int32_t c;
            do
                c = (int32_t)(wl_rand(&s) % MZ_CELLS);
            while (mz_grid[c] != 0);
            mz_grid[c] = -(int32_t)(i + 1);
            (end ? mz_dst : mz_src)[i] = c;
        }
    double t0 = wl_now();
    wl_run_threads(threads, mz_worker, NULL, 0);
    double t = wl_now() - t0;

    long routed = 0, cells = 0;
    for (long i = 0; i < n; i++) {
        struct mz_path *p = mz_done[i];
        if (!p)
            continue;
        routed++;
        if (p->cell[0] != mz_dst[i] || p->cell[p->len - 1] != mz_src[i])
            wl_die("maze: path %ld does not join its endpoints", i);
        for (size_t k = 0; k < p->len; k++) {
            if (mz_grid[p->cell[k]] != (int32_t)(i + 1))
                wl_die("maze: cell %d of path %ld is not its own", p->cell[k], i);
            if (k) {
                int32_t nb[6], m = mz_neighbours(p->cell[k], nb), adj = 0;
                while (m-- > 0)
                    adj |= nb[m] == p->cell[k - 1];
                if (!adj)
                    wl_die("maze: path %ld jumps at step %zu", i, k);
            }
        }
        cells += (long)p->len;
    }
    long marked = 0;
    for (int c = 0; c < MZ_CELLS; c++)
        marked += mz_grid[c] > 0;
    if (marked != cells || routed == 0)
        wl_die("maze: %ld cells marked, %ld on paths, %ld routed", marked, cells, routed);
    for (long i = 0; i < n; i++)
        mz_free_path(mz_done[i]);
    free(mz_done), free(mz_src), free(mz_dst);
    char extra[64];
    snprintf(extra, sizeof extra, "routed=%ld failed=%ld", routed, n - routed);
    wl_report("maze", threads, n, t, extra);
    return 0;
}
