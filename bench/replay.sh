#!/usr/bin/env bash
# Replay throughput and peak memory of the embedded pipeline (edgelens replay) on a generated file.
# Usage: bench/replay.sh [EVENTS_PER_SECOND] [DURATION]   (defaults: 4000 events/s for 10m ≈ 2.4M events)
# Prints a Markdown block for bench/RESULTS.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
RPS=${1:-4000}
DURATION=${2:-10m}
bench_build
bench_input "$RPS" "$DURATION"
SIZE=$(du -h "$FILE" | cut -f1)
rm -rf "$WORK/lake"
/usr/bin/time -v "$BIN" replay "$FILE" --data-dir "$WORK/lake" > "$WORK/summary.json" 2> "$WORK/time.txt"
SECS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$WORK/summary.json")
CPU=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{print u+s}' "$WORK/time.txt")
RSS=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/time.txt")
python3 - "$LINES" "$SECS" "$CPU" "$RSS" "$SIZE" "$RPS" "$DURATION" <<'PY'
import sys
lines, secs, cpu, rss, size, rps, dur = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
print(f"| events | file | wall s | CPU s | events/s (wall) | events/s per CPU-second | peak RSS |")
print(f"|---|---|---|---|---|---|---|")
print(f"| {lines:,} | {size} NDJSON | {secs:.2f} | {cpu:.2f} | {lines/secs:,.0f} | {lines/cpu:,.0f} | {rss/1024:.0f} MiB |")
sys.path.insert(0, "bench")
from record import record
record("replay", events=lines, wall_s=secs, cpu_s=cpu, eps_wall=lines / secs, eps_per_cpu=lines / cpu, peak_rss_mib=rss / 1024)
PY
# The lake's bytes per raw event.
python3 - "$LINES" "$WORK/lake" <<'PY'
import os, sys
sys.path.insert(0, "bench")
from record import record
lines, lake = int(sys.argv[1]), sys.argv[2]
total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(lake) for f in fs if f.endswith(".parquet"))
print(f"\nLake: {total:,} bytes of Parquet for {lines:,} events = {total / lines:.1f} bytes per raw event")
record("storage_lake", events=lines, bytes=total, bytes_per_event=total / lines)
PY
