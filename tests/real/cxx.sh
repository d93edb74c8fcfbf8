#!/bin/bash
# cxx.sh — g++ (cc1plus, as, ld under the preload) compiles a C++ program that leans on the
# standard library's containers and threads; the program then runs under the preload as well
# (operator new/delete, sized and over-aligned, reach malloc and free). Its output, and the
# object file, must be identical to the glibc runs'.
. "$(dirname "$0")/lib.sh"
lab_need "${CXX_REAL:-g++}"
cxx=${CXX_REAL:-g++}
for mode in ref lab; do
    mkdir -p "$lab_tmp/$mode"
    lab_run "$mode" compile "$cxx" -O2 -std=c++17 -pthread -c "$(dirname "$0")/workload.cpp" \
        -o "$lab_tmp/$mode/workload.o"
    lab_run "$mode" link "$cxx" -pthread "$lab_tmp/$mode/workload.o" -o "$lab_tmp/$mode/workload"
done
if ! cmp -s "$lab_tmp/ref/workload.o" "$lab_tmp/lab/workload.o"; then
    lab_fail "the objects compiled on glibc and under the preload differ"
fi
if [ "${LAB_EXPECT_LABYRINTH:-0}" = 1 ] && ! grep -q '^labyrinth stats:' "$lab_tmp/compile.lab.err"; then
    lab_fail "compile: no 'labyrinth stats:' line on stderr: was the preload active?"
fi
# The glibc-compiled program, run on glibc and under the preload.
lab_both run "$lab_tmp/ref/workload"
lab_finish
