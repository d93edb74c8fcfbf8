#!/bin/bash
# git.sh — git (init, a few hundred commits with merges, diff, blame, gc, repack, fsck; bash and
# every git process under the preload) must print exactly what it prints on glibc.
. "$(dirname "$0")/lib.sh"
lab_need git sha256sum
mkdir -p "$lab_tmp/ref.work" "$lab_tmp/lab.work"
lab_run ref git bash "$(dirname "$0")/git_workload.sh" "$lab_tmp/ref.work"
lab_run lab git bash "$(dirname "$0")/git_workload.sh" "$lab_tmp/lab.work"
lab_compare git
lab_finish
