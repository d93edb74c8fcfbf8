#!/bin/bash
# bash.sh — a loop-heavy bash script (arrays, associative arrays, expansions, subshells) under the
# preload must print exactly what it prints on glibc.
. "$(dirname "$0")/lib.sh"
lab_need bash
lab_both bash bash "$(dirname "$0")/workload.sh"
lab_finish
