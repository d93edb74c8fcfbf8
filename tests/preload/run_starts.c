/* run_starts.c — page-sized blocks written from their start only, then written in full.
 *   head  64 blocks of 33 KiB-1 MiB live, one replaced at random 20 000 times, only its first
 *         4 KiB written (a server's buffers sized for the largest request). Under Labyrinth the
 *         pages resident over the blocks' ranges stay few: the blocks come to start on 64 KiB
 *         boundaries, so their first pages fall on the same few pages of the store again and
 *         again (carved anywhere, they started on every page in turn and the process came to
 *         hold the whole store: 97 MiB for 66 MiB of blocks that wrote 0.5 MiB).
 *   full  the same first, then 4 000 more replacements written in full: under Labyrinth the
 *         blocks of that phase stop starting on 64 KiB boundaries (a block written in full
 *         leaves no unwritten gap before the next; aligned, they did, and longer blocks carved
 *         over those gaps later faulted them in: preload.big_after_runs_runs).
 *   refused  the head's pattern under a seccomp filter that refuses mincore (EPERM), as some
 *         sandboxes do: Labyrinth cannot tell, and its blocks start anywhere, as before.
 * Contents are checked under any allocator.
 *   preload_run_starts head|full|refused */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "lab_check.h"

enum { LIVE = 64, HEAD = 4096 };

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static unsigned char *live[LIVE];
static size_t len[LIVE];

/* Replace `steps` random blocks, writing `full` ? all of each : its first HEAD bytes; returns
 * how many of the new blocks of at least 64 KiB start on a 64 KiB boundary (*big: how many such
 * blocks there were). */
static size_t replace(long steps, int full, size_t *big)
{
    size_t aligned = 0;
    *big = 0;
    for (long i = 0; i < steps; i++) {
        unsigned k = (unsigned)(next_rand() % LIVE);
        if (live[k]) {
            size_t w = full ? len[k] : HEAD;
            CHECK(live[k][0] == (unsigned char)k && live[k][w - 1] == (unsigned char)k, "block %u changed", k);
            free(live[k]);
        }
        len[k] = (33u << 10) + (size_t)(next_rand() % ((1u << 20) - (33u << 10)));
        live[k] = malloc(len[k]);
        CHECK(live[k] != NULL, "malloc(%zu)", len[k]);
        if (!live[k])
            exit(1);
        memset(live[k], (int)k, full ? len[k] : HEAD);
        if (len[k] >= (64u << 10)) {
            ++*big;
            aligned += ((uintptr_t)live[k] & 0xFFFF) == 0;
        }
    }
    return aligned;
}

static long rss_kib(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

/* The calling process under a seccomp filter whose mincore fails with EPERM; 0 on success. */
static int refuse_mincore(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mincore, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv)
{
    int full = argc > 1 && strcmp(argv[1], "full") == 0, refused = argc > 1 && strcmp(argv[1], "refused") == 0;
    if (refused && refuse_mincore() != 0) {
        SAY("refused: no seccomp filter here, skipped");
        return LAB_SKIP;
    }
    long before = rss_kib();
    size_t big, aligned = replace(20000, 0, &big);
    long grew = rss_kib() - before;
    SAY("head: %zu of %zu blocks of 64 KiB or more started on 64 KiB; peak RSS grew by %ld KiB", aligned, big,
        grew);
    if (lab_expect_labyrinth() && refused)
        CHECK(aligned * 4 <= big * 3, "blocks started on 64 KiB with mincore refused: %zu of %zu", aligned, big);
    if (lab_expect_labyrinth() && !full && !refused) {
        CHECK(aligned * 10 >= big * 9, "blocks written from their start only did not start on 64 KiB: %zu of %zu",
              aligned, big);
        CHECK(grew <= 16 << 10, "the store's pages were faulted in: peak RSS %ld KiB above the blocks'", grew);
    }
    for (unsigned k = 0; k < LIVE; k++) /* from here on every block is checked over its length */
        memset(live[k], (int)k, len[k]);
    if (full) {
        replace(1000, 1, &big); /* the freed blocks are found written from here on */
        aligned = replace(3000, 1, &big);
        SAY("full: %zu of %zu blocks of 64 KiB or more started on 64 KiB", aligned, big);
        /* carved anywhere again, many still start where the head's blocks did (40-49 % of them
           in runs here); left on 64 KiB, all of them do */
        if (lab_expect_labyrinth())
            CHECK(aligned * 4 <= big * 3, "blocks written in full still started on 64 KiB: %zu of %zu", aligned, big);
    }
    for (unsigned k = 0; k < LIVE; k++)
        free(live[k]);
    return lab_failures ? 1 : 0;
}
