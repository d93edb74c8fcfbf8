#!/usr/bin/env python3
"""report.py [DIR [PREVIOUS]] — draws DIR/report.md, DIR/time.png and DIR/rss.png from DIR/raw.json
(written by bench/run.py; DIR defaults to results/latest); with PREVIOUS, a recorded run's
directory, report.md ends with the rows whose Labyrinth/glibc ratio moved far since it. Every
figure comes from raw.json: medians over the runs of each cell, ratios against glibc and
jemalloc, geomeans of ratios (never of raw seconds, which would let the longest workload decide),
and the workloads Labyrinth loses, named.
Micro-benchmarks: the fastest of the passes per case (noise on a VM only ever adds time)."""
import json
import math
import os
import statistics
import sys

ORDER = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "labyrinth", "labyrinth-mmap"]
LAB = "labyrinth"
VARIANTS = ["labyrinth-mmap"]  # Labyrinth with options: shown, never counted as a rival
TIE = 0.05  # within 5% of the best is a tie: run-to-run noise on these VMs is at least that
AGREE = 0.8  # a paired verdict other than a tie needs this share of runs on its side of 1
OUTLIER = 10.0  # a row where an allocator takes under a tenth or over ten times glibc's time
# Rows where Labyrinth runs another API than its rivals: shown, marked, and left out of every
# geomean and count (found by review: they made the headline figures Labyrinth's page API's).
OTHER_API = {"packets": "Labyrinth runs its page API (`labyrinth_alloc_pages`, ATOMIC) where the "
                        "others run `malloc(4096)`"}
PREVIOUS_FACTOR = 2.0  # how far Labyrinth's ratio to glibc must move to be listed against a recorded run
OTHER_API_MICRO = "pages_"  # micro cases: the page API under Labyrinth, aligned_alloc elsewhere


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def gm_text(xs, spec=".2f"):
    """A geomean as text, with how many rows it covers when some are missing (a failed cell
    would otherwise leave an allocator's figure over fewer workloads, silently)."""
    have = [x for x in xs if x and x > 0]
    t = fmt(geomean(have), spec)
    return t if len(have) == len(xs) or not have else f"{t} ({len(have)} of {len(xs)})"


def comparable(wls):
    return [w for w in wls if w not in OTHER_API]


def mark(w):
    return f"{w}†" if w in OTHER_API else w


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def ratio(a, b):
    return a / b if a is not None and b else None


class Cells:
    """Medians per (workload, allocator) of one metric over the runs that passed."""

    def __init__(self, runs, key, scale=1.0):
        self.v, self.spread = {}, {}
        groups = {}
        for r in runs:
            if r["ok"] and r.get(key) is not None:
                groups.setdefault((r["workload"], r["allocator"]), []).append(r[key] * scale)
        for k, xs in groups.items():
            self.v[k] = statistics.median(xs)
            self.spread[k] = (max(xs) - min(xs)) / self.v[k] if self.v[k] else 0.0

    def get(self, w, a):
        return self.v.get((w, a))


def verdict(cells, w, allocs, unit_word):
    lab = cells.get(w, LAB)
    others = [(cells.get(w, a), a) for a in allocs if a != LAB and a not in VARIANTS and cells.get(w, a)]
    if lab is None or not others:
        return "-", None
    best, who = min(others)
    r = lab / best
    # a win within half the wider of the two cells' ranges is not claimed: the runs themselves
    # disagree (a loss is reported all the same)
    noise = max(cells.spread.get((w, LAB), 0), cells.spread.get((w, who), 0)) / 2
    if 1 - noise <= r < 1 - TIE:
        return f"tie with {who} ({(r - 1) * 100:+.0f}%, within the runs' spread)", None
    if r > 1 + TIE:
        return f"**loses** to {who} (+{(r - 1) * 100:.0f}% {'longer' if unit_word == 'faster' else 'more'})", (who, r)
    if r < 1 - TIE:
        return f"best ({(1 - r) * 100:.0f}% {unit_word} than {who})", None
    return f"tie with {who} ({(r - 1) * 100:+.0f}%)", None


def paired_ratios(runs, key):
    """Per (workload, rival): the median over runs of Labyrinth's value / the rival's in the same
    run. A run's allocators went back to back, so a change of the host's speed between runs (these
    VMs have slow and fast phases) cancels in each ratio, where it can tilt medians taken apart."""
    by = {}
    for r in runs:
        if r["ok"] and r.get(key):
            by.setdefault((r["workload"], r["run"]), {})[r["allocator"]] = r[key]
    rs = {}
    for (w, _), vals in by.items():
        if LAB in vals:
            for a, v in vals.items():
                if a != LAB:
                    rs.setdefault((w, a), []).append(vals[LAB] / v)
    return {k: statistics.median(v) for k, v in rs.items()}, rs


def paired_table(out, paired, wls, allocs):
    pr, lists = paired
    rivals = [a for a in allocs if a != LAB and a not in VARIANTS]
    out.append("\n## Time, paired (Labyrinth / rival within each run, median over runs)\n")
    out.append("Each run ran every allocator back to back; the ratio of Labyrinth's time to a rival's is "
               "taken within a run and the median over runs is shown, so a shift of the host's speed between "
               "runs cancels (medians taken apart, above, can be tilted by one). Below 1: Labyrinth faster. "
               f"A verdict other than a tie needs the median more than {TIE:.0%} from 1 *and* at least "
               f"{AGREE:.0%} of the runs on the same side of 1; otherwise the runs disagree and it is a tie.\n")
    out.append("| workload | " + " | ".join(f"lab/{a}" for a in rivals) + " | verdict |")
    out.append("|---|" + "--:|" * len(rivals) + "---|")
    for w in wls:
        cells = [(pr.get((w, a)), a) for a in rivals]
        have = [(r, a) for r, a in cells if r is not None]
        v = "-"
        if have:
            r, who = max(have)  # the rival Labyrinth compares worst with
            xs = lists.get((w, who), [])
            side = sum(1 for x in xs if (x > 1) == (r > 1)) / len(xs) if xs else 0
            agree = f"{sum(1 for x in xs if (x > 1) == (r > 1))} of {len(xs)} runs"
            if r > 1 + TIE and side >= AGREE:
                v = f"**loses** to {who} (+{(r - 1) * 100:.0f}% longer; {agree})"
            elif r < 1 - TIE and side >= AGREE:
                v = f"best ({(1 - r) * 100:.0f}% faster than {who}; {agree})"
            elif abs(r - 1) > TIE:
                v = f"tie with {who} ({(r - 1) * 100:+.0f}%, but only {agree} agree)"
            else:
                v = f"tie with {who} ({(r - 1) * 100:+.0f}%)"
        out.append(f"| {mark(w)} | " + " | ".join(fmt(r, ".2f") for r, _ in cells) + f" | {v} |")
    cw = comparable(wls)
    out.append("| **geomean** | " + " | ".join(
        f"**{gm_text([pr.get((w, a)) for w in cw])}**" for a in rivals) + " | |")


def metric_table(out, title, cells, wls, allocs, spec, unit_word):
    losses = []
    out.append(f"\n## {title}\n")
    has_lab = LAB in allocs
    head = ["workload"] + allocs + (["lab/glibc", "lab/jemalloc", "verdict"] if has_lab else []) + ["spread"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join("---" if i == 0 or h == "verdict" else "--:" for i, h in enumerate(head)) + "|")
    for w in wls:
        row = [mark(w)] + [fmt(cells.get(w, a), spec) for a in allocs]
        if has_lab:
            v, loss = verdict(cells, w, allocs, unit_word)
            if loss and w not in OTHER_API:
                losses.append((w,) + loss)
            row += [fmt(ratio(cells.get(w, LAB), cells.get(w, "glibc")), ".2f"),
                    fmt(ratio(cells.get(w, LAB), cells.get(w, "jemalloc")), ".2f"), v]
        sp = [cells.spread.get((w, a)) for a in allocs if (w, a) in cells.spread]
        row.append(f"±{max(sp) * 50:.0f}%" if sp else "-")
        out.append("| " + " | ".join(row) + " |")
    cw = comparable(wls)
    gm = ["**geomean vs glibc**"] + [
        f"**{gm_text([ratio(cells.get(w, a), cells.get(w, 'glibc')) for w in cw])}**" for a in allocs]
    if has_lab:
        gm += [f"**{gm_text([ratio(cells.get(w, LAB), cells.get(w, 'glibc')) for w in cw])}**",
               f"**{gm_text([ratio(cells.get(w, LAB), cells.get(w, 'jemalloc')) for w in cw])}**", ""]
    out.append("| " + " | ".join(gm + [""]) + " |")
    return losses


def micro_best(micro):
    """The fastest pass of each micro case under each allocator, in ns: ({(case, allocator): ns},
    the cases in their order, each allocator's benchmark context)."""
    best, ctx = {}, {}
    names = []
    for a, m in micro.items():
        if m.get("error"):
            continue  # its passes may be another allocator's figures (a preload that did not take)
        for p in m.get("passes", []):
            res = p.get("result") or {}
            ctx.setdefault(a, res.get("context", {}))
            for b in res.get("benchmarks", []):
                if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                    continue
                n = b["name"].replace("/real_time", "")
                if n not in names:
                    names.append(n)
                ns = b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
                best[n, a] = min(ns, best.get((n, a), float("inf")))
    return best, names, ctx


def micro_tables(out, micro, allocs):
    best, names, ctx = micro_best(micro)
    m_allocs = [a for a in allocs if a in micro and not micro[a].get("error")]
    if not names:
        return
    passes = max(len(m.get("passes", [])) for m in micro.values())
    out.append("\n## Micro-benchmarks (Google Benchmark, ns per operation, lower is better)\n")
    out.append(f"One binary (`bench/micro`) under each allocator; fastest of {passes} pass(es) per case. "
               "`pages_*`: the labyrinth page API under Labyrinth, `aligned_alloc` of the same size for the "
               "others (their nearest equivalent): left out of the geomeans and counts below, since the "
               "two columns run different calls. `*_mt` and `producer_consumer`: 2 threads, and Google "
               "Benchmark divides the wall time by both threads' iterations, so a block moved between them "
               "counts twice (ratios hold; the time per block is twice the figure). All cases of a pass run in "
               "one process, so an allocator's state after one case (glibc raises its mmap threshold after "
               "large frees) carries into the next: a case run alone can read differently.")
    bt = {c.get("library_build_type") for c in ctx.values()}
    if "debug" in bt:
        out[-1] += (" Debian's libbenchmark is a debug build; its overhead stays outside the figures because "
                    "the C bodies run their own batches of 256-1000 operations per call into it.")
    errs = {a: m["error"] for a, m in micro.items() if m.get("error")}
    for a, e in errs.items():
        out.append(f"\n**micro under {a} failed:** {e}")
    same = [n for n in names if not n.startswith(OTHER_API_MICRO)]  # the same call under every allocator
    gms = {a: geomean([ratio(best.get((n, a)), best.get((n, "glibc"))) for n in same]) for a in m_allocs}
    out.append("\nGeomean over the " + str(len(same)) + " cases that run the same calls everywhere, vs glibc: " +
               ", ".join(f"{a} {fmt(gms[a], '.2f')}" for a in m_allocs) + ".")
    if LAB in m_allocs:
        rivals = [a for a in m_allocs if a != LAB]
        ahead = [n for n in same if best.get((n, LAB)) and
                 best[n, LAB] < (1 - TIE) * min(best.get((n, a), float("inf")) for a in rivals)]
        slow = [n for n in same if best.get((n, LAB)) and
                best[n, LAB] > (1 + TIE) * min(best.get((n, a), float("inf")) for a in rivals)]
        out.append(f" Labyrinth is more than {TIE:.0%} ahead of every other allocator in {len(ahead)} of "
                   f"{len(same)} cases, more than {TIE:.0%} behind the best of them in {len(slow)}, and within "
                   f"{TIE:.0%} in the other {len(same) - len(ahead) - len(slow)}.")
    families = []
    for n in names:
        f = n.split("/")[0]
        if f not in families:
            families.append(f)

    def table(rows):
        head = ["case"] + m_allocs + (["lab/glibc", "lab/jemalloc"] if LAB in m_allocs else [])
        out.append("| " + " | ".join(head) + " |")
        out.append("|---|" + "--:|" * (len(head) - 1))
        for n in rows:
            cells = []
            lo = min((best[n, a] for a in m_allocs if (n, a) in best), default=None)
            for a in m_allocs:
                v = best.get((n, a))
                s = fmt(v, ".1f" if v is not None and v < 1000 else ".0f")
                cells.append(f"**{s}**" if v is not None and v == lo else s)
            if LAB in m_allocs:
                cells += [fmt(ratio(best.get((n, LAB)), best.get((n, "glibc"))), ".2f"),
                          fmt(ratio(best.get((n, LAB)), best.get((n, "jemalloc"))), ".2f")]
            out.append(f"| {n} | " + " | ".join(cells) + " |")

    summary_keys = ["malloc_free/16", "malloc_free/64", "malloc_free/256", "malloc_free/1024", "malloc_free/4096",
                    "malloc_free/32768", "malloc_free_mt/64/threads:2", "malloc_free_pages/65536",
                    "malloc_free_pages/1048576", "batch_lifo/64", "batch_fifo/64", "batch_fifo/1024",
                    "calloc/4096", "calloc/1048576", "realloc_grow/65536", "realloc_grow/16777216",
                    "posix_memalign/4096/100", "producer_consumer/64/threads:2",
                    "producer_consumer/4096/threads:2", "pages_default/0", "pages_atomic/0", "pages_atomic/4",
                    "pages_atomic/9"]
    rows = [n for n in summary_keys if n in names] or names[:20]
    out.append("\nSummary (fastest per row in bold; every case is in the appendix):\n")
    table(rows)
    out.append("\n### Appendix: every micro case\n")
    table(names)


def previous_table(out, raw, prev, prev_dir, factor=PREVIOUS_FACTOR):
    """Cases whose Labyrinth/glibc ratio moved by more than `factor` either way since the run in
    prev_dir (raw.json): a ratio, not a time, so that a host faster or slower as a whole moves
    nothing. Found by hand once too late: a system call added to every sixteenth page-sized free
    took malloc_free_runs/102400 from 0.94 to 4.43 times glibc's, over two records."""
    out.append(f"\n## Against the recorded run `{prev_dir}`\n")
    if raw["config"].get("size") != prev["config"].get("size"):
        out.append(f"Not compared: this run's sizes are {raw['config'].get('size')}, that one's "
                   f"{prev['config'].get('size')}.")
        return
    rows = []
    now_b, names, _ = micro_best(raw.get("micro") or {})
    old_b, _, _ = micro_best(prev.get("micro") or {})
    for n in names:
        r_now = ratio(now_b.get((n, LAB)), now_b.get((n, "glibc")))
        r_old = ratio(old_b.get((n, LAB)), old_b.get((n, "glibc")))
        if r_now and r_old:
            rows.append((r_now / r_old, "micro", n, r_old, r_now))
    now_t, old_t = Cells(raw["runs"], "time_s"), Cells(prev["runs"], "time_s")
    now_m, old_m = Cells(raw["runs"], "peak_rss_kib"), Cells(prev["runs"], "peak_rss_kib")
    for w in dict.fromkeys(r["workload"] for r in raw["runs"]):
        for kind, now_c, old_c in (("time", now_t, old_t), ("peak RSS", now_m, old_m)):
            r_now = ratio(now_c.get(w, LAB), now_c.get(w, "glibc"))
            r_old = ratio(old_c.get(w, LAB), old_c.get(w, "glibc"))
            if r_now and r_old:
                rows.append((r_now / r_old, kind, w, r_old, r_now))
    moved = sorted((r for r in rows if r[0] > factor or r[0] < 1 / factor), key=lambda r: -r[0])
    out.append(f"Labyrinth's ratio to glibc in this run and in that one, where it moved by more than {factor:g} "
               f"times either way ({len(moved)} of {len(rows)} rows; glibc's own speed cancels, the host's noise "
               "does not: read a row as a lead to measure again side by side, not as a verdict).\n")
    if not moved:
        out.append("None moved that far.")
        return
    out.append("| what | case | lab/glibc then | lab/glibc now | change |")
    out.append("|---|---|--:|--:|--:|")
    for ch, kind, n, r_old, r_now in moved:
        out.append(f"| {kind} | {n} | {r_old:.2f} | {r_now:.2f} | "
                   f"{'**' if ch > 1 else ''}{ch:.2f}x{'**' if ch > 1 else ''} |")


def mmap_table(out, runs):
    """bench/mmap_bench: median ns per mmap + touch + munmap. Each process measures the raw system
    calls (the kernel), the libc names and the floor (the least any faulting pool must do) in turn,
    so kernel / pooled is taken within a run."""
    cells, speed = {}, {}
    for r in runs:
        per = {}
        for row in r["rows"]:
            key = (int(row["size_kib"]), int(row["threads"]), row["touch"])
            per.setdefault(key, {})[row["mode"]] = float(row["ns_per_op"])
        for key, m in per.items():
            for mode, ns in m.items():
                own = mode in ("kernel", "floor")  # the same in every process: taken from one
                col = mode if own else r["allocator"]
                if not own or r["allocator"] == "labyrinth-mmap":
                    cells.setdefault(key, {}).setdefault(col, []).append(ns)
            if "kernel" in m and "pooled" in m:
                speed.setdefault(key, []).append(m["kernel"] / m["pooled"])
    if not cells:
        return
    cols = [c for c in ("kernel", "glibc", "labyrinth", "labyrinth-mmap", "floor")
            if any(c in v for v in cells.values())]
    n = max(len(v) for c in cells.values() for v in c.values())
    out.append("\n## Pooled anonymous mmap (`bench/mmap_bench`, µs per mmap + touch + munmap, per thread)\n")
    out.append(f"Median of {n} run(s). Each run measures, in one process and in alternating 20 ms batches, "
               "the raw system calls (*kernel*) and the libc names: glibc's, Labyrinth's with `LABYRINTH_MMAP` "
               "off (*labyrinth*), and pooled (*labyrinth-mmap*). *kernel / pooled* is the median of the "
               "ratios taken within each pooled run. *floor*: the least a pool must do per cycle when pages "
               "freed by munmap have to fault (raw mprotect read-write, clear what was written, touch, mprotect PROT_NONE): "
               "kernel / floor bounds what any such pool can gain on this machine. touch *all*: a byte "
               "written in every page; *first*: the first byte only.\n")
    out.append("| size | threads | touch | " + " | ".join(cols) + " | kernel / pooled |")
    out.append("|--:|--:|---|" + "--:|" * (len(cols) + 1))
    for key in sorted(cells, key=lambda k: (k[2] != "all", k[0], k[1])):
        c = cells[key]
        sp = statistics.median(speed[key]) if speed.get(key) else None
        out.append(f"| {key[0]} KiB | {key[1]} | {key[2]} | " +
                   " | ".join(fmt(statistics.median(c[a]) / 1000 if a in c else None, ".1f") for a in cols) +
                   f" | {fmt(sp, '.2f')}× |")


def charts(d, wls, allocs, cells_t, cells_m):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing (apt-get install python3-matplotlib): no charts", file=sys.stderr)
        return False
    colours = {"glibc": "#888888", "jemalloc": "#4c72b0", "mimalloc": "#55a868", "tcmalloc": "#c44e52",
               "labyrinth": "#8172b2", "labyrinth-mmap": "#ccb974", "jemalloc-direct": "#64b5cd"}
    for fname, cells, label in [("time.png", cells_t, "time"), ("rss.png", cells_m, "peak RSS")]:
        groups = [mark(w) for w in wls] + ["geomean"]
        fig, ax = plt.subplots(figsize=(max(10, 0.9 * len(groups) + 2), 4.8))
        width = 0.8 / len(allocs)
        for i, a in enumerate(allocs):
            ys = [ratio(cells.get(w, a), cells.get(w, "glibc")) for w in wls]
            ys.append(geomean([y for w, y in zip(wls, ys) if w not in OTHER_API]))
            xs = [x + (i - (len(allocs) - 1) / 2) * width for x in range(len(groups))]
            ax.bar(xs, [y or 0 for y in ys], width, label=a, color=colours.get(a))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log", base=2)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=30, ha="right")
        ax.set_ylabel(f"{label} / glibc's (log scale, lower is better)")
        ax.set_title(f"Median {label} relative to glibc, per workload", pad=28)
        ax.legend(ncol=len(allocs), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(d, fname), dpi=110)
        plt.close(fig)
    return True


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "results/latest"
    raw = json.load(open(os.path.join(d, "raw.json")))
    runs = raw["runs"]
    wls = list(dict.fromkeys(r["workload"] for r in runs))
    present = set(r["allocator"] for r in runs)
    allocs = [a for a in ORDER if a in present]
    nruns = raw["config"]["runs"]
    cells_t = Cells(runs, "time_s")
    cells_m = Cells(runs, "peak_rss_kib", 1 / 1024)
    cells_f = Cells(runs, "minflt", 1 / 1000)
    failed = [r for r in runs if not r["ok"]]

    out = ["# Allocator comparison\n",
           f"Generated by `scripts/report.py` from `raw.json` — run {raw['date']}, invocation "
           f"`{raw['invocation']}`, {raw['config']['size']} sizes, {nruns} run(s) per cell, allocators "
           f"interleaved run by run ("
           + (f"in an order shuffled for each run and workload, seed {raw['config']['order_seed']}"
              if raw["config"].get("order_seed") is not None else
              "the first one rotating, so each always ran after the same neighbour")
           + f"), medians. Allocators: {', '.join(allocs)}."]
    for a, why in raw.get("excluded", {}).items():
        out.append(f"\n> **{a} was not measured:** {why}")
    if LAB not in allocs:
        out.append("\n> **Labyrinth is not in this run**, so nothing below compares it.")
    for n in raw.get("notes", []):
        out.append(f"\n> {n}")

    # summary first: what a reader wants in five lines
    out.append("\n## Summary\n")
    head = "| | " + " | ".join(allocs) + " |"
    out.append(head)
    out.append("|---|" + "--:|" * len(allocs))
    cw = comparable(wls)
    # rows where some allocator is ten times faster or slower than glibc: one such row can decide
    # a geomean (review: `large`, whose realloc growth Labyrinth does by mremap, at 0.02)
    outl = [w for w in cw if any(r and (r < 1 / OUTLIER or r > OUTLIER) for r in
                                 (ratio(cells_t.get(w, a), cells_t.get(w, "glibc")) for a in allocs))]
    for label, cells in [("time, geomean vs glibc", cells_t), ("peak RSS, geomean vs glibc", cells_m)]:
        out.append(f"| {label} | " + " | ".join(
            gm_text([ratio(cells.get(w, a), cells.get(w, 'glibc')) for w in cw]) for a in allocs) + " |")
        if label.startswith("time") and outl:
            rest = [w for w in cw if w not in outl]
            out.append(f"| time, geomean vs glibc, without {', '.join(outl)} | " + " | ".join(
                gm_text([ratio(cells.get(w, a), cells.get(w, 'glibc')) for w in rest]) for a in allocs) + " |")
        if label.startswith("time"):
            out.append("| time, median of ratios vs glibc | " + " | ".join(
                fmt(statistics.median(xs), ".2f") if xs else "-" for xs in
                ([x for x in (ratio(cells.get(w, a), cells.get(w, 'glibc')) for w in cw) if x] for a in allocs))
                + " |")
    if "jemalloc" in allocs:
        out.append("| time, geomean vs jemalloc | " + " | ".join(
            gm_text([ratio(cells_t.get(w, a), cells_t.get(w, 'jemalloc')) for w in cw]) for a in allocs) + " |")
    # a workload counts as won only when the fastest is more than TIE ahead of the next
    wins, ties = {a: 0 for a in allocs}, 0
    for w in cw:
        vals = sorted((cells_t.get(w, a), a) for a in allocs if cells_t.get(w, a) is not None)
        if len(vals) > 1 and vals[0][0] < (1 - TIE) * vals[1][0]:
            wins[vals[0][1]] += 1
        elif vals:
            ties += 1
    out.append(f"| workloads fastest in (by more than {TIE:.0%}) | " + " | ".join(str(wins[a]) for a in allocs)
               + " |")
    out.append(f"\nOver the {len(cw)} workloads that run the same calls under every allocator"
               + (f" (not {', '.join(w for w in wls if w in OTHER_API)}, marked †: "
                  + "; ".join(OTHER_API[w] for w in wls if w in OTHER_API) + ")" if len(cw) < len(wls) else "")
               + f"; in {ties} of them the two fastest are within {TIE:.0%} of each other (no winner)."
               + (f" A geomean weighs a row of ratio 0.02 as much as a row of 50: {', '.join(outl)} "
                  f"{'has' if len(outl) == 1 else 'have'} an allocator under a tenth or over ten times "
                  "glibc's time, hence the row without, and the median of ratios." if outl else ""))

    losses_t = metric_table(out, "Time (median seconds, lower is better)", cells_t, wls, allocs, ".3f", "faster")
    out.append("\nTime is the workload's own `elapsed_s` (set-up and process start excluded); gcc's, sort's and "
               "spawn's (short programs started one after another) are the process's wall time. *spread*: "
               "half the largest (max - min) / median of any allocator in that row, i.e. how far apart "
               "repeated runs were.")
    if LAB in allocs:
        paired_table(out, paired_ratios(runs, "time_s"), wls, allocs)
    losses_m = metric_table(out, "Peak RSS (median MiB, lower is better)", cells_m, wls, allocs, ".1f", "smaller")
    out.append("\nPeak RSS is the kernel's `ru_maxrss` of the measured process (wait4), children included "
               "for gcc, sort and spawn (the largest of them); the measuring wrapper adds about 1 MiB to every "
               "allocator alike.")

    out.append("\n## Minor page faults (median, thousands; page faults are dear on these VMs)\n")
    out.append("| workload | " + " | ".join(allocs) + " |")
    out.append("|---|" + "--:|" * len(allocs))
    for w in wls:
        out.append(f"| {w} | " + " | ".join(fmt(cells_f.get(w, a), ".1f") for a in allocs) + " |")

    if LAB in allocs:
        out.append("\n## Where Labyrinth loses\n")
        if losses_t:
            out.append("Time — Labyrinth is more than 5% slower than the best other allocator on: " + "; ".join(
                f"**{w}** (+{(r - 1) * 100:.0f}% time against {who})" for w, who, r in losses_t) + ".")
        else:
            out.append("Time: nowhere by more than 5% in this run.")
        slower_glibc = [w for w in wls if ratio(cells_t.get(w, LAB), cells_t.get(w, "glibc")) and
                        cells_t.get(w, LAB) > (1 + TIE) * cells_t.get(w, "glibc")]
        slower_je = [w for w in wls if ratio(cells_t.get(w, LAB), cells_t.get(w, "jemalloc")) and
                     cells_t.get(w, LAB) > (1 + TIE) * cells_t.get(w, "jemalloc")]
        out.append(f"\nSlower than glibc: {', '.join(slower_glibc) or 'none'}. "
                   f"Slower than jemalloc: {', '.join(slower_je) or 'none'}.")
        if losses_m:
            out.append("\nPeak RSS — more than 5% above the leanest other allocator on: " + "; ".join(
                f"**{w}** (+{(r - 1) * 100:.0f}% against {who})" for w, who, r in losses_m) + ".")
        else:
            out.append("\nPeak RSS: nowhere more than 5% above the leanest other allocator.")

    if "jemalloc-direct" in present:
        out.append("\n## Cross-check: jemalloc preloaded vs linked in\n")
        out.append("The same workloads built twice: `wl` with `LD_PRELOAD=libjemalloc.so.2`, and `wl-jemalloc` "
                   "linked against it (`-DLAB_BENCH_DIRECT_JEMALLOC=ON`). Ratios near 1 mean preloading does "
                   "not distort the figures.\n")
        out.append("| workload | preloaded (s) | linked (s) | linked/preloaded | RSS preloaded | RSS linked |")
        out.append("|---|--:|--:|--:|--:|--:|")
        rs = []
        for w in wls:
            p, l = cells_t.get(w, "jemalloc"), cells_t.get(w, "jemalloc-direct")
            if l is None:
                continue
            rs.append(ratio(l, p))
            out.append(f"| {w} | {fmt(p, '.3f')} | {fmt(l, '.3f')} | {fmt(ratio(l, p), '.2f')} | "
                       f"{fmt(cells_m.get(w, 'jemalloc'), '.1f')} | {fmt(cells_m.get(w, 'jemalloc-direct'), '.1f')} |")
        out.append(f"| **geomean** | | | **{fmt(geomean(rs), '.2f')}** | | |")

    micro_tables(out, raw.get("micro") or {}, allocs)
    mmap_table(out, raw.get("mmap_bench") or [])
    prev_dir = sys.argv[2] if len(sys.argv) > 2 else None
    if prev_dir and LAB in allocs and os.path.exists(os.path.join(prev_dir, "raw.json")):
        previous_table(out, raw, json.load(open(os.path.join(prev_dir, "raw.json"))), prev_dir)

    out.append("\n## Environment\n")
    m = raw["machine"]
    out.append(f"- Machine: {m['cpu']}, {m['cpus']} CPUs, {m['mem']} RAM; kernel {m['uname']['release']}; "
               f"Debian {m.get('debian', '?')}; THP `{m['thp_enabled']}`; overcommit {m['overcommit_memory']}.")
    v = raw["versions"]
    parts = []
    for a in allocs:
        if a == LAB:
            parts.append(f"labyrinth {v.get(a, {}).get('git', '?')} (`{raw['preloads'].get(a, '')}`)")
        elif a in v:
            parts.append(f"{a} {v[a].get('version', '?')}" + (f" (`{v[a]['realpath']}`)" if v[a].get("realpath") else ""))
    out.append("- Allocators: " + "; ".join(parts) + ". glibc runs with no preload; tcmalloc is Debian's "
               "`libtcmalloc_minimal` (no heap profiler), the variant benchmarks use.")
    mb = raw.get("mimalloc_build")
    if mb:
        out.append(f"- mimalloc build: **{'DEBUG build — its figures are pessimistic' if mb['debug_build'] else 'release build'}** "
                   f"(checked: {mb['evidence']}).")
    if v.get("libbenchmark1debian"):
        out.append(f"- Google Benchmark {v['libbenchmark1debian'].get('version', '?')}; gcc {v.get('gcc', {}).get('version', '?')}; "
                   f"python3 {v.get('python3', {}).get('version', '?')}.")
    if raw["config"].get("labyrinth_env"):
        out.append(f"- Labyrinth options in the environment: {raw['config']['labyrinth_env']}.")
    out.append(f"- Workload sizes: " + ", ".join(f"{k} {x['threads']}t n={x['n']}" for k, x in
                                                raw["config"]["workload_sizes"].items()) + "; python3 and gcc "
               "as in the commands recorded in raw.json.")
    out.append(f"- Harness {raw.get('harness', '?')}; {raw.get('measurement', '')}")

    if failed:
        out.append("\n## Failed runs (left out of every median)\n")
        for r in failed:
            out.append(f"- {r['workload']} under {r['allocator']} (run {r['run'] + 1}): {r['fail_reason']}"
                       + (f" — `{r['stderr_tail'].strip()[-160:]}`" if r.get("stderr_tail", "").strip() else ""))

    open(os.path.join(d, "report.md"), "w").write("\n".join(out) + "\n")
    drawn = charts(d, wls, [a for a in allocs] + (["jemalloc-direct"] if "jemalloc-direct" in present else []),
           cells_t, cells_m)
    print(f"report.py: wrote {d}/report.md" + (", time.png, rss.png" if drawn else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
