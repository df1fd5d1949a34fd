# shellcheck shell=bash
# Shared set-up of the bench scripts: paths, the production binary and the one input file every
# throughput bench reads (so their figures compare). Sourced, not run.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/edgelens/target}
WORK=${EDGELENS_BENCH_DIR:-$HOME/.cache/edgelens/bench}
mkdir -p "$WORK"
# The binary the benches run: the workspace's build in the `production` profile (as deployed, see
# Cargo.toml), or EDGELENS_BENCH_BIN (e.g. a build of another commit, which is then not built).
BIN=${EDGELENS_BENCH_BIN:-$CARGO_TARGET_DIR/production/edgelens}

# Build the production binary (a no-op when it is up to date; skipped with EDGELENS_BENCH_PREBUILT=1,
# and when EDGELENS_BENCH_BIN names another binary).
bench_build() {
  [ -z "${EDGELENS_BENCH_PREBUILT:-}" ] && [ -z "${EDGELENS_BENCH_BIN:-}" ] || return 0
  cargo build --profile production --quiet --bin edgelens
}

# bench_input RPS DURATION [generate|existing] — sets FILE (the mixed-scenario file of that rate
# and duration, $BENCH_SITES sites (default 10 000), seed 42) and LINES; generates it unless told to
# use an existing one.
bench_input() {
  local sites=${BENCH_SITES:-10000}
  FILE=$WORK/replay-$1-$2.ndjson
  [ "$sites" = 10000 ] || FILE=$WORK/replay-$1-$2-s$sites.ndjson
  if [ ! -s "$FILE" ]; then
    [ "${3:-generate}" = generate ] || { echo "no $FILE: run bench/replay.sh $1 $2 first" >&2; exit 1; }
    "$BIN" generate --scenario mixed --seed 42 --duration "$2" --rps "$1" --sites "$sites" --out "$FILE"
  fi
  LINES=$(wc -l < "$FILE")
}

# bench_topics PREFIX — start the dev broker with a fresh 8-partition events topic and its dead-letter
# topic (PREFIX-<time>-events, …-dead-letters); sets RUN, TOPIC, DL and BROKER, and points ingest and
# aggregate at them (idle partitions close their windows after 2 s).
bench_topics() {
  RUN=$1-$(date +%s)
  TOPIC=$RUN-events
  DL=$RUN-dead-letters
  EDGELENS_KAFKA_TOPICS="$TOPIC:8 $DL:1" bash deploy/dev/kafka.sh start >/dev/null
  BROKER=$(bash deploy/dev/kafka.sh broker)
  export EDGELENS__INGEST__EVENTS_TOPIC=$TOPIC EDGELENS__INGEST__DEAD_LETTERS_TOPIC=$DL
  export EDGELENS__AGGREGATE__EVENTS_TOPIC=$TOPIC EDGELENS__AGGREGATE__DEAD_LETTERS_TOPIC=$DL
  export EDGELENS__AGGREGATE__IDLE_TIMEOUT_MS=2000
}

# bench_compare_args NAME ROUNDS BIN... — the arguments of a before/after script: sets ROUNDS and
# BINS (the `edgelens` binaries, run alternately each round), or prints NAME's usage and exits.
bench_compare_args() {
  local name=$1
  shift
  [ $# -ge 2 ] || { echo "usage: bench/$name ROUNDS BIN..." >&2; exit 2; }
  ROUNDS=$1
  shift
  BINS=("$@")
}
