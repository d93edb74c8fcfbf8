#!/usr/bin/env bash
# compare.sh [--quick] [--alloc a,b,...] [--only w,...] [--runs N] — the main command: installs
# what is missing (apt), builds Release, runs every workload under glibc, Labyrinth, jemalloc,
# mimalloc and tcmalloc (interleaved run by run, N runs each, medians), and writes
# results/latest/{raw.json,report.md,time.png,rss.png}. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5; quick=""; alloc=""; only=""
while (($#)); do
  case "$1" in
    --quick) quick=--quick; runs=3 ;;
    --runs) runs=$2; shift ;;
    --alloc) alloc=$2; shift ;;
    --only) only=$2; shift ;;
    *) echo "usage: $0 [--quick] [--alloc a,b] [--only w,...] [--runs N]" >&2; exit 2 ;;
  esac
  shift
done

. scripts/apt_need.sh
apt_need cmake make gcc g++ python3 python3-matplotlib time libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libbenchmark-dev libcmocka-dev

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLAB_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" >&2

out=results/latest
# Debian's python3 (the one python3-matplotlib belongs to), not a pyenv shim earlier in PATH
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
rm -rf "$out"; mkdir -p "$out"
"$PY" scripts/bench_run.py --build "$BUILD_DIR" --out "$out" --runs "$runs" $quick \
  ${alloc:+--alloc "$alloc"} ${only:+--only "$only"}
"$PY" scripts/report.py "$out"
echo "compare.sh: wrote $out/report.md, $out/raw.json, $out/time.png, $out/rss.png" >&2
