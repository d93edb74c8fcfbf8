#!/bin/bash
# memory_error.sh — real exhaustion (issue 5): python3 under `ulimit -v` (RLIMIT_AS) allocating
# until MemoryError must raise MemoryError, not crash, on glibc and under the preload alike.
# Caught (small objects through malloc, mid-sized bytes, 3 MiB bytearrays): exit 0 and the same
# line on stdout from both runs. Uncaught: exit status 1 (Python's own handler, not a signal) and
# a traceback that ends in "MemoryError". The limit is LAB_ULIMIT_KIB (default 200000 KiB).
. "$(dirname "$0")/lib.sh"
lab_need "${PYTHON:-python3}"
# the interpreter itself, not a wrapper in PATH (pyenv's shim is a shell script that would run
# under the limit and the preload too)
py=$(env -u LD_PRELOAD "${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
script="$(dirname "$0")/memory_error.py"
limit=${LAB_ULIMIT_KIB:-200000}
export PYTHONDONTWRITEBYTECODE=1

for kind in small bytes big; do
    pm=
    [ "$kind" = small ] && pm=malloc
    lab_both "$kind" bash -c 'ulimit -v "$1" && PYTHONMALLOC=$2 exec "$3" "$4" "$5"' sh "$limit" "$pm" "$py" "$script" "$kind"
done

# the allocator itself ran out (its pool counted a failed request), not only Python's own arenas
if [ "${LAB_EXPECT_LABYRINTH:-0}" = 1 ]; then
    for kind in small bytes big; do
        if grep -q '^labyrinth stats: pool.* failures [1-9]' "$lab_tmp/$kind.lab.err"; then
            echo "$lab_name: $kind: the allocator's pool reported failed requests"
        else
            lab_fail "$kind: the pool counted no failed request: did the limit reach the allocator?"
        fi
    done
fi

for mode in ref lab; do
    rc=0
    if [ "$mode" = lab ]; then
        env LD_PRELOAD="${LAB_PRELOAD:-}" LABYRINTH_STATS=1 bash -c 'ulimit -v "$1" && exec "$2" "$3" uncaught' sh \
            "$limit" "$py" "$script" >"$lab_tmp/uncaught.$mode.out" 2>"$lab_tmp/uncaught.$mode.err" || rc=$?
    else
        env -u LD_PRELOAD bash -c 'ulimit -v "$1" && exec "$2" "$3" uncaught' sh \
            "$limit" "$py" "$script" >"$lab_tmp/uncaught.$mode.out" 2>"$lab_tmp/uncaught.$mode.err" || rc=$?
    fi
    if [ "$rc" -ne 1 ]; then
        lab_fail "uncaught ($mode): exit status $rc, wanted 1 (Python's handler); stderr ends:"
        tail -n 5 "$lab_tmp/uncaught.$mode.err" >&2
    elif ! grep -v '^labyrinth' "$lab_tmp/uncaught.$mode.err" | tail -n 1 | grep -qx 'MemoryError'; then
        lab_fail "uncaught ($mode): the traceback does not end in MemoryError:"
        tail -n 5 "$lab_tmp/uncaught.$mode.err" >&2
    else
        echo "$lab_name: uncaught ($mode): exit 1, traceback ends in MemoryError"
    fi
done
if [ "${LAB_EXPECT_LABYRINTH:-0}" = 1 ] && ! grep -q '^labyrinth stats:' "$lab_tmp/uncaught.lab.err"; then
    lab_fail "uncaught: no 'labyrinth stats:' line on stderr: was the preload active?"
fi
lab_finish
