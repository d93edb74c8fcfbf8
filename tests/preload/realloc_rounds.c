/* realloc_rounds.c — a buffer grown by realloc from 16 bytes to 4 KiB in 16-byte steps and freed,
 * round after round (a request's reply built up, then dropped), in a fresh process: each step to
 * a new size class empties the previous class's span. The pool gives a span pages used before
 * ahead of pages never written, so each class's new span was paid with another class's emptied
 * one, taken back while the class it held was to come back in the next round: a span made and
 * one given back at nearly every step (review of session 46: 87 917 spans for 88 079 mallocs,
 * twelve times glibc's time). Held classes keep them now: the whole run makes about one span per
 * class. Checked through malloc_stats()'s spans count. Labyrinth only (skipped elsewhere). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>

#include "lab_check.h"

enum { ROUNDS = 500, TOP = 4096, STEP = 16 };

int main(void)
{
    if (!lab_expect_labyrinth()) {
        SAY("realloc_rounds: Labyrinth's statistics only; skipped");
        return LAB_SKIP;
    }
    long reallocs = 0;
    for (int r = 0; r < ROUNDS; r++) {
        char *p = NULL;
        for (size_t n = STEP; n <= TOP; n += STEP, reallocs++) {
            char *q = realloc(p, n);
            CHECK(q != NULL, "realloc(%zu)", n);
            if (!q)
                break;
            p = q;
            p[n - 1] = (char)n;
        }
        free(p);
    }
    char text[8192];
    CHECK(lab_malloc_stats_text(text, sizeof text) > 0, "malloc_stats: nothing caught");
    long spans = lab_stats_field(text, "spans"), mallocs = lab_stats_field(text, "mallocs");
    SAY("realloc_rounds: %d rounds, %ld reallocs, %ld mallocs, %ld spans made", ROUNDS, reallocs, mallocs, spans);
    CHECK(spans >= 0 && spans < 4 * 64, "%ld spans made for %ld mallocs: classes take each other's spans", spans,
          mallocs);
    return lab_finish("realloc_rounds");
}
