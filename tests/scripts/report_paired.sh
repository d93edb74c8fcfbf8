#!/usr/bin/env bash
# report_paired.sh — scripts/report.py's paired time table on a run whose host changed speed
# between runs: glibc's gcc times 1,1,1,3,3 s and Labyrinth's 3.3,1.1,1.1,3.3,3.3 s, so every run
# has Labyrinth 1.1x glibc while the medians (1 and 3.3) say 3.3x. The paired row must say 1.10;
# every other cell comes from the recorded run bench/results/2026-12-02-f.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" - "$tmp" <<'PYEOF'
import json, sys
d = json.load(open("bench/results/2026-12-02-f/raw.json"))
times = {"glibc": [1, 1, 1, 3, 3], "labyrinth": [3.3, 1.1, 1.1, 3.3, 3.3]}
for r in d["runs"]:
    if r["workload"] == "gcc" and r["allocator"] in times:
        r["time_s"] = times[r["allocator"]][r["run"]]
json.dump(d, open(sys.argv[1] + "/raw.json", "w"))
PYEOF
"$PY" scripts/report.py "$tmp" 2>/dev/null
row=$(sed -n '/^## Time, paired/,/^## /p' "$tmp/report.md" | grep '^| gcc |')
med=$(sed -n '/^## Time (median/,/^## /p' "$tmp/report.md" | grep '^| gcc |')
echo "median row: $med"
echo "paired row: $row"
lab_glibc=$(echo "$row" | awk -F'|' '{gsub(/ /, "", $3); print $3}')
med_ratio=$(echo "$med" | awk -F'|' '{gsub(/ /, "", $8); print $8}')
[ "$lab_glibc" = "1.10" ] || { echo "FAIL: paired lab/glibc is '$lab_glibc', not 1.10"; exit 1; }
[ "$med_ratio" = "3.30" ] || { echo "FAIL: the median table's lab/glibc is '$med_ratio', not 3.30"; exit 1; }
echo "report_paired: ok"
