#!/bin/sh
# atrace_smoke.sh — ctest's check of the trace tools: record `wl strbuild` (realloc growth across
# the small, page-sized and huge paths) with libatrace.so, then replay the trace under each
# allocator given; every replay must read every line of the trace and end with as many blocks
# live as the trace itself leaves (counted here by address, as the replay keeps them).
#   atrace_smoke.sh WL LIBATRACE AREPLAY [LIB ...]   (LIB "glibc": no preload)
set -eu
wl=$1 atrace=$2 areplay=$3
shift 3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ATRACE_FILE="$dir/t" LD_PRELOAD="$atrace" "$wl" strbuild 1 200000 >/dev/null
set -- "$@"
trace=$(ls "$dir"/t.* | head -n 1)
lines=$(grep -c '^[mcraf] ' "$trace")
[ "$lines" -gt 1000 ] || { echo "atrace_smoke: only $lines events recorded" >&2; exit 1; }
live=$(awk '$1 == "f" { if ($2 in l) { delete l[$2]; n-- } }
            $1 == "r" && $3 != "0" { if ($3 in l) { delete l[$3]; n-- } }
            ($1 == "m" || $1 == "c" || $1 == "a" || $1 == "r") && $2 != "0" { if (!($2 in l)) n++; l[$2] = 1 }
            END { print n + 0 }' "$trace")
# a hand-made trace: memalign's alignments that are not powers of two (rounded up, as glibc
# does), a realloc of a block the recording never saw (replayed as a fresh one), a failed call
printf 'a 1000 3 100\na 2000 48 5000\nr 3000 4000 64\nm 0 100\nf 1000\nf 2000\nf 3000\n' >"$dir/hand"
for lib in "$@"; do
    pre=$lib
    [ "$lib" = glibc ] && pre=
    out=$(LD_PRELOAD="$pre" "$areplay" "$trace" all)
    echo "$lib: $out"
    case "$out" in
    *"events=$lines "*"live_end=$live") ;;
    *) echo "atrace_smoke: the replay under $lib did not replay all $lines events to $live live blocks" >&2; exit 1 ;;
    esac
    out=$(LD_PRELOAD="$pre" "$areplay" "$dir/hand" head)
    case "$out" in
    *"events=7 "*"live_end=0") ;;
    *) echo "atrace_smoke: the hand-made trace did not replay under $lib: $out" >&2; exit 1 ;;
    esac
done
