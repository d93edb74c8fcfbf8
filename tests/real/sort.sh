#!/bin/bash
# sort.sh — GNU sort of a generated 50 MB file under the preload: once in memory (one large
# buffer), once with a 4 MiB buffer and two threads (temporary files and merging). The sorted
# output's sha256 must match glibc's.
. "$(dirname "$0")/lib.sh"
lab_need sort sha256sum
: "${LAB_GEN:?LAB_GEN must name the realgen program}"
"$LAB_GEN" lines 50000000 >"$lab_tmp/input.txt" || lab_fail "realgen lines failed"
export LC_ALL=C
# The digest is taken inside the run, so 50 MB of output is not kept twice; pipefail makes sort's
# own exit status count. (sha256sum runs under the preload too: one more program.)
digest='set -o pipefail; sort "$@" | sha256sum'
lab_both memory bash -c "$digest" sort -t, -k2,2n -k1,1 "$lab_tmp/input.txt"
lab_both external bash -c "$digest" sort -S 4M --parallel=2 -T "$lab_tmp" -r "$lab_tmp/input.txt"
lab_finish
