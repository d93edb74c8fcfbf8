#!/usr/bin/env bash
# fixed_cost.sh — the memory a process pays for the preload before it allocates much: a program
# that makes one malloc(100), touches it and reads /proc/self/status, run N times (default 11)
# on glibc and under each library given (default build/liblabyrinth.so); medians of RssAnon
# (private memory), RssFile (file pages, shared with other processes) and VmHWM (peak RSS), KiB.
#   scripts/fixed_cost.sh [-n N] [LIB ...]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=11
case ${1:-} in -h|--help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
if [ "${1:-}" = -n ]; then runs=$2; shift 2; fi
for a in "$@"; do
  case $a in -*) echo "fixed_cost.sh: unknown option $a (--help)" >&2; exit 2 ;; esac
done
libs=("$@")
[ ${#libs[@]} -eq 0 ] && libs=("$PWD/build/liblabyrinth.so")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/one.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
    char *volatile p = malloc(100);
    p[0] = 1;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8) || !strncmp(line, "RssFile:", 8) || !strncmp(line, "VmHWM:", 6))
            fputs(line, stdout);
    return 0;
}
C
cc -O2 -o "$tmp/one" "$tmp/one.c"
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
printf '%-40s %10s %10s %10s\n' allocator RssAnon RssFile VmHWM
for lib in glibc "${libs[@]}"; do
  pre=$lib; [ "$lib" = glibc ] && pre=
  for i in $(seq "$runs"); do env LD_PRELOAD="$pre" "$tmp/one"; done >"$tmp/out"
  row=()
  for k in RssAnon RssFile VmHWM; do row+=("$(awk -v k="$k:" '$1 == k {print $2}' "$tmp/out" | median)"); done
  printf '%-40s %10s %10s %10s\n' "$(basename "$lib")" "${row[@]}"
done
