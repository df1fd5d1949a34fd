#!/usr/bin/env bash
# A controlled before/after of broker → aggregate: one topic is loaded once (the mixed-scenario file
# of bench/lib.sh), then each given `edgelens` binary drains it with a fresh consumer group into a
# fresh lake, alternating binaries for ROUNDS rounds (so drift of the machine hits both alike).
# Prints events per CPU-second of the aggregator process for every run, and the median per binary.
# With LOAD_EACH=1 every binary drains a topic its own `edgelens ingest file` loaded (for changes
# of the message format on the topic, which an older binary could not read).
# Usage: bench/kafka_compare.sh ROUNDS BIN_A BIN_B...   (env RPS / DURATION pick the input file;
#        defaults 4000 events/s for 250s ≈ 1.1M events; LOAD_EACH=1 as above)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_compare_args kafka_compare.sh "$@"
bench_input "${RPS:-4000}" "${DURATION:-250s}" existing

bench_topics compare
TOPICS=()
if [ "${LOAD_EACH:-0}" = 1 ]; then
  for i in "${!BINS[@]}"; do
    TOPICS[i]=$RUN-$i-events
    EDGELENS_KAFKA_TOPICS="${TOPICS[i]}:8 $RUN-$i-dead-letters:1" bash deploy/dev/kafka.sh start >/dev/null
    EDGELENS__INGEST__EVENTS_TOPIC=${TOPICS[i]} EDGELENS__INGEST__DEAD_LETTERS_TOPIC=$RUN-$i-dead-letters \
      "${BINS[$i]}" ingest --brokers "$BROKER" file "$FILE" > /dev/null
  done
else
  "${BINS[0]}" ingest --brokers "$BROKER" file "$FILE" > /dev/null
  for i in "${!BINS[@]}"; do TOPICS[i]=$TOPIC; done
fi

results=$WORK/kafka-compare.tsv
: > "$results"
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!BINS[@]}"; do
    bin=${BINS[$i]}
    lake=$WORK/compare-lake
    rm -rf "$lake"
    EDGELENS__AGGREGATE__EVENTS_TOPIC=${TOPICS[i]} EDGELENS__AGGREGATE__DEAD_LETTERS_TOPIC=${TOPICS[i]%-events}-dead-letters \
      "$bin" aggregate --brokers "$BROKER" --group "$RUN-$round-$i" --data-dir "$lake" > /dev/null 2> "$WORK/compare-aggregate.log" &
    apid=$!
    python3 bench/wait_lake.py "$lake" "$LINES" 1800
    ticks=$(awk '{print $14+$15}' "/proc/$apid/stat")
    kill -TERM "$apid"
    wait "$apid" || true
    eps=$(python3 -c "import os,sys; print(round(int(sys.argv[2]) / (int(sys.argv[1]) / os.sysconf('SC_CLK_TCK'))))" "$ticks" "$LINES")
    printf '%s\t%s\t%s\n' "$bin" "$round" "$eps" | tee -a "$results"
  done
done
python3 bench/compare_table.py "$results" "$LINES events: events per CPU-second"
