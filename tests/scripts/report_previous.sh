#!/usr/bin/env bash
# report_previous.sh — scripts/report.py's rows that moved since a recorded run: the run of
# bench/results/2026-12-06-k against itself with Labyrinth's malloc_free_runs/102400 three times
# slower and its gcc time a third. Those two rows must be listed (3.00x and 0.33x), nothing else
# may be (every other ratio is the same), and the run against itself unchanged lists none.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
rec=bench/results/2026-12-06-k
mkdir -p "$tmp/now" "$tmp/same"
cp "$rec/raw.json" "$tmp/same/raw.json"
"$PY" - "$tmp/now/raw.json" "$rec/raw.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[2]))
for p in d["micro"]["labyrinth"]["passes"]:
    for b in (p.get("result") or {}).get("benchmarks", []):
        if b["name"].startswith("malloc_free_runs/102400"):
            b["real_time"] *= 3
for r in d["runs"]:
    if r["workload"] == "gcc" and r["allocator"] == "labyrinth":
        r["time_s"] /= 3
json.dump(d, open(sys.argv[1], "w"))
PYEOF
"$PY" scripts/report.py "$tmp/now" "$rec" 2>/dev/null
"$PY" scripts/report.py "$tmp/same" "$rec" 2>/dev/null
section=$(sed -n '/^## Against the recorded run/,/^## /p' "$tmp/now/report.md")
rows=$(echo "$section" | grep -E '^\| (micro|time|peak RSS) ' || true)
echo "$rows"
fail=0
echo "$rows" | grep -q '^| micro | malloc_free_runs/102400 | .* | \*\*3.00x\*\* |$' ||
    { echo "FAIL: malloc_free_runs/102400 three times slower is not listed at 3.00x"; fail=1; }
echo "$rows" | grep -q '^| time | gcc | .* | 0.33x |$' ||
    { echo "FAIL: gcc three times as fast is not listed at 0.33x"; fail=1; }
[ "$(echo "$rows" | grep -c .)" = 2 ] || { echo "FAIL: rows listed that did not move"; fail=1; }
grep -q '^None moved that far.$' "$tmp/same/report.md" || { echo "FAIL: the run against itself lists rows"; fail=1; }
((fail == 0)) && echo "report_previous: ok"
exit $fail
