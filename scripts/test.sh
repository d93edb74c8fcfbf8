#!/usr/bin/env bash
# test.sh — the one test command (README; .ci/run calls it): installs what is missing with apt,
# builds Release, and runs every ctest label (unit, install, preload, stress, real, bench-smoke).
# Extra arguments go to ctest, e.g. `scripts/test.sh -L unit`.
set -euo pipefail
case ${1:-} in -h|--help) sed -n '2,4s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
cd "$(dirname "$0")/.."

. scripts/apt_need.sh
apt_need cmake make gcc g++ clang libclang-rt-14-dev pkg-config libcmocka-dev libbenchmark-dev python3 perl git time \
  xz-utils sqlite3 valgrind
# tests/real/pyregr.sh runs CPython's own regression tests: Debian's python3 ships them apart
if ! python3 -c 'import test.test_dict' 2>/dev/null && ! /usr/bin/python3 -c 'import test.test_dict' 2>/dev/null; then
  apt_need "libpython$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-testsuite"
fi

# In CI (or with LAB_SANITIZE=1) the core's unit tests also run under ThreadSanitizer and
# UndefinedBehaviorSanitizer, and the fuzz target for 60 s, first (about two minutes); the main
# suite's summary comes last.
if [ "${CI:-}" = true ] || [ "${LAB_SANITIZE:-0}" = 1 ]; then
  scripts/sanitize.sh thread undefined
  # 60 s of libFuzzer (clang) on the allocator, starting from the committed corpus
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAB_BUILD_BENCH=OFF >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target fuzz_alloc >/dev/null
  ctest --test-dir build-fuzz -L fuzz --output-on-failure
fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
# "pending": tests of promises not kept yet (none at present); run them with -L pending.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" --timeout 600 -LE "pending|fuzz" "$@"
