/* free_key.c — free-list links are not stored in the clear. README: "Free-list links are stored
 * XORed with the per-process key (an overflow cannot forge a list entry without it)". The key
 * (core/arena.c, free_key_init) comes from the 16 random bytes the kernel gives each program it
 * starts (AT_RANDOM) and an address; a constant key would leave the links readable and forgeable
 * by anyone who knows the constant. A freed block's first word is its link, the span's previous
 * free-list head XOR the key; its second word the double-free tag, the key XOR the block's own
 * address (both in core/arena.h: lab_link_set, lab_block_key).
 * Checked here (Labyrinth only; LABYRINTH_NURSERY=0 from ctest, so the blocks come from a span):
 *   - a = malloc(64), b = malloc(64), free(a), free(b): b's first word is not a, and the key it
 *     gives (word ^ a, confirmed by the tag: second word ^ b) has more than 8 bits set (a random
 *     key has 32 on average; 8 or fewer, one key in 10^9);
 *   - the same program started again (fork and exec of itself) derives a different key.
 * Reading a freed block is deliberate: the span's pages stay mapped and nothing else runs. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab_check.h"

/* The key this process's free lists use, read out of two freed blocks; 0 when no pair of
 * adjacent blocks showed it (the link and the tag disagree: a and b in different spans). */
static uintptr_t derive_key(void)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        void *a = malloc(64), *b = malloc(64);
        if (!a || !b)
            return 0;
        memset(a, 0x11, 64);
        memset(b, 0x22, 64);
        free(a);
        free(b); /* b's link: a, the head of the span's free list before it */
        uintptr_t w0 = ((volatile uintptr_t *)b)[0], w1 = ((volatile uintptr_t *)b)[1];
        uintptr_t key = w0 ^ (uintptr_t)a;
        if (w0 == (uintptr_t)a) {
            /* a link in the clear: the key is 0, whatever the tag says */
            return 0;
        }
        if ((w1 ^ (uintptr_t)b) == key)
            return key;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (!lab_expect_labyrinth()) {
        SAY("free_key: reads Labyrinth's encoding of a freed block; skipped");
        return LAB_SKIP;
    }
    if (argc == 2 && !strcmp(argv[1], "key")) { /* the second process: print its key */
        uintptr_t k = derive_key();
        printf("%016llx\n", (unsigned long long)k);
        return 0;
    }
    SAY("a freed 64-byte block's link is stored XORed with a random per-process key");
    uintptr_t key = derive_key();
    int bits = __builtin_popcountll((unsigned long long)key);
    SAY("key %016llx: %d bits set", (unsigned long long)key, bits);
    CHECK(key != 0, "a freed block's link is stored in the clear (or reads as no key)");
    CHECK(bits > 8, "the key %016llx has only %d bits set", (unsigned long long)key, bits);

    SAY("the program started again derives another key");
    int p[2];
    if (pipe(p) != 0) {
        CHECK(0, "pipe");
        return lab_finish("free_key");
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl("/proc/self/exe", argv[0], "key", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[64] = "";
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(p[0]);
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "the second process failed (status 0x%x)", st);
    uintptr_t other = (uintptr_t)strtoull(buf, NULL, 16);
    SAY("second process's key %016llx", (unsigned long long)other);
    CHECK(other != 0, "the second process found no key");
    CHECK(other != key, "both processes use the key %016llx", (unsigned long long)key);
    return lab_finish("free_key");
}
