#!/bin/bash
# options.sh — the LABYRINTH_* environment contract, seen from outside: the VERBOSE banner, the
# STATS summary (text and json) with real counts, one warning line and the default kept for an
# unknown variable or a bad value, and STATS_FILE (one file per process with %p, nothing on
# stderr; a file that cannot be opened: a warning and the summary on stderr), THP, idle_returns,
# KEPT_KIB and RESERVE_GB.
# Environment: LAB_PRELOAD (the library). Skips (77) unless LAB_EXPECT_LABYRINTH=1: these are
# Labyrinth's own options.
set -u
if [ "${LAB_EXPECT_LABYRINTH:-0}" != 1 ]; then
    echo "options: Labyrinth's own environment variables; skipped"
    exit 77
fi
lib=${LAB_PRELOAD:?LAB_PRELOAD must name the library}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab-options.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() {
    echo "FAIL options: $*" >&2
    failed=1
}
ok() { echo "options: $*"; }

# run VAR=VALUE... -- COMMAND...: the command under the preload with exactly these LABYRINTH_*
# variables; stdout to $tmp/out, stderr to $tmp/err; a non-zero exit fails
run() {
    local vars=()
    while [ "$1" != -- ]; do
        vars+=("$1")
        shift
    done
    shift
    local rc=0
    env $(env | sed -n 's/^\(LABYRINTH_[A-Z_]*\)=.*/-u \1/p') LD_PRELOAD="$lib" ${vars[@]+"${vars[@]}"} "$@" \
        >"$tmp/out" 2>"$tmp/err" || rc=$?
    [ "$rc" -eq 0 ] || fail "$* exited $rc with ${vars[*]}: $(head -c 300 "$tmp/err")"
}

# a program that allocates and keeps its stderr open to the end (GNU sort, like all coreutils,
# closes it before exit, so its summary can only go to a STATS_FILE): bash building an array
seq 1 5000 | sed 's/$/ line/' >"$tmp/in"
# (builtins only: one process, so one banner and one summary)
prog=(bash -c 'a=(); while read -r l; do a+=("$l"); done <"$1"; echo "${#a[@]} ${a[4999]}"' sh "$tmp/in")

run -- "${prog[@]}"
[ "$(cat "$tmp/out")" = "5000 5000 line" ] && [ ! -s "$tmp/err" ] && ok "no option: silent" || fail "no option: stderr not empty: $(head -c 300 "$tmp/err")"

run LABYRINTH_VERBOSE=1 -- "${prog[@]}"
if [ "$(grep -c '^labyrinth [0-9][^ ]* (.* build), options: VERBOSE=1 ' "$tmp/err")" = 1 ]; then
    ok "VERBOSE=1: one banner line"
else
    fail "VERBOSE=1: no single banner line: $(head -c 300 "$tmp/err")"
fi

run LABYRINTH_STATS=1 -- "${prog[@]}"
mallocs=$(sed -n 's/^labyrinth stats: mallocs \([0-9]*\),.*/\1/p' "$tmp/err")
# bash has one thread: one heap (signal heaps, made for its handlers, are counted apart)
if [ -n "$mallocs" ] && [ "$mallocs" -gt 5000 ] && grep -q ', heaps 1, signal_heaps [0-9]*,' "$tmp/err" &&
    grep -q '^labyrinth stats: pool current_kib [0-9]' "$tmp/err"; then
    ok "STATS=1: summary with $mallocs mallocs, one heap"
else
    fail "STATS=1: no summary counting the 5000 lines' mallocs: $(head -c 300 "$tmp/err")"
fi

# a program that rewrites its argv, as nginx's processes and perl's $0 do: the summary still names
# it as it started (it named the new text: found by review)
if command -v perl >/dev/null; then
    run LABYRINTH_STATS=1 -- perl -e '$0 = "worker process is shutting down"; my @a = (1) x 1000;'
    if grep -q ', program perl$' "$tmp/err"; then
        ok "STATS=1: a program that rewrote its argv keeps its name"
    else
        fail "STATS=1: the program's name after it rewrote argv: $(grep -o 'program .*' "$tmp/err")"
    fi
fi

run LABYRINTH_STATS=json -- "${prog[@]}"
if python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).read())["labyrinth_stats"]
sys.exit(0 if d["mallocs"] > 5000 and d["frees"] > 0 and d["mapped_kib"] > 0 else 1)' "$tmp/err" 2>/dev/null; then
    ok "STATS=json: one JSON object with the counts"
else
    fail "STATS=json: stderr is not the JSON summary: $(head -c 300 "$tmp/err")"
fi

run LABYRINTH_NO_SUCH_OPTION=1 LABYRINTH_VERBOSE=1 -- "${prog[@]}"
if [ "$(grep -c '^labyrinth: unknown option ignored: LABYRINTH_NO_SUCH_OPTION=1$' "$tmp/err")" = 1 ] &&
    [ "$(cat "$tmp/out")" = "5000 5000 line" ]; then
    ok "unknown variable: one warning, the program runs"
else
    fail "unknown variable: no single warning line: $(head -c 300 "$tmp/err")"
fi

for bad in abc 12x -5 99999999999999999999999; do
    run LABYRINTH_PURGE_DELAY_MS=$bad LABYRINTH_VERBOSE=1 -- "${prog[@]}"
    if [ "$(grep -c "^labyrinth: bad value, default kept: LABYRINTH_PURGE_DELAY_MS=$bad\$" "$tmp/err")" = 1 ] &&
        grep -q ' PURGE_DELAY_MS=1000 ' "$tmp/err"; then
        ok "PURGE_DELAY_MS=$bad: one warning, default 1000 kept"
    else
        fail "PURGE_DELAY_MS=$bad: no warning or default not kept: $(head -c 400 "$tmp/err")"
    fi
done
run LABYRINTH_STATS=2 LABYRINTH_VERBOSE=1 -- "${prog[@]}"
grep -q '^labyrinth: bad value, default kept: LABYRINTH_STATS=2$' "$tmp/err" && ! grep -q '^labyrinth stats:' "$tmp/err" &&
    ok "STATS=2: refused, no summary" || fail "STATS=2 was not refused: $(head -c 300 "$tmp/err")"
# a 0/1 option with another number: one warning, the default in the banner (values above 1 were
# taken: found by mutation testing)
for kv in SECURE=2:SECURE=0 NURSERY=5:NURSERY=1 TRIM_ON_EXIT=3:TRIM_ON_EXIT=0; do
    set_to=${kv%%:*} banner=${kv#*:}
    run "LABYRINTH_$set_to" LABYRINTH_VERBOSE=1 -- "${prog[@]}"
    if [ "$(grep -c "^labyrinth: bad value, default kept: LABYRINTH_$set_to\$" "$tmp/err")" = 1 ] &&
        grep -q " $banner " "$tmp/err"; then
        ok "$set_to: one warning, $banner kept"
    else
        fail "$set_to: no warning or default not kept: $(head -c 400 "$tmp/err")"
    fi
done

# values past an option's bound: no warning, the bound in force and in the banner (it showed the
# value as given: RESERVE_GB=5000 while 1024 was used; found by review)
for kv in RESERVE_GB=5000:RESERVE_GB=1024 MMAP_MAX=999999999999:MMAP_MAX=268435456 \
    MMAP_MAX=5000:MMAP_MAX=4096 KEPT_KIB=9999999999:KEPT_KIB=1073741824; do
    set_to=${kv%%:*} banner=${kv#*:}
    run "LABYRINTH_$set_to" LABYRINTH_VERBOSE=1 -- "${prog[@]}"
    if ! grep -q '^labyrinth: bad value' "$tmp/err" && grep -q " $banner " "$tmp/err"; then
        ok "$set_to: $banner in force, shown so"
    else
        fail "$set_to: banner does not show $banner: $(head -c 400 "$tmp/err")"
    fi
done

# NURSERY: a short bash's first blocks of each size come from one run, so it makes far fewer spans
# than with NURSERY=0 (an option read and never applied passed every test: mutation testing)
spans_with() {
    run LABYRINTH_STATS=json "LABYRINTH_NURSERY=$1" -- bash -c 'echo hi'
    grep -o '"spans": *[0-9]*' "$tmp/err" | head -n 1 | tr -dc 0-9
}
s1=$(spans_with 1) s0=$(spans_with 0)
if [ -n "$s1" ] && [ -n "$s0" ] && [ "$s0" -gt "$s1" ]; then
    ok "NURSERY: bash -c 'echo hi' made $s1 spans with it, $s0 without"
else
    fail "NURSERY=0 changed nothing: spans '$s1' with the nursery, '$s0' without"
fi

# STATS_FILE: bash runs two sorts (which close stdout and stderr before they exit): three
# processes, three files, a quiet stderr
mkdir "$tmp/stats"
run LABYRINTH_STATS=1 "LABYRINTH_STATS_FILE=$tmp/stats/s.%p" -- \
    bash -c 'sort -r "$1" >/dev/null; sort "$1" | tail -n 1; true' sh "$tmp/in"
files=$(ls "$tmp/stats" | wc -l)
with=$(grep -l '^labyrinth stats: mallocs [1-9]' "$tmp/stats"/* 2>/dev/null | wc -l)
if [ "$files" -ge 4 ] && [ "$with" = "$files" ] && [ ! -s "$tmp/err" ] && [ "$(cat "$tmp/out")" = "999 line" ]; then
    ok "STATS_FILE with %p: $files processes, a summary file each, stderr empty"
else
    fail "STATS_FILE: $files files, $with with a summary, stderr: $(head -c 300 "$tmp/err")"
fi
# appended, not overwritten: a second run into the same fixed name adds a second summary
# STATS_FILE without STATS: one warning line that says no summary is written, and none written
# (found by review: the summary was missing without a word)
run "LABYRINTH_STATS_FILE=$tmp/nostats" -- "${prog[@]}"
if [ "$(grep -c "^labyrinth: LABYRINTH_STATS_FILE is set but LABYRINTH_STATS is not: no summary is written to $tmp/nostats\$" "$tmp/err")" = 1 ] &&
    [ ! -e "$tmp/nostats" ]; then
    ok "STATS_FILE without STATS: one warning"
else
    fail "STATS_FILE without STATS: $(head -c 300 "$tmp/err")"
fi
run LABYRINTH_STATS=1 "LABYRINTH_STATS_FILE=$tmp/fixed" -- "${prog[@]}"
run LABYRINTH_STATS=1 "LABYRINTH_STATS_FILE=$tmp/fixed" -- "${prog[@]}"
[ "$(grep -c '^labyrinth stats: mallocs' "$tmp/fixed")" = 2 ] && ok "STATS_FILE appends" ||
    fail "STATS_FILE: $(grep -c '^labyrinth stats: mallocs' "$tmp/fixed") summaries after two runs, wanted 2"
# peak_kib counts huge blocks: a 100 MiB buffer made and freed (it read 2 248 KiB: found by review)
if [ -x /usr/bin/python3 ]; then
    run LABYRINTH_STATS=1 -- /usr/bin/python3 -c 'b = bytearray(100 << 20); del b'
    peak=$(sed -n 's/.* peak_kib \([0-9]*\),.*/\1/p' "$tmp/err")
    [ -n "$peak" ] && [ "$peak" -ge 102400 ] && ok "STATS=1: peak_kib $peak after a 100 MiB block" ||
        fail "STATS=1: peak_kib '$peak' after a 100 MiB block"
fi

# TRIM_ON_EXIT purges the free pages at exit: 64 MiB of page-sized blocks freed, with the purge
# delay at a minute and no purge thread, so that nothing else purges them (no test could tell the
# option from its absence: found by review)
if [ -x /usr/bin/python3 ]; then
    freed='b = [bytearray(256 << 10) for i in range(256)]
for x in b: x[0] = 1
del b'
    for t in 1 0; do
        run LABYRINTH_STATS=1 LABYRINTH_TRIM_ON_EXIT=$t LABYRINTH_PURGE_DELAY_MS=60000 LABYRINTH_BACKGROUND_PURGE=0 -- \
            /usr/bin/python3 -c "$freed"
        eval "purged$t=\$(sed -n 's/.* purged_kib \([0-9]*\),.*/\1/p' \"\$tmp/err\")"
    done
    [ -n "$purged1" ] && [ -n "$purged0" ] && [ "$purged1" -ge 60000 ] && [ "$purged0" -lt 60000 ] &&
        ok "TRIM_ON_EXIT=1: purged_kib $purged1 at exit, $purged0 without" ||
        fail "TRIM_ON_EXIT: purged_kib '$purged1' with it, '$purged0' without (64 MiB freed)"
fi

# JSON Lines from many processes into one fixed file, all exiting at once: each object whole on
# its line (found by review: objects of 4-6 KiB went out in 2 KiB writes, which interleaved); and
# a program name cut inside a UTF-8 character still gives valid JSON (it left a lone lead byte)
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
if [ -n "$py" ]; then
    long="$(printf 'p%.0s' $(seq 1 62))$(printf '\xc3\xa9x')"
    pids=()
    for i in $(seq 1 24); do
        env $(env | sed -n 's/^\(LABYRINTH_[A-Z_]*\)=.*/-u \1/p') LD_PRELOAD="$lib" LABYRINTH_STATS=json \
            "LABYRINTH_STATS_FILE=$tmp/lines" bash -c 'exec -a "$1" bash -c '"'"'
                a=(); for ((i = 0; i < 3000; i++)); do a+=("$i$i$i$i$i$i$i$i$i$i$i$i"); done
                while [ ! -e "$0" ]; do :; done'"'"' "$0"' "$tmp/go" "$long" &
        pids+=($!)
    done
    sleep 1
    touch "$tmp/go"
    wait "${pids[@]}"
    if "$py" - "$tmp/lines" <<'PY'
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")[:-1]
names = {json.loads(l.decode("utf-8"))["labyrinth_stats"]["program"] for l in lines}
sys.exit(0 if len(lines) == 24 and names == {"p" * 62} else 1)
PY
    then
        ok "STATS=json: 24 processes into one file, 24 whole JSON lines, a long name cut whole"
    else
        fail "STATS=json into one file from 24 processes: not 24 valid lines:" \
            "$(head -c 300 "$tmp/lines" | tr -cd '[:print:]')"
    fi
fi
run LABYRINTH_STATS=1 "LABYRINTH_STATS_FILE=$tmp/pct%%%p" -- "${prog[@]}"
ls "$tmp" | grep -qx 'pct%[0-9][0-9]*' && ok "STATS_FILE: %% is a percent sign" ||
    fail "STATS_FILE: no file pct%<pid> in $tmp: $(ls "$tmp" | tr '\n' ' ')"
run LABYRINTH_STATS=1 "LABYRINTH_STATS_FILE=$tmp/$(printf '%%p%.0s' $(seq 1 2030))" -- "${prog[@]}"
grep -q '^labyrinth: LABYRINTH_STATS_FILE too long with %p expanded, summary on stderr: ' "$tmp/err" &&
    grep -q '^labyrinth stats: mallocs [1-9]' "$tmp/err" && ok "STATS_FILE too long once expanded: warning, stderr" ||
    fail "STATS_FILE too long once expanded: $(head -c 200 "$tmp/err")"
run LABYRINTH_STATS=1 "LABYRINTH_STATS_FILE=$tmp/no/such/dir/s" -- "${prog[@]}"
if grep -q "^labyrinth: LABYRINTH_STATS_FILE cannot be opened, summary on stderr: $tmp/no/such/dir/s\$" "$tmp/err" &&
    grep -q '^labyrinth stats: mallocs [1-9]' "$tmp/err"; then
    ok "STATS_FILE that cannot be opened: a warning and the summary on stderr"
else
    fail "STATS_FILE that cannot be opened: $(head -c 300 "$tmp/err")"
fi

# THP: a program whose pool passes the threshold gets advised chunks (counted in the summary);
# none by default (off), with LABYRINTH_THP=0, or with a threshold above the program's size
big=(python3 -c 'x = [bytearray(200000) for i in range(400)]; print(len(x))')
# (the largest count of any summary: python3 may run other processes at start)
thp_of() { sed -n 's/.*thp_chunks \([0-9]*\).*/\1/p' "$tmp/err" | sort -n | tail -n 1; }
run LABYRINTH_STATS=1 LABYRINTH_THP=32 -- "${big[@]}"
t_on=$(thp_of)
run LABYRINTH_STATS=1 -- "${big[@]}"
t_def=$(thp_of)
run LABYRINTH_STATS=1 LABYRINTH_THP=0 -- "${big[@]}"
t_off=$(thp_of)
run LABYRINTH_STATS=1 LABYRINTH_THP=4096 -- "${big[@]}"
t_high=$(thp_of)
if [ "${t_on:-0}" -ge 1 ] && [ "$t_def" = 0 ] && [ "$t_off" = 0 ] && [ "$t_high" = 0 ]; then
    ok "THP: $t_on chunks advised with THP=32, none by default, with THP=0 or a threshold above the heap"
else
    fail "THP: thp_chunks THP=32 '${t_on}', default '${t_def}', THP=0 '${t_off}', THP=4096 '${t_high}'"
fi

# idle_returns: spans given back without their owner. memory_returned remote (256 MiB of 64-byte
# blocks freed to a thread that idles, then malloc_trim) gives back its spans that way (4096 of
# 64 KiB; at least 1000 asked); a program whose frees are all its own gives back none
idle_of() { sed -n 's/.*idle_returns \([0-9]*\).*/\1/p' "$tmp/err" | sort -n | tail -n 1; }
if [ -n "${LAB_MEMORY_RETURNED:-}" ]; then
    run LABYRINTH_STATS=1 -- env LAB_EXPECT_LABYRINTH=1 "$LAB_MEMORY_RETURNED" remote
    i_remote=$(idle_of)
    run LABYRINTH_STATS=1 -- "${prog[@]}"
    i_local=$(idle_of)
    if [ "${i_remote:-0}" -ge 1000 ] && [ "$i_local" = 0 ]; then
        ok "idle_returns: $i_remote spans given back without their owner, none in a one-thread program"
    else
        fail "idle_returns: '${i_remote}' after memory_returned remote (wanted >= 1000), '${i_local}' in a one-thread program"
    fi
fi

# KEPT_KIB: the emptied spans a heap keeps (kept_kib in the summary, the main thread's heap being
# alive at exit). memory_returned kept empties 32 spans of 16 KiB blocks twice: kept by default
# (4 MiB at most), none with 0, at most 1 MiB with 1024
kept_of() { sed -n 's/.*kept_kib \([0-9]*\).*/\1/p' "$tmp/err" | tail -n 1; }
if [ -n "${LAB_MEMORY_RETURNED:-}" ]; then
    run LABYRINTH_STATS=1 -- env LAB_EXPECT_LABYRINTH=1 "$LAB_MEMORY_RETURNED" kept
    k_def=$(kept_of)
    run LABYRINTH_STATS=1 LABYRINTH_KEPT_KIB=0 -- env LAB_EXPECT_LABYRINTH=1 "$LAB_MEMORY_RETURNED" kept
    k_off=$(kept_of)
    run LABYRINTH_STATS=1 LABYRINTH_KEPT_KIB=1024 -- env LAB_EXPECT_LABYRINTH=1 "$LAB_MEMORY_RETURNED" kept
    k_one=$(kept_of)
    if [ "${k_def:-0}" -gt 1024 ] && [ "${k_def:-0}" -le 4096 ] && [ "$k_off" = 0 ] &&
        [ "${k_one:-0}" -gt 0 ] && [ "${k_one:-9999}" -le 1024 ]; then
        ok "KEPT_KIB: $k_def KiB kept by default, none with 0, $k_one with 1024"
    else
        fail "KEPT_KIB: kept_kib default '${k_def}', KEPT_KIB=0 '${k_off}', KEPT_KIB=1024 '${k_one}'"
    fi
fi

# RESERVE_GB: the fast map's region is the process's largest inaccessible mapping (GiB printed by
# a preloaded bash reading its own maps): 64 GiB asked by default (a few chunks committed at its
# start, so more than 32 left), none with 0, about 2 with 2, and none under `ulimit -v`, where a
# reservation would count against the limit
reserved='m=0; while read -r range perm rest; do if [ "$perm" = ---p ]; then
  s=$(( (16#${range#*-} - 16#${range%-*}) >> 30 )); [ "$s" -gt "$m" ] && m=$s; fi; done </proc/self/maps; echo "$m"'
run -- bash -c "$reserved"
r_def=$(cat "$tmp/out")
run LABYRINTH_RESERVE_GB=0 -- bash -c "$reserved"
r_off=$(cat "$tmp/out")
run LABYRINTH_RESERVE_GB=2 -- bash -c "$reserved"
r_two=$(cat "$tmp/out")
r_lim=$( (ulimit -v 16000000 && env -u LABYRINTH_RESERVE_GB LD_PRELOAD="$lib" bash -c "$reserved") 2>&1)
if [ "${r_def:-0}" -gt 32 ] && [ "$r_off" = 0 ] && [ "${r_two:-9}" -ge 1 ] && [ "${r_two:-9}" -le 2 ] &&
    [ "$r_lim" = 0 ]; then
    ok "RESERVE_GB: ${r_def} GiB reserved by default, ${r_off} with 0, ${r_two} with 2, ${r_lim} under ulimit -v"
else
    fail "RESERVE_GB: largest reservation '${r_def}' GiB by default (wanted > 32), '${r_off}' with 0, '${r_two}' with 2 (wanted 1-2), '${r_lim}' under ulimit -v (wanted 0)"
fi

[ "$failed" = 0 ] && echo "options: all checks passed"
exit "$failed"
