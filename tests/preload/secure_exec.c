/* secure_exec.c — run by secure_exec.sh, linked with the library (a set-group-ID program's loader
 * ignores LD_PRELOAD paths): allocates a little and says whether the kernel marked the run as
 * secure (AT_SECURE), so the script can tell a skipped set-up from a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

int main(void)
{
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(16 + (size_t)i);
        if (!p)
            return 1;
        memset(p, 1, 16);
        free(p);
    }
    printf("secure=%lu\n", getauxval(AT_SECURE));
    return 0;
}
