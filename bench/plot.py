#!/usr/bin/env python3
"""The benchmark suite's plot: an SVG drawn from the JSON lines bench/run.sh collected (no plotting
library needed). Four panels: aggregation throughput per CPU-second of each engine at each input
size; replay throughput and peak memory versus the number of sites; distributed throughput versus
aggregator processes; query latency p50 over the same data, edgelens on its lake and on ClickHouse,
and DuckDB.
Usage: plot.py RESULTS.jsonl OUT.svg"""
import json
import sys
from html import escape

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
W, H = 1100, 760
PW, PH = 460, 250  # plot area of one panel
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>']


def text(x, y, s, anchor="start", size=12, weight="normal", rotate=None):
    tr = f' transform="rotate({rotate} {x} {y})"' if rotate else ""
    out.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" font-weight="{weight}"{tr}>{escape(str(s))}</text>')


def human(v):
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def axes(x0, y0, title, ylabel, ymax):
    """Frame of a panel whose plot area's top-left corner is (x0, y0); returns y → pixel."""
    text(x0 + PW / 2, y0 - 14, title, "middle", 14, "bold")
    out.append(f'<line x1="{x0}" y1="{y0 + PH}" x2="{x0 + PW}" y2="{y0 + PH}" stroke="black"/>')
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + PH}" stroke="black"/>')
    ymax = ymax or 1
    for i in range(5):
        v = ymax * i / 4
        y = y0 + PH - PH * i / 4
        out.append(f'<line x1="{x0 - 4}" y1="{y:.1f}" x2="{x0 + PW}" y2="{y:.1f}" stroke="#ddd"/>')
        text(x0 - 6, y + 4, human(v), "end", 10)
    text(x0 - 48, y0 + PH / 2, ylabel, "middle", 11, rotate=-90)
    return lambda v: y0 + PH - PH * v / ymax


def bars(x0, y0, title, ylabel, groups, series, legend_right=False):
    """groups: x labels; series: [(name, [value or None per group])]."""
    ymax = max([v for _, vs in series for v in vs if v] or [1]) * 1.15
    ypix = axes(x0, y0, title, ylabel, ymax)
    gw = PW / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    for gi, g in enumerate(groups):
        for li, part in enumerate(g.split(", ")):
            text(x0 + gw * gi + gw / 2, y0 + PH + 16 + 13 * li, part, "middle", 10)
        for si, (name, vs) in enumerate(series):
            v = vs[gi]
            if not v:
                continue
            x = x0 + gw * gi + gw * 0.1 + bw * si
            out.append(f'<rect x="{x:.1f}" y="{ypix(v):.1f}" width="{bw - 2:.1f}" height="{y0 + PH - ypix(v):.1f}" fill="{PALETTE[si % 6]}"/>')
            text(x + bw / 2 - 1, ypix(v) - 3, human(v), "middle", 9)
    for si, (name, _) in enumerate(series):
        lx, ly = (x0 + PW - 150 if legend_right else x0 + 8), y0 + 10 + 14 * si
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[si % 6]}"/>')
        text(lx + 14, ly, name, size=10)


def lines(x0, y0, title, ylabel, xs, series, xlabel, label=None):
    ymax = max([v for _, vs in series for v in vs if v] or [1]) * 1.15
    ypix = axes(x0, y0, title, ylabel, ymax)
    step = PW / max(len(xs) - 1, 1) if len(xs) > 1 else 0
    for i, x in enumerate(xs):
        text(x0 + step * i if len(xs) > 1 else x0 + PW / 2, y0 + PH + 16, x, "middle", 11)
    text(x0 + PW / 2, y0 + PH + 32, xlabel, "middle", 11)
    for si, (name, vs) in enumerate(series):
        pts = [(x0 + step * i if len(xs) > 1 else x0 + PW / 2, ypix(v)) for i, v in enumerate(vs) if v]
        out.append(f'<polyline fill="none" stroke="{PALETTE[si % 6]}" stroke-width="2" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>')
        for (x, y), v in zip(pts, [v for v in vs if v]):
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{PALETTE[si % 6]}"/>')
            text(x, y - 6, (label or {}).get(name, human)(v), "middle", 9)
        lx, ly = x0 + PW - 190, y0 + 10 + 14 * si
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{PALETTE[si % 6]}"/>')
        text(lx + 14, ly, name, size=10)


def of(bench):
    return [r for r in rows if r["bench"] == bench]


# 1. Throughput per CPU-second by engine and input size.
engines = [("edgelens replay", "replay"), ("broker → edgelens aggregate", "kafka_aggregate"),
           ("edgelens → ClickHouse", "edgelens_to_clickhouse"), ("ClickHouse MVs", "clickhouse_mv"), ("DuckDB", "duckdb_rollups")]
sizes = sorted({r["events"] for r in rows if r["bench"] in dict(engines).values()})
labels = [f"{human(s)} events" for s in sizes]
series = [(name, [next((r["eps_per_cpu"] for r in of(b) if r["events"] == s), None) for s in sizes]) for name, b in engines]
series = [(n, vs) for n, vs in series if any(vs)]
bars(80, 60, "Aggregation throughput (events per CPU-second)", "events / CPU-s", labels, series)

# 2. Replay versus the number of sites.
pts = sorted(of("scale_sites"), key=lambda r: r["sites"])
lines(620, 60, "Replay versus sites (1M events)", "events / CPU-s  ·  MiB", [human(r["sites"]) for r in pts],
      [("events per CPU-second", [r["eps_per_cpu"] for r in pts]), ("peak RSS (MiB, scaled ×1000)", [r["peak_rss_mib"] * 1000 for r in pts])], "sites",
      label={"peak RSS (MiB, scaled ×1000)": lambda v: f"{v / 1000:.0f} MiB"})

# 3. Aggregator processes.
pts = sorted(of("scale_aggregators"), key=lambda r: r["processes"])
lines(80, 440, "Broker → aggregators in one group (2 cores)", "events / s", [str(r["processes"]) for r in pts],
      [("events/s (wall)", [r["eps_wall"] for r in pts]), ("events per CPU-second", [r["eps_per_cpu"] for r in pts])], "aggregator processes")

# 4. Query latency p50 over the same data: edgelens on its lake and on ClickHouse, and DuckDB.
q = of("query_backends")
bars(620, 440, "Query latency p50, same data (ms)", "ms", [r["question"].replace("traffic share", "share").replace("site rates", "rates") for r in q],
     [("edgelens, lake", [r["lake_p50_ms"] for r in q]), ("edgelens, ClickHouse", [r["clickhouse_p50_ms"] for r in q]),
      ("DuckDB", [r.get("duckdb_p50_ms") for r in q])] if q else [], legend_right=True)
out.append("</svg>")
open(sys.argv[2], "w").write("\n".join(out))
