# gen_c.py — writes a C file for the gcc workload (bench/run.py compiles it under each allocator
# and checks that every allocator's object file is byte-identical to the glibc one). N functions
# with local arrays, loops and switch statements give the optimiser's passes work to allocate for.
# Usage: python3 gen_c.py N > big.c   (deterministic for a given N)
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
random.seed(3)
print("#include <stdio.h>\n#include <string.h>\n")
for i in range(n):
    a = random.randint(2, 24)
    cases = "".join(f"    case {c}: x = x * {random.randint(3, 99)} + {c}; break;\n"
                    for c in range(random.randint(2, 9)))
    print(f"static int f{i}(int x)\n{{\n  int a[{a}];\n  memset(a, 0, sizeof a);\n"
          f"  for (int j = 0; j < {a}; j++) {{\n    switch ((x + j) % 7) {{\n{cases}"
          f"    default: x ^= j;\n    }}\n    a[j] = x * {i} + j;\n  }}\n"
          f"  return a[{a - 1}] ^ {random.randint(0, 999)};\n}}\n")
print("int main(void)\n{\n  long s = 0;")
for i in range(n):
    print(f"  s += f{i}({i});")
print('  printf("%ld\\n", s);\n  return 0;\n}')
