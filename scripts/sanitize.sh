#!/usr/bin/env bash
# sanitize.sh [thread|address|undefined|all ...] — builds the core and its unit tests with the
# sanitizer (clang, LAB_SANITIZER) in build-san-<kind>/ and runs `ctest -L unit` there; exits
# non-zero on any report. ThreadSanitizer uses tests/unit/tsan.supp (each entry says why).
set -euo pipefail
cd "$(dirname "$0")/.."
kinds=("$@"); ((${#kinds[@]})) || kinds=(all)
[ "${kinds[0]}" = all ] && kinds=(undefined address thread)
. scripts/apt_need.sh
apt_need clang libclang-rt-14-dev cmake libcmocka-dev
for kind in "${kinds[@]}"; do
  dir=build-san-$kind
  echo "sanitize.sh: $kind in $dir" >&2
  CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAB_SANITIZER="$kind" \
    -DLAB_BUILD_BENCH=OFF >/dev/null
  # every target behind the unit label (the core linked directly), nothing preloaded
  cmake --build "$dir" -j"$(nproc)" --target test_pool fuzz_replay labyrinth-options
  TSAN_OPTIONS="halt_on_error=1 report_signal_unsafe=0 suppressions=$PWD/tests/unit/tsan.supp" \
  UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" ASAN_OPTIONS="detect_leaks=0" \
    ctest --test-dir "$dir" -L unit --output-on-failure
done
