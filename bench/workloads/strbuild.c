/* strbuild.c — string builders that live on realloc, as a text-processing program's buffers do:
 * each thread keeps 64 strings, appends 1 .. 40 bytes to a random one, growing it by 1/8 when
 * full (so realloc sees every size from tens of bytes to 1 MiB, across the small, page-sized and
 * huge paths), and retires a string when it passes 1 MiB. Every retired string is hashed and
 * compared with the hash of what was appended. N = appends per thread. */
#include "wl.h"

#define SB_STRS 64
#define SB_RETIRE ((size_t)1 << 20)

static uint64_t sb_hash(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

struct sb_arg {
    int id;
    long appends, retired;
};

static void *sb_worker(void *arg)
{
    struct sb_arg *a = arg;
    char *str[SB_STRS] = {0};
    size_t len[SB_STRS] = {0}, cap[SB_STRS] = {0};
    uint64_t want[SB_STRS];
    char chunk[40];
    uint64_t s = wl_seed((uint64_t)a->id + 500);
    for (int k = 0; k < SB_STRS; k++)
        want[k] = 0xcbf29ce484222325ull;
    for (long i = 0; i < a->appends; i++) {
        uint64_t r = wl_rand(&s);
        unsigned k = (unsigned)(r % SB_STRS);
        size_t add = 1 + (size_t)((r >> 8) % 40);
        for (size_t j = 0; j < add; j++)
            chunk[j] = (char)('a' + (r >> (j % 48)) % 26);
        if (len[k] + add + 1 > cap[k]) {
            cap[k] = len[k] + add + 1 + (len[k] >> 3);
            str[k] = realloc(str[k], cap[k]);
            if (!str[k])
                wl_die("strbuild: realloc(%zu) returned NULL", cap[k]);
        }
        memcpy(str[k] + len[k], chunk, add);
        len[k] += add;
        str[k][len[k]] = 0;
        want[k] = sb_hash(want[k], chunk, add);
        if (len[k] > SB_RETIRE) {
            if (strlen(str[k]) != len[k] || sb_hash(0xcbf29ce484222325ull, str[k], len[k]) != want[k])
                wl_die("strbuild: string of %zu bytes does not hold what was appended", len[k]);
            free(str[k]);
            str[k] = NULL;
            len[k] = cap[k] = 0;
            want[k] = 0xcbf29ce484222325ull;
            a->retired++;
        }
    }
    for (int k = 0; k < SB_STRS; k++) {
        if (str[k] && sb_hash(0xcbf29ce484222325ull, str[k], len[k]) != want[k])
            wl_die("strbuild: string of %zu bytes does not hold what was appended", len[k]);
        free(str[k]);
    }
    return NULL;
}

int wl_strbuild(int threads, long n)
{
    struct sb_arg *args = calloc((size_t)threads, sizeof *args);
    for (int i = 0; i < threads; i++)
        args[i].id = i, args[i].appends = n;
    double t0 = wl_now();
    wl_run_threads(threads, sb_worker, args, sizeof *args);
    double t = wl_now() - t0;
    long retired = 0;
    for (int i = 0; i < threads; i++)
        retired += args[i].retired;
    free(args);
    char extra[48];
    snprintf(extra, sizeof extra, "retired=%ld", retired);
    wl_report("strbuild", threads, n, t, extra);
    return 0;
}
