#!/bin/bash
# rust.sh — rustc (its LLVM back end and its own arenas, many threads) compiles workload.rs under
# the preload and on glibc, and each build runs under the allocator it was built under: the
# compiled program (Rust's std on the system allocator: realloc growth, HashMap, BTreeMap,
# posix_memalign for over-aligned types, frees from another thread) must print the same lines
# both ways. Skipped without rustc.
. "$(dirname "$0")/lib.sh"
lab_need rustc
src="$(dirname "$0")/workload.rs"
for mode in ref lab; do
    lab_run "$mode" rustc rustc -O --edition 2021 -o "$lab_tmp/workload.$mode" "$src"
done
lab_expect_stats rustc
for mode in ref lab; do
    if [ -x "$lab_tmp/workload.$mode" ]; then
        lab_run "$mode" run "$lab_tmp/workload.$mode"
    else
        lab_fail "rustc ($mode) built no program"
    fi
done
lab_compare run
lab_finish
