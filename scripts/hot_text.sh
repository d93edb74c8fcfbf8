#!/usr/bin/env bash
# hot_text.sh — the library's start-up code, laid out together. The kernel maps a shared
# object's code 64 KiB at a time around each page a process touches (fault-around), and a short
# program under the preload touches the functions that set the allocator up and serve its first
# few hundred calls, its read-only data, .init and .fini: spread over the whole object, that
# mapped all of it (about 190 KiB of every process's RSS). CMakeLists.txt links the library with
# -ffunction-sections and a linker script made from the toolchain's own (--ldscript) that puts
# .rodata and .fini before the code and, first in .text, the mmap entry points and the functions
# listed in preload/hot_text.ld; the rest of the code follows, mapped only by programs that run
# it. One .text section still (valgrind names only the functions inside the section so named).
#   scripts/hot_text.sh               regenerate preload/hot_text.ld: the functions of
#                                     build/liblabyrinth.so that callgrind sees run in a few short
#                                     programs (a one-malloc process, sort, sleep, git, perl,
#                                     python3, gcc --version, a shell that forks: those installed;
#                                     programs that run longer run more of the code, which they
#                                     map anyway)
#   scripts/hot_text.sh --ldscript OUT CC   write the linker script for -shared -z relro -z now
#                                     -z noseparate-code (exit 1, nothing written, when
#                                     CC's linker prints no default script this can rewrite)
#   scripts/hot_text.sh --check [SO]  check that SO (default build/liblabyrinth.so) was laid out so:
#                                     .rodata and .fini before .text, the mmap entry points at the
#                                     start of .text, and at least 90 % of the listed functions
#                                     before the first function that is not listed (all of them
#                                     with the compiler that made the list; clones such as
#                                     foo.part.0 differ between compilers)
set -euo pipefail
case ${1:-} in
  -h|--help) sed -n '2,25s/^# \{0,1\}//p' "$0"; exit 0 ;;
  ''|--ldscript|--check) ;;
  *) echo "hot_text.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
list=preload/hot_text.ld
names_of() { sed -n 's/^\*(\.text\.\([^ ]*\) .*/\1/p' "$list"; }
if [ "${1:-}" = --ldscript ]; then
  out=$2 cc=$3
  "$cc" -shared -nostdlib -Wl,--verbose -Wl,-z,relro -Wl,-z,now -Wl,-z,noseparate-code -o /dev/null 2>/dev/null |
    awk -v list="$PWD/$list" '
      /^=+$/ {inside = !inside; next}
      !inside {next}
      # the .fini statement (four lines) and the .rodata line move before .init
      /^  \.fini +:$/ {fini = $0 "\n"; infini = 1; next}
      infini {fini = fini $0 "\n"; if ($0 == "  }") infini = 0; next}
      /^  \.rodata +: \{ \*\(\.rodata / {rodata = $0 "\n"; next}
      {body[++n] = $0}
      END {
        if (!fini || !rodata) exit 1
        for (i = 1; i <= n; i++) {
          if (body[i] ~ /^  \.init +:$/) {printf "%s%s", rodata, fini; moved = 1}
          print body[i]
          if (body[i] ~ /^  \.text +:$/ && body[i + 1] == "  {") {
            print body[++i]
            print "    PROVIDE_HIDDEN (__start_lab_sys_entry = .);"
            print "    KEEP (*(lab_sys_entry))"
            print "    PROVIDE_HIDDEN (__stop_lab_sys_entry = .);"
            print "    INCLUDE " list
            text = 1
          }
        }
        if (!moved || !text) exit 1
      }' >"$out.tmp" && mv "$out.tmp" "$out" || { rm -f "$out.tmp"; exit 1; }
  exit 0
fi
if [ "${1:-}" = --check ]; then
  so=${2:-build/liblabyrinth.so}
  addr() { # a section's address, in decimal (0: none)
    local a
    a=$(readelf -SW "$so" | awk -v n="$1" '{for (i = 1; i < NF; i++) if ($i == n) {print $(i + 2); exit}}')
    printf '%d' "0x${a:-0}"
  }
  [ "$(readelf -SW "$so" | grep -c ' \.text ')" = 1 ] || { echo "FAIL hot_text: not one .text section"; exit 1; }
  text=$(addr .text) rodata=$(addr .rodata) fini=$(addr .fini)
  [ "$(nm "$so" | awk '$3 == "__start_lab_sys_entry" {print $1}')" = "$(printf '%016x' "$text")" ] ||
    { echo "FAIL hot_text: the mmap entry points do not open .text"; exit 1; }
  [ "$rodata" -lt "$text" ] && [ "$fini" -lt "$text" ] ||
    { echo "FAIL hot_text: .rodata or .fini after .text (the linker script was not used)"; exit 1; }
  # function symbols by address: past the mmap entry points (lab_sys_entry, which opens .text),
  # the listed ones must come before the first one not listed (crt and libc_nonshared code aside)
  nm --defined-only -n "$so" | awk -v names="$(names_of | tr '\n' ' ')" '
    BEGIN {total = split(names, list, " "); for (i = 1; i <= total; i++) want[list[i]] = 1}
    $3 == "__stop_lab_sys_entry" {past = 1; next}
    past && ($2 == "t" || $2 == "T") {
      if ($3 in want) {if (!gap) hot++; else late++}
      else if (hot && $3 !~ crt) gap = 1
    }
    END {printf "hot_text: %d of %d listed functions first in .text (%d after the first unlisted one)\n",
                hot, total, late
         exit !(total > 0 && hot * 10 >= total * 9)}' \
      crt='^(frame_dummy|register_tm_clones|deregister_tm_clones|__do_global_dtors_aux|pthread_atfork|atexit)$' ||
    { echo "FAIL hot_text: the listed functions are not first (a stale list? rerun scripts/hot_text.sh)"; exit 1; }
  exit 0
fi
command -v valgrind >/dev/null || { echo "hot_text.sh: valgrind missing (apt-get install valgrind)" >&2; exit 1; }
so=$PWD/build/liblabyrinth.so
[ -f "$so" ] || { echo "hot_text.sh: build the library first (build/liblabyrinth.so)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'b\na\nc\n' >"$tmp/lines"
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
# start_cost's child: one malloc and free (the least a process that allocates does)
printf '#include <stdlib.h>\nint main(void) { void *p = malloc(16); free(p); return p == 0; }\n' >"$tmp/one.c"
cc -O2 -fno-builtin -o "$tmp/one" "$tmp/one.c"
runs=("$tmp/one" "sort $tmp/lines" "sleep 0")
command -v git >/dev/null && runs+=("git --version")
command -v perl >/dev/null && runs+=("perl -e 1")
[ -n "$py" ] && runs+=("$py -c import\ json")
command -v gcc >/dev/null && runs+=("gcc --version")
# a shell that forks for a command substitution and a pipe, and takes SIGCHLD: the fork handlers
# and the signal wrapper, which every shell and build script under the preload runs
printf 'x=$(echo hi)\necho "$x" | tr a-z A-Z\n' >"$tmp/s.sh"
runs+=("sh $tmp/s.sh")
i=0
for r in "${runs[@]}"; do
  eval "set -- $r"
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cg.$i.%p" \
    env LD_PRELOAD="$so" "$@" >/dev/null 2>&1 || true
  i=$((i + 1))
done
for f in "$tmp"/cg.*; do
  callgrind_annotate --threshold=100 "$f" 2>/dev/null | grep 'liblabyrinth\.so\]' | sed 's/ \[.*//' |
    awk '{print $NF}' | awk -F: '{print $NF}'
done | grep -v '^0x' | sort -u >"$tmp/names"
[ -s "$tmp/names" ] || { echo "hot_text.sh: callgrind saw no function of the library" >&2; exit 1; }
{
  echo "/* hot_text.ld — generated by scripts/hot_text.sh (do not edit): the functions a short program"
  echo " * runs under the preload, which the linker script CMakeLists.txt makes (scripts/hot_text.sh"
  echo " * --ldscript: the toolchain's own, with this INCLUDEd first in .text) places before the rest"
  echo " * of the code. Listed by the sections -ffunction-sections gives them. */"
  echo "*crtbeginS.o(.text .text.*)"
  echo "*libc_nonshared.a:*(.text .text.*)"
  while read -r n; do
    echo "*(.text.$n .text.startup.$n)"
  done <"$tmp/names"
} >"$list"
echo "hot_text.sh: $(wc -l <"$tmp/names") functions listed in $list"
