#!/usr/bin/env python3
"""run.py — the runner behind scripts/compare.sh: runs every workload under every allocator,
interleaving allocators run by run (in an order shuffled afresh for each run and workload, seeded and
recorded, so none always runs first or right after the same neighbour), then the micro suite
under each allocator, and writes
OUT/raw.json: every run with its exact command and preload, its own time and the kernel's view
(peak RSS, faults, CPU), allocator versions from dpkg, the machine, the date. Tables and charts are
drawn from raw.json by scripts/report.py; nothing here summarises.

Each workload run goes through build/bench/measure (wait4 rusage, preload set only in the child).
A run counts as failed, never as a figure, when it exits non-zero, when the loader says its preload
could not be loaded, when malloc did not come from the allocator it was meant to (the workloads
binary reports it: a preload that silently did not take), or when a real program's output differs
from the reference run's (python's checksum, gcc's object file).

Also: `run.py --which NAME` prints the preload path of an allocator ('' for glibc), for
scripts/profile.sh."""
import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> (shared object looked up with ldconfig, Debian package that normally holds it,
#          substring of the library malloc must resolve to)
SYSTEM_ALLOCATORS = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc2", "libjemalloc"),
    "mimalloc": ("libmimalloc.so.2", "libmimalloc2.0", "libmimalloc"),
    # the minimal variant: tcmalloc without the heap profiler and checker, the one benchmarks use
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4", "libtcmalloc"),
}
ORDER = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "labyrinth", "labyrinth-mmap", "jemalloc-direct"]
# variants: the same preload with options in the environment (run with --mmap)
ALLOC_ENV = {"labyrinth-mmap": {"LABYRINTH_MMAP": "1"}}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, **kw).stdout.strip()
    except OSError:
        return ""


def ldconfig_path(soname):
    """The 64-bit library of that soname in the dynamic linker's cache, as `ldconfig -p` lists it:
    "\tlibjemalloc.so.2 (libc6,x86-64) => /lib/x86_64-linux-gnu/libjemalloc.so.2"."""
    for line in sh(["/sbin/ldconfig", "-p"]).splitlines():
        left, sep, path = line.strip().partition(" => ")
        if sep and left.split()[0] == soname and "64" in left:
            return path
    return None


def dpkg_path(pkg, soname):
    for line in sh(["dpkg", "-L", pkg]).splitlines():
        if line.endswith("/" + soname):
            return line
    return None


def allocator_paths(build):
    """name -> preload path ('' = no preload); only allocators whose library exists."""
    out = {"glibc": ""}
    for name, (soname, pkg, _) in SYSTEM_ALLOCATORS.items():
        p = ldconfig_path(soname) or dpkg_path(pkg, soname)
        if p and os.path.exists(p):
            out[name] = p
    lab = os.path.join(build, "liblabyrinth.so")
    if os.path.exists(lab):
        out["labyrinth"] = os.path.abspath(lab)
    return out


def expected_malloc(alloc):
    if alloc == "glibc":
        return "libc.so"
    if alloc.startswith("labyrinth"):
        return "liblabyrinth"
    if alloc == "jemalloc-direct":
        return "libjemalloc"
    return SYSTEM_ALLOCATORS[alloc][2]


def package_version(path):
    """(package, version) owning the file, from dpkg."""
    real = os.path.realpath(path)
    for p in (path, real, real.replace("/usr/lib/", "/lib/", 1), real.replace("/lib/", "/usr/lib/", 1)):
        owner = sh(["dpkg", "-S", p])
        if owner and ":" in owner:
            pkg = owner.split(": ")[0].split(",")[0].strip()
            return pkg, sh(["dpkg-query", "-W", "-f=${Version}", pkg]) or "?"
    return None, "?"


def versions(allocs):
    out = {"glibc": {"package": "libc6", "version": sh(["dpkg-query", "-W", "-f=${Version}", "libc6:amd64"]) or
                     sh(["dpkg-query", "-W", "-f=${Version}", "libc6"])}}
    for name, path in allocs.items():
        if name in SYSTEM_ALLOCATORS:
            pkg, ver = package_version(path)
            out[name] = {"package": pkg, "version": ver, "path": path, "realpath": os.path.realpath(path)}
    if "labyrinth" in allocs:
        out["labyrinth"] = {"git": sh(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
                            "path": allocs["labyrinth"]}
    for pkg in ("libbenchmark1debian", "gcc", "python3"):
        out[pkg] = {"version": sh(["dpkg-query", "-W", "-f=${Version}", pkg])}
    return out


def mimalloc_build(path, wl):
    """Is Debian's mimalloc a debug build? Its verbose banner prints 'debug level' only when
    MI_DEBUG > 0, and a debug build carries its assertion message; a release build has neither."""
    env = dict(os.environ, MIMALLOC_VERBOSE="1", LD_PRELOAD=path)
    banner = ""
    try:
        banner = subprocess.run([wl, "larson", "1", "100"], env=env, capture_output=True, text=True,
                                timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        pass
    data = open(os.path.realpath(path), "rb").read()
    m = re.search(r"debug level\s*:\s*(\d+)", banner)
    asserts = b"assertion failed" in data
    debug = bool(m and int(m.group(1)) > 0) or asserts
    lines = [ln for ln in banner.splitlines() if re.search(r"secure level|debug level|version", ln)]
    return {"debug_build": debug,
            "evidence": ("verbose banner: " + "; ".join(lines) if lines else "no verbose banner") +
                        f"; assertion strings in the library: {'yes' if asserts else 'no'}"}


def machine():
    def read(p):
        try:
            return open(p).read().strip()
        except OSError:
            return "?"
    cpu = next((ln.split(":", 1)[1].strip() for ln in read("/proc/cpuinfo").splitlines()
                if ln.startswith("model name")), "?")
    mem = next((ln.split(":", 1)[1].strip() for ln in read("/proc/meminfo").splitlines()
                if ln.startswith("MemTotal")), "?")
    return {"uname": platform.uname()._asdict(), "cpu": cpu, "cpus": os.cpu_count(), "mem": mem,
            "thp_enabled": read("/sys/kernel/mm/transparent_hugepage/enabled"),
            "thp_defrag": read("/sys/kernel/mm/transparent_hugepage/defrag"),
            "overcommit_memory": read("/proc/sys/vm/overcommit_memory"),
            "debian": read("/etc/debian_version")}


# ---- the workloads: (name, threads, full N, quick N, tiny N[, the wl program if not name]) ----
WL = [
    ("larson", 2, 5000000, 1000000, 20000),
    # the mixed-size, half-cross-thread workload at 8 threads too (on 2 cores)
    ("larson8", 8, 5000000, 1000000, 20000, "larson"),
    ("xmalloc", 4, 3000000, 600000, 20000),
    ("scratch", 2, 1500000, 300000, 2000),
    ("churn", 2, 12000000, 2400000, 20000),
    ("mstress", 4, 400, 80, 3),
    ("large", 1, 200, 40, 4),
    ("bigbuf", 1, 2000, 400, 20),
    # page-sized blocks of random lengths at 2 threads (found by review: the store's lock and purges)
    ("pagemix", 2, 200000, 40000, 2000),
    ("maze", 2, 512, 96, 12),
    ("packets", 2, 1000000, 200000, 20000),
    ("strbuild", 1, 6000000, 1200000, 100000),
    ("ring", 2, 8000, 1600, 40),
]


def write_sort_input(path, nbytes):
    """Lines `key,number` (a fixed linear congruential sequence) up to nbytes, for sort.sh."""
    x, n, chunk = 12345, 0, []
    with open(path, "w") as f:
        while n < nbytes:
            x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
            line = f"k{x >> 40:07x}{'.' * ((x >> 8) % 48)},{(x >> 16) % 1000003}\n"
            chunk.append(line)
            n += len(line)
            if len(chunk) >= 4096:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))


def wl_n(row, size, scale):
    """A wl workload's N at this size, times --scale (at least 1)."""
    return max(1, int(row[{"full": 2, "quick": 3, "tiny": 4}[size]] * scale))


def workloads(build, size, tmp, scale=1.0):
    """[(name, kind, argv builder(alloc) -> argv)]; size is 'full', 'quick' or 'tiny'."""
    out = []
    for row in WL:
        name, threads, n = row[0], row[1], wl_n(row, size, scale)
        prog = row[5] if len(row) > 5 else name

        def argv(alloc, prog=prog, threads=threads, n=n):
            exe = "wl-jemalloc" if alloc == "jemalloc-direct" else "wl"
            return [os.path.join(build, "bench", exe), prog, str(threads), str(n)]
        out.append((name, "wl", argv))
    py_rounds = {"full": 6, "quick": 2, "tiny": 1}[size]
    py = ["/usr/bin/python3", os.path.join(HERE, "workloads", "pyalloc.py"), str(py_rounds)]
    out.append(("python3", "real", lambda alloc: py))
    # python's own small-object allocator (pymalloc) serves everything up to 512 bytes, so the
    # plain run measures the allocator on big objects only; PYTHONMALLOC=malloc sends every
    # allocation to malloc, as python debug builds and some embedders do
    out.append(("python3-malloc", "real", lambda alloc: ["env", "PYTHONMALLOC=malloc"] + py))
    funcs = {"full": 400, "quick": 150, "tiny": 40}[size]
    src = os.path.join(tmp, f"gen{funcs}.c")
    if not os.path.exists(src):
        with open(src, "w") as f:
            subprocess.run([sys.executable, os.path.join(HERE, "workloads", "gen_c.py"), str(funcs)], stdout=f,
                           check=True)
    out.append(("gcc", "real", lambda alloc: ["gcc", "-O1", "-c", src, "-o", os.path.join(tmp, f"gcc-{alloc}.o")]))
    # GNU sort's external merge (-S 4M): one 4 MiB buffer, then many page-sized merge buffers
    mb = {"full": 50, "quick": 20, "tiny": 4}[size]
    sort_in = os.path.join(tmp, f"sort{mb}.txt")
    if not os.path.exists(sort_in):
        write_sort_input(sort_in, mb << 20)
    sort_tmp = os.path.join(tmp, "sort-tmp")
    os.makedirs(sort_tmp, exist_ok=True)
    out.append(("sort", "real", lambda alloc: ["sh", os.path.join(HERE, "workloads", "sort.sh"), sort_in, sort_tmp]))
    # process start-up: short programs started one after another, as a test suite runs them
    rounds = {"full": 40, "quick": 10, "tiny": 2}[size]
    spawn = ["sh", os.path.join(HERE, "workloads", "spawn.sh"), str(rounds)]
    out.append(("spawn", "real", lambda alloc: spawn))
    return out


def measure(build, argv, preload, tmp, timeout, extra_env=None):
    """Runs argv under the preload through the measure wrapper; returns a dict."""
    res_file = os.path.join(tmp, "measure.txt")
    if os.path.exists(res_file):
        os.unlink(res_file)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(extra_env or {})
    cmd = [os.path.join(build, "bench", "measure"), "-o", res_file, "-p", preload, "--"] + argv
    try:
        p = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout)
        out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        return {"exit": None, "timeout": True, "stdout": (e.stdout or b"").decode(errors="replace")[-500:],
                "stderr": (e.stderr or b"").decode(errors="replace")[-500:]}
    r = {"stdout": out[-2000:], "stderr": err[-1000:]}
    try:
        for kv in open(res_file).read().split():
            k, v = kv.split("=", 1)
            r[k] = float(v) if "." in v else int(v)
    except OSError:
        r["exit"] = p.returncode
        r["measure_failed"] = True
    return r


def run_one(build, name, kind, argv, alloc, preload, tmp, reference, timeout):
    m = measure(build, argv, preload, tmp, timeout, ALLOC_ENV.get(alloc))
    rec = {"workload": name, "allocator": alloc, "command": argv, "preload": preload, "env": ALLOC_ENV.get(alloc),
           "exit": m.get("exit"), "ok": True, "fail_reason": None,
           "wall_s": m.get("wall_s"), "peak_rss_kib": m.get("maxrss_kib"), "utime_s": m.get("utime_s"),
           "stime_s": m.get("stime_s"), "minflt": m.get("minflt"), "majflt": m.get("majflt"),
           "nvcsw": m.get("nvcsw"), "nivcsw": m.get("nivcsw"),
           "stdout_tail": m.get("stdout", "")[-400:], "stderr_tail": m.get("stderr", "")[-400:]}
    own = re.search(r"elapsed_s=([0-9.]+)", m.get("stdout", ""))
    # the workload's own time where it prints one (it leaves out start-up and set-up), else wall
    rec["time_s"] = float(own.group(1)) if own else m.get("wall_s")
    rec["time_source"] = "own" if own else "wall"

    def fail(why):
        if rec["ok"]:
            rec["ok"], rec["fail_reason"] = False, why
    if m.get("timeout"):
        fail(f"timed out after {timeout} s")
    elif m.get("exit") != 0:
        fail(f"exit status {m.get('exit')}" + (f" (signal {m.get('signal')})" if m.get("signal") else ""))
    if preload and "cannot be preloaded" in m.get("stderr", ""):
        # the real programs print no malloc_from: without this, glibc's figures went down as the
        # allocator's (found by review)
        fail("the loader could not preload " + preload)
    if kind == "wl" and rec["ok"]:
        mf = re.search(r"malloc_from=(\S+)", m.get("stdout", ""))
        if not mf or expected_malloc(alloc) not in mf.group(1):
            fail(f"malloc came from {mf.group(1) if mf else '?'}, not {alloc}")
    if kind == "real" and rec["ok"]:
        if name == "gcc":
            try:
                check = hashlib.sha256(open(argv[-1], "rb").read()).hexdigest()
            except OSError:
                check = None
        else:
            cs = re.search(r"checksum=(\S+)", m.get("stdout", ""))
            check = cs.group(1) if cs else None
        rec["check"] = check
        if check is None:
            fail("no output to check")
        elif reference.setdefault(name, (alloc, check))[1] != check:
            fail(f"output differs from the {reference[name][0]} run's")
    return rec


MICRO_QUICK_FILTER = ("^(malloc_free/(16|64|256|1024|4096|32768)|malloc_free_mt/64|malloc_free_pages/(4096|65536|1048576)|"
                      "batch_(lifo|fifo)/(64|1024)|calloc/(256|65536)|realloc_grow/(4096|1048576)|"
                      "posix_memalign/(64|4096)/100|producer_consumer/(64|1024)|pages_(default|atomic)/(0|4|9))/")


def run_micro(build, allocs, passes, min_time, filt, timeout):
    micro = os.path.join(build, "bench", "micro")
    if not os.path.exists(micro):
        log("run.py: no bench/micro (Google Benchmark missing?): micro suite skipped")
        return {}
    out = {a: {"passes": []} for a in allocs if a != "jemalloc-direct"}
    for p in range(passes):
        order = list(out)
        random.Random(p).shuffle(order)  # not always the same allocator last
        for alloc in order:
            env = dict(os.environ)
            env.pop("LD_PRELOAD", None)
            if allocs[alloc]:
                env["LD_PRELOAD"] = allocs[alloc]
            env.update(ALLOC_ENV.get(alloc, {}))
            cmd = [micro, "--benchmark_format=json", f"--benchmark_min_time={min_time}"]
            if filt:
                cmd.append("--benchmark_filter=" + filt)
            log(f"micro [{p + 1}/{passes}] {alloc} ...")
            t0 = time.time()
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
                res = json.loads(r.stdout)
                tag = res.get("context", {}).get("allocator")
                if tag != alloc:  # kept out of the passes: its figures are another allocator's
                    out[alloc]["error"] = f"micro ran under {tag}, not {alloc}"
                    log(f"run.py: micro under {alloc}: malloc came from {tag}!")
                    continue
                out[alloc]["passes"].append({"command": cmd, "preload": allocs[alloc], "result": res,
                                             "seconds": round(time.time() - t0, 1)})
            except (subprocess.TimeoutExpired, ValueError, OSError) as e:
                out[alloc]["error"] = f"{type(e).__name__}: {str(e)[:200]}"
                log(f"run.py: micro under {alloc} failed: {out[alloc]['error']}")
    return out


def run_mmap_bench(build, allocs, runs, size):
    """bench/mmap_bench (mmap + touch + munmap, ns per op: raw system calls and the libc names,
    alternating in one process) under glibc and each Labyrinth variant, run by run; its CSV rows,
    per run, as they came."""
    exe = os.path.join(build, "bench", "mmap_bench")
    if not os.path.exists(exe):
        log("run.py: no bench/mmap_bench: mmap rows skipped")
        return []
    ms = {"full": "400", "quick": "160", "tiny": "40"}[size]
    out = []
    for r in range(runs):
        for alloc in [a for a in ("glibc", "labyrinth", "labyrinth-mmap") if a in allocs]:
            env = dict(os.environ)
            env.pop("LD_PRELOAD", None)
            env.pop("LABYRINTH_MMAP", None)
            if allocs[alloc]:
                env["LD_PRELOAD"] = allocs[alloc]
            env.update(ALLOC_ENV.get(alloc, {}))
            cmd = [exe, "-t", ms]
            log(f"mmap_bench [{r + 1}/{runs}] {alloc} ...")
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
            rows = [dict(zip(["size_kib", "threads", "touch", "mode", "ns_per_op", "ops"], ln.split(",")))
                    for ln in p.stdout.splitlines() if ln and ln[0].isdigit()]
            out.append({"run": r, "allocator": alloc, "command": cmd, "env": ALLOC_ENV.get(alloc),
                        "exit": p.returncode, "rows": rows})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--out", default="results/latest")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the wl workloads' N (longer runs: less of the host's noise per run)")
    ap.add_argument("--size", choices=["full", "quick", "tiny"], default="full")
    ap.add_argument("--alloc", default="", help="comma-separated allocators (default: every one found)")
    ap.add_argument("--only", default="", help="comma-separated workloads (default: all)")
    ap.add_argument("--direct-check", action="store_true", help="also run wl-jemalloc (jemalloc linked in)")
    ap.add_argument("--no-micro", action="store_true")
    ap.add_argument("--micro-passes", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None, help="seed of the allocators' order (default: the time)")
    ap.add_argument("--invocation", default="", help="the command line that started the run (for raw.json)")
    ap.add_argument("--note", action="append", default=[], help="a note recorded in raw.json (repeatable)")
    ap.add_argument("--exclude", action="append", default=[], metavar="NAME=REASON",
                    help="leave an allocator out and say why in the report (e.g. it did not build)")
    ap.add_argument("--which", help="print the preload path of one allocator and exit")
    ap.add_argument("--mmap", action="store_true",
                    help="also Labyrinth with LABYRINTH_MMAP=1 (labyrinth-mmap) and the mmap + touch + munmap rows")
    a = ap.parse_args()

    allocs = allocator_paths(a.build)
    if a.mmap and "labyrinth" in allocs:
        allocs["labyrinth-mmap"] = allocs["labyrinth"]
    if a.which:
        if a.which not in allocs:
            log(f"run.py: allocator {a.which} not found (have: {', '.join(allocs)})")
            sys.exit(2)
        print(allocs[a.which])
        return
    # labyrinth-mmap (Labyrinth with LABYRINTH_MMAP=1) only when asked for: --mmap, or by name
    wanted = [x for x in a.alloc.split(",") if x] or [x for x in ORDER if x not in ("jemalloc-direct",
                                                                                    "labyrinth-mmap")]
    if a.mmap and "labyrinth-mmap" not in wanted:
        wanted.append("labyrinth-mmap")
    excluded = {}
    for e in a.exclude:
        name, _, why = e.partition("=")
        excluded[name] = why or "excluded by the caller"
        wanted = [x for x in wanted if x != name]
    for x in wanted:
        if x not in allocs:
            excluded[x] = "library not found" + (" (build/liblabyrinth.so missing: did it build?)"
                                                 if x == "labyrinth" else "")
    allocs = {k: v for k, v in allocs.items() if k in wanted}
    allocs = {k: allocs[k] for k in ORDER if k in allocs}
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, "tmp")
    os.makedirs(tmp, exist_ok=True)
    wl_exe = os.path.join(a.build, "bench", "wl")
    if not os.path.exists(wl_exe) or not os.path.exists(os.path.join(a.build, "bench", "measure")):
        log(f"run.py: {wl_exe} or measure missing: build the bench targets first")
        sys.exit(1)

    # each allocator must load and serve malloc before it is worth measuring
    for alloc in list(allocs):
        m = measure(a.build, [wl_exe, "larson", "1", "1000"], allocs[alloc], tmp, 60, ALLOC_ENV.get(alloc))
        mf = re.search(r"malloc_from=(\S+)", m.get("stdout", ""))
        if m.get("exit") != 0 or not mf or expected_malloc(alloc) not in mf.group(1):
            why = f"sanity run failed (exit {m.get('exit')}, malloc from {mf.group(1) if mf else '?'}): " \
                  f"{m.get('stderr', '').strip()[-200:]}"
            log(f"\n*** run.py: {alloc.upper()} EXCLUDED: {why}\n")
            excluded[alloc] = why
            del allocs[alloc]
    if a.direct_check:
        direct = os.path.join(a.build, "bench", "wl-jemalloc")
        if os.path.exists(direct):
            allocs["jemalloc-direct"] = ""
        else:
            excluded["jemalloc-direct"] = "wl-jemalloc not built (configure with -DLAB_BENCH_DIRECT_JEMALLOC=ON)"
    if not allocs:
        log("run.py: no allocator left to run")
        sys.exit(1)

    wls = workloads(a.build, a.size, tmp, a.scale)
    if a.only:
        only = a.only.split(",")
        unknown = [w for w in only if w not in [x[0] for x in wls]]
        if unknown:
            log(f"run.py: unknown workload(s) {', '.join(unknown)}; have {', '.join(x[0] for x in wls)}")
            sys.exit(2)
        wls = [w for w in wls if w[0] in only]
    log(f"run.py: {len(wls)} workloads x {len(allocs)} allocators x {a.runs} runs "
        f"({a.size}); allocators: {', '.join(allocs)}" +
        (f"; excluded: {', '.join(excluded)}" if excluded else ""))

    runs, reference = [], {}
    names = list(allocs)
    per_run = sum(len(names) - (1 if "jemalloc-direct" in names and kind != "wl" else 0) for _, kind, _ in wls)
    total, done, t_start = per_run * a.runs, 0, time.time()
    jsonl = open(os.path.join(a.out, "runs.jsonl"), "w")
    # each (run, workload) in an order of its own, from a recorded seed: a rotation kept every
    # allocator behind the same neighbour (review: labyrinth after tcmalloc 84 times of 85)
    seed = a.seed if a.seed is not None else int(time.time())
    harness = sh(["git", "-C", ROOT, "describe", "--always", "--dirty"])  # at the start: what ran
    rng = random.Random(seed)
    for r in range(a.runs):
        for name, kind, argv in wls:
            order = list(names)
            rng.shuffle(order)
            for pos, alloc in enumerate(order):
                if alloc == "jemalloc-direct" and kind != "wl":
                    continue  # the cross-check is of the workloads binary only
                preload = allocs[alloc]
                rec = run_one(a.build, name, kind, argv(alloc), alloc, preload, tmp, reference, 300)
                rec["run"] = r
                rec["position"] = pos
                runs.append(rec)
                jsonl.write(json.dumps(rec) + "\n")
                jsonl.flush()
                done += 1
                eta = (time.time() - t_start) / done * (total - done)
                rss = rec["peak_rss_kib"]
                log(f"[{r + 1}/{a.runs}] {name:14s} {alloc:15s} "
                    f"{rec['time_s'] if rec['time_s'] is not None else float('nan'):8.3f} s "
                    f"{(rss or 0) / 1024:8.1f} MiB  {'ok' if rec['ok'] else 'FAILED: ' + rec['fail_reason']}"
                    f"   ({done}/{total}, ~{eta:.0f} s left)")
    jsonl.close()

    micro = {}
    if not a.no_micro and not a.only:
        passes = a.micro_passes or (2 if a.size == "full" else 1)
        min_time = {"full": 0.05, "quick": 0.01, "tiny": 0.002}[a.size]
        micro = run_micro(a.build, allocs, passes, min_time, None if a.size == "full" else MICRO_QUICK_FILTER,
                          900)

    mmap_rows = run_mmap_bench(a.build, allocs, a.runs, a.size) if a.mmap else []

    raw = {
        "schema": 2,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "invocation": a.invocation or " ".join(sys.argv),
        "config": {"runs": a.runs, "size": a.size, "allocators": list(allocs), "only": a.only,
                   "direct_check": a.direct_check, "build": os.path.abspath(a.build),
                   "scale": a.scale,
                   "workload_sizes": {row[0]: {"threads": row[1], "n": wl_n(row, a.size, a.scale)}
                                      for row in WL},
                   "labyrinth_env": {k: v for k, v in os.environ.items() if k.startswith("LABYRINTH_")},
                   # the rivals' own tuning variables, inherited by their runs
                   "rival_env": {k: v for k, v in os.environ.items()
                                 if k in ("MALLOC_CONF", "GLIBC_TUNABLES") or
                                 k.startswith(("MIMALLOC_", "TCMALLOC_", "MALLOC_"))},
                   "order_seed": seed},
        "harness": harness,
        "machine": machine(),
        "versions": versions(allocs),
        "preloads": allocs,
        "excluded": excluded,
        "notes": a.note,
        "measurement": "time_s: the workload's own elapsed_s line (python3 too); gcc, sort and spawn: "
                       "wall time of the process. Peak RSS, faults and CPU: wait4 rusage of the measured "
                       "process, through bench/tools/measure (the preload is set only in the child).",
        "runs": runs,
        "micro": micro,
        "mmap_bench": mmap_rows,
        "elapsed_s": round(time.time() - t_start, 1),
    }
    if "mimalloc" in allocs:
        raw["mimalloc_build"] = mimalloc_build(allocs["mimalloc"], wl_exe)
    with open(os.path.join(a.out, "raw.json"), "w") as f:
        json.dump(raw, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)
    failed = sum(1 for x in runs if not x["ok"])
    log(f"run.py: wrote {os.path.join(a.out, 'raw.json')} ({len(runs)} runs, {failed} failed, "
        f"{raw['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
