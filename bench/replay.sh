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
PY
