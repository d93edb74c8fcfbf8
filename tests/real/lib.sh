# lib.sh — shared by the real-program tests (sourced, not run). Each test runs a workload twice,
# once on plain glibc (the reference) and once with LAB_PRELOAD in LD_PRELOAD and LABYRINTH_STATS=1,
# then requires exit 0 from both, identical stdout, and (with LAB_EXPECT_LABYRINTH=1) the
# allocator's "labyrinth stats:" line on stderr as proof the preload was active. stderr may differ.
# Environment: LAB_PRELOAD (the library; empty runs both on glibc), LAB_EXPECT_LABYRINTH,
# LAB_EXPECT_MMAP / LAB_EXPECT_MMAP_POOLED (see lab_expect_stats), LAB_GEN
# (the realgen program), LAB_KEEP_TMP=1 (keep the work files of a failed run for a look).

set -u
lab_name=$(basename "$0" .sh)
lab_failed=0

lab_tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab-real-$lab_name.XXXXXX") || exit 1
trap 'rm -rf "$lab_tmp"' EXIT

lab_fail() {
    echo "FAIL $lab_name: $*" >&2
    lab_failed=1
}

# Skip (ctest SKIP_RETURN_CODE 77) when a program the workload needs is not installed.
lab_need() {
    for prog in "$@"; do
        if ! command -v "$prog" >/dev/null 2>&1; then
            echo "$lab_name: $prog not installed; skipped"
            exit 77
        fi
    done
}

# lab_run MODE TAG COMMAND...: run COMMAND on glibc (MODE ref) or under the preload (MODE lab),
# stdout to $lab_tmp/TAG.MODE.out, stderr to .err; a non-zero exit is a failure.
lab_run() {
    local mode=$1 tag=$2 rc=0
    shift 2
    if [ "$mode" = lab ]; then
        env LD_PRELOAD="${LAB_PRELOAD:-}" LABYRINTH_STATS=1 "$@" \
            >"$lab_tmp/$tag.$mode.out" 2>"$lab_tmp/$tag.$mode.err" || rc=$?
    else
        env -u LD_PRELOAD "$@" >"$lab_tmp/$tag.$mode.out" 2>"$lab_tmp/$tag.$mode.err" || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then
        lab_fail "$tag ($mode) exited $rc; its stderr ends:"
        tail -n 20 "$lab_tmp/$tag.$mode.err" >&2
    fi
    return 0
}

# lab_compare TAG: identical stdout from both runs, and the stats line from the preloaded one.
lab_compare() {
    local tag=$1
    if ! cmp -s "$lab_tmp/$tag.ref.out" "$lab_tmp/$tag.lab.out"; then
        lab_fail "$tag: stdout differs from the glibc run:"
        diff "$lab_tmp/$tag.ref.out" "$lab_tmp/$tag.lab.out" | head -n 20 >&2
    elif [ ! -s "$lab_tmp/$tag.ref.out" ]; then
        lab_fail "$tag: the workload printed nothing, so nothing was compared"
    else
        echo "$lab_name: $tag: stdout identical ($(wc -c <"$lab_tmp/$tag.ref.out") bytes)"
    fi
    lab_expect_stats "$tag"
}

# lab_expect_stats TAG: with LAB_EXPECT_LABYRINTH=1, the preloaded run's stats line on stderr.
# With LAB_EXPECT_MMAP=1, its pooled-mmap line too (LABYRINTH_MMAP in force), and with
# LAB_EXPECT_MMAP_POOLED=1 at least one mapping served by the pool.
lab_expect_stats() {
    local tag=$1 err="$lab_tmp/$1.lab.err" pooled
    if [ "${LAB_EXPECT_LABYRINTH:-0}" = 1 ]; then
        if grep -q '^labyrinth stats:' "$err"; then
            echo "$lab_name: $tag: preload active ($(grep -c '^labyrinth stats: mallocs' "$err") stats summaries)"
        else
            lab_fail "$tag: no 'labyrinth stats:' line on stderr: was the preload active?"
        fi
    fi
    if [ "${LAB_EXPECT_MMAP:-0}" = 1 ]; then
        if ! grep -q '^labyrinth stats: mmap' "$err"; then
            lab_fail "$tag: no 'labyrinth stats: mmap' line on stderr: was LABYRINTH_MMAP=1 in force?"
            return 0
        fi
        pooled=$(sed -n 's/^labyrinth stats: mmap pooled_maps \([0-9]*\),.*/\1/p' "$err" | awk '{s += $1} END {print s + 0}')
        echo "$lab_name: $tag: LABYRINTH_MMAP in force, $pooled mappings pooled"
        if [ "${LAB_EXPECT_MMAP_POOLED:-0}" = 1 ] && [ "$pooled" -eq 0 ]; then
            lab_fail "$tag: LABYRINTH_MMAP=1 but no mapping was pooled"
        fi
    fi
}

# lab_both TAG COMMAND...: run on glibc and under the preload, then compare.
lab_both() {
    local tag=$1
    shift
    lab_run ref "$tag" "$@"
    lab_run lab "$tag" "$@"
    lab_compare "$tag"
}

lab_finish() {
    if [ "$lab_failed" -ne 0 ]; then
        if [ "${LAB_KEEP_TMP:-0}" = 1 ]; then
            trap - EXIT
            echo "$lab_name: FAILED; work files kept in $lab_tmp" >&2
        else
            echo "$lab_name: FAILED (LAB_KEEP_TMP=1 keeps the work files)" >&2
        fi
        exit 1
    fi
    echo "$lab_name: all checks passed"
    exit 0
}
