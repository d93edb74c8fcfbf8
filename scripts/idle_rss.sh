#!/usr/bin/env bash
# idle_rss.sh — RSS a pool of idle worker threads keeps after its work (bench/tools/idle_rss.c):
# after the work, after IDLE_S seconds of waiting (threads alive) and after malloc_trim(0), in
# MiB, under glibc, build/liblabyrinth.so and whichever of jemalloc, mimalloc and tcmalloc are
# installed; medians of RUNS runs (default 3).
#   scripts/idle_rss.sh [-n RUNS] [THREADS [ROUNDS [BLOCKS [IDLE_S]]]]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/rivals.sh
runs=3
case ${1:-} in -h|--help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
if [ "${1:-}" = -n ]; then runs=$2; shift 2; fi
args=("${@:-32}")
[ -f build/liblabyrinth.so ] || { echo "idle_rss.sh: build/liblabyrinth.so missing (cmake --build build)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -pthread -o "$tmp/idle_rss" bench/tools/idle_rss.c
libs=(glibc "$PWD/build/liblabyrinth.so")
mapfile -t -O "${#libs[@]}" libs < <(rival_libs)
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
printf '%-28s %10s %10s %10s\n' allocator "work MiB" "idle MiB" "trim MiB"
for lib in "${libs[@]}"; do
  pre=$lib; [ "$lib" = glibc ] && pre=
  for i in $(seq "$runs"); do env LD_PRELOAD="$pre" "$tmp/idle_rss" "${args[@]}"; done >"$tmp/out"
  col() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) v = $(i + 1); if (k == "idle") v = $(NF - 2); print v / 1024}' "$tmp/out" | median; }
  printf '%-28s %10.1f %10.1f %10.1f\n' "$(basename "$lib")" "$(col work)" "$(col idle)" "$(col trim)"
done
