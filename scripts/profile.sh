#!/usr/bin/env bash
# profile.sh [--alloc NAME] [--out DIR] [--compare NAME] -- CMD ARGS...
# Runs CMD under an allocator (labyrinth, glibc, jemalloc, mimalloc, tcmalloc) with
# `perf record -e cpu-clock -g` (these VMs have no hardware counters; `perf stat` is added when
# the machine has them) and writes DIR/top.txt (top symbols by self time, allocator symbols
# marked '*'), DIR/folded.txt and DIR/flame.svg; with --compare, the same for a second allocator
# in DIR/<name>/ and DIR/compare.txt (share of samples in allocator code, side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
alloc=labyrinth; out=results/profile; cmp=""
while (($#)); do
  case "$1" in
    --alloc) alloc=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --compare) cmp=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--alloc NAME] [--out DIR] [--compare NAME] -- CMD ARGS..." >&2; exit 2 ;;
  esac
done
(($#)) || { echo "profile.sh: no command" >&2; exit 2; }
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
BUILD_DIR=${BUILD_DIR:-build}
[ -f "$BUILD_DIR/liblabyrinth.so" ] || { cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build "$BUILD_DIR" -j"$(nproc)" >&2; }

preload_of() {
  case "$1" in
    glibc) echo "" ;;
    labyrinth) echo "$PWD/$BUILD_DIR/liblabyrinth.so" ;;
    jemalloc) echo /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ;;
    mimalloc) echo /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 ;;
    tcmalloc) echo /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ;;
    *) echo "profile.sh: unknown allocator $1" >&2; exit 2 ;;
  esac
}

ALLOC_RE='^(lab_|labyrinth_|span_|heap_|pool_|room_|store_|shared_|zone_|stack_|malloc|free|calloc|realloc|cfree|_int_malloc|_int_free|__libc_|je_|mi_|_mi_|tc_|tcmalloc|operator new|operator delete|posix_memalign|aligned_alloc|memalign|alloc_|block_|huge_)'

profile_one() { # name dir cmd...
  local name=$1 dir=$2; shift 2
  mkdir -p "$dir"
  local pre; pre=$(preload_of "$name")
  echo "profile.sh: $name: perf record -e cpu-clock -g -- $*" >&2
  perf record -q -e cpu-clock -g -o "$dir/perf.data" -- env ${pre:+LD_PRELOAD=$pre} "$@" >"$dir/stdout.txt" 2>"$dir/stderr.txt" || true
  if perf stat -e instructions true >/dev/null 2>&1; then
    perf stat -e instructions,cycles -o "$dir/stat.txt" -- env ${pre:+LD_PRELOAD=$pre} "$@" >/dev/null 2>&1 || true
  fi
  perf report -i "$dir/perf.data" --no-children --sort sym -g none --stdio 2>/dev/null |
    awk -v re="$ALLOC_RE" '/^ +[0-9.]+%/ { sym=$0; sub(/^ +[0-9.]+% +\[[^]]*\] +/, "", sym);
         mark = (sym ~ re) ? "*" : " "; printf "%s %s\n", mark, $0; n++ } n >= 40 { exit }' > "$dir/top.txt"
  perf script -i "$dir/perf.data" 2>/dev/null | python3 -c '
import sys
stacks = {}
cur = []
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line.strip():
        if cur:
            key = ";".join(reversed(cur)); stacks[key] = stacks.get(key, 0) + 1
        cur = []
        continue
    if line.startswith((" ", "\t")):
        parts = line.strip().split(None, 1)
        sym = parts[1] if len(parts) > 1 else "?"
        sym = sym.split(" (")[0].split("+0x")[0]
        cur.append(sym)
if cur:
    key = ";".join(reversed(cur)); stacks[key] = stacks.get(key, 0) + 1
for k, v in stacks.items():
    print(k, v)
' > "$dir/folded.txt"
  python3 scripts/flame.py "$dir/folded.txt" "$dir/flame.svg" "$name: $*"
  awk '/^\*/ { gsub(/%/, "", $2); s += $2 } END { printf "%.1f\n", s }' "$dir/top.txt" > "$dir/alloc_share.txt"
  echo "profile.sh: $dir/top.txt, $dir/folded.txt, $dir/flame.svg (allocator share of top symbols: $(cat "$dir/alloc_share.txt")%)" >&2
}

profile_one "$alloc" "$out" "$@"
if [ -n "$cmp" ]; then
  profile_one "$cmp" "$out/$cmp" "$@"
  {
    echo "allocator time share (sum of marked symbols among the top 40, % of samples)"
    printf "%-12s %s\n" "$alloc" "$(cat "$out/alloc_share.txt")"
    printf "%-12s %s\n" "$cmp" "$(cat "$out/$cmp/alloc_share.txt")"
    echo; echo "== $alloc"; head -15 "$out/top.txt"; echo; echo "== $cmp"; head -15 "$out/$cmp/top.txt"
  } > "$out/compare.txt"
  cat "$out/compare.txt"
fi
