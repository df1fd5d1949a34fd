#!/usr/bin/env bash
# Query latency of the query service over a month of rollups, next to DuckDB answering the same
# questions over the same Parquet files: p50/p95 of traffic share (30 days at steps 1h and 1d, one
# day at 1m; top 10 sites), one site's rates over a day (steps 1m and 10s), an incident report and
# the incidents list, as edgelens/DuckDB ratios from one run.
#   1. A sketch pool: `edgelens generate` (mixed, 2 min at 4000 events/s) + `edgelens replay`, so the
#      lake's clients_sketch cells are real DataSketches HLLs written by edgelens;
#   2. the lake, generated directly with DuckDB (bench/query_latency.py generate: SITES sites with
#      Zipf-like traffic, DAYS days of traffic_1m and site_rates_10s, ~10 incidents a day with
#      per-second timelines; ~2.4M traffic_1m and ~1.7M site_rates_10s rows a day at 10 000 sites,
#      ~50 MiB a day on disk) — kept in $WORK and reused while the generator is unchanged;
#   3. `edgelens query --data-dir LAKE` on a free port: first with its default memory pool, 5 runs
#      of the heaviest question (30 days at 1h) counting failures; then with a pool of
#      QUERY_MEMORY_MB (default 8192) MiB, bench/query_latency.py measure (REPS timed runs after 2
#      warm-up runs per question, edgelens and DuckDB alternating; answers compared);
#   4. the section "Query latency vs DuckDB" of bench/RESULTS.md rewritten with the numbers.
# Usage: bench/query_latency.sh [SITES] [DAYS] [REPS]   (defaults: 10000 30 20; on 2 cores ≈7 min
#        when the lake exists, ≈+4 min to generate it, plus the production build when the sources
#        changed; EDGELENS_BENCH_PREBUILT=1 skips it). Data: $HOME/.cache/edgelens/bench/ (or
#        $EDGELENS_BENCH_DIR), not the repository. Distinct clients on the DuckDB side need Python
#        `datasketches` (pip install datasketches); without it DuckDB's rates leave them out.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SITES=${1:-10000}
DAYS=${2:-30}
REPS=${3:-20}
bench_build

# A lake made by another version of the generator is made anew.
GEN=$(python3 bench/query_latency.py version)
LAKE=$WORK/query-lake-$SITES-$DAYS
if [ "$(cat "$LAKE/.generator" 2>/dev/null)" != "$GEN" ]; then
  rm -rf "$WORK"/query-lake-* "$WORK/query-pool"
  POOL=$WORK/query-pool
  "$BIN" generate --scenario mixed --seed 42 --duration 2m --rps 4000 --sites 10000 --out "$POOL.ndjson"
  "$BIN" replay "$POOL.ndjson" --data-dir "$POOL" > /dev/null
  rm -f "$POOL.ndjson"
  START=$(date +%s)
  python3 bench/query_latency.py generate --lake "$LAKE" --pool "$POOL" --sites "$SITES" --days "$DAYS" --seed 42
  echo "lake generated in $(( $(date +%s) - START )) s" >&2
  rm -rf "$POOL"
  echo "$GEN" > "$LAKE/.generator"
fi

# The lake reads back through edgelens' own schema.
"$BIN" sql --data-dir "$LAKE" --format csv \
  "SELECT (SELECT COUNT(*) FROM traffic_1m WHERE date = '2026-10-01') AS traffic_rows,
          (SELECT SUM(distinct_clients) FROM site_rates_10s WHERE date = '2026-10-01') AS clients,
          (SELECT COUNT(*) FROM incidents) AS incident_rows, (SELECT COUNT(*) FROM incident_timeline) AS timeline_rows" >&2

# What was measured: the binary bench_build just built from this work tree (remembered next to the
# lake with the binary's mtime, for later runs with EDGELENS_BENCH_PREBUILT=1), or a prebuilt one.
STAMP=$(stat -c %Y "$BIN")
if [ -z "${EDGELENS_BENCH_PREBUILT:-}" ]; then
  BUILD="production binary built from commit $(git rev-parse --short HEAD)"
  [ -z "$(git status --porcelain --untracked-files=no -- src query schemas ingest aggregate Cargo.toml Cargo.lock)" ] ||
    BUILD="$BUILD plus uncommitted changes in the work tree"
  printf '%s\t%s\n' "$STAMP" "$BUILD" > "$WORK/query-latency-build.txt"
elif [ "$(cut -f1 "$WORK/query-latency-build.txt" 2>/dev/null)" = "$STAMP" ]; then
  BUILD="$(cut -f2 "$WORK/query-latency-build.txt")"
else
  BUILD="prebuilt binary of $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
SERVICE=
trap '[ -z "$SERVICE" ] || kill $SERVICE 2>/dev/null || true' EXIT
start_service() {  # start_service [VAR=VALUE...]: the query service on $PORT, Postgres wire off
  local args=(query --data-dir "$LAKE" --listen "127.0.0.1:$PORT" --log warn)
  if "$BIN" query --help | grep -q -- --pg-listen; then args+=(--pg-listen off); fi
  env "$@" "$BIN" "${args[@]}" 2>> "$WORK/query-latency-service.log" &
  SERVICE=$!
  for _ in $(seq 100); do
    curl -sf "$URL/readyz" > /dev/null && return 0
    sleep 0.1
  done
  echo "query service did not become ready" >&2
  exit 1
}
stop_service() {
  kill "$SERVICE"
  wait "$SERVICE" 2>/dev/null || true
  SERVICE=
}

# The heaviest question against the default memory pool ([query] sql_memory_mb = 2048, queries
# never spill): how many of 5 runs fail.
: > "$WORK/query-latency-service.log"
start_service
TO=$(date -u -d "2026-10-01 + $DAYS days" +%Y-%m-%dT%H:%M:%SZ)
PROBE_FAILS=0
PROBE_ERROR=
for _ in 1 2 3 4 5; do
  code=$(curl -s -o "$WORK/query-latency-probe.json" -w '%{http_code}' \
    "$URL/v1/traffic-share?from=2026-10-01T00:00:00Z&to=$TO&by=site&step=1h&top=10")
  if [ "$code" != 200 ]; then
    PROBE_FAILS=$((PROBE_FAILS + 1))
    PROBE_ERROR="$code $(head -c 300 "$WORK/query-latency-probe.json")"
  fi
done
stop_service
echo "default memory pool: $PROBE_FAILS of 5 runs of the $DAYS-day step-1h traffic share failed $PROBE_ERROR" >&2

# The measured service: a memory pool that the heaviest question fits in.
MEMORY_MB=${QUERY_MEMORY_MB:-8192}
start_service EDGELENS__QUERY__SQL_MEMORY_MB="$MEMORY_MB"
python3 bench/query_latency.py measure --lake "$LAKE" --url "$URL" --reps "$REPS" --warmup 2 \
  --out "$WORK/query-latency.json"
stop_service

CMD="bash bench/query_latency.sh${1:+ $1}${2:+ $2}${3:+ $3}"
python3 bench/query_latency.py report --lake "$LAKE" --results "$WORK/query-latency.json" --md bench/RESULTS.md \
  --command "$CMD" --sites "$SITES" --days "$DAYS" --build "$BUILD" --memory-mb "$MEMORY_MB" \
  --probe "$PROBE_FAILS" --probe-error "$PROBE_ERROR"
