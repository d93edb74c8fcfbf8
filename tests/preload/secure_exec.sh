#!/bin/bash
# secure_exec.sh — in a program that runs with more privilege than its caller (AT_SECURE: here
# set-group-ID), no LABYRINTH_* variable is read, as glibc ignores MALLOC_* there: otherwise
# LABYRINTH_STATS_FILE lets any user make such a program create or append to any file.
# The same copy without the set-group-ID bit must write the file (the check can fail).
# Argument: the test program (linked with liblabyrinth). Skips (77) when not root (a group other
# than one's own cannot be given) or when the file system ignores the bit (nosuid).
set -u
prog=${1:?usage: secure_exec.sh PROGRAM}
if [ "$(id -u)" != 0 ]; then
    echo "secure_exec: needs root to make a set-group-ID copy; skipped"
    exit 77
fi
dir=$(mktemp -d "$(dirname "$prog")/secure_exec.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
cp "$prog" "$dir/prog"
chgrp 65534 "$dir/prog" && chmod 2755 "$dir/prog" || exit 1
run() { # the copy with the summary asked for into $dir/out.PID; prints the program's line
    env -u LD_PRELOAD LABYRINTH_STATS=1 LABYRINTH_STATS_FILE="$dir/out.%p" LABYRINTH_VERBOSE=1 "$dir/prog" \
        2>"$dir/err"
}
line=$(run) || { echo "FAIL secure_exec: the set-group-ID copy exited non-zero: $(cat "$dir/err")"; exit 1; }
if [ "$line" != secure=1 ]; then
    echo "secure_exec: the kernel did not mark the run secure ($line; nosuid?); skipped"
    exit 77
fi
failed=0
if ls "$dir"/out.* >/dev/null 2>&1; then
    echo "FAIL secure_exec: a set-group-ID program wrote LABYRINTH_STATS_FILE"
    failed=1
fi
if [ -s "$dir/err" ]; then
    echo "FAIL secure_exec: a set-group-ID program printed: $(head -c 300 "$dir/err")"
    failed=1
fi
echo "secure_exec: set-group-ID: no summary file, nothing on stderr"
chmod 755 "$dir/prog"
line=$(run) || { echo "FAIL secure_exec: the plain copy exited non-zero"; exit 1; }
[ "$line" = secure=0 ] || { echo "FAIL secure_exec: the plain copy ran secure ($line)"; exit 1; }
if ! grep -q . "$dir"/out.* 2>/dev/null; then
    echo "FAIL secure_exec: the plain copy wrote no summary (the check above proves nothing)"
    failed=1
fi
grep -q labyrinth "$dir/err" || { echo "FAIL secure_exec: the plain copy printed no banner"; failed=1; }
echo "secure_exec: plain copy: summary file written, banner printed"
exit $failed
