#!/usr/bin/env bash
# Generator throughput (edgelens generate, one thread) and peak memory.
# Usage: bench/generate.sh [EVENTS_PER_SECOND] [DURATION] [SCENARIO]
#   (defaults: 20000 events/s of event time for 5m = ~6M events, scenario mixed, 10000 sites)
# Runs twice: into /dev/null (the generator's own speed) and into a plain NDJSON file (what a user
# gets, bounded by the disk; no gzip, which would measure gzip). Prints Markdown rows for
# bench/RESULTS.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
RPS=${1:-20000}
DURATION=${2:-5m}
SCENARIO=${3:-mixed}
bench_build
ARGS=(generate --scenario "$SCENARIO" --seed 42 --duration "$DURATION" --rps "$RPS" --sites 10000)
/usr/bin/time -f "%e %U %S %M" "$BIN" "${ARGS[@]}" --out /dev/null 2> "$WORK/generate-null.txt"
read -r NWALL NUSER NSYS NRSS < <(tail -n 1 "$WORK/generate-null.txt")
OUT=$WORK/generate-bench.ndjson
/usr/bin/time -v "$BIN" generate --scenario "$SCENARIO" --seed 42 --duration "$DURATION" --rps "$RPS" --sites 10000 \
  --out "$OUT" 2> "$WORK/generate-time.txt"
EVENTS=$(wc -l < "$OUT")
SIZE=$(du -h "$OUT" | cut -f1)
rm -f "$OUT"
python3 - "$EVENTS" "$SIZE" "$WORK/generate-time.txt" "$NWALL" "$NUSER" "$NSYS" "$NRSS" <<'PY'
import re, sys
events, size, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
nwall, ncpu, nrss = float(sys.argv[4]), float(sys.argv[5]) + float(sys.argv[6]), int(sys.argv[7])
t = open(path).read()
def field(name):
    return re.search(re.escape(name) + r": (.*)", t).group(1).strip()
wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
wall_s = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
rss = int(field("Maximum resident set size (kbytes)"))
print("| events | output | wall s | CPU s | events/s (wall) | events/s per CPU-second | peak RSS |")
print("|---|---|---|---|---|---|---|")
print(f"| {events:,} | /dev/null | {nwall:.2f} | {ncpu:.2f} | {events/nwall:,.0f} | {events/ncpu:,.0f} | {nrss/1024:.0f} MiB |")
print(f"| {events:,} | {size} NDJSON file | {wall_s:.2f} | {cpu:.2f} | {events/wall_s:,.0f} | {events/cpu:,.0f} | {rss/1024:.0f} MiB |")
PY
