# make_corpus.py — writes the seed corpus (deterministic): programs mixing every operation over
# small, page-sized and huge sizes. Run: python3 tests/fuzz/make_corpus.py tests/fuzz/corpus
import os
import random
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
os.makedirs(out, exist_ok=True)
for k in range(24):
    rnd = random.Random(k)
    ops = bytearray()
    for _ in range(64 + 32 * k):
        sel = rnd.choice([0, 3, 7, 10, 12, 14, 15]) if k % 3 else rnd.randrange(10)
        op = rnd.randrange(8)
        ops += bytes([(op << 4) | sel, rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)])
    with open(os.path.join(out, f"seed{k:02d}"), "wb") as f:
        f.write(ops)
