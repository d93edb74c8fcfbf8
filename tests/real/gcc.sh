#!/bin/bash
# gcc.sh — gcc (driver, cc1, as, ld: all under the preload) compiles a generated 5 000-line C file
# at -O2. The object must be byte-identical to the glibc-compiled one (its `size` and `nm` output
# are shown on a difference), and the two linked programs must print the same checksums.
. "$(dirname "$0")/lib.sh"
lab_need "${CC_REAL:-gcc}" size nm
: "${LAB_GEN:?LAB_GEN must name the realgen program}"
cc=${CC_REAL:-gcc}
"$LAB_GEN" csource 5000 >"$lab_tmp/gen.c" || lab_fail "realgen csource failed"

for mode in ref lab; do
    mkdir -p "$lab_tmp/$mode"
    lab_run "$mode" compile "$cc" -O2 -c "$lab_tmp/gen.c" -o "$lab_tmp/$mode/gen.o"
    lab_run "$mode" link "$cc" "$lab_tmp/$mode/gen.o" -o "$lab_tmp/$mode/gen"
done
if [ -f "$lab_tmp/lab/gen.o" ] && [ -f "$lab_tmp/ref/gen.o" ]; then
    # `size`/`nm` of each object, run on glibc: only the compilers differ.
    (cd "$lab_tmp/ref" && size -A gen.o && nm gen.o) >"$lab_tmp/objects.ref.out"
    (cd "$lab_tmp/lab" && size -A gen.o && nm gen.o) >"$lab_tmp/objects.lab.out"
    # Same source path and flags, so gcc's output is byte-identical unless something went wrong.
    if ! cmp -s "$lab_tmp/ref/gen.o" "$lab_tmp/lab/gen.o"; then
        lab_fail "the objects are not byte-identical"
    fi
    if cmp -s "$lab_tmp/objects.ref.out" "$lab_tmp/objects.lab.out"; then
        echo "$lab_name: size and nm of the object identical"
    else
        lab_fail "objects differ:"
        diff "$lab_tmp/objects.ref.out" "$lab_tmp/objects.lab.out" | head -n 20 >&2
    fi
    # Run each program on glibc, so a difference can only come from the compilation.
    "$lab_tmp/ref/gen" >"$lab_tmp/run.ref.out" || lab_fail "glibc-compiled program failed"
    "$lab_tmp/lab/gen" >"$lab_tmp/run.lab.out" || lab_fail "labyrinth-compiled program failed"
    if cmp -s "$lab_tmp/run.ref.out" "$lab_tmp/run.lab.out" && [ -s "$lab_tmp/run.ref.out" ]; then
        echo "$lab_name: the two programs print the same $(wc -l <"$lab_tmp/run.ref.out") checksums"
    else
        lab_fail "the programs' output differs"
    fi
else
    lab_fail "an object is missing"
fi
lab_expect_stats compile
lab_finish
