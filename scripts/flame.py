#!/usr/bin/env python3
"""flame.py FOLDED SVG [TITLE] — draws a flame graph from folded stacks ("a;b;c 123" per line) as
a self-contained SVG (no JavaScript needed; each frame has a <title> tooltip). Written here because
FlameGraph is not packaged in Debian. Frames from the allocator are coloured blue, others warm."""
import html
import sys
import zlib

ALLOC = ("lab_", "labyrinth_", "malloc", "free", "calloc", "realloc", "span_", "heap_", "pool_",
         "room_", "store_", "shared_", "zone_", "stack_", "je_", "mi_", "tc_", "_int_malloc", "_int_free",
         "tcmalloc", "operator new", "operator delete")


def load(path):
    root = {"n": 0, "c": {}}
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line or " " not in line:
            continue
        stack, cnt = line.rsplit(" ", 1)
        try:
            cnt = int(cnt)
        except ValueError:
            continue
        node = root
        node["n"] += cnt
        for fr in stack.split(";"):
            node = node["c"].setdefault(fr, {"n": 0, "c": {}})
            node["n"] += cnt
    return root


def color(name):
    h = zlib.crc32(name.encode()) % 60
    if name.startswith(ALLOC) or "labyrinth" in name:
        return f"rgb({80 + h // 2},{130 + h},{230})"
    return f"rgb({225 + h // 3},{100 + h * 2},{40 + h // 2})"


def main():
    folded, out = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "flame graph"
    root = load(folded)
    width, rowh = 1200, 16
    rects = []
    maxdepth = [0]

    def walk(node, name, x, depth):
        w = node["n"] / root["n"] * width if root["n"] else 0
        if w < 0.3:
            return
        maxdepth[0] = max(maxdepth[0], depth)
        if name is not None:
            rects.append((x, depth, w, name, node["n"]))
        cx = x
        for cname, child in sorted(node["c"].items()):
            walk(child, cname, cx, depth + 1)
            cx += child["n"] / root["n"] * width
    walk(root, None, 0, -1)
    height = (maxdepth[0] + 3) * rowh + 30
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">',
           f'<text x="5" y="16" font-size="14">{html.escape(title)} ({root["n"]} samples)</text>']
    for x, d, w, name, n in rects:
        y = height - (d + 2) * rowh
        pct = 100.0 * n / root["n"]
        svg.append(f'<g><title>{html.escape(name)} ({n} samples, {pct:.2f}%)</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{rowh - 1}" fill="{color(name)}"/>')
        chars = int(w / 7)
        if chars >= 3:
            label = name if len(name) <= chars else name[:chars - 2] + ".."
            svg.append(f'<text x="{x + 2:.1f}" y="{y + 11}">{html.escape(label)}</text>')
        svg.append("</g>")
    svg.append("</svg>")
    open(out, "w").write("\n".join(svg))


if __name__ == "__main__":
    main()
