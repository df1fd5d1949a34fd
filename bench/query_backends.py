#!/usr/bin/env python3
"""The query service's questions on both of its backends over the same data, next to DuckDB: the
lake and the ClickHouse database that one `edgelens replay --clickhouse` of a generated file wrote
(bench/clickhouse_rollups.sh leaves them in $WORK/ch-sink-lake and database edgelens_bench_sink).
Two `edgelens query` services — `backend = "lake"` (DataFusion over the Parquet files) and
`backend = "clickhouse"` (ClickHouse executes the SQL over its tables) — answer the same requests,
alternating, REPS timed runs after 2 warm-up runs; DuckDB answers the traffic-share question over
the same Parquet files. The answers of the two backends are compared (they must be equal).

Usage: query_backends.py BIN LAKE CLICKHOUSE_URL DATABASE [REPS] — prints a Markdown table;
records to $EDGELENS_BENCH_JSON."""
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

import duckdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record import record  # noqa: E402

binary, lake, ch_url, database = sys.argv[1:5]
reps = int(sys.argv[5]) if len(sys.argv) > 5 else 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(backend):
    port = free_port()
    env = dict(os.environ, EDGELENS__QUERY__BACKEND=backend, EDGELENS__CLICKHOUSE__URL=ch_url, EDGELENS__CLICKHOUSE__DATABASE=database)
    p = subprocess.Popen([binary, "query", "--listen", f"127.0.0.1:{port}", "--pg-listen", "off", "--data-dir", lake],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                return p, port
        except OSError:
            time.sleep(0.2)
    p.kill()
    sys.exit(f"edgelens query ({backend}) did not become ready")


def get(port, path):
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=300) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        sys.exit(f"GET {path} on port {port}: {e.code} {e.read().decode(errors='replace')}")
    return time.perf_counter() - t, body


rates = os.path.join(lake, "site_rates_10s", "*", "*.parquet")
lo, hi, top = duckdb.sql(f"""SELECT min(ts), max(ts), arg_max(site, n) FROM (
    SELECT ts, site, sum(requests) OVER (PARTITION BY site) AS n FROM read_parquet('{rates}'))""").fetchall()[0]
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:00Z")
frm, to = fmt(lo), fmt(hi + datetime.timedelta(minutes=1))
questions = [
    ("traffic share, by site, step 1m", f"/v1/traffic-share?from={frm}&to={to}&step=1m&by=site&top=10"),
    ("traffic share, by country, step 10m", f"/v1/traffic-share?from={frm}&to={to}&step=10m&by=country&top=10"),
    ("site rates, step 10s", f"/v1/sites/{top}/rates?from={frm}&to={to}&step=10s"),
    ("site rates, step 1m", f"/v1/sites/{top}/rates?from={frm}&to={to}&step=1m"),
    ("incidents list", f"/v1/incidents?from={frm}&to={to}"),
]
traffic = os.path.join(lake, "traffic_1m", "*", "*.parquet")
duck = duckdb.connect()
duck_sql = f"""WITH per AS (SELECT time_bucket(INTERVAL 1 minute, ts) AS t, site, sum(requests) AS r
    FROM read_parquet('{traffic}') WHERE ts >= '{frm}' AND ts < '{to}' GROUP BY ALL),
  tot AS (SELECT t, sum(r) AS total FROM per GROUP BY t),
  top AS (SELECT site FROM per GROUP BY site ORDER BY sum(r) DESC LIMIT 10)
  SELECT per.t, per.site, per.r, per.r / tot.total FROM per JOIN tot USING (t) WHERE per.site IN (SELECT site FROM top) ORDER BY 1, 2"""

lake_svc, lake_port = start("lake")
ch_svc, ch_port = start("clickhouse")
try:
    print(f"| question | edgelens on the lake p50 / p95 ms | edgelens on ClickHouse p50 / p95 ms | DuckDB p50 / p95 ms |")
    print("|---|---|---|---|")
    for name, path in questions:
        _, a = get(lake_port, path)
        _, b = get(ch_port, path)
        if json.loads(a) != json.loads(b):
            sys.exit(f"{name}: the lake and ClickHouse answers differ")
        get(lake_port, path), get(ch_port, path)
        tl, tc, td = [], [], []
        for _ in range(reps):
            tl.append(get(lake_port, path)[0])
            tc.append(get(ch_port, path)[0])
            if name.startswith("traffic share, by site"):
                t = time.perf_counter()
                duck.sql(duck_sql).fetchall()
                td.append(time.perf_counter() - t)
        p = lambda xs, q: statistics.quantiles(xs, n=20)[18] if q == 95 else statistics.median(xs)
        ms = lambda xs: f"{p(xs, 50) * 1000:.0f} / {p(xs, 95) * 1000:.0f}" if xs else "—"
        print(f"| {name} | {ms(tl)} | {ms(tc)} | {ms(td)} |")
        record("query_backends", question=name, lake_p50_ms=p(tl, 50) * 1000, clickhouse_p50_ms=p(tc, 50) * 1000,
               duckdb_p50_ms=p(td, 50) * 1000 if td else None)
    print(f"\nSpan {frm} → {to}; busiest site `{top}`; {reps} timed runs per question after 2 warm-up runs; "
          "the two backends' answers were equal.")
finally:
    lake_svc.kill()
    ch_svc.kill()
