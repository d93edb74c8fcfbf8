#!/bin/bash
# pyregr.sh — a slice of CPython's own regression suite under the preload: dicts, sets, lists,
# strings, bytes, re, pickle, json, decimal, big integers, gc, weakref, ctypes, tracemalloc, mmap,
# memoryview, the compiler, calls, signals, threads and fork, run by regrtest in two worker
# processes. Every file listed must be in the installed suite (Debian's 3.11 package lacks
# test_sqlite3 and test_capi, which this list named and regrtest then skipped without a word:
# found by review).
# Every test must pass. A test that fails under the preload is run again on glibc, and only one
# that passes there counts against the allocator (the machine may lack something a test needs).
# Each process writes its summary to a LABYRINTH_STATS_FILE (regrtest compares stderr, so the
# summary must not go there); with LAB_EXPECT_LABYRINTH=1 the main process and both workers
# must have written one. The interpreter: $PYTHON, else python3, else /usr/bin/python3, the first
# with the suite installed (Debian: libpython3.11-testsuite, which scripts/test.sh installs).
# LAB_PYREGR_ALL=1: the whole suite instead of the slice (every file regrtest finds; those that
# need a network or a display skip themselves; but not three that wait for ever on glibc too
# on these VMs: test_socket, whose VSOCK case waits in accept for a peer the VM's vsock device
# never sends, and pyenv's 3.11.7 test__xxsubinterpreters and test_interpreters, which wait in
# Py_EndInterpreter for a thread that never ends), about 10 minutes on 2 idle cores (the files
# that fail run again on glibc), so not part of scripts/test.sh:
#   LAB_PRELOAD=$PWD/build/liblabyrinth.so LAB_EXPECT_LABYRINTH=1 LAB_PYREGR_ALL=1 \
#       bash tests/real/pyregr.sh
. "$(dirname "$0")/lib.sh"

py=
for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import test.libregrtest, test.test_dict' 2>/dev/null; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "$lab_name: no python3 with its regression suite (libpython3-testsuite); skipped"
    exit 77
fi

tests=(test_dict test_list test_set test_tuple test_bytes test_unicode test_string test_re test_sort
    test_collections test_functools test_itertools test_deque test_heapq test_bisect test_array
    test_struct test_pickle test_json test_csv test_long test_float test_decimal test_memoryview
    test_mmap test_gc test_weakref test_exceptions test_ast test_compile test_grammar test_zlib
    test_hashlib test_ctypes test_thread test_threading_local test_fork1 test_signal test_call
    test_sys test_tracemalloc)
missing=$("$py" -c 'import importlib.util, sys
print(" ".join(t for t in sys.argv[1:] if importlib.util.find_spec("test." + t) is None))' "${tests[@]}")
if [ -n "$missing" ]; then
    lab_fail "not in this python's regression suite: $missing"
fi
mkdir "$lab_tmp/stats"
what="${#tests[@]} test files"
if [ "${LAB_PYREGR_ALL:-0}" = 1 ]; then
    tests=(--timeout 900 -x test_socket test__xxsubinterpreters test_interpreters) # -x: left out
    what="the whole suite"
fi
echo "$lab_name: $py ($("$py" -c 'import sys; print(sys.version.split()[0])')), $what"
rc=0
env LD_PRELOAD="${LAB_PRELOAD:-}" LABYRINTH_STATS=1 LABYRINTH_STATS_FILE="$lab_tmp/stats/s.%p" \
    "$py" -m test -j2 "${tests[@]}" >"$lab_tmp/lab.out" 2>&1 || rc=$?
tail -n 6 "$lab_tmp/lab.out"
if [ "$rc" -ne 0 ]; then
    # the names regrtest lists under "N test(s) failed:" (and "N test(s) crashed", timed out...)
    failed=$(awk '/^[0-9]+ tests? (failed|crashed)/ {grab = 1; next}
                  grab && /^    / {print; next}
                  {grab = 0}' "$lab_tmp/lab.out" | tr -s ' ' '\n' | grep '^test_' | sort -u)
    if [ -z "$failed" ]; then
        lab_fail "regrtest exited $rc under the preload; its output ends:"
        tail -n 30 "$lab_tmp/lab.out" >&2
    fi
    for t in $failed; do
        if env -u LD_PRELOAD "$py" -m test --timeout 900 "$t" >"$lab_tmp/ref.$t.out" 2>&1; then
            lab_fail "$t fails under the preload and passes on glibc:"
            grep -E '^(FAIL|ERROR):|Error|Fatal|labyrinth' "$lab_tmp/lab.out" | head -n 20 >&2
        else
            echo "$lab_name: $t fails on glibc too (this machine, not the allocator); ignored"
        fi
    done
fi
if [ "${LAB_EXPECT_LABYRINTH:-0}" = 1 ]; then
    n=$(grep -l '^labyrinth stats: mallocs [1-9]' "$lab_tmp/stats"/* 2>/dev/null | wc -l)
    if [ "$n" -ge 3 ]; then
        echo "$lab_name: preload active ($n processes wrote a summary)"
    else
        lab_fail "only $n processes wrote a labyrinth summary, wanted 3 (regrtest and two workers)"
    fi
fi
lab_finish
