#!/usr/bin/env bash
# cache_cost.sh — what one operation of a `wl` workload costs under each allocator, counted by
# valgrind's cachegrind instead of timed: instructions, L1 data misses, last-level data misses
# (a 512 KiB, 8-way cache by default: one core's L2 on these VMs) and mispredicted branches. Each
# allocator runs the workload at N and 2N operations and the difference is divided by N, so
# start-up cancels out; the workload's own loop is the same under every allocator, so the rows
# differ by what the allocators do and by where they put the blocks. Threads run one at a time
# (--fair-sched), on one simulated cache: what moving lines between cores costs is not counted
# (run the workload pinned to one CPU, `taskset -c 0`, to time it the same way). Repeatable, unlike
# timings on shared VMs, and slow: about a minute per allocator for the default N.
#   scripts/cache_cost.sh [--n N] [--d1 SIZE,WAYS,LINE] [--ll SIZE,WAYS,LINE] WORKLOAD THREADS [LIB ...]
#   (default N 1000000; LIB: build/liblabyrinth.so (BUILD_DIR's, if set) and whichever of
#   jemalloc, mimalloc, tcmalloc are installed, and glibc)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/rivals.sh
n=1000000
d1=32768,8,64
ll=524288,8,64
while [ $# -gt 0 ]; do
  case "$1" in
    --n) n=$2; shift 2 ;;
    --d1) d1=$2; shift 2 ;;
    --ll) ll=$2; shift 2 ;;
    -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "cache_cost.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: scripts/cache_cost.sh [--n N] WORKLOAD THREADS [LIB ...] (--help)" >&2; exit 2; }
workload=$1 threads=$2; shift 2
case "$n" in ''|*[!0-9]*|0) echo "cache_cost.sh: --n wants a positive count" >&2; exit 2 ;; esac
command -v valgrind >/dev/null || { echo "cache_cost.sh: valgrind missing (apt-get install valgrind)" >&2; exit 1; }
build=${BUILD_DIR:-$PWD/build}
wl=$build/bench/wl
[ -x "$wl" ] || { echo "cache_cost.sh: $wl missing (build the project first)" >&2; exit 1; }
libs=("$@")
[ ${#libs[@]} -gt 0 ] || mapfile -t libs < <(default_libs "$build/liblabyrinth.so")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the totals of one run of the workload (the process that ran it: the largest output file, env's
# own being tiny): instructions, D1 misses, LL data misses, mispredicts
count() { # lib ops
  local pre=$1 ops=$2 f; [ "$pre" = glibc ] && pre=
  rm -f "$tmp"/cg.*
  valgrind --tool=cachegrind --cache-sim=yes --branch-sim=yes --D1="$d1" --LL="$ll" --fair-sched=yes \
    --trace-children=yes --cachegrind-out-file="$tmp/cg.%p" \
    env LD_PRELOAD="$pre" "$wl" "$workload" "$threads" "$ops" >"$tmp/out" 2>&1 ||
    { echo "cache_cost.sh: $wl $workload $threads $ops failed under $1:" >&2; tail -5 "$tmp/out" >&2; exit 1; }
  f=$(ls -S "$tmp"/cg.* | head -1)
  # the summary line: the totals of every event, in the order of the events line
  awk '/^events:/ {for (i = 2; i <= NF; i++) col[$i] = i - 1}
       /^summary:/ {print $(col["Ir"] + 1), $(col["D1mr"] + 1) + $(col["D1mw"] + 1),
                          $(col["DLmr"] + 1) + $(col["DLmw"] + 1), $(col["Bcm"] + 1) + $(col["Bim"] + 1)}' "$f"
}
printf '# wl %s %s: per operation (cachegrind, D1 %s, LL %s; counts at %s and %s operations)\n' \
  "$workload" "$threads" "$d1" "$ll" "$n" $((2 * n))
printf '%-28s %12s %10s %10s %11s\n' allocator instructions 'D1 misses' 'LL misses' mispredicts
for lib in "${libs[@]}"; do
  read -r i1 m1 l1 b1 < <(count "$lib" "$n")
  read -r i2 m2 l2 b2 < <(count "$lib" $((2 * n)))
  awk -v n="$n" -v name="$(basename "$lib")" -v di=$((i2 - i1)) -v dm=$((m2 - m1)) -v dl=$((l2 - l1)) \
    -v db=$((b2 - b1)) 'BEGIN {printf "%-28s %12.1f %10.2f %10.2f %11.2f\n", name, di / n, dm / n, dl / n, db / n}'
done
