#include <cstdlib>
#include <new>
struct S { char b[32]; };
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    static S *live[1000];
    for (int k = 0; k < 1000; k++) live[k] = new S;
    for (long i = 0; i < n; i++) { int k = i % 1000; delete live[k]; live[k] = new S; }
    for (int k = 0; k < 1000; k++) delete live[k];
}
