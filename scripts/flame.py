#!/usr/bin/env python3
"""flame.py — the analysis half of scripts/profile.sh, written here because FlameGraph is not
packaged in Debian.

  flame.py fold PERF_SCRIPT_TXT OUTDIR [--title T]
      reads `perf script` output (samples with call chains and DSOs) and writes OUTDIR/folded.txt
      (one "frame;frame;leaf count" per stack; allocator frames tagged _[a], kernel frames _[k]),
      OUTDIR/top.txt (symbols by self time, allocator code marked) and OUTDIR/shares.json.
  flame.py svg FOLDED SVG [TITLE]
      draws a self-contained flame graph (no JavaScript: each frame has a tooltip); allocator
      frames blue, kernel frames orange, the rest warm.

A sample is charged to the allocator when its innermost user-space frame is allocator code: the
allocator's own instructions, and the kernel work (system calls, page faults) done inside them.
Kernel work under the program's own frames is mostly first-touch page faults on memory the
allocator handed out fresh instead of reusing; it is reported on its own line."""
import html
import json
import os
import re
import sys
import zlib

# the preloaded allocators, by library name
ALLOC_DSO = re.compile(r"liblabyrinth|libjemalloc|libmimalloc|libtcmalloc")
# glibc's malloc lives inside libc.so.6 among everything else: named by symbol
GLIBC_MALLOC = re.compile(r"^(_int_|__libc_(malloc|free|calloc|realloc|memalign|valloc|pvalloc)|malloc|free|cfree|"
                          r"calloc|realloc|reallocarray|tcache|sysmalloc|systrim|arena_|unlink_chunk|heap_trim|"
                          r"new_heap|shrink_heap|grow_heap|mremap_chunk|munmap_chunk|_mid_memalign|posix_memalign|"
                          r"__posix_memalign|aligned_alloc|memalign|pvalloc|valloc|ptmalloc_|alloc_perturb)")
FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def is_kernel(dso):
    return dso.startswith("[kernel") or dso in ("[vdso]",) or dso.endswith(".ko")


def is_alloc(sym, dso):
    base = os.path.basename(dso)
    if ALLOC_DSO.search(base):
        return True
    return base.startswith("libc.so") and bool(GLIBC_MALLOC.match(sym))


def clean(sym, dso):
    if sym in ("[unknown]", ""):
        base = os.path.basename(dso)
        return base if base.startswith("[") else f"[{base}]"
    return re.sub(r"\+0x[0-9a-f]+$", "", sym)


def samples(path):
    """Yields (comm, [(sym, dso), ...] innermost first) per sample."""
    comm, frames = None, []
    for line in open(path, errors="replace"):
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
            continue
        if line[0] not in " \t":
            if comm is not None:
                yield comm, frames
            comm, frames = line.split()[0], []
            continue
        m = FRAME.match(line)
        if m:
            frames.append((clean(m.group(2), m.group(3)), m.group(3)))
    if comm is not None:
        yield comm, frames


def fold(src, outdir, title):
    stacks, self_t = {}, {}
    total = alloc = alloc_kernel = prog_kernel = 0
    for comm, frames in samples(src):
        if not frames:
            continue
        total += 1
        user = next(((s, d) for s, d in frames if not is_kernel(d)), None)
        leaf_s, leaf_d = frames[0]
        charged = user is not None and is_alloc(*user)
        if charged:
            alloc += 1
            if is_kernel(leaf_d):
                alloc_kernel += 1
        elif is_kernel(leaf_d):
            prog_kernel += 1
        parts = [comm]
        for s, d in reversed(frames):
            parts.append(s + ("_[k]" if is_kernel(d) else "_[a]" if is_alloc(s, d) else ""))
        key = ";".join(p.replace(";", ":").replace(" ", "_") for p in parts)
        stacks[key] = stacks.get(key, 0) + 1
        mark = "A" if is_alloc(leaf_s, leaf_d) else ("k" if charged else ("K" if is_kernel(leaf_d) else " "))
        k = (leaf_s, os.path.basename(leaf_d), mark)
        self_t[k] = self_t.get(k, 0) + 1
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "folded.txt"), "w") as f:
        for k, v in sorted(stacks.items()):
            f.write(f"{k} {v}\n")
    pct = (lambda n: 100.0 * n / total) if total else (lambda n: 0.0)
    shares = {"samples": total, "allocator_pct": pct(alloc), "allocator_user_pct": pct(alloc - alloc_kernel),
              "allocator_kernel_pct": pct(alloc_kernel), "program_kernel_pct": pct(prog_kernel),
              "program_user_pct": pct(total - alloc - prog_kernel)}
    with open(os.path.join(outdir, "shares.json"), "w") as f:
        json.dump(shares, f, indent=1)
    with open(os.path.join(outdir, "top.txt"), "w") as f:
        f.write(f"# {title}\n# {total} cpu-clock samples. Self time per symbol; mark: A = allocator code, "
                "k = kernel inside an allocator call,\n# K = kernel under the program (mostly page faults on fresh "
                "memory), blank = the program.\n")
        f.write(f"# allocator {shares['allocator_pct']:.1f}% (its code {shares['allocator_user_pct']:.1f}%, "
                f"kernel inside it {shares['allocator_kernel_pct']:.1f}%); kernel under the program "
                f"{shares['program_kernel_pct']:.1f}%; the program {shares['program_user_pct']:.1f}%\n\n")
        f.write(f"{'self%':>7} {'samples':>8} mark  symbol [dso]\n")
        for (s, d, mark), n in sorted(self_t.items(), key=lambda x: -x[1])[:60]:
            f.write(f"{pct(n):6.2f}% {n:8d}  {mark}    {s} [{d}]\n")
    return shares


def load(path):
    root = {"n": 0, "c": {}}
    for line in open(path, errors="replace"):
        stack, _, cnt = line.rstrip("\n").rpartition(" ")
        if not stack or not cnt.isdigit():
            continue
        node = root
        node["n"] += int(cnt)
        for fr in stack.split(";"):
            node = node["c"].setdefault(fr, {"n": 0, "c": {}})
            node["n"] += int(cnt)
    return root


def colour(name):
    h = zlib.crc32(name.encode()) % 55
    if name.endswith("_[a]"):
        return f"rgb({70 + h // 2},{120 + h},{225})"
    if name.endswith("_[k]"):
        return f"rgb({230},{150 + h},{60 + h // 2})"
    return f"rgb({215 + h // 2},{85 + h * 2 // 3},{55 + h // 3})"


def svg(folded, out, title):
    root = load(folded)
    width, rowh, top = 1200, 16, 46
    rects, depth_max = [], [0]

    def walk(node, name, x, depth):
        w = node["n"] / root["n"] * width if root["n"] else 0
        if w < 0.25:
            return
        depth_max[0] = max(depth_max[0], depth)
        if name is not None:
            rects.append((x, depth, w, name, node["n"]))
        cx = x
        for cname, child in sorted(node["c"].items()):
            walk(child, cname, cx, depth + 1)
            cx += child["n"] / root["n"] * width
    walk(root, None, 0.0, -1)
    height = top + (depth_max[0] + 2) * rowh + 10
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="monospace" font-size="11">',
         f'<rect width="100%" height="100%" fill="#fdfdf6"/>',
         f'<text x="5" y="16" font-size="14">{html.escape(title)}</text>',
         f'<text x="5" y="32" font-size="11">{root["n"]} samples; blue: allocator, orange: kernel, '
         f'warm: the program. Hover for counts.</text>']
    for x, d, w, name, n in rects:
        y = height - 10 - (d + 1) * rowh
        label = name[:-4] if name.endswith(("_[a]", "_[k]")) else name
        s.append(f'<g><title>{html.escape(label)} ({n} samples, {100.0 * n / root["n"]:.2f}%)</title>'
                 f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{rowh - 1}" fill="{colour(name)}" rx="1"/>')
        chars = int(w / 6.6)
        if chars >= 3:
            t = label if len(label) <= chars else label[:chars - 2] + ".."
            s.append(f'<text x="{x + 2:.1f}" y="{y + 11}">{html.escape(t)}</text>')
        s.append("</g>")
    s.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(s) + "\n")


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "fold":
        title = a[a.index("--title") + 1] if "--title" in a else a[1]
        print(json.dumps(fold(a[1], a[2], title)))
    elif len(a) >= 3 and a[0] == "svg":
        svg(a[1], a[2], a[3] if len(a) > 3 else "flame graph")
    elif len(a) >= 2 and a[0] not in ("fold", "svg"):  # the old form: flame.py FOLDED SVG [TITLE]
        svg(a[0], a[1], a[2] if len(a) > 2 else "flame graph")
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
