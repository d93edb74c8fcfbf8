#include <stdlib.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    static void *live[1000];
    for (int k = 0; k < 1000; k++) live[k] = malloc(32);
    for (long i = 0; i < n; i++) { int k = i % 1000; free(live[k]); live[k] = malloc(32); }
    for (int k = 0; k < 1000; k++) free(live[k]);
}
