# pyalloc.py — an allocation-heavy python3 workload for the comparison: dicts, lists, strings,
# json round trips and objects with short and long lives. Prints a checksum (checked by the runner
# against the glibc run).
import json
import random

random.seed(7)
keep = []
total = 0
for rnd in range(12):
    d = {f"k{i}-{rnd}": [i, str(i) * (i % 7), {"v": i * 3}] for i in range(40000)}
    s = json.dumps(d)
    back = json.loads(s)
    total += len(s) + len(back)
    words = [("w%05d" % random.randrange(100000)) * random.randrange(1, 6) for _ in range(60000)]
    words.sort()
    total += sum(len(w) for w in words[::97])
    keep.append(back if rnd % 4 == 0 else None)
    text = "".join(words[:20000])
    total += text.count("w0")
print(total)
