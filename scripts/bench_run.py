#!/usr/bin/env python3
"""bench_run.py — runs every workload under every allocator, interleaving allocators run by run,
and appends one JSON record per run to OUT/runs.jsonl; then writes OUT/raw.json (every run, the
exact command, allocator versions, machine, date). Called by scripts/compare.sh.

Wall time is the workload's own `elapsed_s=` line where it prints one, else the wall clock around
the process; peak RSS comes from the kernel (wait4's ru_maxrss). A run whose exit status is not 0,
or whose output differs from the glibc run's (real programs), is recorded as failed."""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time


def alloc_paths(build):
    libdir = "/usr/lib/x86_64-linux-gnu"
    cands = {
        "glibc": "",
        "labyrinth": os.path.join(build, "liblabyrinth.so"),
        "jemalloc": os.path.join(libdir, "libjemalloc.so.2"),
        "mimalloc": os.path.join(libdir, "libmimalloc.so.2"),
        "tcmalloc": os.path.join(libdir, "libtcmalloc_minimal.so.4"),
    }
    return {k: v for k, v in cands.items() if v == "" or os.path.exists(v)}


def versions():
    out = {}
    for name, pkg in [("glibc", "libc6"), ("jemalloc", "libjemalloc2"), ("mimalloc", "libmimalloc2.0"),
                      ("tcmalloc", "libtcmalloc-minimal4")]:
        try:
            out[name] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                                       text=True).stdout.strip() or "?"
        except OSError:
            out[name] = "?"
    try:
        out["labyrinth"] = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                          text=True).stdout.strip()
    except OSError:
        out["labyrinth"] = "?"
    return out


def workloads(build, quick, tmp):
    wl = os.path.join(build, "bench", "wl")
    s = 0.2 if quick else 1.0
    big_c = os.path.join(tmp, "big.c")
    if not os.path.exists(big_c):
        with open(big_c, "w") as f:
            subprocess.run([sys.executable, "bench/workloads/gen_c.py", "3000" if quick else "6000"], stdout=f,
                           check=True)
    w = [
        ("larson-2", [wl, "larson", "2", str(int(4000000 * s))], False),
        ("larson-8", [wl, "larson", "8", str(int(4000000 * s))], False),
        ("ring-2", [wl, "ring", "2", str(int(16000 * s))], False),
        ("ring-8", [wl, "ring", "8", str(int(16000 * s))], False),
        ("churn", [wl, "churn", str(int(6000000 * s))], False),
        ("large", [wl, "large", str(int(600 * s))], False),
        ("strbuild", [wl, "strbuild", str(int(40000000 * s))], False),
        ("packets", [wl, "packets", str(int(4000000 * s))], False),
        ("python3", ["/usr/bin/python3", "bench/workloads/pyalloc.py"], True),
        ("gcc", ["gcc", "-O1", "-c", big_c, "-o", os.path.join(tmp, "big.o")], True),
    ]
    return w


def run_one(cmd, preload, tmp):
    """Runs cmd with the preload; returns (exit status, stdout, stderr, wall s, peak RSS KiB)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    with open(os.path.join(tmp, "out"), "w+b") as fo, open(os.path.join(tmp, "err"), "w+b") as fe:
        # GNU time forks the workload from a small process: a child forked from this python would
        # start with python's RSS as its high-water mark. %M is the kernel's ru_maxrss (wait4).
        rssfile = os.path.join(tmp, "rss")
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rssfile] + cmd, stdout=fo, stderr=fe, env=env)
        wall = time.perf_counter() - t0
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    try:
        rss = int(open(rssfile).read().split()[-1])
    except (OSError, ValueError, IndexError):
        rss = None
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), wall, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default="results/latest")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--alloc", default="")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, "tmp")
    os.makedirs(tmp, exist_ok=True)
    allocs = alloc_paths(a.build)
    if a.alloc:
        allocs = {k: v for k, v in allocs.items() if k in a.alloc.split(",")}
    wls = workloads(a.build, a.quick, tmp)
    if a.only:
        wls = [w for w in wls if w[0] in a.only.split(",")]
    runs = []
    reference = {}
    for r in range(a.runs):
        for name, cmd, compare_output in wls:
            for alloc, path in allocs.items():
                rc, out, err, wall, rss = run_one(cmd, path, tmp)
                m = re.search(r"elapsed_s=([0-9.]+)", out)
                elapsed = float(m.group(1)) if m else wall
                ok = rc == 0
                if compare_output:
                    key = name
                    if alloc == "glibc" or key not in reference:
                        reference.setdefault(key, out)
                    ok = ok and out == reference[key]
                rec = {"workload": name, "allocator": alloc, "run": r, "command": cmd,
                       "preload": path, "exit": rc, "ok": ok, "time_s": elapsed, "wall_s": wall,
                       "peak_rss_kib": rss, "stderr_tail": err[-300:]}
                runs.append(rec)
                print(f"[{r + 1}/{a.runs}] {name:10s} {alloc:10s} {elapsed:8.3f} s  "
                      f"{rss:>8} KiB  {'ok' if ok else 'FAILED'}", file=sys.stderr)
    # Google Benchmark micro suite, one JSON per allocator (same binary under each preload)
    micro = os.path.join(a.build, "bench", "micro")
    micro_results = {}
    if os.path.exists(micro) and not a.only:
        filt = "malloc_free/(16|64|1024|32768)/|malloc_free_pages|batch_(lifo|fifo)/64/|calloc/4096/|" \
               "realloc_grow|posix_memalign|producer_consumer|pages_(default|atomic)/(0|4|9)/"
        for alloc, path in allocs.items():
            env = dict(os.environ)
            env.pop("LD_PRELOAD", None)
            if path:
                env["LD_PRELOAD"] = path
            cmd = [micro, "--benchmark_filter=" + filt, "--benchmark_format=json",
                   "--benchmark_min_time=" + ("0.02" if a.quick else "0.1")]
            print(f"micro: {alloc}", file=sys.stderr)
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            try:
                micro_results[alloc] = {"command": cmd, "result": json.loads(p.stdout)}
            except ValueError:
                micro_results[alloc] = {"command": cmd, "error": p.stderr[-500:]}
    raw = {
        "micro": micro_results,
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"uname": platform.uname()._asdict(), "cpus": os.cpu_count()},
        "versions": versions(),
        "notes": "Debian's libmimalloc2.0 package; glibc = no preload. Peak RSS from wait4 (per run).",
        "runs": runs,
    }
    with open(os.path.join(a.out, "raw.json"), "w") as f:
        json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
