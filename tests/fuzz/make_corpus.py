# make_corpus.py — writes the seed corpus (deterministic, about 4 KiB in all): short programs that
# mix every operation over small, page-sized and huge sizes, and realloc chains across the
# boundaries. Run: python3 tests/fuzz/make_corpus.py tests/fuzz/corpus
# One operation is 4 bytes: op << 4 | size selector, size low byte, size high byte, slot
# (fuzz_alloc.c: op 0-1 malloc, 2 calloc, 3 realloc, 4 aligned, 5 usable size, 6-7 free;
# selector 0-9 small, 10-13 up to 40000, 14 up to 300000, 15 huge).
import os
import random
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
os.makedirs(out, exist_ok=True)
for old in os.listdir(out):
    os.remove(os.path.join(out, old))


def op(code, sel, size, slot):
    return bytes([(code << 4) | sel, size & 255, size >> 8 & 255, slot])


seeds = []
for k in range(12):
    rnd = random.Random(k)
    ops = bytearray()
    for _ in range(24 + 6 * k):
        sel = rnd.choice([0, 3, 7, 10, 12, 14, 15]) if k % 3 else rnd.randrange(10)
        ops += op(rnd.randrange(8), sel, rnd.randrange(65536), rnd.randrange(16))
    seeds.append(ops)
# one block grown through every boundary and shrunk back, by realloc
chain = bytearray(op(1, 0, 8, 0))
for sel, size in [(0, 100), (0, 1023), (10, 1025), (10, 32768), (11, 32769), (12, 39999), (14, 4000),
                  (14, 60000), (15, 1), (15, 30000), (14, 100), (10, 5000), (0, 17), (0, 0)]:
    chain += op(3, sel, size, 0)
seeds.append(chain)
# every alignment, then usable size and a foreign free
al = bytearray()
for a in range(19):
    al += op(4, a % 10, (a << 8) | a, a % 16) + op(5, 0, 0xFF, a % 16)
seeds.append(al)
# calloc over freed dirty memory, every element size
cz = bytearray()
for s in range(8):
    cz += op(1, 10, 30000 + s, s) + op(6, 0, 0, s) + op(2, 10, 30000 + s, s | (s % 4) << 6)
seeds.append(cz)
for k, ops in enumerate(seeds):
    with open(os.path.join(out, f"seed{k:02d}"), "wb") as f:
        f.write(ops)
