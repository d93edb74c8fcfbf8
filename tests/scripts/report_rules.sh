#!/usr/bin/env bash
# report_rules.sh — the rules scripts/report.py applies before it claims anything (found by a
# review of the harness), on the recorded run bench/results/2026-12-05-c, altered:
# - a row where Labyrinth runs another API (packets) moves no geomean: Labyrinth's packets time
#   made 1000 times smaller leaves the summary's time geomean as it was;
# - a paired win needs 4 of 5 runs: xmalloc, faster than mimalloc in 3 of 5, is a tie;
# - micro passes under an allocator whose pass ran under another are left out of the geomean.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
src=bench/results/2026-12-05-c/raw.json
mkdir "$tmp/a" "$tmp/b"
cp "$src" "$tmp/a/raw.json"
"$PY" - "$src" "$tmp/b/raw.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["runs"]:
    if r["workload"] == "packets" and r["allocator"] == "labyrinth":
        r["time_s"] /= 1000
d["micro"]["labyrinth"]["error"] = "micro ran under glibc, not labyrinth"
json.dump(d, open(sys.argv[2], "w"))
PYEOF
"$PY" scripts/report.py "$tmp/a" 2>/dev/null
"$PY" scripts/report.py "$tmp/b" 2>/dev/null
fail() { echo "FAIL report_rules: $*"; exit 1; }
ga=$(grep '^| time, geomean vs glibc |' "$tmp/a/report.md")
gb=$(grep '^| time, geomean vs glibc |' "$tmp/b/report.md")
echo "summary: $ga"
[ -n "$ga" ] && [ "$ga" = "$gb" ] || fail "packets moved the time geomean: '$ga' -> '$gb'"
grep -q '^| packets† |' "$tmp/a/report.md" || fail "the packets row is not marked"
px=$(sed -n '/^## Time, paired/,/^## /p' "$tmp/a/report.md" | grep '^| xmalloc |')
echo "paired xmalloc: $px"
case "$px" in *"tie with"*"3 of 5"*) ;; *) fail "xmalloc (3 of 5 runs) is not a tie: $px" ;; esac
mg=$(grep '^Geomean over the' "$tmp/b/report.md")
echo "micro with an error: $mg"
case "$mg" in *labyrinth*) fail "micro passes of an allocator that ran under another still counted" ;; esac
grep '^Geomean over the' "$tmp/a/report.md" | grep -q labyrinth || fail "micro geomean lost labyrinth"
echo "report_rules: ok"
