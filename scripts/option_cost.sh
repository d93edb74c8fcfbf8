#!/usr/bin/env bash
# option_cost.sh VAR A B [RUNS] — what setting a LABYRINTH_* option to B instead of A costs on the
# bench workloads: each workload run under Labyrinth with VAR=A and VAR=B, interleaved, RUNS times
# (default 3); prints the median elapsed time, peak RSS and minor page faults of each and their
# ratios, then the geomeans. Needs a built tree (cmake --build build); BUILD_DIR selects another.
#   scripts/option_cost.sh LABYRINTH_SECURE 0 1     what secure mode costs
#   scripts/option_cost.sh LABYRINTH_THP 0 2        huge pages from the second chunk on
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in -h|--help) sed -n '2,7s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
[ $# -ge 3 ] || { sed -n '2,7s/^# \{0,1\}//p' "$0" >&2; exit 2; }
var=$1 a=$2 b=$3 runs=${4:-3}
case "$var" in LABYRINTH_*) ;; *) echo "option_cost.sh: $var is not a LABYRINTH_ option" >&2; exit 2 ;; esac
bd=${BUILD_DIR:-build}
lib=$PWD/$bd/liblabyrinth.so; wl=$PWD/$bd/bench/wl
[ -x "$wl" ] && [ -f "$lib" ] || { echo "option_cost.sh: build $bd first" >&2; exit 1; }
python3 - "$lib" "$wl" "$runs" "$var" "$a" "$b" <<'PY'
import math, os, re, subprocess, sys, statistics
lib, wl, runs, var, a, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
cases = ["larson 2 2000000", "xmalloc 4 1000000", "scratch 2 500000", "churn 2 4000000",
         "mstress 4 100", "maze 2 200", "strbuild 1 2000000", "ring 2 3000"]
def run(args, value):
    env = dict(os.environ, LD_PRELOAD=lib)
    env[var] = value
    r = subprocess.run(["/usr/bin/time", "-f", "RSS %M FAULTS %R", wl] + args.split(), env=env,
                       capture_output=True, text=True, check=True)
    t = float(re.search(r"elapsed_s=([0-9.]+)", r.stdout).group(1))
    m = re.search(r"^RSS (\d+) FAULTS (\d+)", r.stderr, re.M)
    return t, int(m.group(1)), int(m.group(2))
print(f"{var}={a} against {b}, medians of {runs} interleaved runs")
print(f"{'workload':20s} {'time':>7s} {b:>7s} {'ratio':>5s} {'RSS KiB':>8s} {b:>8s} {'ratio':>5s}"
      f" {'faults':>7s} {b:>7s} {'ratio':>5s}")
ratios = [[], [], []]
for c in cases:
    x, y = [], []
    for _ in range(runs):
        x.append(run(c, a)); y.append(run(c, b))
    row = f"{c:20s}"
    for k, w in enumerate((7, 8, 7)):
        p, q = statistics.median(v[k] for v in x), statistics.median(v[k] for v in y)
        ratios[k].append(q / p if p else 1.0)
        row += f" {p:{w}.3f} {q:{w}.3f}" if k == 0 else f" {p:{w}.0f} {q:{w}.0f}"
        row += f" {ratios[k][-1]:5.2f}"
    print(row)
g = lambda v: math.exp(sum(map(math.log, v)) / len(v))
print(f"{'geomean':20s} {'':15s} {g(ratios[0]):5.2f} {'':17s} {g(ratios[1]):5.2f} {'':15s} {g(ratios[2]):5.2f}")
PY
