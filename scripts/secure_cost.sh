#!/usr/bin/env bash
# secure_cost.sh — what LABYRINTH_SECURE=1 costs on the bench workloads: each workload run under
# Labyrinth with and without secure mode, interleaved, RUNS times (default 3); prints the median
# elapsed time and peak RSS of each and their ratios, then the geomeans. Needs a built tree
# (cmake --build build); BUILD_DIR selects another.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
b=${BUILD_DIR:-build}
lib=$PWD/$b/liblabyrinth.so; wl=$PWD/$b/bench/wl
[ -x "$wl" ] && [ -f "$lib" ] || { echo "secure_cost.sh: build $b first" >&2; exit 1; }
python3 - "$lib" "$wl" "$runs" <<'PY'
import math, os, re, subprocess, sys, statistics
lib, wl, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cases = ["larson 2 2000000", "xmalloc 4 1000000", "scratch 2 500000", "churn 2 4000000",
         "mstress 4 100", "maze 2 200", "strbuild 1 2000000", "ring 2 3000"]
def run(args, secure):
    env = dict(os.environ, LD_PRELOAD=lib, LABYRINTH_SECURE="1" if secure else "0")
    r = subprocess.run(["/usr/bin/time", "-f", "RSS %M", wl] + args.split(), env=env,
                       capture_output=True, text=True, check=True)
    t = float(re.search(r"elapsed_s=([0-9.]+)", r.stdout).group(1))
    rss = int(re.search(r"^RSS (\d+)", r.stderr, re.M).group(1))
    return t, rss
print(f"{'workload':22s} {'time':>8s} {'secure':>8s} {'ratio':>6s} {'RSS KiB':>9s} {'secure':>9s} {'ratio':>6s}")
tr, rr = [], []
for c in cases:
    plain, sec = [], []
    for _ in range(runs):
        plain.append(run(c, False)); sec.append(run(c, True))
    t0 = statistics.median(x[0] for x in plain); t1 = statistics.median(x[0] for x in sec)
    r0 = statistics.median(x[1] for x in plain); r1 = statistics.median(x[1] for x in sec)
    tr.append(t1 / t0); rr.append(r1 / r0)
    print(f"{c:22s} {t0:8.3f} {t1:8.3f} {t1 / t0:6.2f} {r0:9d} {r1:9d} {r1 / r0:6.2f}")
g = lambda v: math.exp(sum(map(math.log, v)) / len(v))
print(f"{'geomean':22s} {'':8s} {'':8s} {g(tr):6.2f} {'':9s} {'':9s} {g(rr):6.2f}")
PY
