#!/usr/bin/env bash
# trace_replay.sh — why a program's memory or page faults differ between allocators: records the
# program's allocation calls once, on glibc (build/bench/libatrace.so), then replays that one
# trace under glibc and each installed allocator (build/bench/areplay, one thread, in the
# recorded order) and prints, per allocator, medians over the runs of the replay's time, minor
# page faults and peak RSS growth (the replay's peak less what the loaded trace keeps resident).
# Only the calls run, so the figures are the allocators' alone, not the program's; a
# multi-threaded program's calls replay on one thread (placement, not contention). The blocks are written as --touch says (all: every byte, the default; head: the
# first 16 bytes; none). Of a program that starts others, the largest trace (most calls) is
# replayed; --keep DIR keeps every process's trace there.
#   scripts/trace_replay.sh [--touch all|head|none] [--runs N] [--keep DIR] -- CMD ARGS...
#   e.g. scripts/trace_replay.sh -- /usr/bin/python3 -c 'import json'
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/rivals.sh
usage() { sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2; }
help() { sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0; }
touch=all; runs=5; keep=""
while (($#)); do
  case "$1" in
    --touch) [ $# -ge 2 ] || usage; touch=$2; shift 2 ;;
    --runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
    --keep) [ $# -ge 2 ] || usage; keep=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) help ;;
    *) echo "trace_replay.sh: unknown argument $1" >&2; usage ;;
  esac
done
(($#)) || { echo "trace_replay.sh: no command after --" >&2; usage; }
case "$touch" in all|head|none) ;; *) usage ;; esac

BUILD_DIR=${BUILD_DIR:-build}
if [ ! -x "$BUILD_DIR/bench/areplay" ] || [ ! -f "$BUILD_DIR/bench/libatrace.so" ] || [ ! -f "$BUILD_DIR/liblabyrinth.so" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target labyrinth areplay atrace >&2
fi
dir=${keep:-$(mktemp -d)}
mkdir -p "$dir"
[ -n "$keep" ] || trap 'rm -rf "$dir"' EXIT
ATRACE_FILE="$dir/trace" LD_PRELOAD="$PWD/$BUILD_DIR/bench/libatrace.so" "$@" >/dev/null
trace=$(wc -l "$dir"/trace.* 2>/dev/null | grep -v ' total$' | sort -n | tail -n 1 | awk '{print $2}')
[ -n "$trace" ] || { echo "trace_replay.sh: no trace was written (is the program dynamically linked?)" >&2; exit 1; }
echo "command: $*"
echo "trace: $(grep -c '^[mcraf] ' "$trace") calls of process ${trace##*.} ($(ls "$dir"/trace.* | wc -l) process(es) recorded); touch: $touch; $runs run(s), medians"

libs=(glibc "$PWD/$BUILD_DIR/liblabyrinth.so")
mapfile -t -O "${#libs[@]}" libs < <(rival_libs)
declare -A T F R
for ((r = 0; r < runs; r++)); do
  for lib in "${libs[@]}"; do # interleaved: a shift of the host's speed hits every allocator
    pre=$lib; [ "$lib" = glibc ] && pre=
    out=$(LD_PRELOAD="$pre" "$BUILD_DIR/bench/areplay" "$trace" "$touch") || {
      echo "trace_replay.sh: the replay under $lib failed" >&2; exit 1; }
    T[$lib]+=" $(sed -n 's/.*replayed_s=\([0-9.]*\).*/\1/p' <<<"$out")"
    F[$lib]+=" $(sed -n 's/.*minor_faults=\([0-9]*\).*/\1/p' <<<"$out")"
    R[$lib]+=" $(sed -n 's/.*rss_growth_kib=\([0-9]*\).*/\1/p' <<<"$out")"
  done
done
med() { tr ' ' '\n' <<<"$*" | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
printf '%-28s %12s %14s %18s\n' allocator "time (ms)" "minor faults" "peak RSS growth (KiB)"
for lib in "${libs[@]}"; do
  printf '%-28s %12.3f %14s %18s\n' "$(basename "$lib")" "$(awk -v t="$(med "${T[$lib]}")" 'BEGIN {print t * 1000}')" \
    "$(med "${F[$lib]}")" "$(med "${R[$lib]}")"
done
