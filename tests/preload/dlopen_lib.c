/* dlopen_lib.c — loaded and unloaded again and again by dlopen_tls.c. Its thread-local data lives
 * in dynamic TLS: the dynamic loader allocates each thread's block at the thread's first access
 * (over-aligned here, so through the aligned entry points) and frees it at thread exit or
 * dlclose, through the malloc family in force — the preloaded one. Its constructor and destructor
 * allocate and free as well. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* exported, so that the compiler keeps them (static ones it could see through and drop) */
__thread unsigned char tls_big[6000] __attribute__((aligned(256)));
__thread uint64_t tls_count, tls_seed;
__thread char *tls_note;

static char *table[64];

__attribute__((constructor)) static void lib_init(void)
{
    for (int i = 0; i < 64; i++) {
        table[i] = malloc(16 + (size_t)i * 40);
        if (table[i])
            memset(table[i], i, 16 + (size_t)i * 40);
    }
}

__attribute__((destructor)) static void lib_fini(void)
{
    for (int i = 0; i < 64; i++)
        free(table[i]);
}

/* Checks the constructor's blocks and what this thread's TLS holds from its previous call (ok: 0
 * if any differs), then writes the TLS with `seed` and returns a checksum read back from it,
 * which the caller recomputes. *align_ok: the TLS block honours its 256-byte alignment. */
uint64_t lib_touch(uint64_t seed, int *align_ok, int *ok)
{
    *align_ok = ((uintptr_t)tls_big & 255) == 0;
    int good = 1;
    for (int i = 0; i < 64; i++)
        good &= table[i] != NULL && table[i][0] == (char)i && table[i][15 + i * 40] == (char)i;
    for (size_t k = 0; tls_count && k < sizeof tls_big; k++)
        good &= tls_big[k] == (unsigned char)(tls_seed + k);
    if (tls_note)
        good &= tls_note[0] == 0x5a && tls_note[99] == 0x5a;
    *ok = good;
    for (size_t k = 0; k < sizeof tls_big; k++)
        tls_big[k] = (unsigned char)(seed + k);
    uint64_t h = seed;
    for (size_t k = 0; k < sizeof tls_big; k++)
        h = h * 31 + ((volatile unsigned char *)tls_big)[k];
    tls_seed = seed;
    tls_count++;
    /* a block per thread kept in TLS, freed and replaced at the next call */
    free(tls_note);
    tls_note = malloc(100 + seed % 900);
    if (tls_note)
        memset(tls_note, 0x5a, 100);
    return h + tls_count;
}
