#!/usr/bin/env bash
# A before/after of the Logpush HTTP receiver → broker: each given `edgelens` binary runs
# `edgelens ingest` on a fresh 8-partition topic and takes the first 1M lines of the mixed-scenario
# file of bench/lib.sh as 5000-line gzip batches from 4 concurrent clients (bench/post_logpush.py,
# which retries 429/503), alternating binaries for ROUNDS rounds. Prints the accepted events per
# second (wall) of every run, and the median per binary.
# Usage: bench/http_compare.sh ROUNDS BIN_A BIN_B...   (env RPS / DURATION pick the input file, as
#        bench/kafka_compare.sh: defaults 4000 events/s for 250s ≈ 1.1M events)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_compare_args http_compare.sh "$@"
bench_input "${RPS:-4000}" "${DURATION:-250s}" existing
bench_topics http-compare
results=$WORK/http-compare.tsv
: > "$results"
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!BINS[@]}"; do
    topic=$RUN-$round-$i
    EDGELENS_KAFKA_TOPICS="$topic:8" bash deploy/dev/kafka.sh start >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    EDGELENS__INGEST__EVENTS_TOPIC=$topic "${BINS[$i]}" ingest --brokers "$BROKER" --listen "127.0.0.1:$port" > /dev/null 2> "$WORK/http-compare.log" &
    rx=$!
    eps=$(python3 bench/post_logpush.py --url "http://127.0.0.1:$port/v1/logpush" --file "$FILE" --lines 1000000 --batch 5000 --clients 4)
    kill "$rx"
    wait "$rx" 2>/dev/null || true
    printf '%s\t%s\t%s\n' "${BINS[$i]}" "$round" "$eps" | tee -a "$results"
  done
done
python3 bench/compare_table.py "$results" "1,000,000 events over HTTP: events/s (wall)"
