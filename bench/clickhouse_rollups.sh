#!/usr/bin/env bash
# ClickHouse computing edgelens' rollups itself, on the same generated file as bench/replay.sh and
# bench/kafka.sh: `INSERT ... FORMAT JSONEachRow` of the raw NDJSON into a Null table whose
# materialized views compute site_rates_10s, traffic_1m and asn_1m (counts, sums, uniqState of
# client IPs) — ClickHouse keeps only the rollups, as edgelens does. Then the same file through
# `edgelens replay --clickhouse` (edgelens computes the rollups and inserts them; it also writes its
# Parquet lake). Measures wall time and the CPU time of the server and the client of each, and the
# rollups' stored bytes in ClickHouse; prints both rows and the ratio.
# Usage: bench/clickhouse_rollups.sh [EVENTS_PER_SECOND] [DURATION]   (same defaults as replay.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=deploy/dev/env.sh
source deploy/dev/env.sh
RPS=${1:-4000}
DURATION=${2:-10m}
bench_build
bench_input "$RPS" "$DURATION" existing
bash deploy/dev/clickhouse.sh start >/dev/null
CH=(clickhouse-client --host 127.0.0.1 --port "$EDGELENS_CH_TCP_PORT")
PID=$(cat "$EDGELENS_CH_PIDFILE")
"${CH[@]}" --multiquery <<'SQL'
DROP DATABASE IF EXISTS edgelens_bench;
CREATE DATABASE edgelens_bench;
CREATE TABLE edgelens_bench.raw (
  EdgeStartTimestamp UInt64, ZoneName String, ClientIP String, EdgeResponseStatus UInt16,
  EdgeResponseBytes UInt64, ClientCountry String, EdgeColoCode String, CacheCacheStatus String,
  ClientASN UInt32, SecurityAction String
) ENGINE = Null;
CREATE MATERIALIZED VIEW edgelens_bench.site_rates_10s
ENGINE = AggregatingMergeTree() PARTITION BY toDate(ts) ORDER BY (ts, site) AS
SELECT toDateTime(intDiv(EdgeStartTimestamp, 10000000000) * 10) AS ts, lower(ZoneName) AS site,
  countState() AS requests, sumState(EdgeResponseBytes) AS bytes,
  countIfState(EdgeResponseStatus >= 200 AND EdgeResponseStatus < 300) AS status_2xx,
  countIfState(EdgeResponseStatus >= 300 AND EdgeResponseStatus < 400) AS status_3xx,
  countIfState(EdgeResponseStatus >= 400 AND EdgeResponseStatus < 500) AS status_4xx,
  countIfState(EdgeResponseStatus >= 500 AND EdgeResponseStatus < 600) AS status_5xx,
  countIfState(CacheCacheStatus IN ('hit', 'stale', 'updating', 'revalidated')) AS cache_hits,
  countIfState(SecurityAction IN ('block', 'challenge', 'jschallenge', 'managed_challenge')) AS blocked,
  uniqState(ClientIP) AS clients
FROM edgelens_bench.raw GROUP BY ts, site;
CREATE MATERIALIZED VIEW edgelens_bench.traffic_1m
ENGINE = SummingMergeTree() PARTITION BY toDate(ts) ORDER BY (ts, site, country, colo, status_class, cache_status) AS
SELECT toDateTime(intDiv(EdgeStartTimestamp, 60000000000) * 60) AS ts, lower(ZoneName) AS site,
  ClientCountry AS country, EdgeColoCode AS colo,
  concat(toString(intDiv(EdgeResponseStatus, 100)), 'xx') AS status_class, CacheCacheStatus AS cache_status,
  count() AS requests, sum(EdgeResponseBytes) AS bytes
FROM edgelens_bench.raw GROUP BY ts, site, country, colo, status_class, cache_status;
CREATE MATERIALIZED VIEW edgelens_bench.asn_1m
ENGINE = AggregatingMergeTree() PARTITION BY toDate(ts) ORDER BY (ts, site, asn, country) AS
SELECT toDateTime(intDiv(EdgeStartTimestamp, 60000000000) * 60) AS ts, lower(ZoneName) AS site,
  ClientASN AS asn, ClientCountry AS country,
  countState() AS requests, sumState(EdgeResponseBytes) AS bytes, uniqState(ClientIP) AS clients
FROM edgelens_bench.raw GROUP BY ts, site, asn, country;
SQL
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
BEFORE=$(cpu_of "$PID")
START=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o "$WORK/ch-client.time" "${CH[@]}" --input_format_skip_unknown_fields=1 \
  --query "INSERT INTO edgelens_bench.raw FORMAT JSONEachRow" < "$FILE"
END=$(date +%s.%N)
AFTER=$(cpu_of "$PID")
COUNTED=$("${CH[@]}" --query "SELECT countMerge(requests) FROM edgelens_bench.site_rates_10s")
BYTES=$("${CH[@]}" --query "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'edgelens_bench' AND active")
# edgelens computing the rollups and writing them to ClickHouse (schema migrated first, not timed).
"${CH[@]}" --query "DROP DATABASE IF EXISTS edgelens_bench_sink"
rm -rf "$WORK/ch-sink-lake"
export EDGELENS__CLICKHOUSE__DATABASE=edgelens_bench_sink
E_BEFORE=$(cpu_of "$PID")
E_START=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o "$WORK/edgelens-ch.time" "$BIN" replay --data-dir "$WORK/ch-sink-lake" \
  --clickhouse "$EDGELENS_CH_URL" "$FILE" > "$WORK/edgelens-ch.json"
E_END=$(date +%s.%N)
E_AFTER=$(cpu_of "$PID")
E_COUNTED=$("${CH[@]}" --query "SELECT sum(requests) FROM edgelens_bench_sink.site_rates_10s")
E_BYTES=$("${CH[@]}" --query "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'edgelens_bench_sink' AND active AND table IN ('site_rates_10s_local', 'traffic_1m_local', 'asn_1m_local')")
python3 - "$LINES" "$COUNTED" "$START" "$END" "$BEFORE" "$AFTER" "$(cat "$WORK/ch-client.time")" "$BYTES" \
  "$E_COUNTED" "$E_START" "$E_END" "$E_BEFORE" "$E_AFTER" "$(cat "$WORK/edgelens-ch.time")" "$E_BYTES" <<'PY'
import os, sys
a = sys.argv
lines = int(a[1])
tick = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, "bench")
from record import record
def row(key, name, counted, start, end, before, after, client_time, stored):
    wall = float(end) - float(start)
    server = (int(after) - int(before)) / tick
    cu, cs = map(float, client_time.split())
    cpu = server + cu + cs
    print(f"| {name} | {lines:,} | {int(counted):,} | {wall:.2f} | {server:.2f} + {cu + cs:.2f} | {lines / wall:,.0f} | {lines / cpu:,.0f} | {int(stored):,} |")
    record(key, events=lines, counted=int(counted), wall_s=wall, cpu_s=cpu, eps_wall=lines / wall, eps_per_cpu=lines / cpu, rollup_bytes=int(stored), bytes_per_event=int(stored) / lines)
    return lines / cpu, int(stored)
print("| engine | events | counted | wall s | CPU s (server + client) | events/s (wall) | events/s per CPU-second | rollup bytes |")
print("|---|---|---|---|---|---|---|---|")
ch = row("clickhouse_mv", "ClickHouse 18.16 JSONEachRow → Null + 3 materialized views", a[2], a[3], a[4], a[5], a[6], a[7], a[8])
el = row("edgelens_to_clickhouse", "edgelens replay → ClickHouse 18.16 (+ Parquet lake)", a[9], a[10], a[11], a[12], a[13], a[14], a[15])
print(f"\nedgelens / ClickHouse: {el[0] / ch[0]:.2f}× events per CPU-second, {el[1] / ch[1]:.2f}× stored rollup bytes")
PY
