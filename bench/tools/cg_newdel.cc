// cg_newdel.cc — cg_pair.c's loop with C++ new and delete of a 32-byte object.
#include <cstdlib>
#include <new>
struct S { char b[32]; };
int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) / 1000 : 100;
    static S *live[1000];
    for (int k = 0; k < 1000; k++) live[k] = new S;
    for (long r = 0; r < rounds; r++)
        for (int k = 0; k < 1000; k++) { delete live[k]; live[k] = new S; }
    for (int k = 0; k < 1000; k++) delete live[k];
}
