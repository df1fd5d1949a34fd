#!/usr/bin/env bash
# Scaling curves of the aggregation, each point with its peak memory:
#   1. events/s of `edgelens replay` versus the number of sites (1k → 1M), 1M events each
#      (mixed scenario, 4000 events/s of event time for 250 s, seed 42);
#   2. events/s of the distributed path versus the number of `edgelens aggregate` processes in one
#      group (1 → 3 on this machine) draining the same 1M events (10 000 sites) from an 8-partition
#      topic of the dev broker (tansu, memory storage, on the same 2 cores).
# Usage: bench/scaling.sh [SITES...]   (default: 1000 10000 100000 1000000)
# Prints Markdown tables; records to $EDGELENS_BENCH_JSON (bench/record.py).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SITES=("$@")
((${#SITES[@]})) || SITES=(1000 10000 100000 1000000)
bench_build

scale_file() { # SITES — sets FILE and LINES (at 10 000 sites, the 1M-event file of bench/run.sh)
  BENCH_SITES=$1 bench_input 4000 250s
}

echo "| sites | events | wall s | CPU s | events/s (wall) | events/s per CPU-second | peak RSS |"
echo "|---|---|---|---|---|---|---|"
for s in "${SITES[@]}"; do
  scale_file "$s"
  rm -rf "$WORK/scale-lake"
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/scale.time" "$BIN" replay "$FILE" --data-dir "$WORK/scale-lake" > /dev/null
  read -r wall user sys rss < "$WORK/scale.time"
  python3 - "$s" "$LINES" "$wall" "$user" "$sys" "$rss" <<'PY'
import sys
sys.path.insert(0, "bench")
from record import record
sites, lines, wall, user, sys_, rss = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
cpu = user + sys_
print(f"| {sites:,} | {lines:,} | {wall:.2f} | {cpu:.2f} | {lines / wall:,.0f} | {lines / cpu:,.0f} | {rss / 1024:.0f} MiB |")
record("scale_sites", sites=sites, events=lines, wall_s=wall, cpu_s=cpu, eps_wall=lines / wall, eps_per_cpu=lines / cpu, peak_rss_mib=rss / 1024)
PY
done
rm -rf "$WORK/scale-lake"

# Aggregator processes: one topic of 8 partitions holding the 10k-site file, drained by N members.
scale_file 10000
bash deploy/dev/kafka.sh start >/dev/null
BROKER=$(bash deploy/dev/kafka.sh broker)
RUN=scale-$(date +%s)
TOPIC=$RUN-events
EDGELENS_KAFKA_TOPICS="$TOPIC:8" bash deploy/dev/kafka.sh start >/dev/null
EDGELENS__INGEST__EVENTS_TOPIC=$TOPIC "$BIN" ingest --brokers "$BROKER" file "$FILE" > /dev/null
export EDGELENS__AGGREGATE__EVENTS_TOPIC=$TOPIC EDGELENS__AGGREGATE__DEAD_LETTERS_TOPIC="" \
  EDGELENS__AGGREGATE__INCIDENTS_TOPIC="" EDGELENS__AGGREGATE__IDLE_TIMEOUT_MS=2000 EDGELENS__AGGREGATE__METRICS_LISTEN=""
echo
echo "| aggregator processes | events | wall s | CPU s (all) | events/s (wall) | events/s per CPU-second | peak RSS per process |"
echo "|---|---|---|---|---|---|---|"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for n in 1 2 3; do
  lake=$WORK/scale-kafka-lake
  rm -rf "$lake"
  pids=()
  start=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    EDGELENS__AGGREGATE__INSTANCE_ID=bench-$i "$BIN" aggregate --brokers "$BROKER" --group "$RUN-$n" --data-dir "$lake" \
      > /dev/null 2> "$WORK/scale-aggregate-$i.log" &
    pids+=($!)
  done
  python3 bench/wait_lake.py "$lake" "$LINES" 1800
  end=$(date +%s.%N)
  stats=()
  for p in "${pids[@]}"; do
    stats+=("$(awk '{print $14 + $15}' "/proc/$p/stat"):$(awk '/VmHWM/{print $2}' "/proc/$p/status")")
  done
  kill -TERM "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null || true
  python3 - "$n" "$LINES" "$start" "$end" "${stats[@]}" <<'PY'
import os, sys
sys.path.insert(0, "bench")
from record import record
n, lines, start, end = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ticks = [int(s.split(":")[0]) for s in sys.argv[5:]]
rss = [int(s.split(":")[1]) / 1024 for s in sys.argv[5:]]
cpu = sum(ticks) / os.sysconf("SC_CLK_TCK")
wall = end - start
print(f"| {n} | {lines:,} | {wall:.2f} | {cpu:.2f} | {lines / wall:,.0f} | {lines / cpu:,.0f} | {' / '.join(f'{r:.0f}' for r in rss)} MiB |")
record("scale_aggregators", processes=n, events=lines, wall_s=wall, cpu_s=cpu, eps_wall=lines / wall, eps_per_cpu=lines / cpu, peak_rss_mib=max(rss))
PY
done
trap - EXIT
rm -rf "$WORK/scale-kafka-lake"
