#!/usr/bin/env bash
# run_scale.sh — bench/run.py --scale K runs each wl workload with K times its N and says so in
# raw.json (config.scale, config.workload_sizes, and the command each run ran): larson at the
# tiny size (N 20000) under glibc alone, once, scaled by 3, must have run with N 60000.
#   run_scale.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
"$PY" bench/run.py --build "$build" --out "$tmp" --size tiny --only larson --alloc glibc --no-micro \
    --runs 1 --scale 3 >/dev/null 2>&1 || { echo "FAIL run_scale: run.py failed"; exit 1; }
"$PY" - "$tmp/raw.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["config"]
runs = [r for r in d["runs"] if r["workload"] == "larson"]
print("scale", c.get("scale"), "sizes", c["workload_sizes"]["larson"], "command", runs[0]["command"] if runs else None)
ok = (c.get("scale") == 3 and c["workload_sizes"]["larson"]["n"] == 60000 and len(runs) == 1
      and runs[0]["command"][-1] == "60000" and runs[0]["ok"])
if not ok:
    print("FAIL run_scale: larson did not run with 3 x 20000")
    sys.exit(1)
PYEOF
echo "run_scale: ok"
