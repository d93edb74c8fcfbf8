#!/usr/bin/env bash
# compare.sh [--quick] [--alloc a,b,...] [--only w,...] [--runs N] [--scale K] [--direct-check] [--no-micro]
# The main command: installs what is missing (apt), builds Release in $BUILD_DIR (default build),
# runs every workload under glibc, jemalloc, mimalloc, tcmalloc and Labyrinth (interleaved run by
# run, N runs each, medians) and the micro suite under each, and writes results/latest/: raw.json
# (every run), report.md, time.png, rss.png — all drawn from raw.json by scripts/report.py. The
# previous results/latest is kept as results/previous. Progress goes to stderr. report.md ends with
# the rows whose Labyrinth/glibc ratio moved more than twofold since the run the README records.
#   --quick         smaller workloads, 3 runs, a subset of the micro suite (about 3 minutes)
#   --scale K       the workloads' N times K (longer runs: less of the host's noise in each)
#   --direct-check  also runs the workloads linked against jemalloc (no preload), to show that
#                   LD_PRELOAD does not distort the figures
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }
help() { sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0; }
invocation="scripts/compare.sh${*:+ $*}"
runs=""; size=full; alloc=""; only=""; direct=0; micro=1; scale=""
while (($#)); do
  case "$1" in
    --quick) size=quick ;;
    --runs) [ $# -ge 2 ] || usage; runs=$2; shift ;;
    --alloc) [ $# -ge 2 ] || usage; alloc=$2; shift ;;
    --only) [ $# -ge 2 ] || usage; only=$2; shift ;;
    --scale) [ $# -ge 2 ] || usage; scale=$2; shift ;;
    --direct-check) direct=1 ;;
    --no-micro) micro=0 ;;
    -h|--help) help ;;
    *) echo "compare.sh: unknown argument $1" >&2; usage ;;
  esac
  shift
done
[ -n "$runs" ] || { [ $size = quick ] && runs=3 || runs=5; }
t0=$SECONDS

# --- what the run needs, from Debian (apt-get update first, only when something is missing) ---
. scripts/apt_need.sh
apt_need cmake make gcc g++ pkg-config python3 python3-matplotlib libcmocka-dev \
  libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libbenchmark-dev
# Debian's python3, the one python3-matplotlib belongs to, not a pyenv shim earlier in PATH
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

# --- build: the harness must build; Labyrinth failing to build is reported, not fatal ---
BUILD_DIR=${BUILD_DIR:-build}
excl=()
loud() { printf '\n*** compare.sh: %s ***\n\n' "$*" >&2; }
log=$(mktemp); trap 'rm -f "$log"' EXIT
cfg=(-DCMAKE_BUILD_TYPE=Release -DLAB_BUILD_BENCH=ON)
((direct)) && cfg+=(-DLAB_BENCH_DIRECT_JEMALLOC=ON)
echo "compare.sh: configuring $BUILD_DIR (Release)" >&2
if cmake -S . -B "$BUILD_DIR" "${cfg[@]}" >"$log" 2>&1; then
  bench_dir=$BUILD_DIR
  targets=(wl measure)
  # grep reads to the end (no -q): with pipefail, a grep that quits at the first match makes
  # cmake die of SIGPIPE and the test false, and the micro suite was silently left out
  cmake --build "$BUILD_DIR" --target help 2>/dev/null | grep -w micro >/dev/null && targets+=(micro)
  ((direct)) && targets+=(wl-jemalloc)
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${targets[@]}" >&2
  echo "compare.sh: building liblabyrinth.so" >&2
  if ! cmake --build "$BUILD_DIR" -j"$(nproc)" --target labyrinth >"$log" 2>&1; then
    tail -20 "$log" >&2
    loud "LABYRINTH DID NOT BUILD — comparing the other allocators only"
    excl+=(--exclude "labyrinth=liblabyrinth.so did not build (cmake --build $BUILD_DIR --target labyrinth failed)")
  fi
else
  # the allocator's tree does not configure: build the harness on its own (bench/ stands alone)
  tail -20 "$log" >&2
  loud "THE PROJECT DOES NOT CONFIGURE — building the harness alone, comparing the other allocators only"
  bench_dir=$BUILD_DIR/bench-only
  cmake -S bench -B "$bench_dir" "${cfg[@]}" -DLAB_BUILD_TESTS=OFF >&2
  cmake --build "$bench_dir" -j"$(nproc)" >&2
  excl+=(--exclude "labyrinth=the project did not configure, so liblabyrinth.so was not built")
fi
if [ -n "$alloc" ] && [[ ",$alloc," != *,labyrinth,* ]]; then excl=(); fi
echo "compare.sh: built in $((SECONDS - t0)) s" >&2

# --- run and report ---
out=results/latest
if [ -d "$out" ]; then rm -rf results/previous; mv "$out" results/previous; fi
mkdir -p "$out"
args=(--build "$bench_dir" --out "$out" --runs "$runs" --size "$size" --invocation "$invocation")
[ -n "$alloc" ] && args+=(--alloc "$alloc")
[ -n "$only" ] && args+=(--only "$only")
[ -n "$scale" ] && args+=(--scale "$scale")
((direct)) && args+=(--direct-check)
((micro)) || args+=(--no-micro)
"$PY" bench/run.py "${args[@]}" ${excl[@]+"${excl[@]}"}
# the record the README quotes for this version: report.md ends with what moved far since it
prev=$(grep -A1 'The run recorded for this version is kept in' README.md | grep -o 'bench/results/[^/)]*' | head -1)
"$PY" scripts/report.py "$out" ${prev:+"$prev"}
echo "compare.sh: done in $((SECONDS - t0)) s: $out/report.md, $out/raw.json, $out/time.png, $out/rss.png" >&2
sed -n '/^## Summary/,/^## Time/p' "$out/report.md" | sed '$d'
