#!/bin/bash
# java.sh — the JVM (HotSpot) under the preload: its native side allocates from JIT compiler,
# GC and pool threads, and it runs with its own signal handlers (safepoints, implicit null
# checks). Workload.java, run by the source launcher (which compiles it in the JVM first), must
# print exactly what it prints on glibc. Skipped without a JDK (java with the jdk.compiler module).
. "$(dirname "$0")/lib.sh"
lab_need java
if ! java --list-modules 2>/dev/null | grep -q '^jdk\.compiler@'; then
    echo "java: no jdk.compiler module (a JRE only); skipped"
    exit 77
fi
# no hsperfdata files in /tmp; a fixed heap cap so the two runs size the heap alike
lab_both workload java -XX:-UsePerfData -Xmx256m "$(dirname "$0")/Workload.java"
lab_finish
