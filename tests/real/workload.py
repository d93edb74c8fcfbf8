# workload.py — a Python workload for tests/real/python.sh: dicts, strings, json, threads, fork.
# Allocation-heavy and deterministic (seeded; PYTHONHASHSEED is fixed by the caller), it prints
# only digests and counts, so its stdout is identical on any correct allocator.
import hashlib
import json
import multiprocessing
import random
import threading
from collections import Counter, defaultdict

rng = random.Random(20261123)
out = []


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


# Dicts: build, mutate, delete half, rebuild; many small objects of many sizes.
d = {}
for i in range(200000):
    d["k%d_%s" % (i, "x" * (i % 17))] = [i, str(i) * (i % 5), {"n": i}]
for i in range(0, 200000, 2):
    del d["k%d_%s" % (i, "x" * (i % 17))]
for i in range(50000):
    d[(i, i * 2)] = bytearray(i % 300)
out.append(("dict", len(d), digest(sorted((str(k), len(repr(v))) for k, v in list(d.items())[:5000]))))

# Strings: concatenation, join, split, replace, formatting, encode/decode.
words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 12))) for _ in range(100000)]
text = " ".join(words)
for _ in range(5):
    text = text.replace("ab", "ba").upper().lower()
counts = Counter(text.split())
s = ""
for i in range(20000):
    s += words[i][::-1]
out.append(("strings", len(text), counts.most_common(3), hashlib.sha256(s.encode()).hexdigest()[:16]))

# JSON: dump and load a nested structure a few times.
tree = {"items": [{"id": i, "name": words[i], "tags": words[i : i + 5], "v": i * 0.5} for i in range(30000)]}
for _ in range(3):
    blob = json.dumps(tree, sort_keys=True)
    tree = json.loads(blob)
out.append(("json", len(blob), hashlib.sha256(blob.encode()).hexdigest()[:16]))

# Threads: each builds and tears down its own structures; results gathered in order.
results = [None] * 8


def work(n):
    local = defaultdict(list)
    r = random.Random(n)
    for i in range(40000):
        local[r.randrange(1000)].append("%d-%d" % (n, i))
        if i % 3 == 0:
            local.pop(r.randrange(1000), None)
    results[n] = (n, sum(len(v) for v in local.values()), digest(sorted(local.items())[:50]))


threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out.append(("threads", results))

# Large objects: big lists and bytes that go to the page-run and chunk paths.
big = [bytes(rng.getrandbits(8) for _ in range(64)) * (1 << (i % 12)) for i in range(200)]
out.append(("big", sum(len(b) for b in big), digest([hashlib.md5(b).hexdigest() for b in big])))

# Fork: a process pool forked from this (threaded, allocator-warm) interpreter; children build
# and return structures that are pickled back.
def square_table(n):
    table = {i: str(i * i) * (1 + i % 4) for i in range(n * 100, n * 100 + 2000)}
    return n, len(table), digest(sorted(table.items())[:100])


if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(4) as pool:
        out.append(("fork", pool.map(square_table, range(16))))
    for line in out:
        print(line)
