# gen_c.py N — writes a deterministic C file of about N lines to stdout, for the gcc workload.
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
random.seed(3)
print("#include <stdio.h>\n#include <string.h>")
funcs = n // 4
for i in range(funcs):
    a = random.randint(1, 20)
    print(f"static int f{i}(int x) {{\n  int a[{a}]; memset(a, 0, sizeof a);\n"
          f"  for (int j = 0; j < {a}; j++) a[j] = x * {i} + j; return a[{a - 1}] ^ {random.randint(0, 999)}; }}")
print("int main(void) {\n  long s = 0;")
for i in range(funcs):
    print(f"  s += f{i}({i});")
print('  printf("%ld\\n", s);\n  return 0;\n}')
