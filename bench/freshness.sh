#!/usr/bin/env bash
# Live end-to-end freshness: receiver → broker → one aggregator → lake → query service, with
# events stamped "now" (bench/freshness.py). Usage: bench/freshness.sh [SECONDS] [EVENTS_PER_SECOND]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SECS=${1:-60}
RPS=${2:-200}
bench_build
RUN=fresh-$(date +%s)
EDGELENS_KAFKA_TOPICS="$RUN-events:8 $RUN-dead-letters:1" bash deploy/dev/kafka.sh start >/dev/null
BROKER=$(bash deploy/dev/kafka.sh broker)
export EDGELENS__INGEST__EVENTS_TOPIC=$RUN-events EDGELENS__INGEST__DEAD_LETTERS_TOPIC=$RUN-dead-letters
export EDGELENS__AGGREGATE__EVENTS_TOPIC=$RUN-events EDGELENS__AGGREGATE__DEAD_LETTERS_TOPIC=$RUN-dead-letters
LAKE=$WORK/fresh-lake
rm -rf "$LAKE"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RX=$(port); Q=$(port)
"$BIN" ingest --brokers "$BROKER" --listen "127.0.0.1:$RX" 2> "$WORK/fresh-ingest.log" &
P1=$!
"$BIN" aggregate --brokers "$BROKER" --group "$RUN" --data-dir "$LAKE" 2> "$WORK/fresh-aggregate.log" &
P2=$!
mkdir -p "$LAKE"
"$BIN" query --data-dir "$LAKE" --listen "127.0.0.1:$Q" 2> "$WORK/fresh-query.log" &
P3=$!
trap 'kill $P1 $P2 $P3 2>/dev/null || true' EXIT
for p in $RX $Q; do
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
sleep 2
python3 bench/freshness.py --receiver "http://127.0.0.1:$RX/v1/logpush" --query "http://127.0.0.1:$Q/v1/sql" --seconds "$SECS" --rps "$RPS"
