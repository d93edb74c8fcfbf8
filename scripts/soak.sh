#!/usr/bin/env bash
# soak.sh — the soak of issue 5 (not in CI): a steady mixed workload (tests/stress/soak.c: a
# bounded working set, heavy-tailed sizes, realloc, cross-thread frees, thread turnover) runs under
# LD_PRELOAD for --minutes; its RSS is sampled every --interval seconds and printed as a table; the
# verdict compares the mean RSS of the last third of the samples with that of the middle third
# (the first third is warm-up): "flat" when within --tolerance percent. Exit 0: flat and the
# workload's own checks passed; 1: not flat; 2: the workload failed.
#
#   scripts/soak.sh [--minutes N] [--interval S] [--threads T] [--tolerance PCT]
#                   [--lib PATH | --glibc] [--build-dir DIR]
# Defaults: 10 minutes, 5 s, 4 threads, 10 %, DIR/liblabyrinth.so with DIR = $BUILD_DIR or build.
# Extra environment (LABYRINTH_PURGE_DELAY_MS=..., LABYRINTH_STATS=1) passes through; the soak of
# pooled mmap is SOAK_MMAP=1 LABYRINTH_MMAP=1 scripts/soak.sh (blocks of a page or more are mappings).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10 interval=5 threads=4 tolerance=10 lib= glibc=0 build=${BUILD_DIR:-build}
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --tolerance) tolerance=$2; shift 2 ;;
    --lib) lib=$2; shift 2 ;;
    --glibc) glibc=1; shift ;;
    --build-dir) build=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
prog=$build/tests/stress/stress_soak
[ -n "$lib" ] || lib=$build/liblabyrinth.so
if [ ! -x "$prog" ] || { ((!glibc)) && [ ! -f "$lib" ]; }; then
  echo "soak.sh: build first: cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build" >&2
  exit 2
fi
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60 + 0.5); print (s < 3 ? 3 : s) }')
preload=$( ((glibc)) && echo "" || realpath "$lib")
out=$(mktemp "${TMPDIR:-/tmp}/soak.XXXXXX")
trap 'rm -f "$out"' EXIT

echo "soak: ${minutes} min, RSS every ${interval} s, $threads threads, under ${preload:-glibc}"
env LD_PRELOAD="$preload" "$prog" "$seconds" "$threads" >"$out" 2>&1 &
pid=$!
start=$(date +%s.%N)
printf '%8s %10s\n' "t (s)" "RSS (MiB)"
samples=()
while kill -0 "$pid" 2>/dev/null; do
  sleep "$interval"
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$rss" ] || break
  t=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  # the workload ends on its own: a sample taken while it frees everything is not the steady state
  ((t < seconds)) || break
  samples+=("$rss")
  printf '%8s %10.1f\n' "$t" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
done
status=0
wait "$pid" || status=$?
cat "$out"
if ((status != 0)); then
  echo "soak: the workload failed (exit $status)"
  exit 2
fi
n=${#samples[@]}
if ((n < 6)); then
  echo "soak: only $n samples; run longer or sample more often"
  exit 2
fi
printf '%s\n' "${samples[@]}" | awk -v tol="$tolerance" '
  { v[NR] = $1 }
  END {
    n = NR; a = int(n / 3) + 1; b = int(2 * n / 3)
    for (i = a; i <= b; i++) { mid += v[i]; nm++ }
    for (i = b + 1; i <= n; i++) { last += v[i]; nl++ }
    mid /= nm; last /= nl
    d = (last - mid) / mid * 100
    printf "soak: mean RSS %.1f MiB over the middle third (%d samples), %.1f MiB over the last third (%d samples): %+.1f %%\n", mid / 1024, nm, last / 1024, nl, d
    if (d <= tol && d >= -tol) { printf "soak: verdict: flat (within %s %%)\n", tol; exit 0 }
    printf "soak: verdict: NOT flat (more than %s %% apart)\n", tol; exit 1
  }'
