#!/usr/bin/env python3
"""DuckDB computing edgelens' three rollups from the raw NDJSON, the do-it-yourself peer of
`edgelens replay`: read the file once (typed columns of the fields the rollups use), then
site_rates_10s, traffic_1m and asn_1m with the same grouping, counts and sums as
bench/clickhouse_rollups.sh's materialized views (distinct clients by approx_count_distinct), each
written to Parquet as edgelens' lake is. DuckDB does less than edgelens here: no validation, no dead
letters, no RayID dedup, no late-event handling, no mergeable sketches (a count, not an HLL that a
query can merge across rows), no detector.

Usage: duckdb_rollups.py FILE OUT_DIR — prints a Markdown row; records to $EDGELENS_BENCH_JSON."""
import os
import resource
import shutil
import sys
import time

import duckdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record import record  # noqa: E402

path, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
columns = {
    "EdgeStartTimestamp": "UBIGINT", "ZoneName": "VARCHAR", "ClientIP": "VARCHAR", "EdgeResponseStatus": "USMALLINT",
    "EdgeResponseBytes": "UBIGINT", "ClientCountry": "VARCHAR", "EdgeColoCode": "VARCHAR", "CacheCacheStatus": "VARCHAR",
    "ClientASN": "UINTEGER", "SecurityAction": "VARCHAR",
}
spec = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
con = duckdb.connect()
start = time.time()
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
con.execute(f"CREATE TEMP TABLE raw AS SELECT * FROM read_json('{path}', format = 'newline_delimited', columns = {spec}, ignore_errors = true)")
events = con.execute("SELECT count(*) FROM raw").fetchone()[0]
ts10 = "to_timestamp((EdgeStartTimestamp // 10000000000) * 10)"
ts60 = "to_timestamp((EdgeStartTimestamp // 60000000000) * 60)"
queries = {
    "site_rates_10s": f"""SELECT {ts10} AS ts, lower(ZoneName) AS site, count(*) AS requests, sum(EdgeResponseBytes) AS bytes,
        count(*) FILTER (WHERE EdgeResponseStatus BETWEEN 200 AND 299) AS status_2xx,
        count(*) FILTER (WHERE EdgeResponseStatus BETWEEN 300 AND 399) AS status_3xx,
        count(*) FILTER (WHERE EdgeResponseStatus BETWEEN 400 AND 499) AS status_4xx,
        count(*) FILTER (WHERE EdgeResponseStatus BETWEEN 500 AND 599) AS status_5xx,
        count(*) FILTER (WHERE CacheCacheStatus IN ('hit', 'stale', 'updating', 'revalidated')) AS cache_hits,
        count(*) FILTER (WHERE SecurityAction IN ('block', 'challenge', 'jschallenge', 'managed_challenge')) AS blocked,
        approx_count_distinct(ClientIP) AS clients
        FROM raw GROUP BY ALL""",
    "traffic_1m": f"""SELECT {ts60} AS ts, lower(ZoneName) AS site, ClientCountry AS country, EdgeColoCode AS colo,
        (EdgeResponseStatus // 100)::VARCHAR || 'xx' AS status_class, CacheCacheStatus AS cache_status,
        count(*) AS requests, sum(EdgeResponseBytes) AS bytes FROM raw GROUP BY ALL""",
    "asn_1m": f"""SELECT {ts60} AS ts, lower(ZoneName) AS site, ClientASN AS asn, ClientCountry AS country,
        count(*) AS requests, sum(EdgeResponseBytes) AS bytes, approx_count_distinct(ClientIP) AS clients FROM raw GROUP BY ALL""",
}
for table, sql in queries.items():
    con.execute(f"COPY ({sql}) TO '{os.path.join(out, table + '.parquet')}' (FORMAT PARQUET)")
counted = con.execute(f"SELECT sum(requests) FROM read_parquet('{os.path.join(out, 'site_rates_10s.parquet')}')").fetchone()[0]
wall = time.time() - start
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
rss_mib = cpu1.ru_maxrss / 1024
stored = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
print("| engine | events | counted | wall s | CPU s | events/s (wall) | events/s per CPU-second | peak RSS | rollup bytes |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| DuckDB {duckdb.__version__} NDJSON → 3 rollups → Parquet | {events:,} | {counted:,} | {wall:.2f} | {cpu:.2f} | {events / wall:,.0f} | {events / cpu:,.0f} | {rss_mib:.0f} MiB | {stored:,} |")
record("duckdb_rollups", events=events, counted=counted, wall_s=wall, cpu_s=cpu, eps_wall=events / wall, eps_per_cpu=events / cpu, peak_rss_mib=rss_mib, rollup_bytes=stored)
