#!/usr/bin/env bash
# cost_tools.sh — the two scripts that explain a workload's time without timing it give numbers:
# scripts/cache_cost.sh (cachegrind's counts per operation) and scripts/reuse_age.sh (how long ago
# the blocks malloc hands back were freed), each under Labyrinth and glibc at a small size. Every
# row must be there, with counts in range: instructions per larson operation between 50 and
# 5 000 (the workload's own loop is about 50), misses and mispredicts not negative, and the
# reuse ages of each allocator adding up to 100 %.
#   cost_tools.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
cd "$(dirname "$0")/../.."
lab=$build/liblabyrinth.so
out=$(BUILD_DIR=$build scripts/cache_cost.sh --n 20000 larson 2 "$lab" glibc)
echo "$out"
echo "$out" | awk -v lab="$(basename "$lab")" '
  /^#/ || $1 == "allocator" {next}
  {rows[$1] = 1
   if (NF != 5 || $2 < 50 || $2 > 5000 || $3 < 0 || $4 < 0 || $5 < 0) {
     print "FAIL cost_tools: bad cache_cost row: " $0; bad = 1}}
  END {if (!rows[lab] || !rows["glibc"]) {print "FAIL cost_tools: cache_cost rows missing"; bad = 1}
       exit bad}'
out=$(BUILD_DIR=$build scripts/reuse_age.sh 2 200000 16 1024 -- "$lab" glibc)
echo "$out"
echo "$out" | awk -v lab="$(basename "$lab")" '
  /^#/ || $1 == "allocator" {next}
  {rows[$1] = 1; s = 0
   for (i = 2; i <= NF; i++) s += $i
   if (NF != 8 || s < 99.5 || s > 100.5) {print "FAIL cost_tools: bad reuse_age row: " $0; bad = 1}}
  END {if (!rows[lab] || !rows["glibc"]) {print "FAIL cost_tools: reuse_age rows missing"; bad = 1}
       exit bad}'
echo "cost_tools: ok"
