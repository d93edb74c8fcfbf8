#!/usr/bin/env bash
# sanitize.sh [thread|address|undefined|all ...] [--quick] — builds the core and its unit tests
# with the sanitizer (clang, LAB_SANITIZER) in build-san-<kind>/ and runs `ctest -L unit` there;
# exits non-zero on any report. ThreadSanitizer uses tests/unit/tsan.supp (each entry says why).
# --quick: reuse an existing build directory as configured, and LAB_TEST_QUICK=1 (fewer rounds).
set -euo pipefail
cd "$(dirname "$0")/.."
kinds=() quick=0
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    -h|--help) echo "usage: $0 [thread|address|undefined|all ...] [--quick]"; exit 0 ;;
    all) kinds+=(undefined address thread) ;;
    thread|address|undefined) kinds+=("$a") ;;
    *) echo "usage: $0 [thread|address|undefined|all ...] [--quick]" >&2; exit 2 ;;
  esac
done
((${#kinds[@]})) || kinds=(undefined address thread)
. scripts/apt_need.sh
# clang for all three: gcc 12's TSan does not know the futex-based lock either, and clang's
# runtimes (libclang-rt-14-dev) also carry libFuzzer for tests/fuzz
apt_need clang libclang-rt-14-dev cmake libcmocka-dev
status=0
for kind in "${kinds[@]}"; do
  dir=build-san-$kind
  echo "sanitize.sh: $kind in $dir" >&2
  if ((!quick)) || [ ! -f "$dir/CMakeCache.txt" ]; then
    CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAB_SANITIZER="$kind" \
      -DLAB_BUILD_BENCH=OFF >/dev/null
  fi
  # every target behind the unit label (the core linked directly), nothing preloaded
  cmake --build "$dir" -j"$(nproc)" --target test_pool test_alloc test_faults fuzz_replay labyrinth-options
  # halt_on_error / -fno-sanitize-recover: the first report fails the test, so ctest fails
  if ! LAB_TEST_QUICK=$quick \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 report_signal_unsafe=0 suppressions=$PWD/tests/unit/tsan.supp" \
    UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" ASAN_OPTIONS="detect_leaks=0 abort_on_error=0" \
    ctest --test-dir "$dir" -L unit --output-on-failure --timeout 300; then
    echo "sanitize.sh: $kind FAILED" >&2
    status=1
  fi
done
exit $status
