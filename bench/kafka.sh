#!/usr/bin/env bash
# Throughput of the distributed path on this machine, against the dev broker (tansu, memory storage):
#   1. `edgelens ingest file` of a generated file into a fresh 8-partition topic (producer events/s);
#   2. the Logpush HTTP receiver (`edgelens ingest`) taking gzip batches from 4 concurrent clients;
#   3. one `edgelens aggregate` draining the topic into a Parquet lake: events per CPU-second of the
#      aggregator process (the broker runs on the same 2 cores), wall time and peak RSS.
# Usage: bench/kafka.sh [EVENTS_PER_SECOND] [DURATION]   (defaults: 4000 events/s for 10m ≈ 2.4M events)
# Prints a Markdown block for bench/RESULTS.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
RPS=${1:-4000}
DURATION=${2:-10m}
bench_build
bench_input "$RPS" "$DURATION"

bench_topics bench

# 1. File into the topic.
"$BIN" ingest --brokers "$BROKER" file "$FILE" > "$WORK/ingest-file.json"
FILE_EPS=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["events_per_second"]))' "$WORK/ingest-file.json")

# 2. The HTTP receiver, into a topic of its own (4 clients, 5000-line gzip batches, first 1M lines).
HTTP_TOPIC=$RUN-http
EDGELENS_KAFKA_TOPICS="$HTTP_TOPIC:8" bash deploy/dev/kafka.sh start >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
EDGELENS__INGEST__EVENTS_TOPIC=$HTTP_TOPIC "$BIN" ingest --brokers "$BROKER" --listen "127.0.0.1:$PORT" > /dev/null 2> "$WORK/receiver.log" &
RX=$!
trap 'kill $RX 2>/dev/null || true' EXIT
HTTP_EPS=$(python3 bench/post_logpush.py --url "http://127.0.0.1:$PORT/v1/logpush" --file "$FILE" --lines 1000000 --batch 5000 --clients 4)
kill $RX; wait $RX 2>/dev/null || true
trap - EXIT

# 3. One aggregator drains the file's topic.
LAKE=$WORK/kafka-lake
rm -rf "$LAKE"
/usr/bin/time -v "$BIN" aggregate --brokers "$BROKER" --group "$RUN" --data-dir "$LAKE" > /dev/null 2> "$WORK/aggregate.log" &
TPID=$!
sleep 0.5
# The aggregator: the one child of `time` (whatever the binary is called, see EDGELENS_BENCH_BIN).
APID=$(pgrep -P "$TPID" | head -1)
START=$(date +%s.%N)
python3 bench/wait_lake.py "$LAKE" "$LINES" 1800
END=$(date +%s.%N)
TICKS=$(awk '{print $14+$15}' "/proc/$APID/stat")
CPU=$(python3 -c "import os,sys; print(int(sys.argv[1])/os.sysconf('SC_CLK_TCK'))" "$TICKS")
kill -TERM "$APID"
wait "$TPID" || true
RSS=$(awk -F': ' '/Maximum resident set size/{print $2}' "$WORK/aggregate.log")
python3 - "$LINES" "$START" "$END" "$CPU" "$RSS" "$FILE_EPS" "$HTTP_EPS" <<'PY'
import sys
lines, start, end, cpu, rss, file_eps, http_eps = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
wall = end - start
print("| stage | events | events/s (wall) | events/s per CPU-second | peak RSS |")
print("|---|---|---|---|---|")
print(f"| `edgelens ingest file` → broker | {lines:,} | {file_eps:,} | | |")
print(f"| Logpush HTTP receiver → broker (4 clients) | 1,000,000 | {http_eps:,} | | |")
print(f"| broker → `edgelens aggregate` (1 process) → Parquet | {lines:,} | {lines/wall:,.0f} | {lines/cpu:,.0f} | {rss/1024:.0f} MiB |")
sys.path.insert(0, "bench")
from record import record
record("kafka_ingest_file", events=lines, eps_wall=file_eps)
record("kafka_http", events=1000000, eps_wall=http_eps)
record("kafka_aggregate", events=lines, wall_s=wall, cpu_s=cpu, eps_wall=lines / wall, eps_per_cpu=lines / cpu, peak_rss_mib=rss / 1024)
PY
