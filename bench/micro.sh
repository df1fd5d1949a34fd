#!/usr/bin/env bash
# Criterion micro-benchmarks of the hot paths (aggregate/benches/hot_paths.rs): event parse, window
# update, sketch merge, detector per event and per tick. Prints a Markdown table (time per run,
# per element, elements/s) and appends one CSV row per benchmark to bench/micro-history.csv (date,
# commit, benchmark, ns per element), then shows the change against the previous recorded run of
# each benchmark — the tracked history of these numbers.
# Usage: bench/micro.sh [--no-record]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
record=1
[ "${1:-}" = --no-record ] && record=0

cargo bench --quiet -p edgelens-aggregate --bench hot_paths >"$WORK/micro.log" 2>&1 || { tail -n 30 "$WORK/micro.log" >&2; exit 1; }
python3 - "$CARGO_TARGET_DIR/criterion" bench/micro-history.csv "$record" "$(git rev-parse --short HEAD)" <<'PY'
import csv, datetime, json, os, sys
root, history, record, commit = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
order = ["parse/parse_line", "windows/observe", "windows/observe_and_close", "sketch/merge",
         "sketch/merge_stored_bytes", "sketch/insert_200_clients", "detector/observe", "detector/tick_10k_sites"]
previous = {}
if os.path.exists(history):
    for row in csv.DictReader(open(history)):
        previous[row["benchmark"]] = float(row["ns_per_element"])
rows = []
print("| benchmark | time per run | per element | elements/s | vs last recorded |")
print("|---|---|---|---|---|")
for name in order:
    d = os.path.join(root, *name.split("/"), "new")
    est = json.load(open(os.path.join(d, "estimates.json")))
    bench = json.load(open(os.path.join(d, "benchmark.json")))
    ns = est["mean"]["point_estimate"]
    elements = (bench.get("throughput") or {}).get("Elements", 1)
    per = ns / elements
    before = previous.get(name)
    change = f"{(per / before - 1) * 100:+.1f} %" if before else "—"
    fmt = lambda v: f"{v / 1e6:.2f} ms" if v >= 1e6 else (f"{v / 1e3:.2f} µs" if v >= 1e3 else f"{v:.1f} ns")
    print(f"| {name} | {fmt(ns)} | {fmt(per)} | {1e9 / per:,.0f} | {change} |")
    rows.append({"date": datetime.date.today().isoformat(), "commit": commit, "benchmark": name, "ns_per_element": f"{per:.2f}"})
if record:
    new = not os.path.exists(history)
    with open(history, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["date", "commit", "benchmark", "ns_per_element"])
        if new:
            w.writeheader()
        w.writerows(rows)
PY
