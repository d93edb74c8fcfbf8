#!/usr/bin/env bash
# profile.sh [--alloc NAME] [--out DIR] [--compare NAME] [--freq HZ] [--dwarf] -- CMD ARGS...
# Runs CMD under an allocator (labyrinth [default], glibc, jemalloc, mimalloc, tcmalloc) with
# `perf record -e cpu-clock -g` (these VMs have no hardware counters; when `perf stat -e
# instructions` says they work, cycles and instructions are counted too) and writes to DIR
# (default results/profile): top.txt (symbols by self time, allocator code marked), folded.txt,
# flame.svg (drawn by scripts/flame.py), stat.txt (perf stat: time, page faults, switches; from
# a second run of CMD, not the profiled one) and cmd.txt. With --compare NAME the same for a
# second allocator in DIR/NAME/, and DIR/compare.txt: both allocators' time shares and top
# symbols side by side. --dwarf: call graphs unwound from
# stack copies (--call-graph dwarf) instead of frame pointers: malloc and free keep no frame, so
# with frame pointers a sample in them loses its caller (bigger perf.data, slower report).
#   e.g. scripts/profile.sh --compare jemalloc -- build/bench/wl larson 2 2000000
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,13s/^# \{0,1\}//p' "$0" >&2; exit 2; }
help() { sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0; }
alloc=labyrinth; out=results/profile; cmp=""; freq=2999; cg=(-g)
while (($#)); do
  case "$1" in
    --alloc) [ $# -ge 2 ] || usage; alloc=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --compare) [ $# -ge 2 ] || usage; cmp=$2; shift 2 ;;
    --freq) [ $# -ge 2 ] || usage; freq=$2; shift 2 ;;
    --dwarf) cg=(--call-graph dwarf); shift ;;
    --) shift; break ;;
    -h|--help) help ;;
    *) echo "profile.sh: unknown argument $1" >&2; usage ;;
  esac
done
(($#)) || { echo "profile.sh: no command after --" >&2; usage; }

. scripts/apt_need.sh
apt_need linux-perf python3 cmake make gcc g++
PERF=/usr/bin/perf; [ -x "$PERF" ] || PERF=perf
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
BUILD_DIR=${BUILD_DIR:-build}
for a in "$alloc" $cmp; do
  if [ "$a" = labyrinth ] && [ ! -f "$BUILD_DIR/liblabyrinth.so" ]; then
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target labyrinth >&2
  fi
done

# Hardware counters: perf stat exits 0 even when it prints "<not supported>", so read its output.
stat_events=task-clock,page-faults,minor-faults,major-faults,context-switches,cpu-migrations
# (grep without -q reads to the end: under pipefail an early quit would kill perf with SIGPIPE)
if "$PERF" stat -e instructions true 2>&1 | grep 'not supported\|not counted' >/dev/null; then
  hw=0
else
  hw=1; stat_events+=",cycles,instructions"
fi

profile_one() { # NAME DIR CMD...
  local name=$1 dir=$2; shift 2
  local pre
  pre=$("$PY" bench/run.py --build "$BUILD_DIR" --which "$name") || exit 2
  mkdir -p "$dir"
  local envcmd=(env -u LD_PRELOAD)
  [ -n "$pre" ] && envcmd=(env "LD_PRELOAD=$pre")
  printf '%s\n' "allocator: $name (${pre:-no preload})" "command: $*" \
    "perf: $PERF record -e cpu-clock -F $freq ${cg[*]}" "hardware counters: $([ $hw = 1 ] && echo yes || echo no)" \
    > "$dir/cmd.txt"
  echo "profile.sh: $name: perf record -e cpu-clock ${cg[*]} -- $*" >&2
  local rc=0
  "$PERF" record -q -e cpu-clock -F "$freq" "${cg[@]}" -o "$dir/perf.data" -- "${envcmd[@]}" "$@" \
    >"$dir/stdout.txt" 2>"$dir/stderr.txt" || rc=$?
  ((rc == 0)) || echo "profile.sh: warning: the command exited with status $rc (see $dir/stderr.txt)" >&2
  "$PERF" stat -x, -e "$stat_events" -o "$dir/stat.txt" -- "${envcmd[@]}" "$@" >/dev/null 2>&1 || true
  "$PERF" script -i "$dir/perf.data" -F comm,tid,time,ip,sym,dso 2>/dev/null > "$dir/perf-script.txt"
  "$PY" scripts/flame.py fold "$dir/perf-script.txt" "$dir" --title "$name: $*" > "$dir/shares.line"
  "$PY" scripts/flame.py svg "$dir/folded.txt" "$dir/flame.svg" \
    "$name: $* — allocator $(share "$dir" allocator_pct)% of samples"
  rm -f "$dir/perf-script.txt" "$dir/shares.line"
  echo "profile.sh: $dir/{top.txt,folded.txt,flame.svg,stat.txt}: allocator $(share "$dir" allocator_pct)% of samples" >&2
}

share() { "$PY" -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1] + "/shares.json"))[sys.argv[2]])' "$1" "$2"; }
stat_of() { # DIR EVENT -> value from perf stat -x, output
  awk -F, -v e="$2" '$3 == e || $3 ~ "^"e":" { print $1; exit }' "$1/stat.txt"
}

profile_one "$alloc" "$out" "$@"
if [ -n "$cmp" ]; then
  profile_one "$cmp" "$out/$cmp" "$@"
  {
    echo "command: $*"
    echo
    printf '%-34s %14s %14s\n' "" "$alloc" "$cmp"
    for k in allocator_pct allocator_user_pct allocator_kernel_pct program_kernel_pct program_user_pct samples; do
      printf '%-34s %14s %14s\n' "$k" "$(share "$out" $k)" "$(share "$out/$cmp" $k)"
    done
    for e in task-clock page-faults context-switches $([ $hw = 1 ] && echo cycles instructions); do
      printf '%-34s %14s %14s\n' "perf stat $e" "$(stat_of "$out" $e)" "$(stat_of "$out/$cmp" $e)"
    done
    echo
    echo "top symbols by self time (A = allocator code, k = kernel inside the allocator, K = kernel under the program)"
    paste -d'|' <(sed -n '/^  *self%/,$p' "$out/top.txt" | head -26 | cut -c1-70 | awk '{printf "%-70s\n", $0}') \
                <(sed -n '/^  *self%/,$p' "$out/$cmp/top.txt" | head -26 | cut -c1-70)
  } > "$out/compare.txt"
  cat "$out/compare.txt"
fi
