#!/bin/bash
# tools.sh — the everyday programs a user runs under the preload next, each against its glibc run:
#   clang    compiles the generated 5 000-line C file at -O2 (LLVM's C++ heap): identical object
#   make -j2 builds a generated 24-file program (make forks and waits on its jobs; gcc under it)
#   xz -T2   compresses 9 MB of generated files piped through tar, in 1 MiB blocks over two
#            threads, and back: identical archive bytes and a lossless round trip
#   sqlite3  a 100 000-row table, an index, joins and GROUP BY: identical result rows
#   awk      counts and sums per word over 20 MB of lines, in associative arrays
#   node     V8 (many threads, its own heaps on malloc'd metadata): objects, Maps, JSON
# A program that is not installed skips its part; with none of them installed the test is skipped.
. "$(dirname "$0")/lib.sh"
: "${LAB_GEN:?LAB_GEN must name the realgen program}"
ran=0
have() { command -v "$1" >/dev/null 2>&1 || { echo "$lab_name: $1 not installed; its part skipped"; return 1; }; }

# --- clang: the object must be byte-identical (same path, same flags) ---
if have clang; then
    ran=$((ran + 1))
    "$LAB_GEN" csource 5000 >"$lab_tmp/gen.c" || lab_fail "realgen csource failed"
    for mode in ref lab; do
        mkdir -p "$lab_tmp/clang.$mode"
        lab_run "$mode" clang clang -O2 -c "$lab_tmp/gen.c" -o "$lab_tmp/clang.$mode/gen.o"
    done
    if [ -s "$lab_tmp/clang.ref/gen.o" ] && cmp -s "$lab_tmp/clang.ref/gen.o" "$lab_tmp/clang.lab/gen.o"; then
        echo "$lab_name: clang: objects identical ($(wc -c <"$lab_tmp/clang.ref/gen.o") bytes)"
    else
        lab_fail "clang: the objects compiled on glibc and under the preload differ"
    fi
    lab_expect_stats clang
fi

# --- make -j2: a generated program of 24 files, built in a directory per mode, then run ---
if have make && have "${CC_REAL:-gcc}"; then
    ran=$((ran + 1))
    src="$lab_tmp/mk.src"
    mkdir -p "$src"
    {
        echo "CC = ${CC_REAL:-gcc}"
        printf 'OBJS ='
        for i in $(seq 1 23); do printf ' f%d.o' "$i"; done
        echo ' main.o'
        echo 'prog: $(OBJS)'
        printf '\t$(CC) -o $@ $(OBJS)\n'
        echo '%.o: %.c'
        printf '\t$(CC) -O2 -c $< -o $@\n'
    } >"$src/Makefile"
    for i in $(seq 1 23); do
        cat >"$src/f$i.c" <<EOF
unsigned long f$i(unsigned long x)
{
    unsigned long h = x * ${i}u + 0x9e37u;
    for (int k = 0; k < 1000; k++)
        h = (h ^ (h >> 7)) * 0x100000001b3ul + (unsigned long)k;
    return h;
}
EOF
    done
    {
        echo '#include <stdio.h>'
        for i in $(seq 1 23); do echo "unsigned long f$i(unsigned long);"; done
        echo 'int main(void) { unsigned long h = 1;'
        for i in $(seq 1 23); do echo "    h = f$i(h); printf(\"f$i %lu\\n\", h);"; done
        echo '    return 0; }'
    } >"$src/main.c"
    for mode in ref lab; do
        cp -r "$src" "$lab_tmp/mk.$mode"
        lab_run "$mode" make make -s -j2 -C "$lab_tmp/mk.$mode" prog
        if [ -x "$lab_tmp/mk.$mode/prog" ]; then
            "$lab_tmp/mk.$mode/prog" >"$lab_tmp/mkrun.$mode.out" || lab_fail "make ($mode): its program failed"
        else
            lab_fail "make ($mode): no program built"
        fi
    done
    if [ -s "$lab_tmp/mkrun.ref.out" ] && cmp -s "$lab_tmp/mkrun.ref.out" "$lab_tmp/mkrun.lab.out"; then
        echo "$lab_name: make: the two builds' programs print the same $(wc -l <"$lab_tmp/mkrun.ref.out") lines"
    else
        lab_fail "make: the programs built on glibc and under the preload print different lines"
    fi
    lab_expect_stats make
fi

# --- tar | xz -T2 | xz -d: the archive's bytes and the round trip ---
if have tar && have xz && have sha256sum; then
    ran=$((ran + 1))
    tree="$lab_tmp/tree"
    mkdir -p "$tree"
    for i in $(seq 1 6); do
        "$LAB_GEN" lines $((1500000 + i * 1000)) >"$tree/part$i.txt" || lab_fail "realgen lines failed"
    done
    # fixed owner, times and order: the archive depends on the contents only
    pipe="tar -C '$lab_tmp' --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - tree \
        | xz -T2 -3 --block-size=1MiB -c >'$lab_tmp/tree.\$MODE.tar.xz' \
        && sha256sum <'$lab_tmp/tree.\$MODE.tar.xz' && xz -T2 -dc '$lab_tmp/tree.\$MODE.tar.xz' | sha256sum"
    # tar, xz and sha256sum close stderr before they exit: their summaries go to files
    for mode in ref lab; do
        lab_run "$mode" xz env MODE="$mode" LABYRINTH_STATS_FILE="$lab_tmp/xzstats.$mode.%p" bash -c "$pipe"
    done
    if [ "${LAB_EXPECT_LABYRINTH:-0}" = 1 ]; then
        n=$(cat "$lab_tmp"/xzstats.lab.* 2>/dev/null | grep -c '^labyrinth stats: mallocs')
        # bash, tar, xz, sha256sum, xz -d, sha256sum (a subshell may be one more)
        if [ "$n" -ge 6 ]; then
            echo "$lab_name: xz: all $n processes of the pipeline ran under the preload"
        else
            lab_fail "xz: only $n of the pipeline's 6 processes wrote a summary"
        fi
    fi
    tar -C "$lab_tmp" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - tree | sha256sum \
        >"$lab_tmp/tar.sum"
    if [ "$(sed -n 2p "$lab_tmp/xz.lab.out")" != "$(cat "$lab_tmp/tar.sum")" ]; then
        lab_fail "xz: the round trip under the preload did not give back the archive"
    fi
    cmp -s "$lab_tmp/xz.ref.out" "$lab_tmp/xz.lab.out" && [ -s "$lab_tmp/xz.ref.out" ] \
        && echo "$lab_name: xz: archive and round trip identical to the glibc run's" \
        || lab_fail "xz: the archive or its round trip differs from the glibc run"
fi

# --- sqlite3: a table, an index, aggregates and a self-join ---
if have sqlite3; then
    ran=$((ran + 1))
    cat >"$lab_tmp/q.sql" <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, s TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100000)
INSERT INTO t SELECT i, (i * 7919) % 1009, printf('row-%d-%d', i, i % 97) FROM c;
CREATE INDEX tk ON t(k);
SELECT k, count(*), sum(length(s)), min(id), max(id) FROM t GROUP BY k ORDER BY count(*) DESC, k LIMIT 20;
SELECT count(*) FROM t a JOIN t b ON a.k = b.k AND b.id = a.id + 1009;
SELECT group_concat(s, ',') IS NOT NULL, length(group_concat(s, ',')) FROM (SELECT s FROM t ORDER BY s DESC LIMIT 5000);
DELETE FROM t WHERE k % 3 = 0;
VACUUM;
SELECT count(*), sum(k) FROM t;
EOF
    for mode in ref lab; do
        lab_run "$mode" sqlite3 sqlite3 "$lab_tmp/db.$mode" ".read $lab_tmp/q.sql"
    done
    lab_compare sqlite3
fi

# --- awk: counts and sums per word in associative arrays over 20 MB of lines, sorted ---
if have awk && have sort; then
    ran=$((ran + 1))
    "$LAB_GEN" lines 20000000 >"$lab_tmp/lines.txt" || lab_fail "realgen lines failed"
    prog='{ w[$1]++; v[$1] += $2; t[NR % 1000] = t[NR % 1000] substr($3, 1, 2); n++ }
          END { for (k in w) if (w[k] > 2) print w[k], v[k], k; for (k in t) m += length(t[k]); print "lines", n, "tails", m }'
    for mode in ref lab; do
        lab_run "$mode" awk bash -c "awk -F, '$prog' '$lab_tmp/lines.txt' | LC_ALL=C sort"
    done
    lab_compare awk
fi

# --- node: V8 with its worker threads ---
if have node; then
    ran=$((ran + 1))
    cat >"$lab_tmp/w.js" <<'EOF'
const m = new Map();
let total = 0;
for (let r = 0; r < 30; r++) {
  const objs = [];
  for (let i = 0; i < 20000; i++) objs.push({ id: i, name: 'n' + (i * r), tags: [r, i % 13, 'x'.repeat(i % 50)] });
  const s = JSON.stringify(objs);
  const back = JSON.parse(s);
  total += s.length + back.length;
  m.set('r' + r, back.slice(0, 500));
  if (m.size > 8) m.delete(m.keys().next().value);
  const buf = Buffer.alloc(1 << 20, r);
  total += buf.reduce((a, b) => (a + b) & 0xffff, 0);
}
console.log('total', total, 'kept', m.size);
EOF
    for mode in ref lab; do
        lab_run "$mode" node node "$lab_tmp/w.js"
    done
    lab_compare node
fi

if [ "$ran" -eq 0 ]; then
    echo "$lab_name: none of the programs is installed; skipped"
    exit 77
fi
lab_finish
