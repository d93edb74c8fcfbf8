#!/usr/bin/env bash
# callgrind_pair.sh — instructions per malloc(32)+free pair (and per C++ new+delete of 32 bytes),
# 1 000 blocks live, under each allocator: callgrind counts for two loop lengths, the difference
# divided by the difference in iterations (start-up and the loop's set-up cancel out; the loop's
# own 8 instructions and the two PLT jumps stay in, as in the issue's reference figures; the
# new+delete loop's own are 11: a null test and the sized delete's argument), rounded down.
# Repeatable, unlike timings on shared VMs.
#   scripts/callgrind_pair.sh [--env VAR=VALUE] [--batch SIZE | --size SIZE --live N --align A]
#   [LIB ...]   (default: build/liblabyrinth.so and whichever of jemalloc, mimalloc, tcmalloc are
#   installed, and glibc)
# --batch SIZE counts bench/tools/cg_batch.c instead: 256 blocks of SIZE bytes allocated, then all
# freed, per malloc+free (for blocks of a few KiB a round empties whole spans). --size SIZE: the
# same loop as the default with blocks of SIZE bytes (malloc+free only); --live N: N blocks live
# instead of 1 000 (1: a scratch block allocated and freed again, its span emptied at every
# free); --align A: posix_memalign(A) instead of malloc. Any of the three alone counts that loop.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/rivals.sh
env_extra=()
batch=
live=
align=
size=
while [ $# -gt 0 ]; do
  case "$1" in
    --env) env_extra+=("$2"); shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --live) live=$2; shift 2 ;;
    --align) align=$2; shift 2 ;;
    -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "callgrind_pair.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
command -v valgrind >/dev/null || { echo "callgrind_pair.sh: valgrind missing (apt-get install valgrind)" >&2; exit 1; }
libs=("$@")
[ ${#libs[@]} -gt 0 ] || mapfile -t libs < <(default_libs "$PWD/build/liblabyrinth.so")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -fno-builtin -o "$tmp/pair" bench/tools/cg_pair.c
c++ -O2 -o "$tmp/newdel" bench/tools/cg_newdel.cc
count() { # lib prog args...
  local pre=$1 prog=$2; shift 2; [ "$pre" = glibc ] && pre=
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cg.%p" \
    env ${env_extra[@]+"${env_extra[@]}"} LD_PRELOAD="$pre" "$prog" "$@" 2>&1 |
    awk '/Collected/ {v=$4} END {gsub(",", "", v); print v}'
}
# one column: instructions per malloc+free of PROG, counted at N and 2N pairs (ARGS passed on)
one_column() { # title prog n args...
  local title=$1 prog=$2 n=$3; shift 3
  printf '%-28s %14s\n' allocator "$title"
  for lib in "${libs[@]}"; do
    a=$(count "$lib" "$prog" "$n" "$@"); b=$(count "$lib" "$prog" $(( 2 * n )) "$@")
    printf '%-28s %14d\n' "$(basename "$lib")" $(( (b - a) / n ))
  done
}
if [ -n "$batch" ]; then
  cc -O2 -fno-builtin -o "$tmp/batch" bench/tools/cg_batch.c
  one_column "batch $batch B" "$tmp/batch" 102400 "$batch"
  exit 0
fi
if [ -n "$live$align" ]; then
  one_column "pair ${size:-32} B, ${live:-1000} live${align:+, align $align}" "$tmp/pair" 100000 \
    "${size:-32}" "${live:-1000}" "${align:-0}"
  exit 0
fi
if [ -n "$size" ]; then
  one_column "pair $size B" "$tmp/pair" 100000 "$size"
  exit 0
fi
printf '%-28s %14s %14s\n' allocator malloc+free new+delete
for lib in "${libs[@]}"; do
  a=$(count "$lib" "$tmp/pair" 100000); b=$(count "$lib" "$tmp/pair" 200000)
  c=$(count "$lib" "$tmp/newdel" 100000); d=$(count "$lib" "$tmp/newdel" 200000)
  printf '%-28s %14d %14d\n' "$(basename "$lib")" $(( (b - a) / 100000 )) $(( (d - c) / 100000 ))
done
