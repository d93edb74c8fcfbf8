# pyalloc.py — an allocation-heavy python3 program for the comparison (bench/run.py runs it under
# each allocator): dicts, lists, strings, json round trips, objects with short and long lives.
# Usage: python3 pyalloc.py [ROUNDS]. Checks itself (every json round trip must give back what
# went in; exit 1 otherwise), prints `elapsed_s=<s> checksum=<n>`; the runner also compares the
# checksum with the glibc run's.
import json
import random
import sys
import time


class Node:
    __slots__ = ("key", "value", "children")

    def __init__(self, key, value):
        self.key, self.value, self.children = key, value, []


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    random.seed(7)
    t0 = time.perf_counter()
    keep, total = [], 0
    for rnd in range(rounds):
        d = {f"k{i}-{rnd}": [i, str(i) * (i % 7), {"v": i * 3}] for i in range(30000)}
        s = json.dumps(d)
        back = json.loads(s)
        if back != d:
            print("pyalloc: json round trip differs", file=sys.stderr)
            sys.exit(1)
        total += len(s) + len(back)
        words = [("w%05d" % random.randrange(100000)) * random.randrange(1, 6) for _ in range(50000)]
        words.sort()
        total += sum(len(w) for w in words[::97])
        # a tree of small objects that lives for one round, and a part that lives on
        root = Node("r", rnd)
        for i, w in enumerate(words[:20000]):
            n = Node(w, i)
            root.children.append(n)
            if i % 3 == 0:
                n.children.append(Node(w[::-1], -i))
        total += sum(len(c.children) for c in root.children)
        keep.append(back if rnd % 4 == 0 else root.children[:1000])
        text = "".join(words[:20000])
        total += text.count("w0")
    total += sum(len(k) for k in keep)
    print(f"elapsed_s={time.perf_counter() - t0:.6f} checksum={total}")


if __name__ == "__main__":
    main()
