#!/usr/bin/env bash
# reuse_age.sh — how long ago the calling thread freed the blocks malloc hands back, in larson's
# loop (bench/tools/reuse_age.c), under each allocator: the share of mallocs (percent) by age in
# the thread's operations; "other" is a block the thread had not freed. Deterministic enough to
# compare (the same random sizes and slots under every allocator; the threads' interleaving
# varies a little from run to run).
#   scripts/reuse_age.sh [THREADS [OPS [MIN [MAX]]]] [-- LIB ...]   (defaults 2 4000000 16 1024;
#   LIB: build/liblabyrinth.so (BUILD_DIR's, if set), whichever of jemalloc, mimalloc, tcmalloc
#   are installed, and glibc)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/rivals.sh
case ${1:-} in -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
args=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
[ $# -gt 0 ] && shift
build=${BUILD_DIR:-$PWD/build}
libs=("$@")
if [ ${#libs[@]} -eq 0 ]; then
  [ -f "$build/liblabyrinth.so" ] || { echo "reuse_age.sh: $build/liblabyrinth.so missing (build first)" >&2; exit 1; }
  mapfile -t libs < <(default_libs "$build/liblabyrinth.so")
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -pthread -o "$tmp/reuse_age" bench/tools/reuse_age.c
printf '# reuse_age %s: percent of mallocs by how many of the thread'"'"'s operations ago it freed the block\n' \
  "${args[*]:-2 4000000 16 1024}"
printf '%-28s %6s %6s %6s %8s %9s %7s %6s\n' allocator '<16' 16-63 64-255 256-1023 1024-8191 '>=8192' other
for lib in "${libs[@]}"; do
  pre=$lib; [ "$lib" = glibc ] && pre=
  line=$(env LD_PRELOAD="$pre" "$tmp/reuse_age" ${args[@]+"${args[@]}"})
  # "<16 36.3  16-63 25.8 ...": the values are every second field
  printf '%-28s' "$(basename "$lib")"
  awk '{printf " %6s %6s %6s %8s %9s %7s %6s\n", $2, $4, $6, $8, $10, $12, $14}' <<<"$line"
done
